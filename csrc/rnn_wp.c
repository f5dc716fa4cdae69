/* rnn_wp.c - [connected] and [rnn] forwards on packed weights (wpack.c).
 *
 * Inference (generation, validation): each sublayer's product reads its
 * pack - fp32 in the GEMM's sliver layout (no packing per call: batched
 * generation) or bfloat16 (half the bytes per character) - then the fast
 * path's batch norm and activation (bn_fast.c) with the rolling statistics.
 * The state carries across calls as in rnn.c's inference loop.
 * Training with a fast kernel: W_self is packed once per forward into the
 * caller's buffer and rnn_fast.c runs every step's self product on it.
 * The REFERENCE kernel never reads a pack: it goes to rnn.c unchanged.
 */
#include "internal.h"

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
