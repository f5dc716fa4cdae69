"""One table, one row per layer type and option mix, checked three ways
through the public Network API:

1. the C core (reference kernel) equals the NumPy twin bit for bit over
   several training datums, Darknet's backward and exact BPTT;
2. the fast kernels agree with the reference kernel to the fast path's
   stated band;
3. with exact=True, the float64 twin's accumulated updates are the true
   gradient: central finite differences of the loss (updates = -dL/dθ for a
   softmax cross-entropy head, -½ dL/dθ for an SSE [cost] head).

A new layer type joins by adding a row (its cfg section, and whether its
forward is smooth enough for finite differences).
"""
import re
from dataclasses import dataclass

import numpy as np
import pytest

import darknet_rnn
from conftest import KERNELS, assert_bitwise, assert_close

# [gru]/[lstm] rows train with Darknet's CPU behaviour too (a one-time note)
pytestmark = pytest.mark.filterwarnings("ignore::darknet_rnn.errors.DarknetTrainingWarning")


@dataclass(frozen=True)
class Row:
    id: str
    sections: str          # the layers under test, cfg text
    fd: bool = True        # smooth: finite differences are meaningful
    streams: int = 3
    steps: int = 4
    inputs: int = 3


ROWS = [
    Row("connected", "[connected]\noutput=5\nactivation=tanh\n"),
    Row("connected-bn", "[connected]\noutput=5\nactivation=logistic\nbatch_normalize=1\n"),
    Row("connected-leaky-lrscale", "[connected]\noutput=4\nactivation=leaky\nlearning_rate=0.5\n",
        fd=False),
    Row("rnn", "[rnn]\noutput=4\nactivation=tanh\n"),
    Row("rnn-logistic-shortcut", "[rnn]\noutput=4\nactivation=logistic\nshortcut=1\n"),
    Row("rnn-bn", "[rnn]\noutput=4\nactivation=tanh\nbatch_normalize=1\n"),
    Row("rnn-stacked", "[rnn]\noutput=5\nactivation=tanh\n[rnn]\noutput=4\nactivation=linear\n"),
    Row("rnn-leaky-bn-shortcut", "[rnn]\noutput=4\nactivation=leaky\nbatch_normalize=1\n"
        "shortcut=1\n", fd=False),
    Row("rnn-one-step", "[rnn]\noutput=3\nactivation=tanh\n", steps=1, streams=2),
    # in place on the previous layer's output and delta; its mask is random, so
    # finite differences of a re-drawn forward mean nothing (tests/test_dropout.py
    # checks the exact gradient with the mask held fixed)
    Row("dropout-between-rnns", "[rnn]\noutput=5\nactivation=tanh\n[dropout]\nprobability=0.4\n"
        "[rnn]\noutput=4\nactivation=logistic\n", fd=False),
    Row("gru-tanh", "[gru]\noutput=4\ntanh=1\n"),
    Row("gru-logistic-bn", "[gru]\noutput=4\nbatch_normalize=1\n"),
    Row("gru-stacked", "[gru]\noutput=5\n[gru]\noutput=4\ntanh=1\n"),
    Row("gru-one-step", "[gru]\noutput=3\ntanh=1\n", steps=1, streams=2),
    Row("lstm", "[lstm]\noutput=4\n"),
    Row("lstm-bn", "[lstm]\noutput=4\nbatch_normalize=1\n"),
    Row("lstm-stacked", "[lstm]\noutput=5\n[lstm]\noutput=3\n"),
    Row("lstm-one-step", "[lstm]\noutput=3\n", steps=1, streams=2),
    Row("rnn-gru-lstm", "[rnn]\noutput=4\nactivation=tanh\n[gru]\noutput=4\n[lstm]\noutput=3\n"),
    Row("rnn-bidirectional", "[rnn]\noutput=3\nactivation=tanh\nbidirectional=1\n"),
    Row("rnn-bidirectional-stacked-bn-shortcut", "[rnn]\noutput=3\nactivation=logistic\n"
        "batch_normalize=1\nshortcut=1\nbidirectional=1\n[rnn]\noutput=2\nactivation=tanh\n"
        "bidirectional=1\n[rnn]\noutput=3\nactivation=tanh\n"),
]
HEADS = {"softmax": "[connected]\noutput=3\nactivation=linear\n[softmax]\n",
         "cost": "[connected]\noutput=3\nactivation=linear\n[cost]\ntype=sse\n"}
# updates = -FACTOR * dL/dθ (Darknet's deltas: softmax t - p, sse truth - prediction)
FACTOR = {"softmax": 1.0, "cost": 0.5}


def cfg_text(row, head, lr=0.1):
    return (f"[net]\nbatch={row.streams}\nsubdivisions=1\ntime_steps={row.steps}\n"
            f"inputs={row.inputs}\nlearning_rate={lr}\nmomentum=0.9\ndecay=0.001\n"
            f"max_batches=100\n" + row.sections + HEADS[head])


def load(tmp_path, row, head, **kw):
    p = tmp_path / f"{row.id}-{head}.cfg"
    p.write_text(cfg_text(row, head, kw.pop("lr", 0.1)))
    return darknet_rnn.load_network(p, seed=7, **kw)


