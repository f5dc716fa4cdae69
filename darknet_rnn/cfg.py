"""Darknet .cfg reader for the [net], [rnn], [connected], [softmax] and [cost]
sections (SPEC sections 10 and 11).

The reading rules follow Darknet's parser exactly (every space and tab in a
line is deleted, `#`/`;` comment lines, `[`-lines open sections, keys split at
the first `=`, first-match lookup, atoi/atof prefix parsing, Darknet's default
values) with these deliberate differences:

* carriage returns are deleted like spaces, so CRLF files work (quirk Q18);
* where Darknet would crash (key before any section, subdivisions=0, a `step`
  policy with step=0, fewer `scales` than `steps`, ...) or silently continue
  with a broken line (`key=`), a CfgError is raised whose message starts with
  "PATH:LINE: " and names the key at fault;
* in strict mode (the default) unknown activation, policy and cost type names
  are errors; with strict=False they fall back like Darknet (relu, constant,
  sse) and a CfgWarning is issued.

Darknet's informational messages ("batch: Using default '1'", ...) are
collected in NetworkSpec.messages. Keys of layer sections that were never
looked up are reported with a CfgWarning "Unused field: 'KEY = VALUE'", as
Darknet prints them; the [net] section is never checked (quirk Q19).
"""
from __future__ import annotations

import math
import os
import re
import sys
import warnings
from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np

from .activations import ACTIVATIONS
from .errors import CfgError

__all__ = [
    "CfgWarning", "NetOptions", "LayerSpec", "NetworkSpec",
    "parse_cfg", "parse_cfg_text", "parse_activation",
    "c_atoi", "c_atof", "to_float32",
    "POLICIES", "COST_TYPES", "LAYER_TYPES",
]


class CfgWarning(UserWarning):
    """A .cfg file is accepted, but something in it is suspicious or ignored."""


POLICIES = ("constant", "step", "steps", "exp", "poly", "sigmoid", "random")
COST_TYPES = ("sse", "masked", "L1", "seg", "smooth", "wgan")

# section header (whole stripped line) -> layer type
LAYER_TYPES = {
    "[rnn]": "rnn",
    "[connected]": "connected",
    "[conn]": "connected",
    "[softmax]": "softmax",
    "[soft]": "softmax",
    "[cost]": "cost",
}
_NET_SECTIONS = ("[net]", "[network]")

_INT32_MIN = -2**31
_INT32_MAX = 2**31 - 1


# --------------------------------------------------------------------------
# C number parsing (glibc atoi / atof prefix semantics)

_C_SPACE = " \t\n\v\f\r"
_DEC_RE = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_HEX_RE = re.compile(r"([+-]?)0[xX]((?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)"
                     r"(?:[pP][+-]?[0-9]+)?)")
_INT_RE = re.compile(r"[+-]?[0-9]+")


def c_atoi(s) -> int:
    """C atoi(s) as glibc computes it: (int) strtol(s, NULL, 10).

    Leading C white space, an optional sign and the longest run of decimal
    digits; anything after is ignored; no digits give 0. strtol saturates at
    the 64-bit long range, and the conversion to int keeps the low 32 bits.
    None (a key without '=') gives 0.
    """
    if s is None:
        return 0
    s = s.lstrip(_C_SPACE)
    m = _INT_RE.match(s)
    if not m:
        return 0
    v = int(m.group(0))
    v = max(-2**63, min(2**63 - 1, v))          # strtol saturates (LONG_MIN/MAX)
    v &= 0xFFFFFFFF                             # (int) keeps the low 32 bits
    return v - 2**32 if v >= 2**31 else v


def c_atof(s) -> float:
    """C atof(s) (glibc strtod) as a Python float (double).

    Leading C white space, optional sign, then the longest prefix that is a
    decimal number (digits, optional point, optional exponent), a hexadecimal
    float (0x...p...), "inf"/"infinity" or "nan" ("nan(chars)"), all case-
    insensitive. No such prefix gives 0.0. NaN payloads are not reproduced.
    """
    if s is None:
        return 0.0
    s = s.lstrip(_C_SPACE)
    low = s.lower()
    sign = 1.0
    body = low
    if body[:1] in ("+", "-"):
        if body[0] == "-":
            sign = -1.0
        body = body[1:]
    if body.startswith("inf"):
        return sign * math.inf
    if body.startswith("nan"):
        return math.copysign(math.nan, sign)
    m = _HEX_RE.match(s)
    if m:
        try:
            v = float.fromhex("0x" + m.group(2))
        except OverflowError:
            v = math.inf
        return -v if m.group(1) == "-" else v
    m = _DEC_RE.match(s)
    if not m:
        return 0.0
    return float(m.group(0))


