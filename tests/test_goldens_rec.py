"""[gru]/[lstm] golden fixtures from the real Darknet (tests/data/rec, copied
from ../shared/goldens_rec; its README states the CPU semantics they pin
down). On the reference path - the C core with the reference kernel and the
NumPy twin - training losses, outputs, rates, the weights after the first and
the last datum, and stateful predictions are bitwise Darknet's; load/save
reproduces every .weights file byte for byte; a seed reproduces Darknet's
initialisation (rand() order uz, wz, ur, wr, uh, wh / uf, ui, ug, uo, wf, wi,
wg, wo) and, for the batch-norm cases, the two warm-up datums give
before.weights. The fast kernels agree within the band of tests/test_fast_path.py.
"""
import json
import warnings

import numpy as np
import pytest

import darknet_rnn
from darknet_rnn._ffi import available_kernels
from conftest import DATA, assert_bitwise, assert_close, describe_mismatch

REC = DATA / "rec"
INDEX = json.loads((REC / "index.json").read_text())
CASES = [c["case"] for c in INDEX]
BN_CASES = [c["case"] for c in INDEX if c["batch_normalize"]]
BACKENDS = ["native", "reference"]
FAST = [k for k in available_kernels() if k != "reference"]


def meta(case):
    return json.loads((REC / case / "meta.json").read_text())


def load(case, cfg, weights=None, backend="native", kernel="reference", **kw):
    kw.update({"kernel": kernel} if backend == "native" else {"backend": backend})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return darknet_rnn.load_network(REC / case / cfg,
                                        None if weights is None else REC / case / weights, **kw)


def train(net, x, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")      # the Darknet-behaviour note, checked elsewhere
        return net.train(x, y)


def assert_same_file(path, expected_path):
    got, want = path.read_bytes(), expected_path.read_bytes()
    if got == want:
        return
    assert len(got) == len(want), f"{expected_path.name}: size {len(got)} != {len(want)}"
    assert got[:20] == want[:20], f"{expected_path.name}: header differs"
    a = np.frombuffer(got[20:], dtype=np.float32)
    b = np.frombuffer(want[20:], dtype=np.float32)
    assert np.array_equal(a, b, equal_nan=True), f"{expected_path.name}: {describe_mismatch(a, b)}"


def test_index_lists_every_case_folder():
    folders = sorted(p.name for p in REC.iterdir() if p.is_dir())
    assert folders == sorted(CASES) and len(CASES) == 12


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CASES)
def test_training_matches_darknet(case, backend, tmp_path):
    m = meta(case)
    d = np.load(REC / case / "data.npz")
    net = load(case, "net.cfg", "before.weights", backend)
    assert net.seen == 0
    for i in range(m["N"]):
        loss = train(net, d["x"][i], d["y"][i])
        assert_bitwise(np.float32(loss), d["loss"][i], f"{case} loss[{i}]")
        assert_bitwise(net.output, d["output"][i], f"{case} output[{i}]")
        assert_bitwise(np.float32(net.current_rate()), d["rate"][i], f"{case} rate[{i}]")
        if i == 0:
            net.save_weights(tmp_path / "after_1.weights")
            assert_same_file(tmp_path / "after_1.weights", REC / case / "after_1.weights")
    net.save_weights(tmp_path / "after.weights")
    assert_same_file(tmp_path / "after.weights", REC / case / "after.weights")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CASES)
def test_stateful_prediction_matches_darknet(case, backend):
    d = np.load(REC / case / "data.npz")
    net = load(case, "infer.cfg", "after.weights", backend)
    for k, row in enumerate(d["predict_x"]):
        assert_bitwise(net.predict(row), d["predict_out"][k], f"{case} predict_out[{k}]")


@pytest.mark.parametrize("case", CASES)
def test_weights_round_trip_byte_for_byte(case, tmp_path):
    for name in ("init", "before", "after_1", "after"):
        src = REC / case / f"{name}.weights"
        if not src.exists():
            continue
        for cfg in ("net.cfg", "infer.cfg"):
            net = load(case, cfg, src.name)
            net.save_weights(tmp_path / src.name)
            assert (tmp_path / src.name).read_bytes() == src.read_bytes(), f"{case}/{cfg}/{name}"


