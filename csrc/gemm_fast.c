/* gemm_fast.c - the fast GEMM kernels (every kernel but DN_KERNEL_REFERENCE).
 *
 *   C(M,N) = alpha * op(A)(M,K) * op(B)(K,N) + beta * C        (row-major)
 *
 * Owns: CPU-feature dispatch (dn_kernels_available, dn_kernel_auto), the
 * workspace size (dn_gemm_work_floats) and dn_gemm_fast with its packing
 * routines, micro-kernels and small-M kernels for three instruction sets:
 *   DN_KERNEL_PORTABLE  plain C, any CPU            micro-tile  4 x 16
 *   DN_KERNEL_AVX2      AVX2 + FMA (ymm)            micro-tile  6 x 16
 *   DN_KERNEL_AVX512    AVX-512F/VL + FMA (zmm)     micro-tile  8 x 32
 *
 * Invariants
 *  - No allocation, no global mutable state, no printing: the packing
 *    workspace comes from ctx->work (sized by dn_gemm_work_floats), CPU
 *    features are queried on each call with __builtin_cpu_supports.
 *  - beta == 0 overwrites C without reading it (C may hold NaN); alpha == 0
 *    or K == 0 only scales C by beta.
 *  - Deterministic: for a given kernel each C element is computed by the
 *    same operations in the same order whatever ctx->threads is (threads
 *    own disjoint blocks of C cut at micro-tile and row-group boundaries,
 *    and the path is chosen from the whole problem's shape).
 *  - ISA code is compiled per function with target attributes, so the file
 *    builds with the project's plain -O2 flags and runs on any x86-64; it is
 *    entered only after the CPU check. Non-x86 builds keep the portable path.
 *
 * Large problems (the BLIS/Goto scheme), gemm_packed:
 *   for jc in N step NC:
 *     for pc in K step KC:    pack B block KC x NC -> NR-wide slivers
 *       for ic in M step MC:  pack A block MC x KC -> MR-high slivers (L2)
 *         for jr in NC step NR:                B sliver KC x NR stays in L1
 *           for ir in MC step MR: micro-kernel MR x NR over kc
 *   Packing handles the four transpose cases: a "copy" pack when the
 *   sliver's rows are contiguous in memory (A with TA = 1, B with TB = 0),
 *   a register-transpose pack otherwise (A with TA = 0, B with TB = 1).
 *   Edge slivers are zero-padded, so there is one micro-kernel per ISA and
 *   edge tiles only store their valid part. beta is applied by the first
 *   k-block, alpha when a tile is stored. Two variations: with TB = 0 and
 *   moderate M the AVX-512 kernel reads B in place (direct_b(): each sliver
 *   is used only M/MR times, so packing costs more than it saves), and when
 *   M fits one A block each B sliver is packed just before its tiles run.
 *
 * Blocking for one Zen 5 core (48 KB L1d, 1 MB L2), AVX-512 kernel:
 *   KC = 256:  the B sliver KC*NR*4 = 32 KB stays in L1 beside the 8 KB A
 *              sliver streaming from L2; K = 256/512 are one or two blocks.
 *   MC = 192:  the packed A block MC*KC*4 = 192 KB stays in L2, leaving room
 *              for the B slivers passing through and the C tiles.
 *   NC = 2048: the packed B block KC*NC*4 = 2 MB (L2/L3); the RNN's layer
 *              widths (N <= 2048) pack B once per k-block.
 *   In L1 the micro-kernel runs at the FMA peak (~270 GFLOP/s at boost
 *   clock; 8x32, 12x32, 6x64 and 8x48 tiles measured the same), and 8 rows
 *   divide the batch sizes used (32, 2048) without padding.
 *
 * Small M (M <= small_m, 16 for AVX2/AVX-512; e.g. generation with M = 1):
 * the product is memory bound on B, so nothing of B is packed and B is read
 * once per group of up to 4 rows of C:
 *   rows (TB = 0): C rows accumulate (alpha a(i,k)) * B(k,:) for k in order,
 *                  streaming 4-8 rows of B per pass with C's rows in
 *                  L1; a group of 4 rows on AVX-512 keeps 96-column
 *                  blocks of C in zmm registers instead;
 *   dots (TB = 1): dot products of op(A)'s rows with B's rows (both
 *                  contiguous in k; op(A)'s rows are copied to the workspace
 *                  first when TA = 1), reduced horizontally at the end.
 *
 * Threads: when ctx->threads > 1 and the estimated work is large enough
 * (PARALLEL_MIN), C is cut into ctx->threads blocks, along N when N >= M,
 * else along M, at micro-tile boundaries; each block is computed by the
 * serial code with its own slice of the workspace, on the context's pool
 * (ctx->pool) or, without one, on pthreads created and joined in this call
 * (the caller's thread takes block 0). The blocks do not depend on how they
 * are run: the bits are the same for any thread count, pool or not.
 */
#include "internal.h"

#include <pthread.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define DN_X86 1
#else
#define DN_X86 0
#endif

#define KC 256                   /* k-block (all ISAs) */
#define SMALL_M 16               /* M up to which AVX2/AVX-512 use rows/dots */
/* TA = 0, TB = 1 with 4 < M <= DOTSB_M, K >= 512 and a B of DOTSB_B floats
 * or more (beyond L2: batched generation's weights) uses dotsb. */
#define DOTSB_M 48
#define DOTSB_B 524288.0
#define DOTSB_A 65536            /* floats of A per k-chunk of dotsb (L2) */
#define PARALLEL_MIN 16e6        /* work_estimate() needed for 2+ threads */
#define PARALLEL_MIN_POOL 2e6    /* the same with the context's pool */
#define MAX_THREADS 64
#define ALIGN_FLOATS 16          /* 64-byte alignment of packed buffers */

