/*
 * Pillow's BILINEAR resize, exactly, fused with the normalisation into the model input.
 *
 * What one call computes
 * ----------------------
 * ``run(plan, frame, out, lut, swap, y0, y1[, counter, chunk])`` takes a uint8 (H, W, 3) frame
 * and writes rows [y0, y1) of the visible window of its resize into ``out``:
 * either the resized bytes themselves (``lut`` None: out is uint8 (rows, cols,
 * 3), channel order kept), or, for the model input, three float32 or float16
 * planes (3, rows, cols) with ``out[c][y][x] = lut[c][pixel[ch(c)]]`` where
 * ``ch(c) = 2 - c`` when ``swap`` (BGR frame, RGB model) and ``c`` otherwise.
 * The caller (``native.py``) runs one call per worker thread with a shared
 * counter: the threads claim chunks of rows atomically; the GIL is released
 * for the whole computation and a plan is never written after it is made, so
 * chunks run concurrently.
 *
 * The arithmetic is Pillow's ``ImagingResample`` for 8-bit images
 * (``src/libImaging/Resample.c``, ANCHORS.md section 1): per axis a table of
 * int32 coefficients (Pillow's float64 weights times 2**22, rounded), made in
 * Python by ``pillow_resize.coefficients`` and passed in; an output value is
 * ``clamp((2**21 + sum_k p_k * c_k) >> 22, 0, 255)``; two separable passes
 * with a uint8 intermediate, in the installed Pillow's order
 * (``pillow_resize.pass_sizes``, passed in as ``order``), a pass whose size
 * is unchanged skipped. A centre-crop window computes only the visible
 * outputs: each output pixel depends on its own taps only, so that is exact.
 *
 * Passes and memory
 * -----------------
 * - "hv" (horizontal first): the horizontal pass writes the rows it needs
 *   into a ring of ``ring`` uint8 rows (visible columns only); each output row
 *   is then the vertical pass over the ring rows of its taps, into one uint8
 *   row, which ``emit`` turns into the three output planes. Every
 *   intermediate row is computed once per band.
 * - "vh" (vertical first): per output row (two at a time), the vertical pass
 *   over the frame rows of its taps gives one full-width uint8 row, the
 *   horizontal pass makes the visible columns of it, ``emit`` writes them.
 * - "h", "v", "": one pass, or a copy, then ``emit``.
 * No other copy of the frame is made; the uint8 intermediate lives in
 * per-call scratch of a few rows.
 *
 * Instruction sets (chosen at run time, ``__builtin_cpu_supports``)
 * -----------------------------------------------------------------
 * portable: plain C, int32, the loops of Pillow itself.
 * avx2:     horizontal pass one output pixel per step, 4 taps x 3 channels
 *           per 256-bit multiply-add (layout below), two rows sharing the
 *           coefficient loads; vertical pass 16 bytes x 2 taps per step.
 *           Lookups of the normalisation table: vpgatherdd.
 * avx512:   AVX512BW/VL/VBMI/VNNI (Ice Lake, Zen 4 and later): 8 taps x 3
 *           channels per 512-bit step (``vpermb`` gathers the bytes,
 *           ``vpdpwssd`` multiplies and accumulates), vertical pass 32 bytes
 *           per step; table lookups from registers (vpermi2ps / vpermi2w).
 * neon:     aarch64: int32 multiply-accumulate (``vmlaq``), no split needed.
 *           Tested under qemu-user against Pillow (tests/test_preprocess_native.py).
 * The SIMD kernels need GCC >= 9 or Clang; other compilers (MSVC: untested)
 * build the portable kernels only.
 *
 * Exactness of the 16-bit multiply-adds (avx2, avx512): the proof
 * ------------------------------------------------------------------
 * ``vpmaddwd``/``vpdpwssd`` multiply int16 by int16. A coefficient needs 23
 * bits, so each is split: ``c = 2048 * h + l`` with ``h = c >> 11`` and
 * ``l = c & 2047``. Pixels p_k are uint8 (zero-extended to int16).
 * Premises, checked by ``plan_init`` for every output of every axis (a table
 * that breaks one is refused with an error, never computed):
 *   (P1) 0 <= c_k <= 2**22 for every tap (Pillow's bilinear weights are in
 *        [0, 1]);
 *   (P2) S = sum_k c_k <= COEF_SUM_MAX = floor((2**31 - 1 - 2**21) / 255)
 *        = 8413280. Pillow's normalised weights sum to 1, and each of the n
 *        taps rounds up by at most 1/2, so S <= 2**22 + n / 2 (+ float64
 *        error far below 1): (P2) holds for any n < 8.4e6 taps, i.e. any
 *        source side below ~4e6 pixels (test_preprocess_native checks the
 *        largest supported frame, MAX_SIDE, against this bound).
 * Then, with 0 <= p_k <= 255:
 *   (1) Pillow's own accumulator A = 2**21 + sum p_k c_k lies in
 *       [2**21, 2**21 + 255 S] and 2**21 + 255 S <= 2**31 - 1: no int32
 *       overflow (this also bounds the portable and neon code, which
 *       multiply in int32: p c <= 255 * 2**22 < 2**31).
 *   (2) 0 <= h <= 2**22 >> 11 = 2048 and 0 <= l <= 2047 fit int16; h <= c / 2048
 *       and l <= c.
 *   (3) One multiply-add lane is p_a h_a + p_b h_b <= 2 * 255 * 2048 < 2**20
 *       (resp. with l): exact, and never the (-32768)^2 * 2 case that wraps.
 *   (4) Every SIMD lane accumulates a subset T of the taps:
 *       H_T = sum_T p h <= 255 sum h <= 255 S / 2048 and
 *       L_T = sum_T p l <= 255 sum l <= 255 S (plus 2**21 in one lane per
 *       channel). All terms are >= 0, so every partial sum is <= its final
 *       value: no intermediate overflows.
 *   (5) Recombination: 2048 H_T <= 255 S < 2**31 (the shift is exact) and
 *       2048 H_T + L_T = sum_T p (2048 h + l) = sum_T p c; adding the lanes
 *       of one channel gives exactly A <= 2**21 + 255 S < 2**31.
 *   (6) A >> 22 is in [0, 511]; the saturating packs (signed 32 -> 16 bit
 *       keeps [0, 511], unsigned 16 -> 8 bit clamps to [0, 255]) or
 *       ``vpmovusdb`` give clamp(A >> 22, 0, 255): Pillow's clip8.
 * So every byte equals Pillow's, given Pillow's tables and pass order.
 *
 * Buffers (numpy, through the buffer protocol)
 * -------------------------------------------
 *   frame  uint8 (in_h, in_w, 3), strides (row >= 3 in_w, 3, 1)
 *   out    uint8 (rows, cols, 3) C-contiguous, or float32/float16
 *          (3, rows, cols) with the last stride = item size; rows = ry1 - ry0
 *          of the plan, cols = rx1 - rx0
 *   lut    (3, 256) of out's dtype, C-contiguous: lut[c][v], model channel c
 *   tables int32: start (n,), size (n,), coef (n, ksize) C-contiguous
 *
 * Compiled with RESIZE_NATIVE_NO_PYTHON the Python glue is left out and the
 * kernels can be driven from a C harness (the NEON check under qemu in
 * tests/test_preprocess_native.py does that).
 */
#ifndef RESIZE_NATIVE_NO_PYTHON
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#endif
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The SIMD kernels need GCC or Clang (function ``target`` attributes, __builtin_cpu_supports);
 * any other compiler builds the portable kernels only. */
#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 9))
#define RN_X86 1
#include <immintrin.h>
#define TARGET_AVX2 __attribute__((target("avx2")))
#define TARGET_AVX512 __attribute__((target("avx2,avx512f,avx512bw,avx512vl,avx512vbmi,avx512vnni")))
#endif
#if defined(__aarch64__)
#define RN_NEON 1
#include <arm_neon.h>
#endif

#define PRECISION_BITS 22
#define ROUNDING (1 << (PRECISION_BITS - 1))
#define COEF_MAX (1 << PRECISION_BITS)
/* floor((2**31 - 1 - 2**21) / 255): premise (P2) above. */
#define COEF_SUM_MAX 8413280
#define SPLIT_BITS 11 /* c = (h << 11) + l */
#define PAD 64        /* slack after every scratch row: vector stores write up to 16 bytes past */

#if defined(_MSC_VER) && !defined(__clang__)
#include <intrin.h>
#define CLAIM(counter) _InterlockedExchangeAdd64((volatile long long *)(counter), 1)
#else
#define CLAIM(counter) __atomic_fetch_add((counter), 1, __ATOMIC_RELAXED)
#endif

enum { ISA_PORTABLE = 0, ISA_AVX2 = 1, ISA_AVX512 = 2, ISA_NEON = 3, ISA_COUNT = 4 };
static const char *const ISA_NAMES[ISA_COUNT] = {"portable", "avx2", "avx512", "neon"};

enum { ORDER_NONE = 0, ORDER_H = 1, ORDER_V = 2, ORDER_HV = 3, ORDER_VH = 4 };
enum { OUT_U8 = 0, OUT_F32 = 1, OUT_F16 = 2 };

