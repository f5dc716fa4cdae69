"""An expert NumPy training step: the yardstick `darknet-rnn bench` measures
the C core against.

The layer backend in numpy_layers.py keeps the structure of the C layers
(one class per layer type, Darknet's buffers, every option), which costs
temporaries and Python calls. This module is what a NumPy expert would
write for the one network the benchmark trains - N x [rnn] (batch norm or
not, no shortcut) + [connected] (no batch norm) + [softmax] - with the same
semantics (Darknet's backward with its quirks Q2-Q5, per-step batch norm,
rolling statistics, SGD with momentum and decay):

* every product is one np.matmul on OpenBLAS with `out=` into buffers
  allocated once; transposes are views (OpenBLAS's trans flags), never copies;
* the input and output sublayers, all batch norms of those sublayers and
  all weight gradients run over all steps*streams rows at once; only the
  self sublayer steps through time;
* plain ufuncs only: masked ufuncs (`where=`), np.where and np.copyto(where=)
  measured 5-15x slower than a plain ufunc pass on these arrays, so leaky
  is max(z, 0.1 z) and its gradient 0.1 + 0.9 (y > 0);
* batch norm runs on (steps, streams, units) views with per-step statistics
  from axis reductions, rolling statistics in closed form, the backward in
  two passes over the rows; activations and their gradients in place;
* the input sublayer's delta aliases the self sublayer's (Darknet copies
  one into the other; nothing writes either afterwards) and the Q4
  recomputation of h = a + b is skipped (without shortcut it equals the
  stored state).

How it was checked: tests/test_numpy_step.py trains it beside the native
reference kernel from the same weights (loss, output and every parameter
within the fast path's band); the bench repeats the loss check before it
times anything. Speed: its GEMMs alone (the same matmuls with nothing else)
are timed in the bench's `numpy GEMMs only` row, so the share of time spent
outside OpenBLAS is visible.
"""
import numpy as np

from ..policy import current_rate

F32 = np.float32
_SUPPORTED_ACT = ("leaky", "linear", "relu", "logistic", "tanh")


def _activate(z, act, tmp):
    """f(z) in place. Masked ufuncs (`where=`) and np.where are 5-15x slower
    than plain ufuncs on this data, so leaky is max(z, 0.1 z)."""
    if act == "leaky":
        np.multiply(z, F32(0.1), out=tmp)
        np.maximum(z, tmp, out=z)
    elif act == "relu":
        np.maximum(z, F32(0), out=z)
    elif act == "logistic":
        np.negative(z, out=z)
        np.exp(z, out=z)
        z += 1
        np.reciprocal(z, out=z)
    elif act == "tanh":
        np.tanh(z, out=z)


def _gradient(d, y, act, tmp, mask):
    """d *= f'(y) in place."""
    if act in ("leaky", "relu"):
        np.greater(y, 0, out=mask)
        if act == "relu":
            d *= mask
            return
        np.multiply(mask, F32(0.9), out=tmp)
        tmp += F32(0.1)
        d *= tmp
    elif act == "logistic":
        np.subtract(1, y, out=tmp)
        tmp *= y
        d *= tmp
    elif act == "tanh":
        np.multiply(y, y, out=tmp)
        np.subtract(1, tmp, out=tmp)
        d *= tmp


