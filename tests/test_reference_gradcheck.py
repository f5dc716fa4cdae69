"""Finite-difference study of darknet_rnn.reference (SPEC section 15).

A small network  [connected linear] -> [rnn] -> [connected linear] -> head
(head = [softmax] cross-entropy or [cost] sse) is composed by hand the way
Darknet's network.c runs it, in float64. After one forward/backward the
accumulated updates of every parameter group are compared with -dL/dθ from
central differences (updates = -dL/dθ for softmax x-ent, -½ dL/dθ for SSE).

1. Where Darknet's backward is a true gradient, it matches to < 1e-6.
2. Where it is not (SPEC Q2-Q6, Q11), the affected groups are off by > 1e-2,
   and switching on the one matching FIX_* bit repairs them. The measured
   errors are printed (pytest -s) - these tests document the quirks.
3. With fixes=FIX_ALL the backward is exact BPTT for every tested mix of
   activation, batch norm, shortcut and T.

Relative error of a group = ||update - expected|| / max(||expected||, 1e-2).
The floor keeps groups whose true gradient is ~0 (a bias in front of a batch
norm, which removes any per-column shift) from dividing finite-difference
noise (~1e-9 absolute with h = 1e-6) by noise.
"""
import numpy as np
import pytest

from darknet_rnn import reference as R

F64 = np.float64
H_STEP = 1e-6
EXACT = 1e-6        # bound for "is a true gradient"
BROKEN = 1e-2       # bound for "is not"
GRADIENT_FLOOR = 1e-2


class TinyNet:
    """[connected linear] -> [rnn] -> [connected linear] -> head, float64.

    Rows are time-major (t*B + s). Every layer's delta is zeroed before its
    forward (network.c); backward runs last to first, each layer receiving
    the previous layer's output and delta buffer; the first layer gets none.
    """

    def __init__(self, *, streams=3, steps=3, inputs=3, hidden=4, classes=3,
                 activation="linear", batch_normalize=False, shortcut=False, fixes=0,
                 head="softmax", temperature=1.0, seed=0):
        B, T = streams, steps
        rows = B * T
        self.first = R.ConnectedLayer(rows, inputs, 3, "linear", dtype=F64)
        self.rnn = R.RNNLayer(B, 3, hidden, T, activation, batch_normalize, shortcut,
                              fixes=fixes, dtype=F64)
        self.last = R.ConnectedLayer(rows, hidden, classes, "linear", dtype=F64)
        if head == "softmax":
            self.head = R.SoftmaxLayer(rows, classes, temperature=temperature, fixes=fixes,
                                       dtype=F64)
        else:
            self.head = R.CostLayer(rows, classes, "sse", dtype=F64)
        self.layers = [self.first, self.rnn, self.last, self.head]
        self.kind = head

        rng = np.random.default_rng(seed)
        for name, layer in self.connected().items():
            layer.weights[...] = rng.uniform(-0.6, 0.6, layer.weights.shape)
            layer.biases[...] = rng.uniform(-0.2, 0.2, layer.biases.shape)
            if layer.batch_normalize:
                layer.scales[...] = rng.uniform(0.5, 1.5, layer.scales.shape)
        self.x = rng.standard_normal((rows, inputs))                       # (T*B, inputs)
        if head == "softmax":
            self.truth = np.eye(classes)[rng.integers(0, classes, rows)]   # one-hot (T*B, classes)
        else:
            self.truth = rng.uniform(-1, 1, (rows, classes))

    def connected(self):
        """Every connected layer, by parameter-group prefix."""
        return {"first": self.first, "rnn.input": self.rnn.input_layer,
                "rnn.self": self.rnn.self_layer, "rnn.output": self.rnn.output_layer,
                "last": self.last}

    def params(self):
        """Parameter groups: name -> (parameter array, its update accumulator)."""
        groups = {}
        for prefix, layer in self.connected().items():
            groups[prefix + ".weights"] = (layer.weights, layer.weight_updates)
            groups[prefix + ".biases"] = (layer.biases, layer.bias_updates)
            if layer.batch_normalize:
                groups[prefix + ".scales"] = (layer.scales, layer.scale_updates)
        return groups

    def forward(self):
        """Train-mode forward; returns the head's cost (the loss L)."""
        input = self.x
        for layer in self.layers:
            layer.delta[...] = 0
            if layer.type in ("softmax", "cost"):
                layer.forward(input, self.truth)
            else:
                layer.forward(input, True)
            input = layer.output
        return self.head.cost

    def backward(self):
        for i in reversed(range(len(self.layers))):
            layer = self.layers[i]
            below = self.layers[i - 1] if i > 0 else None
            input = below.output if below else self.x
            prev_delta = below.delta if below else None
            if layer.type in ("softmax", "cost"):
                layer.backward(prev_delta)
            else:
                layer.backward(input, prev_delta)

    def updates(self):
        """Accumulated updates after one forward/backward from zero."""
        for _, upd in self.params().values():
            upd[...] = 0
        self.forward()
        self.backward()
        return {name: upd.copy() for name, (_, upd) in self.params().items()}

    def expected_updates(self):
        """-dL/dθ by central differences (-½ dL/dθ for the SSE head)."""
        factor = -1.0 if self.kind == "softmax" else -0.5
        out = {}
        for name, (param, _) in self.params().items():
            g = np.zeros_like(param)
            for idx in np.ndindex(param.shape):
                saved = param[idx]
                param[idx] = saved + H_STEP
                plus = self.forward()
                param[idx] = saved - H_STEP
                minus = self.forward()
                param[idx] = saved
                g[idx] = (plus - minus) / (2 * H_STEP)
            out[name] = factor * g
        return out