/* One axis of the plan, restricted to the visible outputs [0, n). */
typedef struct {
    ptrdiff_t n;       /* outputs */
    ptrdiff_t ksize;   /* stride of coef (Pillow's taps bound) */
    int32_t *start;    /* (n,) first source index of each output, non-decreasing */
    int32_t *size;     /* (n,) taps of each output, >= 1 */
    int32_t *coef;     /* (n, ksize) Pillow's int32 coefficients, 0 past size */
    int16_t *split;    /* horizontal SIMD: (n, groups, 2, gs) int16: h then l of gs taps */
    int32_t *wide;     /* horizontal NEON: (n, groups * gs) int32, 0 past size */
    int32_t *pairs;    /* vertical SIMD: (n, (ksize + 1) / 2, 2) int32 words: (h_k | h_k+1 << 16), same for l */
    ptrdiff_t groups;  /* horizontal: tap groups per output (uniform, zero-padded) */
    ptrdiff_t safe;    /* horizontal: outputs [0, safe) never read past their source row */
    ptrdiff_t max_size;
} Axis;

/* Where and how the visible window is written. */
typedef struct {
    int kind;              /* OUT_U8, OUT_F32, OUT_F16 */
    char *base;            /* element (row 0, col 0) of plane 0 (OUT_U8: of the pixel array) */
    ptrdiff_t s_plane;     /* bytes between planes */
    ptrdiff_t s_row;       /* bytes between rows */
    const void *lut[3];    /* per output plane: 256 entries of the output type (+ 8 slack for F16) */
    int ch[3];             /* per output plane: which byte of the source pixel */
} Out;

typedef struct Kernels Kernels;

typedef struct {
    int isa, order;
    ptrdiff_t in_h, in_w;
    ptrdiff_t rx0, rx1, ry0, ry1; /* visible window, in resized coordinates */
    Axis h, v;
    ptrdiff_t ring;               /* hv: intermediate rows kept */
    const Kernels *k;
} Plan;

/* -- portable kernels: Pillow's loops ------------------------------------------ */
static inline uint8_t clip8(int32_t acc)
{
    int32_t v = acc >> PRECISION_BITS; /* acc >= 2**21 > 0 (proof, (1)): the shift is exact */
    return (uint8_t)(v < 0 ? 0 : (v > 255 ? 255 : v));
}

/* Horizontal pass of up to two rows (s1 == s0 and d1 == d0 for one): outputs [xa, xb).
 * Source pixel q of a row is at s + 3 q - base (base: offset of a tail copy). */
static void h2_portable(const uint8_t *s0, const uint8_t *s1, ptrdiff_t base, const Axis *h,
                        ptrdiff_t xa, ptrdiff_t xb, uint8_t *d0, uint8_t *d1)
{
    const int two = s1 != s0 || d1 != d0;
    for (ptrdiff_t x = xa; x < xb; x++) {
        const int32_t *c = h->coef + x * h->ksize;
        const ptrdiff_t n = h->size[x], off = (ptrdiff_t)h->start[x] * 3 - base;
        for (int r = 0; r <= two; r++) {
            const uint8_t *p = (r ? s1 : s0) + off;
            uint8_t *d = (r ? d1 : d0) + 3 * x;
            int32_t a0 = ROUNDING, a1 = ROUNDING, a2 = ROUNDING;
            for (ptrdiff_t k = 0; k < n; k++) {
                a0 += (int32_t)p[3 * k] * c[k];
                a1 += (int32_t)p[3 * k + 1] * c[k];
                a2 += (int32_t)p[3 * k + 2] * c[k];
            }
            d[0] = clip8(a0);
            d[1] = clip8(a1);
            d[2] = clip8(a2);
        }
    }
}

/* Vertical pass: dst[j] = clip8(2**21 + sum_k rows[k][j] * coef[k]), j in [from, len). */
static void v_tail(const uint8_t *const *rows, ptrdiff_t n, const int32_t *coef, uint8_t *dst,
                   ptrdiff_t from, ptrdiff_t len)
{
    for (ptrdiff_t j = from; j < len; j++) {
        int32_t a = ROUNDING;
        for (ptrdiff_t k = 0; k < n; k++)
            a += (int32_t)rows[k][j] * coef[k];
        dst[j] = clip8(a);
    }
}

static void v_portable(const uint8_t *const *rows, ptrdiff_t n, const int32_t *coef, const int32_t *pairs,
                       uint8_t *dst, ptrdiff_t len)
{
    (void)pairs;
    enum { CHUNK = 256 };
    int32_t acc[CHUNK];
    for (ptrdiff_t j0 = 0; j0 < len; j0 += CHUNK) {
        const ptrdiff_t m = len - j0 < CHUNK ? len - j0 : CHUNK;
        for (ptrdiff_t j = 0; j < m; j++)
            acc[j] = ROUNDING;
        for (ptrdiff_t k = 0; k < n; k++) {
            const uint8_t *r = rows[k] + j0;
            const int32_t c = coef[k];
            for (ptrdiff_t j = 0; j < m; j++)
                acc[j] += (int32_t)r[j] * c;
        }
        for (ptrdiff_t j = 0; j < m; j++)
            dst[j0 + j] = clip8(acc[j]);
    }
}

/* Write one visible row (w pixels, source channel order) as output row r. */
static void emit_portable(const uint8_t *src, ptrdiff_t w, const Out *o, ptrdiff_t r)
{
    if (o->kind == OUT_U8) {
        memcpy(o->base + r * o->s_row, src, (size_t)(3 * w));
        return;
    }
    for (int c = 0; c < 3; c++) {
        char *row = o->base + c * o->s_plane + r * o->s_row;
        const uint8_t *s = src + o->ch[c];
        if (o->kind == OUT_F32) {
            const float *lut = o->lut[c];
            float *d = (float *)row;
            for (ptrdiff_t x = 0; x < w; x++)
                d[x] = lut[s[3 * x]];
        } else {
            const uint16_t *lut = o->lut[c];
            uint16_t *d = (uint16_t *)row;
            for (ptrdiff_t x = 0; x < w; x++)
                d[x] = lut[s[3 * x]];
        }
    }
}

/* -- AVX2 -------------------------------------------------------------------------
 * Horizontal pass, one output pixel x of two rows per step. A group is 4 taps
 * (pixels q .. q+3, 12 bytes): one 16-byte load at 3q, broadcast to both
 * 128-bit lanes, and one vpshufb make the int16 pairs
 *     low lane:  (b_q, b_q+1) (b_q+2, b_q+3) (g_q, g_q+1) (g_q+2, g_q+3)
 *     high lane: (r_q, r_q+1) (r_q+2, r_q+3) 0 0
 * so one vpmaddwd with the coefficients (c_q, c_q+1, c_q+2, c_q+3) repeated
 * (a vpbroadcastq) gives int32 partial sums [b01 b23 g01 g23 | r01 r23 0 0];
 * one multiply-add for the high halves h, one for the low halves l (proof
 * above). The l accumulator starts with 2**21 in lanes 0, 2, 4 (one per
 * channel). After the taps: A = (H << 11) + L, vphaddd of the two rows'
 * A gives [b0 g0 b1 g1 | r0 0 r1 0], shifted by 22; four pixels are packed
 * with saturation to bytes and shuffled into b g r order, 12 bytes per row
 * per 16-byte store (the 4 bytes past are overwritten by the next step, or
 * land in the scratch slack).
 * Reads: 16 bytes from 3 (start + 4 g); outputs [0, safe) stay inside the
 * row, the rest read a zero-padded tail copy (h_pass).
 */
#ifdef RN_X86
TARGET_AVX2 static void h2_avx2(const uint8_t *s0, const uint8_t *s1, ptrdiff_t base, const Axis *h,
                                ptrdiff_t xa, ptrdiff_t xb, uint8_t *d0, uint8_t *d1)
{
    const __m256i pairs = _mm256_setr_epi8(0, -1, 3, -1, 6, -1, 9, -1, 1, -1, 4, -1, 7, -1, 10, -1,
                                           2, -1, 5, -1, 8, -1, 11, -1, -1, -1, -1, -1, -1, -1, -1, -1);
    const __m256i init = _mm256_setr_epi32(ROUNDING, 0, ROUNDING, 0, ROUNDING, 0, 0, 0);
    /* bytes after the packs: low lane [x0: b0 g0 b1 g1, x1.., x2.., x3..], high lane [x0: r0 0 r1 0, ..] */
    const __m256i gather1 = _mm256_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15,
                                             0, 4, 8, 12, 2, 6, 10, 14, -1, -1, -1, -1, -1, -1, -1, -1);
    /* after the qword permute: lane 0 [row0 bg x4 | row0 r x4, row1 r x4], lane 1 [row1 bg x4 | same r] */
    const __m256i gather2 = _mm256_setr_epi8(0, 1, 8, 2, 3, 9, 4, 5, 10, 6, 7, 11, -1, -1, -1, -1,
                                             0, 1, 12, 2, 3, 13, 4, 5, 14, 6, 7, 15, -1, -1, -1, -1);
    const ptrdiff_t G = h->groups;
    for (ptrdiff_t x = xa; x < xb; x += 4) {
        __m256i sums[4];
        for (int j = 0; j < 4; j++) {
            const ptrdiff_t xi = x + j < xb ? x + j : xb - 1; /* a short last step repeats its last pixel */
            const ptrdiff_t off = (ptrdiff_t)h->start[xi] * 3 - base;
            const uint8_t *p0 = s0 + off, *p1 = s1 + off;
            const int16_t *cf = h->split + xi * G * 8;
            __m256i hi0 = _mm256_setzero_si256(), hi1 = hi0, lo0 = init, lo1 = init;
            for (ptrdiff_t g = 0; g < G; g++) {
                int64_t qh, ql;
                memcpy(&qh, cf + 8 * g, 8);
                memcpy(&ql, cf + 8 * g + 4, 8);
                const __m256i ch = _mm256_set1_epi64x(qh), cl = _mm256_set1_epi64x(ql);
                const __m256i a = _mm256_shuffle_epi8(
                    _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(p0 + 12 * g))), pairs);
                const __m256i b = _mm256_shuffle_epi8(
                    _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(p1 + 12 * g))), pairs);
                hi0 = _mm256_add_epi32(hi0, _mm256_madd_epi16(a, ch));
                lo0 = _mm256_add_epi32(lo0, _mm256_madd_epi16(a, cl));
                hi1 = _mm256_add_epi32(hi1, _mm256_madd_epi16(b, ch));
                lo1 = _mm256_add_epi32(lo1, _mm256_madd_epi16(b, cl));
            }
            const __m256i a0 = _mm256_add_epi32(_mm256_slli_epi32(hi0, SPLIT_BITS), lo0);
            const __m256i a1 = _mm256_add_epi32(_mm256_slli_epi32(hi1, SPLIT_BITS), lo1);
            sums[j] = _mm256_srai_epi32(_mm256_hadd_epi32(a0, a1), PRECISION_BITS);
        }
        const __m256i q = _mm256_packus_epi16(_mm256_packs_epi32(sums[0], sums[1]),
                                              _mm256_packs_epi32(sums[2], sums[3]));
        const __m256i t = _mm256_permute4x64_epi64(_mm256_shuffle_epi8(q, gather1), _MM_SHUFFLE(2, 1, 2, 0));
        const __m256i v = _mm256_shuffle_epi8(t, gather2);
        _mm_storeu_si128((__m128i *)(d0 + 3 * x), _mm256_castsi256_si128(v));
        _mm_storeu_si128((__m128i *)(d1 + 3 * x), _mm256_extracti128_si256(v, 1));
    }
}

