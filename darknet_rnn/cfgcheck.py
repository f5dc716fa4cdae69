"""Checks of cfg values where Darknet would silently misbehave, and of the
memory a network needs before anything is allocated.

The reader (darknet_rnn.cfg) calls check_net after the [net] section,
and check_layer after each layer section;
Network calls check_alloc before it builds its layers. Each problem is a
CfgError whose message starts with "PATH:LINE: key 'KEY':" (strict mode,
the default); with strict=False it is a CfgWarning and Darknet's value is
kept, as for the reader's other checks.

* Every float key must be a finite number: atof gives NaN or infinity for
  "nan"/"inf"/"1e999", which Darknet uses as is (a NaN learning rate trains
  NaN weights, a NaN temperature samples byte 255).
* Ranges (RANGES): learning rates and decay not negative, momentum, B1 and
  B2 in [0, 1), eps and temperature positive, max_batches not negative.
* inputs = height * width * channels must fit a C int.
* Layer order, for training (order_problems, raised by
  Network.check_trainable): nothing but loss layers after the first loss
  layer (a layer after [softmax]/[cost] gets the truth meant for the last
  layer).
* Memory: the bytes every layer allocates (registry.alloc_bytes) against
  what is available (MemAvailable, an address-space limit, or
  DARKNET_RNN_MAX_BYTES); the error names the largest layer's size key and
  line and the bytes needed. Row counts must fit a C int.
"""
import math
import os
import warnings

from ._cfgread import _INT32_MAX, CfgWarning, _stacklevel
from .errors import CfgError

__all__ = ["RANGES", "check_net", "check_layer", "order_problems", "check_alloc",
           "available_bytes", "format_bytes", "build_layer", "network_bytes"]


def _nonneg(v):
    return v >= 0


def _unit(v):
    return 0 <= v < 1


def _positive(v):
    return v > 0


# key -> (section kind ('net' or 'layer'), predicate, requirement)
RANGES = {
    ("net", "learning_rate"): (_nonneg, "must not be negative (a negative rate climbs "
                                        "the loss)"),
    ("net", "momentum"): (_unit, "must be in [0, 1) (at 1 or above the updates grow "
                                 "without bound)"),
    ("net", "decay"): (_nonneg, "must not be negative (a negative decay inflates the "
                                "weights)"),
    ("net", "B1"): (_unit, "must be in [0, 1)"),
    ("net", "B2"): (_unit, "must be in [0, 1)"),
    ("net", "eps"): (_positive, "must be positive (Adam divides by sqrt(v) + eps)"),
    ("layer", "temperature"): (_positive, "must be positive (softmax divides by it)"),
    ("layer", "learning_rate"): (_nonneg, "must not be negative"),
}


def _problem(r, key, msg, strict, messages):
    """CfgError (strict) or CfgWarning for key of reader r."""
    text = f"{r.where(key)}: key '{key}': {msg}"
    if strict:
        raise CfgError(text)
    messages.append(msg)
    warnings.warn(text, CfgWarning, stacklevel=_stacklevel())


def _shown(raw):
    """A cfg value for a message: long values are cut."""
    raw = str(raw)
    return raw if len(raw) <= 40 else f"{raw[:24]}... ({len(raw)} characters)"


def _check_floats(r, kind, strict, messages):
    seen = set()
    for key, value in r.floats:
        if key in seen:
            continue
        seen.add(key)
        raw = _shown(r.peek(key).value)
        if not math.isfinite(value):
            _problem(r, key, f"{key}={raw} is not a finite number ({value}); Darknet would "
                     "compute with it and produce NaN", strict, messages)
            continue
        rule = RANGES.get((kind, key))
        if rule is not None and not rule[0](value):
            _problem(r, key, f"{key}={raw} {rule[1]}", strict, messages)


def _lines(r):
    """key -> line of its first occurrence (the one Darknet reads)."""
    out = {}
    for opt in r.section.options:
        out.setdefault(opt.key, opt.line)
    return out


def check_net(r, n, strict, messages):
    """The [net] section's values (n: NetOptions; r: its _Reader)."""
    n.lines = _lines(r)
    _check_floats(r, "net", strict, messages)
    for i, v in enumerate(n.scales):
        if not math.isfinite(v):
            _problem(r, "scales", f"scales: entry {i + 1} is not a finite number ({v})",
                     strict, messages)
    if n.max_batches < 0:
        _problem(r, "max_batches", f"max_batches={n.max_batches} is negative (nothing "
                 "would be trained)", strict, messages)
    if r.peek("inputs") is None and n.inputs > _INT32_MAX:
        key = next((k for k in ("height", "width", "channels") if r.peek(k)), "inputs")
        raise CfgError(f"{r.where(key)}: key '{key}': inputs = height*width*channels = "
                       f"{n.height}*{n.width}*{n.channels} = {n.inputs} overflows a C int")


def check_layer(r, L, strict, messages):
    """A layer section's values, after its keys were read (before unused
    keys are reported)."""
    L.lines = _lines(r)
    _check_floats(r, "layer", strict, messages)


