"""cfg values where Darknet would silently misbehave (darknet_rnn.cfgcheck):
each is a CfgError naming file, line and key in strict mode and a warning
with Darknet's value otherwise; sizes are checked before anything is
allocated, naming the bytes and the key."""
import os
import resource
import threading
import time
import warnings

import pytest

import darknet_rnn
from darknet_rnn.cfg import CfgWarning, parse_cfg, parse_cfg_text
from darknet_rnn.cfgcheck import ENV_MAX_BYTES
from darknet_rnn.errors import CfgError
from hostile import cli, one_line_error, small_cfg

NET = "[net]\nbatch=4\ntime_steps=2\ninputs=4\n"
TAIL = "[rnn]\noutput=4\n[softmax]\n"


def _err(text, line, key, *more):
    with pytest.raises(CfgError) as ei:
        parse_cfg_text(text, path="t.cfg")
    msg = str(ei.value)
    assert msg.startswith(f"t.cfg:{line}: key '{key}':"), msg
    for m in more:
        assert m in msg, msg
    return msg


# (extra [net] line or layer text, line of the key, key, words of the reason)
NET_CASES = [
    ("learning_rate=nan", "learning_rate", "not a finite number"),
    ("learning_rate=inf", "learning_rate", "not a finite number"),
    ("learning_rate=1e999", "learning_rate", "not a finite number"),
    ("learning_rate=-0.1", "learning_rate", "must not be negative"),
    ("momentum=nan", "momentum", "not a finite number"),
    ("momentum=1", "momentum", "[0, 1)"),
    ("momentum=-0.5", "momentum", "[0, 1)"),
    ("decay=-inf", "decay", "not a finite number"),
    ("decay=-0.001", "decay", "must not be negative"),
    ("clip=inf", "clip", "not a finite number"),
    ("max_batches=-5", "max_batches", "negative"),
    ("policy=step\nstep=10\nscale=nan", "scale", "not a finite number"),
    ("policy=exp\ngamma=inf", "gamma", "not a finite number"),
    ("policy=poly\npower=nan\nmax_batches=10", "power", "not a finite number"),
    ("policy=sigmoid\ngamma=-inf\nstep=3", "gamma", "not a finite number"),
    ("policy=steps\nsteps=10,20\nscales=.1,nan", "scales", "entry 2 is not a finite number"),
    ("adam=1\nB1=1", "B1", "[0, 1)"),
    ("adam=1\nB2=nan", "B2", "not a finite number"),
    ("adam=1\neps=0", "eps", "must be positive"),
]


@pytest.mark.parametrize("extra,key,why", NET_CASES)
def test_net_values(extra, key, why):
    text = NET + extra + "\n" + TAIL
    line = next(i for i, l in enumerate(text.splitlines(), 1) if l.startswith(key + "="))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")      # adam's own warning
        _err(text, line, key, why)


LAYER_CASES = [
    ("[rnn]\noutput=4\n[softmax]\ntemperature=nan\n", "temperature", "not a finite number"),
    ("[rnn]\noutput=4\n[softmax]\ntemperature=0\n", "temperature", "must be positive"),
    ("[rnn]\noutput=4\n[softmax]\ntemperature=-1\n", "temperature", "must be positive"),
    ("[rnn]\noutput=4\n[cost]\nscale=inf\n", "scale", "not a finite number"),
    ("[rnn]\noutput=4\n[cost]\nthresh=nan\n", "thresh", "not a finite number"),
    ("[connected]\noutput=4\nlearning_rate=-2\n[softmax]\n", "learning_rate",
     "must not be negative"),
    ("[connected]\noutput=4\nlearning_rate=nan\n[softmax]\n", "learning_rate",
     "not a finite number"),
    ("[connected]\noutput=4\nsmooth=inf\n[softmax]\n", "smooth", "not a finite number"),
]


@pytest.mark.parametrize("layers,key,why", LAYER_CASES)
def test_layer_values(layers, key, why):
    text = NET + layers
    line = next(i for i, l in enumerate(text.splitlines(), 1) if l.startswith(key + "="))
    _err(text, line, key, why)


