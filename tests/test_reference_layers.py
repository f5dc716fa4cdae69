"""darknet_rnn.reference, layer by layer: values worked out by hand from the
SPEC formulas, Darknet's summation order checked against scalar loops,
float32 vs float64 consistency, RNN state handling, argument validation."""
import math

import numpy as np
import pytest

from darknet_rnn import reference as R

F32, F64 = np.float32, np.float64


def rnd(*shape, seed=0, scale=1.0, dtype=F32):
    return (np.random.default_rng(seed).uniform(-scale, scale, shape)).astype(dtype)


def bits_equal(a, b):
    """Bitwise equality (NaN == NaN, -0.0 != +0.0)."""
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))


# ---------------------------------------------------------------------------
# Activations: hand values (SPEC §2)

f = F32


@pytest.mark.parametrize("name, x, want", [
    ("linear", 2.5, 2.5),
    ("logistic", 0.0, 0.5),
    ("loggy", 0.0, 0.0),
    ("relu", 3.0, 3.0),
    ("relie", -1.0, f(-0.01)),
    ("leaky", -2.0, f(-0.2)),
    ("leaky", 2.0, 2.0),
    ("ramp", -1.0, f(-0.1)),
    ("ramp", 2.0, f(2.2)),
    ("elu", -1.0, f(math.exp(-1) - 1)),
    ("elu", 1.5, 1.5),
    ("selu", 1.0, f(1.0507)),
    ("selu", -1.0, f(1.0507 * 1.6732 * (math.exp(-1) - 1))),
    ("tanh", 0.5, f(math.tanh(0.5))),
    ("tanh", -400.0, -1.0),
    ("plse", -5.0, f(-0.01)),
    ("plse", 5.0, f(1.01)),
    ("plse", 2.0, 0.75),
    ("hardtan", 2.0, 1.0),
    ("hardtan", -3.0, -1.0),
    ("hardtan", 0.25, 0.25),
    ("lhtan", -2.0, f(-0.002)),
    ("lhtan", 2.0, f(1.001)),
    ("lhtan", 0.5, 0.5),
    ("stair", 2.5, 1.0),        # floor 2 even: floor(2.5/2)
    ("stair", 3.5, 1.5),        # floor 3 odd: (3.5-3) + floor(1.75)
    ("stair", -0.5, -0.5),      # floor -1 odd: (-0.5+1) + floor(-0.25)
])
def test_activation_values(name, x, want):
    got = R.activate(np.array([x], F32), name)
    assert got.dtype == F32
    assert got[0] == F32(want), (name, x, got[0], F32(want))


def test_activation_quirks():
    # Q10: relu gives -0.0 for negative inputs (x * 0 in float); NaN stays NaN.
    y = R.activate(np.array([-2.0, np.nan], F32), "relu")
    assert y[0] == 0 and np.signbit(y[0]) and np.isnan(y[1])
    # Q9: tanh via exp(2x) is NaN once exp overflows (inf/inf).
    assert np.isnan(R.activate(np.array([400.0], F32), "tanh")[0])
    assert R.activate(np.array([300.0], F32), "tanh")[0] == 1.0
    # stair on (-1, 0): (x - n) is a float subtraction: x + 1 rounds to 1 for tiny x.
    assert R.activate(np.array([-1e-9], F32), "stair")[0] == 0.0
    # elu/selu evaluate both branches: 0 * exp(800) = 0 * inf = NaN.
    assert np.isnan(R.activate(np.array([800.0], F32), "elu")[0])
    assert np.isnan(R.activate(np.array([800.0], F32), "selu")[0])


@pytest.mark.parametrize("name, y, want", [
    ("linear", 7.0, 1.0),
    ("logistic", 0.25, 0.1875),
    ("loggy", 0.0, 0.5),        # u = 0.5: 2 (1-u) u
    ("relu", 0.0, 0.0),
    ("relu", 0.5, 1.0),
    ("elu", -0.5, 0.5),
    ("elu", 0.5, 1.0),
    ("selu", 0.5, f(1.0507)),
    ("selu", -0.5, f(-0.5 + 1.0507 * 1.6732)),
    ("relie", -1.0, f(0.01)),
    ("ramp", 1.0, f(1.1)),
    ("ramp", -1.0, f(0.1)),
    ("leaky", -1.0, f(0.1)),
    ("tanh", 0.5, 0.75),
    ("plse", 1.5, f(0.01)),
    ("plse", 0.5, 0.125),
    ("hardtan", 1.0, 0.0),
    ("hardtan", 0.5, 1.0),
    ("lhtan", 0.5, 1.0),
    ("lhtan", 1.5, f(0.001)),
    ("stair", 2.0, 0.0),
    ("stair", 2.5, 1.0),
])
def test_gradient_values(name, y, want):
    got = R.gradient(np.array([y], F32), name)
    assert got.dtype == F32 and got[0] == F32(want), (name, y, got[0])


