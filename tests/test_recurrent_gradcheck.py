"""[gru]/[lstm] gradients against float64 finite differences, starting from a
carried (non-zero) state - the situation every datum after the first is in.

exact=True defines the training semantics: each datum starts from the state
the previous one ended with (its last step), and the gradient stops there
(truncated BPTT). Under that definition the accumulated updates must be
-dL/dθ (softmax cross-entropy) or -½ dL/dθ (SSE) for every parameter. Then
the departures of Darknet's CPU behaviour are measured: each LSTM fix bit is
needed, and the GRU has no gradient at all.
"""
import warnings

import numpy as np
import pytest

import darknet_rnn
from darknet_rnn.fixes import (FIX_ALL, FIX_BN_GRADIENT, FIX_BN_STEP_STATS, FIX_GRU_BACKWARD,
                               FIX_LSTM_CELL_CARRY, FIX_LSTM_NEXT_STATE, FIX_LSTM_PREV_STATE)

H_STEP = 1e-6
EXACT = 1e-6          # worst relative error allowed for exact BPTT
BROKEN = 1e-2         # a departure must be at least this visible
HEADS = {"softmax": "[connected]\noutput=3\nactivation=linear\n[softmax]\n",
         "cost": "[connected]\noutput=3\nactivation=linear\n[cost]\ntype=sse\n"}
FACTOR = {"softmax": 1.0, "cost": 0.5}


def network(tmp_path, sections, head="softmax", streams=3, steps=3, inputs=3, fixes=None):
    p = tmp_path / "net.cfg"
    p.write_text(f"[net]\nbatch={streams}\nsubdivisions=1\ntime_steps={steps}\ninputs={inputs}\n"
                 "learning_rate=0.1\nmomentum=0.9\ndecay=0.001\n" + sections + HEADS[head])
    net = darknet_rnn.load_network(p, seed=5, exact=True, backend="reference", dtype=np.float64)
    if fixes is not None:
        for layer in net.layers:
            if hasattr(layer, "fixes"):
                layer.fixes = fixes
    return net


def datum(net, head, rng):
    x = rng.standard_normal((net.time_steps, net.streams, net.inputs))
    if head == "softmax":
        y = np.eye(net.outputs)[rng.integers(0, net.outputs, (net.time_steps, net.streams))]
    else:
        y = rng.uniform(-1, 1, (net.time_steps, net.streams, net.outputs))
    return x, y


