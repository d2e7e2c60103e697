/*
 * inference-models' mask upsampling + threshold, exactly, straight to a dense
 * canvas or to COCO RLE strings: the compiled twin of ``stock_masks``.
 *
 * What the stock code computes (torch's CPU ``_upsample_bilinear2d_aa`` under
 * ``torchvision.transforms.functional.resize(BILINEAR, antialias=True)``, then
 * ``> 0``; see stock_masks.py for the weight tables and how the installed torch
 * is checked): two separable float32 passes, the width pass first.  Each output
 * of a pass is a chain over its taps in tap order,
 *
 *     acc = v[t0] * w0;  acc = fma(v[t1], w1, acc);  ...        (FMA builds)
 *     acc = v[t0] * w0;  acc = acc + v[t1] * w1;     ...        (plain builds)
 *
 * every operation rounded to float32 (the fused one once).  A pass whose size
 * is unchanged is skipped by torch; here it is one tap of weight 1, and
 * ``v * 1 == v`` exactly, so the result is the same.  Which chain the installed
 * torch uses is decided in Python (``stock_masks.kernel_check``) and passed in
 * as ``fma``.  This file is compiled with -ffp-contract=off: the only fused
 * operations are the fmaf() calls (correctly rounded in C99: the FMA
 * instruction in the ``avx2,fma`` build chosen at run time, libm otherwise).
 *
 * Per mask:
 *   1. the width pass, exactly, over every source row: ``I`` (h x W floats);
 *   2. cells: output rows (columns) that share their source taps form a group;
 *      a pixel whose height-pass taps are all ``<= 0`` is ``<= 0`` (weights are
 *      ``>= 0``, every rounding keeps the sign), and one whose taps are all
 *      ``> FLOOR`` (1e-30) is ``> 0`` (some weight is ``>= 1/K``, so one
 *      product is a normal positive float and the rest add non-negative
 *      values).  Whole cells decided that way are written (``memset``) or
 *      emitted (one RLE run) without arithmetic;
 *   3. every other pixel runs the stock height-pass chain itself on the exact
 *      ``I`` values and is compared with 0, so every pixel equals the stock one.
 *
 * Dense (``threshold_dense``): row-major, straight into the caller's (N, CH, CW)
 * byte canvas (a bool array's storage), the mask at (off_y, off_x), every other
 * byte 0: each byte is written once (its pages faulted in first, in one call).  The cells of step 2 are (row group,
 * column group) blocks, classified from the width-pass values of their tap rows.
 *
 * RLE (``threshold_rle``): column-major (COCO order) over the canvas, each column
 * group by group from the exact width-pass values of that column, runs merged
 * across cells and columns, then compressed with COCO's string code
 * (pycocotools' ``rleToString``: deltas against the count two back from the
 * fourth on, 5-bit groups with a continuation bit, + 48).  Returns bytes per mask.
 *
 * Axis tables (``axis`` tuples, from ``stock_masks.axis_plan``), all C-contiguous:
 *   first, length  int64 (G,)     the output groups (consecutive, covering [0, out))
 *   taps           int64 (G, K)   each group's source indices (0 <= tap < in)
 *   weights        float32 (K, out) each output's weights, tap-major
 * The masks run with the GIL released; the caller splits them over threads.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#endif

/* A pixel whose height-pass taps (width-pass values) all lie in (FLOOR, BIG] is
 * positive: some weight is >= 1/K >= 1/8, so one product is >= FLOOR / 8, a
 * normal float, and the rest of the chain adds non-negative finite values.
 * A width-pass value whose source taps all lie in (SOURCE_FLOOR, BIG] lies in
 * (FLOOR, BIG * (1 + 2**-20)] by the same argument (SOURCE_FLOOR / 8 > FLOOR);
 * BIG keeps every sum far from overflow. */
#if defined(__GNUC__) || defined(__clang__)
#define ALWAYS_INLINE static inline __attribute__((always_inline))
#else
#define ALWAYS_INLINE static __forceinline
#endif

#define FLOOR 1e-30f
#define SOURCE_FLOOR 1e-28f
#define BIG 1.2676506e30f /* 2**100 */
#define MAX_TAPS 8

enum { NEG = 0, POS = 1, MIX = 2 };

typedef struct {
    const int64_t *first, *length, *taps;
    const float *weights; /* (k, out) */
    Py_ssize_t in, out, groups, k;
    /* k == 2 and, inside every group, weights[0] never increases and weights[1]
     * never decreases: the chain is then monotone along the group (see rle_column) */
    int monotone;
} Axis;

