"""The LayerType interface, the registry and helpers shared by the entries."""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Dict, List, Optional

from .._cfgread import (COST_TYPES, LayerSpec, _err, _Reader, _warn, c_atof, c_atoi,
                       parse_activation)
from ..errors import CfgError, DarknetTrainingWarning
from ..optim import Param, block_params
from ..weights import WeightsEntry, entry_for_layer


REGISTRY: Dict[str, "LayerType"] = {}
_SECTIONS: Dict[str, str] = {}

BACKENDS = {
    "native": "darknet_rnn.layers",
    "reference": "darknet_rnn.reference",
    "numpy": "darknet_rnn.bench.numpy_layers",
}


def register(cls):
    """Class decorator: add a LayerType to the registry under cls.name."""
    entry = cls()
    REGISTRY[entry.name] = entry
    for s in entry.sections:
        _SECTIONS[s] = entry.name
    return cls


def layer_type(name) -> "LayerType":
    """The registry entry of a layer type name ('rnn', 'connected', ...)."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown layer type {name!r}; known: "
                         + ", ".join(sorted(REGISTRY))) from None


def section_types() -> Dict[str, str]:
    """Section header (e.g. '[conn]') -> layer type name."""
    return dict(_SECTIONS)


def backend_module(backend):
    """The module holding a backend's layer classes."""
    import importlib
    if backend not in BACKENDS:
        raise ValueError("backend must be " + ", ".join(repr(b) for b in BACKENDS)
                         + f"; got {backend!r}")
    return importlib.import_module(BACKENDS[backend])


@dataclass
class BuildContext:
    """What building a layer needs besides its LayerSpec."""
    backend: str
    module: object          # the backend's layer module
    streams: int
    time_steps: int
    fixes: int              # dn_fix bits (0 = Darknet's backward)
    ctx: object = None      # native: the execution Context (None: default)
    dtype: object = None    # NumPy backends: float32 or float64
    stateful: bool = False  # recurrent layers carry their state across training calls
    rng: object = None      # the network's rand() stream (layers that draw at run time)
    previous: object = None  # the layer built just before (layers that alias its buffers)

    @property
    def batch(self):
        return self.streams * self.time_steps

    def cls(self, name, ltype):
        c = getattr(self.module, name, None)
        if c is None:
            raise CfgError(f"the {self.backend!r} backend has no {ltype} layer")
        return c

    def extra(self, uses_ctx=True):
        """Backend keyword arguments: ctx for the C core, dtype for NumPy."""
        if self.backend == "native":
            return {"ctx": self.ctx} if uses_ctx else {}
        return {"dtype": self.dtype}


class LayerType:
    """One cfg section type. Subclasses override what differs."""
    name = ""
    sections: tuple = ()
    network_output = True    # may be the network's output (not a bare loss layer)
    has_cost = False         # forward takes the truth and sets layer.cost
    zero_delta = True        # Network zeroes the delta before forward (else forward does)
    whole_sequence = False   # each call must be a whole sequence (no step-by-step predict)

    def variant(self, ls: LayerSpec) -> "LayerType":
        """The entry that runs this section: self, or a variant its keys ask
        for (an [rnn] with bidirectional=1)."""
        return self

    # ---- cfg ----------------------------------------------------------------
    def parse(self, r: _Reader, L: LayerSpec, strict: bool, messages: List[str]) -> None:
        """Read this type's keys into L (L.inputs is set; set L.outputs)."""
        L.outputs = L.inputs

    def after_common_keys(self, r: _Reader, L: LayerSpec, messages: List[str]) -> None:
        """Adjust after the keys every layer has were read."""

    # ---- building -------------------------------------------------------------
    def build(self, ls: LayerSpec, b: BuildContext):
        raise NotImplementedError

    def check_trainable(self, ls: LayerSpec, layer) -> Optional[str]:
        """A message when training this layer cannot work (None: fine)."""
        return None

    # ---- parameters -----------------------------------------------------------
    def weight_blocks(self, layer) -> list:
        """Connected-like blocks in .weights order."""
        return []

    def init_blocks(self, layer) -> list:
        """The same blocks in the order Darknet initialises them (rand())."""
        return self.weight_blocks(layer)

    def weights_entry(self, ls: LayerSpec, layer) -> WeightsEntry:
        """The layer's WeightsEntry (blocks in .weights order, cfg flags)."""
        return self.entry(ls, self.weight_blocks(layer))

    def entry(self, ls: LayerSpec, blocks) -> WeightsEntry:
        """A WeightsEntry for these blocks with this type's flag semantics."""
        return entry_for_layer(ls, blocks)

    def params(self, layer, prefix="") -> List[Param]:
        out = []
        for name, block in self.named_blocks(layer):
            out += block_params(block, f"{prefix}{name}.")
        return out

    def named_blocks(self, layer):
        """(name, block) pairs for parameter naming, .weights order."""
        return [(str(i), blk) for i, blk in enumerate(self.weight_blocks(layer))]

    # ---- running --------------------------------------------------------------
    def forward(self, layer, inp, truth, train: bool) -> None:
        layer.forward(inp, train=train)

    def backward(self, layer, inp, prev_delta, fixes: int) -> None:
        layer.backward(inp, prev_delta)

    def reset_state(self, layer, streams=None) -> None:
        """Zero the recurrent state (nothing for feed-forward layers)."""

    def state_arrays(self, layer) -> list:
        """The arrays holding recurrent state carried between calls (saved
        with a training checkpoint)."""
        return []

    def record_grad_norms(self, layer, on: bool) -> bool:
        """Switch recording of per-step state-gradient norms; False if this
        type has no recurrent state to record."""
        return False

    def set_temperature(self, layer, temperature) -> None:
        """Sampling temperature (only softmax has one)."""

    # ---- describing (the table printed at load, `darknet-rnn info`) -----------
    def darknet_lines(self, ls: LayerSpec) -> List[str]:
        """The line(s) Darknet prints for the layer while it reads the cfg
        (after the layer number)."""
        return [ls.section]

    def describe(self, ls: LayerSpec) -> str:
        """The layer's options in a few words."""
        return ""

    def cost_unit(self, ls: LayerSpec) -> Optional[str]:
        """What the layer's cost sums per row: "nats" (cross-entropy of the
        true next symbol), the [cost] type, or None (no cost)."""
        return None

    def apply_mask(self, layer, keep) -> None:
        """After a forward with truth, on a has_cost type: rows with keep
        False carry no loss (zero delta and loss, cost over the others)."""
        layer.mask_rows(keep)


