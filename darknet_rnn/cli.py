"""The `darknet-rnn` command line (also `python -m darknet_rnn`).

Subcommands, as Darknet's `darknet rnn train | generate | valid | vec`, with
seeds, an output directory, held-back validation, a loss log and clean
interrupts, plus `info` and `bench`:

    darknet-rnn train CFG [WEIGHTS] [--file TEXT] [--out DIR] [--srand S] ...
    darknet-rnn generate CFG WEIGHTS [--seed TEXT] [--len N] [--temp T] [--srand S]
    darknet-rnn valid CFG WEIGHTS [--file TEXT] [--seed TEXT] [--quiet]
    darknet-rnn vec CFG WEIGHTS [--file LINES] [--seed TEXT] [--reset]
    darknet-rnn info CFG [WEIGHTS]
    darknet-rnn bench ...            (darknet_rnn.bench, when installed)

Darknet's own spelling works too (`darknet-rnn generate CFG W -len 50 -seed
The -srand 2`, `darknet-rnn rnn train CFG -file t.txt`): see cliargs.
CFG may name a packaged cfg (`char-small`, `rnn.train`): see cfgfiles.

Everything a user can get wrong (missing file, bad cfg, weights of another
network, text too short, ...) ends with one line
`darknet-rnn: error: MESSAGE` on stderr and exit status 2; Ctrl-C during
training (even during an evaluation) saves a checkpoint and exits with 130.

The commands only parse arguments, build the pieces and print: the training
run (checkpoints, best weights, resume, --clear, loss log, signals) is
darknet_rnn.training.TrainingRun, the char-RNN parts are darknet_rnn.charrnn.
"""
import os
import sys
import warnings

from . import distributed
from . import text as textlib
from ._rand import clock_seed
from .charrnn.batches import batcher_for
from .charrnn.loop import LOG_COLUMNS, CharSource
from .climpi import agreed as _agreed, run_train, train_kwargs
from .clitext import check_length, symbols, training_text
from .checkpoint import CheckpointError, state_path
from .charrnn.monitor import Monitor, best_in_log
from .charrnn.progress import Progress
from .cliargs import (DARKNET_SPELLING, Parser, UsageError, one_line as _one_line, fraction, nonneg_int, positive_int, seed_value,
                      temperature, training_options, translate, value_options)
from .clinet import load_net, load_output
from .errors import DarknetError, DivergenceError, NativeError
from .training import (EXIT_INTERRUPT, INTERRUPT_NOTE, TrainingRun, darknet_paths,
                       gradient_columns)

PROG = "darknet-rnn"
EXIT_USAGE = 2
DEFAULT_VALID_BYTES = 8192
CSV_FIELDS = tuple(name for name, _ in LOG_COLUMNS)     # the loss log's header


def _say(*args):
    """A status message on stderr."""
    print(*args, file=sys.stderr, flush=True)


