"""Inference precision (darknet_rnn.packed): fp32-packed and bf16 copies of
the weights agree with fp32 inference to stated tolerances, follow weight
loads and updates, and never touch the reference kernel or training."""
import numpy as np
import pytest

import darknet_rnn
from darknet_rnn._ffi import available_kernels
from darknet_rnn.packed import bf16_native
from conftest import assert_bitwise, assert_close

FAST = [k for k in available_kernels() if k != "reference"]


def cfg(tmp_path, streams, hidden=40, bn=1):
    p = tmp_path / "gen.cfg"
    p.write_text(f"[net]\ninputs=16\nbatch={streams}\nsubdivisions=1\ntime_steps=1\n"
                 "learning_rate=0.1\nmomentum=0.9\ndecay=0.001\n\n"
                 + f"[rnn]\nbatch_normalize={bn}\noutput={hidden}\nactivation=leaky\n\n" * 2
                 + "[connected]\noutput=16\nactivation=leaky\n\n[softmax]\n")
    return p


def load(path, **kw):
    """A network with realistic batch-norm statistics (a fresh one has
    rolling variance 0: outputs of 1e6 and more, overflowing bf16)."""
    net = darknet_rnn.load_network(path, **kw)
    for layer in net.layers:
        for sub in getattr(layer, "sublayers", (layer,)):
            if getattr(sub, "rolling_variance", None) is not None:
                sub.rolling_variance[...] = 1
    return net


def run(net, n=6, seed=0):
    rng = np.random.default_rng(seed)
    x = np.eye(net.inputs, dtype=np.float32)[rng.integers(0, net.inputs, (n, net.streams))]
    return np.stack([net.predict(x[t].reshape(1, net.streams, -1) if net.streams > 1 else x[t])
                     for t in range(n)])


@pytest.mark.parametrize("kernel", FAST)
@pytest.mark.parametrize("streams", [1, 3, 9])
@pytest.mark.parametrize("bn", [0, 1])
def test_packed_and_bf16_agree_with_fp32(tmp_path, kernel, streams, bn):
    path = cfg(tmp_path, streams, bn=bn)
    ref = run(load(path, seed=5, kernel=kernel))
    packed = run(load(path, seed=5, kernel=kernel, precision="fp32-packed"))
    bf16 = run(load(path, seed=5, kernel=kernel, precision="bf16"))
    # fp32-packed only reorders float sums (the fast path's band)
    assert_close(packed, ref, "fp32-packed", rtol=1e-5, atol=1e-6)
    # bf16: weights and the inputs of each product rounded to 8 bits of
    # mantissa; probabilities move by a few 1e-3 at most over six steps
    assert np.max(np.abs(bf16 - ref)) < 5e-3
    assert not np.array_equal(bf16, ref)


def test_bf16_follows_loads_and_updates(tmp_path):
    path = cfg(tmp_path, 3)
    a = load(path, seed=5, precision="bf16")
    b = load(path, seed=6, precision="bf16")
    w = tmp_path / "a.weights"
    a.save_weights(w)
    b.load_weights(w)                       # the copies are remade from the loaded weights
    assert_bitwise(run(b), run(a), "bf16 after load_weights")
    a.layers[0].self_layer.weights[...] *= 0.5   # by hand: needs pack_weights()
    before = run(a, seed=1)
    a.reset_state()
    a.pack_weights()
    assert not np.array_equal(run(a, seed=1), before)


