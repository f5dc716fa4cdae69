"""Restore the spaces removed from text: a task where the future matters.

The text loses all its white space ("thequickbrownfox"); the network reads
it byte by byte and tags every byte that ended a word (a space followed it),
so the spaces can be put back. Whether a byte ends a word depends on what
comes after it ("the|quick" but "ther|e"), which a unidirectional [rnn]
cannot see when it has to decide; a bidirectional [rnn] reads the sequence
from both ends. Both are trained the same way on the same windows of the
training text (all-states output: a loss at every step), and tagged on
held-out text from the end of the corpus.

Networks: [rnn] H tanh, or [rnn] H/2 tanh bidirectional=1 (both directions
together have H units, and fewer weights); then [connected] 2 linear and
[softmax] (class 1 = a space follows).
"""
import argparse
import time

import numpy as np

from ..charrnn.corpus import default_corpus, load_text
from ._common import build, positive, progress, table

VOCAB = 256
MODELS = ("unidirectional", "bidirectional")


def strip_spaces(text):
    """(bytes without white space, uint8 labels): label 1 at every byte
    that white space followed in `text` (the last byte of a word)."""
    words = bytes(text).split()
    stream = b"".join(words)
    labels = np.zeros(len(stream), np.uint8)
    ends = np.cumsum([len(w) for w in words]) - 1
    last = len(stream) - 1
    if words and not bytes(text)[-1:].isspace():
        ends = ends[ends != last]             # the text's last word has no space after it
    labels[ends] = 1
    return np.frombuffer(stream, np.uint8), labels


def cfg_text(model, steps, streams, hidden, learning_rate):
    rnn = (f"[rnn]\noutput={hidden}\nactivation=tanh\n" if model == "unidirectional" else
           f"[rnn]\noutput={hidden // 2}\nactivation=tanh\nbidirectional=1\n")
    return (f"[net]\nbatch={streams}\nsubdivisions=1\ntime_steps={steps}\ninputs={VOCAB}\n"
            f"learning_rate={learning_rate}\nmomentum=0.9\ndecay=0\nmax_batches=1000000\n"
            f"B1=0.9\nB2=0.999\neps=0.00000001\n\n{rnn}\n"
            "[connected]\noutput=2\nactivation=linear\n\n[softmax]\n")


def one_hot(codes):
    """(steps, streams) byte codes -> (steps, streams, 256) float32."""
    x = np.zeros(codes.shape + (VOCAB,), np.float32)
    np.put_along_axis(x, codes[..., None].astype(np.intp), 1, axis=-1)
    return x


def training_batch(rng, codes, labels, steps, streams):
    """`streams` windows of `steps` bytes at random offsets, time-major."""
    starts = rng.integers(0, len(codes) - steps + 1, streams)
    idx = starts[None, :] + np.arange(steps)[:, None]              # (steps, streams)
    y = np.eye(2, dtype=np.float32)[labels[idx]]
    return one_hot(codes[idx]), y


def tag(net, codes):
    """Predicted labels of every byte of `codes`, tagged in consecutive
    windows of net.time_steps bytes (the tail that fills no window is
    dropped); returns (predicted, number of bytes tagged)."""
    T, B = net.time_steps, net.streams
    n = (len(codes) // T) * T
    windows = codes[:n].reshape(-1, T)                              # (windows, T)
    pred = np.empty(windows.shape, np.uint8)
    for first in range(0, len(windows), B):
        chunk = windows[first:first + B]
        pad = np.concatenate([chunk, np.zeros((B - len(chunk), T), chunk.dtype)])
        out = net.infer(one_hot(pad.T))                             # (T, B, 2)
        pred[first:first + B] = out.argmax(axis=-1).T[:len(chunk)]
    return pred.reshape(-1), n


def scores(pred, truth):
    tp = int(np.sum((pred == 1) & (truth == 1)))
    fp = int(np.sum((pred == 1) & (truth == 0)))
    fn = int(np.sum((pred == 0) & (truth == 1)))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"accuracy": float(np.mean(pred == truth)), "precision": precision,
            "recall": recall, "f1": f1}


