"""Golden fixtures from the real Darknet (tests/data, copied from
../shared/goldens): training losses, outputs, weights after the first and the
last datum, and stateful predictions must be bitwise equal on the reference
path - for the C core with DARKNET_RNN_KERNEL=reference and for the NumPy
reference twin. The degenerate case (BN with one stream) must raise by
default and reproduce Darknet's NaNs when strict=False."""
import json
import warnings

import numpy as np
import pytest

import darknet_rnn
from darknet_rnn.errors import CfgError
from conftest import DATA, assert_bitwise, describe_mismatch, golden_cases

CASES = golden_cases()
BACKENDS = ["native", "reference"]


def meta(case):
    return json.loads((DATA / case / "meta.json").read_text())


def load(case, cfg, weights, backend, strict=True):
    kw = {"kernel": "reference"} if backend == "native" else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return darknet_rnn.load_network(DATA / case / cfg, DATA / case / weights,
                                        backend=backend, strict=strict, **kw)


def assert_same_file(path, expected_path):
    got = path.read_bytes()
    want = expected_path.read_bytes()
    if got == want:
        return
    assert len(got) == len(want), f"{expected_path.name}: size {len(got)} != {len(want)}"
    a = np.frombuffer(got[24:], dtype=np.float32)
    b = np.frombuffer(want[24:], dtype=np.float32)
    assert got[:24] == want[:24], f"{expected_path.name}: header differs"
    # Identical values with different NaN payloads would still be Darknet's numbers.
    assert np.array_equal(a, b, equal_nan=True), \
        f"{expected_path.name}: {describe_mismatch(a, b)}"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CASES)
def test_training_matches_darknet(case, backend, tmp_path):
    m = meta(case)
    d = np.load(DATA / case / "data.npz")
    strict = not m["degenerate"]
    net = load(case, "net.cfg", "before.weights", backend, strict=strict)
    assert net.seen == 0
    for i in range(m["N"]):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loss = net.train(d["x"][i], d["y"][i])
        assert_bitwise(np.float32(loss), d["loss"][i], f"{case} loss[{i}]")
        assert_bitwise(net.output, d["output"][i], f"{case} output[{i}]")
        assert_bitwise(np.float32(net.current_rate()), d["rate"][i], f"{case} rate[{i}]")
        if i == 0:
            net.save_weights(tmp_path / "after_1.weights")
            assert_same_file(tmp_path / "after_1.weights", DATA / case / "after_1.weights")
    net.save_weights(tmp_path / "after.weights")
    assert_same_file(tmp_path / "after.weights", DATA / case / "after.weights")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CASES)
def test_stateful_prediction_matches_darknet(case, backend):
    d = np.load(DATA / case / "data.npz")
    net = load(case, "infer.cfg", "after.weights", backend, strict=False)
    for k, row in enumerate(d["predict_x"]):
        out = net.predict(row)
        assert_bitwise(out, d["predict_out"][k], f"{case} predict_out[{k}]")


def test_degenerate_batchnorm_refuses_to_train():
    case = "s11_degenerate_bn_stream1"
    d = np.load(DATA / case / "data.npz")
    net = load(case, "net.cfg", "before.weights", "native")
    with pytest.raises(CfgError) as exc:
        net.train(d["x"][0], d["y"][0])
    msg = str(exc.value)
    assert "net.cfg" in msg and "[rnn]" in msg and "1 stream" in msg
    assert net.seen == 0          # refused before touching anything


@pytest.mark.parametrize("case", CASES)
def test_weights_round_trip_byte_for_byte(case, tmp_path):
    for name in ("before", "after_1", "after", "init"):
        src = DATA / case / f"{name}.weights"
        if not src.exists():
            continue
        # the degenerate case's weights hold Darknet's NaNs: loaded as Darknet does
        net = load(case, "net.cfg", src.name, "native", strict=not meta(case)["degenerate"])
        net.save_weights(tmp_path / src.name)
        assert (tmp_path / src.name).read_bytes() == src.read_bytes(), f"{case}/{src.name}"
