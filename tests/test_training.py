"""darknet_rnn.training: the generic loop and the training run (checkpoints,
resume, clear, loss log, signals) on a synthetic batch source that is not
text: random vectors in, the class of their largest entry out.

Resuming from a weights file reproduces a straight run only when the
optimiser keeps no state outside the file: these cfgs use Darknet's SGD with
momentum=0 (the momentum buffers are not saved in .weights).
"""
import csv
import os
import signal

import numpy as np
import pytest

import darknet_rnn
from darknet_rnn import training as TR

CFG = """[net]
batch=3
subdivisions=1
time_steps=4
inputs=6
learning_rate=0.5
momentum=0
decay=0.0005
max_batches=12
policy=steps
steps=6
scales=0.5

[rnn]
output=10
activation=leaky
batch_normalize=1

[connected]
output=5
activation=linear

[softmax]
"""

SEED = 5


class Synthetic:
    """Batch k (k = 0, 1, ...) is a pure function of k, so a source started
    at k = net.seen // net.batch continues exactly where another stopped."""

    def __init__(self, net, start=None):
        self.shape = (net.time_steps, net.streams)
        self.k = int(net.seen) // int(net.batch) if start is None else start
        self.given = []

    def next_batch(self):
        g = np.random.default_rng(1000 + self.k)
        self.given.append(self.k)
        self.k += 1
        x = g.standard_normal(self.shape + (6,)).astype(np.float32)
        y = np.zeros(self.shape + (5,), np.float32)
        np.put_along_axis(y, x[..., :5].argmax(-1)[..., None], 1.0, axis=-1)
        return x, y


@pytest.fixture
def cfg(tmp_path):
    p = tmp_path / "synth.train.cfg"
    p.write_text(CFG)
    return str(p)


def new_net(cfg, weights=None):
    return darknet_rnn.load_network(cfg, weights, seed=SEED)


def new_net_header(path):
    with open(path, "rb") as f:
        f.read(12)
        return int.from_bytes(f.read(8), "little")


def straight(cfg, directory, max_batches, **kw):
    """A plain run from a fresh initialisation to max_batches."""
    os.makedirs(directory, exist_ok=True)
    net = new_net(cfg)
    run = TR.TrainingRun(net, Synthetic(net), path_for=TR.darknet_paths(directory, "synth"),
                         max_batches=max_batches, handle_signals=False, **kw)
    return net, run.run()


# --------------------------------------------------------------------------
# train_loop with a pure-Python net

