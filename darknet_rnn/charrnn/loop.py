"""The char-RNN training loop (Darknet's `rnn train`) on darknet_rnn.training:
CharBatcher as the batch source, TrainStep as the step (epochs, jumped
streams, validation), a validation hook, and the loss-log columns.
(darknet_rnn.charrnn.monitor is the bounded, interruptible evaluation the
command line uses; `validation_hook` is the simple one of `train()`.)
"""
import math
from dataclasses import dataclass, field
from typing import Any, Callable, List, Optional

from ..training import train_loop
from .batches import CharBatcher, batcher_for, check_byte_network
from .evaluate import ValidResult, evaluate_bpc


@dataclass
class TrainStep:
    """What one training iteration reports (Darknet's loss line and more)."""
    iteration: int
    loss: float          # cost / net.batch: nats per character for softmax
    avg_loss: float      # avg = 0.9 avg + 0.1 loss, starting at the first loss
    rate: float
    seconds: float       # wall time of this iteration (data + train)
    epochs: float        # characters seen / training text length
    seen: int
    batch_number: int    # net.current_batch() after the update
    max_batches: int
    jumped: List[int] = field(default_factory=list)
    valid: Optional[ValidResult] = None     # validation_hook's result
    evaluation: Any = None                  # a charrnn.monitor.Evaluation (Monitor)

    @property
    def bpc(self):
        """The training loss in bits (softmax heads): Darknet's training-mode
        figure, not comparable with an evaluation (see charrnn.monitor)."""
        return self.loss / math.log(2)

    def darknet_line(self):
        """The line Darknet's `rnn train` prints for this iteration."""
        return (f"{self.iteration}: {self.loss:f}, {self.avg_loss:f} avg, "
                f"{self.rate:f} rate, {self.seconds:f} seconds, {self.epochs:f} epochs")


class CharSource:
    """A CharBatcher (or any object with next_batch(), jump() and len()) as a
    training batch source: jump() after every iteration, and the step factory
    that turns the loop's Step into a TrainStep (epochs = seen / text length,
    the streams that jumped)."""

    def __init__(self, batcher, reset=None):
        self.batcher = batcher
        self.length = len(batcher)
        self.reset = reset        # reset(streams): e.g. net.reset_state when stateful

    def next_batch(self):
        return self.batcher.next_batch()

    def after_iteration(self):
        jumped = self.batcher.jump()
        if jumped and self.reset is not None:   # a stream at a new offset starts afresh
            self.reset(jumped)
        return jumped

    def state(self):
        """What a checkpoint needs to continue the same batches."""
        return {"offsets": self.batcher.offsets.copy()}

    def set_state(self, extra):
        offsets = extra.get("offsets")
        if offsets is None or offsets.shape != self.batcher.offsets.shape:
            raise ValueError("the checkpoint's stream offsets do not fit this run "
                             f"({self.batcher.streams} streams)")
        self.batcher.offsets[...] = offsets

    def make_step(self, step, jumped) -> TrainStep:
        return TrainStep(iteration=step.iteration, loss=step.loss, avg_loss=step.avg_loss,
                         rate=step.rate, seconds=step.seconds, epochs=step.seen / self.length,
                         seen=step.seen, batch_number=step.batch_number,
                         max_batches=step.max_batches, jumped=list(jumped))


def validation_hook(net, valid_text, every=0, max_bytes=None):
    """A hook that fills step.valid with evaluate_bpc(net, valid_text) every
    `every` iterations (0: never) and at the last batch (max_batches reached);
    it does nothing when valid_text has fewer than 2 bytes."""
    def hook(step):
        done = step.batch_number >= step.max_batches
        if valid_text and len(valid_text) >= 2 and (
                done or (every and step.iteration % every == 0)):
            step.valid = evaluate_bpc(net, valid_text, max_bytes=max_bytes)
    return hook


def _ev(fmt, get):
    def value(s):
        ev = s.evaluation
        v = None if ev is None else get(ev)
        return "" if v is None else fmt(v)
    return value


# The loss-log columns of `darknet-rnn train` (name, value of a TrainStep):
# Darknet's loss (cost / rows, training mode) every iteration; on the rows of
# an evaluation the same measure of the training and the held-back text, in
# eval_unit (e.g. bpc).
LOG_COLUMNS = (
    ("iteration", lambda s: s.iteration),
    ("seen", lambda s: s.seen),
    ("loss", lambda s: f"{s.loss:.6f}"),
    ("avg_loss", lambda s: f"{s.avg_loss:.6f}"),
    ("rate", lambda s: f"{s.rate:g}"),
    ("seconds", lambda s: f"{s.seconds:.6f}"),
    ("epochs", lambda s: f"{s.epochs:.6f}"),
    ("train_eval", _ev(lambda v: f"{v:.6f}", lambda e: e.train)),
    ("valid_eval", _ev(lambda v: f"{v:.6f}", lambda e: e.valid)),
    ("eval_unit", _ev(str, lambda e: e.unit.short)),
    ("eval_seconds", _ev(lambda v: f"{v:.3f}", lambda e: e.seconds)),
)


def train(net, text, *, rng=None, max_batches=None, valid_text=b"", valid_every=0,
          valid_max_bytes=None, callback: Optional[Callable[[TrainStep], object]] = None,
          batcher: Optional[CharBatcher] = None) -> Optional[TrainStep]:
    """Darknet's `rnn train` loop on `text` (bytes).

    Streams = net.streams, steps = net.time_steps; offsets and jumps are
    drawn from `rng` (None: the network's own generator `net.rng` when it has
    one, continuing the stream that initialised the weights as in Darknet,
    else a clock-seeded GlibcRandom). The loop runs while
    net.current_batch() < max_batches (default net.max_batches) and continues
    from net.seen (the iteration number starts at seen // net.batch).
    Every `valid_every` iterations (0: never) and after the last one,
    `evaluate_bpc(net, valid_text)` fills TrainStep.valid when valid_text is
    given. `callback(step)` runs after each iteration; a truthy return stops
    the loop. Returns the last TrainStep (None if no iteration ran).
    """
    check_byte_network(net)
    if batcher is None:
        batcher = batcher_for(net, text, rng)      # this rank's streams when distributed
    source = CharSource(batcher)
    hooks = [validation_hook(net, valid_text, valid_every, valid_max_bytes)]
    if callback is not None:
        hooks.append(callback)
    return train_loop(net, source, max_batches=max_batches, make_step=source.make_step,
                      hooks=hooks)
