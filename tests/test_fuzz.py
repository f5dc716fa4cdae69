"""Property-based fuzzing of the cfg reader and the weights loader, and a
replay of the checked-in corpus of past failures (tests/data/fuzz).

Properties (hypothesis, derandomized, a fixed number of examples, so every
run tries the same inputs and the time is bounded):
* any cfg text either parses or raises CfgError; a parsed network either
  builds, runs forward and trains one datum, or raises a DarknetError
  (never another exception, a hang or a crash);
* any bytes as a weights file either load (all values finite) or raise
  WeightsError with the network untouched.

DARKNET_RNN_FUZZ_EXAMPLES scales the number of examples (tests/fuzz_report.py
runs bigger campaigns and counts the outcomes).
"""
import json
import os
import pathlib
import struct
import warnings

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

import darknet_rnn  # noqa: E402
from darknet_rnn.cfg import parse_cfg_text  # noqa: E402
from darknet_rnn.cfgcheck import ENV_MAX_BYTES  # noqa: E402
from darknet_rnn.errors import DarknetError, WeightsError  # noqa: E402
from darknet_rnn.network import Network  # noqa: E402

CORPUS = pathlib.Path(__file__).parent / "data" / "fuzz"
EXAMPLES = int(os.environ.get("DARKNET_RNN_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck), print_blob=True)

# --------------------------------------------------------------------------
# cfg text

SECTIONS = ["[net]", "[network]", "[rnn]", "[connected]", "[conn]", "[softmax]", "[soft]",
            "[cost]", "[RNN]", "[gru]", "[", "[]", "[net", "net]"]
KEYS = ["batch", "subdivisions", "time_steps", "inputs", "height", "width", "channels",
        "learning_rate", "momentum", "decay", "policy", "steps", "scales", "step", "scale",
        "gamma", "power", "max_batches", "burn_in", "adam", "B1", "B2", "eps", "clip",
        "output", "activation", "batch_normalize", "shortcut", "groups", "temperature",
        "noloss", "type", "dontload", "dontsave", "stopbackward", "hidden", "logistic",
        "tree", "spatial", "smooth", "truth", "onlyforward", "numload", "dontloadscales",
        "bogus", "", "=", "ÿ"]
NUMBERS = ["0", "1", "2", "3", "-1", "7", "16", "-0", "2147483647", "2147483648",
           "-2147483649", "4294967297", "9" * 30, "9" * 5000, "0" * 50 + "3", "nan", "-nan",
           "inf", "-inf", "1e999", "1e-45", "0x1p3", ".5", "1.", "3abc", "+4", " 5", "1e38",
           "0.1,0.2", "5,nan", "1,2,3,4"]
WORDS = ["leaky", "linear", "logistic", "tanh", "relu", "selu", "Leaky", "sse", "masked",
         "constant", "steps", "step", "exp", "poly", "sigmoid", "random", "L1", "wgan", "",
         "é", "\x00", "a" * 300]

value = st.one_of(st.sampled_from(NUMBERS), st.sampled_from(WORDS),
                  st.integers(-5, 40).map(str),
                  st.floats(allow_nan=True, allow_infinity=True).map(repr),
                  st.text(max_size=12))
option = st.one_of(st.tuples(st.sampled_from(KEYS), value).map(lambda kv: f"{kv[0]}={kv[1]}"),
                   st.sampled_from(KEYS), st.sampled_from(["#c", ";c", "", "  ", "\r"]))
section = st.tuples(st.sampled_from(SECTIONS), st.lists(option, max_size=8)).map(
    lambda s: "\n".join([s[0], *s[1]]))
# a [net] section most of the time, with sizes that can build
net_head = st.tuples(st.integers(1, 6), st.integers(1, 4), st.integers(1, 300)).map(
    lambda t: f"[net]\nbatch={t[0]}\ntime_steps={t[1]}\ninputs={t[2]}")
cfg_text = st.tuples(st.one_of(net_head, section), st.lists(section, max_size=6),
                     st.sampled_from(["\n", "\r\n"])).map(
    lambda t: t[2].join([t[0], *t[1]]) + t[2])


# a valid char-RNN-like cfg whose values are replaced, now and then, by hostile ones
TEMPLATE = [("[net]", [("batch", "4"), ("subdivisions", "1"), ("time_steps", "3"),
                       ("inputs", "6"), ("learning_rate", "0.1"), ("momentum", "0.9"),
                       ("decay", "0.001"), ("max_batches", "10"), ("policy", "steps"),
                       ("steps", "3,6"), ("scales", ".1,.1"), ("burn_in", "0"),
                       ("adam", "0"), ("B1", ".9"), ("eps", "1e-7")]),
            ("[rnn]", [("output", "5"), ("activation", "leaky"), ("batch_normalize", "1"),
                       ("shortcut", "0")]),
            ("[connected]", [("output", "6"), ("activation", "linear")]),
            ("[softmax]", [("groups", "1"), ("temperature", "1")]),
            ("[cost]", [("type", "sse"), ("scale", "1")])]


@st.composite
def cfg_mutated(draw):
    lines = []
    for header, opts in TEMPLATE:
        if header != "[net]" and draw(st.integers(0, 9)) == 0:
            continue                                    # drop a layer
        lines.append(header)
        for key, val in opts:
            r = draw(st.integers(0, 11))
            if r == 0:
                continue                                # drop the key
            if r == 1:
                val = draw(value)                       # anything
            elif r == 2:
                val = draw(st.sampled_from(NUMBERS))    # a hostile number
            lines.append(f"{key}={val}")
    return "\n".join(lines) + "\n"


def run_cfg(text, strict=True):
    """Parse, build, run forward and train one datum. Returns the stage
    reached ('parse', 'build', 'forward', 'train') and the exception (None
    when everything ran). Only DarknetError may escape each stage. With
    strict=False (Darknet's behaviour: hostile values reach the C core, NaN
    and all) the same holds."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            spec = parse_cfg_text(text, path="fuzz.cfg", strict=strict)
        except DarknetError as e:
            return "parse", e
        try:
            net = Network(spec, seed=1, strict=strict)
        except DarknetError as e:
            return "build", e
        x = np.zeros((net.time_steps, net.streams, net.inputs), np.float32)
        x[..., 0] = 1
        y = np.zeros((net.time_steps, net.streams, net.outputs), np.float32)
        y[..., 0] = 1
        try:
            net.forward(x)
        except DarknetError as e:
            return "forward", e
        try:
            net.train(x, y)
        except DarknetError as e:
            return "train", e
    return "train", None


@pytest.fixture(autouse=True)
def _small_memory(monkeypatch):
    monkeypatch.setenv(ENV_MAX_BYTES, str(64 << 20))


@FUZZ
@given(cfg_text)
def test_fuzz_cfg_text(text):
    run_cfg(text)          # anything but a DarknetError fails the test


@FUZZ
@given(cfg_mutated())
def test_fuzz_cfg_values(text):
    run_cfg(text)
    run_cfg(text, strict=False)


@FUZZ
@given(st.binary(max_size=400))
def test_fuzz_cfg_bytes(data):
    run_cfg(data)


# --------------------------------------------------------------------------
# weights files

WEIGHTS_CFG = "[net]\nbatch=2\ntime_steps=2\ninputs=5\n[rnn]\noutput=3\nbatch_normalize=1\n" \
              "[connected]\noutput=4\n[softmax]\n"


def _snapshot(net):
    return [a.copy() for e in net._entries() for b in e.blocks
            for a in (b.weights, b.biases, getattr(b, "scales", None)) if a is not None]


@pytest.fixture(scope="module")
def weights_net(tmp_path_factory):
    d = tmp_path_factory.mktemp("wfuzz")
    cfg = d / "net.cfg"
    cfg.write_text(WEIGHTS_CFG)
    net = darknet_rnn.load_network(cfg, seed=1)
    good = d / "good.weights"
    net.save_weights(good)
    return net, good.read_bytes(), d


def _mutate(good, ops):
    data = bytearray(good)
    for kind, pos, val in ops:
        if kind == "flip" and data:
            data[pos % len(data)] = val
        elif kind == "truncate":
            del data[pos % (len(data) + 1):]
        elif kind == "append":
            data += bytes([val]) * (pos % 64)
        elif kind == "float" and len(data) > 24:
            k = 20 + 4 * ((pos % (len(data) - 20)) // 4)
            data[k:k + 4] = struct.pack("<f", [np.nan, np.inf, -np.inf, 1e38, -0.0][val % 5])
        elif kind == "header":
            data[:12] = struct.pack("<iii", *[[0, 2, 0], [0, 1, 0], [1, 0, 0], [2000, 0, 0],
                                              [0, 2000, 0], [-1, -1, -1]][val % 6])
    return bytes(data)


ops = st.lists(st.tuples(st.sampled_from(["flip", "truncate", "append", "float", "header"]),
                         st.integers(0, 10**6), st.integers(0, 255)), max_size=4)


def load_bytes(net, data, d, name="f.weights", **kw):
    p = d / name
    p.write_bytes(data)
    before = _snapshot(net)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            net.load_weights(p, **kw)
    except WeightsError as e:
        after = _snapshot(net)
        assert all(np.array_equal(a, b, equal_nan=True) for a, b in zip(before, after)), \
            "a refused file changed the network"
        return e
    if kw.get("strict", True) and not kw.get("allow_nonfinite"):
        assert all(np.isfinite(a).all() for a in _snapshot(net))
    return None


@FUZZ
@given(ops)
def test_fuzz_weights_mutations(weights_net, ops):
    net, good, d = weights_net
    load_bytes(net, _mutate(good, ops), d)
    load_bytes(net, _mutate(good, ops), d, strict=False)
    load_bytes(net, good, d)            # and the good file still loads


@FUZZ
@given(st.binary(max_size=300))
def test_fuzz_weights_random_bytes(weights_net, data):
    net, _, d = weights_net
    load_bytes(net, data, d)
    load_bytes(net, data, d, strict=False)


# --------------------------------------------------------------------------
# the corpus of past failures

def _corpus(kind):
    manifest = json.loads((CORPUS / kind / "expected.json").read_text())
    return sorted(manifest.items())


@pytest.mark.parametrize("name,want", _corpus("cfg"))
def test_corpus_cfg(name, want):
    """Each cfg that once crashed, hung or misbehaved silently now ends the
    way the manifest says: the stage and exception, and the message names
    the place at fault."""
    text = (CORPUS / "cfg" / name).read_bytes()
    stage, err = run_cfg(text)
    got = "ok" if err is None else type(err).__name__
    assert (stage, got) == (want["stage"], want["error"]), f"{name}: {err}"
    if err is not None:
        import re
        assert re.search(want["match"], str(err)), f"{name}: {err}"


@pytest.mark.parametrize("name,want", _corpus("weights"))
def test_corpus_weights(name, want, tmp_path):
    cfg = tmp_path / "net.cfg"
    cfg.write_text(WEIGHTS_CFG)
    net = darknet_rnn.load_network(cfg, seed=1)
    err = load_bytes(net, (CORPUS / "weights" / name).read_bytes(), tmp_path,
                     strict=want.get("strict", True))
    got = "ok" if err is None else type(err).__name__
    assert got == want["error"], f"{name}: {err}"
    if err is not None:
        import re
        assert re.search(want["match"], str(err)), f"{name}: {err}"
