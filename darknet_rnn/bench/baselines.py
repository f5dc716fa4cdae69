"""Bench sections against honest yardsticks (run by runner.child, printed by
runner.report):

* training at hidden 512 and 1024: the native fast path against the expert
  NumPy step (numpy_step.py; its matmuls alone as a row too, and the native
  step's GEMMs alone: native_gemms.py) and PyTorch
  (torch_baseline.py, when torch imports; a note otherwise);
* generation at hidden 1024, 1 and 32 streams: native fp32, fp32-packed and
  bf16 inference weights, and PyTorch;
* a scaling table (hidden x steps x streams) of native against the expert
  NumPy step;
* across the child runs, a thread sweep of the native training step.

Every implementation is checked against the native one on the first call
from the same weights before anything is timed.
"""
import os
import tempfile
import warnings

from .native_gemms import NativeGemms
from .runner import (GEN_LAYERS, QUICK_GEN, QUICK_TRAIN, TRAIN_LAYERS, _fmt_t, _interleaved,
                     _stats, char_cfg, gen_weight_bytes, train_flops)

SCALING = [(h, t, s) for h in (256, 512, 1024) for (t, s) in ((64, 32), (16, 32), (64, 8))]


def _load(shape, streams=None, steps=None, **kw):
    from ..network import load_network
    sh = dict(shape)
    if streams is not None:
        sh.update(streams=streams, steps=steps)
    cfg = tempfile.NamedTemporaryFile("w", suffix=".cfg", delete=False)
    cfg.write(char_cfg(**sh))
    cfg.close()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return load_network(cfg.name, **kw)
    finally:
        os.unlink(cfg.name)


def _data(shape):
    import numpy as np
    rng = np.random.default_rng(0)
    T, B, I = shape["steps"], shape["streams"], shape["inputs"]
    x = np.eye(I, dtype=np.float32)[rng.integers(0, I, (T, B))]
    y = np.eye(shape["conn"], dtype=np.float32)[rng.integers(0, shape["conn"], (T, B))]
    return x, y


def _train_impls(shape, threads, with_torch):
    from .numpy_step import NumpyStep
    from .torch_baseline import TorchNet
    impls = {"native": _load(shape, seed=1, kernel="auto", threads=threads)}
    impls["numpy-expert"] = NumpyStep(_load(shape, seed=1, kernel="auto"))
    if with_torch:
        impls["torch"] = TorchNet(_load(shape, seed=1), threads)
    return impls


def train_section(threads, rounds, shape, with_torch):
    x, y = _data(shape)
    impls = _train_impls(shape, threads, with_torch)
    losses = {k: n.train(x, y) for k, n in impls.items()}
    agree = {k: abs(v - losses["native"]) / abs(losses["native"]) for k, v in losses.items()}
    for k, v in agree.items():
        if not v < 1e-3:
            raise RuntimeError(f"training step: {k} loss {losses[k]} vs native {losses['native']}")
    step = impls["numpy-expert"]
    fns = {k: (lambda n=n: n.train(x, y)) for k, n in impls.items()}
    fns["numpy GEMMs only"] = lambda: step.gemm_only(x)
    fns["native GEMMs only"] = NativeGemms(shape, threads)
    t = _interleaved(fns, rounds)
    flops = train_flops(**shape)
    return {"shape": shape, "gflop": flops / 1e9, "first_loss_rel_diff": agree,
            "results": {k: _stats(v, flops) for k, v in t.items()}}