/* Vertical pass, 16 bytes x 2 taps per step: bytes of rows k and k+1 are
 * zero-extended and interleaved into int16 pairs (a_j, b_j); vpmaddwd with
 * the broadcast pair words (h_k | h_k+1 << 16) and (l_k | l_k+1 << 16)
 * accumulates 8 int32 sums per register. Packing back with saturation
 * undoes the in-lane interleave, so bytes come out in order. */
TARGET_AVX2 static void v_avx2(const uint8_t *const *rows, ptrdiff_t n, const int32_t *coef,
                               const int32_t *pairs, uint8_t *dst, ptrdiff_t len)
{
    const ptrdiff_t np = (n + 1) / 2;
    const __m256i round = _mm256_set1_epi32(ROUNDING);
    ptrdiff_t j = 0;
    for (; j + 16 <= len; j += 16) {
        __m256i h0 = _mm256_setzero_si256(), h1 = h0, l0 = round, l1 = round;
        for (ptrdiff_t k = 0; k < np; k++) {
            const __m256i a = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(rows[2 * k] + j)));
            const __m256i b = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(rows[2 * k + 1] + j)));
            const __m256i p0 = _mm256_unpacklo_epi16(a, b), p1 = _mm256_unpackhi_epi16(a, b);
            const __m256i ch = _mm256_set1_epi32(pairs[2 * k]), cl = _mm256_set1_epi32(pairs[2 * k + 1]);
            h0 = _mm256_add_epi32(h0, _mm256_madd_epi16(p0, ch));
            h1 = _mm256_add_epi32(h1, _mm256_madd_epi16(p1, ch));
            l0 = _mm256_add_epi32(l0, _mm256_madd_epi16(p0, cl));
            l1 = _mm256_add_epi32(l1, _mm256_madd_epi16(p1, cl));
        }
        const __m256i r0 = _mm256_srai_epi32(_mm256_add_epi32(_mm256_slli_epi32(h0, SPLIT_BITS), l0), PRECISION_BITS);
        const __m256i r1 = _mm256_srai_epi32(_mm256_add_epi32(_mm256_slli_epi32(h1, SPLIT_BITS), l1), PRECISION_BITS);
        const __m256i w = _mm256_packs_epi32(r0, r1); /* [x0-3 x4-7 | x8-11 x12-15] int16 */
        _mm_storeu_si128((__m128i *)(dst + j),
                         _mm_packus_epi16(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1)));
    }
    v_tail(rows, n, coef, dst, j, len);
}

/* Emit with vpgatherdd: 8 pixels per step, the index of each plane picked by
 * vpshufb from two 16-byte loads (pixels x..x+3 and x+4..x+7). Reads stay
 * below 3 (x + 10) <= 3 w; the rest is scalar. */
TARGET_AVX2 static void emit_avx2(const uint8_t *src, ptrdiff_t w, const Out *o, ptrdiff_t r)
{
    if (o->kind == OUT_U8) {
        memcpy(o->base + r * o->s_row, src, (size_t)(3 * w));
        return;
    }
    __m256i pick[3];
    for (int c = 0; c < 3; c++) {
        const char s = (char)o->ch[c];
        pick[c] = _mm256_setr_epi8(s, -1, -1, -1, s + 3, -1, -1, -1, s + 6, -1, -1, -1, s + 9, -1, -1, -1,
                                   s, -1, -1, -1, s + 3, -1, -1, -1, s + 6, -1, -1, -1, s + 9, -1, -1, -1);
    }
    char *rows[3];
    for (int c = 0; c < 3; c++)
        rows[c] = o->base + c * o->s_plane + r * o->s_row;
    ptrdiff_t x = 0;
    if (o->kind == OUT_F32) {
        for (; x + 10 <= w; x += 8) {
            const __m256i px = _mm256_inserti128_si256(
                _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(src + 3 * x))),
                _mm_loadu_si128((const __m128i *)(src + 3 * x + 12)), 1);
            for (int c = 0; c < 3; c++) {
                const __m256 v = _mm256_i32gather_ps((const float *)o->lut[c], _mm256_shuffle_epi8(px, pick[c]), 4);
                _mm256_storeu_ps((float *)rows[c] + x, v);
            }
        }
    } else {
        const __m256i low16 = _mm256_set1_epi32(0xFFFF);
        for (; x + 10 <= w; x += 8) {
            const __m256i px = _mm256_inserti128_si256(
                _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(src + 3 * x))),
                _mm_loadu_si128((const __m128i *)(src + 3 * x + 12)), 1);
            for (int c = 0; c < 3; c++) {
                /* 4 bytes at lut + 2 v: entry v in the low half (the table has slack after entry 255) */
                __m256i v = _mm256_i32gather_epi32((const int *)o->lut[c], _mm256_shuffle_epi8(px, pick[c]), 2);
                v = _mm256_and_si256(v, low16);
                v = _mm256_permute4x64_epi64(_mm256_packus_epi32(v, v), _MM_SHUFFLE(3, 1, 2, 0));
                _mm_storeu_si128((__m128i *)((uint16_t *)rows[c] + x), _mm256_castsi256_si128(v));
            }
        }
    }
    if (x < w) {
        for (int c = 0; c < 3; c++) {
            const uint8_t *s = src + o->ch[c];
            if (o->kind == OUT_F32) {
                const float *lut = o->lut[c];
                for (ptrdiff_t i = x; i < w; i++)
                    ((float *)rows[c])[i] = lut[s[3 * i]];
            } else {
                const uint16_t *lut = o->lut[c];
                for (ptrdiff_t i = x; i < w; i++)
                    ((uint16_t *)rows[c])[i] = lut[s[3 * i]];
            }
        }
    }
}

/* -- AVX-512 (BW, VL, VBMI, VNNI) ---------------------------------------------------
 * Horizontal pass: a group is 8 taps (pixels q .. q+7, 24 bytes). One 32-byte
 * load and one vpermb (zero-masked high bytes) make 16 int32 lanes of int16
 * pairs [b01 b23 b45 b67 | g01 .. g67 | r01 .. r67 | 0 0 0 0]; the
 * coefficients (c_q .. c_q+7) repeated in each 128-bit block come from one
 * broadcast load; vpdpwssd multiplies and accumulates (h and l halves as in
 * the proof). Four pixels of one row are reduced together: two rounds of
 * unpack + add leave [P Q R S] per channel block, shifted by 22, narrowed
 * with unsigned saturation (vpmovusdb: values are >= 0) and shuffled to
 * b g r order: 12 bytes per 16-byte store.
 * Reads: 32 bytes from 3 (start + 8 g) (tail copy past safe, as for AVX2). */