def order_problems(layers):
    """[(line, message)] for layers that follow the first loss layer without
    being loss layers themselves: training would hand the loss layer the
    truth of the last layer (Darknet reads past it). Inference is fine, so
    Network.check_trainable raises these, not the reader."""
    from .registry import is_loss_layer
    first = next((ls for ls in layers if is_loss_layer(ls)), None)
    if first is None:
        return []
    return [(ls.line, f"{ls.section} comes after the loss layer {first.section} at line "
                      f"{first.line}: training would compare the loss layer's output with the "
                      "truth of the last layer, which has another meaning (and size); put "
                      "the loss layer last")
            for ls in layers[first.index + 1:] if not is_loss_layer(ls)]


# --------------------------------------------------------------------------
# memory

ENV_MAX_BYTES = "DARKNET_RNN_MAX_BYTES"


def format_bytes(n):
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit} ({n:,} bytes)"
    return f"{n} bytes"


def _meminfo():
    try:
        with open("/proc/meminfo") as f:
            info = {}
            for line in f:
                k, _, rest = line.partition(":")
                parts = rest.split()
                if parts:
                    info[k] = int(parts[0]) * 1024
        return info
    except (OSError, ValueError):
        return {}


def available_bytes():
    """(bytes, what) a network may allocate: DARKNET_RNN_MAX_BYTES when set,
    else the smaller of MemAvailable + SwapFree and the room left under an
    address-space limit (RLIMIT_AS); None when unknown."""
    env = os.environ.get(ENV_MAX_BYTES)
    if env:
        try:
            return int(env), f"{ENV_MAX_BYTES}={env}"
        except ValueError:
            raise CfgError(f"{ENV_MAX_BYTES}={env!r} is not a number of bytes") from None
    best = None
    info = _meminfo()
    if "MemAvailable" in info:
        best = (info["MemAvailable"] + info.get("SwapFree", 0), "the memory available")
    else:
        try:
            best = (os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"),
                    "the free physical memory")
        except (ValueError, OSError, AttributeError):
            pass
    try:
        import resource
        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            used = 0
            with open("/proc/self/statm") as f:
                used = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
            room = max(0, soft - used)
            if best is None or room < best[0]:
                best = (room, "the room under this process's address-space limit")
    except (ImportError, OSError, ValueError):
        pass
    return best


def network_bytes(spec, streams, time_steps, itemsize=4):
    """(total, [(bytes, key) per layer]): what building the network allocates,
    plus the peak of Darknet's initialisation, which draws one rand() per
    weight of a block (about 20 bytes per weight of the largest block while
    it runs: int64 draws, float values, the float32 result)."""
    from .registry import alloc_bytes
    sizes = [alloc_bytes(ls, streams, time_steps, itemsize) for ls in spec.layers]
    init = 20 * max((ls.outputs * max(ls.inputs, ls.outputs) for ls in spec.layers), default=0)
    return sum(b for b, _ in sizes) + init, sizes


def check_alloc(spec, streams, time_steps, itemsize=4):
    """CfgError before any allocation when the network's layers would need
    more memory than is available, or more rows than a C int holds."""
    rows = int(streams) * int(time_steps)
    if rows > _INT32_MAX:
        net = spec.net
        raise CfgError(f"{spec.path}:{net.lines.get('batch', net.line)}: key 'batch': "
                       f"{streams} streams x {time_steps} time steps = {rows} rows overflow "
                       "a C int")
    total, sizes = network_bytes(spec, streams, time_steps, itemsize)
    avail = available_bytes()
    if avail is None or total <= avail[0]:
        return
    i = max(range(len(sizes)), key=lambda k: sizes[k][0])
    ls, (nbytes, key) = spec.layers[i], sizes[i]
    if key is not None:
        line = ls.lines.get(key, ls.line)
        what = f"{key}={ls.outputs}" if key == "output" else key
    else:       # the size follows the [net] batch (rows) and the layer's inputs
        key, line = "batch", spec.net.lines.get("batch", spec.net.line)
        what = f"{ls.inputs} inputs per row"
    raise CfgError(
        f"{spec.path}:{line}: key '{key}': the network needs {format_bytes(total)} "
        f"({streams} streams x {time_steps} steps), more than {avail[1]}, "
        f"{format_bytes(avail[0])}; the largest part is layer {ls.index} {ls.section} with "
        f"{what}: {format_bytes(nbytes)}. Nothing was allocated.")


def build_layer(kind, ls, build, path):
    """kind.build(ls, build), with an argument the layer class refuses (a
    value strict=False let through, e.g. temperature=0) reported as a
    CfgError naming the cfg line."""
    try:
        return kind.build(ls, build)
    except (ValueError, TypeError) as e:
        if isinstance(e, CfgError):
            raise
        raise CfgError(f"{path}:{ls.line}: layer {ls.index} {ls.section}: {e}") from e
