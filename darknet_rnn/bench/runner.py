"""`darknet-rnn bench` / `python -m darknet_rnn bench`: speed of the native
fast path against the native reference path (Darknet's loops) and the
vectorised NumPy implementation (OpenBLAS), on Darknet's char-RNN shapes.

Each thread count runs in a child process whose environment pins
OMP_NUM_THREADS / OPENBLAS_NUM_THREADS before NumPy is imported and, unless
--keep-coretype, unsets OPENBLAS_CORETYPE so OpenBLAS uses its best kernels
(as on a user's machine). Implementations are checked to agree before they
are timed, then timed interleaved (round-robin blocks), and the table reports
median/min/max, GFLOP/s, % of the measured peak and ratios.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

TRAIN_LAYERS = dict(hidden=512, rnn_layers=3, streams=32, steps=64, inputs=256, conn=256)
GEN_LAYERS = dict(hidden=1024, rnn_layers=3, inputs=256, conn=256)
QUICK_TRAIN = dict(hidden=128, rnn_layers=2, streams=8, steps=16, inputs=256, conn=256)
QUICK_GEN = dict(hidden=256, rnn_layers=2, inputs=256, conn=256)


def char_cfg(hidden, rnn_layers, inputs, conn, streams=1, steps=1, **_):
    rnn = (f"[rnn]\nbatch_normalize=1\noutput={hidden}\nactivation=leaky\n\n") * rnn_layers
    return (f"[net]\ninputs={inputs}\nbatch={streams}\nsubdivisions=1\ntime_steps={steps}\n"
            f"learning_rate=0.1\nmomentum=0.9\ndecay=0.001\nmax_batches=100000\n\n"
            f"{rnn}[connected]\noutput={conn}\nactivation=leaky\n\n[softmax]\n")


def train_flops(hidden, rnn_layers, streams, steps, inputs, conn, **_):
    """FLOPs of one training step's GEMMs (forward, weight gradients, input deltas)."""
    rows = streams * steps
    total, i = 0, inputs
    for layer in range(rnn_layers):
        fwd = 2 * rows * (i * hidden + 2 * hidden * hidden)
        delta = 2 * rows * (2 * hidden * hidden) + (2 * rows * i * hidden if layer else 0)
        total += 2 * fwd + delta
        i = hidden
    total += 3 * 2 * rows * i * conn
    return total


def gen_weight_bytes(hidden, rnn_layers, inputs, conn, **_):
    n, i = 0, inputs
    for _ in range(rnn_layers):
        n += i * hidden + 2 * hidden * hidden
        i = hidden
    return 4 * (n + i * conn)


# --------------------------------------------------------------------------
# child: runs in a pinned environment


def _timeit(fn, reps):
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


PAUSE = 0.15       # seconds between timed blocks (see _interleaved); --quick: QUICK_PAUSE
QUICK_PAUSE = 0.01


def _interleaved(fns, rounds, reps_of=None, calls=1, warmup=False):
    """{name: [seconds...]}: per round, each implementation runs a block of
    `calls` timed calls, round-robin. Between blocks the process sleeps a
    little so OpenBLAS's worker threads, which spin for a while after a call,
    go idle and do not steal the other core from the next implementation.
    With `warmup`, each block starts with one untimed call (after the pause
    the core's clock and caches are cold, which would otherwise weigh on
    short calls: one GEMM of a few ms)."""
    times = {k: [] for k in fns}
    for r in range(rounds):
        for k, fn in fns.items():
            if reps_of and r >= reps_of.get(k, rounds):
                continue
            time.sleep(PAUSE)
            if warmup:
                fn()
            times[k] += _timeit(fn, calls)
    return times


def _stats(ts, flops=None):
    import numpy as np
    a = np.array(ts)
    med = float(np.median(a))
    d = {"median": med, "min": float(a.min()), "max": float(a.max()), "n": len(ts)}
    if flops:
        d["gflops"] = flops / med / 1e9
    return d


