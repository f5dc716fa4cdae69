"""The scaling table of README.md: `darknet-rnn train` on 1 and 2 MPI
processes (one C-kernel thread each), and one process with 2 threads for
comparison, timed from the loss log rank 0 writes.

    python tests/mpi_scaling.py [CFG] [--batches N] [--skip K] [--rounds R]

For each row: mpiexec -n P python -m darknet_rnn train CFG --threads T
--max-batches N (no validation, no checkpoints); iterations/s = the number
of iterations after the first K divided by the sum of their `seconds`
column (rank 0's wall time per iteration, waiting for the all-reduce
included); chars/s = iterations/s x processes x streams x steps. "weak":
every process keeps the cfg's streams (the global batch grows with the
processes); "strong": the cfg's streams are split among the processes (the
same global batch, so the same training run as one process). The rows run
in turn, R rounds; each figure is the median over the rounds (the machine
is shared: the load average is printed with the table).
"""
import argparse
import csv
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def mpiexec():
    beside = Path(sys.executable).parent / "mpiexec"
    return str(beside) if beside.exists() else "mpiexec"


def with_streams(cfg_text, streams):
    return re.sub(r"(?m)^batch=\d+", f"batch={streams}", cfg_text, count=1)


def run(cfg, procs, threads, batches, work):
    out = Path(work) / f"p{procs}t{threads}-{Path(cfg).stem}"
    cmd = [mpiexec(), "-n", str(procs), sys.executable, "-m", "darknet_rnn", "train", str(cfg),
           "--threads", str(threads), "--max-batches", str(batches), "--srand", "1",
           "--valid-fraction", "0", "--valid-every", "0", "--save-every", "0",
           "--keep-every", "0", "-q", "--out", str(out)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    subprocess.run(cmd, check=True, env=env, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=3600)
    logs = list(out.glob("*.loss.csv"))
    with open(logs[0], newline="") as f:
        return [float(r["seconds"]) for r in csv.DictReader(f)]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("cfg", nargs="?", default=str(ROOT / "cfg" / "char-small.train.cfg"))
    ap.add_argument("--batches", type=int, default=300)
    ap.add_argument("--skip", type=int, default=20, help="warm-up iterations left out")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    text = Path(args.cfg).read_text()
    streams = int(re.search(r"(?m)^batch=(\d+)", text).group(1))
    steps = int(re.search(r"(?m)^time_steps=(\d+)", text).group(1))
    rows = []
    with tempfile.TemporaryDirectory() as work:
        half = Path(work) / "half.cfg"
        half.write_text(with_streams(text, streams // 2))
        plan = [("1 process x 1 thread", args.cfg, 1, 1, streams),
                ("2 processes x 1 thread, weak", args.cfg, 2, 1, streams),
                ("2 processes x 1 thread, strong", half, 2, 1, streams // 2),
                ("1 process x 2 threads", args.cfg, 1, 2, streams)]
        rates = {name: [] for name, *_ in plan}
        for _ in range(args.rounds):
            for name, cfg, procs, threads, per in plan:
                seconds = run(cfg, procs, threads, args.batches, work)[args.skip:]
                rates[name].append(len(seconds) / sum(seconds))
        for name, cfg, procs, threads, per in plan:
            its = statistics.median(rates[name])
            rows.append((name, procs * per, its, its * procs * per * steps))
    print(f"{Path(args.cfg).name}: {args.batches} iterations, the first {args.skip} left out; "
          f"{steps} steps per stream; median of {args.rounds} rounds; load average "
          + " ".join(f"{v:.2f}" for v in os.getloadavg()) + "\n")
    print("| run | streams in all | iterations/s | chars/s | chars/s vs 1 process |")
    print("|---|---|---|---|---|")
    base = rows[0][3]
    for name, total, its, chars in rows:
        print(f"| {name} | {total} | {its:.1f} | {chars:,.0f} | {chars / base:.2f}x |")


if __name__ == "__main__":
    main()
