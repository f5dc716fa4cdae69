"""The finite guard: training stops at the first NaN or infinity instead of
running on silently, as Darknet does.

Darknet keeps training when the loss turns NaN (a learning rate that is too
high, batch norm over one row, an exploding RNN): every later loss is NaN,
the checkpoints it writes are NaN, and generation and validation then print
garbage. With the guard (the default) a Network

* refuses inputs and targets holding NaN or infinity (ValueError naming the
  argument, time step, stream and column) - check_data;
* checks the loss of every training datum; when it is not finite it raises
  DivergenceError naming the iteration and the first layer whose output
  (forward order) or gradient (backward order) went non-finite -
  check_loss;
* after every update scans what a checkpoint would save (parameters and
  batch-norm statistics), so no non-finite weights are ever saved by a
  guarded run; the error says whether the gradient was already non-finite
  or the step overflowed - check_params;
* checks the output of inference (predict/forward) - check_output;
* refuses to train a network without a loss layer (it trains NaN) or with
  layers after the loss layer - network_problems (CfgError naming the line,
  raised by Network.check_trainable whatever the guard says; a warning with
  strict=False).

The guard never changes a number: it only reads. Its cost is one pass over
the loss (a float) per datum and one pass over the parameters per update
(csrc/finite.c, no allocation). TrainingRun stops at the error without
writing the damaged weights, so the last checkpoint on disk is finite.

Opting out restores Darknet's behaviour (run to the end, NaN and all):
`net.finite_guard = False` on a network, DARKNET_RNN_FINITE_GUARD=0 in the
environment (the command line too), or strict=False, which is Darknet's
behaviour throughout. `net.finite_guard = True` turns it on whatever the
environment says.
"""
import math
import os

import numpy as np

from .errors import DivergenceError

__all__ = ["ENV", "enabled", "first_nonfinite", "check_data", "check_loss", "check_params",
           "check_output", "network_problems"]

ENV = "DARKNET_RNN_FINITE_GUARD"
_OFF = ("0", "off", "false", "no")
OPT_OUT = (f"net.finite_guard = False (or {ENV}=0 in the environment) runs on as Darknet "
           "does.")


def enabled(net) -> bool:
    """Is the guard on for this network? net.finite_guard when set (True or
    False); otherwise on unless the network was loaded with strict=False or
    DARKNET_RNN_FINITE_GUARD is 0/off/false/no."""
    v = getattr(net, "finite_guard", None)
    if v is not None:
        return bool(v)
    if not getattr(net, "strict", True):
        return False
    return os.environ.get(ENV, "1").strip().lower() not in _OFF


def first_nonfinite(a) -> int:
    """Flat index of the first NaN/inf in array a, or -1."""
    a = np.asarray(a)
    if a.dtype == np.float32 and a.flags.c_contiguous:
        try:
            from ._ffi import ffi, lib
        except ImportError:          # pragma: no cover - NumPy twin without a build
            lib = None
        if lib is not None:
            i = int(lib.dn_first_nonfinite(ffi.cast("float *", ffi.from_buffer(a)), a.size))
            if i < -1:
                raise ValueError("dn_first_nonfinite: invalid buffer")
            return i
    bad = np.flatnonzero(~np.isfinite(a.reshape(-1)))
    return int(bad[0]) if bad.size else -1


def _value(a, i):
    return float(np.asarray(a).reshape(-1)[i])


def _layer_name(net, i):
    ls = net.spec.layers[i]
    return f"layer {ls.index} {ls.section} ({net.cfg_path}:{ls.line})"


def _rowcol(net, i, width):
    row, col = divmod(int(i), int(width))
    t, s = divmod(row, max(1, int(net.streams)))
    return f"time step {t}, stream {s}, column {col}"


def check_data(net, **arrays):
    """ValueError if an input/target array (as Network._rows gives it:
    (batch, width)) holds NaN or infinity."""
    if not enabled(net):
        return
    for name, a in arrays.items():
        if a is None:
            continue
        i = first_nonfinite(a)
        if i >= 0:
            width = a.shape[-1] if a.ndim > 1 else a.size
            raise ValueError(f"{name} holds {_value(a, i)} at {_rowcol(net, i, width)}: "
                             f"{name} must be finite; {OPT_OUT}")


def _first_bad_layer(net):
    """(index, what, text) of the first layer whose output went non-finite
    (forward order), else whose delta did (backward order), else None."""
    for i, layer in enumerate(net.layers):
        out = getattr(layer, "output", None)
        if out is not None:
            j = first_nonfinite(out)
            if j >= 0:
                return i, "output", (f"the output of {_layer_name(net, i)} "
                                     f"({_value(out, j)} at {_rowcol(net, j, out.shape[-1])})")
    for i in range(len(net.layers) - 1, -1, -1):
        d = getattr(net.layers[i], "delta", None)
        if d is not None:
            j = first_nonfinite(d)
            if j >= 0:
                return i, "gradient", (f"the gradient (delta) of {_layer_name(net, i)} "
                                       f"({_value(d, j)} at {_rowcol(net, j, d.shape[-1])})")
    return None


