"""Bits per character: Darknet's `rnn valid` arithmetic (byte by byte,
float32 running sum of log2 p) and a fast batched estimate used on the
validation split during training.
"""
import math
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from .batches import VOCAB, check_byte_network, one_hot
from .corpus import TextError
from .sampling import predict_byte, prime

WORD_BREAKS = (ord(" "), ord("\n"), ord("\t"))


@dataclass
class ValidResult:
    """Bits per character over `count` predicted bytes."""
    count: int
    bpc: float
    perplexity: float
    word_perplexity: float = float("nan")
    words: int = 0


def evaluate_bpc(net, text, max_bytes=None) -> ValidResult:
    """Bits per character of `text` under `net`, computed in batches with the
    net's own shape: the text is cut into net.streams contiguous pieces read
    in parallel, net.time_steps bytes per predict call, the recurrent state
    carried across calls (zeroed before; afterwards the net's own carried
    state is put back, so validating during training leaves a [gru]/[lstm]
    trajectory unchanged). Log-probabilities are summed in double. A fast
    estimate for monitoring; `validate` is Darknet's exact procedure."""
    check_byte_network(net)
    data = np.frombuffer(bytes(text), dtype=np.uint8)
    if max_bytes is not None:
        data = data[:max(2, int(max_bytes))]
    streams, steps = int(net.streams), int(net.time_steps)
    usable = data.shape[0] - 1                      # positions with a successor
    if usable < 1:
        raise TextError("validation text needs at least 2 bytes")
    streams_used = min(streams, usable)
    piece = usable // streams_used
    starts = np.arange(streams_used, dtype=np.int64) * piece
    total = 0.0
    count = 0
    arrays = getattr(net, "state_arrays", None)
    carried = None if arrays is None else [np.array(a, copy=True) for a in arrays()]
    net.reset_state()
    try:
        for t0 in range(0, piece, steps):
            n_t = min(steps, piece - t0)
            pos = np.zeros((steps, streams), dtype=np.int64)
            valid = np.zeros((steps, streams), dtype=bool)
            pos[:n_t, :streams_used] = starts[None, :] + t0 + np.arange(n_t)[:, None]
            valid[:n_t, :streams_used] = True
            x = one_hot(np.where(valid, data[pos], 32))
            out = np.asarray(net.predict(x)).reshape(steps, streams, VOCAB)
            nxt = data[np.minimum(pos + 1, data.shape[0] - 1)]
            p = np.take_along_axis(out, nxt[..., None].astype(np.intp), axis=-1)[..., 0]
            p = p[valid].astype(np.float64)
            with np.errstate(divide="ignore"):
                total += float(np.sum(np.log(p)))
            count += int(p.size)
    finally:
        if carried is None:
            net.reset_state()
        else:
            for a, c in zip(arrays(), carried):
                a[...] = c
    bpc = -total / count / math.log(2)
    return ValidResult(count=count, bpc=bpc, perplexity=2.0 ** bpc)


def iter_validate(net, text, seed=b"\n\n") -> Iterator[ValidResult]:
    """Darknet's `rnn valid`, one ValidResult per predicted byte.

    The net (streams*time_steps must be 1) is primed with all of `seed`, then
    for each byte c with a successor `next`: count += 1, words += 1 if next is
    a space, newline or tab (words starts at 1), feed c and add
    log(p[next]) / log(2) to a float32 running sum (log in double; log(2)
    held as a float, as in Darknet). BPC = -sum/count and -sum/words in
    float32; perplexities are 2 to those powers in double.
    Darknet stops with "Out of range character" at a successor byte 255 (an
    off-by-one); here every byte value is scored.
    """
    check_byte_network(net)
    if int(net.streams) * int(net.time_steps) != 1:
        raise TextError("validation feeds one byte per call: the network needs "
                        f"batch=1 and time_steps=1 (has {net.streams} streams x "
                        f"{net.time_steps} steps)")
    data = bytes(text)
    log2 = float(np.float32(math.log(2)))
    buf = np.zeros(VOCAB, dtype=np.float32)
    prime(net, seed)
    total = np.float32(0.0)
    count = 0
    words = 1
    for i in range(len(data) - 1):
        c, nxt = data[i], data[i + 1]
        count += 1
        if nxt in WORD_BREAKS:
            words += 1
        out = predict_byte(net, c, buf)
        p = float(out[nxt])
        lg = math.log(p) if p > 0.0 else (-math.inf if p == 0.0 else math.nan)
        total = np.float32(float(total) + lg / log2)
        bpc = np.float32(-total) / np.float32(count)
        wpc = np.float32(-total) / np.float32(words)
        yield ValidResult(count=count, bpc=float(bpc), perplexity=_pow2(bpc),
                          word_perplexity=_pow2(wpc), words=words)


def _pow2(v):
    try:
        return math.pow(2.0, float(v))
    except OverflowError:
        return math.inf


def validate(net, text, seed=b"\n\n") -> ValidResult:
    """The final ValidResult of iter_validate (TextError if the text has no
    byte with a successor)."""
    last = None
    for last in iter_validate(net, text, seed):
        pass
    if last is None:
        raise TextError("validation text needs at least 2 bytes")
    return last


def format_valid_line(r: ValidResult) -> str:
    """Darknet's per-byte `rnn valid` line."""
    return (f"{r.count} BPC: {r.bpc:4.4f}   Perplexity: {r.perplexity:4.4f}    "
            f"Word Perplexity: {r.word_perplexity:4.4f}")
