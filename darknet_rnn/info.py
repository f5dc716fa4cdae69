"""What the compiled core is (`build_info`) and what a network is
(`network_summary`, `format_summary`: `darknet-rnn info CFG [WEIGHTS]`).

The summary counts, from the cfg alone (the layers are built, not
initialised, so even a large cfg is quick):
* per layer: inputs -> outputs, options, trainable parameters, floats stored
  in a .weights file (batch norm adds its rolling mean and variance), and
  forward FLOPs per symbol;
* FLOPs: 2 per multiply-add of the matrix products only (elementwise work is
  not counted). Every connected block (an [rnn] has three) multiplies each
  row once forward; training adds its weight gradient and its input delta,
  except the first block of the first layer, which passes no delta on;
* memory: the bytes of every buffer this implementation allocates (weights,
  update buffers, outputs, deltas, batch-norm and recurrent state), for the
  cfg's shape and for the one-symbol-per-call inference shape;
* for a weights file: its header (version, seen) and whether its size is
  what the cfg needs.
"""
import os
from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np

from . import _ffi
from ._ffi import ffi, lib


def build_info():
    """A dict: kernel in use, kernels this CPU can run, threads, compiler flags."""
    ctx = _ffi.default_context()
    return {
        "kernel": ctx.kernel_name,
        "kernel_auto": _ffi.KERNEL_NAMES[lib.dn_kernel_auto()],
        "kernels_available": _ffi.available_kernels(),
        "DARKNET_RNN_KERNEL": os.environ.get("DARKNET_RNN_KERNEL", ""),
        "threads": ctx.threads,
        "cpu_count": os.cpu_count(),
        "compiler": ffi.string(lib.dn_build_flags()).decode(),
    }


@dataclass
class LayerSummary:
    index: int
    section: str
    inputs: int
    outputs: int
    options: str
    parameters: int          # trainable values
    stored: int              # floats in a .weights file
    forward_flops: int       # per symbol (row)
    train_flops: int         # per symbol: forward + weight gradients + input deltas


@dataclass
class WeightsSummary:
    path: str
    size: int
    expected: int
    version: str = ""
    seen: Optional[int] = None
    problem: str = ""        # why the header could not be read

    @property
    def matches(self):
        return not self.problem and self.size == self.expected


@dataclass
class NetworkSummary:
    cfg: str
    streams: int
    time_steps: int
    subdivisions: int
    inputs: int
    outputs: int
    layers: List[LayerSummary] = field(default_factory=list)
    weights_bytes: int = 0           # .weights file size the cfg needs
    train_memory: int = 0            # bytes of buffers at the cfg's shape
    infer_memory: int = 0            # bytes of buffers at 1 stream x 1 step
    weights: Optional[WeightsSummary] = None

    @property
    def parameters(self):
        return sum(l.parameters for l in self.layers)

    @property
    def stored(self):
        return sum(l.stored for l in self.layers)

    @property
    def forward_flops(self):
        return sum(l.forward_flops for l in self.layers)

    @property
    def train_flops(self):
        return sum(l.train_flops for l in self.layers)


def _build(spec, streams, steps):
    """The layers of a parsed cfg, built for the native backend without
    initialisation; returns [(kind, spec, layer)]."""
    from ._rand import GlibcRandom
    from .registry import BuildContext, backend_module, layer_type
    b = BuildContext(backend="native", module=backend_module("native"), streams=streams,
                     time_steps=steps, fixes=0, rng=GlibcRandom(1))
    out = []
    for ls in spec.layers:
        k = layer_type(ls.type)
        b.previous = out[-1][2] if out else None
        out.append((k, ls, k.build(ls, b)))
    return out


def _buffer_bytes(layers):
    """Bytes of the distinct NumPy buffers the layers (and their sublayers) hold."""
    seen, total, stack = set(), 0, [l for _, _, l in layers]
    visited = set()
    while stack:
        obj = stack.pop()
        if id(obj) in visited:
            continue
        visited.add(id(obj))
        for v in vars(obj).values():
            if isinstance(v, np.ndarray):
                base = v
                while isinstance(base.base, np.ndarray):
                    base = base.base
                if id(base) not in seen:
                    seen.add(id(base))
                    total += base.nbytes
            elif hasattr(v, "forward") and hasattr(v, "__dict__"):
                stack.append(v)
    return total