typedef struct {
    const float *values; /* (n, h, w) */
    Py_ssize_t h, w;
    Axis y, x;
    Py_ssize_t canvas_h, canvas_w, off_y, off_x;
} Job;

/* Per-thread scratch, sized from the job. */
typedef struct {
    uint8_t *row_class; /* (h, Gx): the class of the width-pass values of source row r over column group gx */
    uint8_t *cell;      /* (Gy, Gx): the class of every output cell */
    uint8_t *needed;    /* (h, Gx): width-pass values needed (dense) */
    float *I;           /* (h, W): the width pass (dense) */
    float *vt;          /* (w, h): the source, transposed (RLE) */
    float *column;      /* (h,): one output column's width-pass values (RLE) */
    int64_t *runs;      /* 3 * (max(Gx, Gy) + 1): merged cells (start, stop, class) */
} Scratch;

static void scratch_free(Scratch *s)
{
    free(s->row_class);
    free(s->cell);
    free(s->needed);
    free(s->I);
    free(s->vt);
    free(s->column);
    free(s->runs);
}

static int scratch_alloc(Scratch *s, const Job *jb)
{
    const size_t h = (size_t)jb->h, gx = (size_t)jb->x.groups, gy = (size_t)jb->y.groups;
    const size_t g = gx > gy ? gx : gy;
    s->row_class = malloc(h * gx);
    s->cell = malloc(gy * gx);
    s->needed = malloc(h * gx);
    s->I = malloc(h * (size_t)jb->x.out * sizeof(float));
    s->vt = malloc(h * (size_t)jb->w * sizeof(float));
    s->column = malloc(h * sizeof(float));
    s->runs = malloc(3 * (g + 1) * sizeof(int64_t));
    if (s->row_class && s->cell && s->needed && s->I && s->vt && s->column && s->runs)
        return 0;
    scratch_free(s);
    return -1;
}

/* One step of the stock chain. ``fma`` is a compile-time constant at every call
 * (the kernels below are instantiated per mode), so the branch disappears. */
ALWAYS_INLINE float chain_step(float acc, float v, float w, const int fma)
{
    if (fma)
        return fmaf(v, w, acc);
    return acc + v * w;
}

static inline int class_of(float v, float floor)
{
    if (v <= 0.0f)
        return NEG;
    return (v > floor && v <= BIG) ? POS : MIX;
}

static inline int combine(int a, int b) { return a == b ? a : MIX; }

/* The classes of every (source row, column group) from the source taps, then of
 * every cell (row group, column group) from its tap rows. */
static void classify(const Job *jb, const float *v, Scratch *s)
{
    const Axis *ay = &jb->y, *ax = &jb->x;
    const Py_ssize_t gx_n = ax->groups;
    for (Py_ssize_t r = 0; r < jb->h; r++) {
        const float *src = v + r * jb->w;
        for (Py_ssize_t gx = 0; gx < gx_n; gx++) {
            const int64_t *t = ax->taps + gx * ax->k;
            int c = class_of(src[t[0]], SOURCE_FLOOR);
            for (Py_ssize_t j = 1; j < ax->k; j++)
                c = combine(c, class_of(src[t[j]], SOURCE_FLOOR));
            s->row_class[r * gx_n + gx] = (uint8_t)c;
        }
    }
    for (Py_ssize_t gy = 0; gy < ay->groups; gy++) {
        const int64_t *t = ay->taps + gy * ay->k;
        uint8_t *cell = s->cell + gy * gx_n;
        memcpy(cell, s->row_class + t[0] * gx_n, (size_t)gx_n);
        for (Py_ssize_t j = 1; j < ay->k; j++) {
            const uint8_t *other = s->row_class + t[j] * gx_n;
            for (Py_ssize_t gx = 0; gx < gx_n; gx++)
                cell[gx] = (uint8_t)combine(cell[gx], other[gx]);
        }
    }
}

/* Adjacent cells of one class merged: (first group, end group, class) over a line of cells. */
static Py_ssize_t merge_cells(const uint8_t *cls, Py_ssize_t stride, Py_ssize_t count, int64_t *runs)
{
    Py_ssize_t n = 0;
    for (Py_ssize_t g = 0; g < count; g++) {
        const int64_t c = cls[g * stride];
        if (n > 0 && runs[3 * (n - 1) + 2] == c) {
            runs[3 * (n - 1) + 1] = g + 1;
        } else {
            runs[3 * n] = g;
            runs[3 * n + 1] = g + 1;
            runs[3 * n + 2] = c;
            n++;
        }
    }
    return n;
}

