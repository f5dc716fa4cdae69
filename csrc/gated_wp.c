/* gated_wp.c - [gru] and [lstm] inference on packed weights (wpack.c).
 *
 * The same loop as the gated fast paths' inference (gru_fast.c,
 * lstm_fast.c with train = 0): the input-to-gate sublayers in one product
 * over all steps*batch rows, the state-to-gate sublayers step by step, each
 * followed by the sublayer's bias / batch norm (the fast paths' own post)
 * and the elementwise step math of gru.c / lstm.c; only the products read
 * the packs: fp32 in the GEMM's sliver layout, or bfloat16. The packs come
 * in the sublayers' order in darknet_rnn (gru: uz wz ur wr uh wh; lstm:
 * uf ui ug uo wf wi wg wo); a pack whose data is NULL is read in place.
 * Training, the REFERENCE kernel and infer == NULL go to the unpacked
 * forward unchanged.
 */
#include "internal.h"

static int usable(const dn_wpack *p) { return p && p->data; }

/* Rows of steps [t, t + nsteps) of c: out = in W^T (packed when usable),
 * then per step the inference post. */
static int wp_rows(const dn_ctx *ctx, const dn_connected *c, int t, int nsteps,
                   const float *in, const dn_wpack *p)
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
    for (int s = t; !st && s < t + nsteps; ++s) st = dn_connected_forward_post(c, s, 0);
    return st;
}

int dn_gru_forward_wp(const dn_ctx *ctx, const dn_gru *l, const float *input, int train,
                      const dn_wpack *infer)
{
    if (!ctx || train || ctx->kernel == DN_KERNEL_REFERENCE || !infer)
        return dn_gru_forward(ctx, l, input, train);
    int st = dn_gru_check(l);
    if (st) return st;
    if (!input) return DN_ERR_ARG;
    const int B = l->batch, T = l->steps, H = l->outputs;
    dn_gru_begin(l, 0);
    if ((st = wp_rows(ctx, &l->uz, 0, T, input, &infer[0]))) return st;
    if ((st = wp_rows(ctx, &l->ur, 0, T, input, &infer[2]))) return st;
    if ((st = wp_rows(ctx, &l->uh, 0, T, input, &infer[4]))) return st;
    for (int t = 0; t < T; ++t) {
        const float *s = dn_rows(l->states, t, B, H);
        if ((st = wp_rows(ctx, &l->wz, t, 1, s, &infer[1]))) return st;
        if ((st = wp_rows(ctx, &l->wr, t, 1, s, &infer[3]))) return st;
        if ((st = dn_gru_gates(l, t))) return st;
        if ((st = wp_rows(ctx, &l->wh, t, 1, dn_rows(l->forgot_state, t, B, H), &infer[5])))
            return st;
        if ((st = dn_gru_output(l, t))) return st;
    }
    dn_gru_end(l);
    return DN_OK;
}

int dn_lstm_forward_wp(const dn_ctx *ctx, const dn_lstm *l, const float *input, int train,
                       const dn_wpack *infer)
{
    if (!ctx || train || ctx->kernel == DN_KERNEL_REFERENCE || !infer)
        return dn_lstm_forward(ctx, l, input, train);
    int st = dn_lstm_check(l);
    if (st) return st;
    if (!input) return DN_ERR_ARG;
    const int B = l->batch, T = l->steps, H = l->outputs;
    const dn_connected *u[4] = {&l->uf, &l->ui, &l->ug, &l->uo};
    const dn_connected *w[4] = {&l->wf, &l->wi, &l->wg, &l->wo};
    dn_lstm_begin(l, 0);
    for (int j = 0; j < 4; ++j)
        if ((st = wp_rows(ctx, u[j], 0, T, input, &infer[j]))) return st;
    for (int t = 0; t < T; ++t) {
        const float *h = dn_rows(l->states, t, B, H);
        for (int j = 0; j < 4; ++j)
            if ((st = wp_rows(ctx, w[j], t, 1, h, &infer[4 + j]))) return st;
        if ((st = dn_lstm_cell(l, t))) return st;
    }
    dn_lstm_end(l);
    return DN_OK;
}
