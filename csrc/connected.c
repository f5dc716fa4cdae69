/* connected.c - Darknet's fully connected layer: forward, backward, update.
 *
 * Parameter updates are not here: the layer lists its arrays as dn_param
 * pairs and an optimizer (optimizer.c) steps them.
 *
 * A call works on the `batch` rows of time step `step` (step 0 for a plain
 * layer): input (batch, inputs), output/delta rows (batch, outputs) at
 * row offset step*batch. The reference kernel keeps Darknet's operation
 * order; fast kernels change GEMM rounding and use the single-precision
 * batch norm / activation of bn_fast.c.
 */
#include "internal.h"

int dn_check_connected(const dn_connected *l, int step)
{
    if (!l || l->batch < 1 || l->inputs < 1 || l->outputs < 1 || l->steps < 1)
        return DN_ERR_ARG;
    if (step < 0 || step >= l->steps) return DN_ERR_ARG;
    if (!dn_valid_activation(l->activation)) return DN_ERR_ACTIVATION;
    if (!l->weights || !l->biases || !l->weight_updates || !l->bias_updates ||
        !l->output || !l->delta)
        return DN_ERR_ARG;
    if (l->batch_normalize &&
        (!l->scales || !l->scale_updates || !l->rolling_mean || !l->rolling_variance ||
         !l->mean || !l->variance || !l->x || !l->x_norm || !l->mean_delta ||
         !l->variance_delta || !l->bn_factors))
        return DN_ERR_ARG;
    return DN_OK;
}

/* Everything after the GEMM in forward, for one step's rows: biases or batch
 * norm, then the activation. */
int dn_connected_forward_post(const dn_connected *l, int step, int train)
{
    const int n = l->batch, c = l->outputs;
    float *out = dn_rows(l->output, step, n, c);     /* (n, c) */
    if (l->batch_normalize) {
        dn_batchnorm_forward(l, step, train);
    } else {
        for (int r = 0; r < n; ++r)
            for (int j = 0; j < c; ++j) out[(long)r * c + j] += l->biases[j];
    }
    return dn_activate(out, (long)n * c, l->activation);
}

/* Everything before the GEMMs in backward, for one step's rows: activation
 * gradient, then batch norm backward or the bias gradient. */
int dn_connected_backward_pre(const dn_connected *l, int step, int stats_step, int fixes)
{
    const int n = l->batch, c = l->outputs;
    float *delta = dn_rows(l->delta, step, n, c);         /* (n, c) */
    const float *out = dn_rows(l->output, step, n, c);
    int st = dn_gradient(out, (long)n * c, l->activation, delta);
    if (st) return st;
    if (l->batch_normalize) {
        dn_batchnorm_backward(l, step, stats_step, fixes);
    } else {
        for (int r = 0; r < n; ++r)
            for (int j = 0; j < c; ++j) l->bias_updates[j] += 0.0f + delta[(long)r * c + j];
    }
    return DN_OK;
}

int dn_connected_forward(const dn_ctx *ctx, const dn_connected *l, int step,
                         const float *input, int train)
{
    int st = dn_check_connected(l, step);
    if (st) return st;
    if (!ctx || !input) return DN_ERR_ARG;
    const int n = l->batch, c = l->outputs;
    float *out = dn_rows(l->output, step, n, c);     /* (n, c) */
    if (ctx->kernel == DN_KERNEL_REFERENCE) {
        /* Darknet: zero the output, then add the dot products into it. */
        dn_fill((long)n * c, 0, out, 1);
        st = dn_gemm(ctx, 0, 1, n, c, l->inputs, 1, input, l->inputs,
                     l->weights, l->inputs, 1, out, c);
    } else {
        st = dn_gemm(ctx, 0, 1, n, c, l->inputs, 1, input, l->inputs,
                     l->weights, l->inputs, 0, out, c);
    }
    if (st) return st;
    if (ctx->kernel != DN_KERNEL_REFERENCE) return dn_connected_post_fast(l, step, train);
    return dn_connected_forward_post(l, step, train);
}

int dn_connected_backward(const dn_ctx *ctx, const dn_connected *l, int step,
                          int stats_step, int fixes, const float *input,
                          float *prev_delta)
{
    int st = dn_check_connected(l, step);
    if (st) return st;
    if (!ctx || !input || stats_step < 0 || stats_step >= l->steps) return DN_ERR_ARG;
    const int n = l->batch, c = l->outputs;
    float *delta = dn_rows(l->delta, step, n, c);         /* (n, c) */
    st = ctx->kernel == DN_KERNEL_REFERENCE
             ? dn_connected_backward_pre(l, step, stats_step, fixes)
             : dn_connected_pre_fast(l, step, stats_step, fixes);
    if (st) return st;
    /* weight_updates (c, inputs) += delta^T (c, n) . input (n, inputs) */
    st = dn_gemm(ctx, 1, 0, c, l->inputs, n, 1, delta, c, input, l->inputs, 1,
                 l->weight_updates, l->inputs);
    if (st) return st;
    /* prev_delta (n, inputs) += delta (n, c) . weights (c, inputs) */
    if (prev_delta)
        st = dn_gemm(ctx, 0, 0, n, l->inputs, c, 1, delta, c, l->weights, l->inputs, 1,
                     prev_delta, l->inputs);
    return st;
}
