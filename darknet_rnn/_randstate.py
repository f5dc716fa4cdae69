"""The state of a glibc rand() generator (darknet_rnn._rand.GlibcRandom) as
the C core takes it: the 34 most recent raw values, oldest first, as a
uint32 array. The C dropout layer draws from a copy of that state and hands
it back advanced, so the network's one rand() stream (weight init, the
random lr policy, the char batcher, dropout) keeps Darknet's draw order.
"""
import numpy as np

STATE_WORDS = 34


def get_state(rng, out=None):
    """The generator's state as uint32 (34,) (into `out` when given)."""
    if out is None:
        out = np.empty(STATE_WORDS, dtype=np.uint32)
    getstate = getattr(rng, "getstate", None)
    if callable(getstate):
        out[...] = getstate()
    else:
        out[...] = rng._r[-STATE_WORDS:]
    return out


def set_state(rng, state):
    """Continue the generator from `state` (as returned by get_state)."""
    setstate = getattr(rng, "setstate", None)
    if callable(setstate):
        setstate(state)
    else:
        rng._r = [int(v) for v in state]
