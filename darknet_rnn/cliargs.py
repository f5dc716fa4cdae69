"""Command-line spelling for `darknet-rnn`: Darknet's single-dash options,
argument types, and an argparse parser whose errors are one line.

Darknet's `darknet rnn VERB CFG [WEIGHTS] [options]` (examples/rnn.c) reads
these options anywhere on the line, each with Darknet's default:

    -file TEXT   training text               (Darknet: data/shakespeare.txt)
    -seed TEXT   prime text                  ("\\n\\n", two newlines)
    -len N       characters to generate      (1000)
    -temp T      softmax temperature         (0.7)
    -srand S     random seed                 (the clock)
    -clear       count iterations from 0     (off)
    -tokenized   word-level training data    (off)
    -tokens F    vocabulary for generation   (none)

`translate()` rewrites them to the `--` forms (so both spellings give the
same parse), drops a leading `rnn` (`darknet-rnn rnn train ...`, as
`darknet rnn train ...`) and ignores Darknet's GPU selectors `-i N` and
`-nogpu` (there is no GPU here). Darknet reads every option for every verb
and ignores those the verb does not use (`-len` for train); so does
translate(), which lists them so that the caller can say so.
"""
import argparse
import math

DARKNET_OPTIONS = {
    "-file": "--file", "-seed": "--seed", "-len": "--len", "-temp": "--temp",
    "-srand": "--srand", "-clear": "--clear", "-tokenized": "--tokenized",
    "-tokens": "--tokens",
}
DARKNET_FLAGS = {"-clear", "-tokenized"}
GPU_OPTIONS = {"-i": True, "-nogpu": False}          # option -> takes a value
# the Darknet options each verb uses (valid and vec also take -file here: Darknet
# reads their text from stdin only)
USED_BY = {"train": {"-file", "-srand", "-clear", "-tokenized"},
           "generate": {"-seed", "-len", "-temp", "-srand", "-tokens"},
           "valid": {"-seed", "-file"}, "vec": {"-seed", "-file"}}
DARKNET_SPELLING = ("options are spelled --NAME, or as in Darknet "
                    + " ".join(DARKNET_OPTIONS))


class UsageError(Exception):
    """A problem with the command line itself (exit status 2)."""


def translate(argv, value_options=(), ignored=None):
    """Darknet's spelling of a command line -> the `--` spelling.

    value_options: our options that take a value; the word after one of them
    is a value, never translated (`--seed -len` primes with "-len").
    ignored: a list that receives the Darknet options the verb does not use
    (left out of the result, as Darknet ignores them)."""
    argv = list(argv)
    if argv[:1] == ["rnn"]:
        argv = argv[1:]
    used = USED_BY.get(argv[0] if argv else None)
    out, i = [], 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            out += argv[i:]
            break
        if a in value_options and i + 1 < len(argv):
            out.append(f"{a}={argv[i + 1]}")        # joined: the value may start with '-'
            i += 2
            continue
        if a in DARKNET_OPTIONS:
            opt = DARKNET_OPTIONS[a]
            if used is not None and a not in used:
                if ignored is not None:
                    ignored.append(a)
                i += 1 if a in DARKNET_FLAGS else 2
                continue
            if a in DARKNET_FLAGS:
                out.append(opt)
                i += 1
                continue
            if i + 1 >= len(argv):
                raise UsageError(f"{a} needs a value ({a} VALUE, or {opt} VALUE)")
            out.append(f"{opt}={argv[i + 1]}")      # joined: the value may start with '-'
            i += 2
            continue
        if a in GPU_OPTIONS:
            i += 2 if GPU_OPTIONS[a] else 1
            continue
        out.append(a)
        i += 1
    return out


def one_line(msg):
    """A message as one printable line: newlines become spaces, control
    characters and undecodable bytes are escaped, never printed raw."""
    out = []
    for ch in str(msg).replace("\r\n", " ").replace("\n", " "):
        if ch == "\ufffd" or (ord(ch) < 32 and ch != "\t") or 0x7f <= ord(ch) < 0xa0:
            out.append("?" if ch == "\ufffd" else f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return "".join(out)


# --------------------------------------------------------------------------
# argument types

def converter(cast, ok, what):
    """An argparse type: cast the text, then check it; one message either way."""
    def convert(s):
        try:
            v = cast(s)
        except ValueError:
            v = None
        if v is None or not ok(v):
            raise argparse.ArgumentTypeError(f"expected {what}, got {s!r}")
        return v
    convert.__name__ = what
    return convert


positive_int = converter(int, lambda v: v > 0, "a positive integer")
nonneg_int = converter(int, lambda v: v >= 0, "an integer >= 0")
fraction = converter(float, lambda v: 0.0 <= v < 1.0, "a number in [0, 1)")
positive_float = converter(float, lambda v: math.isfinite(v) and v > 0,
                           "a positive finite number")
temperature = converter(float, lambda v: v >= 0.0 and math.isfinite(v),
                        "a temperature >= 0 (0: always the most likely symbol)")

SEED_MIN, SEED_MAX = -2**31, 2**32 - 1


def seed_value(s):
    """A seed for C's srand (32 bits): 0 ... 2^32-1, or a negative C int
    (-2^31 ... -1), which srand receives as 2^32 + value, as Darknet's atoi
    passes it."""
    try:
        v = int(s, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer seed, got {s!r}") from None
    if not SEED_MIN <= v <= SEED_MAX:
        raise argparse.ArgumentTypeError(
            f"seed {s} does not fit C's srand, which takes 32 bits: use "
            f"{SEED_MIN} ... {SEED_MAX}")
    return v & 0xFFFFFFFF


# --------------------------------------------------------------------------
# the parser

class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (UsageError) that say how options are
    spelled."""

    def error(self, message):
        if message.startswith("unrecognized arguments"):
            message += f" ({DARKNET_SPELLING}; see {self.prog} --help)"
        elif "the following arguments are required" in message:
            message += f" (see {self.prog} --help)"
        raise UsageError(f"{self.prog.split(' ', 1)[-1]}: {message}"
                         if " " in self.prog else message)


def value_options(parser):
    """Every option string of `parser` and its subcommands that takes a value."""
    out = set()
    stack = [parser]
    while stack:
        p = stack.pop()
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                stack.extend(action.choices.values())
            elif action.option_strings and action.nargs != 0:
                out.update(action.option_strings)
    return out


def training_options(t):
    """`train` options for training beyond Darknet's recipe (each off by default)."""
    g = t.add_argument_group("training beyond Darknet (off by default)")
    g.add_argument("--stateful", action="store_true",
                   help="truncated BPTT: every stream continues from the state it ended the "
                        "previous batch with (reset when the stream jumps to a new offset)")
    g.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd",
                   help="sgd: Darknet's SGD (default); adam: Adam with the cfg's B1, B2, eps "
                        "(Darknet's CPU ignores adam=1)")
    g.add_argument("--clip-norm", metavar="C", type=positive_float, default=None,
                   help="clip the global norm of each update's mean gradient to C; the "
                        "pre-clip norm goes to the loss log (grad_norm)")
    g.add_argument("--grad-stats", action="store_true",
                   help="log, per recurrent layer and time step, the norm of the gradient "
                        "reaching that step's state (columns state_grad_L<layer>_t<step>)")
