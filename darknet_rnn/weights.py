"""Darknet .weights files (SPEC section 13): read, write and initialise.

This module works on a generic description of the parameters, so it does not
depend on the layer classes:

* a *block* is any object with attributes `inputs`, `outputs`,
  `batch_normalize`, `biases` (outputs,), `weights` (outputs*inputs values,
  row-major [out][in], any shape of that size) and, with batch_normalize,
  `scales`, `rolling_mean`, `rolling_variance` (outputs,) - float32 NumPy
  arrays, which loading and init_weights overwrite IN PLACE;
* a WeightsEntry is one cfg layer: its blocks in file order (an [rnn] has 3:
  input, self, output sublayer; a [connected] has 1; [softmax]/[cost] have no
  entry or an entry without blocks) and its dontload/dontsave/dontloadscales
  flags.

Use `entry_for_layer(layer_spec, blocks)` to get Darknet's flag semantics
(Darknet ignores dontloadscales on [rnn], whose sublayers never see it).

Loading is strict by default: the file length must be exactly what the
network needs (checked with fstat before anything is read, and before any
array is touched), and NaN or infinite values are refused (naming the layer,
array and byte offset; allow_nonfinite=True loads them for inspection). Only
regular files are read: a FIFO, device or directory is refused, so nothing
blocks or reads without end. With strict=False it behaves like Darknet: a
short file leaves the remaining parameters unchanged, extra bytes are
ignored (and not read); a WeightsWarning says so; non-finite values load.

Saving is atomic (darknet_rnn.files.atomic_write): a temporary file in the
target's directory, flushed, fsynced and renamed over the target; a symlink
is followed, FIFOs and devices are refused, stale temporary files of killed
saves are removed, and errors name the target.
"""
from __future__ import annotations

import math
import os
import struct
import warnings
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from .errors import WeightsError
from .files import atomic_write, open_regular

__all__ = ["WeightsHeader", "WeightsEntry", "WeightsWarning", "read_header",
           "header_format", "expected_size", "load_weights", "save_weights",
           "init_weights", "entry_for_layer"]

_F32 = np.dtype("<f4")


class WeightsWarning(UserWarning):
    """A .weights file was accepted although it does not fit the network."""


@dataclass
class WeightsHeader:
    major: int
    minor: int
    revision: int
    seen: int
    transpose: bool
    size: int           # header bytes: 20 (uint64 seen) or 16 (int32 seen)


@dataclass
class WeightsEntry:
    blocks: list = field(default_factory=list)
    dontload: bool = False
    dontsave: bool = False
    dontloadscales: bool = False
    name: str = ""


def entry_for_layer(spec, blocks, *, dontloadscales=None) -> WeightsEntry:
    """A WeightsEntry for a cfg LayerSpec with Darknet's flag semantics:
    dontload/dontsave act on the layer; dontloadscales is the spec's flag
    unless the layer type decides otherwise (an [rnn] passes False: Darknet
    reads the flag from its sublayers, where it is always 0; see
    darknet_rnn.registry)."""
    if dontloadscales is None:
        dontloadscales = spec.dontloadscales
    return WeightsEntry(
        blocks=list(blocks),
        dontload=bool(spec.dontload),
        dontsave=bool(spec.dontsave),
        dontloadscales=bool(dontloadscales),
        name=f"layer {spec.index} {spec.section or '[' + spec.type + ']'}",
    )


# --------------------------------------------------------------------------
# header

def header_format(major: int, minor: int):
    """(seen is uint64, transpose) for a header version, as Darknet decides."""
    wide = (major * 10 + minor) >= 2 and major < 1000 and minor < 1000
    transpose = major > 1000 or minor > 1000
    return wide, transpose