/* Micro-kernel contract (all ISAs):
 *   a: packed A sliver, kc steps of MR floats: a[k*MR + i] = alpha-free
 *      op(A)(i, k), rows i >= mr are zero;
 *   b: B sliver, b[k*ldbk + j] = op(B)(k, j); packed (ldbk = NR, columns
 *      j >= nr zero) or, for kernels with direct_b, B itself (ldbk = ldb,
 *      TB = 0; columns j >= nr are then never read);
 *   c: the tile's top-left element, row stride ldc; only the mr x nr valid
 *      part is touched: C = alpha * (a * b) + beta * C, and when beta == 0
 *      C is written without being read. kc >= 1, 1 <= mr <= MR, 1 <= nr <= NR.
 */
typedef void (*ukernel_fn)(int kc, const float *a, const float *b, long ldbk,
                           float *c, long ldc, int mr, int nr, float alpha,
                           float beta);

/* Pack contract: an R-wide sliver dst[k*R + r] for k < kc, r < R, with
 * dst = 0 for r >= rv. "copy" reads src[k*ld + r] (panel rows contiguous in
 * r), "trans" reads src[r*ld + k] (contiguous in k). */
typedef void (*pack_fn)(int R, int rv, int kc, const float *src, long ld,
                        float *dst);

/* Small-M kernels for a group of g rows of C (g = 1.. the ISA's group
 * size), all N columns, the whole K (or one chunk of it), no workspace:
 *   rows: TB = 0, op(A)(i, k) = a[i*a_rs + k*a_ks], B (K, N) read in place;
 *   dots: TB = 1, A's g rows contiguous in k (row stride lda), B (N, K).
 * Both compute C = alpha * op(A) op(B) + beta * C, beta == 0 not reading C. */
typedef void (*rows_fn)(int n, int K, float alpha, const float *a, long a_rs,
                        long a_ks, const float *B, long ldb, float beta,
                        float *C, long ldc);
typedef void (*dots_fn)(int n, int K, float alpha, const float *A, long lda,
                        const float *B, long ldb, float beta, float *C,
                        long ldc);

typedef void (*dotsb_fn)(int M, int N, int K, float alpha, const float *A,
                         long lda, const float *B, long ldb, float beta,
                         float *C, long ldc);

typedef struct isa_desc {
    int mr, nr, mc, nc;
    ukernel_fn kernel;
    pack_fn pack_copy, pack_trans;
    int pack_copy_block;    /* pack_copy(MR, rv > MR) packs a whole block */
    int direct_b;           /* M <= direct_b with TB = 0: B not packed */
    int small_m;            /* M <= small_m goes to rows/dots (0: never) */
    int rows_group, dots_group;
    rows_fn rows[4];        /* [g - 1] for a group of g rows */
    dots_fn dots[4];
    dotsb_fn dotsb;         /* TA = 0, TB = 1, see DOTSB_M (or NULL) */
} isa_desc;

static int imin(int a, int b) { return a < b ? a : b; }

/* ------------------------------------------------------------------------ */
/* Portable C                                                                 */
/* ------------------------------------------------------------------------ */

#define P_MR 4
#define P_NR 16

static void pack_copy_c(int R, int rv, int kc, const float *src, long ld,
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

static void pack_trans_c(int R, int rv, int kc, const float *src, long ld,
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

/* Store an accumulated tile t (MR x NR, row stride nr_full) into C. */
static void store_tile_c(const float *t, int tstride, float *c, long ldc,
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

static void ukernel_c(int kc, const float *a, const float *b, long ldbk,
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
    store_tile_c(&acc[0][0], P_NR, c, ldc, mr, nr, alpha, beta);
}

static const isa_desc isa_portable = {
    P_MR, P_NR, 128, 2048, ukernel_c, pack_copy_c, pack_trans_c, 0, 0,
    0, 0, 0, {0}, {0}, NULL
};

/* ------------------------------------------------------------------------ */
/* x86-64: AVX2 + FMA and AVX-512                                             */
/* ------------------------------------------------------------------------ */
#if DN_X86

/* 8x8 transpose in ymm registers (unpack, shuffle, 128-bit lane swap). */
#define DN_TRANSPOSE8(r)                                                     \
    do {                                                                     \
        __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]);                          \
        __m256 t1 = _mm256_unpackhi_ps(r[0], r[1]);                          \
        __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]);                          \
        __m256 t3 = _mm256_unpackhi_ps(r[2], r[3]);                          \
        __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]);                          \
        __m256 t5 = _mm256_unpackhi_ps(r[4], r[5]);                          \
        __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]);                          \
        __m256 t7 = _mm256_unpackhi_ps(r[6], r[7]);                          \
        __m256 s0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));      \
        __m256 s1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));      \
        __m256 s2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));      \
        __m256 s3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));      \
        __m256 s4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0));      \
        __m256 s5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));      \
        __m256 s6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0));      \
        __m256 s7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));      \
        r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);                         \
        r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);                         \
        r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);                         \
        r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);                         \
        r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);                         \
        r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);                         \
        r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);                         \
        r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);                         \
    } while (0)

/* One group of 8 sliver rows of a "trans" pack, k in [k0, kc): 8 rows x 8 k
 * at a time through an in-register transpose, the k tail by scalars.
 * nv (1..8) rows are valid, the others are written as zeros. */
__attribute__((target("avx2,fma")))
static void trans_group8_avx(int R, int nv, int k0, int kc, const float *s,
                             long ld, float *dst)
{
    int k8 = k0 + ((kc - k0) & ~7);
    for (int k = k0; k < k8; k += 8) {
        __m256 r[8];
        for (int i = 0; i < 8; i++)
            r[i] = i < nv ? _mm256_loadu_ps(s + i * ld + k) : _mm256_setzero_ps();
        DN_TRANSPOSE8(r);
        for (int i = 0; i < 8; i++)
            _mm256_storeu_ps(dst + (long)(k + i) * R, r[i]);
    }
    for (int k = k8; k < kc; k++)
        for (int i = 0; i < 8; i++)
            dst[(long)k * R + i] = i < nv ? s[i * ld + k] : 0.0f;
}

