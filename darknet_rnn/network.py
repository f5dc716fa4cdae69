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

from . import distributed, guard, policy
from ._rand import GlibcRandom, clock_seed
from .cfg import parse_cfg
from .cfgcheck import build_layer, check_alloc
from .checkpoint import load_training_state, save_training_state
from .concurrency import serialized
from .errors import CfgError
from .fixes import FIX_ALL
from .optim import ClipGradNorm, UpdateArgs, make_optimizer
from .registry import BuildContext, backend_module, layer_type
from .sequence import truth_and_mask
from .weights import WeightsEntry, init_weights, load_weights, save_weights


def _kept(y, keep):
    """y with the rows a mask drops zeroed (their truth is never read, so it
    may hold anything), for the finite check of the truth."""
    return y if keep is None else np.where(np.asarray(keep, bool)[:, None], y, 0)


class Network:
    """A Darknet network. Build it with load_network(cfg, weights)."""

    def __init__(self, spec, *, seed=None, strict=True, exact=False, backend="native",
                 kernel=None, threads=None, dtype=np.float32, optimizer=None,
                 clip_norm=None, stateful=False, comm=None, precision="fp32"):
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
        # data parallelism (darknet_rnn.distributed): this process is rank
        # `rank` of `world_size`; seen, the batch divisor and the lr schedule
        # count the global batch (every rank's streams)
        self.comm, self.rank, self.world_size = distributed.world(comm)
        if comm is not None:
            seed = distributed.common_seed(comm, seed)
        if seed is None:
            seed = clock_seed()
        self.seed = seed
        # Darknet draws weight initialisation and the random lr policy from
        # the same rand() stream.
        self.rng = GlibcRandom(seed)

        if backend not in ("native", "reference", "numpy"):
            raise ValueError(f"backend must be 'native', 'reference' or 'numpy', got {backend!r}")
        dt = np.dtype(dtype)
        if dt not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {dt}")
        if dt == np.float64 and backend != "reference":
            raise ValueError("dtype=float64 needs backend='reference' (the NumPy twin); the "
                             f"{backend!r} backend is float32 only")
        self.dtype = dt.type
        ctx = None
        if backend == "native" and (kernel is not None or threads is not None):
            from ._ffi import Context
            ctx = Context(kernel, threads)
        self.ctx = ctx
        build = BuildContext(backend=backend, module=backend_module(backend),
                             streams=self.streams, time_steps=self.time_steps,
                             fixes=self.fixes, ctx=ctx, dtype=self.dtype, rng=self.rng,
                             stateful=bool(stateful))
        self.stateful = bool(stateful)
        # the registry entry of each layer: every per-type decision goes through it
        self.kinds = [layer_type(ls.type).variant(ls) for ls in spec.layers]
        check_alloc(spec, self.streams, self.time_steps, np.dtype(self.dtype).itemsize)
        self.layers = []
        for k, ls in zip(self.kinds, spec.layers):
            build.previous = self.layers[-1] if self.layers else None
            self.layers.append(build_layer(k, ls, build, spec.path))
        outs = [i for i, k in enumerate(self.kinds) if k.network_output]
        if not outs:
            raise CfgError(f"{spec.path}: the network has no layer besides [cost]")
        self._out_index = outs[-1]
        self.outputs = self.layers[self._out_index].outputs
        self.truths = self.outputs
        # training: the optimizer, and hooks that see the gradients of each
        # update before it (clipping, all-reduce, statistics)
        self.optimizer = make_optimizer(optimizer, opts, native=backend == "native")
        self.gradient_hooks = []
        self.clip = None
        if clip_norm is not None:
            self.clip = ClipGradNorm(clip_norm)
            self.gradient_hooks.append(self.clip)
        self.allreduce = None
        if self.world_size > 1:        # first: clipping must see the global gradient
            self.allreduce = distributed.AllReduceGradients(comm)
            self.gradient_hooks.insert(0, self.allreduce)
        self._params = None
        self._carry = None             # momentum carry snapshots for gradient hooks
        init_weights(self._init_entries(), self.rng)
        self.precision = "fp32"
        self.set_precision(precision)

    def set_precision(self, precision):
        """Inference weights (darknet_rnn.packed): "fp32" (read in place,
        the default), "fp32-packed" or "bf16" copies, remade after
        load_weights and each update (call pack_weights() after editing
        weight arrays by hand). Training always runs in fp32."""
        if precision not in ("fp32", "fp32-packed", "bf16"):     # packed.PRECISIONS
            raise ValueError("precision must be 'fp32', 'fp32-packed' or 'bf16', "
                             f"got {precision!r}")
        if precision != "fp32" and self.backend != "native":
            raise ValueError(f"precision={precision!r} needs backend='native'")
        for k, l in zip(self.kinds, self.layers):
            if hasattr(l, "set_precision"):
                l.set_precision(precision)
            elif precision != "fp32" and k.weight_blocks(l):
                warnings.warn(f"{k.name} layers have no {precision} path; they run fp32",
                              RuntimeWarning, stacklevel=2)
        self.precision = precision
        self._packs_stale = False

    def pack_weights(self):
        """Refresh the inference copies of the weights (precision other than
        "fp32") from the weight arrays."""
        if self.precision != "fp32":
            for l in self.layers:
                if hasattr(l, "pack_weights"):
                    l.pack_weights()
        self._packs_stale = False

    # ------------------------------------------------------------------
    # weights

    def _entries(self):
        """One WeightsEntry per layer, blocks in .weights order."""
        return [k.weights_entry(ls, l) for k, ls, l in zip(self.kinds, self.spec.layers,
                                                           self.layers)]

    def _init_entries(self):
        """The parameter blocks in Darknet's rand() initialisation order."""
        return [WeightsEntry(blocks=k.init_blocks(l)) for k, l in zip(self.kinds, self.layers)]

    def params(self):
        """Every trainable (parameter, update buffer) pair of the network, as
        darknet_rnn.optim.Param, in layer order; the same list (and order) at
        every call."""
        if self._params is None:
            self._params = []
            for k, ls, l in zip(self.kinds, self.spec.layers, self.layers):
                self._params += k.params(l, f"layer {ls.index} {ls.section} ")
        return self._params

    @serialized
    def load_weights(self, path, *, strict=None, allow_nonfinite=None):
        """Load a Darknet .weights file; sets `seen` from its header. NaN or
        infinite values are refused unless allow_nonfinite=True (default: as
        the finite guard, darknet_rnn.guard, says)."""
        strict = self.strict if strict is None else strict
        if allow_nonfinite is None:          # Darknet's behaviour (strict=False) loads them
            allow_nonfinite = not strict or not guard.enabled(self)
        header = load_weights(path, self._entries(), strict=strict,
                              allow_nonfinite=allow_nonfinite)
        self.seen = int(header.seen)
        self._packs_stale = True
        return header

    @serialized
    def save_weights(self, path):
        """Write a Darknet .weights file (version 0.2.0) atomically.

        On a distributed network (world_size > 1) every rank must call it:
        the batch-norm rolling statistics are averaged across the ranks (in
        every rank's network), the weights are checked identical on every
        rank, and rank 0 writes the file; the other ranks write nothing."""
        def write():
            save_weights(path, self._entries(), seen=self.seen)
        if self.world_size > 1:
            distributed.save_collective(self, write)
        else:
            write()

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
        return np.ascontiguousarray(arr.reshape(self.batch, width), dtype=self.dtype)

    # ------------------------------------------------------------------
    # Darknet's network.c

    def _forward(self, x, truth, train, keep=None):
        if not train and self._packs_stale:
            self.pack_weights()
        inp = x
        for k, layer in zip(self.kinds, self.layers):
            if k.zero_delta:
                layer.delta[...] = 0
            k.forward(layer, inp, truth, train)
            if keep is not None and k.has_cost and truth is not None:
                k.apply_mask(layer, keep)       # darknet_rnn.sequence
            inp = layer.output
        dt = self.dtype
        costs = [l for k, l in zip(self.kinds, self.layers) if k.has_cost]
        total = dt(0)
        for l in costs:
            total = dt(total + dt(l.cost if l.cost is not None else 0.0))
        with np.errstate(invalid="ignore", divide="ignore"):
            return float(dt(total / dt(len(costs))))

    def _backward(self, x):
        for i in range(len(self.layers) - 1, -1, -1):
            if self.spec.layers[i].stopbackward:
                break
            if i == 0:
                inp, prev_delta = x, None
            else:
                prev = self.layers[i - 1]
                inp, prev_delta = prev.output, prev.delta
            self.kinds[i].backward(self.layers[i], inp, prev_delta, self.fixes)

    def check_trainable(self):
        """Raise CfgError (strict) or warn if training this network cannot
        work as configured (batch norm over one row per call gives NaN in
        Darknet). train() calls it; callers may call it up front."""
        for k, ls, layer in zip(self.kinds, self.spec.layers, self.layers):
            msg = k.check_trainable(ls, layer)
            if msg is None:
                continue
            msg = f"{self.cfg_path}:{ls.line}: {msg}"
            if self.strict:
                raise CfgError(msg)
            warnings.warn(msg, RuntimeWarning, stacklevel=3)
        for msg in guard.network_problems(self):
            if self.strict:
                raise CfgError(f"{self.cfg_path}:{msg}")
            warnings.warn(f"{self.cfg_path}:{msg}", RuntimeWarning, stacklevel=3)

    @serialized
    def train(self, x, y, mask=None):
        """One train_network_datum: forward, backward, and every
        `subdivisions` datums an update. Returns Darknet's loss (the averaged
        layer costs, not divided by the batch).

        mask: None (every row carries a loss, Darknet) or (time_steps,
        streams) bool: rows with False contribute no loss and a zero delta.
        A y of shape (streams, outputs) is the last step's truth only
        (many-to-one). The loss then sums the unmasked rows only, while the
        update still divides by the whole batch: nothing is renormalised
        (see darknet_rnn.sequence)."""
        loss = self.forward_backward(x, y, mask)
        if (self.seen // self.global_batch) % self.subdivisions == 0:
            self.update()
        return loss

    @serialized
    def forward_backward(self, x, y, mask=None):
        """The datum without the update: `seen` advances, the training
        forward and Darknet's backward (or exact BPTT with exact=True) run,
        and every parameter's update buffer (`Param.grad` of params())
        accumulates the negative gradient of the loss, summed over the rows.
        Returns the loss. train() is this plus update() on schedule.
        mask, and y of shape (streams, outputs): as train().

        Distributed (world_size > 1): x, y are this rank's streams; `seen`
        advances by the global batch and the loss returned is the sum over
        the ranks (what one process with every rank's streams returns), one
        all-reduce of one number."""
        self.check_trainable()
        x = self._rows(x, "x", self.inputs)
        y, keep = truth_and_mask(self, y, mask)
        guard.check_data(self, x=x, y=_kept(y, keep))
        if (self.seen // self.global_batch) % self.subdivisions == 0:
            self._snapshot_carry()     # first datum since the last update
        self.seen += self.global_batch
        loss = self._forward(x, y, train=True, keep=keep)
        self._backward(x)
        if self.world_size > 1:      # every rank sees the same sum (and raises alike)
            loss = float(distributed.sum_scalar(self.comm, loss, self.dtype))
        guard.check_loss(self, loss)
        return loss

    def _snapshot_carry(self):
        """Before the first backward of an update period, remember what the
        update buffers hold already (Darknet's SGD keeps momentum there), so
        hooks that need the pure gradient can take it apart."""
        need = getattr(self.optimizer, "carries_momentum", False) and any(
            getattr(h, "needs_gradient", False) for h in self.gradient_hooks)
        params = self.params()
        if not need:
            for p in params:
                p.carry = None
            return
        if self._carry is None:
            self._carry = [np.empty_like(p.grad) for p in params]
        for p, c in zip(params, self._carry):
            np.copyto(c, p.grad)
            p.carry = c

    @serialized
    def update(self):
        """update_network: the gradient hooks, then the optimizer over every
        parameter, with Darknet's arguments (the lr policy's current rate,
        momentum, decay, batch * subdivisions; the global batch when
        distributed)."""
        o = self.options
        args = UpdateArgs(learning_rate=self.current_rate(), momentum=o.momentum,
                          decay=o.decay, batch=self.global_batch * self.subdivisions)
        params = self.params()
        for hook in self.gradient_hooks:
            hook(self, params, args)
        self.optimizer.step(params, args)
        guard.check_params(self)
        self._packs_stale = True

    @serialized
    def forward(self, x, y=None, train=False, mask=None):
        """Run the network forward; returns Darknet's cost (NaN without truth
        layers). Outputs stay in the layers (sequence_output, last_output).
        mask, and y of shape (streams, outputs): as train()."""
        x = self._rows(x, "x", self.inputs)
        keep = None
        if y is not None:
            y, keep = truth_and_mask(self, y, mask)
        elif mask is not None:
            raise ValueError("mask: needs a truth y (it selects the rows that carry a loss)")
        guard.check_data(self, x=x, y=None if y is None else _kept(y, keep))
        cost = self._forward(x, y, train=train, keep=keep)
        guard.check_output(self)
        return cost

    @serialized
    def infer(self, x, last=False):
        """Whole-sequence inference: x (time_steps, streams, inputs) runs
        forward in inference mode from a zero state; returns a new array,
        every step's output (time_steps, streams, outputs), or with last=True
        the last step's (streams, outputs). The states carried between calls
        (predict's, stateful training's) are left as they were. The way to
        run a network with a bidirectional [rnn]."""
        saved = [a.copy() for a in self.state_arrays()]
        self.reset_state()
        try:
            self.forward(x, train=False)
        finally:
            for a, s in zip(self.state_arrays(), saved):
                a[...] = s
        return self.last_output if last else self.sequence_output

    @serialized
    def predict(self, x):
        """Inference forward (state carries across calls). x is (inputs,) when
        the net batch is 1, else (time_steps, streams, inputs); returns a new
        array, (outputs,) or (time_steps*streams, outputs)."""
        for k, ls in zip(self.kinds, self.spec.layers):
            if k.whole_sequence:
                raise CfgError(
                    f"{self.cfg_path}:{ls.line}: layer {ls.index} {ls.section} needs the whole "
                    "sequence at once (a bidirectional [rnn] reads the sequence from its end), "
                    "so step-by-step predict cannot run it; use net.infer(x) on a "
                    "(time_steps, streams, inputs) sequence instead")
        if self.batch == 1:
            arr = np.asarray(x)
            if arr.shape not in ((self.inputs,), (1, self.inputs), (1, 1, self.inputs)):
                raise ValueError(f"x must have shape ({self.inputs},) for a network with batch 1,"
                                 f" got {arr.shape}")
        x = self._rows(x, "x", self.inputs)
        guard.check_data(self, x=x)
        self._forward(x, None, train=False)
        guard.check_output(self)
        out = self.layers[self._out_index].output.copy()
        return out.reshape(self.outputs) if self.batch == 1 else out

    @property
    def output(self):
        """The last forward's network output, (time_steps*streams, outputs) (a copy)."""
        return self.layers[self._out_index].output.copy()

    @property
    def sequence_output(self):
        """The last forward's output at every step, (time_steps, streams,
        outputs) (a copy): all hidden states as output (tagging, language
        models)."""
        return self.output.reshape(self.time_steps, self.streams, self.outputs)

    @property
    def last_output(self):
        """The last forward's output at the last step, (streams, outputs) (a
        copy): the last hidden state as output (sequence classification)."""
        return self.sequence_output[-1].copy()

    @serialized
    def reset_state(self, streams=None):
        """Zero the recurrent state of every stream, or only of the listed
        stream indices (Darknet has no CPU reset). With stateful=True this
        also clears what the next training call starts from."""
        for k, layer in zip(self.kinds, self.layers):
            k.reset_state(layer, streams)

    def record_grad_norms(self, on=True):
        """Record, at every backward, the norm of the gradient reaching each
        time step's recurrent state (see grad_norms())."""
        self._grad_layers = [i for i, (k, l) in enumerate(zip(self.kinds, self.layers))
                             if k.record_grad_norms(l, on)] if on else []
        if not on:
            for k, l in zip(self.kinds, self.layers):
                k.record_grad_norms(l, False)

    def grad_norms(self):
        """{layer index: (time_steps,) float32} after a recorded backward:
        the L2 norm, over streams and units, of the delta reaching state
        h_{t+1} (what Darknet's backward propagates, -dL/dh with
        exact=True). Small values at early t are vanishing gradients."""
        return {i: self.layers[i].grad_norms.copy() for i in getattr(self, "_grad_layers", [])}

    def set_temperature(self, temperature):
        """Set every [softmax] layer's temperature (as `darknet rnn generate`)."""
        for k, layer in zip(self.kinds, self.layers):
            k.set_temperature(layer, temperature)

    def init_draws(self):
        """How many rand() calls Darknet's parse_network_cfg makes for this
        network (one per connected weight, drawn even when weights are then
        loaded from a file)."""
        return sum(int(b.weights.size) for e in self._init_entries() for b in e.blocks)

    def state_arrays(self):
        """Every array of recurrent state carried between calls."""
        return [a for k, l in zip(self.kinds, self.layers) for a in k.state_arrays(l)]

    @serialized
    def save_training_state(self, path, extra=None):
        """Write the sidecar that lets a run continue bit for bit (update
        buffers, optimizer state, rand() stream, carried states); see
        darknet_rnn.checkpoint."""
        save_training_state(self, path, extra)

    @serialized
    def load_training_state(self, path):
        """Restore a sidecar written by save_training_state (after loading the
        matching weights); returns the program's extra arrays."""
        return load_training_state(self, path)

    @property
    def global_batch(self):
        """Rows of one datum over every rank: batch * world_size (= batch
        without a communicator). `seen` advances by it."""
        return self.batch * self.world_size

    def any_rank(self, flag):
        """True if `flag` is true on any rank (every rank must call it: one
        all-reduce); bool(flag) on a network without a communicator."""
        if self.world_size > 1:
            return distributed.any_rank(self.comm, flag)
        return bool(flag)

    def current_batch(self):
        return self.seen // (self.global_batch * self.subdivisions)

    def current_rate(self):
        return float(policy.current_rate(self.options, self.current_batch(), self.rng))

    def __repr__(self):
        kinds = " > ".join(k.name for k in self.kinds)
        return (f"Network({os.path.basename(str(self.cfg_path))}: {kinds}; streams={self.streams}, "
                f"time_steps={self.time_steps}, inputs={self.inputs}, outputs={self.outputs})")


def load_network(cfg_path, weights_path=None, *, seed=None, strict=True, exact=False,
                 backend="native", kernel=None, threads=None, clear=False, streams=None,
                 dtype=np.float32, optimizer=None, clip_norm=None, stateful=False,
                 comm=None, precision="fp32"):
    """Parse a Darknet .cfg, initialise as Darknet does (srand(seed)), and
    load a .weights file if given (like Darknet's load_network).

    streams: None keeps the cfg's [net] shape; an int gives the inference
    shape batch=streams, subdivisions=1, time_steps=1 (so a training cfg can
    generate or validate), as `darknet rnn generate` sets the batch to 1.
    dtype: float32, or float64 with backend="reference" (the NumPy twin in
    double precision, for finite-difference checks through this API).
    optimizer: None or "sgd" (Darknet's SGD), or "adam" (Adam as Darknet's
    GPU build defines it, with the cfg's B1, B2, eps; Darknet's CPU ignores
    `adam=1`). clip_norm: clip the global gradient norm of each update to
    this value (darknet_rnn.optim.ClipGradNorm; off by default).
    stateful: truncated BPTT - each training call starts every stream from
    the state it ended the previous call with (no gradient crosses the
    boundary; reset_state(streams) starts streams afresh). Darknet's CPU
    zeroes the state at every training call (the default).
    comm: an mpi4py communicator for data-parallel training (see
    darknet_rnn.distributed): call load_network on every rank; the cfg is
    parsed on each (an error on any rank raises on every rank), the ranks'
    networks must have the same shape, the seed is agreed (None everywhere:
    rank 0's clock), a weights file is read by rank 0 only and broadcast.
    precision: the weights inference reads - "fp32" (in place, default),
    "fp32-packed" or "bf16" copies (darknet_rnn.packed; native backend,
    fast kernels)."""
    def parse():
        if optimizer == "adam":
            with warnings.catch_warnings():   # the cfg's "CPU ignores Adam" does not apply
                warnings.filterwarnings("ignore", message=".*ignores Adam.*")
                return parse_cfg(cfg_path, strict=strict)
        return parse_cfg(cfg_path, strict=strict)
    spec = parse() if comm is None else distributed.agree(comm, parse)
    if streams is not None:
        if isinstance(streams, bool) or not isinstance(streams, int) or streams < 1:
            raise ValueError(f"streams must be a positive int, got {streams!r}")
        opts = spec.net
        if (opts.streams, opts.time_steps) != (streams, 1):
            spec.net = dataclasses.replace(opts, batch=streams, subdivisions=1, time_steps=1)
    net = Network(spec, seed=seed, strict=strict, exact=exact, backend=backend,
                  kernel=kernel, threads=threads, dtype=dtype, optimizer=optimizer,
                  clip_norm=clip_norm, stateful=stateful, comm=comm,
                  precision=precision)
    if net.world_size > 1:
        distributed.check_same_network(net)
    if weights_path is not None:
        if net.world_size > 1:
            distributed.load_on_root(net, weights_path)
        else:
            net.load_weights(weights_path)
    if clear:
        net.seen = 0
    return net
