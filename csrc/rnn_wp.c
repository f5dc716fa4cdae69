/* rnn_wp.c - [connected] and [rnn] forwards on packed weights (wpack.c).
 *
 * Inference (generation, validation): each sublayer's product reads its
 * pack - fp32 in the GEMM's sliver layout (no packing per call: batched
 * generation) or bfloat16 (half the bytes per character) - then the fast
 * path's batch norm and activation (bn_fast.c) with the rolling statistics.
 * The state carries across calls as in rnn.c's inference loop.
 * Training with a fast kernel: W_self is packed once per forward into the
 * caller's buffer and rnn_fast.c runs every step's self product on it; the
 * backward packs W_self (untransposed) into the same buffer for its
 * per-step dS_{t-1} += dS_t W_self.
 * The REFERENCE kernel never reads a pack: it goes to rnn.c unchanged.
 */
#include "gemm_internal.h"

static int usable(const dn_wpack *p) { return p && p->data; }

int dn_connected_forward_wp(const dn_ctx *ctx, const dn_connected *l, int step,
                            const float *input, int train, const dn_wpack *p)
{
    if (!ctx || train || ctx->kernel == DN_KERNEL_REFERENCE || !usable(p))
        return dn_connected_forward(ctx, l, step, input, train);
    int st = dn_check_connected(l, step);
    if (st) return st;
    if (!input || p->n != l->outputs || p->k != l->inputs) return DN_ERR_ARG;
    const int n = l->batch, c = l->outputs;
    if ((st = dn_gemm_wpack(ctx, n, input, l->inputs, p, 0, dn_rows(l->output, step, n, c), c)))
        return st;
    return dn_connected_post_fast(l, step, 0);
}

int dn_rnn_forward_wp(const dn_ctx *ctx, const dn_rnn *l, const float *input, int train,
                      const dn_wpack *infer, dn_wpack *train_self)
{
    if (!ctx || ctx->kernel == DN_KERNEL_REFERENCE || (train && !usable(train_self)) ||
        (!train && !infer))
        return dn_rnn_forward(ctx, l, input, train);
    int st = dn_check_rnn(l);
    if (st) return st;
    if (!input) return DN_ERR_ARG;
    const int B = l->batch, H = l->outputs, T = l->steps;
    const long bh = (long)B * H;
    if (train) {
        if (train_self->kind != DN_WPACK_F32 || train_self->n != H || train_self->k != H)
            return DN_ERR_ARG;
        if ((st = dn_wpack_fill(train_self, l->self_layer.weights, H))) return st;
        return dn_rnn_forward_fast(ctx, l, input, train_self);
    }
    /* inference: rnn.c's loop, one state block carried across calls */
    dn_fill((int)(T * bh), 0, l->output_layer.delta, 1);
    dn_fill((int)(T * bh), 0, l->self_layer.delta, 1);
    dn_fill((int)(T * bh), 0, l->input_layer.delta, 1);
    float *h = l->state;
    for (int t = 0; t < T; ++t) {
        const float *x = input + (long)t * B * l->inputs;
        if ((st = dn_connected_forward_wp(ctx, &l->input_layer, t, x, 0, &infer[0]))) return st;
        if ((st = dn_connected_forward_wp(ctx, &l->self_layer, t, h, 0, &infer[1]))) return st;
        const float *a = dn_rows(l->input_layer.output, t, B, H);
        const float *b = dn_rows(l->self_layer.output, t, B, H);
        if (l->shortcut)
            for (long i = 0; i < bh; ++i) h[i] = (h[i] + a[i]) + b[i];
        else
            for (long i = 0; i < bh; ++i) h[i] = (0.0f + a[i]) + b[i];
        if ((st = dn_connected_forward_wp(ctx, &l->output_layer, t, h, 0, &infer[2]))) return st;
    }
    return DN_OK;
}

int dn_rnn_backward_wp(const dn_ctx *ctx, const dn_rnn *l, const float *input,
                       float *prev_delta, dn_wpack *train_self)
{
    if (!ctx || ctx->kernel == DN_KERNEL_REFERENCE || !usable(train_self))
        return dn_rnn_backward(ctx, l, input, prev_delta);
    int st = dn_check_rnn(l);
    if (st) return st;
    if (!input) return DN_ERR_ARG;
    const int H = l->outputs;
    const dn_gemm_isa *d = dn_gemm_isa_for(ctx->kernel);
    if (!d || !(dn_kernels_available() & (1 << ctx->kernel))) return DN_ERR_KERNEL;
    if (train_self->kind != DN_WPACK_F32 || train_self->kernel != ctx->kernel ||
        train_self->n != H || train_self->k != H ||
        train_self->floats < dn_gemm_packed_b_floats(d, H, H))
        return DN_ERR_ARG;
    /* the forward's pack of W_self^T is done with: the same buffer takes W_self */
    dn_gemm_pack_b(d, 0, H, H, l->self_layer.weights, H, train_self->data);
    return dn_rnn_backward_fast(ctx, l, input, prev_delta, train_self->data);
}
