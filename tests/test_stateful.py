"""Stateful training (truncated BPTT), per-stream resets and the per-step
gradient-norm record of [rnn] layers."""
import numpy as np
import pytest

import darknet_rnn
from conftest import KERNELS, assert_bitwise, assert_close

NET = """[net]
batch={streams}
subdivisions={sub}
time_steps={steps}
inputs=4
learning_rate={lr}
momentum=0.9
decay=0.001
max_batches=1000
"""
LAYERS = {
    "plain": "[rnn]\noutput=5\nactivation=tanh\n",
    "shortcut-logistic": "[rnn]\noutput=5\nactivation=logistic\nshortcut=1\n",
    "stacked": "[rnn]\noutput=5\nactivation=tanh\n[rnn]\noutput=4\nactivation=leaky\n",
    "bn": "[rnn]\noutput=5\nactivation=leaky\nbatch_normalize=1\n",
}
HEAD = "[connected]\noutput=3\nactivation=linear\n[softmax]\n"


def write(tmp_path, layers, steps, streams=3, lr=0.0, sub=1):
    p = tmp_path / f"{layers}-{steps}-{streams}-{lr}-{sub}.cfg"
    p.write_text(NET.format(streams=streams * sub, sub=sub, steps=steps, lr=lr)
                 + LAYERS[layers] + HEAD)
    return p


def seq(steps, streams, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((steps, streams, 4)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, (steps, streams))]
    return x, y


def backends():
    out = [("reference", None)] + [("native", k) for k in KERNELS]
    return out


@pytest.mark.parametrize("backend,kernel", backends(), ids=lambda v: str(v))
@pytest.mark.parametrize("layers", ["plain", "shortcut-logistic", "stacked"])
def test_two_stateful_calls_equal_one_long_call(tmp_path, backend, kernel, layers):
    T = 4
    kw = dict(backend=backend, kernel=kernel) if kernel else dict(backend=backend)
    short = darknet_rnn.load_network(write(tmp_path, layers, T), seed=3, stateful=True, **kw)
    long = darknet_rnn.load_network(write(tmp_path, layers, 2 * T), seed=3, **kw)
    x, y = seq(2 * T, 3)
    long.train(x, y)
    outs = []
    for half in (slice(0, T), slice(T, 2 * T)):
        short.train(x[half], y[half])
        outs.append(short.output)
    got = np.concatenate(outs)
    if kernel in (None, "reference"):
        assert_bitwise(got, long.output, "outputs")
    else:   # fast GEMMs block rows differently for T and 2T rows
        assert_close(got, long.output, "outputs", rtol=1e-5, atol=1e-6)
    # without stateful the second half starts from zero and differs
    plain = darknet_rnn.load_network(write(tmp_path, layers, T), seed=3, **kw)
    plain.train(x[:T], y[:T])
    plain.train(x[T:], y[T:])
    assert not np.allclose(plain.output, long.output[T * 3:], atol=1e-6)


@pytest.mark.parametrize("backend", ["native", "reference"])
def test_reset_state_of_one_stream(tmp_path, backend):
    cfg = write(tmp_path, "plain", 3)
    a = darknet_rnn.load_network(cfg, seed=4, stateful=True, backend=backend)
    b = darknet_rnn.load_network(cfg, seed=4, stateful=True, backend=backend)
    fresh = darknet_rnn.load_network(cfg, seed=4, backend=backend)
    x1, y1 = seq(3, 3, 1)
    x2, y2 = seq(3, 3, 2)
    a.train(x1, y1)
    b.train(x1, y1)
    b.reset_state(streams=[1])
    a.train(x2, y2)
    b.train(x2, y2)
    fresh.train(x2, y2)
    oa, ob, of = (n.output.reshape(3, 3, -1) for n in (a, b, fresh))
    for s in (0, 2):
        assert_bitwise(ob[:, s], oa[:, s], f"stream {s} untouched")
    assert_bitwise(ob[:, 1], of[:, 1], "stream 1 starts from zero")
    assert not np.array_equal(ob[:, 1], oa[:, 1])
    with pytest.raises(ValueError, match="streams"):
        b.reset_state(streams=[3])
    b.reset_state()
    assert all(not arr.any() for arr in b.state_arrays())