/* The outputs [start, stop) of the groups [g0, g1) of an axis. */
static inline Py_ssize_t group_start(const Axis *ax, int64_t g0) { return ax->first[g0]; }
static inline Py_ssize_t group_stop(const Axis *ax, int64_t g1) { return ax->first[g1 - 1] + ax->length[g1 - 1]; }

/* -- dense --------------------------------------------------------------------------- */

/* The width pass I[r][x], exactly, where a mixed cell needs it. */
ALWAYS_INLINE void width_pass_rows(const Job *jb, const float *v, Scratch *s,
                                                                  const int fma)
{
    const Axis *ay = &jb->y, *ax = &jb->x;
    const Py_ssize_t ow = ax->out, k = ax->k, gx_n = ax->groups;
    memset(s->needed, 0, (size_t)(jb->h * gx_n));
    for (Py_ssize_t gy = 0; gy < ay->groups; gy++)
        for (Py_ssize_t gx = 0; gx < gx_n; gx++)
            if (s->cell[gy * gx_n + gx] == MIX)
                for (Py_ssize_t j = 0; j < ay->k; j++)
                    s->needed[ay->taps[gy * ay->k + j] * gx_n + gx] = 1;
    const float *w0 = ax->weights, *w1 = ax->weights + ow;
    for (Py_ssize_t r = 0; r < jb->h; r++) {
        const float *src = v + r * jb->w;
        float *row = s->I + r * ow;
        for (Py_ssize_t gx = 0; gx < gx_n; gx++) {
            if (!s->needed[r * gx_n + gx])
                continue;
            const Py_ssize_t x0 = ax->first[gx], x1 = x0 + ax->length[gx];
            const int64_t *t = ax->taps + gx * k;
            const float a0 = src[t[0]];
            if (k == 2) {
                const float a1 = src[t[1]];
                for (Py_ssize_t x = x0; x < x1; x++)
                    row[x] = chain_step(a0 * w0[x], a1, w1[x], fma);
                continue;
            }
            for (Py_ssize_t x = x0; x < x1; x++)
                row[x] = a0 * w0[x];
            for (Py_ssize_t j = 1; j < k; j++) {
                const float aj = src[t[j]];
                const float *wj = ax->weights + j * ow;
                for (Py_ssize_t x = x0; x < x1; x++)
                    row[x] = chain_step(row[x], aj, wj[x], fma);
            }
        }
    }
}

/* Height pass of one output row over [x0, x1): the stock chain, > 0. */
ALWAYS_INLINE void row_pixels(const float *I, Py_ssize_t ow, const int64_t *t,
                                                             const float *wy, Py_ssize_t k, uint8_t *dst,
                                                             Py_ssize_t x0, Py_ssize_t x1, const int fma)
{
    const float *r0 = I + t[0] * ow;
    if (k == 1) {
        for (Py_ssize_t x = x0; x < x1; x++)
            dst[x] = (r0[x] * wy[0]) > 0.0f;
        return;
    }
    if (k == 2) {
        const float *r1 = I + t[1] * ow;
        const float w0 = wy[0], w1 = wy[1];
        for (Py_ssize_t x = x0; x < x1; x++)
            dst[x] = chain_step(r0[x] * w0, r1[x], w1, fma) > 0.0f;
        return;
    }
    for (Py_ssize_t x = x0; x < x1; x++) {
        float acc = r0[x] * wy[0];
        for (Py_ssize_t j = 1; j < k; j++)
            acc = chain_step(acc, I[t[j] * ow + x], wy[j], fma);
        dst[x] = acc > 0.0f;
    }
}

