"""The C-backed Darknet layers: [connected], [rnn], [softmax], [cost],
[dropout], and the shared argument helpers; the loss-row mask of the
softmax/cost layers (an extension). See darknet_rnn.layers."""
import numpy as np

from .. import _ffi
from .._ffi import check, ffi, fptr, lib
from .._checks import Buffer as _Buffer, check_array as _check_array, check_int, reset_streams
from ..activations import activation_index
from ..fixes import FIX_ALL
from ..optim import UpdateArgs, block_params, sgd_update_native

COST_TYPES = {"sse": lib.DN_COST_SSE, "masked": lib.DN_COST_MASKED, "L1": lib.DN_COST_L1,
              "seg": lib.DN_COST_SEG, "smooth": lib.DN_COST_SMOOTH, "wgan": lib.DN_COST_WGAN}


def positive_int(value, name):
    return check_int(name, value)


def check_array(arr, name, rows, cols, writable=False):
    return _check_array(name, arr, rows, cols, np.float32, writable)


def fixes_property():
    """The `fixes` attribute of a layer whose C struct has a dn_fix field:
    the FIX_* bits, unknown bits refused."""
    def get(self):
        return int(self._c.fixes)

    def set(self, value):
        value = int(value)
        if value & ~FIX_ALL:
            raise ValueError(f"fixes: unknown bits in {value:#x}")
        self._c.fixes = value
    return property(get, set, doc="dn_fix bits (0: Darknet's backward)")


def _ctx(ctx):
    return (ctx or _ffi.default_context()).ptr


def _set_precision(layer, precision, blocks):
    from ..packed import inference_packs
    layer._packs = inference_packs(precision, _ctx(layer.ctx), blocks)
    layer.precision = precision


def _current(layer, ctx, blocks):
    """The layer's inference packs, remade if the context's kernel changed."""
    p = layer._packs
    if p is not None and p.kind == lib.DN_WPACK_F32 and p.kernel != ctx.kernel:
        _set_precision(layer, layer.precision, blocks)
        p = layer._packs
    return p


# --------------------------------------------------------------------------