TARGET_AVX512 static void h2_avx512(const uint8_t *s0, const uint8_t *s1, ptrdiff_t base, const Axis *h,
                                    ptrdiff_t xa, ptrdiff_t xb, uint8_t *d0, uint8_t *d1)
{
    const __m512i idx = _mm512_set_epi8(
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 23, 0, 20, 0, 17, 0, 14, 0, 11, 0, 8, 0, 5, 0, 2,
        0, 22, 0, 19, 0, 16, 0, 13, 0, 10, 0, 7, 0, 4, 0, 1,
        0, 21, 0, 18, 0, 15, 0, 12, 0, 9, 0, 6, 0, 3, 0, 0);
    const __mmask64 low_bytes = 0x0000555555555555ULL; /* the low byte of int16 lanes 0..23 */
    const __m512i init = _mm512_setr_epi32(ROUNDING, 0, 0, 0, ROUNDING, 0, 0, 0, ROUNDING, 0, 0, 0, 0, 0, 0, 0);
    const __m128i order = _mm_setr_epi8(0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11, -1, -1, -1, -1);
    const int two = s1 != s0 || d1 != d0;
    const ptrdiff_t G = h->groups;
    for (ptrdiff_t x = xa; x < xb; x += 4) {
        __m512i acc[2][4];
        for (int j = 0; j < 4; j++) {
            const ptrdiff_t xi = x + j < xb ? x + j : xb - 1;
            const ptrdiff_t off = (ptrdiff_t)h->start[xi] * 3 - base;
            const uint8_t *p0 = s0 + off, *p1 = s1 + off;
            const int16_t *cf = h->split + xi * G * 16;
            __m512i hi0 = _mm512_setzero_si512(), hi1 = hi0, lo0 = init, lo1 = init;
            for (ptrdiff_t g = 0; g < G; g++) {
                const __m512i ch = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(cf + 16 * g)));
                const __m512i cl = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(cf + 16 * g + 8)));
                const __m512i a = _mm512_maskz_permutexvar_epi8(
                    low_bytes, idx, _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(p0 + 24 * g))));
                hi0 = _mm512_dpwssd_epi32(hi0, a, ch);
                lo0 = _mm512_dpwssd_epi32(lo0, a, cl);
                if (two) {
                    const __m512i b = _mm512_maskz_permutexvar_epi8(
                        low_bytes, idx, _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(p1 + 24 * g))));
                    hi1 = _mm512_dpwssd_epi32(hi1, b, ch);
                    lo1 = _mm512_dpwssd_epi32(lo1, b, cl);
                }
            }
            acc[0][j] = _mm512_add_epi32(_mm512_slli_epi32(hi0, SPLIT_BITS), lo0);
            acc[1][j] = _mm512_add_epi32(_mm512_slli_epi32(hi1, SPLIT_BITS), lo1);
        }
        for (int r = 0; r <= two; r++) {
            __m512i *A = acc[r];
            const __m512i x1 = _mm512_add_epi32(_mm512_unpacklo_epi32(A[0], A[1]), _mm512_unpackhi_epi32(A[0], A[1]));
            const __m512i x2 = _mm512_add_epi32(_mm512_unpacklo_epi32(A[2], A[3]), _mm512_unpackhi_epi32(A[2], A[3]));
            const __m512i y = _mm512_srai_epi32(
                _mm512_add_epi32(_mm512_unpacklo_epi64(x1, x2), _mm512_unpackhi_epi64(x1, x2)), PRECISION_BITS);
            const __m128i bytes = _mm_shuffle_epi8(_mm512_cvtusepi32_epi8(y), order);
            _mm_storeu_si128((__m128i *)((r ? d1 : d0) + 3 * x), bytes);
        }
    }
}

/* Emit: the 256-entry table of one plane lives in registers and vpermi2ps /
 * vpermi2w look the values up, no gather. float32: 16 pixels per step; the
 * plane's bytes of 16 pixels (48 bytes, a masked load that never reads past
 * the row) are picked by vpermb and widened to int32 indices; 8 vpermi2ps
 * look up within 32-entry blocks (index bits 0-4) and three rounds of
 * masked blends select the block (bits 5, 6, 7). float16: 32 pixels per
 * step, 64-entry blocks (vpermi2w, bits 0-5), blends on bits 6 and 7. */
TARGET_AVX512 static void emit_avx512(const uint8_t *src, ptrdiff_t w, const Out *o, ptrdiff_t r)
{
    if (o->kind == OUT_U8) {
        memcpy(o->base + r * o->s_row, src, (size_t)(3 * w));
        return;
    }
    for (int c = 0; c < 3; c++) {
        char *row = o->base + c * o->s_plane + r * o->s_row;
        const int ch = o->ch[c];
        ptrdiff_t x = 0;
        if (o->kind == OUT_F32) {
            const float *lut = o->lut[c];
            __m512 t[16];
            for (int i = 0; i < 16; i++)
                t[i] = _mm512_loadu_ps(lut + 16 * i);
            /* byte k of the result: byte 3 k + ch of the 16 pixels */
            const __m512i pick = _mm512_add_epi8(
                _mm512_setr_epi32(0x09060300, 0x15120f0c, 0x211e1b18, 0x2d2a2724, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
                _mm512_set1_epi8((char)ch));
            const __m512i b5 = _mm512_set1_epi32(32), b6 = _mm512_set1_epi32(64), b7 = _mm512_set1_epi32(128);
            for (; x + 16 <= w; x += 16) {
                const __m512i bytes = _mm512_maskz_loadu_epi8(0x0000FFFFFFFFFFFFULL, src + 3 * x);
                const __m512i idx = _mm512_cvtepu8_epi32(_mm512_castsi512_si128(_mm512_permutexvar_epi8(pick, bytes)));
                __m512 v[8];
                for (int i = 0; i < 8; i++)
                    v[i] = _mm512_permutex2var_ps(t[2 * i], idx, t[2 * i + 1]);
                const __mmask16 m5 = _mm512_test_epi32_mask(idx, b5), m6 = _mm512_test_epi32_mask(idx, b6),
                                m7 = _mm512_test_epi32_mask(idx, b7);
                for (int i = 0; i < 4; i++)
                    v[i] = _mm512_mask_blend_ps(m5, v[2 * i], v[2 * i + 1]);
                for (int i = 0; i < 2; i++)
                    v[i] = _mm512_mask_blend_ps(m6, v[2 * i], v[2 * i + 1]);
                _mm512_storeu_ps((float *)row + x, _mm512_mask_blend_ps(m7, v[0], v[1]));
            }
            for (; x < w; x++)
                ((float *)row)[x] = lut[src[3 * x + ch]];
        } else {
            const uint16_t *lut = o->lut[c];
            __m512i t[8];
            for (int i = 0; i < 8; i++)
                t[i] = _mm512_loadu_si512((const void *)(lut + 32 * i));
            /* bytes 3 k + ch, k < 32, of 96 bytes (two registers): vpermi2b indices 0..95 */
            uint8_t sel[64];
            for (int k = 0; k < 64; k++)
                sel[k] = (uint8_t)(k < 32 ? 3 * k + ch : 0);
            const __m512i pick = _mm512_loadu_si512((const void *)sel);
            const __m512i b6 = _mm512_set1_epi16(64), b7 = _mm512_set1_epi16(128);
            for (; x + 32 <= w; x += 32) {
                const __m512i lo = _mm512_loadu_si512((const void *)(src + 3 * x));
                const __m512i hi = _mm512_maskz_loadu_epi8(0x00000000FFFFFFFFULL, src + 3 * x + 64);
                const __m512i idx = _mm512_cvtepu8_epi16(_mm512_castsi512_si256(_mm512_permutex2var_epi8(lo, pick, hi)));
                __m512i v[4];
                for (int i = 0; i < 4; i++)
                    v[i] = _mm512_permutex2var_epi16(t[2 * i], idx, t[2 * i + 1]);
                const __mmask32 m6 = _mm512_test_epi16_mask(idx, b6), m7 = _mm512_test_epi16_mask(idx, b7);
                v[0] = _mm512_mask_blend_epi16(m6, v[0], v[1]);
                v[1] = _mm512_mask_blend_epi16(m6, v[2], v[3]);
                _mm512_storeu_si512((void *)((uint16_t *)row + x), _mm512_mask_blend_epi16(m7, v[0], v[1]));
            }
            for (; x < w; x++)
                ((uint16_t *)row)[x] = lut[src[3 * x + ch]];
        }
    }
}

/* Vertical pass, 32 bytes x 2 taps per step (the AVX2 scheme at 512 bits, vpdpwssd). */
TARGET_AVX512 static void v_avx512(const uint8_t *const *rows, ptrdiff_t n, const int32_t *coef,
                                   const int32_t *pairs, uint8_t *dst, ptrdiff_t len)
{
    const ptrdiff_t np = (n + 1) / 2;
    const __m512i round = _mm512_set1_epi32(ROUNDING);
    ptrdiff_t j = 0;
    for (; j + 32 <= len; j += 32) {
        __m512i h0 = _mm512_setzero_si512(), h1 = h0, l0 = round, l1 = round;
        for (ptrdiff_t k = 0; k < np; k++) {
            const __m512i a = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(rows[2 * k] + j)));
            const __m512i b = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(rows[2 * k + 1] + j)));
            const __m512i p0 = _mm512_unpacklo_epi16(a, b), p1 = _mm512_unpackhi_epi16(a, b);
            const __m512i ch = _mm512_set1_epi32(pairs[2 * k]), cl = _mm512_set1_epi32(pairs[2 * k + 1]);
            h0 = _mm512_dpwssd_epi32(h0, p0, ch);
            h1 = _mm512_dpwssd_epi32(h1, p1, ch);
            l0 = _mm512_dpwssd_epi32(l0, p0, cl);
            l1 = _mm512_dpwssd_epi32(l1, p1, cl);
        }
        const __m512i r0 = _mm512_srai_epi32(_mm512_add_epi32(_mm512_slli_epi32(h0, SPLIT_BITS), l0), PRECISION_BITS);
        const __m512i r1 = _mm512_srai_epi32(_mm512_add_epi32(_mm512_slli_epi32(h1, SPLIT_BITS), l1), PRECISION_BITS);
        /* packs undoes the in-block interleave: int16 x0..x31 in order, then unsigned saturation to bytes */
        _mm256_storeu_si256((__m256i *)(dst + j), _mm512_cvtusepi16_epi8(_mm512_packs_epi32(r0, r1)));
    }
    v_tail(rows, n, coef, dst, j, len); /* fewer than 32 bytes left */
}
#endif /* RN_X86 */

