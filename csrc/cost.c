/* cost.c - Darknet's [cost] layer (CPU): sse/seg/wgan/masked, L1, smooth.
 * The output holds the per-element error; the reported cost is its float
 * sum; backward adds scale*delta into the previous layer's delta (SPEC 7). */
#include <math.h>
#include "internal.h"

#define DN_SECRET_NUM -1234.0f

int dn_cost_forward(const dn_cost *l, float *input, const float *truth, float *cost)
{
    if (!l || l->batch < 1 || l->inputs < 1 || !l->output || !l->delta) return DN_ERR_ARG;
    if (l->cost_type < DN_COST_SSE || l->cost_type > DN_COST_WGAN) return DN_ERR_COST_TYPE;
    if (!truth) return DN_OK;          /* no truth: Darknet skips the layer */
    if (!input) return DN_ERR_ARG;
    const long n = (long)l->batch * l->inputs;
    if (l->cost_type == DN_COST_MASKED)
        for (long i = 0; i < n; ++i)
            if (truth[i] == DN_SECRET_NUM) input[i] = DN_SECRET_NUM;
    for (long i = 0; i < n; ++i) {
        float d = truth[i] - input[i];
        if (l->cost_type == DN_COST_SMOOTH) {
            float a = fabsf(d);
            if (a < 1) {
                l->output[i] = d * d;
                l->delta[i] = d;
            } else {
                l->output[i] = 2 * a - 1;
                l->delta[i] = d < 0 ? 1 : -1;      /* Darknet's sign (Q14) */
            }
        } else if (l->cost_type == DN_COST_L1) {
            l->output[i] = fabsf(d);
            l->delta[i] = d > 0 ? 1 : -1;
        } else {
            l->output[i] = d * d;
            l->delta[i] = d;
        }
    }
    float sum = 0;
    for (long i = 0; i < n; ++i) sum += l->output[i];
    if (cost) *cost = sum;
    return DN_OK;
}

int dn_cost_backward(const dn_cost *l, float *prev_delta)
{
    if (!l || l->batch < 1 || l->inputs < 1 || !l->delta) return DN_ERR_ARG;
    if (prev_delta) dn_axpy((long)l->batch * l->inputs, l->scale, l->delta, 1, prev_delta, 1);
    return DN_OK;
}
