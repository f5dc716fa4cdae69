"""Evaluation during training (darknet_rnn.charrnn.monitor) and what the run
does with it: a bounded fixed sample, the same measure on training and
held-back text, its unit, no effect on training, Ctrl-C during an
evaluation, the best weights, the loss log, the ETA.
"""
import csv
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import darknet_rnn
from darknet_rnn import training as TR
from darknet_rnn.charrnn.monitor import Monitor, Sample, best_in_log, loss_unit, score
from darknet_rnn.charrnn.progress import Progress
from test_cli import ROOT, make_cfg, make_corpus, ok, run

HEADS = {
    "softmax": "[connected]\noutput={o}\nactivation=linear\n\n[softmax]\n",
    "cost": "[connected]\noutput={o}\nactivation=logistic\n\n[cost]\ntype=sse\n",
}


def small_net(tmp_path, head="softmax", inputs=256, streams=3, steps=4):
    p = tmp_path / f"{head}.cfg"
    p.write_text(f"[net]\nbatch={streams}\nsubdivisions=1\ntime_steps={steps}\ninputs={inputs}\n"
                 "learning_rate=0.1\nmomentum=0.9\ndecay=0.001\nmax_batches=20\n\n"
                 "[rnn]\noutput=8\nactivation=tanh\n\n" + HEADS[head].format(o=inputs))
    return darknet_rnn.load_network(str(p), seed=4)


# --------------------------------------------------------------------------
# the sample and the measure

