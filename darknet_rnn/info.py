"""build_info(): what the compiled core is and which kernel runs."""
import os

from . import _ffi
from ._ffi import ffi, lib


def build_info():
    """A dict: kernel in use, kernels this CPU can run, threads, compiler flags."""
    ctx = _ffi.default_context()
    return {
        "kernel": ctx.kernel_name,
        "kernel_auto": _ffi.KERNEL_NAMES[lib.dn_kernel_auto()],
        "kernels_available": _ffi.available_kernels(),
        "DARKNET_RNN_KERNEL": os.environ.get("DARKNET_RNN_KERNEL", ""),
        "threads": ctx.threads,
        "cpu_count": os.cpu_count(),
        "compiler": ffi.string(lib.dn_build_flags()).decode(),
    }
