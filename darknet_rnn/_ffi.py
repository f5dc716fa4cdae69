"""Glue to the compiled C core: status checks, buffer pointers, and the
execution context (kernel choice, threads, GEMM workspace).

The context is the one piece of process-wide Python state: the kernel named
by DARKNET_RNN_KERNEL (auto | reference | portable | avx2 | avx512) and the
thread count (set_num_threads, else OMP_NUM_THREADS, else 1). C itself keeps
no global state: every call gets the context explicitly.

Threads: a Context may be used from several Python threads at once (the C
calls release the GIL). Its mutable scratch, the GEMM workspace, is per
thread: `ctx.ptr` hands each calling thread its own dn_ctx and workspace.
The worker pool is shared; it runs one dispatch at a time and a concurrent
caller computes its blocks on threads of its own (pool.c), so results are
the same bits either way.
"""
import os
import threading

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
    """A kernel choice, a thread count and, for two or more threads, a pool
    of workers; `ptr` is the dn_ctx of the calling thread (see the module
    docstring: each thread gets its own GEMM workspace)."""

    def __init__(self, kernel=None, threads=None):
        if kernel is None:
            kernel = os.environ.get("DARKNET_RNN_KERNEL", "auto")
        self.kernel = resolve_kernel(kernel) if isinstance(kernel, str) else _kernel_id(kernel)
        if threads is None:
            threads = _default_threads()
        self.threads = _check_threads(threads)
        self._work_floats = int(lib.dn_gemm_work_floats(self.kernel, self.threads))
        self._local = threading.local()
        self._pool = None
        if self.threads > 1 and self.kernel != lib.DN_KERNEL_REFERENCE:
            # persistent workers, joined when this context is collected
            out = ffi.new("dn_pool **")
            check(lib.dn_pool_create(self.threads, out), "thread pool")
            self._pool = ffi.gc(out[0], lib.dn_pool_destroy)

    @property
    def kernel_name(self):
        return KERNEL_NAMES[self.kernel]

    @property
    def ptr(self):
        """The calling thread's dn_ctx (its own workspace, the shared pool).
        The thread keeps this context alive until its next call through any
        context, so the C call made with the pointer never outlives it."""
        c = getattr(self._local, "c", None)
        if c is None:
            work = np.zeros(max(self._work_floats, 1), dtype=np.float32)
            c = ffi.new("dn_ctx *")
            c.kernel = self.kernel
            c.threads = self.threads
            c.work = fptr(work)
            c.work_floats = self._work_floats
            c.pool = self._pool if self._pool is not None else ffi.NULL
            self._local.c, self._local.work = c, work
        _in_use.context = self
        return c

    def __repr__(self):
        return f"Context(kernel={self.kernel_name!r}, threads={self.threads})"


# per thread: the context of that thread's latest C call (see Context.ptr)
_in_use = threading.local()


def _kernel_id(kernel):
    """A dn_kernel id given as an int: known, and supported by this CPU."""
    if isinstance(kernel, bool) or not isinstance(kernel, (int, np.integer)):
        raise KernelError(f"kernel must be a name ({', '.join(KERNELS)}, auto) or a "
                          f"dn_kernel id, got {kernel!r}")
    k = int(kernel)
    if k not in KERNEL_NAMES:
        raise KernelError(f"kernel={k}: unknown kernel id; expected one of "
                          + ", ".join(f"{v} ({n})" for v, n in sorted(KERNEL_NAMES.items())))
    return resolve_kernel(KERNEL_NAMES[k])


MAX_THREADS = int(lib.DN_MAX_THREADS)


def _check_threads(threads):
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)):
        raise ValueError(f"threads must be an int >= 1 and <= {MAX_THREADS}, got {threads!r}")
    threads = int(threads)
    if not 1 <= threads <= MAX_THREADS:
        raise ValueError(f"threads must be >= 1 and <= {MAX_THREADS} (the most a context's "
                         f"thread pool may have), got {threads}")
    return threads


def _default_threads():
    v = os.environ.get("OMP_NUM_THREADS")
    if v:
        try:
            return min(MAX_THREADS, max(1, int(v.split(",")[0])))
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
