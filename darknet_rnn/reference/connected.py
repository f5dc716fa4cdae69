"""Darknet's [connected] layer with batch norm, in NumPy (forward, backward, update)."""
import numbers

import numpy as np

from darknet_rnn._checks import Buffer as _Buffer
from darknet_rnn.activations import activation_index
from darknet_rnn.optim import UpdateArgs, block_params, sgd_update

from ._common import (_F64, BN_BACKWARD_EPS, BN_FORWARD_EPS, _check_array, _check_dtype,
                      _check_int, _check_real, _column_sum, _gemm_nn_accumulate, _gemm_nt,
                      _gemm_tn_accumulate, _libm, _reciprocal, activate, gradient,
                      _check_fixes, _c_pow, FIX_BN_GRADIENT)


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