def test_loggy_gradient_rounds_u_to_float():
    # y = 1 - 2^-24: u = (y+1)/2 = 1 - 2^-25 is a tie between two floats and
    # rounds to 1.0, so the float gradient is exactly 0 (in double it is ~6e-8).
    y = np.array([1 - 2.0**-24], F32)
    assert R.gradient(y, "loggy")[0] == 0.0


@pytest.mark.parametrize("name", ["logistic", "loggy", "elu", "selu", "tanh", "relie", "ramp",
                                  "leaky", "plse", "lhtan", "linear", "relu", "hardtan"])
def test_gradient_of_output_is_derivative(name):
    # Darknet's gradient takes y = f(x); it must equal f'(x) (float64, away from kinks).
    x = np.concatenate([np.linspace(-5.7, -0.05, 40), np.linspace(0.05, 5.7, 40)])
    x = x[np.abs(np.abs(x) - 4) > 0.05]
    x = x[np.abs(x - 1) > 0.05]
    h = 1e-6
    numeric = (R.activate(x + h, name) - R.activate(x - h, name)) / (2 * h)
    analytic = R.gradient(R.activate(x, name), name)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8, err_msg=name)


# ---------------------------------------------------------------------------
# Connected layer: Darknet's summation order, checked with scalar loops

def scalar_connected_forward(x, w, b):
    """The C loops written out with float32 scalars: sum = 0; sum += x*w;
    0 + sum; + bias; logistic in double."""
    rows, n_in = x.shape
    out = np.zeros((rows, w.shape[0]), F32)
    for i in range(rows):
        for j in range(w.shape[0]):
            s = F32(0)
            for k in range(n_in):
                s = F32(s + F32(x[i, k] * w[j, k]))
            z = F32(F32(0) + s) + b[j]
            out[i, j] = F32(1.0 / (1.0 + math.exp(-float(z))))
    return out


def test_connected_forward_matches_scalar_loops_bitwise():
    x, w, b = rnd(3, 17, seed=1, scale=3), rnd(5, 17, seed=2), rnd(5, seed=3)
    layer = R.ConnectedLayer(3, 17, 5, "logistic")
    layer.weights[...] = w
    layer.biases[...] = b
    layer.forward(x)
    assert bits_equal(layer.output, scalar_connected_forward(x, w, b))


def test_connected_backward_matches_scalar_loops_bitwise():
    rows, n_in, n_out = 4, 6, 5
    x, w = rnd(rows, n_in, seed=4, scale=2), rnd(n_out, n_in, seed=5)
    d0 = rnd(rows, n_out, seed=6)
    layer = R.ConnectedLayer(rows, n_in, n_out, "linear")
    layer.weights[...] = w
    layer.weight_updates[...] = rnd(n_out, n_in, seed=7)   # accumulates onto old values
    layer.bias_updates[0] = -0.0
    d0[:, 0] = -0.0               # (0 + -0.0) is +0.0: bias_updates[0] becomes +0.0
    wu = layer.weight_updates.copy()
    bu = layer.bias_updates.copy()
    prev = rnd(rows, n_in, seed=8)
    want_prev = prev.copy()
    layer.forward(x)
    layer.delta[...] = d0
    layer.backward(x, prev)
    for o in range(n_out):                      # weight_updates[o,i] += d[r,o]*x[r,i], r in order
        for i in range(n_in):
            acc = wu[o, i]
            for r in range(rows):
                acc = F32(acc + F32(d0[r, o] * x[r, i]))
            wu[o, i] = acc
    for o in range(n_out):                      # bias_updates[o] += 0 + d[r,o], r in order
        for r in range(rows):
            bu[o] = F32(bu[o] + F32(F32(0) + d0[r, o]))
    for r in range(rows):                       # prev[r,i] += d[r,k]*w[k,i], k in order
        for i in range(n_in):
            acc = want_prev[r, i]
            for k in range(n_out):
                acc = F32(acc + F32(d0[r, k] * w[k, i]))
            want_prev[r, i] = acc
    assert bits_equal(layer.weight_updates, wu)
    assert bits_equal(layer.bias_updates, bu)
    assert bits_equal(prev, want_prev)


