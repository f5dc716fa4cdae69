"""`darknet-rnn recipes`: what each training addition buys, measured.

Trains the same char-RNN cfg on the same text for the same number of
iterations with Darknet's recipe and with each addition - stateful
truncated BPTT, exact gradients, Adam, gradient clipping, and all of them
together - then prints validation bits per character on held-back text and
the wall time of each run, as a Markdown table.

Every run starts from the same seed (the same initial weights and stream
offsets); validation is the batched estimate (evaluate_bpc) over the whole
held-back part, from a zero state.
"""
import argparse
import sys
import time

from . import text as textlib
from .charrnn.loop import CharSource
from .errors import DivergenceError
from .network import load_network
from .training import train_loop

RECIPES = {
    "darknet": {},
    "stateful": {"stateful": True},
    "exact": {"exact": True},
    "adam": {"optimizer": "adam"},
    "clip": {"clip_norm": True},
    "combined": {"stateful": True, "exact": True, "optimizer": "adam", "clip_norm": True},
}


def run_recipe(name, cfg, train_text, valid_text, *, iterations, seed, adam_lr, clip_norm,
               threads=None):
    """Train one recipe; returns a dict with validation bpc, wall time and
    the last training loss."""
    kw = dict(RECIPES[name])
    if kw.get("clip_norm"):
        kw["clip_norm"] = clip_norm
    net = load_network(cfg, seed=seed, threads=threads, **kw)
    textlib.check_byte_network(net, cfg)
    if kw.get("optimizer") == "adam":
        net.options.learning_rate = adam_lr      # Adam's step is not divided by the batch
    batcher = textlib.CharBatcher(train_text, net.streams, net.time_steps, net.rng)
    source = CharSource(batcher, reset=net.reset_state if net.stateful else None)
    t0 = time.perf_counter()
    note, last = "", None
    try:
        last = train_loop(net, source, max_batches=net.current_batch() + iterations)
        seconds = time.perf_counter() - t0
        bpc = textlib.evaluate_bpc(net, valid_text).bpc
    except DivergenceError as e:           # the finite guard: this recipe, not the table
        seconds, bpc = time.perf_counter() - t0, float("nan")
        note = (f"diverged at iteration {e.iteration}" if e.iteration is not None else
                "validation diverged")
    return {"recipe": name, "valid_bpc": bpc, "seconds": seconds, "note": note,
            "train_loss": last.avg_loss if last else float("nan"),
            "rate": net.options.learning_rate, "clipped": getattr(net.clip, "clipped", 0)}


def table(rows, iterations, cfg):
    base = next((r for r in rows if r["recipe"] == "darknet"), None)
    out = [f"{iterations} iterations of `{cfg}`, validation on held-back text", "",
           "| recipe | validation bpc | vs darknet | wall time | updates clipped |",
           "|---|---|---|---|---|"]
    for r in rows:
        diff = "" if base is None else f"{r['valid_bpc'] - base['valid_bpc']:+.3f}"
        bpc = r.get("note") or f"{r['valid_bpc']:.3f}"
        out.append(f"| {r['recipe']} | {bpc} | {diff} | {r['seconds']:.1f} s "
                   f"| {r['clipped']} |")
    return "\n".join(out)


def main(argv=None):
    p = argparse.ArgumentParser(prog="darknet-rnn recipes", description=__doc__.split("\n\n")[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("cfg", nargs="?", default="cfg/char-small.train.cfg",
                   help="training cfg (default: %(default)s)")
    p.add_argument("--file", metavar="TEXT", default=None,
                   help="training text (default: the embedded corpus)")
    p.add_argument("--iterations", type=int, default=1500, help="per recipe (%(default)s)")
    p.add_argument("--srand", type=int, default=1, help="seed of every run (%(default)s)")
    p.add_argument("--adam-lr", type=float, default=0.002,
                   help="learning rate of the Adam recipes (%(default)s)")
    p.add_argument("--clip-norm", type=float, default=1.0,
                   help="clip value of the clipping recipes (%(default)s)")
    p.add_argument("--only", default=",".join(RECIPES),
                   help="comma-separated recipes (default: all)")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    names = [n for n in args.only.split(",") if n]
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        p.error(f"--only: unknown recipe {unknown[0]!r} (known: {', '.join(RECIPES)})")
    if args.iterations < 1:
        p.error("--iterations must be >= 1")
    corpus = textlib.default_corpus() if args.file is None else textlib.load_text(args.file)
    train_text, valid_text = textlib.split_text(corpus, 0.05)
    rows = []
    for name in names:
        r = run_recipe(name, args.cfg, train_text, valid_text, iterations=args.iterations,
                       seed=args.srand, adam_lr=args.adam_lr, clip_norm=args.clip_norm,
                       threads=args.threads)
        result = r["note"] or f"validation {r['valid_bpc']:.4f} bpc"
        print(f"{name}: {result}, {r['seconds']:.1f} s", file=sys.stderr, flush=True)
        rows.append(r)
    print(table(rows, args.iterations, args.cfg))
    return 0


if __name__ == "__main__":
    sys.exit(main())
