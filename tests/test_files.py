"""Hostile files (darknet_rnn.files, weights, checkpoint): what is read must
be a regular file of the expected size; saving is atomic through symlinks,
refuses FIFOs and devices, cleans up after killed saves, and names the
target when the disk is full or the directory is missing. Every test
checks that nothing was lost: old files intact, no stray temporaries."""
import errno
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import darknet_rnn
from darknet_rnn import files
from darknet_rnn.checkpoint import CheckpointError, state_path
from darknet_rnn.errors import WeightsError
from hostile import ROOT, cli, one_line_error, small_cfg, stray_temporaries, weights_of


@pytest.fixture
def net_and_file(tmp_path):
    cfg = small_cfg(tmp_path)
    net = darknet_rnn.load_network(cfg, seed=1)
    w = tmp_path / "net.weights"
    net.save_weights(w)
    return cfg, net, w


def _with_timeout(f, seconds=20):
    out = []

    def run():
        try:
            out.append(("ok", f()))
        except BaseException as e:
            out.append(("err", e))
    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), "blocked"
    return out[0]


# --------------------------------------------------------------------------
# reading

@pytest.mark.parametrize("kind,what", [("fifo", "a FIFO (named pipe)"),
                                       ("/dev/zero", "a character device"),
                                       ("/dev/urandom", "a character device"),
                                       ("dir", "a directory")])
def test_weights_that_are_not_regular_files(tmp_path, net_and_file, kind, what):
    cfg, net, _ = net_and_file
    if kind == "fifo":
        p = tmp_path / "w.fifo"
        os.mkfifo(p)
    elif kind == "dir":
        p = tmp_path / "w.dir"
        p.mkdir()
    else:
        p = kind
    before = weights_of(net)
    status, err = _with_timeout(lambda: net.load_weights(p))
    assert status == "err" and isinstance(err, WeightsError), err
    assert str(err).startswith(f"{p}: is {what}, not a weights file")
    assert np.array_equal(weights_of(net), before)


def test_weights_size_checked_before_reading(tmp_path, net_and_file):
    """A sparse 1 TiB file: refused from fstat alone, fast, no MemoryError."""
    cfg, net, w = net_and_file
    big = tmp_path / "big.weights"
    shutil.copy(w, big)
    with open(big, "r+b") as f:
        f.truncate(1 << 40)
    t0 = time.monotonic()
    with pytest.raises(WeightsError, match=rf"^{big}: weights file is too long .* file has "
                       r"1099511627776 bytes"):
        net.load_weights(big)
    assert time.monotonic() - t0 < 5


def test_non_strict_reads_only_what_it_needs(tmp_path, net_and_file):
    cfg, net, w = net_and_file
    big = tmp_path / "big.weights"
    shutil.copy(w, big)
    with open(big, "r+b") as f:
        f.truncate(1 << 40)                    # Darknet ignores the extra bytes: so do we
    fresh = darknet_rnn.load_network(cfg, seed=9)
    with pytest.warns(UserWarning, match="extra bytes are ignored"):
        status, _ = _with_timeout(lambda: fresh.load_weights(big, strict=False))
    assert status == "ok" and np.array_equal(weights_of(fresh), weights_of(net))


def test_sidecar_that_is_a_fifo(tmp_path, net_and_file):
    cfg, net, w = net_and_file
    os.mkfifo(state_path(w))
    status, err = _with_timeout(lambda: net.load_training_state(state_path(w)))
    assert status == "err" and isinstance(err, CheckpointError)
    assert str(err).startswith(f"{state_path(w)}: is a FIFO")


def test_cli_weights_fifo_and_device_one_line(tmp_path, net_and_file):
    cfg, net, w = net_and_file
    fifo = tmp_path / "f.weights"
    os.mkfifo(fifo)
    for p in (fifo, "/dev/zero"):
        proc = cli("generate", cfg, p, "--len", 5, timeout=60)
        line = one_line_error(proc)
        assert proc.returncode == 2 and f"{p}: is a" in line and "not a weights file" in line


# --------------------------------------------------------------------------
# writing

def test_save_through_symlink_writes_the_target(tmp_path, net_and_file):
    cfg, net, w = net_and_file
    store = tmp_path / "store"
    store.mkdir()
    target = store / "real.weights"
    target.write_bytes(b"old")
    link = tmp_path / "link.weights"
    os.symlink(os.path.relpath(target, tmp_path), link)
    net.save_weights(link)
    assert os.path.islink(link) and os.readlink(link) == os.path.relpath(target, tmp_path)
    assert target.read_bytes() == w.read_bytes()
    assert stray_temporaries(store) == [] and stray_temporaries(tmp_path) == []
    # a chain of links and a dangling link: the final target is written
    link2 = tmp_path / "link2.weights"
    os.symlink(link, link2)
    target.unlink()
    net.save_weights(link2)
    assert os.path.islink(link2) and target.read_bytes() == w.read_bytes()


def test_save_onto_symlink_loop_fifo_or_device_is_refused(tmp_path, net_and_file):
    cfg, net, w = net_and_file
    loop = tmp_path / "loop.weights"
    os.symlink(loop, loop)
    with pytest.raises(OSError, match=rf"cannot save {loop}: too many levels") as ei:
        net.save_weights(loop)
    assert ei.value.errno == errno.ELOOP and os.path.islink(loop)
    fifo = tmp_path / "f.weights"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match=rf"cannot save {fifo}: it is a FIFO .*left alone"):
        net.save_weights(fifo)
    assert os.path.exists(fifo) and not os.path.isfile(fifo)
    link = tmp_path / "null.weights"
    os.symlink("/dev/null", link)
    with pytest.raises(OSError, match=rf"cannot save {link} \(-> /dev/null\): it is a "
                       r"character device"):
        net.save_weights(link)
    assert os.path.islink(link)
    assert stray_temporaries(tmp_path) == []


