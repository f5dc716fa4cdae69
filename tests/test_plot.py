"""Plots through matplotlib (optional), the message without it, and
`bench --quick` (short, and writing files only when asked)."""
import importlib.util
import json
import os
import subprocess
import sys
import time

import pytest

from darknet_rnn import plot as P
from test_cli import ROOT, make_cfg, make_corpus, one_error_line

HAVE_MPL = importlib.util.find_spec("matplotlib") is not None
NEEDS_MPL = pytest.mark.skipif(not HAVE_MPL, reason="matplotlib is not installed (pip install "
                               "'darknet_rnn[plot]'); plotting is optional")

LOG = ("iteration,seen,loss,avg_loss,rate,seconds,epochs,train_eval,valid_eval,eval_unit,"
       "eval_seconds\n"
       "1,32,5.5,5.5,0.1,0.01,0.1,,,,\n"
       "2,64,5.0,5.45,0.1,0.01,0.2,6.9,7.1,bpc,0.2\n"
       "3,96,4.5,5.35,0.1,0.01,0.3,,,,\n"
       "4,128,4.0,5.2,0.1,0.01,0.4,6.0,6.4,bpc,0.2\n")


def env_without_matplotlib():
    """A python -c prelude that makes `import matplotlib` fail."""
    return "import sys; sys.modules['matplotlib'] = None; "


@NEEDS_MPL
def test_loss_log_plot(tmp_path):
    log = tmp_path / "x.loss.csv"
    log.write_text(LOG)
    c = P.read_loss_log(log)
    assert c["iteration"] == [1, 2, 3, 4] and c["unit"] == "bpc"
    assert c["valid_eval"][1] == 7.1 and c["valid_eval"][0] != c["valid_eval"][0]   # NaN
    out = P.plot_loss_log(log, tmp_path / "x.png", title="x")
    data = (tmp_path / "x.png").read_bytes()
    assert out == tmp_path / "x.png" and data[:8] == b"\x89PNG\r\n\x1a\n"
    from matplotlib.image import imread
    img = imread(str(tmp_path / "x.png"))
    assert img.shape[:2] == (450, 800)
    assert not [f for f in os.listdir(tmp_path) if "tmp" in f]      # written atomically
    P.bar_chart(tmp_path / "b.png", [("a", 1.0), ("b", 2.5)], title="t")
    assert (tmp_path / "b.png").read_bytes()[:4] == b"\x89PNG"


def test_without_matplotlib_one_line_and_nothing_trained(tmp_path):
    cfg = make_cfg(tmp_path / "t.cfg")
    corpus = tmp_path / "c.txt"
    corpus.write_bytes(make_corpus())
    code = (env_without_matplotlib() + "from darknet_rnn.cli import main; "
            f"sys.exit(main(['train', {cfg!r}, '--file', {str(corpus)!r}, '--out', "
            f"{str(tmp_path / 'o')!r}, '--plot']))")
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, env=env, timeout=120)
    one_error_line(p, r'--plot: plotting needs matplotlib.*pip install "darknet_rnn\[plot\]"')
    assert not (tmp_path / "o").exists()
    code = env_without_matplotlib() + "from darknet_rnn import plot; print(plot.available())"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, env=env, timeout=60)
    assert p.stdout.strip() == b"False"


def test_core_import_does_not_need_matplotlib():
    code = (env_without_matplotlib() + "import darknet_rnn.cli, darknet_rnn.text, "
            "darknet_rnn.network, darknet_rnn.plot, darknet_rnn.bench; print('ok')")
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, env=env, timeout=60)
    assert p.stdout.strip() == b"ok", p.stderr.decode()


def test_bench_quick_is_short_and_writes_only_what_is_asked(tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "darknet_rnn", "bench", "--quick"],
                       capture_output=True, env=env, cwd=str(tmp_path), timeout=120)
    took = time.perf_counter() - t0
    assert p.returncode == 0, p.stderr.decode()
    assert b"Training step" in p.stdout and b"GEMM alone" in p.stdout
    assert os.listdir(tmp_path) == []                       # no bench.json unasked
    assert took < 30, f"bench --quick took {took:.1f} s"    # ~10 s here; shared machine
    p = subprocess.run([sys.executable, "-m", "darknet_rnn", "bench", "--quick", "--threads",
                        "1", "--rounds", "1", "--json", "r.json"], capture_output=True, env=env,
                       cwd=str(tmp_path), timeout=120)
    assert p.returncode == 0, p.stderr.decode()
    assert os.listdir(tmp_path) == ["r.json"]
    assert json.loads((tmp_path / "r.json").read_text())["runs"][0]["threads"] == 1