def relative_errors(net):
    got = net.updates()
    want = net.expected_updates()
    return {name: float(np.linalg.norm(got[name] - want[name])
                        / max(np.linalg.norm(want[name]), GRADIENT_FLOOR))
            for name in got}


def show(label, errors):
    print(f"\n{label}")
    for name, err in errors.items():
        print(f"   {name:20s} {err:.3e}")


def assert_exact(errors, groups=None):
    groups = errors if groups is None else groups
    bad = {g: errors[g] for g in groups if not errors[g] < EXACT}
    assert not bad, f"not a true gradient (rel. err >= {EXACT}): {bad}"


def assert_broken(errors, groups):
    good = {g: errors[g] for g in groups if not errors[g] > BROKEN}
    assert not good, f"expected the quirk to show (rel. err > {BROKEN}): {good}"


RNN_GROUPS = ("rnn.input", "rnn.self", "rnn.output")


def groups_of(errors, *prefixes):
    return [g for g in errors if g.startswith(prefixes)]


# ---------------------------------------------------------------------------
# 1. Where Darknet's backward is a true gradient

@pytest.mark.parametrize("head", ["softmax", "sse"])
@pytest.mark.parametrize("steps,shortcut", [(1, False), (3, False), (1, True)])
def test_darknet_exact_for_linear_rnn(head, steps, shortcut):
    net = TinyNet(steps=steps, shortcut=shortcut, head=head, seed=1)
    errors = relative_errors(net)
    show(f"darknet, linear, T={steps}, shortcut={int(shortcut)}, head={head}", errors)
    assert_exact(errors)


@pytest.mark.parametrize("head", ["softmax", "sse"])
def test_darknet_exact_for_connected_without_bn(head):
    # A plain [connected logistic] -> head: no RNN, no BN, any activation is fine.
    rows, n_in, classes = 5, 4, 3
    rng = np.random.default_rng(2)
    layer = R.ConnectedLayer(rows, n_in, classes, "logistic", dtype=F64)
    layer.weights[...] = rng.uniform(-1, 1, layer.weights.shape)
    layer.biases[...] = rng.uniform(-1, 1, classes)
    x = rng.standard_normal((rows, n_in))
    if head == "softmax":
        top = R.SoftmaxLayer(rows, classes, dtype=F64)
        truth = np.eye(classes)[rng.integers(0, classes, rows)]
        factor = -1.0
    else:
        top = R.CostLayer(rows, classes, "sse", dtype=F64)
        truth = rng.uniform(0, 1, (rows, classes))
        factor = -0.5

    def loss():
        layer.delta[...] = 0
        layer.forward(x)
        top.delta[...] = 0
        top.forward(layer.output, truth)
        return top.cost

    loss()
    top.backward(layer.delta)
    layer.backward(x)
    for name, param, upd in (("weights", layer.weights, layer.weight_updates),
                             ("biases", layer.biases, layer.bias_updates)):
        g = np.zeros_like(param)
        for idx in np.ndindex(param.shape):
            saved = param[idx]
            param[idx] = saved + H_STEP
            plus = loss()
            param[idx] = saved - H_STEP
            minus = loss()
            param[idx] = saved
            g[idx] = (plus - minus) / (2 * H_STEP)
        err = np.linalg.norm(upd - factor * g) / np.linalg.norm(g)
        print(f"\nconnected logistic -> {head}: {name} {err:.3e}")
        assert err < EXACT


