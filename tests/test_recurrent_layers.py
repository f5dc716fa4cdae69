"""[gru] and [lstm]: the C core equals the NumPy twin bit for bit for every
option and every fix bit; cfg keys (Darknet's, and AlexeyAB's refused by
name); the one-time note when training with Darknet's CPU behaviour; Adam,
clipping and exact resume through the carried states; the layer API."""
import itertools
import warnings

import numpy as np
import pytest

import darknet_rnn
from darknet_rnn import layers as native
from darknet_rnn import reference as twin
from darknet_rnn.cfg import CfgWarning, parse_cfg_text
from darknet_rnn.errors import CfgError, DarknetTrainingWarning
from darknet_rnn.fixes import (FIX_ALL, FIX_BN_GRADIENT, FIX_BN_STEP_STATS, FIX_GRU_BACKWARD,
                               FIX_LSTM_CELL_CARRY, FIX_LSTM_NEXT_STATE, FIX_LSTM_PREV_STATE)
from conftest import KERNELS, assert_bitwise, assert_close

NET = ("[net]\nbatch={streams}\nsubdivisions=1\ntime_steps={steps}\ninputs={inputs}\n"
       "learning_rate=0.1\nmomentum=0.9\ndecay=0.001\nmax_batches=100\n")
HEAD = "[connected]\noutput=3\nactivation=linear\n[softmax]\n"


@pytest.fixture(autouse=True)
def _darknet_arithmetic(monkeypatch):
    """These tests compare the C core and the twin on Darknet's arithmetic,
    including the NaNs its batch-norm backward reaches with 2-4 streams:
    the finite guard (which would stop those runs) is off here."""
    monkeypatch.setenv("DARKNET_RNN_FINITE_GUARD", "0")


def write(tmp_path, sections, streams=3, steps=3, inputs=4, name="net.cfg", head=HEAD):
    p = tmp_path / name
    p.write_text(NET.format(streams=streams, steps=steps, inputs=inputs) + sections + head)
    return p


