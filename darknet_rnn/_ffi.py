"""Glue to the compiled C core: status checks, buffer pointers, and the
execution context (kernel choice, threads, GEMM workspace).

The context is the one piece of process-wide Python state: the kernel named
by DARKNET_RNN_KERNEL (auto | reference | portable | avx2 | avx512) and the
thread count (set_num_threads, else OMP_NUM_THREADS, else 1). C itself keeps
no global state: every call gets the context explicitly.
"""
import os

import numpy as np

from .errors import KernelError, NativeError

try:
    from ._native import ffi, lib
except ImportError as exc:  # pragma: no cover - only without a build
    raise ImportError(
        "darknet_rnn's compiled module is missing: install the package with "
        "`pip install .` (or `pip install -e .` for a working tree)") from exc

KERNELS = {"reference": lib.DN_KERNEL_REFERENCE, "portable": lib.DN_KERNEL_PORTABLE,
           "avx2": lib.DN_KERNEL_AVX2, "avx512": lib.DN_KERNEL_AVX512}
KERNEL_NAMES = {v: k for k, v in KERNELS.items()}


def check(status, what):
    """Raise NativeError for a non-zero dn_status."""
    if status:
        msg = ffi.string(lib.dn_status_string(status)).decode()
        raise NativeError(f"{what}: {msg} (status {status})")


def fptr(arr):
    """float* to the data of a float32 C-contiguous array (no copy)."""
    return ffi.cast("float *", ffi.from_buffer(arr))


def available_kernels():
    mask = lib.dn_kernels_available()
    return [name for name, k in KERNELS.items() if mask & (1 << k)]


def resolve_kernel(name):
    """The dn_kernel id for a kernel name ('auto' picks the fastest)."""
    if name is None or name == "" or name == "auto":
        return lib.dn_kernel_auto()
    if name not in KERNELS:
        raise KernelError(f"DARKNET_RNN_KERNEL={name!r}: unknown kernel; expected one of "
                          "auto, " + ", ".join(KERNELS))
    k = KERNELS[name]
    if not lib.dn_kernels_available() & (1 << k):
        raise KernelError(f"kernel {name!r} is not supported by this CPU "
                          f"(available: {', '.join(available_kernels())})")
    return k


class Context:
    """A dn_ctx plus the GEMM workspace it points to."""

    def __init__(self, kernel=None, threads=None):
        if kernel is None:
            kernel = os.environ.get("DARKNET_RNN_KERNEL", "auto")
        self.kernel = resolve_kernel(kernel) if isinstance(kernel, str) else int(kernel)
        if threads is None:
            threads = _default_threads()
        threads = int(threads)
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self.threads = threads
        self._c = ffi.new("dn_ctx *")
        self._c.kernel = self.kernel
        self._c.threads = threads
        n = int(lib.dn_gemm_work_floats(self.kernel, threads))
        self._work = np.zeros(max(n, 1), dtype=np.float32)
        self._c.work = fptr(self._work)
        self._c.work_floats = n
        self._pool = None
        if threads > 1 and self.kernel != lib.DN_KERNEL_REFERENCE:
            # persistent workers, joined when this context is collected
            out = ffi.new("dn_pool **")
            check(lib.dn_pool_create(threads, out), "thread pool")
            self._pool = ffi.gc(out[0], lib.dn_pool_destroy)
            self._c.pool = self._pool

    @property
    def kernel_name(self):
        return KERNEL_NAMES[self.kernel]

    @property
    def ptr(self):
        return self._c

    def __repr__(self):
        return f"Context(kernel={self.kernel_name!r}, threads={self.threads})"


def _default_threads():
    v = os.environ.get("OMP_NUM_THREADS")
    if v:
        try:
            return max(1, int(v.split(",")[0]))
        except ValueError:
            pass
    return 1


_default = None


def default_context():
    """The process-wide context (created on first use from the environment)."""
    global _default
    if _default is None:
        _default = Context()
    return _default


def set_kernel(name):
    """Select the kernel for layers created or run with the default context."""
    global _default
    threads = _default.threads if _default is not None else None
    _default = Context(name, threads)
    return _default


def set_num_threads(n):
    """Threads used by fast kernels (the reference kernel is single-threaded)."""
    global _default
    kernel = _default.kernel if _default is not None else None
    _default = Context(kernel, n)
    return _default
