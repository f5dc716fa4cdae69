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

import warnings
from dataclasses import dataclass
from typing import Dict, List, Optional

from ._cfgread import (COST_TYPES, LayerSpec, _err, _Reader, _warn, c_atof, c_atoi,
                       parse_activation)
from .errors import CfgError, DarknetTrainingWarning
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

    def darknet_lines(self, ls):
        return [_connected_line(ls.inputs, ls.outputs)]

    def describe(self, ls):
        lr = [] if ls.learning_rate_scale == 1 else [f"learning_rate={ls.learning_rate_scale:g}"]
        return _dense_words(ls, *lr)


def _sublayers_keep_scale_one(r, L, messages):
    """A learning_rate key on a layer made of sublayers ([rnn], [gru],
    [lstm]) is read but has no effect in Darknet."""
    lr_opt = r.peek("learning_rate")
    if lr_opt is not None and lr_opt.value is not None:
        _warn(messages, f"{r.path}:{lr_opt.line}",
              f"learning_rate={lr_opt.value} on {L.section} has no effect in Darknet "
              "(the sublayers keep scale 1)")
    L.learning_rate_scale = 1.0


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
        # an extension (no Darknet reads it): two blocks, outputs concatenated
        L.bidirectional = r.find_int("bidirectional", 0) != 0
        if L.bidirectional:
            L.outputs *= 2

    def variant(self, ls):
        return BIDIRECTIONAL_RNN if ls.bidirectional else self

    def after_common_keys(self, r, L, messages):
        _sublayers_keep_scale_one(r, L, messages)

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

    def darknet_lines(self, ls):
        return ([f"RNN Layer: {ls.inputs} inputs, {ls.outputs} outputs"]
                + ["\t\t" + _connected_line(i, ls.outputs)
                   for i in (ls.inputs, ls.outputs, ls.outputs)])

    def describe(self, ls):
        return _dense_words(ls, *(["shortcut"] if ls.shortcut else []))


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

    def darknet_lines(self, ls):
        return [f"softmax                                        {ls.inputs:4d}"]

    def describe(self, ls):
        words = [f"groups={ls.groups}"] if ls.groups != 1 else []
        words += [f"temperature={ls.temperature:g}"] if ls.temperature != 1 else []
        return ", ".join(words + (["noloss"] if ls.noloss else ["cross-entropy"]))

    def cost_unit(self, ls):
        return None if ls.noloss else "nats"


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

    def darknet_lines(self, ls):
        return [f"cost                                           {ls.inputs:4d}"]

    def describe(self, ls):
        return ls.cost_type + ("" if ls.scale == 1 else f", scale={ls.scale:g}")

    def cost_unit(self, ls):
        return ls.cost_type


@register
class Dropout(LayerType):
    """Darknet's [dropout]: `probability` (default 0.5). It owns no buffers:
    Darknet hands it the previous layer's output and delta, so in training it
    masks and scales that output in place (the previous layer's backward
    then sees the rewritten values) and masks its delta in place; in
    inference it is the identity. The mask is drawn from the network's
    rand() stream. With exact=True the layer works out of place instead, so
    the previous layer's backward sees its own output (the true gradient)."""
    name = "dropout"
    sections = ("[dropout]",)

    def parse(self, r, L, strict, messages):
        if L.index == 0:
            raise CfgError(f"{r.path}:{r.section.line}: [dropout] cannot be the first layer: "
                           "it works on the output of the layer before it")
        L.outputs = L.inputs
        p = r.find_float("probability", .5, quiet=False)
        if not 0.0 <= p < 1.0:
            raise _err(r, "probability", f"probability={p:g} must be at least 0 and below 1")
        L.probability = p        # an extra LayerSpec attribute, only on dropout layers

    def build(self, ls, b):
        prev = b.previous
        alias = {} if b.fixes else {"output": prev.output, "delta": prev.delta}
        return b.cls("DropoutLayer", ls.section)(
            batch=b.batch, inputs=ls.inputs, probability=ls.probability, rng=b.rng,
            **alias, **b.extra(False))

    def forward(self, layer, inp, truth, train):
        layer.forward(inp, train=train)

    def backward(self, layer, inp, prev_delta, fixes):
        layer.backward(prev_delta)

    def darknet_lines(self, ls):
        return [f"dropout       p = {ls.probability:.2f}               "
                f"{ls.inputs:4d}  ->  {ls.inputs:4d}"]

    def describe(self, ls):
        return f"probability={ls.probability:g}"