def _connected_line(inputs, outputs):
    return f"connected                            {inputs:4d}  ->  {outputs:4d}"


def _dense_words(ls, *extra):
    words = [ls.activation] + (["batch_normalize"] if ls.batch_normalize else []) + list(extra)
    return ", ".join(words)


def _bn_one_row(ls, layer, what):
    if ls.batch_normalize and layer.batch == 1:
        return (f"layer {ls.index} {ls.section} has batch_normalize=1 with {what}: the "
                "variance divides by zero and Darknet trains NaN; use at least 2 streams")
    return None


def _parse_dense(r, L, strict, messages):
    """Keys of the layers made of connected blocks: output, activation, BN."""
    L.outputs = r.find_int("output", 1, quiet=False)
    if L.outputs <= 0:
        raise _err(r, "output", f"output={L.outputs} must be positive")
    act = r.find_str("activation", "logistic")
    L.activation = parse_activation(act, strict, r.where("activation"), messages)
    L.batch_normalize = r.find_int("batch_normalize", 0) != 0


# --------------------------------------------------------------------------
# Reliability checks over the entries (the finite guard and the cfg checks,
# darknet_rnn.guard and darknet_rnn.cfgcheck): which layers are loss layers,
# and how much memory a layer will allocate, per type.

def is_loss_layer(ls: LayerSpec) -> bool:
    """Does this layer add to the network's cost when trained ([softmax]
    without noloss, [cost])?"""
    entry = layer_type(ls.type)
    return bool(entry.has_cost) and not bool(getattr(ls, "noloss", False))


def _dense_floats(rows, steps, inputs, outputs, bn):
    """Floats a connected-like block allocates (layers.ConnectedLayer):
    weights and their updates, biases and theirs, output and delta rows,
    with batch norm its statistics, per-step statistics and x / x_norm."""
    n = 2 * outputs * inputs + 2 * outputs + 2 * rows * outputs
    if bn:
        n += 5 * outputs + 2 * steps * outputs + 2 * rows * outputs
    return n


def _connected_floats(ls, streams, time_steps):
    return _dense_floats(streams * time_steps, 1, ls.inputs, ls.outputs, ls.batch_normalize)


def _rnn_floats(ls, streams, time_steps):
    h, rows = ls.outputs, streams * time_steps
    n = _dense_floats(rows, time_steps, ls.inputs, h, ls.batch_normalize)
    n += 2 * _dense_floats(rows, time_steps, h, h, ls.batch_normalize)
    return n + (time_steps + 3) * streams * h + time_steps     # state, scratch, carry, norms


def _rows_floats(count):
    def floats(ls, streams, time_steps):
        return count * streams * time_steps * max(ls.inputs, ls.outputs)
    return floats


# Floats per layer type, and the cfg key that sets the layer's size. A type
# without an entry is estimated as a [connected] of its inputs and outputs.
def _gated_floats(blocks, per_step):
    """[gru] (6 blocks, gates z, r, h and r*s) / [lstm] (8 blocks, gates f,
    i, g, o): the blocks (the u* read the inputs, the w* the state), the
    per-step gate arrays and delta, the states and scratch."""
    def floats(ls, streams, time_steps):
        h, rows = ls.outputs, streams * time_steps
        n = (blocks // 2) * (_dense_floats(rows, time_steps, ls.inputs, h, ls.batch_normalize)
                             + _dense_floats(rows, time_steps, h, h, ls.batch_normalize))
        return n + (per_step + 1) * rows * h + 2 * (time_steps + 1) * streams * h \
            + 6 * streams * h
    return floats


def _birnn_floats(ls, streams, time_steps):
    half = LayerSpec(type="rnn", inputs=ls.inputs, outputs=ls.outputs // 2,
                     batch_normalize=ls.batch_normalize)
    return 2 * _rnn_floats(half, streams, time_steps)


def _dropout_floats(ls, streams, time_steps):
    return streams * time_steps * ls.inputs        # its draws (it aliases the rest)


ALLOC_FLOATS = {
    "connected": (_connected_floats, "output"),
    "rnn": (_rnn_floats, "output"),
    "gru": (_gated_floats(6, 4), "output"),
    "lstm": (_gated_floats(8, 4), "output"),
    "dropout": (_dropout_floats, None),
    "softmax": (_rows_floats(3), None),
    "cost": (_rows_floats(2), None),
    "birnn": (_birnn_floats, "output"),
}


def alloc_bytes(ls: LayerSpec, streams: int, time_steps: int, itemsize: int = 4):
    """(bytes, key) a layer of this spec allocates when built with `streams`
    streams of `time_steps` steps; key is the cfg key that sets its size
    (None: the size follows its inputs and the [net] batch)."""
    kind = "birnn" if getattr(ls, "bidirectional", False) else ls.type
    floats, key = ALLOC_FLOATS.get(kind, (_connected_floats, "output"))
    return int(floats(ls, int(streams), int(time_steps))) * int(itemsize), key