/* One mask into its (CH, CW) canvas, every byte written once. */
ALWAYS_INLINE void dense_mask(const Job *jb, Py_ssize_t m, uint8_t *canvas,
                                                             Scratch *s, const int fma)
{
    const Axis *ay = &jb->y, *ax = &jb->x;
    const Py_ssize_t oh = ay->out, ow = ax->out, cw = jb->canvas_w;
    const Py_ssize_t below = jb->canvas_h - jb->off_y - oh, right = cw - jb->off_x - ow;
    const float *v = jb->values + m * jb->h * jb->w;
    classify(jb, v, s);
    width_pass_rows(jb, v, s, fma);
    if (jb->off_y > 0)
        memset(canvas, 0, (size_t)(jb->off_y * cw));
    if (below > 0)
        memset(canvas + (jb->off_y + oh) * cw, 0, (size_t)(below * cw));
    for (Py_ssize_t gy = 0; gy < ay->groups; gy++) {
        const int64_t *t = ay->taps + gy * ay->k;
        const Py_ssize_t n_runs = merge_cells(s->cell + gy * ax->groups, 1, ax->groups, s->runs);
        const Py_ssize_t y0 = ay->first[gy], y1 = y0 + ay->length[gy];
        for (Py_ssize_t y = y0; y < y1; y++) {
            uint8_t *line = canvas + (jb->off_y + y) * cw;
            if (jb->off_x > 0)
                memset(line, 0, (size_t)jb->off_x);
            if (right > 0)
                memset(line + jb->off_x + ow, 0, (size_t)right);
            uint8_t *dst = line + jb->off_x;
            float wy[MAX_TAPS];
            for (Py_ssize_t j = 0; j < ay->k; j++)
                wy[j] = ay->weights[j * oh + y];
            for (Py_ssize_t i = 0; i < n_runs; i++) {
                const int64_t x0 = group_start(ax, s->runs[3 * i]), x1 = group_stop(ax, s->runs[3 * i + 1]);
                const int64_t c = s->runs[3 * i + 2];
                if (c == MIX)
                    row_pixels(s->I, ow, t, wy, ay->k, dst, x0, x1, fma);
                else
                    memset(dst + x0, (int)c, (size_t)(x1 - x0));
            }
        }
    }
}

/* -- RLE ------------------------------------------------------------------------------ */

typedef struct {
    uint32_t *v;
    Py_ssize_t n, cap;
    int value;      /* the value of the open run */
    int64_t length; /* its length so far */
    int failed;
} Runs;

static void runs_emit(Runs *rs, int64_t count)
{
    if (rs->n == rs->cap) {
        Py_ssize_t cap = rs->cap ? 2 * rs->cap : 4096;
        uint32_t *v = realloc(rs->v, (size_t)cap * sizeof(uint32_t));
        if (!v) {
            rs->failed = 1;
            return;
        }
        rs->v = v;
        rs->cap = cap;
    }
    rs->v[rs->n++] = (uint32_t)count;
}

static inline void runs_push(Runs *rs, int value, int64_t length)
{
    if (length <= 0)
        return;
    if (value == rs->value) {
        rs->length += length;
        return;
    }
    runs_emit(rs, rs->length);
    rs->value = value;
    rs->length = length;
}

/* The stock height-pass chain at output row y of a column, > 0. */
ALWAYS_INLINE int column_pixel(const float *column, const Axis *ay,
                                                              const int64_t *t, Py_ssize_t y, const int fma)
{
    float acc = column[t[0]] * ay->weights[y];
    for (Py_ssize_t j = 1; j < ay->k; j++)
        acc = chain_step(acc, column[t[j]], ay->weights[j * ay->out + y], fma);
    return acc > 0.0f;
}

/* Row group [y0, y1) of one column whose cell is mixed, from the column's exact
 * width-pass values a (tap 0) and b (tap 1).  Both <= 0, or both in (FLOOR, BIG]:
 * one run.  Opposite signs, finite, on a monotone axis: the value is
 * ``round(round(a * w0) + b * w1)`` (fused or not), and every rounding is
 * monotone, so with w0 non-increasing and w1 non-decreasing it never decreases
 * along the group when a <= 0 < b and never increases when a > 0 >= b: the
 * positive rows are a suffix or a prefix, found by bisection on the stock chain
 * itself.  Otherwise every row runs the chain. */
ALWAYS_INLINE void rle_group(Runs *rs, const float *column, const Axis *ay,
                                                            Py_ssize_t gy, const int fma)
{
    const int64_t *t = ay->taps + gy * ay->k;
    const Py_ssize_t y0 = ay->first[gy], y1 = y0 + ay->length[gy];
    int c = class_of(column[t[0]], FLOOR);
    for (Py_ssize_t j = 1; j < ay->k; j++)
        c = combine(c, class_of(column[t[j]], FLOOR));
    if (c != MIX) {
        runs_push(rs, c, y1 - y0);
        return;
    }
    if (ay->monotone) {
        const float a = column[t[0]], b = column[t[1]];
        if (isfinite(a) && isfinite(b) && ((a <= 0.0f && b > 0.0f) || (a > 0.0f && b <= 0.0f))) {
            const int rising = b > 0.0f; /* positive rows: a suffix when rising, else a prefix */
            Py_ssize_t lo = y0, hi = y1;  /* the first row whose sign differs from row y0's start state */
            while (lo < hi) {
                const Py_ssize_t mid = lo + (hi - lo) / 2;
                if (column_pixel(column, ay, t, mid, fma) == rising)
                    hi = mid;
                else
                    lo = mid + 1;
            }
            runs_push(rs, !rising, lo - y0);
            runs_push(rs, rising, y1 - lo);
            return;
        }
    }
    for (Py_ssize_t y = y0; y < y1; y++)
        runs_push(rs, column_pixel(column, ay, t, y, fma), 1);
}