/* "trans" pack, AVX2: R a multiple of 8 goes through 8x8 transposes. */
__attribute__((target("avx2,fma")))
static void pack_trans_avx(int R, int rv, int kc, const float *src, long ld,
                           float *dst)
{
    if (R % 8) {
        pack_trans_c(R, rv, kc, src, ld, dst);
        return;
    }
    for (int r0 = 0; r0 < R; r0 += 8) {
        int nv = imin(8, rv - r0);
        if (nv <= 0) {
            for (int k = 0; k < kc; k++)
                _mm256_storeu_ps(dst + (long)k * R + r0, _mm256_setzero_ps());
        } else {
            trans_group8_avx(R, nv, 0, kc, src + (long)r0 * ld, ld, dst + r0);
        }
    }
}

/* ---- AVX2 + FMA: 6 x 16 tile, 12 ymm accumulators ---------------------- */

#define A2_MR 6
#define A2_NR 16

__attribute__((target("avx2,fma")))
static void pack_copy_avx2(int R, int rv, int kc, const float *src, long ld,
                           float *dst)
{
    if (R != A2_NR || rv != A2_NR) {
        pack_copy_c(R, rv, kc, src, ld, dst);
        return;
    }
    for (int k = 0; k < kc; k++) {
        const float *s = src + (long)k * ld;
        float *d = dst + (long)k * A2_NR;
        _mm256_storeu_ps(d, _mm256_loadu_ps(s));
        _mm256_storeu_ps(d + 8, _mm256_loadu_ps(s + 8));
    }
}

__attribute__((target("avx2,fma")))
static void ukernel_avx2(int kc, const float *a, const float *b, long ldbk,
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
        store_tile_c(t, A2_NR, c, ldc, mr, nr, alpha, beta);
    }
}

/* ---- AVX2 small-M paths ------------------------------------------------ */

/* rows (see rows_fn), MRS rows of C: C = beta * C, then
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

#define DN_ROWS_AVX2(NAME, MRS)                                                \
__attribute__((target("avx2,fma")))                                            \
static void NAME(int n, int K, float alpha, const float *a, long a_rs,         \
                 long a_ks, const float *B, long ldb, float beta, float *C,    \
                 long ldc)                                                     \
{                                                                              \
    rows_avx2(MRS, n, K, alpha, a, a_rs, a_ks, B, ldb, beta, C, ldc);          \
}
DN_ROWS_AVX2(rows1_avx2, 1)
DN_ROWS_AVX2(rows2_avx2, 2)
DN_ROWS_AVX2(rows3_avx2, 3)
DN_ROWS_AVX2(rows4_avx2, 4)

__attribute__((target("avx2,fma")))
static inline float hsum_avx(__m256 v)
{
    __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    x = _mm_add_ps(x, _mm_movehl_ps(x, x));
    x = _mm_add_ss(x, _mm_movehdup_ps(x));
    return _mm_cvtss_f32(x);
}

/* dots (see dots_fn), MRS rows of C, four rows of B at a time (a missing
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
        for (int j = 0; j < 4; j++) bj[j] = B + (long)imin(j0 + j, n - 1) * ldb;
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
        int nb = imin(4, n - j0);
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

#define DN_DOTS_AVX2(NAME, MRS)                                                \
__attribute__((target("avx2,fma")))                                            \
static void NAME(int n, int K, float alpha, const float *A, long lda,          \
                 const float *B, long ldb, float beta, float *C, long ldc)     \
{                                                                              \
    dots_avx2(MRS, n, K, alpha, A, lda, B, ldb, beta, C, ldc);                 \
}
DN_DOTS_AVX2(dots1_avx2, 1)
DN_DOTS_AVX2(dots2_avx2, 2)

static const isa_desc isa_avx2 = {
    A2_MR, A2_NR, 192, 2048, ukernel_avx2, pack_copy_avx2, pack_trans_avx, 0, 0,
    SMALL_M, 4, 2,
    {rows1_avx2, rows2_avx2, rows3_avx2, rows4_avx2},
    {dots1_avx2, dots2_avx2, 0, 0}, NULL
};

/* ---- AVX-512: 8 x 32 tile, 16 zmm accumulators ------------------------- *
 * Per k: two 16-float loads of B, eight broadcasts of A, sixteen FMAs; the
 * 16 independent accumulator chains cover the FMA latency on two pipes. */

#define A5_MR 8
#define A5_NR 32
#define A5_MC 192
#define A5_NC 2048

#define T512 __attribute__((target("avx512f,avx512vl,fma")))

T512 static inline __mmask16 tail_mask(int n)
{
    return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? (__mmask16)0
                                                : (__mmask16)((1u << n) - 1u);
}

T512 static void pack_copy_avx512(int R, int rv, int kc, const float *src,
                                  long ld, float *dst)
{
    if (R == A5_NR) {
        __mmask16 m0 = tail_mask(rv), m1 = tail_mask(rv - 16);
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
            int ng = imin(8, (rv - q0 + A5_MR - 1) / A5_MR);
            float *dq = dst + (long)(q0 / A5_MR) * sstride;
            for (int k = 0; k < kc; k++) {
                const float *s = src + (long)k * ld + q0;
                float *d = dq + (long)k * A5_MR;
                for (int q = 0; q < ng; q++) {
                    __mmask8 m = (__mmask8)tail_mask(rv - q0 - q * A5_MR);
                    _mm256_storeu_ps(d + q * sstride,
                                     _mm256_maskz_loadu_ps(m, s + q * A5_MR));
                }
            }
        }
    } else {
        pack_copy_c(R, rv, kc, src, ld, dst);
    }
}

/* "trans" pack, AVX-512 (R a multiple of 8): 8 rows x 16 k per step. The
 * 8x8 transpose of the AVX2 version runs on both 256-bit halves at once
 * (unpack and shuffle work within 128-bit lanes); a two-source permute then
 * pairs the lanes, giving k and k+4 (k+8 and k+12) in one register. */
T512 static void pack_trans_avx512(int R, int rv, int kc, const float *src,
                                   long ld, float *dst)
{
    if (R % 8) {
        pack_trans_c(R, rv, kc, src, ld, dst);
        return;
    }
    const __m512i lo = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19,
                                         4, 5, 6, 7, 20, 21, 22, 23);
    const __m512i hi = _mm512_setr_epi32(8, 9, 10, 11, 24, 25, 26, 27,
                                         12, 13, 14, 15, 28, 29, 30, 31);
    int k16 = kc & ~15;
    for (int r0 = 0; r0 < R; r0 += 8) {
        int nv = imin(8, rv - r0);
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
        if (k16 < kc) trans_group8_avx(R, nv, k16, kc, s, ld, d);
    }
}