# ---------------------------------------------------------------------------
# 2. Where it is not: each quirk shows up, and its FIX_* bit alone repairs it

def test_q2_nonlinear_activation_breaks_input_layer():
    # The input layer receives dS_t after the self layer scaled it by f'(b_t).
    errors = relative_errors(TinyNet(activation="logistic", steps=3, seed=3))
    show("Q2: logistic, T=3, fixes=0", errors)
    assert_broken(errors, ["first.weights", "rnn.input.weights", "rnn.input.biases"])
    # SPEC §15: self and output layers (and everything above) stay exact.
    assert_exact(errors, groups_of(errors, "rnn.self", "rnn.output", "last"))

    fixed = relative_errors(TinyNet(activation="logistic", steps=3, seed=3,
                                    fixes=R.FIX_COPY_BEFORE_SCALE))
    show("Q2: logistic, T=3, FIX_COPY_BEFORE_SCALE", fixed)
    assert_exact(fixed)


def test_q4_shortcut_recomputed_state_breaks_output_weights():
    # Linear: f' = 1, so only the dropped shortcut term in the recomputed state shows.
    errors = relative_errors(TinyNet(shortcut=True, steps=3, seed=4))
    show("Q4: linear, shortcut, T=3, fixes=0", errors)
    assert_broken(errors, ["rnn.output.weights"])
    assert_exact(errors, [g for g in errors if g != "rnn.output.weights"])

    fixed = relative_errors(TinyNet(shortcut=True, steps=3, seed=4,
                                    fixes=R.FIX_STORED_STATE))
    show("Q4: linear, shortcut, T=3, FIX_STORED_STATE", fixed)
    assert_exact(fixed)


def test_q3_shortcut_carries_scaled_delta():
    base = R.FIX_COPY_BEFORE_SCALE | R.FIX_STORED_STATE
    errors = relative_errors(TinyNet(activation="logistic", shortcut=True, steps=3, seed=5,
                                     fixes=base))
    show("Q3: logistic, shortcut, T=3, copy+stored-state fixes", errors)
    assert_broken(errors, ["rnn.self.weights", "rnn.input.weights", "first.weights"])

    fixed = relative_errors(TinyNet(activation="logistic", shortcut=True, steps=3, seed=5,
                                    fixes=base | R.FIX_SHORTCUT_CARRY))
    show("Q3: + FIX_SHORTCUT_CARRY", fixed)
    assert_exact(fixed)


def test_darknet_bn_rnn_is_not_a_gradient():
    errors = relative_errors(TinyNet(batch_normalize=True, steps=1, seed=6))
    show("BN, linear, T=1, fixes=0 (Q2 + Q6)", errors)
    assert_broken(errors, ["rnn.input.weights", "rnn.input.scales"])


def test_q6_bn_backward_formula():
    # All RNN fixes but the BN derivative: T=1, so Q5 cannot matter either.
    errors = relative_errors(TinyNet(batch_normalize=True, steps=1, seed=6,
                                     fixes=R.FIX_ALL & ~R.FIX_BN_GRADIENT))
    show("Q6: BN, linear, T=1, FIX_ALL without FIX_BN_GRADIENT", errors)
    # (At T=1 the self layer only sees h_0 = 0: its weight gradient is exactly 0.)
    assert_broken(errors, ["rnn.input.weights", "rnn.input.scales", "rnn.output.weights"])


def test_q6_plain_connected_bn():
    # [connected linear BN] (N = 4 rows) -> [softmax], SPEC Q6: rel. err ~0.17.
    rows, n_in, classes = 4, 3, 3
    rng = np.random.default_rng(7)
    x = rng.standard_normal((rows, n_in))
    truth = np.eye(classes)[rng.integers(0, classes, rows)]

    def study(fixes):
        layer = R.ConnectedLayer(rows, n_in, classes, "linear", batch_normalize=True, dtype=F64)
        layer.weights[...] = np.random.default_rng(8).uniform(-1, 1, layer.weights.shape)
        layer.scales[...] = [0.7, 1.3, 1.1]
        top = R.SoftmaxLayer(rows, classes, dtype=F64)

        def loss():
            layer.delta[...] = 0
            layer.forward(x)
            top.forward(layer.output, truth)
            return top.cost

        loss()
        top.backward(layer.delta)
        layer.backward(x, fixes=fixes)
        g = np.zeros_like(layer.weights)
        for idx in np.ndindex(g.shape):
            saved = layer.weights[idx]
            layer.weights[idx] = saved + H_STEP
            plus = loss()
            layer.weights[idx] = saved - H_STEP
            minus = loss()
            layer.weights[idx] = saved
            g[idx] = (plus - minus) / (2 * H_STEP)
        return np.linalg.norm(layer.weight_updates + g) / np.linalg.norm(g)

    darknet, exact = study(0), study(R.FIX_BN_GRADIENT)
    print(f"\nQ6: connected BN N=4 weights: darknet {darknet:.3e}, FIX_BN_GRADIENT {exact:.3e}")
    assert darknet > BROKEN
    assert exact < EXACT


