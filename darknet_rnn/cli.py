"""The `darknet-rnn` command line (also `python -m darknet_rnn`).

Subcommands, as Darknet's `darknet rnn train | generate | valid` (SPEC
section 17) with seeds, an output directory, a validation split, a loss log
and clean interrupts:

    darknet-rnn train CFG [WEIGHTS] [--file TEXT] [--out DIR] [--srand S] ...
    darknet-rnn generate CFG WEIGHTS [--seed TEXT] [--len N] [--temp T] [--srand S]
    darknet-rnn valid CFG WEIGHTS [--file TEXT] [--seed TEXT] [--quiet]
    darknet-rnn bench ...            (darknet_rnn.bench, when installed)

Everything a user can get wrong (missing file, bad cfg, weights of another
network, text too short, ...) ends with one line
`darknet-rnn: error: MESSAGE` on stderr and exit status 2; Ctrl-C during
training saves a checkpoint and exits with 130.

The commands only parse arguments, build the pieces and print: the training
run (checkpoints, resume, --clear, loss log, signals) is
darknet_rnn.training.TrainingRun, the char-RNN parts are darknet_rnn.charrnn
(through darknet_rnn.text).
"""
import argparse
import csv
import math
import os
import shutil
import sys
import time
import warnings

from . import text as textlib
from ._rand import clock_seed
from .charrnn.loop import LOG_COLUMNS, CharSource, validation_hook
from .checkpoint import CheckpointError, state_path
from .errors import DarknetError, NativeError
from .training import EXIT_INTERRUPT, INTERRUPT_NOTE, TrainingRun, darknet_paths

PROG = "darknet-rnn"
EXIT_USAGE = 2

CSV_FIELDS = tuple(name for name, _ in LOG_COLUMNS)     # the loss log's header


class UsageError(Exception):
    """A problem with the command line itself (exit status 2)."""


def _say(*args):
    """A status message on stderr."""
    print(*args, file=sys.stderr, flush=True)