def to_float32(x) -> float:
    """Round a double to float32 (as C's double -> float conversion does) and
    return it as a Python float holding exactly that float32 value."""
    with np.errstate(all="ignore"):
        return float(np.array(x, dtype=np.float64).astype(np.float32))


# --------------------------------------------------------------------------
# data classes

@dataclass
class NetOptions:
    """The [net] section. Float fields hold float32 values (as Python floats)."""
    batch: int = 1                  # cfg value (streams * subdivisions)
    subdivisions: int = 1
    time_steps: int = 1
    inputs: int = 0
    height: int = 0
    width: int = 0
    channels: int = 0
    learning_rate: float = to_float32(0.001)
    momentum: float = to_float32(0.9)
    decay: float = to_float32(0.0001)
    policy: str = "constant"
    burn_in: int = 0
    power: float = 4.0
    step: int = 1
    scale: float = 1.0
    steps: List[int] = field(default_factory=list)
    scales: List[float] = field(default_factory=list)
    gamma: float = 1.0
    max_batches: int = 0
    adam: bool = False
    B1: float = to_float32(0.9)
    B2: float = to_float32(0.999)
    eps: float = to_float32(0.0000001)
    notruth: int = 0
    random: int = 0
    clip: float = 0.0
    line: int = 0                   # line number of the [net] section header

    @property
    def streams(self) -> int:
        """Sequences per forward pass: batch / subdivisions (C truncation)."""
        q = abs(self.batch) // abs(self.subdivisions)
        return q if (self.batch >= 0) == (self.subdivisions > 0) else -q

    @property
    def net_batch(self) -> int:
        """Darknet's net.batch: rows per forward pass = streams * time_steps."""
        return self.streams * self.time_steps


@dataclass
class LayerSpec:
    """One layer section. Fields not relevant to the type keep their defaults."""
    type: str                       # 'rnn' | 'connected' | 'softmax' | 'cost'
    index: int = 0
    line: int = 0                   # line number of the section header
    section: str = ""               # header text, e.g. "[conn]"
    inputs: int = 0
    outputs: int = 0
    batch_normalize: bool = False
    activation: str = "logistic"
    shortcut: bool = False
    groups: int = 1
    temperature: float = 1.0
    noloss: bool = False
    spatial: float = 0.0
    cost_type: str = "sse"
    scale: float = 1.0              # [cost] scale
    ratio: float = 0.0
    noobj: float = 1.0
    thresh: float = 0.0
    # keys read for every layer
    learning_rate_scale: float = 1.0   # effective value: always 1.0 for [rnn] (Q15)
    truth: int = 0
    numload: int = 0
    smooth: float = 0.0
    dontload: bool = False
    dontsave: bool = False
    dontloadscales: bool = False
    stopbackward: bool = False
    onlyforward: bool = False


@dataclass
class NetworkSpec:
    path: str
    net: NetOptions
    layers: List[LayerSpec]
    messages: List[str] = field(default_factory=list)

    @property
    def output_layer(self) -> Optional[LayerSpec]:
        """The last layer that is not [cost] (Darknet's network output)."""
        for l in reversed(self.layers):
            if l.type != "cost":
                return l
        return None

    @property
    def outputs(self) -> int:
        l = self.output_layer
        return l.outputs if l is not None else self.net.inputs


# --------------------------------------------------------------------------
# reading

@dataclass
class _Option:
    key: str
    value: Optional[str]
    line: int
    used: bool = False


@dataclass
class _Section:
    type: str
    line: int
    options: List[_Option] = field(default_factory=list)


_STRIP_TABLE = str.maketrans("", "", " \t\n\r")


def _read_sections(text: str, path: str) -> List[_Section]:
    sections: List[_Section] = []
    current: Optional[_Section] = None
    for nu, raw in enumerate(text.split("\n"), start=1):
        line = raw.translate(_STRIP_TABLE)
        if not line or line[0] in "#;":
            continue
        if line[0] == "[":
            current = _Section(line, nu)
            sections.append(current)
            continue
        eq = line.find("=")
        if eq == len(line) - 1:
            raise CfgError(f"{path}:{nu}: could not parse '{raw.strip()}': key "
                           f"'{line[:-1]}' has an empty value (Darknet: 'Config "
                           f"file error line {nu}, could parse: {line[:-1]}')")
        if eq < 0:
            key, value = line, None
        else:
            key, value = line[:eq], line[eq + 1:]
        if current is None:
            raise CfgError(f"{path}:{nu}: key '{key}' appears before any section; "
                           f"the file must start with [net] or [network]")
        current.options.append(_Option(key, value, nu))
    return sections