def test_connected_steps_write_their_own_rows():
    layer = R.ConnectedLayer(2, 3, 4, "linear", steps=3)
    layer.weights[...] = rnd(4, 3, seed=9)
    x = rnd(2, 3, seed=10)
    layer.forward(x, step=1)
    assert np.all(layer.output[:2] == 0) and np.all(layer.output[4:] == 0)
    assert np.any(layer.output[2:4] != 0)


def test_update_order_and_float_semantics():
    # Values chosen so every step is exact: lr 0.5 * scale 2 / batch 2 = 0.5.
    layer = R.ConnectedLayer(1, 1, 1, "linear", batch_normalize=True, learning_rate_scale=2.0)
    layer.weights[...] = 1.0
    layer.weight_updates[...] = 4.0
    layer.biases[...] = 0.25
    layer.bias_updates[...] = 2.0
    layer.scales[...] = 1.0
    layer.scale_updates[...] = -1.0
    layer.update(learning_rate=0.5, momentum=0.5, decay=0.25, batch=2)
    assert layer.biases[0] == 0.25 + 0.5 * 2.0          # biases += a * bias_updates
    assert layer.bias_updates[0] == 1.0                  # then *= momentum
    assert layer.scales[0] == 1.0 - 0.5                  # scales += a * scale_updates
    assert layer.scale_updates[0] == -0.5
    # weight_updates += (-decay*batch) * weights = 4 - 0.5 = 3.5 (decay before the step)
    assert layer.weights[0, 0] == 1.0 + 0.5 * 3.5
    assert layer.weight_updates[0, 0] == 3.5 * 0.5       # momentum after the step


def test_update_rounds_like_float():
    layer = R.ConnectedLayer(1, 1, 1, "linear")
    layer.weights[...] = 1.0
    layer.bias_updates[...] = 1.0
    layer.update(learning_rate=0.1, momentum=0.9, decay=0.0, batch=3)
    a = F32(F32(F32(0.1) * F32(1.0)) / F32(3))
    assert layer.biases[0] == a
    assert layer.bias_updates[0] == F32(0.9)


# ---------------------------------------------------------------------------
# Batch normalisation (SPEC §4)

def test_batchnorm_forward_by_hand():
    layer = R.ConnectedLayer(4, 1, 1, "linear", batch_normalize=True)
    layer.weights[...] = 1.0
    layer.scales[...] = 2.0
    layer.biases[...] = 0.5
    x = np.array([[1.0], [2.0], [3.0], [6.0]], F32)
    layer.forward(x)
    mean, var = 3.0, (4 + 1 + 0 + 9) / 3.0               # unbiased variance
    x_norm = (x[:, 0] - mean) / (math.sqrt(var) + 1e-6)  # epsilon outside the root
    np.testing.assert_allclose(layer.mean[0], mean, rtol=1e-7)
    np.testing.assert_allclose(layer.variance[0], var, rtol=1e-7)
    np.testing.assert_allclose(layer.x_norm[:, 0], x_norm, rtol=1e-6)
    np.testing.assert_allclose(layer.output[:, 0], 2.0 * x_norm + 0.5, rtol=1e-6)
    assert np.array_equal(layer.x, x)
    np.testing.assert_allclose(layer.rolling_mean, 0.01 * mean, rtol=1e-6)
    np.testing.assert_allclose(layer.rolling_variance, 0.01 * var, rtol=1e-6)

    # Inference: rolling statistics, nothing updated.
    stats = [a.copy() for a in (layer.rolling_mean, layer.rolling_variance, layer.mean,
                                layer.variance, layer.x_norm)]
    layer.forward(x, train=False)
    rm, rv = 0.01 * mean, 0.01 * var
    np.testing.assert_allclose(layer.output[:, 0],
                               2.0 * (x[:, 0] - rm) / (math.sqrt(rv) + 1e-6) + 0.5, rtol=1e-5)
    for before, after in zip(stats, (layer.rolling_mean, layer.rolling_variance, layer.mean,
                                     layer.variance, layer.x_norm)):
        assert np.array_equal(before, after)


