"""Darknet's [gru] layer in NumPy: the forward of gru_layer.c, and BPTT.

Darknet's CPU build has an empty GRU backward; that is the default here
(fixes without FIX_GRU_BACKWARD): the sublayers' update buffers get nothing,
so training changes a GRU only by weight decay, and no delta reaches the
layer below. FIX_GRU_BACKWARD gives backpropagation through time within a
datum (the gradient stops at the state the datum started from).
"""
import numpy as np

from darknet_rnn._checks import Buffer as _Buffer
from darknet_rnn.fixes import FIX_GRU_BACKWARD

from ._common import (_check_array, _check_dtype, _check_fixes, _check_int, FIX_BN_GRADIENT,
                      FIX_BN_STEP_STATS, activate, gradient)
from .connected import ConnectedLayer


class GRULayer:
    """Darknet's [gru]: six linear connected sublayers and a carried state.

        z  = logistic(uz x + wz s)          update gate (weights the OLD state)
        r  = logistic(ur x + wr s)          reset gate
        h  = act(uh x + wh (r*s))           candidate: logistic, or tanh (tanh=True)
        s' = z*s + (1-z)*h                  the step's output and the next state

    batch = streams B, steps = T; input and output have T*B time-major rows.
    The state is never reset by forward (Darknet's CPU behaviour, training
    included): call reset_state().
    """
    type = "gru"
    SUBLAYERS = ("uz", "wz", "ur", "wr", "uh", "wh")    # Darknet's creation (rand()) order

    state = _Buffer()              # (batch, outputs) carried between calls
    states = _Buffer()             # (steps+1, batch, outputs) the state each step starts from
    z = _Buffer()                  # (steps*batch, outputs) update gate
    r = _Buffer()                  # (steps*batch, outputs) reset gate
    h = _Buffer()                  # (steps*batch, outputs) candidate
    forgot_state = _Buffer()       # (steps*batch, outputs) r*s, the input of wh
    delta = _Buffer()              # (steps*batch, outputs)

    def __init__(self, batch, inputs, outputs, steps, batch_normalize=False, tanh=False,
                 fixes=0, dtype=np.float32):
        self.batch = _check_int("batch", batch)
        self.inputs = _check_int("inputs", inputs)
        self.outputs = _check_int("outputs", outputs)
        self.steps = _check_int("steps", steps)
        self.batch_normalize = bool(batch_normalize)
        self.tanh = bool(tanh)
        self.fixes = fixes
        self.dtype = dt = _check_dtype(dtype)
        B, T, H = self.batch, self.steps, self.outputs
        sub = dict(batch=B, outputs=H, activation="linear",
                   batch_normalize=self.batch_normalize, steps=T, dtype=dt)
        for name in self.SUBLAYERS:
            ins = self.inputs if name[0] == "u" else H
            setattr(self, name, ConnectedLayer(inputs=ins, **sub))
        self._state = np.zeros((B, H), dt)
        self._states = np.zeros((T + 1, B, H), dt)
        for name in ("z", "r", "h", "forgot_state", "delta"):
            setattr(self, "_" + name, np.zeros((T * B, H), dt))

    @property
    def fixes(self):
        """FIX_GRU_BACKWARD enables backward; the BN bits go to the sublayers."""
        return self._fixes

    @fixes.setter
    def fixes(self, value):
        self._fixes = _check_fixes(value)

    @property
    def output(self):
        """(T*B, outputs): the state after each step (a view of states[1:])."""
        return self._states[1:].reshape(self.steps * self.batch, self.outputs)

    @property
    def sublayers(self):
        return tuple(getattr(self, n) for n in self.SUBLAYERS)

    @property
    def activation(self):
        """The candidate's activation."""
        return "tanh" if self.tanh else "logistic"

    def __repr__(self):
        extra = ", batch_normalize=True" if self.batch_normalize else ""
        extra += ", tanh=True" if self.tanh else ""
        extra += f", fixes={self.fixes}" if self.fixes else ""
        return (f"GRULayer(batch={self.batch}, inputs={self.inputs}, outputs={self.outputs}, "
                f"steps={self.steps}{extra}, dtype={np.dtype(self.dtype).name})")

    def reset_state(self):
        """Zero the carried state (Darknet has no CPU reset)."""
        self.state[...] = 0

    def state_arrays(self):
        """The arrays carried from one call to the next."""
        return [self.state]

    def forward(self, input, train=True):
        """input: (T*B, inputs). Starts from the carried state, leaves the
        last step's state there."""
        B, T = self.batch, self.steps
        input = _check_array("input", input, T * B, self.inputs, self.dtype)
        train = bool(train)
        for layer in self.sublayers:
            layer.delta[...] = 0
        if train:
            self.delta[...] = 0
        self.states[0] = self.state
        with np.errstate(all="ignore"):
            for t in range(T):
                rows = slice(t * B, (t + 1) * B)
                x, s = input[rows], self.states[t]               # (B, inputs), (B, H)
                self.wz.forward(s, train, t)
                self.wr.forward(s, train, t)
                self.uz.forward(x, train, t)
                self.ur.forward(x, train, t)
                self.uh.forward(x, train, t)
                z = activate(self.uz.output[rows] + self.wz.output[rows], "logistic")
                r = activate(self.ur.output[rows] + self.wr.output[rows], "logistic")
                self.z[rows], self.r[rows] = z, r
                self.forgot_state[rows] = s * r
                self.wh.forward(self.forgot_state[rows], train, t)
                h = activate(self.uh.output[rows] + self.wh.output[rows], self.activation)
                self.h[rows] = h
                self.states[t + 1] = z * s + (1 - z) * h        # Darknet's weighted_sum
        self.state[...] = self.states[T]

    def backward(self, input, prev_delta=None):
        """Nothing (Darknet) unless fixes & FIX_GRU_BACKWARD: then BPTT over
        the steps of the last training forward; prev_delta (T*B, inputs)
        receives the input delta."""
        B, T, H = self.batch, self.steps, self.outputs
        input = _check_array("input", input, T * B, self.inputs, self.dtype)
        if prev_delta is not None:
            prev_delta = _check_array("prev_delta", prev_delta, T * B, self.inputs, self.dtype,
                                      writable=True)
        fixes = self.fixes
        if not fixes & FIX_GRU_BACKWARD:
            return                                   # Darknet: backward_gru_layer is empty
        bn = fixes & FIX_BN_GRADIENT
        with np.errstate(all="ignore"):
            for t in reversed(range(T)):
                rows = slice(t * B, (t + 1) * B)
                prev_rows = slice((t - 1) * B, t * B)
                stats = t if fixes & FIX_BN_STEP_STATS else T - 1
                x = input[rows]
                dx = None if prev_delta is None else prev_delta[rows]
                s, dh = self.states[t], self.delta[rows]
                z, r, h = self.z[rows], self.r[rows], self.h[rows]
                # candidate: uh, and wh, whose input delta is dL/d(r*s)
                gh = dh * (1 - z)
                gh *= gradient(h, self.activation)
                self.wh.delta[rows] = gh
                self.uh.delta[rows] = gh
                dfs = np.zeros((B, H), self.dtype)
                self.wh.backward(self.forgot_state[rows], dfs, t, stats, bn)
                self.uh.backward(x, dx, t, stats, bn)
                # update gate: s' = z*s + (1-z)*h
                gz = dh * (s - h)
                gz *= gradient(z, "logistic")
                self.wz.delta[rows] = gz
                self.uz.delta[rows] = gz
                # reset gate: wh saw r*s
                gr = dfs * s
                gr *= gradient(r, "logistic")
                self.wr.delta[rows] = gr
                self.ur.delta[rows] = gr
                # dL/ds: the direct paths through z*s and r*s, then wz and wr
                dprev = None
                if t > 0:
                    dprev = self.delta[prev_rows]
                    dprev += dh * z + dfs * r
                self.wz.backward(s, dprev, t, stats, bn)
                self.wr.backward(s, dprev, t, stats, bn)
                self.uz.backward(x, dx, t, stats, bn)
                self.ur.backward(x, dx, t, stats, bn)

    def update(self, learning_rate, momentum, decay, batch):
        """Darknet's SGD on the six sublayers."""
        for layer in self.sublayers:
            layer.update(learning_rate, momentum, decay, batch)
