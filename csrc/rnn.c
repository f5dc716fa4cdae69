/* rnn.c - Darknet's [rnn] layer (CPU path), step by step as rnn_layer.c.
 *
 *   a_t = f(W_in x_t + b_in)        input_layer,  step t
 *   b_t = f(W_self h_t + b_self)    self_layer,   step t
 *   h_{t+1} = (shortcut ? h_t : 0) + a_t + b_t
 *   y_t = f(W_out h_{t+1} + b_out)  output_layer, step t
 *
 * state is (steps+1, batch, outputs): training writes h_1..h_T into blocks
 * 1..T after zeroing h_0 (upstream allocates one block only, Q1); inference
 * reads and overwrites block 0, so the state carries across calls. With
 * l->stateful (an extension: truncated BPTT) a training forward starts from
 * l->carry and leaves h_T there; no gradient crosses the boundary.
 *
 * The backward reproduces Darknet's CPU backward, whose departures from the
 * true gradient are the named steps Q2..Q5 below; each has a DN_FIX_* bit
 * (l->fixes) that replaces it by the exact BPTT step.
 *
 * Training with a fast kernel takes the batched path (rnn_fast.c), chosen in
 * one place, batched(); this file keeps Darknet's step-by-step form, which
 * the REFERENCE kernel and inference use.
 */
#include <math.h>

#include "internal.h"

static int check_rnn(const dn_rnn *l)
{
    if (!l || l->batch < 1 || l->steps < 1 || l->inputs < 1 || l->outputs < 1)
        return DN_ERR_ARG;
    if (!l->state || !l->scratch || (l->stateful && !l->carry)) return DN_ERR_ARG;
    const dn_connected *s[3] = {&l->input_layer, &l->self_layer, &l->output_layer};
    for (int i = 0; i < 3; ++i)
        if (s[i]->batch != l->batch || s[i]->steps != l->steps ||
            s[i]->outputs != l->outputs || s[i]->inputs != (i == 0 ? l->inputs : l->outputs))
            return DN_ERR_ARG;
    return DN_OK;
}

void dn_rnn_train_begin(const dn_rnn *l)
{
    const long bh = (long)l->batch * l->outputs;
    if (l->stateful)
        for (long i = 0; i < bh; ++i) l->state[i] = l->carry[i];
    else
        dn_fill(bh, 0, l->state, 1);
}

void dn_rnn_train_end(const dn_rnn *l)
{
    const long bh = (long)l->batch * l->outputs;
    if (l->stateful) {
        const float *last = l->state + (long)l->steps * bh;
        for (long i = 0; i < bh; ++i) l->carry[i] = last[i];
    }
}

void dn_rnn_record_norm(const dn_rnn *l, int t, const float *dS_t)
{
    if (!l->grad_norms) return;
    const long bh = (long)l->batch * l->outputs;
    double s = 0;
    for (long i = 0; i < bh; ++i) s += (double)dS_t[i] * dS_t[i];
    l->grad_norms[t] = (float)sqrt(s);
}

/* Batched path or step by step? The batched path reorders the GEMMs'
 * summations, so REFERENCE (bit for bit Darknet) always steps; inference
 * keeps one state block, overwritten each step, while the batched output
 * GEMM needs all steps' states (blocks 1..T, training only). */
static int batched(const dn_ctx *ctx, int train)
{
    return train && ctx->kernel != DN_KERNEL_REFERENCE;
}

int dn_rnn_forward(const dn_ctx *ctx, const dn_rnn *l, const float *input, int train)
{
    int st = check_rnn(l);
    if (st) return st;
    if (!ctx || !input) return DN_ERR_ARG;
    const int B = l->batch, H = l->outputs, T = l->steps;
    const long bh = (long)B * H;
    if (batched(ctx, train)) return dn_rnn_forward_fast(ctx, l, input, NULL);

    dn_fill(T * bh, 0, l->output_layer.delta, 1);
    dn_fill(T * bh, 0, l->self_layer.delta, 1);
    dn_fill(T * bh, 0, l->input_layer.delta, 1);
    if (train) dn_rnn_train_begin(l);

    for (int t = 0; t < T; ++t) {
        const float *x = input + (long)t * B * l->inputs;     /* (B, inputs) */
        float *h_prev = train ? dn_rows(l->state, t, B, H) : l->state;
        float *h_next = train ? dn_rows(l->state, t + 1, B, H) : l->state;
        if ((st = dn_connected_forward(ctx, &l->input_layer, t, x, train))) return st;
        if ((st = dn_connected_forward(ctx, &l->self_layer, t, h_prev, train))) return st;
        if (l->shortcut) {
            if (h_next != h_prev) dn_copy(bh, h_prev, 1, h_next, 1);
        } else {
            dn_fill(bh, 0, h_next, 1);
        }
        dn_axpy(bh, 1, dn_rows(l->input_layer.output, t, B, H), 1, h_next, 1);
        dn_axpy(bh, 1, dn_rows(l->self_layer.output, t, B, H), 1, h_next, 1);
        if ((st = dn_connected_forward(ctx, &l->output_layer, t, h_next, train))) return st;
    }
    if (train) dn_rnn_train_end(l);
    return DN_OK;
}