def test_batchnorm_matches_scalar_loops_bitwise():
    # SPEC §4 written out with float32/double scalars, forward and Darknet's backward.
    n, c = 6, 60
    x_in = rnd(n, 4, seed=15, scale=2)
    layer = R.ConnectedLayer(n, 4, c, "linear", batch_normalize=True)
    layer.weights[...] = rnd(c, 4, seed=16)
    layer.scales[...] = 1 + rnd(c, seed=17, scale=0.5)
    layer.biases[...] = rnd(c, seed=18)
    layer.scale_updates[...] = old_su = rnd(c, seed=20, scale=3)   # the sum is added at the end
    layer.forward(x_in)
    z = layer.x                                   # the GEMM result (checked elsewhere)
    d0 = rnd(n, c, seed=19)
    layer.delta[...] = d0
    layer.backward(x_in)
    scales, biases = layer.scales, layer.biases
    for j in range(c):
        s = F32(0)
        for r in range(n):
            s = F32(s + z[r, j])
        mean = F32(s * F32(1.0 / n))
        v = F32(0)
        for r in range(n):
            dev = float(F32(z[r, j] - mean))
            v = F32(float(v) + dev * dev)
        var = F32(v * F32(1.0 / (n - 1)))
        assert layer.mean[0, j] == mean and layer.variance[0, j] == var
        x_norm = [F32(float(F32(z[r, j] - mean)) / (math.sqrt(float(var)) + float(F32(1e-6))))
                  for r in range(n)]
        for r in range(n):
            assert layer.x_norm[r, j] == x_norm[r]
            assert layer.output[r, j] == F32(F32(x_norm[r] * scales[j]) + biases[j])
        # backward
        su = F32(0)
        for r in range(n):
            su = F32(su + F32(d0[r, j] * x_norm[r]))
        assert layer.scale_updates[j] == F32(old_su[j] + su)
        g = [F32(d0[r, j] * scales[j]) for r in range(n)]
        eps_var = float(F32(var + F32(1e-5)))
        s = F32(0)
        for r in range(n):
            s = F32(s + g[r])
        mean_delta = F32(float(s) * (-1.0 / math.sqrt(eps_var)))
        s = F32(0)
        for r in range(n):
            s = F32(s + F32(g[r] * F32(z[r, j] - mean)))
        variance_delta = F32(float(s) * (-0.5 * math.pow(eps_var, -1.5)))
        for r in range(n):
            want = F32(float(g[r]) * 1.0 / math.sqrt(eps_var)
                       + float(variance_delta) * 2.0 * float(F32(z[r, j] - mean)) / n
                       + float(F32(mean_delta / F32(n))))
            assert layer.delta[r, j] == want, (r, j)


def test_batchnorm_one_row_is_nan():
    # Q7: variance = 0 * (1/0) = NaN with one row; reproduced, not raised.
    layer = R.ConnectedLayer(1, 2, 2, "linear", batch_normalize=True)
    layer.weights[...] = 1.0
    layer.forward(np.ones((1, 2), F32))
    assert np.all(np.isnan(layer.variance[0])) and np.all(np.isnan(layer.output))


def test_batchnorm_backward_by_hand():
    # Darknet's formula (SPEC §4 Backward) evaluated in float64 by hand.
    n = 4
    layer = R.ConnectedLayer(n, 1, 1, "linear", batch_normalize=True, dtype=F64)
    layer.weights[...] = 1.0
    layer.scales[...] = 1.5
    x = np.array([[1.0], [2.0], [4.0], [9.0]])
    layer.forward(x)
    d = np.array([0.3, -0.2, 0.5, 0.1])
    layer.delta[:, 0] = d
    layer.backward(x)
    mean = x.mean()
    var = ((x - mean) ** 2).sum() / (n - 1)
    x_norm = (x[:, 0] - mean) / (math.sqrt(var) + 1e-6)
    assert layer.bias_updates[0] == pytest.approx(d.sum(), rel=1e-12)
    assert layer.scale_updates[0] == pytest.approx((d * x_norm).sum(), rel=1e-12)
    g = d * 1.5
    mean_delta = g.sum() * (-1 / math.sqrt(var + 1e-5))
    variance_delta = (g * (x[:, 0] - mean)).sum() * (-0.5 * (var + 1e-5) ** -1.5)
    want = (g / math.sqrt(var + 1e-5) + variance_delta * 2 * (x[:, 0] - mean) / n
            + mean_delta / n)
    np.testing.assert_allclose(layer.delta[:, 0], want, rtol=1e-12)


