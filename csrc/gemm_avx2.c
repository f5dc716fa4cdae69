/* gemm_avx2.c - the AVX2 + FMA micro-kernel and packers (DN_KERNEL_AVX2).
 *
 * Owns: the 6 x 16 micro-kernel (12 ymm accumulators), the 16-wide copy
 * pack and the 8x8-transpose "trans" pack. The trans pack's group-of-8 step
 * (dn_gemm_trans8_avx2) is shared with the AVX-512 trans pack, which uses
 * it for its k tail. Other widths go to the portable packers.
 * Contracts: gemm_internal.h. Every function here carries the avx2,fma
 * target attribute and is reached only after dn_kernels_available() saw
 * both features. Each accumulator adds one FMA per k, k in order: that order
 * is what the bitwise cross-thread checks pin down.
 */
#include "gemm_internal.h"

#if DN_X86

#define A2_MR DN_AVX2_MR
#define A2_NR DN_AVX2_NR

/* 8x8 transpose in ymm registers (unpack, shuffle, 128-bit lane swap); r[i]
 * row i in, column i out. Always inlined so r stays in registers. */
__attribute__((target("avx2,fma"), always_inline))
static inline void transpose8_avx2(__m256 r[8])
{
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]);
    __m256 t1 = _mm256_unpackhi_ps(r[0], r[1]);
    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]);
    __m256 t3 = _mm256_unpackhi_ps(r[2], r[3]);
    __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]);
    __m256 t5 = _mm256_unpackhi_ps(r[4], r[5]);
    __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]);
    __m256 t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 s0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
    __m256 s1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
    __m256 s2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
    __m256 s3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
    __m256 s4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0));
    __m256 s5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
    __m256 s6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0));
    __m256 s7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
    r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
    r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
    r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
    r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
    r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
    r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
    r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
    r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

/* One group of 8 sliver rows of a "trans" pack, k in [k0, kc): 8 rows x 8 k
 * at a time through an in-register transpose, the k tail by scalars.
 * nv (1..8) rows are valid, the others are written as zeros. */
DN_TARGET_AVX2
void dn_gemm_trans8_avx2(int R, int nv, int k0, int kc, const float *s,
                         long ld, float *dst)
{
    int k8 = k0 + ((kc - k0) & ~7);
    for (int k = k0; k < k8; k += 8) {
        __m256 r[8];
        for (int i = 0; i < 8; i++)
            r[i] = i < nv ? _mm256_loadu_ps(s + i * ld + k) : _mm256_setzero_ps();
        transpose8_avx2(r);
        for (int i = 0; i < 8; i++)
            _mm256_storeu_ps(dst + (long)(k + i) * R, r[i]);
    }
    for (int k = k8; k < kc; k++)
        for (int i = 0; i < 8; i++)
            dst[(long)k * R + i] = i < nv ? s[i * ld + k] : 0.0f;
}

/* "trans" pack: R a multiple of 8 goes through 8x8 transposes. */
DN_TARGET_AVX2
void dn_gemm_pack_trans_avx2(int R, int rv, int kc, const float *src, long ld,
                             float *dst)
{
    if (R % 8) {
        dn_gemm_pack_trans_c(R, rv, kc, src, ld, dst);
        return;
    }
    for (int r0 = 0; r0 < R; r0 += 8) {
        int nv = dn_imin(8, rv - r0);
        if (nv <= 0) {
            for (int k = 0; k < kc; k++)
                _mm256_storeu_ps(dst + (long)k * R + r0, _mm256_setzero_ps());
        } else {
            dn_gemm_trans8_avx2(R, nv, 0, kc, src + (long)r0 * ld, ld, dst + r0);
        }
    }
}

/* "copy" pack: full 16-wide B slivers by vectors, anything else portable. */
DN_TARGET_AVX2
void dn_gemm_pack_copy_avx2(int R, int rv, int kc, const float *src, long ld,
                            float *dst)
{
    if (R != A2_NR || rv != A2_NR) {
        dn_gemm_pack_copy_c(R, rv, kc, src, ld, dst);
        return;
    }
    for (int k = 0; k < kc; k++) {
        const float *s = src + (long)k * ld;
        float *d = dst + (long)k * A2_NR;
        _mm256_storeu_ps(d, _mm256_loadu_ps(s));
        _mm256_storeu_ps(d + 8, _mm256_loadu_ps(s + 8));
    }
}

/* 6 x 16 tile: per k two loads of B, six broadcasts of A, twelve FMAs. A
 * full tile is stored from registers; an edge tile goes through a buffer
 * and the portable store. */
DN_TARGET_AVX2
void dn_gemm_ukernel_avx2(int kc, const float *a, const float *b, long ldbk,
                          float *c, long ldc, int mr, int nr, float alpha,
                          float beta)
{
    __m256 acc[A2_MR][2];
#pragma GCC unroll 8
    for (int i = 0; i < A2_MR; i++) {
        acc[i][0] = _mm256_setzero_ps();
        acc[i][1] = _mm256_setzero_ps();
    }
    for (int k = 0; k < kc; k++) {
        __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
#pragma GCC unroll 8
        for (int i = 0; i < A2_MR; i++) {
            __m256 ai = _mm256_broadcast_ss(a + i);
            acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
        }
        a += A2_MR;
        b += ldbk;
    }
    __m256 va = _mm256_set1_ps(alpha);
    if (mr == A2_MR && nr == A2_NR) {
        __m256 vb = _mm256_set1_ps(beta);
#pragma GCC unroll 8
        for (int i = 0; i < A2_MR; i++) {
            float *ci = c + (long)i * ldc;
            if (beta == 0.0f) {
                _mm256_storeu_ps(ci, _mm256_mul_ps(va, acc[i][0]));
                _mm256_storeu_ps(ci + 8, _mm256_mul_ps(va, acc[i][1]));
            } else {
                _mm256_storeu_ps(ci, _mm256_fmadd_ps(va, acc[i][0],
                                 _mm256_mul_ps(vb, _mm256_loadu_ps(ci))));
                _mm256_storeu_ps(ci + 8, _mm256_fmadd_ps(va, acc[i][1],
                                 _mm256_mul_ps(vb, _mm256_loadu_ps(ci + 8))));
            }
        }
    } else {
        float t[A2_MR * A2_NR];
#pragma GCC unroll 8
        for (int i = 0; i < A2_MR; i++) {
            _mm256_storeu_ps(t + i * A2_NR, acc[i][0]);
            _mm256_storeu_ps(t + i * A2_NR + 8, acc[i][1]);
        }
        dn_gemm_store_tile_c(t, A2_NR, c, ldc, mr, nr, alpha, beta);
    }
}

#endif /* DN_X86 */
