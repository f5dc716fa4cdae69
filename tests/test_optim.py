"""The optimizer seam: Darknet's SGD (default, bitwise), Adam as Darknet's
GPU build defines it, and gradient clipping by global norm."""
import numpy as np
import pytest

import darknet_rnn
from darknet_rnn.optim import Adam, ClipGradNorm, DarknetSGD
from conftest import assert_bitwise, assert_close

CFG = """[net]
batch=3
subdivisions=1
time_steps=4
inputs=5
learning_rate={lr}
momentum={momentum}
decay={decay}
{extra}
[rnn]
output=6
activation=tanh
batch_normalize={bn}
[connected]
output=4
activation=linear
[softmax]
"""


def write(tmp_path, lr=0.05, momentum=0.9, decay=0.001, bn=0, extra=""):
    p = tmp_path / f"net{lr}{momentum}{decay}{bn}{len(extra)}.cfg"
    p.write_text(CFG.format(lr=lr, momentum=momentum, decay=decay, bn=bn, extra=extra))
    return p


def batch(net, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((net.time_steps, net.streams, net.inputs)).astype(np.float32)
    y = np.eye(net.outputs, dtype=np.float32)[
        rng.integers(0, net.outputs, (net.time_steps, net.streams))]
    return x, y


def test_default_optimizer_is_darknet_sgd(tmp_path):
    net = darknet_rnn.load_network(write(tmp_path), seed=1)
    assert isinstance(net.optimizer, DarknetSGD) and net.gradient_hooks == []


@pytest.mark.parametrize("bn", [0, 1])
def test_adam_follows_the_formula(tmp_path, bn):
    """Several updates against an independent float64 rendering of Darknet's
    Adam: g = upd - decay*batch*w; m = B1 m + (1-B1) g; v = B2 v + (1-B2) g^2;
    w += rate * (m / (1-B1^t)) / (sqrt(v / (1-B2^t)) + eps); upd = 0."""
    cfg = write(tmp_path, lr=0.01, decay=0.01, bn=bn, extra="adam=1\nB1=0.8\nB2=0.99\neps=1e-6")
    net = darknet_rnn.load_network(cfg, seed=2, optimizer="adam", kernel="reference")
    assert isinstance(net.optimizer, Adam) and net.optimizer.B1 == pytest.approx(0.8)
    params = net.params()
    assert {p.name.rsplit(".", 1)[-1] for p in params} >= {"weights", "biases"}
    assert any(p.name.endswith("scales") for p in params) == bool(bn)
    m = [np.zeros(p.value.size) for p in params]
    v = [np.zeros(p.value.size) for p in params]
    B1, B2, eps, decay, rate = 0.8, 0.99, 1e-6, 0.01, 0.01
    b = net.batch
    for t in range(1, 5):
        net.forward_backward(*batch(net, t))
        before = [p.value.astype(np.float64).ravel() for p in params]
        grads = [p.grad.astype(np.float64).ravel() for p in params]
        assert any(np.abs(g).max() > 0 for g in grads)
        net.update()
        for i, p in enumerate(params):
            g = grads[i] - decay * b * before[i]
            m[i] = B1 * m[i] + (1 - B1) * g
            v[i] = B2 * v[i] + (1 - B2) * g * g
            want = before[i] + rate * (m[i] / (1 - B1 ** t)) / (np.sqrt(v[i] / (1 - B2 ** t)) + eps)
            assert_close(p.value.ravel(), want, f"update {t}: {p.name}", rtol=2e-5, atol=2e-6)
            assert not p.grad.any(), "Adam clears the gradient after the step"
    assert net.optimizer.t == 4


@pytest.mark.parametrize("bn", [0, 1])
def test_adam_native_equals_twin(tmp_path, bn):
    cfg = write(tmp_path, lr=0.01, bn=bn, extra="adam=1")
    nets = [darknet_rnn.load_network(cfg, seed=3, optimizer="adam", kernel="reference"),
            darknet_rnn.load_network(cfg, seed=3, optimizer="adam", backend="reference")]
    for i in range(4):
        losses = [n.train(*batch(n, i)) for n in nets]
        assert_bitwise(losses[0], losses[1], f"loss {i}")
    for a, b in zip(nets[0].params(), nets[1].params()):
        assert_bitwise(a.value, b.value, a.name)
    for (ma, va), (mb, vb) in zip(nets[0].optimizer.moments, nets[1].optimizer.moments):
        assert_bitwise(ma, mb, "m")
        assert_bitwise(va, vb, "v")


def test_adam_in_cfg_warns_without_the_switch_and_not_with_it(tmp_path):
    cfg = write(tmp_path, extra="adam=1")
    with pytest.warns(UserWarning, match="optimizer='adam'"):
        darknet_rnn.load_network(cfg, seed=1)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        darknet_rnn.load_network(cfg, seed=1, optimizer="adam")


def test_unknown_optimizer_is_refused(tmp_path):
    with pytest.raises(ValueError, match="optimizer must be"):
        darknet_rnn.load_network(write(tmp_path), seed=1, optimizer="rmsprop")


@pytest.mark.parametrize("backend", ["native", "reference"])
def test_large_clip_norm_changes_nothing(tmp_path, backend):
    cfg = write(tmp_path, bn=1)
    plain = darknet_rnn.load_network(cfg, seed=4, backend=backend)
    clipped = darknet_rnn.load_network(cfg, seed=4, backend=backend, clip_norm=1e30)
    for i in range(4):
        assert_bitwise(clipped.train(*batch(clipped, i)), plain.train(*batch(plain, i)), "loss")
    for a, b in zip(clipped.params(), plain.params()):
        assert_bitwise(a.value, b.value, a.name)
        assert_bitwise(a.grad, b.grad, a.name + " buffer")
    assert clipped.clip.last_norm > 0 and clipped.clip.clipped == 0


def test_small_clip_scales_the_whole_step_by_one_factor(tmp_path):
    """momentum 0, decay 0: the step is lr/batch * gradient, so clipping must
    shrink every parameter's step by the same factor, to norm c."""
    cfg = write(tmp_path, momentum=0, decay=0)
    plain = darknet_rnn.load_network(cfg, seed=5, backend="reference", dtype=np.float64)
    clipped = darknet_rnn.load_network(cfg, seed=5, backend="reference", dtype=np.float64,
                                       clip_norm=1e-3)
    x, y = batch(plain, 0)
    w0 = [p.value.copy() for p in plain.params()]
    plain.train(x, y)
    clipped.train(x, y)
    step_plain = np.concatenate([(p.value - w).ravel() for p, w in zip(plain.params(), w0)])
    step_clip = np.concatenate([(p.value - w).ravel() for p, w in zip(clipped.params(), w0)])
    rate = 0.05 / plain.batch
    norm = np.linalg.norm(step_plain / rate) / plain.batch       # mean gradient norm
    assert norm > 1e-3
    # steps recovered as (w + step) - w carry float64 rounding of |w|: ~1e-8 relative
    assert clipped.clip.last_norm == pytest.approx(norm, rel=1e-6)
    factor = 1e-3 / norm
    assert_close(step_clip, factor * step_plain, "clipped step", rtol=1e-6, atol=1e-14)
    assert np.linalg.norm(step_clip / rate) / plain.batch == pytest.approx(1e-3, rel=1e-6)


def test_clipping_leaves_the_momentum_carry_alone(tmp_path):
    """With Darknet's SGD the update buffer holds momentum * last step plus
    the new gradient; only the new gradient is clipped."""
    cfg = write(tmp_path, momentum=0.9, decay=0)
    net = darknet_rnn.load_network(cfg, seed=6, backend="reference", dtype=np.float64,
                                   clip_norm=1e-3)
    net.train(*batch(net, 0))                       # first update: buffers now hold the carry
    params = net.params()
    carry = [p.grad.copy() for p in params]
    assert any(np.abs(c).max() > 0 for c in carry)
    w = [p.value.copy() for p in params]
    net.forward_backward(*batch(net, 1))
    grad = [p.grad - c for p, c in zip(params, carry)]
    norm = np.sqrt(sum(float((g * g).sum()) for g in grad)) / net.batch
    assert norm > 1e-3
    net.update()
    f = 1e-3 / norm
    rate = 0.05 / net.batch
    for p, w0, c, g in zip(params, w, carry, grad):
        assert_close(p.value, w0 + rate * (c + f * g), p.name, rtol=1e-6, atol=1e-12)
    assert net.clip.last_norm == pytest.approx(norm, rel=1e-6)


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf")])
def test_clip_norm_must_be_positive_and_finite(bad):
    with pytest.raises(ValueError, match="clip_norm"):
        ClipGradNorm(bad)


def test_a_gradient_hook_sees_every_param_before_the_update(tmp_path):
    net = darknet_rnn.load_network(write(tmp_path), seed=7)
    seen = []

    def hook(n, params, args):
        seen.append((len(params), args.batch, args.learning_rate, float(params[0].value[0])))

    net.gradient_hooks.append(hook)
    before = float(net.params()[0].value[0])
    net.train(*batch(net, 0))
    assert seen == [(len(net.params()), net.batch, pytest.approx(0.05), before)]
