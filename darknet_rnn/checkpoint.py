"""Training checkpoints that continue the same trajectory.

A Darknet `.weights` file holds the parameters, batch-norm statistics and
`seen`; it is what Darknet reads, and it stays exactly that. What a run also
needs to continue bit for bit lives in a sidecar next to it
(`<weights>.state`, a NumPy .npz written atomically):

* every parameter's update buffer (Darknet's SGD keeps momentum there),
* the optimizer's own state (Adam: update counter t and both moments),
* the network's rand() stream (it drives the `random` lr policy and, in
  the char-RNN program, the stream offsets),
* carried recurrent states (stateful training),
* whatever the program adds (`extra`: e.g. the char batcher's offsets).

Loading checks that the sidecar belongs to this network (parameter names
and shapes, optimizer, `seen`) and raises CheckpointError naming the file
otherwise. Without a sidecar a run still resumes from the weights, as
Darknet does (momentum restarts from zero).
"""
import io
import os

import numpy as np

from .errors import DarknetError
from .files import atomic_write, open_regular

__all__ = ["CheckpointError", "state_path", "save_training_state", "load_training_state"]

FORMAT = 1


class CheckpointError(DarknetError, ValueError):
    """A training-state sidecar that does not fit the network."""


def state_path(weights_path):
    """The sidecar path of a weights file: `<weights>.state`."""
    return os.fspath(weights_path) + ".state"


def _arrays(net, extra):
    out = {"format": np.array(FORMAT), "seen": np.array(int(net.seen), dtype=np.uint64),
           "optimizer": np.array(net.optimizer.name),
           "rng": net.rng.getstate(),
           "param_names": np.array([p.name for p in net.params()])}
    for i, p in enumerate(net.params()):
        out[f"grad/{i}"] = p.grad
    opt = net.optimizer
    if getattr(opt, "moments", None) is not None:
        out["adam/t"] = np.array(opt.t)
        for i, (m, v) in enumerate(opt.moments):
            out[f"adam/m/{i}"], out[f"adam/v/{i}"] = m, v
    for i, a in enumerate(net.state_arrays()):
        out[f"state/{i}"] = a
    for k, v in (extra or {}).items():
        out[f"extra/{k}"] = np.asarray(v)
    return out


def save_training_state(net, path, extra=None) -> None:
    """Write the sidecar for `net` to `path` atomically (see module doc)."""
    arrays = _arrays(net, extra)

    def write(f):
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        f.write(buf.getvalue())
    atomic_write(path, write)


def _get(data, key, path):
    if key not in data:
        raise CheckpointError(f"{path}: training state has no '{key}' (not written by "
                              "this version, or damaged)")
    return data[key]


def load_training_state(net, path) -> dict:
    """Restore what save_training_state wrote into `net` (after its weights
    were loaded); returns the program's `extra` arrays by name."""
    p = os.fspath(path)
    f, _ = open_regular(p, "training-state file", CheckpointError)   # no FIFO, device
    with f:
        return _load(net, f, p)


def _load(net, f, p):
    try:
        data = np.load(f, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise CheckpointError(f"{p}: not a training-state file ({err})") from None
    if not hasattr(data, "files"):
        raise CheckpointError(f"{p}: not a training-state file (a single array, not an archive)")
    with data:
        if int(_get(data, "format", p)) != FORMAT:
            raise CheckpointError(f"{p}: training-state format {int(data['format'])}, "
                                  f"expected {FORMAT}")
        params = net.params()
        names = [str(n) for n in _get(data, "param_names", p)]
        if names != [q.name for q in params]:
            raise CheckpointError(f"{p}: the training state is for another network "
                                  f"({len(names)} parameter arrays, this one has {len(params)})")
        if str(_get(data, "optimizer", p)) != net.optimizer.name:
            raise CheckpointError(f"{p}: saved with optimizer {str(data['optimizer'])!r}, this "
                                  f"run uses {net.optimizer.name!r}")
        if int(_get(data, "seen", p)) != int(net.seen):
            raise CheckpointError(f"{p}: saved at seen={int(data['seen'])}, but the weights "
                                  f"loaded say seen={net.seen} (a sidecar of another file?)")
        loads = []
        for i, q in enumerate(params):
            loads.append((q.grad, _get(data, f"grad/{i}", p), q.name + " update buffer"))
        opt = net.optimizer
        if "adam/t" in data:
            if not hasattr(opt, "moments"):
                raise CheckpointError(f"{p}: Adam state for a non-Adam optimizer")
            opt.moments = [(np.zeros_like(q.value), np.zeros_like(q.value)) for q in params]
            for i, (m, v) in enumerate(opt.moments):
                loads.append((m, _get(data, f"adam/m/{i}", p), f"Adam m {i}"))
                loads.append((v, _get(data, f"adam/v/{i}", p), f"Adam v {i}"))
        for i, a in enumerate(net.state_arrays()):
            loads.append((a, _get(data, f"state/{i}", p), f"recurrent state {i}"))
        for dst, src, what in loads:
            if src.shape != dst.shape:
                raise CheckpointError(f"{p}: {what} has shape {src.shape}, expected {dst.shape}")
        for dst, src, _ in loads:                  # all checked: now change the network
            dst[...] = src
        if "adam/t" in data:
            opt.t = int(data["adam/t"])
            opt._key = None                        # rebuild the C view of the moments
        net.rng.setstate(_get(data, "rng", p))
        return {k[len("extra/"):]: data[k] for k in data.files if k.startswith("extra/")}
