"""The layer-type registry: everything the network needs to know about a cfg
section type, in one entry per type.

An entry (a LayerType subclass, registered with @register) says
* which section headers name it (`sections`) and how its keys are parsed
  (`parse`, after the [net] section and before the keys every layer has);
* how a layer is built from its LayerSpec for a backend (`build`): the C
  core (darknet_rnn.layers), the bit-exact NumPy twin (darknet_rnn.reference)
  or the BLAS-speed NumPy baseline of the benchmark;
* which connected-like parameter blocks it initialises, in Darknet's rand()
  order (`init_blocks`), and which it reads and writes in `.weights`, in file
  order (`weight_blocks`) - the two differ for Darknet's [gru]/[lstm];
* its parameters for the optimizer (`params`, derived from the blocks);
* how it runs forward and backward, and what it adds to the network's cost.

Network walks its layers through these methods only; no code outside this
module chooses behaviour by comparing a layer's type name. Adding a layer
type: a C file (csrc/), a NumPy-twin module (darknet_rnn/reference/), the
native wrapper class (darknet_rnn/layers.py), an entry here, and a row in
tests/test_layer_table.py.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional

from ._cfgread import (COST_TYPES, LayerSpec, _err, _Reader, _warn, c_atoi,
                       parse_activation)
from .errors import CfgError
from .optim import Param, block_params
from .weights import WeightsEntry, entry_for_layer

__all__ = ["LayerType", "register", "layer_type", "section_types", "backend_module",
           "BuildContext", "REGISTRY"]

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


@register
class Connected(LayerType):
    name = "connected"
    sections = ("[connected]", "[conn]")

    def parse(self, r, L, strict, messages):
        _parse_dense(r, L, strict, messages)

    def build(self, ls, b):
        return b.cls("ConnectedLayer", ls.section)(
            batch=b.batch, inputs=ls.inputs, outputs=ls.outputs, activation=ls.activation,
            batch_normalize=ls.batch_normalize, learning_rate_scale=ls.learning_rate_scale,
            **b.extra())

    def check_trainable(self, ls, layer):
        return _bn_one_row(ls, layer, "a batch of 1 row")

    def weight_blocks(self, layer):
        return [layer]

    def named_blocks(self, layer):
        return [("", layer)]

    def params(self, layer, prefix=""):
        return block_params(layer, prefix)

    def backward(self, layer, inp, prev_delta, fixes):
        from .fixes import FIX_BN_GRADIENT
        layer.backward(inp, prev_delta, fixes=fixes & FIX_BN_GRADIENT)


@register
class RNN(LayerType):
    name = "rnn"
    sections = ("[rnn]",)
    zero_delta = False           # an [rnn] forward zeroes all its sublayer deltas

    def parse(self, r, L, strict, messages):
        _parse_dense(r, L, strict, messages)
        L.shortcut = r.find_int("shortcut", 0) != 0
        # AlexeyAB keys: looked at, not consumed (pjreddie reports them unused)
        hid = r.peek("hidden")
        if hid is not None and hid.value is not None and c_atoi(hid.value) != L.outputs:
            raise CfgError(f"{r.path}:{hid.line}: key 'hidden': hidden={c_atoi(hid.value)} "
                           f"differs from output={L.outputs}; AlexeyAB's separate "
                           "hidden size is not supported (pjreddie uses output)")
        lg = r.peek("logistic")
        if lg is not None and c_atoi(lg.value) != 0:
            raise CfgError(f"{r.path}:{lg.line}: key 'logistic': AlexeyAB's logistic="
                           f"{lg.value} (self-layer activation) is not supported")

    def after_common_keys(self, r, L, messages):
        lr_opt = r.peek("learning_rate")
        if lr_opt is not None and lr_opt.value is not None:
            _warn(messages, f"{r.path}:{lr_opt.line}",
                  f"learning_rate={lr_opt.value} on [rnn] has no effect in Darknet "
                  "(the sublayers keep scale 1)")
        L.learning_rate_scale = 1.0

    def build(self, ls, b):
        return b.cls("RNNLayer", ls.section)(
            batch=b.streams, inputs=ls.inputs, outputs=ls.outputs, steps=b.time_steps,
            activation=ls.activation, batch_normalize=ls.batch_normalize,
            shortcut=ls.shortcut, fixes=b.fixes, stateful=b.stateful, **b.extra())

    def check_trainable(self, ls, layer):
        return _bn_one_row(ls, layer, "1 stream per time step")

    def named_blocks(self, layer):
        return [("input_layer", layer.input_layer), ("self_layer", layer.self_layer),
                ("output_layer", layer.output_layer)]

    def weight_blocks(self, layer):
        return [blk for _, blk in self.named_blocks(layer)]

    def entry(self, ls, blocks):
        # Darknet reads dontloadscales from the rnn's sublayers, where it is 0
        return entry_for_layer(ls, blocks, dontloadscales=False)

    def reset_state(self, layer, streams=None):
        layer.reset_state(streams)

    def state_arrays(self, layer):
        return [layer.state, layer.carry]

    def record_grad_norms(self, layer, on):
        layer.record_grad_norms = bool(on)
        return True


@register
class Softmax(LayerType):
    name = "softmax"
    sections = ("[softmax]", "[soft]")
    has_cost = True

    def parse(self, r, L, strict, messages):
        L.outputs = L.inputs
        L.groups = r.find_int("groups", 1)
        if L.groups <= 0 or L.inputs % L.groups != 0:
            raise _err(r, "groups", f"groups={L.groups} must be positive and divide "
                       f"the layer inputs ({L.inputs})")
        L.temperature = r.find_float("temperature", 1)
        tree, _ = r.value("tree")
        if tree is not None:
            raise _err(r, "tree", f"tree={tree}: hierarchical softmax is not supported")
        L.spatial = r.find_float("spatial", 0)
        L.noloss = r.find_int("noloss", 0) != 0

    def build(self, ls, b):
        from .fixes import FIX_SOFTMAX_TEMPERATURE
        return b.cls("SoftmaxLayer", ls.section)(
            batch=b.batch, inputs=ls.inputs, groups=ls.groups, temperature=ls.temperature,
            noloss=ls.noloss, fixes=b.fixes & FIX_SOFTMAX_TEMPERATURE, **b.extra(False))

    def forward(self, layer, inp, truth, train):
        layer.forward(inp, truth)

    def backward(self, layer, inp, prev_delta, fixes):
        layer.backward(prev_delta)

    def set_temperature(self, layer, temperature):
        layer.temperature = temperature


@register
class Cost(LayerType):
    name = "cost"
    sections = ("[cost]",)
    network_output = False
    has_cost = True

    def parse(self, r, L, strict, messages):
        L.outputs = L.inputs
        ct = r.find_str("type", "sse")
        if ct not in COST_TYPES:
            if strict:
                raise _err(r, "type", f"unknown cost type '{ct}' (expected one of "
                           + ", ".join(COST_TYPES) + ")")
            _warn(messages, r.where("type"), f"Couldn't find cost type {ct}, going with SSE")
            ct = "sse"
        L.cost_type = ct
        L.scale = r.find_float("scale", 1)
        L.ratio = r.find_float("ratio", 0)
        L.noobj = r.find_float("noobj", 1)
        L.thresh = r.find_float("thresh", 0)

    def build(self, ls, b):
        return b.cls("CostLayer", ls.section)(
            batch=b.batch, inputs=ls.inputs, cost_type=ls.cost_type, scale=ls.scale,
            **b.extra(False))

    def forward(self, layer, inp, truth, train):
        layer.forward(inp, truth)

    def backward(self, layer, inp, prev_delta, fixes):
        layer.backward(prev_delta)


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
ALLOC_FLOATS = {
    "connected": (_connected_floats, "output"),
    "rnn": (_rnn_floats, "output"),
    "softmax": (_rows_floats(3), None),
    "cost": (_rows_floats(2), None),
}


def alloc_bytes(ls: LayerSpec, streams: int, time_steps: int, itemsize: int = 4):
    """(bytes, key) a layer of this spec allocates when built with `streams`
    streams of `time_steps` steps; key is the cfg key that sets its size
    (None: the size follows its inputs and the [net] batch)."""
    floats, key = ALLOC_FLOATS.get(ls.type, (_connected_floats, "output"))
    return int(floats(ls, int(streams), int(time_steps))) * int(itemsize), key
