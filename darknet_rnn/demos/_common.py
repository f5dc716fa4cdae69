"""Pieces shared by the demos: networks from cfg text, argument parsing,
Markdown tables."""
import argparse
import os
import sys
import tempfile

from ..network import load_network


def build(cfg_text, name, out_dir=None, **kw):
    """load_network on cfg text: written to out_dir/<name>.cfg when out_dir
    is given (so the run can be repeated with Darknet's files), else to a
    temporary file."""
    if out_dir is not None:
        os.makedirs(out_dir, exist_ok=True)
        path = os.path.join(out_dir, f"{name}.cfg")
        with open(path, "w") as f:
            f.write(cfg_text)
        return load_network(path, **kw)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, f"{name}.cfg")
        with open(path, "w") as f:
            f.write(cfg_text)
        return load_network(path, **kw)


def int_list(text):
    """'10,20,50' -> [10, 20, 50] (argparse type)."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def positive(kind):
    def check(text):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}")
        if not v > 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return v
    return check


def table(header, rows):
    """A Markdown table (rows of already formatted cells)."""
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def progress(*args):
    print(*args, file=sys.stderr, flush=True)
