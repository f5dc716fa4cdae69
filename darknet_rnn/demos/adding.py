"""The adding problem (Hochreiter & Schmidhuber, 1997): each time step
carries a pair (value, marker); values are uniform in [0, 1), exactly two
markers are 1 - one in the first half of the sequence, one in the second -
and the target, given after the last step, is the sum of the two marked
values. It is many-to-one regression: net.train(x, y) with y of shape
(streams, 1) puts the loss on the last step only, and the gradient that
teaches the network to remember the first marked value has to travel back
through up to T steps of the recurrence.

Network: [rnn] (tanh) + [connected] 1 linear + [cost] sse. Predicting the
mean scores the variance of a sum of two uniforms, 2/12 = 0.167; a network
that solves the task scores near 0. For each sequence length the demo
trains the same initial weights on the same batches with three recipes -
Darknet's backward, exact BPTT gradients, exact gradients with global-norm
clipping - and reports the test MSE, then the norm of the gradient reaching
the state at a few time steps (net.grad_norms()), relative to the last
step: the vanishing gradient made visible.
"""
import argparse
import time

import numpy as np

from ._common import build, int_list, positive, progress, table

RECIPES = {"darknet": {}, "exact": {"exact": True}, "exact+clip": {"exact": True, "clip": True}}


def make_batch(rng, steps, n):
    """x (steps, n, 2) float32 (value, marker), y (n, 1) float32: the sum of
    the values at the two marked steps, one in each half."""
    x = np.zeros((steps, n, 2), np.float32)
    x[:, :, 0] = rng.random((steps, n), dtype=np.float32)
    half = max(1, steps // 2)
    first = rng.integers(0, half, n)
    second = rng.integers(half, steps, n) if steps > 1 else first
    cols = np.arange(n)
    x[first, cols, 1] = 1
    x[second, cols, 1] = 1
    y = (x[first, cols, 0] + np.where(second != first, x[second, cols, 0], 0))[:, None]
    return x, y.astype(np.float32)


def cfg_text(steps, streams, hidden, learning_rate):
    return (f"[net]\nbatch={streams}\nsubdivisions=1\ntime_steps={steps}\ninputs=2\n"
            f"learning_rate={learning_rate}\nmomentum=0.9\ndecay=0\nmax_batches=1000000\n"
            f"B1=0.9\nB2=0.999\neps=0.00000001\n\n"
            f"[rnn]\noutput={hidden}\nactivation=tanh\n\n"
            "[connected]\noutput=1\nactivation=linear\n\n[cost]\ntype=sse\n")


def test_set(seed, steps, streams, count):
    """`count` test sequences (rounded up to whole batches of `streams`),
    from their own generator: the same for every recipe."""
    rng = np.random.default_rng([seed, steps, 1])
    return [make_batch(rng, steps, streams) for _ in range(-(-count // streams))]


def test_mse(net, batches):
    err = [((net.infer(x, last=True) - y).astype(np.float64) ** 2).ravel() for x, y in batches]
    return float(np.mean(np.concatenate(err)))


def state_grad_norms(net, x, y):
    """Norm of the gradient reaching the [rnn] state at each step for one
    batch (layer 0), without changing the net's training state."""
    saved = [p.grad.copy() for p in net.params()]
    net.record_grad_norms()
    net.forward_backward(x, y)
    norms = net.grad_norms()[0].astype(np.float64)
    net.record_grad_norms(False)
    for p, g in zip(net.params(), saved):
        p.grad[...] = g
    net.seen -= net.batch
    return norms


def network(args, steps, recipe, learning_rate):
    kw = dict(RECIPES[recipe])
    clip = kw.pop("clip", False)
    opt = None if args.optimizer == "sgd" else args.optimizer
    return build(cfg_text(steps, args.streams, args.hidden, learning_rate), f"adding-{steps}",
                 args.out, seed=args.seed, optimizer=opt,
                 clip_norm=args.clip_norm if clip else None, threads=args.threads, **kw)


def run_length(args, steps):
    """Train every recipe at one sequence length; returns result dicts."""
    # SGD's update divides by every row of the batch, the loss sits on one
    # row in `steps`: scale its rate so each length takes comparable steps.
    lr = args.learning_rate * (steps if args.optimizer == "sgd" else 1)
    tests = test_set(args.seed, steps, args.streams, args.test)
    probe = tests[0]
    results = []
    initial = network(args, steps, "exact", lr)
    results.append({"steps": steps, "recipe": "initial weights",
                    "norms": state_grad_norms(initial, *probe)})
    for recipe in args.recipes:
        net = network(args, steps, recipe, lr)
        rng = np.random.default_rng([args.seed, steps, 0])     # same batches for every recipe
        t0 = time.perf_counter()
        losses = []
        for _ in range(args.iterations):
            x, y = make_batch(rng, steps, args.streams)
            losses.append(net.train(x, y))
        seconds = time.perf_counter() - t0
        mse = test_mse(net, tests)
        clipped = net.clip.clipped if net.clip is not None else None
        progress(f"steps {steps}, {recipe}: test MSE {mse:.4f} ({seconds:.1f} s)")
        results.append({"steps": steps, "recipe": recipe, "mse": mse, "seconds": seconds,
                        "clipped": clipped, "train_mse": float(np.mean(losses[-50:])) / args.streams,
                        "norms": state_grad_norms(net, *probe)})
        if args.out is not None:
            net.save_weights(f"{args.out}/adding-{steps}-{recipe}.weights")
    return results


def constant_mse(args, steps):
    """Test MSE of predicting the mean target of the training batches."""
    rng = np.random.default_rng([args.seed, steps, 0])
    mean = np.mean([make_batch(rng, steps, args.streams)[1] for _ in range(50)])
    ys = np.concatenate([y for _, y in test_set(args.seed, steps, args.streams, args.test)])
    return float(np.mean((ys.astype(np.float64) - mean) ** 2))


COLUMNS = ("t=0", "t=T/4", "t=T/2", "t=3T/4", "t=T-1")


def norm_columns(steps):
    """The time steps shown in the gradient table: first, quarters, last."""
    return [0, steps // 4, steps // 2, (3 * steps) // 4, steps - 1]


def report(args, results):
    lines = [f"Adding problem: {args.iterations} iterations of {args.streams} sequences, "
             f"[rnn] {args.hidden} tanh, {args.optimizer} "
             f"(learning rate {args.learning_rate}"
             + (" x steps" if args.optimizer == "sgd" else "") + "), "
             f"clip norm {args.clip_norm}, test on {-(-args.test // args.streams) * args.streams} "
             f"sequences, seed {args.seed}", ""]
    rows = []
    for r in results:
        if r["recipe"] == "initial weights":
            rows.append([r["steps"], "constant (mean)", f"{r['constant']:.4f}", "", ""])
            continue
        clipped = "" if r["clipped"] is None else f"{r['clipped']}/{args.iterations}"
        rows.append([r["steps"], r["recipe"], f"{r['mse']:.4f}", clipped, f"{r['seconds']:.1f} s"])
    lines.append(table(["steps", "recipe", "test MSE", "updates clipped", "time"], rows))
    lines += ["", "Gradient reaching the [rnn] state at step t (norm over streams and units, "
              "one test batch), relative to the last step t = T-1:", ""]
    rows = []
    for r in results:
        n = r["norms"]
        rel = n / n[-1] if n[-1] > 0 else n
        rows.append([r["steps"], r["recipe"]] + [f"{rel[t]:.1e}" for t in norm_columns(r["steps"])])
    lines.append(table(["steps", "weights"] + list(COLUMNS), rows))
    return "\n".join(lines)


def parser():
    p = argparse.ArgumentParser(prog="darknet-rnn demo adding",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int_list, default=[10, 20, 50, 100],
                   help="sequence lengths, comma-separated (default: 10,20,50,100)")
    p.add_argument("--iterations", type=positive(int), default=3000,
                   help="training batches per recipe and length (%(default)s)")
    p.add_argument("--streams", type=positive(int), default=32, help="sequences per batch")
    p.add_argument("--hidden", type=positive(int), default=32, help="[rnn] units")
    p.add_argument("--optimizer", choices=("adam", "sgd"), default="adam",
                   help="adam (default), or Darknet's SGD with its rate times the steps")
    p.add_argument("--learning-rate", type=positive(float), default=None,
                   help="default: 0.001 for adam, 0.1 for sgd")
    p.add_argument("--clip-norm", type=positive(float), default=0.05,
                   help="global gradient norm of the exact+clip recipe (%(default)s)")
    p.add_argument("--recipes", default=",".join(RECIPES),
                   help="comma-separated, from " + ", ".join(RECIPES) + " (default: all)")
    p.add_argument("--test", type=positive(int), default=1024, help="test sequences")
    p.add_argument("--seed", type=int, default=1, help="weights, batches and test set")
    p.add_argument("--out", metavar="DIR", default=None,
                   help="write the cfg files and trained weights there")
    p.add_argument("--threads", type=positive(int), default=None)
    return p


def main(argv=None):
    p = parser()
    args = p.parse_args(argv)
    args.recipes = [r for r in args.recipes.split(",") if r]
    bad = [r for r in args.recipes if r not in RECIPES]
    if bad or not args.recipes:
        p.error(f"--recipes: unknown recipe {bad[0] if bad else ''!r} "
                f"(known: {', '.join(RECIPES)})")
    if args.learning_rate is None:
        args.learning_rate = 0.001 if args.optimizer == "adam" else 0.1
    results = []
    for steps in args.steps:
        rs = run_length(args, steps)
        rs[0]["constant"] = constant_mse(args, steps)
        results += rs
    print(report(args, results))
    return 0