def _parse_header(data: bytes, path="<weights>") -> WeightsHeader:
    if len(data) < 12:
        raise WeightsError(f"{path}: file too short for a Darknet weights header "
                           f"({len(data)} bytes)")
    major, minor, revision = struct.unpack_from("<iii", data, 0)
    wide, transpose = header_format(major, minor)
    if wide:
        if len(data) < 20:
            raise WeightsError(f"{path}: file too short for a Darknet weights header "
                               f"(version {major}.{minor}.{revision} needs 20 bytes, "
                               f"file has {len(data)})")
        (seen,) = struct.unpack_from("<Q", data, 12)
        size = 20
    else:
        if len(data) < 16:
            raise WeightsError(f"{path}: file too short for a Darknet weights header "
                               f"(version {major}.{minor}.{revision} needs 16 bytes, "
                               f"file has {len(data)})")
        (seen,) = struct.unpack_from("<i", data, 12)
        seen %= 2**64           # Darknet stores the int in a size_t
        size = 16
    return WeightsHeader(major, minor, revision, seen, transpose, size)


def read_header(f) -> WeightsHeader:
    """Read a header from a binary file object (positioned at its start) or a
    path. A file object is left positioned after the header."""
    if isinstance(f, (str, bytes, os.PathLike)):
        with open(f, "rb") as fh:
            return read_header(fh)
    head = f.read(12)
    name = getattr(f, "name", "<weights>")
    if len(head) < 12:
        return _parse_header(head, name)
    major, minor, _ = struct.unpack_from("<iii", head, 0)
    wide, _ = header_format(major, minor)
    head += f.read(8 if wide else 4)
    return _parse_header(head, name)


# --------------------------------------------------------------------------
# sizes

def _block_arrays(block, with_bn: bool):
    """[(name, array, count)] in file order."""
    o, i = int(block.outputs), int(block.inputs)
    arrs = [("biases", block.biases, o), ("weights", block.weights, o * i)]
    if block.batch_normalize and with_bn:
        arrs += [("scales", block.scales, o), ("rolling_mean", block.rolling_mean, o),
                 ("rolling_variance", block.rolling_variance, o)]
    return arrs


def _block_bytes(block, with_bn: bool) -> int:
    o, i = int(block.outputs), int(block.inputs)
    n = o + o * i
    if block.batch_normalize and with_bn:
        n += 3 * o
    return 4 * n


def expected_size(entries: Iterable[WeightsEntry], header_size: int = 20,
                  loading: bool = True) -> int:
    """File size in bytes: for loading, of what load_weights reads (dontload
    entries skipped, dontloadscales entries without BN arrays); for saving, of
    what save_weights writes (dontsave entries skipped)."""
    total = int(header_size)
    for e in entries:
        if loading and e.dontload:
            continue
        if not loading and e.dontsave:
            continue
        with_bn = not (loading and e.dontloadscales)
        for b in e.blocks:
            total += _block_bytes(b, with_bn)
    return total


def _check_block(entry, block):
    o, i = int(block.outputs), int(block.inputs)
    for name, arr, n in _block_arrays(block, True):
        if not isinstance(arr, np.ndarray):
            raise TypeError(f"{entry.name or 'entry'}: {name} must be a NumPy array, "
                            f"got {type(arr).__name__}")
        if arr.dtype not in (np.float32, np.float64):   # float64: the reference twin
            raise TypeError(f"{entry.name or 'entry'}: {name} must be float32, got {arr.dtype}")
        if arr.size != n:
            raise ValueError(f"{entry.name or 'entry'}: {name} has {arr.size} values, "
                             f"expected {n} (outputs={o}, inputs={i})")


def _describe_content(data: bytes):
    """(certain, text): a note when the content looks like a Git LFS pointer
    or an HTML page. certain is False for a bare leading '<' (which could in
    principle be a header with major version 60)."""
    if data.startswith(b"version https://git-lfs"):
        return True, (" The file is a Git LFS pointer, not the weights: fetch the real "
                      "file (git lfs pull).")
    low = data[:512].lstrip()[:16].lower()
    if low.startswith(b"<!doctype") or low.startswith(b"<html"):
        return True, (" The file is an HTML page (a failed or redirected download?), "
                      "not Darknet weights.")
    if low.startswith(b"<"):
        return False, (" The file looks like an HTML/XML page (a failed download?), "
                       "not Darknet weights.")
    return False, ""


# --------------------------------------------------------------------------
# loading

