"""The C-backed [gru] and [lstm] layers (see darknet_rnn.layers)."""
import numpy as np

from .._ffi import check, ffi, fptr, lib
from .._checks import Buffer as _Buffer
from ..optim import UpdateArgs, block_params, sgd_update_native
from .core import (ConnectedLayer, _ctx, _current, _set_precision, check_array, fixes_property,
                   positive_int)


class _GatedLayer:
    """What [gru] and [lstm] share on the C core: linear connected sublayers
    living inside the C struct, a state carried between calls, and per-step
    buffers. Subclasses name the struct, sublayers and buffers."""
    SUBLAYERS = ()           # sublayer names, Darknet's creation (rand()) order
    _STRUCT = ""
    _CARRIED = ()            # (batch, outputs), kept between calls
    _HISTORY = ()            # (steps+1, batch, outputs)
    _PER_STEP = ()           # (steps*batch, outputs)
    _SCRATCH = 0             # (n, batch, outputs) backward scratch

    def __init__(self, batch, inputs, outputs, steps, batch_normalize, fixes, ctx):
        self.batch = positive_int(batch, "batch")
        self.inputs = positive_int(inputs, "inputs")
        self.outputs = positive_int(outputs, "outputs")
        self.steps = positive_int(steps, "steps")
        self.batch_normalize = bool(batch_normalize)
        self.ctx = ctx
        self._c = c = ffi.new(self._STRUCT + " *")
        c.batch, c.steps, c.inputs, c.outputs = self.batch, self.steps, self.inputs, self.outputs
        self.fixes = fixes
        B, T, H = self.batch, self.steps, self.outputs
        for name in self.SUBLAYERS:
            setattr(self, name, ConnectedLayer(
                batch=B, inputs=self.inputs if name[0] == "u" else H, outputs=H,
                activation="linear", batch_normalize=self.batch_normalize, steps=T, ctx=ctx,
                _struct=ffi.addressof(c[0], name), _owner=c))
        shapes = ([(n, (B, H)) for n in self._CARRIED] + [(n, (T + 1, B, H)) for n in self._HISTORY]
                  + [(n, (T * B, H)) for n in self._PER_STEP]
                  + [("scratch", (self._SCRATCH, B, H))])
        for name, shape in shapes:
            arr = np.zeros(shape, dtype=np.float32)
            setattr(self, "_" + name, arr)
            setattr(c, name, fptr(arr))
        self.precision, self._packs = "fp32", None     # inference packs (packed.py)

    fixes = fixes_property()

    @property
    def output(self):
        """(steps*batch, outputs): the state after each step (a view of states[1:])."""
        return self._states[1:].reshape(self.steps * self.batch, self.outputs)

    @property
    def sublayers(self):
        return tuple(getattr(self, n) for n in self.SUBLAYERS)

    def _call(self, fn, what, *args):
        check(fn(_ctx(self.ctx), self._c, *args), f"{self.type} {what}")

    def forward(self, input, train=True):
        """input (steps*batch, inputs), time-major; starts from the carried state.
        Inference reads the weights at the layer's precision (set_precision)."""
        check_array(input, "input", self.steps * self.batch, self.inputs)
        infer = ffi.NULL
        if not train:
            p = _current(self, _ctx(self.ctx), self.sublayers)
            infer = p.ptr if p else ffi.NULL
        self._call(getattr(lib, f"dn_{self.type}_forward_wp"), "forward", fptr(input),
                   int(bool(train)), infer)

    def set_precision(self, precision):
        """Inference weights of the sublayers: "fp32" (in place), "fp32-packed"
        or "bf16" copies (darknet_rnn.packed); training always reads fp32."""
        _set_precision(self, precision, self.sublayers)

    def pack_weights(self):
        """Refresh the inference copies from the weights (after editing them)."""
        _set_precision(self, self.precision, self.sublayers)

    def backward(self, input, prev_delta=None):
        """Backward over the steps of the last training forward (see fixes)."""
        check_array(input, "input", self.steps * self.batch, self.inputs)
        pd = ffi.NULL
        if prev_delta is not None:
            check_array(prev_delta, "prev_delta", self.steps * self.batch, self.inputs,
                        writable=True)
            pd = fptr(prev_delta)
        self._call(getattr(lib, f"dn_{self.type}_backward"), "backward", fptr(input), pd)

    def update(self, learning_rate, momentum, decay, batch):
        """Darknet's SGD on every sublayer."""
        params = [p for layer in self.sublayers for p in block_params(layer)]
        sgd_update_native(params, UpdateArgs(learning_rate, momentum, decay, batch))

    def state_arrays(self):
        """The arrays carried from one call to the next."""
        return [getattr(self, n) for n in self._CARRIED]

    def reset_state(self):
        """Zero the carried state (Darknet has no CPU reset)."""
        for a in self.state_arrays():
            a[...] = 0


