"""Network API (issue: Darknet files and networks): shapes, state, weights
round trips through training, kernel selection from the environment."""
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import darknet_rnn
from darknet_rnn.errors import CfgError, KernelError, WeightsError
from conftest import DATA, assert_bitwise

TRAIN_CFG = """[net]
batch=3
subdivisions=1
time_steps=4
inputs=5
learning_rate=0.1
momentum=0.9
decay=0.001
max_batches=10

[rnn]
output=6
activation=tanh

[connected]
output=4
activation=linear

[softmax]
"""


def write_cfg(tmp_path, text, name="net.cfg"):
    p = tmp_path / name
    p.write_text(text)
    return p


def data(net, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (net.time_steps, net.streams, net.inputs)).astype(np.float32)
    y = np.eye(net.outputs, dtype=np.float32)[rng.integers(0, net.outputs,
                                                           (net.time_steps, net.streams))]
    return x, y


def test_public_attributes(tmp_path):
    net = darknet_rnn.load_network(write_cfg(tmp_path, TRAIN_CFG), seed=1)
    assert (net.streams, net.time_steps, net.batch) == (3, 4, 12)
    assert (net.inputs, net.outputs, net.subdivisions, net.max_batches) == (5, 4, 1, 10)
    assert [l.type for l in net.layers] == ["rnn", "connected", "softmax"]
    assert net.seen == 0 and net.current_batch() == 0
    assert net.current_rate() == pytest.approx(0.1)


def test_train_accepts_darknet_layouts_and_counts_seen(tmp_path):
    cfg = write_cfg(tmp_path, TRAIN_CFG)
    a = darknet_rnn.load_network(cfg, seed=3)
    b = darknet_rnn.load_network(cfg, seed=3)
    x, y = data(a)
    la = a.train(x, y)                                   # (time_steps, streams, n)
    lb = b.train(x.reshape(-1), y.reshape(12, 4))        # flat and (batch, n)
    assert la == lb and np.isfinite(la)
    assert a.seen == 12 and a.current_batch() == 1
    assert_bitwise(a.output, b.output, "same datum, different layouts")
    assert a.output.shape == (12, 4)
    assert np.allclose(a.output.sum(axis=1), 1, atol=1e-5)    # softmax rows


def test_training_reduces_loss(tmp_path):
    net = darknet_rnn.load_network(write_cfg(tmp_path, TRAIN_CFG), seed=5)
    x, y = data(net, 1)
    first = net.train(x, y)
    for _ in range(30):
        last = net.train(x, y)
    assert last < 0.5 * first


def test_bad_shapes_and_types_name_the_argument(tmp_path):
    net = darknet_rnn.load_network(write_cfg(tmp_path, TRAIN_CFG), seed=1)
    x, y = data(net)
    with pytest.raises(ValueError, match=r"x must have shape \(4, 3, 5\)"):
        net.train(x[:, :2], y)
    with pytest.raises(ValueError, match=r"y must have shape \(4, 3, 4\)"):
        net.train(x, y[..., :3])
    with pytest.raises(TypeError, match="x must be a numeric array"):
        net.train(np.array([["a"] * 5] * 12), y)
    assert net.seen == 0                                  # nothing happened


def test_predict_state_carries_and_resets(tmp_path):
    text = TRAIN_CFG.replace("batch=3", "batch=1").replace("time_steps=4", "time_steps=1")
    net = darknet_rnn.load_network(write_cfg(tmp_path, text), seed=2)
    x = np.linspace(-1, 1, 5).astype(np.float32)
    first = net.predict(x)
    assert first.shape == (4,)
    second = net.predict(x)
    assert not np.array_equal(first, second)             # the state carried
    out = net.predict(x)
    out[...] = 0                                          # a copy, not the live buffer
    assert np.any(net.output != 0)
    net.reset_state()
    assert_bitwise(net.predict(x), first, "after reset_state")
    with pytest.raises(ValueError, match=r"x must have shape \(5,\)"):
        net.predict(np.zeros(4, np.float32))


def test_set_temperature_sharpens(tmp_path):
    text = TRAIN_CFG.replace("batch=3", "batch=1").replace("time_steps=4", "time_steps=1")
    net = darknet_rnn.load_network(write_cfg(tmp_path, text), seed=2)
    x = np.linspace(-1, 1, 5).astype(np.float32)
    p1 = net.predict(x)
    net.reset_state()
    net.set_temperature(0.25)
    p2 = net.predict(x)
    assert p2.max() > p1.max() and np.argmax(p2) == np.argmax(p1)


