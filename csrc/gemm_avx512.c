/* gemm_avx512.c - the AVX-512 micro-kernel and packers (DN_KERNEL_AVX512).
 *
 * Owns: the 8 x 32 micro-kernel (16 zmm accumulators), the copy pack (32-wide
 * B slivers, and whole blocks of 8-high A slivers) and the 8 x 16 "trans"
 * pack. Needs AVX-512F/VL and FMA (checked by dn_kernels_available before
 * anything here runs); the trans pack's k tail uses the AVX2 group step.
 * Contracts: gemm_internal.h. Each accumulator adds one FMA per k, k in
 * order; edge tiles are handled with lane masks, so one kernel covers them.
 */
#include "gemm_internal.h"

#if DN_X86

#define A5_MR DN_AVX512_MR
#define A5_NR DN_AVX512_NR
#define B_PREFETCH 24        /* k steps ahead that full tiles prefetch B */

DN_TARGET_AVX512
void dn_gemm_pack_copy_avx512(int R, int rv, int kc, const float *src, long ld,
                              float *dst)
{
    if (R == A5_NR) {
        __mmask16 m0 = dn_tail_mask(rv), m1 = dn_tail_mask(rv - 16);
        for (int k = 0; k < kc; k++) {
            const float *s = src + (long)k * ld;
            float *d = dst + (long)k * A5_NR;
            _mm512_storeu_ps(d, _mm512_maskz_loadu_ps(m0, s));
            _mm512_storeu_ps(d + 16, _mm512_maskz_loadu_ps(m1, s + 16));
        }
    } else if (R == A5_MR) {
        /* rv may exceed R: a whole block of slivers. Eight slivers (four
         * source lines) per pass over k: one sliver at a time would use half
         * a line per row of A (TA = 1: rows of M floats, far apart), all of
         * them at once would put every store in the same L1 set (slivers
         * are kc*32 bytes apart). */
        long sstride = (long)kc * A5_MR;
        for (int q0 = 0; q0 < rv; q0 += 8 * A5_MR) {
            int ng = dn_imin(8, (rv - q0 + A5_MR - 1) / A5_MR);
            float *dq = dst + (long)(q0 / A5_MR) * sstride;
            for (int k = 0; k < kc; k++) {
                const float *s = src + (long)k * ld + q0;
                float *d = dq + (long)k * A5_MR;
                for (int q = 0; q < ng; q++) {
                    __mmask8 m = (__mmask8)dn_tail_mask(rv - q0 - q * A5_MR);
                    _mm256_storeu_ps(d + q * sstride,
                                     _mm256_maskz_loadu_ps(m, s + q * A5_MR));
                }
            }
        }
    } else {
        dn_gemm_pack_copy_c(R, rv, kc, src, ld, dst);
    }
}

/* "trans" pack (R a multiple of 8): 8 rows x 16 k per step. The 8x8
 * transpose of the AVX2 version runs on both 256-bit halves at once (unpack
 * and shuffle work within 128-bit lanes); a two-source permute then pairs
 * the lanes, giving k and k+4 (k+8 and k+12) in one register. */
DN_TARGET_AVX512
void dn_gemm_pack_trans_avx512(int R, int rv, int kc, const float *src,
                               long ld, float *dst)
{
    if (R % 8) {
        dn_gemm_pack_trans_c(R, rv, kc, src, ld, dst);
        return;
    }
    const __m512i lo = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19,
                                         4, 5, 6, 7, 20, 21, 22, 23);
    const __m512i hi = _mm512_setr_epi32(8, 9, 10, 11, 24, 25, 26, 27,
                                         12, 13, 14, 15, 28, 29, 30, 31);
    int k16 = kc & ~15;
    for (int r0 = 0; r0 < R; r0 += 8) {
        int nv = dn_imin(8, rv - r0);
        float *d = dst + r0;
        if (nv <= 0) {
            for (int k = 0; k < kc; k++)
                _mm256_storeu_ps(d + (long)k * R, _mm256_setzero_ps());
            continue;
        }
        const float *s = src + (long)r0 * ld;
        for (int k = 0; k < k16; k += 16) {
            __m512 r[8];
            for (int i = 0; i < 8; i++)
                r[i] = i < nv ? _mm512_loadu_ps(s + i * ld + k) : _mm512_setzero_ps();
            __m512 t0 = _mm512_unpacklo_ps(r[0], r[1]), t1 = _mm512_unpackhi_ps(r[0], r[1]);
            __m512 t2 = _mm512_unpacklo_ps(r[2], r[3]), t3 = _mm512_unpackhi_ps(r[2], r[3]);
            __m512 t4 = _mm512_unpacklo_ps(r[4], r[5]), t5 = _mm512_unpackhi_ps(r[4], r[5]);
            __m512 t6 = _mm512_unpacklo_ps(r[6], r[7]), t7 = _mm512_unpackhi_ps(r[6], r[7]);
            /* s_q: rows 0-3 (s0..s3) or 4-7 (s4..s7) at k = q, q+4, q+8, q+12 */
            __m512 s0 = _mm512_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
            __m512 s1 = _mm512_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
            __m512 s2 = _mm512_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
            __m512 s3 = _mm512_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
            __m512 s4 = _mm512_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0));
            __m512 s5 = _mm512_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
            __m512 s6 = _mm512_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0));
            __m512 s7 = _mm512_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
            __m512 o[8];
            o[0] = _mm512_permutex2var_ps(s0, lo, s4);   /* k0  | k4  */
            o[1] = _mm512_permutex2var_ps(s1, lo, s5);   /* k1  | k5  */
            o[2] = _mm512_permutex2var_ps(s2, lo, s6);
            o[3] = _mm512_permutex2var_ps(s3, lo, s7);
            o[4] = _mm512_permutex2var_ps(s0, hi, s4);   /* k8  | k12 */
            o[5] = _mm512_permutex2var_ps(s1, hi, s5);
            o[6] = _mm512_permutex2var_ps(s2, hi, s6);
            o[7] = _mm512_permutex2var_ps(s3, hi, s7);
            for (int q = 0; q < 8; q++) {
                int kq = k + (q & 3) + (q >> 2) * 8;
                __m256 l = _mm512_castps512_ps256(o[q]);
                __m256 h = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(o[q]), 1));
                _mm256_storeu_ps(d + (long)kq * R, l);
                _mm256_storeu_ps(d + (long)(kq + 4) * R, h);
            }
        }
        if (k16 < kc) dn_gemm_trans8_avx2(R, nv, k16, kc, s, ld, d);
    }
}

