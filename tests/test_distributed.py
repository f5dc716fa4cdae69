"""darknet_rnn.distributed: data-parallel training over MPI.

The MPI tests start real jobs (`mpiexec -n 2 python ...`, each with a
timeout: a hang fails the test instead of stalling the suite) and are
skipped, with the reason, only when mpi4py or mpiexec is missing (pip
install ".[mpi]" brings both). Tolerances: a distributed run and one
process with all the streams sum the same gradients in a different order,
so their weights agree to float rounding -- relative difference (max|a-b| /
max|b| per array) <= 1e-5 after several float32 updates, <= 1e-12 on the
float64 twin, <= 1e-4 after 100 iterations of the command line -- while the
ranks of one run hold the same weights bit for bit.

The tests without MPI cover what needs no second process: the sharded
streams, launcher detection, agreement and abort logic on a stand-in
communicator, and the command line's messages when MPI is missing.
"""
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

import darknet_rnn
from darknet_rnn import cli, distributed
from darknet_rnn import text as T
from darknet_rnn.charrnn.batches import CharBatcher, ShardedCharBatcher, batcher_for
from darknet_rnn._rand import GlibcRandom

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
TIMEOUT = 240                   # seconds for one mpiexec job on a busy 2-core machine


def _launcher():
    """(mpiexec argv prefix, None) or (None, why MPI tests cannot run)."""
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return None, "mpi4py is not installed (pip install '.[mpi]' brings mpi4py and MPICH)"
    found = [str(p) for p in (Path(sys.executable).parent / "mpiexec",) if p.exists()]
    found += [w for w in (shutil.which("mpiexec"), shutil.which("mpirun")) if w]
    if not found:
        return None, "no mpiexec beside Python or on PATH (pip install '.[mpi]')"
    exe = found[0]
    try:
        version = subprocess.run([exe, "--version"], capture_output=True, text=True,
                                 timeout=60, stdin=subprocess.DEVNULL)
        text = (version.stdout + version.stderr).lower()
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, f"{exe} --version failed: {e}"
    flags = []
    if "open mpi" in text or "openrte" in text:      # Open MPI refuses root without it
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            flags.append("--allow-run-as-root")
        flags.append("--oversubscribe")
    return [exe, *flags], None


LAUNCHER, WHY_NOT = _launcher()
needs_mpi = pytest.mark.skipif(LAUNCHER is None, reason=f"MPI tests skipped: {WHY_NOT}")


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    return env


