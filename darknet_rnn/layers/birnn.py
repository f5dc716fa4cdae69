"""The C-backed bidirectional [rnn] (an extension; see darknet_rnn.layers)."""
import numpy as np

from .._checks import Buffer as _Buffer
from .._ffi import check, ffi, fptr, lib
from .core import RNNLayer, _ctx, _current, check_array, positive_int  # noqa: F401



class BiRNNLayer:
    """A bidirectional [rnn] (`bidirectional=1`, an extension): two
    independent Darknet [rnn] blocks with the same options, `forward_rnn`
    over t = 0..T-1 and `backward_rnn` over the time-reversed input; row
    t*batch + s of `output` is the forward block's output at t, then the
    backward block's at t (2*units values). `outputs` = 2*units.

    Each call is a whole sequence: an inference forward starts both blocks
    from zero (there is no state to carry into a later call, since the
    backward block starts at the sequence's end), and stateful training is
    not offered."""
    type = "rnn"

    output = _Buffer()
    delta = _Buffer()

    def __init__(self, batch, inputs, outputs, steps, activation="logistic",
                 batch_normalize=False, shortcut=False, fixes=0, ctx=None):
        kw = dict(batch=batch, inputs=inputs, outputs=outputs, steps=steps,
                  activation=activation, batch_normalize=batch_normalize, shortcut=shortcut,
                  fixes=fixes, ctx=ctx)
        self.forward_rnn = RNNLayer(**kw)
        self.backward_rnn = RNNLayer(**kw)
        f = self.forward_rnn
        self.batch, self.inputs, self.steps, self.units = f.batch, f.inputs, f.steps, f.outputs
        self.outputs = 2 * self.units
        self.activation, self.batch_normalize, self.shortcut = activation, f.batch_normalize, f.shortcut
        self.ctx = ctx
        rows = self.steps * self.batch
        self._output = np.zeros((rows, self.outputs), np.float32)
        self._delta = np.zeros((rows, self.outputs), np.float32)
        self._reversed_input = np.zeros((rows, self.inputs), np.float32)
        self._reversed_delta = np.zeros((rows, self.inputs), np.float32)
        self._c = c = ffi.new("dn_birnn *")
        c.batch, c.steps, c.inputs, c.outputs = self.batch, self.steps, self.inputs, self.units
        c.fwd, c.bwd = self.forward_rnn._c, self.backward_rnn._c
        c.reversed_input, c.reversed_delta = fptr(self._reversed_input), fptr(self._reversed_delta)
        c.output, c.delta = fptr(self._output), fptr(self._delta)

    directions = property(lambda self: (self.forward_rnn, self.backward_rnn))
    sublayers = property(lambda self: self.forward_rnn.sublayers + self.backward_rnn.sublayers)
    reversed_input = _Buffer()     # (T*B, inputs): the input the backward block saw

    @property
    def fixes(self):
        return self.forward_rnn.fixes

    @fixes.setter
    def fixes(self, value):
        for d in self.directions:
            d.fixes = value

    @property
    def record_grad_norms(self):
        return self.forward_rnn.record_grad_norms

    @record_grad_norms.setter
    def record_grad_norms(self, value):
        for d in self.directions:
            d.record_grad_norms = value

    @property
    def grad_norms(self):
        """(steps,): at time t, the norm of the delta reaching both blocks'
        states of time t (forward h_{t+1}, backward block's step T-1-t)."""
        f = self.forward_rnn.grad_norms.astype(np.float64)
        b = self.backward_rnn.grad_norms[::-1].astype(np.float64)
        return np.sqrt(f * f + b * b).astype(np.float32)

    def _packs(self, ctx):
        """Each direction's W_self buffer for ctx's kernel (as RNNLayer's own
        training uses, so the halves stay bitwise equal to it) and its
        inference packs (set_precision); ctx."""
        c = self._c
        c.fwd_pack = self.forward_rnn._self_pack(ctx)
        c.bwd_pack = self.backward_rnn._self_pack(ctx)
        infer = [_current(d, ctx, d.sublayers) for d in self.directions]
        c.fwd_infer, c.bwd_infer = (p.ptr if p else ffi.NULL for p in infer)
        return ctx

    @property
    def precision(self):
        return self.forward_rnn.precision

    def set_precision(self, precision):
        """Inference weights of both directions: "fp32" (in place),
        "fp32-packed" or "bf16" copies (darknet_rnn.packed)."""
        for d in self.directions:
            d.set_precision(precision)

    def pack_weights(self):
        """Refresh the inference copies from the weights (after editing them)."""
        for d in self.directions:
            d.pack_weights()

    def forward(self, input, train=True):
        """input (steps*batch, inputs), time-major; the whole sequence."""
        check_array(input, "input", self.steps * self.batch, self.inputs)
        ctx = self._packs(_ctx(self.ctx))
        check(lib.dn_birnn_forward(ctx, self._c, fptr(input), int(bool(train))),
              "bidirectional rnn forward")

    def backward(self, input, prev_delta=None):
        check_array(input, "input", self.steps * self.batch, self.inputs)
        pd = ffi.NULL
        if prev_delta is not None:
            check_array(prev_delta, "prev_delta", self.steps * self.batch, self.inputs,
                        writable=True)
            pd = fptr(prev_delta)
        ctx = self._packs(_ctx(self.ctx))
        check(lib.dn_birnn_backward(ctx, self._c, fptr(input), pd),
              "bidirectional rnn backward")

    def update(self, learning_rate, momentum, decay, batch):
        for d in self.directions:
            d.update(learning_rate, momentum, decay, batch)

    def reset_state(self, streams=None):
        for d in self.directions:
            d.reset_state(streams)

    def __repr__(self):
        extra = ", batch_normalize=True" if self.batch_normalize else ""
        extra += ", shortcut=True" if self.shortcut else ""
        return (f"BiRNNLayer(batch={self.batch}, inputs={self.inputs}, units={self.units}, "
                f"steps={self.steps}, activation={self.activation!r}{extra})")


