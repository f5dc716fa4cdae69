""".weights I/O (SPEC section 13) and Darknet's initialisation (SPEC section 3)
on the golden fixtures, with stand-in parameter blocks."""
import json
import os
import pathlib
import stat
import struct
import warnings
from dataclasses import dataclass
from typing import Optional

import numpy as np
import pytest

import darknet_rnn.weights as W
from darknet_rnn._rand import GlibcRandom
from darknet_rnn.cfg import parse_cfg, parse_cfg_text
from darknet_rnn.registry import layer_type
from darknet_rnn.errors import WeightsError
from darknet_rnn.weights import (WeightsHeader, WeightsWarning, entry_for_layer,
                                 expected_size, init_weights, load_weights, read_header,
                                 save_weights)

DATA = pathlib.Path(__file__).parent / "data"
CASES = sorted(p.name for p in DATA.iterdir() if (p / "meta.json").exists())


@dataclass
class Block:
    inputs: int
    outputs: int
    batch_normalize: bool
    biases: np.ndarray
    weights: np.ndarray
    scales: Optional[np.ndarray] = None
    rolling_mean: Optional[np.ndarray] = None
    rolling_variance: Optional[np.ndarray] = None

    @classmethod
    def make(cls, inputs, outputs, bn, fill=None):
        def arr(*shape):
            a = np.zeros(shape, np.float32)
            if fill is not None:
                a[...] = fill
            return a
        b = cls(inputs, outputs, bn, arr(outputs), arr(outputs, inputs))
        if bn:
            b.scales, b.rolling_mean, b.rolling_variance = arr(outputs), arr(outputs), arr(outputs)
        return b


def build_entries(spec, fill=None):
    entries = []
    for l in spec.layers:
        if l.type == "rnn":
            blocks = [Block.make(l.inputs, l.outputs, l.batch_normalize, fill),
                      Block.make(l.outputs, l.outputs, l.batch_normalize, fill),
                      Block.make(l.outputs, l.outputs, l.batch_normalize, fill)]
        elif l.type == "connected":
            blocks = [Block.make(l.inputs, l.outputs, l.batch_normalize, fill)]
        else:
            continue
        entries.append(layer_type(l.type).entry(l, blocks))   # the type's flag rules
    return entries


def param_bytes(entries, with_bn=True):
    """Concatenated bytes of all arrays, in file order."""
    out = []
    for e in entries:
        for b in e.blocks:
            out.append(b.biases.tobytes())
            out.append(np.ascontiguousarray(b.weights).tobytes())
            if b.batch_normalize and with_bn:
                out += [b.scales.tobytes(), b.rolling_mean.tobytes(),
                        b.rolling_variance.tobytes()]
    return b"".join(out)


def spec_of(case):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return parse_cfg(DATA / case / "net.cfg")


def weight_files(case):
    return sorted((DATA / case).glob("*.weights"))


ALL_FILES = [(c, f.name) for c in CASES for f in weight_files(c)]


def sentinel(entries):
    """Fill every array with distinct values; return a snapshot."""
    k = 0
    for e in entries:
        for b in e.blocks:
            for name in ("biases", "weights", "scales", "rolling_mean", "rolling_variance"):
                a = getattr(b, name)
                if a is not None:
                    a[...] = (np.arange(a.size, dtype=np.float32) + k).reshape(a.shape) * 0.5 - 7
                    k += a.size
    return param_bytes(entries)


# --------------------------------------------------------------------------
# golden round trips

@pytest.mark.parametrize("case,fname", ALL_FILES)
def test_load_save_roundtrip_byte_identical(case, fname, tmp_path):
    src = DATA / case / fname
    meta = json.loads((DATA / case / "meta.json").read_text())
    entries = build_entries(spec_of(case))
    assert expected_size(entries) == src.stat().st_size
    h = load_weights(src, entries, allow_nonfinite=meta["degenerate"])   # Darknet's NaNs
    assert isinstance(h, WeightsHeader)
    hm = meta["weights_headers"][fname[:-len(".weights")]]
    assert (h.major, h.minor, h.revision, h.seen) == (hm["major"], hm["minor"],
                                                      hm["revision"], hm["seen"])
    assert h.size == 20 and h.transpose is False
    raw = src.read_bytes()
    assert param_bytes(entries) == raw[20:]
    out = tmp_path / "out.weights"
    save_weights(out, entries, h.seen)
    assert out.read_bytes() == raw
    assert sorted(os.listdir(tmp_path)) == ["out.weights"]


