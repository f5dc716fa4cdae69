"""Word-level data as Darknet's `rnn` program reads it.

* `rnn train -tokenized`: the training file holds token ids, integers
  separated by white space (Darknet reads them with fscanf("%d")); the
  network's inputs are the vocabulary size, and every id must be below it.
  Batches, offsets and jumps are the byte-level ones over the id sequence.
* `rnn generate -tokens FILE`: FILE lists the vocabulary, one token per line
  (line k is token k; a line `<NEWLINE>` stands for a newline). Each
  generated id is printed as its token followed by a space. As in Darknet,
  the seed text's bytes are used as token ids (the default seed, two
  newlines, primes with token 10 twice).
"""
import re
import warnings

import numpy as np

from .corpus import TextError

NEWLINE_TOKEN = b"<NEWLINE>"
_INT = re.compile(rb"[+-]?[0-9]+")


def read_tokenized_data(path, lenient=False) -> np.ndarray:
    """The token ids of a -tokenized training file as an int64 array.

    Every white-space separated field must be a decimal integer (TextError
    naming the line and field otherwise); lenient=True stops at the first
    field that is not, as Darknet's fscanf loop does, with a warning."""
    with open(path, "rb") as f:
        data = f.read()
    ids = []
    for lineno, line in enumerate(data.split(b"\n"), start=1):
        for field in line.split():
            if not _INT.fullmatch(field):
                shown = field[:20].decode("ascii", "backslashreplace")
                if not lenient:
                    raise TextError(f"{path}:{lineno}: '{shown}' is not a token id (a "
                                    "-tokenized file holds integers separated by white "
                                    "space; --lenient stops reading there, as Darknet does)")
                warnings.warn(f"{path}:{lineno}: '{shown}' is not a token id: reading "
                              f"stops there ({len(ids)} tokens read), as in Darknet",
                              RuntimeWarning, stacklevel=2)
                return _finish(ids, path)
            ids.append(int(field))
    return _finish(ids, path)


def _finish(ids, path):
    if len(ids) < 2:
        raise TextError(f"{path}: a -tokenized file needs at least 2 token ids "
                        f"(has {len(ids)})")
    return np.array(ids, dtype=np.int64)


def read_tokens(path):
    """The vocabulary of a -tokens file: one bytes token per line (the
    newline removed, `<NEWLINE>` replaced by a newline)."""
    with open(path, "rb") as f:
        data = f.read()
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()                 # the newline that ends the last line
    if not lines:
        raise TextError(f"{path}: the tokens file is empty (one token per line)")
    return [b"\n" if t == NEWLINE_TOKEN else t for t in lines]


def check_token_ids(ids, vocab, what):
    """TextError unless every id is in [0, vocab)."""
    ids = np.asarray(ids)
    bad = np.flatnonzero((ids < 0) | (ids >= vocab))
    if bad.size:
        i = int(bad[0])
        raise TextError(f"{what}: token id {int(ids[i])} at position {i} is outside "
                        f"[0, {vocab})")
