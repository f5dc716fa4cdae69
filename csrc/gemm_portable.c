/* gemm_portable.c - the plain-C micro-kernel and packers (DN_KERNEL_PORTABLE).
 *
 * Owns: the portable MR x NR = 4 x 16 micro-kernel, the copy and trans
 * packers, and the scalar tile store. These run on any CPU and are also the
 * SIMD packers' fallbacks for widths their vector code does not cover (e.g.
 * AVX2's 6-row A slivers) and the AVX2 kernel's edge-tile store.
 * Contracts: gemm_internal.h. The accumulation order of ukernel is k
 * outermost, one product added per (i, j) per k: the fast kernels' results
 * are compared bitwise across thread counts, so it must not change.
 */
#include <string.h>

#include "gemm_internal.h"

#define P_MR DN_PORTABLE_MR
#define P_NR DN_PORTABLE_NR

void dn_gemm_pack_copy_c(int R, int rv, int kc, const float *src, long ld,
                         float *dst)
{
    for (int k = 0; k < kc; k++) {
        const float *s = src + (long)k * ld;
        float *d = dst + (long)k * R;
        int r = 0;
        for (; r < rv; r++) d[r] = s[r];
        for (; r < R; r++) d[r] = 0.0f;
    }
}

void dn_gemm_pack_trans_c(int R, int rv, int kc, const float *src, long ld,
                          float *dst)
{
    for (int r = 0; r < R; r++) {
        float *d = dst + r;
        if (r < rv) {
            const float *s = src + (long)r * ld;
            for (int k = 0; k < kc; k++) d[(long)k * R] = s[k];
        } else {
            for (int k = 0; k < kc; k++) d[(long)k * R] = 0.0f;
        }
    }
}

/* Store the valid mr x nr part of an accumulated tile t (row stride
 * tstride) into C: C = alpha * t + beta * C, C not read when beta == 0. */
void dn_gemm_store_tile_c(const float *t, int tstride, float *c, long ldc,
                          int mr, int nr, float alpha, float beta)
{
    for (int i = 0; i < mr; i++) {
        float *ci = c + (long)i * ldc;
        const float *ti = t + i * tstride;
        if (beta == 0.0f)
            for (int j = 0; j < nr; j++) ci[j] = alpha * ti[j];
        else
            for (int j = 0; j < nr; j++) ci[j] = alpha * ti[j] + beta * ci[j];
    }
}

void dn_gemm_ukernel_c(int kc, const float *a, const float *b, long ldbk,
                       float *c, long ldc, int mr, int nr, float alpha,
                       float beta)
{
    float acc[P_MR][P_NR];
    memset(acc, 0, sizeof acc);
    for (int k = 0; k < kc; k++) {
        for (int i = 0; i < P_MR; i++) {
            float ai = a[i];
            for (int j = 0; j < P_NR; j++) acc[i][j] += ai * b[j];
        }
        a += P_MR;
        b += ldbk;
    }
    dn_gemm_store_tile_c(&acc[0][0], P_NR, c, ldc, mr, nr, alpha, beta);
}
