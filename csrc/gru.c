/* gru.c - Darknet's [gru] layer (CPU path), step by step as gru_layer.c.
 *
 * Per time step, with s the state the step starts from and x its input:
 *   z  = logistic(uz x + wz s)        update gate (it weights the OLD state)
 *   r  = logistic(ur x + wr s)        reset gate
 *   h  = act(uh x + wh (r*s))         candidate; act = logistic, tanh if l->tanh
 *   s' = z*s + (1-z)*h                the step's output and the next state
 * The six sublayers are linear connected layers (each with its own batch
 * norm when batch_normalize is set), run with batch = streams, one step a
 * call.
 *
 * State: Darknet keeps one state buffer and never resets it on the CPU, in
 * training as in inference: a call starts from the state the previous call
 * ended with. states[0] receives that state, states[t+1] the output of step
 * t; the layer output is blocks 1..steps of `states`.
 *
 * Backward: Darknet's CPU backward_gru_layer is empty, so by default this
 * does nothing (training changes a GRU only through weight decay, and no
 * delta reaches the layer below). With DN_FIX_GRU_BACKWARD it is
 * backpropagation through time within the call; no gradient flows into the
 * state the call started from (truncated BPTT). The BN fixes apply as in
 * the [rnn].
 */
#include <limits.h>
#include "internal.h"

#define GRU_SUBLAYERS(l) {&(l)->uz, &(l)->wz, &(l)->ur, &(l)->wr, &(l)->uh, &(l)->wh}

int dn_gru_check(const dn_gru *l)
{
    if (!l || l->batch < 1 || l->steps < 1 || l->inputs < 1 || l->outputs < 1)
        return DN_ERR_ARG;
    const int wide = l->inputs > l->outputs ? l->inputs : l->outputs;
    if ((long)l->steps * l->batch * wide > INT_MAX) return DN_ERR_ARG;
    if (!l->state || !l->states || !l->z || !l->r || !l->h || !l->forgot_state ||
        !l->delta || !l->scratch)
        return DN_ERR_ARG;
    const dn_connected *s[6] = GRU_SUBLAYERS(l);
    for (int i = 0; i < 6; ++i) {
        /* even entries read the layer input, odd ones the state */
        int in = (i % 2 == 0) ? l->inputs : l->outputs;
        if (s[i]->batch != l->batch || s[i]->steps != l->steps ||
            s[i]->outputs != l->outputs || s[i]->inputs != in ||
            s[i]->activation != DN_LINEAR)
            return DN_ERR_ARG;
        int st = dn_check_connected(s[i], 0);
        if (st) return st;
    }
    return DN_OK;
}

/* Training zeroes the layer delta (Darknet: only in train mode); every call
 * zeroes the sublayer deltas; the carried state becomes states[0]. */
void dn_gru_begin(const dn_gru *l, int train)
{
    const long n = (long)l->steps * l->batch * l->outputs;
    const dn_connected *s[6] = GRU_SUBLAYERS(l);
    for (int i = 0; i < 6; ++i)
        for (long k = 0; k < n; ++k) s[i]->delta[k] = 0;
    if (train)
        for (long k = 0; k < n; ++k) l->delta[k] = 0;
    dn_copy(l->batch * l->outputs, l->state, 1, l->states, 1);
}

/* z, r (from the sublayer outputs of step t) and forgot_state = r*s. */
int dn_gru_gates(const dn_gru *l, int t)
{
    const int B = l->batch, H = l->outputs, n = B * H;
    float *z = dn_rows(l->z, t, B, H), *r = dn_rows(l->r, t, B, H);
    float *fs = dn_rows(l->forgot_state, t, B, H);
    const float *s = dn_rows(l->states, t, B, H);
    const float *uz = dn_rows(l->uz.output, t, B, H), *wz = dn_rows(l->wz.output, t, B, H);
    const float *ur = dn_rows(l->ur.output, t, B, H), *wr = dn_rows(l->wr.output, t, B, H);
    for (int k = 0; k < n; ++k) z[k] = uz[k] + wz[k];
    for (int k = 0; k < n; ++k) r[k] = ur[k] + wr[k];
    int st = dn_activate(z, n, DN_LOGISTIC);
    if (!st) st = dn_activate(r, n, DN_LOGISTIC);
    if (st) return st;
    for (int k = 0; k < n; ++k) fs[k] = s[k] * r[k];
    return DN_OK;
}