def test_non_strict_warns_and_keeps_darknets_value():
    text = NET + "learning_rate=nan\n[rnn]\noutput=4\n[softmax]\ntemperature=0\n"
    with pytest.warns(CfgWarning) as rec:
        spec = parse_cfg_text(text, path="t.cfg", strict=False)
    msgs = [str(w.message) for w in rec]
    assert any(m.startswith("t.cfg:5: key 'learning_rate'") for m in msgs)
    assert any(m.startswith("t.cfg:9: key 'temperature'") for m in msgs)
    assert spec.net.learning_rate != spec.net.learning_rate        # NaN, as Darknet
    assert spec.layers[1].temperature == 0


def test_temperature_errors_name_file_and_line(tmp_path):
    for value in ("nan", "0", "-1"):
        cfg = small_cfg(tmp_path, text=NET + f"[rnn]\noutput=4\n[softmax]\ntemperature={value}\n")
        with pytest.raises(CfgError, match=rf"^{cfg}:8: key 'temperature': temperature="
                           rf"{value} "):
            darknet_rnn.load_network(cfg)


def test_million_digit_numbers_are_c_numbers():
    big = "9" * 1_000_000
    # strtol saturates, (int) keeps the low 32 bits: -1, which is refused where it matters
    msg = _err(NET + f"max_batches={big}\n" + TAIL, 5, "max_batches", "max_batches=-1 is "
               "negative")
    _err(NET + TAIL.replace("output=4", f"output={big}"), 6, "output", "must be positive")
    spec = parse_cfg_text(NET + "max_batches=" + "0" * 1_000_000 + "7\n" + TAIL)
    assert spec.net.max_batches == 7
    spec = parse_cfg_text(NET + f"learning_rate=0.{big}\n" + TAIL)
    assert spec.net.learning_rate == pytest.approx(1.0)
    msg = _err(NET + f"learning_rate=-{big}\n" + TAIL, 5, "learning_rate", "is not a finite")
    assert len(msg) < 400 and "(1000001 characters)" in msg       # the value is not echoed whole


def test_height_width_channels_overflow_names_the_keys():
    text = "[net]\nbatch=2\nheight=2048\nwidth=1024\nchannels=1024\n" + TAIL
    _err(text, 3, "height", "inputs = height*width*channels = 2048*1024*1024 = 2147483648 "
         "overflows a C int")


def test_too_large_layer_refused_before_allocation(tmp_path):
    cfg = small_cfg(tmp_path, text=NET + "[rnn]\noutput=100000\n[softmax]\n")
    with pytest.raises(CfgError) as ei:
        darknet_rnn.load_network(cfg)
    msg = str(ei.value)
    assert msg.startswith(f"{cfg}:6: key 'output': the network needs ")
    assert "GiB" in msg and "layer 0 [rnn] with output=100000" in msg
    assert "Nothing was allocated" in msg


def test_three_big_layers_refused_without_growing_memory(tmp_path, monkeypatch):
    """The issue's 3 x output=20000 (OOM-killed inside load_network before):
    refused up front; the process did not allocate the network."""
    text = "[net]\nbatch=32\ntime_steps=64\ninputs=256\n" + \
           "[rnn]\noutput=20000\n" * 3 + "[connected]\noutput=256\n[softmax]\n"
    cfg = small_cfg(tmp_path, text=text)
    monkeypatch.setenv(ENV_MAX_BYTES, str(8 << 30))       # the same on any machine
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(CfgError, match=rf"^{cfg}:\d+: key 'output': the network needs .* GiB "
                       rf".*more than {ENV_MAX_BYTES}=8589934592"):
        darknet_rnn.load_network(cfg)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000   # KiB


