"""The bidirectional [rnn] (`bidirectional=1`, an extension): two ordinary
[rnn] blocks, the second over the time-reversed sequence, outputs
concatenated per step. Checked against unidirectional layers holding the
same weights, through the network API, and in the .weights file.
(C core = twin bitwise, fast kernels in band and exact gradients = finite
differences are rows of tests/test_layer_table.py.)"""
import struct

import numpy as np
import pytest

import darknet_rnn
from darknet_rnn import layers as native
from darknet_rnn import reference
from darknet_rnn._ffi import Context
from darknet_rnn.errors import CfgError
from conftest import KERNELS, assert_bitwise

T, B, I, H = 5, 3, 4, 3


def rev(rows):
    """Step blocks of time-major (T*B, width) rows in reverse order."""
    return np.ascontiguousarray(rows.reshape(T, B, -1)[::-1].reshape(rows.shape))


def make(impl, cls, kernel, **opts):
    kw = dict(batch=B, inputs=I, outputs=H, steps=T, activation=opts.get("act", "tanh"),
              batch_normalize=opts.get("bn", False), shortcut=opts.get("shortcut", False),
              fixes=opts.get("fixes", 0))
    if impl == "native":
        return getattr(native, cls)(ctx=Context(kernel), **kw)
    return getattr(reference, cls)(**kw)


def fill(layer, rng):
    for s in layer.sublayers:
        s.weights = rng.uniform(-0.6, 0.6, s.weights.shape)
        s.biases = rng.uniform(-0.3, 0.3, s.biases.shape)
        if s.batch_normalize:
            s.scales = rng.uniform(0.5, 1.5, s.scales.shape)


def copy_block(dst, src):
    for d, s in zip(dst.sublayers, src.sublayers):
        d.weights, d.biases = s.weights, s.biases
        if s.batch_normalize:
            d.scales = s.scales


OPTS = {"plain": {}, "bn": {"bn": True}, "shortcut-logistic": {"shortcut": True, "act": "logistic"},
        "exact-bn-shortcut": {"bn": True, "shortcut": True, "fixes": darknet_rnn.layers.FIX_ALL}}
IMPLS = [("reference", None)] + [("native", k) for k in KERNELS]


@pytest.mark.parametrize("impl,kernel", IMPLS, ids=lambda v: str(v))
@pytest.mark.parametrize("opt", sorted(OPTS))
def test_halves_equal_unidirectional_layers(impl, kernel, opt):
    """The backward half is a unidirectional layer with the backward block's
    weights run on the time-reversed input (outputs, weight gradients, input
    delta); the forward half is one with the forward block's weights."""
    rng = np.random.default_rng(1)
    bi = make(impl, "BiRNNLayer", kernel, **OPTS[opt])
    fill(bi, rng)
    fwd, bwd = (make(impl, "RNNLayer", kernel, **OPTS[opt]) for _ in range(2))
    copy_block(fwd, bi.forward_rnn)
    copy_block(bwd, bi.backward_rnn)
    assert bi.outputs == 2 * H and bi.output.shape == (T * B, 2 * H)

    x = rng.standard_normal((T * B, I)).astype(np.float32)
    bi.forward(x)
    fwd.forward(x)
    bwd.forward(rev(x))
    assert_bitwise(bi.output[:, :H], fwd.output, "forward half")
    assert_bitwise(bi.output[:, H:], rev(bwd.output), "backward half")
    assert not np.array_equal(bi.output[:, H:], bwd.output), "the halves run in opposite time"

    g = rng.standard_normal((T * B, 2 * H)).astype(np.float32)
    bi.delta[...] += g                 # what a next layer does
    fwd.delta[...] += g[:, :H]
    bwd.delta[...] += rev(np.ascontiguousarray(g[:, H:]))
    pd_bi = np.zeros((T * B, I), np.float32)
    pd_f = np.zeros_like(pd_bi)
    pd_b = np.zeros_like(pd_bi)
    bi.backward(x, pd_bi)
    fwd.backward(x, pd_f)
    bwd.backward(rev(x), pd_b)
    for name, uni, block in (("forward", fwd, bi.forward_rnn), ("backward", bwd, bi.backward_rnn)):
        for su, sb in zip(uni.sublayers, block.sublayers):
            assert_bitwise(sb.weight_updates, su.weight_updates, f"{name} weight updates")
            assert_bitwise(sb.bias_updates, su.bias_updates, f"{name} bias updates")
            if su.batch_normalize:
                assert_bitwise(sb.scale_updates, su.scale_updates, f"{name} scale updates")
    with np.errstate(all="ignore"):
        assert_bitwise(pd_bi, pd_f + rev(pd_b), "input delta: forward's, then backward's reversed")
    assert np.abs(pd_b).max() > 0