/* -- NEON (aarch64): int32 multiply-accumulate, p c < 2**31 needs no split ------------ */
#ifdef RN_NEON
/* Horizontal: per output pixel, groups of 8 taps loaded with vld3_u8 (24 bytes,
 * de-interleaved to b, g, r), widened to int32 and multiplied by the int32
 * coefficients (wide table); lanes added at the end. */
static void h2_neon(const uint8_t *s0, const uint8_t *s1, ptrdiff_t base, const Axis *h, ptrdiff_t xa,
                    ptrdiff_t xb, uint8_t *d0, uint8_t *d1)
{
    const int two = s1 != s0 || d1 != d0;
    const ptrdiff_t G = h->groups;
    for (ptrdiff_t x = xa; x < xb; x++) {
        const int32_t *cw = h->wide + x * G * 8;
        const ptrdiff_t off = (ptrdiff_t)h->start[x] * 3 - base;
        for (int r = 0; r <= two; r++) {
            const uint8_t *p = (r ? s1 : s0) + off;
            int32x4_t acc[3][2];
            for (int c = 0; c < 3; c++)
                acc[c][0] = acc[c][1] = vdupq_n_s32(0);
            for (ptrdiff_t g = 0; g < G; g++) {
                const uint8x8x3_t px = vld3_u8(p + 24 * g);
                const int32x4_t c0 = vld1q_s32(cw + 8 * g), c1 = vld1q_s32(cw + 8 * g + 4);
                for (int c = 0; c < 3; c++) {
                    const uint16x8_t w16 = vmovl_u8(px.val[c]);
                    acc[c][0] = vmlaq_s32(acc[c][0], vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(w16))), c0);
                    acc[c][1] = vmlaq_s32(acc[c][1], vreinterpretq_s32_u32(vmovl_u16(vget_high_u16(w16))), c1);
                }
            }
            uint8_t *d = (r ? d1 : d0) + 3 * x;
            for (int c = 0; c < 3; c++)
                d[c] = clip8(ROUNDING + vaddvq_s32(vaddq_s32(acc[c][0], acc[c][1])));
        }
    }
}

static void v_neon(const uint8_t *const *rows, ptrdiff_t n, const int32_t *coef, const int32_t *pairs,
                   uint8_t *dst, ptrdiff_t len)
{
    (void)pairs;
    ptrdiff_t j = 0;
    for (; j + 16 <= len; j += 16) {
        int32x4_t a0 = vdupq_n_s32(ROUNDING), a1 = a0, a2 = a0, a3 = a0;
        for (ptrdiff_t k = 0; k < n; k++) {
            const uint8x16_t px = vld1q_u8(rows[k] + j);
            const uint16x8_t lo = vmovl_u8(vget_low_u8(px)), hi = vmovl_high_u8(px);
            const int32_t c = coef[k];
            a0 = vmlaq_n_s32(a0, vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(lo))), c);
            a1 = vmlaq_n_s32(a1, vreinterpretq_s32_u32(vmovl_high_u16(lo)), c);
            a2 = vmlaq_n_s32(a2, vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(hi))), c);
            a3 = vmlaq_n_s32(a3, vreinterpretq_s32_u32(vmovl_high_u16(hi)), c);
        }
        /* >> 22, then saturate: int32 -> uint16 (negatives to 0), uint16 -> uint8 (to 255) */
        const uint16x8_t w0 = vcombine_u16(vqmovun_s32(vshrq_n_s32(a0, PRECISION_BITS)),
                                           vqmovun_s32(vshrq_n_s32(a1, PRECISION_BITS)));
        const uint16x8_t w1 = vcombine_u16(vqmovun_s32(vshrq_n_s32(a2, PRECISION_BITS)),
                                           vqmovun_s32(vshrq_n_s32(a3, PRECISION_BITS)));
        vst1q_u8(dst + j, vcombine_u8(vqmovn_u16(w0), vqmovn_u16(w1)));
    }
    v_tail(rows, n, coef, dst, j, len);
}
#endif /* RN_NEON */

/* -- kernel tables ------------------------------------------------------------------- */
struct Kernels {
    void (*h2)(const uint8_t *, const uint8_t *, ptrdiff_t, const Axis *, ptrdiff_t, ptrdiff_t, uint8_t *, uint8_t *);
    void (*v)(const uint8_t *const *, ptrdiff_t, const int32_t *, const int32_t *, uint8_t *, ptrdiff_t);
    void (*emit)(const uint8_t *, ptrdiff_t, const Out *, ptrdiff_t);
    int gs;     /* taps per horizontal group (0: the portable loop reads exactly its taps) */
    int h_load; /* bytes one horizontal group reads from 3 (start + gs g) */
    int split;  /* 1: int16 split tables (gs taps of h, then of l); 2: wide int32 (NEON) */
};

static const Kernels KERNELS[ISA_COUNT] = {
    [ISA_PORTABLE] = {h2_portable, v_portable, emit_portable, 0, 0, 0},
#ifdef RN_X86
    [ISA_AVX2] = {h2_avx2, v_avx2, emit_avx2, 4, 16, 1},
    [ISA_AVX512] = {h2_avx512, v_avx512, emit_avx512, 8, 32, 1},
#endif
#ifdef RN_NEON
    [ISA_NEON] = {h2_neon, v_neon, emit_portable, 8, 24, 2},
#endif
};

/* Whether this build has the kernels of ``isa`` and this CPU can run them. */
static int isa_runs(int isa)
{
    if (isa == ISA_PORTABLE)
        return 1;
#ifdef RN_X86
    __builtin_cpu_init();
    if (isa == ISA_AVX2)
        return __builtin_cpu_supports("avx2");
    if (isa == ISA_AVX512)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("avx512f") &&
               __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
               __builtin_cpu_supports("avx512vbmi") && __builtin_cpu_supports("avx512vnni");
#endif
#ifdef RN_NEON
    if (isa == ISA_NEON)
        return 1; /* Advanced SIMD is part of every AArch64 CPU */
#endif
    return 0;
}

static int isa_compiled(int isa)
{
    return KERNELS[isa].h2 != NULL;
}

/* -- plans ----------------------------------------------------------------------------- */
typedef struct {
    const int32_t *start, *size, *coef; /* Pillow's table of the whole resized axis */
    ptrdiff_t n_out, ksize;
} Table;

static void axis_free(Axis *a)
{
    free(a->start);
    free(a->size);
    free(a->coef);
    free(a->split);
    free(a->wide);
    free(a->pairs);
    memset(a, 0, sizeof(*a));
}

/* Copy outputs [o0, o1) of ``t`` and check the premises of the proof. NULL or an error message. */
static const char *axis_init(Axis *a, const Table *t, ptrdiff_t o0, ptrdiff_t o1, ptrdiff_t in_size)
{
    memset(a, 0, sizeof(*a));
    if (o0 < 0 || o1 > t->n_out || o0 >= o1)
        return "visible window outside the resized axis";
    if (t->ksize < 1)
        return "coefficient table has no taps";
    const ptrdiff_t n = o1 - o0, K = t->ksize;
    a->n = n;
    a->ksize = K;
    a->start = malloc((size_t)n * sizeof(int32_t));
    a->size = malloc((size_t)n * sizeof(int32_t));
    a->coef = malloc((size_t)n * (size_t)K * sizeof(int32_t));
    if (!a->start || !a->size || !a->coef)
        return "out of memory";
    for (ptrdiff_t i = 0; i < n; i++) {
        const int32_t s = t->start[o0 + i], z = t->size[o0 + i];
        const int32_t *c = t->coef + (o0 + i) * K;
        if (s < 0 || z < 1 || z > K || (ptrdiff_t)s + z > in_size)
            return "tap range outside the source axis";
        if (i > 0 && (s < a->start[i - 1] || s + z < a->start[i - 1] + a->size[i - 1]))
            return "tap ranges are not monotone";
        int64_t sum = 0;
        for (ptrdiff_t k = 0; k < K; k++) {
            if (c[k] < 0 || c[k] > COEF_MAX)
                return "coefficient outside [0, 2**22] (premise P1)";
            if (k >= z && c[k] != 0)
                return "non-zero coefficient past the taps";
            sum += c[k];
        }
        if (sum > COEF_SUM_MAX)
            return "coefficient sum above COEF_SUM_MAX (premise P2): the int32 accumulator could overflow";
        a->start[i] = s;
        a->size[i] = z;
        if (z > a->max_size)
            a->max_size = z;
        memcpy(a->coef + i * K, c, (size_t)K * sizeof(int32_t));
    }
    return NULL;
}