def gen_section(threads, rounds, shape, chars, streams_list, with_torch):
    import numpy as np

    from .torch_baseline import TorchNet
    weights = gen_weight_bytes(**shape) // 4
    results, agree = {}, {}
    for streams in streams_list:
        nets = {}
        precs = ("fp32", "fp32-packed", "bf16") if streams >= 8 else ("fp32", "bf16")
        for p in precs:
            nets[f"native {p}"] = _load(shape, streams, 1, seed=2, kernel="auto",
                                        threads=threads, precision=p)
        for n in nets.values():                 # realistic BN statistics
            for l in n.layers:
                for sub in getattr(l, "sublayers", (l,)):
                    if getattr(sub, "rolling_variance", None) is not None:
                        sub.rolling_variance[...] = 1
            n.pack_weights()
        fns = {k: n.predict for k, n in nets.items()}
        if with_torch:
            fns["torch"] = TorchNet(nets["native fp32"], threads).generator(streams)
        I = shape["inputs"]
        eye = np.eye(I, dtype=np.float32)
        xs = [eye[(np.arange(streams) * 7 + i) % I].reshape(1, streams, I) if streams > 1
              else eye[i % I] for i in range(chars)]
        first = {k: np.asarray(f(xs[0])).reshape(-1) for k, f in fns.items()}
        for k, v in first.items():
            agree[f"{k}@{streams}"] = float(np.max(np.abs(v - first["native fp32"])))
            if not agree[f"{k}@{streams}"] < 1e-2:
                raise RuntimeError(f"generation: {k}@{streams} disagrees with native fp32")

        def run(f):
            def g():
                for x in xs:
                    f(x)
            return g
        t = _interleaved({k: run(f) for k, f in fns.items()}, rounds)
        for k, ts in t.items():
            st = _stats([s / chars for s in ts], 2.0 * weights * streams)
            st["chars_per_s"] = streams / st["median"]
            results[f"{k}@{streams}"] = st
    return {"shape": shape, "weight_bytes": weights * 4, "max_abs_diff_vs_fp32": agree,
            "results": results, "stream_floor": {"fp32": _stream_floor(weights * 4),
                                                  "bf16": _stream_floor(weights * 2)}}


