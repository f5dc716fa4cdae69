"""Network: a Darknet network built from a .cfg, with Darknet's bookkeeping.

Mirrors darknet's network.c for the layers in scope: forward (each layer's
delta zeroed, then forward on the previous output), cost averaging,
backward from the last layer to the first, train_network_datum (seen,
subdivisions, update), the learning-rate policies, stateful inference and
.weights I/O. The layer objects are darknet_rnn.layers (C core) or, with
backend="reference", darknet_rnn.reference (the bit-exact NumPy twin), or
with backend="numpy", darknet_rnn.vectorized (the BLAS-speed NumPy
baseline); all expose every buffer as NumPy arrays through `net.layers`.
"""
import dataclasses
import os
import warnings

import numpy as np

from . import policy
from ._rand import GlibcRandom, clock_seed
from .cfg import parse_cfg
from .errors import CfgError
from .fixes import FIX_ALL, FIX_BN_GRADIENT, FIX_SOFTMAX_TEMPERATURE
from .weights import entry_for_layer, init_weights, load_weights, save_weights


def _backend_module(backend):
    if backend == "native":
        from . import layers
        return layers
    if backend == "reference":
        from . import reference
        return reference
    if backend == "numpy":
        from . import vectorized
        return vectorized
    raise ValueError(f"backend must be 'native', 'reference' or 'numpy', got {backend!r}")


