/* batchnorm.c - Darknet's batch normalisation inside a connected layer.
 *
 * Statistics are per output unit over the `batch` rows of one call (one time
 * step inside an RNN). Forward uses the unbiased variance and epsilon 1e-6
 * outside the root; Darknet's backward uses the textbook biased-variance
 * formulas with 1e-5 inside the root (SPEC section 4, quirk Q6). With
 * DN_FIX_BN_GRADIENT the backward is the exact derivative of this forward.
 *
 * Buffers (dn_connected): x, x_norm, output, delta (steps*batch, outputs);
 * mean, variance (steps, outputs); scales, biases, rolling_* (outputs).
 */
#include <math.h>
#include "internal.h"

/* Darknet adds this float literal to sqrt(variance) in the forward. */
#define DN_BN_FORWARD_EPS 0.000001f

/* Loop orders: per-column sums run rows-outer / columns-inner with the
 * column's accumulator in an array, so each column still adds its rows in
 * row order (Darknet's order) while the inner loop vectorises across
 * columns; per-column square roots are computed once per column. Neither
 * changes a bit of the result. */
DN_CLONES void dn_batchnorm_forward(const dn_connected *l, int step, int train)
{
    const int n = l->batch, c = l->outputs;
    float *out = dn_rows(l->output, step, n, c);     /* (n, c) */
    float *x = dn_rows(l->x, step, n, c);
    float *x_norm = dn_rows(l->x_norm, step, n, c);
    dn_copy((long)n * c, out, 1, x, 1);
    const float *mean, *var;
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
                double d = (double)(out[(long)r * c + j] - m[j]);
                v[j] = (float)((double)v[j] + d * d);
            }
        for (int j = 0; j < c; ++j) v[j] *= inv_n1;
        dn_scal(c, 0.99f, l->rolling_mean, 1);
        dn_axpy(c, 0.01f, m, 1, l->rolling_mean, 1);
        dn_scal(c, 0.99f, l->rolling_variance, 1);
        dn_axpy(c, 0.01f, v, 1, l->rolling_variance, 1);
        mean = m;
        var = v;
    } else {
        mean = l->rolling_mean;
        var = l->rolling_variance;
    }
    double *den = l->bn_factors;                      /* (c) */
    for (int j = 0; j < c; ++j) den[j] = sqrt((double)var[j]) + (double)DN_BN_FORWARD_EPS;
    for (int r = 0; r < n; ++r)
        for (int j = 0; j < c; ++j) {
            long i = (long)r * c + j;
            out[i] = (float)((double)(out[i] - mean[j]) / den[j]);
        }
    if (train) dn_copy((long)n * c, out, 1, x_norm, 1);
    for (int r = 0; r < n; ++r)
        for (int j = 0; j < c; ++j) out[(long)r * c + j] *= l->scales[j];
    for (int r = 0; r < n; ++r)
        for (int j = 0; j < c; ++j) out[(long)r * c + j] += l->biases[j];
}

/* Exact derivative of the forward above (fix Q6); delta already holds
 * dL/dx_hat (in Darknet's negative-gradient convention). */
static void bn_backward_exact(const dn_connected *l, float *delta, const float *x,
                              const float *mean, const float *var)
{
    const int n = l->batch, c = l->outputs;
    for (int j = 0; j < c; ++j) {
        double sigma = sqrt((double)var[j]);
        double s = 1.0 / (sigma + 0.000001);
        double g_mean = 0, g_dot = 0;
        for (int r = 0; r < n; ++r) {
            long i = (long)r * c + j;
            g_mean += delta[i];
            g_dot += (double)delta[i] * ((double)x[i] - mean[j]);
        }
        g_mean /= n;
        /* d sigma / d var is infinite at var = 0 (all rows equal, e.g. the
         * self layer at t = 0 whose input h_0 is 0), but the variance path's
         * contribution (x - mean) * g_dot / sigma tends to 0 there. */
        double k = var[j] > 0 ? s * s / (sigma * (n - 1)) * g_dot : 0.0;
        for (int r = 0; r < n; ++r) {
            long i = (long)r * c + j;
            delta[i] = (float)(s * ((double)delta[i] - g_mean) - k * ((double)x[i] - mean[j]));
        }
    }
}

DN_CLONES void dn_batchnorm_backward(const dn_connected *l, int step, int stats_step, int fixes)
{
    const int n = l->batch, c = l->outputs;
    float *delta = dn_rows(l->delta, step, n, c);        /* (n, c) */
    const float *x = dn_rows(l->x, step, n, c);
    const float *x_norm = dn_rows(l->x_norm, step, n, c);
    const float *mean = l->mean + (long)stats_step * c;
    const float *var = l->variance + (long)stats_step * c;
    float *mean_delta = l->mean_delta, *variance_delta = l->variance_delta;  /* (c) scratch */

    for (int r = 0; r < n; ++r)
        for (int j = 0; j < c; ++j) l->bias_updates[j] += 0.0f + delta[(long)r * c + j];
    /* scale_updates: each column summed from 0, then added */
    for (int j = 0; j < c; ++j) variance_delta[j] = 0;
    for (int r = 0; r < n; ++r)
        for (int j = 0; j < c; ++j)
            variance_delta[j] += delta[(long)r * c + j] * x_norm[(long)r * c + j];
    for (int j = 0; j < c; ++j) l->scale_updates[j] += variance_delta[j];
    for (int r = 0; r < n; ++r)
        for (int j = 0; j < c; ++j) delta[(long)r * c + j] *= l->scales[j];

    if (fixes & DN_FIX_BN_GRADIENT) {
        bn_backward_exact(l, delta, x, mean, var);
        return;
    }
    for (int j = 0; j < c; ++j) mean_delta[j] = variance_delta[j] = 0;
    for (int r = 0; r < n; ++r)
        for (int j = 0; j < c; ++j) {
            long i = (long)r * c + j;
            mean_delta[j] += delta[i];
            variance_delta[j] += delta[i] * (x[i] - mean[j]);
        }
    for (int j = 0; j < c; ++j) {
        mean_delta[j] = (float)((double)mean_delta[j] * (-1.0 / sqrt((double)(var[j] + 0.00001f))));
        variance_delta[j] = (float)((double)variance_delta[j]
                                    * (-0.5 * pow((double)(var[j] + 0.00001f), -1.5)));
    }
    double *root = l->bn_factors, *vd2 = root + c, *t3 = vd2 + c;   /* (c) each */
    for (int j = 0; j < c; ++j) {
        root[j] = sqrt((double)(var[j] + 0.00001f));
        vd2[j] = (double)variance_delta[j] * 2.0;
        t3[j] = (double)(mean_delta[j] / (float)n);
    }
    for (int r = 0; r < n; ++r)
        for (int j = 0; j < c; ++j) {
            long i = (long)r * c + j;
            double t1 = (double)delta[i] * 1.0 / root[j];
            double t2 = vd2[j] * (double)(x[i] - mean[j]) / (double)n;
            delta[i] = (float)(t1 + t2 + t3[j]);
        }
}
