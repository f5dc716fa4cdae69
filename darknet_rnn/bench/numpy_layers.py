"""A well-vectorised NumPy implementation of the same layers (float32, BLAS
matmuls): the speed baseline `bench` compares the C core against.

Same classes and methods as darknet_rnn.layers / darknet_rnn.reference and
the same semantics (Darknet's backward, per-step batch norm, rolling
statistics, Q2-Q5 switches), restructured the way the C fast path is: the
input and output sublayers of an [rnn] run as one matmul over all
steps*streams rows, and so do all weight gradients; only the self sublayer
is a per-step loop. Results equal the reference up to float rounding
(matmul and exp differ in the last bits), which tests/test_vectorized.py
bounds.
"""
import numpy as np

from .._checks import check_array, check_int, reset_streams
from ..activations import activation_index
from ..optim import UpdateArgs, block_params, sgd_update
from ..fixes import (FIX_ALL, FIX_BN_GRADIENT, FIX_BN_STEP_STATS, FIX_COPY_BEFORE_SCALE,
                    FIX_SHORTCUT_CARRY, FIX_SOFTMAX_TEMPERATURE, FIX_STORED_STATE)

F32 = np.float32


def _float32_only(dtype):
    if np.dtype(dtype) != np.float32:
        raise ValueError(f"dtype: the NumPy baseline is float32 only, got {np.dtype(dtype)} "
                         "(darknet_rnn.reference runs float64)")


def _rows_in(name, a, rows, cols, writable=False):
    """Argument check shared with the other implementations (same messages)."""
    return check_array(name, a, rows, cols, F32, writable)


def _activate(x, a):
    """In place on a float32 array."""
    if a == "linear":
        return x
    if a == "leaky":
        np.multiply(x, np.where(x > 0, F32(1), F32(0.1)), out=x)
    elif a == "relu":
        np.maximum(x, 0, out=x)
    elif a == "logistic":
        x[...] = 1 / (1 + np.exp(-x))
    elif a == "tanh":
        np.tanh(x, out=x)
    elif a == "relie":
        np.multiply(x, np.where(x > 0, F32(1), F32(0.01)), out=x)
    elif a == "ramp":
        x[...] = x * (x > 0) + F32(0.1) * x
    elif a == "elu":
        x[...] = np.where(x >= 0, x, np.expm1(np.minimum(x, 0)))
    elif a == "selu":
        x[...] = np.where(x >= 0, F32(1.0507) * x, F32(1.0507 * 1.6732) * np.expm1(np.minimum(x, 0)))
    elif a == "loggy":
        x[...] = 2 / (1 + np.exp(-x)) - 1
    elif a == "hardtan":
        np.clip(x, -1, 1, out=x)
    elif a == "lhtan":
        x[...] = np.where(x < 0, F32(0.001) * x, np.where(x > 1, F32(0.001) * (x - 1) + 1, x))
    elif a == "plse":
        x[...] = np.where(x < -4, F32(0.01) * (x + 4),
                          np.where(x > 4, F32(0.01) * (x - 4) + 1, F32(0.125) * x + F32(0.5)))
    elif a == "stair":
        n = np.floor(x)
        half = np.floor(x / 2)
        x[...] = np.where(n % 2 == 0, half, (x - n) + half)
    return x


def _gradient(y, a):
    """f'(y) as a float32 array (None for linear)."""
    if a == "linear":
        return None
    if a == "leaky":
        return np.where(y > 0, F32(1), F32(0.1))
    if a == "relu":
        return (y > 0).astype(F32)
    if a == "logistic":
        return (1 - y) * y
    if a == "tanh":
        return 1 - y * y
    if a == "relie":
        return np.where(y > 0, F32(1), F32(0.01))
    if a == "ramp":
        return (y > 0) + F32(0.1)
    if a == "elu":
        return np.where(y >= 0, F32(1), y + 1)
    if a == "selu":
        return np.where(y >= 0, F32(1.0507), y + F32(1.0507 * 1.6732))
    if a == "loggy":
        u = (y + 1) / 2
        return 2 * (1 - u) * u
    if a == "hardtan":
        return ((y > -1) & (y < 1)).astype(F32)
    if a == "lhtan":
        return np.where((y > 0) & (y < 1), F32(1), F32(0.001))
    if a == "plse":
        return np.where((y < 0) | (y > 1), F32(0.01), F32(0.125))
    if a == "stair":
        return (np.floor(y) != y).astype(F32)
    raise ValueError(a)


