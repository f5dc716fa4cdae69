"""darknet_rnn.reference - Darknet's CPU [connected], [rnn], [softmax] and [cost]
layers in plain NumPy.

Two jobs, one file:

* **Test oracle.** In float32 every operation is done in the precision and in
  the order Darknet's C code (pjreddie/darknet, built with -O2, no fast-math,
  no FMA) does it, so results are bitwise identical to Darknet and to the C
  core in csrc/. The rules are in SPEC sections 2-7 and 12; the comments below
  say which C expression each line mirrors when that decides the last bit.
* **Teaching implementation.** Read ConnectedLayer (forward, backward,
  update), then RNNLayer (forward through time, then backpropagation through
  time), then SoftmaxLayer and CostLayer. Darknet's departures from the true
  gradient (SPEC section 14, Q2-Q6 and Q11) are small named steps switched by
  the FIX_* bits: fixes=0 trains exactly like Darknet, FIX_ALL computes the
  exact gradient of the forward pass (tests/test_reference_gradcheck.py).

With dtype=np.float64 every array and constant is float64 instead; the
bitwise rules then mean nothing, but the float64 layers are what finite
difference checks need.

Conventions (Darknet's):
* Matrices are row-major; rows are time-major: row t*batch + s is stream s at
  time step t (SPEC section 1).
* `delta` buffers hold *negative* gradients (dL/d output with the sign
  flipped), and `*_updates` accumulate them, so update() adds.
* backward() accumulates into the caller's `prev_delta`; it never overwrites.

Where C evaluates in double and stores to float we compute in float64 and
cast once with `.astype(dt)`; everything else stays in the layer dtype. exp,
log and pow go through Python's `math` module, which calls the C library
(glibc) like Darknet does: NumPy's own vectorised exp/log/pow differ from
glibc in the last bit for a fraction of inputs.
"""
import math
import numbers

import numpy as np

from darknet_rnn._checks import Buffer as _Buffer, check_array as _check_array, check_int as _check_int
from darknet_rnn.activations import ACTIVATIONS, activation_index
from darknet_rnn.optim import UpdateArgs, block_params, sgd_update
# Departures of Darknet's CPU backward from the true gradient (SPEC section 14),
# same values as dn_fix in csrc/darknet_rnn.h. 0 = reproduce Darknet.
from darknet_rnn.fixes import (FIX_ALL, FIX_BN_GRADIENT, FIX_BN_STEP_STATS,  # noqa: F401
                               FIX_COPY_BEFORE_SCALE, FIX_SHORTCUT_CARRY,
                               FIX_SOFTMAX_TEMPERATURE, FIX_STORED_STATE)

# [cost] types, in the order of dn_cost_type.
COST_TYPES = ("sse", "masked", "L1", "seg", "smooth", "wgan")

SECRET_NUM = -1234              # truth value that masks an element in a masked cost
FLT_MAX = float(np.finfo(np.float32).max)

# BN epsilons (SPEC section 4), float literals in Darknet (so float32 values in
# float32 mode). The forward adds 1e-6 to sqrt(var), *outside* the root, in
# double; Darknet's backward adds 1e-5 to var (a float add), *inside* the root.
# The exact backward (FIX_BN_GRADIENT) uses the double 1e-6, like the C core.
BN_FORWARD_EPS = 1e-6
BN_BACKWARD_EPS = 1e-5

_F64 = np.float64

__all__ = [
    "FIX_COPY_BEFORE_SCALE", "FIX_SHORTCUT_CARRY", "FIX_STORED_STATE",
    "FIX_BN_STEP_STATS", "FIX_BN_GRADIENT", "FIX_SOFTMAX_TEMPERATURE", "FIX_ALL",
    "COST_TYPES", "SECRET_NUM", "ACTIVATIONS",
    "activate", "gradient",
    "ConnectedLayer", "RNNLayer", "SoftmaxLayer", "CostLayer",
]


# --------------------------------------------------------------------------
# C library math, elementwise

def _c_exp(v):
    try:
        return math.exp(v)
    except OverflowError:           # C returns +inf (and sets errno)
        return math.inf