class ConnectedLayer:
    """Darknet's [connected]: output = f(input . weights^T + biases), or with
    batch_normalize f(BN(input . weights^T)).

    batch: rows per call; steps: row blocks allocated (1 for a plain layer;
    T for an RNN sublayer, where each call works on one step's `batch` rows).
    """
    type = "connected"

    weights = _Buffer()
    biases = _Buffer()
    weight_updates = _Buffer()
    bias_updates = _Buffer()
    output = _Buffer()
    delta = _Buffer()
    scales = _Buffer()
    scale_updates = _Buffer()
    rolling_mean = _Buffer()
    rolling_variance = _Buffer()
    mean = _Buffer()
    variance = _Buffer()
    x = _Buffer()
    x_norm = _Buffer()

    def __init__(self, batch, inputs, outputs, activation="logistic", batch_normalize=False,
                 steps=1, learning_rate_scale=1.0, ctx=None, _struct=None, _owner=None):
        self.batch = positive_int(batch, "batch")
        self.inputs = positive_int(inputs, "inputs")
        self.outputs = positive_int(outputs, "outputs")
        self.steps = positive_int(steps, "steps")
        self.activation = activation
        act = activation_index(activation)
        self.batch_normalize = bool(batch_normalize)
        self.ctx = ctx
        rows = self.steps * self.batch
        z = lambda *shape: np.zeros(shape, dtype=np.float32)  # noqa: E731
        self._weights = z(self.outputs, self.inputs)
        self._biases = z(self.outputs)
        self._weight_updates = z(self.outputs, self.inputs)
        self._bias_updates = z(self.outputs)
        self._output = z(rows, self.outputs)
        self._delta = z(rows, self.outputs)
        bn = self.batch_normalize
        self._scales = np.ones(self.outputs, dtype=np.float32) if bn else None
        self._scale_updates = z(self.outputs) if bn else None
        self._rolling_mean = z(self.outputs) if bn else None
        self._rolling_variance = z(self.outputs) if bn else None
        self._mean = z(self.steps, self.outputs) if bn else None
        self._variance = z(self.steps, self.outputs) if bn else None
        self._x = z(rows, self.outputs) if bn else None
        self._x_norm = z(rows, self.outputs) if bn else None
        self._scratch = z(2, self.outputs) if bn else None
        self._bn_factors = np.zeros((3, self.outputs), dtype=np.float64) if bn else None

        self._owner = _owner          # keeps an enclosing struct alive
        self.precision, self._packs = "fp32", None     # inference packs (packed.py)
        c = _struct if _struct is not None else ffi.new("dn_connected *")
        self._c = c
        c.batch, c.steps, c.inputs, c.outputs = self.batch, self.steps, self.inputs, self.outputs
        c.activation = act
        c.batch_normalize = int(bn)
        c.learning_rate_scale = float(learning_rate_scale)
        for name in ("weights", "biases", "weight_updates", "bias_updates", "output", "delta"):
            setattr(c, name, fptr(getattr(self, "_" + name)))
        if bn:
            for name in ("scales", "scale_updates", "rolling_mean", "rolling_variance",
                         "mean", "variance", "x", "x_norm"):
                setattr(c, name, fptr(getattr(self, "_" + name)))
            c.mean_delta = fptr(self._scratch[0])
            c.variance_delta = fptr(self._scratch[1])
            c.bn_factors = ffi.cast("double *", ffi.from_buffer(self._bn_factors))

    @property
    def learning_rate_scale(self):
        return float(self._c.learning_rate_scale)

    @learning_rate_scale.setter
    def learning_rate_scale(self, value):
        self._c.learning_rate_scale = float(value)

    def _step(self, step, name="step"):
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)):
            raise TypeError(f"{name} must be an int")
        if not 0 <= step < self.steps:
            raise ValueError(f"{name} must be in [0, {self.steps}), got {step}")
        return int(step)

    def forward(self, input, train=True, step=0):
        """Forward one call: input (batch, inputs) -> rows of `step` in output."""
        step = self._step(step)
        check_array(input, "input", self.batch, self.inputs)
        ctx = _ctx(self.ctx)
        p = _current(self, ctx, (self,)) if not train else None
        check(lib.dn_connected_forward_wp(ctx, self._c, step, fptr(input), int(bool(train)),
                                          p.ptr if p else ffi.NULL), "connected forward")

    def set_precision(self, precision):
        """Inference weights: "fp32" (in place), "fp32-packed" or "bf16"
        copies (darknet_rnn.packed); made now and by pack_weights()."""
        _set_precision(self, precision, (self,))

    def pack_weights(self):
        """Refresh the inference copies from the weights (after editing them)."""
        _set_precision(self, self.precision, (self,))

    def backward(self, input, prev_delta=None, step=0, stats_step=None, fixes=0):
        """Backward one call; prev_delta (batch, inputs) accumulates delta . weights."""
        step = self._step(step)
        stats_step = step if stats_step is None else self._step(stats_step, "stats_step")
        check_array(input, "input", self.batch, self.inputs)
        pd = ffi.NULL
        if prev_delta is not None:
            check_array(prev_delta, "prev_delta", self.batch, self.inputs, writable=True)
            pd = fptr(prev_delta)
        check(lib.dn_connected_backward(_ctx(self.ctx), self._c, step, stats_step, int(fixes),
                                        fptr(input), pd), "connected backward")

    def update(self, learning_rate, momentum, decay, batch):
        """Darknet's SGD with momentum and decay on this layer's parameters
        (darknet_rnn.optim on the C core)."""
        sgd_update_native(block_params(self), UpdateArgs(learning_rate, momentum, decay, batch))

    def __repr__(self):
        bn = ", batch_normalize=True" if self.batch_normalize else ""
        return (f"ConnectedLayer(batch={self.batch}, inputs={self.inputs}, outputs={self.outputs}, "
                f"activation={self.activation!r}{bn}, steps={self.steps})")


