/* lstm_fast.c - the [lstm] fast path (any kernel but REFERENCE).
 *
 * GEMMs over all steps*batch rows for everything the recurrence does not
 * need step by step: the four input-to-gate sublayers' forward, their weight
 * gradients and input deltas, and the weight gradients of the four
 * state-to-gate sublayers (their inputs, the hidden states before each
 * step, are contiguous in `states`). Per step remain the state-to-gate
 * forward GEMMs and their input deltas (dL/dh of the previous step). The
 * elementwise math, per-step batch norm and the backward's semantics
 * (including Darknet's departures and their fixes) are lstm.c's functions;
 * only the float summation order of the GEMMs differs.
 */
#include "internal.h"

/* packs: NULL, or inference packs uf ui ug uo wf wi wg wo (see gated_wp.c),
 * each read instead of its sublayer's weights when it has data. */
int dn_lstm_forward_fast(const dn_ctx *ctx, const dn_lstm *l, const float *input, int train,
                         const dn_wpack *packs)
{
    const int B = l->batch, T = l->steps;
    const dn_connected *w[4] = {&l->wf, &l->wi, &l->wg, &l->wo};
    const dn_connected *u[4] = {&l->uf, &l->ui, &l->ug, &l->uo};
    int st;
    dn_lstm_begin(l, train);
    for (int j = 0; j < 4; ++j)
        if ((st = dn_sublayer_rows_forward(ctx, u[j], 0, T, input, train,
                                           packs ? &packs[j] : NULL)))
            return st;
    for (int t = 0; t < T; ++t) {
        const float *h = dn_rows(l->states, t, B, l->outputs);     /* (B, H) */
        for (int j = 0; j < 4; ++j)
            if ((st = dn_sublayer_rows_forward(ctx, w[j], t, 1, h, train,
                                               packs ? &packs[4 + j] : NULL)))
                return st;
        if ((st = dn_lstm_cell(l, t))) return st;
    }
    dn_lstm_end(l);
    return DN_OK;
}

int dn_lstm_backward_fast(const dn_ctx *ctx, const dn_lstm *l, const float *input,
                          float *prev_delta)
{
    const int B = l->batch, T = l->steps, H = l->outputs;
    const long bh = (long)B * H;
    const int bn_fix = l->fixes & DN_FIX_BN_GRADIENT;
    float *tanh_c = l->scratch, *dc_t = l->scratch + bh;     /* (B, H) each */
    static const char order[4] = {'o', 'g', 'i', 'f'};
    const dn_connected *w[4] = {&l->wo, &l->wg, &l->wi, &l->wf};
    const dn_connected *u[4] = {&l->uo, &l->ug, &l->ui, &l->uf};
    int st;
#define STATS(t) ((l->fixes & DN_FIX_BN_STEP_STATS) ? (t) : T - 1)

    dn_lstm_backward_begin(l);
    for (int t = T - 1; t >= 0; --t) {
        float *dh_prev = t > 0 ? dn_rows(l->delta, t - 1, B, H) : NULL;
        if ((st = dn_lstm_cell_delta(l, t, tanh_c, dc_t))) return st;
        for (int j = 0; j < 4; ++j) {
            float *gate = dn_rows(w[j]->delta, t, B, H);   /* then a copy for u[j] */
            if ((st = dn_lstm_gate_delta(l, t, order[j], tanh_c, dc_t, gate))) return st;
            dn_copy(B * H, gate, 1, dn_rows(u[j]->delta, t, B, H), 1);
            if ((st = dn_connected_backward_pre(w[j], t, STATS(t), bn_fix))) return st;
            if (dh_prev &&
                (st = dn_gemm(ctx, 0, 0, B, H, H, 1, dn_rows(w[j]->delta, t, B, H), H,
                              w[j]->weights, H, 1, dh_prev, H)))
                return st;
        }
        dn_lstm_carry(l, t, dc_t);
    }
    for (int j = 0; j < 4; ++j) {
        if ((st = dn_sublayer_gradients(ctx, w[j], l->states, NULL))) return st;
        for (int t = T - 1; t >= 0; --t)
            if ((st = dn_connected_backward_pre(u[j], t, STATS(t), bn_fix))) return st;
        if ((st = dn_sublayer_gradients(ctx, u[j], input, prev_delta))) return st;
    }
    dn_lstm_backward_end(l);
    return DN_OK;
#undef STATS
}
