"""The native training step's GEMMs alone: a bench row that splits the step
into what the GEMM kernels take and everything else.

Same products as the fast path's step (csrc/rnn_fast.c, csrc/connected.c)
for the bench's network (n x [rnn] + [connected] + [softmax]): for every
[rnn] layer the input and output sublayers over all steps*streams rows, the
self sublayer step by step on W_self packed once per call (as the training
forward does), and in the backward the output and input deltas, the per-step
self products (on W_self packed once per call, as the backward does) and
the three weight gradients; the [connected] layer's
forward, weight gradient and input delta. Same shapes, transposes, beta and
thread count; random operands of the same sizes; nothing else (no batch
norm, activation, softmax, copies or update). Each product is one call from
Python (a few microseconds each: visible at --quick's small shapes only).
"""
import numpy as np

from .. import _ffi
from .._ffi import fptr, lib


class NativeGemms:
    def __init__(self, shape, threads):
        from ..packed import Packs
        self.ctx = _ffi.Context("auto", threads)
        T, B = shape["steps"], shape["streams"]
        H, K = shape["hidden"], shape["conn"]
        self.T, self.B, self.H, self.K = T, B, H, K
        R = T * B
        rng = np.random.default_rng(0)

        def arr(*s):
            return (0.01 * rng.standard_normal(s)).astype(np.float32)

        self.x = arr(R, shape["inputs"])
        self.layers = []
        i = shape["inputs"]
        for _ in range(shape["rnn_layers"]):
            d = {"I": i, "Win": arr(H, i), "Ws": arr(H, H), "Wo": arr(H, H),
                 "a": arr(R, H), "b": arr(R, H), "y": arr(R, H), "state": arr(T + 1, B, H),
                 "dy": arr(R, H), "ds": arr(R, H), "din": arr(R, H), "dx": arr(R, i),
                 "dWin": arr(H, i), "dWs": arr(H, H), "dWo": arr(H, H),
                 "pack": Packs(lib.DN_WPACK_F32, self.ctx.kernel, [(H, H)]),
                 "back": Packs(lib.DN_WPACK_F32, self.ctx.kernel, [(H, H)])}
            d["WsT"] = np.ascontiguousarray(d["Ws"].T)      # dS_t W_s = dS_t (W_s^T)^T
            self.layers.append(d)
            i = H
        self.Wc, self.dWc, self.z, self.dz = arr(K, H), arr(K, H), arr(R, K), arr(R, K)

    def _g(self, ta, tb, m, n, k, a, lda, b, ldb, beta, c, ldc):
        _ffi.check(lib.dn_gemm(self.ctx.ptr, ta, tb, m, n, k, 1.0, fptr(a), lda, fptr(b), ldb,
                               beta, fptr(c), ldc), "gemm")

    def __call__(self):
        T, B, H, K = self.T, self.B, self.H, self.K
        R, g, ctx = T * B, self._g, self.ctx.ptr
        inp = self.x
        for d in self.layers:
            I = d["I"]
            g(0, 1, R, H, I, inp, I, d["Win"], I, 0.0, d["a"], H)
            d["pack"].fill([d["Ws"]])
            st = d["state"]
            for t in range(T):
                _ffi.check(lib.dn_gemm_wpack(ctx, B, fptr(st[t]), H, d["pack"].ptr, 0.0,
                                             fptr(d["b"][t * B:(t + 1) * B]), H), "gemm")
            g(0, 1, R, H, H, st[1:], H, d["Wo"], H, 0.0, d["y"], H)
            inp = d["y"]
        g(0, 1, R, K, H, inp, H, self.Wc, H, 0.0, self.z, K)
        g(1, 0, K, H, R, self.dz, K, inp, H, 1.0, self.dWc, H)
        g(0, 0, R, H, K, self.dz, K, self.Wc, H, 1.0, self.layers[-1]["dy"], H)
        for li in range(len(self.layers) - 1, -1, -1):
            d = self.layers[li]
            I, st, ds = d["I"], d["state"], d["ds"]
            g(0, 0, R, H, H, d["dy"], H, d["Wo"], H, 0.0, ds, H)
            d["back"].fill([d["WsT"]])
            for t in range(T - 1, 0, -1):
                _ffi.check(lib.dn_gemm_wpack(ctx, B, fptr(ds[t * B:(t + 1) * B]), H,
                                             d["back"].ptr, 1.0, fptr(ds[(t - 1) * B:t * B]),
                                             H), "gemm")
            g(1, 0, H, H, R, ds, H, st[:T], H, 1.0, d["dWs"], H)
            below = self.x if li == 0 else self.layers[li - 1]["y"]
            g(1, 0, H, I, R, d["din"], H, below, I, 1.0, d["dWin"], I)
            if li > 0:
                g(0, 0, R, I, H, d["din"], H, d["Win"], I, 1.0, self.layers[li - 1]["dy"], I)
            g(1, 0, H, H, R, d["dy"], H, st[1:], H, 1.0, d["dWo"], H)
