"""Darknet's [softmax] layer and its cross-entropy loss, in NumPy."""
import numpy as np

from darknet_rnn._checks import Buffer as _Buffer

from ._common import (FLT_MAX, _c_exp, _c_log, _check_array, _check_dtype, _check_fixes,
                      _check_int, _check_real, _libm, _sum_in_order, FIX_SOFTMAX_TEMPERATURE)


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

    def mask_rows(self, keep):
        """After a forward with truth (an extension): rows with keep False
        carry no loss - their delta and loss become 0 - and the cost is
        the in-order sum of the loss, so masked elements add exactly 0.
        keep: (batch,) bool."""
        masked = _keep_check(keep, self.batch)
        self.delta[masked] = 0
        self.loss[masked] = 0
        if self.cost is not None:
            self.cost = float(_sum_in_order(self.loss))


def _keep_check(keep, batch):
    """~keep, validated: the rows to mask."""
    k = np.asarray(keep)
    if k.dtype != np.bool_ or k.shape != (batch,):
        raise ValueError(f"keep must be a bool array of shape ({batch},), got "
                         f"{k.dtype.name} {k.shape}")
    return ~k
