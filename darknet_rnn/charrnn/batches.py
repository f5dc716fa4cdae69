"""Char-RNN batches in Darknet's layout, and glibc rand() in Darknet's draw
order.

`get_batch()` / `CharBatcher` give x, y of shape (steps, streams, 256),
one-hot, time-major (row t*streams + s is stream s at step t), y[t, s] being
the byte after x[t, s]; each stream advances one byte per step and, after
every iteration, jumps to a new random offset with probability 1/64.

Randomness comes from an object with a glibc-compatible `rand()` (normally
`darknet_rnn._rand.GlibcRandom`), drawn in the order Darknet draws, so a seed
reproduces Darknet's offsets.
"""
from typing import List

import numpy as np

from .._rand import GlibcRandom, clock_seed
from .corpus import TextError, check_text

VOCAB = 256
JUMP_ODDS = 64          # each stream jumps with probability 1/JUMP_ODDS per iteration


# --------------------------------------------------------------------------
# randomness (glibc rand(), in Darknet's draw order)

def new_rng(seed=None):
    """A GlibcRandom for `seed`; None seeds from the clock like Darknet's
    srand(time(0)). Returns (rng, seed)."""
    if seed is None:
        seed = clock_seed()
    return GlibcRandom(seed), seed


def rand_size_t(rng) -> int:
    """Darknet's rand_size_t: eight rand() calls, low byte of each, the first
    call giving the most significant byte of a 64-bit value."""
    v = 0
    for _ in range(8):
        v = (v << 8) | (rng.rand() & 0xFF)
    return v


_MASK32 = 0xFFFFFFFF


def _mulmod(a, b):
    """a * b mod P(x) = x^31 - x^28 - 1, coefficients mod 2^32 (31 each)."""
    prod = [0] * 61
    for i, ai in enumerate(a):
        if ai:
            for j, bj in enumerate(b):
                if bj:
                    prod[i + j] += ai * bj
    for d in range(60, 30, -1):
        c = prod[d] & _MASK32
        if c:
            prod[d - 3] += c
            prod[d - 31] += c
        prod[d] = 0
    return [c & _MASK32 for c in prod[:31]]


def _times_x(a):
    """a * x mod P(x)."""
    top = a[30]
    out = [0] + a[:30]
    out[28] = (out[28] + top) & _MASK32
    out[0] = (out[0] + top) & _MASK32
    return out


def skip_draws(rng, n):
    """Advance `rng` by n rand() calls. Used to stand where Darknet's stream
    stands after weight initialisation (one draw per connected weight, drawn
    even when weights are then loaded from a file). GlibcRandom is advanced by
    polynomial jump-ahead (the generator is the linear recurrence
    r[i] = r[i-3] + r[i-31] mod 2^32), other generators by calling rand()."""
    n = int(n)
    if n <= 0:
        return rng
    state = getattr(rng, "_r", None)
    if not isinstance(rng, GlibcRandom) or not isinstance(state, list) or len(state) < 31 \
            or n < 4096:
        for _ in range(n):
            rng.rand()
        return rng
    # x^n mod P(x). The state is the last 31 raw values s_0..s_30 (oldest
    # first); the value k steps on is sum_i coef(x^k mod P)_i * s_i.
    result = [1] + [0] * 30
    base = [0, 1] + [0] * 29
    k = n
    while k:
        if k & 1:
            result = _mulmod(result, base)
        k >>= 1
        if k:
            base = _mulmod(base, base)
    s = [v & _MASK32 for v in state[-31:]]
    new_state = []
    poly = result
    for _ in range(31):
        new_state.append(sum(c * v for c, v in zip(poly, s)) & _MASK32)
        poly = _times_x(poly)
    rng._r = [0, 0, 0] + new_state
    return rng


def init_draws(net) -> int:
    """How many rand() calls Darknet's parse_network_cfg makes for `net`: one
    per connected weight (an [rnn] has three connected sublayers)."""
    return int(net.init_draws())


# --------------------------------------------------------------------------
# batches

