"""Byte-level text for Darknet's char-RNN program (`darknet rnn`).

The public face of `darknet_rnn.charrnn`: everything `darknet rnn train |
generate | valid` does with text, as a Python API the command line (cli.py)
is built on. The code lives in the subpackage:

* corpus (charrnn.corpus): `default_corpus()` (the standard library's help
  texts, no download), `load_text()`, `check_text()`, `split_text()`,
  `decode_escapes()`, `TextError`;
* batches (charrnn.batches): `get_batch()` / `CharBatcher` give x, y of
  shape (steps, streams, 256), one-hot, time-major (row t*streams + s is
  stream s at step t), y[t, s] being the byte after x[t, s]; each stream
  advances one byte per step and, after every iteration, jumps to a new
  random offset with probability 1/64; `rand_size_t()`, `skip_draws()`,
  `init_draws()`, `new_rng()`, `one_hot()`, `check_byte_network()`;
* `train()` (charrnn.loop): Darknet's loop (one net.train per batch, loss =
  cost / net.batch, the 0.9/0.1 moving average) with a callback per
  iteration, on the generic loop of darknet_rnn.training;
* `generate()` (charrnn.sampling): Darknet's priming and sampling, byte by
  byte (temp=0: the most likely byte); `generate_ids()` the same over token
  ids;
* word-level data (charrnn.tokens): `read_tokenized_data()`, `read_tokens()`
  (Darknet's -tokenized and -tokens files);
* `validate()` / `iter_validate()` (charrnn.evaluate): Darknet's `rnn valid`
  arithmetic (float32 running sum of log2 p), and `evaluate_bpc()`, a fast
  batched estimate used for the validation split during training.

Randomness comes from an object with a glibc-compatible `rand()` (normally
`darknet_rnn._rand.GlibcRandom`), drawn in the order Darknet draws, so a seed
reproduces Darknet's offsets and samples.

Invariant: texts are `bytes` without zero bytes (Darknet rejects them as
"Bad char"); the vocabulary is the 256 byte values.
"""
from ._rand import RAND_MAX, GlibcRandom, clock_seed
from .charrnn.batches import (JUMP_ODDS, VOCAB, CharBatcher, check_byte_network, get_batch,
                              init_draws, new_rng, one_hot, rand_size_t, skip_draws)
from .charrnn.corpus import TextError, check_text, decode_escapes, default_corpus, load_text, \
    split_text
from .charrnn.evaluate import (WORD_BREAKS, ValidResult, evaluate_bpc, format_valid_line,
                               iter_validate, validate)
from .charrnn.loop import TrainStep, train
from .charrnn.sampling import (SAMPLE_FLOOR, argmax_index, generate, generate_ids,
                                generate_streams, prime, sample_index)
from .charrnn.tokens import check_token_ids, read_tokenized_data, read_tokens
from .errors import DarknetError

__all__ = [
    # corpus
    "TextError", "default_corpus", "check_text", "load_text", "split_text", "decode_escapes",
    # randomness and batches
    "VOCAB", "JUMP_ODDS", "new_rng", "rand_size_t", "skip_draws", "init_draws", "one_hot",
    "get_batch", "CharBatcher", "check_byte_network",
    # training
    "TrainStep", "train",
    # evaluation
    "WORD_BREAKS", "ValidResult", "evaluate_bpc", "iter_validate", "validate",
    "format_valid_line",
    # sampling
    "SAMPLE_FLOOR", "prime", "sample_index", "argmax_index", "generate", "generate_ids",
    "generate_streams",
    # word level
    "read_tokenized_data", "read_tokens", "check_token_ids",
    # names this module has always made available
    "RAND_MAX", "GlibcRandom", "clock_seed", "DarknetError",
]