T512 static void ukernel_avx512(int kc, const float *a, const float *b,
                                long ldbk, float *c, long ldc, int mr, int nr,
                                float alpha, float beta)
{
    __mmask16 m0 = tail_mask(nr), m1 = tail_mask(nr - 16);
    __m512 acc[A5_MR][2];
#pragma GCC unroll 8
    for (int i = 0; i < A5_MR; i++) {
        acc[i][0] = _mm512_setzero_ps();
        acc[i][1] = _mm512_setzero_ps();
    }
    for (int k = 0; k < kc; k++) {
        __m512 b0 = _mm512_maskz_loadu_ps(m0, b);
        __m512 b1 = _mm512_maskz_loadu_ps(m1, b + 16);
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
            r0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, ci), r0);
            r1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, ci + 16), r1);
        }
        _mm512_mask_storeu_ps(ci, m0, r0);
        _mm512_mask_storeu_ps(ci + 16, m1, r1);
    }
}


/* ---- AVX-512 small-M paths ---------------------------------------------- */

/* rows (see rows_fn), MRS rows of C: C = beta * C, then
 * C(i, :) += (alpha * a(i, k)) * B(k, :) for k in order. B is streamed
 * once, KU rows per pass (KU sequential streams, which keeps more requests
 * in flight than a column-blocked walk down B); the C rows, at most
 * MRS x ROWS_JB floats, stay in L1/L2 between passes. */
#define ROWS_JB 4096
#define DN_ROWS_KERNEL(NAME, MRS, KU)                                            \
T512 static void NAME(int n, int K, float alpha, const float *a, long a_rs,    \
                      long a_ks, const float *B, long ldb, float beta,         \
                      float *C, long ldc)                                      \
{                                                                              \
    for (int j0 = 0; j0 < n; j0 += ROWS_JB) {                                  \
        int jn = imin(ROWS_JB, n - j0), j16 = jn & ~15;                        \
        __mmask16 mt = tail_mask(jn & 15);                                     \
        const float *bj = B + j0;                                              \
        float *cj = C + j0;                                                    \
        _Pragma("GCC unroll 4") for (int i = 0; i < MRS; i++) {                \
            float *ci = cj + i * ldc;                                          \
            if (beta == 0.0f) memset(ci, 0, sizeof(float) * (size_t)jn);       \
            else if (beta != 1.0f)                                             \
                for (int j = 0; j < jn; j++) ci[j] *= beta;                    \
        }                                                                      \
        int k = 0;                                                             \
        for (; k + KU <= K; k += KU) {                                         \
            const float *bq[KU];                                               \
            __m512 av[MRS][KU];                                                \
            _Pragma("GCC unroll 8") for (int q = 0; q < KU; q++)               \
                bq[q] = bj + (long)(k + q) * ldb;                              \
            _Pragma("GCC unroll 4") for (int i = 0; i < MRS; i++)              \
            _Pragma("GCC unroll 8") for (int q = 0; q < KU; q++)               \
                av[i][q] = _mm512_set1_ps(alpha * a[i * a_rs + (k + q) * a_ks]); \
            for (int j = 0; j <= j16; j += 16) {                               \
                __mmask16 m = j < j16 ? (__mmask16)0xFFFF : mt;                \
                if (!m) break;                                                 \
                __m512 v[KU];                                                  \
                _Pragma("GCC unroll 8") for (int q = 0; q < KU; q++)           \
                    v[q] = _mm512_maskz_loadu_ps(m, bq[q] + j);                \
                _Pragma("GCC unroll 4") for (int i = 0; i < MRS; i++) {        \
                    float *ci = cj + i * ldc + j;                              \
                    __m512 c = _mm512_maskz_loadu_ps(m, ci);                   \
                    _Pragma("GCC unroll 8") for (int q = 0; q < KU; q++)       \
                        c = _mm512_fmadd_ps(av[i][q], v[q], c);                \
                    _mm512_mask_storeu_ps(ci, m, c);                           \
                }                                                              \
            }                                                                  \
        }                                                                      \
        for (; k < K; k++) {                                                   \
            const float *b0 = bj + k * ldb;                                    \
            __m512 av[MRS];                                                    \
            _Pragma("GCC unroll 4") for (int i = 0; i < MRS; i++)              \
                av[i] = _mm512_set1_ps(alpha * a[i * a_rs + k * a_ks]);        \
            for (int j = 0; j <= j16; j += 16) {                               \
                __mmask16 m = j < j16 ? (__mmask16)0xFFFF : mt;                \
                if (!m) break;                                                 \
                __m512 v0 = _mm512_maskz_loadu_ps(m, b0 + j);                  \
                _Pragma("GCC unroll 4") for (int i = 0; i < MRS; i++) {        \
                    float *ci = cj + i * ldc + j;                              \
                    _mm512_mask_storeu_ps(ci, m, _mm512_fmadd_ps(av[i], v0,    \
                                          _mm512_maskz_loadu_ps(m, ci)));      \
                }                                                              \
            }                                                                  \
        }                                                                      \
    }                                                                          \
}

/* rows (see rows_fn) for a group of 4 rows, where streaming would spend
 * more on C's loads and stores than on B: columns go in blocks of NVS*16
 * held in zmm accumulators across the whole K loop,
 * C(i, j) = alpha * sum_k a(i, k) B(k, j) + beta * C; B is read once. */