class _Reader:
    """Darknet's option_find* functions on one section."""

    def __init__(self, section: _Section, path: str, messages: List[str]):
        self.section = section
        self.path = path
        self.messages = messages

    def _find(self, key):
        for opt in self.section.options:
            if opt.key == key:
                opt.used = True
                return opt
        return None

    def peek(self, key) -> Optional[_Option]:
        """First option named key, without marking it used."""
        for opt in self.section.options:
            if opt.key == key:
                return opt
        return None

    def where(self, key=None) -> str:
        opt = self.peek(key) if key is not None else None
        line = opt.line if opt is not None else self.section.line
        return f"{self.path}:{line}"

    def value(self, key):
        """(value or None, line) for option_find: marks the first match used."""
        opt = self._find(key)
        if opt is None:
            return None, self.section.line
        return opt.value, opt.line

    def find_int(self, key, default, quiet=True):
        v, _ = self.value(key)
        if v is not None:
            return c_atoi(v)
        if not quiet:
            self.messages.append(f"{key}: Using default '{default}'")
        return default

    def find_float(self, key, default, quiet=True):
        v, _ = self.value(key)
        if v is not None:
            return to_float32(c_atof(v))
        d = to_float32(default)
        if not quiet:
            self.messages.append(f"{key}: Using default '{d:f}'")
        return d

    def find_str(self, key, default):
        v, _ = self.value(key)
        if v is not None:
            return v
        if default is not None:
            self.messages.append(f"{key}: Using default '{default}'")
        return default

    def report_unused(self):
        for opt in self.section.options:
            if not opt.used:
                val = "(null)" if opt.value is None else opt.value
                msg = f"Unused field: '{opt.key} = {val}'"
                self.messages.append(msg)
                warnings.warn(f"{self.path}:{opt.line}: {msg} (in {self.section.type} "
                              f"at line {self.section.line})", CfgWarning,
                              stacklevel=_stacklevel())


def _stacklevel():
    """stacklevel that points warnings at the first frame outside this module."""
    f = sys._getframe(1)
    level = 1
    while f is not None and f.f_globals.get("__name__") == __name__:
        f = f.f_back
        level += 1
    return level


def _warn(messages, where, msg):
    messages.append(msg)
    warnings.warn(f"{where}: {msg}", CfgWarning, stacklevel=_stacklevel())


def parse_activation(name, strict=True, where="<string>", messages=None) -> str:
    """Validate an activation name (case-sensitive).

    Unknown names raise CfgError in strict mode; otherwise they give 'relu'
    with Darknet's message "Couldn't find activation function NAME, going with
    ReLU" as a CfgWarning. `where` ("path:line") prefixes messages."""
    if name in ACTIVATIONS:
        return name
    if strict:
        raise CfgError(f"{where}: key 'activation': unknown activation function "
                       f"'{name}' (names are case-sensitive; expected one of "
                       + ", ".join(ACTIVATIONS) + ")")
    _warn(messages if messages is not None else [], where,
          f"Couldn't find activation function {name}, going with ReLU")
    return "relu"


def _err(r: _Reader, key, msg):
    return CfgError(f"{r.where(key)}: key '{key}': {msg}")


