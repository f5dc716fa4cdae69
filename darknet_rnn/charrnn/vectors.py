"""Darknet's `rnn vec`: one vector per line of text, from the first layer's
output.

For each input line (the newline removed): prime with the seed text (one
byte per predict call), feed the line with every space, tab and newline
removed (Darknet's strip()), then feed one space; print the stripped line
followed by ",%g" for each value of the first layer's output (for an [rnn]
first layer, its output after that space: a state-based embedding).

Darknet resets the recurrent state before each line with
reset_network_state, which on the CPU does nothing (it clears GPU buffers
only): the state runs on from one line into the next, so a line's vector
depends on the lines before it. That is reproduced by default; reset=True
zeroes the state before each line (what the GPU build does, and what makes
each vector a function of its line alone).
"""
from typing import Iterable, Iterator, Tuple

import numpy as np

from .batches import check_byte_network
from .sampling import predict_byte

_DARKNET_STRIP = bytes.maketrans(b"", b"")
_WHITE = b" \t\n"


def darknet_strip(line: bytes) -> bytes:
    """Darknet's strip(): every space, tab and newline removed (not CR)."""
    return bytes(line).translate(_DARKNET_STRIP, _WHITE)


def line_vectors(net, lines: Iterable[bytes], seed=b"\n\n", reset=False
                 ) -> Iterator[Tuple[bytes, np.ndarray]]:
    """(stripped line, first-layer output) for each line, as `rnn vec`."""
    check_byte_network(net)
    if int(net.streams) * int(net.time_steps) != 1:
        raise ValueError("vec feeds one byte per call: the network needs batch=1 and "
                         f"time_steps=1 (has {net.streams} streams x {net.time_steps} steps)")
    seed = seed.encode("utf-8") if isinstance(seed, str) else bytes(seed)
    buf = np.zeros(int(net.inputs), dtype=np.float32)
    first = net.layers[0]
    for line in lines:
        if reset:
            net.reset_state()
        for c in seed:
            predict_byte(net, c, buf)
        line = darknet_strip(bytes(line).split(b"\0", 1)[0])   # C strings end at NUL
        for c in line:
            predict_byte(net, c, buf)
        predict_byte(net, ord(" "), buf)
        yield line, np.array(first.output, dtype=np.float32).reshape(-1)


def split_lines(data: bytes):
    """Darknet's fgetl loop: lines without their newline; a last line
    without a newline counts, an empty end does not."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


def format_vector(line: bytes, values) -> bytes:
    """The output line: the stripped line, then ",%g" per value."""
    return line + b"".join(b",%g" % float(v) for v in values) + b"\n"
