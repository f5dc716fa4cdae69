"""GEMM kernels: every kernel this CPU runs, the four transpose cases, odd
shapes, alpha/beta (beta=0 must ignore NaN in C), leading dimensions, thread
counts - against a float64 product. The C harness (tests/c/gemm_check.c)
covers ~2000 cases; the Python part checks the same through cffi, i.e. the
path the layers use."""
import importlib.util
import pathlib
import shutil
import subprocess

import numpy as np
import pytest

from darknet_rnn import _ffi
from darknet_rnn._ffi import ffi, fptr, lib

ROOT = pathlib.Path(__file__).resolve().parent.parent
KERNELS = _ffi.available_kernels()


def load_flags():
    """csrc/flags.py: the extension's flags and source list (loaded by path)."""
    spec = importlib.util.spec_from_file_location("darknet_rnn_csrc_flags",
                                                  ROOT / "csrc" / "flags.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_c_harness_all_kernels(tmp_path):
    cc = shutil.which("gcc") or shutil.which("cc")
    assert cc, "a C compiler is required to build the GEMM harness"
    exe = tmp_path / "gemm_check"
    # the extension's flags and all its sources, so the harness checks the
    # very code the layers run (and picks up new files)
    flags = load_flags()
    cmd = [cc, *flags.CFLAGS, *flags.THREAD_FLAGS, f"-I{ROOT / 'csrc'}",
           str(ROOT / "tests" / "c" / "gemm_check.c"), *flags.sources(), "-o", str(exe),
           *flags.link_flags()]
    build = subprocess.run(cmd, capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[-3000:]
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-2000:]
    assert " 0 failed" in run.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("ta,tb", [(0, 0), (0, 1), (1, 0), (1, 1)])
@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (1, 300, 257), (7, 33, 65), (33, 17, 130),
                                   (130, 70, 9), (200, 300, 300), (9, 1030, 520),
                                   (40, 263, 2000)])
def test_gemm_through_cffi(kernel, ta, tb, m, n, k, threads):
    rng = np.random.default_rng(m * 1000 + n + k)
    ctx = _ffi.Context(kernel, threads)
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(np.float32)
    b = rng.standard_normal((n, k) if tb else (k, n)).astype(np.float32)
    c0 = rng.standard_normal((m, n)).astype(np.float32)
    alpha, beta = 0.75, 0.5
    expect = alpha * ((a.T if ta else a).astype(np.float64) @ (b.T if tb else b)) + beta * c0
    c = c0.copy()
    _ffi.check(lib.dn_gemm(ctx.ptr, ta, tb, m, n, k, alpha, fptr(a), a.shape[1], fptr(b),
                           b.shape[1], beta, fptr(c), n), "gemm")
    scale = np.abs(a).max() * np.abs(b).max() * k + 1
    assert np.max(np.abs(c - expect)) <= 1e-5 * scale, kernel
    # beta = 0: fast kernels overwrite C without reading it (BLAS convention);
    # the reference kernel is Darknet's gemm_cpu, which first scales C by beta,
    # so a NaN already in C stays NaN (0 * NaN), exactly as in Darknet.
    c = np.full((m, n), np.nan, np.float32)
    _ffi.check(lib.dn_gemm(ctx.ptr, ta, tb, m, n, k, alpha, fptr(a), a.shape[1], fptr(b),
                           b.shape[1], 0.0, fptr(c), n), "gemm")
    if kernel == "reference":
        assert np.all(np.isnan(c))
    else:
        assert np.all(np.isfinite(c)) and np.max(np.abs(c - (expect - beta * c0))) <= 1e-5 * scale


def test_reference_kernel_is_darknets_summation_order():
    """NT: a float accumulator from 0 over k, then added to C (order matters in float32)."""
    ctx = _ffi.Context("reference", 1)
    a = np.array([[1e8, 1.0, -1e8, 1.0]], np.float32)
    b = np.ones((1, 4), np.float32)
    c = np.zeros((1, 1), np.float32)
    _ffi.check(lib.dn_gemm(ctx.ptr, 0, 1, 1, 1, 4, 1.0, fptr(a), 4, fptr(b), 4, 1.0, fptr(c), 1),
               "gemm")
    assert c[0, 0] == np.float32(1.0)   # ((1e8 + 1) - 1e8) + 1 in float32 = 0 + 1


def test_gemm_rejects_bad_arguments():
    ctx = _ffi.Context("reference", 1)
    a = np.zeros((2, 2), np.float32)
    st = lib.dn_gemm(ctx.ptr, 0, 0, -1, 2, 2, 1.0, fptr(a), 2, fptr(a), 2, 0.0, fptr(a), 2)
    assert st == lib.DN_ERR_ARG
    st = lib.dn_gemm(ctx.ptr, 0, 0, 2, 2, 2, 1.0, fptr(a), 1, fptr(a), 2, 0.0, fptr(a), 2)
    assert st == lib.DN_ERR_ARG                        # lda < K
    st = lib.dn_gemm(ctx.ptr, 0, 0, 2, 2, 2, 1.0, ffi.NULL, 2, fptr(a), 2, 0.0, fptr(a), 2)
    assert st == lib.DN_ERR_ARG



def _pool_case(ctx):
    rng = np.random.default_rng(5)
    m, n, k = 64, 700, 300          # above the split threshold with a pool
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    c = np.zeros((m, n), np.float32)
    _ffi.check(lib.dn_gemm(ctx.ptr, 0, 0, m, n, k, 1.0, fptr(a), k, fptr(b), n, 0.0,
                           fptr(c), n), "gemm")
    return c, a.astype(np.float64) @ b


_FORK_CTX = None


def _pool_child(q):
    # runs in a forked process, where the parent's pool has no workers
    c, expect = _pool_case(_FORK_CTX)
    q.put(float(np.max(np.abs(c - expect))))


@pytest.mark.parametrize("kernel", [k for k in KERNELS if k != "reference"])
def test_thread_pool_same_bits_and_fork_safe(kernel):
    import multiprocessing as mp
    global _FORK_CTX
    ctx = _ffi.Context(kernel, 2)
    assert ctx._pool is not None and lib.dn_pool_threads(ctx._pool) == 2
    assert _ffi.Context(kernel, 1)._pool is None
    assert _ffi.Context("reference", 2)._pool is None
    with_pool, expect = _pool_case(ctx)
    assert np.max(np.abs(with_pool - expect)) < 1e-3
    ctx.ptr.pool = ffi.NULL                 # threads made per call instead
    per_call, _ = _pool_case(ctx)
    ctx.ptr.pool = ctx._pool
    assert np.array_equal(with_pool, per_call)
    _FORK_CTX = ctx
    fork = mp.get_context("fork")
    q = fork.Queue()
    proc = fork.Process(target=_pool_child, args=(q,))
    proc.start()
    proc.join(60)
    hung = proc.is_alive()
    if hung:
        proc.kill()
    assert not hung, "a GEMM on a pooled context hung in a forked process"
    assert proc.exitcode == 0 and q.get(timeout=10) < 1e-3