def network_summary(cfg, weights=None, *, strict=True) -> NetworkSummary:
    """Parameter counts, FLOPs, memory and (with `weights`) the weights
    file's header and size check; see the module docstring."""
    from .cfg import parse_cfg
    from .errors import WeightsError
    from .weights import expected_size, read_header
    spec = parse_cfg(cfg, strict=strict)
    n = spec.net
    built = _build(spec, n.streams, n.time_steps)
    s = NetworkSummary(cfg=str(cfg), streams=n.streams, time_steps=n.time_steps,
                       subdivisions=n.subdivisions, inputs=n.inputs, outputs=spec.outputs)
    entries = []
    for i, (k, ls, layer) in enumerate(built):
        entry = k.weights_entry(ls, layer)
        entries.append(entry)
        blocks = k.weight_blocks(layer)
        fwd = sum(2 * b.inputs * b.outputs for b in blocks)
        train = 3 * fwd
        if i == 0 and blocks:              # the network input needs no delta
            train -= 2 * blocks[0].inputs * blocks[0].outputs
        s.layers.append(LayerSummary(
            index=ls.index, section=ls.section, inputs=ls.inputs, outputs=ls.outputs,
            options=k.describe(ls), parameters=sum(p.value.size for p in k.params(layer)),
            stored=(expected_size([entry], 0, loading=False)) // 4,
            forward_flops=fwd, train_flops=train))
    s.weights_bytes = expected_size(entries, 20, loading=True)
    s.train_memory = _buffer_bytes(built)
    s.infer_memory = _buffer_bytes(_build(spec, 1, 1))
    if weights is not None:
        size = os.path.getsize(weights)
        w = WeightsSummary(path=str(weights), size=size, expected=s.weights_bytes)
        try:
            h = read_header(weights)
            w.version = f"{h.major}.{h.minor}.{h.revision}"
            w.seen = int(h.seen)
            w.expected = expected_size(entries, h.size, loading=True)
            if not _plausible_version(h):
                w.problem = "not a Darknet .weights file (no version header Darknet writes)"
        except WeightsError:
            w.problem = f"too short for a Darknet weights header ({size} bytes)"
        s.weights = w
    return s


def _plausible_version(h):
    return all(0 <= v < 10000 for v in (h.major, h.minor, h.revision))


def _mb(nbytes):
    return f"{nbytes / 1e6:.1f} MB" if nbytes >= 1e5 else f"{nbytes / 1e3:.1f} KB"


def _flops(v):
    for scale, unit in ((1e9, "GFLOP"), (1e6, "MFLOP"), (1e3, "kFLOP")):
        if v >= scale:
            return f"{v / scale:.3g} {unit}"
    return f"{v} FLOP"


def format_summary(s: NetworkSummary) -> str:
    """The text `darknet-rnn info` prints."""
    rows = s.streams * s.time_steps
    out = [f"{s.cfg}: {len(s.layers)} layers, inputs {s.inputs}, outputs {s.outputs}; "
           f"{s.streams} stream(s) x {s.time_steps} step(s) per batch"
           + (f", subdivisions {s.subdivisions}" if s.subdivisions != 1 else "")]
    head = ("   #  layer        inputs -> outputs  options                     "
            "parameters      stored  forward/symbol")
    out.append(head)
    for l in s.layers:
        out.append(f"{l.index:4d}  {l.section:<11s} {l.inputs:6d} -> {l.outputs:<7d} "
                   f"{l.options[:27]:<27s} {l.parameters:11,d} {l.stored:11,d}  "
                   f"{_flops(l.forward_flops):>14s}")
    out.append(f"parameters: {s.parameters:,} trainable; {s.stored:,} floats in a .weights "
               f"file of {s.weights_bytes:,} bytes")
    out.append(f"compute (matrix products, 2 FLOP per multiply-add): forward "
               f"{_flops(s.forward_flops)} per symbol; training {_flops(s.train_flops)} per "
               f"symbol, {_flops(s.train_flops * rows)} per batch of {rows} symbols")
    out.append(f"memory (this implementation's buffers): {_mb(s.infer_memory)} for inference "
               f"(1 symbol per call), {_mb(s.train_memory)} at the cfg's {s.streams} x "
               f"{s.time_steps}")
    w = s.weights
    if w is not None:
        if w.problem:
            out.append(f"weights {w.path}: {w.size:,} bytes: {w.problem}")
        else:
            batches = w.seen // max(1, rows * s.subdivisions)
            verdict = ("matches the cfg" if w.matches else
                       f"does NOT match the cfg, which needs {w.expected:,} bytes "
                       f"({abs(w.size - w.expected):,} bytes "
                       f"{'missing' if w.size < w.expected else 'extra'})")
            out.append(f"weights {w.path}: version {w.version}, seen {w.seen:,} "
                       f"({batches:,} batches of this cfg); {w.size:,} bytes: {verdict}")
    return "\n".join(out)
