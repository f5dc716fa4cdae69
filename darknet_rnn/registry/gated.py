"""Registry entries: Darknet's [gru] and [lstm]."""
from __future__ import annotations

import warnings  # noqa: F401

from .._cfgread import COST_TYPES, _err, _warn, c_atof, c_atoi  # noqa: F401
from ..errors import CfgError, DarknetTrainingWarning  # noqa: F401
from .dense import _sublayers_keep_scale_one  # noqa: F401
from ._base import (LayerType, register, _bn_one_row, _connected_line,  # noqa: F401
                    _dense_words, _parse_dense, entry_for_layer, block_params)

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
        from ..fixes import FIX_GRU_BACKWARD
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
        from ..fixes import (FIX_BN_GRADIENT, FIX_BN_STEP_STATS, FIX_LSTM_CELL_CARRY,
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

