"""`darknet-rnn train` under MPI (darknet_rnn.distributed): the pieces the
command line needs around cmd_train when mpiexec starts it - the
communicator, errors agreed across processes, per-process threads, and an
error on any process ending the whole job with one line."""
import os
import sys
from contextlib import nullcontext, redirect_stderr, redirect_stdout

from . import distributed
from .errors import DarknetError, DivergenceError, NativeError

__all__ = ["run_train", "agreed", "train_kwargs", "failure"]


def run_train(args, cmd_train, *, prog, usage_error, exit_usage, exit_interrupt):
    """cmd_train(args); under mpiexec every process runs it with
    MPI.COMM_WORLD: rank 0 prints and writes, the others are silent, and an
    error on any rank ends the whole job with one line instead of leaving it
    hanging."""
    comm = distributed.comm_for(getattr(args, "mpi", "off"))
    if comm is None:
        return cmd_train(args)
    err = sys.stderr

    def describe(e):
        return failure(e, usage_error, exit_usage, exit_interrupt)
    with (open(os.devnull, "w") if comm.Get_rank() else nullcontext()) as quiet:
        with redirect_stdout(quiet or sys.stdout), redirect_stderr(quiet or sys.stderr):
            return distributed.run_or_abort(comm, lambda: cmd_train(args, comm), prog=prog,
                                            describe=describe, stream=err)


def agreed(comm, fn, *args):
    """fn(*args); under MPI a failure on any process raises on every
    process (reported once, without aborting the job)."""
    return distributed.agree(comm, lambda: fn(*args))


def train_kwargs(comm, threads):
    """load_network arguments of a process: the communicator and, unless the
    user chose threads, this node's cores shared among its processes."""
    if comm is None:
        return {}
    kw = {"comm": comm}
    if threads is None and not os.environ.get("OMP_NUM_THREADS"):
        kw["threads"] = distributed.threads_per_rank(comm)
    return kw


def failure(e, usage_error, exit_usage, exit_interrupt):
    """(status, message, show traceback) for an exception, as main() reports it."""
    if isinstance(e, KeyboardInterrupt):
        return exit_interrupt, "interrupted; aborted without saving", False
    if isinstance(e, (usage_error, DarknetError)):
        return (1 if isinstance(e, (NativeError, DivergenceError)) else exit_usage), str(e), False
    if isinstance(e, OSError):
        where = f"{e.filename}: " if e.filename else ""
        return exit_usage, f"{where}{e.strerror or e}", False
    return 1, f"{type(e).__name__}: {e}", True