def _c_log(v):
    if v > 0 or v != v:             # positive, +inf, or NaN (passed through, sign kept)
        return math.log(v)
    if v == 0:
        return -math.inf            # C: pole error, -inf
    return math.nan                 # negative: domain error


def _c_pow(x, y):
    try:
        return math.pow(x, y)
    except ZeroDivisionError:       # pow(0, negative) is a pole: +inf in C
        return math.inf
    except ValueError:              # domain error: C returns NaN (or inf at 0)
        return math.inf if x == 0 else math.nan
    except OverflowError:
        return math.inf


def _libm(fn, x, *args):
    """fn (a double -> double C library function) applied to every element of
    x, in float64. Returns a float64 array shaped like x."""
    x = np.asarray(x, dtype=_F64)
    values = [fn(v, *args) for v in x.ravel().tolist()]
    return np.array(values, dtype=_F64).reshape(x.shape)


def _column_sum(a):
    """Σ over the rows of a (rows, n), accumulated row by row from 0 in a's
    dtype, like Darknet's loops (np.sum would sum pairwise)."""
    s = np.zeros(a.shape[1:], dtype=a.dtype)
    for row in a:
        s = s + row
    return s


def _sum_in_order(a):
    """Σ of all elements in memory order, one rounding per add (Darknet's
    sum_array). np.add.accumulate is a sequential running sum."""
    flat = np.ravel(a)
    if flat.size == 0:
        return a.dtype.type(0)
    return a.dtype.type(0) + np.add.accumulate(flat)[-1]


def _reciprocal(n):
    """1./n in double (C: `1./n` with int n; 1./0 is +inf, not an error)."""
    with np.errstate(divide="ignore"):
        return _F64(1.0) / _F64(n)


# --------------------------------------------------------------------------
# Activations (SPEC section 2)

def activate(x, activation):
    """f(x) for Darknet activation `activation` (a name from ACTIVATIONS).
    x: float32 or float64 array; returns a new array of the same dtype."""
    activation_index(activation)
    x = np.asarray(x)
    dt = x.dtype.type
    if dt not in (np.float32, np.float64):
        raise TypeError(f"x must be float32 or float64, got {x.dtype}")
    d = x.astype(_F64)             # C promotes float to double in mixed expressions
    with np.errstate(all="ignore"):
        if activation == "linear":
            return x.copy()
        if activation == "logistic":                 # 1./(1. + exp(-x))
            return (1.0 / (1.0 + _libm(_c_exp, -d))).astype(dt)
        if activation == "loggy":                    # 2./(1. + exp(-x)) - 1
            return (2.0 / (1.0 + _libm(_c_exp, -d)) - 1.0).astype(dt)
        if activation == "relu":                     # x*(x>0) in float: -0.0 for x<0
            return x * (x > 0).astype(dt)
        if activation == "elu":                      # (x>=0)*x + (x<0)*(exp(x)-1)
            positive = ((x >= 0).astype(dt) * x).astype(_F64)   # float product
            negative = (x < 0).astype(_F64) * (_libm(_c_exp, d) - 1.0)
            return (positive + negative).astype(dt)
        if activation == "selu":                     # all double, left to right
            positive = (x >= 0).astype(_F64) * 1.0507 * d
            negative = (x < 0).astype(_F64) * 1.0507 * 1.6732 * (_libm(_c_exp, d) - 1.0)
            return (positive + negative).astype(dt)
        if activation == "relie":                    # x>0 ? x : .01*x (double)
            return np.where(x > 0, x, (0.01 * d).astype(dt))
        if activation == "leaky":                    # x>0 ? x : .1*x (double)
            return np.where(x > 0, x, (0.1 * d).astype(dt))
        if activation == "ramp":                     # x*(x>0) in float, + .1*x in double
            return ((x * (x > 0).astype(dt)).astype(_F64) + 0.1 * d).astype(dt)
        if activation == "tanh":
            # 2*x is a float product (overflows to inf for huge x); exp(2x) in
            # double overflows for 2x > ~709.78 and inf/inf gives NaN (Q9).
            e = _libm(_c_exp, (2 * x).astype(_F64))
            return ((e - 1.0) / (e + 1.0)).astype(dt)
        if activation == "plse":
            below = (0.01 * (x + 4).astype(_F64)).astype(dt)           # x+4 in float
            above = (0.01 * (x - 4).astype(_F64) + 1.0).astype(dt)     # x-4 in float
            middle = (0.125 * d + 0.5).astype(dt)
            return np.where(x < -4, below, np.where(x > 4, above, middle))
        if activation == "hardtan":                  # float comparisons; NaN stays NaN
            return np.where(x < -1, dt(-1), np.where(x > 1, dt(1), x))
        if activation == "lhtan":
            below = (0.001 * d).astype(dt)
            above = (0.001 * (x - 1).astype(_F64) + 1.0).astype(dt)    # x-1 in float
            return np.where(x < 0, below, np.where(x > 1, above, x))
        if activation == "stair":
            # int n = floor(x): out of int range (and NaN) x86 gives INT_MIN.
            f = np.floor(d)
            in_range = np.isfinite(f) & (f >= -2.0**31) & (f < 2.0**31)
            n = np.where(in_range, f, -2.0**31).astype(np.int64)
            half = np.floor(d / 2.0)
            even = half.astype(dt)
            # (x - n): n converted to float, float subtraction; + floor(x/2.) in double
            odd = ((x - n.astype(dt)).astype(_F64) + half).astype(dt)
            return np.where(n % 2 == 0, even, odd)
    raise AssertionError(activation)    # every name in ACTIVATIONS is handled above


