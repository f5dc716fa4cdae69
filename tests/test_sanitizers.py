"""The whole suite under AddressSanitizer + UBSan (run with --full; CI does).

The C core is compiled once more with csrc/flags.py's sanitize_cflags()
(ASan + UBSan, -O1 -g, abort at the first error) into a copy of the package
(the Python files are symlinks, only the extension differs), and the test
suite runs again in a subprocess against it, with the ASan runtime
preloaded into Python. Every C path the suite reaches - training, inference,
the fuzz tests' hostile cfgs and weights, the threads tests, the CLI's
subprocesses - is then checked for out-of-bounds access, use after free
and undefined behaviour; any report fails this test with its text.

Not repeated under the sanitizers: the tests that compile C harnesses
themselves (test_memory.py is an ASan harness already; test_gemm's C
harness) and the `full` tests (the 64-bit loops would take minutes there).
"""
import importlib.util
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
CSRC = ROOT / "csrc"

pytestmark = pytest.mark.full

SKIP_UNDER_SANITIZERS = [
    "tests/test_memory.py",
    "tests/test_gemm.py::test_c_harness_all_kernels",
    "tests/test_sanitizers.py",
]


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _runtime(cc, name):
    out = subprocess.run([cc, f"-print-file-name={name}"], capture_output=True, text=True)
    path = out.stdout.strip()
    return path if os.path.isabs(path) and os.path.exists(path) else None


def _overlay(dest, so):
    """dest/ holding the repository's files as symlinks, except
    darknet_rnn/_native*.so, which is the sanitized build `so`."""
    dest.mkdir()
    for item in ROOT.iterdir():
        if item.name in ("darknet_rnn", ".git", "build", ".venv") or item.name.startswith("."):
            continue
        (dest / item.name).symlink_to(item)
    pkg = dest / "darknet_rnn"
    pkg.mkdir()
    for item in (ROOT / "darknet_rnn").iterdir():
        if item.name.startswith("_native") or item.name == "__pycache__":
            continue
        (pkg / item.name).symlink_to(item)
    shutil.copy(so, pkg / so.name)
    return dest


def test_suite_under_asan_and_ubsan(tmp_path):
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler")
    libasan = _runtime(cc, "libasan.so")
    if libasan is None:
        pytest.skip("the compiler has no ASan runtime (libasan.so)")
    flags = _load("darknet_rnn_csrc_flags", CSRC / "flags.py")
    build = _load("darknet_rnn_csrc_build", CSRC / "build.py")
    ffib = build.make_ffibuilder(flags.sanitize_cflags(), flags.SANITIZERS, relative=False)
    out = tmp_path / "build"
    so = pathlib.Path(ffib.compile(tmpdir=str(out), verbose=False))
    root = _overlay(tmp_path / "tree", so)

    env = dict(os.environ)
    env.update({
        # libstdc++ beside the runtime: ASan's __cxa_throw interceptor must find
        # the real one when an uninstrumented C++ extension (matplotlib's
        # ft2font) throws, or ASan aborts with a CHECK failure
        "LD_PRELOAD": " ".join(p for p in (libasan, _runtime(cc, "libstdc++.so.6")) if p),
        # Python and NumPy are not instrumented: no leak report for them;
        # NULL (MemoryError) for the huge allocations some tests provoke
        "ASAN_OPTIONS": "detect_leaks=0:allocator_may_return_null=1:abort_on_error=0:"
                        "halt_on_error=1:exitcode=86",
        "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1:exitcode=87",
        "PYTHONPATH": str(root),
        "DARKNET_RNN_SANITIZED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
    })
    # the sanitized extension is the one the suite will import
    check = subprocess.run([sys.executable, "-c", "import darknet_rnn._native as n; "
                            "print(n.__file__)"], cwd=root, env=env, capture_output=True,
                           text=True)
    assert check.stdout.strip().startswith(str(root)), check.stdout + check.stderr
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "tests",
           *[f"--deselect={t}" for t in SKIP_UNDER_SANITIZERS]]
    run = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=1800)
    tail = (run.stdout[-6000:] + "\n" + run.stderr[-6000:])
    assert "ERROR: AddressSanitizer" not in run.stderr + run.stdout, tail
    assert "runtime error:" not in run.stderr + run.stdout, tail
    assert run.returncode == 0, tail
    import re
    m = re.search(r"(\d+) passed", run.stdout.strip().splitlines()[-1])
    assert m and int(m.group(1)) > 1000, tail            # the suite really ran
    print(run.stdout.strip().splitlines()[-1])