def _warning_line(message, category, filename, lineno, file=None, line=None):
    # Python's default warning format shows a source line of ours; users want
    # the message only.
    print(f"{PROG}: warning: {_one_line(str(message))}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# helpers

def cfg_base(cfg_path):
    """Darknet's basecfg: the file name up to its first '.'
    (cfg/rnn.train.cfg -> rnn)."""
    name = os.path.basename(os.fspath(cfg_path))
    return name.split(".", 1)[0] or name


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


def _load(args, weights, **kw):
    """The command's network."""
    merged = dict(_network_kwargs(args), **kw)      # the command's own choices win
    return load_net(args.cfg, weights, lenient=getattr(args, "lenient", False), **merged)


def _loaded(args, net, weights):
    """Darknet's load output (layer table, weights line) on stderr unless -q;
    called once the command's checks passed."""
    if not getattr(args, "quiet", False):
        for line in load_output(net, weights):
            _say(line)


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

def _check_plot(args):
    if args.plot:
        from .plot import MISSING, available
        if not available():
            raise UsageError(f"--plot: {MISSING}")


def cmd_train(args, comm=None):
    """darknet-rnn train; comm: the MPI communicator when mpiexec started it
    (every process runs this; rank 0 prints and writes)."""
    _check_plot(args)
    train_text, valid_text, name = _agreed(comm, training_text, args)
    distributed.check_same(comm, train_text, f"the training text ({name})")
    srand = distributed.common_seed(comm, args.srand)     # the clock's: rank 0's
    net = _load(args, args.weights, seed=srand, training=True,
                **train_kwargs(comm, getattr(args, "threads", None)))
    symbol, unit, vocab = _agreed(comm, symbols, net, args, train_text, valid_text)
    if args.max_batches is not None:
        net.max_batches = args.max_batches
    base = cfg_base(args.cfg)
    path_for = darknet_paths(args.out, base)
    csv_path, png_path = path_for(".loss.csv"), path_for(".loss.png")
    progress = Progress("none" if args.quiet else args.progress, symbol=symbol)
    progress.subdivisions = net.subdivisions
    note = progress.note

    def on_save(path, s, kind):
        if kind == "best":
            note(f"saved {path} (iteration {s.iteration}: the best validation so far, "
                 f"{s.evaluation.valid:.4f} {s.evaluation.unit.short})")
            return
        note(f"saved {path} (iteration {s.iteration})")
        if kind == "backup" and args.plot:
            from .plot import plot_loss_log
            plot_loss_log(csv_path, png_path, title=base)

    def on_signal(signum):
        _say(f"\n{PROG}: {INTERRUPT_NOTE}")

    _agreed(comm, net.check_trainable)   # e.g. batch norm over 1 stream: fail before starting
    _agreed(comm, check_length, net, args, train_text, valid_text, name, unit)
    _loaded(args, net, args.weights)
    rng = getattr(net, "rng", None) or textlib.new_rng(srand)[0]
    source = CharSource(batcher_for(net, train_text, rng, vocab=vocab),   # this rank's streams
                        reset=net.reset_state if net.stateful else None)
    run = None
    monitor = Monitor(net, train_text, valid_text, budget=args.valid_bytes,
                      every=args.valid_every, width=net.inputs, symbol=symbol,
                      should_stop=lambda: run is not None and run.stop_requested,
                      listener=progress)
    progress.monitor = monitor
    lead = net.rank == 0             # under MPI only rank 0 evaluates (its figures are logged)
    resumed = args.weights is not None
    best = (best_in_log(csv_path, monitor.unit.short)
            if resumed and not args.clear and os.path.exists(csv_path) else None)
    # The run decides what --clear means (seen = 0 now, a fresh loss log); the
    # weights are loaded as they are.
    run = TrainingRun(net, source, path_for=path_for, save_every=args.save_every,
                      keep_every=args.keep_every, make_step=source.make_step,
                      hooks=(progress.step, monitor) if lead else (progress.step,),
                      resumed=resumed, clear=args.clear,
                      log_path=csv_path, log_columns=LOG_COLUMNS + gradient_columns(
                          net, args.grad_stats), on_save=on_save,
                      on_signal=on_signal, best_so_far=best, save_state=True,
                      # a best checkpoint is a save every rank must make: single process only
                      best_of=(lambda s: s.evaluation.valid if s.evaluation else None)
                      if net.world_size == 1 else None)
    if resumed:
        try:
            if run.resume_state(args.weights):
                _say(f"continuing the saved trajectory ({state_path(args.weights)})")
        except CheckpointError as err:
            raise UsageError(f"{err}; delete that file to resume from the weights alone") \
                from None

    os.makedirs(args.out, exist_ok=True)
    if not args.quiet:
        o = net.options
        _say(f"Learning Rate: {o.learning_rate:g}, Momentum: {o.momentum:g}, Decay: "
             f"{o.decay:g}, Inputs: {net.inputs} {net.batch} {net.time_steps}")
        every = (f"every {args.valid_every} iterations and " if args.valid_every else "")
        held = (f" and {monitor.valid_sample.count} held back" if monitor.valid_sample else "")
        procs = f"{net.world_size} processes x " if net.world_size > 1 else ""
        _say(f"{base}: {procs}{net.streams} streams x {net.time_steps} steps; {name}: "
             f"{len(train_text)} training {unit}, {len(valid_text)} held back; evaluating "
             f"{every}at the end on {monitor.train_sample.count} training {symbol}s{held}; "
             f"batch {net.current_batch()} of {net.max_batches}; srand {srand}; writing to "
             f"{args.out}")
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
             + (f" --file {args.file}" if args.file is not None else "")
             + (" --tokenized" if args.tokenized else ""))
    elif not args.quiet:
        done = "" if s is not None else " (max_batches already reached; nothing trained)"
        _say(f"saved {result.saved}{done}")
    if s is not None and not args.quiet:
        ev = s.evaluation
        figures = ""
        if ev is not None:
            figures = f"; {ev.unit.name}: training text {ev.train:.4f}" + (
                f", validation {ev.valid:.4f}" if ev.valid is not None else "")
        if result.best_path:
            figures += f"; best validation {result.best:.4f}: {result.best_path}"
        _say(f"{base}: batch {s.batch_number}, Darknet's loss (moving average, training "
             f"mode) {s.avg_loss:.4f}{figures}")
    if args.plot and lead and (s is not None or os.path.exists(csv_path)):
        from .plot import plot_loss_log
        plot_loss_log(csv_path, png_path, title=base)
        if not args.quiet:
            _say(f"plot: {png_path}")
    return result.exit_status


