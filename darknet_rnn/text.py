"""Byte-level text for Darknet's char-RNN program (SPEC section 17).

This module owns everything `darknet rnn train | generate | valid` does with
text, as a Python API the command line (cli.py) is built on:

* the corpus: `default_corpus()` (the standard library's help texts, no
  download), `load_text()`, `split_text()`;
* batches in Darknet's layout: `get_batch()` / `CharBatcher` give
  x, y of shape (steps, streams, 256), one-hot, time-major (row t*streams + s
  is stream s at step t), y[t, s] being the byte after x[t, s]; each stream
  advances one byte per step and, after every iteration, jumps to a new random
  offset with probability 1/64;
* `train()`: Darknet's loop (one net.train per batch, loss = cost / net.batch,
  the 0.9/0.1 moving average) with a callback per iteration;
* `generate()`: Darknet's priming and sampling, byte by byte;
* `validate()` / `iter_validate()`: Darknet's `rnn valid` arithmetic
  (float32 running sum of log2 p), and `evaluate_bpc()`, a fast batched
  estimate used for the validation split during training.

Randomness comes from an object with a glibc-compatible `rand()` (normally
`darknet_rnn._rand.GlibcRandom`), drawn in the order Darknet draws, so a seed
reproduces Darknet's offsets and samples.

Invariant: texts are `bytes` without zero bytes (Darknet rejects them as
"Bad char"); the vocabulary is the 256 byte values.
"""
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, List, Optional

import numpy as np

from ._rand import RAND_MAX, GlibcRandom, clock_seed
from .errors import DarknetError

VOCAB = 256
JUMP_ODDS = 64          # each stream jumps with probability 1/JUMP_ODDS per iteration
SAMPLE_FLOOR = 0.0001   # generate: probabilities below this are set to zero
WORD_BREAKS = (ord(" "), ord("\n"), ord("\t"))


class TextError(DarknetError, ValueError):
    """The text cannot be used for byte-level training or evaluation (zero
    byte, too short, empty seed)."""


# --------------------------------------------------------------------------
# corpus

def default_corpus() -> bytes:
    """The embedded training text: the interactive help topics shipped with
    Python (`pydoc_data.topics`), joined in sorted key order, UTF-8 encoded
    (about 460 KB of English prose and code, no zero bytes)."""
    from pydoc_data import topics
    table = topics.topics
    return "".join(table[k] for k in sorted(table)).encode("utf-8")


def check_text(text, name="text"):
    """Raise TextError if `text` is empty or contains a zero byte (Darknet's
    "Bad char"). Returns the text as bytes."""
    text = bytes(text)
    if not text:
        raise TextError(f"{name} is empty")
    zero = text.find(0)
    if zero >= 0:
        raise TextError(f"{name}: bad char: zero byte at offset {zero} "
                        "(byte-level char-RNN text must not contain NUL bytes)")
    return text


def load_text(path) -> bytes:
    """Read a whole file as bytes ('-' reads stdin). OSError if it cannot be
    read; TextError if it is empty or contains a zero byte (the message names
    the offset)."""
    if str(path) == "-":
        import sys
        data = sys.stdin.buffer.read()
        return check_text(data, "stdin")
    with open(path, "rb") as f:
        data = f.read()
    return check_text(data, str(path))


def split_text(text, valid_fraction):
    """(train, valid): the last `valid_fraction` of the text is held back for
    validation (cut on a byte boundary). valid is b"" when the fraction is 0
    or the held-back part would be shorter than 2 bytes."""
    if not 0.0 <= valid_fraction < 1.0:
        raise ValueError(f"valid_fraction must be in [0, 1), got {valid_fraction}")
    n_valid = int(len(text) * valid_fraction)
    if n_valid < 2:
        return bytes(text), b""
    return bytes(text[:len(text) - n_valid]), bytes(text[len(text) - n_valid:])


def decode_escapes(s: str) -> bytes:
    """Command-line text to bytes: UTF-8, with the escapes \\n \\t \\r \\\\
    and \\xHH understood (so --seed '\\n\\n' is two newlines)."""
    out = bytearray()
    i = 0
    simple = {"n": b"\n", "t": b"\t", "r": b"\r", "\\": b"\\"}
    while i < len(s):
        ch = s[i]
        if ch == "\\" and i + 1 < len(s):
            nxt = s[i + 1]
            if nxt in simple:
                out += simple[nxt]
                i += 2
                continue
            if nxt == "x" and _is_hex(s[i + 2:i + 4]):
                out.append(int(s[i + 2:i + 4], 16))
                i += 4
                continue
        out += ch.encode("utf-8", "surrogateescape")
        i += 1
    return bytes(out)