class ConnectedLayer:
    type = "connected"

    def __init__(self, batch, inputs, outputs, activation="logistic", batch_normalize=False,
                 steps=1, learning_rate_scale=1.0, dtype=F32):
        activation_index(activation)
        _float32_only(dtype)
        batch, inputs, outputs, steps = (check_int("batch", batch), check_int("inputs", inputs),
                                         check_int("outputs", outputs), check_int("steps", steps))
        self.batch, self.inputs, self.outputs, self.steps = batch, inputs, outputs, steps
        self.activation = activation
        self.batch_normalize = bool(batch_normalize)
        self.learning_rate_scale = float(learning_rate_scale)
        z = lambda *s: np.zeros(s, F32)  # noqa: E731
        rows = steps * batch
        self.weights, self.biases = z(outputs, inputs), z(outputs)
        self.weight_updates, self.bias_updates = z(outputs, inputs), z(outputs)
        self.output, self.delta = z(rows, outputs), z(rows, outputs)
        bn = self.batch_normalize
        self.scales = np.ones(outputs, F32) if bn else None
        self.scale_updates = z(outputs) if bn else None
        self.rolling_mean = z(outputs) if bn else None
        self.rolling_variance = z(outputs) if bn else None
        self.mean = z(steps, outputs) if bn else None
        self.variance = z(steps, outputs) if bn else None
        self.x = z(rows, outputs) if bn else None
        self.x_norm = z(rows, outputs) if bn else None

    # -- pieces around the matmuls; `first`/`n` select whole steps of rows --
    def _post(self, first, n, train):
        b, c = self.batch, self.outputs
        out = self.output[first * b:(first + n) * b]              # (n*b, c)
        if self.batch_normalize:
            z3 = out.reshape(n, b, c)
            self.x[first * b:(first + n) * b] = out
            if train:
                mean = z3.mean(axis=1, dtype=F32)                 # (n, c)
                var = ((z3 - mean[:, None]) ** 2).sum(axis=1) * F32(1.0 / (b - 1) if b > 1 else np.inf)
                self.mean[first:first + n] = mean
                self.variance[first:first + n] = var
                for t in range(n):                                # rolling stats once per step
                    self.rolling_mean *= F32(0.99)
                    self.rolling_mean += F32(0.01) * mean[t]
                    self.rolling_variance *= F32(0.99)
                    self.rolling_variance += F32(0.01) * var[t]
                z3 -= mean[:, None]
                z3 /= (np.sqrt(var) + F32(1e-6))[:, None]
                self.x_norm[first * b:(first + n) * b] = out
            else:
                z3 -= self.rolling_mean
                z3 /= np.sqrt(self.rolling_variance) + F32(1e-6)
            out *= self.scales
        out += self.biases
        _activate(out, self.activation)

    def _pre(self, first, n, stats_of, fixes):
        b, c = self.batch, self.outputs
        rows = slice(first * b, (first + n) * b)
        d = self.delta[rows]
        g = _gradient(self.output[rows], self.activation)
        if g is not None:
            d *= g
        self.bias_updates += d.sum(axis=0)
        if not self.batch_normalize:
            return
        self.scale_updates += (d * self.x_norm[rows]).sum(axis=0)
        d *= self.scales
        d3 = d.reshape(n, b, c)
        idx = [stats_of(first + t) for t in range(n)]
        mean = self.mean[idx][:, None]                            # (n, 1, c)
        var = self.variance[idx][:, None]
        xc = self.x[rows].reshape(n, b, c) - mean
        if fixes & FIX_BN_GRADIENT:
            sd = np.sqrt(var) + F32(1e-6)
            with np.errstate(divide="ignore", invalid="ignore"):
                k = np.where(var > 0, (d3 * xc).sum(axis=1, keepdims=True) / (sd * sd * np.sqrt(var) * (b - 1)), 0)
            d3[...] = (d3 - d3.mean(axis=1, keepdims=True)) / sd - xc * k
        else:
            root = np.sqrt(var + F32(1e-5))
            mean_delta = d3.sum(axis=1, keepdims=True) * (-1 / root)
            var_delta = (d3 * xc).sum(axis=1, keepdims=True) * (F32(-0.5) * (var + F32(1e-5)) ** F32(-1.5))
            d3[...] = d3 / root + var_delta * 2 * xc / b + mean_delta / b

    def forward(self, input, train=True, step=0):
        b = self.batch
        input = _rows_in("input", input, b, self.inputs)
        np.matmul(input, self.weights.T, out=self.output[step * b:(step + 1) * b])
        self._post(step, 1, train)

    def backward(self, input, prev_delta=None, step=0, stats_step=None, fixes=0):
        b = self.batch
        input = _rows_in("input", input, b, self.inputs)
        if prev_delta is not None:
            prev_delta = _rows_in("prev_delta", prev_delta, b, self.inputs, writable=True)
        s = step if stats_step is None else stats_step
        self._pre(step, 1, lambda t: s, fixes)
        d = self.delta[step * b:(step + 1) * b]
        self.weight_updates += d.T @ input
        if prev_delta is not None:
            prev_delta += d @ self.weights

    def update(self, learning_rate, momentum, decay, batch):
        sgd_update(block_params(self), UpdateArgs(learning_rate, momentum, decay, batch))