# --------------------------------------------------------------------------
# [gru] and [lstm]

# Keys of AlexeyAB's fork (its [conv_lstm], [crnn], [rnn]) that pjreddie's
# [gru]/[lstm] do not have: pjreddie would ignore them ("Unused field") and
# compute something other than the fork does. A value that changes nothing
# is accepted (and reported unused, as pjreddie does); any other is refused.
_FORK_KEYS = {
    "hidden": lambda v, L: c_atoi(v) == L.outputs,
    "peephole": lambda v, L: c_atoi(v) == 0,
    "xnor": lambda v, L: c_atoi(v) == 0,
    "bottleneck": lambda v, L: c_atoi(v) == 0,
    "shortcut": lambda v, L: c_atoi(v) == 0,
    "state_constrain": lambda v, L: c_atoi(v) == 0,
    "lstm_activation": lambda v, L: v == "tanh",
    "time_normalizer": lambda v, L: c_atof(v) == 1.0,
}


def _refuse_fork_keys(r, L, extra=None):
    checks = dict(_FORK_KEYS, **(extra or {}))
    bad = []
    for key, harmless in checks.items():
        opt = r.peek(key)
        if opt is not None and not harmless(opt.value or "", L):
            bad.append(opt)
    if bad:
        names = ", ".join(f"'{o.key}={o.value}' (line {o.line})" for o in bad)
        raise CfgError(f"{r.path}:{bad[0].line}: {L.section} at line {L.line}: unsupported "
                       f"option(s) {names}: these belong to AlexeyAB's fork (its [conv_lstm], "
                       f"[crnn] and [rnn] layers); Darknet's {L.section} ignores them, so this "
                       "network would not compute what the fork computes. Remove them.")


_GRU_NOTE = (
    "[gru]: training as Darknet's CPU build does. It has no backward pass for [gru]: a "
    "GRU's weights change only by weight decay, and no layer below a GRU learns. Train "
    "with exact=True (darknet-rnn train --exact) for true backpropagation through time.")
_LSTM_NOTE = (
    "[lstm]: training with Darknet's own CPU backward for [lstm] (upstream's CPU build "
    "crashes instead of training). It is not a true gradient: at the first time step it "
    "takes that step's own state as the previous one, its cell-gradient carry leaks from "
    "one datum into the next, and the next datum starts from the state after the first "
    "time step (with batch norm, every step's backward also uses the last step's "
    "statistics). Train with exact=True (darknet-rnn train --exact) for true "
    "backpropagation through time.")


class _Gated(LayerType):
    """What [gru] and [lstm] share: output and batch_normalize keys, linear
    connected sublayers, a state carried between datums, and a note the
    first time a layer trains with Darknet's (inexact) CPU behaviour."""
    zero_delta = False           # their forward zeroes their own and the sublayer deltas
    class_name = ""
    file_order: tuple = ()       # sublayers in .weights order
    init_order: tuple = ()       # sublayers in Darknet's creation (rand()) order
    note = ""

    def parse(self, r, L, strict, messages):
        L.outputs = r.find_int("output", 1, quiet=False)
        if L.outputs <= 0:
            raise _err(r, "output", f"output={L.outputs} must be positive")
        L.batch_normalize = r.find_int("batch_normalize", 0) != 0

    def after_common_keys(self, r, L, messages):
        _sublayers_keep_scale_one(r, L, messages)

    def build_kwargs(self, ls):
        return {}

    def build(self, ls, b):
        return b.cls(self.class_name, ls.section)(
            batch=b.streams, inputs=ls.inputs, outputs=ls.outputs, steps=b.time_steps,
            batch_normalize=ls.batch_normalize, fixes=b.fixes, **self.build_kwargs(ls),
            **b.extra())

    def check_trainable(self, ls, layer):
        return _bn_one_row(ls, layer, "1 stream per time step")

    def named_blocks(self, layer):
        return [(n, getattr(layer, n)) for n in self.file_order]

    def weight_blocks(self, layer):
        return [getattr(layer, n) for n in self.file_order]

    def init_blocks(self, layer):
        return [getattr(layer, n) for n in self.init_order]

    def entry(self, ls, blocks):
        # Darknet reads dontloadscales from the sublayers, where it is 0
        return entry_for_layer(ls, blocks, dontloadscales=False)

    def exact_bits(self, layer):
        """The fixes that make this layer's backward exact."""
        raise NotImplementedError

    def backward(self, layer, inp, prev_delta, fixes):
        bits = self.exact_bits(layer)
        if layer.fixes & bits != bits and not getattr(layer, "_darknet_note_shown", False):
            layer._darknet_note_shown = True
            warnings.warn(self.note, DarknetTrainingWarning, stacklevel=2)
        layer.backward(inp, prev_delta)

    def reset_state(self, layer, streams=None):
        layer.reset_state()

    def state_arrays(self, layer):
        return layer.state_arrays()


