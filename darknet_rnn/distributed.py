"""Data-parallel training over MPI (Horovod's model), through mpi4py.

Every process (rank) runs the same network on its own streams. Before each
update the gradients of all ranks are summed -- one MPI all-reduce over one
flat buffer per update, never one per array -- so every rank applies the same
update and the weights stay bitwise identical across ranks. The run counts
the *global* batch: Darknet's batch divisor, `seen`, the iteration number
and the learning-rate schedule are those of one process with
world_size x streams streams, and so are the `.weights` written (ordinary
Darknet files).

    from mpi4py import MPI
    net = darknet_rnn.load_network(cfg, seed=1, comm=MPI.COMM_WORLD)
    net.train(x_of_this_rank, y_of_this_rank)     # every rank, same number of calls
    net.save_weights("out.weights")               # every rank; rank 0 writes

What is collective (every rank must make the same calls in the same order):
load_network(comm=...) (the cfg is parsed on every rank and the outcome
agreed; the networks' shapes compared; the seed agreed; a weights file is
read by rank 0 and broadcast),
Network.train / forward_backward (one 8-byte all-reduce of the loss per
datum; the gradient all-reduce per update), Network.any_rank (the training
loop's stop decision), Network.save_weights (BN rolling statistics averaged
across ranks, weights checked identical, rank 0 writes). A failure in one of
these raises on every rank (`agree`); an exception anywhere else leaves the
other ranks waiting, so programs wrap their run in `run_or_abort`, which
prints one line and calls MPI_Abort.

mpi4py is optional (pip install "darknet_rnn[mpi]"); it is imported only
when a communicator is used. Nothing here knows what the data is: streams
per rank are the program's business (darknet_rnn.charrnn.batches has the
char-RNN's).
"""
import os
import pickle
import sys
import time
import traceback
import zlib

import numpy as np

from ._rand import clock_seed
from .errors import DarknetError

__all__ = ["DistributedError", "AllReduceGradients", "mpi", "check_comm", "world",
           "launched_by_mpi", "world_comm", "comm_for", "threads_per_rank", "agree",
           "common_seed", "sum_scalar", "any_rank", "broadcast_state", "load_on_root",
           "average_statistics", "check_identical", "check_same", "check_same_network",
           "save_collective", "raised_on_every_rank", "run_or_abort"]

INSTALL_HINT = "pip install 'darknet_rnn[mpi]' (mpi4py and MPICH from PyPI)"

# Environment variables MPI launchers set in every process they start:
# MPICH's hydra and Intel MPI (PMI_*), Open MPI (OMPI_*), PMIx launchers
# such as Open MPI 5 and Slurm's srun --mpi=pmix (PMIX_*), MVAPICH (MV2_*).
_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE", "PMIX_SIZE")
_RANK_VARS = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK", "PMIX_RANK")


class DistributedError(DarknetError, RuntimeError):
    """The ranks of a distributed run disagree (weights, seeds) or one of
    them failed in a collective step; raised on every rank."""


# --------------------------------------------------------------------------
# the communicator

def mpi():
    """mpi4py's MPI module; ImportError with the install command when absent."""
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise ImportError(f"distributed training needs mpi4py and an MPI library: "
                          f"{INSTALL_HINT} ({e})") from e
    return MPI


_COMM_METHODS = ("Get_rank", "Get_size", "Allreduce", "Bcast", "allgather", "bcast", "Abort")


def check_comm(comm):
    """`comm` itself if it looks like an mpi4py communicator, else TypeError."""
    missing = [m for m in _COMM_METHODS if not callable(getattr(comm, m, None))]
    if missing:
        raise TypeError(f"comm must be an mpi4py communicator (e.g. MPI.COMM_WORLD), got "
                        f"{type(comm).__name__} (no {', '.join(missing)})")
    return comm


def world(comm):
    """(comm, rank, size); (None, 0, 1) without a communicator."""
    if comm is None:
        return None, 0, 1
    check_comm(comm)
    return comm, int(comm.Get_rank()), int(comm.Get_size())


def launched_by_mpi(environ=None):
    """The number of processes an MPI launcher (mpiexec, mpirun, srun)
    started this one among, from the variables launchers set; None when this
    process was not started by one."""
    env = os.environ if environ is None else environ
    for name in _SIZE_VARS:
        value = env.get(name)
        if value is not None:
            try:
                return max(1, int(value))
            except ValueError:
                continue
    if any(name in env for name in _RANK_VARS):
        return 1
    return None


