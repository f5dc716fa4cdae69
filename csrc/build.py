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


def sources(relative=True):
    # setuptools wants paths relative to setup.py
    return [os.path.relpath(p, ROOT) if relative else p for p in flags.sources()]


def make_ffibuilder(cflags=None, link_args=(), relative=True):
    """The cffi builder of darknet_rnn._native with the given compile flags
    (default: flags.CFLAGS); the sanitizer pass (tests/test_sanitizers.py)
    builds the same module with flags.sanitize_cflags() and absolute paths."""
    cflags = list(CFLAGS if cflags is None else cflags)
    b = cffi.FFI()
    b.cdef(cdef_text())
    b.set_source(
        "darknet_rnn._native",
        '#include "darknet_rnn.h"\n',
        sources=sources(relative),
        include_dirs=[os.path.relpath(HERE, ROOT) if relative else str(HERE)],
        extra_compile_args=cflags + flags.THREAD_FLAGS,
        # reported by dn_build_flags() (blas.c): the flags that decide the results
        define_macros=[("DN_CFLAGS", '"' + " ".join(cflags) + '"')],
        extra_link_args=flags.THREAD_FLAGS + list(link_args),
        libraries=flags.LIBS,
    )
    return b


ffibuilder = make_ffibuilder()

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
