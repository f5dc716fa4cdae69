"""glibc's rand()/srand() (the TYPE_3 additive feedback generator), in Python.

Darknet initialises weights, picks stream offsets and samples characters with
the C library's rand(); reproducing it lets a seed given here produce the
same numbers Darknet produces after srand(seed) on Linux. Each GlibcRandom is
an independent generator (no global state).
"""
import time

import numpy as np

RAND_MAX = 2147483647


def clock_seed() -> int:
    """Darknet's srand(time(0)) seed: the clock in seconds, as a 32-bit
    unsigned value (what srand receives). The one place a seed is derived
    from the clock."""
    return int(time.time()) & 0xFFFFFFFF


class GlibcRandom:
    """Same sequence as glibc's srand(seed); rand() ... on Linux."""

    def __init__(self, seed=1):
        self.srand(seed)

    def srand(self, seed):
        seed = int(seed) & 0xFFFFFFFF
        if seed == 0:
            seed = 1
        r = [0] * 34
        r[0] = seed if seed < 2**31 else seed - 2**32   # int32 as glibc stores it
        for i in range(1, 31):
            # 16807 * r[i-1] % 2147483647 with Schrage's method, as glibc does
            prev = r[i - 1]
            hi = int(prev / 127773)          # C division truncates toward zero
            lo = prev - hi * 127773
            word = 16807 * lo - 2836 * hi
            if word < 0:
                word += 2147483647
            r[i] = word
        for i in range(31, 34):
            r[i] = r[i - 31]
        self._r = [x & 0xFFFFFFFF for x in r]
        # glibc discards the first 310 outputs
        self._i = 34
        for _ in range(310):
            self._next()

    def _next(self):
        r = self._r
        v = (r[-31] + r[-3]) & 0xFFFFFFFF
        r.append(v)
        if len(r) > 64:
            del r[:len(r) - 34]
        return v >> 1

    def getstate(self):
        """The generator's state (the last 34 raw values), as uint32 array."""
        return np.array(self._r[-34:], dtype=np.uint32)

    def setstate(self, state):
        """Continue from a state returned by getstate()."""
        st = np.asarray(state)
        if st.shape != (34,) or not np.issubdtype(st.dtype, np.integer):
            raise ValueError(f"a GlibcRandom state is 34 integers, got shape {st.shape}")
        self._r = [int(v) & 0xFFFFFFFF for v in st]

    def rand(self):
        """Next value of rand(), in [0, RAND_MAX]."""
        return self._next()

    def rand_uniform(self, lo, hi):
        """Darknet's rand_uniform: (float)rand()/RAND_MAX*(hi-lo)+lo, all float32."""
        lo = np.float32(lo)
        hi = np.float32(hi)
        if hi < lo:
            lo, hi = hi, lo
        v = np.float32(self._next()) / np.float32(RAND_MAX)
        return np.float32(np.float32(v * np.float32(hi - lo)) + lo)

    def rand_uniform_array(self, n, lo, hi):
        """n successive rand_uniform(lo, hi) values as a float32 array."""
        lo = np.float32(lo)
        hi = np.float32(hi)
        if hi < lo:
            lo, hi = hi, lo
        raw = np.fromiter((self._next() for _ in range(n)), dtype=np.int64, count=n)
        v = raw.astype(np.float32) / np.float32(RAND_MAX)
        return (v * np.float32(hi - lo) + lo).astype(np.float32)
