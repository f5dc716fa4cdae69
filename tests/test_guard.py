"""The finite guard (darknet_rnn.guard): divergence stops training with an
error naming the iteration and the layer, keeps the last finite checkpoint,
never changes a number, and can be switched off for Darknet's behaviour;
non-finite inputs, targets and weights are refused."""
import math
import warnings

import numpy as np
import pytest

import darknet_rnn
from darknet_rnn import guard
from darknet_rnn.errors import CfgError, DivergenceError, WeightsError
from darknet_rnn.training import TrainingRun, darknet_paths
from hostile import batch_for, cli, one_line_error, small_cfg, stray_temporaries, weights_of


def _train_until_error(net, n=60):
    for i in range(n):
        net.train(*batch_for(net, i))
    return None


@pytest.fixture(autouse=True)
def _guard_env(monkeypatch):
    monkeypatch.delenv(guard.ENV, raising=False)


def test_divergence_names_iteration_and_layer(tmp_path):
    net = darknet_rnn.load_network(small_cfg(tmp_path, lr=1000), seed=1)
    with pytest.raises(DivergenceError) as ei:
        _train_until_error(net)
    e = ei.value
    msg = str(e)
    assert isinstance(e, FloatingPointError) and isinstance(e, darknet_rnn.DarknetError)
    assert f"diverged at iteration {e.iteration}:" in msg and e.iteration >= 1
    assert str(tmp_path / "net.cfg") in msg
    assert e.what in ("output", "gradient", "weights", "loss")
    assert e.layer is not None and e.what in ("output", "gradient", "loss")
    assert "finite_guard = False" in msg
    # the layer index points at a real layer, named with its cfg line
    ls = net.spec.layers[e.layer]
    assert f"layer {ls.index} {ls.section} ({net.cfg_path}:{ls.line})" in msg


def test_loss_check_names_first_nonfinite_output(tmp_path):
    """Weights that overflow the forward pass: the loss is NaN and the first
    layer whose output went non-finite is named (forward order)."""
    net = darknet_rnn.load_network(small_cfg(tmp_path), seed=1)
    net.layers[1].weights[...] = 3e38            # [connected] overflows, the [rnn] is fine
    seen = net.seen
    with pytest.raises(DivergenceError) as ei:
        net.train(*batch_for(net))
    msg = str(ei.value)
    assert ei.value.layer == 1 and ei.value.what == "output"
    assert "diverged at iteration 1: the loss is nan" in msg
    line = net.spec.layers[1].line
    assert f"the output of layer 1 [connected] ({net.cfg_path}:{line})" in msg
    assert "time step 0, stream 0" in msg
    assert net.seen == seen + net.batch       # the datum ran; the error came right after


def test_update_check_says_whether_gradient_or_step(tmp_path):
    net = darknet_rnn.load_network(small_cfg(tmp_path), seed=1)
    net.forward_backward(*batch_for(net))
    net.layers[1].weight_updates[0, 0] = np.inf          # a non-finite gradient
    with pytest.raises(DivergenceError, match=r"update made weights of layer 1 \[connected\] "
                       r".*non-finite .*\(its gradient is non-finite\)") as ei:
        net.update()
    assert ei.value.layer == 1 and ei.value.what == "weights"

    net = darknet_rnn.load_network(small_cfg(tmp_path), seed=1)
    net.forward_backward(*batch_for(net))
    net.layers[1].weight_updates[0, 0] = 1e30             # a finite gradient, a huge step
    net.options.learning_rate = 1e30
    with pytest.raises(DivergenceError, match=r"its gradient is finite: the step overflowed "
                       r"at learning rate 1e\+30"):
        net.update()


def test_guard_changes_no_number(tmp_path):
    """Guarded and unguarded training give the same bits."""
    cfg = small_cfg(tmp_path)
    a = darknet_rnn.load_network(cfg, seed=3)
    b = darknet_rnn.load_network(cfg, seed=3)
    b.finite_guard = False
    la = [a.train(*batch_for(a, i)) for i in range(8)]
    lb = [b.train(*batch_for(b, i)) for i in range(8)]
    assert la == lb
    assert np.array_equal(weights_of(a), weights_of(b))