# --------------------------------------------------------------------------
# generate / valid / vec / info

def _flush_every(out, interactive, k):
    if interactive or k % 64 == 0:
        out.flush()


def cmd_generate(args):
    seed_text = textlib.decode_escapes(args.seed)
    if not seed_text:
        raise UsageError("--seed must not be empty")
    temp = 0.0 if args.greedy else args.temp
    tokens = textlib.read_tokens(args.tokens) if args.tokens else None
    if tokens is not None and args.streams > 1:
        raise UsageError("--tokens generates one stream: leave out --streams")
    srand = args.srand if args.srand is not None else clock_seed()
    net = _load(args, args.weights, seed=srand, streams=args.streams)
    rng = sampling_rng(net, srand)
    out = sys.stdout.buffer
    interactive = sys.stdout.isatty()
    if tokens is not None:
        if len(tokens) < net.outputs:
            raise textlib.TextError(f"{args.tokens}: {len(tokens)} tokens, but the network "
                                    f"has {net.outputs} outputs (one token per line needed "
                                    "for each)")
        textlib.check_token_ids(list(seed_text), net.inputs, "--seed (its bytes are token ids)")
        _loaded(args, net, args.weights)
        for k, c in enumerate(textlib.generate_ids(net, seed_text, args.len, temp, rng)):
            out.write(tokens[c] + b" ")
            _flush_every(out, interactive, k)
    else:
        textlib.check_byte_network(net, args.cfg)
        _loaded(args, net, args.weights)
        if args.streams > 1:
            samples = textlib.generate_streams(net, seed_text, args.len, temp, rng)
            for k, sample in enumerate(samples):
                out.write(f"== stream {k} ==\n".encode())
                out.write(sample)
                out.write(b"\n")
            out.flush()
            return 0
        for k, b in enumerate(textlib.generate(net, seed_text, args.len, temp, rng)):
            out.write(b)
            _flush_every(out, interactive, k)
    out.write(b"\n")
    out.flush()
    return 0


def _read_input(args, what):
    if args.file in (None, "-"):
        if sys.stdin.isatty():
            _say(f"{PROG}: reading the {what} from stdin (end it with Ctrl-D)")
        return sys.stdin.buffer.read(), "stdin"
    with open(args.file, "rb") as f:
        return f.read(), args.file


def cmd_valid(args):
    seed_text = textlib.decode_escapes(args.seed)
    data, name = _read_input(args, "text to score")
    if len(data) < 2:
        raise textlib.TextError(f"{name}: validation text needs at least 2 bytes "
                                f"(has {len(data)})")
    net = _load(args, args.weights, seed=0, streams=1)
    textlib.check_byte_network(net, args.cfg)
    _loaded(args, net, args.weights)
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