def test_weights_written_after_training_reload_identically(tmp_path):
    cfg = write_cfg(tmp_path, TRAIN_CFG)
    net = darknet_rnn.load_network(cfg, seed=9)
    x, y = data(net)
    for _ in range(3):
        net.train(x, y)
    path = tmp_path / "w.weights"
    net.save_weights(path)
    again = darknet_rnn.load_network(cfg, path)
    assert again.seen == net.seen == 36
    for a, b in zip(net.layers, again.layers):
        if a.type == "connected":
            assert_bitwise(a.weights, b.weights, "connected weights")
    assert_bitwise(net.predict(x), again.predict(x), "predictions")


def test_weights_for_another_cfg_are_rejected(tmp_path):
    with pytest.raises(WeightsError) as exc:
        darknet_rnn.load_network(DATA / "s01_rnn1_default_logistic_cost" / "net.cfg",
                                 DATA / "s02_rnn1_tanh_conn_softmax" / "before.weights")
    msg = str(exc.value)
    assert "before.weights" in msg and "bytes" in msg


def test_seed_reproduces_darknet_initialisation(tmp_path):
    """srand(seed) before parsing, as the goldens were made."""
    case = DATA / "s02_rnn1_tanh_conn_softmax"
    import json
    seed = json.loads((case / "meta.json").read_text())["seed"]
    net = darknet_rnn.load_network(case / "net.cfg", seed=seed)
    net.save_weights(tmp_path / "init.weights")
    assert (tmp_path / "init.weights").read_bytes() == (case / "before.weights").read_bytes()


def test_exact_mode_trains_and_differs_from_darknet(tmp_path):
    cfg = write_cfg(tmp_path, TRAIN_CFG)
    d = darknet_rnn.load_network(cfg, seed=4)
    e = darknet_rnn.load_network(cfg, seed=4, exact=True)
    x, y = data(d)
    assert d.train(x, y) == e.train(x, y)          # same forward
    w_d = d.layers[0].input_layer.weights
    w_e = e.layers[0].input_layer.weights
    assert not np.array_equal(w_d, w_e)            # Q2 changes the input layer's gradient


def test_reference_backend_equals_native_reference_kernel(tmp_path):
    cfg = write_cfg(tmp_path, TRAIN_CFG)
    n = darknet_rnn.load_network(cfg, seed=8, kernel="reference")
    r = darknet_rnn.load_network(cfg, seed=8, backend="reference")
    x, y = data(n)
    for _ in range(2):
        assert n.train(x, y) == r.train(x, y)
    assert_bitwise(n.output, r.output, "outputs")


def run_py(code, **env):
    full = dict(os.environ)
    full.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=full, timeout=120)


def test_environment_selects_kernel():
    code = "import darknet_rnn; print(darknet_rnn.build_info()['kernel'])"
    r = run_py(code, DARKNET_RNN_KERNEL="reference")
    assert r.returncode == 0 and r.stdout.strip() == "reference", r.stderr
    r = run_py(code, DARKNET_RNN_KERNEL="portable")
    assert r.returncode == 0 and r.stdout.strip() == "portable", r.stderr
    r = run_py(code, DARKNET_RNN_KERNEL="nonsense")
    assert r.returncode != 0 and "KernelError" in r.stderr and "nonsense" in r.stderr


def test_environment_reference_kernel_is_bitwise_darknet():
    case = DATA / "s03_rnn2_relu_shortcut_cost"
    code = f"""
import numpy as np, darknet_rnn
d = np.load(r'{case / "data.npz"}')
net = darknet_rnn.load_network(r'{case / "net.cfg"}', r'{case / "before.weights"}')
loss = [net.train(d['x'][i], d['y'][i]) for i in range(len(d['loss']))]
print(np.array_equal(np.array(loss, np.float32), d['loss']) and np.array_equal(net.output, d['output'][-1]))
"""
    r = run_py(code, DARKNET_RNN_KERNEL="reference")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "True"


def test_kernel_argument_errors():
    with pytest.raises(KernelError, match="unknown kernel"):
        darknet_rnn.load_network(DATA / "s01_rnn1_default_logistic_cost" / "net.cfg",
                                 kernel="fastest")