@pytest.mark.parametrize("case", CASES)
def test_read_header_matches_meta(case):
    meta = json.loads((DATA / case / "meta.json").read_text())
    for f in weight_files(case):
        hm = meta["weights_headers"][f.stem]
        with open(f, "rb") as fh:
            h = read_header(fh)
            assert fh.tell() == 20
        assert (h.major, h.minor, h.revision, h.seen, h.size) == (
            hm["major"], hm["minor"], hm["revision"], hm["seen"], 20)
        assert read_header(f) == h


def test_nonfinite_values_are_refused_by_default_and_load_on_request():
    case = "s11_degenerate_bn_stream1"
    entries = build_entries(spec_of(case))
    before = param_bytes(entries)
    with pytest.raises(WeightsError, match=r"after\.weights: holds nan at byte offset 20 "
                       r"\(layer 0 \[rnn\] block 0 biases\[0\]\).*allow_nonfinite=True"):
        load_weights(DATA / case / "after.weights", entries)
    assert param_bytes(entries) == before          # nothing was touched
    load_weights(DATA / case / "after.weights", entries, allow_nonfinite=True)
    vals = np.frombuffer(param_bytes(entries), np.float32)
    meta = json.loads((DATA / case / "meta.json").read_text())
    assert int(np.sum(~np.isfinite(vals))) == meta["nonfinite_counts"]["after.weights"]


# --------------------------------------------------------------------------
# initialisation

@pytest.mark.parametrize("case", CASES)
def test_init_reproduces_darknet(case, tmp_path):
    meta = json.loads((DATA / case / "meta.json").read_text())
    ref = DATA / case / ("before.weights" if meta["warmup_iterations"] == 0 else "init.weights")
    entries = build_entries(spec_of(case), fill=3.0)
    init_weights(entries, GlibcRandom(meta["seed"]))
    assert param_bytes(entries) == ref.read_bytes()[20:]


def test_init_values():
    spec = parse_cfg_text("[net]\ninputs=3\n[connected]\noutput=2\nbatch_normalize=1\n")
    entries = build_entries(spec, fill=9.0)
    init_weights(entries, GlibcRandom(12345))
    b = entries[0].blocks[0]
    g = GlibcRandom(12345)
    scale = np.float32(np.sqrt(2.0 / 3))
    exp = np.array([scale * g.rand_uniform(-1, 1) for _ in range(6)], np.float32).reshape(2, 3)
    assert np.array_equal(b.weights.view(np.uint32), exp.view(np.uint32))
    assert (b.biases == 0).all() and (b.scales == 1).all()
    assert (b.rolling_mean == 0).all() and (b.rolling_variance == 0).all()


# --------------------------------------------------------------------------
# strict size checks

CASE = "s04_rnn1_leaky_bn_conn_cost"       # has BN and a connected layer


def _strict_failure(data, tmp_path, *needles):
    p = tmp_path / "bad.weights"
    p.write_bytes(data)
    entries = build_entries(spec_of(CASE))
    snap = sentinel(entries)
    exp = expected_size(entries)
    with pytest.raises(WeightsError) as ei:
        load_weights(p, entries)
    msg = str(ei.value)
    assert isinstance(ei.value, ValueError)
    assert str(p) in msg
    assert str(exp) in msg and str(len(data)) in msg
    for n in needles:
        assert n in msg, msg
    assert param_bytes(entries) == snap          # untouched
    return msg


def test_short_file_strict(tmp_path):
    raw = (DATA / CASE / "after.weights").read_bytes()
    _strict_failure(raw[:-10], tmp_path, "short")


def test_long_file_strict(tmp_path):
    raw = (DATA / CASE / "after.weights").read_bytes()
    _strict_failure(raw + b"\0\0\0\0", tmp_path, "long")


def test_lfs_pointer(tmp_path):
    data = (b"version https://git-lfs.github.com/spec/v1\n"
            b"oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
            b"size 1232\n")
    _strict_failure(data, tmp_path, "Git LFS")