@pytest.mark.parametrize("kind", ["rnn", "gru", "lstm"])
def test_training_ignores_precision(tmp_path, kind):
    if kind == "rnn":
        path = tmp_path / "t.cfg"
        path.write_text(cfg(tmp_path, 4).read_text().replace("time_steps=1", "time_steps=3"))
    else:       # the gated layers train (a backward at all) with exact=True
        path = gated_cfg(tmp_path, kind, 4, steps=3)
    nets = [darknet_rnn.load_network(path, seed=2, precision=p, exact=kind != "rnn")
            for p in ("fp32", "bf16")]
    rng = np.random.default_rng(0)
    x = np.eye(16, dtype=np.float32)[rng.integers(0, 16, (3, 4))]
    y = np.eye(16, dtype=np.float32)[rng.integers(0, 16, (3, 4))]
    losses = [n.train(x, y) for n in nets]
    assert losses[0] == losses[1]
    assert_bitwise(nets[1].output, nets[0].output, "training output")


def test_precision_needs_a_fast_native_kernel(tmp_path):
    path = cfg(tmp_path, 1)
    with pytest.raises(ValueError, match="fast kernel"):
        darknet_rnn.load_network(path, seed=1, kernel="reference", precision="bf16")
    with pytest.raises(ValueError, match="backend='native'"):
        darknet_rnn.load_network(path, seed=1, backend="reference", precision="bf16")
    with pytest.raises(ValueError, match="precision must be"):
        darknet_rnn.load_network(path, seed=1, precision="fp16")


def test_bf16_reports_its_implementation():
    """bf16_native() is True exactly when the CPU has the AVX-512 features
    vdpbf16ps needs (as Linux lists them in /proc/cpuinfo)."""
    native = bf16_native()
    assert isinstance(native, bool)
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((l.split(":", 1)[1].split() for l in f if l.startswith("flags")), None)
    except OSError:
        flags = None
    if flags is not None:
        want = all(x in flags for x in ("avx512f", "avx512bw", "avx512vl", "avx512_bf16"))
        assert native == want


@pytest.mark.parametrize("kernel", FAST)
@pytest.mark.parametrize("kind", ["f32", "bf16"])
@pytest.mark.parametrize("m,n,k", [(1, 37, 50), (5, 300, 257), (32, 520, 1030), (40, 64, 3)])
def test_gemm_wpack_against_float64(kernel, kind, m, n, k):
    from darknet_rnn import _ffi
    from darknet_rnn._ffi import fptr, lib
    from darknet_rnn.packed import Packs
    rng = np.random.default_rng(m + n + k)
    a = rng.standard_normal((m, k)).astype(np.float32)
    w = rng.standard_normal((n, k)).astype(np.float32)
    c0 = rng.standard_normal((m, n)).astype(np.float32)
    outs = []
    for threads in (1, 2):
        ctx = _ffi.Context(kernel, threads)
        p = Packs(lib.DN_WPACK_F32 if kind == "f32" else lib.DN_WPACK_BF16, ctx.kernel, [(n, k)])
        p.fill([w])
        c = c0.copy()
        _ffi.check(lib.dn_gemm_wpack(ctx.ptr, m, fptr(a), k, p.ptr, 0.5, fptr(c), n), "wpack")
        outs.append(c)
    if kind == "f32":
        want, tol = a.astype(np.float64) @ w.T + 0.5 * c0, 1e-5 * k
    else:   # the bf16-rounded operands, summed exactly
        bf = lambda x: (x.view(np.uint32) + 0x7FFF + ((x.view(np.uint32) >> 16) & 1)  # noqa: E731
                        ).astype(np.uint32) & 0xFFFF0000
        want = bf(a).view(np.float32).astype(np.float64) @ bf(w).view(np.float32).T + 0.5 * c0
        tol = 1e-5 * k
    assert np.max(np.abs(outs[0] - want)) <= tol
    assert_bitwise(outs[1], outs[0], "threads 1 vs 2")


# --------------------------------------------------------------------------
# [gru] and [lstm]: the same precisions (csrc/gated_wp.c)

def gated_cfg(tmp_path, kind, streams, bn=1, hidden=40, steps=1):
    p = tmp_path / f"{kind}.cfg"
    p.write_text(f"[net]\ninputs=16\nbatch={streams}\nsubdivisions=1\ntime_steps={steps}\n"
                 "learning_rate=0.1\nmomentum=0.9\ndecay=0.001\n\n"
                 + f"[{kind}]\nbatch_normalize={bn}\noutput={hidden}\n\n" * 2
                 + "[connected]\noutput=16\nactivation=leaky\n\n[softmax]\n")
    return p