def test_q5_bn_uses_last_step_statistics():
    errors = relative_errors(TinyNet(activation="tanh", batch_normalize=True, steps=3, seed=9,
                                     fixes=R.FIX_ALL & ~R.FIX_BN_STEP_STATS))
    show("Q5: tanh, BN, T=3, FIX_ALL without FIX_BN_STEP_STATS", errors)
    assert_broken(errors, ["rnn.input.weights", "rnn.self.weights", "rnn.output.weights"])


def test_q11_softmax_temperature():
    errors = relative_errors(TinyNet(steps=3, temperature=2.0, seed=10))
    show("Q11: linear, T=3, softmax temperature 2, fixes=0", errors)
    # delta = t - p ignores the 1/temperature factor: every group is off by 2x.
    for g, err in errors.items():
        assert abs(err - 1.0) < 1e-5, (g, err)

    fixed = relative_errors(TinyNet(steps=3, temperature=2.0, seed=10,
                                    fixes=R.FIX_SOFTMAX_TEMPERATURE))
    show("Q11: + FIX_SOFTMAX_TEMPERATURE", fixed)
    assert_exact(fixed)


# Each bit of FIX_ALL is needed: dropping it alone breaks a network that exercises it.
NEEDS_BIT = [
    (R.FIX_COPY_BEFORE_SCALE, dict(activation="logistic", steps=3)),
    (R.FIX_SHORTCUT_CARRY, dict(activation="logistic", shortcut=True, steps=3)),
    (R.FIX_STORED_STATE, dict(activation="linear", shortcut=True, steps=3)),
    (R.FIX_BN_STEP_STATS, dict(activation="tanh", batch_normalize=True, steps=3)),
    (R.FIX_BN_GRADIENT, dict(activation="linear", batch_normalize=True, steps=1)),
    (R.FIX_SOFTMAX_TEMPERATURE, dict(activation="linear", steps=1, temperature=2.0)),
]


@pytest.mark.parametrize("bit,config", NEEDS_BIT, ids=[f"bit{b}" for b, _ in NEEDS_BIT])
def test_each_fix_is_needed(bit, config):
    errors = relative_errors(TinyNet(fixes=R.FIX_ALL & ~bit, seed=11, **config))
    worst = max(errors.values())
    show(f"FIX_ALL without bit {bit}, {config}: worst {worst:.3e}", errors)
    assert worst > BROKEN


# ---------------------------------------------------------------------------
# 3. FIX_ALL: exact BPTT

@pytest.mark.parametrize("steps", [1, 3])
@pytest.mark.parametrize("shortcut", [False, True])
@pytest.mark.parametrize("batch_normalize", [False, True])
@pytest.mark.parametrize("activation", ["linear", "logistic", "tanh", "elu", "selu"])
def test_fix_all_is_exact_bptt(activation, batch_normalize, shortcut, steps):
    net = TinyNet(activation=activation, batch_normalize=batch_normalize, shortcut=shortcut,
                  steps=steps, fixes=R.FIX_ALL, seed=12)
    errors = relative_errors(net)
    show(f"FIX_ALL {activation} bn={int(batch_normalize)} shortcut={int(shortcut)} T={steps}",
         errors)
    assert_exact(errors)


def test_fix_all_sse_head():
    # SSE head: updates are -½ dL/dθ; FIX_ALL with BN, shortcut, tanh, T=3.
    net = TinyNet(activation="tanh", batch_normalize=True, shortcut=True, steps=3,
                  fixes=R.FIX_ALL, head="sse", seed=13)
    errors = relative_errors(net)
    show("FIX_ALL tanh bn shortcut T=3, sse head", errors)
    assert_exact(errors)


def test_fix_all_softmax_temperature():
    net = TinyNet(activation="logistic", steps=3, fixes=R.FIX_ALL, temperature=0.7, seed=14)
    errors = relative_errors(net)
    show("FIX_ALL logistic T=3, softmax temperature 0.7", errors)
    assert_exact(errors)
