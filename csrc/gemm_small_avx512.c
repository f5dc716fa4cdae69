/* gemm_small_avx512.c - the AVX-512 kernels for few rows of C (DN_KERNEL_AVX512).
 *
 * With few rows of C (M <= small_m; e.g. generation with M = 1) the product
 * is memory bound on B, so nothing of B is packed and B is read once per
 * group of up to 4 rows of C (see dn_rows_fn / dn_dots_fn / dn_dotsb_fn in
 * gemm_internal.h):
 *   rows  (TB = 0): C rows accumulate (alpha a(i,k)) * B(k,:) for k in order,
 *                   streaming 4-8 rows of B per pass with C's rows in L1;
 *   rrows (TB = 0, a group of 4 rows): 96-column blocks of C held in zmm
 *                   registers over the whole K instead;
 *   dots  (TB = 1): dot products of op(A)'s rows with B's rows (both
 *                   contiguous in k), reduced horizontally at the end;
 *   dotsb (TA = 0, TB = 1, moderate M, big B): the dots tile over blocks of
 *                   B's rows shared by all row groups, so B is read from
 *                   memory once.
 * Each family is one always-inlined worker taking its sizes (rows of C,
 * rows of B or of k per pass); the named wrappers fix them, so the compiler
 * unrolls the loops over those sizes and keeps the arrays below (sized for
 * the largest use) in zmm registers, while a debugger can step through one
 * body. The order of the FMAs per element of C (k in order, the k tail
 * last) is part of the contract: results are compared bitwise across thread
 * counts.
 */
#include <string.h>

#include "gemm_internal.h"

#if DN_X86

#define ROWS_JB 4096         /* columns of C per pass of rows (L1/L2) */
#define ROWS_MAX_KU 8        /* most rows of B per pass of rows */
#define DOTS_MAX_NBS 8       /* most rows of B per dots tile */

/* rows (see dn_rows_fn), MRS (<= 4) rows of C: C = beta * C, then
 * C(i, :) += (alpha * a(i, k)) * B(k, :) for k in order. B is streamed
 * once, KU (<= ROWS_MAX_KU) rows per pass (KU sequential streams, which
 * keeps more requests in flight than a column-blocked walk down B); the C
 * rows, at most MRS x ROWS_JB floats, stay in L1/L2 between passes. */
DN_TARGET_AVX512 __attribute__((always_inline))
static inline void rows_avx512(int MRS, int KU, int n, int K, float alpha,
                               const float *a, long a_rs, long a_ks,
                               const float *B, long ldb, float beta, float *C,
                               long ldc)
{
    for (int j0 = 0; j0 < n; j0 += ROWS_JB) {
        int jn = dn_imin(ROWS_JB, n - j0), j16 = jn & ~15;
        __mmask16 mt = dn_tail_mask(jn & 15);
        const float *bj = B + j0;
        float *cj = C + j0;
#pragma GCC unroll 4
        for (int i = 0; i < MRS; i++) {
            float *ci = cj + i * ldc;
            if (beta == 0.0f) memset(ci, 0, sizeof(float) * (size_t)jn);
            else if (beta != 1.0f)
                for (int j = 0; j < jn; j++) ci[j] *= beta;
        }
        int k = 0;
        for (; k + KU <= K; k += KU) {
            const float *bq[ROWS_MAX_KU];
            __m512 av[4][ROWS_MAX_KU];
#pragma GCC unroll 8
            for (int q = 0; q < KU; q++)
                bq[q] = bj + (long)(k + q) * ldb;
#pragma GCC unroll 4
            for (int i = 0; i < MRS; i++)
#pragma GCC unroll 8
                for (int q = 0; q < KU; q++)
                    av[i][q] = _mm512_set1_ps(alpha * a[i * a_rs + (k + q) * a_ks]);
            for (int j = 0; j <= j16; j += 16) {
                __mmask16 m = j < j16 ? (__mmask16)0xFFFF : mt;
                if (!m) break;
                __m512 v[ROWS_MAX_KU];
#pragma GCC unroll 8
                for (int q = 0; q < KU; q++)
                    v[q] = _mm512_maskz_loadu_ps(m, bq[q] + j);
#pragma GCC unroll 4
                for (int i = 0; i < MRS; i++) {
                    float *ci = cj + i * ldc + j;
                    __m512 c = _mm512_maskz_loadu_ps(m, ci);
#pragma GCC unroll 8
                    for (int q = 0; q < KU; q++)
                        c = _mm512_fmadd_ps(av[i][q], v[q], c);
                    _mm512_mask_storeu_ps(ci, m, c);
                }
            }
        }
        for (; k < K; k++) {               /* K % KU rows of B, one at a time */
            const float *b0 = bj + k * ldb;
            __m512 av[4];
#pragma GCC unroll 4
            for (int i = 0; i < MRS; i++)
                av[i] = _mm512_set1_ps(alpha * a[i * a_rs + k * a_ks]);
            for (int j = 0; j <= j16; j += 16) {
                __mmask16 m = j < j16 ? (__mmask16)0xFFFF : mt;
                if (!m) break;
                __m512 v0 = _mm512_maskz_loadu_ps(m, b0 + j);
#pragma GCC unroll 4
                for (int i = 0; i < MRS; i++) {
                    float *ci = cj + i * ldc + j;
                    _mm512_mask_storeu_ps(ci, m, _mm512_fmadd_ps(av[i], v0,
                                          _mm512_maskz_loadu_ps(m, ci)));
                }
            }
        }
    }
}