/* The candidate h (from uh, wh of step t) and the new state s'. */
int dn_gru_output(const dn_gru *l, int t)
{
    const int B = l->batch, H = l->outputs, n = B * H;
    float *h = dn_rows(l->h, t, B, H);
    const float *z = dn_rows(l->z, t, B, H);
    const float *s = dn_rows(l->states, t, B, H);
    float *s_next = dn_rows(l->states, t + 1, B, H);
    const float *uh = dn_rows(l->uh.output, t, B, H), *wh = dn_rows(l->wh.output, t, B, H);
    for (int k = 0; k < n; ++k) h[k] = uh[k] + wh[k];
    int st = dn_activate(h, n, l->tanh ? DN_TANH : DN_LOGISTIC);
    if (st) return st;
    /* Darknet's weighted_sum: s*z + (1-z)*h, float */
    for (int k = 0; k < n; ++k) s_next[k] = z[k] * s[k] + (1 - z[k]) * h[k];
    return DN_OK;
}

void dn_gru_end(const dn_gru *l)
{
    const int B = l->batch, H = l->outputs;
    dn_copy(B * H, dn_rows(l->states, l->steps, B, H), 1, l->state, 1);
}

/* ---- backward pieces (negative gradients, Darknet's sign) ----------------
 * dh = delta rows of step t: dL/ds' from above and from step t+1. */

/* gh = dh * (1-z) * act'(h): the delta of uh and wh. */
int dn_gru_delta_h(const dn_gru *l, int t, float *gh)
{
    const int B = l->batch, H = l->outputs, n = B * H;
    const float *dh = dn_rows(l->delta, t, B, H), *z = dn_rows(l->z, t, B, H);
    for (int k = 0; k < n; ++k) gh[k] = dh[k] * (1 - z[k]);
    return dn_gradient(dn_rows(l->h, t, B, H), n, l->tanh ? DN_TANH : DN_LOGISTIC, gh);
}

/* gz = dh * (s - h) * z(1-z): the delta of uz and wz. */
int dn_gru_delta_z(const dn_gru *l, int t, float *gz)
{
    const int B = l->batch, H = l->outputs, n = B * H;
    const float *dh = dn_rows(l->delta, t, B, H), *s = dn_rows(l->states, t, B, H);
    const float *h = dn_rows(l->h, t, B, H);
    for (int k = 0; k < n; ++k) gz[k] = dh[k] * (s[k] - h[k]);
    return dn_gradient(dn_rows(l->z, t, B, H), n, DN_LOGISTIC, gz);
}

/* gr = dfs * s * r(1-r), dfs = dL/d(r*s) from wh: the delta of ur and wr. */
int dn_gru_delta_r(const dn_gru *l, int t, const float *dfs, float *gr)
{
    const int B = l->batch, H = l->outputs, n = B * H;
    const float *s = dn_rows(l->states, t, B, H);
    for (int k = 0; k < n; ++k) gr[k] = dfs[k] * s[k];
    return dn_gradient(dn_rows(l->r, t, B, H), n, DN_LOGISTIC, gr);
}

/* The direct paths from s to s' (through z*s and r*s) into dL/ds, the delta
 * rows of step t-1 (t > 0). */
void dn_gru_carry(const dn_gru *l, int t, const float *dfs)
{
    const int B = l->batch, H = l->outputs, n = B * H;
    const float *dh = dn_rows(l->delta, t, B, H);
    const float *z = dn_rows(l->z, t, B, H), *r = dn_rows(l->r, t, B, H);
    float *dprev = dn_rows(l->delta, t - 1, B, H);
    for (int k = 0; k < n; ++k) dprev[k] += dh[k] * z[k] + dfs[k] * r[k];
}