def _warning_line(message, category, filename, lineno, file=None, line=None):
    # Python's default warning format shows a source line of ours; users want
    # the message only.
    print(f"{PROG}: warning: {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# helpers

def cfg_base(cfg_path):
    """Darknet's basecfg: the file name up to its first '.'
    (cfg/rnn.train.cfg -> rnn)."""
    name = os.path.basename(os.fspath(cfg_path))
    return name.split(".", 1)[0] or name


def _converter(cast, ok, what):
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


_positive_int = _converter(int, lambda v: v > 0, "a positive integer")
_nonneg_int = _converter(int, lambda v: v >= 0, "an integer >= 0")
_positive_float = _converter(float, lambda v: math.isfinite(v) and v > 0,
                             "a positive finite number")
_fraction = _converter(float, lambda v: 0.0 <= v < 1.0, "a number in [0, 1)")
_temperature = _converter(float, lambda v: v > 0.0 and math.isfinite(v), "a positive number")


def _seed_value(s):
    try:
        v = int(s, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer seed, got {s!r}") from None
    return v & 0xFFFFFFFF


def _network_kwargs(args):
    kw = {}
    if getattr(args, "threads", None) is not None:
        kw["threads"] = args.threads
    elif getattr(args, "command", None) == "train" and not os.environ.get("OMP_NUM_THREADS"):
        # training defaults to every core (GEMM results do not depend on the
        # thread count, so --srand runs stay reproducible)
        kw["threads"] = os.cpu_count() or 1
    if getattr(args, "exact", False):
        kw["exact"] = True
    if getattr(args, "precision", None):
        kw["precision"] = args.precision
    if getattr(args, "command", None) == "train":
        kw.update(stateful=args.stateful, optimizer=args.optimizer, clip_norm=args.clip_norm)
    return kw


def _training_options(t):
    """Training beyond Darknet's recipe (each off by default)."""
    g = t.add_argument_group("training beyond Darknet (off by default)")
    g.add_argument("--stateful", action="store_true",
                   help="truncated BPTT: every stream continues from the state it ended the "
                        "previous batch with (reset when the stream jumps to a new offset)")
    g.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd",
                   help="sgd: Darknet's SGD (default); adam: Adam with the cfg's B1, B2, eps "
                        "(Darknet's CPU ignores adam=1)")
    g.add_argument("--clip-norm", metavar="C", type=_positive_float, default=None,
                   help="clip the global norm of each update's mean gradient to C; the "
                        "pre-clip norm goes to the loss log (grad_norm)")
    g.add_argument("--grad-stats", action="store_true",
                   help="log, per [rnn] layer and time step, the norm of the gradient reaching "
                        "that step's state (columns state_grad_L<layer>_t<step>)")


def _gradient_columns(net, args):
    """Loss-log columns for --clip-norm and --grad-stats (read after each step)."""
    cols = []
    if net.clip is not None:
        cols.append(("grad_norm", lambda s: f"{net.clip.last_norm:.6g}"))
    if args.grad_stats:
        net.record_grad_norms()
        for i, norms in net.grad_norms().items():
            for t in range(norms.shape[0]):
                cols.append((f"state_grad_L{i}_t{t}",
                             lambda s, i=i, t=t: f"{net.layers[i].grad_norms[t]:.6g}"))
    return tuple(cols)


def load_net(cfg, weights=None, *, seed=None, clear=False, streams=None, **kw):
    """darknet_rnn.load_network, optionally with [net] batch=streams,
    subdivisions=1, time_steps=1 (inference shape) in place of the cfg's,
    so a training cfg can be used to generate or validate."""
    import darknet_rnn
    return darknet_rnn.load_network(cfg, weights, seed=seed, clear=clear, streams=streams, **kw)


def sampling_rng(net, seed):
    """The rand() stream Darknet samples from after srand(seed) and
    load_network: the network's own generator after weight initialisation
    (one draw per connected weight, drawn even when weights are loaded)."""
    rng = getattr(net, "rng", None)
    if rng is not None and hasattr(rng, "rand"):
        return rng
    rng, _ = textlib.new_rng(seed)
    return textlib.skip_draws(rng, textlib.init_draws(net))


# --------------------------------------------------------------------------
# train

class Progress:
    """Per-iteration display: Darknet's loss line per iteration ("lines"), a
    single self-updating status line for terminals ("bar"), or nothing
    ("none"). Notes (validation, checkpoints) are always printed as lines."""

    def __init__(self, mode, stream=None):
        self.stream = stream or sys.stdout
        if mode == "auto":
            mode = "bar" if self.stream.isatty() else "lines"
        self.mode = mode
        self._shown = False
        self._last_draw = 0.0
        self._t0 = time.perf_counter()
        self._first_batch = None

    def step(self, s: textlib.TrainStep):
        if self.mode == "lines":
            print(s.darknet_line(), file=self.stream, flush=True)
        elif self.mode == "bar":
            now = time.perf_counter()
            if self._first_batch is None:
                self._first_batch = s.batch_number - 1
                self._t0 = now - s.seconds
            if now - self._last_draw >= 0.1 or s.batch_number >= s.max_batches:
                self._last_draw = now
                self._draw(s, now)

    def _draw(self, s, now):
        width = shutil.get_terminal_size((100, 20)).columns
        done = s.batch_number - self._first_batch
        left = max(0, s.max_batches - s.batch_number)
        elapsed = now - self._t0
        per = elapsed / done if done > 0 else 0.0
        frac = min(1.0, s.batch_number / s.max_batches) if s.max_batches else 1.0
        bar_w = 12
        filled = int(round(frac * bar_w))
        bar = "#" * filled + "." * (bar_w - filled)
        rate = f"{1.0 / per:.1f} it/s" if per > 0 else "- it/s"
        text = (f"[{bar}] {s.batch_number}/{s.max_batches} avg {s.avg_loss:.3f} "
                f"({s.avg_loss / math.log(2):.2f} bpc) lr {s.rate:g} {rate} "
                f"ep {s.epochs:.2f} eta {_clock(left * per)}")
        self.stream.write("\r" + text[:max(10, width - 1)] + "\x1b[K")
        self.stream.flush()
        self._shown = True

    def note(self, msg):
        if self.mode == "bar" and self._shown:
            self.stream.write("\r\x1b[K")
            self._shown = False
            self._last_draw = 0.0
        print(msg, file=self.stream, flush=True)

    def close(self):
        if self.mode == "bar" and self._shown:
            self.stream.write("\n")
            self.stream.flush()
            self._shown = False


def _clock(seconds):
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def plot_loss_log(csv_path, png_path, title=""):
    """Training (moving average) and validation bits per character against
    the iteration number, from a loss log."""
    from .plot import line_plot
    it, avg, vit, vbpc = [], [], [], []
    with open(csv_path, newline="") as f:
        for row in csv.DictReader(f):
            try:
                i = int(row["iteration"])
                it.append(i)
                avg.append(float(row["avg_loss"]) / math.log(2))
                if row.get("valid_bpc"):
                    vit.append(i)
                    vbpc.append(float(row["valid_bpc"]))
            except (KeyError, ValueError):
                continue
    series = [("train bpc (avg)", it, avg)]
    if vit:
        series.append(("valid bpc", vit, vbpc))
    return line_plot(png_path, series, title=title, xlabel="iteration",
                     ylabel="bits per character")


def _training_text(args):
    """(train_text, valid_text, name) from --file and --valid-fraction."""
    if args.file is None:
        corpus, name = textlib.default_corpus(), "the embedded corpus (pydoc_data.topics)"
    else:
        corpus, name = textlib.load_text(args.file), args.file
    train_text, valid_text = textlib.split_text(corpus, args.valid_fraction)
    return train_text, valid_text, name


def _check_length(net, args, train_text, valid_text, name):
    need = net.streams * net.time_steps + 1
    if len(train_text) < need:
        held = (f", after holding back {args.valid_fraction:g} for validation"
                if valid_text else "")
        raise textlib.TextError(
            f"the training text ({len(train_text)} bytes of {name}{held}) is shorter than one "
            f"batch: {net.streams} streams x {net.time_steps} steps + 1 = {need} bytes")


def cmd_train(args):
    train_text, valid_text, name = _training_text(args)
    srand = args.srand if args.srand is not None else clock_seed()
    net = load_net(args.cfg, args.weights, seed=srand, **_network_kwargs(args))
    textlib.check_byte_network(net, args.cfg)
    if args.max_batches is not None:
        net.max_batches = args.max_batches
    base = cfg_base(args.cfg)
    path_for = darknet_paths(args.out, base)
    csv_path, png_path = path_for(".loss.csv"), path_for(".loss.png")
    progress = Progress("none" if args.quiet else args.progress)

    def show(s):
        progress.step(s)
        if s.valid is not None:
            progress.note(f"{s.iteration}: validation {s.valid.bpc:.4f} bpc "
                          f"(perplexity {s.valid.perplexity:.4f}) over {s.valid.count} bytes; "
                          f"training avg {s.avg_loss / math.log(2):.4f} bpc")

    def on_save(path, s, kind):
        progress.note(f"saved {path} (iteration {s.iteration})")
        if kind == "backup" and args.plot:
            plot_loss_log(csv_path, png_path, title=base)

    def on_signal(signum):
        _say(f"\n{PROG}: {INTERRUPT_NOTE}")

    net.check_trainable()           # e.g. batch norm over 1 stream: fail before starting
    _check_length(net, args, train_text, valid_text, name)
    rng = getattr(net, "rng", None) or textlib.new_rng(srand)[0]
    source = CharSource(textlib.CharBatcher(train_text, net.streams, net.time_steps, rng),
                        reset=net.reset_state if net.stateful else None)
    hooks = (validation_hook(net, valid_text, args.valid_every, args.valid_max_bytes), show)
    # The run decides what --clear means (seen = 0 now, a fresh loss log); the
    # weights are loaded as they are.
    run = TrainingRun(net, source, path_for=path_for, save_every=args.save_every,
                      keep_every=args.keep_every, make_step=source.make_step, hooks=hooks,
                      resumed=args.weights is not None, clear=args.clear, log_path=csv_path,
                      log_columns=LOG_COLUMNS + _gradient_columns(net, args), on_save=on_save,
                      on_signal=on_signal, save_state=True)
    if args.weights is not None:
        try:
            if run.resume_state(args.weights):
                _say(f"continuing the saved trajectory ({state_path(args.weights)})")
        except CheckpointError as err:
            raise UsageError(f"{err}; delete that file to resume from the weights alone") \
                from None

    os.makedirs(args.out, exist_ok=True)
    _say(f"{base}: {net.streams} streams x {net.time_steps} steps; {name}: "
         f"{len(train_text)} training bytes, {len(valid_text)} validation bytes; "
         f"batch {net.current_batch()} of {net.max_batches}; srand {srand}; writing to {args.out}")
    try:
        result = run.run()
    finally:
        progress.close()
    s = result.last
    if result.aborted:
        _say(f"{PROG}: aborted without saving")
        return result.exit_status
    if result.signum is not None:
        _say(f"{PROG}: stopped at iteration {s.iteration if s else '-'} "
             f"(batch {net.current_batch()} of {net.max_batches}); saved {result.saved}; "
             f"resume with: {PROG} train {args.cfg} {result.saved} --out {args.out}"
             + (f" --file {args.file}" if args.file is not None else ""))
    else:
        done = "" if s is not None else " (max_batches already reached; nothing trained)"
        _say(f"saved {result.saved}{done}")
    if s is not None:
        v = f", validation {s.valid.bpc:.4f} bpc" if s.valid is not None else ""
        _say(f"{base}: batch {s.batch_number}, avg loss {s.avg_loss:.4f} "
             f"({s.avg_loss / math.log(2):.4f} bpc){v}")
    if args.plot:
        plot_loss_log(csv_path, png_path, title=base)
        _say(f"plot: {png_path}")
    return result.exit_status


# --------------------------------------------------------------------------
# generate / valid

def cmd_generate(args):
    seed_text = textlib.decode_escapes(args.seed)
    if not seed_text:
        raise UsageError("--seed must not be empty")
    srand = args.srand if args.srand is not None else clock_seed()
    net = load_net(args.cfg, args.weights, seed=srand, streams=args.streams,
                   **_network_kwargs(args))
    textlib.check_byte_network(net, args.cfg)
    rng = sampling_rng(net, srand)
    out = sys.stdout.buffer
    interactive = sys.stdout.isatty()
    if args.streams > 1:
        samples = textlib.generate_streams(net, seed_text, args.len, args.temp, rng)
        for k, sample in enumerate(samples):
            out.write(f"== stream {k} ==\n".encode())
            out.write(sample)
            out.write(b"\n")
        out.flush()
        return 0
    for k, b in enumerate(textlib.generate(net, seed_text, args.len, args.temp, rng)):
        out.write(b)
        if interactive or k % 64 == 0:
            out.flush()
    out.write(b"\n")
    out.flush()
    return 0


def cmd_valid(args):
    seed_text = textlib.decode_escapes(args.seed)
    if args.file in (None, "-"):
        if sys.stdin.isatty():
            _say(f"{PROG}: reading the text to score from stdin (end it with Ctrl-D)")
        data, name = sys.stdin.buffer.read(), "stdin"
    else:
        with open(args.file, "rb") as f:
            data = f.read()
        name = args.file
    if len(data) < 2:
        raise textlib.TextError(f"{name}: validation text needs at least 2 bytes "
                                f"(has {len(data)})")
    net = load_net(args.cfg, args.weights, seed=0, streams=1, **_network_kwargs(args))
    textlib.check_byte_network(net, args.cfg)
    out = sys.stdout
    r = None
    for r in textlib.iter_validate(net, data, seed_text):
        if not args.quiet:
            out.write(textlib.format_valid_line(r) + "\n")
    out.write(f"{name}: {r.count} characters, {r.bpc:.4f} bits per character, "
              f"perplexity {r.perplexity:.4f}, word perplexity {r.word_perplexity:.4f} "
              f"({r.words} words)\n")
    out.flush()
    return 0


def cmd_bench(argv):
    import importlib
    try:
        bench = importlib.import_module("darknet_rnn.bench")
    except ModuleNotFoundError as e:
        if e.name != "darknet_rnn.bench":
            raise
        raise UsageError("the bench subcommand is not available in this installation "
                         "(darknet_rnn.bench is missing)") from None
    return bench.main(argv)


# --------------------------------------------------------------------------
# argument parsing

def build_parser():
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Darknet's char-RNN (byte-level recurrent networks): train, generate "
                    "text, measure bits per character.")
    p.add_argument("--version", action="version", version=_version())
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def common_net(sp):
        sp.add_argument("--threads", metavar="N", type=_positive_int, default=None,
                        help="threads for the C kernels (default: all cores for train, else "
                             "OMP_NUM_THREADS or 1)")

    def precision_opt(sp):
        sp.add_argument("--precision", choices=("fp32", "fp32-packed", "bf16"), default=None,
                        help="inference weights: fp32 (default), fp32-packed (copies in the "
                             "GEMM's layout) or bf16 (rounded copies, half the memory "
                             "traffic; AVX512_BF16 where the CPU has it)")

    t = sub.add_parser(
        "train", help="train on a text file (default: the embedded Python help texts)",
        description="Train a byte-level RNN like `darknet rnn train`. Streams read the text "
                    "from random offsets, one byte per step, each jumping to a new offset "
                    "with probability 1/64 after every iteration. Prints Darknet's loss line "
                    "(iteration: loss, avg, rate, seconds, epochs; loss in nats per char).")
    t.add_argument("cfg", metavar="CFG", help="training cfg (e.g. cfg/rnn.train.cfg)")
    t.add_argument("weights", metavar="WEIGHTS", nargs="?", default=None,
                   help="resume from these weights (continues iterations and the lr schedule)")
    t.add_argument("--file", metavar="TEXT", default=None,
                   help="training text (default: Python's pydoc_data.topics, ~460 KB)")
    t.add_argument("--out", metavar="DIR", default="backup",
                   help="directory for checkpoints, loss log and plot (default: backup)")
    t.add_argument("--max-batches", metavar="N", type=_positive_int, default=None,
                   help="train until batch N (overrides the cfg's max_batches)")
    t.add_argument("--srand", metavar="S", type=_seed_value, default=None,
                   help="random seed (weights init, offsets, jumps); default: the clock")
    t.add_argument("--clear", action="store_true",
                   help="reset the seen counter of the loaded weights to 0 (Darknet's -clear)")
    t.add_argument("--save-every", metavar="N", type=_nonneg_int, default=100,
                   help="write DIR/BASE.backup every N iterations (default 100; 0: never)")
    t.add_argument("--keep-every", metavar="N", type=_nonneg_int, default=10000,
                   help="write DIR/BASE_<iteration>.weights every N iterations "
                        "(default 10000; 0: never)")
    t.add_argument("--valid-fraction", metavar="F", type=_fraction, default=0.05,
                   help="fraction of the text (its end) held back for validation "
                        "(default 0.05; 0: none)")
    t.add_argument("--valid-every", metavar="N", type=_nonneg_int, default=100,
                   help="report validation bits per char every N iterations and at the end "
                        "(default 100; 0: only at the end)")
    t.add_argument("--valid-max-bytes", metavar="N", type=_positive_int, default=None,
                   help="use at most the first N bytes of the validation text")
    t.add_argument("--plot", action="store_true",
                   help="also write DIR/BASE.loss.png (training and validation loss)")
    t.add_argument("--progress", choices=("auto", "bar", "lines", "none"), default="auto",
                   help="per-iteration display: Darknet's loss lines, a status bar, or nothing "
                        "(default auto: bar on a terminal, lines otherwise)")
    t.add_argument("-q", "--quiet", action="store_true", help="same as --progress none")
    t.add_argument("--exact", action="store_true",
                   help="train with exact BPTT/batch-norm gradients instead of Darknet's "
                        "(README, Compatibility); the weights format is the same")
    _training_options(t)
    common_net(t)
    t.set_defaults(func=cmd_train)

    g = sub.add_parser(
        "generate", help="sample text from a trained network",
        description="Sample like `darknet rnn generate`: prime with the seed text, then draw "
                    "each byte from the softmax (temperature T, probabilities below 1e-4 "
                    "dropped) with glibc's rand(). The cfg's batch is replaced by --streams "
                    "(and time_steps by 1), so a training cfg works too.")
    g.add_argument("cfg", metavar="CFG")
    g.add_argument("weights", metavar="WEIGHTS")
    g.add_argument("--seed", metavar="TEXT", default="\n\n",
                   help="prime text; escapes \\n \\t \\\\ \\xHH understood (default: two newlines)")
    g.add_argument("--len", metavar="N", type=_nonneg_int, default=1000,
                   help="bytes to generate (default 1000)")
    g.add_argument("--temp", metavar="T", type=_temperature, default=0.7,
                   help="softmax temperature (default 0.7)")
    g.add_argument("--srand", metavar="S", type=_seed_value, default=None,
                   help="random seed; the same seed gives Darknet's draws (default: the clock)")
    g.add_argument("--streams", metavar="N", type=_positive_int, default=1,
                   help="generate N independent samples in one batch (default 1)")
    common_net(g)
    precision_opt(g)
    g.set_defaults(func=cmd_generate)

    v = sub.add_parser(
        "valid", help="bits per character and perplexity of a text",
        description="Like `darknet rnn valid`: prime with the seed text, then predict each "
                    "byte of the text from the previous ones; prints count, BPC, perplexity "
                    "and word perplexity per byte and a summary line.")
    v.add_argument("cfg", metavar="CFG")
    v.add_argument("weights", metavar="WEIGHTS")
    v.add_argument("--file", metavar="TEXT", default=None, help="text to score (default: stdin)")
    v.add_argument("--seed", metavar="TEXT", default="\n\n",
                   help="prime text (default: two newlines, as Darknet)")
    v.add_argument("-q", "--quiet", action="store_true", help="print only the summary line")
    common_net(v)
    precision_opt(v)
    v.set_defaults(func=cmd_valid)

    sub.add_parser("bench", help="benchmarks (darknet_rnn.bench)", add_help=False)
    sub.add_parser("recipes", help="Darknet's training recipe against each addition "
                   "(validation bpc, wall time)", add_help=False)
    return p


def _version():
    try:
        from . import __version__
    except ImportError:
        __version__ = "?"
    return f"{PROG} {__version__}"


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    warnings.showwarning = _warning_line
    try:
        if argv and argv[0] == "bench":
            return cmd_bench(argv[1:])
        if argv and argv[0] == "recipes":
            from .recipes import main as recipes_main
            return recipes_main(argv[1:])
        args = build_parser().parse_args(argv)
        return args.func(args)
    except UsageError as e:
        _say(f"{PROG}: error: {e}")
        return EXIT_USAGE
    except NativeError as e:
        _say(f"{PROG}: error: {e}")
        return 1
    except DarknetError as e:
        _say(f"{PROG}: error: {e}")
        return EXIT_USAGE
    except OSError as e:
        if isinstance(e, BrokenPipeError):
            _quiet_stdout()
            return 0
        where = f"{e.filename}: " if e.filename else ""
        _say(f"{PROG}: error: {where}{e.strerror or e}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        _say("")
        return EXIT_INTERRUPT


def _quiet_stdout():
    # After a broken pipe, stop Python from complaining when it flushes stdout at exit.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
