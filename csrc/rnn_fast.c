/* rnn_fast.c - the batched training path of the [rnn] layer (any kernel but
 * DN_KERNEL_REFERENCE); rnn.c chooses it and has already checked the layer.
 *
 * The work that does not depend on the recurrence is done in GEMMs over all
 * steps*batch rows - the input sublayer's forward, the output sublayer's
 * forward once every state is known, the output sublayer's input delta, and
 * all weight gradients. Only the self sublayer runs step by step. Per-step
 * batch norm, rolling statistics and Darknet's backward semantics
 * (including Q2-Q5 and their fixes, see rnn.c) are kept; only the float
 * summation order of the GEMMs differs from Darknet's, which is why the
 * REFERENCE kernel never comes here.
 *
 * Same buffers and layout as rnn.c: state (steps+1, batch, outputs) with
 * h_0 zeroed (or the carried state) by the forward, sublayer outputs/deltas
 * (steps*batch, outputs).
 * Nothing is allocated; l->scratch (one step) is the only temporary. With a
 * packed W_self (dn_rnn_forward_wp) the per-step self products skip the
 * packing of W_self (1 MB at 512 units) that each dn_gemm would repeat; the
 * backward's per-step dS_{t-1} += dS_t W_self likewise reads W_self packed
 * once (dn_rnn_backward_wp), not in place with a 4 KB row stride.
 */
#include "gemm_internal.h"

int dn_rnn_forward_fast(const dn_ctx *ctx, const dn_rnn *l, const float *input,
                        const dn_wpack *self_pack)
{
    const int B = l->batch, H = l->outputs, T = l->steps, I = l->inputs;
    const long bh = (long)B * H;
    const int tb = T * B;            /* rows of all steps; Python keeps it within int */
    const dn_connected *in = &l->input_layer, *self = &l->self_layer, *out = &l->output_layer;
    int st;

    /* Only the output sublayer's delta needs zeros (the next layer adds
     * into it); the backward overwrites the self and input sublayers'
     * deltas whole (a beta = 0 GEMM and a copy), so they are not cleared. */
    dn_fill(T * bh, 0, out->delta, 1);
    dn_rnn_train_begin(l);

    /* a = f(x W_in^T + b_in) for all steps: (T*B, H) */
    if ((st = dn_gemm(ctx, 0, 1, tb, H, I, 1, input, I, in->weights, I, 0, in->output, H)))
        return st;
    for (int t = 0; t < T; ++t)
        if ((st = dn_connected_post_fast(in, t, 1))) return st;

    for (int t = 0; t < T; ++t) {
        const float *h_prev = dn_rows(l->state, t, B, H);
        float *h_next = dn_rows(l->state, t + 1, B, H);
        float *b_t = dn_rows(self->output, t, B, H);
        const float *a_t = dn_rows(in->output, t, B, H);
        st = self_pack ? dn_gemm_wpack(ctx, B, h_prev, H, self_pack, 0, b_t, H)
                       : dn_gemm(ctx, 0, 1, B, H, H, 1, h_prev, H, self->weights, H, 0, b_t, H);
        if (st) return st;
        if ((st = dn_connected_post_fast(self, t, 1))) return st;
        if (l->shortcut)
            for (long i = 0; i < bh; ++i) h_next[i] = (h_prev[i] + a_t[i]) + b_t[i];
        else
            for (long i = 0; i < bh; ++i) h_next[i] = (0.0f + a_t[i]) + b_t[i];
    }

    /* y = f(h W_out^T + b_out) over states 1..T */
    if ((st = dn_gemm(ctx, 0, 1, tb, H, H, 1, l->state + bh, H, out->weights, H, 0,
                      out->output, H)))
        return st;
    for (int t = 0; t < T; ++t)
        if ((st = dn_connected_post_fast(out, t, 1))) return st;
    dn_rnn_train_end(l);
    return DN_OK;
}

int dn_rnn_backward_fast(const dn_ctx *ctx, const dn_rnn *l, const float *input,
                         float *prev_delta, const float *self_packed)
{
    const int B = l->batch, H = l->outputs, T = l->steps, I = l->inputs;
    const long bh = (long)B * H;
    const int tb = T * B;            /* rows of all steps; Python keeps it within int */
    const int fixes = l->fixes, bn_fix = fixes & DN_FIX_BN_GRADIENT;
    const dn_connected *in = &l->input_layer, *self = &l->self_layer, *out = &l->output_layer;
    int st;
#define STATS(t) ((fixes & DN_FIX_BN_STEP_STATS) ? (t) : T - 1)

    /* output sublayer: its deltas for all steps, then dS = D_out W_out */
    for (int t = 0; t < T; ++t)
        if ((st = dn_connected_pre_fast(out, t, STATS(t), bn_fix))) return st;
    if ((st = dn_gemm(ctx, 0, 0, tb, H, H, 1, out->delta, H, out->weights, H, 0,
                      self->delta, H)))
        return st;

    /* self sublayer, step by step (the recurrence) */
    for (int t = T - 1; t >= 0; --t) {
        float *dS_t = dn_rows(self->delta, t, B, H);
        float *dS_prev = t > 0 ? dn_rows(self->delta, t - 1, B, H) : NULL;
        dn_rnn_record_norm(l, t, dS_t);      /* complete: output at t, carries from t+1 */
        if (fixes & (DN_FIX_COPY_BEFORE_SCALE | DN_FIX_SHORTCUT_CARRY))
            dn_copy(bh, dS_t, 1, l->scratch, 1);
        if ((st = dn_connected_pre_fast(self, t, STATS(t), bn_fix))) return st;
        if (dS_prev &&
            (st = self_packed
                      ? dn_gemm_prepacked(ctx, 0, B, H, H, 1, dS_t, H, self_packed, 1, dS_prev, H)
                      : dn_gemm(ctx, 0, 0, B, H, H, 1, dS_t, H, self->weights, H, 1, dS_prev, H)))
            return st;
        dn_copy(bh, (fixes & DN_FIX_COPY_BEFORE_SCALE) ? l->scratch : dS_t, 1,
                dn_rows(in->delta, t, B, H), 1);
        if (l->shortcut && dS_prev)
            dn_axpy(bh, 1, (fixes & DN_FIX_SHORTCUT_CARRY) ? l->scratch : dS_t, 1, dS_prev, 1);
    }
    /* self weight gradient over all steps; inputs are the forward states 0..T-1 */
    if ((st = dn_gemm(ctx, 1, 0, H, H, tb, 1, self->delta, H, l->state, H, 1,
                      self->weight_updates, H)))
        return st;

    /* input sublayer over all steps */
    for (int t = 0; t < T; ++t)
        if ((st = dn_connected_pre_fast(in, t, STATS(t), bn_fix))) return st;
    if ((st = dn_gemm(ctx, 1, 0, H, I, tb, 1, in->delta, H, input, I, 1,
                      in->weight_updates, I)))
        return st;
    if (prev_delta &&
        (st = dn_gemm(ctx, 0, 0, tb, I, H, 1, in->delta, H, in->weights, I, 1, prev_delta, I)))
        return st;

    /* Q4: Darknet's output weight gradient sees h_{t+1} = a_t + b_t. */
    if (!(fixes & DN_FIX_STORED_STATE)) {
        float *h = l->state + bh;
        for (long i = 0; i < (long)tb * H; ++i) h[i] = in->output[i] + self->output[i];
    }
    return dn_gemm(ctx, 1, 0, H, H, tb, 1, out->delta, H, l->state + bh, H, 1,
                   out->weight_updates, H);
#undef STATS
}