class RNNLayer:
    type = "rnn"

    def __init__(self, batch, inputs, outputs, steps, activation="logistic",
                 batch_normalize=False, shortcut=False, fixes=0, dtype=F32, stateful=False):
        _float32_only(dtype)
        batch, inputs, outputs, steps = (check_int("batch", batch), check_int("inputs", inputs),
                                         check_int("outputs", outputs), check_int("steps", steps))
        self.batch, self.inputs, self.outputs, self.steps = batch, inputs, outputs, steps
        self.activation, self.batch_normalize = activation, bool(batch_normalize)
        self.shortcut, self.fixes = bool(shortcut), int(fixes) & FIX_ALL
        kw = dict(batch=batch, outputs=outputs, activation=activation,
                  batch_normalize=batch_normalize, steps=steps)
        self.input_layer = ConnectedLayer(inputs=inputs, **kw)
        self.self_layer = ConnectedLayer(inputs=outputs, **kw)
        self.output_layer = ConnectedLayer(inputs=outputs, **kw)
        self.state = np.zeros((steps + 1, batch, outputs), F32)
        self.stateful = bool(stateful)
        self.carry = np.zeros((batch, outputs), F32)
        self.record_grad_norms = False
        self.grad_norms = np.zeros(steps, F32)

    output = property(lambda self: self.output_layer.output)
    delta = property(lambda self: self.output_layer.delta)
    sublayers = property(lambda self: (self.input_layer, self.self_layer, self.output_layer))

    def reset_state(self, streams=None):
        reset_streams(self, streams)

    def forward(self, input, train=True):
        T, B, H = self.steps, self.batch, self.outputs
        input = _rows_in("input", input, T * B, self.inputs)
        inl, sl, outl = self.sublayers
        for l in self.sublayers:
            l.delta[...] = 0
        if not train:                        # inference: one block, carried across calls
            h = self.state[0]
            for t in range(T):
                inl.forward(input[t * B:(t + 1) * B], False, t)
                sl.forward(h, False, t)
                if not self.shortcut:
                    h[...] = 0
                h += inl.output[t * B:(t + 1) * B]
                h += sl.output[t * B:(t + 1) * B]
                outl.forward(h, False, t)
            return
        self.state[0] = self.carry if self.stateful else 0
        np.matmul(input, inl.weights.T, out=inl.output)
        inl._post(0, T, True)
        for t in range(T):
            np.matmul(self.state[t], sl.weights.T, out=sl.output[t * B:(t + 1) * B])
            sl._post(t, 1, True)
            h = self.state[t + 1]
            if self.shortcut:
                np.add(self.state[t], inl.output[t * B:(t + 1) * B], out=h)
            else:
                h[...] = inl.output[t * B:(t + 1) * B]
            h += sl.output[t * B:(t + 1) * B]
        if self.stateful:
            self.carry[...] = self.state[T]
        states = self.state[1:].reshape(T * B, H)
        np.matmul(states, outl.weights.T, out=outl.output)
        outl._post(0, T, True)

    def backward(self, input, prev_delta=None):
        T, B, H = self.steps, self.batch, self.outputs
        input = _rows_in("input", input, T * B, self.inputs)
        if prev_delta is not None:
            prev_delta = _rows_in("prev_delta", prev_delta, T * B, self.inputs, writable=True)
        inl, sl, outl = self.sublayers
        fx = self.fixes
        stats_of = (lambda t: t) if fx & FIX_BN_STEP_STATS else (lambda t: T - 1)
        bn_fix = fx & FIX_BN_GRADIENT
        outl._pre(0, T, stats_of, bn_fix)
        sl.delta += outl.delta @ outl.weights                   # dL/dh for all steps
        raw = None
        for t in range(T - 1, -1, -1):
            dS = sl.delta[t * B:(t + 1) * B]
            if self.record_grad_norms:
                self.grad_norms[t] = np.linalg.norm(dS)
            if fx & (FIX_COPY_BEFORE_SCALE | FIX_SHORTCUT_CARRY):
                raw = dS.copy()
            sl._pre(t, 1, stats_of, bn_fix)
            if t > 0:
                dprev = sl.delta[(t - 1) * B:t * B]
                dprev += dS @ sl.weights
            inl.delta[t * B:(t + 1) * B] = raw if fx & FIX_COPY_BEFORE_SCALE else dS
            if self.shortcut and t > 0:
                dprev += raw if fx & FIX_SHORTCUT_CARRY else dS
        sl.weight_updates += sl.delta.T @ self.state[:T].reshape(T * B, H)
        inl._pre(0, T, stats_of, bn_fix)
        inl.weight_updates += inl.delta.T @ input
        if prev_delta is not None:
            prev_delta += inl.delta @ inl.weights
        if not fx & FIX_STORED_STATE:                           # Q4
            np.add(inl.output, sl.output, out=self.state[1:].reshape(T * B, H))
        outl.weight_updates += outl.delta.T @ self.state[1:].reshape(T * B, H)

    def update(self, learning_rate, momentum, decay, batch):
        params = [p for l in self.sublayers for p in block_params(l)]
        sgd_update(params, UpdateArgs(learning_rate, momentum, decay, batch))