def run_model(args, model, train, valid):
    net = build(cfg_text(model, args.steps, args.streams, args.hidden, args.learning_rate),
                f"spaces-{model}", args.out, seed=args.seed, exact=True,
                optimizer="adam", threads=args.threads)
    rng = np.random.default_rng([args.seed, 0])          # the same windows for both models
    t0 = time.perf_counter()
    for i in range(args.iterations):
        net.train(*training_batch(rng, *train, args.steps, args.streams))
    seconds = time.perf_counter() - t0
    pred, n = tag(net, valid[0])
    r = scores(pred, valid[1][:n])
    r.update(model=model, seconds=seconds, bytes=n,
             params=sum(p.value.size for p in net.params()))
    progress(f"{model}: held-out accuracy {r['accuracy']:.4f}, F1 {r['f1']:.4f} "
             f"({seconds:.1f} s)")
    if args.out is not None:
        net.save_weights(f"{args.out}/spaces-{model}.weights")
    return r, pred, n


PROSE = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ,.'")


def prose_start(codes, labels, width):
    """The first word start in `codes` followed by `width` bytes of plain
    prose (letters and , . '), else 0: where the example is taken."""
    ok = np.isin(codes, np.frombuffer(bytes(PROSE), np.uint8)).astype(np.int64)
    run = np.convolve(ok, np.ones(width, np.int64), mode="valid")    # prose bytes per window
    for i in np.flatnonzero(run == width):
        if i > 0 and labels[i - 1]:
            return int(i)
    return 0


def example(valid, preds, width=60):
    """`width` held-out bytes of prose with spaces restored by each model."""
    codes, labels = valid
    n = min(len(p) for _, p in preds)
    first = prose_start(codes[:n], labels[:n], width) if n > width else 0
    part = slice(first, first + width)
    lines = []
    for name, lab in [("truth", labels)] + preds:
        out = bytearray()
        for c, l in zip(codes[part], lab[part]):
            out.append(int(c))
            if l:
                out.append(32)
        lines.append(f"{name:>14}: {out.decode('utf-8', 'replace')}")
    return lines


def main(argv=None):
    p = argparse.ArgumentParser(prog="darknet-rnn demo spaces",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--file", metavar="TEXT", default=None,
                   help="text (default: the embedded corpus, Python's help topics)")
    p.add_argument("--steps", type=positive(int), default=32, help="bytes per window")
    p.add_argument("--streams", type=positive(int), default=32, help="windows per batch")
    p.add_argument("--hidden", type=positive(int), default=64,
                   help="[rnn] units (the bidirectional layer: half per direction)")
    p.add_argument("--iterations", type=positive(int), default=2000)
    p.add_argument("--learning-rate", type=positive(float), default=0.002, help="Adam's")
    p.add_argument("--valid-fraction", type=float, default=0.1,
                   help="held-out end of the text (%(default)s)")
    p.add_argument("--seed", type=int, default=1, help="weights and training windows")
    p.add_argument("--out", metavar="DIR", default=None,
                   help="write the cfg files and trained weights there")
    p.add_argument("--threads", type=positive(int), default=None)
    args = p.parse_args(argv)
    if args.hidden < 2:
        p.error("--hidden must be at least 2 (half of it per direction)")
    if not 0 < args.valid_fraction < 1:
        p.error(f"--valid-fraction must be in (0, 1), got {args.valid_fraction}")
    text = default_corpus() if args.file is None else load_text(args.file)
    codes, labels = strip_spaces(text)
    cut = int(len(codes) * (1 - args.valid_fraction))
    train, valid = (codes[:cut], labels[:cut]), (codes[cut:], labels[cut:])
    if len(train[0]) < args.steps or len(valid[0]) < args.steps:
        p.error(f"the text is too short for windows of {args.steps} bytes "
                f"({len(codes)} bytes without white space)")
    rows, preds = [], []
    for model in MODELS:
        r, pred, n = run_model(args, model, train, valid)
        rows.append(r)
        preds.append((model, pred))
    n = rows[0]["bytes"]
    base = float(np.mean(valid[1][:n] == 0))
    print(f"Restoring spaces: {args.iterations} iterations of {args.streams} windows x "
          f"{args.steps} bytes, Adam {args.learning_rate}, exact gradients, seed {args.seed}; "
          f"held-out {n} bytes ({args.valid_fraction:g} of the text)\n")
    body = [["never a space", "", f"{base:.4f}", "", "", "0.000", ""]]
    for r in rows:
        body.append([r["model"], r["params"], f"{r['accuracy']:.4f}", f"{r['precision']:.3f}",
                     f"{r['recall']:.3f}", f"{r['f1']:.3f}", f"{r['seconds']:.1f} s"])
    print(table(["model", "weights", "accuracy", "precision", "recall", "F1", "time"], body))
    print("\n```\n" + "\n".join(example(valid, preds)) + "\n```")
    return 0