def test_memory_limit_is_exact_at_the_boundary(tmp_path, monkeypatch):
    from darknet_rnn.cfgcheck import network_bytes
    cfg = small_cfg(tmp_path)
    spec = parse_cfg(cfg)
    need, _ = network_bytes(spec, spec.net.streams, spec.net.time_steps)
    monkeypatch.setenv(ENV_MAX_BYTES, str(need))
    net = darknet_rnn.load_network(cfg, seed=1)                 # exactly enough
    measured = sum(a.nbytes for l in net.layers for a in _arrays(l))
    assert measured <= need                 # the estimate covers what is allocated
    monkeypatch.setenv(ENV_MAX_BYTES, str(need - 1))
    with pytest.raises(CfgError, match=rf"needs {need / 1024:.1f} KiB \({need:,} bytes\)"):
        darknet_rnn.load_network(cfg, seed=1)


def _arrays(layer, seen=None):
    import numpy as np
    seen = set() if seen is None else seen
    for v in vars(layer).values():
        if isinstance(v, np.ndarray) and id(v) not in seen:
            seen.add(id(v))
            yield v
        elif hasattr(v, "__dict__") and type(v).__module__.startswith("darknet_rnn.layers"):
            yield from _arrays(v, seen)


def test_rows_beyond_a_c_int_are_refused(tmp_path):
    cfg = small_cfg(tmp_path)
    with pytest.raises(CfgError, match=r"key 'batch': 2147483648 streams x 1 time steps"):
        darknet_rnn.load_network(cfg, streams=2**31)


@pytest.mark.parametrize("kind", ["fifo", "dev", "dir", "huge"])
def test_cfg_files_that_are_not_cfg_files(tmp_path, kind):
    p = tmp_path / "x.cfg"
    if kind == "fifo":
        os.mkfifo(p)
    elif kind == "dir":
        p.mkdir()
    elif kind == "huge":
        with open(p, "wb") as f:
            f.truncate(1 << 40)                 # a sparse terabyte
    else:
        p = "/dev/zero"
    result = []
    t = threading.Thread(target=lambda: result.append(_catch(lambda: parse_cfg(p))))
    t0 = time.monotonic()
    t.start()
    t.join(20)
    assert not t.is_alive(), f"parse_cfg blocked on a {kind}"
    assert time.monotonic() - t0 < 20
    err = result[0]
    assert isinstance(err, CfgError), err
    want = {"fifo": "is a FIFO", "dev": "is a character device", "dir": "is a directory",
            "huge": "1099511627776 bytes is too large for a cfg file"}[kind]
    assert str(err).startswith(f"{p}: ") and want in str(err)


def _catch(f):
    try:
        f()
    except BaseException as e:
        return e
    return None


def test_cli_reports_cfg_problems_in_one_line(tmp_path):
    cfg = small_cfg(tmp_path, text=NET + "momentum=7\n" + TAIL)
    p = cli("train", cfg, "--out", tmp_path)
    line = one_line_error(p)
    assert p.returncode == 2 and f"{cfg}:5: key 'momentum': momentum=7 must be in [0, 1)" in line


@pytest.mark.skipif(bool(os.environ.get("DARKNET_RNN_SANITIZED")),
                    reason="ASan reserves more address space than any limit allows")
def test_cli_out_of_memory_is_one_line(tmp_path):
    """Under an address-space limit: the up-front check refuses the network
    (exit 2, naming the limit); with the check overridden the allocation
    itself fails, and MemoryError is one line too (exit 1), no traceback."""
    cfg = small_cfg(tmp_path, text="[net]\nbatch=4\ntime_steps=4\ninputs=256\n[rnn]\n"
                    "output=12000\n[connected]\noutput=256\n[softmax]\n")
    limit = 1 << 30

    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    env = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    p = cli("train", cfg, "--out", tmp_path, "--max-batches", 1, env=env, preexec_fn=cap)
    line = one_line_error(p)
    assert p.returncode == 2 and f"{cfg}:6: key 'output': the network needs" in line
    assert "address-space limit" in line
    p = cli("train", cfg, "--out", tmp_path, "--max-batches", 1, preexec_fn=cap,
            env=dict(env, **{ENV_MAX_BYTES: str(1 << 40)}))
    line = one_line_error(p)
    assert p.returncode == 1 and line.startswith("darknet-rnn: error: out of memory")
    assert list(tmp_path.glob("*.weights")) == []