/* SIMD layouts of a horizontal axis whose rows hold ``row_pixels`` pixels. */
static const char *axis_horizontal(Axis *a, const Kernels *k, ptrdiff_t row_pixels)
{
    a->safe = a->n;
    if (k->gs == 0)
        return NULL;
    const ptrdiff_t gs = k->gs, G = (a->max_size + gs - 1) / gs;
    a->groups = G;
    if (k->split == 1) {
        a->split = calloc((size_t)(a->n * G * 2 * gs), sizeof(int16_t));
        if (!a->split)
            return "out of memory";
        for (ptrdiff_t i = 0; i < a->n; i++)
            for (ptrdiff_t t = 0; t < a->size[i]; t++) {
                const int32_t c = a->coef[i * a->ksize + t];
                int16_t *g = a->split + (i * G + t / gs) * 2 * gs;
                g[t % gs] = (int16_t)(c >> SPLIT_BITS);           /* h in [0, 2048] */
                g[gs + t % gs] = (int16_t)(c & ((1 << SPLIT_BITS) - 1)); /* l in [0, 2047] */
            }
    } else {
        a->wide = calloc((size_t)(a->n * G * gs), sizeof(int32_t));
        if (!a->wide)
            return "out of memory";
        for (ptrdiff_t i = 0; i < a->n; i++)
            for (ptrdiff_t t = 0; t < a->size[i]; t++)
                a->wide[i * G * gs + t] = a->coef[i * a->ksize + t];
    }
    /* outputs [0, safe) read 3 start + 3 gs (G - 1) + h_load bytes at most: inside the row */
    const ptrdiff_t row = 3 * row_pixels, reach = 3 * gs * (G - 1) + k->h_load;
    ptrdiff_t safe = 0;
    while (safe < a->n && 3 * (ptrdiff_t)a->start[safe] + reach <= row)
        safe++;
    a->safe = safe;
    return NULL;
}

static const char *axis_vertical(Axis *a)
{
    const ptrdiff_t P = (a->ksize + 1) / 2;
    a->pairs = calloc((size_t)(a->n * P * 2), sizeof(int32_t));
    if (!a->pairs)
        return "out of memory";
    for (ptrdiff_t i = 0; i < a->n; i++)
        for (ptrdiff_t t = 0; t < a->size[i]; t++) {
            const int32_t c = a->coef[i * a->ksize + t];
            const uint32_t hh = (uint32_t)(c >> SPLIT_BITS), ll = (uint32_t)(c & ((1 << SPLIT_BITS) - 1));
            const int shift = (t % 2) * 16; /* tap k in the low int16, k + 1 in the high one */
            int32_t *w = a->pairs + (i * P + t / 2) * 2;
            w[0] = (int32_t)((uint32_t)w[0] | (hh << shift));
            w[1] = (int32_t)((uint32_t)w[1] | (ll << shift));
        }
    return NULL;
}

static void plan_free(Plan *p)
{
    axis_free(&p->h);
    axis_free(&p->v);
}

/* Build a plan. ``h`` (``v``) is the horizontal (vertical) table when that pass runs.
 * Returns NULL or an error message (the plan is then freed). */
static const char *plan_init(Plan *p, int isa, int order, ptrdiff_t in_h, ptrdiff_t in_w, ptrdiff_t out_h,
                             ptrdiff_t out_w, ptrdiff_t rx0, ptrdiff_t rx1, ptrdiff_t ry0, ptrdiff_t ry1,
                             const Table *h, const Table *v)
{
    memset(p, 0, sizeof(*p));
    if (isa < 0 || isa >= ISA_COUNT || !isa_compiled(isa))
        return "instruction set not compiled into this build";
    if (in_h < 1 || in_w < 1 || out_h < 1 || out_w < 1)
        return "sizes must be positive";
    if (rx0 < 0 || rx1 > out_w || rx0 >= rx1 || ry0 < 0 || ry1 > out_h || ry0 >= ry1)
        return "visible window outside the resized image";
    if (in_w > (PTRDIFF_MAX / 4) / 3)
        return "frame too wide";
    const int has_h = order == ORDER_H || order == ORDER_HV || order == ORDER_VH;
    const int has_v = order == ORDER_V || order == ORDER_HV || order == ORDER_VH;
    if (order < ORDER_NONE || order > ORDER_VH)
        return "unknown pass order";
    if (has_h != (out_w != in_w) || has_v != (out_h != in_h))
        return "pass order does not match the sizes (a pass runs exactly when its axis changes size)";
    if (has_h != (h != NULL) || has_v != (v != NULL))
        return "a table is missing or not needed";
    p->isa = isa;
    p->order = order;
    p->k = &KERNELS[isa];
    p->in_h = in_h;
    p->in_w = in_w;
    p->rx0 = rx0;
    p->rx1 = rx1;
    p->ry0 = ry0;
    p->ry1 = ry1;
    const char *err = NULL;
    if (has_h && h->n_out != out_w)
        err = "horizontal table size differs from the output width";
    if (!err && has_v && v->n_out != out_h)
        err = "vertical table size differs from the output height";
    if (!err && has_h)
        err = axis_init(&p->h, h, rx0, rx1, in_w);
    if (!err && has_h)
        err = axis_horizontal(&p->h, p->k, in_w);
    if (!err && has_v)
        err = axis_init(&p->v, v, ry0, ry1, in_h);
    if (!err && has_v)
        err = axis_vertical(&p->v);
    if (!err && order == ORDER_HV)
        p->ring = p->v.max_size + 1; /* one row of look-ahead: the horizontal pass makes rows in pairs */
    if (err)
        plan_free(p);
    return err;
}

/* -- running a band ---------------------------------------------------------------------- */
static size_t round_up(size_t n)
{
    return (n + 63) & ~(size_t)63;
}

/* Horizontal pass of one or two rows of ``in_w`` pixels: the safe outputs in
 * place, the rest from zero-padded copies of the rows' tails (t0, t1). */
static void h_pass(const Plan *p, const uint8_t *s0, const uint8_t *s1, uint8_t *d0, uint8_t *d1, uint8_t *t0,
                   uint8_t *t1, size_t tail_bytes)
{
    const Axis *h = &p->h;
    if (h->safe > 0)
        p->k->h2(s0, s1, 0, h, 0, h->safe, d0, d1);
    if (h->safe < h->n) {
        const ptrdiff_t off = 3 * (ptrdiff_t)h->start[h->safe], len = 3 * p->in_w - off;
        memcpy(t0, s0 + off, (size_t)len);
        memset(t0 + len, 0, tail_bytes - (size_t)len);
        if (s1 != s0) {
            memcpy(t1, s1 + off, (size_t)len);
            memset(t1 + len, 0, tail_bytes - (size_t)len);
        } else {
            t1 = t0;
        }
        p->k->h2(t0, t1, off, h, h->safe, h->n, d0, d1);
    }
}

/* Fill rows[0 .. n] for output row i of the vertical axis; rows[n] repeats the last row
 * when n is odd (its coefficient is 0 in the pair table). */
static ptrdiff_t v_rows(const Axis *v, ptrdiff_t i, const uint8_t **rows, const uint8_t *(*row_of)(const void *, ptrdiff_t),
                        const void *ctx)
{
    const ptrdiff_t n = v->size[i], s = v->start[i];
    for (ptrdiff_t k = 0; k < n; k++)
        rows[k] = row_of(ctx, s + k);
    rows[n] = rows[n - 1];
    return n;
}

typedef struct {
    const uint8_t *base;
    ptrdiff_t stride;
    ptrdiff_t col;
} FrameRows;

static const uint8_t *frame_row(const void *ctx, ptrdiff_t y)
{
    const FrameRows *f = ctx;
    return f->base + y * f->stride + f->col;
}

typedef struct {
    uint8_t *base;
    ptrdiff_t stride, ring;
} RingRows;

static const uint8_t *ring_row(const void *ctx, ptrdiff_t y)
{
    const RingRows *r = ctx;
    return r->base + (y % r->ring) * r->stride;
}

