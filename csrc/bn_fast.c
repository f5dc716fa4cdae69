/* bn_fast.c - the fast path's batch norm + activation, in single precision.
 *
 * The reference kernel keeps Darknet's arithmetic (batchnorm.c: double
 * intermediates, a division per element, one pass per operation). The fast
 * kernels (everything but DN_KERNEL_REFERENCE) call these instead, for one
 * step's rows of a connected layer (or [rnn] sublayer):
 *
 *   forward:  per-column mean (Darknet's float sum in row order, so equal
 *             rows still give variance 0 exactly) and unbiased variance, the
 *             rolling statistics as Darknet updates them, then ONE pass:
 *             x = z, x_norm = (z - mean) * inv_sd, out = f(x_norm * scale +
 *             bias) with inv_sd = 1 / (sqrt(var) + 1e-6) once per column;
 *   backward: ONE pass for f'(y), bias, scale and the two batch-norm sums,
 *             ONE pass for delta = delta * a_j + (x - mean_j) * b_j + c_j
 *             (Darknet's formulas, quirks Q5/Q6 included, rearranged per
 *             column; per-column factors in double).
 *
 * Same inputs, outputs and buffers as dn_connected_forward_post /
 * dn_connected_backward_pre; only rounding differs (float sums, one
 * reciprocal per column), within the fast path's band (tests/test_fast_path.py,
 * tests/test_layer_table.py). The exact batch-norm gradient
 * (DN_FIX_BN_GRADIENT) and the activations other than linear, leaky and
 * relu go through the same functions with an unfused activation step.
 * Scratch: mean_delta, variance_delta and bn_factors of the layer.
 */
#include <math.h>
#include "internal.h"

#define BN_EPS_FWD 0.000001f
#define BN_EPS_BWD 0.00001f

/* Fused activations; any other id is applied afterwards by dn_activate. */
static int fused_act(int a) { return a == DN_LINEAR || a == DN_LEAKY || a == DN_RELU; }

/* One element loop per fused activation, so each vectorises on its own. */
#define ACT_LINEAR(y) (y)
#define ACT_LEAKY(y) ((y) > 0 ? (y) : 0.1f * (y))
#define ACT_RELU(y) ((y) > 0 ? (y) : 0.0f)

#define BN_ROWS(ACT)                                                          \
    for (int r = 0; r < n; ++r) {                                             \
        float *o = out + (long)r * c;                                         \
        float *xr = x ? x + (long)r * c : NULL;                               \
        float *xnr = xn ? xn + (long)r * c : NULL;                            \
        if (xr)                                                               \
            for (int j = 0; j < c; ++j) {                                     \
                float v = (o[j] - mean[j]) * inv[j];                          \
                xr[j] = o[j];                                                 \
                xnr[j] = v;                                                   \
                float y = v * sc[j] + bi[j];                                  \
                o[j] = ACT(y);                                                \
            }                                                                 \
        else                                                                  \
            for (int j = 0; j < c; ++j) {                                     \
                float y = (o[j] - mean[j]) * inv[j] * sc[j] + bi[j];          \
                o[j] = ACT(y);                                                \
            }                                                                 \
    }

#define BIAS_ROWS(ACT)                                                        \
    for (int r = 0; r < n; ++r) {                                             \
        float *o = out + (long)r * c;                                         \
        for (int j = 0; j < c; ++j) {                                         \
            float y = o[j] + bi[j];                                           \
            o[j] = ACT(y);                                                    \
        }                                                                     \
    }

DN_CLONES int dn_connected_post_fast(const dn_connected *l, int step, int train)
{
    const int n = l->batch, c = l->outputs, a = l->activation;
    float *out = dn_rows(l->output, step, n, c);
    const float *bi = l->biases;
    const int act = fused_act(a) ? a : DN_LINEAR;
    if (l->batch_normalize) {
        const float *mean, *var;
        float *x = NULL, *xn = NULL;
        if (train) {
            float *m = l->mean + (long)step * c, *v = l->variance + (long)step * c;
            const float inv_n = (float)(1.0 / n);
            const float inv_n1 = (float)(1.0 / (n - 1));     /* inf for n == 1 (Q7) */
            for (int j = 0; j < c; ++j) m[j] = 0;
            for (int r = 0; r < n; ++r)
                for (int j = 0; j < c; ++j) m[j] += out[(long)r * c + j];
            for (int j = 0; j < c; ++j) m[j] *= inv_n;
            for (int j = 0; j < c; ++j) v[j] = 0;
            for (int r = 0; r < n; ++r)
                for (int j = 0; j < c; ++j) {
                    float d = out[(long)r * c + j] - m[j];
                    v[j] += d * d;
                }
            for (int j = 0; j < c; ++j) v[j] *= inv_n1;
            dn_scal(c, 0.99f, l->rolling_mean, 1);
            dn_axpy(c, 0.01f, m, 1, l->rolling_mean, 1);
            dn_scal(c, 0.99f, l->rolling_variance, 1);
            dn_axpy(c, 0.01f, v, 1, l->rolling_variance, 1);
            mean = m;
            var = v;
            x = dn_rows(l->x, step, n, c);
            xn = dn_rows(l->x_norm, step, n, c);
        } else {
            mean = l->rolling_mean;
            var = l->rolling_variance;
        }
        float *inv = l->variance_delta;                  /* (c) scratch */
        const float *sc = l->scales;
        for (int j = 0; j < c; ++j) inv[j] = 1.0f / (sqrtf(var[j]) + BN_EPS_FWD);
        switch (act) {
        case DN_LEAKY: BN_ROWS(ACT_LEAKY) break;
        case DN_RELU: BN_ROWS(ACT_RELU) break;
        default: BN_ROWS(ACT_LINEAR) break;
        }
    } else {
        switch (act) {
        case DN_LEAKY: BIAS_ROWS(ACT_LEAKY) break;
        case DN_RELU: BIAS_ROWS(ACT_RELU) break;
        default: BIAS_ROWS(ACT_LINEAR) break;
        }
    }
    return fused_act(a) ? DN_OK : dn_activate(out, n * c, a);
}