def gradient(y, activation):
    """f'(x) expressed through the stored output y = f(x), as Darknet computes
    it (all float unless noted). Returns a new array of y's dtype; backward
    multiplies the delta by it."""
    activation_index(activation)
    y = np.asarray(y)
    dt = y.dtype.type
    if dt not in (np.float32, np.float64):
        raise TypeError(f"y must be float32 or float64, got {y.dtype}")
    one, zero = dt(1), dt(0)
    with np.errstate(all="ignore"):
        if activation == "linear":
            return np.ones_like(y)
        if activation == "logistic":
            return (1 - y) * y
        if activation == "loggy":
            u = ((y.astype(_F64) + 1.0) / 2.0).astype(dt)    # stored into a float
            return 2 * (1 - u) * u
        if activation == "relu":
            return (y > 0).astype(dt)
        if activation == "elu":                      # (y>=0) + (y<0)*(y+1), float
            return (y >= 0).astype(dt) + (y < 0).astype(dt) * (y + 1)
        if activation == "selu":                     # double, rounded once
            g = ((y >= 0).astype(_F64) * 1.0507
                 + (y < 0).astype(_F64) * (y.astype(_F64) + 1.0507 * 1.6732))
            return g.astype(dt)
        if activation == "relie":
            return np.where(y > 0, one, dt(0.01))
        if activation == "leaky":
            return np.where(y > 0, one, dt(0.1))
        if activation == "ramp":                     # (y>0) + .1 in double
            return ((y > 0).astype(_F64) + 0.1).astype(dt)
        if activation == "tanh":
            return 1 - y * y
        if activation == "plse":
            return np.where((y < 0) | (y > 1), dt(0.01), dt(0.125))
        if activation == "hardtan":
            return np.where((y > -1) & (y < 1), one, zero)
        if activation == "lhtan":
            return np.where((y > 0) & (y < 1), one, dt(0.001))
        if activation == "stair":
            return np.where(np.floor(y.astype(_F64)) == y, zero, one)
    raise AssertionError(activation)


# --------------------------------------------------------------------------
# Argument checking