#define DN_RROWS_KERNEL(NAME, MRS, NVS)                                        \
T512 static void NAME(int n, int K, float alpha, const float *a, long a_rs,    \
                      long a_ks, const float *B, long ldb, float beta,         \
                      float *C, long ldc)                                      \
{                                                                              \
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);              \
    for (int j0 = 0; j0 < n; j0 += NVS * 16) {                                 \
        __mmask16 m[NVS];                                                      \
        __m512 acc[MRS][NVS];                                                  \
        _Pragma("GCC unroll 8") for (int v = 0; v < NVS; v++)                  \
            m[v] = tail_mask(n - j0 - v * 16);                                 \
        _Pragma("GCC unroll 8") for (int i = 0; i < MRS; i++)                  \
        _Pragma("GCC unroll 8") for (int v = 0; v < NVS; v++)                  \
            acc[i][v] = _mm512_setzero_ps();                                   \
        const float *bk = B + j0;                                              \
        if (n - j0 >= NVS * 16) {                                              \
            for (int k = 0; k < K; k++, bk += ldb) {                           \
                __m512 bv[NVS];                                                \
                _Pragma("GCC unroll 8") for (int v = 0; v < NVS; v++)          \
                    bv[v] = _mm512_loadu_ps(bk + v * 16);                      \
                _Pragma("GCC unroll 8") for (int i = 0; i < MRS; i++) {        \
                    __m512 ai = _mm512_set1_ps(a[i * a_rs + k * a_ks]);        \
                    _Pragma("GCC unroll 8") for (int v = 0; v < NVS; v++)      \
                        acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);     \
                }                                                              \
            }                                                                  \
        } else {                                                               \
            for (int k = 0; k < K; k++, bk += ldb) {                           \
                __m512 bv[NVS];                                                \
                _Pragma("GCC unroll 8") for (int v = 0; v < NVS; v++)          \
                    bv[v] = _mm512_maskz_loadu_ps(m[v], bk + v * 16);          \
                _Pragma("GCC unroll 8") for (int i = 0; i < MRS; i++) {        \
                    __m512 ai = _mm512_set1_ps(a[i * a_rs + k * a_ks]);        \
                    _Pragma("GCC unroll 8") for (int v = 0; v < NVS; v++)      \
                        acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);     \
                }                                                              \
            }                                                                  \
        }                                                                      \
        _Pragma("GCC unroll 8") for (int i = 0; i < MRS; i++) {                \
            float *ci = C + i * ldc + j0;                                      \
            _Pragma("GCC unroll 8") for (int v = 0; v < NVS; v++) {            \
                __m512 r = _mm512_mul_ps(va, acc[i][v]);                       \
                if (beta != 0.0f)                                              \
                    r = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m[v],        \
                                        ci + v * 16), r);                      \
                _mm512_mask_storeu_ps(ci + v * 16, m[v], r);                   \
            }                                                                  \
        }                                                                      \
    }                                                                          \
}

DN_RROWS_KERNEL(rrows4_avx512, 4, 6)

DN_ROWS_KERNEL(rows1_avx512, 1, 8)
DN_ROWS_KERNEL(rows2_avx512, 2, 8)
DN_ROWS_KERNEL(rows3_avx512, 3, 4)

/* One tile of the dots kernels: C(0..MRS-1, 0..nb-1) = alpha * dot(A row i,
 * B row j) + beta * C, vectors along k (MRS*NBS zmm accumulators), rows of
 * B given by pointer (a missing last row repeats row n-1, its result is
 * dropped), the k tail a masked step, a horizontal sum at the end. */
#define DN_DOTS_TILE(NAME, MRS, NBS)                                           \
T512 static inline void NAME(int K, float alpha, const float *A, long lda,     \
                             const float *const *bj, int nb, float beta,       \
                             float *C, long ldc)                               \
{                                                                              \
    __mmask16 mk = tail_mask(K & 15);                                          \
    int k16 = K & ~15;                                                         \
    __m512 acc[MRS][NBS];                                                      \
    _Pragma("GCC unroll 8") for (int i = 0; i < MRS; i++)                      \
    _Pragma("GCC unroll 8") for (int j = 0; j < NBS; j++)                      \
        acc[i][j] = _mm512_setzero_ps();                                       \
    for (int k = 0; k < k16; k += 16) {                                        \
        __m512 av[MRS];                                                        \
        _Pragma("GCC unroll 8") for (int i = 0; i < MRS; i++)                  \
            av[i] = _mm512_loadu_ps(A + i * lda + k);                          \
        _Pragma("GCC unroll 8") for (int j = 0; j < NBS; j++) {                \
            __m512 bv = _mm512_loadu_ps(bj[j] + k);                            \
            _Pragma("GCC unroll 8") for (int i = 0; i < MRS; i++)              \
                acc[i][j] = _mm512_fmadd_ps(av[i], bv, acc[i][j]);             \
        }                                                                      \
    }                                                                          \
    if (mk) {                                                                  \
        __m512 av[MRS];                                                        \
        _Pragma("GCC unroll 8") for (int i = 0; i < MRS; i++)                  \
            av[i] = _mm512_maskz_loadu_ps(mk, A + i * lda + k16);              \
        _Pragma("GCC unroll 8") for (int j = 0; j < NBS; j++) {                \
            __m512 bv = _mm512_maskz_loadu_ps(mk, bj[j] + k16);                \
            _Pragma("GCC unroll 8") for (int i = 0; i < MRS; i++)              \
                acc[i][j] = _mm512_fmadd_ps(av[i], bv, acc[i][j]);             \
        }                                                                      \
    }                                                                          \
    _Pragma("GCC unroll 8") for (int i = 0; i < MRS; i++) {                    \
        float *ci = C + i * ldc;                                               \
        _Pragma("GCC unroll 8") for (int j = 0; j < NBS; j++) {                \
            if (j < nb) {                                                      \
                float s = alpha * _mm512_reduce_add_ps(acc[i][j]);             \
                ci[j] = beta == 0.0f ? s : s + beta * ci[j];                   \
            }                                                                  \
        }                                                                      \
    }                                                                          \
}

/* dots (see dots_fn), MRS rows of C: the tile over NBS rows of B at a time. */
#define DN_DOTS_KERNEL(NAME, TILE, MRS, NBS)                                   \
DN_DOTS_TILE(TILE, MRS, NBS)                                                   \
T512 static void NAME(int n, int K, float alpha, const float *A, long lda,     \
                      const float *B, long ldb, float beta, float *C,          \
                      long ldc)                                                \
{                                                                              \
    for (int j0 = 0; j0 < n; j0 += NBS) {                                      \
        const float *bj[NBS];                                                  \
        for (int j = 0; j < NBS; j++)                                          \
            bj[j] = B + (long)imin(j0 + j, n - 1) * ldb;                       \
        TILE(K, alpha, A, lda, bj, imin(NBS, n - j0), beta, C + j0, ldc);      \
    }                                                                          \
}