@pytest.mark.parametrize("data", [
    b"<!DOCTYPE html>\n<html><head><title>404</title></head></html>\n",
    b"\n  <html><body>Not Found</body></html>",
    b"<HTML>" + b"x" * 5000,
])
def test_html_page(data, tmp_path):
    _strict_failure(data, tmp_path, "HTML")


def test_file_shorter_than_header(tmp_path):
    _strict_failure(b"\0" * 10, tmp_path)
    p = tmp_path / "bad.weights"
    entries = build_entries(spec_of(CASE))
    with pytest.raises(WeightsError):
        load_weights(p, entries, strict=False)


def test_missing_file(tmp_path):
    p = tmp_path / "nope.weights"
    with pytest.raises(FileNotFoundError, match="nope.weights"):
        load_weights(p, build_entries(spec_of(CASE)))


def test_wrong_array_size_rejected_before_loading():
    entries = build_entries(spec_of(CASE))
    snap = sentinel(entries)
    entries[-1].blocks[0].biases = np.zeros(99, np.float32)
    with pytest.raises(ValueError):
        load_weights(DATA / CASE / "after.weights", entries)
    entries[-1].blocks[0].biases = np.zeros(entries[-1].blocks[0].outputs, np.float32)
    assert param_bytes(entries[:-1]) == snap[:len(param_bytes(entries[:-1]))]


# --------------------------------------------------------------------------
# non-strict (Darknet) behaviour

@pytest.mark.parametrize("cut", [20, 21, 100, 333, 1000])
def test_short_file_lenient_leaves_rest(cut, tmp_path):
    raw = (DATA / CASE / "after.weights").read_bytes()
    p = tmp_path / "short.weights"
    p.write_bytes(raw[:cut])
    entries = build_entries(spec_of(CASE))
    snap = sentinel(entries)
    with pytest.warns(WeightsWarning, match="short"):
        h = load_weights(p, entries, strict=False)
    assert h.seen == struct.unpack_from("<Q", raw, 12)[0]
    # like fread: the file's bytes (even part of a float) replace the old ones
    n = cut - 20
    assert param_bytes(entries) == raw[20:cut] + snap[n:]


def test_long_file_lenient(tmp_path):
    raw = (DATA / CASE / "after.weights").read_bytes()
    p = tmp_path / "long.weights"
    p.write_bytes(raw + b"trailing bytes")
    entries = build_entries(spec_of(CASE))
    with pytest.warns(WeightsWarning, match="long"):
        load_weights(p, entries, strict=False)
    assert param_bytes(entries) == raw[20:]


# --------------------------------------------------------------------------
# header variants

def _transposed_payload(entries):
    out = []
    for e in entries:
        for b in e.blocks:
            out.append(b.biases.tobytes())
            out.append(np.ascontiguousarray(b.weights.T).tobytes())
            if b.batch_normalize:
                out += [b.scales.tobytes(), b.rolling_mean.tobytes(),
                        b.rolling_variance.tobytes()]
    return b"".join(out)


@pytest.mark.parametrize("major,minor", [(1001, 2), (0, 1002)])
def test_transposed_file(major, minor, tmp_path):
    ref = build_entries(spec_of(CASE))
    load_weights(DATA / CASE / "after.weights", ref)
    data = struct.pack("<iiii", major, minor, 0, 77) + _transposed_payload(ref)
    p = tmp_path / "t.weights"
    p.write_bytes(data)
    entries = build_entries(spec_of(CASE))
    h = load_weights(p, entries)
    assert h.transpose is True and h.size == 16 and h.seen == 77
    assert param_bytes(entries) == param_bytes(ref)
    # saving with the same version writes it transposed again
    out = tmp_path / "t2.weights"
    save_weights(out, entries, 77, version=(major, minor, 0))
    assert out.read_bytes() == data


