/*
 * Sparse bilinear upsample + threshold of one mask, straight to crop runs.
 *
 * The compiled twin of ``sparse_cpu.mask_crop_runs`` (same algorithm, same
 * float32 arithmetic as torch's CPU ``F.interpolate(bilinear,
 * align_corners=False)``), for the case ``out_h + out_w > 128``:
 *
 *   1. the bounding box of the positive logit cells picks the output rows
 *      [i_lo, i_hi) and columns [j_lo, j_hi) that have a tap inside it;
 *   2. the horizontal pass ``t[s][j] = lin2(v[s][x0j], wx0j, v[s][x1j], wx1j)``
 *      runs once per source row s in use and output column j;
 *   3. column by column (the COCO / CompactMask order), each band of output
 *      rows that share a tap pair (A = t[tap0][j], B = t[tap1][j]) is decided
 *      whole when A and B are both safely positive (all rows positive) or
 *      neither is positive or one is NaN (no row positive); otherwise every
 *      row of the band is evaluated: ``lin2(A, wy0[i], B, wy1[i]) > 0``;
 *   4. the foreground column intervals become the runs of the tight crop.
 *
 * ``lin2(a, wa, b, wb)`` is torch's ``a * wa + b * wb``: ``fmaf(a, wa, b * wb)``
 * on FMA builds (AVX2 / AVX512, the first product fused), two rounded products
 * and a rounded sum otherwise. This file is compiled with -ffp-contract=off so
 * the compiler adds no FMA of its own, and the only FMAs are the fmaf() calls
 * (correctly rounded in C99, in hardware or in libm's software fallback).
 * Which order torch uses is decided in Python (``sparse_cpu.torch_cpu_arith``)
 * and passed in as ``fma``.
 *
 * Buffers (all C-contiguous, from numpy through the buffer protocol):
 *   window  float32 (h, w)     one mask's logit window
 *   y_i0/1  int64   (oh,)      source row taps of every output row
 *   y_w0/1  float32 (oh,)      their weights
 *   x_i0/1  int64   (ow,)      source column taps of every output column
 *   x_w0/1  float32 (ow,)      their weights
 * The second tap is read from its table, never derived: torch's identity
 * axis (in == out) has i1 == i0 with weight 0, and 0 * inf is NaN.
 *
 * Returns None for an empty mask, else (runs bytes of int32, (crop_h, crop_w),
 * (x1, y1)) in frame pixels, runs in supervision's convention (leading
 * background run, trailing background run dropped when 0).
 * The computation runs with the GIL released.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Tap values in [SAFE_LO, SAFE_HI] give a positive product with any weight
 * in (2**-40, 1] and no overflow; see sparse_cpu.SAFE_LO. */
#define SAFE_LO 8.673617379884035e-19f /* 2**-60 */
#define SAFE_HI 1.152921504606847e+18f /* 2**60 */

static inline float lin2(float a, float wa, float b, float wb, int fma)
{
    float q = b * wb;
    if (fma)
        return fmaf(a, wa, q);
    float p = a * wa;
    return p + q;
}

/* A growable list of (column, y_start, y_stop) intervals. */
typedef struct {
    int64_t *v;
    Py_ssize_t n, cap;
} Intervals;

static int push_interval(Intervals *iv, int64_t col, int64_t y0, int64_t y1)
{
    if (iv->n > 0) { /* merge with the previous piece of the same column */
        int64_t *last = iv->v + 3 * (iv->n - 1);
        if (last[0] == col && last[2] == y0) {
            last[2] = y1;
            return 0;
        }
    }
    if (iv->n == iv->cap) {
        Py_ssize_t cap = iv->cap ? 2 * iv->cap : 1024;
        int64_t *v = realloc(iv->v, (size_t)cap * 3 * sizeof(int64_t));
        if (!v)
            return -1;
        iv->v = v;
        iv->cap = cap;
    }
    int64_t *slot = iv->v + 3 * iv->n++;
    slot[0] = col;
    slot[1] = y0;
    slot[2] = y1;
    return 0;
}

