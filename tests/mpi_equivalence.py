"""Run under `mpiexec -n N python tests/mpi_equivalence.py DIR`: data-parallel
training checked against one process (tests/test_distributed.py reads the
JSON this writes to DIR/result.json from rank 0).

Each scenario trains a distributed network (B streams per rank, comm=
COMM_WORLD) and, on rank 0, one process with N*B streams on the same data
(rank r's streams are streams r*B .. r*B+B-1 of the single process's batch),
then reports the largest relative weight difference, whether every rank
holds the same weights bit for bit, and the bookkeeping (seen, batch
number, rate, all-reduce count).
"""
import json
import os
import sys
import zlib

import numpy as np
from mpi4py import MPI

import darknet_rnn
from darknet_rnn import distributed

COMM = MPI.COMM_WORLD
RANK, SIZE = COMM.Get_rank(), COMM.Get_size()
B, T, INPUTS, CLASSES = 3, 4, 6, 5
SEED = 11

NET = """[net]
batch={batch}
subdivisions={subdivisions}
time_steps={T}
inputs={inputs}
learning_rate=0.5
momentum=0.9
decay=0.0005
max_batches=100
{policy}

[rnn]
output=10
activation=leaky
batch_normalize={bn}

[connected]
output={classes}
activation=linear

[softmax]
"""


def write_cfg(directory, name, streams, *, subdivisions=1, bn=0,
              policy="policy=steps\nsteps=3\nscales=0.5"):
    """Rank 0 writes the cfg (every rank calls this: a barrier)."""
    path = os.path.join(directory, name)
    if RANK == 0:
        with open(path, "w") as f:
            f.write(NET.format(batch=streams * subdivisions, subdivisions=subdivisions, T=T,
                               inputs=INPUTS, classes=CLASSES, bn=bn, policy=policy))
    COMM.Barrier()
    return path


def datum(k, streams):
    """Datum k of the run: (T, streams, INPUTS) normal inputs, one-hot targets."""
    g = np.random.default_rng(1000 + k)
    x = g.standard_normal((T, streams, INPUTS))
    y = np.zeros((T, streams, CLASSES))
    np.put_along_axis(y, x[..., :CLASSES].argmax(-1)[..., None], 1.0, axis=-1)
    return x, y


def crc(net):
    c = 0
    for p in net.params():
        c = zlib.crc32(np.ascontiguousarray(p.value).view(np.uint8), c)
    return c


def rel_diff(a, b):
    """max over arrays of max|a - b| / max|b|."""
    worst = 0.0
    for p, q in zip(a.params(), b.params()):
        scale = max(float(np.max(np.abs(q.value))), 1e-30)
        worst = max(worst, float(np.max(np.abs(p.value.astype(np.float64) - q.value))) / scale)
    return worst


def scenario(directory, name, datums, *, subdivisions=1, policy=None, **kw):
    extra = {} if policy is None else {"policy": policy}
    local = write_cfg(directory, f"{name}.local.cfg", B, subdivisions=subdivisions, **extra)
    whole = write_cfg(directory, f"{name}.whole.cfg", B * SIZE, subdivisions=subdivisions,
                      **extra)
    net = darknet_rnn.load_network(local, seed=SEED, comm=COMM, **kw)
    one = darknet_rnn.load_network(whole, seed=SEED, **kw) if RANK == 0 else None
    mine = slice(RANK * B, (RANK + 1) * B)
    loss_diff = 0.0
    for k in range(datums):
        x, y = datum(k, B * SIZE)
        loss = net.train(x[:, mine], y[:, mine])
        if one is not None:
            ref = one.train(x, y)
            loss_diff = max(loss_diff, abs(loss - ref) / abs(ref))
    crcs = COMM.allgather(crc(net))
    out = {"ranks_identical": len(set(crcs)) == 1, "crcs": crcs}
    if one is not None:
        out.update(
            weight_rel_diff=rel_diff(net, one), loss_rel_diff=loss_diff,
            seen=[net.seen, one.seen], batch_number=[net.current_batch(), one.current_batch()],
            rate=[net.current_rate(), one.current_rate()],
            reductions=net.allreduce.reductions, updates=datums // subdivisions,
            elements=net.allreduce.elements,
            param_count=sum(p.value.size for p in net.params()),
            hooks=[type(h).__name__ for h in net.gradient_hooks])
        if net.clip is not None:
            out.update(clip_norm=[net.clip.last_norm, one.clip.last_norm],
                       clipped=[net.clip.clipped, one.clip.clipped])
    return out


