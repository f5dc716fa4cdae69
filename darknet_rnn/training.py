"""A training run: Darknet's multi-batch loop and the policies around it,
for any batch source (not only text).

* `train_loop(net, source, ...)`: one `net.train(x, y)` per batch while
  `net.current_batch() < max_batches`, continuing from `net.seen` (iteration
  number and learning-rate schedule); loss = cost / net.batch and Darknet's
  moving average avg = 0.9 avg + 0.1 loss; hooks run after each iteration.
* `TrainingRun`: the loop plus checkpoints every N iterations (Darknet's
  `.backup`), kept copies every N iterations, the final weights, the best
  weights by a validation figure (`_best.weights`), `clear` (count from 0
  again), a CSV loss log (appended to when the run continues loaded
  weights), and SIGINT/SIGTERM handling (first signal: finish the
  iteration, save a checkpoint, stop - work inside the iteration can ask
  `run.stop_requested` to cut itself short; second signal: abort without
  saving).

A batch source is an object with `next_batch()` returning (x, y) -- or any
further arguments `net.train` takes, as one tuple -- or any iterable of such
tuples (the run ends early when it is exhausted). If it has
`after_iteration()`, that is called once after each net.train (after the
iteration's learning rate is read, as Darknet prints the rate before its
streams jump) and its result is handed to `make_step`.

Invariant: nothing here knows what the data is; a program adds its own step
fields with `make_step`, its own checks with hooks and its own loss-log
columns with `log_columns`.
"""
import csv
import os
import signal
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import numpy as np

from .checkpoint import state_path
from .errors import DivergenceError

__all__ = ["BACKUP", "BEST", "EXIT_INTERRUPT", "FINAL", "INTERRUPT_NOTE", "STEP_COLUMNS",
           "LossLog", "gradient_columns",
           "RunResult", "Step", "StopFlag", "TrainingRun", "darknet_paths", "keep_suffix",
           "train_loop"]

EXIT_INTERRUPT = 130            # exit status after SIGINT (128 + SIGINT)
BACKUP = ".backup"              # Darknet's checkpoint suffix
FINAL = "_final.weights"        # Darknet's final weights suffix
BEST = "_best.weights"          # the best weights by validation (not Darknet's)
INTERRUPT_NOTE = ("interrupted: saving a checkpoint after this iteration "
                  "(interrupt again to abort without saving)")


def gradient_columns(net, per_step=False):
    """Loss-log columns for gradient statistics, read after each step: the
    pre-clip global norm (`grad_norm`, when the network clips) and, with
    per_step, the norm of the gradient reaching each recurrent layer's state
    at each time step (`state_grad_L<layer>_t<step>`; switches recording on)."""
    cols = []
    if getattr(net, "clip", None) is not None:
        cols.append(("grad_norm", lambda s: f"{net.clip.last_norm:.6g}"))
    if per_step:
        net.record_grad_norms()
        for i, norms in net.grad_norms().items():
            for t in range(norms.shape[0]):
                cols.append((f"state_grad_L{i}_t{t}",
                             lambda s, i=i, t=t: f"{net.layers[i].grad_norms[t]:.6g}"))
    return tuple(cols)


def keep_suffix(iteration):
    """Darknet's suffix for the copy kept at `iteration`: _<iteration>.weights."""
    return f"_{int(iteration)}.weights"


def darknet_paths(directory, base):
    """Darknet's naming: path_for(suffix) = directory/base + suffix
    (e.g. backup/rnn.backup, backup/rnn_final.weights)."""
    directory = os.fspath(directory)

    def path_for(suffix):
        return os.path.join(directory, base + suffix)
    return path_for


@dataclass
class Step:
    """What one training iteration reports."""
    iteration: int
    loss: float          # cost / net.batch
    avg_loss: float      # avg = 0.9 avg + 0.1 loss, starting at the first loss
    rate: float          # learning rate after the iteration
    seconds: float       # wall time of the iteration (data + train)
    seen: int
    batch_number: int    # net.current_batch() after the update
    max_batches: int


Hook = Callable[[Any], Any]


