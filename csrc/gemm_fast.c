/* gemm_fast.c - placeholder fast GEMM (portable loops); to be replaced by the
 * packed, register-blocked kernels. */
#include "internal.h"

int dn_kernels_available(void) { return (1 << DN_KERNEL_REFERENCE) | (1 << DN_KERNEL_PORTABLE); }
int dn_kernel_auto(void) { return DN_KERNEL_PORTABLE; }
long dn_gemm_work_floats(int kernel, int threads) { (void)kernel; (void)threads; return 0; }

int dn_gemm_fast(const dn_ctx *ctx, int TA, int TB, int M, int N, int K,
                 float alpha, const float *A, int lda, const float *B, int ldb,
                 float beta, float *C, int ldc)
{
    (void)ctx;
    dn_gemm_reference(TA, TB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return DN_OK;
}