class _Dense:
    """One connected block (a sublayer of an [rnn], or the [connected])."""

    def __init__(self, src, rows, batch, steps):
        self.act = src.activation
        if self.act not in _SUPPORTED_ACT:
            raise NotImplementedError(f"expert NumPy step: activation {self.act!r}")
        self.bn = bool(src.batch_normalize)
        self.batch, self.steps = batch, steps
        self.W = np.array(src.weights, F32)
        self.b = np.array(src.biases, F32)
        self.dW = np.array(src.weight_updates, F32)
        self.db = np.array(src.bias_updates, F32)
        n = self.W.shape[0]
        self.z = np.zeros((rows, n), F32)          # output (activated)
        self.d = np.zeros((rows, n), F32)          # delta
        self.tmp = np.zeros((rows, n), F32)
        self.mask = np.zeros((rows, n), bool)
        if self.bn:
            self.s = np.array(src.scales, F32)
            self.ds = np.array(src.scale_updates, F32)
            self.rm = np.array(src.rolling_mean, F32)
            self.rv = np.array(src.rolling_variance, F32)
            self.x = np.zeros((rows, n), F32)
            self.xn = np.zeros((rows, n), F32)
            self.mean = np.zeros((steps, n), F32)
            self.var = np.zeros((steps, n), F32)
            self.tmp2 = np.zeros((rows, n), F32)

    def params(self):
        out = [(self.W, self.dW, True), (self.b, self.db, False)]
        if self.bn:
            out.append((self.s, self.ds, False))
        return out

    def post(self, t0, n):
        """Batch norm (statistics per step over `batch` rows) and the
        activation, in place on rows of steps t0..t0+n-1."""
        B = self.batch
        r = slice(t0 * B, (t0 + n) * B)
        z = self.z[r]
        if self.bn:
            H = z.shape[1]
            z3, xn3 = z.reshape(n, B, H), self.xn[r].reshape(n, B, H)
            np.copyto(self.x[r], z)
            m = z3.mean(axis=1, dtype=F32)                       # (n, H)
            np.subtract(z3, m[:, None], out=xn3)
            sq = self.tmp[r].reshape(n, B, H)
            np.multiply(xn3, xn3, out=sq)
            v = sq.sum(axis=1, dtype=F32)
            v *= F32(1.0 / (B - 1))
            self.mean[t0:t0 + n], self.var[t0:t0 + n] = m, v
            # rolling statistics, step after step, in closed form
            w = (F32(0.01) * F32(0.99) ** np.arange(n - 1, -1, -1, dtype=F32))
            k = F32(0.99) ** n
            self.rm *= k
            self.rm += w @ m
            self.rv *= k
            self.rv += w @ v
            inv = np.sqrt(v)
            inv += F32(1e-6)
            np.reciprocal(inv, out=inv)
            xn3 *= inv[:, None]
            np.multiply(self.xn[r], self.s, out=z)
        z += self.b
        _activate(z, self.act, self.tmp[r])

    def pre(self, t0, n, stats):
        """Activation gradient, bias gradient and Darknet's batch-norm
        backward (statistics of step `stats`, quirk Q5) on rows of steps
        t0..t0+n-1."""
        B = self.batch
        r = slice(t0 * B, (t0 + n) * B)
        d, tmp = self.d[r], self.tmp[r]
        _gradient(d, self.z[r], self.act, tmp, self.mask[r])
        self.db += d.sum(axis=0, dtype=F32)
        if not self.bn:
            return
        H = d.shape[1]
        np.multiply(d, self.xn[r], out=tmp)
        self.ds += tmp.sum(axis=0, dtype=F32)
        d *= self.s
        m, v = self.mean[stats], self.var[stats] + F32(1e-5)
        d3 = d.reshape(n, B, H)
        xc = tmp.reshape(n, B, H)
        np.subtract(self.x[r].reshape(n, B, H), m, out=xc)
        inv_root = F32(1) / np.sqrt(v)
        md = d3.sum(axis=1, dtype=F32)
        md *= -inv_root / F32(B)                                  # mean_delta / B
        prod = np.multiply(d3, xc, out=self.tmp2[r].reshape(n, B, H))
        vd = prod.sum(axis=1, dtype=F32)
        vd *= F32(-0.5) * v ** F32(-1.5) * F32(2.0 / B)          # 2 variance_delta / B
        d3 *= inv_root
        xc *= vd[:, None]
        d3 += xc
        d3 += md[:, None]

    def sgd(self, rate, momentum, decay_batch):
        for w, g, decay in self.params():
            if decay:
                g -= decay_batch * w
            w += rate * g
            g *= momentum