/* First index in [0, n) with a[i] >= key (a non-decreasing), else n. */
static Py_ssize_t lower_bound(const int64_t *a, Py_ssize_t n, int64_t key)
{
    Py_ssize_t lo = 0, hi = n;
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) / 2;
        if (a[mid] < key) lo = mid + 1; else hi = mid;
    }
    return lo;
}

/* First index in [0, n) with a[i] > key, else n. */
static Py_ssize_t upper_bound(const int64_t *a, Py_ssize_t n, int64_t key)
{
    Py_ssize_t lo = 0, hi = n;
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) / 2;
        if (a[mid] <= key) lo = mid + 1; else hi = mid;
    }
    return lo;
}

typedef struct {
    const float *win;
    Py_ssize_t h, w;
    const int64_t *y_i0, *y_i1, *x_i0, *x_i1;
    const float *y_w0, *y_w1, *x_w0, *x_w1;
    Py_ssize_t oh, ow;
    int64_t row_lo, row_hi, col_lo, col_hi; /* visible output window */
    int64_t top, left;                      /* frame position of output (0, 0) */
    int fma;
} Job;

/* Steps 1-3: foreground intervals in output coordinates. 0 ok, -1 no memory. */
static int mask_intervals(const Job *jb, Intervals *iv)
{
    const Py_ssize_t h = jb->h, w = jb->w;
    Py_ssize_t pr0 = h, pr1 = -1, pc0 = w, pc1 = -1;
    for (Py_ssize_t r = 0; r < h; r++) {
        const float *row = jb->win + r * w;
        for (Py_ssize_t c = 0; c < w; c++) {
            if (row[c] > 0.0f) {
                if (r < pr0) pr0 = r;
                pr1 = r;
                if (c < pc0) pc0 = c;
                if (c > pc1) pc1 = c;
            }
        }
    }
    if (pr1 < 0)
        return 0; /* every tap <= 0 or NaN: nothing can be positive */
    /* Output rows/columns with a tap inside the positive box (monotone tables). */
    Py_ssize_t i_lo = lower_bound(jb->y_i1, jb->oh, pr0);
    Py_ssize_t i_hi = upper_bound(jb->y_i0, jb->oh, pr1);
    Py_ssize_t j_lo = lower_bound(jb->x_i1, jb->ow, pc0);
    Py_ssize_t j_hi = upper_bound(jb->x_i0, jb->ow, pc1);
    if (i_lo < jb->row_lo) i_lo = jb->row_lo;
    if (i_hi > jb->row_hi) i_hi = jb->row_hi;
    if (j_lo < jb->col_lo) j_lo = jb->col_lo;
    if (j_hi > jb->col_hi) j_hi = jb->col_hi;
    if (i_lo >= i_hi || j_lo >= j_hi)
        return 0;
    const int64_t s0 = jb->y_i0[i_lo];
    const int64_t s1 = jb->y_i1[i_hi - 1] + 1;
    const Py_ssize_t nr = (Py_ssize_t)(s1 - s0), nc = j_hi - j_lo;

    /* Step 2: t[(s - s0) * nc + (j - j_lo)], torch's horizontal pass. */
    float *t = malloc((size_t)nr * (size_t)nc * sizeof(float));
    if (!t)
        return -1;
    for (Py_ssize_t s = 0; s < nr; s++) {
        const float *row = jb->win + (s0 + s) * w;
        float *out = t + s * nc;
        for (Py_ssize_t j = 0; j < nc; j++) {
            Py_ssize_t jj = j_lo + j;
            out[j] = lin2(row[jb->x_i0[jj]], jb->x_w0[jj], row[jb->x_i1[jj]], jb->x_w1[jj], jb->fma);
        }
    }

    /* Step 3: bands [b_start, b_stop) of rows sharing i0, within [i_lo, i_hi). */
    Py_ssize_t nbands = 0;
    for (Py_ssize_t i = i_lo; i < i_hi; i++)
        if (i == i_lo || jb->y_i0[i] != jb->y_i0[i - 1]) nbands++;
    Py_ssize_t *band = malloc((size_t)(nbands + 1) * sizeof(Py_ssize_t));
    if (!band) {
        free(t);
        return -1;
    }
    nbands = 0;
    for (Py_ssize_t i = i_lo; i < i_hi; i++)
        if (i == i_lo || jb->y_i0[i] != jb->y_i0[i - 1]) band[nbands++] = i;
    band[nbands] = i_hi;

    int status = 0;
    for (Py_ssize_t j = 0; j < nc && status == 0; j++) {
        const int64_t col = jb->left + j_lo + j;
        for (Py_ssize_t b = 0; b < nbands && status == 0; b++) {
            const Py_ssize_t bs = band[b], be = band[b + 1];
            const int64_t tap0 = jb->y_i0[bs];
            const int64_t tap1 = jb->y_i1[bs];
            const float A = t[(tap0 - s0) * nc + j];
            const float B = t[(tap1 - s0) * nc + j];
            if (isnan(A) || isnan(B) || !(A > 0.0f || B > 0.0f))
                continue; /* no row of the band can be positive */
            if (A >= SAFE_LO && A <= SAFE_HI && B >= SAFE_LO && B <= SAFE_HI) {
                status = push_interval(iv, col, jb->top + bs, jb->top + be);
                continue;
            }
            Py_ssize_t run = -1; /* start of the open positive run */
            for (Py_ssize_t i = bs; i < be; i++) {
                int pos = lin2(A, jb->y_w0[i], B, jb->y_w1[i], jb->fma) > 0.0f;
                if (pos && run < 0) run = i;
                if (!pos && run >= 0) {
                    status = push_interval(iv, col, jb->top + run, jb->top + i);
                    run = -1;
                }
            }
            if (run >= 0 && status == 0)
                status = push_interval(iv, col, jb->top + run, jb->top + be);
        }
    }
    free(band);
    free(t);
    return status;
}

