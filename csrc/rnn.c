/* rnn.c - Darknet's [rnn] layer (CPU path), step by step as rnn_layer.c.
 *
 *   a_t = f(W_in x_t + b_in)        input_layer,  step t
 *   b_t = f(W_self h_t + b_self)    self_layer,   step t
 *   h_{t+1} = (shortcut ? h_t : 0) + a_t + b_t
 *   y_t = f(W_out h_{t+1} + b_out)  output_layer, step t
 *
 * state is (steps+1, batch, outputs): training writes h_1..h_T into blocks
 * 1..T after zeroing h_0 (upstream allocates one block only, Q1); inference
 * reads and overwrites block 0, so the state carries across calls.
 *
 * The backward reproduces Darknet's CPU backward, whose departures from the
 * true gradient are the named steps Q2..Q5 below; each has a DN_FIX_* bit
 * (l->fixes) that replaces it by the exact BPTT step.
 */
#include "internal.h"

static int check_rnn(const dn_rnn *l)
{
    if (!l || l->batch < 1 || l->steps < 1 || l->inputs < 1 || l->outputs < 1)
        return DN_ERR_ARG;
    if (!l->state || !l->scratch) return DN_ERR_ARG;
    const dn_connected *s[3] = {&l->input_layer, &l->self_layer, &l->output_layer};
    for (int i = 0; i < 3; ++i)
        if (s[i]->batch != l->batch || s[i]->steps != l->steps ||
            s[i]->outputs != l->outputs || s[i]->inputs != (i == 0 ? l->inputs : l->outputs))
            return DN_ERR_ARG;
    return DN_OK;
}


/* ---------------------------------------------------------------------------
 * Fast path (any kernel but REFERENCE, training): the work that does not
 * depend on the recurrence is done in GEMMs over all steps*batch rows -
 * the input sublayer's forward, the output sublayer's forward once every
 * state is known, the output sublayer's input delta, and all weight
 * gradients. Only the self sublayer runs step by step. Per-step batch norm,
 * rolling statistics and Darknet's backward semantics (including Q2-Q5 and
 * their fixes) are kept; only the float summation order of the GEMMs
 * differs from Darknet's.
 */
static int rnn_forward_fast(const dn_ctx *ctx, const dn_rnn *l, const float *input)
{
    const int B = l->batch, H = l->outputs, T = l->steps, I = l->inputs;
    const int bh = B * H, tb = T * B;
    const dn_connected *in = &l->input_layer, *self = &l->self_layer, *out = &l->output_layer;
    int st;

    dn_fill(T * bh, 0, out->delta, 1);
    dn_fill(T * bh, 0, self->delta, 1);
    dn_fill(T * bh, 0, in->delta, 1);
    dn_fill(bh, 0, l->state, 1);

    /* a = f(x W_in^T + b_in) for all steps: (T*B, H) */
    if ((st = dn_gemm(ctx, 0, 1, tb, H, I, 1, input, I, in->weights, I, 0, in->output, H)))
        return st;
    for (int t = 0; t < T; ++t)
        if ((st = dn_connected_forward_post(in, t, 1))) return st;

    for (int t = 0; t < T; ++t) {
        const float *h_prev = dn_rows(l->state, t, B, H);
        float *h_next = dn_rows(l->state, t + 1, B, H);
        float *b_t = dn_rows(self->output, t, B, H);
        const float *a_t = dn_rows(in->output, t, B, H);
        if ((st = dn_gemm(ctx, 0, 1, B, H, H, 1, h_prev, H, self->weights, H, 0, b_t, H)))
            return st;
        if ((st = dn_connected_forward_post(self, t, 1))) return st;
        if (l->shortcut)
            for (int i = 0; i < bh; ++i) h_next[i] = (h_prev[i] + a_t[i]) + b_t[i];
        else
            for (int i = 0; i < bh; ++i) h_next[i] = (0.0f + a_t[i]) + b_t[i];
    }

    /* y = f(h W_out^T + b_out) over states 1..T */
    if ((st = dn_gemm(ctx, 0, 1, tb, H, H, 1, l->state + bh, H, out->weights, H, 0,
                      out->output, H)))
        return st;
    for (int t = 0; t < T; ++t)
        if ((st = dn_connected_forward_post(out, t, 1))) return st;
    return DN_OK;
}

static int rnn_backward_fast(const dn_ctx *ctx, const dn_rnn *l, const float *input,
                             float *prev_delta)
{
    const int B = l->batch, H = l->outputs, T = l->steps, I = l->inputs;
    const int bh = B * H, tb = T * B;
    const int fixes = l->fixes, bn_fix = fixes & DN_FIX_BN_GRADIENT;
    const dn_connected *in = &l->input_layer, *self = &l->self_layer, *out = &l->output_layer;
    int st;
#define STATS(t) ((fixes & DN_FIX_BN_STEP_STATS) ? (t) : T - 1)

    /* output sublayer: its deltas for all steps, then dS += D_out W_out */
    for (int t = 0; t < T; ++t)
        if ((st = dn_connected_backward_pre(out, t, STATS(t), bn_fix))) return st;
    if ((st = dn_gemm(ctx, 0, 0, tb, H, H, 1, out->delta, H, out->weights, H, 1,
                      self->delta, H)))
        return st;

    /* self sublayer, step by step (the recurrence) */
    for (int t = T - 1; t >= 0; --t) {
        float *dS_t = dn_rows(self->delta, t, B, H);
        float *dS_prev = t > 0 ? dn_rows(self->delta, t - 1, B, H) : NULL;
        if (fixes & (DN_FIX_COPY_BEFORE_SCALE | DN_FIX_SHORTCUT_CARRY))
            dn_copy(bh, dS_t, 1, l->scratch, 1);
        if ((st = dn_connected_backward_pre(self, t, STATS(t), bn_fix))) return st;
        if (dS_prev &&
            (st = dn_gemm(ctx, 0, 0, B, H, H, 1, dS_t, H, self->weights, H, 1, dS_prev, H)))
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
        if ((st = dn_connected_backward_pre(in, t, STATS(t), bn_fix))) return st;
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

int dn_rnn_forward(const dn_ctx *ctx, const dn_rnn *l, const float *input, int train)
{
    int st = check_rnn(l);
    if (st) return st;
    if (!ctx || !input) return DN_ERR_ARG;
    const int B = l->batch, H = l->outputs, T = l->steps;
    const int bh = B * H;
    if (train && ctx->kernel != DN_KERNEL_REFERENCE) return rnn_forward_fast(ctx, l, input);

    dn_fill(T * bh, 0, l->output_layer.delta, 1);
    dn_fill(T * bh, 0, l->self_layer.delta, 1);
    dn_fill(T * bh, 0, l->input_layer.delta, 1);
    if (train) dn_fill(bh, 0, l->state, 1);

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
    return DN_OK;
}

int dn_rnn_backward(const dn_ctx *ctx, const dn_rnn *l, const float *input,
                    float *prev_delta)
{
    int st = check_rnn(l);
    if (st) return st;
    if (!ctx || !input) return DN_ERR_ARG;
    const int B = l->batch, H = l->outputs, T = l->steps;
    const int bh = B * H;
    const int fixes = l->fixes;
    const int bn_fix = fixes & DN_FIX_BN_GRADIENT;
    if (ctx->kernel != DN_KERNEL_REFERENCE) return rnn_backward_fast(ctx, l, input, prev_delta);

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