def _bandwidth(quick=False):
    """Best of: summing a 512 MB array, and sgemv over a 256 MB matrix (GB/s);
    quick: 64 MB and 64 MB (less exact: caches weigh more)."""
    import numpy as np
    big = np.ones((16 if quick else 128) * 2**20, dtype=np.float32)
    big.sum()
    t_sum = min(_timeit(big.sum, 5))
    n = 4096 if quick else 8192
    m = np.ones((n, n), dtype=np.float32)
    v = np.ones(n, dtype=np.float32)
    m @ v
    t_mv = min(_timeit(lambda: m @ v, 5))
    return max(big.nbytes / t_sum, m.nbytes / t_mv) / 1e9


def _gemm_bench(threads, rounds, quick):
    import numpy as np

    from .. import _ffi
    from .._ffi import fptr, lib
    ctx = _ffi.Context("auto", threads)
    rng = np.random.default_rng(0)
    shapes = [(m, n, k) for m in (32, 2048) for n in (256, 512) for k in (256, 512)]
    if quick:
        shapes = [(32, 256, 256), (512, 512, 512)]
    else:
        shapes.append((1024, 1024, 1024))
    cases = {"NT": (0, 1), "TN": (1, 0), "NN": (0, 0)}
    rows = []
    for (m, n, k) in shapes:
        for name, (ta, tb) in cases.items():
            a = rng.standard_normal((k, m) if ta else (m, k)).astype(np.float32)
            b = rng.standard_normal((n, k) if tb else (k, n)).astype(np.float32)
            c = np.zeros((m, n), np.float32)
            lda, ldb = a.shape[1], b.shape[1]
            pa, pb, pc = fptr(a), fptr(b), fptr(c)
            opa = a.T if ta else a
            opb = b.T if tb else b
            out = np.empty((m, n), np.float32)

            def native():
                _ffi.check(lib.dn_gemm(ctx.ptr, ta, tb, m, n, k, 1.0, pa, lda, pb, ldb, 0.0,
                                       pc, n), "gemm")

            def numpy():
                np.matmul(opa, opb, out=out)

            native()
            numpy()
            err = float(np.max(np.abs(c - out)) / (np.max(np.abs(out)) + 1e-30))
            if err > 1e-4:
                raise RuntimeError(f"GEMM {name} {m}x{n}x{k}: native and numpy disagree ({err:.2e})")
            reps = max(3, min(10 if quick else 50, int(2e9 / (2 * m * n * k))))
            t = _interleaved({"native": native, "numpy": numpy}, rounds, calls=reps, warmup=True)
            flops = 2 * m * n * k
            rows.append({"case": name, "M": m, "N": n, "K": k, "max_rel_err": err,
                         "native": _stats(t["native"], flops), "numpy": _stats(t["numpy"], flops)})
    return rows


def _train_bench(threads, rounds, shape, ref_rounds):
    import warnings

    import numpy as np

    from ..network import load_network
    cfg = tempfile.NamedTemporaryFile("w", suffix=".cfg", delete=False)
    cfg.write(char_cfg(**shape))
    cfg.close()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            nets = {
                "native": load_network(cfg.name, seed=1, kernel="auto", threads=threads),
                "numpy": load_network(cfg.name, seed=1, backend="numpy"),
                "native-reference": load_network(cfg.name, seed=1, kernel="reference"),
            }
    finally:
        os.unlink(cfg.name)
    rng = np.random.default_rng(0)
    T, B, I = shape["steps"], shape["streams"], shape["inputs"]
    x = np.eye(I, dtype=np.float32)[rng.integers(0, I, (T, B))]
    y = np.eye(shape["conn"], dtype=np.float32)[rng.integers(0, shape["conn"], (T, B))]
    # agreement on the first step, from identical weights
    losses = {k: n.train(x, y) for k, n in nets.items()}
    outs = {k: n.output for k, n in nets.items()}
    base = losses["native-reference"]
    agree = {}
    for k in ("native", "numpy"):
        agree[k] = {"loss_rel": abs(losses[k] - base) / abs(base),
                    "output_max_abs": float(np.max(np.abs(outs[k] - outs["native-reference"])))}
        if not agree[k]["loss_rel"] < 1e-3:
            raise RuntimeError(f"training step: {k} loss {losses[k]} vs reference {base}")
    fns = {k: (lambda n=n: n.train(x, y)) for k, n in nets.items()}
    t = _interleaved(fns, rounds, {"native-reference": ref_rounds})
    flops = train_flops(**shape)
    return {"shape": shape, "gflop": flops / 1e9, "agreement": agree,
            "results": {k: _stats(v, flops) for k, v in t.items()}}