DN_TARGET_AVX512
void dn_gemm_rows1_avx512(int n, int K, float alpha, const float *a, long a_rs,
                          long a_ks, const float *B, long ldb, float beta, float *C,
                          long ldc)
{
    rows_avx512(1, 8, n, K, alpha, a, a_rs, a_ks, B, ldb, beta, C, ldc);
}

DN_TARGET_AVX512
void dn_gemm_rows2_avx512(int n, int K, float alpha, const float *a, long a_rs,
                          long a_ks, const float *B, long ldb, float beta, float *C,
                          long ldc)
{
    rows_avx512(2, 8, n, K, alpha, a, a_rs, a_ks, B, ldb, beta, C, ldc);
}

DN_TARGET_AVX512
void dn_gemm_rows3_avx512(int n, int K, float alpha, const float *a, long a_rs,
                          long a_ks, const float *B, long ldb, float beta, float *C,
                          long ldc)
{
    rows_avx512(3, 4, n, K, alpha, a, a_rs, a_ks, B, ldb, beta, C, ldc);
}

/* rows (see dn_rows_fn) for a group of 4 rows, where streaming would spend
 * more on C's loads and stores than on B: columns go in blocks of RR_NV*16
 * held in zmm accumulators (24 of them) across the whole K loop,
 * C(i, j) = alpha * sum_k a(i, k) B(k, j) + beta * C; B is read once. */