def data(net, head, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((net.time_steps, net.streams, net.inputs))
    if head == "softmax":
        y = np.eye(net.outputs)[rng.integers(0, net.outputs, (net.time_steps, net.streams))]
    else:
        y = rng.uniform(-1, 1, (net.time_steps, net.streams, net.outputs))
    return x, y


ids = [r.id for r in ROWS]


@pytest.mark.parametrize("head", sorted(HEADS))
@pytest.mark.parametrize("exact", [False, True], ids=["darknet", "exact"])
@pytest.mark.parametrize("row", ROWS, ids=ids)
def test_native_equals_twin(tmp_path, row, head, exact):
    nets = {"native": load(tmp_path, row, head, exact=exact, kernel="reference"),
            "reference": load(tmp_path, row, head, exact=exact, backend="reference")}
    for datum in range(3):
        x, y = data(nets["native"], head, datum)
        losses = {k: n.train(x, y) for k, n in nets.items()}
        assert_bitwise(losses["native"], losses["reference"], f"datum {datum} loss")
        assert np.isfinite(losses["native"])
        assert_bitwise(nets["native"].output, nets["reference"].output, f"datum {datum} output")
    pn, pr = nets["native"].params(), nets["reference"].params()
    assert [p.name for p in pn] == [p.name for p in pr]
    for a, b in zip(pn, pr):
        assert_bitwise(a.value, b.value, a.name)
        assert_bitwise(a.grad, b.grad, a.name + " update buffer")
    # training moved every parameter away from Darknet's initialisation
    fresh = load(tmp_path, row, head, exact=exact, kernel="reference").params()
    moved = [p.name for p, f in zip(pn, fresh) if not np.array_equal(p.value, f.value)]
    assert [p.name for p in pn if p.name.endswith("weights")] == \
        [n for n in moved if n.endswith("weights")]


FAST = [k for k in KERNELS if k != "reference"]


@pytest.mark.skipif(not FAST, reason="no fast kernel on this CPU")  # portable is always built
@pytest.mark.parametrize("row", ROWS, ids=ids)
def test_fast_kernels_within_band(tmp_path, row):
    ref = load(tmp_path, row, "softmax", kernel="reference")
    for k in FAST:
        fast = load(tmp_path, row, "softmax", kernel=k)
        x, y = data(ref, "softmax", 0)
        lr, lf = ref.train(x, y), fast.train(x, y)
        assert abs(lr - lf) <= 1e-4 * abs(lr) + 1e-5, (k, lr, lf)
        for a, b in zip(fast.params(), ref.params()):
            assert_close(a.value, b.value, f"{k}: {a.name}", rtol=1e-4, atol=1e-5)
        ref = load(tmp_path, row, "softmax", kernel="reference")


H_STEP = 1e-6


@pytest.mark.parametrize("head", sorted(HEADS))
@pytest.mark.parametrize("row", [r for r in ROWS if r.fd], ids=[r.id for r in ROWS if r.fd])
def test_exact_gradients_match_finite_differences(tmp_path, row, head):
    net = load(tmp_path, row, head, exact=True, backend="reference", dtype=np.float64)
    assert all(p.value.dtype == np.float64 for p in net.params())
    x, y = data(net, head, 11)
    # [gru]/[lstm] carry their state from datum to datum: every evaluation
    # starts from the state the gradient was taken at
    start = [a.copy() for a in net.state_arrays()]

    def loss():
        for a, s in zip(net.state_arrays(), start):
            a[...] = s
        return net.forward(x, y, train=True)

    net.forward_backward(x, y)
    rng = np.random.default_rng(3)
    worst = 0.0
    for p in net.params():
        flat, grad = p.value.reshape(-1), p.grad.reshape(-1).copy()
        picks = rng.choice(flat.size, size=min(flat.size, 6), replace=False)
        fd = np.empty(len(picks))
        for j, i in enumerate(picks):
            keep = flat[i]
            flat[i] = keep + H_STEP
            up = loss()
            flat[i] = keep - H_STEP
            down = loss()
            flat[i] = keep
            fd[j] = (up - down) / (2 * H_STEP)
        want = -FACTOR[head] * fd
        err = np.linalg.norm(grad[picks] - want) / max(np.linalg.norm(want), 1e-2)
        worst = max(worst, err)
        assert err < 1e-6, f"{row.id}/{head} {p.name}: relative error {err:.3g}"
    print(f"{row.id}/{head}: worst relative error {worst:.2g}")


def test_float64_needs_the_reference_backend(tmp_path):
    with pytest.raises(ValueError, match="backend='reference'"):
        load(tmp_path, ROWS[0], "softmax", dtype=np.float64)


def test_registry_covers_every_section_the_cfg_reader_accepts():
    from darknet_rnn.cfg import LAYER_TYPES
    from darknet_rnn.registry import REGISTRY
    assert set(LAYER_TYPES.values()) == set(REGISTRY)
    tested = {m for r in ROWS for m in re.findall(r"^\[[a-z]+\]", r.sections, re.M)}
    tested |= {"[softmax]", "[cost]", "[connected]"}
    assert {LAYER_TYPES[s] for s in tested} == set(REGISTRY), "a layer type has no table row"
