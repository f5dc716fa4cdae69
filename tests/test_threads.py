"""Threads: two networks trained in two threads (the GIL is released in C)
give exactly their serial results, on the shared default context, with and
without its worker pool; one network used from two threads at once is
serialised (each call whole), not corrupted."""
import threading

import numpy as np
import pytest

import darknet_rnn
from darknet_rnn import _ffi
from darknet_rnn.errors import KernelError
from conftest import KERNELS
from hostile import batch_for, small_cfg, weights_of

FAST = [k for k in KERNELS if k != "reference"]


def _cfg(tmp_path):
    # big enough that the fast GEMM packs through its workspace (rows > its small-M paths)
    return small_cfg(tmp_path, streams=16, steps=8, inputs=64, hidden=96, outputs=64, lr=0.02)


def _train(net, seeds, losses):
    for s in seeds:
        losses.append(net.train(*batch_for(net, s)))
        losses.append(net.predict(batch_for(net, s + 100)[0]).sum())


def _in_threads(*jobs):
    errors = []

    def wrap(job):
        try:
            job()
        except BaseException as e:         # pragma: no cover - reported below
            errors.append(e)
    threads = [threading.Thread(target=wrap, args=(j,)) for j in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    assert not errors, errors


@pytest.fixture
def default_context():
    """Restore the process-wide context after a test changes it."""
    old = _ffi._default
    yield
    _ffi._default = old


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("kernel", FAST)
def test_two_networks_two_threads_equal_serial(tmp_path, kernel, threads, default_context):
    _ffi.set_kernel(kernel)
    _ffi.set_num_threads(threads)
    cfg = _cfg(tmp_path)
    serial = []
    for seed in (1, 2):
        net = darknet_rnn.load_network(cfg, seed=seed)
        losses = []
        _train(net, range(seed * 10, seed * 10 + 6), losses)
        serial.append((losses, weights_of(net)))
    for _ in range(2):                      # twice: interleavings differ from run to run
        nets = [darknet_rnn.load_network(cfg, seed=seed) for seed in (1, 2)]
        losses = [[], []]
        _in_threads(*[(lambda i=i: _train(nets[i], range((i + 1) * 10, (i + 1) * 10 + 6),
                                          losses[i])) for i in range(2)])
        for i in range(2):
            assert losses[i] == serial[i][0], f"network {i}: losses differ from serial"
            assert np.array_equal(weights_of(nets[i]), serial[i][1]), f"network {i}: weights"


def test_each_thread_has_its_own_workspace_and_shares_the_pool():
    if not FAST:
        pytest.skip("no fast kernel")
    ctx = _ffi.Context(FAST[0], 2)
    ptrs = []
    lock = threading.Lock()
    both = threading.Barrier(3)

    def grab(wait=True):
        c = ctx.ptr
        with lock:
            ptrs.append((int(_ffi.ffi.cast("uintptr_t", c.work)),
                         int(_ffi.ffi.cast("uintptr_t", c.pool))))
        if wait:                      # all alive at once: their workspaces coexist
            both.wait(60)
    main = threading.Thread(target=lambda: (grab(False), both.wait(60)))
    main.start()
    _in_threads(grab, grab)
    main.join(60)
    works = {w for w, _ in ptrs}
    pools = {p for _, p in ptrs}
    assert len(works) == 3 and len(pools) == 1 and 0 not in pools


def test_one_network_two_threads_is_serialised(tmp_path):
    """Both threads train the same network on the same batch: every call
    runs whole, so the result is that of 2N calls in a row."""
    cfg = _cfg(tmp_path)
    x, y = batch_for(darknet_rnn.load_network(cfg, seed=1), 5)
    ref = darknet_rnn.load_network(cfg, seed=1)
    ref_losses = [ref.train(x, y) for _ in range(40)]
    net = darknet_rnn.load_network(cfg, seed=1)
    losses = []

    def job():
        for _ in range(20):
            losses.append(net.train(x, y))
    _in_threads(job, job)
    assert sorted(losses) == sorted(ref_losses) and all(np.isfinite(losses))
    assert np.array_equal(weights_of(net), weights_of(ref))
    assert net.seen == ref.seen


def test_changing_the_default_context_while_another_thread_trains(tmp_path, default_context):
    """set_num_threads replaces the default context; a thread in the middle
    of a call keeps the old one alive (no freed workspace or pool)."""
    if not FAST:
        pytest.skip("no fast kernel")
    _ffi.set_kernel(FAST[0])
    cfg = _cfg(tmp_path)
    net = darknet_rnn.load_network(cfg, seed=1)
    ref = darknet_rnn.load_network(cfg, seed=1)
    ref_losses = [ref.train(*batch_for(ref, s)) for s in range(10)]
    stop = threading.Event()
    losses = []

    def train():
        try:
            for s in range(10):
                losses.append(net.train(*batch_for(net, s)))
        finally:
            stop.set()

    def churn():
        n = 0
        while not stop.is_set():
            _ffi.set_num_threads(1 + n % 2)
            n += 1
    _in_threads(train, churn)
    assert np.allclose(losses, ref_losses, rtol=1e-4)    # thread counts: same bits per GEMM
    assert np.isfinite(weights_of(net)).all()


def test_context_argument_errors_name_the_limit():
    with pytest.raises(ValueError, match=r"threads must be >= 1 and <= 1024 .*got 2000"):
        darknet_rnn.set_num_threads(2000)
    with pytest.raises(ValueError, match="threads must be >= 1"):
        _ffi.Context("reference", 0)
    with pytest.raises(KernelError, match=r"kernel=99: unknown kernel id; expected one of "
                       r"0 \(reference\)"):
        _ffi.Context(99, 1)
    with pytest.raises(KernelError, match="kernel=99"):
        darknet_rnn.load_network("cfg/tiny.cfg", kernel=99)
    assert _ffi.Context(0, 1).kernel_name == "reference"