def world_comm():
    """MPI.COMM_WORLD (initialises MPI)."""
    return mpi().COMM_WORLD


def comm_for(mode="auto"):
    """The communicator a program should train with: MPI.COMM_WORLD for
    mode "on", or for "auto" when an MPI launcher started this process;
    None for "off" or when no launcher did. DistributedError (with the
    install command) when MPI is wanted but mpi4py is missing."""
    if mode not in ("auto", "on", "off"):
        raise ValueError(f"mode must be 'auto', 'on' or 'off', got {mode!r}")
    launched = launched_by_mpi()
    if mode == "off" or (mode == "auto" and launched is None):
        return None
    try:
        return world_comm()
    except ImportError:
        how = f"started by an MPI launcher ({launched} processes)" if launched else "--mpi on"
        raise DistributedError(f"{how}, but mpi4py is not installed: {INSTALL_HINT}; or "
                               "run without mpiexec (--mpi off)") from None


def threads_per_rank(comm):
    """Default C-kernel threads for this rank: the cores this process may
    run on when the launcher bound it to fewer than the machine's, else the
    machine's cores shared evenly among the ranks on this node (at least 1).
    Collective (splits the communicator by node)."""
    cores = os.cpu_count() or 1
    allowed = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    MPI = mpi()
    node = comm.Split_type(MPI.COMM_TYPE_SHARED)
    try:
        local = int(node.Get_size())
    finally:
        node.Free()
    if allowed < cores:
        return max(1, allowed)
    return max(1, cores // local)


# --------------------------------------------------------------------------
# agreeing on outcomes

def _mark_every_rank(exc):
    try:
        exc._dn_every_rank = True
    except AttributeError:          # an exception type without a __dict__
        pass
    return exc


def raised_on_every_rank(exc):
    """True for an exception that `agree` (or a collective step built on
    it) raised on every rank: no rank is left waiting, so the program can end
    normally instead of aborting the job."""
    return bool(getattr(exc, "_dn_every_rank", False))


def _portable(exc):
    """exc, or a RuntimeError carrying its text when it does not pickle."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")


def agree(comm, fn, *, root_only=False):
    """Run fn() on every rank (root_only: on rank 0 only) and agree on the
    outcome with one allgather: fn's result when it succeeded everywhere
    (None on the ranks that did not run it); otherwise every rank raises --
    a rank that failed its own exception, the others a DistributedError
    naming the first failing rank and its message -- marked so that
    raised_on_every_rank() is true."""
    comm, rank, size = world(comm)
    result, failure = None, None
    if comm is None:
        return fn()
    if not root_only or rank == 0:
        try:
            result = fn()
        except Exception as e:
            failure = e
    failures = comm.allgather(None if failure is None else _portable(failure))
    if failure is not None:
        raise _mark_every_rank(failure)
    for r, f in enumerate(failures):
        if f is not None:
            err = DistributedError(f"rank {r} of {size}: {f}")
            raise _mark_every_rank(err) from f
    return result


def common_seed(comm, seed):
    """The seed every rank uses: `seed` when all ranks pass the same one,
    rank 0's clock seed when all pass None; ValueError on every rank when
    they differ (one allgather)."""
    comm, rank, size = world(comm)
    if comm is None:
        return clock_seed() if seed is None else seed
    seeds = comm.allgather((seed, clock_seed()))
    given = [s for s, _ in seeds]
    if all(s is None for s in given):
        return seeds[0][1]
    if any(s != given[0] for s in given):
        shown = ", ".join(f"rank {r}: {s!r}" for r, s in enumerate(given))
        raise _mark_every_rank(ValueError(
            f"seed must be the same on every rank (or None on every rank), got {shown}"))
    return given[0]


def sum_scalar(comm, value, dtype=np.float64):
    """`value` summed over the ranks (one all-reduce of one float64)."""
    MPI = mpi()
    buf = np.array([value], dtype=np.float64)
    comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
    return dtype(buf[0])


def any_rank(comm, flag):
    """True on every rank when `flag` is true on any (one all-reduce)."""
    MPI = mpi()
    buf = np.array([1 if flag else 0], dtype=np.int32)
    comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.MAX)
    return bool(buf[0])


# --------------------------------------------------------------------------
# flat buffers

def _pack(arrays, out):
    off = 0
    for a in arrays:
        n = a.size
        out[off:off + n] = a.reshape(-1)
        off += n
    return out


def _unpack(buf, arrays):
    off = 0
    for a in arrays:
        n = a.size
        a[...] = buf[off:off + n].reshape(a.shape)
        off += n


def _blocks(net):
    """Every connected-like parameter block of the network, .weights order."""
    return [b for k, l in zip(net.kinds, net.layers) for b in k.weight_blocks(l)]


def _state_arrays(net):
    """What a .weights file holds, as arrays: biases, weights and, with
    batch norm, scales and the rolling statistics of every block."""
    out = []
    for b in _blocks(net):
        out += [b.biases, b.weights]
        if b.batch_normalize:
            out += [b.scales, b.rolling_mean, b.rolling_variance]
    return out


def _statistics(net):
    """The batch-norm rolling statistics of every block."""
    return [a for b in _blocks(net) if b.batch_normalize
            for a in (b.rolling_mean, b.rolling_variance)]


# --------------------------------------------------------------------------
# the gradient hook

class AllReduceGradients:
    """A gradient hook (darknet_rnn.optim) that sums every parameter's
    gradient across the ranks of `comm` before the update: the gradient part
    of each update buffer (Darknet's SGD keeps momentum in the same buffer:
    the network snapshots it as `Param.carry`, since this hook sets
    needs_gradient) is packed into one flat buffer of the parameters' dtype,
    summed with a single in-place MPI_Allreduce (MPI_IN_PLACE, MPI_SUM; a
    float32 sum for float32 networks), and written back as carry + sum. Every
    rank holds the same carry (it applied the same updates), so every rank
    ends with the same buffers and takes the same step.

    It must run before any hook that reads the gradient (clipping): the
    network puts it first. `reductions` counts the all-reduces,
    `elements` is the flat buffer's length."""
    needs_gradient = True

    def __init__(self, comm):
        self.comm = check_comm(comm)
        self.reductions = 0
        self.elements = 0
        self._buf = None
        self._key = None

    def _buffer(self, params):
        key = tuple((id(p.grad), p.grad.size, p.grad.dtype.str) for p in params)
        if key != self._key:
            dtypes = {p.grad.dtype for p in params}
            if len(dtypes) > 1:
                raise TypeError("the parameters of one network must share a dtype, got "
                                + ", ".join(sorted(d.name for d in dtypes)))
            dtype = dtypes.pop() if dtypes else np.float32
            self._buf = np.empty(sum(p.grad.size for p in params), dtype=dtype)
            self.elements = self._buf.size
            self._key = key
        return self._buf

    def __call__(self, net, params, args):
        MPI = mpi()
        buf = self._buffer(params)
        off = 0
        for p in params:
            n = p.grad.size
            seg = buf[off:off + n]
            if p.carry is None:
                seg[...] = p.grad.reshape(-1)
            else:
                np.subtract(p.grad.reshape(-1), p.carry.reshape(-1), out=seg)
            off += n
        self.comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        off = 0
        for p in params:
            n = p.grad.size
            seg = buf[off:off + n].reshape(p.grad.shape)
            if p.carry is None:
                p.grad[...] = seg
            else:
                np.add(p.carry, seg, out=p.grad)
            off += n
        self.reductions += 1

    def __repr__(self):
        return f"AllReduceGradients(size={self.comm.Get_size()})"


# --------------------------------------------------------------------------
# network state across ranks

def broadcast_state(net, root=0):
    """Give every rank rank `root`'s weights, BN statistics and `seen` (one
    bcast of `seen`, one Bcast of a flat buffer)."""
    comm, rank, size = world(net.comm)
    if comm is None or size == 1:
        return
    net.seen = int(comm.bcast(int(net.seen), root=root))
    arrays = _state_arrays(net)
    if not arrays:
        return
    buf = np.empty(sum(a.size for a in arrays), dtype=arrays[0].dtype)
    if rank == root:
        _pack(arrays, buf)
    comm.Bcast(buf, root=root)
    if rank != root:
        _unpack(buf, arrays)


def load_on_root(net, path):
    """Rank 0 reads the .weights file, every rank gets its contents: the
    file is needed on rank 0's machine only. A read error raises on every
    rank."""
    agree(net.comm, lambda: net.load_weights(path), root_only=True)
    broadcast_state(net)


def average_statistics(net):
    """Average the batch-norm rolling statistics over the ranks and write
    the average into every rank's network (one float64 all-reduce). The
    rolling update is linear, so averaging now or only at the end of the
    run gives the same statistics up to rounding."""
    comm, rank, size = world(net.comm)
    arrays = _statistics(net)
    if comm is None or size == 1 or not arrays:
        return
    MPI = mpi()
    buf = _pack(arrays, np.empty(sum(a.size for a in arrays), dtype=np.float64))
    comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
    buf /= size
    _unpack(buf, arrays)


def _checksum(net):
    crc = 0
    for p in net.params():
        crc = zlib.crc32(np.ascontiguousarray(p.value).view(np.uint8), crc)
    return crc


def check_identical(net):
    """DistributedError on every rank unless every rank holds the same
    weights, bit for bit (a crc32 per rank, one allgather)."""
    comm, rank, size = world(net.comm)
    if comm is None or size == 1:
        return
    sums = comm.allgather(_checksum(net))
    if len(set(sums)) > 1:
        shown = ", ".join(f"rank {r}: {s:08x}" for r, s in enumerate(sums))
        raise _mark_every_rank(DistributedError(
            f"the ranks' weights differ (crc32 {shown}): every rank must make the same "
            "train() calls, and the MPI library's all-reduce must give every rank the "
            "same sum"))


def check_same(comm, data, what):
    """DistributedError on every rank unless `data` (bytes-like) is the same
    on every rank (its length and crc32, one allgather)."""
    comm, rank, size = world(comm)
    if comm is None or size == 1:
        return
    view = memoryview(data).cast("B")
    mine = (len(view), zlib.crc32(view))
    every = comm.allgather(mine)
    if any(e != every[0] for e in every):
        shown = ", ".join(f"rank {r}: {n} bytes, crc32 {c:08x}" for r, (n, c) in enumerate(every))
        raise _mark_every_rank(DistributedError(
            f"{what} differs between the processes ({shown}): every process must read the "
            "same file"))


def check_same_network(net):
    """DistributedError on every rank unless every rank built the same
    network: shape (streams, steps, subdivisions), dtype and parameters."""
    shape = (net.streams, net.time_steps, net.subdivisions, np.dtype(net.dtype).name,
             [(p.name, p.value.shape) for p in net.params()])
    check_same(net.comm, repr(shape).encode(), f"the network of {net.cfg_path} (its shape)")


def save_collective(net, write):
    """What a distributed network's save_weights does on every rank: BN
    statistics averaged, weights checked identical, then write() on rank 0
    (an error there raises on every rank)."""
    average_statistics(net)
    check_identical(net)
    agree(net.comm, write, root_only=True)


# --------------------------------------------------------------------------
# ending a job cleanly

def _default_describe(exc):
    if isinstance(exc, KeyboardInterrupt):
        return 130, "interrupted", False
    expected = isinstance(exc, (DarknetError, OSError))
    return (2 if expected else 1), str(exc) or type(exc).__name__, not expected


ABORT_GRACE = 0.25     # seconds between the error line and MPI_Abort


def run_or_abort(comm, fn, *, prog="darknet_rnn", describe=None, stream=None):
    """fn() on this rank, without leaving the job hanging when it fails.

    An exception that `agree` raised on every rank: rank 0 prints
    "PROG: error: MESSAGE" and every rank returns the status (no rank is
    waiting). Any other exception may have left the other ranks inside a
    collective call: this rank prints "PROG: error: rank R of N: MESSAGE"
    (after the traceback for an unexpected error) and calls MPI_Abort with
    the status, which ends every process of the job. describe(exc) ->
    (status, message, show_traceback) (default: 2 for DarknetError and
    OSError, 130 for KeyboardInterrupt, else 1 with the traceback)."""
    comm, rank, size = world(comm)
    describe = describe or _default_describe
    stream = stream or sys.stderr
    try:
        return fn()
    except SystemExit:
        raise
    except BaseException as e:           # noqa: B902 -- Ctrl-C must end the job too
        status, message, show = describe(e)
        if comm is None:
            raise
        if raised_on_every_rank(e):
            if rank == 0:
                print(f"{prog}: error: {message}", file=stream, flush=True)
            return status
        if show:
            traceback.print_exc(file=stream)
        print(f"{prog}: error: rank {rank} of {size}: {message}", file=stream, flush=True)
        # MPI_Abort does not wait for the launcher to forward what the rank
        # wrote: give it a moment, or the one line may be lost with the job
        time.sleep(ABORT_GRACE)
        comm.Abort(status)
        return status                   # not reached: MPI_Abort ends the process
