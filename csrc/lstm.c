/* lstm.c - Darknet's [lstm] layer (CPU path), step by step as lstm_layer.c.
 *
 * Per time step, with hidden state h, cell c and input x:
 *   f = logistic(wf h + uf x)    i = logistic(wi h + ui x)
 *   g = tanh(wg h + ug x)        o = logistic(wo h + uo x)
 *   c' = f*c + i*g               h' = o*tanh(c')   (h' is the step's output)
 * Eight linear connected sublayers (each with its own optional batch norm),
 * batch = streams, one step a call.
 *
 * State: h and c are carried between calls (Darknet never resets them on
 * the CPU). states[t] / cells[t] hold what step t starts from; blocks 1..T
 * of `states` are the layer output.
 *
 * Backward: Darknet's backward_lstm_layer, which upstream's CPU build never
 * installs (training crashes there); it is BPTT within the call except for
 * these departures, each with a DN_FIX_* bit that replaces it by the exact
 * step:
 *   PREV_STATE  at step 0 it uses step 0's own h and c as the "previous"
 *               ones (its buffers for them are only filled for steps >= 1;
 *               zeros when steps = 1);
 *   CELL_CARRY  the cell-gradient carry dc is never reset, so the last step
 *               of a call also gets the carry step 0 of the previous call
 *               left behind;
 *   NEXT_STATE  walking back it overwrites the carried h and c, so the next
 *               call starts from the state after step 0, not after the last;
 *   BN_STEP_STATS / BN_GRADIENT as in the [rnn].
 */
#include <limits.h>
#include "internal.h"

#define LSTM_SUBLAYERS(l) {&(l)->wf, &(l)->wi, &(l)->wg, &(l)->wo, \
                           &(l)->uf, &(l)->ui, &(l)->ug, &(l)->uo}

int dn_lstm_check(const dn_lstm *l)
{
    if (!l || l->batch < 1 || l->steps < 1 || l->inputs < 1 || l->outputs < 1)
        return DN_ERR_ARG;
    const int wide = l->inputs > l->outputs ? l->inputs : l->outputs;
    if ((long)(l->steps + 1) * l->batch * wide > INT_MAX) return DN_ERR_ARG;
    if (!l->state || !l->cell_state || !l->dc || !l->states || !l->cells || !l->f ||
        !l->i || !l->g || !l->o || !l->delta || !l->scratch)
        return DN_ERR_ARG;
    const dn_connected *s[8] = LSTM_SUBLAYERS(l);
    for (int j = 0; j < 8; ++j) {
        int in = j < 4 ? l->outputs : l->inputs;      /* w*: state, u*: input */
        if (s[j]->batch != l->batch || s[j]->steps != l->steps ||
            s[j]->outputs != l->outputs || s[j]->inputs != in ||
            s[j]->activation != DN_LINEAR)
            return DN_ERR_ARG;
        int st = dn_check_connected(s[j], 0);
        if (st) return st;
    }
    return DN_OK;
}

void dn_lstm_begin(const dn_lstm *l, int train)
{
    const long n = (long)l->steps * l->batch * l->outputs;
    const dn_connected *s[8] = LSTM_SUBLAYERS(l);
    for (int j = 0; j < 8; ++j)
        for (long k = 0; k < n; ++k) s[j]->delta[k] = 0;
    if (train)
        for (long k = 0; k < n; ++k) l->delta[k] = 0;
    dn_copy(l->batch * l->outputs, l->state, 1, l->states, 1);
    dn_copy(l->batch * l->outputs, l->cell_state, 1, l->cells, 1);
}

/* Gates of step t from the sublayer outputs, then c' and h'. */
int dn_lstm_cell(const dn_lstm *l, int t)
{
    const int B = l->batch, H = l->outputs, n = B * H;
    float *f = dn_rows(l->f, t, B, H), *i = dn_rows(l->i, t, B, H);
    float *g = dn_rows(l->g, t, B, H), *o = dn_rows(l->o, t, B, H);
    const float *c = dn_rows(l->cells, t, B, H);
    float *c_next = dn_rows(l->cells, t + 1, B, H), *h_next = dn_rows(l->states, t + 1, B, H);
#define SUM(dst, w, u) do { \
        const float *a_ = dn_rows(l->w.output, t, B, H), *b_ = dn_rows(l->u.output, t, B, H); \
        for (int k = 0; k < n; ++k) dst[k] = a_[k] + b_[k]; \
    } while (0)
    SUM(f, wf, uf);
    SUM(i, wi, ui);
    SUM(g, wg, ug);
    SUM(o, wo, uo);