/* One mask's uncompressed COCO counts over the canvas, column-major. */
ALWAYS_INLINE void rle_mask(const Job *jb, Py_ssize_t m, Scratch *s, Runs *rs,
                                                           const int fma)
{
    const Axis *ay = &jb->y, *ax = &jb->x;
    const Py_ssize_t h = jb->h, w = jb->w, oh = ay->out, ow = ax->out, ch = jb->canvas_h;
    const float *v = jb->values + m * h * w;
    classify(jb, v, s);
    for (Py_ssize_t r = 0; r < h; r++) /* the source, transposed: vt[c][r] */
        for (Py_ssize_t c = 0; c < w; c++)
            s->vt[c * h + r] = v[r * w + c];
    rs->n = 0;
    rs->value = 0;
    rs->length = 0;
    rs->failed = 0;
    runs_push(rs, 0, jb->off_x * ch);
    const Py_ssize_t below = ch - jb->off_y - oh;
    for (Py_ssize_t gx = 0; gx < ax->groups; gx++) {
        const Py_ssize_t n_runs = merge_cells(s->cell + gx, ax->groups, ay->groups, s->runs);
        const int64_t *t = ax->taps + gx * ax->k;
        int any_mixed = 0;
        for (Py_ssize_t i = 0; i < n_runs; i++)
            any_mixed |= s->runs[3 * i + 2] == MIX;
        for (Py_ssize_t x = ax->first[gx]; x < ax->first[gx] + ax->length[gx]; x++) {
            if (any_mixed) { /* this column's width-pass values, exactly */
                const float *c0 = s->vt + t[0] * h;
                const float w0 = ax->weights[x];
                for (Py_ssize_t r = 0; r < h; r++)
                    s->column[r] = c0[r] * w0;
                for (Py_ssize_t j = 1; j < ax->k; j++) {
                    const float *cj = s->vt + t[j] * h;
                    const float wj = ax->weights[j * ow + x];
                    for (Py_ssize_t r = 0; r < h; r++)
                        s->column[r] = chain_step(s->column[r], cj[r], wj, fma);
                }
            }
            runs_push(rs, 0, jb->off_y);
            for (Py_ssize_t i = 0; i < n_runs; i++) {
                const int64_t g0 = s->runs[3 * i], g1 = s->runs[3 * i + 1], c = s->runs[3 * i + 2];
                if (c != MIX) {
                    runs_push(rs, (int)c, group_stop(ay, g1) - group_start(ay, g0));
                    continue;
                }
                for (int64_t gy = g0; gy < g1; gy++)
                    rle_group(rs, s->column, ay, gy, fma);
            }
            runs_push(rs, 0, below);
        }
    }
    runs_push(rs, 0, (jb->canvas_w - jb->off_x - ow) * ch);
    runs_emit(rs, rs->length);
}

/* pycocotools' rleToString: the counts as COCO's compressed string; returns its length. */
static Py_ssize_t coco_string(const uint32_t *counts, Py_ssize_t m, char *s)
{
    Py_ssize_t p = 0;
    for (Py_ssize_t i = 0; i < m; i++) {
        long long x = (long long)counts[i];
        if (i > 2)
            x -= (long long)counts[i - 2];
        int more = 1;
        while (more) {
            char c = (char)(x & 0x1f);
            x >>= 5;
            more = (c & 0x10) ? x != -1 : x != 0;
            if (more)
                c |= 0x20;
            c += 48;
            s[p++] = c;
        }
    }
    return p;
}

/* -- instantiations: {portable, avx2+fma} x {fma, plain} -------------------------------- */

static void dense_portable(const Job *jb, Py_ssize_t m, uint8_t *canvas, Scratch *s, int fma)
{
    if (fma)
        dense_mask(jb, m, canvas, s, 1);
    else
        dense_mask(jb, m, canvas, s, 0);
}