def _is_hex(two):
    return len(two) == 2 and all(c in "0123456789abcdefABCDEF" for c in two)


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
    # x^n mod P(x), P(x) = x^31 - x^28 - 1, coefficients mod 2^32. The state is
    # the last 31 raw values s_0..s_30 (oldest first); value k+j is
    # sum_i coef(x^(k) mod P)_i * s_i for the polynomial x^k.
    mask = 0xFFFFFFFF

    def mulmod(a, b):
        prod = [0] * 61
        for i, ai in enumerate(a):
            if ai:
                for j, bj in enumerate(b):
                    if bj:
                        prod[i + j] += ai * bj
        for d in range(60, 30, -1):
            c = prod[d] & mask
            if c:
                prod[d - 3] += c
                prod[d - 31] += c
            prod[d] = 0
        return [c & mask for c in prod[:31]]

    def times_x(a):
        top = a[30]
        out = [0] + a[:30]
        out[28] = (out[28] + top) & mask
        out[0] = (out[0] + top) & mask
        return out

    result = [1] + [0] * 30
    base = [0, 1] + [0] * 29
    k = n
    while k:
        if k & 1:
            result = mulmod(result, base)
        k >>= 1
        if k:
            base = mulmod(base, base)
    s = [v & mask for v in state[-31:]]
    new_state = []
    poly = result
    for _ in range(31):
        new_state.append(sum(c * v for c, v in zip(poly, s)) & mask)
        poly = times_x(poly)
    rng._r = [0, 0, 0] + new_state
    return rng


def init_draws(net) -> int:
    """How many rand() calls Darknet's parse_network_cfg makes for `net`: one
    per connected weight (an [rnn] has three connected sublayers)."""
    return int(net.init_draws())


# --------------------------------------------------------------------------
# batches

def one_hot(indices, out=None):
    """float32 one-hot rows over 256 bytes, shape indices.shape + (256,)."""
    indices = np.asarray(indices, dtype=np.intp)
    if out is None:
        out = np.zeros(indices.shape + (VOCAB,), dtype=np.float32)
    else:
        out.fill(0.0)
    np.put_along_axis(out, indices[..., None], np.float32(1.0), axis=-1)
    return out


def get_batch(text, offsets, streams, steps):
    """One batch in Darknet's layout, advancing `offsets` in place.

    text: bytes (or uint8 array) of length L; offsets: int64 array (streams,).
    Returns x, y float32 (steps, streams, 256): x[t, s] is the byte at
    offsets[s] + t, y[t, s] the byte after it (indices modulo L, as Darknet
    wraps). Afterwards offsets[s] += steps (mod L). TextError on a zero byte.
    """
    data = _as_array(text)
    n = data.shape[0]
    offsets = _check_offsets(offsets, streams)
    pos = (offsets[None, :] + np.arange(steps, dtype=np.int64)[:, None]) % n  # (steps, streams)
    curr = data[pos]
    nxt = data[(pos + 1) % n]
    if not (curr.all() and nxt.all()):
        bad = pos[curr == 0][0] if not curr.all() else (pos[nxt == 0][0] + 1) % n
        raise TextError(f"bad char: zero byte at offset {int(bad)}")
    offsets[:] = (offsets + steps) % n
    return one_hot(curr), one_hot(nxt)


