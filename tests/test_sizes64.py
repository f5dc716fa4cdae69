"""64-bit sizes in the C core: element counts beyond 2**31 (and 2**32) are
processed whole, not wrapped in a 32-bit int.

Arrays that big would need 8-16 GiB each, so the tests map one small block
of memory (a memfd) again and again over a huge virtual range: a "ring" of
2**31 + 64 floats costs 2 MiB of RAM. Every alias of an element is the same
float, so a kernel's visits can be counted exactly: y += x over n elements
adds 1 to each ring slot once per time the loop passes it. A count that
wrapped to 32 bits (or went negative) leaves the slots short.
"""
import ctypes
import mmap
import os

import numpy as np
import pytest

from darknet_rnn._ffi import Context, check, ffi, lib

CHUNK = 2 << 20                     # bytes of real memory behind a ring
CF = CHUNK // 4                     # floats per chunk
BIG = 2**31 + 64                    # just past a 32-bit int
HUGE = 4 * 1073741826               # the 4 x 1073741826 weights (2**32 + 8)

pytestmark = [pytest.mark.skipif(not hasattr(os, "memfd_create"), reason="needs memfd (Linux)"),
              pytest.mark.full]           # ~30 s: 2**31-element loops (run with --full)

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                       ctypes.c_int, ctypes.c_long]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
MAP_FIXED, MAP_NORESERVE, MAP_POPULATE, PROT_NONE = 0x10, 0x4000, 0x8000, 0
MAP_FAILED = ctypes.c_void_p(-1).value


class Ring:
    """`n` floats of virtual memory backed by one CHUNK of real memory."""

    def __init__(self, n, value=0.0):
        self.n = n
        self.size = -(-n * 4 // CHUNK) * CHUNK
        self.fd = os.memfd_create("dn-ring")
        os.ftruncate(self.fd, CHUNK)
        base = _libc.mmap(None, self.size, PROT_NONE,
                          mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        assert base not in (None, MAP_FAILED), os.strerror(ctypes.get_errno())
        self.base = base
        for off in range(0, self.size, CHUNK):
            got = _libc.mmap(base + off, CHUNK, mmap.PROT_READ | mmap.PROT_WRITE,
                             mmap.MAP_SHARED | MAP_FIXED | MAP_POPULATE, self.fd, 0)
            assert got == base + off, os.strerror(ctypes.get_errno())
        self.slots = np.ctypeslib.as_array((ctypes.c_float * CF).from_address(base))
        self.slots[:] = value

    @property
    def ptr(self):
        return ffi.cast("float *", self.base)

    def visits(self, n):
        """How often a loop over n elements passes each slot."""
        v = np.full(CF, n // CF, np.int64)
        v[: n % CF] += 1
        return v

    def close(self):
        self.slots = None
        _libc.munmap(self.base, self.size)
        os.close(self.fd)


@pytest.fixture
def rings():
    made = []

    def make(n, value=0.0):
        made.append(Ring(n, value))
        return made[-1]
    yield make
    for r in made:
        r.close()


def test_blas1_counts_past_int32(rings):
    x, y = rings(BIG, 1.0), rings(BIG, 0.0)
    lib.dn_axpy(BIG, 1.0, x.ptr, 1, y.ptr, 1)
    assert np.array_equal(y.slots, y.visits(BIG).astype(np.float32))
    lib.dn_copy(BIG, x.ptr, 1, y.ptr, 1)
    assert np.all(y.slots == 1.0)


def test_activation_reaches_the_end_past_int32(rings):
    x = rings(BIG, -1.0)
    check(lib.dn_activate(x.ptr, BIG, lib.DN_LEAKY), "activate")   # each visit: * 0.1
    assert np.all(x.slots == 0.0)


def test_sgd_updates_all_4x1073741826_weights(rings):
    """The issue's case: a weight count that is 8 modulo 2**32."""
    w, u = rings(HUGE, 0.0), rings(HUGE, 1.0)
    args = ffi.new("dn_update_args *")
    args.learning_rate, args.momentum, args.decay, args.batch = 1.0, 1.0, 0.0, 1
    p = ffi.new("dn_param[]", 1)
    p[0].value, p[0].grad, p[0].n = w.ptr, u.ptr, HUGE
    p[0].learning_rate_scale, p[0].decay = 1.0, 0
    check(lib.dn_sgd_update(args, p, 1), "sgd")
    # w += 1 * u per visit; u is unchanged (momentum 1)
    assert np.array_equal(w.slots, w.visits(HUGE).astype(np.float32))


def test_cost_backward_rows_past_int32(rings):
    cost = ffi.new("dn_cost *")
    delta, prev = rings(BIG, 1.0), rings(BIG, 0.0)
    cost.batch, cost.inputs, cost.cost_type, cost.scale = 2, BIG // 2, lib.DN_COST_SSE, 1.0
    cost.output, cost.delta = delta.ptr, delta.ptr
    check(lib.dn_cost_backward(cost, prev.ptr), "cost backward")
    assert np.array_equal(prev.slots, prev.visits(BIG).astype(np.float32))


def test_connected_forward_rows_times_outputs_past_int32(rings):
    """batch * outputs beyond 2**31 in [connected] (reference kernel:
    Darknet's loops): the output fill, the bias loop and the activation
    reach the end."""
    ctx = Context("reference", 1)
    c = ffi.new("dn_connected *")
    c.batch, c.steps, c.inputs, c.outputs = 2, 1, 1, BIG // 2
    c.activation = lib.DN_RELU
    w, b, o = rings(BIG, 1.0), rings(BIG, -5.0), rings(BIG, 7.0)
    c.weights, c.biases, c.output = w.ptr, b.ptr, o.ptr
    c.weight_updates = c.bias_updates = c.delta = w.ptr       # not used by forward
    x = np.ones(2, np.float32)
    check(lib.dn_connected_forward(ctx.ptr, c, 0, ffi.cast("float *", x.ctypes.data), 1),
          "connected forward")
    # relu(1 * 1 - 5) = 0 wherever the fill, bias and activation loops reached
    assert np.all(o.slots == 0.0)
