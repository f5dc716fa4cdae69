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

/* Row kernels: every pointer restrict-qualified, so GCC vectorises them
 * without run-time alias checks (with the checks it fell back to scalar
 * code: measured 3x slower). Always inlined into the cloned callers. */
#define DN_ROWFN static inline __attribute__((always_inline)) void
#define DEF_BN_ROW(NAME, ACT)                                                  \
    DN_ROWFN NAME(int c, float *restrict o, float *restrict xr,                \
                  float *restrict xnr, const float *restrict mean,             \
                  const float *restrict inv, const float *restrict sc,         \
                  const float *restrict bi)                                    \
    {                                                                          \
        for (int j = 0; j < c; ++j) {                                          \
            float v = (o[j] - mean[j]) * inv[j];                               \
            xr[j] = o[j];                                                      \
            xnr[j] = v;                                                        \
            float y = v * sc[j] + bi[j];                                       \
            o[j] = ACT(y);                                                     \
        }                                                                      \
    }                                                                          \
    DN_ROWFN NAME##_infer(int c, float *restrict o, const float *restrict mean,\
                          const float *restrict inv, const float *restrict sc, \
                          const float *restrict bi)                            \
    {                                                                          \
        for (int j = 0; j < c; ++j) {                                          \
            float y = (o[j] - mean[j]) * inv[j] * sc[j] + bi[j];               \
            o[j] = ACT(y);                                                     \
        }                                                                      \
    }                                                                          \
    DN_ROWFN NAME##_bias(int c, float *restrict o, const float *restrict bi)   \
    {                                                                          \
        for (int j = 0; j < c; ++j) {                                          \
            float y = o[j] + bi[j];                                            \
            o[j] = ACT(y);                                                     \
        }                                                                      \
    }
DEF_BN_ROW(bn_row_linear, ACT_LINEAR)
DEF_BN_ROW(bn_row_leaky, ACT_LEAKY)
DEF_BN_ROW(bn_row_relu, ACT_RELU)

#define BN_ROWS(F)                                                            \
    for (int r = 0; r < n; ++r) {                                             \
        float *o = out + (long)r * c;                                         \
        if (x)                                                                \
            F(c, o, x + (long)r * c, xn + (long)r * c, mean, inv, sc, bi);    \
        else                                                                  \
            F##_infer(c, o, mean, inv, sc, bi);                               \
    }

#define BIAS_ROWS(F)                                                          \
    for (int r = 0; r < n; ++r) F##_bias(c, out + (long)r * c, bi);

DN_ROWFN col_sum(int c, float *restrict m, const float *restrict row)
{
    for (int j = 0; j < c; ++j) m[j] += row[j];
}

DN_ROWFN col_sqdev(int c, float *restrict v, const float *restrict row,
                   const float *restrict m)
{
    for (int j = 0; j < c; ++j) {
        float d = row[j] - m[j];
        v[j] += d * d;
    }
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
            for (int r = 0; r < n; ++r) col_sum(c, m, out + (long)r * c);
            for (int j = 0; j < c; ++j) m[j] *= inv_n;
            for (int j = 0; j < c; ++j) v[j] = 0;
            for (int r = 0; r < n; ++r) col_sqdev(c, v, out + (long)r * c, m);
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
        case DN_LEAKY: BN_ROWS(bn_row_leaky) break;
        case DN_RELU: BN_ROWS(bn_row_relu) break;
        default: BN_ROWS(bn_row_linear) break;
        }
    } else {
        switch (act) {
        case DN_LEAKY: BIAS_ROWS(bn_row_leaky) break;
        case DN_RELU: BIAS_ROWS(bn_row_relu) break;
        default: BIAS_ROWS(bn_row_linear) break;
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

#define DEF_PASS1(NAME, GRAD)                                                 \
    DN_ROWFN NAME(int c, float *restrict d, const float *restrict y,           \
                  const float *restrict xnr, const float *restrict xr,         \
                  const float *restrict mean, float *restrict s1,              \
                  float *restrict s2, float *restrict s3)                      \
    {                                                                          \
        for (int j = 0; j < c; ++j) {                                          \
            float g = d[j] * GRAD(y[j]);                                       \
            d[j] = g;                                                          \
            s1[j] += g;                                                        \
            s2[j] += g * xnr[j];                                               \
            s3[j] += g * (xr[j] - mean[j]);                                    \
        }                                                                      \
    }                                                                          \
    DN_ROWFN NAME##_bias(int c, float *restrict d, const float *restrict y,    \
                         float *restrict s1)                                   \
    {                                                                          \
        for (int j = 0; j < c; ++j) {                                          \
            float g = d[j] * GRAD(y[j]);                                       \
            d[j] = g;                                                          \
            s1[j] += g;                                                        \
        }                                                                      \
    }
DEF_PASS1(pass1_leaky, GRAD_LEAKY)
DEF_PASS1(pass1_relu, GRAD_RELU)
DEF_PASS1(pass1_none, GRAD_NONE)

#define PASS1(F)                                                              \
    for (int r = 0; r < n; ++r) {                                             \
        long o = (long)r * c;                                                 \
        if (xn)                                                               \
            F(c, delta + o, out + o, xn + o, x + o, mean, s1, s2, s3);        \
        else                                                                  \
            F##_bias(c, delta + o, out + o, s1);                              \
    }

DN_ROWFN pass2_row(int c, float *restrict d, const float *restrict xr,
                   const float *restrict mean, const float *restrict fa,
                   const float *restrict fb, const float *restrict fc)
{
    for (int j = 0; j < c; ++j) d[j] = d[j] * fa[j] + (xr[j] - mean[j]) * fb[j] + fc[j];
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
    case DN_LEAKY: PASS1(pass1_leaky) break;
    case DN_RELU: PASS1(pass1_relu) break;
    default: PASS1(pass1_none) break;
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
    for (int r = 0; r < n; ++r)
        pass2_row(c, delta + (long)r * c, x + (long)r * c, mean, fa, fb, fc);
    return DN_OK;
}
