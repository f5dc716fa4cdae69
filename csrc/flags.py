"""The one definition of how csrc/ is compiled: flags and source list.

Used by the extension build (csrc/build.py) and by everything else that
compiles the C sources (tests/test_gemm.py, tests/test_memory.py,
tests/c/compare_numpy.py), so a harness always builds the same files with the
same floating-point semantics as the extension. Pure Python, no imports
beyond the standard library: load it by path (see load() in the callers)
without building or importing darknet_rnn.

CFLAGS: -O3 without fast-math and with -ffp-contract=off: every float and
double operation rounds as written (no FMA contraction, no reassociation, so
reductions keep their order), which is what makes the reference kernels round
exactly as Darknet built with -O2 does (SPEC section 12); -O3 only adds
vectorisation of elementwise loops, which does not change results.
-fno-trapping-math lets GCC evaluate both sides of a select (e.g. leaky's
x > 0 ? x : 0.1*x) so such loops vectorise; it only gives up FP traps and
exception flags, never a value (tests/test_goldens.py checks bit for bit).
SIMD kernels are enabled per function with target attributes, never
-march=native, so the same flags build code that runs on any x86-64.

Variants are derived from CFLAGS by swapping the optimisation level and
adding options, never by restating the list, so they cannot drift:
  sanitize_cflags()  ASan + UBSan at -O1 with debug info (tests/test_memory.py)
  debug_cflags()     -O0 -g, for stepping through the kernels in a debugger
"""
import pathlib

CSRC = pathlib.Path(__file__).resolve().parent

# What decides the results (see above); the extension and every harness.
CFLAGS = ["-O3", "-std=c99", "-ffp-contract=off", "-fno-fast-math", "-fno-trapping-math",
          "-fno-strict-aliasing", "-Wall", "-Wno-unused-function"]
# The GEMM's threads and the pool (pool.c) need pthreads at compile and link time.
THREAD_FLAGS = ["-pthread"]
LIBS = ["m"]

SANITIZERS = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer",
              "-fno-sanitize-recover=all"]


def _with_opt(level, extra):
    return [level if f.startswith("-O") else f for f in CFLAGS] + extra


def sanitize_cflags():
    """CFLAGS at -O1 with -g and ASan/UBSan, aborting on the first error."""
    return _with_opt("-O1", ["-g"] + SANITIZERS)


def debug_cflags():
    """CFLAGS at -O0 with -g: same FP semantics, every line steppable."""
    return _with_opt("-O0", ["-g"])


def sources():
    """Every C source of the extension, absolute paths, sorted."""
    return sorted(str(p) for p in CSRC.glob("*.c"))


def link_flags():
    """What a standalone program linking sources() needs after its objects."""
    return THREAD_FLAGS + ["-l" + lib for lib in LIBS]
