"""Oracle 1: the C core (reference kernel) against the NumPy twin, bitwise in
float32, for every layer type and activation, batch_normalize 0/1, shortcut
0/1, steps 1/3/8, streams 1/2/5 and several seeds: forward (train and
inference), backward (every delta and update buffer) and update, twice in a
row so momentum and carried state are exercised."""
import itertools

import numpy as np
import pytest

from darknet_rnn import layers as N
from darknet_rnn import reference as R
from darknet_rnn._ffi import Context
from darknet_rnn.activations import ACTIVATIONS
from darknet_rnn.fixes import FIX_ALL
from conftest import assert_bitwise

REF = Context("reference", 1)
PARAMS = ("weights", "biases", "scales", "rolling_mean", "rolling_variance")
BUFFERS = PARAMS + ("weight_updates", "bias_updates", "scale_updates", "output", "delta",
                    "mean", "variance", "x", "x_norm")


def rnd(rng, *shape, scale=1.0):
    return (rng.uniform(-1, 1, shape) * scale).astype(np.float32)


def init_connected(pair, rng):
    a, b = pair
    a.weights[...] = rnd(rng, a.outputs, a.inputs, scale=np.sqrt(2.0 / a.inputs))
    a.biases[...] = rnd(rng, a.outputs, scale=0.3)
    if a.batch_normalize:
        a.scales[...] = 1 + rnd(rng, a.outputs, scale=0.2)
        a.rolling_mean[...] = rnd(rng, a.outputs, scale=0.1)
        a.rolling_variance[...] = 0.5 + rng.uniform(0, 1, a.outputs).astype(np.float32)
    for name in PARAMS:
        if getattr(a, name) is not None:
            getattr(b, name)[...] = getattr(a, name)


def compare_connected(a, b, what):
    for name in BUFFERS:
        va, vb = getattr(a, name), getattr(b, name)
        assert (va is None) == (vb is None), f"{what}.{name} allocated in one only"
        if va is not None:
            assert_bitwise(va, vb, f"{what}.{name}")


def compare_rnn(a, b, what):
    for sub in ("input_layer", "self_layer", "output_layer"):
        compare_connected(getattr(a, sub), getattr(b, sub), f"{what}.{sub}")
    assert_bitwise(a.state, b.state, f"{what}.state")


def rnn_pair(rng, batch, inputs, outputs, steps, **kw):
    n = N.RNNLayer(batch, inputs, outputs, steps, ctx=REF, **kw)
    r = R.RNNLayer(batch, inputs, outputs, steps, **kw)
    for sub in ("input_layer", "self_layer", "output_layer"):
        init_connected((getattr(n, sub), getattr(r, sub)), rng)
    return n, r


def run_rnn_training(n, r, rng, batch, inputs, steps, compare):
    rows = batch * steps
    for it in range(2):
        x = rnd(rng, rows, inputs)
        n.forward(x, train=True)
        r.forward(x, train=True)
        compare(f"forward {it}")
        dy = rnd(rng, rows, n.outputs)           # what the next layer would write
        n.delta[...] = dy
        r.delta[...] = dy
        pd0 = rnd(rng, rows, inputs, scale=0.1)  # prev_delta accumulates, never overwritten
        pdn, pdr = pd0.copy(), pd0.copy()
        n.backward(x, pdn)
        r.backward(x, pdr)
        compare(f"backward {it}")
        assert_bitwise(pdn, pdr, f"prev_delta {it}")
        n.update(0.1, 0.9, 0.001, rows)
        r.update(0.1, 0.9, 0.001, rows)
        compare(f"update {it}")
    for it in range(2):                           # inference: state carries across calls
        x = rnd(rng, rows, inputs)
        n.forward(x, train=False)
        r.forward(x, train=False)
        compare(f"inference {it}")


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("steps,streams", [(1, 1), (3, 2), (8, 5)])
@pytest.mark.parametrize("shortcut", [False, True])
@pytest.mark.parametrize("bn", [False, True])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_rnn_bitwise(activation, bn, shortcut, steps, streams, seed):
    rng = np.random.default_rng(seed * 1000 + steps)
    n, r = rnn_pair(rng, streams, 4, 5, steps, activation=activation, batch_normalize=bn,
                    shortcut=shortcut)
    run_rnn_training(n, r, rng, streams, 4, steps,
                     lambda what: compare_rnn(n, r, f"{activation} bn={bn} sc={shortcut} {what}"))