def one_hot(indices, out=None, width=VOCAB):
    """float32 one-hot rows over `width` symbols (256 bytes by default),
    shape indices.shape + (width,)."""
    indices = np.asarray(indices, dtype=np.intp)
    if out is None:
        out = np.zeros(indices.shape + (int(width),), dtype=np.float32)
    else:
        out.fill(0.0)
    np.put_along_axis(out, indices[..., None], np.float32(1.0), axis=-1)
    return out


def get_batch(text, offsets, streams, steps, vocab=None):
    """One batch in Darknet's layout, advancing `offsets` in place.

    text: bytes (or uint8 array) of length L; offsets: int64 array (streams,).
    Returns x, y float32 (steps, streams, 256): x[t, s] is the byte at
    offsets[s] + t, y[t, s] the byte after it (indices modulo L, as Darknet
    wraps). Afterwards offsets[s] += steps (mod L). TextError on a zero byte.
    vocab: word-level data (Darknet's -tokenized): text is an integer array
    of token ids in [0, vocab) (0 allowed) and the rows are vocab wide.
    """
    data = _as_array(text, tokens=vocab is not None)
    n = data.shape[0]
    offsets = _check_offsets(offsets, streams)
    pos = (offsets[None, :] + np.arange(steps, dtype=np.int64)[:, None]) % n  # (steps, streams)
    curr = data[pos]
    nxt = data[(pos + 1) % n]
    if vocab is None and not (curr.all() and nxt.all()):
        bad = pos[curr == 0][0] if not curr.all() else (pos[nxt == 0][0] + 1) % n
        raise TextError(f"bad char: zero byte at offset {int(bad)}")
    offsets[:] = (offsets + steps) % n
    width = VOCAB if vocab is None else vocab
    return one_hot(curr, width=width), one_hot(nxt, width=width)


def _as_array(text, tokens=False):
    if isinstance(text, np.ndarray):
        if tokens:
            if text.ndim != 1 or not np.issubdtype(text.dtype, np.integer):
                raise TypeError("token data must be a 1-D integer array")
        elif text.dtype != np.uint8 or text.ndim != 1:
            raise TypeError("text array must be 1-D uint8")
        data = text
    else:
        data = np.frombuffer(bytes(text), dtype=np.uint8)
    if data.shape[0] < 2:
        raise TextError("text must have at least 2 bytes")
    return data


def _check_offsets(offsets, streams):
    if not isinstance(offsets, np.ndarray) or offsets.dtype != np.int64:
        raise TypeError("offsets must be an int64 numpy array (updated in place)")
    if offsets.shape != (streams,):
        raise ValueError(f"offsets has shape {offsets.shape}, expected ({streams},)")
    return offsets


class CharBatcher:
    """Darknet's char-RNN data stream: `streams` read heads at random offsets.

    next_batch() -> (x, y) as get_batch; jump() then gives every stream, in
    order, a 1/64 chance (rand() % 64 == 0) to move to a new random offset
    (rand_size_t() % L), and returns the indices of the streams that jumped.
    vocab: word-level data (an integer array of token ids below vocab), as
    Darknet's `rnn train -tokenized`.
    """

    def __init__(self, text, streams, steps, rng=None, vocab=None):
        self.vocab = None if vocab is None else int(vocab)
        if self.vocab is not None:
            text = np.asarray(text)
            if text.size and (text.min() < 0 or text.max() >= self.vocab):
                bad = int(np.flatnonzero((text < 0) | (text >= self.vocab))[0])
                raise TextError(f"token {int(text[bad])} at position {bad} is outside "
                                f"[0, {self.vocab}) (the network's inputs)")
        elif not isinstance(text, np.ndarray):
            text = np.frombuffer(check_text(text), dtype=np.uint8)
        elif not text.all():
            raise TextError(f"text: bad char: zero byte at offset {int(np.argmin(text))}")
        self.data = _as_array(text, tokens=self.vocab is not None)
        self.streams = int(streams)
        self.steps = int(steps)
        need = self.streams * self.steps + 1
        if self.data.shape[0] < need:
            unit = "bytes" if self.vocab is None else "tokens"
            raise TextError(
                f"text has {self.data.shape[0]} {unit}, shorter than one batch "
                f"({self.streams} streams x {self.steps} steps + 1 = {need} {unit})")
        self.rng = rng if rng is not None else new_rng()[0]
        n = self.data.shape[0]
        self.offsets = np.array([rand_size_t(self.rng) % n for _ in range(self.streams)],
                                dtype=np.int64)

    def __len__(self):
        return int(self.data.shape[0])

    def next_batch(self):
        return get_batch(self.data, self.offsets, self.streams, self.steps, self.vocab)

    def jump(self) -> List[int]:
        n = self.data.shape[0]
        jumped = []
        for s in range(self.streams):
            if self.rng.rand() % JUMP_ODDS == 0:
                self.offsets[s] = rand_size_t(self.rng) % n
                jumped.append(s)
        return jumped