def test_batchnorm_stats_step_selects_statistics():
    layer = R.ConnectedLayer(3, 2, 2, "logistic", batch_normalize=True, steps=2)
    layer.weights[...] = rnd(2, 2, seed=11)
    x0, x1 = rnd(3, 2, seed=12), rnd(3, 2, seed=13, scale=4)
    layer.forward(x0, step=0)
    layer.forward(x1, step=1)
    assert not np.array_equal(layer.mean[0], layer.mean[1])
    d = rnd(3, 2, seed=14)

    def delta_after(stats_step):
        layer.delta[:3] = d
        layer.backward(x0, step=0, stats_step=stats_step)
        return layer.delta[:3].copy()

    assert not np.array_equal(delta_after(0), delta_after(1))
    assert np.array_equal(delta_after(None), delta_after(0))


# ---------------------------------------------------------------------------
# float32 and float64 agree (the float64 layers are what the FD tests use)

def build_rnn(dtype, activation, bn, shortcut, fixes, B=4, I=5, H=6, T=3):
    layer = R.RNNLayer(B, I, H, T, activation, bn, shortcut, fixes=fixes, dtype=dtype)
    for k, sub in enumerate(layer.sublayers):
        sub.weights[...] = rnd(*sub.weights.shape, seed=20 + k, scale=0.7)
        sub.biases[...] = rnd(sub.outputs, seed=30 + k, scale=0.2)
        if bn:
            sub.scales[...] = 1 + rnd(sub.outputs, seed=40 + k, scale=0.3)
    return layer


@pytest.mark.parametrize("activation", ["logistic", "tanh", "leaky", "elu", "selu"])
@pytest.mark.parametrize("bn, shortcut", [(False, False), (False, True), (True, False),
                                          (True, True)])
def test_float32_agrees_with_float64(activation, bn, shortcut):
    B, I, H, T = 4, 5, 6, 3
    results = {}
    for dt in (F32, F64):
        layer = build_rnn(dt, activation, bn, shortcut, R.FIX_ALL)
        x = rnd(T * B, I, seed=50, dtype=dt)
        layer.forward(x)
        layer.delta[...] = rnd(T * B, H, seed=51, dtype=dt)
        prev = np.zeros((T * B, I), dt)
        layer.backward(x, prev)
        out = {"output": layer.output.copy(), "prev_delta": prev}
        for name, sub in zip(("in", "self", "out"), layer.sublayers):
            out[name + ".weight_updates"] = sub.weight_updates.copy()
            out[name + ".bias_updates"] = sub.bias_updates.copy()
        results[dt] = out
    for key, want in results[F64].items():
        got = results[F32][key].astype(F64)
        err = np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-6)
        assert err < 1e-5, f"{key}: float32 vs float64 rel. err {err:.3g}"


# ---------------------------------------------------------------------------
# RNN state handling (SPEC §5, Q21)

def test_rnn_inference_carries_state_like_one_sequence():
    # Two single-step inference calls == one two-step training forward (no BN).
    B, I, H = 2, 3, 4
    seq = build_rnn(F32, "tanh", False, True, 0, B=B, I=I, H=H, T=2)
    step = build_rnn(F32, "tanh", False, True, 0, B=B, I=I, H=H, T=1)
    x = rnd(2 * B, I, seed=60, scale=2)
    seq.forward(x, train=True)
    step.forward(x[:B], train=False)
    first = step.output.copy()
    step.forward(x[B:], train=False)
    assert bits_equal(first, seq.output[:B])
    assert bits_equal(step.output, seq.output[B:])
    assert bits_equal(step.state[0], seq.state[2])

    step.reset_state()
    assert np.all(step.state == 0)
    step.forward(x[:B], train=False)
    assert bits_equal(step.output, first)