class _Source:
    """next()/after() over a batch source (see the module docstring)."""

    def __init__(self, source):
        next_batch = getattr(source, "next_batch", None)
        if callable(next_batch):
            self._next = next_batch
        else:
            try:
                it = iter(source)
            except TypeError:
                raise TypeError("the batch source must have a next_batch() method or be an "
                                f"iterable of (x, y) batches, got {type(source).__name__}"
                                ) from None
            self._next = it.__next__
        after = getattr(source, "after_iteration", None)
        self.after = after if callable(after) else (lambda: None)

    def next(self):
        """The next batch as a tuple of net.train arguments; StopIteration
        when an iterable source is exhausted."""
        batch = self._next()
        if not isinstance(batch, (tuple, list)) or len(batch) < 2:
            raise TypeError("the batch source must give (x, y) tuples, got "
                            f"{type(batch).__name__}")
        return batch


def train_loop(net, source, *, max_batches=None, make_step=None,
               hooks: Sequence[Hook] = ()):
    """Darknet's training loop over `source` (see the module docstring).

    Runs while net.current_batch() < max_batches (default net.max_batches);
    the iteration number starts at net.seen // net.batch. Each iteration:
    x, y = next batch; cost = net.train(x, y); loss = cost / net.batch
    (float32); avg as Darknet; source.after_iteration(); a Step, turned by
    make_step(step, after_result) into the program's own step when given;
    then every hook(step) in order. The loop stops after the iteration if any
    hook returns something true. Returns the last step (None if no
    iteration ran).

    A distributed network (darknet_rnn.distributed) counts the global batch
    (`global_batch`: the iteration number and loss divide by it) and stops
    on every rank when a hook asked on any (net.any_rank); every rank's
    source must give the same number of batches."""
    src = _Source(source)
    if max_batches is None:
        max_batches = int(net.max_batches)
    max_batches = int(max_batches)
    batch = int(getattr(net, "global_batch", net.batch))
    iteration = int(net.seen) // batch
    avg = None
    last = None
    while net.current_batch() < max_batches:
        t0 = time.perf_counter()
        try:
            data = src.next()
        except StopIteration:
            break
        iteration += 1
        cost = net.train(*data)
        loss = np.float32(np.float32(cost) / np.float32(batch))
        avg = loss if avg is None else avg
        avg = np.float32(float(avg) * .9 + float(loss) * .1)
        seconds = time.perf_counter() - t0
        # Darknet prints the rate (the `random` policy draws from the rand()
        # stream) before the streams jump (more draws)
        rate = float(net.current_rate())
        report = src.after()
        step = Step(iteration=iteration, loss=float(loss), avg_loss=float(avg),
                    rate=rate, seconds=seconds, seen=int(net.seen),
                    batch_number=int(net.current_batch()), max_batches=max_batches)
        if make_step is not None:
            step = make_step(step, report)
        last = step
        stop = any([hook(step) for hook in hooks])
        any_rank = getattr(net, "any_rank", None)
        if any_rank is not None:
            stop = any_rank(stop)      # distributed: every rank stops after the same iteration
        if stop:
            break
    return last


# --------------------------------------------------------------------------
# loss log

STEP_COLUMNS = (
    ("iteration", lambda s: s.iteration),
    ("seen", lambda s: s.seen),
    ("loss", lambda s: f"{s.loss:.6f}"),
    ("avg_loss", lambda s: f"{s.avg_loss:.6f}"),
    ("rate", lambda s: f"{s.rate:g}"),
    ("seconds", lambda s: f"{s.seconds:.6f}"),
)