class RNNLayer:
    """Darknet's [rnn]: three connected sublayers (input, self, output), a
    state of (steps+1, batch, outputs), batch = streams."""
    type = "rnn"

    state = _Buffer()

    def __init__(self, batch, inputs, outputs, steps, activation="logistic",
                 batch_normalize=False, shortcut=False, fixes=0, ctx=None, stateful=False):
        self.batch = positive_int(batch, "batch")
        self.inputs = positive_int(inputs, "inputs")
        self.outputs = positive_int(outputs, "outputs")
        self.steps = positive_int(steps, "steps")
        activation_index(activation)
        self.activation = activation
        self.batch_normalize = bool(batch_normalize)
        self.shortcut = bool(shortcut)
        self.ctx = ctx
        self._c = c = ffi.new("dn_rnn *")
        c.batch, c.steps, c.inputs, c.outputs = self.batch, self.steps, self.inputs, self.outputs
        c.shortcut = int(self.shortcut)
        self.fixes = fixes
        kw = dict(batch=self.batch, outputs=self.outputs, activation=activation,
                  batch_normalize=self.batch_normalize, steps=self.steps, ctx=ctx, _owner=c)
        self.input_layer = ConnectedLayer(inputs=self.inputs,
                                          _struct=ffi.addressof(c[0], "input_layer"), **kw)
        self.self_layer = ConnectedLayer(inputs=self.outputs,
                                         _struct=ffi.addressof(c[0], "self_layer"), **kw)
        self.output_layer = ConnectedLayer(inputs=self.outputs,
                                           _struct=ffi.addressof(c[0], "output_layer"), **kw)
        self._state = np.zeros((self.steps + 1, self.batch, self.outputs), dtype=np.float32)
        self._scratch = np.zeros((self.batch, self.outputs), dtype=np.float32)
        self._carry = np.zeros((self.batch, self.outputs), dtype=np.float32)
        self._grad_norms = np.zeros(self.steps, dtype=np.float32)
        c.state = fptr(self._state)
        c.scratch = fptr(self._scratch)
        c.carry = fptr(self._carry)
        c.stateful = int(bool(stateful))
        self.record_grad_norms = False
        self.precision, self._packs = "fp32", None     # inference packs (packed.py)
        self._train_pack = None                        # W_self, packed per training forward

    stateful = property(lambda self: bool(self._c.stateful),
                        doc="Training starts from the state the previous call ended with.")

    @stateful.setter
    def stateful(self, value):
        self._c.stateful = int(bool(value))

    @property
    def record_grad_norms(self):
        """When true, backward records grad_norms (see there)."""
        return self._c.grad_norms != ffi.NULL

    @record_grad_norms.setter
    def record_grad_norms(self, value):
        self._c.grad_norms = fptr(self._grad_norms) if value else ffi.NULL

    carry = _Buffer()              # (batch, outputs) state carried between training calls
    grad_norms = _Buffer()         # (steps,) |delta reaching h_{t+1}| of the last backward

    fixes = fixes_property()

    @property
    def output(self):
        return self.output_layer.output

    @property
    def delta(self):
        return self.output_layer.delta

    @property
    def sublayers(self):
        return (self.input_layer, self.self_layer, self.output_layer)

    def forward(self, input, train=True):
        """input (steps*batch, inputs), time-major."""
        check_array(input, "input", self.steps * self.batch, self.inputs)
        ctx = _ctx(self.ctx)
        infer, tp = ffi.NULL, ffi.NULL
        if train:
            tp = self._self_pack(ctx)
        else:
            p = _current(self, ctx, self.sublayers)
            infer = p.ptr if p else ffi.NULL
        check(lib.dn_rnn_forward_wp(ctx, self._c, fptr(input), int(bool(train)), infer, tp),
              "rnn forward")

    def _self_pack(self, ctx):
        """The buffer the fast training forward packs W_self into (none for
        the reference kernel)."""
        if ctx.kernel == lib.DN_KERNEL_REFERENCE:
            return ffi.NULL
        if self._train_pack is None or self._train_pack.kernel != ctx.kernel:
            from ..packed import Packs
            self._train_pack = Packs(lib.DN_WPACK_F32, ctx.kernel, [(self.outputs,) * 2])
        return self._train_pack.ptr

    def set_precision(self, precision):
        """Inference weights of the three sublayers: "fp32" (in place),
        "fp32-packed" or "bf16" copies (darknet_rnn.packed)."""
        _set_precision(self, precision, self.sublayers)

    def pack_weights(self):
        """Refresh the inference copies from the weights (after editing them)."""
        _set_precision(self, self.precision, self.sublayers)

    def backward(self, input, prev_delta=None):
        """BPTT over the steps of the last training forward (Darknet's order)."""
        check_array(input, "input", self.steps * self.batch, self.inputs)
        pd = ffi.NULL
        if prev_delta is not None:
            check_array(prev_delta, "prev_delta", self.steps * self.batch, self.inputs,
                        writable=True)
            pd = fptr(prev_delta)
        ctx = _ctx(self.ctx)
        check(lib.dn_rnn_backward_wp(ctx, self._c, fptr(input), pd, self._self_pack(ctx)),
              "rnn backward")

    def update(self, learning_rate, momentum, decay, batch):
        """Darknet's SGD on the input, self and output sublayers."""
        params = [p for layer in self.sublayers for p in block_params(layer)]
        sgd_update_native(params, UpdateArgs(learning_rate, momentum, decay, batch))

    def reset_state(self, streams=None):
        """Zero the recurrent state (and the training carry) of every stream,
        or only of the listed streams (Darknet has no CPU reset)."""
        reset_streams(self, streams)

    def __repr__(self):
        extra = ", batch_normalize=True" if self.batch_normalize else ""
        extra += ", shortcut=True" if self.shortcut else ""
        return (f"RNNLayer(batch={self.batch}, inputs={self.inputs}, outputs={self.outputs}, "
                f"steps={self.steps}, activation={self.activation!r}{extra})")


