"""What `darknet-rnn train` shows while it runs.

Modes: "lines" (Darknet's loss line per iteration, and a line when an
evaluation starts and ends), "bar" (one self-updating status line for
terminals, showing the evaluation's progress while it runs), "none" (quiet:
nothing at all; errors and the interrupt note still go to stderr).

The ETA counts both the iterations left (at the measured seconds per
iteration) and the evaluations left (at the duration of the last one; before
the first, an estimate from the iteration time: an evaluation call is a
forward pass, about 0.45 of a training iteration).
"""
import shutil
import sys
import time

FORWARD_SHARE = 0.45       # a predict call / a training iteration, for the first ETA


def clock(seconds):
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    """Per-iteration display and the listener of a charrnn.monitor.Monitor."""

    def __init__(self, mode, stream=None, symbol="character"):
        self.stream = stream or sys.stdout
        if mode == "auto":
            mode = "bar" if self.stream.isatty() else "lines"
        self.mode = mode
        self.symbol = symbol
        self.monitor = None          # set by the caller (for the ETA)
        self.subdivisions = 1
        self._shown = False
        self._last_draw = 0.0
        self._iter_seconds = 0.0
        self._iters = 0
        self._last = None            # the last step
        self._eval_text = ""         # the latest evaluation, for the bar
        self._eval_t0 = None

    # ---- ETA -------------------------------------------------------------
    def per_iteration(self):
        return self._iter_seconds / self._iters if self._iters else 0.0

    def eta(self, s):
        iters_left = max(0, s.max_batches - s.batch_number) * self.subdivisions
        t = iters_left * self.per_iteration()
        m = self.monitor
        if m is not None:
            n = m.remaining(s.iteration, s.iteration + iters_left)
            per_eval = (m.last_seconds if m.last_seconds is not None
                        else m.calls * FORWARD_SHARE * self.per_iteration())
            t += n * per_eval
        return t

    # ---- iterations ------------------------------------------------------
    def step(self, s):
        self._iter_seconds += s.seconds
        self._iters += 1
        self._last = s
        if self.mode == "lines":
            print(s.darknet_line(), file=self.stream, flush=True)
        elif self.mode == "bar":
            now = time.perf_counter()
            if now - self._last_draw >= 0.1 or s.batch_number >= s.max_batches:
                self._last_draw = now
                self._draw(self._bar_text(s))

    def _bar_text(self, s, middle=None):
        frac = min(1.0, s.batch_number / s.max_batches) if s.max_batches else 1.0
        filled = int(round(frac * 12))
        per = self.per_iteration()
        rate = f"{1.0 / per:.1f} it/s" if per > 0 else "- it/s"
        middle = middle or (f"loss {s.avg_loss:.3f} lr {s.rate:g} {rate} ep {s.epochs:.2f}"
                            + (f" | {self._eval_text}" if self._eval_text else ""))
        return (f"[{'#' * filled}{'.' * (12 - filled)}] {s.batch_number}/{s.max_batches} "
                f"{middle} eta {clock(self.eta(s))}")

    def _draw(self, text):
        width = shutil.get_terminal_size((100, 20)).columns
        self.stream.write("\r" + text[:max(10, width - 1)] + "\x1b[K")
        self.stream.flush()
        self._shown = True

    # ---- evaluations (Monitor listener) ----------------------------------
    def eval_started(self, step, calls):
        self._eval_t0 = time.perf_counter()
        m = self.monitor
        if self.mode == "lines" and m is not None:
            held = (f" and {m.valid_sample.count} held back" if m.valid_sample else "")
            print(f"{step.iteration}: evaluating {m.train_sample.count} {self.symbol}s of the "
                  f"training text{held}...", file=self.stream, flush=True)

    def eval_progress(self, done, calls):
        if self.mode != "bar" or self._last is None:
            return
        now = time.perf_counter()
        if now - self._last_draw >= 0.1 or done == calls:
            self._last_draw = now
            took = now - (self._eval_t0 or now)
            self._draw(self._bar_text(self._last, f"evaluating {100 * done // calls}% "
                                                  f"({clock(took)})"))

    def eval_done(self, ev):
        u = ev.unit
        valid = f", validation {ev.valid:.4f}" if ev.valid is not None else ""
        self._eval_text = (f"train {ev.train:.3f}"
                           + (f" valid {ev.valid:.3f}" if ev.valid is not None else "")
                           + f" {u.short}")
        counts = (f"{ev.count} {self.symbol}s each" if ev.valid is None or
                  ev.valid_count == ev.count else f"{ev.count} and {ev.valid_count} {self.symbol}s")
        self.note(f"{ev.iteration}: {u.name}: training text {ev.train:.4f}{valid} "
                  f"({counts}, {ev.seconds:.1f} s)")

    def eval_interrupted(self, step):
        self.note(f"{step.iteration}: evaluation interrupted")

    # ---- notes -----------------------------------------------------------
    def note(self, msg):
        if self.mode == "none":
            return
        if self.mode == "bar" and self._shown:
            self.stream.write("\r\x1b[K")
            self._shown = False
            self._last_draw = 0.0
        print(msg, file=self.stream, flush=True)
        if self.mode == "bar" and self._last is not None:
            self._draw(self._bar_text(self._last))

    def close(self):
        if self.mode == "bar" and self._shown:
            self.stream.write("\n")
            self.stream.flush()
            self._shown = False