class GRULayer(_GatedLayer):
    """Darknet's [gru]: z = logistic(uz x + wz s), r = logistic(ur x + wr s),
    h = act(uh x + wh (r*s)) (act logistic, or tanh with tanh=True),
    s' = z*s + (1-z)*h. Darknet's CPU backward is empty; fixes &
    FIX_GRU_BACKWARD gives BPTT."""
    type = "gru"
    SUBLAYERS = ("uz", "wz", "ur", "wr", "uh", "wh")
    _STRUCT = "dn_gru"
    _CARRIED = ("state",)
    _HISTORY = ("states",)
    _PER_STEP = ("z", "r", "h", "forgot_state", "delta")
    _SCRATCH = 3

    state = _Buffer()
    states = _Buffer()
    z = _Buffer()
    r = _Buffer()
    h = _Buffer()
    forgot_state = _Buffer()
    delta = _Buffer()

    def __init__(self, batch, inputs, outputs, steps, batch_normalize=False, tanh=False,
                 fixes=0, ctx=None):
        super().__init__(batch, inputs, outputs, steps, batch_normalize, fixes, ctx)
        self.tanh = bool(tanh)
        self._c.tanh = int(self.tanh)

    @property
    def activation(self):
        """The candidate's activation."""
        return "tanh" if self.tanh else "logistic"

    def __repr__(self):
        extra = ", batch_normalize=True" if self.batch_normalize else ""
        extra += ", tanh=True" if self.tanh else ""
        return (f"GRULayer(batch={self.batch}, inputs={self.inputs}, outputs={self.outputs}, "
                f"steps={self.steps}{extra})")


class LSTMLayer(_GatedLayer):
    """Darknet's [lstm]: gates f, i, o (logistic) and g (tanh) from
    w*(h) + u*(x); c' = f*c + i*g; h' = o*tanh(c'). The default backward is
    Darknet's CPU one; the FIX_LSTM_* bits make it exact."""
    type = "lstm"
    SUBLAYERS = ("uf", "ui", "ug", "uo", "wf", "wi", "wg", "wo")
    _STRUCT = "dn_lstm"
    _CARRIED = ("state", "cell_state", "dc")
    _HISTORY = ("states", "cells")
    _PER_STEP = ("f", "i", "g", "o", "delta")
    _SCRATCH = 3

    state = _Buffer()
    cell_state = _Buffer()
    dc = _Buffer()
    states = _Buffer()
    cells = _Buffer()
    f = _Buffer()
    i = _Buffer()
    g = _Buffer()
    o = _Buffer()
    delta = _Buffer()

    def __init__(self, batch, inputs, outputs, steps, batch_normalize=False, fixes=0,
                 ctx=None):
        super().__init__(batch, inputs, outputs, steps, batch_normalize, fixes, ctx)

    def __repr__(self):
        extra = ", batch_normalize=True" if self.batch_normalize else ""
        return (f"LSTMLayer(batch={self.batch}, inputs={self.inputs}, outputs={self.outputs}, "
                f"steps={self.steps}{extra})")