class SoftmaxLayer:
    """Darknet's [softmax] with its cross-entropy loss (SPEC section 6)."""
    type = "softmax"

    output = _Buffer()
    delta = _Buffer()
    loss = _Buffer()

    def __init__(self, batch, inputs, groups=1, temperature=1.0, noloss=False, fixes=0):
        self.batch = positive_int(batch, "batch")
        self.inputs = self.outputs = positive_int(inputs, "inputs")
        self.groups = positive_int(groups, "groups")
        if self.inputs % self.groups:
            raise ValueError(f"groups ({groups}) must divide inputs ({inputs})")
        self.noloss = bool(noloss)
        self._output = np.zeros((self.batch, self.inputs), dtype=np.float32)
        self._delta = np.zeros_like(self._output)
        self._loss = np.zeros_like(self._output)
        self._cost = ffi.new("float *")
        self.cost = None
        self._c = c = ffi.new("dn_softmax *")
        c.batch, c.inputs, c.groups, c.noloss = self.batch, self.inputs, self.groups, int(self.noloss)
        c.output, c.delta, c.loss = fptr(self._output), fptr(self._delta), fptr(self._loss)
        self.temperature = temperature
        self.fixes = fixes

    @property
    def temperature(self):
        return float(self._c.temperature)

    @temperature.setter
    def temperature(self, value):
        value = float(value)
        if not value > 0:
            raise ValueError(f"temperature must be > 0, got {value}")
        self._c.temperature = value

    @property
    def fixes(self):
        return int(self._c.fixes)

    @fixes.setter
    def fixes(self, value):
        self._c.fixes = int(value)

    def forward(self, input, truth=None):
        check_array(input, "input", self.batch, self.inputs)
        tp = ffi.NULL
        if truth is not None:
            check_array(truth, "truth", self.batch, self.inputs)
            tp = fptr(truth)
        check(lib.dn_softmax_forward(self._c, fptr(input), tp, self._cost), "softmax forward")
        self.cost = float(self._cost[0]) if truth is not None and not self.noloss else None

    def backward(self, prev_delta):
        if prev_delta is None:
            return
        check_array(prev_delta, "prev_delta", self.batch, self.inputs, writable=True)
        check(lib.dn_softmax_backward(self._c, fptr(prev_delta)), "softmax backward")


class CostLayer:
    """Darknet's [cost] (SPEC section 7). Types: sse, masked, L1, seg, smooth, wgan."""
    type = "cost"

    output = _Buffer()
    delta = _Buffer()

    def __init__(self, batch, inputs, cost_type="sse", scale=1.0):
        self.batch = positive_int(batch, "batch")
        self.inputs = self.outputs = positive_int(inputs, "inputs")
        if cost_type not in COST_TYPES:
            raise ValueError(f"cost_type: unknown cost type {cost_type!r}; expected one of "
                             + ", ".join(COST_TYPES))
        self.cost_type = cost_type
        self.scale = float(np.float32(scale))
        self._output = np.zeros((self.batch, self.inputs), dtype=np.float32)
        self._delta = np.zeros_like(self._output)
        self._cost = ffi.new("float *")
        self.cost = None
        self._c = c = ffi.new("dn_cost *")
        c.batch, c.inputs, c.cost_type, c.scale = self.batch, self.inputs, COST_TYPES[cost_type], self.scale
        c.output, c.delta = fptr(self._output), fptr(self._delta)

    def forward(self, input, truth=None):
        """With truth: errors, delta and cost (masked writes -1234 into input).
        Without truth nothing happens, as in Darknet's predict."""
        if truth is None:
            return
        check_array(input, "input", self.batch, self.inputs, writable=self.cost_type == "masked")
        check_array(truth, "truth", self.batch, self.inputs)
        check(lib.dn_cost_forward(self._c, fptr(input), fptr(truth), self._cost), "cost forward")
        self.cost = float(self._cost[0])

    def backward(self, prev_delta):
        if prev_delta is None:
            return
        check_array(prev_delta, "prev_delta", self.batch, self.inputs, writable=True)
        check(lib.dn_cost_backward(self._c, fptr(prev_delta)), "cost backward")


