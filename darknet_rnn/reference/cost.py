"""Darknet's [cost] layer in NumPy."""
import numpy as np

from darknet_rnn._checks import Buffer as _Buffer

from ._common import (COST_TYPES, SECRET_NUM, _check_array, _check_dtype, _check_int,
                      _check_real, _sum_in_order)
from .softmax import _keep_check


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

    def mask_rows(self, keep):
        """After a forward with truth (an extension): rows with keep False
        carry no loss - their delta and per-element error become 0 - and the
        cost is the in-order sum of the error over the other rows.
        keep: (batch,) bool."""
        masked = _keep_check(keep, self.batch)
        self.delta[masked] = 0
        self.output[masked] = 0
        if self.cost is not None:
            self.cost = float(_sum_in_order(self.output))