def _gen_bench(threads, rounds, shape, chars, ref_chars, streams_list):
    import warnings

    import numpy as np

    from ..network import load_network
    results, agree = {}, {}
    for streams in [1] + list(streams_list):
        cfgtext = char_cfg(streams=streams, steps=1, **shape)
        cfg = tempfile.NamedTemporaryFile("w", suffix=".cfg", delete=False)
        cfg.write(cfgtext)
        cfg.close()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                nets = {"native": load_network(cfg.name, seed=2, kernel="auto", threads=threads),
                        "numpy": load_network(cfg.name, seed=2, backend="numpy")}
                if streams == 1:
                    nets["native-reference"] = load_network(cfg.name, seed=2, kernel="reference")
        finally:
            os.unlink(cfg.name)
        for n in nets.values():           # realistic BN statistics
            for l in n.layers:
                for sub in getattr(l, "sublayers", (l,)):
                    if getattr(sub, "rolling_variance", None) is not None:
                        sub.rolling_variance[...] = 1
        I = shape["inputs"]
        onehots = np.eye(I, dtype=np.float32)
        xs = [onehots[(np.arange(streams) * 7 + i) % I].reshape(1, streams, I) if streams > 1
              else onehots[i % I] for i in range(max(chars, ref_chars))]
        first = {k: n.predict(xs[0]) for k, n in nets.items()}
        for k in nets:
            if k != "native":
                diff = float(np.max(np.abs(first[k] - first["native"])))
                agree[f"{k}@{streams}"] = diff
                if not diff < 1e-3:
                    raise RuntimeError(f"generation: {k} disagrees with native ({diff:.2e})")

        def run(net, n):
            def f():
                for i in range(n):
                    net.predict(xs[i])
            return f
        fns = {k: run(n, ref_chars if k == "native-reference" else chars) for k, n in nets.items()}
        t = _interleaved(fns, rounds, {"native-reference": 1})
        for k, ts in t.items():
            n = ref_chars if k == "native-reference" else chars
            per = [s / n for s in ts]
            st = _stats(per)
            st["chars_per_s"] = streams / st["median"]
            results[f"{k}@{streams}"] = st
    return {"shape": shape, "weight_bytes": gen_weight_bytes(**shape), "agreement": agree,
            "results": results}