@pytest.mark.parametrize("case", CASES)
def test_seed_reproduces_darknet_initialisation(case, tmp_path):
    m = meta(case)
    net = load(case, "net.cfg", seed=m["seed"])
    net.save_weights(tmp_path / "init.weights")
    ref = "init.weights" if m["warmup_iterations"] else "before.weights"
    assert_same_file(tmp_path / "init.weights", REC / case / ref)


def test_weights_layout_matches_meta(tmp_path):
    """Every block at the float offset meta.json gives (independent of the
    fixture values): fill each block's biases with its index and look."""
    for case in CASES:
        m = meta(case)
        net = load(case, "net.cfg")
        blocks = [(b, p) for b in m["weights_layout"] for p in net.params()
                  if p.name == f"layer {b['layer']} [{b['type']}] "
                  + ("" if b["type"] == "connected" else b["block"] + ".") + "biases"]
        assert len(blocks) == len(m["weights_layout"]), case
        for k, (_, p) in enumerate(blocks):
            p.value[...] = k + 1
        net.save_weights(tmp_path / "w")
        payload = np.fromfile(tmp_path / "w", dtype=np.float32)[5:]
        assert payload.size == m["weights_floats_per_file"], case
        for k, (b, _) in enumerate(blocks):
            got = payload[b["float_offset"]:b["float_offset"] + b["outputs"]]
            assert np.all(got == k + 1), (case, b["block"], b["float_offset"])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", BN_CASES)
def test_warmup_from_init_gives_before_weights(case, backend, tmp_path):
    m = meta(case)
    d = np.load(REC / case / "data.npz")
    net = load(case, "net.cfg", "init.weights", backend)
    for i in range(m["warmup_iterations"]):
        train(net, d["warmup_x"][i], d["warmup_y"][i])
    net.seen = 0
    net.save_weights(tmp_path / "before.weights")
    assert_same_file(tmp_path / "before.weights", REC / case / "before.weights")


def _payload(path):
    return np.frombuffer(path.read_bytes()[20:], dtype=np.float32)


@pytest.mark.skipif(not FAST, reason="no fast kernel on this CPU")
@pytest.mark.parametrize("kernel", FAST)
@pytest.mark.parametrize("case", CASES)
def test_fast_kernels_within_band(case, kernel, tmp_path):
    """The fast path (GEMMs batched over the steps, blocked kernels) only
    changes float summation order: without batch norm every datum agrees
    with Darknet to |a-b| <= 1e-6 + 1e-5|b|; with batch norm the first datum
    to 1e-5 + 1e-4|b| (as for [rnn], tests/test_fast_path.py)."""
    m = meta(case)
    d = np.load(REC / case / "data.npz")
    bn = m["batch_normalize"]
    tol = dict(rtol=1e-4, atol=1e-5) if bn else dict(rtol=1e-5, atol=1e-6)
    n = 1 if bn else m["N"]
    net = load(case, "net.cfg", "before.weights", kernel=kernel)
    for i in range(n):
        loss = train(net, d["x"][i], d["y"][i])
        assert_close(loss, d["loss"][i], f"{case}/{kernel} loss[{i}]", **tol)
        assert_close(net.output, d["output"][i], f"{case}/{kernel} output[{i}]", **tol)
    net.save_weights(tmp_path / "w")
    ref = "after_1.weights" if n == 1 else "after.weights"
    assert_close(_payload(tmp_path / "w"), _payload(REC / case / ref), f"{case}/{kernel} {ref}",
                 **tol)
    inf = load(case, "infer.cfg", "after.weights", kernel=kernel)
    out = np.array([inf.predict(r) for r in d["predict_x"]])
    assert_close(out, d["predict_out"], f"{case}/{kernel} predict_out", **tol)


@pytest.mark.parametrize("case", CASES)
def test_reset_state_restarts_prediction(case):
    """Prediction carries the state from call to call; reset_state() zeroes
    it (Darknet has no CPU reset), so the first prediction comes back."""
    d = np.load(REC / case / "data.npz")
    net = load(case, "infer.cfg", "after.weights")
    first = net.predict(d["predict_x"][0])
    again = net.predict(d["predict_x"][0])
    assert not np.array_equal(first, again), "the state did not carry"
    net.reset_state()
    assert_bitwise(net.predict(d["predict_x"][0]), first, f"{case}: after reset_state")
