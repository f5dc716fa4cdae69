"""Evaluation during training: the same measure on the training text and on
the held-back text, on a bounded, fixed sample, interruptible.

* The measure is the network's own cost in inference mode (batch-norm
  rolling statistics, dropout off, the recurrent state carried from call to
  call), per predicted symbol: for a [softmax] head the cross-entropy of the
  true next symbol, reported in bits per character (per token for word-level
  data); for a [cost] head the cost itself (e.g. "sse per character"). The
  training figure and the validation figure are measured the same way, so
  their difference is the generalisation gap. (Darknet's own training loss,
  printed every iteration, is measured in training mode on the batch just
  trained, from a zero state every `time_steps`: a different quantity.)
* The sample is fixed: `streams` windows spread evenly over the text, each a
  whole number of `time_steps`, together about `budget` symbols (None or 0:
  the whole text). The same windows are scored every time, so successive
  figures compare.
* `should_stop()` is asked after every predict call; a true answer abandons
  the evaluation (the result is None) so that Ctrl-C acts at once.
"""
import math
import time
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from .batches import VOCAB, one_hot


@dataclass
class Unit:
    """What an evaluation figure is: `name` (long), `short` (for tables and
    the CSV) and `factor` (per-row cost -> figure)."""
    name: str
    short: str
    factor: float = 1.0


def loss_unit(net, symbol="character") -> Unit:
    """The unit of the network's cost per row: bits per character (per
    token) for [softmax] heads, the [cost] type per character for a [cost]
    head, Darknet's averaged loss per character for a mix."""
    units = set()
    for kind, ls in zip(net.kinds, net.spec.layers):
        if kind.has_cost:
            units.add(kind.cost_unit(ls))
    units.discard(None)
    short = "char" if symbol == "character" else symbol
    if units == {"nats"}:
        return Unit(f"bits per {symbol}", "bpc" if symbol == "character" else f"bits/{short}",
                    1.0 / math.log(2))
    if len(units) == 1:
        (u,) = units
        return Unit(f"{u} per {symbol}", f"{u}/{short}")
    return Unit(f"loss per {symbol}", f"loss/{short}")