def child(args):
    import numpy as np

    from ..info import build_info
    global PAUSE
    t0 = time.perf_counter()
    quick = args.quick
    if quick:
        PAUSE = QUICK_PAUSE
    tr = QUICK_TRAIN if quick else TRAIN_LAYERS
    gen = QUICK_GEN if quick else GEN_LAYERS
    out = {"threads": args.threads, "build_info": build_info(), "numpy": np.__version__,
           "env": {k: os.environ.get(k, "") for k in
                   ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OPENBLAS_CORETYPE")}}
    out["bandwidth_gbs"] = _bandwidth(quick)
    out["gemm"] = _gemm_bench(args.threads, args.rounds, quick)
    out["peak_gflops"] = max(max(r["native"]["gflops"], r["numpy"]["gflops"]) for r in out["gemm"])
    out["train"] = _train_bench(args.threads, args.rounds, tr, 1 if not quick else args.rounds)
    out["generate"] = _gen_bench(args.threads, args.rounds, gen, args.chars,
                                 max(3, args.chars // 20), args.streams)
    out["generate"]["floor_s_per_char"] = out["generate"]["weight_bytes"] / (out["bandwidth_gbs"] * 1e9)
    # the yardsticks: expert NumPy step, PyTorch, bf16, scaling (baselines.py)
    from . import baselines
    out["baselines"] = baselines.run(args.threads, args.rounds, quick, args.chars)
    out["seconds"] = time.perf_counter() - t0
    json.dump(out, sys.stdout)


# --------------------------------------------------------------------------
# parent: report


def _fmt_t(s):
    return f"{s * 1e3:.2f} ms" if s < 1 else f"{s:.3f} s"


def report(runs, cmd):
    from . import baselines
    lines = [f"Command: `{cmd}`", ""]
    for r in runs:
        bi = r["build_info"]
        lines.append(f"**{r['threads']} thread(s)** — kernel `{bi['kernel']}` "
                     f"(available: {', '.join(bi['kernels_available'])}); numpy {r['numpy']}; "
                     f"OPENBLAS_CORETYPE={r['env']['OPENBLAS_CORETYPE'] or '(unset)'}; "
                     f"measured peak {r['peak_gflops']:.1f} GFLOP/s (best GEMM below), "
                     f"memory bandwidth {r['bandwidth_gbs']:.1f} GB/s")
        lines.append("")
        tr = r["train"]
        sh = tr["shape"]
        lines.append(f"Training step: {sh['rnn_layers']}×[rnn] output={sh['hidden']} "
                     f"batch_normalize=1 leaky + [connected] {sh['conn']} + [softmax], inputs "
                     f"{sh['inputs']}, {sh['streams']} streams × {sh['steps']} steps "
                     f"({tr['gflop']:.1f} GFLOP per step)")
        lines.append("")
        lines.append("| implementation | median | min | max | GFLOP/s | % peak | native speed-up |")
        lines.append("|---|---|---|---|---|---|---|")
        nat = tr["results"]["native"]["median"]
        for k, s in tr["results"].items():
            lines.append(f"| {k} | {_fmt_t(s['median'])} | {_fmt_t(s['min'])} | {_fmt_t(s['max'])}"
                         f" | {s['gflops']:.1f} | {100 * s['gflops'] / r['peak_gflops']:.0f}% |"
                         f" {s['median'] / nat:.2f}× |")
        lines.append("")
        g = r["generate"]
        sh = g["shape"]
        lines.append(f"Generation: {sh['rnn_layers']}×[rnn] output={sh['hidden']} BN leaky + "
                     f"[connected] {sh['conn']} + [softmax], one byte per call "
                     f"({g['weight_bytes'] / 1e6:.1f} MB of weights; bandwidth floor "
                     f"{g['floor_s_per_char'] * 1e3:.2f} ms/char)")
        lines.append("")
        lines.append("| implementation@streams | median per call | min | max | chars/s | "
                     "floor / median | native speed-up |")
        lines.append("|---|---|---|---|---|---|---|")
        for k, s in g["results"].items():
            streams = int(k.split("@")[1])
            nat = g["results"][f"native@{streams}"]["median"]
            floor = g["floor_s_per_char"]
            lines.append(f"| {k} | {_fmt_t(s['median'])} | {_fmt_t(s['min'])} | {_fmt_t(s['max'])} "
                         f"| {s['chars_per_s']:.0f} | {100 * floor / s['median']:.0f}% | "
                         f"{s['median'] / nat:.2f}× |")
        b1 = g["results"]["native@1"]["chars_per_s"]
        for k, s in g["results"].items():
            if k.startswith("native@") and k != "native@1":
                lines.append(f"\nBatched generation {k}: {s['chars_per_s'] / b1:.1f}× the chars/s "
                             f"of batch 1.")
        lines.append("")
        lines.append("GEMM alone (C = op(A)·op(B), fp32):")
        lines.append("")
        lines.append("| case | M×N×K | native median | numpy median | native GFLOP/s | "
                     "numpy GFLOP/s | native/numpy speed |")
        lines.append("|---|---|---|---|---|---|---|")
        for row in r["gemm"]:
            n, p = row["native"], row["numpy"]
            lines.append(f"| {row['case']} | {row['M']}×{row['N']}×{row['K']} | "
                         f"{_fmt_t(n['median'])} | {_fmt_t(p['median'])} | {n['gflops']:.1f} | "
                         f"{p['gflops']:.1f} | {p['median'] / n['median']:.2f} |")
        lines.append("")
        lines += baselines.report_lines(r)
    lines += baselines.sweep_lines(runs)
    return "\n".join(lines)


def plot(runs, path):
    from ..plot import bar_chart
    bars = []
    for r in runs:
        for k, s in r["train"]["results"].items():
            bars.append((f"train {k} {r['threads']}t", s["median"]))
    bar_chart(path, bars, title="training step, median seconds (shorter is faster)",
              xlabel="seconds")


def main(argv=None):
    p = argparse.ArgumentParser(prog="darknet-rnn bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", default="1,2", help="thread counts, comma separated (default 1,2)")
    p.add_argument("--rounds", type=int, default=None,
                   help="interleaved rounds (default 5; --quick: 2)")
    p.add_argument("--chars", type=int, default=None,
                   help="bytes per generation round (default 200; --quick: 40)")
    p.add_argument("--streams", default=None,
                   help="batched generation stream counts (default 32; --quick: 8)")
    p.add_argument("--quick", action="store_true",
                   help="small shapes and few rounds: a smoke run of about 15 s")
    p.add_argument("--json", metavar="FILE", default=None,
                   help="also write the results as JSON to FILE (default: no file)")
    p.add_argument("--plot", metavar="PNG",
                   help="also write a bar chart (needs matplotlib: pip install "
                        "\"darknet_rnn[plot]\")")
    p.add_argument("--keep-coretype", action="store_true",
                   help="keep OPENBLAS_CORETYPE from the environment (default: unset it)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.rounds is None:
        args.rounds = 2 if args.quick else 5
    if args.chars is None:
        args.chars = 40 if args.quick else 200
    if args.streams is None:
        args.streams = "8" if args.quick else "32"
    if args.plot and not args.child:
        from ..plot import MISSING, available
        if not available():
            print(f"darknet-rnn bench: error: {MISSING}", file=sys.stderr)
            return 2
    if args.child:
        args.threads = int(args.threads)
        args.streams = [int(s) for s in args.streams.split(",") if s]
        child(args)
        return 0
    runs = []
    for th in [int(t) for t in args.threads.split(",")]:
        env = dict(os.environ)
        env.update(OMP_NUM_THREADS=str(th), OPENBLAS_NUM_THREADS=str(th), MKL_NUM_THREADS=str(th))
        if not args.keep_coretype:
            env.pop("OPENBLAS_CORETYPE", None)
        cmd = [sys.executable, "-m", "darknet_rnn.bench", "--child", "--threads", str(th),
               "--rounds", str(args.rounds), "--chars", str(args.chars), "--streams", args.streams]
        if args.quick:
            cmd.append("--quick")
        print(f"running {th} thread(s)...", file=sys.stderr, flush=True)
        res = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True)
        if res.returncode:
            print(f"darknet-rnn bench: error: the {th}-thread run failed", file=sys.stderr)
            return 1
        runs.append(json.loads(res.stdout))
    cmd = "darknet-rnn bench " + " ".join(argv if argv is not None else sys.argv[1:])
    print(report(runs, cmd.strip()))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"command": cmd, "runs": runs}, f, indent=1)
    if args.plot:
        plot(runs, args.plot)
    return 0