def test_missing_directory_names_the_target(tmp_path, net_and_file):
    cfg, net, w = net_and_file
    p = tmp_path / "nope" / "x.weights"
    with pytest.raises(FileNotFoundError) as ei:
        net.save_weights(p)
    msg = str(ei.value)
    assert f"cannot save {p}: the directory {tmp_path / 'nope'} does not exist" in msg
    assert ".tmp" not in msg and ei.value.filename == str(p)


def test_write_errors_name_the_target_and_keep_the_old_file(tmp_path):
    target = tmp_path / "t.weights"
    target.write_bytes(b"old contents")

    def full(f):
        f.write(b"x" * 100)
        raise OSError(errno.ENOSPC, "No space left on device")
    with pytest.raises(OSError) as ei:
        files.atomic_write(target, full)
    assert ei.value.errno == errno.ENOSPC and ei.value.filename == str(target)
    assert str(ei.value).startswith(f"[Errno 28] cannot save {target}: No space left on "
                                    "device; the previous file, if any, is unchanged")
    assert target.read_bytes() == b"old contents"
    assert stray_temporaries(tmp_path) == []


def _tmpfs(path, size):
    path.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                       capture_output=True)
    return r.returncode == 0


def test_disk_full_on_a_real_filesystem(tmp_path, net_and_file):
    """A 64 KiB tmpfs (skipped where mounting is not allowed): the old file
    survives, the message names it, no temporary is left."""
    cfg, _, _ = net_and_file
    mnt = tmp_path / "small"
    if not _tmpfs(mnt, "64k"):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        old = darknet_rnn.load_network(cfg, seed=1)
        target = mnt / "x.weights"
        old.save_weights(target)                      # fits
        kept = target.read_bytes()
        big = darknet_rnn.load_network(small_cfg(tmp_path, "big.cfg", hidden=96), seed=1)
        with pytest.raises(OSError) as ei:
            big.save_weights(target)
        assert ei.value.errno == errno.ENOSPC and f"cannot save {target}" in str(ei.value)
        assert target.read_bytes() == kept and stray_temporaries(mnt) == []
        p = cli("train", small_cfg(tmp_path, "big2.cfg", hidden=96, inputs=256, outputs=256),
                "--out", mnt, "--max-batches", 1, "--srand", 1, "--valid-max-bytes", 10)
        line = one_line_error(p)
        assert p.returncode == 2 and "No space left on device" in line and str(mnt) in line
        assert stray_temporaries(mnt) == []
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


def test_stale_temporaries_are_cleaned_by_the_next_save(tmp_path, net_and_file):
    cfg, net, w = net_and_file
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = files._HOST
    stale = tmp_path / f".net.weights.{host}.{dead.pid}.0a1b2c3d.tmp"
    alive = tmp_path / f".net.weights.{host}.{os.getpid()}.0a1b2c3d.tmp"   # a save in progress
    other = tmp_path / ".other.weights.somehost.1.00000000.tmp"            # another file's
    longer = tmp_path / f".net.weights.x.{host}.{dead.pid}.0a1b2c3d.tmp"   # "net.weights.x"'s
    far = tmp_path / f".net.weights.farhost.{dead.pid}.0a1b2c3d.tmp"       # another host's
    legacy_old = tmp_path / ".net.weights.k2j4h5g6.tmp"                    # mkstemp-style name
    legacy_new = tmp_path / ".net.weights.z9y8x7w6.tmp"
    for p in (stale, alive, other, legacy_old, legacy_new, longer, far):
        p.write_bytes(b"partial")
    old = time.time() - 3600
    for p in (legacy_old, longer, far):
        os.utime(p, (old, old))
    net.save_weights(w)
    assert sorted(stray_temporaries(tmp_path)) == sorted(p.name for p in
                                                         (alive, other, legacy_new, longer, far))
    os.utime(far, (old - 86400, old - 86400))            # abandoned for over a day
    net.save_weights(w)
    assert far.name not in stray_temporaries(tmp_path)


KILLER = r"""
import sys, darknet_rnn
net = darknet_rnn.load_network(sys.argv[1], seed=1)
print("ready", flush=True)
i = 0
while True:
    i += 1
    net.layers[0].input_layer.biases[0] = i
    net.save_weights(sys.argv[2])
    net.save_training_state(sys.argv[2] + ".state")
"""


def test_kill_9_during_saves_leaves_old_or_new_and_is_cleaned(tmp_path):
    """SIGKILL a process that saves in a loop, 12 times at random moments:
    the file is always a complete weights file, and the temporaries the
    kills left are removed by the next save."""
    cfg = small_cfg(tmp_path, hidden=128)
    target = tmp_path / "k.weights"
    net = darknet_rnn.load_network(cfg, seed=1)
    net.save_weights(target)
    net.save_training_state(state_path(target))
    size = target.stat().st_size
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    rng = np.random.default_rng(0)
    left = 0
    for _ in range(12):
        proc = subprocess.Popen([sys.executable, "-c", KILLER, str(cfg), str(target)],
                                stdout=subprocess.PIPE, env=env)
        assert proc.stdout.readline().strip() == b"ready"
        time.sleep(float(rng.uniform(0.0, 0.15)))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        left += len(stray_temporaries(tmp_path))
        assert target.stat().st_size == size
        check = darknet_rnn.load_network(cfg)
        check.load_weights(target)                       # complete and finite
        check.load_training_state(state_path(target)) if check.seen == net.seen else None
    net.save_weights(target)
    net.save_training_state(state_path(target))
    assert stray_temporaries(tmp_path) == []     # whatever the kills left (`left`), cleaned
