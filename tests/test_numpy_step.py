"""The bench's expert NumPy step (darknet_rnn/bench/numpy_step.py) trains the
benchmark's network as the C core does: same loss, output and parameters as
the native reference kernel over several datums, within the fast path's
band (it only reorders float sums). With batch norm over a few streams
rounding differences are amplified by training (the C fast kernels diverge
from the reference kernel the same way), so there only the first datum is
compared, as tests/test_fast_path.py does."""
import numpy as np
import pytest

import darknet_rnn
from darknet_rnn.bench.numpy_step import NumpyStep
from conftest import assert_close


def cfg(tmp_path, bn=1, act="leaky", steps=5, streams=4, hidden=12):
    rnn = f"[rnn]\nbatch_normalize={bn}\noutput={hidden}\nactivation={act}\n\n" * 2
    p = tmp_path / "net.cfg"
    p.write_text(f"[net]\ninputs=7\nbatch={streams}\nsubdivisions=1\ntime_steps={steps}\n"
                 "learning_rate=0.1\nmomentum=0.9\ndecay=0.001\nmax_batches=100\n\n"
                 f"{rnn}[connected]\noutput=6\nactivation=leaky\n\n[softmax]\n")
    return p


@pytest.mark.parametrize("bn,act", [(1, "leaky"), (0, "tanh"), (1, "logistic"), (0, "relu")])
def test_expert_step_trains_like_the_reference_kernel(tmp_path, bn, act):
    path = cfg(tmp_path, bn, act)
    ref = darknet_rnn.load_network(path, seed=3, kernel="reference")
    step = NumpyStep(darknet_rnn.load_network(path, seed=3, kernel="reference"))
    rng = np.random.default_rng(0)
    for datum in range(1 if bn else 3):
        x = np.eye(7, dtype=np.float32)[rng.integers(0, 7, (ref.time_steps, ref.streams))]
        y = np.eye(6, dtype=np.float32)[rng.integers(0, 6, (ref.time_steps, ref.streams))]
        lr, ls = ref.train(x, y), step.train(x, y)
        assert abs(lr - ls) <= 1e-4 * abs(lr) + 1e-5, (datum, lr, ls)
        assert_close(step.output, ref.output, f"output {datum}", rtol=1e-4, atol=1e-5)
    mine = [a for subs, _, _ in step.rnn for s in subs for a in (s.W, s.b)] + [step.conn.W]
    theirs = [a for l in ref.layers[:-2] for s in l.sublayers for a in (s.weights, s.biases)]
    theirs.append(ref.layers[-2].weights)
    for k, (a, b) in enumerate(zip(mine, theirs)):
        assert_close(a, b, f"param {k}", rtol=1e-4, atol=1e-5)


def test_expert_step_refuses_what_it_does_not_implement(tmp_path):
    net = darknet_rnn.load_network(cfg(tmp_path), seed=1, exact=True)
    with pytest.raises(NotImplementedError):
        NumpyStep(net)
