"""The cfg files that come with darknet_rnn, usable by name from anywhere.

The source tree keeps them in cfg/ (Darknet's layout: `cfg/rnn.cfg`); an
installed package has them in darknet_rnn/cfgdata. `cfg_path("char-small")`
gives the path of one; `resolve_cfg(arg)` is what the command line does with
its CFG argument:

* an existing file is used as it is;
* otherwise a bare name (`char-small`, `rnn.train`, `tiny.cfg`) or a name
  under `cfg/` (`cfg/rnn.cfg`, as Darknet's examples spell it) is looked up
  among the packaged cfgs: NAME.cfg / NAME.train.cfg / NAME (a training
  command prefers NAME.train.cfg, the others NAME.cfg);
* anything else is a FileNotFoundError that lists the packaged names.
"""
import os
from pathlib import Path
from typing import List, Optional

__all__ = ["cfg_dir", "packaged_cfgs", "cfg_path", "resolve_cfg"]

_HERE = Path(__file__).resolve().parent


def cfg_dir() -> Optional[Path]:
    """The directory of the packaged cfgs (installed: darknet_rnn/cfgdata;
    a source checkout or editable install: the checkout's cfg/)."""
    for d in (_HERE / "cfgdata", _HERE.parent / "cfg"):
        if d.is_dir() and any(d.glob("*.cfg")):
            return d
    return None


def packaged_cfgs() -> List[str]:
    """Names of the packaged cfgs, without .cfg (e.g. 'char-small.train')."""
    d = cfg_dir()
    return sorted(p.name[:-4] for p in d.glob("*.cfg")) if d else []


def _candidates(name, training):
    if name.endswith(".cfg"):
        return [name]
    order = [".train.cfg", ".cfg"] if training else [".cfg", ".train.cfg"]
    return [name + suffix for suffix in order] + [name]


def cfg_path(name, *, training=False) -> str:
    """The path of a packaged cfg: 'char-small' -> .../char-small.cfg
    (training=True prefers char-small.train.cfg). FileNotFoundError if
    there is none by that name."""
    name = os.fspath(name)
    d = cfg_dir()
    if d is not None:
        for cand in _candidates(name, training):
            p = d / cand
            if p.is_file():
                return str(p)
    raise FileNotFoundError(2, f"cfg file not found: {name} (packaged cfgs: "
                               f"{', '.join(packaged_cfgs()) or 'none'})", name)


def resolve_cfg(arg, *, training=False) -> str:
    """The cfg file a command-line argument names (see the module docstring)."""
    arg = os.fspath(arg)
    if os.path.isfile(arg):
        return arg
    head, tail = os.path.split(arg)
    if tail and head in ("", "cfg", "." + os.sep + "cfg", "./cfg"):
        try:
            return cfg_path(tail, training=training)
        except FileNotFoundError:
            pass
    if os.path.isdir(arg):
        raise IsADirectoryError(21, f"cfg argument is a directory: {arg}", arg)
    raise FileNotFoundError(2, f"cfg file not found: {arg} (nor a packaged cfg of that "
                               f"name: {', '.join(packaged_cfgs()) or 'none'})", arg)