@pytest.mark.parametrize("steps,streams", list(itertools.product([1, 3, 8], [1, 2, 5])))
@pytest.mark.parametrize("bn", [False, True])
def test_rnn_bitwise_all_shapes(bn, steps, streams):
    rng = np.random.default_rng(7 + steps * 10 + streams)
    n, r = rnn_pair(rng, streams, 3, 6, steps, activation="leaky", batch_normalize=bn,
                    shortcut=True)
    run_rnn_training(n, r, rng, streams, 3, steps, lambda what: compare_rnn(n, r, what))


@pytest.mark.parametrize("fixes", [1, 2, 4, 8, 1 | 2 | 4 | 8])
@pytest.mark.parametrize("bn", [False, True])
def test_rnn_fixes_routing_bitwise(fixes, bn):
    """Q2-Q5 fixes only reroute data: still bitwise between the twins."""
    rng = np.random.default_rng(fixes)
    n, r = rnn_pair(rng, 3, 4, 5, 4, activation="tanh", batch_normalize=bn, shortcut=True,
                    fixes=fixes)
    run_rnn_training(n, r, rng, 3, 4, 4, lambda what: compare_rnn(n, r, what))


@pytest.mark.parametrize("shortcut", [False, True])
@pytest.mark.parametrize("activation", ["logistic", "leaky"])
def test_rnn_exact_mode_bitwise(activation, shortcut):
    """FIX_ALL, including Q6's exact BN derivative (same double-precision
    layout in C and NumPy): still bitwise."""
    rng = np.random.default_rng(11)
    n, r = rnn_pair(rng, 4, 3, 5, 3, activation=activation, batch_normalize=True,
                    shortcut=shortcut, fixes=FIX_ALL)
    run_rnn_training(n, r, rng, 4, 3, 3, lambda what: compare_rnn(n, r, what))


@pytest.mark.parametrize("seed", [3, 4])
@pytest.mark.parametrize("batch", [1, 2, 5])
@pytest.mark.parametrize("bn", [False, True])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_connected_bitwise(activation, bn, batch, seed):
    rng = np.random.default_rng(seed)
    n = N.ConnectedLayer(batch, 7, 6, activation=activation, batch_normalize=bn, ctx=REF,
                         learning_rate_scale=0.5)
    r = R.ConnectedLayer(batch, 7, 6, activation=activation, batch_normalize=bn,
                         learning_rate_scale=0.5)
    init_connected((n, r), rng)
    for it in range(2):
        x = rnd(rng, batch, 7, scale=2.0)
        for train in (True, False):
            n.forward(x, train=train)
            r.forward(x, train=train)
            compare_connected(n, r, f"{activation} forward train={train}")
        n.forward(x)
        r.forward(x)
        d = rnd(rng, batch, 6)
        n.delta[...] = d
        r.delta[...] = d
        pdn = rnd(rng, batch, 7)
        pdr = pdn.copy()
        n.backward(x, pdn)
        r.backward(x, pdr)
        compare_connected(n, r, f"{activation} backward")
        assert_bitwise(pdn, pdr, "prev_delta")
        n.update(0.05, 0.9, 0.0005, batch)
        r.update(0.05, 0.9, 0.0005, batch)
        compare_connected(n, r, f"{activation} update")


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_activation_extremes_bitwise(activation):
    """Large, tiny, zero, negative zero, inf and NaN pre-activations (Q9, Q10)."""
    vals = np.array([0.0, -0.0, 1e-30, -1e-30, 0.5, -0.5, 1.0, -1.0, 4.0, -4.0, 4.5, -4.5,
                     20.0, -20.0, 100.0, -100.0, 355.0, 400.0, -400.0, 800.0, -800.0, 1e30,
                     -1e30, np.inf, -np.inf, np.nan, 2.5, -2.5, 3.0, -3.0, 0.999, 1.001],
                    dtype=np.float32)
    k = vals.size
    n = N.ConnectedLayer(k, 1, 1, activation=activation, ctx=REF)
    r = R.ConnectedLayer(k, 1, 1, activation=activation)
    for l in (n, r):
        l.weights[...] = 1
    x = vals.reshape(k, 1)
    n.forward(x)
    r.forward(x)
    assert_bitwise(n.output, r.output, f"{activation} forward")
    assert_bitwise(np.signbit(n.output), np.signbit(r.output), f"{activation} sign of zero")
    n.delta[...] = 1
    r.delta[...] = 1
    n.backward(x)
    r.backward(x)
    assert_bitwise(n.delta, r.delta, f"{activation} gradient")


