"""Shared pieces of the NumPy twin: C-library math (glibc exp/log/pow per
element), Darknet's activations and their gradients, Darknet-order GEMMs,
constants and argument checks. See darknet_rnn/reference/__init__.py for the
rules the whole twin follows.
"""
import math
import numbers

import numpy as np

from darknet_rnn._checks import check_array as _check_array, check_int as _check_int  # noqa: F401
from darknet_rnn.activations import ACTIVATIONS, activation_index  # noqa: F401
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


