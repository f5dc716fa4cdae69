/* gemm_small_avx2.c - the AVX2 small-M kernels (M <= small_m, DN_KERNEL_AVX2).
 *
 * With few rows of C the product is memory bound on B, so B is not packed
 * and is read once per group of rows of C (see dn_rows_fn / dn_dots_fn in
 * gemm_internal.h):
 *   rows (TB = 0): C rows accumulate (alpha a(i,k)) * B(k,:) for k in order,
 *                  four rows of B per pass, groups of up to 4 rows of C;
 *   dots (TB = 1): dot products of op(A)'s rows with B's rows (both
 *                  contiguous in k), reduced horizontally at the end,
 *                  groups of up to 2 rows of C.
 * Each family is one always-inlined worker taking the group size; the named
 * wrappers fix it, so the compiler unrolls the row loops and keeps the
 * accumulators in registers, while a debugger can still step through one
 * body. The order of the FMAs (k in order per element, then the k tail) is
 * part of the contract: results are compared bitwise across thread counts.
 */
#include <string.h>

#include "gemm_internal.h"

#if DN_X86

/* rows (see dn_rows_fn), MRS rows of C: C = beta * C, then
 * C(i, :) += (alpha * a(i, k)) * B(k, :) for k in order, four rows of B per
 * pass (four sequential streams); the column tail (n % 8) by scalar FMAs. */
__attribute__((target("avx2,fma"), always_inline))
static inline void rows_avx2(int MRS, int n, int K, float alpha,
                             const float *a, long a_rs, long a_ks,
                             const float *B, long ldb, float beta, float *C,
                             long ldc)
{
    int n8 = n & ~7;
    for (int i = 0; i < MRS; i++) {
        float *ci = C + i * ldc;
        if (beta == 0.0f) memset(ci, 0, sizeof(float) * (size_t)n);
        else if (beta != 1.0f)
            for (int j = 0; j < n; j++) ci[j] *= beta;
    }
    int k = 0;
    for (; k + 4 <= K; k += 4) {
        const float *b0 = B + (long)k * ldb, *b1 = b0 + ldb, *b2 = b1 + ldb,
                    *b3 = b2 + ldb;
        float as[4][4];
        __m256 av[4][4];
#pragma GCC unroll 4
        for (int i = 0; i < MRS; i++)
#pragma GCC unroll 4
            for (int q = 0; q < 4; q++) {
                as[i][q] = alpha * a[i * a_rs + (k + q) * a_ks];
                av[i][q] = _mm256_set1_ps(as[i][q]);
            }
        for (int j = 0; j < n8; j += 8) {
            __m256 v0 = _mm256_loadu_ps(b0 + j), v1 = _mm256_loadu_ps(b1 + j);
            __m256 v2 = _mm256_loadu_ps(b2 + j), v3 = _mm256_loadu_ps(b3 + j);
#pragma GCC unroll 4
            for (int i = 0; i < MRS; i++) {
                float *ci = C + i * ldc + j;
                __m256 c = _mm256_loadu_ps(ci);
                c = _mm256_fmadd_ps(av[i][0], v0, c);
                c = _mm256_fmadd_ps(av[i][1], v1, c);
                c = _mm256_fmadd_ps(av[i][2], v2, c);
                c = _mm256_fmadd_ps(av[i][3], v3, c);
                _mm256_storeu_ps(ci, c);
            }
        }
        for (int j = n8; j < n; j++)
            for (int i = 0; i < MRS; i++) {
                float *ci = C + i * ldc + j;
                float c = *ci;
                c = __builtin_fmaf(as[i][0], b0[j], c);
                c = __builtin_fmaf(as[i][1], b1[j], c);
                c = __builtin_fmaf(as[i][2], b2[j], c);
                *ci = __builtin_fmaf(as[i][3], b3[j], c);
            }
    }
    for (; k < K; k++) {
        const float *b0 = B + (long)k * ldb;
        float as[4];
        __m256 av[4];
#pragma GCC unroll 4
        for (int i = 0; i < MRS; i++) {
            as[i] = alpha * a[i * a_rs + k * a_ks];
            av[i] = _mm256_set1_ps(as[i]);
        }
        for (int j = 0; j < n8; j += 8) {
            __m256 v0 = _mm256_loadu_ps(b0 + j);
#pragma GCC unroll 4
            for (int i = 0; i < MRS; i++) {
                float *ci = C + i * ldc + j;
                _mm256_storeu_ps(ci, _mm256_fmadd_ps(av[i], v0, _mm256_loadu_ps(ci)));
            }
        }
        for (int j = n8; j < n; j++)
            for (int i = 0; i < MRS; i++)
                C[i * ldc + j] = __builtin_fmaf(as[i], b0[j], C[i * ldc + j]);
    }
}