def test_transposed_short_file_transposes_whole_buffer(tmp_path):
    spec = parse_cfg_text("[net]\ninputs=3\n[connected]\noutput=2\n")
    entries = build_entries(spec)
    b = entries[0].blocks[0]
    b.weights[...] = np.arange(6, dtype=np.float32).reshape(2, 3)
    p = tmp_path / "t.weights"
    # header + biases + 2 of the 6 weights
    p.write_bytes(struct.pack("<iiii", 1001, 0, 0, 0) + np.float32([1, 2, 10, 11]).tobytes())
    with pytest.warns(WeightsWarning):
        load_weights(p, entries, strict=False)
    buf = np.float32([10, 11, 2, 3, 4, 5])          # fread result, then transposed 3x2 -> 2x3
    assert np.array_equal(b.weights, buf.reshape(3, 2).T)
    assert np.array_equal(b.biases, [1, 2])


def test_int32_seen_header(tmp_path):
    raw = (DATA / CASE / "after.weights").read_bytes()
    data = struct.pack("<iiii", 0, 1, 0, 1234) + raw[20:]
    p = tmp_path / "old.weights"
    p.write_bytes(data)
    entries = build_entries(spec_of(CASE))
    h = load_weights(p, entries)
    assert (h.major, h.minor, h.seen, h.size, h.transpose) == (0, 1, 1234, 16, False)
    assert param_bytes(entries) == raw[20:]
    out = tmp_path / "old2.weights"
    save_weights(out, entries, 1234, version=(0, 1, 0))
    assert out.read_bytes() == data
    with pytest.raises(ValueError):
        save_weights(out, entries, 2**31, version=(0, 1, 0))
    assert out.read_bytes() == data
    # a negative int32 counter becomes a size_t, as in Darknet, and writes back
    neg = struct.pack("<iiii", 0, 1, 0, -5) + raw[20:]
    p.write_bytes(neg)
    h = load_weights(p, entries)
    assert h.seen == 2**64 - 5
    save_weights(out, entries, h.seen, version=(0, 1, 0))
    assert out.read_bytes() == neg


def test_header_format_rules():
    assert W.header_format(0, 2) == (True, False)
    assert W.header_format(0, 1) == (False, False)
    assert W.header_format(1, 0) == (True, False)
    assert W.header_format(999, 999) == (True, False)
    assert W.header_format(1000, 0) == (False, False)
    assert W.header_format(1001, 0) == (False, True)
    assert W.header_format(0, 1001) == (False, True)


def test_save_seen_uint64(tmp_path):
    entries = build_entries(spec_of(CASE))
    p = tmp_path / "s.weights"
    save_weights(p, entries, 2**40 + 3)
    assert read_header(p).seen == 2**40 + 3
    assert struct.unpack_from("<iii", p.read_bytes()) == (0, 2, 0)


# --------------------------------------------------------------------------
# dontload / dontsave / dontloadscales

CFG3 = """[net]
inputs=3
[rnn]
output=4
batch_normalize=1
{rnn_flags}
[connected]
output=2
batch_normalize=1
{conn_flags}
[softmax]
"""


def _flagged(rnn_flags="", conn_flags=""):
    spec = parse_cfg_text(CFG3.format(rnn_flags=rnn_flags, conn_flags=conn_flags))
    return build_entries(spec)


def _init(entries, seed=3):
    init_weights(entries, GlibcRandom(seed))
    # make BN arrays non-trivial
    for e in entries:
        for b in e.blocks:
            b.scales += 0.25
            b.rolling_mean += 0.5
            b.rolling_variance += 2.0
    return entries


def test_dontsave(tmp_path):
    full = _init(_flagged())
    skip = _init(_flagged(rnn_flags="dontsave=1"))
    assert skip[0].dontsave and not skip[1].dontsave
    p = tmp_path / "a.weights"
    save_weights(p, skip, 5)
    raw = p.read_bytes()
    assert len(raw) == expected_size(skip, loading=False) == 20 + len(param_bytes(skip[1:]))
    assert raw[20:] == param_bytes(full[1:])


def test_dontload(tmp_path):
    src = _init(_flagged())
    p = tmp_path / "conn_only.weights"
    save_weights(p, src[1:], 0)                 # a file with only the connected layer
    dst = _flagged(rnn_flags="dontload=1")
    snap_rnn = param_bytes(dst[:1])
    assert expected_size(dst) == p.stat().st_size
    load_weights(p, dst)
    assert param_bytes(dst[:1]) == snap_rnn
    assert param_bytes(dst[1:]) == param_bytes(src[1:])