/* 8 x 32 tile: per k two 16-float loads of B, eight broadcasts of A,
 * sixteen FMAs; the 16 independent accumulator chains cover the FMA latency
 * on two pipes. Columns j >= nr are masked off in the loads of B (so B may
 * be read in place, direct_b) and in the stores of C. FULL (nr == NR, the
 * common case) drops the masks, prefetches the C tile while the k loop
 * runs (C is the one operand not streamed through the cache on purpose)
 * and unrolls k; the arithmetic is the same, so are the bits. PF adds
 * software prefetch of B (dn_gemm_ukernel_pf_avx512). */
DN_TARGET_AVX512 __attribute__((always_inline))
static inline void ukernel_avx512(int FULL, int PF, int kc, const float *a, const float *b,
                                  long ldbk, float *c, long ldc, int mr, int nr,
                                  float alpha, float beta)
{
    __mmask16 m0 = dn_tail_mask(nr), m1 = dn_tail_mask(nr - 16);
    __m512 acc[A5_MR][2];
#pragma GCC unroll 8
    for (int i = 0; i < A5_MR; i++) {
        acc[i][0] = _mm512_setzero_ps();
        acc[i][1] = _mm512_setzero_ps();
    }
    if (FULL)
#pragma GCC unroll 8
        for (int i = 0; i < A5_MR; i++)
            if (i < mr) {
                _mm_prefetch((const char *)(c + (long)i * ldc), _MM_HINT_T0);
                _mm_prefetch((const char *)(c + (long)i * ldc + 16), _MM_HINT_T0);
            }
#pragma GCC unroll 4
    for (int k = 0; k < kc; k++) {
        if (PF) {        /* B from memory (first tile of a sliver): ahead of time */
            _mm_prefetch((const char *)(b + B_PREFETCH * ldbk), _MM_HINT_T0);
            _mm_prefetch((const char *)(b + B_PREFETCH * ldbk + 16), _MM_HINT_T0);
        }
        __m512 b0 = FULL ? _mm512_loadu_ps(b) : _mm512_maskz_loadu_ps(m0, b);
        __m512 b1 = FULL ? _mm512_loadu_ps(b + 16) : _mm512_maskz_loadu_ps(m1, b + 16);
#pragma GCC unroll 8
        for (int i = 0; i < A5_MR; i++) {
            __m512 ai = _mm512_set1_ps(a[i]);
            acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
        }
        a += A5_MR;
        b += ldbk;
    }
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#pragma GCC unroll 8
    for (int i = 0; i < A5_MR; i++) {
        if (i >= mr) break;
        float *ci = c + (long)i * ldc;
        __m512 r0 = _mm512_mul_ps(va, acc[i][0]);
        __m512 r1 = _mm512_mul_ps(va, acc[i][1]);
        if (beta != 0.0f) {
            r0 = _mm512_fmadd_ps(vb, FULL ? _mm512_loadu_ps(ci) : _mm512_maskz_loadu_ps(m0, ci), r0);
            r1 = _mm512_fmadd_ps(vb, FULL ? _mm512_loadu_ps(ci + 16)
                                          : _mm512_maskz_loadu_ps(m1, ci + 16), r1);
        }
        if (FULL) {
            _mm512_storeu_ps(ci, r0);
            _mm512_storeu_ps(ci + 16, r1);
        } else {
            _mm512_mask_storeu_ps(ci, m0, r0);
            _mm512_mask_storeu_ps(ci + 16, m1, r1);
        }
    }
}

DN_TARGET_AVX512
void dn_gemm_ukernel_avx512(int kc, const float *a, const float *b, long ldbk,
                            float *c, long ldc, int mr, int nr, float alpha,
                            float beta)
{
    if (nr == A5_NR)
        ukernel_avx512(1, 0, kc, a, b, ldbk, c, ldc, mr, nr, alpha, beta);
    else
        ukernel_avx512(0, 0, kc, a, b, ldbk, c, ldc, mr, nr, alpha, beta);
}

/* The same tile, prefetching B B_PREFETCH k steps ahead: for the first tile
 * of a prepacked B sliver, which comes from memory (batched generation
 * streams every weight matrix once per call); in-cache B is faster without. */
DN_TARGET_AVX512
void dn_gemm_ukernel_pf_avx512(int kc, const float *a, const float *b, long ldbk,
                               float *c, long ldc, int mr, int nr, float alpha,
                               float beta)
{
    if (nr == A5_NR)
        ukernel_avx512(1, 1, kc, a, b, ldbk, c, ldc, mr, nr, alpha, beta);
    else
        ukernel_avx512(0, 1, kc, a, b, ldbk, c, ldc, mr, nr, alpha, beta);
}

#endif /* DN_X86 */
