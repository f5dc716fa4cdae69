"""Darknet's char-RNN sampling: priming with seed text, drawing each byte
from the softmax with glibc rand() (`rnn generate`), one stream or several;
temp=0 takes the most likely symbol instead (argmax: no rand() draws, the
same text every time). `generate_ids` is the same over token ids, for
word-level networks (Darknet's `-tokens`).
"""
from typing import Iterator, List

import numpy as np

from .._rand import RAND_MAX
from .batches import VOCAB, check_byte_network, new_rng, one_hot
from .corpus import TextError

SAMPLE_FLOOR = 0.0001   # generate: probabilities below this are set to zero


def predict_byte(net, c, buf):
    """One predict call with symbol `c` one-hot in `buf` (a zeroed
    (net.inputs,) float32 array, left zeroed afterwards). Returns the output
    row."""
    buf[c] = 1.0
    out = net.predict(buf)
    buf[c] = 0.0
    return out


def prime(net, seed, echo=None):
    """Feed every byte of `seed` one predict call at a time (outputs
    discarded); echo(byte) is called for each."""
    if isinstance(seed, str):
        seed = seed.encode("utf-8")
    buf = np.zeros(int(getattr(net, "inputs", VOCAB)), dtype=np.float32)
    for c in bytes(seed):
        predict_byte(net, c, buf)
        if echo is not None:
            echo(c)


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


def argmax_index(probs) -> int:
    """The most likely symbol (the first one on a tie)."""
    return int(np.argmax(np.asarray(probs)))


def _check_seed(seed):
    if isinstance(seed, str):
        seed = seed.encode("utf-8")
    seed = bytes(seed)
    if not seed:
        raise TextError("the seed text must not be empty")
    return seed


def _check_temp(temp):
    temp = float(temp)
    if not temp >= 0.0:
        raise ValueError(f"temp must be >= 0 (0: the most likely symbol), got {temp}")
    return temp


def _sampler(net, temp, rng):
    """Set the temperature; the function picking a symbol from an output row."""
    temp = _check_temp(temp)
    if temp == 0.0:
        net.set_temperature(1.0)       # argmax does not depend on it
        return lambda out: argmax_index(out)
    if rng is None:
        rng = new_rng()[0]
    net.set_temperature(temp)
    return lambda out: sample_index(out, rng)


def generate_ids(net, seed, n=1000, temp=0.7, rng=None, echo_seed=True) -> Iterator[int]:
    """Darknet's `rnn generate` over symbol ids (bytes or token ids), one
    id at a time.

    Sets every softmax temperature to `temp`; primes with all seed ids but
    the last (one predict call each; yielded when echo_seed), yields the last
    seed id, then `n` times: feed the current id, pick the next (sample_index
    with rand() from `rng`; temp=0: argmax_index, nothing drawn), yield it.
    The state carries from call to call (it is not reset first: reset_state()
    before for a fresh start). rng: an object with glibc rand() (None:
    clock-seeded GlibcRandom). The net must have streams*time_steps == 1 and
    as many outputs as inputs; see generate_streams.
    """
    seed = [int(c) for c in seed]
    if not seed:
        raise TextError("the seed must not be empty")
    width = int(net.inputs)
    if int(net.outputs) != width:
        raise TextError(f"generation feeds each output back as the next input: the network "
                        f"needs as many outputs as inputs (has {net.outputs} and {width})")
    bad = [c for c in seed if not 0 <= c < width]
    if bad:
        raise TextError(f"seed symbol {bad[0]} is outside the network's inputs [0, {width})")
    if int(net.streams) * int(net.time_steps) != 1:
        raise TextError("generation feeds one symbol per call: the network needs batch=1 "
                        f"and time_steps=1 (has {net.streams} streams x {net.time_steps} steps)")
    pick = _sampler(net, temp, rng)
    buf = np.zeros(width, dtype=np.float32)
    for c in seed[:-1]:
        predict_byte(net, c, buf)
        if echo_seed:
            yield c
    c = seed[-1]
    if echo_seed:
        yield c
    for _ in range(int(n)):
        c = pick(predict_byte(net, c, buf))
        yield c


def generate(net, seed=b"\n\n", n=1000, temp=0.7, rng=None, echo_seed=True) -> Iterator[bytes]:
    """Darknet's `rnn generate` on bytes, yielding one byte (as a 1-byte
    bytes) at a time; seed: bytes or str (UTF-8). temp=0: the most likely
    byte every time. See generate_ids.
    """
    check_byte_network(net)
    seed = _check_seed(seed)
    for c in generate_ids(net, seed, n, temp, rng, echo_seed):
        yield bytes((c,))


def generate_streams(net, seed=b"\n\n", n=1000, temp=0.7, rng=None) -> List[bytes]:
    """net.streams independent samples advanced together (net.time_steps must
    be 1): every stream is primed with the same seed, then each step feeds all
    current bytes in one predict call and samples stream 0, 1, ... in order
    (temp=0: argmax). Returns one bytes per stream, seed included."""
    check_byte_network(net)
    seed = _check_seed(seed)
    streams = int(net.streams)
    if int(net.time_steps) != 1:
        raise TextError(f"batched generation needs time_steps=1 (has {net.time_steps})")
    pick = _sampler(net, temp, rng)
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
            current[s] = pick(out[s])
            samples[s].append(int(current[s]))
    return [bytes(s) for s in samples]