DN_DOTS_KERNEL(dots1_avx512, dots_tile18, 1, 8)
DN_DOTS_KERNEL(dots2_avx512, dots_tile26, 2, 6)
DN_DOTS_KERNEL(dots3_avx512, dots_tile34, 3, 4)
DN_DOTS_KERNEL(dots4_avx512, dots_tile44, 4, 4)

/* dots, blocked (TA = 0, TB = 1, moderate M; e.g. batched generation, whose
 * B is a weight matrix streamed from memory): DB_NBS rows of B at a time,
 * each used by every group of 4 rows of A while it sits in L1; A stays in
 * L2, so B is read from memory once. (Measured on M = 32, N = K = 1024 with
 * B not in cache: 128 GFLOP/s against 110 for the packed path; 4 or 8 rows
 * of B at a time did worse, and so did software prefetch of the next rows.) */
#define DB_NBS 6
DN_DOTS_TILE(dotsb_tile16, 1, DB_NBS)
DN_DOTS_TILE(dotsb_tile26, 2, DB_NBS)
DN_DOTS_TILE(dotsb_tile36, 3, DB_NBS)
DN_DOTS_TILE(dotsb_tile46, 4, DB_NBS)

/* All M rows of C, N columns, the whole K, C = alpha A B^T + beta C. */
T512 static void dotsb_avx512(int M, int N, int K, float alpha, const float *A,
                              long lda, const float *B, long ldb, float beta,
                              float *C, long ldc)
{
    const float *bj[DB_NBS];
    for (int j0 = 0; j0 < N; j0 += DB_NBS) {
        int nb = imin(DB_NBS, N - j0);
        for (int j = 0; j < DB_NBS; j++)      /* a missing row: repeat N - 1 */
            bj[j] = B + (long)imin(j0 + j, N - 1) * ldb;
        for (int i0 = 0; i0 < M; i0 += 4) {
            const float *a = A + (long)i0 * lda;
            float *c = C + (long)i0 * ldc + j0;
            switch (imin(4, M - i0)) {
            case 1: dotsb_tile16(K, alpha, a, lda, bj, nb, beta, c, ldc); break;
            case 2: dotsb_tile26(K, alpha, a, lda, bj, nb, beta, c, ldc); break;
            case 3: dotsb_tile36(K, alpha, a, lda, bj, nb, beta, c, ldc); break;
            default: dotsb_tile46(K, alpha, a, lda, bj, nb, beta, c, ldc); break;
            }
        }
    }
}

static const isa_desc isa_avx512 = {
    A5_MR, A5_NR, A5_MC, A5_NC, ukernel_avx512, pack_copy_avx512,
    pack_trans_avx512, 1, 256,
    SMALL_M, 4, 4,
    {rows1_avx512, rows2_avx512, rows3_avx512, rrows4_avx512},
    {dots1_avx512, dots2_avx512, dots3_avx512, dots4_avx512}, dotsb_avx512
};

#endif /* DN_X86 */

/* ------------------------------------------------------------------------ */
/* Drivers                                                                    */
/* ------------------------------------------------------------------------ */

static const isa_desc *isa_for(int kernel)
{
    switch (kernel) {
    case DN_KERNEL_PORTABLE: return &isa_portable;
#if DN_X86
    case DN_KERNEL_AVX2: return &isa_avx2;
    case DN_KERNEL_AVX512: return &isa_avx512;
#endif
    default: return NULL;
    }
}

static long round_up(long n, long m) { return (n + m - 1) / m * m; }

/* Floats of workspace one thread uses: packed A block, packed B block and
 * the slack to align both to 64 bytes. */
static long thread_work_floats(const isa_desc *d)
{
    return round_up((long)d->mc * KC, ALIGN_FLOATS)
         + round_up((long)d->nc * KC, ALIGN_FLOATS) + ALIGN_FLOATS;
}

static float *align_ptr(float *p)
{
    uintptr_t u = (uintptr_t)p;
    u = (u + 63u) & ~(uintptr_t)63u;
    return (float *)u;
}

typedef struct gemm_args {
    const isa_desc *isa;
    int TA, TB, M, N, K;
    float alpha;
    const float *A;
    long lda;
    const float *B;
    long ldb;
    float beta;
    float *C;
    long ldc;
    int path;               /* PATH_* chosen for the whole problem */
    float *work;            /* this thread's slice, thread_work_floats */
} gemm_args;

enum { PATH_PACKED = 0, PATH_ROWS = 1, PATH_DOTS = 2, PATH_DOTSB = 3 };

/* C = beta * C (beta == 0 writes zeros). */
static void scale_c(int M, int N, float beta, float *C, long ldc)
{
    for (int i = 0; i < M; i++) {
        float *ci = C + (long)i * ldc;
        if (beta == 0.0f)
            memset(ci, 0, sizeof(float) * (size_t)N);
        else if (beta != 1.0f)
            for (int j = 0; j < N; j++) ci[j] *= beta;
    }
}

/* Read B in place (TB = 0, kernels with direct_b) instead of packing it?
 * For moderate M each B sliver is used only M/MR times, and re-reading it
 * from L1/L2 costs less than the packing pass over B. A row stride that is
 * a multiple of 4 KB maps all rows of a sliver to the same L1 sets, so
 * beyond 32 rows such B is packed. The result is the same either way. */
static int direct_b(const gemm_args *g)
{
    if (g->TB || g->M > g->isa->direct_b) return 0;
    return g->M <= 32 || g->ldb % 1024 != 0;
}

