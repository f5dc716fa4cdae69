"""A bidirectional [rnn] in NumPy (an extension; no Darknet has one)."""
import numpy as np

from darknet_rnn._checks import Buffer as _Buffer

from ._common import _check_array
from .rnn import RNNLayer


def reverse_steps(rows, steps):
    """Time reversal of time-major rows: (steps*batch, width) with its step
    blocks in reverse order (a new array)."""
    return rows.reshape(steps, -1, rows.shape[-1])[::-1].reshape(rows.shape)


class BiRNNLayer:
    """Two independent Darknet [rnn] blocks with the same options:

        forward_rnn  runs over t = 0..T-1 on the input x
        backward_rnn runs over the time-reversed input; its step k is time T-1-k
        output_t = [forward output_t, backward output at time t]   (2*units)

    `outputs` is 2*units, what the next layer sees. Every call is a whole
    sequence: the inference forward starts both blocks from zero (the
    backward block begins at the sequence's end, so there is nothing to
    carry into a later call), and there is no stateful training.

    Only copies and, in backward, one add per input element happen here, so
    the layer is as bitwise as its blocks (C core and twin alike).
    """
    type = "rnn"
    rnn_class = RNNLayer

    output = _Buffer()             # (T*B, 2*units)
    delta = _Buffer()              # (T*B, 2*units); the next layer adds into it
    reversed_input = _Buffer()     # (T*B, inputs): the input the backward block saw

    def __init__(self, batch, inputs, outputs, steps, activation="logistic",
                 batch_normalize=False, shortcut=False, fixes=0, dtype=np.float32):
        kw = dict(batch=batch, inputs=inputs, outputs=outputs, steps=steps,
                  activation=activation, batch_normalize=batch_normalize, shortcut=shortcut,
                  fixes=fixes, dtype=dtype)
        self.forward_rnn = self.rnn_class(**kw)
        self.backward_rnn = self.rnn_class(**kw)
        f = self.forward_rnn
        self.batch, self.inputs, self.steps, self.units = f.batch, f.inputs, f.steps, f.outputs
        self.outputs = 2 * self.units
        self.activation, self.batch_normalize, self.shortcut = activation, f.batch_normalize, f.shortcut
        self.dtype = dt = np.dtype(dtype).type
        rows = self.steps * self.batch
        self._output = np.zeros((rows, self.outputs), dt)
        self._delta = np.zeros((rows, self.outputs), dt)
        self._reversed_input = np.zeros((rows, self.inputs), dt)

    directions = property(lambda self: (self.forward_rnn, self.backward_rnn))
    sublayers = property(lambda self: self.forward_rnn.sublayers + self.backward_rnn.sublayers)

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

    def forward(self, input, train=True):
        """input (T*B, inputs), time-major: the whole sequence."""
        T, B, H = self.steps, self.batch, self.units
        input = _check_array("input", input, T * B, self.inputs, self.dtype)
        if not train:
            for d in self.directions:
                d.state[0] = 0
        self.reversed_input[...] = reverse_steps(input, T)
        self.forward_rnn.forward(input, train)
        self.backward_rnn.forward(self.reversed_input, train)
        out = self.output.reshape(T, B, 2 * H)
        out[:, :, :H] = self.forward_rnn.output.reshape(T, B, H)
        out[:, :, H:] = self.backward_rnn.output.reshape(T, B, H)[::-1]
        self.delta[...] = 0

    def backward(self, input, prev_delta=None):
        """After a training forward. prev_delta: None or writable (T*B,
        inputs); receives += the forward block's input delta, then the
        backward block's (re-reversed)."""
        T, B, H = self.steps, self.batch, self.units
        input = _check_array("input", input, T * B, self.inputs, self.dtype)
        if prev_delta is not None:
            prev_delta = _check_array("prev_delta", prev_delta, T * B, self.inputs, self.dtype,
                                      writable=True)
        delta = self.delta.reshape(T, B, 2 * H)
        # the blocks' forward zeroed their output deltas: copying is adding to 0
        self.forward_rnn.delta[...] = delta[:, :, :H].reshape(T * B, H)
        self.backward_rnn.delta[...] = delta[::-1, :, H:].reshape(T * B, H)
        self.forward_rnn.backward(input, prev_delta)
        if prev_delta is None:
            self.backward_rnn.backward(self.reversed_input, None)
            return
        reversed_delta = np.zeros_like(prev_delta)
        self.backward_rnn.backward(self.reversed_input, reversed_delta)
        with np.errstate(all="ignore"):
            prev_delta += reverse_steps(reversed_delta, T)

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
                f"steps={self.steps}, activation={self.activation!r}{extra}, "
                f"dtype={np.dtype(self.dtype).name})")
