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

import os
from typing import List

from ._cfgread import (COST_TYPES, POLICIES, CfgWarning, LayerSpec, NetOptions,  # noqa: F401
                       NetworkSpec, _err, _Reader, _Section, _read_sections, _warn, c_atof,
                       c_atoi, parse_activation, to_float32, _INT32_MAX)
from .cfgcheck import check_layer, check_net
from .errors import CfgError
from .files import read_regular
from .registry import layer_type, section_types

__all__ = [
    "CfgWarning", "NetOptions", "LayerSpec", "NetworkSpec",
    "parse_cfg", "parse_cfg_text", "parse_activation",
    "c_atoi", "c_atof", "to_float32",
    "POLICIES", "COST_TYPES", "LAYER_TYPES",
]

# section header (whole stripped line) -> layer type, from the registry
LAYER_TYPES = section_types()
_NET_SECTIONS = ("[net]", "[network]")


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
              "SGD with momentum and decay; load with optimizer='adam' (darknet-rnn "
              "train --optimizer adam) to train with Adam")
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
              "batch 0), as in Darknet")
    check_net(r, n, strict, messages)
    return n


def _parse_layer(sec: _Section, ltype: str, index: int, inputs: int, path: str,
                 strict: bool, messages) -> LayerSpec:
    r = _Reader(sec, path, messages)
    L = LayerSpec(type=ltype, index=index, line=sec.line, section=sec.type,
                  inputs=inputs)
    entry = layer_type(ltype)
    L.network_output = entry.network_output
    entry.parse(r, L, strict, messages)
    # keys Darknet reads for every layer
    L.truth = r.find_int("truth", 0)
    L.onlyforward = r.find_int("onlyforward", 0) != 0
    L.stopbackward = r.find_int("stopbackward", 0) != 0
    L.dontsave = r.find_int("dontsave", 0) != 0
    L.dontload = r.find_int("dontload", 0) != 0
    L.numload = r.find_int("numload", 0)
    L.dontloadscales = r.find_int("dontloadscales", 0) != 0
    L.learning_rate_scale = r.find_float("learning_rate", 1)
    L.smooth = r.find_float("smooth", 0)
    entry.after_common_keys(r, L, messages)
    check_layer(r, L, strict, messages)
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
                           "(supported: " + ", ".join(LAYER_TYPES) + ")")
        L = _parse_layer(sec, ltype, i, inputs, path, strict, messages)
        layers.append(L)
        inputs = L.outputs
    return NetworkSpec(path=path, net=net, layers=layers, messages=messages)


MAX_CFG_BYTES = 64 << 20


def parse_cfg(path, strict=True) -> NetworkSpec:
    """Parse a Darknet .cfg file (str or os.PathLike): a regular file of at
    most 64 MiB (FIFOs, devices and directories are refused with CfgError)."""
    p = os.fspath(path)
    data = read_regular(p, "cfg file", MAX_CFG_BYTES, CfgError)
    return parse_cfg_text(data, path=p, strict=strict)