def datum(net, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((net.time_steps, net.streams, net.inputs))
    y = np.eye(net.outputs)[rng.integers(0, net.outputs, (net.time_steps, net.streams))]
    return x, y


def quiet_train(net, x, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DarknetTrainingWarning)
        return net.train(x, y)


# --------------------------------------------------------------------------
# C core == NumPy twin, bitwise, for every option and fix subset

LSTM_BITS = [FIX_LSTM_PREV_STATE, FIX_LSTM_CELL_CARRY, FIX_LSTM_NEXT_STATE, FIX_BN_STEP_STATS,
             FIX_BN_GRADIENT]
FIX_SETS = sorted({0, FIX_ALL} | {b for b in LSTM_BITS} | {FIX_ALL & ~b for b in LSTM_BITS}
                  | {FIX_GRU_BACKWARD, FIX_GRU_BACKWARD | FIX_BN_STEP_STATS})
LAYERS = {
    "gru": "[gru]\noutput=4\n",
    "gru-tanh-bn": "[gru]\noutput=4\ntanh=1\nbatch_normalize=1\n",
    "lstm": "[lstm]\noutput=4\n",
    "lstm-bn": "[lstm]\noutput=4\nbatch_normalize=1\n",
    "stack": "[connected]\noutput=5\nactivation=tanh\n[lstm]\noutput=4\n[gru]\noutput=3\n",
}


@pytest.mark.parametrize("steps,streams", [(1, 2), (3, 2), (4, 5)])
@pytest.mark.parametrize("fixes", FIX_SETS)
@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_native_equals_twin(tmp_path, layer, fixes, steps, streams):
    cfg = write(tmp_path, LAYERS[layer], streams=streams, steps=steps)
    nets = [darknet_rnn.load_network(cfg, seed=3, kernel="reference"),
            darknet_rnn.load_network(cfg, seed=3, backend="reference")]
    for net in nets:
        for l in net.layers:
            if hasattr(l, "fixes"):
                l.fixes = fixes
    for d in range(3):
        x, y = datum(nets[0], d)
        a, b = (quiet_train(n, x, y) for n in nets)
        assert_bitwise(a, b, f"datum {d} loss")
        # (Darknet's BN backward can blow up with 2 streams: NaN, on both sides)
        assert np.isfinite(a) or (d > 0 and "bn" in layer)
        assert_bitwise(nets[0].output, nets[1].output, f"datum {d} output")
    for p, q in zip(nets[0].params(), nets[1].params()):
        assert p.name == q.name
        assert_bitwise(p.value, q.value, p.name)
        assert_bitwise(p.grad, q.grad, p.name + " update buffer")
    for i, (s, t) in enumerate(zip(nets[0].state_arrays(), nets[1].state_arrays())):
        assert_bitwise(s, t, f"carried state {i}")
    # inference from the carried state, then from zero
    x, _ = datum(nets[0], 9)
    assert_bitwise(nets[0].predict(x), nets[1].predict(x), "prediction")
    for n in nets:
        n.reset_state()
    assert_bitwise(nets[0].predict(x), nets[1].predict(x), "prediction after reset")


FAST = [k for k in KERNELS if k != "reference"]


@pytest.mark.skipif(not FAST, reason="no fast kernel on this CPU")
@pytest.mark.parametrize("kernel", FAST)
@pytest.mark.parametrize("exact", [False, True], ids=["darknet", "exact"])
@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_fast_path_within_band(tmp_path, layer, exact, kernel):
    """The fast path (input-to-gate GEMMs and weight gradients batched over
    the steps) against the reference kernel, with exact BPTT too: two datums,
    every parameter, update buffer and carried state within
    |a-b| <= 1e-5 + 1e-4|b| (summation order only; 5 streams, so batch norm
    is well conditioned)."""
    cfg = write(tmp_path, LAYERS[layer], streams=5, steps=4)
    ref = darknet_rnn.load_network(cfg, seed=8, exact=exact, kernel="reference")
    fast = darknet_rnn.load_network(cfg, seed=8, exact=exact, kernel=kernel)
    for d in range(2):
        x, y = datum(ref, d)
        lr, lf = quiet_train(ref, x, y), quiet_train(fast, x, y)
        assert abs(lr - lf) <= 1e-4 * abs(lr) + 1e-5, (d, lr, lf)
    for p, q in zip(fast.params(), ref.params()):
        assert_close(p.value, q.value, p.name, rtol=1e-4, atol=1e-5)
        assert_close(p.grad, q.grad, p.name + " update buffer", rtol=1e-4, atol=1e-5)
    for i, (a, b) in enumerate(zip(fast.state_arrays(), ref.state_arrays())):
        assert_close(a, b, f"carried state {i}", rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("layer", ["gru-tanh-bn", "lstm-bn", "stack"])
@pytest.mark.parametrize("exact", [False, True], ids=["darknet", "exact"])
def test_adam_and_clipping_native_equals_twin(tmp_path, layer, exact):
    cfg = write(tmp_path, LAYERS[layer])
    kw = dict(seed=4, exact=exact, optimizer="adam", clip_norm=0.05)
    nets = [darknet_rnn.load_network(cfg, kernel="reference", **kw),
            darknet_rnn.load_network(cfg, backend="reference", **kw)]
    for d in range(3):
        x, y = datum(nets[0], d)
        assert_bitwise(*(quiet_train(n, x, y) for n in nets), f"datum {d} loss")
    assert nets[0].clip.clipped > 0           # the hook saw the recurrent gradients
    for p, q in zip(nets[0].params(), nets[1].params()):
        assert_bitwise(p.value, q.value, p.name)


@pytest.mark.parametrize("layer", ["gru-tanh-bn", "lstm"])
@pytest.mark.parametrize("exact", [False, True], ids=["darknet", "exact"])
def test_resume_continues_bit_for_bit(tmp_path, layer, exact):
    """The training-state sidecar keeps the carried states (and the LSTM's
    cell-gradient carry), so a resumed run continues the same trajectory."""
    cfg = write(tmp_path, LAYERS[layer])
    full = darknet_rnn.load_network(cfg, seed=6, exact=exact, kernel="reference")
    for d in range(2):
        quiet_train(full, *datum(full, d))
    full.save_weights(tmp_path / "w")
    full.save_training_state(tmp_path / "w.state")
    assert any(np.any(a != 0) for a in full.state_arrays())
    resumed = darknet_rnn.load_network(cfg, tmp_path / "w", exact=exact, kernel="reference")
    resumed.load_training_state(tmp_path / "w.state")
    for d in range(2, 4):
        assert_bitwise(quiet_train(resumed, *datum(full, d)), quiet_train(full, *datum(full, d)),
                       f"datum {d}")
    for p, q in zip(resumed.params(), full.params()):
        assert_bitwise(p.value, q.value, p.name)


# --------------------------------------------------------------------------
# the note when training as Darknet does

def test_darknet_training_warns_once_per_layer(tmp_path):
    cfg = write(tmp_path, "[gru]\noutput=4\n[gru]\noutput=4\n[lstm]\noutput=3\n")
    net = darknet_rnn.load_network(cfg, seed=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for d in range(3):
            net.train(*datum(net, d))
    notes = [w for w in caught if issubclass(w.category, DarknetTrainingWarning)]
    texts = [str(w.message) for w in notes]
    assert sum(t.startswith("[gru]") for t in texts) == 2       # one per layer, not per datum
    assert sum(t.startswith("[lstm]") for t in texts) == 1
    for t in texts:
        assert "exact=True" in t and "--exact" in t and "SPEC" not in t and "Q1" not in t


def test_default_filter_shows_the_note_once(tmp_path):
    cfg = write(tmp_path, "[gru]\noutput=4\n[gru]\noutput=4\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.resetwarnings()
        warnings.simplefilter("default")
        for _ in range(2):
            net = darknet_rnn.load_network(cfg, seed=1)
            net.train(*datum(net, 0))
    assert sum(issubclass(w.category, DarknetTrainingWarning) for w in caught) == 1


def test_exact_training_and_inference_do_not_warn(tmp_path):
    cfg = write(tmp_path, "[gru]\noutput=4\nbatch_normalize=1\n[lstm]\noutput=3\n"
                "batch_normalize=1\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error", DarknetTrainingWarning)
        net = darknet_rnn.load_network(cfg, seed=1, exact=True)
        net.train(*datum(net, 0))
        darknet_rnn.load_network(cfg, seed=1).predict(datum(net, 1)[0])


# --------------------------------------------------------------------------
# cfg keys

def parse(sections, **kw):
    return parse_cfg_text(NET.format(streams=2, steps=2, inputs=3) + sections + HEAD,
                          path="t.cfg", **kw)


def test_keys_and_defaults():
    spec = parse("[gru]\ntanh=1\nbatch_normalize=1\n[lstm]\noutput=5\n")
    gru, lstm = spec.layers[:2]
    assert (gru.type, gru.outputs, gru.tanh, gru.batch_normalize) == ("gru", 1, True, True)
    assert (lstm.type, lstm.outputs, lstm.batch_normalize) == ("lstm", 5, False)
    assert spec.layers[2].inputs == 5
    assert "output: Using default '1'" in spec.messages
    assert parse("[gru]\noutput=3\n").layers[0].tanh is False      # logistic candidate


@pytest.mark.parametrize("section,line", [("gru", "activation=tanh"),
                                          ("lstm", "activation=linear"),
                                          ("gru", "peephole=0"), ("lstm", "hidden=4")])
def test_keys_darknet_ignores_are_reported_unused(section, line):
    with pytest.warns(CfgWarning, match=f"Unused field: '{line.replace('=', ' = ')}'"):
        spec = parse(f"[{section}]\noutput=4\n{line}\n")
    assert spec.layers[0].outputs == 4


@pytest.mark.parametrize("section,lines,named", [
    ("lstm", ["peephole=1"], ["peephole"]),
    ("lstm", ["xnor=1", "bottleneck=1"], ["xnor", "bottleneck"]),
    ("lstm", ["activation=tanh"], ["activation"]),
    ("lstm", ["lstm_activation=relu", "time_normalizer=0.5"], ["lstm_activation",
                                                              "time_normalizer"]),
    ("gru", ["hidden=8"], ["hidden"]),
    ("gru", ["state_constrain=32", "shortcut=1"], ["state_constrain", "shortcut"]),
])
def test_fork_keys_are_refused_by_name(section, lines, named):
    with pytest.raises(CfgError) as exc:
        parse(f"[{section}]\noutput=4\n" + "".join(l + "\n" for l in lines))
    msg = str(exc.value)
    assert msg.startswith("t.cfg:")
    for key in named:
        assert f"'{key}=" in msg
    assert f"[{section}]" in msg and "AlexeyAB" in msg


@pytest.mark.parametrize("section", ["gru", "lstm"])
def test_learning_rate_key_has_no_effect(section, tmp_path):
    with pytest.warns(CfgWarning, match="has no effect"):
        spec = parse(f"[{section}]\noutput=4\nlearning_rate=0.5\n")
    assert spec.layers[0].learning_rate_scale == 1.0


@pytest.mark.parametrize("section", ["gru", "lstm"])
def test_batch_norm_with_one_stream_refuses_to_train(section, tmp_path):
    cfg = write(tmp_path, f"[{section}]\noutput=4\nbatch_normalize=1\n", streams=1)
    net = darknet_rnn.load_network(cfg, seed=1)
    with pytest.raises(CfgError, match="1 stream"):
        net.train(*datum(net, 0))
    net.predict(datum(net, 0)[0])               # inference with rolling statistics is fine


def test_output_must_be_positive():
    with pytest.raises(CfgError, match="output=0"):
        parse("[lstm]\noutput=0\n")


# --------------------------------------------------------------------------
# the layer classes

@pytest.mark.parametrize("module", [native, twin], ids=["native", "twin"])
def test_layer_api(module):
    g = module.GRULayer(batch=2, inputs=3, outputs=4, steps=5, tanh=True)
    l = module.LSTMLayer(batch=2, inputs=3, outputs=4, steps=5, batch_normalize=True)
    assert g.activation == "tanh" and "GRULayer" in repr(g) and "LSTMLayer" in repr(l)
    assert [s.inputs for s in g.sublayers] == [3, 4, 3, 4, 3, 4]
    assert [s.inputs for s in l.sublayers] == [3] * 4 + [4] * 4
    assert all(s.activation == "linear" and s.batch_normalize for s in l.sublayers)
    for layer in (g, l):
        x = np.random.default_rng(0).standard_normal((10, 3)).astype(np.float32)
        layer.forward(x)
        assert layer.output.shape == (10, 4)
        assert np.shares_memory(layer.output, layer.states)
        assert_bitwise(layer.state, layer.output[-2:], "carried state = last step")
        with pytest.raises(ValueError, match="input"):
            layer.forward(np.zeros((9, 3), np.float32))
        with pytest.raises(TypeError):
            layer.forward(np.zeros((10, 3), np.float64))
        with pytest.raises(ValueError, match="prev_delta"):
            layer.backward(x, np.zeros((10, 2), np.float32))
        layer.reset_state()
        assert not any(np.any(a) for a in layer.state_arrays())
    with pytest.raises(ValueError):
        module.LSTMLayer(batch=2, inputs=3, outputs=4, steps=5, fixes=4096)
    with pytest.raises(ValueError):
        module.GRULayer(batch=0, inputs=3, outputs=4, steps=5)


def test_numpy_backend_names_the_missing_layer(tmp_path):
    cfg = write(tmp_path, "[gru]\noutput=4\n")
    with pytest.raises(CfgError, match=r"'numpy' backend has no \[gru\]"):
        darknet_rnn.load_network(cfg, backend="numpy")


def test_fix_bits_are_distinct_and_in_fix_all():
    bits = [FIX_GRU_BACKWARD, FIX_LSTM_PREV_STATE, FIX_LSTM_CELL_CARRY, FIX_LSTM_NEXT_STATE]
    assert all(b & FIX_ALL == b for b in bits)
    assert all(a & b == 0 for a, b in itertools.combinations(bits, 2))
    assert sum(bits) & 63 == 0                 # none reuses an [rnn]/BN/softmax bit


def test_validation_during_training_keeps_the_carried_state(tmp_path):
    from darknet_rnn.charrnn.evaluate import evaluate_bpc
    cfg = write(tmp_path, "[gru]\noutput=8\n[lstm]\noutput=8\n", inputs=256,
                head="[connected]\noutput=256\nactivation=linear\n[softmax]\n")
    net = darknet_rnn.load_network(cfg, seed=2, exact=True)
    rng = np.random.default_rng(0)
    x = np.eye(256)[rng.integers(32, 127, (net.time_steps, net.streams))]
    net.train(x, np.roll(x, -1, axis=0))
    before = [a.copy() for a in net.state_arrays()]
    assert any(np.any(a != 0) for a in before)
    r = evaluate_bpc(net, b"some validation text, long enough to span several calls")
    assert np.isfinite(r.bpc) and r.count > 0
    for a, b in zip(net.state_arrays(), before):
        assert_bitwise(a, b, "carried state after validation")