def cmd_vec(args):
    from .charrnn.vectors import format_vector, line_vectors, split_lines
    seed_text = textlib.decode_escapes(args.seed)
    data, _ = _read_input(args, "lines to embed")
    net = _load(args, args.weights, seed=0, streams=1)
    textlib.check_byte_network(net, args.cfg)
    _loaded(args, net, args.weights)
    out = sys.stdout.buffer
    for line, vec in line_vectors(net, split_lines(data), seed_text, reset=args.reset):
        out.write(format_vector(line, vec))
    out.flush()
    return 0


def cmd_info(args):
    from .cfgfiles import resolve_cfg
    from .clinet import check_cfg_file, check_weights_file
    from .info import format_summary, network_summary
    cfg = resolve_cfg(args.cfg)
    check_cfg_file(cfg)
    if args.weights is not None:
        if not os.path.isfile(args.weights):
            raise FileNotFoundError(2, "weights file not found", args.weights)
        check_weights_file(args.weights)
    s = network_summary(cfg, args.weights, strict=not args.lenient)
    if cfg != args.cfg:
        s.cfg = f"{args.cfg} ({cfg})"
    print(format_summary(s))
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
    p = Parser(
        prog=PROG,
        description="Darknet's char-RNN (byte-level recurrent networks): train, generate "
                    "text, measure bits per character, embed lines, describe a network.",
        epilog="Darknet's spelling works as well: single-dash options (-file -seed -len "
               "-temp -srand -clear -tokenized -tokens) anywhere on the line, and "
               "`darknet-rnn rnn VERB ...` as `darknet rnn VERB ...`. CFG may be a path or "
               "the name of a cfg that comes with the package (char-small, rnn, tiny; "
               "`train` prefers NAME.train.cfg).")
    p.add_argument("--version", action="version", version=_version())
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def common_net(sp, quiet="don't print Darknet's layer table"):
        sp.add_argument("--threads", metavar="N", type=positive_int, default=None,
                        help="threads for the C kernels (default: all cores for train, else "
                             "OMP_NUM_THREADS or 1)")
        sp.add_argument("--lenient", action="store_true",
                        help="Darknet's lenient fallbacks instead of errors: unknown "
                             "activation/policy/cost names (relu, constant, sse), a weights "
                             "file of the wrong size (read as far as it goes), batch norm "
                             "over one stream (NaN)")
        sp.add_argument("-q", "--quiet", action="store_true", help=quiet)

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
                    "(iteration: loss, avg, rate, seconds, epochs; the loss is Darknet's, in "
                    "training mode: nats per character for a softmax head). Evaluations "
                    "measure a fixed sample of the training text and of the held-back text "
                    "the same way (inference mode; bits per character for a softmax head); "
                    "the best validation's weights go to DIR/BASE_best.weights.")
    t.add_argument("cfg", metavar="CFG", help="training cfg (e.g. cfg/rnn.train.cfg, char-small)")
    t.add_argument("weights", metavar="WEIGHTS", nargs="?", default=None,
                   help="resume from these weights (continues iterations and the lr schedule)")
    t.add_argument("--file", metavar="TEXT", default=None,
                   help="training text (default: Python's pydoc_data.topics, ~460 KB)")
    t.add_argument("--tokenized", action="store_true",
                   help="word level, as Darknet's -tokenized: --file holds token ids "
                        "(integers separated by white space) below the cfg's inputs")
    t.add_argument("--out", metavar="DIR", default="backup",
                   help="directory for checkpoints, loss log and plot (default: backup)")
    t.add_argument("--max-batches", metavar="N", type=positive_int, default=None,
                   help="train until batch N (overrides the cfg's max_batches)")
    t.add_argument("--srand", metavar="S", type=seed_value, default=None,
                   help="random seed (weights init, offsets, jumps, dropout); default: "
                        "the clock")
    t.add_argument("--clear", action="store_true",
                   help="reset the seen counter of the loaded weights to 0 (Darknet's -clear)")
    t.add_argument("--save-every", metavar="N", type=nonneg_int, default=100,
                   help="write DIR/BASE.backup every N iterations (default 100; 0: never)")
    t.add_argument("--keep-every", metavar="N", type=nonneg_int, default=10000,
                   help="write DIR/BASE_<iteration>.weights every N iterations "
                        "(default 10000; 0: never)")
    t.add_argument("--valid-fraction", metavar="F", type=fraction, default=0.05,
                   help="fraction of the text (its end) held back for validation "
                        "(default 0.05; 0: none)")
    t.add_argument("--valid-every", metavar="N", type=nonneg_int, default=100,
                   help="evaluate every N iterations and at the end (default 100; 0: only "
                        "at the end)")
    t.add_argument("--valid-bytes", "--valid-max-bytes", metavar="N", dest="valid_bytes",
                   type=nonneg_int, default=DEFAULT_VALID_BYTES,
                   help="symbols scored per evaluation of each text, in windows spread over "
                        f"it (default {DEFAULT_VALID_BYTES}; 0: the whole text)")
    t.add_argument("--plot", action="store_true",
                   help="also write DIR/BASE.loss.png (needs matplotlib: pip install "
                        "\"darknet_rnn[plot]\")")
    t.add_argument("--progress", choices=("auto", "bar", "lines", "none"), default="auto",
                   help="per-iteration display: Darknet's loss lines, a status bar, or nothing "
                        "(default auto: bar on a terminal, lines otherwise)")
    t.add_argument("--exact", action="store_true",
                   help="train with exact BPTT/batch-norm gradients instead of Darknet's "
                        "(README, Compatibility); the weights format is the same")
    training_options(t)
    t.add_argument("--mpi", choices=("auto", "on", "off"), default="auto",
                   help="data-parallel training over MPI (mpi4py): auto (default) when started "
                        "by mpiexec/mpirun/srun, on, or off; each process reads its own streams, "
                        "process 0 prints and writes the weights")
    common_net(t, "print nothing but errors, warnings and the interrupt note")
    t.set_defaults(func=lambda a: run_train(a, cmd_train, prog=PROG, usage_error=UsageError,
                                            exit_usage=EXIT_USAGE,
                                            exit_interrupt=EXIT_INTERRUPT))

    g = sub.add_parser(
        "generate", help="sample text from a trained network",
        description="Sample like `darknet rnn generate`: prime with the seed text, then draw "
                    "each byte from the softmax (temperature T, probabilities below 1e-4 "
                    "dropped) with glibc's rand(). The cfg's batch is replaced by --streams "
                    "(and time_steps by 1), so a training cfg works too.")
    g.add_argument("cfg", metavar="CFG")
    g.add_argument("weights", metavar="WEIGHTS")
    g.add_argument("--seed", metavar="TEXT", default="\n\n",
                   help="prime text; escapes \\n \\t \\\\ \\xHH understood (default: two "
                        "newlines). With --tokens its bytes are token ids, as in Darknet")
    g.add_argument("--len", metavar="N", type=nonneg_int, default=1000,
                   help="symbols to generate (default 1000)")
    g.add_argument("--temp", metavar="T", type=temperature, default=0.7,
                   help="softmax temperature (default 0.7); 0: always the most likely symbol")
    g.add_argument("--greedy", action="store_true",
                   help="always the most likely symbol (argmax; same as --temp 0)")
    g.add_argument("--srand", metavar="S", type=seed_value, default=None,
                   help="random seed; the same seed gives Darknet's draws (default: the clock)")
    g.add_argument("--streams", metavar="N", type=positive_int, default=1,
                   help="generate N independent samples in one batch (default 1)")
    g.add_argument("--tokens", metavar="FILE", default=None,
                   help="word level, as Darknet's -tokens: FILE lists the vocabulary, one token "
                        "per line (<NEWLINE> for a newline); each symbol prints as its token "
                        "and a space")
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
    common_net(v, "print only the summary line (no per-byte lines, no layer table)")
    precision_opt(v)
    v.set_defaults(func=cmd_valid)

    e = sub.add_parser(
        "vec", help="one vector per line of text (the first layer's output)",
        description="Like `darknet rnn vec`: for each line, prime with the seed, feed the "
                    "line without its spaces and tabs, then a space; print the stripped line "
                    "and the first layer's output as ,%%g values. As Darknet on the CPU, the "
                    "recurrent state runs on from line to line unless --reset.")
    e.add_argument("cfg", metavar="CFG")
    e.add_argument("weights", metavar="WEIGHTS")
    e.add_argument("--file", metavar="LINES", default=None, help="lines to embed (default: stdin)")
    e.add_argument("--seed", metavar="TEXT", default="\n\n",
                   help="prime text before each line (default: two newlines)")
    e.add_argument("--reset", action="store_true",
                   help="zero the recurrent state before each line (Darknet's CPU build "
                        "does not: its reset only clears GPU buffers)")
    common_net(e)
    e.set_defaults(func=cmd_vec)

    i = sub.add_parser(
        "info", help="layers, parameters, FLOPs, memory; a weights file's header",
        description="Describe a network: per layer inputs, outputs, options, parameters and "
                    "forward FLOPs; totals, .weights size, FLOPs per symbol and per batch, "
                    "memory; with WEIGHTS its header (version, seen) and whether its size "
                    "fits the cfg.")
    i.add_argument("cfg", metavar="CFG")
    i.add_argument("weights", metavar="WEIGHTS", nargs="?", default=None)
    i.add_argument("--lenient", action="store_true",
                   help="Darknet's fallbacks for unknown names in the cfg")
    i.set_defaults(func=cmd_info)

    sub.add_parser("bench", help="benchmarks (darknet_rnn.bench)", add_help=False)
    sub.add_parser("recipes", help="Darknet's training recipe against each addition "
                   "(validation bpc, wall time)", add_help=False)
    sub.add_parser("demo", help="sequence tasks: the adding problem, restoring spaces "
                   "(darknet_rnn.demos)", add_help=False)
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
        if argv[:1] == ["rnn"]:
            argv = argv[1:]
        if argv[:1] == ["bench"]:
            return cmd_bench(argv[1:])
        if argv and argv[0] == "recipes":
            from .recipes import main as recipes_main
            return recipes_main(argv[1:])
        if argv and argv[0] == "demo":
            from .demos import main as demo_main
            return demo_main(argv[1:])
        parser = build_parser()
        ignored = []
        args, extra = parser.parse_known_args(translate(argv, value_options(parser), ignored))
        if extra:
            cmd = f" {args.command}" if getattr(args, "command", None) else ""
            raise UsageError(f"{args.command}: unrecognized arguments: {' '.join(extra)} "
                             f"({DARKNET_SPELLING}; see {PROG}{cmd} --help)")
        for opt in ignored:
            warnings.warn(f"{opt} is not used by {args.command} (Darknet ignores it too)")
        return args.func(args)
    except UsageError as e:
        _say(f"{PROG}: error: {_one_line(e)}")
        return EXIT_USAGE
    except (NativeError, DivergenceError) as e:      # failures of the run itself
        _say(f"{PROG}: error: {_one_line(e)}")
        return 1
    except DarknetError as e:
        _say(f"{PROG}: error: {_one_line(e)}")
        return EXIT_USAGE
    except OSError as e:
        if isinstance(e, BrokenPipeError):
            _quiet_stdout()
            return 0
        msg = e.strerror or str(e) or type(e).__name__
        where = f"{e.filename}: " if e.filename and str(e.filename) not in msg else ""
        _say(f"{PROG}: error: {_one_line(where + msg)}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        _say("")
        return EXIT_INTERRUPT
    except MemoryError as e:
        _say(f"{PROG}: error: out of memory{': ' + str(e) if str(e) else ''} (a smaller "
             "cfg, fewer streams or time steps need less)")
        return 1
    except (ValueError, TypeError, RuntimeError, ArithmeticError) as e:
        if os.environ.get("DARKNET_RNN_TRACEBACK"):
            raise
        _say(f"{PROG}: error: {type(e).__name__}: {e} (DARKNET_RNN_TRACEBACK=1 shows where)")
        return 1


def _quiet_stdout():
    # After a broken pipe, stop Python from complaining when it flushes stdout at exit.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
