"""Darknet's learning-rate schedule (get_current_rate, SPEC section 10),
reproduced bit for bit.

The batch counter is an unsigned 64-bit integer; every int/float conversion,
float and double operation is done as Darknet's C code does it. pow and exp
come from the C math library (through ctypes) so the double results are the
ones a C program gets on this machine; if it cannot be loaded, Python's math
functions (which call the same libm) are used with C's inf/NaN behaviour.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import math

import numpy as np

__all__ = ["current_rate", "batch_num", "uint64_to_float32"]

_U64 = 2**64


def _load_libm():
    for name in (ctypes.util.find_library("m"), "libm.so.6", None):
        try:
            lib = ctypes.CDLL(name)
            pw, ex = lib.pow, lib.exp
        except (OSError, AttributeError, TypeError):
            continue
        pw.restype = ctypes.c_double
        pw.argtypes = (ctypes.c_double, ctypes.c_double)
        ex.restype = ctypes.c_double
        ex.argtypes = (ctypes.c_double,)
        return pw, ex
    return None, None


_c_pow, _c_exp = _load_libm()


def _pow(x: float, y: float) -> float:
    """C pow(double, double)."""
    if _c_pow is not None:
        return _c_pow(x, y)
    try:
        return math.pow(x, y)
    except ValueError:
        return math.nan
    except OverflowError:
        # |x| > 1 with large y (or |x| < 1 with very negative y); the sign is
        # negative only for a negative base with an odd integer exponent
        neg = x < 0 and float(y).is_integer() and int(y) % 2 == 1
        return -math.inf if neg else math.inf


def _exp(x: float) -> float:
    """C exp(double)."""
    if _c_exp is not None:
        return _c_exp(x)
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


def _f32(x) -> np.float32:
    with np.errstate(all="ignore"):
        return np.float32(np.float64(x))


def uint64_to_float32(n: int) -> np.float32:
    """(float)n for an unsigned 64-bit n, correctly rounded (nearest, ties to
    even) as the C conversion does - no double rounding through float64."""
    n = int(n) % _U64
    bits = n.bit_length()
    if bits > 24:
        shift = bits - 24
        mant = n >> shift
        rem = n & ((1 << shift) - 1)
        half = 1 << (shift - 1)
        if rem > half or (rem == half and (mant & 1)):
            mant += 1
        n = mant << shift          # exactly representable in float32 and double
    return np.float32(float(n))


def batch_num(seen: int, net) -> int:
    """Darknet's get_current_batch: seen / (net.batch * subdivisions), where
    net.batch = streams * time_steps (unsigned integer division)."""
    return (int(seen) % _U64) // (net.net_batch * net.subdivisions)


def current_rate(net, batch_num: int, rng=None) -> np.float32:
    """get_current_rate for batch counter `batch_num` (an unsigned 64-bit value).

    `net` is a NetOptions (or anything with its attributes). `rng` (a
    GlibcRandom) is needed for the 'random' policy only; it draws one
    rand_uniform(0, 1) value, as Darknet draws from the C rand() stream.
    """
    b = int(batch_num) % _U64
    lr = float(np.float32(net.learning_rate))          # float -> double: exact
    power = float(np.float32(net.power))
    # burn_in is an int compared as unsigned long
    burn_in_u = int(net.burn_in) % _U64
    if b < burn_in_u:
        ratio = np.float32(uint64_to_float32(b) / np.float32(net.burn_in))
        return _f32(lr * _pow(float(ratio), power))
    policy = net.policy
    if policy == "constant":
        return np.float32(lr)
    if policy == "step":
        step_u = int(net.step) % _U64
        if step_u == 0:
            raise ZeroDivisionError("policy=step with step=0 (Darknet divides by zero)")
        q = b // step_u
        return _f32(lr * _pow(float(np.float32(net.scale)), float(q)))
    if policy == "steps":
        rate = np.float32(lr)
        for step, scale in zip(net.steps, net.scales):
            if int(step) % _U64 > b:       # int compared as unsigned long
                return rate
            with np.errstate(all="ignore"):
                rate = np.float32(rate * np.float32(scale))
        return rate
    if policy == "exp":
        return _f32(lr * _pow(float(np.float32(net.gamma)), float(b)))
    if policy == "poly":
        with np.errstate(all="ignore"):
            frac = np.float32(uint64_to_float32(b) / np.float32(net.max_batches))
            base = np.float32(np.float32(1) - frac)
        return _f32(lr * _pow(float(base), power))
    if policy == "random":
        if rng is None:
            raise ValueError("policy=random needs rng (a GlibcRandom) to draw from")
        u = np.float32(rng.rand_uniform(0, 1))
        return _f32(lr * _pow(float(u), power))
    if policy == "sigmoid":
        d = (b - int(net.step)) % _U64                 # unsigned 64-bit difference
        with np.errstate(all="ignore"):
            g = np.float32(np.float32(net.gamma) * uint64_to_float32(d))
        return _f32(lr * (1.0 / (1.0 + _exp(float(g)))))
    # Darknet prints "Policy is weird!" and returns the base rate
    return np.float32(lr)
