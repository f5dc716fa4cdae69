"""Time dn_gemm_fast against numpy.matmul (OpenBLAS) on the RNN's GEMM shapes.

Not a test (no assertions): a developer tool. It compiles the extension's C
sources with the extension's flags (both from csrc/flags.py) into a shared
library under a temporary directory,
calls it through ctypes, and prints GFLOP/s per shape and transpose case,
numpy first, then each fast kernel, with the ratio kernel/numpy.

    python tests/c/compare_numpy.py [--threads 1] [--kernel avx512] [--reps 11]

OPENBLAS_CORETYPE is removed from the environment before numpy is imported
(this environment sets it to Haswell, which holds OpenBLAS to AVX2), and
OPENBLAS_NUM_THREADS is set to --threads, so both sides use the same number
of cores and OpenBLAS its best kernels. Timings alternate between numpy and
the kernel, and each number is the median of --reps timed batches.
"""
import argparse
import ctypes
import importlib.util
import os
import pathlib
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
CSRC = ROOT / "csrc"
KERNELS = {"portable": 1, "avx2": 2, "avx512": 3}
SHAPES = [(32, 256, 256), (32, 512, 512), (2048, 256, 256), (2048, 512, 512),
          (2048, 256, 512), (2048, 512, 256), (1024, 1024, 1024),
          (1, 1024, 1024), (4, 1024, 1024), (16, 1024, 1024), (1024, 1024, 1),
          (1024, 1024, 32)]
CASES = [(0, 0), (0, 1), (1, 0), (1, 1)]


def load_flags():
    """csrc/flags.py: the extension's flags and source list (loaded by path)."""
    spec = importlib.util.spec_from_file_location("darknet_rnn_csrc_flags", CSRC / "flags.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class Ctx(ctypes.Structure):
    _fields_ = [("kernel", ctypes.c_int), ("threads", ctypes.c_int),
                ("work", ctypes.POINTER(ctypes.c_float)),
                ("work_floats", ctypes.c_long), ("pool", ctypes.c_void_p)]


def build(tmp):
    flags = load_flags()
    lib = pathlib.Path(tmp) / "libdarknet_rnn_c.so"
    subprocess.check_call(["gcc", *flags.CFLAGS, *flags.THREAD_FLAGS, "-fPIC", "-shared",
                           "-I", str(CSRC), *flags.sources(), "-o", str(lib),
                           *flags.link_flags()])
    return ctypes.CDLL(str(lib))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--kernel", action="append", choices=sorted(KERNELS))
    ap.add_argument("--reps", type=int, default=11)
    args = ap.parse_args()

    os.environ.pop("OPENBLAS_CORETYPE", None)
    os.environ["OPENBLAS_NUM_THREADS"] = str(args.threads)
    import numpy as np  # after the environment is set

    with tempfile.TemporaryDirectory() as tmp:
        lib = build(tmp)
        lib.dn_kernels_available.restype = ctypes.c_int
        lib.dn_gemm_work_floats.restype = ctypes.c_long
        fp = ctypes.POINTER(ctypes.c_float)
        lib.dn_gemm_fast.argtypes = [ctypes.POINTER(Ctx), ctypes.c_int, ctypes.c_int,
                                     ctypes.c_int, ctypes.c_int, ctypes.c_int,
                                     ctypes.c_float, fp, ctypes.c_int, fp,
                                     ctypes.c_int, ctypes.c_float, fp, ctypes.c_int]
        avail = lib.dn_kernels_available()
        names = [k for k in (args.kernel or ["avx512", "avx2"]) if avail & (1 << KERNELS[k])]
        ctxs = {}
        for k in names:
            n = lib.dn_gemm_work_floats(KERNELS[k], args.threads)
            work = np.zeros(n, np.float32)
            ctxs[k] = (Ctx(KERNELS[k], args.threads, work.ctypes.data_as(fp), n), work)

        print(f"GFLOP/s, {args.threads} thread(s), median of {args.reps}; "
              f"numpy {np.__version__}, OPENBLAS_CORETYPE unset")
        print(f"{'shape (M,N,K)':>18} {'case':>4} {'numpy':>7} " +
              " ".join(f"{k:>7} {'ratio':>5}" for k in names))
        rng = np.random.default_rng(0)
        for (M, N, K) in SHAPES:
            for TA, TB in CASES:
                A = rng.standard_normal((K, M) if TA else (M, K)).astype(np.float32)
                B = rng.standard_normal((N, K) if TB else (K, N)).astype(np.float32)
                C = np.empty((M, N), np.float32)
                opA, opB = (A.T if TA else A), (B.T if TB else B)
                flops = 2.0 * M * N * K
                reps = max(1, int(2e7 / flops))
                pa, pb, pc = (x.ctypes.data_as(fp) for x in (A, B, C))
                lda, ldb = (M if TA else K), (K if TB else N)

                def run_np():
                    for _ in range(reps):
                        np.matmul(opA, opB, out=C)

                def make_run(ctx):
                    ref = ctypes.byref(ctx)
                    f = lib.dn_gemm_fast

                    def run():
                        for _ in range(reps):
                            f(ref, TA, TB, M, N, K, 1.0, pa, lda, pb, ldb, 0.0, pc, N)
                    return run

                runs = [run_np] + [make_run(ctxs[k][0]) for k in names]
                times = [[] for _ in runs]
                for f in runs:
                    f()  # warm up
                for _ in range(args.reps):
                    for f, t in zip(runs, times):
                        t0 = time.perf_counter()
                        f()
                        t.append((time.perf_counter() - t0) / reps)
                gf = [flops / sorted(t)[len(t) // 2] / 1e9 for t in times]
                want = opA.astype(np.float64) @ opB.astype(np.float64)
                line = f"{str((M, N, K)):>18} {'NT'[TA] + 'NT'[TB]:>4} {gf[0]:7.1f} "
                for k, g in zip(names, gf[1:]):
                    line += f"{g:7.1f} {g / gf[0]:5.2f} "
                print(line, flush=True)
                for k in names:  # the timed result must also be right
                    lib.dn_gemm_fast(ctypes.byref(ctxs[k][0]), TA, TB, M, N, K, 1.0,
                                     pa, lda, pb, ldb, 0.0, pc, N)
                    scale = np.abs(opA).astype(np.float64) @ np.abs(opB).astype(np.float64)
                    if not np.all(np.abs(C - want) <= 1e-5 * scale + 1e-30):
                        print(f"  MISMATCH {k}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
