"""PyTorch rows of `darknet-rnn bench`: the benchmark's network in PyTorch
(CPU, eager mode, float32), when torch is importable.

Same network and forward semantics as far as PyTorch allows: N x [rnn]
(a_t = f(BN_t(W_in x_t)), b_t = f(BN_t(W_self h_t)), h_{t+1} = a_t + b_t,
y_t = f(BN_t(W_out h_{t+1})), batch norm with each step's statistics over
the streams, unbiased variance, 1e-6 added to the deviation, rolling
statistics updated as Darknet does), [connected], [softmax] with the summed
cross-entropy, SGD with Darknet's momentum, decay and batch divisor
(torch.optim.SGD with lr/batch, decay*batch on weights only). The input
and output sublayers run as one matmul over all steps, as in the C fast
path. The backward is autograd's, i.e. the true gradient, not Darknet's
(the quirks Q2-Q6 are not reproduced): the first loss from the same
weights agrees with the C core, later ones drift apart. Weights are copied
from a Network.
"""
import numpy as np


def torch_version():
    """torch.__version__, or None when torch cannot be imported."""
    try:
        import torch
    except Exception:            # noqa: BLE001 - any import failure means "no torch"
        return None
    return torch.__version__


class TorchNet:
    def __init__(self, net, threads=1):
        import torch
        self.torch = torch
        torch.set_num_threads(threads)
        kinds = [k.name for k in net.kinds]
        if kinds[-2:] != ["connected", "softmax"] or any(k != "rnn" for k in kinds[:-2]):
            raise NotImplementedError(f"torch baseline: N x [rnn] + [connected] + [softmax], "
                                      f"got {kinds}")
        t = lambda a: torch.tensor(np.array(a), dtype=torch.float32)  # noqa: E731
        self.T, self.B = net.time_steps, net.streams
        self.act = [l.activation for l in net.layers[:-1]]
        for a in self.act:
            if a not in ("leaky", "linear", "relu", "tanh", "logistic"):
                raise NotImplementedError(f"torch baseline: activation {a}")
        self.rnn = []
        decayed, plain = [], []
        for l in net.layers[:-2]:
            subs = []
            for s in l.sublayers:
                d = {"W": t(s.weights).requires_grad_(), "b": t(s.biases).requires_grad_(),
                     "bn": bool(s.batch_normalize)}
                decayed.append(d["W"])
                plain.append(d["b"])
                if d["bn"]:
                    d["s"] = t(s.scales).requires_grad_()
                    d["rm"], d["rv"] = t(s.rolling_mean), t(s.rolling_variance)
                    plain.append(d["s"])
                subs.append(d)
            self.rnn.append((subs, l.activation))
        c = net.layers[-2]
        if c.batch_normalize:
            raise NotImplementedError("torch baseline: [connected] without batch norm")
        self.conn = {"W": t(c.weights).requires_grad_(), "b": t(c.biases).requires_grad_(),
                     "bn": False}
        decayed.append(self.conn["W"])
        plain.append(self.conn["b"])
        batch = net.batch
        o = net.options
        rate = float(net.current_rate()) / batch
        self.opt = torch.optim.SGD([{"params": decayed, "weight_decay": o.decay * batch},
                                    {"params": plain, "weight_decay": 0.0}],
                                   lr=rate, momentum=o.momentum)

    def _act(self, z, a):
        F = self.torch.nn.functional
        if a == "leaky":
            return F.leaky_relu(z, 0.1)
        if a == "relu":
            return self.torch.relu(z)
        if a == "tanh":
            return self.torch.tanh(z)
        if a == "logistic":
            return self.torch.sigmoid(z)
        return z

    def _dense(self, x, d, a, steps, train):
        """f(BN(x W^T)) (or f(x W^T + b)) over `steps` blocks of rows."""
        torch = self.torch
        z = x @ d["W"].T
        if d["bn"]:
            z = z.view(steps, -1, z.shape[-1])
            if train:
                m = z.mean(1, keepdim=True)
                v = z.var(1, unbiased=True, keepdim=True)
                with torch.no_grad():
                    for t in range(steps):
                        d["rm"].mul_(0.99).add_(m[t, 0], alpha=0.01)
                        d["rv"].mul_(0.99).add_(v[t, 0], alpha=0.01)
            else:
                m, v = d["rm"], d["rv"]
            z = ((z - m) / (v.sqrt() + 1e-6) * d["s"] + d["b"]).view(-1, z.shape[-1])
        else:
            z = z + d["b"]
        return self._act(z, a)

    def _forward(self, x, train, state=None):
        torch = self.torch
        T = self.T if train else 1
        inp = x
        for li, (subs, a) in enumerate(self.rnn):
            inl, sl, outl = subs
            A = self._dense(inp, inl, a, T, train)
            B = A.shape[0] // T
            h = state[li] if state is not None else torch.zeros(B, A.shape[1])
            hs = []
            for t in range(T):
                h = A[t * B:(t + 1) * B] + self._dense(h, sl, a, 1, train)
                hs.append(h)
            if state is not None:
                state[li] = h
            inp = self._dense(torch.cat(hs), outl, a, T, train)
        return self._dense(inp, self.conn, self.act[-1], 1, train)

    def train(self, x, y):
        torch = self.torch
        x = torch.from_numpy(np.ascontiguousarray(x, np.float32).reshape(self.T * self.B, -1))
        target = torch.from_numpy(np.asarray(y).reshape(self.T * self.B, -1).argmax(1))
        logits = self._forward(x, True)
        loss = torch.nn.functional.cross_entropy(logits, target, reduction="sum")
        self.opt.zero_grad(set_to_none=False)
        loss.backward()
        self.opt.step()
        self.last = logits.detach()
        return float(loss.detach())

    def generator(self, streams):
        """A callable x (streams, inputs) -> probabilities, state carried."""
        torch = self.torch
        state = [torch.zeros(streams, subs[0]["W"].shape[0]) for subs, _ in self.rnn]

        def step(x):
            with torch.no_grad():
                xt = torch.from_numpy(np.ascontiguousarray(x, np.float32).reshape(streams, -1))
                return torch.softmax(self._forward(xt, False, state), 1).numpy()
        return step
