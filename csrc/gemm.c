/* gemm.c - GEMM entry point and Darknet's reference loops.
 *
 * dn_gemm_reference reproduces Darknet's gemm_cpu (single thread, no
 * OpenMP) bit for bit: C is first scaled by beta, then
 *   NN, TN: for each (i, k) the product alpha*A(i,k) is formed once and
 *           a_part*B(k,j) is added directly into C(i,j), k in order;
 *   NT, TT: a float accumulator starts at 0, adds alpha*A(i,k)*B(k,j) for
 *           k in order, and is then added into C(i,j).
 * Other kernels go to dn_gemm_fast (gemm_driver.c); they differ in rounding.
 */
#include "internal.h"

void dn_gemm_reference(int TA, int TB, int M, int N, int K, float alpha,
                       const float *A, int lda, const float *B, int ldb,
                       float beta, float *C, int ldc)
{
    for (int i = 0; i < M; ++i)
        for (int j = 0; j < N; ++j) C[(long)i * ldc + j] *= beta;

    if (!TA && !TB) {
        for (int i = 0; i < M; ++i)
            for (int k = 0; k < K; ++k) {
                float a_part = alpha * A[(long)i * lda + k];
                const float *b = B + (long)k * ldb;
                float *c = C + (long)i * ldc;
                for (int j = 0; j < N; ++j) c[j] += a_part * b[j];
            }
    } else if (TA && !TB) {
        for (int i = 0; i < M; ++i)
            for (int k = 0; k < K; ++k) {
                float a_part = alpha * A[(long)k * lda + i];
                const float *b = B + (long)k * ldb;
                float *c = C + (long)i * ldc;
                for (int j = 0; j < N; ++j) c[j] += a_part * b[j];
            }
    } else if (!TA && TB) {
        for (int i = 0; i < M; ++i)
            for (int j = 0; j < N; ++j) {
                float sum = 0;
                const float *a = A + (long)i * lda;
                const float *b = B + (long)j * ldb;
                for (int k = 0; k < K; ++k) sum += alpha * a[k] * b[k];
                C[(long)i * ldc + j] += sum;
            }
    } else {
        for (int i = 0; i < M; ++i)
            for (int j = 0; j < N; ++j) {
                float sum = 0;
                for (int k = 0; k < K; ++k)
                    sum += alpha * A[(long)k * lda + i] * B[(long)j * ldb + k];
                C[(long)i * ldc + j] += sum;
            }
    }
}

int dn_gemm(const dn_ctx *ctx, int TA, int TB, int M, int N, int K, float alpha,
            const float *A, int lda, const float *B, int ldb, float beta,
            float *C, int ldc)
{
    if (!ctx || M < 0 || N < 0 || K < 0) return DN_ERR_ARG;
    if (M == 0 || N == 0) return DN_OK;
    if (!A || !B || !C) return DN_ERR_ARG;
    if (lda < (TA ? M : K) || ldb < (TB ? K : N) || ldc < N || lda < 1 || ldb < 1)
        return DN_ERR_ARG;
    if (ctx->kernel == DN_KERNEL_REFERENCE) {
        dn_gemm_reference(TA, TB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return DN_OK;
    }
    return dn_gemm_fast(ctx, TA, TB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