/* Rows [y0, y1) of the visible window (resized coordinates). 0, or -1 when out of memory. */
static int plan_run(const Plan *p, const uint8_t *frame, ptrdiff_t stride, const Out *o, ptrdiff_t y0, ptrdiff_t y1)
{
    const Kernels *k = p->k;
    const ptrdiff_t vis_w = p->rx1 - p->rx0, in_row = 3 * p->in_w;
    const size_t out_row = round_up((size_t)(3 * vis_w) + PAD);
    const size_t mid_row = round_up((size_t)in_row + PAD);
    const size_t tail_bytes = round_up((size_t)in_row + (size_t)(3 * k->gs) * (size_t)(p->h.groups + 1) + PAD);
    const ptrdiff_t ksize = p->v.ksize > 0 ? p->v.ksize : 1;
    size_t total = 2 * out_row + 2 * tail_bytes + round_up((size_t)(ksize + 2) * sizeof(uint8_t *));
    if (p->order == ORDER_VH)
        total += 2 * mid_row;
    if (p->order == ORDER_HV)
        total += (size_t)p->ring * out_row;
    uint8_t *mem = malloc(total + 64);
    if (!mem)
        return -1;
    uint8_t *cur = (uint8_t *)(((uintptr_t)mem + 63) & ~(uintptr_t)63);
    uint8_t *o0 = cur, *o1 = cur + out_row;
    cur += 2 * out_row;
    uint8_t *t0 = cur, *t1 = cur + tail_bytes;
    cur += 2 * tail_bytes;
    const uint8_t **rows = (const uint8_t **)cur;
    cur += round_up((size_t)(ksize + 2) * sizeof(uint8_t *));
    const ptrdiff_t col = 3 * p->rx0;

    switch (p->order) {
    case ORDER_NONE:
        for (ptrdiff_t y = y0; y < y1; y++)
            k->emit(frame + y * stride + col, vis_w, o, y - p->ry0);
        break;
    case ORDER_H:
        for (ptrdiff_t y = y0; y < y1; y += 2) {
            const int two = y + 1 < y1;
            const uint8_t *s0 = frame + y * stride, *s1 = two ? s0 + stride : s0;
            h_pass(p, s0, s1, o0, two ? o1 : o0, t0, t1, tail_bytes);
            k->emit(o0, vis_w, o, y - p->ry0);
            if (two)
                k->emit(o1, vis_w, o, y + 1 - p->ry0);
        }
        break;
    case ORDER_V: {
        const FrameRows f = {frame, stride, col};
        for (ptrdiff_t y = y0; y < y1; y++) {
            const ptrdiff_t i = y - p->ry0, n = v_rows(&p->v, i, rows, frame_row, &f);
            k->v(rows, n, p->v.coef + i * p->v.ksize, p->v.pairs + i * ((p->v.ksize + 1) / 2) * 2, o0, 3 * vis_w);
            k->emit(o0, vis_w, o, i);
        }
        break;
    }
    case ORDER_HV: {
        RingRows ring = {cur, (ptrdiff_t)out_row, p->ring};
        ptrdiff_t next = p->v.start[y0 - p->ry0]; /* the next input row the horizontal pass makes */
        const ptrdiff_t last = p->v.start[y1 - 1 - p->ry0] + p->v.size[y1 - 1 - p->ry0]; /* rows this band needs */
        for (ptrdiff_t y = y0; y < y1; y++) {
            const ptrdiff_t i = y - p->ry0, first = p->v.start[i], end = first + p->v.size[i];
            if (next < first)
                next = first;
            /* Rows are made in pairs, so at most row ``end`` is made ahead of need; the ring holds
             * ring = max size + 1 rows, i.e. [end + 1 - ring, end] includes [first, end]: rows
             * before ``first`` are never needed again (starts are non-decreasing). */
            while (next < end) {
                const int two = next + 1 < last;
                uint8_t *d0 = (uint8_t *)ring_row(&ring, next), *d1 = two ? (uint8_t *)ring_row(&ring, next + 1) : d0;
                const uint8_t *s0 = frame + next * stride, *s1 = two ? s0 + stride : s0;
                h_pass(p, s0, s1, d0, d1, t0, t1, tail_bytes);
                next += two ? 2 : 1;
            }
            const ptrdiff_t n = v_rows(&p->v, i, rows, ring_row, &ring);
            k->v(rows, n, p->v.coef + i * p->v.ksize, p->v.pairs + i * ((p->v.ksize + 1) / 2) * 2, o0, 3 * vis_w);
            k->emit(o0, vis_w, o, i);
        }
        break;
    }
    case ORDER_VH: {
        uint8_t *m0 = cur, *m1 = cur + mid_row;
        const FrameRows f = {frame, stride, 0};
        for (ptrdiff_t y = y0; y < y1; y += 2) {
            const int two = y + 1 < y1;
            for (int r = 0; r <= two; r++) {
                const ptrdiff_t i = y + r - p->ry0, n = v_rows(&p->v, i, rows, frame_row, &f);
                k->v(rows, n, p->v.coef + i * p->v.ksize, p->v.pairs + i * ((p->v.ksize + 1) / 2) * 2, r ? m1 : m0,
                     in_row);
            }
            h_pass(p, m0, two ? m1 : m0, o0, two ? o1 : o0, t0, t1, tail_bytes);
            k->emit(o0, vis_w, o, y - p->ry0);
            if (two)
                k->emit(o1, vis_w, o, y + 1 - p->ry0);
        }
        break;
    }
    }
    free(mem);
    return 0;
}

#ifndef RESIZE_NATIVE_NO_PYTHON
/* -- Python glue ---------------------------------------------------------------------- */
#define CAPSULE_NAME "inference_accel.preprocess._resize_native.Plan"

static void capsule_free(PyObject *capsule)
{
    Plan *p = PyCapsule_GetPointer(capsule, CAPSULE_NAME);
    if (p) {
        plan_free(p);
        PyMem_RawFree(p);
    }
}