/* Pack op(B)(pc.., jc + jr..) as one NR-wide sliver. */
static void pack_b_sliver(const gemm_args *g, int pc, int kc, int j, int nr,
                          float *dst)
{
    const isa_desc *d = g->isa;
    if (!g->TB)         /* B (K, N): the sliver's rows are contiguous */
        d->pack_copy(d->nr, nr, kc, g->B + (long)pc * g->ldb + j, g->ldb, dst);
    else                /* B (N, K) */
        d->pack_trans(d->nr, nr, kc, g->B + (long)j * g->ldb + pc, g->ldb, dst);
}

/* Pack op(A)(ic.., pc..), mc x kc, as MR-high slivers. */
static void pack_a_block(const gemm_args *g, int ic, int mc, int pc, int kc,
                         float *Ap)
{
    const isa_desc *d = g->isa;
    const int MR = d->mr;
    if (g->TA && d->pack_copy_block) {      /* A (K, M), whole block */
        d->pack_copy(MR, mc, kc, g->A + (long)pc * g->lda + ic, g->lda, Ap);
        return;
    }
    for (int ir = 0; ir < mc; ir += MR) {
        int mr = imin(MR, mc - ir);
        float *dst = Ap + (long)ir * kc;
        if (!g->TA)     /* A (M, K) */
            d->pack_trans(MR, mr, kc, g->A + (long)(ic + ir) * g->lda + pc,
                          g->lda, dst);
        else            /* A (K, M) */
            d->pack_copy(MR, mr, kc, g->A + (long)pc * g->lda + ic + ir,
                         g->lda, dst);
    }
}

static void gemm_packed(const gemm_args *g)
{
    const isa_desc *d = g->isa;
    const int MR = d->mr, NR = d->nr;
    float *Ap = align_ptr(g->work);
    float *Bp = Ap + round_up((long)d->mc * KC, ALIGN_FLOATS);
    const int direct = direct_b(g);
    /* When all of M is one A block, each B sliver is packed right before
     * its tiles are computed, so it is still in L1 when they read it. */
    const int interleave = !direct && g->M <= d->mc;

    for (int jc = 0; jc < g->N; jc += d->nc) {
        int nc = imin(d->nc, g->N - jc);
        for (int pc = 0; pc < g->K; pc += KC) {
            int kc = imin(KC, g->K - pc);
            float beta = pc == 0 ? g->beta : 1.0f;
            long ldbk = direct ? g->ldb : NR;
            const float *Bd = g->B + (long)pc * g->ldb + jc;
            if (!direct && !interleave)
                for (int jr = 0; jr < nc; jr += NR)
                    pack_b_sliver(g, pc, kc, jc + jr, imin(NR, nc - jr),
                                  Bp + (long)jr * kc);
            for (int ic = 0; ic < g->M; ic += d->mc) {
                int mc = imin(d->mc, g->M - ic);
                pack_a_block(g, ic, mc, pc, kc, Ap);
                for (int jr = 0; jr < nc; jr += NR) {
                    int nr = imin(NR, nc - jr);
                    const float *b = direct ? Bd + jr : Bp + (long)jr * kc;
                    if (interleave)
                        pack_b_sliver(g, pc, kc, jc + jr, nr, Bp + (long)jr * kc);
                    for (int ir = 0; ir < mc; ir += MR)
                        d->kernel(kc, Ap + (long)ir * kc, b, ldbk,
                                  g->C + (long)(ic + ir) * g->ldc + jc + jr,
                                  g->ldc, imin(MR, mc - ir), nr, g->alpha, beta);
                }
            }
        }
    }
}

/* Small M, TB = 0: the rows kernels on groups of rows of C. */
static void gemm_rows(const gemm_args *g)
{
    const isa_desc *d = g->isa;
    long a_rs = g->TA ? 1 : g->lda, a_ks = g->TA ? g->lda : 1;
    for (int i0 = 0; i0 < g->M; i0 += d->rows_group) {
        int mr = imin(d->rows_group, g->M - i0);
        d->rows[mr - 1](g->N, g->K, g->alpha, g->A + i0 * a_rs, a_rs, a_ks,
                        g->B, g->ldb, g->beta, g->C + (long)i0 * g->ldc, g->ldc);
    }
}

/* Small M, TB = 1: the dots kernels on groups of rows of C. With TA = 1
 * op(A)'s rows are strided in A, so they are first copied to the workspace,
 * in chunks of k when K is huge (each chunk after the first accumulates
 * with beta = 1). */
static void gemm_dots(const gemm_args *g)
{
    const isa_desc *d = g->isa;
    for (int i0 = 0; i0 < g->M; i0 += d->dots_group) {
        int mr = imin(d->dots_group, g->M - i0);
        float *c = g->C + (long)i0 * g->ldc;
        if (!g->TA) {
            d->dots[mr - 1](g->N, g->K, g->alpha, g->A + (long)i0 * g->lda,
                            g->lda, g->B, g->ldb, g->beta, c, g->ldc);
            continue;
        }
        float *w = align_ptr(g->work);
        long cap = thread_work_floats(d) - ALIGN_FLOATS;
        int kch = (int)((cap / d->dots_group) & ~15L);  /* same for every group */
        if (kch > g->K) kch = g->K;
        for (int k0 = 0; k0 < g->K; k0 += kch) {
            int kn = imin(kch, g->K - k0);
            for (int i = 0; i < mr; i++) {
                const float *src = g->A + (long)k0 * g->lda + i0 + i;
                float *dst = w + (long)i * kch;
                for (int k = 0; k < kn; k++) dst[k] = src[(long)k * g->lda];
            }
            d->dots[mr - 1](g->N, kn, g->alpha, w, kch, g->B + k0, g->ldb,
                            k0 == 0 ? g->beta : 1.0f, c, g->ldc);
        }
    }
}

/* Moderate M, TA = 0, TB = 1: the ISA's dotsb over k-chunks small enough
 * for A's M rows to stay in L2 (the chunks depend on M and K only, so any
 * split of N among threads gives the same bits). */
static void gemm_dotsb(const gemm_args *g)
{
    int kch = (int)(DOTSB_A / g->M) & ~15;
    if (kch < 256) kch = 256;
    for (int k0 = 0; k0 < g->K; k0 += kch)
        g->isa->dotsb(g->M, g->N, imin(kch, g->K - k0), g->alpha, g->A + k0, g->lda,
                      g->B + k0, g->ldb, k0 == 0 ? g->beta : 1.0f, g->C, g->ldc);
}