def statistics(directory):
    """BN network: save_weights averages the rolling statistics (every rank),
    rank 0 alone writes, and the file holds the average and the global seen."""
    cfg = write_cfg(directory, "bn.cfg", B, bn=1)
    net = darknet_rnn.load_network(cfg, seed=SEED, comm=COMM)
    mine = slice(RANK * B, (RANK + 1) * B)
    for k in range(3):
        x, y = datum(k, B * SIZE)
        net.train(x[:, mine], y[:, mine])
    stats = distributed._statistics(net)
    before = COMM.allgather([a.astype(np.float64).copy() for a in stats])
    expect = [np.mean([b[i] for b in before], axis=0) for i in range(len(stats))]
    differed = any(not np.array_equal(before[0][i], before[r][i])
                   for r in range(1, SIZE) for i in range(len(stats)))
    path = os.path.join(directory, "bn.weights" if RANK == 0 else f"bn.rank{RANK}.weights")
    net.save_weights(path)
    after = [a.astype(np.float64) for a in stats]
    mean_err = max(float(np.max(np.abs(a - e))) / max(float(np.max(np.abs(e))), 1e-30)
                   for a, e in zip(after, expect))
    same = COMM.allgather([a.tobytes() for a in after])
    out = {"ranks_differed_before": differed, "mean_rel_err": mean_err,
           "identical_after": all(s == same[0] for s in same)}
    others = [os.path.exists(os.path.join(directory, f"bn.rank{r}.weights"))
              for r in range(1, SIZE)]
    if RANK == 0:
        back = darknet_rnn.load_network(cfg, os.path.join(directory, "bn.weights"), seed=1)
        file_stats = distributed._statistics(back)
        out.update(others_wrote=any(others), file_seen=back.seen, seen=net.seen,
                   file_matches=all(np.array_equal(a, b) for a, b in zip(file_stats, stats)))
    return out


def errors(directory):
    """Collective failures raise on every rank instead of hanging."""
    out = {}
    good = write_cfg(directory, "err.cfg", B)
    cfg = good if RANK == 0 else os.path.join(directory, "missing.cfg")
    try:
        darknet_rnn.load_network(cfg, seed=SEED, comm=COMM)
        out["missing_cfg"] = "no error"
    except Exception as e:
        out["missing_cfg"] = f"{type(e).__name__}: {e}"
        out["missing_cfg_every_rank"] = distributed.raised_on_every_rank(e)
    try:
        darknet_rnn.load_network(good, seed=SEED + RANK, comm=COMM)
        out["seeds"] = "no error"
    except ValueError as e:
        out["seeds"] = str(e)
    other = write_cfg(directory, "err-other.cfg", B + 1)
    try:
        darknet_rnn.load_network(good if RANK == 0 else other, seed=SEED, comm=COMM)
        out["shapes"] = "no error"
    except distributed.DistributedError as e:
        out["shapes"] = str(e)
    # a weights file on rank 0's disk only: rank 0 reads it, the others get it
    path = os.path.join(directory, "root-only.weights")
    if RANK == 0:
        darknet_rnn.load_network(good, seed=99).save_weights(path)
    COMM.Barrier()
    mine = path if RANK == 0 else os.path.join(directory, "not-here.weights")
    net = darknet_rnn.load_network(good, mine, seed=SEED, comm=COMM)
    crcs = COMM.allgather(crc(net))
    if RANK == 0:
        saved = crc(darknet_rnn.load_network(good, path, seed=1))
        out["root_only_weights"] = crcs == [saved] * SIZE
    return out


def main(directory):
    results = {
        "size": SIZE,
        "sgd": scenario(directory, "sgd", 8, subdivisions=2),
        "sgd_f64": scenario(directory, "sgd64", 8, subdivisions=2, backend="reference",
                            dtype=np.float64),
        "adam_clip": scenario(directory, "adam", 6, optimizer="adam", clip_norm=0.05,
                              policy="policy=random\npower=2"),
        "sgd_clip": scenario(directory, "sgdclip", 6, clip_norm=0.05),
        "statistics": statistics(directory),
        "errors": errors(directory),
    }
    if RANK == 0:
        with open(os.path.join(directory, "result.json"), "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    sys.exit(distributed.run_or_abort(COMM, lambda: main(sys.argv[1]), prog="mpi_equivalence"))