class NumpyStep:
    """train(x, y) = Network.train for the benchmark's network, in NumPy.

    Built from a Network (any backend) whose weights, updates and rolling
    statistics it copies; subdivisions=1, Darknet's backward (exact=False),
    not stateful."""

    def __init__(self, net):
        if net.subdivisions != 1 or net.fixes or net.stateful:
            raise NotImplementedError("expert NumPy step: subdivisions=1, Darknet's backward, "
                                      "not stateful")
        kinds = [k.name for k in net.kinds]
        if (len(kinds) < 3 or kinds[-2:] != ["connected", "softmax"]
                or any(k != "rnn" for k in kinds[:-2])):
            raise NotImplementedError(f"expert NumPy step: N x [rnn] + [connected] + [softmax], "
                                      f"got {kinds}")
        T, B = net.time_steps, net.streams
        self.T, self.B, self.rows = T, B, T * B
        self.rnn = []
        for l in net.layers[:-2]:
            if l.shortcut:
                raise NotImplementedError("expert NumPy step: [rnn] shortcut")
            subs = [_Dense(s, T * B, B, T) for s in l.sublayers]
            self.rnn.append((subs, np.zeros((T + 1, B, l.outputs), F32),
                             np.zeros((B, l.outputs), F32)))
        conn, soft = net.layers[-2], net.layers[-1]
        if conn.batch_normalize or soft.groups != 1 or soft.temperature != 1:
            raise NotImplementedError("expert NumPy step: plain [connected] and [softmax]")
        self.conn = _Dense(conn, T * B, T * B, 1)
        self.prob = np.zeros_like(self.conn.z)
        o = net.options
        self.options, self.momentum, self.decay = o, F32(o.momentum), F32(o.decay)
        self.rng = net.rng             # the lr policy's rand() stream (policy 'random')
        self.seen = net.seen
        self.batch = net.batch

    @property
    def output(self):
        return self.prob

    def _forward(self, x):
        T, B = self.T, self.B
        inp = x
        for (inl, sl, outl), state, tmp in self.rnn:
            np.matmul(inp, inl.W.T, out=inl.z)
            inl.post(0, T)
            state[0] = 0
            for t in range(T):
                zt = sl.z[t * B:(t + 1) * B]
                np.matmul(state[t], sl.W.T, out=zt)
                sl.post(t, 1)
                np.add(inl.z[t * B:(t + 1) * B], zt, out=state[t + 1])
            H = state.shape[2]
            np.matmul(state[1:].reshape(T * B, H), outl.W.T, out=outl.z)
            outl.post(0, T)
            inp = outl.z
        c = self.conn
        np.matmul(inp, c.W.T, out=c.z)
        c.post(0, 1)
        return inp

    def train(self, x, y):
        x = np.ascontiguousarray(x, F32).reshape(self.rows, -1)
        y = np.ascontiguousarray(y, F32).reshape(self.rows, -1)
        T, B = self.T, self.B
        self.seen += self.batch
        last = self._forward(x)
        # softmax and its cross-entropy
        p, c = self.prob, self.conn
        np.subtract(c.z, c.z.max(axis=1, keepdims=True), out=p)
        np.exp(p, out=p)
        p /= p.sum(axis=1, keepdims=True)
        loss = float(-np.log(p[y != 0]).sum(dtype=F32))
        np.subtract(y, p, out=c.d)
        # backward: connected, then each [rnn] from the last
        c.pre(0, 1, 0)
        c.dW += c.d.T @ last
        prev = self.rnn[-1][0][2].d
        np.matmul(c.d, c.W, out=prev)
        for li in range(len(self.rnn) - 1, -1, -1):
            (inl, sl, outl), state, tmp = self.rnn[li]
            H = state.shape[2]
            outl.pre(0, T, T - 1)
            np.matmul(outl.d, outl.W, out=sl.d)
            for t in range(T - 1, -1, -1):
                sl.pre(t, 1, T - 1)
                if t > 0:
                    np.matmul(sl.d[t * B:(t + 1) * B], sl.W, out=tmp)
                    sl.d[(t - 1) * B:t * B] += tmp
            sl.dW += sl.d.T @ state[:T].reshape(T * B, H)
            inl.d = sl.d                       # Darknet copies; aliasing is the same
            inl.pre(0, T, T - 1)
            inp = x if li == 0 else self.rnn[li - 1][0][2].z
            inl.dW += inl.d.T @ inp
            if li > 0:
                np.matmul(inl.d, inl.W, out=self.rnn[li - 1][0][2].d)
            outl.dW += outl.d.T @ state[1:].reshape(T * B, H)
        # update (Darknet's SGD; subdivisions = 1)
        rate = F32(current_rate(self.options, self.seen // self.batch, self.rng))
        rate /= F32(self.batch)
        db = F32(self.decay) * F32(self.batch)
        for subs, _, _ in self.rnn:
            for s in subs:
                s.sgd(rate, self.momentum, db)
        c.sgd(rate, self.momentum, db)
        return loss

    def gemm_only(self, x):
        """The same matmuls as train(), with nothing else (the share of a step
        that OpenBLAS itself takes)."""
        T, B = self.T, self.B
        x = np.ascontiguousarray(x, F32).reshape(self.rows, -1)
        inp = x
        for (inl, sl, outl), state, tmp in self.rnn:
            np.matmul(inp, inl.W.T, out=inl.z)
            for t in range(T):
                np.matmul(state[t], sl.W.T, out=sl.z[t * B:(t + 1) * B])
            H = state.shape[2]
            np.matmul(state[1:].reshape(T * B, H), outl.W.T, out=outl.z)
            inp = outl.z
        c = self.conn
        np.matmul(inp, c.W.T, out=c.z)
        c.dW += c.d.T @ inp
        np.matmul(c.d, c.W, out=self.rnn[-1][0][2].d)
        for li in range(len(self.rnn) - 1, -1, -1):
            (inl, sl, outl), state, tmp = self.rnn[li]
            H = state.shape[2]
            np.matmul(outl.d, outl.W, out=sl.d)
            for t in range(T - 1, 0, -1):
                np.matmul(sl.d[t * B:(t + 1) * B], sl.W, out=tmp)
            sl.dW += sl.d.T @ state[:T].reshape(T * B, H)
            inp = x if li == 0 else self.rnn[li - 1][0][2].z
            inl.dW += inl.d.T @ inp
            if li > 0:
                np.matmul(inl.d, inl.W, out=self.rnn[li - 1][0][2].d)
            outl.dW += outl.d.T @ state[1:].reshape(T * B, H)
