/* gru_fast.c - the [gru] fast path (any kernel but REFERENCE).
 *
 * What does not depend on the recurrence is done in GEMMs over all
 * steps*batch rows: the input-to-gate sublayers uz, ur, uh forward, their
 * weight gradients and input deltas, and the weight gradients of wz, wr
 * (whose inputs, the states before each step, are contiguous in `states`)
 * and wh (inputs: forgot_state). Only wz, wr, wh forward and their input
 * deltas run step by step. The elementwise step math, per-step batch norm and
 * the backward's semantics are gru.c's own functions; only the float
 * summation order of the GEMMs differs from the reference kernel.
 */
#include "internal.h"

/* dst (B, in) += step t's delta rows . W */
static int step_input_delta(const dn_ctx *ctx, const dn_connected *c, int t, float *dst)
{
    return dn_gemm(ctx, 0, 0, c->batch, c->inputs, c->outputs, 1,
                   dn_rows(c->delta, t, c->batch, c->outputs), c->outputs, c->weights,
                   c->inputs, 1, dst, c->inputs);
}

static void set_delta(const dn_connected *c, int t, const float *g)
{
    dn_copy(c->batch * c->outputs, g, 1, dn_rows(c->delta, t, c->batch, c->outputs), 1);
}

/* packs: NULL, or inference packs in struct order (uz wz ur wr uh wh; see
 * gated_wp.c), each read instead of its sublayer's weights when it has data. */
int dn_gru_forward_fast(const dn_ctx *ctx, const dn_gru *l, const float *input, int train,
                        const dn_wpack *packs)
{
    const int B = l->batch, T = l->steps, H = l->outputs;
    int st;
#define PK(i) (packs ? &packs[i] : NULL)
    dn_gru_begin(l, train);
    if ((st = dn_sublayer_rows_forward(ctx, &l->uz, 0, T, input, train, PK(0)))) return st;
    if ((st = dn_sublayer_rows_forward(ctx, &l->ur, 0, T, input, train, PK(2)))) return st;
    if ((st = dn_sublayer_rows_forward(ctx, &l->uh, 0, T, input, train, PK(4)))) return st;
    for (int t = 0; t < T; ++t) {
        const float *s = dn_rows(l->states, t, B, H);
        if ((st = dn_sublayer_rows_forward(ctx, &l->wz, t, 1, s, train, PK(1)))) return st;
        if ((st = dn_sublayer_rows_forward(ctx, &l->wr, t, 1, s, train, PK(3)))) return st;
        if ((st = dn_gru_gates(l, t))) return st;
        if ((st = dn_sublayer_rows_forward(ctx, &l->wh, t, 1,
                                           dn_rows(l->forgot_state, t, B, H), train, PK(5))))
            return st;
        if ((st = dn_gru_output(l, t))) return st;
    }
#undef PK
    dn_gru_end(l);
    return DN_OK;
}

int dn_gru_backward_fast(const dn_ctx *ctx, const dn_gru *l, const float *input,
                         float *prev_delta)
{
    const int B = l->batch, T = l->steps, H = l->outputs;
    const long bh = (long)B * H;
    const int bn_fix = l->fixes & DN_FIX_BN_GRADIENT;
    float *dfs = l->scratch;                                 /* (B, H) */
    int st;
#define STATS(t) ((l->fixes & DN_FIX_BN_STEP_STATS) ? (t) : T - 1)

    for (int t = T - 1; t >= 0; --t) {
        /* each gate delta goes straight into the w* sublayer's rows, then a copy
         * into the u* one (the batch norm backward changes them in place) */
        float *gh = dn_rows(l->wh.delta, t, B, H), *gz = dn_rows(l->wz.delta, t, B, H);
        float *gr = dn_rows(l->wr.delta, t, B, H);
        if ((st = dn_gru_delta_h(l, t, gh))) return st;
        set_delta(&l->uh, t, gh);
        if ((st = dn_connected_backward_pre(&l->wh, t, STATS(t), bn_fix))) return st;
        for (long k = 0; k < bh; ++k) dfs[k] = 0;
        if ((st = step_input_delta(ctx, &l->wh, t, dfs))) return st;
        if ((st = dn_gru_delta_z(l, t, gz))) return st;
        set_delta(&l->uz, t, gz);
        if ((st = dn_gru_delta_r(l, t, dfs, gr))) return st;
        set_delta(&l->ur, t, gr);
        if ((st = dn_connected_backward_pre(&l->wz, t, STATS(t), bn_fix))) return st;
        if ((st = dn_connected_backward_pre(&l->wr, t, STATS(t), bn_fix))) return st;
        if (t > 0) {
            float *dprev = dn_rows(l->delta, t - 1, B, H);
            dn_gru_carry(l, t, dfs);
            if ((st = step_input_delta(ctx, &l->wz, t, dprev))) return st;
            if ((st = step_input_delta(ctx, &l->wr, t, dprev))) return st;
        }
    }
    /* weight gradients of the state-to-gate sublayers over all steps */
    if ((st = dn_sublayer_gradients(ctx, &l->wz, l->states, NULL))) return st;
    if ((st = dn_sublayer_gradients(ctx, &l->wr, l->states, NULL))) return st;
    if ((st = dn_sublayer_gradients(ctx, &l->wh, l->forgot_state, NULL))) return st;
    /* input-to-gate sublayers */
    const dn_connected *u[3] = {&l->uh, &l->uz, &l->ur};
    for (int j = 0; j < 3; ++j) {
        for (int t = T - 1; t >= 0; --t)
            if ((st = dn_connected_backward_pre(u[j], t, STATS(t), bn_fix))) return st;
        if ((st = dn_sublayer_gradients(ctx, u[j], input, prev_delta))) return st;
    }
    return DN_OK;
#undef STATS
}
