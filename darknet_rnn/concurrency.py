"""Threads and networks: the rule, and the lock that enforces it.

* Separate networks may run in separate threads at the same time (the C
  calls release the GIL). They share no mutable scratch: each network owns
  its layers' buffers, and the GEMM workspace of an execution context is per
  calling thread (darknet_rnn._ffi.Context.ptr); a context's worker pool
  serves one call at a time and a concurrent caller computes its blocks on
  threads of its own, with the same bits.
* One network used from several threads at once is serialised: its public
  calls (train, forward_backward, update, forward, predict, reset_state,
  weights and checkpoint I/O) take the network's lock, so each runs whole
  and they run one after another, in whatever order the threads arrive.
  Parallel work on one set of weights needs one network per thread.
* Layers used directly (darknet_rnn.layers) have no lock: one layer object
  must not be called from two threads at once.
"""
import functools
import threading

__all__ = ["serialized", "lock_of"]


def lock_of(obj):
    """The object's re-entrant lock, created on first use."""
    lock = obj.__dict__.get("_call_lock")
    if lock is None:
        # dict.setdefault is atomic under the GIL: racing threads get one lock
        lock = obj.__dict__.setdefault("_call_lock", threading.RLock())
    return lock


def serialized(method):
    """Decorator: run the method holding the object's lock (re-entrant, so
    train() may call forward_backward() and update())."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with lock_of(self):
            return method(self, *args, **kwargs)
    return wrapper