#undef SUM
    int st = dn_activate(f, n, DN_LOGISTIC);
    if (!st) st = dn_activate(i, n, DN_LOGISTIC);
    if (!st) st = dn_activate(g, n, DN_TANH);
    if (!st) st = dn_activate(o, n, DN_LOGISTIC);
    if (st) return st;
    for (int k = 0; k < n; ++k) c_next[k] = c[k] * f[k] + i[k] * g[k];
    dn_copy(n, c_next, 1, h_next, 1);
    if ((st = dn_activate(h_next, n, DN_TANH))) return st;
    for (int k = 0; k < n; ++k) h_next[k] *= o[k];
    return DN_OK;
}

void dn_lstm_end(const dn_lstm *l)
{
    const int B = l->batch, H = l->outputs;
    dn_copy(B * H, dn_rows(l->states, l->steps, B, H), 1, l->state, 1);
    dn_copy(B * H, dn_rows(l->cells, l->steps, B, H), 1, l->cell_state, 1);
}

/* Before the backward: the "previous" state of step 0 (Darknet's quirk
 * unless DN_FIX_LSTM_PREV_STATE) and the carry reset (DN_FIX_LSTM_CELL_CARRY). */
void dn_lstm_backward_begin(const dn_lstm *l)
{
    const int B = l->batch, H = l->outputs, n = B * H;
    if (!(l->fixes & DN_FIX_LSTM_PREV_STATE)) {
        if (l->steps > 1) {
            dn_copy(n, dn_rows(l->states, 1, B, H), 1, l->states, 1);
            dn_copy(n, dn_rows(l->cells, 1, B, H), 1, l->cells, 1);
        } else {
            dn_fill(n, 0, l->states, 1);
            dn_fill(n, 0, l->cells, 1);
        }
    }
    if (l->fixes & DN_FIX_LSTM_CELL_CARRY) dn_fill(n, 0, l->dc, 1);
}

/* After it: Darknet leaves step 0's h and c as the carried state. */
void dn_lstm_backward_end(const dn_lstm *l)
{
    const int B = l->batch, H = l->outputs;
    if (l->fixes & DN_FIX_LSTM_NEXT_STATE) return;
    dn_copy(B * H, dn_rows(l->states, 1, B, H), 1, l->state, 1);
    dn_copy(B * H, dn_rows(l->cells, 1, B, H), 1, l->cell_state, 1);
}

/* tanh_c = tanh(c'), dc_t = dL/dc' = dh*o*tanh'(c') + dc (the carry from
 * step t+1); dh = the delta rows of step t. */
int dn_lstm_cell_delta(const dn_lstm *l, int t, float *tanh_c, float *dc_t)
{
    const int B = l->batch, H = l->outputs, n = B * H;
    const float *dh = dn_rows(l->delta, t, B, H), *o = dn_rows(l->o, t, B, H);
    dn_copy(n, dn_rows(l->cells, t + 1, B, H), 1, tanh_c, 1);
    int st = dn_activate(tanh_c, n, DN_TANH);
    if (st) return st;
    for (int k = 0; k < n; ++k) dc_t[k] = dh[k] * o[k];
    if ((st = dn_gradient(tanh_c, n, DN_TANH, dc_t))) return st;
    dn_axpy(n, 1, l->dc, 1, dc_t, 1);
    return DN_OK;
}

/* The delta of gate `which` ('o', 'g', 'i', 'f') of step t into out. */
int dn_lstm_gate_delta(const dn_lstm *l, int t, char which, const float *tanh_c,
                       const float *dc_t, float *out)
{
    const int B = l->batch, H = l->outputs, n = B * H;
    const float *dh = dn_rows(l->delta, t, B, H);
    switch (which) {
    case 'o': {          /* dh * tanh(c') * o' */
        for (int k = 0; k < n; ++k) out[k] = tanh_c[k] * dh[k];
        return dn_gradient(dn_rows(l->o, t, B, H), n, DN_LOGISTIC, out);
    }
    case 'g': {          /* dc * i * g' */
        const float *i = dn_rows(l->i, t, B, H);
        for (int k = 0; k < n; ++k) out[k] = dc_t[k] * i[k];
        return dn_gradient(dn_rows(l->g, t, B, H), n, DN_TANH, out);
    }
    case 'i': {          /* dc * g * i' */
        const float *g = dn_rows(l->g, t, B, H);
        for (int k = 0; k < n; ++k) out[k] = dc_t[k] * g[k];
        return dn_gradient(dn_rows(l->i, t, B, H), n, DN_LOGISTIC, out);
    }
    case 'f': {          /* dc * c * f' (c: the previous cell) */
        const float *c = dn_rows(l->cells, t, B, H);
        for (int k = 0; k < n; ++k) out[k] = dc_t[k] * c[k];
        return dn_gradient(dn_rows(l->f, t, B, H), n, DN_LOGISTIC, out);
    }
    default:
        return DN_ERR_ARG;
    }
}

