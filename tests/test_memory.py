"""The RNN under AddressSanitizer: a C driver (tests/c/rnn_asan.c) runs
training forward/backward/update at steps 8 and 9 (plus inference) on every
kernel this CPU runs, with each buffer malloc'ed at exactly its documented
size. Upstream Darknet writes `steps` state blocks past a one-block buffer
here (SPEC Q1); any such access makes ASan abort the driver."""
import importlib.util
import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
CSRC = ROOT / "csrc"


def load_flags():
    """csrc/flags.py: the extension's flags and source list (loaded by path)."""
    spec = importlib.util.spec_from_file_location("darknet_rnn_csrc_flags", CSRC / "flags.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# rnn_asan.c: the [rnn]; birnn_asan.c: the bidirectional [rnn] and the loss masks
@pytest.mark.parametrize("driver", ["rnn_asan", "birnn_asan"])
def test_rnn_training_has_no_invalid_memory_access(tmp_path, driver):
    cc = shutil.which("gcc") or shutil.which("cc")
    assert cc, "a C compiler is required to build the ASan driver"
    exe = tmp_path / driver
    flags = load_flags()
    cmd = [cc, *flags.sanitize_cflags(), *flags.THREAD_FLAGS, f"-I{CSRC}",
           str(ROOT / "tests" / "c" / f"{driver}.c"), *flags.sources(), "-o", str(exe),
           *flags.link_flags()]
    build = subprocess.run(cmd, capture_output=True, text=True)
    assert build.returncode == 0, f"build failed:\n{build.stderr[-3000:]}"
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=300,
                         env={"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0"})
    assert run.returncode == 0, f"ASan/UBSan or status failure:\n{run.stdout}\n{run.stderr[-5000:]}"
    assert "ok" in run.stdout