@register
class GRU(_Gated):
    name = "gru"
    sections = ("[gru]",)
    class_name = "GRULayer"
    file_order = ("wz", "wr", "wh", "uz", "ur", "uh")
    init_order = ("uz", "wz", "ur", "wr", "uh", "wh")
    note = _GRU_NOTE

    def exact_bits(self, layer):
        from .fixes import FIX_GRU_BACKWARD
        return FIX_GRU_BACKWARD

    def parse(self, r, L, strict, messages):
        super().parse(r, L, strict, messages)
        L.tanh = r.find_int("tanh", 0) != 0
        # an `activation` line is not read: Darknet reports it unused
        _refuse_fork_keys(r, L)

    def build_kwargs(self, ls):
        return {"tanh": ls.tanh}


@register
class LSTM(_Gated):
    name = "lstm"
    sections = ("[lstm]",)
    class_name = "LSTMLayer"
    file_order = ("wi", "wf", "wo", "wg", "ui", "uf", "uo", "ug")
    init_order = ("uf", "ui", "ug", "uo", "wf", "wi", "wg", "wo")
    note = _LSTM_NOTE

    def exact_bits(self, layer):
        from .fixes import (FIX_BN_GRADIENT, FIX_BN_STEP_STATS, FIX_LSTM_CELL_CARRY,
                            FIX_LSTM_NEXT_STATE, FIX_LSTM_PREV_STATE)
        bits = FIX_LSTM_PREV_STATE | FIX_LSTM_CELL_CARRY | FIX_LSTM_NEXT_STATE
        if layer.batch_normalize:
            bits |= FIX_BN_GRADIENT | FIX_BN_STEP_STATS
        return bits

    def parse(self, r, L, strict, messages):
        super().parse(r, L, strict, messages)
        # pjreddie ignores `activation` on [lstm]; the fork's [conv_lstm] applies it
        # to its sublayers, which are linear here
        _refuse_fork_keys(r, L, {"activation": lambda v, L: v == "linear"})

class BidirectionalRNN(RNN):
    """[rnn] with bidirectional=1, an extension (no Darknet reads it): two
    independent [rnn] blocks with the section's options, one over
    t = 0..T-1, one over t = T-1..0, outputs concatenated per step (forward
    half first) into `outputs` = 2 * output units. Chosen by RNN.variant;
    .weights holds the forward block's three sublayers, then the backward
    block's, each in Darknet's order (and rand() initialises them in that
    order). Every call is a whole sequence: no stateful training, no
    step-by-step predict."""
    whole_sequence = True

    def build(self, ls, b):
        if b.stateful:
            raise CfgError(
                f"stateful=True: layer {ls.index} {ls.section} (line {ls.line}) is "
                "bidirectional; its backward block starts at the end of each sequence, "
                "so there is no state to carry into the next call - train it without "
                "stateful")
        return b.cls("BiRNNLayer", ls.section + " with bidirectional=1")(
            batch=b.streams, inputs=ls.inputs, outputs=ls.outputs // 2, steps=b.time_steps,
            activation=ls.activation, batch_normalize=ls.batch_normalize,
            shortcut=ls.shortcut, fixes=b.fixes, **b.extra())

    def named_blocks(self, layer):
        one = RNN.named_blocks
        return [(f"{d}.{name}", blk)
                for d, rnn in zip(("forward", "backward"), layer.directions)
                for name, blk in one(self, rnn)]

    def state_arrays(self, layer):
        return [a for rnn in layer.directions for a in (rnn.state, rnn.carry)]


BIDIRECTIONAL_RNN = BidirectionalRNN()