CFG = """[net]
batch={streams}
subdivisions=1
time_steps={steps}
inputs=4
learning_rate=0.05
momentum=0.9
decay=0.001
max_batches=100
{layers}[connected]
output=3
activation=linear
[softmax]
"""
BI = "[rnn]\noutput=3\nactivation=tanh\nbidirectional=1\n"
UNI = "[rnn]\noutput=6\nactivation=tanh\n"


def cfg(tmp_path, layers, steps=T, streams=B, name="net"):
    p = tmp_path / f"{name}.cfg"
    p.write_text(CFG.format(streams=streams, steps=steps, layers=layers))
    return p


@pytest.mark.parametrize("backend", ["native", "reference"])
def test_last_step_reaches_step_zero(tmp_path, backend):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((T, B, 4))
    x2 = x.copy()
    x2[-1] += 0.5
    for layers, reaches in ((BI, True), (UNI, False), (UNI + BI, True), (BI + UNI, True)):
        net = darknet_rnn.load_network(cfg(tmp_path, layers), seed=3, backend=backend)
        a, b = net.infer(x), net.infer(x2)
        assert a.shape == (T, B, 3)
        assert not np.array_equal(a[-1], b[-1])
        assert (not np.array_equal(a[0], b[0])) == reaches, layers
        # and the perturbation of stream 0 stays in stream 0
        x3 = x.copy()
        x3[-1, 0] += 0.5
        c = net.infer(x3)
        assert_bitwise(c[:, 1:], a[:, 1:], "other streams")


@pytest.mark.parametrize("backend", ["native", "reference"])
def test_inference_is_a_whole_sequence_per_call(tmp_path, backend):
    net = darknet_rnn.load_network(cfg(tmp_path, BI), seed=4, backend=backend)
    x = np.random.default_rng(3).standard_normal((T, B, 4))
    first = net.infer(x)
    net.forward(np.ones((T, B, 4)))            # leaves states behind
    assert_bitwise(net.infer(x), first, "infer from zero")
    net.forward(x)                             # forward(train=False) starts from zero as well
    assert_bitwise(net.sequence_output, first, "forward")
    assert_bitwise(net.last_output, first[-1], "last step")
    with pytest.raises(CfgError, match=r"whole sequence.*net\.infer"):
        net.predict(x)
    gen = darknet_rnn.load_network(cfg(tmp_path, BI), seed=4, backend=backend, streams=1)
    with pytest.raises(CfgError, match="step-by-step predict"):
        gen.predict(np.zeros(4))


def test_stateful_training_is_refused(tmp_path):
    with pytest.raises(CfgError, match=r"stateful=True: layer 1 \[rnn\] \(line 13\) is "
                       "bidirectional"):
        darknet_rnn.load_network(cfg(tmp_path, UNI + BI), stateful=True)
    darknet_rnn.load_network(cfg(tmp_path, UNI + UNI), stateful=True)


def test_cfg_shapes_and_parameter_names(tmp_path):
    net = darknet_rnn.load_network(cfg(tmp_path, BI + BI.replace("3", "2") + UNI), seed=1)
    assert [ls.outputs for ls in net.spec.layers[:3]] == [6, 4, 6]
    assert [ls.inputs for ls in net.spec.layers[:3]] == [4, 6, 4]
    assert net.layers[1].units == 2 and net.layers[1].inputs == 6
    names = [p.name for p in net.params() if p.name.startswith("layer 1 ")]
    assert names == [f"layer 1 [rnn] {d}.{s}.{v}" for d in ("forward", "backward")
                     for s in ("input_layer", "self_layer", "output_layer")
                     for v in ("biases", "weights")]
    assert "Unused field" not in " ".join(net.spec.messages)


def block_bytes(blk):
    parts = [blk.biases, blk.weights]          # Darknet's save_connected_weights
    if blk.batch_normalize:
        parts += [blk.scales, blk.rolling_mean, blk.rolling_variance]
    return b"".join(np.ascontiguousarray(a, "<f4").tobytes() for a in parts)


