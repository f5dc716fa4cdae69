/* gated_wp.c - the sublayer products of the gated fast paths (gru_fast.c,
 * lstm_fast.c), plain or on packed weights (wpack.c), and the [gru] /
 * [lstm] inference entry points that hand those paths packs.
 *
 * Inference on packs is the fast paths' own loop with train = 0: the
 * input-to-gate sublayers in one product over all steps*batch rows, the
 * state-to-gate sublayers step by step, each followed by the sublayer's
 * bias / batch norm and the elementwise step math of gru.c / lstm.c; only
 * the products read the packs: fp32 in the GEMM's sliver layout, or bfloat16. The packs come
 * in the sublayers' order in darknet_rnn (gru: uz wz ur wr uh wh; lstm:
 * uf ui ug uo wf wi wg wo); a pack whose data is NULL is read in place.
 * Training, the REFERENCE kernel and infer == NULL go to the unpacked
 * forward unchanged.
 */
#include "internal.h"

static int usable(const dn_wpack *p) { return p && p->data; }

/* The gated fast paths' sublayer products (declared in internal.h). */
int dn_sublayer_rows_forward(const dn_ctx *ctx, const dn_connected *c, int t, int nsteps,
                             const float *in, int train, const dn_wpack *p)
{
    const int m = nsteps * c->batch;
    float *out = dn_rows(c->output, t, c->batch, c->outputs);
    int st;
    if (usable(p)) {
        if (p->n != c->outputs || p->k != c->inputs) return DN_ERR_ARG;
        st = dn_gemm_wpack(ctx, m, in, c->inputs, p, 0, out, c->outputs);
    } else {
        st = dn_gemm(ctx, 0, 1, m, c->outputs, c->inputs, 1, in, c->inputs, c->weights,
                     c->inputs, 0, out, c->outputs);
    }
    for (int s = t; !st && s < t + nsteps; ++s) st = dn_connected_forward_post(c, s, train);
    return st;
}

int dn_sublayer_gradients(const dn_ctx *ctx, const dn_connected *c, const float *input,
                          float *prev_delta)
{
    const int rows = c->steps * c->batch;
    int st = dn_gemm(ctx, 1, 0, c->outputs, c->inputs, rows, 1, c->delta, c->outputs,
                     input, c->inputs, 1, c->weight_updates, c->inputs);
    if (!st && prev_delta)
        st = dn_gemm(ctx, 0, 0, rows, c->inputs, c->outputs, 1, c->delta, c->outputs,
                     c->weights, c->inputs, 1, prev_delta, c->inputs);
    return st;
}

int dn_gru_forward_wp(const dn_ctx *ctx, const dn_gru *l, const float *input, int train,
                      const dn_wpack *infer)
{
    if (!ctx || train || ctx->kernel == DN_KERNEL_REFERENCE || !infer)
        return dn_gru_forward(ctx, l, input, train);
    int st = dn_gru_check(l);
    if (st) return st;
    return input ? dn_gru_forward_fast(ctx, l, input, 0, infer) : DN_ERR_ARG;
}

int dn_lstm_forward_wp(const dn_ctx *ctx, const dn_lstm *l, const float *input, int train,
                       const dn_wpack *infer)
{
    if (!ctx || train || ctx->kernel == DN_KERNEL_REFERENCE || !infer)
        return dn_lstm_forward(ctx, l, input, train);
    int st = dn_lstm_check(l);
    if (st) return st;
    return input ? dn_lstm_forward_fast(ctx, l, input, 0, infer) : DN_ERR_ARG;
}