class CountingNet:
    """Records what the loop asks; cost = 2 * iteration number."""

    def __init__(self, batch=4, max_batches=6, seen=0):
        self.batch, self.max_batches, self.seen = batch, max_batches, seen
        self.calls = []

    def train(self, *args):
        self.calls.append(args)
        self.seen += self.batch
        return 2.0 * (self.seen // self.batch)

    def current_batch(self):
        return self.seen // self.batch

    def current_rate(self):
        return 0.25


def test_loop_loss_average_and_order_of_events():
    net = CountingNet(batch=4, max_batches=5, seen=8)        # continues at iteration 3
    events = []

    class Source:
        def next_batch(self):
            events.append("batch")
            return ("x", "y", "mask")          # extra arguments go to net.train

        def after_iteration(self):
            events.append("after")
            return len(events)

    def make_step(step, report):
        events.append(("step", step.iteration, report))
        return step

    steps = []
    last = TR.train_loop(net, Source(), make_step=make_step,
                         hooks=[steps.append, lambda s: events.append("hook2")])
    assert [s.iteration for s in steps] == [3, 4, 5] and last is steps[-1]
    assert net.calls == [("x", "y", "mask")] * 3
    assert events[:5] == ["batch", "after", ("step", 3, 2), "hook2", "batch"]
    avg = None
    for s in steps:
        want = np.float32(2.0 * s.iteration) / np.float32(4)
        assert s.loss == float(want)
        avg = want if avg is None else np.float32(float(avg) * .9 + float(want) * .1)
        assert s.avg_loss == float(avg)
        assert (s.seen, s.batch_number, s.max_batches, s.rate) == (4 * s.iteration,
                                                                   s.iteration, 5, 0.25)


def test_loop_stops_on_a_hook_after_all_hooks_ran():
    net = CountingNet(max_batches=10)
    seen_by_second = []
    TR.train_loop(net, iter([(1, 2)] * 10),
                  hooks=[lambda s: s.iteration == 2, lambda s: seen_by_second.append(s.iteration)])
    assert seen_by_second == [1, 2] and net.current_batch() == 2


def test_loop_iterable_source_and_bad_batches():
    net = CountingNet(max_batches=10)
    assert TR.train_loop(net, [(1, 2), (3, 4)]).iteration == 2      # exhausted: ends
    assert TR.train_loop(CountingNet(max_batches=0), [(1, 2)]) is None
    with pytest.raises(TypeError, match=r"\(x, y\)"):
        TR.train_loop(CountingNet(), [np.zeros(3)])
    with pytest.raises(TypeError, match="batch source"):
        TR.train_loop(CountingNet(), 42)


def test_run_arguments_are_checked(tmp_path):
    with pytest.raises(ValueError, match="save_every"):
        TR.TrainingRun(CountingNet(), [], path_for=str, save_every=-1)
    with pytest.raises(ValueError, match="keep_every"):
        TR.TrainingRun(CountingNet(), [], path_for=str, keep_every=1.5)
    with pytest.raises(TypeError, match="path_for"):
        TR.TrainingRun(CountingNet(), [], path_for="out/")


# --------------------------------------------------------------------------
# checkpoints, final weights, resume

def test_checkpoints_at_the_right_iterations(cfg, tmp_path):
    saves = []
    net, result = straight(cfg, tmp_path / "a", 12, save_every=4, keep_every=5,
                           on_save=lambda path, step, kind: saves.append(
                               (os.path.basename(path), step.iteration, kind,
                                new_net_header(path))))
    b3 = 3 * 4                                              # net.batch = streams * steps
    assert saves == [("synth.backup", 4, "backup", 4 * b3),
                     ("synth_5.weights", 5, "keep", 5 * b3),
                     ("synth.backup", 8, "backup", 8 * b3),
                     ("synth_10.weights", 10, "keep", 10 * b3),
                     ("synth.backup", 12, "backup", 12 * b3)]
    assert result.saved == str(tmp_path / "a" / "synth_final.weights")
    assert (result.exit_status, result.stopped, result.last.iteration) == (0, False, 12)
    assert sorted(os.listdir(tmp_path / "a")) == ["synth.backup", "synth_10.weights",
                                                  "synth_5.weights", "synth_final.weights"]
    # the copy kept at 5 is the network as it stood after iteration 5
    _, five = straight(cfg, tmp_path / "b", 5)
    assert (tmp_path / "a" / "synth_5.weights").read_bytes() == \
        open(five.saved, "rb").read()


def test_resume_gives_the_straight_run_weights(cfg, tmp_path):
    _, full = straight(cfg, tmp_path / "a", 12, log_path=tmp_path / "a.csv")
    paths = TR.darknet_paths(tmp_path / "b", "synth")
    _, first = straight(cfg, tmp_path / "b", 5, save_every=5, log_path=tmp_path / "b.csv")
    assert first.last.iteration == 5
    net = new_net(cfg, paths(".backup"))
    assert net.seen == 5 * 12
    source = Synthetic(net)
    steps = []
    run = TR.TrainingRun(net, source, path_for=paths, resumed=True, hooks=[steps.append],
                         log_path=tmp_path / "b.csv", handle_signals=False)
    second = run.run()
    assert source.given == list(range(5, 12))
    assert [s.iteration for s in steps] == list(range(6, 13))
    # the lr schedule continues: steps=6, scales=0.5 halves it from batch 6 on
    assert [s.rate for s in steps] == [0.25] * 7
    assert open(second.saved, "rb").read() == open(full.saved, "rb").read()
    # the resumed log continues the first: one header, iterations 1..12, same losses
    a = list(csv.DictReader(open(tmp_path / "a.csv")))
    b = list(csv.DictReader(open(tmp_path / "b.csv")))
    assert [int(r["iteration"]) for r in b] == list(range(1, 13))
    assert [r["loss"] for r in b] == [r["loss"] for r in a]


def test_clear_counts_from_zero_with_a_fresh_log(cfg, tmp_path):
    _, first = straight(cfg, tmp_path, 4, log_path=tmp_path / "log.csv")
    net = new_net(cfg, first.saved)
    assert net.seen == 4 * 12
    steps = []
    run = TR.TrainingRun(net, Synthetic(net, start=0), path_for=TR.darknet_paths(tmp_path, "c"),
                         resumed=True, clear=True, max_batches=2, hooks=[steps.append],
                         log_path=tmp_path / "log.csv", handle_signals=False)
    assert net.seen == 0                                  # decided at construction
    run.run()
    assert [s.iteration for s in steps] == [1, 2]
    rows = list(csv.reader(open(tmp_path / "log.csv")))
    assert rows[0] == ["iteration", "seen", "loss", "avg_loss", "rate", "seconds"]
    assert [r[0] for r in rows[1:]] == ["1", "2"]
    assert new_net_header(tmp_path / "c_final.weights") == 2 * 12


def test_a_fresh_run_overwrites_an_old_log(cfg, tmp_path):
    (tmp_path / "log.csv").write_text("old,stuff\n1,2\n")
    straight(cfg, tmp_path, 2, log_path=tmp_path / "log.csv")
    rows = list(csv.reader(open(tmp_path / "log.csv")))
    assert rows[0][0] == "iteration" and len(rows) == 3


def test_not_the_writer_writes_nothing(cfg, tmp_path):
    d = tmp_path / "quiet"
    d.mkdir()
    saves = []
    net, result = straight(cfg, d, 6, save_every=2, keep_every=3, log_path=d / "log.csv",
                           writer=False, on_save=lambda *a: saves.append(a))
    assert os.listdir(d) == [] and saves == [] and result.saved is None
    assert result.last.iteration == 6 and net.current_batch() == 6


# --------------------------------------------------------------------------
# signals

def _signal_at(iteration, *signums):
    def hook(step):
        if step.iteration == iteration:
            for s in signums:
                os.kill(os.getpid(), s)
    return hook


@pytest.mark.parametrize("signum,status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_finishes_the_iteration_and_saves(cfg, tmp_path, signum, status):
    before = signal.getsignal(signum)
    notes = []
    net = new_net(cfg)
    steps = []
    run = TR.TrainingRun(net, Synthetic(net), path_for=TR.darknet_paths(tmp_path, "synth"),
                         hooks=[_signal_at(3, signum), steps.append], on_signal=notes.append)
    result = run.run()
    assert notes == [signum]
    assert [s.iteration for s in steps] == [1, 2, 3]      # the iteration was finished
    assert result.signum == signum and result.stopped and result.exit_status == status
    assert result.saved == str(tmp_path / "synth.backup")
    assert not (tmp_path / "synth_final.weights").exists()
    assert signal.getsignal(signum) is before             # handlers restored
    # the checkpoint loads and holds the network after iteration 3
    loaded = new_net(cfg, result.saved)
    assert loaded.seen == 3 * 12
    _, three = straight(cfg, tmp_path / "ref", 3)
    assert open(result.saved, "rb").read() == open(three.saved, "rb").read()


def test_a_second_signal_aborts_without_saving(cfg, tmp_path):
    net = new_net(cfg)
    before = signal.getsignal(signal.SIGINT)   # SIG_IGN when started in the background
    run = TR.TrainingRun(net, Synthetic(net), path_for=TR.darknet_paths(tmp_path, "synth"),
                         hooks=[_signal_at(2, signal.SIGINT, signal.SIGINT)],
                         on_signal=lambda s: None)
    result = run.run()
    assert result.aborted and result.saved is None and result.exit_status == 130
    assert result.last.iteration == 1          # iteration 2's bookkeeping never ran
    assert os.listdir(tmp_path) == ["synth.train.cfg"]
    assert signal.getsignal(signal.SIGINT) is before            # the handler is put back


def test_the_default_signal_note_goes_to_stderr(cfg, tmp_path, capsys):
    net = new_net(cfg)
    run = TR.TrainingRun(net, Synthetic(net), path_for=TR.darknet_paths(tmp_path, "synth"),
                         hooks=[_signal_at(1, signal.SIGINT)])
    assert run.run().signum == signal.SIGINT
    out, err = capsys.readouterr()
    assert out == "" and "interrupted: saving a checkpoint after this iteration" in err
