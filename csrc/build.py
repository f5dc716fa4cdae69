"""cffi builder for darknet_rnn._native (out-of-line API mode).

setup.py names `csrc/build.py:ffibuilder` in `cffi_modules`; `pip install .`
compiles every csrc/*.c into the extension. The cdef is darknet_rnn.h with
preprocessor lines removed, so the header stays the single source of truth.

Flags: -O3 without fast-math and with -ffp-contract=off: every float and
double operation rounds as written (no FMA contraction, no reassociation, so
reductions keep their order), which is what makes the reference kernels
round exactly as Darknet built with -O2 does (SPEC section 12); -O3 only
adds vectorisation of elementwise loops, which does not change results.
-fno-trapping-math lets GCC evaluate both sides of a select (e.g. leaky's
x > 0 ? x : 0.1*x) so such loops vectorise; it only gives up FP traps and
exception flags, never a value (tests/test_goldens.py checks bit for bit). SIMD
kernels are enabled per function with target attributes, never -march=native.
"""
import os
import pathlib

import cffi

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent

CFLAGS = ["-O3", "-std=c99", "-ffp-contract=off", "-fno-fast-math", "-fno-trapping-math",
          "-fno-strict-aliasing", "-Wall", "-Wno-unused-function"]


def cdef_text():
    lines = (HERE / "darknet_rnn.h").read_text().splitlines()
    return "\n".join(l for l in lines if not l.lstrip().startswith("#"))


def sources():
    # setuptools wants paths relative to setup.py
    return sorted(os.path.relpath(p, ROOT) for p in HERE.glob("*.c"))


ffibuilder = cffi.FFI()
ffibuilder.cdef(cdef_text())
ffibuilder.set_source(
    "darknet_rnn._native",
    '#include "darknet_rnn.h"\n',
    sources=sources(),
    include_dirs=[os.path.relpath(HERE, ROOT)],
    extra_compile_args=CFLAGS + ["-pthread"],
    define_macros=[("DN_CFLAGS", '"' + " ".join(CFLAGS) + '"')],
    extra_link_args=["-pthread"],
    libraries=["m"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
