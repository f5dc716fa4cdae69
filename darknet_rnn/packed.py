"""Packed weights for the C core (csrc/wpack.c): a layer's weights packed
once and read by many products.

* Training with a fast kernel: each [rnn] packs W_self once per forward
  (RNNLayer does it on its own); every time step's self product reads the
  pack instead of packing W_self again.
* Inference, opt-in through `precision` (load_network(..., precision=),
  `--precision`):
    "fp32"         the weights themselves, read on every call (default;
                   writes into the weight arrays take effect at once);
    "fp32-packed"  fp32 copies in the GEMM's layout (batched generation
                   skips packing the weights on every call; below 8 streams
                   the weights are read in place, which is as fast there);
    "bf16"         copies rounded to bfloat16: half the bytes per character;
                   the inputs of each product are rounded to bfloat16 too
                   and the products summed in float. With the avx512 kernel
                   on a CPU with AVX512_BF16 (bf16_native()) vdpbf16ps does
                   the products; otherwise a portable C fallback (same
                   rounding of weights and inputs, several times slower).
  The copies are made when the precision is set and again after
  load_weights and every update through the Network; after writing into
  weight arrays by hand, call net.pack_weights().
"""
import numpy as np

from ._ffi import check, ffi, fptr, lib

PRECISIONS = ("fp32", "fp32-packed", "bf16")
SMALL_BATCH = 8      # fp32-packed below this many rows reads the weights in place
_KIND = {"fp32-packed": lib.DN_WPACK_F32, "bf16": lib.DN_WPACK_BF16}


def check_precision(precision):
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(map(repr, PRECISIONS))}, "
                         f"got {precision!r}")
    return precision


def bf16_native():
    """True when this CPU has AVX512_BF16 (the avx512 kernel then runs bf16
    products with vdpbf16ps; other kernels use the portable fallback)."""
    return bool(lib.dn_wpack_bf16_native())


class Packs:
    """`count` dn_wpack structs (contiguous, as dn_rnn_forward_wp wants
    them) for weight matrices of the given (n, k) shapes, with buffers."""

    def __init__(self, kind, kernel, shapes):
        self.kind, self.kernel = kind, kernel
        self.c = ffi.new(f"dn_wpack[{len(shapes)}]")
        self._bufs = []
        for i, (n, k) in enumerate(shapes):
            floats = int(lib.dn_wpack_floats(kernel, kind, n, k))
            if floats <= 0:
                raise ValueError(f"no packed layout of kind {kind} for kernel {kernel}")
            buf = np.zeros(floats, np.float32)
            self._bufs.append(buf)
            p = self.c[i]
            p.kind, p.kernel, p.n, p.k = kind, kernel, n, k
            p.floats, p.data = floats, fptr(buf)

    def fill(self, weights):
        for i, w in enumerate(weights):
            check(lib.dn_wpack_fill(ffi.addressof(self.c, i), fptr(w), w.shape[1]),
                  "pack weights")

    @property
    def ptr(self):
        return self.c


def inference_packs(precision, ctx_ptr, blocks):
    """Packs of the given connected blocks' weights for inference at this
    precision (None for "fp32" or the reference kernel)."""
    check_precision(precision)
    if precision == "fp32":
        return None
    if precision == "fp32-packed" and min(b.batch for b in blocks) < SMALL_BATCH:
        return None              # few rows: the dots kernels read W in place as fast
    if ctx_ptr.kernel == lib.DN_KERNEL_REFERENCE:
        raise ValueError(f"precision={precision!r} needs a fast kernel; the 'reference' "
                         "kernel runs Darknet's fp32 loops only")
    packs = Packs(_KIND[precision], ctx_ptr.kernel, [b.weights.shape for b in blocks])
    packs.fill([b.weights for b in blocks])
    return packs