def _check_real(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    return float(value)


def _check_dtype(dtype):
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be np.float32 or np.float64, got {dtype!r}") from None
    if dt not in (np.float32, np.float64):
        raise ValueError(f"dtype must be np.float32 or np.float64, got {dt}")
    return dt.type


def _check_fixes(fixes):
    fixes = _check_int("fixes", fixes, minimum=0)
    if fixes & ~FIX_ALL:
        raise ValueError(f"fixes must combine the FIX_* bits (0..{FIX_ALL}), got {fixes}")
    return fixes


# --------------------------------------------------------------------------
# The three GEMMs of a connected layer, in Darknet's summation order (SPEC §12).
# Each vectorises over the independent output elements and loops over the
# dimension whose order decides the rounding.

def _gemm_nt(x, w):
    """x (rows, inputs) · wᵀ, w (outputs, inputs) -> (rows, outputs).
    C: per output element `sum = 0; sum += x[i,k]*w[j,k]` for k in order."""
    acc = np.zeros((x.shape[0], w.shape[0]), dtype=x.dtype)   # (rows, outputs)
    for k in range(x.shape[1]):
        acc += x[:, k, None] * w[None, :, k]
    return acc


def _gemm_tn_accumulate(d, x, acc):
    """acc (outputs, inputs) += dᵀ · x, d (rows, outputs), x (rows, inputs).
    C adds each product d[r,o]*x[r,i] straight into acc, rows r in order."""
    for r in range(d.shape[0]):
        acc += np.outer(d[r], x[r])


def _gemm_nn_accumulate(d, w, acc):
    """acc (rows, inputs) += d · w, d (rows, outputs), w (outputs, inputs).
    C adds each product d[r,k]*w[k,i] straight into acc, k in order."""
    for k in range(d.shape[1]):
        acc += d[:, k, None] * w[None, k, :]


# --------------------------------------------------------------------------

class ConnectedLayer:
    """A fully connected layer with optional batch normalisation (SPEC §3, §4).

    A plain [connected] layer has steps=1 and batch = the network batch. Inside
    an RNN, batch is the number of streams, steps the number of time steps,
    and each forward/backward call handles one step's `batch` rows.
    """
    type = "connected"

    weights = _Buffer()            # (outputs, inputs)
    biases = _Buffer()             # (outputs,)
    weight_updates = _Buffer()     # (outputs, inputs)
    bias_updates = _Buffer()       # (outputs,)
    output = _Buffer()             # (steps*batch, outputs)
    delta = _Buffer()              # (steps*batch, outputs)
    scales = _Buffer()             # (outputs,)        batch_normalize only, else None
    scale_updates = _Buffer()      # (outputs,)
    rolling_mean = _Buffer()       # (outputs,)
    rolling_variance = _Buffer()   # (outputs,)
    mean = _Buffer()               # (steps, outputs)  batch statistics of each step
    variance = _Buffer()           # (steps, outputs)
    x = _Buffer()                  # (steps*batch, outputs) before normalisation
    x_norm = _Buffer()             # (steps*batch, outputs) normalised

    def __init__(self, batch, inputs, outputs, activation="logistic", batch_normalize=False,
                 steps=1, learning_rate_scale=1.0, dtype=np.float32):
        self.batch = _check_int("batch", batch)
        self.inputs = _check_int("inputs", inputs)
        self.outputs = _check_int("outputs", outputs)
        self.steps = _check_int("steps", steps)
        activation_index(activation, "activation")
        self.activation = activation
        self.batch_normalize = bn = bool(batch_normalize)
        self.learning_rate_scale = _check_real("learning_rate_scale", learning_rate_scale)
        self.dtype = dt = _check_dtype(dtype)

        rows, n = self.steps * self.batch, self.outputs
        self._weights = np.zeros((n, self.inputs), dt)
        self._biases = np.zeros(n, dt)
        self._weight_updates = np.zeros((n, self.inputs), dt)
        self._bias_updates = np.zeros(n, dt)
        self._output = np.zeros((rows, n), dt)
        self._delta = np.zeros((rows, n), dt)
        self._scales = np.ones(n, dt) if bn else None
        self._scale_updates = np.zeros(n, dt) if bn else None
        self._rolling_mean = np.zeros(n, dt) if bn else None
        self._rolling_variance = np.zeros(n, dt) if bn else None
        self._mean = np.zeros((self.steps, n), dt) if bn else None
        self._variance = np.zeros((self.steps, n), dt) if bn else None
        self._x = np.zeros((rows, n), dt) if bn else None
        self._x_norm = np.zeros((rows, n), dt) if bn else None

    def __repr__(self):
        bn = ", batch_normalize=True" if self.batch_normalize else ""
        return (f"ConnectedLayer(batch={self.batch}, inputs={self.inputs}, outputs={self.outputs}, "
                f"activation={self.activation!r}{bn}, steps={self.steps}, "
                f"dtype={np.dtype(self.dtype).name})")

    def _step(self, step, name="step"):
        if isinstance(step, bool) or not isinstance(step, numbers.Integral):
            raise TypeError(f"{name} must be an int")
        if not 0 <= step < self.steps:
            raise ValueError(f"{name} must be in [0, {self.steps}), got {step}")
        return int(step)

    def _rows(self, step):
        return slice(step * self.batch, (step + 1) * self.batch)

    # ---- forward ---------------------------------------------------------

    def forward(self, input, train=True, step=0):
        """Rows of `step` in output = f(BN(x·Wᵀ)) or f(x·Wᵀ + b).
        input: (batch, inputs). Returns None; read self.output."""
        step = self._step(step)
        input = _check_array("input", input, self.batch, self.inputs, self.dtype)
        rows = self._rows(step)
        with np.errstate(all="ignore"):
            z = _gemm_nt(input, self.weights)            # (batch, outputs); 0 + sum in C
            if self.batch_normalize:
                z = self._batchnorm_forward(z, bool(train), step, rows)
            else:
                z = z + self.biases
            self.output[rows] = activate(z, self.activation)

    def _batchnorm_forward(self, z, train, step, rows):
        """SPEC §4: normalise each column over the call's rows, then scale and
        shift. z: (batch, outputs) before normalisation. Returns x̂·scales + biases."""
        dt, n = self.dtype, self.batch
        self.x[rows] = z
        if train:
            mean = _column_sum(z) * dt(_reciprocal(n))                # (outputs,)
            # Each squared deviation is formed in double and added to a float
            # accumulator; the divisor is N-1 (unbiased; 1/0 = inf for N = 1, Q7).
            v = np.zeros(self.outputs, dt)
            for row in z:
                dev = (row - mean).astype(_F64)                       # float subtraction
                v = (v.astype(_F64) + dev * dev).astype(dt)
            var = v * dt(_reciprocal(n - 1))                          # (outputs,)
            self.mean[step] = mean
            self.variance[step] = var
            # Once per call: T times per forward inside an RNN (Q22).
            self.rolling_mean *= dt(0.99)
            self.rolling_mean += dt(0.01) * mean
            self.rolling_variance *= dt(0.99)
            self.rolling_variance += dt(0.01) * var
            x_norm = self._normalize(z, mean, var)
            self.x_norm[rows] = x_norm
        else:
            # Darknet leaves x_norm alone in inference (only backward needs it).
            x_norm = self._normalize(z, self.rolling_mean, self.rolling_variance)
        return x_norm * self.scales + self.biases

    def _normalize(self, z, mean, var):
        """(z - mean) / (sqrt(var) + 1e-6): epsilon outside the root, the
        subtraction in float, the division in double, rounded once."""
        sd = np.sqrt(var.astype(_F64)) + _F64(self.dtype(BN_FORWARD_EPS))
        return ((z - mean).astype(_F64) / sd).astype(self.dtype)

    # ---- backward --------------------------------------------------------

    def backward(self, input, prev_delta=None, step=0, stats_step=None, fixes=0):
        """Backpropagate the step's rows of self.delta (SPEC §3 Backward).

        input: (batch, inputs), what forward saw. prev_delta: None or a
        writable (batch, inputs) array that receives += delta·W. stats_step:
        the row of mean/variance the BN backward uses (None -> step; Darknet's
        RNN uses steps-1, Q5). fixes & FIX_BN_GRADIENT: exact BN derivative (Q6).
        Scales the step's rows of self.delta in place; accumulates into
        bias_updates, scale_updates and weight_updates."""
        step = self._step(step)
        stats_step = step if stats_step is None else self._step(stats_step, "stats_step")
        fixes = _check_fixes(fixes)
        input = _check_array("input", input, self.batch, self.inputs, self.dtype)
        if prev_delta is not None:
            prev_delta = _check_array("prev_delta", prev_delta, self.batch, self.inputs,
                                      self.dtype, writable=True)
        rows = self._rows(step)
        with np.errstate(all="ignore"):
            d = self.delta[rows]                         # (batch, outputs), a view: edited in place
            d *= gradient(self.output[rows], self.activation)
            if self.batch_normalize:
                self._batchnorm_backward(d, rows, stats_step, bool(fixes & FIX_BN_GRADIENT))
            else:
                self._accumulate_bias(d)
            _gemm_tn_accumulate(d, input, self.weight_updates)
            if prev_delta is not None:
                _gemm_nn_accumulate(d, self.weights, prev_delta)

    def _accumulate_bias(self, d):
        # Darknet adds, row by row, a one-element sum_array, i.e. (0 + d):
        # the 0 turns -0.0 into +0.0.
        zero = self.dtype(0)
        for row in d:
            self.bias_updates += zero + row

    def _batchnorm_backward(self, d, rows, stats_step, exact):
        """SPEC §4 Backward, in place on d (batch, outputs), the delta already
        multiplied by f'(y)."""
        x = self.x[rows]                                 # (batch, outputs) before BN
        mean = self.mean[stats_step]                     # (outputs,)
        var = self.variance[stats_step]

        self._accumulate_bias(d)                         # the biases are the BN shift
        self.scale_updates += _column_sum(d * self.x_norm[rows])   # summed from 0, then added
        d *= self.scales                                 # now d = -dL/dx̂
        if exact:
            d[...] = self._batchnorm_exact_delta(d, x, mean, var)
            return
        # Darknet: the textbook formulas of a biased-variance BN with 1e-5
        # inside the root - not the derivative of the forward above (Q6).
        dt, n = self.dtype, self.batch
        centered = x - mean                              # (batch, outputs), float
        eps_var = (var + dt(BN_BACKWARD_EPS)).astype(_F64)   # float add, then double
        root = np.sqrt(eps_var)
        mean_delta = (_column_sum(d).astype(_F64) * (-1.0 / root)).astype(dt)
        variance_delta = (_column_sum(d * centered).astype(_F64)
                          * (-0.5 * _libm(_c_pow, eps_var, -1.5))).astype(dt)
        # Three terms summed in double left to right; the last is a float division.
        d[...] = (d.astype(_F64) * 1.0 / root
                  + variance_delta.astype(_F64) * 2.0 * centered.astype(_F64) / n
                  + (mean_delta / dt(n)).astype(_F64)).astype(dt)

    def _batchnorm_exact_delta(self, g, x, mean, var):
        """-dL/dx for the BN forward actually computed (FIX_BN_GRADIENT, Q6).

        With c = x - μ, v = Σc²/(N-1) (unbiased), σ = sqrt(v), s = 1/(σ + 1e-6),
        x̂ = c·s and g = -dL/dx̂:
            dx̂_i/dx_j = s(δ_ij - 1/N) - s²·c_i·c_j / (σ(N-1))
        (μ's effect on v vanishes because Σc = 0), so
            -dL/dx_j = s·(g_j - mean(g)) - k·c_j,   k = s²/(σ(N-1)) · Σ_i g_i c_i.
        Sums and factors in double, one rounding at the end (the C core's
        layout). σ = 0 (every row equal, e.g. the self layer at t = 0 whose
        input h_0 is 0): c = 0 and the k·c term tends to 0; we use that limit
        instead of 0·inf = NaN."""
        n = self.batch
        g64 = g.astype(_F64)                             # (batch, outputs)
        c64 = x.astype(_F64) - mean.astype(_F64)         # double subtraction
        sigma = np.sqrt(var.astype(_F64))                # (outputs,)
        s = 1.0 / (sigma + BN_FORWARD_EPS)
        g_mean = np.zeros(self.outputs, _F64)
        g_dot = np.zeros(self.outputs, _F64)
        for r in range(n):                               # double accumulators, rows in order
            g_mean = g_mean + g64[r]
            g_dot = g_dot + g64[r] * c64[r]
        g_mean = g_mean / n
        k = np.where(sigma > 0, s * s / (sigma * (n - 1)) * g_dot, 0.0)
        return (s * (g64 - g_mean) - k * c64).astype(self.dtype)

    # ---- update ----------------------------------------------------------

    def update(self, learning_rate, momentum, decay, batch):
        """SGD with momentum and weight decay (SPEC §3 Update), Darknet's
        order, all in the layer dtype: darknet_rnn.optim.sgd_update over
        this layer's (parameter, update buffer) pairs."""
        args = UpdateArgs(_check_real("learning_rate", learning_rate),
                          _check_real("momentum", momentum), _check_real("decay", decay),
                          _check_int("batch", batch))
        sgd_update(block_params(self), args)


# --------------------------------------------------------------------------

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

    def __init__(self, batch, inputs, outputs, steps, activation="logistic",
                 batch_normalize=False, shortcut=False, fixes=0, dtype=np.float32):
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

    def reset_state(self):
        """Zero the recurrent state (Darknet has no CPU reset, Q21)."""
        self.state[...] = 0

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
            self.state[0] = 0
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


# --------------------------------------------------------------------------

class SoftmaxLayer:
    """[softmax] (SPEC §6): softmax over `groups` contiguous chunks of each row,
    with cross-entropy loss and delta = truth - p when a truth is given."""
    type = "softmax"

    output = _Buffer()             # (batch, inputs) probabilities
    delta = _Buffer()              # (batch, inputs) truth - p
    loss = _Buffer()               # (batch, inputs) -log p where truth != 0

    def __init__(self, batch, inputs, groups=1, temperature=1.0, noloss=False, fixes=0,
                 dtype=np.float32):
        self.batch = _check_int("batch", batch)
        self.inputs = self.outputs = _check_int("inputs", inputs)
        self.groups = _check_int("groups", groups)
        if self.inputs % self.groups:
            raise ValueError(f"groups ({groups}) must divide inputs ({inputs})")
        self.temperature = temperature
        self.noloss = bool(noloss)
        self.fixes = fixes
        self.dtype = dt = _check_dtype(dtype)
        self._output = np.zeros((self.batch, self.inputs), dt)
        self._delta = np.zeros((self.batch, self.inputs), dt)
        self._loss = np.zeros((self.batch, self.inputs), dt)
        self.cost = None

    @property
    def temperature(self):
        return self._temperature

    @temperature.setter
    def temperature(self, value):
        value = _check_real("temperature", value)
        if not value > 0:
            raise ValueError(f"temperature must be > 0, got {value}")
        self._temperature = value

    @property
    def fixes(self):
        """FIX_SOFTMAX_TEMPERATURE divides the delta passed down by the temperature."""
        return self._fixes

    @fixes.setter
    def fixes(self, value):
        self._fixes = _check_fixes(value)

    def __repr__(self):
        return (f"SoftmaxLayer(batch={self.batch}, inputs={self.inputs}, groups={self.groups}, "
                f"temperature={self.temperature}, dtype={np.dtype(self.dtype).name})")

    def forward(self, input, truth=None):
        """input, truth: (batch, inputs). Loss, delta and cost only with a truth
        and without noloss; otherwise cost is None."""
        dt = self.dtype
        input = _check_array("input", input, self.batch, self.inputs, dt)
        if truth is not None:
            truth = _check_array("truth", truth, self.batch, self.inputs, dt)
        n = self.inputs // self.groups
        x = input.reshape(self.batch, self.groups, n)             # (batch, groups, n)
        temp = dt(self.temperature)
        with np.errstate(all="ignore"):
            # largest starts at -FLT_MAX and takes x only when x > largest, so
            # NaN and -inf never become the maximum.
            largest = np.full((self.batch, self.groups), -FLT_MAX, dt)
            for i in range(n):
                largest = np.where(x[:, :, i] > largest, x[:, :, i], largest)
            # x/T - largest/T in float, exp in double, stored to float
            shifted = x / temp - (largest / temp)[:, :, None]
            e = _libm(_c_exp, shifted).astype(dt)                 # (batch, groups, n)
            total = np.zeros((self.batch, self.groups), dt)
            for i in range(n):
                total = total + e[:, :, i]
            self.output[...] = (e / total[:, :, None]).reshape(self.batch, self.inputs)
            if truth is None or self.noloss:
                self.cost = None
                return
            p = self.output
            # -log(p) only where truth != 0; the truth's value is not used (Q12)
            self.loss[...] = np.where(truth != 0, (-_libm(_c_log, p)).astype(dt), dt(0))
            self.delta[...] = truth - p
            self.cost = float(_sum_in_order(self.loss))

    def backward(self, prev_delta):
        """prev_delta (batch, inputs) += delta. delta = t - p is the negative
        gradient at temperature 1; with FIX_SOFTMAX_TEMPERATURE each element is
        divided by the temperature (float division), the gradient at any T.
        prev_delta None (a first layer): nothing to do."""
        if prev_delta is None:
            return
        dt = self.dtype
        prev_delta = _check_array("prev_delta", prev_delta, self.batch, self.inputs, dt,
                                  writable=True)
        with np.errstate(all="ignore"):
            if self.fixes & FIX_SOFTMAX_TEMPERATURE:
                prev_delta += self.delta / dt(self.temperature)
            else:
                prev_delta += self.delta            # axpy with alpha 1


# --------------------------------------------------------------------------

class CostLayer:
    """[cost] (SPEC §7): per-element error against the truth, delta, and the
    summed cost. scale only multiplies the delta passed down."""
    type = "cost"

    output = _Buffer()             # (batch, inputs) per-element error
    delta = _Buffer()              # (batch, inputs)

    def __init__(self, batch, inputs, cost_type="sse", scale=1.0, dtype=np.float32):
        self.batch = _check_int("batch", batch)
        self.inputs = self.outputs = _check_int("inputs", inputs)
        if not isinstance(cost_type, str):
            raise TypeError(f"cost_type must be a str, got {type(cost_type).__name__}")
        if cost_type not in COST_TYPES:
            raise ValueError(f"cost_type: unknown cost type {cost_type!r}; expected one of "
                             + ", ".join(COST_TYPES))
        self.cost_type = cost_type
        self.scale = _check_real("scale", scale)
        self.dtype = dt = _check_dtype(dtype)
        self._output = np.zeros((self.batch, self.inputs), dt)
        self._delta = np.zeros((self.batch, self.inputs), dt)
        self.cost = None

    def __repr__(self):
        return (f"CostLayer(batch={self.batch}, inputs={self.inputs}, "
                f"cost_type={self.cost_type!r}, scale={self.scale}, "
                f"dtype={np.dtype(self.dtype).name})")

    def forward(self, input, truth=None):
        """input, truth: (batch, inputs). Without a truth nothing happens (output
        and cost keep their old values). masked writes SECRET_NUM into `input`."""
        if truth is None:
            return
        dt = self.dtype
        input = _check_array("input", input, self.batch, self.inputs, dt,
                             writable=self.cost_type == "masked")
        truth = _check_array("truth", truth, self.batch, self.inputs, dt)
        with np.errstate(all="ignore"):
            if self.cost_type == "masked":
                # Darknet overwrites the previous layer's output, so d = 0 there.
                input[truth == SECRET_NUM] = SECRET_NUM
            d = truth - input                                     # (batch, inputs), float
            if self.cost_type == "smooth":
                size = np.abs(d)
                quadratic = size < 1
                error = np.where(quadratic, d * d, 2 * size - 1)
                # Q14: outside the quadratic zone the sign is the opposite of -dL/dx.
                delta = np.where(quadratic, d, np.where(d < 0, dt(1), dt(-1)))
            elif self.cost_type == "L1":
                error = np.abs(d)
                delta = np.where(d > 0, dt(1), dt(-1))
            else:                               # sse, seg, wgan, masked: L2 on the CPU
                error = d * d
                delta = d                       # half the negative gradient of Σd² (Q11)
            self.output[...] = error
            self.delta[...] = delta
            self.cost = float(_sum_in_order(self.output))

    def backward(self, prev_delta):
        """prev_delta (batch, inputs) += scale * delta (an axpy, float)."""
        if prev_delta is None:
            return
        dt = self.dtype
        prev_delta = _check_array("prev_delta", prev_delta, self.batch, self.inputs, dt,
                                  writable=True)
        with np.errstate(all="ignore"):
            prev_delta += dt(self.scale) * self.delta
