"""darknet-rnn train beyond Darknet's recipe: --stateful, --optimizer adam,
--clip-norm, --grad-stats, and exact resume through the checkpoint sidecar."""
import csv

import pytest

from test_cli import make_cfg, make_corpus, run


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli-train")
    corpus = d / "corpus.txt"
    corpus.write_bytes(make_corpus(600))
    return d, str(corpus), make_cfg(d / "tiny.train.cfg", batch=4, steps=6, hidden=16,
                                    max_batches=12)


RECIPES = {"darknet": [], "combined": ["--stateful", "--optimizer", "adam", "--clip-norm", "5",
                                       "--exact"]}


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_straight_equals_interrupted_and_resumed(setup, recipe):
    d, corpus, cfg = setup
    opts = RECIPES[recipe] + ["--file", corpus, "--srand", "5", "--valid-every", "4", "-q"]
    a, b = d / f"{recipe}-straight", d / f"{recipe}-halves"
    r = run("train", cfg, "--out", str(a), "--max-batches", "12", *opts)
    assert r.returncode == 0, r.stderr
    r = run("train", cfg, "--out", str(b), "--max-batches", "6", *opts)
    assert r.returncode == 0, r.stderr
    half = b / "tiny_final.weights"
    assert (b / "tiny_final.weights.state").exists()
    r = run("train", cfg, str(half), "--out", str(b), "--max-batches", "12", *opts)
    assert r.returncode == 0, r.stderr
    assert b"continuing the saved trajectory" in r.stderr
    assert (b / "tiny_final.weights").read_bytes() == (a / "tiny_final.weights").read_bytes()


def test_resume_without_sidecar_is_darknets_resume(setup):
    """Deleting the sidecar resumes from the weights alone (momentum restarts)."""
    d, corpus, cfg = setup
    opts = ["--file", corpus, "--srand", "5", "-q", "--valid-every", "0"]
    a, b = d / "plain-straight", d / "plain-halves"
    assert run("train", cfg, "--out", str(a), "--max-batches", "8", *opts).returncode == 0
    assert run("train", cfg, "--out", str(b), "--max-batches", "4", *opts).returncode == 0
    (b / "tiny_final.weights.state").unlink()
    r = run("train", cfg, str(b / "tiny_final.weights"), "--out", str(b), "--max-batches", "8",
            *opts)
    assert r.returncode == 0 and b"continuing the saved trajectory" not in r.stderr
    assert (b / "tiny_final.weights").read_bytes() != (a / "tiny_final.weights").read_bytes()


def test_sidecar_of_another_optimizer_is_a_one_line_error(setup):
    d, corpus, cfg = setup
    out = d / "opt"
    opts = ["--file", corpus, "--srand", "5", "-q", "--valid-every", "0"]
    assert run("train", cfg, "--out", str(out), "--max-batches", "2", *opts).returncode == 0
    r = run("train", cfg, str(out / "tiny_final.weights"), "--out", str(out), "--max-batches",
            "4", "--optimizer", "adam", *opts)
    assert r.returncode == 2
    lines = r.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "optimizer" in lines[0] and "delete that file" in lines[0]


def test_clip_norm_and_grad_stats_go_to_the_loss_log(setup):
    d, corpus, cfg = setup
    out = d / "stats"
    r = run("train", cfg, "--out", str(out), "--max-batches", "3", "--file", corpus,
            "--srand", "2", "-q", "--clip-norm", "0.5", "--grad-stats", "--valid-every", "0")
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(open(out / "tiny.loss.csv")))
    assert len(rows) == 3
    cols = [f"state_grad_L0_t{t}" for t in range(6)]
    assert set(cols) <= set(rows[0]) and "grad_norm" in rows[0]
    for row in rows:
        assert float(row["grad_norm"]) > 0
        assert all(float(row[c]) > 0 for c in cols)


@pytest.mark.parametrize("bad", ["0", "-1", "nan", "x"])
def test_clip_norm_must_be_positive(setup, bad):
    d, corpus, cfg = setup
    r = run("train", cfg, "--clip-norm", bad, "--file", corpus)
    assert r.returncode == 2 and b"--clip-norm" in r.stderr


def test_recipes_command_prints_one_row_per_recipe(setup):
    d, corpus, _ = setup
    cfg = d / "nobn.cfg"         # rolling BN statistics after 3 updates would validate to inf
    cfg.write_text(open(_).read().replace("batch_normalize=1", "batch_normalize=0"))
    r = run("recipes", str(cfg), "--file", corpus, "--iterations", "3", "--only",
            "darknet,stateful,adam,combined", "--threads", "1")
    assert r.returncode == 0, r.stderr
    rows = [l for l in r.stdout.decode().splitlines() if l.startswith("| ") and "bpc" not in l]
    assert [l.split("|")[1].strip() for l in rows] == ["darknet", "stateful", "adam", "combined"]
    bpcs = [float(l.split("|")[2]) for l in rows]
    assert all(0 < b < 9 for b in bpcs)
    assert len(set(bpcs)) > 1, "the recipes train differently"
    r = run("recipes", cfg, "--only", "sgd2")
    assert r.returncode == 2 and b"unknown recipe" in r.stderr


def test_grad_stats_are_read_back_for_the_plot(tmp_path):
    from darknet_rnn.plot import read_loss_log
    log = tmp_path / "x.loss.csv"
    log.write_text("iteration,avg_loss,grad_norm,state_grad_L0_t0,state_grad_L0_t1,"
                   "state_grad_L2_t0,state_grad_L2_t1\n"
                   "1,5.0,3.5,0.1,0.2,1.0,2.0\n2,4.0,2.5,0.3,0.4,3.0,4.0\n")
    c = read_loss_log(log)
    assert c["grad_norm"] == [3.5, 2.5]
    assert c["state_grad"] == {0: [[0.1, 0.2], [0.3, 0.4]], 2: [[1.0, 2.0], [3.0, 4.0]]}
    pytest.importorskip("matplotlib", reason="plots need the [plot] extra")
    from darknet_rnn.plot import plot_loss_log
    png = plot_loss_log(log, tmp_path / "x.png")
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