/* Step 4: intervals (sorted by column then row) -> crop runs. NULL on no memory. */
static int32_t *intervals_to_runs(const Intervals *iv, Py_ssize_t *n_runs, int64_t *crop_h,
                                  int64_t *crop_w, int64_t *x1, int64_t *y1)
{
    int64_t ymin = INT64_MAX, ymax = INT64_MIN;
    for (Py_ssize_t k = 0; k < iv->n; k++) {
        if (iv->v[3 * k + 1] < ymin) ymin = iv->v[3 * k + 1];
        if (iv->v[3 * k + 2] > ymax) ymax = iv->v[3 * k + 2];
    }
    const int64_t xa = iv->v[0], xb = iv->v[3 * (iv->n - 1)];
    const int64_t hh = ymax - ymin, ww = xb - xa + 1, total = hh * ww;
    int32_t *runs = malloc((size_t)(2 * iv->n + 1) * sizeof(int32_t));
    if (!runs)
        return NULL;
    Py_ssize_t n = 0;
    int64_t pos = 0; /* end of the stream written so far */
    for (Py_ssize_t k = 0; k < iv->n; k++) {
        const int64_t base = (iv->v[3 * k] - xa) * hh - ymin;
        const int64_t start = base + iv->v[3 * k + 1], stop = base + iv->v[3 * k + 2];
        if (n > 0 && start == pos) { /* touches the previous run: one run */
            runs[n - 1] += (int32_t)(stop - start);
        } else {
            runs[n++] = (int32_t)(start - pos); /* background (0 only first) */
            runs[n++] = (int32_t)(stop - start);
        }
        pos = stop;
    }
    if (total - pos > 0)
        runs[n++] = (int32_t)(total - pos);
    *n_runs = n;
    *crop_h = hh;
    *crop_w = ww;
    *x1 = xa;
    *y1 = ymin;
    return runs;
}

/* 'f' for float32, 'i' for int64 (struct codes 'l' or 'q' on LP64), after any byte-order prefix. */
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
        PyErr_Format(PyExc_ValueError, "%s: expected %zd %s items, got %zd bytes of format '%s'", name,
                     count, kind == 'f' ? "float32" : "int64", view->len,
                     view->format ? view->format : "?");
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