class DropoutLayer:
    """Darknet's [dropout]: in training, each element is zeroed with
    `probability` and the others are scaled by 1/(1 - probability), the mask
    drawn with rand_uniform(0, 1) from `rng` (a GlibcRandom: the network's
    rand() stream); in inference the input passes unchanged, nothing drawn.

    output, delta: the previous layer's output and delta, as Darknet wires
    the layer (forward then rewrites that output in place, backward masks
    that delta in place); None gives the layer its own buffers (out of place:
    output = mask(input), prev_delta += mask(delta)). `rand` keeps the draws
    of the last training forward.
    """
    type = "dropout"

    output = _Buffer()
    delta = _Buffer()
    rand = _Buffer()

    def __init__(self, batch, inputs, probability=0.5, rng=None, output=None, delta=None):
        from .._randstate import STATE_WORDS
        self.batch = positive_int(batch, "batch")
        self.inputs = self.outputs = positive_int(inputs, "inputs")
        p = float(np.float32(probability))
        if not 0.0 <= p < 1.0:
            raise ValueError(f"probability must be in [0, 1), got {probability}")
        self.probability = p
        self.scale = float(np.float32(1.0 / (1.0 - p)))     # 1./(1.-probability), to float
        self.rng = rng
        shape = (self.batch, self.inputs)
        self._output = (np.zeros(shape, np.float32) if output is None
                        else check_array(output, "output", *shape, writable=True))
        self._delta = (np.zeros(shape, np.float32) if delta is None
                       else check_array(delta, "delta", *shape, writable=True))
        self._rand = np.zeros(shape, np.float32)
        self._state = np.zeros(STATE_WORDS, np.uint32)
        self._c = c = ffi.new("dn_dropout *")
        c.n = self.batch * self.inputs
        c.probability = p
        c.scale = self.scale
        c.rand = fptr(self._rand)

    def forward(self, input, train=True):
        """input (batch, inputs). In place when input is the layer's output."""
        from .._randstate import get_state, set_state
        check_array(input, "input", self.batch, self.inputs)
        if not train:
            check(lib.dn_dropout_forward(self._c, ffi.NULL, fptr(input), fptr(self._output), 0),
                  "dropout forward")
            return
        if self.rng is None:
            raise ValueError("a dropout layer needs rng= (a GlibcRandom) to train")
        get_state(self.rng, self._state)
        st = ffi.cast("unsigned int *", ffi.from_buffer(self._state))
        check(lib.dn_dropout_forward(self._c, st, fptr(input), fptr(self._output), 1),
              "dropout forward")
        set_state(self.rng, self._state)

    def backward(self, prev_delta):
        """Mask prev_delta in place when it is the layer's delta; otherwise
        prev_delta += mask(delta). None: nothing to do."""
        if prev_delta is None:
            return
        check_array(prev_delta, "prev_delta", self.batch, self.inputs, writable=True)
        check(lib.dn_dropout_backward(self._c, fptr(self._delta), fptr(prev_delta)),
              "dropout backward")

    def __repr__(self):
        return (f"DropoutLayer(batch={self.batch}, inputs={self.inputs}, "
                f"probability={self.probability:g})")





# --------------------------------------------------------------------------
# Sequence tasks (extensions): loss masks and the bidirectional [rnn]

def _keep_rows(keep, batch):
    """A (batch,) bool row mask as a uint8 C array for dn_mask_rows."""
    k = np.asarray(keep)
    if k.dtype != np.bool_ or k.shape != (batch,):
        raise ValueError(f"keep must be a bool array of shape ({batch},), got "
                         f"{k.dtype.name} {k.shape}")
    return np.ascontiguousarray(k, dtype=np.uint8)


def _mask_rows(layer, keep, loss):
    k = _keep_rows(keep, layer.batch)
    has_cost = layer.cost is not None
    check(lib.dn_mask_rows(layer.batch, layer.inputs, ffi.cast("unsigned char *", ffi.from_buffer(k)),
                           fptr(layer._delta), fptr(loss), layer._cost if has_cost else ffi.NULL),
          "mask rows")
    if has_cost:
        layer.cost = float(layer._cost[0])


def _softmax_mask_rows(self, keep):
    """Rows with keep False carry no loss: zero delta and loss there, and
    the cost becomes the sum over the other rows (Darknet's order)."""
    _mask_rows(self, keep, self._loss)


def _cost_mask_rows(self, keep):
    """Rows with keep False carry no loss: zero delta and per-element error
    (output) there, and the cost becomes the sum over the other rows."""
    _mask_rows(self, keep, self._output)


# attached here rather than written into the classes above, so that this
# extension stays one appended block of this module
SoftmaxLayer.mask_rows = _softmax_mask_rows
CostLayer.mask_rows = _cost_mask_rows