class SoftmaxLayer:
    type = "softmax"

    def __init__(self, batch, inputs, groups=1, temperature=1.0, noloss=False, fixes=0, dtype=F32):
        _float32_only(dtype)
        batch, inputs, groups = (check_int("batch", batch), check_int("inputs", inputs),
                                 check_int("groups", groups))
        if inputs % groups:
            raise ValueError(f"groups ({groups}) must divide inputs ({inputs})")
        if not float(temperature) > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.batch, self.inputs, self.outputs = batch, inputs, inputs
        self.groups, self.temperature, self.noloss = groups, float(temperature), bool(noloss)
        self.fixes = int(fixes)
        self.output = np.zeros((batch, inputs), F32)
        self.delta = np.zeros_like(self.output)
        self.loss = np.zeros_like(self.output)
        self.cost = None

    def forward(self, input, truth=None):
        input = _rows_in("input", input, self.batch, self.inputs)
        if truth is not None:
            truth = _rows_in("truth", truth, self.batch, self.inputs)
        x = input.reshape(self.batch, self.groups, -1) / F32(self.temperature)
        e = np.exp(x - x.max(axis=2, keepdims=True))
        self.output[...] = (e / e.sum(axis=2, keepdims=True)).reshape(self.batch, self.inputs)
        self.cost = None
        if truth is not None and not self.noloss:
            with np.errstate(divide="ignore"):
                self.loss[...] = np.where(truth != 0, -np.log(self.output), 0)
            self.delta[...] = truth - self.output
            self.cost = float(self.loss.sum(dtype=F32))

    def backward(self, prev_delta):
        if prev_delta is None:
            return
        if self.fixes & FIX_SOFTMAX_TEMPERATURE:
            prev_delta += self.delta / F32(self.temperature)
        else:
            prev_delta += self.delta


class CostLayer:
    type = "cost"

    def __init__(self, batch, inputs, cost_type="sse", scale=1.0, dtype=F32):
        _float32_only(dtype)
        batch, inputs = check_int("batch", batch), check_int("inputs", inputs)
        if cost_type not in ("sse", "masked", "L1", "seg", "smooth", "wgan"):
            raise ValueError(f"cost_type: unknown cost type {cost_type!r}")
        self.batch, self.inputs, self.outputs = batch, inputs, inputs
        self.cost_type, self.scale = cost_type, F32(scale)
        self.output = np.zeros((batch, inputs), F32)
        self.delta = np.zeros_like(self.output)
        self.cost = None

    def forward(self, input, truth=None):
        if truth is None:
            return
        input = _rows_in("input", input, self.batch, self.inputs,
                         writable=self.cost_type == "masked")
        truth = _rows_in("truth", truth, self.batch, self.inputs)
        if self.cost_type == "masked":
            input[truth == F32(-1234)] = F32(-1234)
        d = truth - input
        if self.cost_type == "L1":
            self.output[...] = np.abs(d)
            self.delta[...] = np.where(d > 0, F32(1), F32(-1))
        elif self.cost_type == "smooth":
            small = np.abs(d) < 1
            self.output[...] = np.where(small, d * d, 2 * np.abs(d) - 1)
            self.delta[...] = np.where(small, d, np.where(d < 0, F32(1), F32(-1)))
        else:
            self.output[...] = d * d
            self.delta[...] = d
        self.cost = float(self.output.sum(dtype=F32))

    def backward(self, prev_delta):
        if prev_delta is not None:
            prev_delta += self.scale * self.delta


# Sequence tasks (extensions): loss masks and the bidirectional [rnn], as in
# darknet_rnn.reference, over this module's layers.

def _mask_rows(layer, keep, loss):
    masked = ~np.asarray(keep, dtype=bool)
    layer.delta[masked] = 0
    loss[masked] = 0
    if layer.cost is not None:
        layer.cost = float(loss.sum(dtype=F32))


SoftmaxLayer.mask_rows = lambda self, keep: _mask_rows(self, keep, self.loss)
CostLayer.mask_rows = lambda self, keep: _mask_rows(self, keep, self.output)


def _birnn():
    from ..reference.birnn import BiRNNLayer as _Twin

    class BiRNNLayer(_Twin):
        rnn_class = RNNLayer
    return BiRNNLayer


BiRNNLayer = _birnn()