def _as_array(text):
    if isinstance(text, np.ndarray):
        if text.dtype != np.uint8 or text.ndim != 1:
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
    """

    def __init__(self, text, streams, steps, rng=None):
        if not isinstance(text, np.ndarray):
            text = np.frombuffer(check_text(text), dtype=np.uint8)
        elif not text.all():
            raise TextError(f"text: bad char: zero byte at offset {int(np.argmin(text))}")
        self.data = _as_array(text)
        self.streams = int(streams)
        self.steps = int(steps)
        need = self.streams * self.steps + 1
        if self.data.shape[0] < need:
            raise TextError(
                f"text has {self.data.shape[0]} bytes, shorter than one batch "
                f"({self.streams} streams x {self.steps} steps + 1 = {need} bytes)")
        self.rng = rng if rng is not None else new_rng()[0]
        n = self.data.shape[0]
        self.offsets = np.array([rand_size_t(self.rng) % n for _ in range(self.streams)],
                                dtype=np.int64)

    def __len__(self):
        return int(self.data.shape[0])

    def next_batch(self):
        return get_batch(self.data, self.offsets, self.streams, self.steps)

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
    """TextError unless the net reads and writes 256 values (one per byte)."""
    if net.inputs != VOCAB:
        raise TextError(f"{what} has inputs={net.inputs}; byte-level text needs inputs=256")
    if net.outputs != VOCAB:
        raise TextError(f"{what} has {net.outputs} outputs; byte-level text needs 256 "
                        "(a last [connected] output=256 followed by [softmax])")


# --------------------------------------------------------------------------
# training

@dataclass
class ValidResult:
    """Bits per character over `count` predicted bytes."""
    count: int
    bpc: float
    perplexity: float
    word_perplexity: float = float("nan")
    words: int = 0


@dataclass
class TrainStep:
    """What one training iteration reports (Darknet's loss line and more)."""
    iteration: int
    loss: float          # cost / net.batch: nats per character for softmax
    avg_loss: float      # avg = 0.9 avg + 0.1 loss, starting at the first loss
    rate: float
    seconds: float       # wall time of this iteration (data + train)
    epochs: float        # characters seen / training text length
    seen: int
    batch_number: int    # net.current_batch() after the update
    max_batches: int
    jumped: List[int] = field(default_factory=list)
    valid: Optional[ValidResult] = None

    @property
    def bpc(self):
        return self.loss / math.log(2)

    def darknet_line(self):
        """The line Darknet's `rnn train` prints for this iteration."""
        return (f"{self.iteration}: {self.loss:f}, {self.avg_loss:f} avg, "
                f"{self.rate:f} rate, {self.seconds:f} seconds, {self.epochs:f} epochs")


def train(net, text, *, rng=None, max_batches=None, valid_text=b"", valid_every=0,
          valid_max_bytes=None, callback: Optional[Callable[[TrainStep], object]] = None,
          batcher: Optional[CharBatcher] = None) -> Optional[TrainStep]:
    """Darknet's `rnn train` loop on `text` (bytes).

    Streams = net.streams, steps = net.time_steps; offsets and jumps are
    drawn from `rng` (None: the network's own generator `net.rng` when it has
    one, continuing the stream that initialised the weights as in Darknet,
    else a clock-seeded GlibcRandom). The loop runs while
    net.current_batch() < max_batches (default net.max_batches) and continues
    from net.seen (the iteration number starts at seen // net.batch).
    Every `valid_every` iterations (0: never) and after the last one,
    `evaluate_bpc(net, valid_text)` fills TrainStep.valid when valid_text is
    given. `callback(step)` runs after each iteration; a truthy return stops
    the loop. Returns the last TrainStep (None if no iteration ran).
    """
    check_byte_network(net)
    if batcher is None:
        if rng is None:
            rng = getattr(net, "rng", None)
        batcher = CharBatcher(text, net.streams, net.time_steps, rng)
    if max_batches is None:
        max_batches = int(net.max_batches)
    batch = int(net.batch)
    iteration = int(net.seen) // batch
    length = len(batcher)
    avg = None
    last = None
    while net.current_batch() < max_batches:
        iteration += 1
        t0 = time.perf_counter()
        x, y = batcher.next_batch()
        cost = net.train(x, y)
        loss = np.float32(np.float32(cost) / np.float32(batch))
        avg = loss if avg is None else avg
        avg = np.float32(float(avg) * .9 + float(loss) * .1)
        seconds = time.perf_counter() - t0
        jumped = batcher.jump()
        done = net.current_batch() >= max_batches
        step = TrainStep(iteration=iteration, loss=float(loss), avg_loss=float(avg),
                         rate=float(net.current_rate()), seconds=seconds,
                         epochs=int(net.seen) / length, seen=int(net.seen),
                         batch_number=int(net.current_batch()), max_batches=int(max_batches),
                         jumped=jumped)
        if valid_text and len(valid_text) >= 2 and (
                done or (valid_every and iteration % valid_every == 0)):
            step.valid = evaluate_bpc(net, valid_text, max_bytes=valid_max_bytes)
        last = step
        if callback is not None and callback(step):
            break
    return last


# --------------------------------------------------------------------------
# evaluation

def evaluate_bpc(net, text, max_bytes=None) -> ValidResult:
    """Bits per character of `text` under `net`, computed in batches with the
    net's own shape: the text is cut into net.streams contiguous pieces read
    in parallel, net.time_steps bytes per predict call, the recurrent state
    carried across calls (reset before and after). Log-probabilities are
    summed in double. A fast estimate for monitoring; `validate` is Darknet's
    exact procedure."""
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
        net.reset_state()
    bpc = -total / count / math.log(2)
    return ValidResult(count=count, bpc=bpc, perplexity=2.0 ** bpc)


def _predict_byte(net, c, buf):
    buf[c] = 1.0
    out = net.predict(buf)
    buf[c] = 0.0
    return out


def prime(net, seed, echo=None):
    """Feed every byte of `seed` one predict call at a time (outputs
    discarded); echo(byte) is called for each."""
    buf = np.zeros(VOCAB, dtype=np.float32)
    for c in bytes(seed):
        _predict_byte(net, c, buf)
        if echo is not None:
            echo(c)


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
        out = _predict_byte(net, c, buf)
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


# --------------------------------------------------------------------------
# sampling

def sample_index(probs, rng) -> int:
    """Darknet's sampling from one output row (float32 arithmetic as in C):
    zero every p < 0.0001, normalise by the float sum (scale = float(1/sum)),
    r = rand()/RAND_MAX, subtract p[0], p[1], ... from r and return the first
    index where r <= 0 (the last index if none)."""
    a = np.array(probs, dtype=np.float32)                 # copy, (256,)
    a[a.astype(np.float64) < SAMPLE_FLOOR] = 0.0
    total = np.cumsum(a, dtype=np.float32)[-1]            # sequential float sum
    r = np.float32(np.float32(rng.rand()) / np.float32(RAND_MAX))
    if not total > 0:                                     # nothing left: Darknet gives NaNs
        return a.shape[0] - 1
    a *= np.float32(1.0 / float(total))
    # r_k = r - a_0 - ... - a_k in float; -r_k is the running sum from -r.
    run = np.cumsum(np.concatenate(([-r], a)), dtype=np.float32)[1:]
    hit = np.flatnonzero(run >= 0)
    return int(hit[0]) if hit.size else a.shape[0] - 1


def generate(net, seed=b"\n\n", n=1000, temp=0.7, rng=None, echo_seed=True) -> Iterator[bytes]:
    """Darknet's `rnn generate`, yielding one byte (as a 1-byte bytes) at a time.

    Sets every softmax temperature to `temp`; primes with all seed bytes but
    the last (one predict call each; yielded when echo_seed), yields the last
    seed byte, then `n` times: feed the current byte, sample the next with
    sample_index, yield it. The state carries from call to call (it is not
    reset first: reset_state() before for a fresh start). rng: an object
    with glibc rand() (None: clock-seeded GlibcRandom).
    The net must have streams*time_steps == 1; see generate_streams.
    """
    check_byte_network(net)
    seed = bytes(seed)
    if not seed:
        raise TextError("the seed text must not be empty")
    if int(net.streams) * int(net.time_steps) != 1:
        raise TextError("generation feeds one byte per call: the network needs batch=1 "
                        f"and time_steps=1 (has {net.streams} streams x {net.time_steps} steps)")
    if rng is None:
        rng = new_rng()[0]
    net.set_temperature(temp)
    buf = np.zeros(VOCAB, dtype=np.float32)
    for c in seed[:-1]:
        _predict_byte(net, c, buf)
        if echo_seed:
            yield bytes((c,))
    c = seed[-1]
    if echo_seed:
        yield bytes((c,))
    for _ in range(int(n)):
        out = _predict_byte(net, c, buf)
        c = sample_index(out, rng)
        yield bytes((c,))


def generate_streams(net, seed=b"\n\n", n=1000, temp=0.7, rng=None) -> List[bytes]:
    """net.streams independent samples advanced together (net.time_steps must
    be 1): every stream is primed with the same seed, then each step feeds all
    current bytes in one predict call and samples stream 0, 1, ... in order.
    Returns one bytes per stream, seed included."""
    check_byte_network(net)
    seed = bytes(seed)
    if not seed:
        raise TextError("the seed text must not be empty")
    streams = int(net.streams)
    if int(net.time_steps) != 1:
        raise TextError(f"batched generation needs time_steps=1 (has {net.time_steps})")
    if rng is None:
        rng = new_rng()[0]
    net.set_temperature(temp)
    x = np.zeros((1, streams, VOCAB), dtype=np.float32)
    for c in seed[:-1]:
        x.fill(0.0)
        x[0, :, c] = 1.0
        net.predict(x)
    current = np.full(streams, seed[-1], dtype=np.intp)
    samples = [bytearray(seed) for _ in range(streams)]
    for _ in range(int(n)):
        one_hot(current[None, :], out=x)
        out = np.asarray(net.predict(x)).reshape(streams, VOCAB)
        for s in range(streams):
            current[s] = sample_index(out[s], rng)
            samples[s].append(int(current[s]))
    return [bytes(s) for s in samples]
