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
 *
 * dn_adam_update is Darknet's adam_update_gpu on the CPU, per element:
 *   m = B1*m;  v = B2*v;  g += -decay*batch * w  (every array, as Darknet);
 *   m += (1-B1)*g;  v += (1-B2)*g*g;
 *   w += lr * (m/c1) / (sqrt(v/c2) + eps);  g = 0
 * with c1 = 1 - B1^t, c2 = 1 - B2^t computed once by the caller (update
 * counter t incremented before each update) and lr not divided by batch.
 */
#include <math.h>
#include "internal.h"

static int check_params(const dn_update_args *a, const dn_param *p, long count)
{
    if (!a || count < 0 || (count > 0 && !p)) return DN_ERR_ARG;
    if (a->batch < 1) return DN_ERR_ARG;
    for (long i = 0; i < count; ++i)
        if (p[i].n < 0 || (p[i].n > 0 && (!p[i].value || !p[i].grad))) return DN_ERR_ARG;
    return DN_OK;
}

static int check_moments(const dn_param *p, long count)
{
    for (long i = 0; i < count; ++i)
        if (p[i].n > 0 && (!p[i].m || !p[i].v)) return DN_ERR_ARG;
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

int dn_adam_update(const dn_update_args *a, const dn_param *params, long count)
{
    int st = check_params(a, params, count);
    if (st || (st = check_moments(params, count))) return st;
    if (!(a->correction1 > 0) || !(a->correction2 > 0)) return DN_ERR_ARG;
    const float batch = (float)a->batch;
    const float neg_decay = -a->decay * batch;
    const float b1 = a->B1, b2 = a->B2, eps = a->eps;
    const float one_b1 = 1.f - b1, one_b2 = 1.f - b2;
    const float c1 = a->correction1, c2 = a->correction2;
    for (long i = 0; i < count; ++i) {
        const dn_param *p = &params[i];
        const float lr = a->learning_rate * p->learning_rate_scale;
        float *w = p->value, *g = p->grad, *m = p->m, *v = p->v;   /* (n) each */
        for (long j = 0; j < p->n; ++j) {
            m[j] *= b1;
            v[j] *= b2;
            float gj = g[j] + neg_decay * w[j];
            m[j] += one_b1 * gj;
            gj = gj * gj;
            v[j] += one_b2 * gj;
            const float mhat = m[j] / c1;
            const float vhat = v[j] / c2;
            w[j] += lr * mhat / (sqrtf(vhat) + eps);
            g[j] = 0;
        }
    }
    return DN_OK;
}