def test_opt_out_runs_on_like_darknet(tmp_path, monkeypatch):
    cfg = small_cfg(tmp_path, lr=1000)
    net = darknet_rnn.load_network(cfg, seed=1)
    net.finite_guard = False
    losses = [net.train(*batch_for(net, i)) for i in range(40)]
    assert not math.isfinite(losses[-1])          # Darknet: NaN to the end, no error
    assert not np.isfinite(weights_of(net)).all()
    # the environment switch and strict=False do the same
    monkeypatch.setenv(guard.ENV, "0")
    assert not guard.enabled(darknet_rnn.load_network(cfg, seed=1))
    monkeypatch.delenv(guard.ENV)
    assert guard.enabled(darknet_rnn.load_network(cfg, seed=1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert not guard.enabled(darknet_rnn.load_network(cfg, seed=1, strict=False))
    on = darknet_rnn.load_network(cfg, seed=1)
    monkeypatch.setenv(guard.ENV, "off")
    on.finite_guard = True                        # the attribute wins over the environment
    assert guard.enabled(on)


@pytest.mark.parametrize("name,where", [("x", (2, 1, 3)), ("y", (0, 3, 5))])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_inputs_and_targets_refused(tmp_path, name, where, bad):
    net = darknet_rnn.load_network(small_cfg(tmp_path), seed=1)
    x, y = batch_for(net)
    (x if name == "x" else y)[where] = bad
    before = weights_of(net)
    for call in (lambda: net.train(x, y), lambda: net.forward_backward(x, y),
                 lambda: net.forward(x, y)):
        with pytest.raises(ValueError, match=rf"^{name} holds {bad} at time step {where[0]}, "
                           rf"stream {where[1]}, column {where[2]}: {name} must be finite"):
            call()
    assert net.seen == 0 and np.array_equal(weights_of(net), before)


def test_predict_refuses_nonfinite_input(tmp_path):
    net = darknet_rnn.load_network(small_cfg(tmp_path), seed=1, streams=1)
    x = np.zeros(net.inputs, np.float32)
    x[5] = np.nan
    with pytest.raises(ValueError, match=r"^x holds nan at time step 0, stream 0, column 5"):
        net.predict(x)


def test_predict_refuses_overflowing_weights(tmp_path):
    """Finite weights whose forward overflows: predict raises instead of
    returning NaN probabilities (which generate would turn into byte 255)."""
    net = darknet_rnn.load_network(small_cfg(tmp_path), seed=1, streams=1)
    net.layers[0].input_layer.weights[...] = 3e38
    x = np.zeros(net.inputs, np.float32)
    x[0] = 1
    with pytest.raises(DivergenceError, match=r"forward pass produced a non-finite value: "
                       r"the first is the output of layer 0 \[rnn\]"):
        net.predict(x)


def test_training_run_keeps_last_finite_checkpoint(tmp_path):
    cfg = small_cfg(tmp_path, lr=0.05, max_batches=400)
    net = darknet_rnn.load_network(cfg, seed=1)
    out = tmp_path / "out"
    out.mkdir()

    class Source:
        i = 0

        def next_batch(self):
            Source.i += 1
            if Source.i == 7:                     # the run blows up at iteration 7
                net.options.learning_rate = 1e38
            return batch_for(net, Source.i)
    run = TrainingRun(net, Source(), path_for=darknet_paths(out, "net"), save_every=3,
                      handle_signals=False, save_state=True)
    with pytest.raises(DivergenceError) as ei:
        run.run()
    msg = str(ei.value)
    backup = out / "net.backup"
    assert ei.value.checkpoint == str(backup)
    assert f"Last finite checkpoint: {backup} (iteration 6)." in msg
    assert not (out / "net_final.weights").exists()
    assert stray_temporaries(out) == []
    check = darknet_rnn.load_network(cfg, backup)           # loads: finite (guard on)
    assert check.seen == 6 * net.batch
    assert np.isfinite(weights_of(check)).all()


def test_no_loss_layer_refused_for_training_not_inference(tmp_path):
    text = "[net]\nbatch=2\ntime_steps=2\ninputs=4\n\n[rnn]\noutput=3\n\n[connected]\noutput=4\n"
    cfg = small_cfg(tmp_path, text=text)
    net = darknet_rnn.load_network(cfg, seed=1)
    net.forward(np.zeros((2, 2, 4), np.float32))            # inference works
    x, y = np.zeros((2, 2, 4), np.float32), np.zeros((2, 2, 4), np.float32)
    with pytest.raises(CfgError, match=rf"^{cfg}:9: the network has no loss layer .*"
                       r"last layer is \[connected\]"):
        net.train(x, y)
    assert net.seen == 0


def test_layer_after_loss_layer_refused_naming_its_line(tmp_path):
    text = ("[net]\nbatch=2\ntime_steps=2\ninputs=4\n\n[rnn]\noutput=4\n\n[softmax]\n\n"
            "[connected]\noutput=4\n")
    cfg = small_cfg(tmp_path, text=text)
    net = darknet_rnn.load_network(cfg, seed=1)
    with pytest.raises(CfgError, match=rf"^{cfg}:11: \[connected\] comes after the loss layer "
                       r"\[softmax\] at line 9"):
        net.train(*batch_for(net))
    assert net.seen == 0


def test_cli_divergence_exits_nonzero_with_one_line(tmp_path):
    cfg = small_cfg(tmp_path, lr=1000, max_batches=50, inputs=256, outputs=256)
    text = tmp_path / "t.txt"
    text.write_bytes(bytes(range(1, 9)) * 400)
    out = tmp_path / "out"
    p = cli("train", cfg, "--file", text, "--out", out, "--srand", 1, "--save-every", 1,
            "-q")
    line = one_line_error(p)
    assert p.returncode == 1
    assert "training diverged at iteration" in line and "Last finite checkpoint" in line
    assert not (out / "net_final.weights").exists()
    assert stray_temporaries(out) == []
    if (out / "net.backup").exists():
        darknet_rnn.load_network(cfg, out / "net.backup")   # finite, or this raises
    # opting out: Darknet's run to the end, exit 0
    q = cli("train", cfg, "--file", text, "--out", tmp_path / "out2", "--srand", 1, "-q",
            env={guard.ENV: "0"})
    assert q.returncode == 0, q.stderr


def test_cli_valid_and_generate_refuse_nonfinite_weights(tmp_path):
    cfg = small_cfg(tmp_path, inputs=256, outputs=256, streams=1, steps=1)
    net = darknet_rnn.load_network(cfg, seed=1)
    net.layers[1].weights[3, 7] = np.nan
    w = tmp_path / "nan.weights"
    net.save_weights(w)
    for args in (("valid", cfg, w, "--file", cfg), ("generate", cfg, w, "--len", 20)):
        p = cli(*args)
        line = one_line_error(p)
        assert p.returncode == 2
        assert f"{w}: holds nan at byte offset" in line and "layer 1 [connected]" in line
        assert p.stdout == b""
    # finite weights whose forward overflows: a clear refusal too, exit 1
    net.layers[1].weights[...] = 0
    net.layers[0].input_layer.weights[...] = 3e38
    net.save_weights(w)
    p = cli("generate", cfg, w, "--len", 20)
    line = one_line_error(p)
    assert p.returncode == 1 and "forward pass produced a non-finite value" in line


def test_first_nonfinite_matches_numpy():
    rng = np.random.default_rng(0)
    for n in (0, 1, 5, 1023, 1024, 1025, 5000):
        a = rng.standard_normal(n).astype(np.float32)
        assert guard.first_nonfinite(a) == -1
        for pos in {0, n // 2, n - 1} if n else ():
            b = a.copy()
            b[pos] = np.nan
            b[-1] = np.inf if pos != n - 1 else b[-1]
            assert guard.first_nonfinite(b) == int(np.flatnonzero(~np.isfinite(b))[0])
            assert guard.first_nonfinite(b.astype(np.float64)) == guard.first_nonfinite(b)


def test_weights_loader_refusal_leaves_network_untouched(tmp_path):
    cfg = small_cfg(tmp_path)
    net = darknet_rnn.load_network(cfg, seed=1)
    net.layers[0].self_layer.biases[2] = -np.inf
    w = tmp_path / "bad.weights"
    net.save_weights(w)
    fresh = darknet_rnn.load_network(cfg, seed=2)
    before = weights_of(fresh)
    with pytest.raises(WeightsError, match=r"holds -inf .*layer 0 \[rnn\] block 1 biases\[2\]"):
        fresh.load_weights(w)
    assert np.array_equal(weights_of(fresh), before) and fresh.seen == 0
    fresh.load_weights(w, allow_nonfinite=True)                 # for inspection
    assert np.isneginf(fresh.layers[0].self_layer.biases[2])


def test_recipes_report_a_diverged_recipe_in_its_row(tmp_path):
    """`darknet-rnn recipes`: a recipe the guard stops is a row that says so;
    the other recipes still run and the table is printed."""
    from darknet_rnn.recipes import run_recipe, table
    cfg = small_cfg(tmp_path, lr=1000, inputs=256, outputs=256)
    text = bytes(range(1, 120)) * 60
    bad = run_recipe("darknet", cfg, text, text[:500], iterations=30, seed=1, adam_lr=0.002,
                     clip_norm=1.0)
    good = run_recipe("adam", cfg, text, text[:500], iterations=3, seed=1, adam_lr=0.002,
                      clip_norm=1.0)
    assert bad["note"].startswith("diverged at iteration ") and math.isnan(bad["valid_bpc"])
    assert good["note"] == "" and math.isfinite(good["valid_bpc"])
    out = table([bad, good], 30, str(cfg))
    assert "| darknet | diverged at iteration" in out and "| adam | " in out
