"""Plots, drawn with matplotlib - an optional dependency (`pip install
"darknet_rnn[plot]"`); without it every function here raises
PlotUnavailable, whose message says how to install it.

* `plot_loss_log(csv, png)`: Darknet's training loss (moving average) and
  the evaluations of the training and held-back text against the iteration,
  from the loss log `darknet-rnn train` writes;
* `bar_chart(png, bars, title)`: horizontal bars (`darknet-rnn bench --plot`).

Files are written atomically (a temporary file renamed over the target).
"""
import csv
import math
import re
import os

from .errors import DarknetError

__all__ = ["PlotUnavailable", "MISSING", "available", "plot_loss_log", "bar_chart"]

MISSING = ('plotting needs matplotlib, which is not installed: pip install '
           '"darknet_rnn[plot]" (or pip install matplotlib)')


class PlotUnavailable(DarknetError, ImportError):
    """matplotlib is not installed."""


def _pyplot():
    try:
        import matplotlib
        matplotlib.use("Agg")               # files only, no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        raise PlotUnavailable(MISSING) from None
    return plt


def available() -> bool:
    """True if matplotlib can be imported."""
    try:
        _pyplot()
    except PlotUnavailable:
        return False
    return True


def _save(fig, path):
    path = os.fspath(path)
    base, ext = os.path.splitext(path)
    tmp = f"{base}.tmp{ext or '.png'}"
    try:
        fig.savefig(tmp, dpi=100)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _number(row, key):
    try:
        v = float(row.get(key) or "nan")
    except ValueError:
        return math.nan
    return v


def read_loss_log(csv_path):
    """Columns of a loss log as lists: iteration, avg_loss, train_eval,
    valid_eval (NaN where a row has none) and the evaluation unit."""
    cols = {"iteration": [], "avg_loss": [], "train_eval": [], "valid_eval": [],
            "grad_norm": []}
    state = {}                     # layer -> {step: [norm per row]} (--grad-stats)
    unit = ""
    with open(csv_path, newline="") as f:
        for row in csv.DictReader(f):
            try:
                it = int(row["iteration"])
            except (KeyError, TypeError, ValueError):
                continue
            cols["iteration"].append(it)
            for key in ("avg_loss", "train_eval", "valid_eval", "grad_norm"):
                cols[key].append(_number(row, key))
            for key in row:
                m = _STATE_GRAD.match(key or "")
                if m:
                    steps = state.setdefault(int(m.group(1)), {})
                    steps.setdefault(int(m.group(2)), []).append(_number(row, key))
            unit = row.get("eval_unit") or unit
    cols["unit"] = unit
    # state_grad[layer]: rows (iterations) x time steps
    cols["state_grad"] = {layer: [list(r) for r in zip(*(steps[t] for t in sorted(steps)))]
                          for layer, steps in sorted(state.items())}
    return cols


_STATE_GRAD = re.compile(r"^state_grad_L(\d+)_t(\d+)$")


def _gradient_panel(ax, c):
    """Per recurrent layer, the norm of the gradient reaching each time
    step's state: early, middle and last logged iterations, log scale."""
    for layer, rows in c["state_grad"].items():
        picks = sorted({0, len(rows) // 2, len(rows) - 1})
        for k, i in enumerate(picks):
            ax.semilogy(range(len(rows[i])), rows[i], marker=".", alpha=0.4 + 0.3 * k,
                        label=f"layer {layer}, iteration {c['iteration'][i]}")
    ax.set_xlabel("time step t (loss at every step; gradient flows from right to left)")
    ax.set_ylabel("|dL/dh_t| over the batch")
    ax.set_title("gradient reaching each step's state")
    ax.grid(True, alpha=0.3, which="both")
    ax.legend(fontsize="x-small")


def plot_loss_log(csv_path, png_path, title=""):
    """Write the loss-log plot; returns png_path."""
    plt = _pyplot()
    c = read_loss_log(csv_path)
    unit = c["unit"]
    bits = unit.startswith("bits") or unit == "bpc"
    # Darknet's loss of a softmax head is in nats; shown in bits beside bit figures
    avg = [v / math.log(2) if bits else v for v in c["avg_loss"]]
    grads = bool(c["state_grad"])
    if grads:
        fig, (ax, gax) = plt.subplots(2, 1, figsize=(8, 8.5))
    else:
        fig, ax = plt.subplots(figsize=(8, 4.5))
    try:
        if grads:
            _gradient_panel(gax, c)
        ax.plot(c["iteration"], avg, color="0.6", linewidth=1,
                label="training loss (Darknet's, moving average; training mode)")
        for key, label, color in (("train_eval", "training text (evaluation)", "tab:blue"),
                                  ("valid_eval", "held-back text (validation)", "tab:red")):
            pts = [(i, v) for i, v in zip(c["iteration"], c[key]) if not math.isnan(v)]
            if pts:
                xs, ys = zip(*pts)
                ax.plot(xs, ys, marker="o", markersize=3, color=color, label=label)
        ax.set_xlabel("iteration")
        ax.set_ylabel(unit or "loss per character")
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
        fig.tight_layout()
        _save(fig, png_path)
    finally:
        plt.close(fig)
    return png_path


def bar_chart(png_path, bars, title="", xlabel=""):
    """Horizontal bars, one per (label, value), top to bottom; returns png_path."""
    plt = _pyplot()
    labels = [b[0] for b in bars]
    values = [b[1] for b in bars]
    fig, ax = plt.subplots(figsize=(8, 0.4 * len(bars) + 1.2))
    try:
        ax.barh(range(len(bars)), values, color="tab:blue")
        ax.set_yticks(range(len(bars)), labels)
        ax.invert_yaxis()
        for i, v in enumerate(values):
            ax.text(v, i, f" {v:.3g}", va="center", fontsize="small")
        ax.set_xlabel(xlabel)
        ax.set_title(title)
        fig.tight_layout()
        _save(fig, png_path)
    finally:
        plt.close(fig)
    return png_path
