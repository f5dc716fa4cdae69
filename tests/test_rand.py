"""GlibcRandom against the real glibc rand() (through ctypes) and Darknet's
rand_uniform formula."""
import ctypes
import ctypes.util
import sys

import numpy as np
import pytest

from darknet_rnn._rand import RAND_MAX, GlibcRandom


def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    lib.srand.argtypes = (ctypes.c_uint,)
    lib.srand.restype = None
    lib.rand.argtypes = ()
    lib.rand.restype = ctypes.c_int
    # glibc check (musl has a different rand)
    try:
        ctypes.CDLL(None).gnu_get_libc_version
    except AttributeError:
        return None
    return lib


LIBC = _libc()
needs_glibc = pytest.mark.skipif(LIBC is None, reason="needs glibc")

SEEDS = [0, 1, 2, 7, 1007, 12345, 2**31 - 1, 2**31, 2**31 + 12345, 2**32 - 1,
         2**32 + 5]


@needs_glibc
@pytest.mark.parametrize("seed", SEEDS)
def test_rand_matches_glibc(seed):
    LIBC.srand(seed & 0xFFFFFFFF)
    expected = [LIBC.rand() for _ in range(2000)]
    g = GlibcRandom(seed)
    assert [g.rand() for _ in range(2000)] == expected


@needs_glibc
def test_srand_reseeds():
    g = GlibcRandom(5)
    [g.rand() for _ in range(17)]
    g.srand(99)
    LIBC.srand(99)
    assert [g.rand() for _ in range(50)] == [LIBC.rand() for _ in range(50)]


def test_seed_zero_is_seed_one():
    a, b = GlibcRandom(0), GlibcRandom(1)
    assert [a.rand() for _ in range(100)] == [b.rand() for _ in range(100)]


def test_independent_generators():
    a, b = GlibcRandom(3), GlibcRandom(3)
    xa = [a.rand() for _ in range(10)]
    c = GlibcRandom(4)
    c.rand()
    assert [b.rand() for _ in range(10)] == xa


def test_values_in_range():
    g = GlibcRandom(42)
    v = [g.rand() for _ in range(5000)]
    assert min(v) >= 0 and max(v) <= RAND_MAX


def _uniform_formula(r, lo, hi):
    """(float)r/RAND_MAX*(hi-lo)+lo, all float32 (RAND_MAX converts to 2^31)."""
    lo, hi = np.float32(lo), np.float32(hi)
    if hi < lo:
        lo, hi = hi, lo
    v = np.float32(np.float32(r) / np.float32(2147483647))
    return np.float32(np.float32(v * np.float32(hi - lo)) + lo)


@pytest.mark.parametrize("lo,hi", [(-1, 1), (0, 1), (1, -1), (-0.3, 2.5)])
def test_rand_uniform_formula(lo, hi):
    raw = GlibcRandom(11)
    g = GlibcRandom(11)
    for _ in range(500):
        exp = _uniform_formula(raw.rand(), lo, hi)
        got = g.rand_uniform(lo, hi)
        assert isinstance(got, np.float32)
        assert np.float32(got).view(np.uint32) == exp.view(np.uint32)


@pytest.mark.parametrize("lo,hi", [(-1, 1), (0, 1), (2, -3)])
def test_rand_uniform_array_equals_scalar(lo, hi):
    a, b = GlibcRandom(2024), GlibcRandom(2024)
    arr = a.rand_uniform_array(1000, lo, hi)
    assert arr.dtype == np.float32 and arr.shape == (1000,)
    scal = np.array([b.rand_uniform(lo, hi) for _ in range(1000)], dtype=np.float32)
    assert np.array_equal(arr.view(np.uint32), scal.view(np.uint32))
    # both generators advanced the same way
    assert a.rand() == b.rand()


@needs_glibc
def test_rand_uniform_from_glibc_stream():
    LIBC.srand(777)
    raw = [LIBC.rand() for _ in range(300)]
    arr = GlibcRandom(777).rand_uniform_array(300, -1, 1)
    exp = np.array([_uniform_formula(r, -1, 1) for r in raw], dtype=np.float32)
    assert np.array_equal(arr.view(np.uint32), exp.view(np.uint32))


def test_rand_uniform_array_empty():
    g = GlibcRandom(1)
    assert g.rand_uniform_array(0, -1, 1).shape == (0,)
    assert g.rand() == GlibcRandom(1).rand()