@pytest.mark.parametrize("truth_kind", ["onehot", "soft", "none"])
@pytest.mark.parametrize("groups,temperature,noloss", [(1, 1.0, False), (2, 0.5, False),
                                                        (3, 2.0, False), (1, 1.0, True)])
def test_softmax_bitwise(groups, temperature, noloss, truth_kind):
    rng = np.random.default_rng(groups)
    batch, inputs = 4, 6
    n = N.SoftmaxLayer(batch, inputs, groups=groups, temperature=temperature, noloss=noloss)
    r = R.SoftmaxLayer(batch, inputs, groups=groups, temperature=temperature, noloss=noloss)
    x = rnd(rng, batch, inputs, scale=5.0)
    if truth_kind == "onehot":
        truth = np.eye(inputs, dtype=np.float32)[rng.integers(0, inputs, batch)]
    elif truth_kind == "soft":
        truth = rng.uniform(0, 1, (batch, inputs)).astype(np.float32)
        truth[0, 0] = 0
    else:
        truth = None
    n.forward(x, truth)
    r.forward(x, truth)
    for name in ("output", "delta", "loss"):
        assert_bitwise(getattr(n, name), getattr(r, name), f"softmax {name}")
    assert n.cost == r.cost
    pd = rnd(rng, batch, inputs)
    pdn, pdr = pd.copy(), pd.copy()
    n.backward(pdn)
    r.backward(pdr)
    assert_bitwise(pdn, pdr, "softmax prev_delta")


@pytest.mark.parametrize("cost_type", ["sse", "masked", "L1", "seg", "smooth", "wgan"])
@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_cost_bitwise(cost_type, scale):
    rng = np.random.default_rng(5)
    batch, inputs = 3, 5
    n = N.CostLayer(batch, inputs, cost_type=cost_type, scale=scale)
    r = R.CostLayer(batch, inputs, cost_type=cost_type, scale=scale)
    x = rnd(rng, batch, inputs, scale=3.0)
    truth = rnd(rng, batch, inputs, scale=3.0)
    truth[1, 2] = -1234.0                         # masked's SECRET_NUM
    xn, xr = x.copy(), x.copy()
    n.forward(xn, truth)
    r.forward(xr, truth)
    assert_bitwise(xn, xr, "cost input (masked writes into it)")
    for name in ("output", "delta"):
        assert_bitwise(getattr(n, name), getattr(r, name), f"cost {name}")
    assert n.cost == r.cost
    pd = rnd(rng, batch, inputs)
    pdn, pdr = pd.copy(), pd.copy()
    n.backward(pdn)
    r.backward(pdr)
    assert_bitwise(pdn, pdr, "cost prev_delta")
