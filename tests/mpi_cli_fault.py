"""Run under `mpiexec -n N python tests/mpi_cli_fault.py RANK CALL ARGS...`:
`darknet-rnn ARGS...` in which rank RANK raises at its CALL-th
Network.train call (tests/test_distributed.py: the job must end with one
line naming the rank instead of hanging)."""
import sys

from mpi4py import MPI

from darknet_rnn import cli, network


def inject(fail_call):
    real = network.Network.train
    calls = [0]

    def train(self, x, y):
        calls[0] += 1
        if calls[0] == fail_call:
            raise RuntimeError(f"injected failure at train call {fail_call}")
        return real(self, x, y)
    network.Network.train = train


if __name__ == "__main__":
    rank, call = int(sys.argv[1]), int(sys.argv[2])
    if MPI.COMM_WORLD.Get_rank() == rank:
        inject(call)
    sys.exit(cli.main(sys.argv[3:]))
