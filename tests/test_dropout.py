"""[dropout] as Darknet's dropout_layer.c defines it (no Darknet dropout
fixtures exist, so the checks are against independent NumPy renderings of
Darknet's loops and of glibc's rand() stream):

* the mask: one rand_uniform(0, 1) per element from the network's rand()
  stream, in row-major order, continuing where weight initialisation left it;
  zero where r < probability, times float(1/(1-probability)) elsewhere;
* in place: the previous layer's output is rewritten (its backward sees the
  rewritten values) and its delta is masked in place;
* inference: identity, nothing drawn; the .weights layout is unchanged;
* the draw order of a whole training loop (batcher offsets, dropout masks,
  the `random` lr policy, the printed rate, the stream jumps) is Darknet's.
"""
import math

import numpy as np
import pytest

import darknet_rnn
from darknet_rnn import reference, text as T
from darknet_rnn._rand import GlibcRandom
from darknet_rnn.errors import CfgError
from conftest import assert_bitwise

def dropout_class(backend):
    if backend == "native":
        from darknet_rnn.layers import DropoutLayer
        return DropoutLayer
    return reference.DropoutLayer


def cfg_text(layers, streams=4, steps=1, inputs=3, policy="constant", max_batches=100):
    return (f"[net]\nbatch={streams}\nsubdivisions=1\ntime_steps={steps}\ninputs={inputs}\n"
            f"learning_rate=0.1\nmomentum=0.9\ndecay=0.001\nmax_batches={max_batches}\n"
            f"policy={policy}\n\n" + layers)


