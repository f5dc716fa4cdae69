/* optimizer.c - the step from accumulated gradients to parameters.
 *
 * Layers never update themselves: each lists its parameters as dn_param
 * pairs (value, update buffer) and an optimizer walks the list. The update
 * buffer is Darknet's `*_updates` array: the accumulated *negative*
 * gradient of the batch (backward adds into it), so a step adds.
 *
 * dn_sgd_update is Darknet's update_connected_layer, split per array:
 *   biases/scales:  value += lr/batch * upd;  upd *= momentum
 *   weights:        upd += -decay*batch * value;  value += lr/batch * upd;
 *                   upd *= momentum
 * with lr = learning_rate * learning_rate_scale, all in float, in this order
 * (Darknet's axpy/scal loops), so results are bitwise Darknet's. Arrays are
 * independent, so the order of the pairs does not matter.
 */
#include "internal.h"

static int check_params(const dn_update_args *a, const dn_param *p, long count)
{
    if (!a || count < 0 || (count > 0 && !p)) return DN_ERR_ARG;
    if (a->batch < 1) return DN_ERR_ARG;
    for (long i = 0; i < count; ++i)
        if (p[i].n < 0 || (p[i].n > 0 && (!p[i].value || !p[i].grad))) return DN_ERR_ARG;
    return DN_OK;
}

int dn_sgd_update(const dn_update_args *a, const dn_param *params, long count)
{
    int st = check_params(a, params, count);
    if (st) return st;
    const float batch = (float)a->batch;          /* C's int -> float in Darknet */
    const float momentum = a->momentum;
    const float neg_decay = -a->decay * batch;
    for (long i = 0; i < count; ++i) {
        const dn_param *p = &params[i];
        const float lr = a->learning_rate * p->learning_rate_scale;
        const float step = lr / batch;
        float *w = p->value, *u = p->grad;        /* (n) each */
        const long n = p->n;
        if (p->decay)
            for (long j = 0; j < n; ++j) u[j] += neg_decay * w[j];
        for (long j = 0; j < n; ++j) w[j] += step * u[j];
        for (long j = 0; j < n; ++j) u[j] *= momentum;
    }
    return DN_OK;
}