class Network:
    """A Darknet network. Build it with load_network(cfg, weights)."""

    def __init__(self, spec, *, seed=None, strict=True, exact=False, backend="native",
                 kernel=None, threads=None, dtype=np.float32):
        self.spec = spec
        self.cfg_path = spec.path
        opts = spec.net
        self.options = opts
        self.strict = strict
        self.backend = backend
        self.fixes = FIX_ALL if exact else 0
        self.streams = opts.streams
        self.time_steps = opts.time_steps
        self.subdivisions = opts.subdivisions
        self.batch = self.streams * self.time_steps        # Darknet's net->batch
        self.inputs = opts.inputs
        self.max_batches = opts.max_batches
        self.seen = 0
        if seed is None:
            seed = clock_seed()
        self.seed = seed
        # Darknet draws weight initialisation and the random lr policy from
        # the same rand() stream.
        self.rng = GlibcRandom(seed)

        mod = _backend_module(backend)
        ctx = None
        if backend == "native" and (kernel is not None or threads is not None):
            from ._ffi import Context
            ctx = Context(kernel, threads)
        self.ctx = ctx
        extra = {"ctx": ctx} if backend == "native" else {"dtype": dtype}
        self.layers = []
        for ls in spec.layers:
            if ls.type == "rnn":
                layer = mod.RNNLayer(batch=self.streams, inputs=ls.inputs, outputs=ls.outputs,
                                     steps=self.time_steps, activation=ls.activation,
                                     batch_normalize=ls.batch_normalize, shortcut=ls.shortcut,
                                     fixes=self.fixes, **extra)
            elif ls.type == "connected":
                layer = mod.ConnectedLayer(batch=self.batch, inputs=ls.inputs,
                                           outputs=ls.outputs, activation=ls.activation,
                                           batch_normalize=ls.batch_normalize,
                                           learning_rate_scale=ls.learning_rate_scale, **extra)
            elif ls.type == "softmax":
                extra_s = {} if backend == "native" else {"dtype": dtype}
                layer = mod.SoftmaxLayer(batch=self.batch, inputs=ls.inputs, groups=ls.groups,
                                         temperature=ls.temperature, noloss=ls.noloss,
                                         fixes=self.fixes & FIX_SOFTMAX_TEMPERATURE, **extra_s)
            elif ls.type == "cost":
                extra_s = {} if backend == "native" else {"dtype": dtype}
                layer = mod.CostLayer(batch=self.batch, inputs=ls.inputs,
                                      cost_type=ls.cost_type, scale=ls.scale, **extra_s)
            else:  # the parser only produces the types above
                raise CfgError(f"{spec.path}:{ls.line}: layer type {ls.type!r} not supported")
            self.layers.append(layer)
        outs = [i for i, l in enumerate(self.layers) if l.type != "cost"]
        if not outs:
            raise CfgError(f"{spec.path}: the network has no layer besides [cost]")
        self._out_index = outs[-1]
        self.outputs = self.layers[self._out_index].outputs
        self.truths = self.outputs
        init_weights(self._entries(), self.rng)

    # ------------------------------------------------------------------
    # weights

    def _entries(self):
        entries = []
        for ls, layer in zip(self.spec.layers, self.layers):
            if layer.type == "rnn":
                blocks = [layer.input_layer, layer.self_layer, layer.output_layer]
            elif layer.type == "connected":
                blocks = [layer]
            else:
                blocks = []
            entries.append(entry_for_layer(ls, blocks))
        return entries

    def load_weights(self, path, *, strict=None):
        """Load a Darknet .weights file; sets `seen` from its header."""
        strict = self.strict if strict is None else strict
        header = load_weights(path, self._entries(), strict=strict)
        self.seen = int(header.seen)
        return header

    def save_weights(self, path):
        """Write a Darknet .weights file (version 0.2.0) atomically."""
        save_weights(path, self._entries(), seen=self.seen)

    # ------------------------------------------------------------------
    # data

    def _rows(self, a, name, width):
        """Accept (time_steps, streams, width), (batch, width) or flat; return
        a float32 C-contiguous (batch, width) array."""
        arr = np.asarray(a)
        if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
                or arr.dtype == np.bool_):
            raise TypeError(f"{name} must be a numeric array, got dtype {arr.dtype}")
        n = self.batch * width
        shapes = [(self.time_steps, self.streams, width), (self.batch, width), (n,)]
        if arr.shape not in shapes:
            raise ValueError(f"{name} must have shape ({self.time_steps}, {self.streams}, {width})"
                             f" (time_steps, streams, {'inputs' if name == 'x' else 'outputs'}),"
                             f" or ({self.batch}, {width}) or ({n},); got {arr.shape}")
        return np.ascontiguousarray(arr.reshape(self.batch, width), dtype=np.float32)

    # ------------------------------------------------------------------
    # Darknet's network.c

    def _forward(self, x, truth, train):
        inp = x
        for layer in self.layers:
            if layer.type != "rnn":      # an [rnn] forward zeroes all its sublayer deltas
                layer.delta[...] = 0
            if layer.type in ("softmax", "cost"):
                layer.forward(inp, truth)
            else:
                layer.forward(inp, train=train)
            inp = layer.output
        costs = [l for l in self.layers if l.type in ("softmax", "cost")]
        total = np.float32(0)
        for l in costs:
            total = np.float32(total + np.float32(l.cost if l.cost is not None else 0.0))
        with np.errstate(invalid="ignore", divide="ignore"):
            return float(np.float32(total / np.float32(len(costs))))

    def _backward(self, x):
        bn_fix = self.fixes & FIX_BN_GRADIENT
        for i in range(len(self.layers) - 1, -1, -1):
            layer = self.layers[i]
            if self.spec.layers[i].stopbackward:
                break
            if i == 0:
                inp, prev_delta = x, None
            else:
                prev = self.layers[i - 1]
                inp, prev_delta = prev.output, prev.delta
            if layer.type in ("softmax", "cost"):
                layer.backward(prev_delta)
            elif layer.type == "connected":
                layer.backward(inp, prev_delta, fixes=bn_fix)
            else:
                layer.backward(inp, prev_delta)

    def _check_trainable(self):
        """Q7: batch norm over one row per call gives NaN in Darknet."""
        for ls, layer in zip(self.spec.layers, self.layers):
            if not ls.batch_normalize:
                continue
            rows = layer.batch
            if rows == 1:
                what = "1 stream per time step" if ls.type == "rnn" else "a batch of 1 row"
                msg = (f"{self.cfg_path}:{ls.line}: layer {ls.index} {ls.section} has "
                       f"batch_normalize=1 with {what}: the variance divides by zero and "
                       f"Darknet trains NaN (SPEC Q7); use at least 2 streams")
                if self.strict:
                    raise CfgError(msg)
                warnings.warn(msg, RuntimeWarning, stacklevel=3)

    def train(self, x, y):
        """One train_network_datum: forward, backward, maybe update. Returns
        Darknet's loss (the averaged layer costs, not divided by the batch)."""
        self._check_trainable()
        x = self._rows(x, "x", self.inputs)
        y = self._rows(y, "y", self.truths)
        self.seen += self.batch
        loss = self._forward(x, y, train=True)
        self._backward(x)
        if (self.seen // self.batch) % self.subdivisions == 0:
            self.update()
        return loss

    def update(self):
        """update_network: every layer with parameters, Darknet's arguments."""
        o = self.options
        lr = self.current_rate()
        batch = self.batch * self.subdivisions
        for layer in self.layers:
            if layer.type in ("rnn", "connected"):
                layer.update(lr, o.momentum, o.decay, batch)

    def forward(self, x, y=None, train=False):
        """Run the network forward; returns Darknet's cost (NaN without truth
        layers). Outputs stay in the layers."""
        x = self._rows(x, "x", self.inputs)
        y = None if y is None else self._rows(y, "y", self.truths)
        return self._forward(x, y, train=train)

    def predict(self, x):
        """Inference forward (state carries across calls). x is (inputs,) when
        the net batch is 1, else (time_steps, streams, inputs); returns a new
        array, (outputs,) or (time_steps*streams, outputs)."""
        if self.batch == 1:
            arr = np.asarray(x)
            if arr.shape not in ((self.inputs,), (1, self.inputs), (1, 1, self.inputs)):
                raise ValueError(f"x must have shape ({self.inputs},) for a network with batch 1,"
                                 f" got {arr.shape}")
        x = self._rows(x, "x", self.inputs)
        self._forward(x, None, train=False)
        out = self.layers[self._out_index].output.copy()
        return out.reshape(self.outputs) if self.batch == 1 else out

    @property
    def output(self):
        """The last forward's network output, (time_steps*streams, outputs) (a copy)."""
        return self.layers[self._out_index].output.copy()

    def reset_state(self):
        """Zero every [rnn] state (Darknet has no CPU reset, Q21)."""
        for layer in self.layers:
            if layer.type == "rnn":
                layer.reset_state()

    def set_temperature(self, temperature):
        """Set every [softmax] layer's temperature (as `darknet rnn generate`)."""
        for layer in self.layers:
            if layer.type == "softmax":
                layer.temperature = temperature

    def init_draws(self):
        """How many rand() calls Darknet's parse_network_cfg makes for this
        network (one per connected weight, drawn even when weights are then
        loaded from a file)."""
        return sum(int(b.weights.size) for e in self._entries() for b in e.blocks)

    def current_batch(self):
        return self.seen // (self.batch * self.subdivisions)

    def current_rate(self):
        return float(policy.current_rate(self.options, self.current_batch(), self.rng))

    def __repr__(self):
        kinds = " > ".join(l.type for l in self.layers)
        return (f"Network({os.path.basename(str(self.cfg_path))}: {kinds}; streams={self.streams}, "
                f"time_steps={self.time_steps}, inputs={self.inputs}, outputs={self.outputs})")


def load_network(cfg_path, weights_path=None, *, seed=None, strict=True, exact=False,
                 backend="native", kernel=None, threads=None, clear=False, streams=None):
    """Parse a Darknet .cfg, initialise as Darknet does (srand(seed)), and
    load a .weights file if given (like Darknet's load_network).

    streams: None keeps the cfg's [net] shape; an int gives the inference
    shape batch=streams, subdivisions=1, time_steps=1 (so a training cfg can
    generate or validate), as `darknet rnn generate` sets the batch to 1."""
    spec = parse_cfg(cfg_path, strict=strict)
    if streams is not None:
        if isinstance(streams, bool) or not isinstance(streams, int) or streams < 1:
            raise ValueError(f"streams must be a positive int, got {streams!r}")
        opts = spec.net
        if (opts.streams, opts.time_steps) != (streams, 1):
            spec.net = dataclasses.replace(opts, batch=streams, subdivisions=1, time_steps=1)
    net = Network(spec, seed=seed, strict=strict, exact=exact, backend=backend,
                  kernel=kernel, threads=threads)
    if weights_path is not None:
        net.load_weights(weights_path)
    if clear:
        net.seen = 0
    return net