/* delta *= f'(y) and the column sums of pass 1: s1 = sum delta, s2 = sum
 * delta * x_norm, s3 = sum delta * (x - mean) (BN only: xn, x non-NULL). */
#define GRAD_LINEAR(y) 1.0f
#define GRAD_LEAKY(y) ((y) > 0 ? 1.0f : 0.1f)
#define GRAD_RELU(y) ((y) > 0 ? 1.0f : 0.0f)
#define GRAD_NONE(y) 1.0f

#define PASS1(GRAD)                                                           \
    for (int r = 0; r < n; ++r) {                                             \
        float *d = delta + (long)r * c;                                       \
        const float *y = out + (long)r * c; (void)y;                          \
        if (xn) {                                                             \
            const float *xnr = xn + (long)r * c, *xr = x + (long)r * c;       \
            for (int j = 0; j < c; ++j) {                                     \
                float g = d[j] * GRAD(y[j]);                                  \
                d[j] = g;                                                     \
                s1[j] += g;                                                   \
                s2[j] += g * xnr[j];                                          \
                s3[j] += g * (xr[j] - mean[j]);                               \
            }                                                                 \
        } else {                                                              \
            for (int j = 0; j < c; ++j) {                                     \
                float g = d[j] * GRAD(y[j]);                                  \
                d[j] = g;                                                     \
                s1[j] += g;                                                   \
            }                                                                 \
        }                                                                     \
    }

DN_CLONES int dn_connected_pre_fast(const dn_connected *l, int step, int stats_step, int fixes)
{
    const int n = l->batch, c = l->outputs, a = l->activation;
    float *delta = dn_rows(l->delta, step, n, c);
    const float *out = dn_rows(l->output, step, n, c);
    const int bn = l->batch_normalize && !(fixes & DN_FIX_BN_GRADIENT);
    if (l->batch_normalize && !bn) {
        /* exact BN gradient: the reference formulas (rarely used, not hot) */
        int st = dn_gradient(out, n * c, a, delta);
        if (st) return st;
        dn_batchnorm_backward(l, step, stats_step, fixes);
        return DN_OK;
    }
    if (!fused_act(a)) {
        int st = dn_gradient(out, n * c, a, delta);
        if (st) return st;
    }
    const int g = fused_act(a) ? a : -1;
    const float *x = bn ? dn_rows(l->x, step, n, c) : NULL;
    const float *xn = bn ? dn_rows(l->x_norm, step, n, c) : NULL;
    const float *mean = bn ? l->mean + (long)stats_step * c : NULL;
    const float *var = bn ? l->variance + (long)stats_step * c : NULL;
    float *s1 = bn ? l->mean_delta : l->bias_updates;    /* no BN: straight into biases */
    float *s2 = l->variance_delta;
    float *s3 = (float *)l->bn_factors;                  /* (c) of its 3c doubles */
    if (bn)
        for (int j = 0; j < c; ++j) s1[j] = s2[j] = s3[j] = 0;
    switch (g) {
    case DN_LEAKY: PASS1(GRAD_LEAKY) break;
    case DN_RELU: PASS1(GRAD_RELU) break;
    default: PASS1(GRAD_NONE) break;
    }
    if (!bn) return DN_OK;
    /* Darknet: bias += s1; scale += s2; delta *= scale;
     * mean_delta = scale s1 * -1/sqrt(v + eps); var_delta = scale s3 *
     * -0.5 (v + eps)^-1.5; delta = delta/root + 2 var_delta (x - m)/n +
     * mean_delta/n. Per column: delta = d a + (x - m) b + cc. */
    float *fa = s2 + 0, *fb = s3, *fc = s1;              /* reuse after use */
    for (int j = 0; j < c; ++j) {
        double ve = (double)(var[j] + BN_EPS_BWD), root = sqrt(ve);
        double s = l->scales[j];
        l->bias_updates[j] += s1[j];
        l->scale_updates[j] += s2[j];
        double md = s * s1[j] * (-1.0 / root);
        double vd = s * s3[j] * (-0.5 / (ve * root));
        fa[j] = (float)(s / root);
        fb[j] = (float)(2.0 * vd / n);
        fc[j] = (float)(md / n);
    }
    for (int r = 0; r < n; ++r) {
        float *d = delta + (long)r * c;
        const float *xr = x + (long)r * c;
        for (int j = 0; j < c; ++j)
            d[j] = d[j] * fa[j] + (xr[j] - mean[j]) * fb[j] + fc[j];
    }
    return DN_OK;
}
