"""[gru] and [lstm] under AddressSanitizer and UBSan: a C driver
(tests/c/gated_asan.c) trains (Darknet's backward, a partial fix set and
exact BPTT; with and without batch norm; one and several steps) and then
predicts on every kernel this CPU runs, each buffer malloc'ed at exactly its
documented size."""
import pathlib
import shutil
import subprocess

ROOT = pathlib.Path(__file__).resolve().parent.parent
CSRC = ROOT / "csrc"


def test_gru_lstm_have_no_invalid_memory_access(tmp_path):
    cc = shutil.which("gcc") or shutil.which("cc")
    assert cc, "a C compiler is required to build the ASan driver"
    exe = tmp_path / "gated_asan"
    sources = [str(p) for p in sorted(CSRC.glob("*.c"))]
    cmd = [cc, "-O1", "-g", "-std=c99", "-ffp-contract=off", "-fsanitize=address,undefined",
           "-fno-omit-frame-pointer", "-fno-sanitize-recover=all", "-pthread", f"-I{CSRC}",
           str(ROOT / "tests" / "c" / "gated_asan.c"), *sources, "-o", str(exe), "-lm"]
    build = subprocess.run(cmd, capture_output=True, text=True)
    assert build.returncode == 0, f"build failed:\n{build.stderr[-3000:]}"
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=300,
                         env={"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0"})
    assert run.returncode == 0, f"ASan/UBSan or status failure:\n{run.stdout}\n{run.stderr[-5000:]}"
    assert "ok" in run.stdout