# --------------------------------------------------------------------------
# network checks

def check_byte_network(net, what="network"):
    """TextError unless the net reads and writes 256 values (one per byte)
    and reads the text forward (a char-RNN predicts the next byte)."""
    if net.inputs != VOCAB:
        raise TextError(f"{what} has inputs={net.inputs}; byte-level text needs inputs=256")
    if net.outputs != VOCAB:
        raise TextError(f"{what} has {net.outputs} outputs; byte-level text needs 256 "
                        "(a last [connected] output=256 followed by [softmax])")
    spec = getattr(net, "spec", None)        # (duck-typed nets without layers pass)
    for kind, ls in zip(getattr(net, "kinds", ()), spec.layers if spec is not None else ()):
        if kind.whole_sequence:
            raise TextError(f"{what}: layer {ls.index} {ls.section} (line {ls.line}) reads the "
                            "sequence from its end too (bidirectional), so it would see the byte "
                            "it has to predict; a char-RNN needs layers that read forward only")


# --------------------------------------------------------------------------
# data parallelism

class ShardedCharBatcher(CharBatcher):
    """This rank's streams of a data-parallel run (darknet_rnn.distributed):
    `size` ranks with `streams` streams each read the text as ONE
    CharBatcher of size*streams streams would, and this rank reads streams
    rank*streams .. (rank+1)*streams-1 of it.

    Every rank draws every stream's offsets and jumps from `rng` in
    Darknet's order (its own generator, seeded alike on every rank), so the
    ranks' streams are disjoint shares of one reproducible draw -- together
    exactly what one process with size*streams streams reads from the same
    seed -- and the generator stays the same on every rank (it also drives
    the `random` lr policy). next_batch() returns this rank's (x, y), shape
    (steps, streams, 256); the other ranks' offsets advance with it; jump()
    returns the global indices of the streams that jumped."""

    def __init__(self, text, streams, steps, rng=None, *, rank=0, size=1, vocab=None):
        from .._checks import check_int
        streams, size = check_int("streams", streams), check_int("size", size)
        rank = check_int("rank", rank, minimum=0)
        if rank >= size:
            raise ValueError(f"rank must be < size ({size}), got {rank}")
        super().__init__(text, streams * size, steps, rng, vocab=vocab)
        self.rank, self.size, self.local_streams = rank, size, streams
        self.local = slice(rank * streams, (rank + 1) * streams)

    def next_batch(self):
        mine = self.offsets[self.local]           # a view: get_batch advances it
        x, y = get_batch(self.data, mine, self.local_streams, self.steps, self.vocab)
        n = self.data.shape[0]
        for other in (slice(0, self.local.start), slice(self.local.stop, None)):
            self.offsets[other] = (self.offsets[other] + self.steps) % n
        return x, y


def batcher_for(net, text, rng=None, vocab=None):
    """The CharBatcher that feeds `net`: all its streams, or on a distributed
    network (world_size > 1) this rank's share of world_size * streams
    (ShardedCharBatcher). rng: None uses the network's own generator."""
    if rng is None:
        rng = getattr(net, "rng", None)
    size = int(getattr(net, "world_size", 1))
    if size > 1:
        return ShardedCharBatcher(text, net.streams, net.time_steps, rng,
                                  rank=int(net.rank), size=size, vocab=vocab)
    return CharBatcher(text, net.streams, net.time_steps, rng, vocab=vocab)
