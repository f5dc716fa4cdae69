"""darknet_rnn.reference - Darknet's CPU [connected], [rnn], [gru], [lstm],
[softmax] and [cost] layers in plain NumPy.

One module per layer type (connected.py, rnn.py, gru.py, lstm.py, softmax.py, cost.py) over
_common.py (C-library math, activations, Darknet-order GEMMs). Two jobs:

* **Test oracle.** In float32 every operation is done in the precision and in
  the order Darknet's C code (pjreddie/darknet, built with -O2, no fast-math,
  no FMA) does it, so results are bitwise identical to Darknet and to the C
  core in csrc/. The rules are in SPEC sections 2-7 and 12; the comments below
  say which C expression each line mirrors when that decides the last bit.
* **Teaching implementation.** Read ConnectedLayer (forward, backward,
  update through darknet_rnn.optim), then RNNLayer (forward through time, then backpropagation through
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
from ._common import (ACTIVATIONS, BN_BACKWARD_EPS, BN_FORWARD_EPS, COST_TYPES,  # noqa: F401
                      FIX_ALL, FIX_BN_GRADIENT, FIX_BN_STEP_STATS, FIX_COPY_BEFORE_SCALE,
                      FIX_SHORTCUT_CARRY, FIX_SOFTMAX_TEMPERATURE, FIX_STORED_STATE, FLT_MAX,
                      SECRET_NUM, activate, gradient)
from .birnn import BiRNNLayer
from .connected import ConnectedLayer
from .cost import CostLayer
from .dropout import DropoutLayer
from .gru import GRULayer
from .lstm import LSTMLayer
from .rnn import RNNLayer
from .softmax import SoftmaxLayer

__all__ = [
    "FIX_COPY_BEFORE_SCALE", "FIX_SHORTCUT_CARRY", "FIX_STORED_STATE",
    "FIX_BN_STEP_STATS", "FIX_BN_GRADIENT", "FIX_SOFTMAX_TEMPERATURE", "FIX_ALL",
    "COST_TYPES", "SECRET_NUM", "ACTIVATIONS",
    "activate", "gradient",
    "ConnectedLayer", "RNNLayer", "SoftmaxLayer", "CostLayer", "DropoutLayer",
    "GRULayer", "LSTMLayer",
    "ConnectedLayer", "RNNLayer", "SoftmaxLayer", "CostLayer", "BiRNNLayer",
]
