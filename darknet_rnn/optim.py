"""Optimizers: the step from accumulated gradients to parameters.

Layers do not update themselves. Each layer lists its parameters as `Param`
pairs (the parameter array and its update buffer, Darknet's `*_updates`,
which backward fills with the accumulated *negative* gradient of the batch);
the network collects them per update and hands them, with `UpdateArgs`, to
its optimizer. Gradient hooks (clipping, a cross-process all-reduce,
gradient statistics) act on the same list before the optimizer runs.

`DarknetSGD` is Darknet's update_connected_layer (momentum, decay, the batch
divisor) and the default: on the C core (`native=True`, csrc/optimizer.c)
and in NumPy (any float dtype) it is the same float arithmetic in the same
order, so both are bitwise Darknet's in float32.

Adding an optimizer: a class with `name` and `step(params, args)` that
updates `p.value` from `p.grad` for every Param (and clears or keeps
`p.grad` as its rule says), plus any state of its own keyed by position in
the list (the list and its order are the same at every update of a network).
"""
from dataclasses import dataclass
from typing import List, Sequence

import numpy as np

__all__ = ["Param", "UpdateArgs", "DarknetSGD", "block_params", "sgd_update"]


@dataclass
class Param:
    """One parameter array and its update buffer (same shape, same dtype)."""
    name: str                    # e.g. "layer 0 [rnn] input_layer.weights"
    value: np.ndarray
    grad: np.ndarray             # Darknet's *_updates: accumulated negative gradient
    decay: bool                  # weight decay applies (weights only, as Darknet)
    learning_rate_scale: float = 1.0


@dataclass(frozen=True)
class UpdateArgs:
    """Darknet's update_args: the lr policy's current rate, momentum, decay
    and the batch divisor (net batch * subdivisions)."""
    learning_rate: float
    momentum: float
    decay: float
    batch: int


def block_params(block, prefix="") -> List[Param]:
    """The Params of a connected-like block (weights, biases and, with batch
    norm, scales), in Darknet's update order: biases, scales, weights."""
    scale = float(getattr(block, "learning_rate_scale", 1.0))
    out = [Param(prefix + "biases", block.biases, block.bias_updates, False, scale)]
    if block.batch_normalize:
        out.append(Param(prefix + "scales", block.scales, block.scale_updates, False, scale))
    out.append(Param(prefix + "weights", block.weights, block.weight_updates, True, scale))
    return out


def _check_args(args):
    from ._checks import check_int
    for name in ("learning_rate", "momentum", "decay"):
        v = getattr(args, name)
        if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)):
            raise TypeError(f"{name} must be a real number, got {type(v).__name__}")
    check_int("batch", args.batch)


def sgd_update(params: Sequence[Param], args: UpdateArgs) -> None:
    """Darknet's SGD in NumPy, in the parameters' own dtype (float32: bitwise
    with the C core and Darknet; float64 for finite-difference checks)."""
    _check_args(args)
    with np.errstate(all="ignore"):
        for p in params:
            dt = p.value.dtype.type
            batch = dt(int(args.batch))                 # int -> float, as C converts it
            rate = dt(args.learning_rate) * dt(p.learning_rate_scale) / batch
            if p.decay:
                p.grad += (-dt(args.decay) * batch) * p.value
            p.value += rate * p.grad
            p.grad *= dt(args.momentum)


class _NativeParams:
    """A dn_param[] for a fixed list of float32 Params (built once)."""

    def __init__(self, params):
        from ._ffi import ffi, fptr
        self.params = list(params)
        self.c = ffi.new("dn_param[]", max(1, len(self.params)))
        for i, p in enumerate(self.params):
            if p.value.dtype != np.float32 or p.grad.dtype != np.float32:
                raise TypeError(f"{p.name}: the C optimizer needs float32 arrays")
            if p.value.size != p.grad.size:
                raise ValueError(f"{p.name}: value and grad sizes differ")
            c = self.c[i]
            c.value, c.grad, c.n = fptr(p.value), fptr(p.grad), int(p.value.size)
            c.learning_rate_scale = float(p.learning_rate_scale)
            c.decay = int(bool(p.decay))


def sgd_update_native(params: Sequence[Param], args: UpdateArgs, _cache=None) -> None:
    """Darknet's SGD on the C core (csrc/optimizer.c); float32 only."""
    from ._ffi import check, ffi, lib
    _check_args(args)
    native = _cache if _cache is not None else _NativeParams(params)
    a = ffi.new("dn_update_args *")
    a.learning_rate, a.momentum, a.decay = (float(args.learning_rate), float(args.momentum),
                                            float(args.decay))
    a.batch = int(args.batch)
    check(lib.dn_sgd_update(a, native.c, len(native.params)), "sgd update")


class DarknetSGD:
    """Darknet's optimizer: SGD with momentum and weight decay, the step
    divided by the batch. `native` runs it on the C core (float32)."""
    name = "sgd"

    def __init__(self, native=False):
        self.native = bool(native)
        self._key = None
        self._cache = None

    def step(self, params: Sequence[Param], args: UpdateArgs) -> None:
        if not self.native:
            sgd_update(params, args)
            return
        key = tuple(id(p.value) for p in params)
        if key != self._key:                     # the list a network hands over is stable
            self._cache, self._key = _NativeParams(params), key
        sgd_update_native(params, args, self._cache)

    def __repr__(self):
        return f"DarknetSGD(native={self.native})"
