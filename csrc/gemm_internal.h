/* gemm_internal.h - what the files of the fast GEMM share (not seen by cffi).
 *
 *   C(M,N) = alpha * op(A)(M,K) * op(B)(K,N) + beta * C        (row-major)
 *
 * The fast GEMM (every kernel but DN_KERNEL_REFERENCE) is split the way BLIS
 * splits one, so each part can be read, stepped through and replaced alone:
 *   gemm_dispatch.c      CPU features (dn_kernels_available, dn_kernel_auto),
 *                        the per-ISA tables below and dn_gemm_work_floats
 *   gemm_driver.c        dn_gemm_fast: argument checks, the choice of path,
 *                        the blocking loops around the micro-kernel, the
 *                        small-M drivers and the split over threads
 *   gemm_portable.c      the plain-C micro-kernel and packers (also the
 *                        fallbacks the SIMD packers use for odd widths)
 *   gemm_avx2.c          AVX2 + FMA micro-kernel and packers
 *   gemm_avx512.c        AVX-512 micro-kernel and packers
 *   gemm_small_avx2.c    AVX2 small-M kernels (rows, dots)
 *   gemm_small_avx512.c  AVX-512 small-M kernels (rows, rrows, dots, dotsb)
 *
 * Invariants of every file
 *  - No allocation, no global mutable state, no printing: the packing
 *    workspace comes from ctx->work (sized by dn_gemm_work_floats), CPU
 *    features are queried on each call with __builtin_cpu_supports, and the
 *    ISA tables are const.
 *  - beta == 0 overwrites C without reading it (C may hold NaN); alpha == 0
 *    or K == 0 only scales C by beta (the driver handles both before any
 *    kernel runs, so kernels see alpha != 0 and K >= 1).
 *  - Deterministic: for a given kernel each C element is computed by the
 *    same operations in the same order whatever ctx->threads is (threads
 *    own disjoint blocks of C cut at micro-tile and row-group boundaries,
 *    and the path is chosen from the whole problem's shape).
 *  - ISA code is compiled per function with target attributes (DN_TARGET_*
 *    below), so every file builds with the project's plain flags and runs on
 *    any x86-64; it is entered only after the CPU check. Non-x86 builds keep
 *    the portable path (the ISA files then compile to nothing).
 *  - Sizes that index memory are long: ld*, and every offset formed as
 *    (long)row * ld.
 */
#ifndef DN_GEMM_INTERNAL_H
#define DN_GEMM_INTERNAL_H
#include "internal.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define DN_X86 1
#else
#define DN_X86 0
#endif

#define DN_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define DN_TARGET_AVX512 __attribute__((target("avx512f,avx512vl,fma")))

/* k-block of the packed path (all ISAs). With the AVX-512 kernel the B
 * sliver KC*NR*4 = 32 KB stays in L1 (48 KB on Zen 5) beside the 8 KB A
 * sliver streaming from L2; K = 256/512 are one or two blocks. */
#define DN_GEMM_KC 256
#define DN_GEMM_MAX_THREADS 64
#define DN_GEMM_ALIGN_FLOATS 16     /* 64-byte alignment of packed buffers */

/* Register tiles (MR x NR) and cache blocks (MC x KC of A, KC x NC of B).
 * AVX-512: MC = 192 keeps the packed A block (192 KB) in a 1 MB L2 with room
 * for the B slivers and C tiles passing through; NC = 2048 packs B once per
 * k-block for the RNN's layer widths (N <= 2048). 8 rows divide the batch
 * sizes used (32, 2048) without padding; 8x32, 12x32, 6x64 and 8x48 tiles
 * measured the same at the FMA peak. */
#define DN_PORTABLE_MR 4
#define DN_PORTABLE_NR 16
#define DN_AVX2_MR 6
#define DN_AVX2_NR 16
#define DN_AVX512_MR 8
#define DN_AVX512_NR 32