def _first_bad_cost(net):
    """(index, 'loss', text) of the first loss layer whose cost is not
    finite although every output is (a probability of exactly 0 for a
    target: its log is -inf)."""
    for i, (k, layer) in enumerate(zip(net.kinds, net.layers)):
        cost = getattr(layer, "cost", None) if k.has_cost else None
        if cost is not None and not math.isfinite(cost):
            return i, "loss", (f"the cost of {_layer_name(net, i)} ({cost}: a predicted "
                               "probability underflowed to 0 for a target, or an output "
                               "overflowed)")
    return None


def _iteration(net):
    return int(net.seen) // max(1, int(net.batch))


def check_loss(net, loss):
    """DivergenceError when a training datum's loss is not finite."""
    if math.isfinite(loss) or not enabled(net):
        return
    it = _iteration(net)
    bad = _first_bad_layer(net) or _first_bad_cost(net)
    where = bad[2] if bad else "the averaged cost itself"
    raise DivergenceError(
        f"{net.cfg_path}: training diverged at iteration {it}: the loss is {loss}; the first "
        f"non-finite value is {where}. The weights of earlier checkpoints are finite; lower "
        f"the learning rate (now {net.current_rate():g}) or clip gradients (clip_norm, "
        "--clip-norm); " + OPT_OUT,
        iteration=it, layer=None if bad is None else bad[0],
        what="loss" if bad is None else bad[1])


def _saved_arrays(net):
    """[(layer index, name, value array, update buffer or None)] of what a
    checkpoint saves (every weights block's arrays), built once."""
    cache = net.__dict__.get("_guard_arrays")
    if cache is None:
        cache = []
        for i, entry in enumerate(net._entries()):
            for b, blk in enumerate(entry.blocks):
                names = ["biases", "weights"]
                if getattr(blk, "batch_normalize", False):
                    names += ["scales", "rolling_mean", "rolling_variance"]
                for name in names:
                    upd = getattr(blk, {"biases": "bias_updates", "weights": "weight_updates",
                                        "scales": "scale_updates"}.get(name, ""), None)
                    label = f"block {b} {name}" if len(entry.blocks) > 1 else name
                    cache.append((i, label, getattr(blk, name), upd))
        net.__dict__["_guard_arrays"] = cache
    return cache


def check_params(net):
    """DivergenceError when an update left a parameter or batch-norm
    statistic non-finite."""
    if not enabled(net):
        return
    for i, name, value, upd in _saved_arrays(net):
        j = first_nonfinite(value)
        if j < 0:
            continue
        it = _iteration(net)
        cause = ""
        if upd is not None and first_nonfinite(upd) >= 0:
            cause = " (its gradient is non-finite)"
        elif upd is not None:
            cause = (f" (its gradient is finite: the step overflowed at learning rate "
                     f"{net.current_rate():g})")
        raise DivergenceError(
            f"{net.cfg_path}: training diverged at iteration {it}: the update made "
            f"{name} of {_layer_name(net, i)} non-finite ({_value(value, j)} at index {j})"
            f"{cause}. The weights of earlier checkpoints are finite; lower the learning "
            f"rate or clip gradients (clip_norm, --clip-norm); " + OPT_OUT,
            iteration=it, layer=i, what="weights")


def check_output(net):
    """DivergenceError when an inference forward gave a non-finite output."""
    if not enabled(net):
        return
    out = net.layers[net._out_index].output
    if first_nonfinite(out) < 0:
        return
    bad = _first_bad_layer(net)
    where = bad[2] if bad else f"the output of {_layer_name(net, net._out_index)}"
    raise DivergenceError(
        f"{net.cfg_path}: the forward pass produced a non-finite value: the first is {where}. "
        "Are the weights finite and trained for this cfg? " + OPT_OUT,
        iteration=None, layer=None if bad is None else bad[0], what="output")


def network_problems(net):
    """Messages ("LINE: text") for what makes training this network silently
    wrong, beyond the per-layer checks of the registry: a layer after the
    loss layer, or no loss layer at all (the averaged cost is 0/0: NaN)."""
    from .cfgcheck import order_problems
    from .registry import is_loss_layer
    layers = net.spec.layers
    out = [f"{line}: {msg}" for line, msg in order_problems(layers)]
    if not any(is_loss_layer(ls) for ls in layers):
        last = layers[-1]
        out.append(f"{last.line}: the network has no loss layer ([softmax] or [cost]; the last "
                   f"layer is {last.section}): training it gives NaN losses in Darknet; add "
                   "[softmax] (or [cost]) at the end for training")
    return out
