"""The darknet-rnn command line, end to end: `python -m darknet_rnn ...` in a
subprocess on a tiny generated corpus and tiny cfgs written into tmp_path.
"""
import csv
import importlib.util
import math
import os
import re
import signal
import struct
import subprocess
import sys
import time

import numpy as np
import pytest

import darknet_rnn
from darknet_rnn import text as T
from darknet_rnn._rand import GlibcRandom

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

HAVE_MPL = importlib.util.find_spec("matplotlib") is not None
NEEDS_MPL = pytest.mark.skipif(not HAVE_MPL, reason="matplotlib is not installed (pip install "
                               "'darknet_rnn[plot]'); the plot is optional")

NET = """[net]
batch={batch}
subdivisions=1
time_steps={steps}
inputs={inputs}
learning_rate=0.1
momentum=0.9
decay=0.001
max_batches={max_batches}
policy=constant

[rnn]
output={hidden}
activation=leaky
batch_normalize=1

[connected]
output=256
activation=leaky

[softmax]
"""

LOSS_LINE = re.compile(r"^(\d+): (\S+), (\S+) avg, (\S+) rate, (\S+) seconds, (\S+) epochs$")


def make_cfg(path, batch=4, steps=8, hidden=24, inputs=256, max_batches=30):
    path.write_text(NET.format(batch=batch, steps=steps, hidden=hidden, inputs=inputs,
                               max_batches=max_batches))
    return str(path)


def make_corpus(n_words=900, seed=0):
    words = ("the cat sat on a mat and the dog ran to the red door while "
             "a bird sang in the old tree near the river").split()
    gen = np.random.default_rng(seed)
    out = []
    for i in range(n_words):
        out.append(words[int(gen.integers(len(words)))])
        out.append(".\n" if i % 11 == 10 else " ")
    return "".join(out).encode()


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    corpus = d / "corpus.txt"
    corpus.write_bytes(make_corpus())
    return {
        "dir": d,
        "corpus": str(corpus),
        "train_cfg": make_cfg(d / "tiny.train.cfg"),
        "infer_cfg": make_cfg(d / "tiny.cfg", batch=1, steps=1),
    }


def run(*args, input=None, timeout=120):
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "darknet_rnn", *map(str, args)],
                          input=input, capture_output=True, timeout=timeout, env=env, cwd=ROOT)


def ok(proc):
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert b"Traceback" not in proc.stderr
    return proc


def one_error_line(proc, pattern):
    err = proc.stderr.decode(errors="replace")
    assert proc.returncode == 2, err
    assert "Traceback" not in err
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("darknet-rnn: error: "), err
    assert re.search(pattern, lines[0]), err


@pytest.fixture(scope="module")
def trained(work):
    out = work["dir"] / "run"
    p = ok(run("train", work["train_cfg"], "--file", work["corpus"], "--out", out,
               "--srand", 7, "--max-batches", 40, "--save-every", 20, "--valid-every", 20,
               "--valid-fraction", 0.1, *(["--plot"] if HAVE_MPL else [])))
    return {"out": out, "proc": p, "weights": str(out / "tiny_final.weights")}


def weights_seen(path):
    with open(path, "rb") as f:
        major, minor, _ = struct.unpack("<3i", f.read(12))
        return struct.unpack("<Q", f.read(8))[0]


# --------------------------------------------------------------------------
# train

def test_help_lists_subcommands():
    p = ok(run("--help"))
    for cmd in (b"train", b"generate", b"valid", b"bench"):
        assert cmd in p.stdout