def relative_errors(net, head="softmax", seed=1, entries=6):
    """{param name: |updates - (-factor dL/dθ)| / |dL/dθ|} for the second
    datum (`entries` sampled entries of each parameter, None: all), from the
    carried state of the first."""
    rng = np.random.default_rng(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net.forward_backward(*datum(net, head, rng))       # leaves a carried state
    assert any(np.any(a != 0) for a in net.state_arrays())
    for p in net.params():
        p.grad[...] = 0
    x, y = datum(net, head, rng)
    start = [a.copy() for a in net.state_arrays()]

    def loss():
        for a, s in zip(net.state_arrays(), start):
            a[...] = s
        return net.forward(x, y, train=True)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net.forward_backward(x, y)
    errors = {}
    pick = np.random.default_rng(seed + 1)
    for p in net.params():
        flat = p.value.reshape(-1)
        chosen = (np.arange(flat.size) if entries is None else
                  pick.choice(flat.size, size=min(flat.size, entries), replace=False))
        grad = p.grad.reshape(-1)[chosen].copy()
        fd = np.empty(chosen.size)
        for j, i in enumerate(chosen):
            keep = flat[i]
            flat[i] = keep + H_STEP
            up = loss()
            flat[i] = keep - H_STEP
            down = loss()
            flat[i] = keep
            fd[j] = (up - down) / (2 * H_STEP)
        want = -FACTOR[head] * fd
        errors[p.name] = np.linalg.norm(grad - want) / max(np.linalg.norm(want), 1e-2)
    return errors


def show(title, errors):
    worst = max(errors, key=errors.get)
    print(f"{title}: worst {errors[worst]:.2e} ({worst})")


CONFIGS = {
    "gru-logistic": "[gru]\noutput=4\n",
    "gru-tanh": "[gru]\noutput=4\ntanh=1\n",
    "gru-bn": "[gru]\noutput=4\ntanh=1\nbatch_normalize=1\n",
    "lstm": "[lstm]\noutput=4\n",
    "lstm-bn": "[lstm]\noutput=4\nbatch_normalize=1\n",
    "gru-over-lstm": "[lstm]\noutput=4\n[gru]\noutput=3\ntanh=1\n",
    "mix-bn-below": "[connected]\noutput=4\nactivation=tanh\nbatch_normalize=1\n"
                    "[rnn]\noutput=4\nactivation=logistic\n[lstm]\noutput=4\n"
                    "[gru]\noutput=3\n",
}


@pytest.mark.parametrize("head,steps", [("softmax", 3), ("cost", 3), ("softmax", 1)])
@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_exact_matches_finite_differences(tmp_path, config, head, steps):
    errors = relative_errors(network(tmp_path, CONFIGS[config], head, steps=steps), head)
    show(f"exact {config} {head} T={steps}", errors)
    assert max(errors.values()) < EXACT, errors


def test_exact_gradient_reaches_layers_below(tmp_path):
    """With exact=True the layers under a GRU/LSTM learn (Darknet: nothing
    reaches the layers below a GRU)."""
    net = network(tmp_path, "[connected]\noutput=4\nactivation=tanh\n[gru]\noutput=4\n"
                  "[lstm]\noutput=3\n")
    net.forward_backward(*datum(net, "softmax", np.random.default_rng(0)))
    below = [p for p in net.params() if p.name.startswith("layer 0 ")]
    assert below and all(np.any(p.grad != 0) for p in below)


def test_darknet_gru_has_no_gradient(tmp_path):
    """Darknet's CPU [gru] backward is empty: no update reaches the GRU or the
    layers below it; the layers above still get theirs."""
    net = network(tmp_path, "[connected]\noutput=4\nactivation=tanh\n[gru]\noutput=4\n",
                  fixes=FIX_ALL & ~FIX_GRU_BACKWARD)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net.forward_backward(*datum(net, "softmax", np.random.default_rng(0)))
    for p in net.params():
        moved = bool(np.any(p.grad != 0))
        assert moved == p.name.startswith("layer 2 "), p.name


# Dropping one LSTM fix alone breaks the gradient of a net that exercises it.
NEEDS_BIT = [
    (FIX_LSTM_PREV_STATE, "[lstm]\noutput=4\n"),
    (FIX_LSTM_CELL_CARRY, "[lstm]\noutput=4\n"),
    (FIX_BN_STEP_STATS, "[lstm]\noutput=4\nbatch_normalize=1\n"),
    (FIX_BN_GRADIENT, "[lstm]\noutput=4\nbatch_normalize=1\n"),
    (FIX_BN_STEP_STATS, "[gru]\noutput=4\ntanh=1\nbatch_normalize=1\n"),
    (FIX_BN_GRADIENT, "[gru]\noutput=4\ntanh=1\nbatch_normalize=1\n"),
]


@pytest.mark.parametrize("bit,sections", NEEDS_BIT,
                         ids=[f"bit{b}-{s.split(']')[0][1:]}{'-bn' if 'batch' in s else ''}"
                              for b, s in NEEDS_BIT])
def test_each_departure_is_visible(tmp_path, bit, sections):
    errors = relative_errors(network(tmp_path, sections, fixes=FIX_ALL & ~bit), entries=None)
    show(f"FIX_ALL without bit {bit}, {sections.splitlines()[0]}", errors)
    assert max(errors.values()) > BROKEN


def test_darknet_lstm_one_step_forget_gate_never_learns(tmp_path):
    """With time_steps=1 Darknet's backward uses zeros as the previous h and
    c: the state-to-gate weights and both forget-gate blocks get no
    gradient; the other gates' biases still learn."""
    net = network(tmp_path, "[lstm]\noutput=4\n", steps=1, fixes=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for s in range(2):
            net.forward_backward(*datum(net, "softmax", np.random.default_rng(s)))
    for p in net.params():
        block = p.name.split("]")[1].strip().split(".")[0] if "lstm" in p.name else None
        if block is None:
            continue
        zero = not np.any(p.grad != 0)
        expect_zero = block in ("wf", "uf") or (block[0] == "w" and p.name.endswith("weights"))
        assert zero == expect_zero, p.name


@pytest.mark.parametrize("exact", [False, True], ids=["darknet", "exact"])
def test_next_datum_starts_from(tmp_path, exact):
    """Darknet's LSTM starts the next datum from h, c after step 0 (its
    backward overwrites them); exact=True from the last step. A GRU carries
    the last step's state either way."""
    fixes = FIX_ALL if exact else 0
    net = network(tmp_path, "[lstm]\noutput=4\n[gru]\noutput=3\n", steps=3, fixes=fixes)
    lstm, gru = net.layers[0], net.layers[1]
    B, H = net.streams, lstm.outputs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net.forward_backward(*datum(net, "softmax", np.random.default_rng(2)))
    out = lstm.output.reshape(net.time_steps, B, H)
    cells = lstm.cells
    step = net.time_steps - 1 if exact else 0
    np.testing.assert_array_equal(lstm.state, out[step])
    np.testing.assert_array_equal(lstm.cell_state, cells[step + 1])
    np.testing.assert_array_equal(gru.state, gru.output.reshape(net.time_steps, B, -1)[-1])
    assert bool(exact) == bool(lstm.fixes & FIX_LSTM_NEXT_STATE)


@pytest.mark.parametrize("sections", ["[lstm]\noutput=4\n", "[lstm]\noutput=4\nbatch_normalize=1\n"],
                         ids=["lstm", "lstm-bn"])
def test_darknet_lstm_backward_is_not_the_gradient(tmp_path, sections):
    """Darknet's own CPU backward (fixes=0), from a carried state: measured,
    and far from the gradient."""
    errors = relative_errors(network(tmp_path, sections, fixes=0), entries=None)
    show(f"Darknet's [lstm] backward, {sections.splitlines()[-1]}", errors)
    assert max(errors.values()) > BROKEN
