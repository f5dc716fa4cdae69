/* internal.h - declarations shared between csrc/*.c files, not seen by cffi. */
#ifndef DN_INTERNAL_H
#define DN_INTERNAL_H
#include "darknet_rnn.h"

/* Darknet's naive GEMM loops, bit-exact (gemm.c). */
void dn_gemm_reference(int TA, int TB, int M, int N, int K, float alpha,
                       const float *A, int lda, const float *B, int ldb,
                       float beta, float *C, int ldc);

/* Fast GEMM for ctx->kernel != DN_KERNEL_REFERENCE (gemm_fast.c).
 * Same contract as dn_gemm; uses ctx->work and ctx->threads. */
int dn_gemm_fast(const dn_ctx *ctx, int TA, int TB, int M, int N, int K,
                 float alpha, const float *A, int lda, const float *B, int ldb,
                 float beta, float *C, int ldc);

#endif