class Sample:
    """A fixed evaluation sample of `data` (bytes or token ids) for a net of
    `streams` x `steps`: windows of `length` symbols starting at `starts`,
    positions taken modulo len(data) - 1 (every position has a successor)."""

    def __init__(self, data, streams, steps, budget=None, width=VOCAB):
        if isinstance(data, (bytes, bytearray, memoryview)):
            data = np.frombuffer(bytes(data), dtype=np.uint8)
        self.data = np.asarray(data)
        self.width = int(width)
        self.streams, self.steps = int(streams), int(steps)
        usable = self.data.shape[0] - 1
        if usable < 1:
            raise ValueError("an evaluation sample needs at least 2 symbols")
        self.usable = usable
        target = usable if not budget else min(int(budget), usable)
        per_stream = target // self.streams
        self.length = max(self.steps, per_stream // self.steps * self.steps)
        self.starts = (np.arange(self.streams, dtype=np.int64) * usable) // self.streams

    @property
    def count(self):
        """Symbols predicted per evaluation."""
        return self.length * self.streams

    @property
    def calls(self):
        """Predict calls per evaluation."""
        return self.length // self.steps

    def batch(self, k):
        """x, y of call k: (steps, streams, width) one-hot."""
        t = k * self.steps + np.arange(self.steps, dtype=np.int64)
        pos = (self.starts[None, :] + t[:, None]) % self.usable
        return (one_hot(self.data[pos], width=self.width),
                one_hot(self.data[pos + 1], width=self.width))


def score(net, sample: Sample, *, should_stop=None, progress=None) -> Optional[float]:
    """The mean per-row cost of the network on the sample (inference mode,
    state carried across calls, from zero; the network's carried states are
    put back afterwards, so a stateful run is not disturbed), or None when
    should_stop() answered true. progress(done_calls, total_calls) after each
    call."""
    total = 0.0
    arrays = getattr(net, "state_arrays", list)
    saved = [a.copy() for a in arrays()]
    # An evaluation is a figure, not the run: a non-finite one (batch norm's
    # early rolling statistics can overflow inference) is reported as such
    # while the finite guard keeps watching training itself.
    guard_setting = getattr(net, "finite_guard", None)
    net.finite_guard = False
    net.reset_state()
    try:
        for k in range(sample.calls):
            x, y = sample.batch(k)
            total += float(net.forward(x, y, train=False))
            if progress is not None:
                progress(k + 1, sample.calls)
            if should_stop is not None and should_stop():
                return None
    finally:
        net.finite_guard = guard_setting
        for a, b in zip(arrays(), saved):
            a[...] = b
    return total / sample.count


@dataclass
class Evaluation:
    """One evaluation during training (figures in `unit`)."""
    iteration: int
    unit: Unit
    train: float                 # the sample of the training text
    valid: Optional[float]       # the sample of the held-back text (None: none held back)
    count: int                   # symbols scored of the training text
    seconds: float
    valid_count: int = 0         # symbols scored of the held-back text


class Monitor:
    """A training hook: every `every` iterations (0: never) and after the
    last one, score the training sample and the validation sample and put
    an Evaluation on the step (`step.evaluation`).

    listener: an object with eval_started(step, calls), eval_progress(done,
    calls), eval_done(evaluation) and eval_interrupted(step) (any missing
    method is skipped) - the display. should_stop: see score().
    """

    def __init__(self, net, train_data, valid_data=None, *, budget=None, every=0,
                 width=VOCAB, symbol="character",
                 should_stop: Optional[Callable[[], bool]] = None, listener=None):
        self.net = net
        self.every = int(every)
        self.unit = loss_unit(net, symbol)
        shape = (net.streams, net.time_steps)
        self.train_sample = Sample(train_data, *shape, budget=budget, width=width)
        self.valid_sample = (Sample(valid_data, *shape, budget=budget, width=width)
                             if valid_data is not None and len(valid_data) >= 2 else None)
        self.should_stop = should_stop
        self.listener = listener
        self.last_seconds = None

    @property
    def calls(self):
        """Predict calls per evaluation (both samples)."""
        return self.train_sample.calls + (self.valid_sample.calls if self.valid_sample else 0)

    def due(self, iteration, done):
        return done or (self.every > 0 and iteration % self.every == 0)

    def remaining(self, iteration, last_iteration):
        """Evaluations still to come after `iteration` up to the run's last."""
        if last_iteration <= iteration:
            return 0
        n = (last_iteration // self.every - iteration // self.every) if self.every else 0
        if not (self.every and last_iteration % self.every == 0):
            n += 1                     # the final one
        return n

    def _tell(self, name, *args):
        fn = getattr(self.listener, name, None)
        if fn is not None:
            fn(*args)

    def __call__(self, step):
        if not self.due(step.iteration, step.batch_number >= step.max_batches):
            return None
        self._tell("eval_started", step, self.calls)
        t0 = time.perf_counter()
        done = [0]

        def progress(k, n):
            self._tell("eval_progress", done[0] + k, self.calls)

        train = score(self.net, self.train_sample, should_stop=self.should_stop,
                      progress=progress)
        done[0] = self.train_sample.calls
        valid = None
        if train is not None and self.valid_sample is not None:
            valid = score(self.net, self.valid_sample, should_stop=self.should_stop,
                          progress=progress)
            if valid is None:
                train = None
        if train is None:
            self._tell("eval_interrupted", step)
            return None
        u = self.unit
        self.last_seconds = time.perf_counter() - t0
        step.evaluation = Evaluation(
            iteration=step.iteration, unit=u, train=train * u.factor,
            valid=None if valid is None else valid * u.factor,
            count=self.train_sample.count, seconds=self.last_seconds,
            valid_count=self.valid_sample.count if self.valid_sample else 0)
        self._tell("eval_done", step.evaluation)
        return None


def best_in_log(csv_path, unit_short) -> Optional[float]:
    """The lowest validation figure in `unit_short` of a loss log (the run
    being resumed), or None."""
    import csv
    best = None
    try:
        with open(csv_path, newline="") as f:
            for row in csv.DictReader(f):
                if row.get("eval_unit") != unit_short or not row.get("valid_eval"):
                    continue
                try:
                    v = float(row["valid_eval"])
                except ValueError:
                    continue
                if v == v and (best is None or v < best):
                    best = v
    except OSError:
        return None
    return best