def test_rnn_train_forward_starts_from_zero_state():
    layer = build_rnn(F32, "logistic", False, False, 0)
    x = rnd(12, 5, seed=61)
    layer.forward(x)
    fresh = layer.output.copy()
    layer.state[...] = 7.0                       # e.g. left over from inference
    layer.forward(x)
    assert bits_equal(layer.output, fresh)
    assert np.all(layer.state[0] == 0)


def test_rnn_forward_zeroes_sublayer_deltas_and_stores_states():
    layer = build_rnn(F32, "linear", False, True, 0, B=2, I=3, H=4, T=3)
    for sub in layer.sublayers:
        sub.delta[...] = 1.0
    x = rnd(6, 3, seed=62)
    layer.forward(x)
    assert all(np.all(sub.delta == 0) for sub in layer.sublayers)
    a, b = layer.input_layer.output, layer.self_layer.output
    h = np.zeros((2, 4), F32)
    for t in range(3):
        h = (h + a[2 * t:2 * t + 2]) + b[2 * t:2 * t + 2]    # shortcut: h_t + a_t + b_t
        assert bits_equal(layer.state[t + 1], h)


def test_rnn_darknet_backward_overwrites_state_without_shortcut_term():
    # Q4: after Darknet's backward the stored states are a_t + b_t.
    for fixes, keeps in ((0, False), (R.FIX_STORED_STATE, True)):
        layer = build_rnn(F32, "linear", False, True, fixes, B=2, I=3, H=4, T=3)
        x = rnd(6, 3, seed=63)
        layer.forward(x)
        stored = layer.state.copy()
        layer.delta[...] = rnd(6, 4, seed=64)
        layer.backward(x)
        a, b = layer.input_layer.output, layer.self_layer.output
        recomputed = (a + b).reshape(3, 2, 4)
        if keeps:
            assert bits_equal(layer.state, stored)
        else:
            assert bits_equal(layer.state[1:], recomputed)


def test_rnn_bn_rolling_statistics_update_every_step():
    layer = build_rnn(F32, "linear", True, False, 0, B=3, I=2, H=2, T=4)
    layer.forward(rnd(12, 2, seed=65))
    rm = np.zeros(2, F32)
    for t in range(4):                           # Q22: once per step
        rm = rm * F32(0.99) + F32(0.01) * layer.input_layer.mean[t]
    assert bits_equal(layer.input_layer.rolling_mean, rm)


# ---------------------------------------------------------------------------
# Softmax (SPEC §6)

def test_softmax_by_hand():
    layer = R.SoftmaxLayer(1, 3, dtype=F64)
    layer.forward(np.array([[1.0, 2.0, 3.0]]), truth=np.array([[0.0, 0.5, 0.0]]))
    e = np.exp([-2.0, -1.0, 0.0])
    p = e / e.sum()
    np.testing.assert_allclose(layer.output[0], p, rtol=1e-15)
    # Q12: error is -log p wherever truth != 0, whatever the truth value.
    np.testing.assert_allclose(layer.loss[0], [0.0, -math.log(p[1]), 0.0], rtol=1e-15)
    np.testing.assert_allclose(layer.delta[0], [-p[0], 0.5 - p[1], -p[2]], rtol=1e-15)
    assert layer.cost == pytest.approx(-math.log(p[1]), rel=1e-15)


def test_softmax_matches_scalar_loops_bitwise():
    rows, n, temp = 3, 37, 0.7
    x = rnd(rows, n, seed=71, scale=5)
    truth = np.zeros((rows, n), F32)
    truth[[0, 1, 2], [3, 36, 0]] = 1
    layer = R.SoftmaxLayer(rows, n, temperature=temp)
    layer.forward(x, truth)
    t = F32(temp)
    cost = F32(0)
    for r in range(rows):
        largest = F32(-np.finfo(F32).max)
        for v in x[r]:
            if v > largest:
                largest = v
        e = [F32(math.exp(float(F32(F32(v / t) - F32(largest / t))))) for v in x[r]]
        total = F32(0)
        for v in e:
            total = F32(total + v)
        for i in range(n):
            p = F32(e[i] / total)
            assert layer.output[r, i] == p
            err = F32(-math.log(float(p))) if truth[r, i] else F32(0)
            assert layer.loss[r, i] == err and layer.delta[r, i] == F32(truth[r, i] - p)
    for v in layer.loss.ravel():
        cost = F32(cost + v)
    assert layer.cost == float(cost)


