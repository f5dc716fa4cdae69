"""Per-row loss masks, many-to-one truths and the sequence outputs
(darknet_rnn.sequence, Network.train(x, y, mask), infer, sequence_output,
last_output), on the C core (every kernel) and the NumPy twin."""
import numpy as np
import pytest

import darknet_rnn
from conftest import KERNELS, assert_bitwise

T, B, I = 4, 3, 3
NET = """[net]
batch={streams}
subdivisions=1
time_steps={steps}
inputs=3
learning_rate={lr}
momentum=0.9
decay={decay}
max_batches=100
"""
LAYERS = {"rnn": "[rnn]\noutput=4\nactivation=tanh\n",
          "bidirectional": "[rnn]\noutput=3\nactivation=tanh\nbidirectional=1\n"}
HEADS = {"softmax": "[connected]\noutput=3\nactivation=linear\n[softmax]\n",
         "cost": "[connected]\noutput=3\nactivation=linear\n[cost]\ntype=sse\n"}
IMPLS = [("reference", None)] + [("native", k) for k in KERNELS]


def load(tmp_path, layers, head, impl=("reference", None), lr=0.1, decay=0.001, **kw):
    p = tmp_path / f"{layers}-{head}-{lr}-{decay}.cfg"
    p.write_text(NET.format(streams=B, steps=T, lr=lr, decay=decay) + LAYERS[layers]
                 + HEADS[head])
    backend, kernel = impl
    if kernel is not None:
        kw["kernel"] = kernel
    return darknet_rnn.load_network(p, seed=5, backend=backend, **kw)


def data(head, seed, dtype=np.float32):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, B, I)).astype(dtype)
    if head == "softmax":
        y = np.eye(3, dtype=dtype)[rng.integers(0, 3, (T, B))]
    else:
        y = rng.uniform(-1, 1, (T, B, 3)).astype(dtype)
    mask = rng.random((T, B)) < 0.5
    mask[0, 0], mask[-1, -1] = True, False
    return x, y, mask


def loss_buffer(net):
    """The head's per-element loss: softmax's `loss`, [cost]'s `output`."""
    head = net.layers[-1]
    return head.loss if hasattr(head, "loss") else head.output


def in_order_sum(values):
    total = np.float32(0)
    for v in np.asarray(values, np.float32).ravel():
        total = np.float32(total + v)
    return total


ids = lambda v: str(v)  # noqa: E731


@pytest.mark.parametrize("impl", IMPLS, ids=ids)
@pytest.mark.parametrize("head", sorted(HEADS))
@pytest.mark.parametrize("layers", sorted(LAYERS))
def test_masked_rows_carry_no_loss_and_no_delta(tmp_path, impl, head, layers):
    masked_net = load(tmp_path, layers, head, impl)
    plain_net = load(tmp_path, layers, head, impl)
    x, y, mask = data(head, 1)
    garbage = y.copy()
    garbage[~mask] = np.nan                  # a masked row's truth is never looked at
    loss = masked_net.forward_backward(x, garbage, mask=mask)
    plain = plain_net.forward_backward(x, y)
    rows = mask.reshape(-1)
    # the loss is the unmasked rows' loss, summed in Darknet's order, bit for bit
    assert loss == float(in_order_sum(loss_buffer(plain_net)[rows]))
    assert loss < plain
    assert not loss_buffer(masked_net)[~rows].any()
    head_m, head_p = masked_net.layers[-1], plain_net.layers[-1]
    assert not head_m.delta[~rows].any()
    assert_bitwise(head_m.delta[rows], head_p.delta[rows], "unmasked rows' delta")
    # what reaches the layer below is zero in the masked rows, and the
    # gradients differ from the unmasked datum's
    assert not masked_net.layers[-2].delta[~rows].any()
    assert masked_net.layers[-2].delta[rows].any()
    for pm, pp in zip(masked_net.params(), plain_net.params()):
        assert np.isfinite(pm.grad).all(), pm.name
    assert any(not np.array_equal(pm.grad, pp.grad)
               for pm, pp in zip(masked_net.params(), plain_net.params()))


@pytest.mark.parametrize("backend", ["native", "reference"])
@pytest.mark.parametrize("head", sorted(HEADS))
def test_all_true_mask_is_darknet(tmp_path, backend, head):
    a = load(tmp_path, "rnn", head, (backend, None))
    b = load(tmp_path, "rnn", head, (backend, None))
    for datum in range(2):
        x, y, _ = data(head, 10 + datum)
        assert a.train(x, y, mask=np.ones((T, B), bool)) == b.train(x, y)
    for pa, pb in zip(a.params(), b.params()):
        assert_bitwise(pa.value, pb.value, pa.name)


@pytest.mark.parametrize("exact", [False, True], ids=["darknet", "exact"])
@pytest.mark.parametrize("impl", IMPLS, ids=ids)
@pytest.mark.parametrize("head", sorted(HEADS))
@pytest.mark.parametrize("layers", sorted(LAYERS))
def test_many_to_one_equals_last_step_mask(tmp_path, impl, head, layers, exact):
    one = load(tmp_path, layers, head, impl, exact=exact)
    masked = load(tmp_path, layers, head, impl, exact=exact)
    every = load(tmp_path, layers, head, impl, exact=exact)
    last = np.zeros((T, B), bool)
    last[-1] = True
    for datum in range(3):
        x, y, _ = data(head, 20 + datum)
        noisy = y.copy()
        noisy[:-1] = np.nan
        a = one.train(x, y[-1])                     # (streams, outputs): the last step
        b = masked.train(x, noisy, mask=last)
        assert a == b, datum
        every.train(x, y)
    assert_bitwise(one.output, masked.output, "outputs")
    for pa, pb, pe in zip(one.params(), masked.params(), every.params()):
        assert_bitwise(pa.value, pb.value, pa.name)
    assert any(not np.array_equal(pa.value, pe.value)
               for pa, pe in zip(one.params(), every.params()))