@pytest.mark.parametrize("backend", ["native", "reference"])
def test_weights_file_layout_and_round_trip(tmp_path, backend):
    """The file is the header, then per layer its blocks: the forward
    block's input, self, output sublayers, then the backward block's, each
    as Darknet writes a connected layer."""
    layers = BI.replace("tanh", "leaky\nbatch_normalize=1") + BI
    net = darknet_rnn.load_network(cfg(tmp_path, layers), seed=5, backend=backend)
    rng = np.random.default_rng(4)
    for i in range(2):                       # rolling statistics and weights move
        net.train(rng.standard_normal((T, B, 4)), np.eye(3)[rng.integers(0, 3, (T, B))])
    path = tmp_path / "bi.weights"
    net.save_weights(path)
    data = path.read_bytes()
    assert struct.unpack_from("<iiiQ", data) == (0, 2, 0, net.seen)
    want = b""
    for layer in net.layers[:2]:
        for block in (layer.forward_rnn, layer.backward_rnn):
            want += b"".join(block_bytes(s) for s in block.sublayers)
    want += block_bytes(net.layers[2])
    assert data[20:] == want
    other = darknet_rnn.load_network(cfg(tmp_path, layers), path, seed=9,
                                     backend="reference" if backend == "native" else "native")
    for a, b in zip(other.params(), net.params()):
        assert_bitwise(a.value, b.value, a.name)
    other.save_weights(tmp_path / "again.weights")
    assert (tmp_path / "again.weights").read_bytes() == data
    # a unidirectional cfg of the same width is a different file
    with pytest.raises(darknet_rnn.errors.WeightsError):
        darknet_rnn.load_network(cfg(tmp_path, UNI + UNI, name="uni"), path)


def test_initialisation_draws_forward_then_backward(tmp_path):
    """rand() initialises the forward block's input, self, output
    sublayers, then the backward block's: the forward block gets the draws a
    unidirectional layer would, the backward block the ones after them."""
    from darknet_rnn._rand import GlibcRandom
    bi = darknet_rnn.load_network(cfg(tmp_path, BI), seed=6, backend="reference")
    uni = darknet_rnn.load_network(cfg(tmp_path, UNI.replace("6", "3"), name="u"), seed=6,
                                   backend="reference")
    f, b = bi.layers[0].directions
    for sf, su in zip(f.sublayers, uni.layers[0].sublayers):
        assert_bitwise(sf.weights, su.weights, "forward block = unidirectional layer")
    rng = GlibcRandom(6)
    rng.rand_uniform_array(3 * 4 + 3 * 3 + 3 * 3, -1, 1)       # the forward block's draws
    for s, fan_in in zip(b.sublayers, (4, 3, 3)):
        scale = np.float32(np.sqrt(2.0 / fan_in))
        want = scale * np.asarray(rng.rand_uniform_array(3 * fan_in, -1, 1), np.float32)
        assert_bitwise(s.weights.ravel(), want, "backward block draws")
    assert bi.init_draws() == 2 * (3 * 4 + 3 * 3 + 3 * 3) + 3 * 6


def test_char_rnn_commands_refuse_a_bidirectional_net(tmp_path, capsys):
    from darknet_rnn import cli
    p = tmp_path / "char-bi.cfg"
    p.write_text("[net]\nbatch=2\nsubdivisions=1\ntime_steps=4\ninputs=256\nmax_batches=2\n"
                 "[rnn]\noutput=4\nactivation=tanh\nbidirectional=1\n"
                 "[connected]\noutput=256\nactivation=linear\n[softmax]\n")
    text = tmp_path / "t.txt"
    text.write_text("hello world " * 50)
    assert cli.main(["train", str(p), "--file", str(text), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "layer 0 [rnn] (line 7) reads the sequence from its end too" in err, err


@pytest.mark.parametrize("backend", ["native", "reference"])
def test_grad_norms_of_both_directions_by_time(tmp_path, backend):
    net = darknet_rnn.load_network(cfg(tmp_path, BI), seed=8, backend=backend)
    net.record_grad_norms()
    rng = np.random.default_rng(5)
    net.forward_backward(rng.standard_normal((T, B, 4)), np.eye(3)[rng.integers(0, 3, (T, B))])
    got = net.grad_norms()[0]
    f, b = net.layers[0].directions
    assert got.shape == (T,) and (f.grad_norms > 0).all() and (b.grad_norms > 0).all()
    # time t: the forward block's step t and the backward block's step T-1-t
    want = np.sqrt(f.grad_norms.astype(np.float64) ** 2
                   + b.grad_norms[::-1].astype(np.float64) ** 2)
    np.testing.assert_allclose(got, want, rtol=1e-6)