def test_softmax_groups_and_temperature():
    x = rnd(3, 8, seed=70, scale=4)
    layer = R.SoftmaxLayer(3, 8, groups=2, temperature=0.5)
    layer.forward(x)
    sums = layer.output.reshape(3, 2, 4).sum(axis=2)
    np.testing.assert_allclose(sums, 1.0, rtol=1e-6)
    z = x.astype(F64).reshape(3, 2, 4) / 0.5
    e = np.exp(z - z.max(axis=2, keepdims=True))
    np.testing.assert_allclose(layer.output.reshape(3, 2, 4), e / e.sum(axis=2, keepdims=True),
                               rtol=1e-5, atol=1e-7)
    assert layer.cost is None                    # no truth: no loss


def test_softmax_max_ignores_nan_and_noloss():
    layer = R.SoftmaxLayer(1, 3)
    layer.forward(np.array([[np.nan, 1.0, 1.0]], F32))
    assert np.all(np.isnan(layer.output))        # NaN poisons the sum, but not the max
    layer = R.SoftmaxLayer(1, 2, noloss=True)
    layer.forward(np.array([[0.0, 0.0]], F32), truth=np.array([[1.0, 0.0]], F32))
    assert np.array_equal(layer.output, [[0.5, 0.5]])
    assert layer.cost is None and np.all(layer.delta == 0)


def test_softmax_backward_and_temperature_fix():
    x = np.array([[0.0, 1.0]], F32)
    t = np.array([[1.0, 0.0]], F32)
    for fixes, factor in ((0, 1.0), (R.FIX_SOFTMAX_TEMPERATURE, 1 / 2.0)):
        layer = R.SoftmaxLayer(1, 2, temperature=2.0, fixes=fixes)
        layer.forward(x, t)
        prev = np.full((1, 2), 1.0, F32)
        layer.backward(prev)
        np.testing.assert_array_equal(prev, 1.0 + layer.delta * F32(factor))


# ---------------------------------------------------------------------------
# Cost (SPEC §7)

def cost_layer(kind, scale=1.0):
    return R.CostLayer(1, 3, kind, scale=scale)


def test_cost_sse_by_hand():
    layer = cost_layer("sse", scale=2.0)
    x = np.array([[0.5, -1.0, 3.0]], F32)
    layer.forward(x, np.array([[1.0, 1.0, 3.0]], F32))        # d = 0.5, 2, 0
    assert np.array_equal(layer.output, [[0.25, 4.0, 0.0]])
    assert np.array_equal(layer.delta, [[0.5, 2.0, 0.0]])
    assert layer.cost == 4.25
    prev = np.ones((1, 3), F32)
    layer.backward(prev)
    assert np.array_equal(prev, [[2.0, 5.0, 1.0]])            # += scale * delta


def test_cost_l1_and_smooth_by_hand():
    x = np.array([[0.5, -1.0, 4.0]], F32)
    t = np.array([[1.0, 1.0, 1.0]], F32)                       # d = 0.5, 2, -3
    l1 = cost_layer("L1")
    l1.forward(x, t)
    assert np.array_equal(l1.output, [[0.5, 2.0, 3.0]])
    assert np.array_equal(l1.delta, [[1.0, 1.0, -1.0]])
    assert l1.cost == 5.5
    smooth = cost_layer("smooth")
    smooth.forward(x, t)
    assert np.array_equal(smooth.output, [[0.25, 3.0, 5.0]])   # d², 2|d|-1, 2|d|-1
    assert np.array_equal(smooth.delta, [[0.5, -1.0, 1.0]])    # Q14: sign flipped outside
    l1.forward(x, x.copy())                                    # d = 0: delta -1
    assert np.array_equal(l1.delta, [[-1.0, -1.0, -1.0]])


def test_cost_masked_overwrites_input():
    layer = cost_layer("masked")
    x = np.array([[5.0, 0.5, 2.0]], F32)
    layer.forward(x, np.array([[-1234.0, 1.0, -1234.0]], F32))
    assert np.array_equal(x, [[-1234.0, 0.5, -1234.0]])
    assert np.array_equal(layer.output, [[0.0, 0.25, 0.0]])
    assert layer.cost == 0.25


def test_cost_without_truth_does_nothing():
    layer = cost_layer("sse")
    layer.forward(np.ones((1, 3), F32), np.zeros((1, 3), F32))
    before = layer.output.copy()
    layer.forward(np.zeros((1, 3), F32))
    assert np.array_equal(layer.output, before) and layer.cost == 3.0