def load_weights(path, entries: Sequence[WeightsEntry], *, strict: bool = True,
                 allow_nonfinite=None) -> WeightsHeader:
    """Load a Darknet .weights file into the entries' arrays (in place).

    Returns the header (its `seen` is the file's sample counter). Only a
    regular file is read, and never more bytes than the network needs.
    Strict mode (default) raises WeightsError when the file length differs
    from expected_size(...) - from fstat, before reading the body and before
    any array is modified - and recognises Git LFS pointers and HTML pages.
    strict=False reproduces Darknet: a short file leaves the remaining values
    unchanged (the bytes of a partly present float are copied, as glibc's
    fread does), extra bytes are ignored.
    allow_nonfinite: NaN/inf values raise WeightsError (nothing modified)
    unless true; the default (None) refuses them in strict mode and accepts
    them with strict=False (Darknet).
    """
    p = os.fspath(path)
    entries = list(entries)
    for e in entries:
        for b in e.blocks:
            _check_block(e, b)
    if allow_nonfinite is None:
        allow_nonfinite = not strict
    exp20 = expected_size(entries, 20, loading=True)
    f, size = open_regular(p, "weights file", WeightsError)
    with f:
        head = f.read(512)
        certain, what = _describe_content(head)
        if strict and certain:
            raise WeightsError(f"{p}: not a Darknet weights file: expected {exp20} bytes, "
                               f"file has {size} bytes.{what}")
        try:
            header = _parse_header(head[:20], p)
        except WeightsError as err:
            raise WeightsError(f"{err} (expected {exp20} bytes, file has {size} bytes)."
                               f"{what}") from None
        exp = expected_size(entries, header.size, loading=True)
        if size != exp:
            kind = "short" if size < exp else "long"
            diff = abs(exp - size)
            msg = (f"{p}: weights file is too {kind} for this network: expected {exp} bytes, "
                   f"file has {size} bytes ({diff} bytes "
                   f"{'missing' if kind == 'short' else 'extra'}; version {header.major}."
                   f"{header.minor}.{header.revision}, {header.size}-byte header).{what}")
            if strict:
                raise WeightsError(msg + " Is it for a different cfg? Pass strict=False to "
                                   "load it the way Darknet does.")
            warnings.warn(msg + (" Darknet behaviour: the remaining parameters keep their "
                                 "values." if kind == "short" else
                                 " Darknet behaviour: the extra bytes are ignored."),
                          WeightsWarning, stacklevel=2)
        data = head[:exp] + f.read(max(0, exp - len(head)))
    if strict and len(data) != exp:
        raise WeightsError(f"{p}: the file changed while it was read (expected {exp} bytes, "
                           f"read {len(data)})")
    if not allow_nonfinite:
        _check_finite(p, data, header, entries)

    pos = header.size
    buf = memoryview(data)
    for e in entries:
        if e.dontload:
            continue
        with_bn = not e.dontloadscales
        for b in e.blocks:
            for name, arr, n in _block_arrays(b, with_bn):
                nbytes = 4 * n
                avail = max(0, min(nbytes, len(data) - pos))
                if avail == nbytes:
                    vals = np.frombuffer(buf[pos:pos + nbytes], dtype=_F32)
                else:
                    # partial read: fread copies what is there over the old values
                    flat = np.ascontiguousarray(arr, dtype=np.float32).reshape(-1).copy()
                    if avail:
                        flat.view(np.uint8)[:avail] = np.frombuffer(buf[pos:pos + avail],
                                                                    dtype=np.uint8)
                    vals = flat
                pos += avail
                if name == "weights" and header.transpose:
                    # stored inputs x outputs; Darknet transposes the whole buffer
                    vals = vals.reshape(int(b.inputs), int(b.outputs)).T
                if avail or (name == "weights" and header.transpose):
                    arr[...] = np.asarray(vals, dtype=np.float32).reshape(arr.shape)
    return header