@pytest.mark.parametrize("kernel", FAST)
@pytest.mark.parametrize("kind", ["gru", "lstm"])
@pytest.mark.parametrize("streams,bn", [(1, 1), (9, 1), (9, 0)])
def test_gated_layers_packed_and_bf16_agree_with_fp32(tmp_path, kernel, kind, streams, bn):
    import warnings
    path = gated_cfg(tmp_path, kind, streams, bn=bn)
    ref = run(load(path, seed=5, kernel=kernel))
    with warnings.catch_warnings():
        warnings.simplefilter("error")      # no "has no bf16 path" fallback any more
        packed_net = load(path, seed=5, kernel=kernel, precision="fp32-packed")
        bf16_net = load(path, seed=5, kernel=kernel, precision="bf16")
    gated = [l for l in bf16_net.layers if l.type == kind]
    assert len(gated) == 2 and all(l._packs is not None for l in gated)
    assert all(l.precision == "bf16" for l in gated)
    packed, bf16 = run(packed_net), run(bf16_net)
    assert_close(packed, ref, "fp32-packed", rtol=1e-5, atol=1e-6)
    assert np.max(np.abs(bf16 - ref)) < 5e-3
    assert not np.array_equal(bf16, ref)


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_gated_bf16_follows_loads_and_steps_like_fp32(tmp_path, kind):
    """Several time steps per call (the input sublayers over all rows at
    once), the state carried across calls, and weights loaded afterwards."""
    path = gated_cfg(tmp_path, kind, 3, steps=4)
    a = load(path, seed=5, precision="bf16")
    b = load(path, seed=6, precision="bf16")
    w = tmp_path / "a.weights"
    a.save_weights(w)
    b.load_weights(w)
    rng = np.random.default_rng(2)
    x = np.eye(16, dtype=np.float32)[rng.integers(0, 16, (4, 3))]
    outs = [np.asarray(n.predict(x)).copy() for n in (a, b, a, b)]
    assert_bitwise(outs[1], outs[0], "bf16 after load_weights")
    assert_bitwise(outs[3], outs[2], "second call, carried state")
    fp32 = load(path, seed=5)
    want = [np.asarray(fp32.predict(x)).copy() for _ in range(2)]
    assert np.max(np.abs(outs[0] - want[0])) < 5e-3 and np.max(np.abs(outs[2] - want[1])) < 5e-3


@pytest.mark.parametrize("kernel", FAST)
def test_bidirectional_rnn_packed_and_bf16_agree_with_fp32(tmp_path, kernel):
    import warnings
    p = tmp_path / "bi.cfg"
    p.write_text("[net]\ninputs=16\nbatch=9\nsubdivisions=1\ntime_steps=5\n\n"
                 "[rnn]\nbatch_normalize=1\noutput=24\nactivation=leaky\nbidirectional=1\n\n"
                 "[connected]\noutput=16\nactivation=leaky\n\n[softmax]\n")
    rng = np.random.default_rng(4)
    x = np.eye(16, dtype=np.float32)[rng.integers(0, 16, (5, 9))]
    outs = {}
    for prec in ("fp32", "fp32-packed", "bf16"):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            net = load(p, seed=5, kernel=kernel, precision=prec)
        assert net.layers[0].precision == prec
        outs[prec] = np.asarray(net.infer(x)).copy()
    assert_close(outs["fp32-packed"], outs["fp32"], "fp32-packed", rtol=1e-5, atol=1e-6)
    assert np.max(np.abs(outs["bf16"] - outs["fp32"])) < 5e-3
    assert not np.array_equal(outs["bf16"], outs["fp32"])
