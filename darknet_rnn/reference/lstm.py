"""Darknet's [lstm] layer in NumPy: the forward and the CPU backward of
lstm_layer.c (which upstream's CPU build never installs), and exact BPTT.

Darknet's backward is BPTT within a datum except for three departures, each
switched off by a FIX_* bit (FIX_ALL: the exact gradient of the forward,
the gradient stopping at the state the datum started from):

* FIX_LSTM_PREV_STATE - Darknet's step 0 uses step 0's own h and c as the
  "previous" ones (zeros when steps = 1): its buffers for them are filled
  only while walking back over steps >= 1;
* FIX_LSTM_CELL_CARRY - Darknet never resets the cell-gradient carry, so
  the last step of a datum also gets what step 0 of the previous one left;
* FIX_LSTM_NEXT_STATE - Darknet's backward overwrites the carried h and c
  while walking back, so the next datum starts from the state after step 0.

With batch norm, FIX_BN_STEP_STATS and FIX_BN_GRADIENT act as in the [rnn].
"""
import numpy as np

from darknet_rnn._checks import Buffer as _Buffer
from darknet_rnn.fixes import FIX_LSTM_CELL_CARRY, FIX_LSTM_NEXT_STATE, FIX_LSTM_PREV_STATE

from ._common import (_check_array, _check_dtype, _check_fixes, _check_int, FIX_BN_GRADIENT,
                      FIX_BN_STEP_STATS, activate, gradient)
from .connected import ConnectedLayer

# gate -> (activation, state-to-gate sublayer, input-to-gate sublayer)
GATES = {"f": ("logistic", "wf", "uf"), "i": ("logistic", "wi", "ui"),
         "g": ("tanh", "wg", "ug"), "o": ("logistic", "wo", "uo")}


