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


# --------------------------------------------------------------------------
# the bench's "native GEMMs only" row (darknet_rnn/bench/native_gemms.py)

def test_native_gemms_row_computes_the_steps_products():
    """Each product has the shape, transposes, leading dimensions and beta of
    the step's: checked against float64 NumPy on the operands it was given."""
    from darknet_rnn.bench.native_gemms import NativeGemms
    sh = dict(hidden=24, rnn_layers=2, streams=4, steps=3, inputs=16, conn=8)
    g = NativeGemms(sh, 1)
    f64 = lambda a: np.asarray(a, np.float64)              # noqa: E731
    T, B, H = 3, 4, 24
    before = {id(d): {k: f64(d[k]).copy() for k in ("dy", "dWs", "dWin", "dWo")}
              for d in g.layers}
    dWc0 = f64(g.dWc).copy()
    g()
    inp = f64(g.x)
    for d in g.layers:
        st = f64(d["state"])
        assert_close(d["a"], inp @ f64(d["Win"]).T, "input sublayer", rtol=1e-5, atol=1e-6)
        for t in range(T):
            assert_close(d["b"][t * B:(t + 1) * B], st[t] @ f64(d["Ws"]).T, "self step",
                         rtol=1e-5, atol=1e-6)
        assert_close(d["y"], st[1:].reshape(T * B, H) @ f64(d["Wo"]).T, "output sublayer",
                     rtol=1e-5, atol=1e-6)
        inp = f64(d["y"])
    assert_close(g.z, inp @ f64(g.Wc).T, "connected", rtol=1e-5, atol=1e-6)
    assert_close(g.dWc, dWc0 + f64(g.dz).T @ inp, "connected dW", rtol=1e-5, atol=1e-6)
    top = g.layers[-1]
    assert_close(top["dy"], before[id(top)]["dy"] + f64(g.dz) @ f64(g.Wc), "delta into top",
                 rtol=1e-5, atol=1e-6)
    for li in range(len(g.layers) - 1, -1, -1):
        d = g.layers[li]
        old, st = before[id(d)], f64(d["state"])
        ds = f64(d["dy"]) @ f64(d["Wo"])
        for t in range(T - 1, 0, -1):
            ds[(t - 1) * B:t * B] += ds[t * B:(t + 1) * B] @ f64(d["Ws"])
        assert_close(d["ds"], ds, "self deltas", rtol=1e-4, atol=1e-6)
        assert_close(d["dWs"], old["dWs"] + f64(d["ds"]).T @ st[:T].reshape(T * B, H), "dW self",
                     rtol=1e-5, atol=1e-6)
        below = g.x if li == 0 else g.layers[li - 1]["y"]
        assert_close(d["dWin"], old["dWin"] + f64(d["din"]).T @ f64(below), "dW in",
                     rtol=1e-5, atol=1e-6)
        assert_close(d["dWo"], old["dWo"] + f64(d["dy"]).T @ st[1:].reshape(T * B, H),
                     "dW out", rtol=1e-5, atol=1e-6)
    low = g.layers[0]
    assert_close(low["dy"], before[id(low)]["dy"] + f64(g.layers[1]["din"]) @ f64(g.layers[1]["Win"]),
                 "delta into the layer below", rtol=1e-5, atol=1e-6)