/* ---------------------------------------------------------------------------
 * Micro-kernel contract (all ISAs), dn_ukernel_fn:
 *   computes one tile  C(0..mr-1, 0..nr-1) = alpha * (a * b) + beta * C
 *   over kc steps of k, where
 *   a: a packed A sliver (packed by the driver with the ISA's packers):
 *      kc steps of MR floats, a[k*MR + i] = op(A)(i, k) (alpha not applied),
 *      rows i >= mr are zero;
 *   b: a B sliver, b[k*ldbk + j] = op(B)(k, j): either packed by the driver
 *      (ldbk = NR, columns j >= nr zero) or, for ISAs with direct_b, B
 *      itself (ldbk = ldb, TB = 0; columns j >= nr are then never read);
 *   c: the tile's top-left element, row stride ldc; only the mr x nr valid
 *      part is touched, and when beta == 0 C is written without being read.
 *   kc >= 1, 1 <= mr <= MR, 1 <= nr <= NR. Packed slivers start 64-byte
 *   aligned (DN_GEMM_ALIGN_FLOATS) but kernels use unaligned loads, so the
 *   alignment is a speed matter, never a correctness one. alpha is applied
 *   once when the tile is stored; the driver passes the caller's beta for
 *   the first k-block and 1 for the others.
 * Pack contract, dn_pack_fn: an R-wide sliver dst[k*R + r] for k < kc,
 *   r < R, with dst = 0 for r >= rv. "copy" reads src[k*ld + r] (the
 *   panel's rows contiguous in r: A with TA = 1, B with TB = 0), "trans"
 *   reads src[r*ld + k] (contiguous in k: A with TA = 0, B with TB = 1).
 *   With pack_copy_block set, pack_copy(MR, rv > MR) packs a whole block of
 *   MR-high slivers (each kc*MR floats after the previous).
 * Small-M kernels, for a group of g rows of C (g = 1.. the ISA's group
 *   size), all n columns, the whole K (or one chunk of it), no workspace:
 *   rows (dn_rows_fn): TB = 0, op(A)(i, k) = a[i*a_rs + k*a_ks], B (K, N)
 *        read in place;
 *   dots (dn_dots_fn): TB = 1, A's g rows contiguous in k (row stride lda),
 *        B (N, K);
 *   dotsb (dn_dotsb_fn): TA = 0, TB = 1, all M rows at once, blocked so
 *        that B is read from memory once.
 *   All compute C = alpha * op(A) op(B) + beta * C, beta == 0 not reading C.
 * ------------------------------------------------------------------------- */
typedef void (*dn_ukernel_fn)(int kc, const float *a, const float *b, long ldbk,
                              float *c, long ldc, int mr, int nr, float alpha,
                              float beta);
typedef void (*dn_pack_fn)(int R, int rv, int kc, const float *src, long ld,
                           float *dst);
typedef void (*dn_rows_fn)(int n, int K, float alpha, const float *a, long a_rs,
                           long a_ks, const float *B, long ldb, float beta,
                           float *C, long ldc);
typedef void (*dn_dots_fn)(int n, int K, float alpha, const float *A, long lda,
                           const float *B, long ldb, float beta, float *C,
                           long ldc);
typedef void (*dn_dotsb_fn)(int M, int N, int K, float alpha, const float *A,
                            long lda, const float *B, long ldb, float beta,
                            float *C, long ldc);

/* One ISA's kernel set (const tables in gemm_dispatch.c). */
typedef struct dn_gemm_isa {
    int mr, nr, mc, nc;
    dn_ukernel_fn kernel;
    dn_pack_fn pack_copy, pack_trans;
    int pack_copy_block;    /* pack_copy(MR, rv > MR) packs a whole block */
    int direct_b;           /* M <= direct_b with TB = 0: B not packed */
    int small_m;            /* M <= small_m goes to rows/dots (0: never) */
    int rows_group, dots_group;
    dn_rows_fn rows[4];     /* [g - 1] for a group of g rows */
    dn_dots_fn dots[4];
    dn_dotsb_fn dotsb;      /* TA = 0, TB = 1, moderate M (or NULL) */
    dn_ukernel_fn kernel_pf;/* kernel that also prefetches B, for the first
                               tile of a prepacked sliver (or NULL) */
} dn_gemm_isa;

/* The table of a kernel id, NULL for REFERENCE or an unknown id; does not
 * check the CPU (gemm_dispatch.c). */
const dn_gemm_isa *dn_gemm_isa_for(int kernel);

static inline int dn_imin(int a, int b) { return a < b ? a : b; }

/* A B used by many GEMMs, packed once (gemm_driver.c): op(B) (K x N) in the
 * packed path's sliver layout (k-block pc at pc * round_up(N, NR), NR-wide
 * slivers of kc x NR floats, zero-padded); dn_gemm_prepacked then runs the
 * packed path without packing B (same bits as the packed path would give,
 * any thread count). */
long dn_gemm_packed_b_floats(const dn_gemm_isa *d, int N, int K);
void dn_gemm_pack_b(const dn_gemm_isa *d, int TB, int N, int K, const float *B,
                    long ldb, float *Bp);
int dn_gemm_prepacked(const dn_ctx *ctx, int TA, int M, int N, int K, float alpha,
                      const float *A, long lda, const float *Bp, float beta, float *C,
                      long ldc);

static inline long dn_round_up(long n, long m) { return (n + m - 1) / m * m; }

/* Floats of workspace one thread uses: packed A block, packed B block and
 * the slack to align both to 64 bytes. */
static inline long dn_gemm_thread_floats(const dn_gemm_isa *d)
{
    return dn_round_up((long)d->mc * DN_GEMM_KC, DN_GEMM_ALIGN_FLOATS)
         + dn_round_up((long)d->nc * DN_GEMM_KC, DN_GEMM_ALIGN_FLOATS)
         + DN_GEMM_ALIGN_FLOATS;
}