#define RR_MR 4
#define RR_NV 6
DN_TARGET_AVX512
void dn_gemm_rrows4_avx512(int n, int K, float alpha, const float *a, long a_rs,
                           long a_ks, const float *B, long ldb, float beta, float *C,
                           long ldc)
{
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    for (int j0 = 0; j0 < n; j0 += RR_NV * 16) {
        __mmask16 m[RR_NV];
        __m512 acc[RR_MR][RR_NV];
#pragma GCC unroll 8
        for (int v = 0; v < RR_NV; v++)
            m[v] = dn_tail_mask(n - j0 - v * 16);
#pragma GCC unroll 8
        for (int i = 0; i < RR_MR; i++)
#pragma GCC unroll 8
            for (int v = 0; v < RR_NV; v++)
                acc[i][v] = _mm512_setzero_ps();
        const float *bk = B + j0;
        if (n - j0 >= RR_NV * 16) {        /* a full block: plain loads */
            for (int k = 0; k < K; k++, bk += ldb) {
                __m512 bv[RR_NV];
#pragma GCC unroll 8
                for (int v = 0; v < RR_NV; v++)
                    bv[v] = _mm512_loadu_ps(bk + v * 16);
#pragma GCC unroll 8
                for (int i = 0; i < RR_MR; i++) {
                    __m512 ai = _mm512_set1_ps(a[i * a_rs + k * a_ks]);
#pragma GCC unroll 8
                    for (int v = 0; v < RR_NV; v++)
                        acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);
                }
            }
        } else {                           /* the last, partial block */
            for (int k = 0; k < K; k++, bk += ldb) {
                __m512 bv[RR_NV];
#pragma GCC unroll 8
                for (int v = 0; v < RR_NV; v++)
                    bv[v] = _mm512_maskz_loadu_ps(m[v], bk + v * 16);
#pragma GCC unroll 8
                for (int i = 0; i < RR_MR; i++) {
                    __m512 ai = _mm512_set1_ps(a[i * a_rs + k * a_ks]);
#pragma GCC unroll 8
                    for (int v = 0; v < RR_NV; v++)
                        acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);
                }
            }
        }
#pragma GCC unroll 8
        for (int i = 0; i < RR_MR; i++) {
            float *ci = C + i * ldc + j0;
#pragma GCC unroll 8
            for (int v = 0; v < RR_NV; v++) {
                __m512 r = _mm512_mul_ps(va, acc[i][v]);
                if (beta != 0.0f)
                    r = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m[v], ci + v * 16), r);
                _mm512_mask_storeu_ps(ci + v * 16, m[v], r);
            }
        }
    }
}

/* One tile of the dots kernels: C(0..MRS-1, 0..nb-1) = alpha * dot(A row i,
 * B row j) + beta * C, vectors along k (MRS*NBS zmm accumulators, MRS <= 4,
 * NBS <= DOTS_MAX_NBS), rows of B given by pointer (a missing last row
 * repeats row n-1, its result is dropped), the k tail a masked step, a
 * horizontal sum at the end. */