def test_train_output_and_files(trained):
    p, out = trained["proc"], trained["out"]
    lines = [l for l in p.stdout.decode().splitlines() if LOSS_LINE.match(l)]
    assert len(lines) == 40          # stdout is not a terminal: one Darknet line per iteration
    first = LOSS_LINE.match(lines[0]).groups()
    assert first[0] == "1" and first[1] == first[2]            # avg starts at the first loss
    assert float(first[1]) == pytest.approx(math.log(256), abs=0.5)
    assert float(first[3]) == pytest.approx(0.1)
    last = LOSS_LINE.match(lines[-1]).groups()
    assert last[0] == "40" and float(last[2]) < float(first[2])
    # epochs = characters seen / training text length
    n_train = len(make_corpus()) - int(len(make_corpus()) * 0.1)
    assert float(last[5]) == pytest.approx(40 * 32 / n_train, abs=1e-5)
    assert b"bits per character: training text" in p.stdout
    for name in ("tiny.backup", "tiny_final.weights", "tiny.loss.csv", "tiny_best.weights"):
        assert (out / name).exists(), name
    assert weights_seen(trained["weights"]) == 40 * 32
    with open(out / "tiny.loss.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0])[:4] == ["iteration", "seen", "loss", "avg_loss"]
    assert len(rows) == 40
    evaluated = [r for r in rows if r["valid_eval"]]
    assert [r["iteration"] for r in evaluated] == ["20", "40"]
    assert all(r["train_eval"] and r["eval_unit"] == "bpc" for r in evaluated)
    assert all(not r["train_eval"] for r in rows if not r["valid_eval"])
    # the best weights are those of the lowest validation figure
    best = min(evaluated, key=lambda r: float(r["valid_eval"]))
    assert weights_seen(out / "tiny_best.weights") == int(best["iteration"]) * 32


@NEEDS_MPL
def test_plot_is_a_png_of_the_loss_log(trained):
    data = (trained["out"] / "tiny.loss.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    from matplotlib.image import imread
    img = imread(str(trained["out"] / "tiny.loss.png"))
    assert img.shape[0] > 100 and img.shape[1] > 100
    assert len(np.unique(img.reshape(-1, img.shape[-1]), axis=0)) > 3     # something drawn


def test_train_is_reproducible_with_srand(work, tmp_path):
    args = ("train", work["train_cfg"], "--file", work["corpus"], "--max-batches", 12,
            "--progress", "none", "--valid-every", 0)
    ok(run(*args, "--out", tmp_path / "a", "--srand", 3))
    ok(run(*args, "--out", tmp_path / "b", "--srand", 3))
    ok(run(*args, "--out", tmp_path / "c", "--srand", 4))
    a = (tmp_path / "a" / "tiny_final.weights").read_bytes()
    assert a == (tmp_path / "b" / "tiny_final.weights").read_bytes()
    assert a != (tmp_path / "c" / "tiny_final.weights").read_bytes()


def test_train_matches_the_python_api(work, tmp_path):
    """The CLI is Darknet's loop: srand seeds the init and, continuing the same
    rand() stream, the offsets and jumps (as in darknet's train_char_rnn)."""
    ok(run("train", work["train_cfg"], "--file", work["corpus"], "--out", tmp_path,
           "--srand", 11, "--max-batches", 10, "--valid-fraction", 0.1, "-q"))
    net = darknet_rnn.load_network(work["train_cfg"], seed=11)
    train_text, _ = T.split_text(T.load_text(work["corpus"]), 0.1)
    T.train(net, train_text, max_batches=10)       # rng defaults to net.rng
    net.save_weights(str(tmp_path / "api.weights"))
    assert (tmp_path / "api.weights").read_bytes() == \
        (tmp_path / "tiny_final.weights").read_bytes()


def test_weights_load_and_predict_the_same(trained, work):
    x = np.zeros(256, np.float32)
    outs = []
    for _ in range(2):
        net = darknet_rnn.load_network(work["infer_cfg"], trained["weights"])
        assert net.seen == 40 * 32
        seq = []
        for c in b"the cat":
            x[:] = 0
            x[c] = 1
            seq.append(net.predict(x))
        outs.append(np.array(seq))
    assert np.all(np.isfinite(outs[0]))
    assert np.array_equal(outs[0], outs[1])
    np.testing.assert_allclose(outs[0].sum(axis=1), 1.0, rtol=1e-4)


def test_train_resume_and_clear(work, trained, tmp_path):
    p = ok(run("train", work["train_cfg"], trained["weights"], "--file", work["corpus"],
               "--out", tmp_path, "--srand", 1, "--max-batches", 45))
    its = [int(LOSS_LINE.match(l).group(1)) for l in p.stdout.decode().splitlines()
           if LOSS_LINE.match(l)]
    assert its == [41, 42, 43, 44, 45]
    assert weights_seen(tmp_path / "tiny_final.weights") == 45 * 32
    p = ok(run("train", work["train_cfg"], trained["weights"], "--file", work["corpus"],
               "--out", tmp_path / "clear", "--srand", 1, "--max-batches", 3, "--clear"))
    its = [int(LOSS_LINE.match(l).group(1)) for l in p.stdout.decode().splitlines()
           if LOSS_LINE.match(l)]
    assert its == [1, 2, 3]


def test_sigint_saves_a_loadable_checkpoint(work, tmp_path):
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.Popen(
        [sys.executable, "-m", "darknet_rnn", "train", work["train_cfg"], "--file",
         work["corpus"], "--out", str(tmp_path), "--srand", "2", "--max-batches", "1000000",
         "--progress", "lines", "--save-every", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT)
    try:
        seen_lines = 0
        deadline = time.time() + 60
        while seen_lines < 5 and time.time() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            seen_lines += bool(LOSS_LINE.match(line.decode().strip()))
        assert seen_lines == 5
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err.decode()
    assert b"Traceback" not in err
    backup = tmp_path / "tiny.backup"
    assert backup.exists()
    net = darknet_rnn.load_network(work["train_cfg"], str(backup))
    assert net.seen >= 5 * 32 and net.seen % 32 == 0
    assert not (tmp_path / "tiny_final.weights").exists()


def test_keep_every_and_save_every(work, tmp_path):
    p = ok(run("train", work["train_cfg"], "--file", work["corpus"], "--out", tmp_path,
               "--srand", 3, "--max-batches", 12, "--save-every", 4, "--keep-every", 5,
               "--valid-every", 0, "--valid-fraction", 0))
    notes = [l for l in p.stdout.decode().splitlines() if l.startswith("saved ")]
    backup, keep = tmp_path / "tiny.backup", lambda i: tmp_path / f"tiny_{i}.weights"
    assert notes == [f"saved {backup} (iteration 4)", f"saved {keep(5)} (iteration 5)",
                     f"saved {backup} (iteration 8)", f"saved {keep(10)} (iteration 10)",
                     f"saved {backup} (iteration 12)"]
    assert weights_seen(keep(5)) == 5 * 32 and weights_seen(keep(10)) == 10 * 32
    assert weights_seen(backup) == 12 * 32
    assert backup.read_bytes() == (tmp_path / "tiny_final.weights").read_bytes()
    assert f"saved {tmp_path / 'tiny_final.weights'}" in p.stderr.decode()


def test_resume_appends_the_loss_log_and_clear_starts_a_new_one(work, trained, tmp_path):
    log = tmp_path / "tiny.loss.csv"
    log.write_bytes((trained["out"] / "tiny.loss.csv").read_bytes())
    ok(run("train", work["train_cfg"], trained["weights"], "--file", work["corpus"],
           "--out", tmp_path, "--srand", 1, "--max-batches", 43, "-q"))
    rows = log.read_text().splitlines()
    assert rows[0].startswith("iteration,") and sum(r.startswith("iteration,") for r in rows) == 1
    assert [int(r.split(",")[0]) for r in rows[1:]] == list(range(1, 44))
    ok(run("train", work["train_cfg"], trained["weights"], "--file", work["corpus"],
           "--out", tmp_path, "--srand", 1, "--max-batches", 2, "--clear", "-q"))
    rows = log.read_text().splitlines()
    assert rows[0].startswith("iteration,")
    assert [int(r.split(",")[0]) for r in rows[1:]] == [1, 2]
    assert weights_seen(tmp_path / "tiny_final.weights") == 2 * 32


def test_sigterm_saves_a_checkpoint_and_exits_128_plus_signum(work, tmp_path):
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.Popen(
        [sys.executable, "-m", "darknet_rnn", "train", work["train_cfg"], "--file",
         work["corpus"], "--out", str(tmp_path), "--srand", "2", "--max-batches", "1000000",
         "--progress", "lines", "--save-every", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT)
    try:
        seen_lines = 0
        deadline = time.time() + 60
        while seen_lines < 3 and time.time() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            seen_lines += bool(LOSS_LINE.match(line.decode().strip()))
        assert seen_lines == 3
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err.decode()
    err = err.decode()
    assert "Traceback" not in err
    m = re.search(r"stopped at iteration (\d+) .*saved (\S+);", err)
    assert m and m.group(2) == str(tmp_path / "tiny.backup")
    assert weights_seen(tmp_path / "tiny.backup") == int(m.group(1)) * 32
    assert not (tmp_path / "tiny_final.weights").exists()


# --------------------------------------------------------------------------
# generate

def test_generate(work, trained):
    args = ("generate", work["infer_cfg"], trained["weights"], "--len", 60, "--seed", "the ")
    a = ok(run(*args, "--srand", 5)).stdout
    assert a.startswith(b"the ") and a.endswith(b"\n")
    assert len(a) == 4 + 60 + 1
    assert a == ok(run(*args, "--srand", 5)).stdout
    assert a != ok(run(*args, "--srand", 6)).stdout
    # a training cfg works too (batch and time_steps are replaced by 1)
    assert a == ok(run("generate", work["train_cfg"], trained["weights"], "--len", 60,
                       "--seed", "the ", "--srand", 5)).stdout


def test_generate_default_seed_and_darknet_draws(work, trained):
    out = ok(run("generate", work["infer_cfg"], trained["weights"], "--len", 25,
                 "--temp", 0.5, "--srand", 9)).stdout
    # Darknet: srand(9), parse the cfg (one rand() per weight), load, sample.
    net = darknet_rnn.load_network(work["infer_cfg"], trained["weights"], seed=0)
    rng = T.skip_draws(GlibcRandom(9), T.init_draws(net))
    want = b"".join(T.generate(net, b"\n\n", 25, 0.5, rng)) + b"\n"
    assert out == want


def test_generate_streams(work, trained):
    p = ok(run("generate", work["infer_cfg"], trained["weights"], "--len", 30,
               "--streams", 3, "--srand", 1))
    blocks = re.split(rb"== stream \d+ ==\n", p.stdout)[1:]
    assert len(blocks) == 3
    assert all(len(b) == 2 + 30 + 1 for b in blocks)


# --------------------------------------------------------------------------
# valid

VALID_LINE = re.compile(r"^(\d+) BPC: (\S+)   Perplexity: (\S+)    Word Perplexity: (\S+)$")


def test_valid_lines_and_summary(work, trained):
    text = make_corpus(60, seed=1)
    p = ok(run("valid", work["infer_cfg"], trained["weights"], input=text))
    lines = p.stdout.decode().splitlines()
    assert len(lines) == len(text)                # one per predicted byte + summary
    m = [VALID_LINE.match(l) for l in lines[:-1]]
    assert all(m) and [int(x.group(1)) for x in m] == list(range(1, len(text)))
    bpc, ppl = float(m[-1].group(2)), float(m[-1].group(3))
    assert ppl == pytest.approx(2 ** bpc, rel=1e-3)
    assert "bits per character" in lines[-1] and f"{bpc:.4f}" in lines[-1]
    q = ok(run("valid", work["infer_cfg"], trained["weights"], "--quiet", input=text))
    assert q.stdout.decode().splitlines() == lines[-1:]


def _valid_bpc(cfg, weights, corpus):
    p = ok(run("valid", cfg, weights, "--file", corpus, "--quiet"))
    return float(re.search(r"([-\d.infa]+) bits per character", p.stdout.decode()).group(1))


def test_trained_beats_untrained(work, trained, tmp_path):
    # Darknet's initialisation, with rolling variances set to 1: at 0 (their
    # initial value, quirk Q8) inference divides by 1e-6 and gives NaN.
    untrained = str(tmp_path / "untrained.weights")
    net = darknet_rnn.load_network(work["train_cfg"], seed=7)
    for layer in net.layers:
        for sub in getattr(layer, "sublayers", (layer,)):
            if getattr(sub, "rolling_variance", None) is not None:
                sub.rolling_variance[...] = 1.0
    net.save_weights(untrained)
    corpus = tmp_path / "head.txt"
    corpus.write_bytes(make_corpus()[:1500])
    good = _valid_bpc(work["infer_cfg"], trained["weights"], str(corpus))
    bad = _valid_bpc(work["infer_cfg"], untrained, str(corpus))
    assert math.isfinite(good) and good < 5.0
    assert good < bad


# --------------------------------------------------------------------------
# errors: one line on stderr, exit status 2

def test_error_missing_text(work, tmp_path):
    one_error_line(run("train", work["train_cfg"], "--file", tmp_path / "nope.txt",
                       "--out", tmp_path), r"nope\.txt.*No such file")


def test_error_missing_cfg(work, tmp_path):
    one_error_line(run("generate", tmp_path / "nope.cfg", "x.weights"), r"nope\.cfg")


def test_error_text_shorter_than_batch(work, tmp_path):
    short = tmp_path / "short.txt"
    short.write_bytes(b"a" * 32)          # one batch needs 4 * 8 + 1 = 33 bytes
    one_error_line(run("train", work["train_cfg"], "--file", short, "--out", tmp_path,
                       "--valid-fraction", 0), r"shorter than one batch.*33")


def test_error_zero_byte(work, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"abc" * 50 + b"\x00" + b"abc" * 50)
    one_error_line(run("train", work["train_cfg"], "--file", bad, "--out", tmp_path),
                   r"offset 150")


def test_error_inputs_not_256(work, tmp_path):
    cfg = make_cfg(tmp_path / "small.cfg", inputs=10)
    one_error_line(run("train", cfg, "--file", work["corpus"], "--out", tmp_path),
                   r"inputs=10.*256")


def test_error_weights_do_not_match(work, trained, tmp_path):
    other = make_cfg(tmp_path / "other.cfg", batch=1, steps=1, hidden=8)
    one_error_line(run("generate", other, trained["weights"], "--len", 5), r".")
    one_error_line(run("valid", other, trained["weights"], input=b"abc"), r".")


def test_error_empty_seed_and_usage(work, trained):
    one_error_line(run("generate", work["infer_cfg"], trained["weights"], "--seed", ""),
                   r"seed")
    p = run("generate", work["infer_cfg"], trained["weights"], "--temp", "-1")
    assert p.returncode == 2 and b"Traceback" not in p.stderr


def test_bench_dispatch(monkeypatch, capsys):
    try:
        import darknet_rnn.bench  # noqa: F401
    except ImportError:
        one_error_line(run("bench"), r"not available")
    else:
        p = ok(run("bench", "--help"))
        assert b"bench" in p.stdout
    from darknet_rnn import cli
    monkeypatch.setitem(sys.modules, "darknet_rnn.bench", None)    # as if not installed
    assert cli.main(["bench"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not available" in err[0]


# --------------------------------------------------------------------------
# shipped cfg files

def _layers(spec):
    return [(l.type, l.outputs, getattr(l, "activation", None), getattr(l, "batch_normalize", 0))
            for l in spec.layers]


@pytest.mark.parametrize("train_cfg,infer_cfg", [("rnn.train.cfg", "rnn.cfg"),
                                                 ("char-small.train.cfg", "char-small.cfg")])
def test_shipped_cfg_pairs_share_layers(train_cfg, infer_cfg):
    from darknet_rnn.cfg import parse_cfg
    tr = parse_cfg(os.path.join(ROOT, "cfg", train_cfg))
    inf = parse_cfg(os.path.join(ROOT, "cfg", infer_cfg))
    assert _layers(tr) == _layers(inf)
    assert tr.net.inputs == inf.net.inputs == 256
    assert tr.layers[-1].outputs == 256
    assert (inf.net.streams, inf.net.time_steps) == (1, 1)
    assert tr.net.streams >= 2 and tr.net.max_batches > 0


def test_tiny_cfg_trains_on_the_embedded_corpus(tmp_path):
    p = ok(run("train", os.path.join(ROOT, "cfg", "tiny.cfg"), "--out", tmp_path,
               "--srand", 1, "--max-batches", 5, "--valid-max-bytes", 2000))
    assert len([l for l in p.stdout.decode().splitlines() if LOSS_LINE.match(l)]) == 5
    assert b"embedded corpus" in p.stderr
    assert (tmp_path / "tiny_final.weights").exists()