def test_dontloadscales_connected(tmp_path):
    src = _init(_flagged())
    p = tmp_path / "full.weights"
    save_weights(p, src, 0)
    dst = _flagged(conn_flags="dontloadscales=1")
    assert dst[1].dontloadscales
    # the loader reads no BN arrays for the connected layer: the full file is too long
    assert expected_size(dst) == p.stat().st_size - 3 * 2 * 4
    with pytest.raises(WeightsError):
        load_weights(p, dst)
    # a file written without those arrays loads; the BN arrays stay as they were
    b = src[1].blocks[0]
    raw = p.read_bytes()
    p2 = tmp_path / "noscales.weights"
    p2.write_bytes(raw[:-3 * 2 * 4])
    db = dst[1].blocks[0]
    db.scales[...] = 5
    db.rolling_mean[...] = 6
    db.rolling_variance[...] = 7
    load_weights(p2, dst)
    assert np.array_equal(db.weights, b.weights) and np.array_equal(db.biases, b.biases)
    assert (db.scales == 5).all() and (db.rolling_mean == 6).all()
    assert (db.rolling_variance == 7).all()
    assert param_bytes(dst[:1]) == param_bytes(src[:1])
    # save writes them anyway (no round trip, as in Darknet)
    p3 = tmp_path / "again.weights"
    save_weights(p3, dst, 0)
    assert p3.stat().st_size == p.stat().st_size


def test_dontloadscales_ignored_on_rnn(tmp_path):
    # Darknet checks the flag on the rnn's sublayers, where it is always 0
    src = _init(_flagged())
    p = tmp_path / "full.weights"
    save_weights(p, src, 0)
    dst = _flagged(rnn_flags="dontloadscales=1")
    assert dst[0].dontloadscales is False
    load_weights(p, dst)
    assert param_bytes(dst) == param_bytes(src)


def test_entry_for_layer_name():
    spec = parse_cfg_text("[net]\ninputs=3\n[conn]\noutput=2\n")
    e = build_entries(spec)[0]
    assert e.name == "layer 0 [conn]" and len(e.blocks) == 1


# --------------------------------------------------------------------------
# atomic save

def test_atomic_save_failure_keeps_old_file(tmp_path, monkeypatch):
    entries = build_entries(spec_of(CASE))
    load_weights(DATA / CASE / "after.weights", entries)
    target = tmp_path / "net.weights"
    save_weights(target, entries, 96)
    before = target.read_bytes()

    other = build_entries(spec_of(CASE))
    load_weights(DATA / CASE / "before.weights", other)
    real = W._write_array
    calls = {"n": 0}

    def failing(f, arr):
        calls["n"] += 1
        if calls["n"] > 2:
            raise OSError(28, "No space left on device")
        real(f, arr)

    monkeypatch.setattr(W, "_write_array", failing)
    with pytest.raises(OSError, match="No space"):
        save_weights(target, other, 0)
    assert target.read_bytes() == before
    assert os.listdir(tmp_path) == ["net.weights"]

    # a new target: nothing is created
    calls["n"] = 0
    with pytest.raises(OSError):
        save_weights(tmp_path / "new.weights", other, 0)
    assert os.listdir(tmp_path) == ["net.weights"]

    monkeypatch.setattr(W, "_write_array", real)
    save_weights(target, other, 0)
    assert target.read_bytes() == (DATA / CASE / "before.weights").read_bytes()
    assert os.listdir(tmp_path) == ["net.weights"]


def test_atomic_save_keyboard_interrupt(tmp_path, monkeypatch):
    entries = build_entries(spec_of(CASE))
    target = tmp_path / "x.weights"
    target.write_bytes(b"old")

    def boom(f, arr):
        raise KeyboardInterrupt

    monkeypatch.setattr(W, "_write_array", boom)
    with pytest.raises(KeyboardInterrupt):
        save_weights(target, entries, 0)
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["x.weights"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_save_file_mode(tmp_path):
    entries = build_entries(spec_of(CASE))
    p = tmp_path / "m.weights"
    save_weights(p, entries, 0)
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~mask
    os.chmod(p, 0o640)
    save_weights(p, entries, 0)
    assert stat.S_IMODE(p.stat().st_mode) == 0o640