def write_cfg(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def darknet_uniforms(seed, skip, n):
    """n values of Darknet's rand_uniform(0, 1) after srand(seed) and `skip`
    rand() calls, one scalar at a time."""
    rng = GlibcRandom(seed)
    for _ in range(skip):
        rng.rand()
    return np.array([rng.rand_uniform(0, 1) for _ in range(n)], dtype=np.float32)


# --------------------------------------------------------------------------
# the layer on its own

@pytest.mark.parametrize("p", [0.0, 0.3, 0.5, 0.9])
def test_mask_statistics_and_scale(backend, p):
    n_rows, n_cols = 64, 256
    layer = dropout_class(backend)(n_rows, n_cols, probability=p, rng=GlibcRandom(5))
    x = np.full((n_rows, n_cols), 2.0, np.float32)
    layer.forward(x, train=True)
    out, n = layer.output, n_rows * n_cols
    dropped = (out == 0).mean()
    sigma = math.sqrt(max(p * (1 - p), 1e-12) / n)
    assert abs(dropped - p) <= 5 * sigma, (dropped, p)
    kept = out[out != 0]
    assert np.all(kept == kept[0]) or p == 0
    # kept values carry the inverted scale: their mean over all elements stays 2
    assert kept[0] * np.float32(1 - p) == pytest.approx(2.0, rel=1e-6)
    assert out.mean() == pytest.approx(2.0, abs=2 * 5 * sigma / max(1 - p, 1e-9))
    assert np.array_equal(out == 0, layer.rand < np.float32(p))
    assert x.min() == 2.0                        # out of place: the input is untouched


@pytest.mark.parametrize("seed", [1, 12345, 2**32 - 1])
def test_draws_are_darknets_rand_uniform_in_order(backend, seed):
    layer = dropout_class(backend)(7, 11, probability=0.5, rng=GlibcRandom(seed))
    x = np.ones((7, 11), np.float32)
    layer.forward(x, train=True)
    first = darknet_uniforms(seed, 0, 2 * 77)
    assert_bitwise(layer.rand.reshape(-1), first[:77], "first forward")
    layer.forward(x, train=True)
    assert_bitwise(layer.rand.reshape(-1), first[77:], "second forward continues the stream")
    # the generator handed back stands 154 draws on
    ref = GlibcRandom(seed)
    for _ in range(154):
        ref.rand()
    assert layer.rng.rand() == ref.rand()


def test_inference_is_the_identity_and_draws_nothing(backend):
    rng = GlibcRandom(3)
    layer = dropout_class(backend)(5, 6, probability=0.5, rng=rng)
    x = np.arange(30, dtype=np.float32).reshape(5, 6)
    layer.forward(x, train=False)
    assert_bitwise(layer.output, x, "inference output")
    assert rng.rand() == GlibcRandom(3).rand()


def test_in_place_forward_and_backward(backend):
    """Darknet's wiring: output and delta are the previous layer's buffers."""
    rows, cols, p = 6, 9, 0.4
    prev_out = np.linspace(-2, 2, rows * cols, dtype=np.float32).reshape(rows, cols)
    before = prev_out.copy()
    prev_delta = np.zeros((rows, cols), np.float32)
    layer = dropout_class(backend)(rows, cols, probability=p, rng=GlibcRandom(9),
                                   output=prev_out, delta=prev_delta)
    layer.forward(prev_out, train=True)
    r = darknet_uniforms(9, 0, rows * cols).reshape(rows, cols)
    scale = np.float32(1.0 / (1.0 - float(np.float32(p))))
    want = np.where(r < np.float32(p), np.float32(0), before * scale)
    assert_bitwise(prev_out, want, "the previous layer's output, rewritten")
    # the next layer's backward writes into the (shared) delta; dropout masks it in place
    prev_delta[...] = np.float32(3.0)
    layer.backward(prev_delta)
    assert_bitwise(prev_delta, np.where(r < np.float32(p), np.float32(0),
                                        np.float32(3.0) * scale), "masked delta")


def test_probability_must_be_below_one(backend):
    with pytest.raises(ValueError, match="probability"):
        dropout_class(backend)(2, 2, probability=1.0)
    with pytest.raises(ValueError, match="rng"):
        dropout_class(backend)(2, 2, probability=0.5).forward(np.ones((2, 2), np.float32))


# --------------------------------------------------------------------------
# in a network: an independent rendering of Darknet's forward/backward

NET = ("[connected]\noutput=4\nactivation=logistic\n\n[dropout]\nprobability=0.35\n\n"
       "[connected]\noutput=2\nactivation=linear\n\n[cost]\ntype=sse\n")


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def darknet_render(net, x, t, seed, exact):
    """forward_network + backward_network of NET in float64, written out:
    the dropout rewrites layer 0's output in place, and layer 0's logistic
    gradient is taken at that rewritten output (Darknet); exact: at the
    layer's own output."""
    l0, l2 = net.layers[0], net.layers[2]
    W0, b0, W2, b2 = (np.array(a, np.float64) for a in (l0.weights, l0.biases,
                                                          l2.weights, l2.biases))
    y0 = sigmoid(x @ W0.T + b0)
    r = darknet_uniforms(seed, W0.size + W2.size, y0.size).reshape(y0.shape)
    p = float(np.float32(0.35))
    keep = ~(r < np.float32(p))
    scale = 1.0 / (1.0 - p)
    y0d = np.where(keep, y0 * scale, 0.0)
    y2 = y0d @ W2.T + b2
    d = t - y2                                   # SSE delta: truth - output
    dW2, db2 = d.T @ y0d, d.sum(0)
    D0 = np.where(keep, (d @ W2) * scale, 0.0)   # masked in place
    y_for_gradient = y0 if exact else y0d
    D0 = D0 * (1 - y_for_gradient) * y_for_gradient
    return {"W0": D0.T @ x, "b0": D0.sum(0), "W2": dW2, "b2": db2, "y0": y0d}


@pytest.mark.parametrize("exact", [False, True], ids=["darknet", "exact"])
@pytest.mark.parametrize("backend", ["native", "reference"])
def test_network_matches_a_rendering_of_darknets_loops(tmp_path, backend, exact):
    cfg = write_cfg(tmp_path, "d.cfg", cfg_text(NET, streams=5, inputs=3))
    kw = dict(backend="reference", dtype=np.float64) if backend == "reference" else {}
    net = darknet_rnn.load_network(cfg, seed=21, exact=exact, **kw)
    g = np.random.default_rng(0)
    x = g.standard_normal((5, 3))
    t = g.uniform(-1, 1, (5, 2))
    net.forward_backward(x, t)
    want = darknet_render(net, x, t, 21, exact)
    tol = dict(rtol=1e-12, atol=1e-12) if backend == "reference" else dict(rtol=2e-5, atol=1e-6)
    l0, l2 = net.layers[0], net.layers[2]
    np.testing.assert_allclose(l0.weight_updates, want["W0"], **tol)
    np.testing.assert_allclose(l0.bias_updates, want["b0"], **tol)
    np.testing.assert_allclose(l2.weight_updates, want["W2"], **tol)
    np.testing.assert_allclose(l2.bias_updates, want["b2"], **tol)
    # Darknet: layer 0's own output buffer holds the masked values
    in_place = np.allclose(np.array(l0.output, np.float64), want["y0"], **tol)
    assert in_place == (not exact)


def test_the_aliasing_changes_the_numbers(tmp_path):
    cfg = write_cfg(tmp_path, "d.cfg", cfg_text(NET, streams=5, inputs=3))
    g = np.random.default_rng(1)
    x, t = g.standard_normal((5, 3)), g.uniform(-1, 1, (5, 2))
    upd = {}
    for exact in (False, True):
        net = darknet_rnn.load_network(cfg, seed=4, exact=exact, kernel="reference")
        net.forward_backward(x, t)
        upd[exact] = net.layers[0].weight_updates.copy()
        w2 = net.layers[2].weight_updates.copy()
        upd[exact, "w2"] = w2
    assert np.array_equal(upd[False, "w2"], upd[True, "w2"])   # above the dropout: same
    assert not np.allclose(upd[False], upd[True], rtol=1e-3)   # below it: the aliasing


def test_exact_gradient_with_the_mask_held_fixed(tmp_path):
    """exact=True: the dropout works out of place and the accumulated updates
    are -1/2 dL/dθ of the SSE loss for the drawn mask (finite differences
    with the rand() stream rewound before every forward)."""
    layers = ("[rnn]\noutput=4\nactivation=tanh\n\n[dropout]\nprobability=0.3\n\n"
              "[rnn]\noutput=3\nactivation=logistic\n\n[connected]\noutput=2\n"
              "activation=linear\n\n[cost]\ntype=sse\n")
    cfg = write_cfg(tmp_path, "d.cfg", cfg_text(layers, streams=3, steps=3, inputs=3))
    net = darknet_rnn.load_network(cfg, seed=8, exact=True, backend="reference",
                                   dtype=np.float64)
    g = np.random.default_rng(2)
    x, t = g.standard_normal((3, 3, 3)), g.uniform(-1, 1, (3, 3, 2))
    state = list(net.rng._r)

    def loss():
        net.rng._r = list(state)
        return net.forward(x, t, train=True)

    net.rng._r = list(state)
    net.forward_backward(x, t)
    h, worst = 1e-6, 0.0
    for p in net.params():
        flat, grad = p.value.reshape(-1), p.grad.reshape(-1).copy()
        for i in range(0, flat.size, max(1, flat.size // 4)):
            keep = flat[i]
            flat[i] = keep + h
            up = loss()
            flat[i] = keep - h
            down = loss()
            flat[i] = keep
            fd = -0.5 * (up - down) / (2 * h)
            worst = max(worst, abs(grad[i] - fd) / max(abs(fd), 1e-3))
    assert worst < 1e-6, worst


# --------------------------------------------------------------------------
# inference, weights, cfg

def test_inference_network_equals_the_one_without_dropout(tmp_path):
    layers = "[rnn]\noutput=6\nactivation=leaky\n\n{}[rnn]\noutput=5\nactivation=tanh\n\n" \
             "[connected]\noutput=4\nactivation=linear\n\n[softmax]\n"
    with_d = write_cfg(tmp_path, "a.cfg", cfg_text(layers.format("[dropout]\nprobability=.5\n\n"),
                                                   streams=1, inputs=4))
    without = write_cfg(tmp_path, "b.cfg", cfg_text(layers.format(""), streams=1, inputs=4))
    a = darknet_rnn.load_network(with_d, seed=2)
    b = darknet_rnn.load_network(without, seed=2)
    a.save_weights(tmp_path / "a.weights")
    b.save_weights(tmp_path / "b.weights")
    assert (tmp_path / "a.weights").read_bytes() == (tmp_path / "b.weights").read_bytes()
    before = list(a.rng._r)
    for c in [0, 3, 1, 2, 2]:
        x = np.eye(4, dtype=np.float32)[c]
        assert_bitwise(a.predict(x), b.predict(x), "predict")
    assert a.rng._r == before                   # inference draws nothing


def test_cfg_messages_and_errors(tmp_path):
    from darknet_rnn.cfg import parse_cfg
    spec = parse_cfg(write_cfg(tmp_path, "ok.cfg", cfg_text(
        "[connected]\noutput=3\n\n[dropout]\n\n[softmax]\n")))
    assert "probability: Using default '0.500000'" in spec.messages
    assert spec.layers[1].probability == 0.5 and spec.layers[1].outputs == 3
    first = write_cfg(tmp_path, "first.cfg", cfg_text("[dropout]\nprobability=0.2\n"))
    with pytest.raises(CfgError, match=r"first\.cfg:12: \[dropout\] cannot be the first"):
        parse_cfg(first)
    one = write_cfg(tmp_path, "one.cfg", cfg_text("[connected]\noutput=3\n[dropout]\n"
                                                  "probability=1\n"))
    with pytest.raises(CfgError, match=r"one\.cfg:15: key 'probability'"):
        parse_cfg(one)


# --------------------------------------------------------------------------
# a training loop: Darknet's order of rand() draws

def test_training_loop_draw_order_is_darknets(tmp_path):
    layers = ("[rnn]\noutput=8\nactivation=leaky\n\n[dropout]\nprobability=0.25\n\n"
              "[connected]\noutput=256\nactivation=leaky\n\n[softmax]\n")
    cfg = write_cfg(tmp_path, "w.cfg", cfg_text(layers, streams=3, steps=4, inputs=256,
                                                policy="random", max_batches=25))
    text = b"the quick brown fox jumps over the lazy dog. " * 40
    api = darknet_rnn.load_network(cfg, seed=77)
    rates = []
    T.train(api, text, callback=lambda s: rates.append(s.rate))

    # train_char_rnn written out: one rand() stream, Darknet's order
    net = darknet_rnn.load_network(cfg, seed=77)
    rng, n = net.rng, len(text)
    offsets = [T.rand_size_t(rng) % n for _ in range(3)]
    want_rates = []
    while net.current_batch() < 25:
        pos = np.array([[(o + t) % n for o in offsets] for t in range(4)])
        offsets = [(o + 4) % n for o in offsets]
        data = np.frombuffer(text, np.uint8)
        x = np.eye(256, dtype=np.float32)[data[pos]]
        y = np.eye(256, dtype=np.float32)[data[(pos + 1) % n]]
        net.train(x, y)                         # dropout masks, then the update's rate
        want_rates.append(net.current_rate())   # the rate Darknet prints: another draw
        for s in range(3):
            if rng.rand() % 64 == 0:
                offsets[s] = T.rand_size_t(rng) % n
    assert rates == want_rates
    for a, b in zip(api.params(), net.params()):
        assert_bitwise(a.value, b.value, a.name)
    assert api.rng.rand() == net.rng.rand()