static void rle_portable(const Job *jb, Py_ssize_t m, Scratch *s, Runs *rs, int fma)
{
    if (fma)
        rle_mask(jb, m, s, rs, 1);
    else
        rle_mask(jb, m, s, rs, 0);
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HAVE_AVX2_FMA 1
__attribute__((target("avx2,fma"))) static void dense_avx2(const Job *jb, Py_ssize_t m, uint8_t *canvas, Scratch *s,
                                                           int fma)
{
    if (fma)
        dense_mask(jb, m, canvas, s, 1);
    else
        dense_mask(jb, m, canvas, s, 0);
}

__attribute__((target("avx2,fma"))) static void rle_avx2(const Job *jb, Py_ssize_t m, Scratch *s, Runs *rs, int fma)
{
    if (fma)
        rle_mask(jb, m, s, rs, 1);
    else
        rle_mask(jb, m, s, rs, 0);
}

static int cpu_has_avx2_fma(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
#else
#define HAVE_AVX2_FMA 0
#endif

static int use_avx2 = 0;

/* -- argument checks ----------------------------------------------------------------- */

static int format_is(const char *format, char kind)
{
    if (!format)
        return 0;
    while (*format == '@' || *format == '=' || *format == '<')
        format++;
    if (kind == 'f')
        return format[0] == 'f' && format[1] == '\0';
    return (format[0] == 'l' || format[0] == 'q') && format[1] == '\0';
}

static int get_buffer(PyObject *obj, Py_buffer *view, const char *name, char kind, Py_ssize_t count)
{
    const Py_ssize_t itemsize = kind == 'f' ? 4 : 8;
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        return -1;
    if (view->itemsize != itemsize || !format_is(view->format, kind) || view->len != itemsize * count) {
        PyErr_Format(PyExc_ValueError, "%s: expected %zd %s items, got %zd bytes of format '%s'", name, count,
                     kind == 'f' ? "float32" : "int64", view->len, view->format ? view->format : "?");
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

typedef struct {
    Py_buffer b[4];
    int got;
} AxisBuffers;

static void release_axis(AxisBuffers *ab)
{
    for (int i = 0; i < ab->got; i++)
        PyBuffer_Release(&ab->b[i]);
    ab->got = 0;
}

/* (first, length, taps, weights, in, out, k) -> Axis, every index checked. */
static int parse_axis(PyObject *tuple, const char *name, Axis *ax, AxisBuffers *ab)
{
    PyObject *o[4];
    ab->got = 0;
    if (!PyArg_ParseTuple(tuple, "OOOOnnn", &o[0], &o[1], &o[2], &o[3], &ax->in, &ax->out, &ax->k))
        return -1;
    if (ax->in < 1 || ax->out < 1 || ax->k < 1 || ax->k > MAX_TAPS) {
        PyErr_Format(PyExc_ValueError, "%s axis: sizes must be >= 1 and taps in [1, %d], got in=%zd out=%zd k=%zd",
                     name, MAX_TAPS, ax->in, ax->out, ax->k);
        return -1;
    }
    if (PyObject_GetBuffer(o[0], &ab->b[0], PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        return -1;
    ab->got = 1;
    ax->groups = ab->b[0].len / 8;
    PyBuffer_Release(&ab->b[0]);
    ab->got = 0;
    const char kinds[4] = {'i', 'i', 'i', 'f'};
    const Py_ssize_t counts[4] = {ax->groups, ax->groups, ax->groups * ax->k, ax->k * ax->out};
    const char *names[4] = {"first", "length", "taps", "weights"};
    for (; ab->got < 4; ab->got++)
        if (get_buffer(o[ab->got], &ab->b[ab->got], names[ab->got], kinds[ab->got], counts[ab->got]) < 0) {
            release_axis(ab);
            return -1;
        }
    ax->first = ab->b[0].buf;
    ax->length = ab->b[1].buf;
    ax->taps = ab->b[2].buf;
    ax->weights = ab->b[3].buf;
    int64_t next = 0;
    for (Py_ssize_t g = 0; g < ax->groups; g++) {
        int ok = ax->first[g] == next && ax->length[g] >= 1;
        for (Py_ssize_t j = 0; j < ax->k; j++)
            ok &= ax->taps[g * ax->k + j] >= 0 && ax->taps[g * ax->k + j] < ax->in;
        if (!ok) {
            PyErr_Format(PyExc_ValueError, "%s axis: group %zd is not consecutive or has a tap outside [0, %zd)",
                         name, g, ax->in);
            release_axis(ab);
            return -1;
        }
        next += ax->length[g];
    }
    ax->monotone = ax->k == 2;
    for (Py_ssize_t g = 0; g < ax->groups && ax->monotone; g++)
        for (int64_t o = ax->first[g] + 1; o < ax->first[g] + ax->length[g]; o++)
            if (!(ax->weights[o] <= ax->weights[o - 1] && ax->weights[ax->out + o] >= ax->weights[ax->out + o - 1])) {
                ax->monotone = 0;
                break;
            }
    if (next != ax->out || ax->groups < 1) {
        PyErr_Format(PyExc_ValueError, "%s axis: groups cover %lld outputs, not %zd", name, (long long)next, ax->out);
        release_axis(ab);
        return -1;
    }
    return 0;
}

/* values, n, h, w, y axis, x axis, canvas (h, w), offset (y, x), start, stop -> Job */
static int parse_job(PyObject *args, Job *jb, Py_buffer *vb, AxisBuffers *ay, AxisBuffers *ax, PyObject **extra,
                     Py_ssize_t *start, Py_ssize_t *stop, int *fma)
{
    PyObject *o_values, *o_y, *o_x;
    Py_ssize_t n;
    ay->got = ax->got = 0;
    if (!PyArg_ParseTuple(args, "OnnnOO(nn)(nn)nnpO", &o_values, &n, &jb->h, &jb->w, &o_y, &o_x, &jb->canvas_h,
                          &jb->canvas_w, &jb->off_y, &jb->off_x, start, stop, fma, extra))
        return -1;
    if (n < 0 || jb->h < 1 || jb->w < 1 || *start < 0 || *stop > n || *start > *stop) {
        PyErr_Format(PyExc_ValueError, "bad mask range [%zd, %zd) of %zd masks of %zdx%zd", *start, *stop, n, jb->h,
                     jb->w);
        return -1;
    }
    if (parse_axis(o_y, "y", &jb->y, ay) < 0)
        return -1;
    if (parse_axis(o_x, "x", &jb->x, ax) < 0) {
        release_axis(ay);
        return -1;
    }
    if (jb->y.in != jb->h || jb->x.in != jb->w || jb->off_y < 0 || jb->off_x < 0 ||
        jb->off_y + jb->y.out > jb->canvas_h || jb->off_x + jb->x.out > jb->canvas_w) {
        PyErr_Format(PyExc_ValueError,
                     "axes %zd->%zd, %zd->%zd do not fit mask %zdx%zd at (%zd, %zd) of a %zdx%zd canvas", jb->y.in,
                     jb->y.out, jb->x.in, jb->x.out, jb->h, jb->w, jb->off_y, jb->off_x, jb->canvas_h, jb->canvas_w);
        goto fail;
    }
    if (get_buffer(o_values, vb, "values", 'f', n * jb->h * jb->w) < 0)
        goto fail;
    jb->values = vb->buf;
    return 0;
fail:
    release_axis(ay);
    release_axis(ax);
    return -1;
}

/* Fault in the pages of [buf, buf + len) in one call (Linux 5.14+: MADV_POPULATE_WRITE) instead of
 * one fault per 4 KiB page while the masks are written; a hint only: where the kernel refuses it,
 * the pages fault in as usual. */
static void prefault(void *buf, size_t len)
{
#if defined(__linux__) && defined(MADV_POPULATE_WRITE)
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    const uintptr_t a = ((uintptr_t)buf + page - 1) & ~(page - 1), b = ((uintptr_t)buf + len) & ~(page - 1);
    if (b > a)
        (void)madvise((void *)a, (size_t)(b - a), MADV_POPULATE_WRITE);
#else
    (void)buf;
    (void)len;
#endif
}

static PyObject *threshold_dense(PyObject *self, PyObject *args)
{
    Job jb;
    Py_buffer vb, ob;
    AxisBuffers ay, ax;
    PyObject *o_out;
    Py_ssize_t start, stop;
    int fma;
    if (parse_job(args, &jb, &vb, &ay, &ax, &o_out, &start, &stop, &fma) < 0)
        return NULL;
    PyObject *result = NULL;
    const Py_ssize_t n = vb.len / (4 * jb.h * jb.w);
    const Py_ssize_t plane = jb.canvas_h * jb.canvas_w;
    if (PyObject_GetBuffer(o_out, &ob, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE) < 0)
        goto done;
    if (ob.itemsize != 1 || ob.len != n * plane) {
        PyErr_Format(PyExc_ValueError, "out: expected %zd one-byte items, got %zd bytes", n * plane, ob.len);
        PyBuffer_Release(&ob);
        goto done;
    }
    Scratch scratch;
    if (scratch_alloc(&scratch, &jb) == 0) {
        Py_BEGIN_ALLOW_THREADS
        prefault((uint8_t *)ob.buf + start * plane, (size_t)((stop - start) * plane));
        for (Py_ssize_t m = start; m < stop; m++) {
            uint8_t *canvas = (uint8_t *)ob.buf + m * plane;
#if HAVE_AVX2_FMA
            if (use_avx2) {
                dense_avx2(&jb, m, canvas, &scratch, fma);
                continue;
            }
#endif
            dense_portable(&jb, m, canvas, &scratch, fma);
        }
        Py_END_ALLOW_THREADS
        scratch_free(&scratch);
        result = Py_NewRef(Py_None);
    } else {
        PyErr_NoMemory();
    }
    PyBuffer_Release(&ob);
done:
    PyBuffer_Release(&vb);
    release_axis(&ay);
    release_axis(&ax);
    return result;
}

static PyObject *threshold_rle(PyObject *self, PyObject *args)
{
    Job jb;
    Py_buffer vb;
    AxisBuffers ay, ax;
    PyObject *unused;
    Py_ssize_t start, stop;
    int fma;
    if (parse_job(args, &jb, &vb, &ay, &ax, &unused, &start, &stop, &fma) < 0)
        return NULL;
    PyObject *result = NULL;
    const Py_ssize_t count = stop - start;
    Scratch scratch;
    char **strings = calloc((size_t)(count > 0 ? count : 1), sizeof(char *));
    Py_ssize_t *lengths = calloc((size_t)(count > 0 ? count : 1), sizeof(Py_ssize_t));
    Runs rs = {NULL, 0, 0, 0, 0, 0};
    int have_scratch = scratch_alloc(&scratch, &jb) == 0;
    int failed = !(have_scratch && strings && lengths);
    if (!failed) {
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < count && !failed; i++) {
#if HAVE_AVX2_FMA
            if (use_avx2)
                rle_avx2(&jb, start + i, &scratch, &rs, fma);
            else
#endif
                rle_portable(&jb, start + i, &scratch, &rs, fma);
            /* a count takes at most 7 characters (32 bits, 5 per character, the delta's sign) */
            strings[i] = rs.failed ? NULL : malloc((size_t)(7 * rs.n + 1));
            if (!strings[i]) {
                failed = 1;
                break;
            }
            lengths[i] = coco_string(rs.v, rs.n, strings[i]);
        }
        Py_END_ALLOW_THREADS
    }
    if (have_scratch)
        scratch_free(&scratch);
    if (failed) {
        PyErr_NoMemory();
    } else if ((result = PyList_New(count)) != NULL) {
        for (Py_ssize_t i = 0; i < count; i++) {
            PyObject *bytes = PyBytes_FromStringAndSize(strings[i], lengths[i]);
            if (!bytes) {
                Py_CLEAR(result);
                break;
            }
            PyList_SET_ITEM(result, i, bytes);
        }
    }
    if (strings)
        for (Py_ssize_t i = 0; i < count; i++)
            free(strings[i]);
    free(strings);
    free(lengths);
    free(rs.v);
    PyBuffer_Release(&vb);
    release_axis(&ay);
    release_axis(&ax);
    return result;
}

static PyObject *instruction_set(PyObject *self, PyObject *args)
{
    return PyUnicode_FromString(use_avx2 ? "avx2+fma" : "portable");
}

/* Tests: run the portable build even where avx2+fma is available (False: back to detection). */
static PyObject *force_portable(PyObject *self, PyObject *arg)
{
    const int portable = PyObject_IsTrue(arg);
    if (portable < 0)
        return NULL;
#if HAVE_AVX2_FMA
    use_avx2 = portable ? 0 : cpu_has_avx2_fma();
#endif
    return PyUnicode_FromString(use_avx2 ? "avx2+fma" : "portable");
}

static PyMethodDef methods[] = {
    {"threshold_dense", threshold_dense, METH_VARARGS,
     "threshold_dense(values, n, h, w, y_axis, x_axis, (canvas_h, canvas_w), (off_y, off_x), start, stop, fma, out)\n"
     "writes masks [start, stop) into out (n * canvas_h * canvas_w bytes, 0 / 1); every byte of those masks once"},
    {"threshold_rle", threshold_rle, METH_VARARGS,
     "threshold_rle(values, n, h, w, y_axis, x_axis, (canvas_h, canvas_w), (off_y, off_x), start, stop, fma, None)\n"
     "-> [bytes]: COCO compressed counts (column-major over the canvas) of masks [start, stop)"},
    {"instruction_set", instruction_set, METH_NOARGS, "instruction_set() -> 'avx2+fma' | 'portable'"},
    {"force_portable", force_portable, METH_O, "force_portable(flag) -> the instruction set now used (tests)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_stock_masks_native",
    "inference-models' antialiased bilinear mask resize + threshold, exactly, to dense canvases or COCO RLE.", -1,
    methods,
};

PyMODINIT_FUNC PyInit__stock_masks_native(void)
{
#if HAVE_AVX2_FMA
    use_avx2 = cpu_has_avx2_fma();
#endif
    return PyModule_Create(&module);
}