static void gemm_serial(const gemm_args *g)
{
    if (g->M <= 0 || g->N <= 0) return;
    if (g->K == 0 || g->alpha == 0.0f) {
        scale_c(g->M, g->N, g->beta, g->C, g->ldc);
        return;
    }
    if (g->path == PATH_ROWS) { gemm_rows(g); return; }
    if (g->path == PATH_DOTS) { gemm_dots(g); return; }
    if (g->path == PATH_DOTSB) { gemm_dotsb(g); return; }
    gemm_packed(g);
}

/* Work of a call in multiply-adds, plus B's streaming for the memory-bound
 * small-M paths (a float of B from L3 costs about 4 FMAs' time). Creating
 * and joining a thread costs ~10-25 us, a 16e6 work about 70 us on one
 * core: below PARALLEL_MIN one thread is used. M = 1 with B of 1024 x 1024
 * (5e6) stays on one core; 2048 x 2048 (2e7) is split. A context's pool
 * (pool.c) hands work to waiting threads in a few us, so with it calls from
 * PARALLEL_MIN_POOL (~10 us of work) up are split. */
static double work_estimate(const gemm_args *g)
{
    double w = (double)g->M * g->N * g->K;
    if (g->path != PATH_PACKED) w += 4.0 * g->N * g->K;
    return w;
}

static void *gemm_thread(void *p)
{
    gemm_serial((const gemm_args *)p);
    return NULL;
}

static void gemm_part(void *parts, int part)
{
    gemm_serial((const gemm_args *)parts + part);
}

/* ------------------------------------------------------------------------ */
/* Public entry points                                                        */
/* ------------------------------------------------------------------------ */

int dn_kernels_available(void)
{
    int mask = (1 << DN_KERNEL_REFERENCE) | (1 << DN_KERNEL_PORTABLE);
#if DN_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        mask |= 1 << DN_KERNEL_AVX2;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")
        && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        mask |= 1 << DN_KERNEL_AVX512;
#endif
    return mask;
}

int dn_kernel_auto(void)
{
    int mask = dn_kernels_available();
    if (mask & (1 << DN_KERNEL_AVX512)) return DN_KERNEL_AVX512;
    if (mask & (1 << DN_KERNEL_AVX2)) return DN_KERNEL_AVX2;
    return DN_KERNEL_PORTABLE;
}

long dn_gemm_work_floats(int kernel, int threads)
{
    const isa_desc *d = isa_for(kernel);
    if (!d || threads < 1) return 0;
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    return thread_work_floats(d) * threads;
}

int dn_gemm_fast(const dn_ctx *ctx, int TA, int TB, int M, int N, int K,
                 float alpha, const float *A, int lda, const float *B, int ldb,
                 float beta, float *C, int ldc)
{
    if (!ctx || M < 0 || N < 0 || K < 0) return DN_ERR_ARG;
    const isa_desc *d = isa_for(ctx->kernel);
    if (!d || !(dn_kernels_available() & (1 << ctx->kernel)))
        return DN_ERR_KERNEL;
    if (ctx->threads < 1) return DN_ERR_ARG;
    int threads = ctx->threads > MAX_THREADS ? MAX_THREADS : ctx->threads;
    if (!ctx->work || ctx->work_floats < dn_gemm_work_floats(ctx->kernel, threads))
        return DN_ERR_ARG;
    if (M == 0 || N == 0) return DN_OK;
    if (!C || (K > 0 && (!A || !B))) return DN_ERR_ARG;
    if (lda < (TA ? M : K) || ldb < (TB ? K : N) || ldc < N || lda < 1 || ldb < 1)
        return DN_ERR_ARG;

    gemm_args g = {
        d, TA != 0, TB != 0, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc,
        PATH_PACKED, NULL
    };
    if (g.TB && !g.TA && M > 4 && M <= DOTSB_M && K >= 512 &&
        (double)N * K >= DOTSB_B && d->dotsb)
        g.path = PATH_DOTSB;
    else if (M <= d->small_m)
        g.path = g.TB ? PATH_DOTS : PATH_ROWS;

    if (threads > 1 &&
        work_estimate(&g) < (ctx->pool ? PARALLEL_MIN_POOL : PARALLEL_MIN))
        threads = 1;
    /* split along N (in NR units) when N >= M, else along M (MR units) */
    int split_n = N >= M;
    int unit = split_n ? d->nr : d->mr;
    int units = ((split_n ? N : M) + unit - 1) / unit;
    if (threads > units) threads = units;

    if (threads <= 1) {
        g.work = ctx->work;
        gemm_serial(&g);
        return DN_OK;
    }

    gemm_args part[MAX_THREADS];
    pthread_t tid[MAX_THREADS];
    int started[MAX_THREADS];
    long wt = thread_work_floats(d);
    for (int t = 0; t < threads; t++) {
        int u0 = (int)((long)units * t / threads);
        int u1 = (int)((long)units * (t + 1) / threads);
        part[t] = g;
        part[t].work = ctx->work + wt * t;
        if (split_n) {
            int j0 = u0 * unit, j1 = imin(u1 * unit, N);
            part[t].N = j1 - j0;
            part[t].C = C + j0;
            part[t].B = TB ? B + (long)j0 * ldb : B + j0;
        } else {
            int i0 = u0 * unit, i1 = imin(u1 * unit, M);
            part[t].M = i1 - i0;
            part[t].C = C + (long)i0 * ldc;
            part[t].A = TA ? A + i0 : A + (long)i0 * lda;
        }
    }
    if (ctx->pool && dn_pool_run(ctx->pool, threads, gemm_part, part) == 0)
        return DN_OK;
    for (int t = 1; t < threads; t++)
        started[t] = pthread_create(&tid[t], NULL, gemm_thread, &part[t]) == 0;
    gemm_serial(&part[0]);
    for (int t = 1; t < threads; t++) {
        if (started[t]) pthread_join(tid[t], NULL);
        else gemm_serial(&part[t]);       /* no thread: do its block here */
    }
    return DN_OK;
}
