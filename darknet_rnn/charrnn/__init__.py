"""Darknet's char-RNN program (`darknet rnn train | generate | valid`) on
bytes, in small modules:

* corpus:   the default corpus, reading/checking/splitting text, escapes;
* batches:  one-hot batches in Darknet's layout, CharBatcher (random read
            heads that jump), glibc rand() helpers in Darknet's draw order;
* sampling: Darknet's sampling, priming and generation;
* evaluate: bits per character (Darknet's `rnn valid` and a batched estimate);
* loop:     the char-RNN training loop on darknet_rnn.training.

`darknet_rnn.text` re-exports the public names of all of them.
"""