@pytest.mark.parametrize("exact", [False, True])
@pytest.mark.parametrize("layers,sub", [("bn", 1), ("shortcut-logistic", 2), ("stacked", 1)])
def test_stateful_training_native_equals_twin(tmp_path, layers, sub, exact):
    cfg = write(tmp_path, layers, 3, lr=0.05, sub=sub)
    nets = [darknet_rnn.load_network(cfg, seed=5, stateful=True, exact=exact, kernel="reference"),
            darknet_rnn.load_network(cfg, seed=5, stateful=True, exact=exact,
                                     backend="reference")]
    for i in range(5):
        x, y = seq(3, 3, 10 + i)
        losses = [n.train(x, y) for n in nets]
        assert_bitwise(losses[0], losses[1], f"loss {i}")
    for a, b in zip(nets[0].state_arrays(), nets[1].state_arrays()):
        assert_bitwise(a, b, "states")
    assert nets[0].state_arrays()[1].any(), "the carry holds the last state"
    for a, b in zip(nets[0].params(), nets[1].params()):
        assert_bitwise(a.value, b.value, a.name)


@pytest.mark.parametrize("layers", ["plain", "shortcut-logistic", "stacked"])
def test_exact_gradients_with_a_carried_state(tmp_path, layers):
    """The carried h_0 is a constant of the loss: exact BPTT from it agrees
    with central differences (float64)."""
    net = darknet_rnn.load_network(write(tmp_path, layers, 3), seed=6, stateful=True,
                                   exact=True, backend="reference", dtype=np.float64)
    net.train(*seq(3, 3, 20))                  # lr 0: only the carry changes
    carried = [a.copy() for a in net.state_arrays()]
    assert np.abs(carried[1]).max() > 0.05
    x, y = seq(3, 3, 21)
    for p in net.params():
        p.grad[...] = 0                        # drop the momentum the first call left
    net.forward_backward(x, y)

    def loss():
        for a, c in zip(net.state_arrays(), carried):
            a[...] = c
        return net.forward(x, y, train=True)

    rng = np.random.default_rng(0)
    for p in net.params():
        flat, grad = p.value.reshape(-1), p.grad.reshape(-1).copy()
        picks = rng.choice(flat.size, size=min(4, flat.size), replace=False)
        fd = []
        for i in picks:
            keep = flat[i]
            flat[i] = keep + 1e-6
            up = loss()
            flat[i] = keep - 1e-6
            down = loss()
            flat[i] = keep
            fd.append((up - down) / 2e-6)
        want = -np.array(fd)
        err = np.linalg.norm(grad[picks] - want) / max(np.linalg.norm(want), 1e-2)
        assert err < 1e-6, f"{p.name}: {err:.3g}"


@pytest.mark.parametrize("kernel", KERNELS)
def test_grad_norms_native_equals_twin_and_single_step_by_hand(tmp_path, kernel):
    cfg = write(tmp_path, "stacked", 5, lr=0.05)
    n = darknet_rnn.load_network(cfg, seed=7, kernel=kernel)
    r = darknet_rnn.load_network(cfg, seed=7, backend="reference")
    for net in (n, r):
        net.record_grad_norms()
    x, y = seq(5, 3, 30)
    n.train(x, y)
    r.train(x, y)
    gn, gr = n.grad_norms(), r.grad_norms()
    assert sorted(gn) == [0, 1] and all(v.shape == (5,) for v in gn.values())
    for i in gn:
        assert (gn[i] > 0).all()
        if kernel == "reference":
            assert_bitwise(gn[i], gr[i], f"layer {i} norms")
        else:
            assert_close(gn[i], gr[i], f"layer {i} norms", rtol=1e-4, atol=1e-7)

    # one step: the delta reaching h_1 is the output sublayer's delta times W_out
    one = darknet_rnn.load_network(write(tmp_path, "plain", 1), seed=8, backend="reference",
                                   dtype=np.float64)
    one.record_grad_norms()
    one.forward_backward(*seq(1, 3, 31))
    rnn = one.layers[0]
    want = np.linalg.norm(rnn.output_layer.delta @ rnn.output_layer.weights)
    assert one.grad_norms()[0][0] == pytest.approx(want, rel=1e-6)