def test_cost_sum_is_sequential_float():
    # 1 + 1e-8 + ... : a sequential float sum keeps 1.0; a pairwise sum would not.
    n = 1001
    layer = R.CostLayer(1, n, "L1")
    x = np.zeros((1, n), F32)
    t = np.full((1, n), 1e-4, F32)
    t[0, 0] = 1000.0
    layer.forward(x, t)
    want = F32(0)
    for v in layer.output[0]:
        want = F32(want + v)
    assert layer.cost == float(want)


# ---------------------------------------------------------------------------
# Argument validation

@pytest.mark.parametrize("make, exc, match", [
    (lambda: R.ConnectedLayer(0, 3, 4), ValueError, "batch must be >= 1"),
    (lambda: R.ConnectedLayer(2, 3, 2.5), TypeError, "outputs must be an int"),
    (lambda: R.ConnectedLayer(2, 3, 4, activation="Leaky"), ValueError, "activation"),
    (lambda: R.ConnectedLayer(2, 3, 4, activation=None), TypeError, "activation"),
    (lambda: R.ConnectedLayer(2, 3, 4, dtype=np.int32), ValueError, "dtype"),
    (lambda: R.ConnectedLayer(2, 3, 4, steps=True), TypeError, "steps"),
    (lambda: R.RNNLayer(2, 3, 4, 0), ValueError, "steps must be >= 1"),
    (lambda: R.RNNLayer(2, 3, 4, 2, fixes=1 << 12), ValueError, "fixes"),
    (lambda: R.SoftmaxLayer(2, 5, groups=2), ValueError, "groups"),
    (lambda: R.SoftmaxLayer(2, 4, temperature=0), ValueError, "temperature"),
    (lambda: R.CostLayer(2, 4, cost_type="l2"), ValueError, "cost_type"),
    (lambda: R.CostLayer(2, 4, cost_type=1), TypeError, "cost_type"),
])
def test_constructor_validation(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_call_validation():
    layer = R.ConnectedLayer(2, 3, 4, steps=2)
    x = np.zeros((2, 3), F32)
    with pytest.raises(TypeError, match="input must have dtype float32"):
        layer.forward(np.zeros((2, 3), F64))
    with pytest.raises(ValueError, match=r"input must have shape \(2, 3\)"):
        layer.forward(np.zeros((3, 2), F32))
    with pytest.raises(TypeError, match="input must be a numpy.ndarray"):
        layer.forward([[0.0] * 3] * 2)
    with pytest.raises(ValueError, match=r"step must be in \[0, 2\)"):
        layer.forward(x, step=2)
    with pytest.raises(ValueError, match="stats_step"):
        layer.backward(x, step=0, stats_step=-1)
    with pytest.raises(ValueError, match="prev_delta must have shape"):
        layer.backward(x, prev_delta=np.zeros((2, 4), F32))
    read_only = np.zeros((2, 3), F32)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="prev_delta must be writable"):
        layer.backward(x, prev_delta=read_only)
    with pytest.raises(ValueError, match="batch must be >= 1"):
        layer.update(0.1, 0.9, 0.0, 0)
    with pytest.raises(ValueError, match="weights must have shape"):
        layer.weights = np.zeros((3, 4), F32)
    with pytest.raises(AttributeError, match="scales"):
        layer.scales = np.ones(4, F32)              # no batch norm: not allocated
    rnn = R.RNNLayer(2, 3, 4, 2)
    with pytest.raises(ValueError, match=r"input must have shape \(4, 3\)"):
        rnn.forward(np.zeros((2, 3), F32))
    with pytest.raises(ValueError, match="fixes"):
        rnn.fixes = 1 << 10
    soft = R.SoftmaxLayer(2, 4)
    with pytest.raises(ValueError, match="truth must have shape"):
        soft.forward(np.zeros((2, 4), F32), truth=np.zeros((2, 3), F32))


def test_assigning_an_array_copies_into_the_buffer():
    layer = R.ConnectedLayer(2, 3, 4, "linear")
    w = layer.weights
    layer.weights = np.ones((4, 3))                 # float64 in, cast to float32
    assert layer.weights is w and w.dtype == F32 and np.all(w == 1)