DN_TARGET_AVX2
void dn_gemm_rows1_avx2(int n, int K, float alpha, const float *a, long a_rs,
                        long a_ks, const float *B, long ldb, float beta, float *C,
                        long ldc)
{
    rows_avx2(1, n, K, alpha, a, a_rs, a_ks, B, ldb, beta, C, ldc);
}

DN_TARGET_AVX2
void dn_gemm_rows2_avx2(int n, int K, float alpha, const float *a, long a_rs,
                        long a_ks, const float *B, long ldb, float beta, float *C,
                        long ldc)
{
    rows_avx2(2, n, K, alpha, a, a_rs, a_ks, B, ldb, beta, C, ldc);
}

DN_TARGET_AVX2
void dn_gemm_rows3_avx2(int n, int K, float alpha, const float *a, long a_rs,
                        long a_ks, const float *B, long ldb, float beta, float *C,
                        long ldc)
{
    rows_avx2(3, n, K, alpha, a, a_rs, a_ks, B, ldb, beta, C, ldc);
}

DN_TARGET_AVX2
void dn_gemm_rows4_avx2(int n, int K, float alpha, const float *a, long a_rs,
                        long a_ks, const float *B, long ldb, float beta, float *C,
                        long ldc)
{
    rows_avx2(4, n, K, alpha, a, a_rs, a_ks, B, ldb, beta, C, ldc);
}

__attribute__((target("avx2,fma")))
static inline float hsum_avx(__m256 v)
{
    __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    x = _mm_add_ps(x, _mm_movehl_ps(x, x));
    x = _mm_add_ss(x, _mm_movehdup_ps(x));
    return _mm_cvtss_f32(x);
}

/* dots (see dn_dots_fn), MRS rows of C, four rows of B at a time (a missing
 * last row of B is replaced by row n-1 and its result dropped); the k tail
 * (K % 8) is added to the reduced sums by scalar FMAs. */
__attribute__((target("avx2,fma"), always_inline))
static inline void dots_avx2(int MRS, int n, int K, float alpha,
                             const float *A, long lda, const float *B,
                             long ldb, float beta, float *C, long ldc)
{
    int k8 = K & ~7;
    for (int j0 = 0; j0 < n; j0 += 4) {
        const float *bj[4];
        __m256 acc[2][4];
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) bj[j] = B + (long)dn_imin(j0 + j, n - 1) * ldb;
#pragma GCC unroll 2
        for (int i = 0; i < MRS; i++)
#pragma GCC unroll 4
            for (int j = 0; j < 4; j++) acc[i][j] = _mm256_setzero_ps();
        for (int k = 0; k < k8; k += 8) {
            __m256 av[2];
#pragma GCC unroll 2
            for (int i = 0; i < MRS; i++) av[i] = _mm256_loadu_ps(A + i * lda + k);
#pragma GCC unroll 4
            for (int j = 0; j < 4; j++) {
                __m256 bv = _mm256_loadu_ps(bj[j] + k);
#pragma GCC unroll 2
                for (int i = 0; i < MRS; i++)
                    acc[i][j] = _mm256_fmadd_ps(av[i], bv, acc[i][j]);
            }
        }
        int nb = dn_imin(4, n - j0);
        for (int i = 0; i < MRS; i++) {
            float *ci = C + i * ldc + j0;
            const float *ai = A + i * lda;
            for (int j = 0; j < nb; j++) {
                float s = hsum_avx(acc[i][j]);
                for (int k = k8; k < K; k++) s = __builtin_fmaf(ai[k], bj[j][k], s);
                s *= alpha;
                ci[j] = beta == 0.0f ? s : s + beta * ci[j];
            }
        }
    }
}

DN_TARGET_AVX2
void dn_gemm_dots1_avx2(int n, int K, float alpha, const float *A, long lda,
                        const float *B, long ldb, float beta, float *C, long ldc)
{
    dots_avx2(1, n, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

DN_TARGET_AVX2
void dn_gemm_dots2_avx2(int n, int K, float alpha, const float *A, long lda,
                        const float *B, long ldb, float beta, float *C, long ldc)
{
    dots_avx2(2, n, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

#endif /* DN_X86 */