/* The carry into step t-1: dc = dc_t * f. */
void dn_lstm_carry(const dn_lstm *l, int t, const float *dc_t)
{
    const int B = l->batch, H = l->outputs, n = B * H;
    const float *f = dn_rows(l->f, t, B, H);
    for (int k = 0; k < n; ++k) l->dc[k] = dc_t[k] * f[k];
}

int dn_lstm_forward(const dn_ctx *ctx, const dn_lstm *l, const float *input, int train)
{
    int st = dn_lstm_check(l);
    if (st) return st;
    if (!ctx || !input) return DN_ERR_ARG;
    if (ctx->kernel != DN_KERNEL_REFERENCE) return dn_lstm_forward_fast(ctx, l, input, train, NULL);
    const int B = l->batch, T = l->steps, H = l->outputs;
    const dn_connected *s[8] = LSTM_SUBLAYERS(l);
    dn_lstm_begin(l, train);
    for (int t = 0; t < T; ++t) {
        const float *x = input + (long)t * B * l->inputs;    /* (B, inputs) */
        const float *h = dn_rows(l->states, t, B, H);         /* (B, H) */
        for (int j = 0; j < 8; ++j)
            if ((st = dn_connected_forward(ctx, s[j], t, j < 4 ? h : x, train))) return st;
        if ((st = dn_lstm_cell(l, t))) return st;
    }
    dn_lstm_end(l);
    return DN_OK;
}

/* Darknet's order per gate: the state-to-gate sublayer (input delta into
 * dL/dh of step t-1), then the input-to-gate one (into the layer below). */
static int gate_backward(const dn_ctx *ctx, const dn_connected *w, const dn_connected *u,
                         int t, int stats, int bn_fix, const float *gate, const float *h_prev,
                         float *dh_prev, const float *x, float *dx)
{
    const int n = w->batch * w->outputs;
    dn_copy(n, gate, 1, dn_rows(w->delta, t, w->batch, w->outputs), 1);
    int st = dn_connected_backward(ctx, w, t, stats, bn_fix, h_prev, dh_prev);
    if (st) return st;
    dn_copy(n, gate, 1, dn_rows(u->delta, t, u->batch, u->outputs), 1);
    return dn_connected_backward(ctx, u, t, stats, bn_fix, x, dx);
}

int dn_lstm_backward(const dn_ctx *ctx, const dn_lstm *l, const float *input,
                     float *prev_delta)
{
    int st = dn_lstm_check(l);
    if (st) return st;
    if (!ctx || !input) return DN_ERR_ARG;
    if (ctx->kernel != DN_KERNEL_REFERENCE)
        return dn_lstm_backward_fast(ctx, l, input, prev_delta);
    const int B = l->batch, T = l->steps, H = l->outputs, I = l->inputs;
    const long bh = (long)B * H;
    const int bn_fix = l->fixes & DN_FIX_BN_GRADIENT;
    float *tanh_c = l->scratch, *dc_t = l->scratch + bh, *gate = l->scratch + 2 * bh;
    static const char order[4] = {'o', 'g', 'i', 'f'};
    const dn_connected *w[4] = {&l->wo, &l->wg, &l->wi, &l->wf};
    const dn_connected *u[4] = {&l->uo, &l->ug, &l->ui, &l->uf};

    dn_lstm_backward_begin(l);
    for (int t = T - 1; t >= 0; --t) {
        const int stats = (l->fixes & DN_FIX_BN_STEP_STATS) ? t : T - 1;
        const float *x = input + (long)t * B * I;
        float *dx = prev_delta ? prev_delta + (long)t * B * I : NULL;
        const float *h_prev = dn_rows(l->states, t, B, H);
        float *dh_prev = t > 0 ? dn_rows(l->delta, t - 1, B, H) : NULL;
        if ((st = dn_lstm_cell_delta(l, t, tanh_c, dc_t))) return st;
        for (int j = 0; j < 4; ++j) {
            if ((st = dn_lstm_gate_delta(l, t, order[j], tanh_c, dc_t, gate))) return st;
            if ((st = gate_backward(ctx, w[j], u[j], t, stats, bn_fix, gate, h_prev, dh_prev,
                                    x, dx)))
                return st;
        }
        dn_lstm_carry(l, t, dc_t);
    }
    dn_lstm_backward_end(l);
    return DN_OK;
}
