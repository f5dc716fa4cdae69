"""Argument checks and the buffer descriptor shared by the C-backed layers
(darknet_rnn.layers) and the NumPy twin (darknet_rnn.reference), so both
validate the same way and raise the same messages. Pure Python: importing it
does not need the compiled module."""
import numbers

import numpy as np


def check_int(name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_array(name, a, rows, cols, dtype=np.float32, writable=False):
    """Validate an array of `dtype` shaped (rows, cols) or flat (rows*cols,),
    C-contiguous; returns it viewed as (rows, cols), so writes reach the
    caller's buffer."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(a).__name__}")
    if a.dtype != dtype:
        raise TypeError(f"{name} must have dtype {np.dtype(dtype).name}, got {a.dtype.name}")
    if a.shape != (rows, cols) and a.shape != (rows * cols,):
        raise ValueError(f"{name} must have shape ({rows}, {cols}) (or ({rows * cols},)), "
                         f"got {a.shape}")
    if not a.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous (use numpy.ascontiguousarray)")
    if writable and not a.flags.writeable:
        raise ValueError(f"{name} must be writable")
    return a.reshape(rows, cols)


def stream_indices(streams, batch):
    """Validate a stream list for reset_state: None (all) or ints in [0, batch)."""
    if streams is None:
        return slice(None)
    idx = [check_int("streams", s, minimum=0) for s in np.atleast_1d(np.asarray(streams, dtype=object))]
    bad = [s for s in idx if s >= batch]
    if bad:
        raise ValueError(f"streams: {bad[0]} is out of range for {batch} streams")
    return idx


def reset_streams(layer, streams=None):
    """Zero a recurrent layer's state blocks and training carry for the
    given streams (None: all): state is (steps+1, batch, H), carry (batch, H)."""
    idx = stream_indices(streams, layer.batch)
    layer.state[:, idx] = 0
    layer.carry[idx] = 0


class Buffer:
    """A layer array: reading gives the array; assigning copies into it
    (shape-checked), so views handed out earlier - and, for the native
    layers, the C struct pointing into it - stay valid."""

    def __set_name__(self, owner, name):
        self.name = name
        self.attr = "_" + name

    def __get__(self, obj, objtype=None):
        if obj is None:
            return self
        return getattr(obj, self.attr)

    def __set__(self, obj, value):
        buf = getattr(obj, self.attr)
        if buf is None:
            raise AttributeError(f"{self.name} is not allocated for this layer")
        value = np.asarray(value)
        if value.shape != buf.shape:
            raise ValueError(f"{self.name} must have shape {buf.shape}, got {value.shape}")
        buf[...] = value