int dn_rnn_backward(const dn_ctx *ctx, const dn_rnn *l, const float *input,
                    float *prev_delta)
{
    int st = check_rnn(l);
    if (st) return st;
    if (!ctx || !input) return DN_ERR_ARG;
    const int B = l->batch, H = l->outputs, T = l->steps;
    const long bh = (long)B * H;
    const int fixes = l->fixes;
    const int bn_fix = fixes & DN_FIX_BN_GRADIENT;
    if (batched(ctx, 1)) return dn_rnn_backward_fast(ctx, l, input, prev_delta, NULL);

    for (int t = T - 1; t >= 0; --t) {
        /* Q5: Darknet keeps one mean/variance buffer per sublayer, so its BN
         * backward uses the statistics of the last forward step. */
        const int stats = (fixes & DN_FIX_BN_STEP_STATS) ? t : T - 1;
        float *a_t = dn_rows(l->input_layer.output, t, B, H);
        float *b_t = dn_rows(l->self_layer.output, t, B, H);
        float *h_t = dn_rows(l->state, t, B, H);
        float *h_next = dn_rows(l->state, t + 1, B, H);
        float *dS_t = dn_rows(l->self_layer.delta, t, B, H);
        float *dS_prev = t > 0 ? dn_rows(l->self_layer.delta, t - 1, B, H) : NULL;
        float *dA_t = dn_rows(l->input_layer.delta, t, B, H);

        /* 1. Q4: Darknet recomputes h_{t+1} = a_t + b_t, dropping the
         *    shortcut term, and overwrites the stored state with it. */
        if (!(fixes & DN_FIX_STORED_STATE)) {
            dn_copy(bh, a_t, 1, h_next, 1);
            dn_axpy(bh, 1, b_t, 1, h_next, 1);
        }
        /* 2. output layer; its input delta dL/dh_{t+1} lands in dS_t. */
        if ((st = dn_connected_backward(ctx, &l->output_layer, t, stats, bn_fix, h_next, dS_t)))
            return st;
        dn_rnn_record_norm(l, t, dS_t);      /* dS_t = -dL/dh_{t+1} is complete here */
        /* Keep the raw dL/dh_{t+1} for the exact variants of steps 4 and 5. */
        if (fixes & (DN_FIX_COPY_BEFORE_SCALE | DN_FIX_SHORTCUT_CARRY))
            dn_copy(bh, dS_t, 1, l->scratch, 1);
        /* 3. self layer: scales dS_t in place by f'(b_t) (and BN backward). */
        if ((st = dn_connected_backward(ctx, &l->self_layer, t, stats, bn_fix, h_t, dS_prev)))
            return st;
        /* 4. Q2: Darknet copies the already scaled delta to the input layer. */
        dn_copy(bh, (fixes & DN_FIX_COPY_BEFORE_SCALE) ? l->scratch : dS_t, 1, dA_t, 1);
        /* 5. Q3: the shortcut carry also adds the scaled delta. */
        if (l->shortcut && t > 0)
            dn_axpy(bh, 1, (fixes & DN_FIX_SHORTCUT_CARRY) ? l->scratch : dS_t, 1, dS_prev, 1);
        /* 6. input layer. */
        const float *x = input + (long)t * B * l->inputs;
        float *dx = prev_delta ? prev_delta + (long)t * B * l->inputs : NULL;
        if ((st = dn_connected_backward(ctx, &l->input_layer, t, stats, bn_fix, x, dx)))
            return st;
    }
    return DN_OK;
}

int dn_check_rnn(const dn_rnn *l) { return check_rnn(l); }