def _check_finite(p, data, header, entries):
    """WeightsError naming the first NaN/inf value of the body: its layer,
    array, index and byte offset."""
    n = max(0, (len(data) - header.size) // 4)
    body = np.frombuffer(data, dtype=_F32, count=n, offset=header.size) if n else \
        np.zeros(0, _F32)
    step = 1 << 20
    for i0 in range(0, body.size, step):
        chunk = body[i0:i0 + step]
        bad = np.flatnonzero(~np.isfinite(chunk))
        if bad.size:
            i = i0 + int(bad[0])
            raise WeightsError(f"{p}: holds {float(body[i])} at byte offset "
                               f"{header.size + 4 * i} ({_locate(entries, i)}); the weights "
                               "are not finite (a diverged run?). Pass allow_nonfinite=True "
                               "(or strict=False) to load them for inspection.")


def _locate(entries, index):
    """'layer 0 [rnn] weights[3]' for the index-th float of a file body."""
    for e in entries:
        if e.dontload:
            continue
        for bi, b in enumerate(e.blocks):
            for name, _arr, n in _block_arrays(b, not e.dontloadscales):
                if index < n:
                    blk = f" block {bi}" if len(e.blocks) > 1 else ""
                    return f"{e.name or 'entry'}{blk} {name}[{index}]"
                index -= n
    return "past the last layer"


# --------------------------------------------------------------------------
# saving

def _write_array(f, arr) -> None:
    """Write a float32 array's values (row-major) to the binary file f."""
    f.write(np.ascontiguousarray(arr, dtype=_F32).tobytes())


def save_weights(path, entries: Sequence[WeightsEntry], seen: int,
                 version=(0, 2, 0)) -> None:
    """Write a Darknet .weights file atomically.

    Header: major, minor, revision (int32) and `seen` (uint64 for Darknet's
    0.2.0; int32 for versions Darknet reads with an int32 counter), then every
    non-dontsave entry's blocks (BN arrays always written). For a version that
    Darknet reads transposed (major or minor > 1000), the weights are written
    inputs x outputs so that the file loads back to the same values.
    """
    p = os.fspath(path)
    major, minor, revision = (int(v) for v in version)
    wide, transpose = header_format(major, minor)
    seen = int(seen)
    if wide:
        if not 0 <= seen < 2**64:
            raise ValueError(f"seen={seen} does not fit the uint64 header field")
        header = struct.pack("<iiiQ", major, minor, revision, seen)
    else:
        if 2**64 - 2**31 <= seen < 2**64:
            seen -= 2**64       # a negative int32 counter read back as size_t
        if not -2**31 <= seen < 2**31:
            raise ValueError(f"seen={seen} does not fit the int32 header field of "
                             f"version {major}.{minor}.{revision}")
        header = struct.pack("<iiii", major, minor, revision, seen)
    entries = list(entries)
    for e in entries:
        if not e.dontsave:
            for b in e.blocks:
                _check_block(e, b)

    def write(f):
        f.write(header)
        for e in entries:
            if e.dontsave:
                continue
            for b in e.blocks:
                for name, arr, n in _block_arrays(b, True):
                    if name == "weights":
                        w = np.asarray(arr).reshape(int(b.outputs), int(b.inputs))
                        _write_array(f, w.T if transpose else w)
                    else:
                        _write_array(f, arr)
    atomic_write(p, write)


# --------------------------------------------------------------------------
# initialisation

def init_weights(entries: Sequence[WeightsEntry], rng) -> None:
    """Darknet's initialisation (SPEC section 3), in place, drawing from rng
    (a GlibcRandom): for every block in order, each weight in row-major order
    is float32(sqrt(2/inputs)) * rand_uniform(-1, 1); biases 0; with BN
    scales 1 and rolling statistics 0. Every entry is initialised (dontload
    and dontsave do not matter: Darknet initialises while parsing the cfg)."""
    for e in entries:
        for b in e.blocks:
            _check_block(e, b)
    for e in entries:
        for b in e.blocks:
            o, i = int(b.outputs), int(b.inputs)
            scale = np.float32(math.sqrt(2.0 / i))
            r = rng.rand_uniform_array(o * i, -1, 1)
            b.weights[...] = (scale * np.asarray(r, dtype=np.float32)).reshape(b.weights.shape)
            b.biases[...] = 0
            if b.batch_normalize:
                b.scales[...] = 1
                b.rolling_mean[...] = 0
                b.rolling_variance[...] = 0