def mpirun(n, args, *, cwd, timeout=TIMEOUT, wait=True):
    """`mpiexec -n N python ARGS` in its own process group; (status, out, err),
    or the Popen when wait=False. A job that outlives the timeout is killed
    and fails the test."""
    cmd = [*LAUNCHER, "-n", str(n), sys.executable, *map(str, args)]
    p = subprocess.Popen(cmd, cwd=cwd, env=_env(), stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    return finish(p, timeout) if wait else p


def finish(p, timeout=TIMEOUT):
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        pytest.fail(f"the MPI job did not end within {timeout} s (a hang)\n"
                    f"stdout:\n{out[-3000:]}\nstderr:\n{err[-3000:]}")
    return p.returncode, out, err


# --------------------------------------------------------------------------
# without MPI: the streams of a data-parallel run

TEXT = bytes(range(1, 256)) * 40


@pytest.mark.parametrize("size,streams", [(2, 3), (3, 2)])
def test_shards_together_read_what_one_process_reads(size, streams):
    """size ranks x streams streams read, batch by batch and jump by jump,
    exactly the streams of one CharBatcher with size*streams streams from
    the same seed, and every rank's generator ends where the single one does."""
    one = CharBatcher(TEXT, size * streams, 5, GlibcRandom(7))
    ranks = [ShardedCharBatcher(TEXT, streams, 5, GlibcRandom(7), rank=r, size=size)
             for r in range(size)]
    for _ in range(300):             # enough iterations for jumps (1/64 per stream)
        x, y = one.next_batch()
        parts = [b.next_batch() for b in ranks]
        np.testing.assert_array_equal(np.concatenate([p[0] for p in parts], axis=1), x)
        np.testing.assert_array_equal(np.concatenate([p[1] for p in parts], axis=1), y)
        jumped = one.jump()
        assert all(b.jump() == jumped for b in ranks)
    for b in ranks:
        np.testing.assert_array_equal(b.offsets, one.offsets)
    expect = one.rng.rand()
    assert [b.rng.rand() for b in ranks] == [expect] * size


def test_shard_arguments_are_checked():
    with pytest.raises(ValueError, match="rank must be < size"):
        ShardedCharBatcher(TEXT, 2, 5, GlibcRandom(1), rank=2, size=2)
    with pytest.raises(ValueError, match="size must be >= 1"):
        ShardedCharBatcher(TEXT, 2, 5, GlibcRandom(1), rank=0, size=0)
    with pytest.raises(T.TextError, match="shorter than one batch"):
        ShardedCharBatcher(b"abcdefgh" * 4, 4, 4, GlibcRandom(1), rank=0, size=2)


def test_a_plain_network_is_one_process():
    net = darknet_rnn.load_network(str(ROOT / "cfg" / "tiny.cfg"), seed=1)
    assert (net.comm, net.rank, net.world_size) == (None, 0, 1)
    assert net.global_batch == net.batch and net.allreduce is None
    assert net.any_rank(1) is True and net.any_rank(0) is False
    assert type(batcher_for(net, TEXT)) is CharBatcher


def test_comm_must_be_a_communicator():
    with pytest.raises(TypeError, match="comm must be an mpi4py communicator"):
        darknet_rnn.load_network(str(ROOT / "cfg" / "tiny.cfg"), seed=1, comm=object())


def test_launcher_detection():
    assert distributed.launched_by_mpi({}) is None
    assert distributed.launched_by_mpi({"PMI_SIZE": "4", "PMI_RANK": "1"}) == 4
    assert distributed.launched_by_mpi({"OMPI_COMM_WORLD_SIZE": "2"}) == 2
    assert distributed.launched_by_mpi({"PMIX_RANK": "0"}) == 1
    assert distributed.launched_by_mpi({"PMI_SIZE": "x", "PMI_RANK": "0"}) == 1


class StandIn:
    """A communicator stand-in for rank `rank` of `size`: allgather returns
    what the other ranks 'sent' (given), Abort records the status."""

    def __init__(self, rank, size, others=()):
        self.rank, self.size, self.others = rank, size, list(others)
        self.aborted = None

    def Get_rank(self):
        return self.rank

    def Get_size(self):
        return self.size

    def allgather(self, value):
        out = list(self.others)
        out.insert(self.rank, value)
        return out

    def Abort(self, status):
        self.aborted = status

    def Allreduce(self, *args, **kwargs):
        raise AssertionError("no collective but allgather is expected here")

    Bcast = bcast = Allreduce


def test_agree_names_the_failing_rank_on_every_rank():
    comm = StandIn(0, 2, others=[FileNotFoundError(2, "No such file", "/x.cfg")])
    with pytest.raises(distributed.DistributedError, match=r"rank 1 of 2: .*No such file") as e:
        distributed.agree(comm, lambda: "parsed")
    assert distributed.raised_on_every_rank(e.value)
    assert distributed.agree(StandIn(0, 2, others=[None]), lambda: 5) == 5


def test_common_seed():
    assert distributed.common_seed(StandIn(1, 2, others=[(3, 100)]), 3) == 3
    assert distributed.common_seed(StandIn(1, 2, others=[(None, 100)]), None) == 100
    with pytest.raises(ValueError, match="seed must be the same on every rank"):
        distributed.common_seed(StandIn(0, 2, others=[(4, 100)]), 3)


def test_check_same_compares_every_rank():
    data = b"some training text"
    same = StandIn(0, 2, others=[(len(data), zlib.crc32(data))])
    distributed.check_same(same, data, "the text")
    other = StandIn(0, 2, others=[(len(data), zlib.crc32(b"other"))])
    with pytest.raises(distributed.DistributedError, match="the text differs between"):
        distributed.check_same(other, data, "the text")


def test_run_or_abort(capsys):
    comm = StandIn(1, 2)
    status = distributed.run_or_abort(comm, lambda: 1 / 0, prog="p")
    err = capsys.readouterr().err
    assert comm.aborted == 1 and status == 1
    assert "ZeroDivisionError" in err and "p: error: rank 1 of 2: division by zero" in err

    # a failure agreed on every rank: rank 0 reports it, nobody aborts
    for rank in (0, 1):
        comm = StandIn(rank, 2, others=[ValueError("bad cfg")])
        status = distributed.run_or_abort(
            comm, lambda: distributed.agree(comm, lambda: 0), prog="p")
        assert status == 2 and comm.aborted is None
        err = capsys.readouterr().err
        if rank == 0:
            assert err == "p: error: rank 1 of 2: bad cfg\n"
        else:
            assert err == ""


def test_cli_without_mpi4py(monkeypatch, tmp_path, capsys):
    def missing():
        raise ImportError("No module named 'mpi4py'")
    monkeypatch.setattr(distributed, "world_comm", missing)
    monkeypatch.setenv("PMI_SIZE", "2")
    monkeypatch.setenv("PMI_RANK", "0")
    argv = ["train", str(ROOT / "cfg" / "tiny.cfg"), "--out", str(tmp_path), "-q"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "MPI launcher (2 processes)" in err and "darknet_rnn[mpi]" in err
    monkeypatch.delenv("PMI_SIZE")
    monkeypatch.delenv("PMI_RANK")
    assert cli.main(argv + ["--mpi", "on"]) == 2
    assert "--mpi on, but mpi4py is not installed" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_cli_mpi_off_ignores_the_launcher(monkeypatch, tmp_path):
    monkeypatch.setenv("PMI_SIZE", "2")
    monkeypatch.setattr(distributed, "world_comm", lambda: pytest.fail("MPI was used"))
    argv = ["train", str(ROOT / "cfg" / "tiny.cfg"), "--out", str(tmp_path), "-q",
            "--max-batches", "2", "--mpi", "off", "--srand", "1"]
    assert cli.main(argv) == 0
    assert (tmp_path / "tiny_final.weights").exists()


# --------------------------------------------------------------------------
# MPI jobs: the Python API against one process (tests/mpi_equivalence.py)

@pytest.fixture(scope="module")
def api(tmp_path_factory):
    if LAUNCHER is None:
        pytest.skip(f"MPI tests skipped: {WHY_NOT}")
    d = tmp_path_factory.mktemp("mpi-api")
    status, out, err = mpirun(2, [HERE / "mpi_equivalence.py", d], cwd=d)
    assert status == 0, f"mpi_equivalence.py failed ({status}):\n{out}\n{err}"
    return json.loads((d / "result.json").read_text())


FLOAT32 = ("sgd", "adam_clip", "sgd_clip")


@needs_mpi
@pytest.mark.parametrize("name", FLOAT32)
def test_two_ranks_give_the_weights_of_one_process_with_all_streams(api, name):
    r = api[name]
    assert api["size"] == 2
    assert r["weight_rel_diff"] <= 1e-5, r
    assert r["loss_rel_diff"] <= 1e-5, r


@needs_mpi
def test_float64_twin_agrees_to_double_rounding(api):
    assert api["sgd_f64"]["weight_rel_diff"] <= 1e-12, api["sgd_f64"]
    assert api["sgd_f64"]["loss_rel_diff"] <= 1e-12, api["sgd_f64"]


@needs_mpi
@pytest.mark.parametrize("name", FLOAT32 + ("sgd_f64",))
def test_ranks_hold_identical_weights_bitwise(api, name):
    assert api[name]["ranks_identical"], api[name]["crcs"]


@needs_mpi
@pytest.mark.parametrize("name", FLOAT32 + ("sgd_f64",))
def test_global_batch_bookkeeping_and_one_allreduce_per_update(api, name):
    r = api[name]
    assert r["seen"][0] == r["seen"][1]             # seen counts every rank's rows
    assert r["batch_number"][0] == r["batch_number"][1] == r["updates"]
    assert r["rate"][0] == r["rate"][1]             # schedule (random policy too)
    assert r["reductions"] == r["updates"]          # one all-reduce per update...
    assert r["elements"] == r["param_count"]        # ...over one flat buffer
    assert r["hooks"][0] == "AllReduceGradients"


@needs_mpi
@pytest.mark.parametrize("name", ("adam_clip", "sgd_clip"))
def test_clipping_sees_the_global_norm(api, name):
    r = api[name]
    a, b = r["clip_norm"]
    assert abs(a - b) <= 1e-5 * abs(b)
    assert r["clipped"][0] == r["clipped"][1] > 0


@needs_mpi
def test_batch_norm_statistics_are_averaged_when_saving(api):
    r = api["statistics"]
    assert r["ranks_differed_before"]               # otherwise nothing was tested
    assert r["mean_rel_err"] <= 1e-6 and r["identical_after"]
    assert r["file_matches"] and not r["others_wrote"]
    assert r["file_seen"] == r["seen"] == 3 * 2 * 3 * 4   # datums x ranks x streams x steps


@needs_mpi
def test_a_failure_on_one_rank_raises_on_every_rank(api):
    r = api["errors"]
    assert r["missing_cfg"].startswith("DistributedError: rank 1 of 2: ")
    assert "missing.cfg" in r["missing_cfg"] and r["missing_cfg_every_rank"]
    assert "seed must be the same on every rank" in r["seeds"]
    assert "(its shape) differs between the processes" in r["shapes"], r["shapes"]
    assert r["root_only_weights"]


# --------------------------------------------------------------------------
# MPI jobs: the command line

SMALL = """[net]
batch={streams}
subdivisions=1
time_steps=8
inputs=256
learning_rate=0.15
momentum=0.9
decay=0.001
max_batches=100
policy=constant

[rnn]
output=32
activation=leaky
batch_normalize={bn}

[connected]
output=256
activation=leaky

[softmax]
"""

ROWS = 2 * 4 * 8                # rows per iteration: 2 ranks x 4 streams x 8 steps


def write_small(d, name, streams, bn=0, **changes):
    text = SMALL.format(streams=streams, bn=bn)
    for key, value in changes.items():
        text = text.replace(f"\n{key}=", f"\n{key}={value}\n#", 1)
    path = d / name
    path.write_text(text)
    return path


def header_seen(path):
    with open(path, "rb") as f:
        f.read(12)
        return int.from_bytes(f.read(8), "little")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """`mpiexec -n 2 darknet-rnn train` (2 x 4 streams, no batch norm, 100
    iterations), one process with 4 streams and one with 8, same seed."""
    if LAUNCHER is None:
        pytest.skip(f"MPI tests skipped: {WHY_NOT}")
    d = tmp_path_factory.mktemp("mpi-cli")
    cfg4, cfg8 = write_small(d, "s4.cfg", 4), write_small(d, "s8.cfg", 8)
    common = ["--srand", "1", "--threads", "1", "--valid-every", "50"]
    status, out, err = mpirun(2, ["-m", "darknet_rnn", "train", cfg4, "--out", d / "mpi",
                                  "--progress", "lines", "--plot", *common], cwd=d)
    assert status == 0, f"mpiexec -n 2 darknet-rnn train failed ({status}):\n{err}"
    for cfg, out_dir in ((cfg4, "one4"), (cfg8, "one8")):
        assert cli.main(["train", str(cfg), "--out", str(d / out_dir), "-q", *common]) == 0
    return {"dir": d, "cfg4": cfg4, "cfg8": cfg8, "out": out, "err": err}


@needs_mpi
def test_cli_writes_one_final_weights_file_from_rank_0(runs):
    out_dir = runs["dir"] / "mpi"
    names = sorted(p.name for p in out_dir.iterdir())
    assert names == ["s4.backup", "s4.loss.csv", "s4.loss.png", "s4_final.weights"], names
    lines = [ln for ln in runs["out"].splitlines() if ln.split(":")[0].isdigit()
             and " avg, " in ln]                                  # Darknet's loss lines
    assert [int(ln.split(":")[0]) for ln in lines] == list(range(1, 101))   # rank 0 only
    assert "2 processes x 4 streams" in runs["err"]
    assert header_seen(out_dir / "s4_final.weights") == 100 * ROWS
    assert header_seen(out_dir / "s4_final.weights") == \
        header_seen(runs["dir"] / "one8" / "s8_final.weights")


@needs_mpi
def test_cli_weights_load_and_generate(runs):
    net = darknet_rnn.load_network(str(runs["cfg4"]), str(runs["dir"] / "mpi" / "s4_final.weights"),
                                   seed=1, streams=1)
    sample = b"".join(T.generate(net, b"\n", 200, 0.7, GlibcRandom(1)))
    assert len(sample) == 1 + 200 and sample[:1] == b"\n"    # the seed, then 200 bytes


@needs_mpi
def test_cli_validation_no_worse_than_one_process(runs):
    _, valid = T.split_text(T.default_corpus(), 0.05)

    def bpc(cfg, weights):
        net = darknet_rnn.load_network(str(cfg), str(weights), seed=1)
        return T.evaluate_bpc(net, valid).bpc
    d = runs["dir"]
    two = bpc(runs["cfg4"], d / "mpi" / "s4_final.weights")
    one = bpc(runs["cfg4"], d / "one4" / "s4_final.weights")
    assert np.isfinite(two) and two <= one, (two, one)


@needs_mpi
def test_cli_run_equals_one_process_with_all_streams(runs):
    d = runs["dir"]
    two = darknet_rnn.load_network(str(runs["cfg4"]), str(d / "mpi" / "s4_final.weights"))
    one = darknet_rnn.load_network(str(runs["cfg8"]), str(d / "one8" / "s8_final.weights"))
    for p, q in zip(two.params(), one.params()):
        rel = float(np.max(np.abs(p.value - q.value))) / float(np.max(np.abs(q.value)))
        assert rel <= 1e-4, (p.name, rel)


@needs_mpi
def test_cli_one_process_under_mpiexec_is_bitwise_the_plain_run(tmp_path):
    cfg = write_small(tmp_path, "s4.cfg", 4)
    args = ["train", cfg, "--srand", "2", "--threads", "1", "--max-batches", "20", "-q"]
    status, _, err = mpirun(1, ["-m", "darknet_rnn", *args, "--out", tmp_path / "mpi"],
                            cwd=tmp_path)
    assert status == 0, err
    assert cli.main([str(a) for a in args] + ["--out", str(tmp_path / "plain")]) == 0
    assert (tmp_path / "mpi" / "s4_final.weights").read_bytes() == \
        (tmp_path / "plain" / "s4_final.weights").read_bytes()


@needs_mpi
@pytest.mark.parametrize("rank", [0, 1])
def test_a_rank_failing_ends_the_job_with_one_line(tmp_path, rank):
    cfg = write_small(tmp_path, "s4.cfg", 4)
    status, _, err = mpirun(2, [HERE / "mpi_cli_fault.py", rank, 5, "train", cfg, "--out",
                                tmp_path / "out", "--threads", "1", "-q"], cwd=tmp_path)
    assert status != 0
    assert f"darknet-rnn: error: rank {rank} of 2: RuntimeError: injected failure at " \
           "train call 5" in err
    assert not (tmp_path / "out" / "s4_final.weights").exists()


@needs_mpi
def test_an_error_every_rank_meets_is_reported_once(tmp_path):
    cfg = write_small(tmp_path, "s4.cfg", 4)
    status, _, err = mpirun(2, ["-m", "darknet_rnn", "train", cfg, "--file", tmp_path / "nope",
                                "--out", tmp_path / "out"], cwd=tmp_path)
    assert status == 2
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines == [f"darknet-rnn: error: {tmp_path / 'nope'}: No such file or directory"], err


def _rows(path):
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return [r for r in csv.DictReader(f) if r.get("iteration")]


@needs_mpi
def test_ctrl_c_saves_a_checkpoint_and_the_run_resumes(tmp_path):
    """SIGINT to mpiexec (what Ctrl-C sends): every rank stops after the
    same iteration, rank 0 writes the checkpoint; resuming continues the
    iteration count, `seen` and the loss log. Batch norm on, so the saved
    statistics are the ranks' average (8 streams per rank: batch norm
    normalises over each rank's own rows, and over 4 it soon gives NaN)."""
    cfg = write_small(tmp_path, "bn.cfg", 8, bn=1, learning_rate=0.02, max_batches=100000)
    rows = 2 * 8 * 8
    out = tmp_path / "out"
    args = ["-m", "darknet_rnn", "train", cfg, "--out", out, "--srand", "3", "--threads", "1",
            "--progress", "none", "--valid-every", "0", "--valid-fraction", "0"]
    p = mpirun(2, args, cwd=tmp_path, wait=False)
    log = out / "bn.loss.csv"
    deadline = time.monotonic() + TIMEOUT
    while len(_rows(log)) < 3 and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    p.send_signal(signal.SIGINT)
    status, _, err = finish(p)
    assert status == 130, err
    stopped = int(_rows(log)[-1]["iteration"])
    assert f"stopped at iteration {stopped}" in err
    assert header_seen(out / "bn.backup") == stopped * rows

    more = stopped + 3
    status, _, err = mpirun(2, args[:4] + [out / "bn.backup"] + args[4:] +
                            ["--max-batches", more], cwd=tmp_path)
    assert status == 0, err
    assert header_seen(out / "bn_final.weights") == more * rows
    assert [int(r["iteration"]) for r in _rows(log)][-4:] == [stopped, stopped + 1,
                                                              stopped + 2, stopped + 3]
    net = darknet_rnn.load_network(str(cfg), str(out / "bn_final.weights"))
    assert all(np.isfinite(p.value).all() for p in net.params())
