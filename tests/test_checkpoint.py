"""Exact resume: N datums straight equal N/2, a checkpoint (Darknet .weights
plus the training-state sidecar), a fresh process-like reload and N/2 more."""
import numpy as np
import pytest

import darknet_rnn
from darknet_rnn.checkpoint import CheckpointError, state_path

CFG = """[net]
batch=4
subdivisions={sub}
time_steps=3
inputs=5
learning_rate=0.05
momentum=0.9
decay=0.001
policy={policy}
max_batches=100
{extra}
[rnn]
output=6
activation=tanh
batch_normalize=1
[connected]
output=4
activation=linear
[softmax]
"""


def cfg(tmp_path, sub=1, policy="constant", extra=""):
    p = tmp_path / f"n{sub}{policy}{len(extra)}.cfg"
    p.write_text(CFG.format(sub=sub, policy=policy, extra=extra))
    return p


def data(net, i):
    rng = np.random.default_rng(100 + i)
    x = rng.standard_normal((net.time_steps, net.streams, net.inputs)).astype(np.float32)
    y = np.eye(net.outputs, dtype=np.float32)[
        rng.integers(0, net.outputs, (net.time_steps, net.streams))]
    return x, y


@pytest.mark.parametrize("backend", ["native", "reference"])
@pytest.mark.parametrize("opt,policy,sub", [("sgd", "constant", 1), ("sgd", "random", 2),
                                            ("adam", "constant", 1)])
def test_resume_continues_bit_for_bit(tmp_path, backend, opt, policy, sub):
    path = cfg(tmp_path, sub, policy, "adam=1" if opt == "adam" else "")
    kw = dict(backend=backend, optimizer=opt)
    n = 8
    straight = darknet_rnn.load_network(path, seed=9, **kw)
    for i in range(n):
        straight.train(*data(straight, i))
    straight.save_weights(tmp_path / "straight.weights")

    first = darknet_rnn.load_network(path, seed=9, **kw)
    for i in range(n // 2):
        first.train(*data(first, i))
    w = tmp_path / "half.weights"
    first.save_weights(w)
    first.save_training_state(state_path(w), extra={"offsets": np.arange(4)})

    second = darknet_rnn.load_network(path, w, seed=12345, **kw)   # another seed: rng restored
    extra = second.load_training_state(state_path(w))
    assert list(extra["offsets"]) == [0, 1, 2, 3]
    for i in range(n // 2, n):
        second.train(*data(second, i))
    second.save_weights(tmp_path / "resumed.weights")
    assert (tmp_path / "resumed.weights").read_bytes() == \
        (tmp_path / "straight.weights").read_bytes()

    # without the sidecar the momentum (or Adam's moments) restarts: not the same run
    third = darknet_rnn.load_network(path, w, seed=9, **kw)
    for i in range(n // 2, n):
        third.train(*data(third, i))
    third.save_weights(tmp_path / "plain.weights")
    assert (tmp_path / "plain.weights").read_bytes() != \
        (tmp_path / "straight.weights").read_bytes()


def test_sidecar_of_another_network_is_refused(tmp_path):
    a = darknet_rnn.load_network(cfg(tmp_path), seed=1)
    a.train(*data(a, 0))
    a.save_weights(tmp_path / "a.weights")
    a.save_training_state(tmp_path / "a.weights.state")
    other = tmp_path / "other.cfg"
    other.write_text(CFG.format(sub=1, policy="constant", extra="").replace("output=6", "output=7"))
    b = darknet_rnn.load_network(other, seed=1)
    with pytest.raises(CheckpointError, match="a.weights.state"):
        b.load_training_state(tmp_path / "a.weights.state")
    c = darknet_rnn.load_network(cfg(tmp_path), seed=1)          # seen=0, file says 12
    before = [p.grad.copy() for p in c.params()]
    with pytest.raises(CheckpointError, match="seen="):
        c.load_training_state(tmp_path / "a.weights.state")
    assert all(np.array_equal(g, p.grad) for g, p in zip(before, c.params()))
    d = darknet_rnn.load_network(cfg(tmp_path), tmp_path / "a.weights", seed=1, optimizer="adam")
    with pytest.raises(CheckpointError, match="optimizer"):
        d.load_training_state(tmp_path / "a.weights.state")
    (tmp_path / "junk.state").write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match="junk.state"):
        d.load_training_state(tmp_path / "junk.state")
