"""Darknet's [dropout] layer in NumPy."""
import numpy as np

from darknet_rnn._checks import Buffer as _Buffer

from ._common import _check_array, _check_dtype, _check_int, _check_real


class DropoutLayer:
    """[dropout]: Darknet's dropout_layer.c on the CPU.

    Training forward: for every element i in row-major order, r =
    rand_uniform(0, 1) from `rng` (the network's rand() stream, the one that
    initialised the weights); rand[i] = r; the element becomes 0 where
    r < probability and is multiplied by scale = float(1 / (1 - probability))
    otherwise. Inference forward draws nothing and changes nothing. Backward
    zeroes and scales the delta with the same mask.

    Darknet gives the layer the previous layer's output and delta as its own
    (`output=`, `delta=` here): forward then rewrites the previous layer's
    output in place, which that layer's backward later reads, and backward
    masks the previous layer's delta in place. Without them the layer owns
    its buffers: output = mask(input), prev_delta += mask(delta).
    """
    type = "dropout"

    output = _Buffer()             # (batch, inputs); the previous layer's, in Darknet
    delta = _Buffer()              # (batch, inputs); the previous layer's, in Darknet
    rand = _Buffer()               # (batch, inputs) draws of the last training forward

    def __init__(self, batch, inputs, probability=0.5, rng=None, output=None, delta=None,
                 dtype=np.float32):
        self.batch = _check_int("batch", batch)
        self.inputs = self.outputs = _check_int("inputs", inputs)
        self.dtype = dt = _check_dtype(dtype)
        p = float(np.float32(_check_real("probability", probability)))   # a float key
        if not 0.0 <= p < 1.0:
            raise ValueError(f"probability must be in [0, 1), got {probability}")
        self.probability = p
        # l.scale = 1./(1.-probability): double arithmetic, stored in a float
        self.scale = float(dt(1.0 / (1.0 - p)))
        self.rng = rng
        shape = (self.batch, self.inputs)
        self._output = (np.zeros(shape, dt) if output is None
                        else _check_array("output", output, *shape, dt, writable=True))
        self._delta = (np.zeros(shape, dt) if delta is None
                       else _check_array("delta", delta, *shape, dt, writable=True))
        self._rand = np.zeros(shape, np.float32)

    def __repr__(self):
        return (f"DropoutLayer(batch={self.batch}, inputs={self.inputs}, "
                f"probability={self.probability:g}, dtype={np.dtype(self.dtype).name})")

    def forward(self, input, train=True):
        """input (batch, inputs); in place when it is the layer's output."""
        dt = self.dtype
        input = _check_array("input", input, self.batch, self.inputs, dt)
        out = self.output
        if not train:
            if not np.shares_memory(input, out):
                out[...] = input
            return
        if self.rng is None:
            raise ValueError("a dropout layer needs rng= (a GlibcRandom) to train")
        # rand_uniform(0, 1) = (float)rand() / RAND_MAX, one draw per element
        r = self.rng.rand_uniform_array(self.batch * self.inputs, 0, 1).reshape(out.shape)
        self.rand[...] = r
        drop = r < np.float32(self.probability)
        out[...] = np.where(drop, dt(0), input * dt(self.scale))

    def backward(self, prev_delta):
        """Mask prev_delta in place when it is the layer's delta (Darknet);
        else prev_delta += mask(delta). None: nothing to do."""
        if prev_delta is None:
            return
        dt = self.dtype
        prev_delta = _check_array("prev_delta", prev_delta, self.batch, self.inputs, dt,
                                  writable=True)
        drop = self.rand < np.float32(self.probability)
        if np.shares_memory(prev_delta, self.delta):
            prev_delta[...] = np.where(drop, dt(0), prev_delta * dt(self.scale))
        else:
            prev_delta += np.where(drop, dt(0), self.delta * dt(self.scale))