def _parse_net(sec: _Section, path: str, strict: bool, messages) -> NetOptions:
    r = _Reader(sec, path, messages)
    n = NetOptions(line=sec.line)
    n.batch = r.find_int("batch", 1, quiet=False)
    n.learning_rate = r.find_float("learning_rate", .001, quiet=False)
    n.momentum = r.find_float("momentum", .9, quiet=False)
    n.decay = r.find_float("decay", .0001, quiet=False)
    n.subdivisions = r.find_int("subdivisions", 1, quiet=False)
    n.time_steps = r.find_int("time_steps", 1)
    n.notruth = r.find_int("notruth", 0)
    if n.subdivisions <= 0:
        raise _err(r, "subdivisions", f"subdivisions={n.subdivisions} must be at least 1 "
                   "(Darknet divides batch by it)")
    if n.batch < 0:
        raise _err(r, "batch", f"batch={n.batch} is negative")
    if n.time_steps <= 0:
        raise _err(r, "time_steps", f"time_steps={n.time_steps} must be at least 1")
    if n.streams == 0:
        raise _err(r, "batch", f"batch={n.batch} / subdivisions={n.subdivisions} gives "
                   "0 streams; batch must be at least subdivisions")
    if n.net_batch > _INT32_MAX:
        raise _err(r, "batch", f"batch/subdivisions*time_steps = {n.net_batch} overflows "
                   "a C int")
    n.random = r.find_int("random", 0)
    n.adam = r.find_int("adam", 0) != 0
    if n.adam:
        n.B1 = r.find_float("B1", .9, quiet=False)
        n.B2 = r.find_float("B2", .999, quiet=False)
        n.eps = r.find_float("eps", .0000001, quiet=False)
        _warn(messages, r.where("adam"),
              "adam is set, but Darknet's CPU update ignores Adam: training uses "
              "SGD with momentum and decay (quirk Q25)")
    n.height = r.find_int("height", 0)
    n.width = r.find_int("width", 0)
    n.channels = r.find_int("channels", 0)
    n.inputs = r.find_int("inputs", n.height * n.width * n.channels)
    # parsed by Darknet for every net, unused by these layers
    max_crop = r.find_int("max_crop", n.width * 2)
    min_crop = r.find_int("min_crop", n.width)
    r.find_float("max_ratio", 0)
    r.find_float("min_ratio", 0)
    del max_crop, min_crop
    r.find_int("center", 0)
    n.clip = r.find_float("clip", 0)
    for key, d in (("angle", 0), ("aspect", 1), ("saturation", 1), ("exposure", 1),
                   ("hue", 0)):
        r.find_float(key, d)
    if n.inputs == 0 and not (n.height and n.width and n.channels):
        raise _err(r, "inputs", "No input parameters supplied (inputs is 0 and "
                   "height/width/channels are not all set)")
    if n.inputs <= 0:
        raise _err(r, "inputs", f"inputs={n.inputs} must be positive")

    policy = r.find_str("policy", "constant")
    if policy not in POLICIES:
        if strict:
            raise _err(r, "policy", f"unknown learning-rate policy '{policy}' "
                       "(expected one of " + ", ".join(POLICIES) + ")")
        _warn(messages, r.where("policy"),
              f"Couldn't find policy {policy}, going with constant")
        policy = "constant"
    n.policy = policy
    n.burn_in = r.find_int("burn_in", 0)
    n.power = r.find_float("power", 4)
    if n.burn_in < 0:
        raise _err(r, "burn_in", f"burn_in={n.burn_in} is negative (Darknet compares it "
                   "unsigned: the rate would stay in burn-in forever)")
    if policy == "step":
        n.step = r.find_int("step", 1, quiet=False)
        n.scale = r.find_float("scale", 1, quiet=False)
        if n.step == 0:
            raise _err(r, "step", "policy=step with step=0 divides by zero")
    elif policy == "steps":
        lv, _ = r.value("steps")
        pv, _ = r.value("scales")
        if lv is None or pv is None:
            missing = "steps" if lv is None else "scales"
            raise _err(r, missing, "STEPS policy must have steps and scales in cfg file")
        count = lv.count(",") + 1
        if pv.count(",") + 1 < count:
            raise _err(r, "scales", f"policy=steps has {count} steps but only "
                       f"{pv.count(',') + 1} scales")
        lparts = lv.split(",")
        pparts = pv.split(",")
        n.steps = [c_atoi(lparts[i]) for i in range(count)]
        n.scales = [to_float32(c_atof(pparts[i])) for i in range(count)]
    elif policy == "exp":
        n.gamma = r.find_float("gamma", 1, quiet=False)
    elif policy == "sigmoid":
        n.gamma = r.find_float("gamma", 1, quiet=False)
        n.step = r.find_int("step", 1, quiet=False)
    n.max_batches = r.find_int("max_batches", 0, quiet=False)
    if policy == "poly" and n.max_batches == 0:
        _warn(messages, r.where("max_batches"),
              "policy=poly with max_batches=0: the learning rate is infinite (or NaN at "
              "batch 0), as in Darknet (quirk Q17)")
    return n