/* Portable kernels (gemm_portable.c). */
void dn_gemm_pack_copy_c(int R, int rv, int kc, const float *src, long ld, float *dst);
void dn_gemm_pack_trans_c(int R, int rv, int kc, const float *src, long ld, float *dst);
void dn_gemm_store_tile_c(const float *t, int tstride, float *c, long ldc,
                          int mr, int nr, float alpha, float beta);
void dn_gemm_ukernel_c(int kc, const float *a, const float *b, long ldbk,
                       float *c, long ldc, int mr, int nr, float alpha, float beta);

#if DN_X86
/* AVX2 (gemm_avx2.c). dn_gemm_trans8_avx2 packs one group of 8 sliver rows
 * of a "trans" pack for k in [k0, kc), nv (1..8) of them valid; the AVX-512
 * trans pack uses it for its k tail. */
void dn_gemm_trans8_avx2(int R, int nv, int k0, int kc, const float *s, long ld,
                         float *dst);
void dn_gemm_pack_copy_avx2(int R, int rv, int kc, const float *src, long ld, float *dst);
void dn_gemm_pack_trans_avx2(int R, int rv, int kc, const float *src, long ld, float *dst);
void dn_gemm_ukernel_avx2(int kc, const float *a, const float *b, long ldbk,
                          float *c, long ldc, int mr, int nr, float alpha, float beta);

/* AVX-512 (gemm_avx512.c). */
void dn_gemm_pack_copy_avx512(int R, int rv, int kc, const float *src, long ld, float *dst);
void dn_gemm_pack_trans_avx512(int R, int rv, int kc, const float *src, long ld, float *dst);
void dn_gemm_ukernel_avx512(int kc, const float *a, const float *b, long ldbk,
                            float *c, long ldc, int mr, int nr, float alpha, float beta);
void dn_gemm_ukernel_pf_avx512(int kc, const float *a, const float *b, long ldbk,
                               float *c, long ldc, int mr, int nr, float alpha, float beta);

/* Small-M kernels: AVX2 (gemm_small_avx2.c), see dn_rows_fn and dn_dots_fn;
 * the digit is the number of rows of C. */
void dn_gemm_rows1_avx2(int n, int K, float alpha, const float *a, long a_rs,
                        long a_ks, const float *B, long ldb, float beta, float *C,
                        long ldc);
void dn_gemm_rows2_avx2(int n, int K, float alpha, const float *a, long a_rs,
                        long a_ks, const float *B, long ldb, float beta, float *C,
                        long ldc);
void dn_gemm_rows3_avx2(int n, int K, float alpha, const float *a, long a_rs,
                        long a_ks, const float *B, long ldb, float beta, float *C,
                        long ldc);
void dn_gemm_rows4_avx2(int n, int K, float alpha, const float *a, long a_rs,
                        long a_ks, const float *B, long ldb, float beta, float *C,
                        long ldc);
void dn_gemm_dots1_avx2(int n, int K, float alpha, const float *A, long lda,
                        const float *B, long ldb, float beta, float *C, long ldc);
void dn_gemm_dots2_avx2(int n, int K, float alpha, const float *A, long lda,
                        const float *B, long ldb, float beta, float *C, long ldc);

/* Small-M kernels: AVX-512 (gemm_small_avx512.c). */
void dn_gemm_rows1_avx512(int n, int K, float alpha, const float *a, long a_rs,
                          long a_ks, const float *B, long ldb, float beta, float *C,
                          long ldc);
void dn_gemm_rows2_avx512(int n, int K, float alpha, const float *a, long a_rs,
                          long a_ks, const float *B, long ldb, float beta, float *C,
                          long ldc);
void dn_gemm_rows3_avx512(int n, int K, float alpha, const float *a, long a_rs,
                          long a_ks, const float *B, long ldb, float beta, float *C,
                          long ldc);
void dn_gemm_rrows4_avx512(int n, int K, float alpha, const float *a, long a_rs,
                           long a_ks, const float *B, long ldb, float beta, float *C,
                           long ldc);
void dn_gemm_dots1_avx512(int n, int K, float alpha, const float *A, long lda,
                          const float *B, long ldb, float beta, float *C, long ldc);
void dn_gemm_dots2_avx512(int n, int K, float alpha, const float *A, long lda,
                          const float *B, long ldb, float beta, float *C, long ldc);
void dn_gemm_dots3_avx512(int n, int K, float alpha, const float *A, long lda,
                          const float *B, long ldb, float beta, float *C, long ldc);
void dn_gemm_dots4_avx512(int n, int K, float alpha, const float *A, long lda,
                          const float *B, long ldb, float beta, float *C, long ldc);
void dn_gemm_dotsb_avx512(int M, int N, int K, float alpha, const float *A,
                          long lda, const float *B, long ldb, float beta,
                          float *C, long ldc);

/* Mask of the first n of 16 lanes (all for n >= 16, none for n <= 0). */
DN_TARGET_AVX512 static inline __mmask16 dn_tail_mask(int n)
{
    return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? (__mmask16)0
                                                : (__mmask16)((1u << n) - 1u);
}
#endif /* DN_X86 */

#endif