H_STEP = 1e-6


@pytest.mark.parametrize("head", sorted(HEADS))
@pytest.mark.parametrize("layers", sorted(LAYERS))
def test_exact_gradients_of_a_masked_loss_match_finite_differences(tmp_path, layers, head):
    net = load(tmp_path, layers, head, exact=True, dtype=np.float64)
    x, y, mask = data(head, 30, np.float64)
    y[~mask] = 7.0                     # would change every gradient if it counted
    net.forward_backward(x, y, mask=mask)
    factor = 1.0 if head == "softmax" else 0.5     # Darknet's deltas: -dL, -dL/2 (SSE)
    rng = np.random.default_rng(3)
    for p in net.params():
        flat, grad = p.value.reshape(-1), p.grad.reshape(-1).copy()
        picks = rng.choice(flat.size, size=min(flat.size, 5), replace=False)
        fd = []
        for i in picks:
            keep = flat[i]
            flat[i] = keep + H_STEP
            up = net.forward(x, y, train=True, mask=mask)
            flat[i] = keep - H_STEP
            down = net.forward(x, y, train=True, mask=mask)
            flat[i] = keep
            fd.append((up - down) / (2 * H_STEP))
        want = -factor * np.array(fd)
        err = np.linalg.norm(grad[picks] - want) / max(np.linalg.norm(want), 1e-2)
        assert err < 1e-6, f"{layers}/{head} {p.name}: relative error {err:.3g}"


def test_the_update_still_divides_by_the_whole_batch(tmp_path):
    """No renormalisation: one SGD step moves each weight by
    lr / (time_steps * streams) times its summed gradient, masked or not."""
    net = load(tmp_path, "rnn", "cost", lr=0.5, decay=0.0, dtype=np.float64)
    x, y, mask = data("cost", 40, np.float64)
    before = [p.value.copy() for p in net.params()]
    net.forward_backward(x, y, mask=mask)
    grads = [p.grad.copy() for p in net.params()]
    net.update()
    for p, w0, g in zip(net.params(), before, grads):
        np.testing.assert_allclose(p.value - w0, 0.5 / (T * B) * g, rtol=1e-9, atol=1e-15,
                                   err_msg=p.name)


@pytest.mark.parametrize("backend", ["native", "reference"])
def test_sequence_and_last_outputs(tmp_path, backend):
    net = load(tmp_path, "rnn", "softmax", (backend, None), stateful=True)
    x, y, _ = data("softmax", 50)
    net.train(x, y)                                 # leaves a carried state
    carried = [a.copy() for a in net.state_arrays()]
    assert carried[1].any()
    seq = net.infer(x)
    last = net.infer(x, last=True)
    assert seq.shape == (T, B, 3) and last.shape == (B, 3)
    assert_bitwise(last, seq[-1], "last step")
    for a, c in zip(net.state_arrays(), carried):
        assert_bitwise(a, c, "carried states untouched")
    np.testing.assert_allclose(seq.sum(axis=-1), 1, rtol=1e-6)     # softmax rows
    # the same as Darknet's stateful predict started from a zero state
    net.reset_state()
    out = net.predict(x)
    assert_bitwise(seq, out.reshape(T, B, 3), "infer = predict from zero")
    assert_bitwise(net.sequence_output, seq, "sequence_output")
    assert_bitwise(net.last_output, last, "last_output")
    # and the step-0 output does not depend on later steps (unidirectional)
    x2 = x.copy()
    x2[-1] += 1
    assert_bitwise(net.infer(x2)[0], seq[0], "causal")


def test_mask_arguments_are_checked(tmp_path):
    net = load(tmp_path, "rnn", "cost")
    x, y, mask = data("cost", 60)
    with pytest.raises(ValueError, match=r"mask must have shape \(4, 3\)"):
        net.train(x, y, mask=mask.T)
    with pytest.raises(TypeError, match="mask must be a bool array"):
        net.train(x, y, mask=mask.astype(float))
    with pytest.raises(TypeError, match="values other than 0 and 1"):
        net.train(x, y, mask=mask.astype(int) * 2)
    with pytest.raises(ValueError, match=r"mask: a y of shape \(3, 3\)"):
        net.train(x, y[-1], mask=mask)
    with pytest.raises(ValueError, match="mask: needs a truth y"):
        net.forward(x, mask=mask)
    with pytest.raises(ValueError, match=r"y must have shape \(4, 3, 3\)"):
        net.train(x, y[:, :2])
    # integers 0/1 and the flat time-major row order are accepted
    a = load(tmp_path, "rnn", "cost")
    b = load(tmp_path, "rnn", "cost")
    assert a.train(x, y, mask=mask.astype(np.int8)) == b.train(x, y, mask=mask.reshape(-1))