@pytest.mark.parametrize("budget", [None, 0, 100, 1000, 5000])
def test_sample_is_bounded_and_spread(budget):
    data = make_corpus(400)                       # ~2.5 KB
    s = Sample(data, streams=4, steps=8, budget=budget)
    usable = len(data) - 1
    want = usable if not budget else min(budget, usable)
    assert s.length % 8 == 0 and s.length >= 8
    assert s.count <= max(want, 4 * 8) and s.count > want - 4 * 8
    assert list(s.starts) == [k * usable // 4 for k in range(4)]
    x, y = s.batch(1)
    pos = s.starts[None, :] + 8 + np.arange(8)[:, None]
    d = np.frombuffer(data, np.uint8)
    assert np.array_equal(x.argmax(-1), d[pos % usable])
    assert np.array_equal(y.argmax(-1), d[pos % usable + 1])


def test_score_is_mean_bits_of_the_true_next_byte(tmp_path):
    net = small_net(tmp_path)
    data = make_corpus(200)
    s = Sample(data, net.streams, net.time_steps, budget=240)
    got = score(net, s) / math.log(2)
    # by hand: predict window by window, state carried, -log2 p[next] averaged
    d = np.frombuffer(data, np.uint8)
    net.reset_state()
    logs = []
    for k in range(s.calls):
        pos = (s.starts[None, :] + k * 4 + np.arange(4)[:, None]) % s.usable
        out = net.predict(np.eye(256, dtype=np.float32)[d[pos]]).reshape(4, 3, 256)
        p = np.take_along_axis(out, d[pos + 1][..., None], -1)[..., 0]
        logs.append(-np.log2(p.astype(np.float64)))
    assert got == pytest.approx(float(np.mean(logs)), rel=1e-5)


def test_units(tmp_path):
    assert loss_unit(small_net(tmp_path, "softmax")).short == "bpc"
    assert loss_unit(small_net(tmp_path, "softmax")).name == "bits per character"
    assert loss_unit(small_net(tmp_path, "softmax"), "token").name == "bits per token"
    u = loss_unit(small_net(tmp_path, "cost"))
    assert (u.name, u.short, u.factor) == ("sse per character", "sse/char", 1.0)


def test_cost_head_is_measured_in_its_own_unit(tmp_path):
    net = small_net(tmp_path, "cost", inputs=5)
    data = np.arange(200) % 5
    s = Sample(data, net.streams, net.time_steps, width=5)
    got = score(net, s)
    net.reset_state()
    total = 0.0
    for k in range(s.calls):
        pos = (s.starts[None, :] + k * 4 + np.arange(4)[:, None]) % s.usable
        out = net.predict(np.eye(5, dtype=np.float32)[data[pos]]).reshape(4, 3, 5)
        total += float(np.sum((np.eye(5)[data[pos + 1]] - out) ** 2))
    assert got == pytest.approx(total / s.count, rel=1e-5)


def test_an_evaluation_does_not_change_training(tmp_path):
    cfg = make_cfg(tmp_path / "t.cfg")
    corpus = tmp_path / "c.txt"
    corpus.write_bytes(make_corpus())
    common = ("train", cfg, "--file", corpus, "--srand", 3, "--max-batches", 9, "-q")
    ok(run(*common, "--out", tmp_path / "a", "--valid-every", 0))
    ok(run(*common, "--out", tmp_path / "b", "--valid-every", 2))
    assert (tmp_path / "a" / "t_final.weights").read_bytes() == \
        (tmp_path / "b" / "t_final.weights").read_bytes()


def test_the_validation_budget_bounds_each_evaluation(tmp_path):
    cfg = make_cfg(tmp_path / "t.cfg", batch=8, steps=8)
    corpus = tmp_path / "c.txt"
    corpus.write_bytes(make_corpus(20000))               # ~120 KB, 60 KB held back
    common = ("train", cfg, "--file", corpus, "--srand", 1, "--max-batches", 2,
              "--valid-fraction", 0.5)
    p = ok(run(*common, "--out", tmp_path / "a", "--valid-bytes", 1000))
    assert "on 960 training characters and 960 held back" in p.stderr.decode()
    p = ok(run(*common, "--out", tmp_path / "b"))            # the default: 8192
    assert "on 8192 training characters and 8192 held back" in p.stderr.decode()
    half = len(make_corpus(20000)) // 2
    p = ok(run(*common, "--out", tmp_path / "c", "--valid-bytes", 0))
    n = (half - 1) // 8 // 8 * 8 * 8
    assert f"and {n} held back" in p.stderr.decode()
    assert "evaluating" in p.stdout.decode()             # shown when it starts


# --------------------------------------------------------------------------
# Ctrl-C during an evaluation

def test_ctrl_c_during_an_evaluation_saves_at_once(tmp_path):
    cfg = make_cfg(tmp_path / "t.cfg", batch=4, steps=8, hidden=64)
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    # the whole embedded corpus, half held back: one evaluation takes many seconds
    proc = subprocess.Popen(
        [sys.executable, "-m", "darknet_rnn", "train", cfg, "--out", str(tmp_path),
         "--srand", "2", "--valid-every", "3", "--valid-bytes", "0", "--valid-fraction", "0.5",
         "--progress", "lines", "--save-every", "0", "--threads", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            line = proc.stdout.readline().decode()
            if not line or "evaluating" in line:
                break
        assert "3: evaluating" in line
        time.sleep(0.3)
        t0 = time.time()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        took = time.time() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
    err = err.decode()
    assert proc.returncode == 130, err
    assert took < 5, took
    assert "evaluation interrupted" in out.decode()
    assert "stopped at iteration 3" in err and "Traceback" not in err
    net = darknet_rnn.load_network(cfg, str(tmp_path / "t.backup"))
    assert net.seen == 3 * 32
    assert not (tmp_path / "t_best.weights").exists()


# --------------------------------------------------------------------------
# the best weights, the loss log

class Figures:
    """A batch source for TrainingRun with a scripted validation figure."""

    def __init__(self, net, values):
        self.net, self.values = net, list(values)

    def next_batch(self):
        t, s = self.net.time_steps, self.net.streams
        return np.zeros((t, s, 256), np.float32), np.eye(256, dtype=np.float32)[
            np.zeros((t, s), int)]


def test_best_weights_follow_the_lowest_validation(tmp_path):
    net = darknet_rnn.load_network(make_cfg(tmp_path / "b.cfg", max_batches=6), seed=1)
    values = [None, 3.0, 3.5, 2.5, float("nan"), 2.7]
    saved = []

    def best_of(step):
        return values[step.iteration - 1]

    run_ = TR.TrainingRun(net, Figures(net, values), path_for=TR.darknet_paths(tmp_path, "b"),
                          best_of=best_of, handle_signals=False,
                          on_save=lambda p, s, kind: saved.append((kind, s.iteration)))
    result = run_.run()
    assert saved == [("best", 2), ("best", 4)]
    assert result.best == 2.5 and result.best_path == str(tmp_path / "b_best.weights")
    seen = int.from_bytes((tmp_path / "b_best.weights").read_bytes()[12:20], "little")
    assert seen == 4 * net.batch
    # resuming with an earlier best of 2.0: nothing beats it
    net.seen = 0
    saved.clear()
    TR.TrainingRun(net, Figures(net, values), path_for=TR.darknet_paths(tmp_path, "c"),
                   best_of=best_of, best_so_far=2.0, handle_signals=False,
                   on_save=lambda p, s, kind: saved.append(kind)).run()
    assert saved == []


def test_best_in_log_and_an_old_log_header(tmp_path):
    log = tmp_path / "x.loss.csv"
    log.write_text("iteration,seen,loss,avg_loss,bpc,rate,seconds,epochs,valid_bpc\n"
                   "1,32,5.0,5.0,7.2,0.1,0.01,0.1,\n2,64,4.0,4.9,5.7,0.1,0.01,0.2,6.5\n")
    from darknet_rnn.charrnn.loop import LOG_COLUMNS
    TR.LossLog(log, LOG_COLUMNS, append=True).close()
    with open(log, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == [name for name, _ in LOG_COLUMNS]
    assert [r["avg_loss"] for r in rows] == ["5.0", "4.9"] and rows[1]["valid_eval"] == ""
    with open(log, "a") as f:
        f.write("3,96,3.0,4.0,0.1,0.01,0.3,2.0,2.25,bpc,0.5\n"
                "4,128,3.0,4.0,0.1,0.01,0.3,2.0,2.5,bpc,0.5\n"
                "5,160,3.0,4.0,0.1,0.01,0.3,2.0,1.0,sse/char,0.5\n")
    assert best_in_log(log, "bpc") == 2.25 and best_in_log(log, "sse/char") == 1.0
    assert best_in_log(tmp_path / "none.csv", "bpc") is None


def test_resume_keeps_the_best_of_the_earlier_run(tmp_path):
    cfg = make_cfg(tmp_path / "r.cfg")
    corpus = tmp_path / "c.txt"
    corpus.write_bytes(make_corpus())
    common = ("--file", corpus, "--out", tmp_path, "--valid-every", 5, "-q")
    ok(run("train", cfg, *common, "--srand", 1, "--max-batches", 10))
    first = (tmp_path / "r_best.weights").read_bytes()
    with open(tmp_path / "r.loss.csv", newline="") as f:
        before = min(float(r["valid_eval"]) for r in csv.DictReader(f) if r["valid_eval"])
    ok(run("train", cfg, tmp_path / "r_final.weights", *common, "--srand", 2,
           "--max-batches", 12))
    with open(tmp_path / "r.loss.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    last = [float(r["valid_eval"]) for r in rows if r["valid_eval"]][-1]
    assert [int(r["iteration"]) for r in rows] == list(range(1, 13))
    best_now = (tmp_path / "r_best.weights").read_bytes()
    # replaced only by a strictly lower figure (tiny BN nets can evaluate to inf/nan early)
    assert (best_now == first) == (not last < before)


# --------------------------------------------------------------------------
# the ETA counts the evaluations

class FakeStep:
    def __init__(self, iteration, max_batches, seconds=0.5):
        self.iteration = self.batch_number = iteration
        self.max_batches, self.seconds = max_batches, seconds
        self.avg_loss, self.rate, self.epochs = 1.0, 0.1, 0.0


def test_eta_counts_iterations_and_evaluations(tmp_path):
    net = small_net(tmp_path)
    m = Monitor(net, make_corpus(300), make_corpus(50), budget=120, every=10)
    assert m.remaining(20, 100) == 8 and m.remaining(20, 95) == 8 and m.remaining(95, 95) == 0
    assert Monitor(net, make_corpus(300), every=0).remaining(3, 7) == 1
    p = Progress("none")
    p.monitor = m
    for i in range(1, 21):
        p.step(FakeStep(i, 100))
    # before any evaluation: estimated from the iteration time
    est = 80 * 0.5 + 8 * m.calls * 0.45 * 0.5
    assert p.eta(FakeStep(20, 100)) == pytest.approx(est)
    m.last_seconds = 3.0
    assert p.eta(FakeStep(20, 100)) == pytest.approx(80 * 0.5 + 8 * 3.0)