def _stream_floor(nbytes):
    """Seconds for OpenBLAS's sgemv to read a float32 matrix of about
    nbytes once (best of 20; a working set of the weights' size, so in the
    same cache level as the weights of one generation call), and GB/s."""
    import numpy as np
    from .runner import _timeit
    cols = 1024
    m = np.ones((max(1, int(nbytes) // (4 * cols)), cols), np.float32)
    v = np.ones(cols, np.float32)
    m @ v
    t = min(_timeit(lambda: m @ v, 20))
    return {"bytes": m.nbytes, "seconds": t, "gb_per_s": m.nbytes / t / 1e9}


def scaling_section(threads, rounds, grid):
    out = []
    for hidden, steps, streams in grid:
        shape = dict(TRAIN_LAYERS, hidden=hidden, steps=steps, streams=streams)
        x, y = _data(shape)
        impls = _train_impls(shape, threads, False)
        for n in impls.values():
            n.train(x, y)
        t = _interleaved({k: (lambda n=n: n.train(x, y)) for k, n in impls.items()}, rounds)
        flops = train_flops(**shape)
        out.append({"hidden": hidden, "steps": steps, "streams": streams, "gflop": flops / 1e9,
                    "results": {k: _stats(v, flops) for k, v in t.items()}})
    return out


def run(threads, rounds, quick, chars):
    """The sections for one child (one thread count). --quick keeps a smoke
    run: one round of the small shapes, no PyTorch, no scaling table."""
    from .torch_baseline import torch_version
    out = {"torch": None, "torch_note": "", "train": [], "scaling_note": ""}
    if quick:
        out["torch_note"] = "skipped (--quick)"
        out["scaling_note"] = "skipped (--quick)"
        out["train"].append(train_section(threads, 1, QUICK_TRAIN, False))
        out["generate"] = gen_section(threads, 1, QUICK_GEN, 10, (1,), False)
        out["scaling"] = []
        return out
    tv = out["torch"] = torch_version()
    for sh in (TRAIN_LAYERS, dict(TRAIN_LAYERS, hidden=1024)):
        out["train"].append(train_section(threads, rounds, sh, tv is not None))
    out["generate"] = gen_section(threads, rounds, GEN_LAYERS, max(10, chars // 2), (1, 32),
                                  tv is not None)
    out["scaling"] = scaling_section(threads, max(2, rounds - 2), SCALING)
    return out


# --------------------------------------------------------------------------
# report


_t = _fmt_t


def report_lines(r):
    b = r.get("baselines")
    if not b:
        return []
    peak = r["peak_gflops"]
    torch = b.get("torch_note") or b["torch"] or "not importable: rows skipped"
    L = [f"Against the yardsticks ({r['threads']} thread(s); PyTorch {torch}; numpy-expert = "
         "darknet_rnn/bench/numpy_step.py):", ""]
    for tr in b["train"]:
        sh = tr["shape"]
        L.append(f"Training step, {sh['rnn_layers']}×[rnn] {sh['hidden']} BN leaky + [connected] "
                 f"{sh['conn']} + [softmax], {sh['streams']} streams × {sh['steps']} steps "
                 f"({tr['gflop']:.2f} GFLOP):")
        L.append("")
        L.append("| implementation | median | min | max | GFLOP/s | % peak | time / numpy-expert |")
        L.append("|---|---|---|---|---|---|---|")
        ref = tr["results"]["numpy-expert"]["median"]
        for k, s in tr["results"].items():
            L.append(f"| {k} | {_t(s['median'])} | {_t(s['min'])} | {_t(s['max'])} | "
                     f"{s['gflops']:.1f} | {100 * s['gflops'] / peak:.0f}% | "
                     f"{s['median'] / ref:.2f} |")
        L.append("")
    g = b["generate"]
    sh = g["shape"]
    L.append(f"Generation, {sh['rnn_layers']}×[rnn] {sh['hidden']} + [connected] {sh['conn']}, "
             f"one byte per stream per call ({g['weight_bytes'] / 1e6:.1f} MB of fp32 weights):")
    L.append("")
    L.append("| implementation@streams | median per call | chars/s | GFLOP/s | % peak | "
             "time / native fp32 | max abs diff vs fp32 |")
    L.append("|---|---|---|---|---|---|---|")
    for k, s in g["results"].items():
        st = k.split("@")[1]
        base = g["results"][f"native fp32@{st}"]["median"]
        L.append(f"| {k} | {_t(s['median'])} | {s['chars_per_s']:.0f} | {s['gflops']:.1f} | "
                 f"{100 * s['gflops'] / peak:.0f}% | {s['median'] / base:.2f} | "
                 f"{g['max_abs_diff_vs_fp32'][k]:.1e} |")
    L.append("")
    fl = g.get("stream_floor")
    if fl and "native fp32@1" in g["results"] and "native bf16@1" in g["results"]:
        f32, b16 = fl["fp32"], fl["bf16"]
        t32, t16 = g["results"]["native fp32@1"]["median"], g["results"]["native bf16@1"]["median"]
        L.append(f"Streaming floor at 1 stream (OpenBLAS sgemv reading as many bytes, a working set "
                 f"of the same size): fp32's {f32['bytes'] / 1e6:.1f} MB in {_t(f32['seconds'])} "
                 f"({f32['gb_per_s']:.1f} GB/s), bf16's {b16['bytes'] / 1e6:.1f} MB in "
                 f"{_t(b16['seconds'])} ({b16['gb_per_s']:.1f} GB/s): floor ratio bf16/fp32 "
                 f"{b16['seconds'] / f32['seconds']:.2f}; measured bf16@1/fp32@1 {t16 / t32:.2f}; "
                 f"native fp32@1 takes {t32 / f32['seconds']:.2f}× its floor, bf16@1 "
                 f"{t16 / b16['seconds']:.2f}×.")
        L.append("")
    if b.get("scaling_note"):
        return L + [f"Scaling table: {b['scaling_note']}.", ""]
    L.append("Scaling (training step; native against numpy-expert):")
    L.append("")
    L.append("| hidden | steps | streams | GFLOP | native | numpy-expert | native / expert | "
             "native % peak |")
    L.append("|---|---|---|---|---|---|---|---|")
    for row in b["scaling"]:
        n, e = row["results"]["native"], row["results"]["numpy-expert"]
        L.append(f"| {row['hidden']} | {row['steps']} | {row['streams']} | {row['gflop']:.2f} | "
                 f"{_t(n['median'])} | {_t(e['median'])} | {n['median'] / e['median']:.2f} | "
                 f"{100 * n['gflops'] / peak:.0f}% |")
    L.append("")
    return L


def sweep_lines(runs):
    """Native training (hidden 512) per thread count, across the children."""
    rows = [(r["threads"], r["baselines"]["train"][0]["results"]["native"]["median"])
            for r in runs if r.get("baselines")]
    if len(rows) < 2:
        return []
    one = dict(rows).get(1, rows[0][1])
    L = ["Thread sweep, native training step (first shape above):", "",
         "| threads | median | speed-up over 1 thread |", "|---|---|---|"]
    L += [f"| {t} | {_t(m)} | {one / m:.2f}× |" for t, m in rows]
    return L + [""]
