"""The native layer API: zero-copy NumPy buffers and clear errors on misuse
(never a crash)."""
import numpy as np
import pytest

from darknet_rnn import layers as L
from darknet_rnn.errors import KernelError


def rnd(*shape, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, shape).astype(np.float32)


def test_buffers_are_views_that_c_reads_and_writes():
    l = L.ConnectedLayer(batch=2, inputs=3, outputs=4, activation="linear")
    x = rnd(2, 3)
    l.forward(x)
    assert np.all(l.output == 0)                 # weights and biases start at zero
    w = l.weights
    w[1, 2] = 2.0                                 # write through the view
    l.biases[3] = 0.5
    l.forward(x)
    assert np.array_equal(l.output[:, 1], 2.0 * x[:, 2])
    assert np.array_equal(l.output[:, 3], np.full(2, 0.5, np.float32))
    l.weights = np.ones((4, 3), np.float32)       # assignment copies into the same buffer
    assert l.weights is w and np.all(w == 1)
    with pytest.raises(ValueError, match="weights must have shape"):
        l.weights = np.ones((3, 4), np.float32)


def test_rnn_state_and_sublayers_are_views():
    r = L.RNNLayer(batch=2, inputs=3, outputs=4, steps=3, activation="linear")
    assert r.state.shape == (4, 2, 4)
    assert r.output is r.output_layer.output and r.output.shape == (6, 4)
    r.input_layer.weights[...] = 1
    r.output_layer.weights[...] = np.eye(4, dtype=np.float32)
    x = rnd(6, 3)
    r.forward(x, train=False)
    assert np.any(r.state[0] != 0)                # inference keeps the state in block 0
    r.reset_state()
    assert np.all(r.state == 0)


@pytest.mark.parametrize("bad, exc, match", [
    (np.zeros((2, 3), np.float64), TypeError, "input must have dtype float32"),
    (np.zeros((3, 2), np.float32), ValueError, r"input must have shape \(2, 3\)"),
    (np.zeros((2, 6), np.float32)[:, ::2], ValueError, "input must be C-contiguous"),
    ([[0.0] * 3] * 2, TypeError, "input must be a numpy.ndarray"),
])
def test_connected_forward_rejects_bad_input(bad, exc, match):
    l = L.ConnectedLayer(batch=2, inputs=3, outputs=4)
    with pytest.raises(exc, match=match):
        l.forward(bad)


def test_backward_rejects_bad_prev_delta_and_step():
    l = L.ConnectedLayer(batch=2, inputs=3, outputs=4, steps=2)
    x = rnd(2, 3)
    l.forward(x, step=1)
    with pytest.raises(ValueError, match="prev_delta must have shape"):
        l.backward(x, prev_delta=np.zeros((2, 4), np.float32), step=1)
    ro = np.zeros((2, 3), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="prev_delta must be writable"):
        l.backward(x, prev_delta=ro, step=1)
    with pytest.raises(ValueError, match=r"step must be in \[0, 2\)"):
        l.forward(x, step=2)
    with pytest.raises(ValueError, match="stats_step"):
        l.backward(x, step=0, stats_step=-1)


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(batch=0, inputs=3, outputs=4), ValueError, "batch must be >= 1"),
    (dict(batch=2, inputs=-1, outputs=4), ValueError, "inputs must be >= 1"),
    (dict(batch=2, inputs=3, outputs=2.5), TypeError, "outputs must be an int"),
    (dict(batch=2, inputs=3, outputs=4, activation="Leaky"), ValueError, "unknown activation 'Leaky'"),
    (dict(batch=2, inputs=3, outputs=4, activation=None), TypeError, "activation must be a str"),
])
def test_connected_constructor_validation(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        L.ConnectedLayer(**kwargs)


def test_rnn_constructor_and_call_validation():
    with pytest.raises(ValueError, match="steps must be >= 1"):
        L.RNNLayer(batch=2, inputs=3, outputs=4, steps=0)
    with pytest.raises(ValueError, match="unknown activation"):
        L.RNNLayer(batch=2, inputs=3, outputs=4, steps=2, activation="gelu")
    r = L.RNNLayer(batch=2, inputs=3, outputs=4, steps=2)
    with pytest.raises(ValueError, match=r"input must have shape \(4, 3\)"):
        r.forward(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="fixes"):
        r.fixes = 1 << 10


def test_softmax_and_cost_validation():
    with pytest.raises(ValueError, match="groups"):
        L.SoftmaxLayer(batch=2, inputs=5, groups=2)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        L.SoftmaxLayer(batch=2, inputs=4, temperature=0)
    with pytest.raises(ValueError, match="unknown cost type 'l2'"):
        L.CostLayer(batch=2, inputs=4, cost_type="l2")
    s = L.SoftmaxLayer(batch=2, inputs=4)
    with pytest.raises(ValueError, match="truth must have shape"):
        s.forward(np.zeros((2, 4), np.float32), truth=np.zeros((2, 3), np.float32))


def test_unknown_or_unavailable_kernel_raises():
    from darknet_rnn._ffi import Context
    with pytest.raises(KernelError, match="unknown kernel"):
        Context("sse9")
    with pytest.raises(ValueError, match="threads must be >= 1"):
        Context("reference", 0)