def _parse_layer(sec: _Section, ltype: str, index: int, inputs: int, path: str,
                 strict: bool, messages) -> LayerSpec:
    r = _Reader(sec, path, messages)
    L = LayerSpec(type=ltype, index=index, line=sec.line, section=sec.type,
                  inputs=inputs)
    if ltype in ("rnn", "connected"):
        L.outputs = r.find_int("output", 1, quiet=False)
        if L.outputs <= 0:
            raise _err(r, "output", f"output={L.outputs} must be positive")
        act = r.find_str("activation", "logistic")
        L.activation = parse_activation(act, strict, r.where("activation"), messages)
        L.batch_normalize = r.find_int("batch_normalize", 0) != 0
        if ltype == "rnn":
            L.shortcut = r.find_int("shortcut", 0) != 0
            # AlexeyAB keys: looked at, not consumed (pjreddie reports them unused)
            hid = r.peek("hidden")
            if hid is not None and hid.value is not None and c_atoi(hid.value) != L.outputs:
                raise CfgError(f"{path}:{hid.line}: key 'hidden': hidden={c_atoi(hid.value)} "
                               f"differs from output={L.outputs}; AlexeyAB's separate "
                               "hidden size is not supported (pjreddie uses output)")
            lg = r.peek("logistic")
            if lg is not None and c_atoi(lg.value) != 0:
                raise CfgError(f"{path}:{lg.line}: key 'logistic': AlexeyAB's logistic="
                               f"{lg.value} (self-layer activation) is not supported")
    elif ltype == "softmax":
        L.outputs = inputs
        L.groups = r.find_int("groups", 1)
        if L.groups <= 0 or inputs % L.groups != 0:
            raise _err(r, "groups", f"groups={L.groups} must be positive and divide "
                       f"the layer inputs ({inputs})")
        L.temperature = r.find_float("temperature", 1)
        tree, _ = r.value("tree")
        if tree is not None:
            raise _err(r, "tree", f"tree={tree}: hierarchical softmax is not supported")
        L.spatial = r.find_float("spatial", 0)
        L.noloss = r.find_int("noloss", 0) != 0
    elif ltype == "cost":
        L.outputs = inputs
        ct = r.find_str("type", "sse")
        if ct not in COST_TYPES:
            if strict:
                raise _err(r, "type", f"unknown cost type '{ct}' (expected one of "
                           + ", ".join(COST_TYPES) + ")")
            _warn(messages, r.where("type"), f"Couldn't find cost type {ct}, going with SSE")
            ct = "sse"
        L.cost_type = ct
        L.scale = r.find_float("scale", 1)
        L.ratio = r.find_float("ratio", 0)
        L.noobj = r.find_float("noobj", 1)
        L.thresh = r.find_float("thresh", 0)
    # keys Darknet reads for every layer
    L.truth = r.find_int("truth", 0)
    L.onlyforward = r.find_int("onlyforward", 0) != 0
    L.stopbackward = r.find_int("stopbackward", 0) != 0
    L.dontsave = r.find_int("dontsave", 0) != 0
    L.dontload = r.find_int("dontload", 0) != 0
    L.numload = r.find_int("numload", 0)
    L.dontloadscales = r.find_int("dontloadscales", 0) != 0
    lr_opt = r.peek("learning_rate")
    L.learning_rate_scale = r.find_float("learning_rate", 1)
    L.smooth = r.find_float("smooth", 0)
    if ltype == "rnn":
        if lr_opt is not None and lr_opt.value is not None:
            _warn(messages, f"{path}:{lr_opt.line}",
                  f"learning_rate={lr_opt.value} on [rnn] has no effect in Darknet "
                  "(the sublayers keep scale 1; quirk Q15)")
        L.learning_rate_scale = 1.0
    r.report_unused()
    return L


def parse_cfg_text(text, path="<string>", strict=True) -> NetworkSpec:
    """Parse cfg text (str or bytes). `path` is used in messages only."""
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8", errors="replace")
    path = str(path)
    sections = _read_sections(text, path)
    if not sections:
        nlines = max(1, text.count("\n") + (0 if text.endswith("\n") else 1))
        raise CfgError(f"{path}:{nlines}: Config file has no sections")
    first = sections[0]
    if first.type not in _NET_SECTIONS:
        raise CfgError(f"{path}:{first.line}: First section must be [net] or [network], "
                       f"got {first.type}")
    messages: List[str] = []
    net = _parse_net(first, path, strict, messages)
    layers: List[LayerSpec] = []
    inputs = net.inputs
    for i, sec in enumerate(sections[1:]):
        ltype = LAYER_TYPES.get(sec.type)
        if ltype is None:
            raise CfgError(f"{path}:{sec.line}: section '{sec.type}': Type not recognized "
                           "(supported: [rnn], [connected]/[conn], [softmax]/[soft], [cost])")
        L = _parse_layer(sec, ltype, i, inputs, path, strict, messages)
        layers.append(L)
        inputs = L.outputs
    return NetworkSpec(path=path, net=net, layers=layers, messages=messages)


def parse_cfg(path, strict=True) -> NetworkSpec:
    """Parse a Darknet .cfg file (str or os.PathLike)."""
    p = os.fspath(path)
    with open(p, "rb") as f:
        data = f.read()
    return parse_cfg_text(data, path=p, strict=strict)
