"""Darknet's char-RNN sampling: priming with seed text, drawing each byte
from the softmax with glibc rand() (`rnn generate`), one stream or several.
"""
from typing import Iterator, List

import numpy as np

from .._rand import RAND_MAX
from .batches import VOCAB, check_byte_network, new_rng, one_hot
from .corpus import TextError

SAMPLE_FLOOR = 0.0001   # generate: probabilities below this are set to zero


def predict_byte(net, c, buf):
    """One predict call with byte `c` one-hot in `buf` (a zeroed (256,)
    float32 array, left zeroed afterwards). Returns the output row."""
    buf[c] = 1.0
    out = net.predict(buf)
    buf[c] = 0.0
    return out


def prime(net, seed, echo=None):
    """Feed every byte of `seed` one predict call at a time (outputs
    discarded); echo(byte) is called for each."""
    buf = np.zeros(VOCAB, dtype=np.float32)
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


def _check_seed(seed):
    seed = bytes(seed)
    if not seed:
        raise TextError("the seed text must not be empty")
    return seed


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
    seed = _check_seed(seed)
    if int(net.streams) * int(net.time_steps) != 1:
        raise TextError("generation feeds one byte per call: the network needs batch=1 "
                        f"and time_steps=1 (has {net.streams} streams x {net.time_steps} steps)")
    if rng is None:
        rng = new_rng()[0]
    net.set_temperature(temp)
    buf = np.zeros(VOCAB, dtype=np.float32)
    for c in seed[:-1]:
        predict_byte(net, c, buf)
        if echo_seed:
            yield bytes((c,))
    c = seed[-1]
    if echo_seed:
        yield bytes((c,))
    for _ in range(int(n)):
        out = predict_byte(net, c, buf)
        c = sample_index(out, rng)
        yield bytes((c,))


def generate_streams(net, seed=b"\n\n", n=1000, temp=0.7, rng=None) -> List[bytes]:
    """net.streams independent samples advanced together (net.time_steps must
    be 1): every stream is primed with the same seed, then each step feeds all
    current bytes in one predict call and samples stream 0, 1, ... in order.
    Returns one bytes per stream, seed included."""
    check_byte_network(net)
    seed = _check_seed(seed)
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
