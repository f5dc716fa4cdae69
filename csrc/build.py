"""cffi builder for darknet_rnn._native (out-of-line API mode).

setup.py names `csrc/build.py:ffibuilder` in `cffi_modules`; `pip install .`
compiles every csrc/*.c into the extension. The cdef is darknet_rnn.h with
preprocessor lines removed, so the header stays the single source of truth.

Flags and the source list come from csrc/flags.py, which the test harnesses
that compile C use as well; why the flags are what they are is written
there. csrc/ is not a package and cffi runs this file with exec, so
flags.py is loaded by path.
"""
import importlib.util
import os
import pathlib

import cffi

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent


def _load_flags():
    spec = importlib.util.spec_from_file_location("darknet_rnn_csrc_flags", HERE / "flags.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


flags = _load_flags()
CFLAGS = flags.CFLAGS


def cdef_text():
    lines = (HERE / "darknet_rnn.h").read_text().splitlines()
    return "\n".join(l for l in lines if not l.lstrip().startswith("#"))


def sources():
    # setuptools wants paths relative to setup.py
    return [os.path.relpath(p, ROOT) for p in flags.sources()]


ffibuilder = cffi.FFI()
ffibuilder.cdef(cdef_text())
ffibuilder.set_source(
    "darknet_rnn._native",
    '#include "darknet_rnn.h"\n',
    sources=sources(),
    include_dirs=[os.path.relpath(HERE, ROOT)],
    extra_compile_args=CFLAGS + flags.THREAD_FLAGS,
    # reported by dn_build_flags() (blas.c): the flags that decide the results
    define_macros=[("DN_CFLAGS", '"' + " ".join(CFLAGS) + '"')],
    extra_link_args=flags.THREAD_FLAGS,
    libraries=flags.LIBS,
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
