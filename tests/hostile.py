"""Helpers shared by the reliability tests (issue 13): small cfgs, the
command line in a subprocess, and the checks that nothing was lost."""
import os
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SMALL = """[net]
batch={streams}
subdivisions=1
time_steps={steps}
inputs={inputs}
learning_rate={lr}
momentum=0.9
decay=0.001
max_batches={max_batches}
{net_extra}
[rnn]
output={hidden}
activation=leaky
{rnn_extra}
[connected]
output={outputs}
activation=linear

[softmax]
"""


def small_cfg(tmp_path, name="net.cfg", *, streams=4, steps=4, inputs=8, hidden=16, outputs=8,
              lr=0.05, max_batches=20, net_extra="", rnn_extra="", text=None):
    """Write a small char-RNN-like cfg (or `text`) and return its path."""
    p = tmp_path / name
    p.write_text(text if text is not None else SMALL.format(
        streams=streams, steps=steps, inputs=inputs, hidden=hidden, outputs=outputs, lr=lr,
        max_batches=max_batches, net_extra=net_extra, rnn_extra=rnn_extra))
    return p


def batch_for(net, seed=0):
    """A random (x, y) datum: uniform inputs, one-hot targets."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (net.time_steps, net.streams, net.inputs)).astype(np.float32)
    y = np.eye(net.outputs, dtype=np.float32)[rng.integers(0, net.outputs,
                                                           (net.time_steps, net.streams))]
    return x, y


def weights_of(net):
    """Every saved array of the network, concatenated (a copy)."""
    out = []
    for e in net._entries():
        for b in e.blocks:
            for name in ("biases", "weights", "scales", "rolling_mean", "rolling_variance"):
                a = getattr(b, name, None)
                if a is not None:
                    out.append(np.asarray(a, dtype=np.float64).reshape(-1))
    return np.concatenate(out)


def cli(*args, env=None, timeout=300, cwd=None, preexec_fn=None):
    """Run `python -m darknet_rnn ARGS` with this tree on the path."""
    e = dict(os.environ)
    e["PYTHONPATH"] = ROOT + os.pathsep + e.get("PYTHONPATH", "")
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "darknet_rnn", *map(str, args)],
                          capture_output=True, timeout=timeout, env=e, cwd=cwd or ROOT,
                          preexec_fn=preexec_fn)


def one_line_error(proc):
    """The CLI's promise: stderr ends with exactly one 'darknet-rnn: error:'
    line and no traceback. Returns that line."""
    err = proc.stderr.decode(errors="replace")
    assert "Traceback" not in err, err
    lines = [l for l in err.splitlines() if l.startswith("darknet-rnn: error:")]
    assert len(lines) == 1, err
    assert err.rstrip().splitlines()[-1] == lines[0], err
    return lines[0]


def stray_temporaries(directory):
    """Temporary files an atomic save left behind (.<name>.*.tmp)."""
    return sorted(f for f in os.listdir(directory) if f.startswith(".") and f.endswith(".tmp"))