int dn_gru_forward(const dn_ctx *ctx, const dn_gru *l, const float *input, int train)
{
    int st = dn_gru_check(l);
    if (st) return st;
    if (!ctx || !input) return DN_ERR_ARG;
    if (ctx->kernel != DN_KERNEL_REFERENCE) return dn_gru_forward_fast(ctx, l, input, train, NULL);
    const int B = l->batch, T = l->steps, H = l->outputs;
    dn_gru_begin(l, train);
    for (int t = 0; t < T; ++t) {
        const float *x = input + (long)t * B * l->inputs;    /* (B, inputs) */
        const float *s = dn_rows(l->states, t, B, H);         /* (B, H) */
        if ((st = dn_connected_forward(ctx, &l->wz, t, s, train))) return st;
        if ((st = dn_connected_forward(ctx, &l->wr, t, s, train))) return st;
        if ((st = dn_connected_forward(ctx, &l->uz, t, x, train))) return st;
        if ((st = dn_connected_forward(ctx, &l->ur, t, x, train))) return st;
        if ((st = dn_connected_forward(ctx, &l->uh, t, x, train))) return st;
        if ((st = dn_gru_gates(l, t))) return st;
        if ((st = dn_connected_forward(ctx, &l->wh, t, dn_rows(l->forgot_state, t, B, H),
                                       train)))
            return st;
        if ((st = dn_gru_output(l, t))) return st;
    }
    dn_gru_end(l);
    return DN_OK;
}

/* Copy a step's gate delta into a sublayer's delta rows. */
static void set_delta(const dn_connected *c, int t, const float *g)
{
    dn_copy(c->batch * c->outputs, g, 1, dn_rows(c->delta, t, c->batch, c->outputs), 1);
}

int dn_gru_backward(const dn_ctx *ctx, const dn_gru *l, const float *input,
                    float *prev_delta)
{
    int st = dn_gru_check(l);
    if (st) return st;
    if (!ctx || !input) return DN_ERR_ARG;
    if (!(l->fixes & DN_FIX_GRU_BACKWARD)) return DN_OK;     /* Darknet: empty */
    if (ctx->kernel != DN_KERNEL_REFERENCE)
        return dn_gru_backward_fast(ctx, l, input, prev_delta);
    const int B = l->batch, T = l->steps, H = l->outputs, I = l->inputs;
    const long bh = (long)B * H;
    const int bn_fix = l->fixes & DN_FIX_BN_GRADIENT;
    float *dfs = l->scratch, *gh = l->scratch + bh, *g = l->scratch + 2 * bh;  /* (B, H) */

    for (int t = T - 1; t >= 0; --t) {
        const int stats = (l->fixes & DN_FIX_BN_STEP_STATS) ? t : T - 1;
        const float *x = input + (long)t * B * I;
        float *dx = prev_delta ? prev_delta + (long)t * B * I : NULL;
        const float *s = dn_rows(l->states, t, B, H);
        float *dprev = t > 0 ? dn_rows(l->delta, t - 1, B, H) : NULL;

        /* candidate: uh, and wh whose input delta is dL/d(r*s) */
        if ((st = dn_gru_delta_h(l, t, gh))) return st;
        set_delta(&l->wh, t, gh);
        set_delta(&l->uh, t, gh);
        for (long k = 0; k < bh; ++k) dfs[k] = 0;
        if ((st = dn_connected_backward(ctx, &l->wh, t, stats, bn_fix,
                                        dn_rows(l->forgot_state, t, B, H), dfs)))
            return st;
        if ((st = dn_connected_backward(ctx, &l->uh, t, stats, bn_fix, x, dx))) return st;
        /* update gate */
        if ((st = dn_gru_delta_z(l, t, g))) return st;
        set_delta(&l->wz, t, g);
        set_delta(&l->uz, t, g);
        /* reset gate */
        if ((st = dn_gru_delta_r(l, t, dfs, g))) return st;
        set_delta(&l->wr, t, g);
        set_delta(&l->ur, t, g);
        /* dL/ds: the direct paths, then through wz and wr */
        if (dprev) dn_gru_carry(l, t, dfs);
        if ((st = dn_connected_backward(ctx, &l->wz, t, stats, bn_fix, s, dprev))) return st;
        if ((st = dn_connected_backward(ctx, &l->wr, t, stats, bn_fix, s, dprev))) return st;
        if ((st = dn_connected_backward(ctx, &l->uz, t, stats, bn_fix, x, dx))) return st;
        if ((st = dn_connected_backward(ctx, &l->ur, t, stats, bn_fix, x, dx))) return st;
    }
    return DN_OK;
}