class LossLog:
    """A CSV loss log: a header of column names, then one row per step
    (columns are (name, value_of_step) pairs), flushed after every row.
    append=True continues an existing non-empty file without a new header
    (a file with other columns is first rewritten with these: values moved
    by column name, empty where it had none)."""

    def __init__(self, path, columns=STEP_COLUMNS, append=False):
        self.path = os.fspath(path)
        self.columns = tuple(columns)
        fresh = not (append and os.path.exists(self.path) and os.path.getsize(self.path) > 0)
        if not fresh:
            self._adopt_header()
        self._f = open(self.path, "w" if fresh else "a", newline="")
        self._w = csv.writer(self._f)
        if fresh:
            self._w.writerow([name for name, _ in self.columns])
            self._f.flush()

    def _adopt_header(self):
        names = [name for name, _ in self.columns]
        with open(self.path, newline="") as f:
            rows = list(csv.reader(f))
        if not rows or rows[0] == names:
            return
        old = rows[0]
        with open(self.path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(names)
            for r in rows[1:]:
                have = dict(zip(old, r))
                w.writerow([have.get(n, "") for n in names])

    def row(self, step):
        self._w.writerow([value(step) for _, value in self.columns])
        self._f.flush()

    def close(self):
        self._f.close()


# --------------------------------------------------------------------------
# signals

class StopFlag:
    """While active, SIGINT and SIGTERM set `signum` (and call
    on_signal(signum)) instead of stopping the program; a second signal
    raises KeyboardInterrupt. Inactive (no handlers installed) when
    enabled=False or outside the main thread."""

    def __init__(self, on_signal=None, enabled=True):
        self.signum = None
        self.on_signal = on_signal
        self.enabled = enabled
        self._old = {}

    def __enter__(self):
        if not self.enabled:
            return self
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except (ValueError, OSError):      # not the main thread
                pass
        return self

    def _handle(self, signum, frame):
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum
        if self.on_signal is not None:
            self.on_signal(signum)

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old.clear()
        return False


def _default_on_signal(signum):
    print(f"\n{INTERRUPT_NOTE}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# the run

@dataclass
class RunResult:
    """How a TrainingRun ended."""
    last: Any = None                 # the last step (None if no iteration ran)
    saved: Optional[str] = None      # final weights, or the checkpoint after a signal
    signum: Optional[int] = None     # the signal that stopped the run
    aborted: bool = False            # a second signal: stopped without saving
    best: Optional[float] = None     # the best validation figure (lower is better)
    best_path: Optional[str] = None  # where its weights are

    @property
    def stopped(self):
        """True if a signal ended the run before max_batches."""
        return self.aborted or self.signum is not None

    @property
    def exit_status(self):
        """0; 130 after SIGINT or an abort; 128 + signum after another signal."""
        if self.aborted:
            return EXIT_INTERRUPT
        if self.signum is None:
            return 0
        return EXIT_INTERRUPT if self.signum == signal.SIGINT else 128 + int(self.signum)


class TrainingRun:
    """train_loop with checkpoints, kept copies, final weights, resume, clear,
    the loss log and signal handling.

    net, source: as train_loop; make_step and hooks too (hooks run first,
      then the run's own bookkeeping for the step).
    path_for(suffix) -> path: where weights go (see darknet_paths): the
      checkpoint path_for(".backup") every `save_every` iterations, a copy
      path_for("_<iteration>.weights") every `keep_every` iterations (0: never;
      the copy is written before the checkpoint), path_for("_final.weights")
      at the end, path_for(".backup") after a signal.
    resumed: the network holds weights loaded from a file; the run continues
      them (iteration count and lr schedule from net.seen; the loss log is
      appended to).
    clear: count from 0 again (net.seen = 0, set here, at construction; a
      fresh loss log) -- Darknet's -clear.
    log_path, log_columns: the CSV loss log (None: none); columns as LossLog.
    writer: False on every process but one when several train together:
      nothing is written (no log, checkpoints or weights); the loop is the same.
      None (default): True, or on a distributed network (world_size > 1) rank
      0 only; such a network's saves are collective (every rank calls
      net.save_weights, rank 0 writes), and a second signal raises
      KeyboardInterrupt instead of returning (so the job can be aborted).
    handle_signals: install the SIGINT/SIGTERM handlers while running.
    save_state: with every weights file also write its training-state
      sidecar (<weights>.state: momentum/Adam state, rand() stream, carried
      states, and the source's state() if it has one), so that a run resumed
      with resume_state() continues bit for bit (darknet_rnn.checkpoint).
    best_of(step) -> float or None: a figure to minimise (a validation
      loss); whenever a step's is lower than every earlier one (and than
      `best_so_far`, e.g. from the log of the run being resumed), the weights
      go to path_for("_best.weights") too.
    on_save(path, step, kind): after each periodic save, kind "keep",
      "backup" or "best"; on_signal(signum): at the first signal (default: a
      note on stderr).
    """

    def __init__(self, net, source, *, path_for: Callable[[str], str],
                 save_every=0, keep_every=0, max_batches=None, make_step=None,
                 hooks: Sequence[Hook] = (), resumed=False, clear=False,
                 log_path=None, log_columns=STEP_COLUMNS, writer=None,
                 handle_signals=True, save_state=False,
                 best_of: Optional[Callable[[Any], Any]] = None,
                 best_so_far: Optional[float] = None,
                 on_save: Optional[Callable[[str, Any, str], Any]] = None,
                 on_signal: Optional[Callable[[int], Any]] = _default_on_signal):
        for name, value in (("save_every", save_every), ("keep_every", keep_every)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
        if not callable(path_for):
            raise TypeError(f"path_for must be a function suffix -> path, got {path_for!r}")
        self.net = net
        self.source = source
        self.path_for = path_for
        self.save_every = save_every
        self.keep_every = keep_every
        self.max_batches = max_batches
        self.make_step = make_step
        self.hooks = tuple(hooks)
        self.clear = bool(clear)
        if self.clear:
            net.seen = 0
        self.append_log = bool(resumed) and not self.clear
        self.log_path = log_path
        self.log_columns = tuple(log_columns)
        self.collective = getattr(net, "world_size", 1) > 1
        if writer is None:
            writer = getattr(net, "rank", 0) == 0
        self.writer = bool(writer)
        self.handle_signals = handle_signals
        self.save_state = bool(save_state)
        self.on_save = on_save
        self.on_signal = on_signal
        self.best_of = best_of
        self.best = best_so_far
        self.best_path = None
        self.last = None
        self._stop = None
        self._log = None

    def _save(self, path):
        self.net.save_weights(path)
        # the sidecar holds one process's trajectory (its streams' offsets and
        # carried states): a distributed run resumes from the weights alone
        if self.save_state and not self.collective:
            state = getattr(self.source, "state", None)
            self.net.save_training_state(state_path(path), extra=state() if state else None)
        self._last_saved = (path, self.last.iteration if self.last is not None else None)
        return path

    def _diverged(self, err):
        """Name the last checkpoint this run wrote (all of them are finite:
        the guard stopped the run before anything non-finite was saved)."""
        saved = getattr(self, "_last_saved", None)
        err.checkpoint = saved[0] if saved else None
        if saved:
            note = f" Last finite checkpoint: {saved[0]} (iteration {saved[1]})."
        else:
            note = " This run wrote no checkpoint; nothing was saved."
        err.args = (str(err) + note,) + err.args[1:]
        return err

    def resume_state(self, weights_path):
        """Continue the trajectory saved beside `weights_path` (already loaded
        into the network): restores the sidecar if there is one and hands the
        source its saved state (set_state). Returns True if a sidecar was
        used. Not with clear (a cleared run starts a new trajectory)."""
        path = state_path(weights_path)
        if self.clear or self.collective or not os.path.exists(path):
            return False
        extra = self.net.load_training_state(path)
        set_state = getattr(self.source, "set_state", None)
        if set_state is not None:
            set_state(extra)
        return True

    def _after_step(self, step):
        self.last = step
        if self._log is not None:
            self._log.row(step)
        if self.writer or self.collective:
            it = step.iteration
            if self.keep_every and it % self.keep_every == 0:
                self._saved(self._save(self.path_for(keep_suffix(it))), step, "keep")
            if self.save_every and it % self.save_every == 0:
                self._saved(self._save(self.path_for(BACKUP)), step, "backup")
            value = self.best_of(step) if self.best_of is not None else None
            if value is not None and value == value and (self.best is None or value < self.best):
                self.best = float(value)
                self.best_path = self._save(self.path_for(BEST))
                self._saved(self.best_path, step, "best")
        return self.stop_requested

    @property
    def stop_requested(self):
        """True once a signal asked the running run to stop."""
        return self._stop is not None and self._stop.signum is not None

    def _saved(self, path, step, kind):
        if self.writer and self.on_save is not None:
            self.on_save(path, step, kind)

    def run(self) -> RunResult:
        """Train to max_batches or the first signal; save the final weights
        or a checkpoint (writer only). A second signal aborts without saving
        (RunResult.aborted)."""
        self.last = None
        if self.writer and self.log_path is not None:
            self._log = LossLog(self.log_path, self.log_columns, append=self.append_log)
        try:
            with StopFlag(self.on_signal, enabled=self.handle_signals) as stop:
                self._stop = stop
                try:
                    train_loop(self.net, self.source, max_batches=self.max_batches,
                               make_step=self.make_step,
                               hooks=(*self.hooks, self._after_step))
                except KeyboardInterrupt:
                    if self.collective:
                        raise
                    return RunResult(last=self.last, aborted=True, best=self.best,
                                     best_path=self.best_path)
                except DivergenceError as err:     # the guard: keep the finite checkpoints
                    raise self._diverged(err)
                suffix = FINAL if stop.signum is None else BACKUP
                path = (self._save(self.path_for(suffix)) if self.writer or self.collective
                        else None)
                return RunResult(last=self.last, saved=path, signum=stop.signum,
                                 best=self.best, best_path=self.best_path)
        finally:
            self._stop = None
            if self._log is not None:
                self._log.close()
                self._log = None
