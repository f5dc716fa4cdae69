"""The char-RNN corpus: the embedded default text, reading and checking text
files, the train/validation split, and command-line escapes.

Invariant: texts are `bytes` without zero bytes (Darknet rejects them as
"Bad char").
"""
import sys

from ..errors import DarknetError


class TextError(DarknetError, ValueError):
    """The text cannot be used for byte-level training or evaluation (zero
    byte, too short, empty seed)."""


def default_corpus() -> bytes:
    """The embedded training text: the interactive help topics shipped with
    Python (`pydoc_data.topics`), joined in sorted key order, UTF-8 encoded
    (about 460 KB of English prose and code, no zero bytes)."""
    from pydoc_data import topics
    table = topics.topics
    return "".join(table[k] for k in sorted(table)).encode("utf-8")


def check_text(text, name="text"):
    """Raise TextError if `text` is empty or contains a zero byte (Darknet's
    "Bad char"). Returns the text as bytes."""
    text = bytes(text)
    if not text:
        raise TextError(f"{name} is empty")
    zero = text.find(0)
    if zero >= 0:
        raise TextError(f"{name}: bad char: zero byte at offset {zero} "
                        "(byte-level char-RNN text must not contain NUL bytes)")
    return text


def load_text(path) -> bytes:
    """Read a whole file as bytes ('-' reads stdin). OSError if it cannot be
    read; TextError if it is empty or contains a zero byte (the message names
    the offset)."""
    if str(path) == "-":
        data = sys.stdin.buffer.read()
        return check_text(data, "stdin")
    with open(path, "rb") as f:
        data = f.read()
    return check_text(data, str(path))


def split_text(text, valid_fraction):
    """(train, valid): the last `valid_fraction` of the text is held back for
    validation (cut on a byte boundary). valid is b"" when the fraction is 0
    or the held-back part would be shorter than 2 bytes. An array of token
    ids is split the same way (valid then is an empty array)."""
    if not 0.0 <= valid_fraction < 1.0:
        raise ValueError(f"valid_fraction must be in [0, 1), got {valid_fraction}")
    n_valid = int(len(text) * valid_fraction)
    if not isinstance(text, (bytes, bytearray, memoryview)):     # token ids (an array)
        if n_valid < 2:
            return text, text[:0]
        return text[:len(text) - n_valid], text[len(text) - n_valid:]
    if n_valid < 2:
        return bytes(text), b""
    return bytes(text[:len(text) - n_valid]), bytes(text[len(text) - n_valid:])


_SIMPLE_ESCAPES = {"n": b"\n", "t": b"\t", "r": b"\r", "\\": b"\\"}


def decode_escapes(s: str) -> bytes:
    """Command-line text to bytes: UTF-8, with the escapes \\n \\t \\r \\\\
    and \\xHH understood (so --seed '\\n\\n' is two newlines). Any other
    backslash is kept as it is."""
    out = bytearray()
    i = 0
    while i < len(s):
        ch = s[i]
        if ch == "\\" and i + 1 < len(s):
            nxt = s[i + 1]
            if nxt in _SIMPLE_ESCAPES:
                out += _SIMPLE_ESCAPES[nxt]
                i += 2
                continue
            if nxt == "x" and _is_hex(s[i + 2:i + 4]):
                out.append(int(s[i + 2:i + 4], 16))
                i += 4
                continue
        out += ch.encode("utf-8", "surrogateescape")
        i += 1
    return bytes(out)


def _is_hex(two):
    return len(two) == 2 and all(c in "0123456789abcdefABCDEF" for c in two)
