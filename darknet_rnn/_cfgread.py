"""The text level of Darknet's .cfg reader: C number parsing (atoi/atof),
the section/option reader with Darknet's option_find* semantics, the
parsed-cfg dataclasses, and the warning/error helpers. The [net] section is
parsed in darknet_rnn.cfg; each layer section by its type's entry in
darknet_rnn.registry. Pure Python.
"""
from __future__ import annotations

import math
import re
import sys
import warnings
from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np

from .activations import ACTIVATIONS
from .errors import CfgError

class CfgWarning(UserWarning):
    """A .cfg file is accepted, but something in it is suspicious or ignored."""


POLICIES = ("constant", "step", "steps", "exp", "poly", "sigmoid", "random")
COST_TYPES = ("sse", "masked", "L1", "seg", "smooth", "wgan")
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
    text = m.group(0)
    sign = -1 if text[0] == "-" else 1
    digits = text.lstrip("+-").lstrip("0")
    if len(digits) > 19:                        # beyond any long: no huge int() (Python's
        v = sign * 2**63                        # digit limit), strtol saturates anyway
    else:
        v = sign * int(digits or "0")
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
    lines: dict = field(default_factory=dict, compare=False, repr=False)   # key -> line

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
    tanh: bool = False              # [gru]: candidate activation tanh instead of logistic
    bidirectional: bool = False     # [rnn] extension: outputs = 2 * output
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
    network_output: bool = True     # may be the network's output (set by the layer type)
    lines: dict = field(default_factory=dict, compare=False, repr=False)   # key -> line


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
            if l.network_output:
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
        self.floats = []            # (key, value) of float keys read from the file

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
            f = to_float32(c_atof(v))
            self.floats.append((key, f))
            return f
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


# the modules that read cfg text; warnings point past them, at the caller
_PARSER_MODULES = ("darknet_rnn._cfgread", "darknet_rnn.cfg", "darknet_rnn.registry")  # prefixes


def _stacklevel():
    """stacklevel that points warnings at the first frame outside the parser."""
    f = sys._getframe(1)
    level = 1
    while f is not None and (f.f_globals.get("__name__") or "").startswith(_PARSER_MODULES):
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