/* An int32 C-contiguous buffer of ``count`` items (count < 0: any length, returned in *count). */
static int int32_buffer(PyObject *obj, Py_buffer *view, const char *name, Py_ssize_t count)
{
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        return -1;
    const char *f = view->format ? view->format : "B";
    while (*f == '@' || *f == '=' || *f == '<')
        f++;
    if (view->itemsize != 4 || !(f[0] == 'i' || f[0] == 'l') || f[1] != '\0' ||
        (count >= 0 && view->len != 4 * count)) {
        PyErr_Format(PyExc_ValueError, "%s: expected int32 data of %zd items, got %zd bytes of format '%s'", name,
                     count, view->len, view->format ? view->format : "?");
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

static int parse_isa(PyObject *name)
{
    for (int i = 0; i < ISA_COUNT; i++)
        if (PyUnicode_CompareWithASCIIString(name, ISA_NAMES[i]) == 0)
            return i;
    return -1;
}

/* (start, size, coef, ksize) -> Table; buffers released by the caller. */
static int parse_table(PyObject *tup, Table *t, Py_buffer views[3], Py_ssize_t n_out, const char *axis)
{
    PyObject *start, *size, *coef;
    Py_ssize_t ksize;
    if (!PyArg_ParseTuple(tup, "OOOn", &start, &size, &coef, &ksize))
        return -1;
    if (ksize < 1) {
        PyErr_Format(PyExc_ValueError, "%s table: ksize must be positive", axis);
        return -1;
    }
    if (int32_buffer(start, &views[0], "start", n_out) < 0)
        return -1;
    if (int32_buffer(size, &views[1], "size", n_out) < 0) {
        PyBuffer_Release(&views[0]);
        return -1;
    }
    if (int32_buffer(coef, &views[2], "coef", n_out * ksize) < 0) {
        PyBuffer_Release(&views[0]);
        PyBuffer_Release(&views[1]);
        return -1;
    }
    t->start = views[0].buf;
    t->size = views[1].buf;
    t->coef = views[2].buf;
    t->n_out = n_out;
    t->ksize = ksize;
    return 0;
}

static PyObject *py_make_plan(PyObject *self, PyObject *args)
{
    PyObject *isa_name, *order_name, *htab, *vtab;
    Py_ssize_t in_h, in_w, out_h, out_w, rx0, rx1, ry0, ry1;
    if (!PyArg_ParseTuple(args, "UUnnnnnnnnOO", &isa_name, &order_name, &in_h, &in_w, &out_h, &out_w, &rx0, &rx1,
                          &ry0, &ry1, &htab, &vtab))
        return NULL;
    const int isa = parse_isa(isa_name);
    if (isa < 0) {
        PyErr_Format(PyExc_ValueError, "unknown instruction set %R", isa_name);
        return NULL;
    }
    if (!isa_runs(isa) || !isa_compiled(isa)) {
        PyErr_Format(PyExc_ValueError, "instruction set %R is not available in this build on this CPU", isa_name);
        return NULL;
    }
    int order = -1;
    const char *orders[] = {"", "h", "v", "hv", "vh"};
    for (int i = 0; i < 5; i++)
        if (PyUnicode_CompareWithASCIIString(order_name, orders[i]) == 0)
            order = i;
    if (order < 0) {
        PyErr_Format(PyExc_ValueError, "unknown pass order %R (expected '', 'h', 'v', 'hv' or 'vh')", order_name);
        return NULL;
    }
    Table ht, vt;
    Py_buffer hv[3], vv[3];
    int have_h = 0, have_v = 0;
    PyObject *result = NULL;
    if (htab != Py_None) {
        if (parse_table(htab, &ht, hv, out_w, "horizontal") < 0)
            return NULL;
        have_h = 1;
    }
    if (vtab != Py_None) {
        if (parse_table(vtab, &vt, vv, out_h, "vertical") < 0)
            goto done;
        have_v = 1;
    }
    Plan *p = PyMem_RawMalloc(sizeof(Plan));
    if (!p) {
        PyErr_NoMemory();
        goto done;
    }
    const char *err = plan_init(p, isa, order, in_h, in_w, out_h, out_w, rx0, rx1, ry0, ry1, have_h ? &ht : NULL,
                                have_v ? &vt : NULL);
    if (err) {
        PyMem_RawFree(p);
        PyErr_SetString(PyExc_ValueError, err);
        goto done;
    }
    result = PyCapsule_New(p, CAPSULE_NAME, capsule_free);
    if (!result) {
        plan_free(p);
        PyMem_RawFree(p);
    }
done:
    for (int i = 0; i < 3; i++) {
        if (have_h)
            PyBuffer_Release(&hv[i]);
        if (have_v)
            PyBuffer_Release(&vv[i]);
    }
    return result;
}

static char format_char(const Py_buffer *view)
{
    const char *f = view->format ? view->format : "B";
    while (*f == '@' || *f == '=' || *f == '<')
        f++;
    return f[1] == '\0' ? f[0] : '?';
}

/* run(plan, frame, out, lut, swap, y0, y1[, counter, chunk]) -> chunks done.
 * Without a counter: rows [y0, y1) in one go. With one (a writable 8-byte
 * int64 buffer shared by the threads of one frame, starting at 0): chunks of
 * ``chunk`` rows, chunk k = [y0 + k chunk, ...), each claimed by an atomic
 * increment, until none is left. Every thread of a frame enters here once and
 * holds the GIL only to check its arguments, so a thread that starts late or is
 * preempted simply claims fewer chunks. */
static PyObject *py_run(PyObject *self, PyObject *args)
{
    PyObject *capsule, *o_frame, *o_out, *o_lut, *o_counter = Py_None;
    int swap;
    Py_ssize_t y0, y1, chunk = 0;
    if (!PyArg_ParseTuple(args, "OOOOpnn|On", &capsule, &o_frame, &o_out, &o_lut, &swap, &y0, &y1, &o_counter, &chunk))
        return NULL;
    const Plan *p = PyCapsule_GetPointer(capsule, CAPSULE_NAME);
    if (!p)
        return NULL;
    if (y0 < p->ry0 || y1 > p->ry1 || y0 > y1) {
        PyErr_Format(PyExc_ValueError, "rows [%zd, %zd) outside the plan's window [%zd, %zd)", y0, y1, p->ry0, p->ry1);
        return NULL;
    }
    if (o_counter != Py_None && chunk < 1) {
        PyErr_SetString(PyExc_ValueError, "chunk must be positive with a counter");
        return NULL;
    }
    Py_buffer fv, ov, lv, cv;
    int have_counter = 0;
    if (o_counter != Py_None) {
        if (PyObject_GetBuffer(o_counter, &cv, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0)
            return NULL;
        if (cv.len != 8 || ((uintptr_t)cv.buf & 7)) {
            PyBuffer_Release(&cv);
            PyErr_SetString(PyExc_ValueError, "counter must be one aligned int64");
            return NULL;
        }
        have_counter = 1;
    }
    if (PyObject_GetBuffer(o_frame, &fv, PyBUF_STRIDES | PyBUF_FORMAT) < 0) {
        if (have_counter)
            PyBuffer_Release(&cv);
        return NULL;
    }
    PyObject *result = NULL;
    int have_out = 0, have_lut = 0;
    if (fv.ndim != 3 || fv.shape[0] != p->in_h || fv.shape[1] != p->in_w || fv.shape[2] != 3 || fv.itemsize != 1 ||
        format_char(&fv) != 'B' || fv.strides[2] != 1 || fv.strides[1] != 3 || fv.strides[0] < 3 * p->in_w) {
        PyErr_Format(PyExc_ValueError,
                     "frame must be uint8 (%zd, %zd, 3) with strides (>= %zd, 3, 1)", p->in_h, p->in_w, 3 * p->in_w);
        goto done;
    }
    if (PyObject_GetBuffer(o_out, &ov, PyBUF_STRIDES | PyBUF_FORMAT | PyBUF_WRITABLE) < 0)
        goto done;
    have_out = 1;
    const Py_ssize_t rows = p->ry1 - p->ry0, cols = p->rx1 - p->rx0;
    Out o;
    memset(&o, 0, sizeof(o));
    uint16_t lut16[3][256 + 8];
    if (o_lut == Py_None) {
        if (ov.ndim != 3 || ov.shape[0] != rows || ov.shape[1] != cols || ov.shape[2] != 3 || ov.itemsize != 1 ||
            format_char(&ov) != 'B' || ov.strides[2] != 1 || ov.strides[1] != 3) {
            PyErr_Format(PyExc_ValueError, "out must be uint8 (%zd, %zd, 3) with strides (any, 3, 1)", rows, cols);
            goto done;
        }
        o.kind = OUT_U8;
        o.base = ov.buf;
        o.s_row = ov.strides[0];
    } else {
        const char fc = format_char(&ov);
        if (ov.ndim != 3 || ov.shape[0] != 3 || ov.shape[1] != rows || ov.shape[2] != cols ||
            !((fc == 'f' && ov.itemsize == 4) || (fc == 'e' && ov.itemsize == 2)) || ov.strides[2] != ov.itemsize) {
            PyErr_Format(PyExc_ValueError,
                         "out must be float32 or float16 (3, %zd, %zd) with unit stride along the last axis", rows, cols);
            goto done;
        }
        if (PyObject_GetBuffer(o_lut, &lv, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
            goto done;
        have_lut = 1;
        if (format_char(&lv) != fc || lv.itemsize != ov.itemsize || lv.len != 3 * 256 * lv.itemsize) {
            PyErr_SetString(PyExc_ValueError, "lut must be (3, 256) of out's dtype");
            goto done;
        }
        o.kind = fc == 'f' ? OUT_F32 : OUT_F16;
        o.base = ov.buf;
        o.s_plane = ov.strides[0];
        o.s_row = ov.strides[1];
        for (int c = 0; c < 3; c++) {
            o.ch[c] = swap ? 2 - c : c;
            if (o.kind == OUT_F32) {
                o.lut[c] = (const float *)lv.buf + 256 * c;
            } else { /* a copy with slack: the gather reads 4 bytes at entry v */
                memcpy(lut16[c], (const uint16_t *)lv.buf + 256 * c, 256 * sizeof(uint16_t));
                memset(lut16[c] + 256, 0, 8 * sizeof(uint16_t));
                o.lut[c] = lut16[c];
            }
        }
    }
    int status = 0;
    Py_ssize_t done_chunks = 0;
    if (y1 > y0) {
        Py_BEGIN_ALLOW_THREADS
        if (!have_counter) {
            status = plan_run(p, fv.buf, fv.strides[0], &o, y0, y1);
            done_chunks = 1;
        } else {
            for (;;) {
                const int64_t k = CLAIM((int64_t *)cv.buf);
                if (k >= (y1 - y0 + chunk - 1) / chunk)
                    break;
                const Py_ssize_t a = y0 + (Py_ssize_t)k * chunk, b = a + chunk < y1 ? a + chunk : y1;
                status = plan_run(p, fv.buf, fv.strides[0], &o, a, b);
                if (status < 0)
                    break;
                done_chunks++;
            }
        }
        Py_END_ALLOW_THREADS
    }
    if (status < 0)
        PyErr_NoMemory();
    else
        result = PyLong_FromSsize_t(done_chunks);
done:
    if (have_counter)
        PyBuffer_Release(&cv);
    if (have_lut)
        PyBuffer_Release(&lv);
    if (have_out)
        PyBuffer_Release(&ov);
    PyBuffer_Release(&fv);
    return result;
}

static PyObject *py_isas(PyObject *self, PyObject *noargs)
{
    PyObject *list = PyList_New(0);
    if (!list)
        return NULL;
    for (int i = 0; i < ISA_COUNT; i++) {
        if (!isa_compiled(i) || !isa_runs(i))
            continue;
        PyObject *s = PyUnicode_FromString(ISA_NAMES[i]);
        if (!s || PyList_Append(list, s) < 0) {
            Py_XDECREF(s);
            Py_DECREF(list);
            return NULL;
        }
        Py_DECREF(s);
    }
    PyObject *t = PyList_AsTuple(list);
    Py_DECREF(list);
    return t;
}

static PyObject *py_compiled_isas(PyObject *self, PyObject *noargs)
{
    PyObject *list = PyList_New(0);
    if (!list)
        return NULL;
    for (int i = 0; i < ISA_COUNT; i++) {
        if (!isa_compiled(i))
            continue;
        PyObject *s = PyUnicode_FromString(ISA_NAMES[i]);
        if (!s || PyList_Append(list, s) < 0) {
            Py_XDECREF(s);
            Py_DECREF(list);
            return NULL;
        }
        Py_DECREF(s);
    }
    PyObject *t = PyList_AsTuple(list);
    Py_DECREF(list);
    return t;
}

static PyObject *py_plan_info(PyObject *self, PyObject *capsule)
{
    const Plan *p = PyCapsule_GetPointer(capsule, CAPSULE_NAME);
    if (!p)
        return NULL;
    return Py_BuildValue("{s:s,s:i,s:n,s:n,s:n,s:n,s:n}", "isa", ISA_NAMES[p->isa], "order", p->order, "ring",
                         (Py_ssize_t)p->ring, "h_groups", (Py_ssize_t)p->h.groups, "h_safe", (Py_ssize_t)p->h.safe,
                         "h_outputs", (Py_ssize_t)p->h.n, "v_outputs", (Py_ssize_t)p->v.n);
}

static PyMethodDef methods[] = {
    {"make_plan", py_make_plan, METH_VARARGS,
     "make_plan(isa, order, in_h, in_w, out_h, out_w, rx0, rx1, ry0, ry1, htable, vtable) -> plan\n"
     "table: (start int32 (n,), size int32 (n,), coef int32 (n, ksize), ksize) or None"},
    {"run", py_run, METH_VARARGS,
     "run(plan, frame, out, lut, swap, y0, y1[, counter, chunk]) -> chunks done: rows [y0, y1) of the\n"
     "window, GIL released; with a shared int64 counter, chunks of ``chunk`` rows claimed atomically"},
    {"isas", py_isas, METH_NOARGS, "instruction sets this build can run on this CPU, portable first"},
    {"compiled_isas", py_compiled_isas, METH_NOARGS, "instruction sets compiled into this build"},
    {"plan_info", py_plan_info, METH_O, "a plan's instruction set, pass order and table shapes"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_resize_native",
    "Pillow-exact BILINEAR resize fused with normalisation (portable C, AVX2, AVX-512, NEON).", -1, methods,
};

PyMODINIT_FUNC PyInit__resize_native(void)
{
    PyObject *m = PyModule_Create(&module);
    if (!m)
        return NULL;
    if (PyModule_AddIntConstant(m, "PRECISION_BITS", PRECISION_BITS) < 0 ||
        PyModule_AddIntConstant(m, "COEF_MAX", COEF_MAX) < 0 ||
        PyModule_AddIntConstant(m, "COEF_SUM_MAX", COEF_SUM_MAX) < 0 ||
        PyModule_AddIntConstant(m, "SPLIT_BITS", SPLIT_BITS) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
#endif /* RESIZE_NATIVE_NO_PYTHON */