static PyObject *mask_crop_runs(PyObject *self, PyObject *args)
{
    PyObject *o_win, *o_yi0, *o_yi1, *o_yw0, *o_yw1, *o_xi0, *o_xi1, *o_xw0, *o_xw1;
    Py_ssize_t h, w, oh, ow;
    long long row_lo, row_hi, col_lo, col_hi, top, left;
    int fma;
    if (!PyArg_ParseTuple(args, "OnnOOOOnOOOOnLLLLLLp", &o_win, &h, &w, &o_yi0, &o_yi1, &o_yw0, &o_yw1,
                          &oh, &o_xi0, &o_xi1, &o_xw0, &o_xw1, &ow, &row_lo, &row_hi, &col_lo,
                          &col_hi, &top, &left, &fma))
        return NULL;
    if (h <= 0 || w <= 0 || oh <= 0 || ow <= 0) {
        PyErr_SetString(PyExc_ValueError, "window and output sizes must be positive");
        return NULL;
    }
    enum { NBUF = 9 };
    Py_buffer b[NBUF];
    PyObject *objs[NBUF] = {o_win, o_yi0, o_yi1, o_yw0, o_yw1, o_xi0, o_xi1, o_xw0, o_xw1};
    const char *names[NBUF] = {"window", "y_i0", "y_i1", "y_w0", "y_w1", "x_i0", "x_i1", "x_w0", "x_w1"};
    const char kinds[NBUF] = {'f', 'i', 'i', 'f', 'f', 'i', 'i', 'f', 'f'};
    const Py_ssize_t counts[NBUF] = {h * w, oh, oh, oh, oh, ow, ow, ow, ow};
    int got = 0;
    for (; got < NBUF; got++)
        if (get_buffer(objs[got], &b[got], names[got], kinds[got], counts[got]) < 0)
            break;
    PyObject *result = NULL;
    if (got == NBUF) {
        Job jb = {
            .win = b[0].buf, .h = h, .w = w,
            .y_i0 = b[1].buf, .y_i1 = b[2].buf, .y_w0 = b[3].buf, .y_w1 = b[4].buf,
            .x_i0 = b[5].buf, .x_i1 = b[6].buf, .x_w0 = b[7].buf, .x_w1 = b[8].buf,
            .oh = oh, .ow = ow,
            .row_lo = row_lo, .row_hi = row_hi, .col_lo = col_lo, .col_hi = col_hi,
            .top = top, .left = left, .fma = fma,
        };
        Intervals iv = {NULL, 0, 0};
        int32_t *runs = NULL;
        Py_ssize_t n_runs = 0;
        int64_t ch = 0, cw = 0, x1 = 0, y1 = 0;
        int status;
        Py_BEGIN_ALLOW_THREADS
        status = mask_intervals(&jb, &iv);
        if (status == 0 && iv.n > 0) {
            runs = intervals_to_runs(&iv, &n_runs, &ch, &cw, &x1, &y1);
            if (!runs) status = -1;
        }
        Py_END_ALLOW_THREADS
        if (status < 0) {
            PyErr_NoMemory();
        } else if (iv.n == 0) {
            result = Py_NewRef(Py_None);
        } else {
            PyObject *bytes = PyBytes_FromStringAndSize((const char *)runs,
                                                        n_runs * (Py_ssize_t)sizeof(int32_t));
            if (bytes)
                result = Py_BuildValue("N(LL)(LL)", bytes, (long long)ch, (long long)cw,
                                       (long long)x1, (long long)y1);
        }
        free(runs);
        free(iv.v);
    }
    for (int k = 0; k < got; k++)
        PyBuffer_Release(&b[k]);
    return result;
}

static PyMethodDef methods[] = {
    {"mask_crop_runs", mask_crop_runs, METH_VARARGS,
     "mask_crop_runs(window, h, w, y_i0, y_i1, y_w0, y_w1, oh, x_i0, x_i1, x_w0, x_w1, ow,\n"
     "               row_lo, row_hi, col_lo, col_hi, top, left, fma)\n"
     "-> None | (runs_bytes_int32, (crop_h, crop_w), (x1, y1))"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_sparse_native",
    "Compiled sparse bilinear-upsample-and-threshold of one mask to crop runs.", -1, methods,
};

PyMODINIT_FUNC PyInit__sparse_native(void) { return PyModule_Create(&module); }