DN_TARGET_AVX512 __attribute__((always_inline))
static inline void dots_tile(int MRS, int NBS, int K, float alpha,
                             const float *A, long lda, const float *const *bj,
                             int nb, float beta, float *C, long ldc)
{
    __mmask16 mk = dn_tail_mask(K & 15);
    int k16 = K & ~15;
    __m512 acc[4][DOTS_MAX_NBS];
#pragma GCC unroll 8
    for (int i = 0; i < MRS; i++)
#pragma GCC unroll 8
        for (int j = 0; j < NBS; j++)
            acc[i][j] = _mm512_setzero_ps();
    for (int k = 0; k < k16; k += 16) {
        __m512 av[4];
#pragma GCC unroll 8
        for (int i = 0; i < MRS; i++)
            av[i] = _mm512_loadu_ps(A + i * lda + k);
#pragma GCC unroll 8
        for (int j = 0; j < NBS; j++) {
            __m512 bv = _mm512_loadu_ps(bj[j] + k);
#pragma GCC unroll 8
            for (int i = 0; i < MRS; i++)
                acc[i][j] = _mm512_fmadd_ps(av[i], bv, acc[i][j]);
        }
    }
    if (mk) {
        __m512 av[4];
#pragma GCC unroll 8
        for (int i = 0; i < MRS; i++)
            av[i] = _mm512_maskz_loadu_ps(mk, A + i * lda + k16);
#pragma GCC unroll 8
        for (int j = 0; j < NBS; j++) {
            __m512 bv = _mm512_maskz_loadu_ps(mk, bj[j] + k16);
#pragma GCC unroll 8
            for (int i = 0; i < MRS; i++)
                acc[i][j] = _mm512_fmadd_ps(av[i], bv, acc[i][j]);
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < MRS; i++) {
        float *ci = C + i * ldc;
#pragma GCC unroll 8
        for (int j = 0; j < NBS; j++) {
            if (j < nb) {
                float s = alpha * _mm512_reduce_add_ps(acc[i][j]);
                ci[j] = beta == 0.0f ? s : s + beta * ci[j];
            }
        }
    }
}

/* dots (see dn_dots_fn), MRS rows of C: the tile over NBS rows of B at a
 * time. */
DN_TARGET_AVX512 __attribute__((always_inline))
static inline void dots_avx512(int MRS, int NBS, int n, int K, float alpha,
                               const float *A, long lda, const float *B,
                               long ldb, float beta, float *C, long ldc)
{
    for (int j0 = 0; j0 < n; j0 += NBS) {
        const float *bj[DOTS_MAX_NBS];
        for (int j = 0; j < NBS; j++)
            bj[j] = B + (long)dn_imin(j0 + j, n - 1) * ldb;
        dots_tile(MRS, NBS, K, alpha, A, lda, bj, dn_imin(NBS, n - j0), beta,
                  C + j0, ldc);
    }
}

DN_TARGET_AVX512
void dn_gemm_dots1_avx512(int n, int K, float alpha, const float *A, long lda,
                          const float *B, long ldb, float beta, float *C, long ldc)
{
    dots_avx512(1, 8, n, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

DN_TARGET_AVX512
void dn_gemm_dots2_avx512(int n, int K, float alpha, const float *A, long lda,
                          const float *B, long ldb, float beta, float *C, long ldc)
{
    dots_avx512(2, 6, n, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

DN_TARGET_AVX512
void dn_gemm_dots3_avx512(int n, int K, float alpha, const float *A, long lda,
                          const float *B, long ldb, float beta, float *C, long ldc)
{
    dots_avx512(3, 4, n, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

DN_TARGET_AVX512
void dn_gemm_dots4_avx512(int n, int K, float alpha, const float *A, long lda,
                          const float *B, long ldb, float beta, float *C, long ldc)
{
    dots_avx512(4, 4, n, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* dots, blocked (TA = 0, TB = 1, moderate M; e.g. batched generation, whose
 * B is a weight matrix streamed from memory): DB_NBS rows of B at a time,
 * each used by every group of 4 rows of A while it sits in L1; A stays in
 * L2, so B is read from memory once. (Measured on M = 32, N = K = 1024 with
 * B not in cache: 128 GFLOP/s against 110 for the packed path; 4 or 8 rows
 * of B at a time did worse, and so did software prefetch of the next rows.)
 * All M rows of C, N columns, the whole K: C = alpha A B^T + beta C. */
#define DB_NBS 6
DN_TARGET_AVX512
void dn_gemm_dotsb_avx512(int M, int N, int K, float alpha, const float *A,
                          long lda, const float *B, long ldb, float beta,
                          float *C, long ldc)
{
    const float *bj[DB_NBS];
    for (int j0 = 0; j0 < N; j0 += DB_NBS) {
        int nb = dn_imin(DB_NBS, N - j0);
        for (int j = 0; j < DB_NBS; j++)      /* a missing row: repeat N - 1 */
            bj[j] = B + (long)dn_imin(j0 + j, N - 1) * ldb;
        for (int i0 = 0; i0 < M; i0 += 4) {
            const float *a = A + (long)i0 * lda;
            float *c = C + (long)i0 * ldc + j0;
            /* one case per row count, so each tile is compiled with its
             * sizes fixed (see the file comment) */
            switch (dn_imin(4, M - i0)) {
            case 1: dots_tile(1, DB_NBS, K, alpha, a, lda, bj, nb, beta, c, ldc); break;
            case 2: dots_tile(2, DB_NBS, K, alpha, a, lda, bj, nb, beta, c, ldc); break;
            case 3: dots_tile(3, DB_NBS, K, alpha, a, lda, bj, nb, beta, c, ldc); break;
            default: dots_tile(4, DB_NBS, K, alpha, a, lda, bj, nb, beta, c, ldc); break;
            }
        }
    }
}

#endif /* DN_X86 */