class LSTMLayer:
    """Darknet's [lstm]: eight linear connected sublayers, a carried hidden
    state h and cell c.

        f = logistic(wf h + uf x)     i = logistic(wi h + ui x)
        g = tanh(wg h + ug x)         o = logistic(wo h + uo x)
        c' = f*c + i*g                h' = o*tanh(c')      (h' is the output)

    batch = streams B, steps = T; input and output have T*B time-major rows.
    """
    type = "lstm"
    SUBLAYERS = ("uf", "ui", "ug", "uo", "wf", "wi", "wg", "wo")  # Darknet's rand() order

    state = _Buffer()              # (batch, outputs) hidden state carried between calls
    cell_state = _Buffer()         # (batch, outputs) cell carried between calls
    dc = _Buffer()                 # (batch, outputs) Darknet's cell-gradient carry
    states = _Buffer()             # (steps+1, batch, outputs) h each step starts from
    cells = _Buffer()              # (steps+1, batch, outputs) c each step starts from
    f = _Buffer()                  # (steps*batch, outputs) gate activations
    i = _Buffer()
    g = _Buffer()
    o = _Buffer()
    delta = _Buffer()              # (steps*batch, outputs)

    def __init__(self, batch, inputs, outputs, steps, batch_normalize=False, fixes=0,
                 dtype=np.float32):
        self.batch = _check_int("batch", batch)
        self.inputs = _check_int("inputs", inputs)
        self.outputs = _check_int("outputs", outputs)
        self.steps = _check_int("steps", steps)
        self.batch_normalize = bool(batch_normalize)
        self.fixes = fixes
        self.dtype = dt = _check_dtype(dtype)
        B, T, H = self.batch, self.steps, self.outputs
        sub = dict(batch=B, outputs=H, activation="linear",
                   batch_normalize=self.batch_normalize, steps=T, dtype=dt)
        for name in self.SUBLAYERS:
            ins = self.inputs if name[0] == "u" else H
            setattr(self, name, ConnectedLayer(inputs=ins, **sub))
        for name in ("state", "cell_state", "dc"):
            setattr(self, "_" + name, np.zeros((B, H), dt))
        self._states = np.zeros((T + 1, B, H), dt)
        self._cells = np.zeros((T + 1, B, H), dt)
        for name in ("f", "i", "g", "o", "delta"):
            setattr(self, "_" + name, np.zeros((T * B, H), dt))

    @property
    def fixes(self):
        """FIX_LSTM_* bits switch Darknet's departures; BN bits go to the sublayers."""
        return self._fixes

    @fixes.setter
    def fixes(self, value):
        self._fixes = _check_fixes(value)

    @property
    def output(self):
        """(T*B, outputs): h after each step (a view of states[1:])."""
        return self._states[1:].reshape(self.steps * self.batch, self.outputs)

    @property
    def sublayers(self):
        return tuple(getattr(self, n) for n in self.SUBLAYERS)

    def __repr__(self):
        extra = ", batch_normalize=True" if self.batch_normalize else ""
        extra += f", fixes={self.fixes}" if self.fixes else ""
        return (f"LSTMLayer(batch={self.batch}, inputs={self.inputs}, outputs={self.outputs}, "
                f"steps={self.steps}{extra}, dtype={np.dtype(self.dtype).name})")

    def reset_state(self):
        """Zero h, c and the cell-gradient carry (Darknet has no CPU reset)."""
        for a in self.state_arrays():
            a[...] = 0

    def state_arrays(self):
        """The arrays carried from one call to the next."""
        return [self.state, self.cell_state, self.dc]

    def forward(self, input, train=True):
        """input: (T*B, inputs). Starts from the carried h, c and leaves the
        last step's there."""
        B, T = self.batch, self.steps
        input = _check_array("input", input, T * B, self.inputs, self.dtype)
        train = bool(train)
        for layer in self.sublayers:
            layer.delta[...] = 0
        if train:
            self.delta[...] = 0
        self.states[0] = self.state
        self.cells[0] = self.cell_state
        with np.errstate(all="ignore"):
            for t in range(T):
                rows = slice(t * B, (t + 1) * B)
                x, h = input[rows], self.states[t]
                for name in ("wf", "wi", "wg", "wo"):
                    getattr(self, name).forward(h, train, t)
                for name in ("uf", "ui", "ug", "uo"):
                    getattr(self, name).forward(x, train, t)
                gate = {}
                for key, (act, w, u) in GATES.items():
                    pre = getattr(self, w).output[rows] + getattr(self, u).output[rows]
                    gate[key] = activate(pre, act)
                    getattr(self, key)[rows] = gate[key]
                c = self.cells[t] * gate["f"] + gate["i"] * gate["g"]
                self.cells[t + 1] = c
                self.states[t + 1] = activate(c, "tanh") * gate["o"]
        self.state[...] = self.states[T]
        self.cell_state[...] = self.cells[T]

    def backward(self, input, prev_delta=None):
        """BPTT over the steps of the last training forward, Darknet's order:
        per step the gates o, g, i, f, each the state-to-gate sublayer (input
        delta into dL/dh of the previous step) then the input-to-gate one
        (input delta into prev_delta, (T*B, inputs))."""
        B, T = self.batch, self.steps
        input = _check_array("input", input, T * B, self.inputs, self.dtype)
        if prev_delta is not None:
            prev_delta = _check_array("prev_delta", prev_delta, T * B, self.inputs, self.dtype,
                                      writable=True)
        fixes = self.fixes
        bn = fixes & FIX_BN_GRADIENT
        if not fixes & FIX_LSTM_PREV_STATE:
            # Darknet's buffers for step 0's "previous" state hold step 0's own
            # values (filled while at step 1), or zeros when there is one step.
            self.states[0] = self.states[1] if T > 1 else 0
            self.cells[0] = self.cells[1] if T > 1 else 0
        if fixes & FIX_LSTM_CELL_CARRY:
            self.dc[...] = 0
        with np.errstate(all="ignore"):
            for t in reversed(range(T)):
                rows = slice(t * B, (t + 1) * B)
                stats = t if fixes & FIX_BN_STEP_STATS else T - 1
                x = input[rows]
                dx = None if prev_delta is None else prev_delta[rows]
                h_prev, c_prev = self.states[t], self.cells[t]
                dh = self.delta[rows]
                dh_prev = self.delta[(t - 1) * B:t * B] if t > 0 else None
                f, i, g, o = self.f[rows], self.i[rows], self.g[rows], self.o[rows]
                tanh_c = activate(self.cells[t + 1], "tanh")
                dc = dh * o                                   # dL/dc' ...
                dc *= gradient(tanh_c, "tanh")
                dc += self.dc                                 # ... + the carry from t+1
                deltas = {"o": tanh_c * dh, "g": dc * i, "i": dc * g, "f": dc * c_prev}
                for key in ("o", "g", "i", "f"):
                    act, w, u = GATES[key]
                    d = deltas[key]
                    d *= gradient(getattr(self, key)[rows], act)
                    getattr(self, w).delta[rows] = d
                    getattr(self, w).backward(h_prev, dh_prev, t, stats, bn)
                    getattr(self, u).delta[rows] = d
                    getattr(self, u).backward(x, dx, t, stats, bn)
                self.dc[...] = dc * f
        if not fixes & FIX_LSTM_NEXT_STATE:
            self.state[...] = self.states[1]
            self.cell_state[...] = self.cells[1]

    def update(self, learning_rate, momentum, decay, batch):
        """Darknet's SGD on the eight sublayers."""
        for layer in self.sublayers:
            layer.update(learning_rate, momentum, decay, batch)
