"""Darknet's [rnn] layer in NumPy: forward through time, then BPTT."""
import numpy as np

from darknet_rnn._checks import Buffer as _Buffer, reset_streams
from darknet_rnn.activations import activation_index

from ._common import (_check_array, _check_dtype, _check_fixes, _check_int, FIX_BN_GRADIENT,
                      FIX_BN_STEP_STATS, FIX_COPY_BEFORE_SCALE, FIX_SHORTCUT_CARRY,
                      FIX_STORED_STATE)
from .connected import ConnectedLayer


class RNNLayer:
    """Darknet's [rnn] (SPEC §5): three connected layers and a state.

        a_t = f(W_in x_t (+BN) + b_in)                 input_layer
        b_t = f(W_self h_t (+BN) + b_self)             self_layer
        h_{t+1} = (h_t if shortcut else 0) + a_t + b_t
        y_t = f(W_out h_{t+1} (+BN) + b_out)           output_layer

    The state is the sum of two separately activated projections, not the
    activation of a sum. batch = streams B, steps = T; input and output have
    T*B time-major rows.
    """
    type = "rnn"

    state = _Buffer()              # (steps+1, batch, outputs); block 0 is h_0
    carry = _Buffer()              # (batch, outputs) state carried between training calls
    grad_norms = _Buffer()         # (steps,) |delta reaching h_{t+1}| of the last backward

    def __init__(self, batch, inputs, outputs, steps, activation="logistic",
                 batch_normalize=False, shortcut=False, fixes=0, dtype=np.float32,
                 stateful=False):
        self.batch = _check_int("batch", batch)
        self.inputs = _check_int("inputs", inputs)
        self.outputs = _check_int("outputs", outputs)
        self.steps = _check_int("steps", steps)
        activation_index(activation, "activation")
        self.activation = activation
        self.batch_normalize = bool(batch_normalize)
        self.shortcut = bool(shortcut)
        self.fixes = fixes
        self.dtype = dt = _check_dtype(dtype)

        # learning_rate_scale stays 1: a learning_rate key on [rnn] has no effect (Q15).
        sub = dict(batch=self.batch, outputs=self.outputs, activation=activation,
                   batch_normalize=self.batch_normalize, steps=self.steps, dtype=dt)
        self.input_layer = ConnectedLayer(inputs=self.inputs, **sub)
        self.self_layer = ConnectedLayer(inputs=self.outputs, **sub)
        self.output_layer = ConnectedLayer(inputs=self.outputs, **sub)
        # T+1 blocks (Darknet allocates one and overflows it, Q1). Training
        # writes h_1..h_T into blocks 1..T; inference reads and overwrites block 0.
        self._state = np.zeros((self.steps + 1, self.batch, self.outputs), dt)
        self._scratch = np.zeros((self.batch, self.outputs), dt)   # (B, H) raw dS_t for the fixes
        # Stateful training (an extension: truncated BPTT): a training forward
        # starts from the carry and leaves its last state there.
        self.stateful = bool(stateful)
        self._carry = np.zeros((self.batch, self.outputs), dt)
        self._grad_norms = np.zeros(self.steps, np.float32)
        self.record_grad_norms = False

    @property
    def fixes(self):
        """FIX_* bits: Q2-Q5 switch steps of backward, Q6 is passed to the sublayers."""
        return self._fixes

    @fixes.setter
    def fixes(self, value):
        self._fixes = _check_fixes(value)

    @property
    def output(self):
        """(T*B, outputs): the output layer's output."""
        return self.output_layer.output

    @property
    def delta(self):
        """(T*B, outputs): the output layer's delta; the next layer adds into it."""
        return self.output_layer.delta

    @property
    def sublayers(self):
        return (self.input_layer, self.self_layer, self.output_layer)

    def __repr__(self):
        extra = ", batch_normalize=True" if self.batch_normalize else ""
        extra += ", shortcut=True" if self.shortcut else ""
        extra += f", fixes={self.fixes}" if self.fixes else ""
        return (f"RNNLayer(batch={self.batch}, inputs={self.inputs}, outputs={self.outputs}, "
                f"steps={self.steps}, activation={self.activation!r}{extra}, "
                f"dtype={np.dtype(self.dtype).name})")

    def reset_state(self, streams=None):
        """Zero the recurrent state (and the training carry) of every stream,
        or only of the listed streams (Darknet has no CPU reset)."""
        reset_streams(self, streams)

    def forward(self, input, train=True):
        """input: (T*B, inputs). Train mode starts from h_0 = 0 and keeps every
        h_t for backward; inference carries block 0 across steps and calls."""
        B, T = self.batch, self.steps
        input = _check_array("input", input, T * B, self.inputs, self.dtype)
        train = bool(train)
        il, sl, ol = self.sublayers
        for layer in (ol, sl, il):
            layer.delta[...] = 0
        if train:
            self.state[0] = self.carry if self.stateful else 0
        with np.errstate(all="ignore"):
            for t in range(T):
                rows = slice(t * B, (t + 1) * B)
                il.forward(input[rows], train, t)
                h_prev = self.state[t] if train else self.state[0]     # (B, H)
                sl.forward(h_prev, train, t)
                # copy (or zero-fill), then two axpy with alpha 1: float adds in this order
                h = h_prev.copy() if self.shortcut else np.zeros_like(h_prev)
                h = h + il.output[rows]
                h = h + sl.output[rows]
                block = t + 1 if train else 0
                self.state[block] = h
                ol.forward(self.state[block], train, t)
            if train and self.stateful:
                self.carry[...] = self.state[T]

    def backward(self, input, prev_delta=None):
        """Backpropagation through time, t = T-1 .. 0, in Darknet's order
        (SPEC §5 Backward), after a train-mode forward. input: (T*B, inputs)
        as given to forward; prev_delta: None or writable (T*B, inputs),
        receives += the input delta.

        Step t's rows of the buffers: dY_t = output_layer.delta (filled by the
        next layer), dS_t = self_layer.delta (will hold dL/db_t = dL/dh_{t+1}),
        dA_t = input_layer.delta."""
        B, T = self.batch, self.steps
        input = _check_array("input", input, T * B, self.inputs, self.dtype)
        if prev_delta is not None:
            prev_delta = _check_array("prev_delta", prev_delta, T * B, self.inputs, self.dtype,
                                      writable=True)
        il, sl, ol = self.sublayers
        fixes = self.fixes
        sub_fixes = fixes & FIX_BN_GRADIENT
        keep_raw = bool(fixes & (FIX_COPY_BEFORE_SCALE | FIX_SHORTCUT_CARRY))
        raw = self._scratch                                            # (B, H)
        with np.errstate(all="ignore"):
            for t in reversed(range(T)):
                rows = slice(t * B, (t + 1) * B)
                prev_rows = slice((t - 1) * B, t * B)
                # Q5: Darknet keeps one mean/variance per sublayer, so every step's
                # BN backward sees the statistics of the last step.
                stats = t if fixes & FIX_BN_STEP_STATS else T - 1

                # 1. Q4: Darknet rebuilds h_{t+1} = a_t + b_t, dropping the
                #    shortcut term, and overwrites the stored state with it.
                if not fixes & FIX_STORED_STATE:
                    self.state[t + 1] = il.output[rows] + sl.output[rows]

                # 2. output layer: dY_t -> its updates; its input delta goes into dS_t.
                ol.backward(self.state[t + 1], sl.delta[rows], t, stats, sub_fixes)
                if self.record_grad_norms:        # C: sequential double sum, sqrt, to float
                    d = sl.delta[rows].astype(np.float64).ravel()
                    self.grad_norms[t] = np.float32(np.sqrt(np.add.accumulate(d * d)[-1]))

                # dS_t is complete now (output layer at t, self layer at t+1,
                # shortcut carry from t+1). Keep it: step 3 scales it in place.
                if keep_raw:
                    raw[...] = sl.delta[rows]

                # 3. self layer with its forward input h_t; its input delta goes
                #    to dS_{t-1} (nowhere at t = 0: h_0 is not trained).
                sl.backward(self.state[t], sl.delta[prev_rows] if t > 0 else None,
                            t, stats, sub_fixes)

                # 4. Q2: Darknet hands the input layer the *scaled* dS_t (times
                #    f'(b_t), or through the self-BN Jacobian); dL/da_t is the raw one.
                il.delta[rows] = raw if fixes & FIX_COPY_BEFORE_SCALE else sl.delta[rows]

                # 5. Q3: with shortcut, h_{t+1} depends on h_t directly, so dL/dh_t
                #    gets dL/dh_{t+1}; Darknet adds the scaled delta instead.
                if self.shortcut and t > 0:
                    sl.delta[prev_rows] += raw if fixes & FIX_SHORTCUT_CARRY else sl.delta[rows]

                # 6. input layer with x_t; its input delta goes to the caller.
                il.backward(input[rows], None if prev_delta is None else prev_delta[rows],
                            t, stats, sub_fixes)

    def update(self, learning_rate, momentum, decay, batch):
        """Update input, self, output sublayers."""
        for layer in self.sublayers:
            layer.update(learning_rate, momentum, decay, batch)


