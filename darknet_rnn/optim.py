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

A hook is a callable hook(net, params, args) in net.gradient_hooks; one that
needs the pure gradient (not the momentum carry of Darknet's SGD) sets
`needs_gradient = True` and reads it with gradient(p) / scales it with
scale_gradient(p, f). ClipGradNorm is the model.

Adding an optimizer: a class with `name` and `step(params, args)` that
updates `p.value` from `p.grad` for every Param (and clears or keeps
`p.grad` as its rule says), plus any state of its own keyed by position in
the list (the list and its order are the same at every update of a network).
"""
from dataclasses import dataclass
from typing import List, Optional, Sequence

import numpy as np

__all__ = ["Param", "UpdateArgs", "DarknetSGD", "Adam", "make_optimizer", "block_params",
           "sgd_update", "adam_update", "ClipGradNorm", "gradient", "scale_gradient"]


@dataclass
class Param:
    """One parameter array and its update buffer (same shape, same dtype)."""
    name: str                    # e.g. "layer 0 [rnn] input_layer.weights"
    value: np.ndarray
    grad: np.ndarray             # Darknet's *_updates: accumulated negative gradient
    decay: bool                  # weight decay applies (weights only, as Darknet)
    learning_rate_scale: float = 1.0
    carry: Optional[np.ndarray] = None   # the optimizer's part of `grad` (see gradient())


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


def adam_update(params: Sequence[Param], moments, args: UpdateArgs, B1, B2, eps, t) -> None:
    """Darknet's Adam (its GPU adam_update) in NumPy, in the parameters' dtype;
    the same operations in the same order as dn_adam_update. `moments` holds
    an (m, v) pair per Param; t is the update counter (>= 1)."""
    _check_args(args)
    with np.errstate(all="ignore"):
        for p, (m, v) in zip(params, moments):
            dt = p.value.dtype.type
            c1, c2 = _corrections(B1, B2, t, dt)
            batch = dt(int(args.batch))
            lr = dt(args.learning_rate) * dt(p.learning_rate_scale)
            b1, b2 = dt(B1), dt(B2)
            m *= b1
            v *= b2
            g = p.grad + (-dt(args.decay) * batch) * p.value
            m += (dt(1) - b1) * g
            v += (dt(1) - b2) * (g * g)
            mhat = m / c1
            vhat = v / c2
            p.value += (lr * mhat) / (np.sqrt(vhat) + dt(eps))
            p.grad[...] = 0


def _corrections(B1, B2, t, dt=np.float32):
    """1 - B1^t and 1 - B2^t, computed once in double and rounded to the
    parameter dtype (Darknet's kernel calls powf per element; one value per
    update keeps the C core and the NumPy twin bitwise equal)."""
    return dt(1.0 - float(dt(B1)) ** int(t)), dt(1.0 - float(dt(B2)) ** int(t))


class _NativeParams:
    """A dn_param[] for a fixed list of float32 Params (built once), with
    Adam's moments when given."""

    def __init__(self, params, moments=None):
        from ._ffi import ffi, fptr
        self.params = list(params)
        self.moments = moments
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
            if moments is not None:
                m, v = moments[i]
                c.m, c.v = fptr(m), fptr(v)


def _native_args(args):
    from ._ffi import ffi
    a = ffi.new("dn_update_args *")
    a.learning_rate, a.momentum, a.decay = (float(args.learning_rate), float(args.momentum),
                                            float(args.decay))
    a.batch = int(args.batch)
    return a


def sgd_update_native(params: Sequence[Param], args: UpdateArgs, _cache=None) -> None:
    """Darknet's SGD on the C core (csrc/optimizer.c); float32 only."""
    from ._ffi import check, lib
    _check_args(args)
    native = _cache if _cache is not None else _NativeParams(params)
    check(lib.dn_sgd_update(_native_args(args), native.c, len(native.params)), "sgd update")


class DarknetSGD:
    """Darknet's optimizer: SGD with momentum and weight decay, the step
    divided by the batch. `native` runs it on the C core (float32). The
    momentum stays in the update buffers (Darknet's weight_updates)."""
    name = "sgd"
    carries_momentum = True

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


class Adam:
    """Adam as Darknet's GPU build defines it ([net] adam=1 with B1, B2,
    eps), on the CPU: first and second moments for weights, biases and BN
    scales; decay folded into the gradient (-decay*batch*w, every array);
    bias correction with the update counter `t`, incremented before each
    update; w += rate * mhat / (sqrt(vhat) + eps) with the lr policy's rate
    (times the layer's learning_rate scale), not divided by the batch; the
    gradient buffers are cleared after the step (no momentum carry).
    `native` runs it on the C core (float32); the NumPy version is bitwise
    the same in float32."""
    name = "adam"
    carries_momentum = False

    def __init__(self, B1=0.9, B2=0.999, eps=1e-7, native=False):
        for key, val in (("B1", B1), ("B2", B2)):
            if not 0 <= float(val) < 1:
                raise ValueError(f"{key} must be in [0, 1), got {val}")
        if not float(eps) > 0:
            raise ValueError(f"eps must be > 0, got {eps}")
        self.B1, self.B2, self.eps = float(B1), float(B2), float(eps)
        self.native = bool(native)
        self.t = 0                     # Darknet's net->t: updates so far
        self.moments = None            # [(m, v)] per Param, allocated at the first step
        self._key = None
        self._cache = None

    def _moments_for(self, params):
        key = tuple(id(p.value) for p in params)
        if key != self._key:
            if self.moments is not None and len(self.moments) != len(params):
                raise ValueError("Adam was stepped with a different parameter list")
            if self.moments is None:
                self.moments = [(np.zeros_like(p.value), np.zeros_like(p.value))
                                for p in params]
            self._key = key
            self._cache = _NativeParams(params, self.moments) if self.native else None
        return self.moments

    def step(self, params: Sequence[Param], args: UpdateArgs) -> None:
        moments = self._moments_for(params)
        self.t += 1
        if not self.native:
            adam_update(params, moments, args, self.B1, self.B2, self.eps, self.t)
            return
        from ._ffi import check, lib
        _check_args(args)
        a = _native_args(args)
        a.B1, a.B2, a.eps = self.B1, self.B2, self.eps
        a.correction1, a.correction2 = (float(c) for c in _corrections(self.B1, self.B2, self.t))
        check(lib.dn_adam_update(a, self._cache.c, len(self._cache.params)), "adam update")

    def __repr__(self):
        return f"Adam(B1={self.B1}, B2={self.B2}, eps={self.eps}, t={self.t}, native={self.native})"


def make_optimizer(name, options, native):
    """The optimizer `name` ("sgd": Darknet's SGD; "adam": Adam with the
    [net] section's B1, B2, eps) for a network's options."""
    if name in (None, "sgd"):
        return DarknetSGD(native=native)
    if name == "adam":
        return Adam(options.B1, options.B2, options.eps, native=native)
    raise ValueError(f"optimizer must be 'sgd' or 'adam', got {name!r}")


# --------------------------------------------------------------------------
# gradient hooks

def gradient(p: Param) -> np.ndarray:
    """The gradient accumulated since the last update (negative, summed over
    the rows): the update buffer less the optimizer's carry (Darknet's SGD
    keeps momentum * previous step in the same buffer). A new array when
    there is a carry, else the buffer itself."""
    carry = getattr(p, "carry", None)
    return p.grad if carry is None else p.grad - carry


def scale_gradient(p: Param, factor) -> None:
    """Multiply the gradient part of p's update buffer by `factor`."""
    dt = p.grad.dtype.type
    carry = getattr(p, "carry", None)
    if carry is None:
        p.grad *= dt(factor)
    else:
        p.grad[...] = carry + (p.grad - carry) * dt(factor)


class ClipGradNorm:
    """Gradient clipping by global L2 norm (char-rnn's -grad_clip, PyTorch's
    clip_grad_norm_), as a gradient hook. The norm is taken over every
    parameter's gradient of one update - the accumulated gradient divided by
    Darknet's batch divisor, i.e. the mean gradient over the batch's rows -
    before decay, momentum or Adam; when it exceeds `max_norm` every
    gradient is scaled by max_norm / norm. `last_norm` is the pre-clip norm
    of the latest update (NaN/inf norms are recorded and left alone)."""
    needs_gradient = True

    def __init__(self, max_norm):
        if isinstance(max_norm, bool) or not np.isfinite(float(max_norm)) or \
                not float(max_norm) > 0:
            raise ValueError(f"clip_norm must be a positive finite number, got {max_norm!r}")
        self.max_norm = float(max_norm)
        self.last_norm = None
        self.clipped = 0               # updates that were scaled

    def __call__(self, net, params, args):
        total = 0.0
        for p in params:
            g = gradient(p).reshape(-1).astype(np.float64)
            total += float(np.dot(g, g))
        norm = float(np.sqrt(total)) / int(args.batch)
        self.last_norm = norm
        if np.isfinite(norm) and norm > self.max_norm:
            factor = self.max_norm / norm
            for p in params:
                scale_gradient(p, factor)
            self.clipped += 1

    def __repr__(self):
        return f"ClipGradNorm(max_norm={self.max_norm})"
