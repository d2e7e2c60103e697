/*
 * The response stage's two hot loops, compiled: painting a mask's crop runs
 * into the canvas that findContours traces, and turning traced polygons into
 * the payload's points (compact JSON text, or Python dicts).
 *
 * The numpy twins are the references (``polygons._column_major_canvas_numpy``,
 * ``response._points_numpy`` and ``response._points_json_numpy``); the tests
 * hold these functions to them byte for byte and object for object.
 *
 *   paint_intervals(starts, stops, base, canvas)
 *       canvas[:] = 0, then canvas[start - base : stop - base] = 1 for every
 *       interval. The intervals are foreground runs on a column-major crop
 *       stream (sorted, disjoint); the canvas is that stream's window from
 *       ``base`` (the transposed crop findContours traces).
 *
 *   points_json(points, counts) -> list[bytes]
 *       For each polygon, ``{"x":X.0,"y":Y.0},...`` without brackets: what
 *       ``json.dumps`` writes (compact separators) for a list of
 *       ``{"x": float(x), "y": float(y)}`` with x and y the server's float32
 *       casts: integer-valued floats below 2**53, whose repr is "<integer>.0".
 *
 *   points_dicts(points, counts) -> list[list[dict]]
 *       For each polygon, ``[{"x": float(x), "y": float(y)}, ...]`` (float32 casts).
 *       Equal coordinates below 16384 share one float object within a call
 *       (floats are immutable; equality, repr and JSON are unchanged).
 *
 * Buffers (C-contiguous, from numpy through the buffer protocol):
 *   starts, stops  int64 (k,)      interval bounds on the crop stream
 *   canvas         uint8 (n,)      writable; the painted window
 *   points         int32 (p, 2)    every polygon's (x, y) points, concatenated
 *   counts         int64 (m,)      points per polygon; sum(counts) == p
 *
 * Bounds are checked (ValueError naming the buffer); painting runs with the
 * GIL released. Object building needs the GIL and holds it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

static PyObject *KEY_X, *KEY_Y;

static int get_buffer(PyObject *obj, Py_buffer *view, const char *name, const char *format, int writable)
{
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) < 0)
        return -1;
    /* numpy writes int64 as 'l' on LP64 and 'q' elsewhere; compare item sizes and kinds. */
    const char *got = view->format ? view->format : "B";
    if (*got == '<' || *got == '=' || *got == '@')
        got++;
    int ok;
    if (format[0] == 'q')
        ok = (*got == 'q' || *got == 'l') && view->itemsize == 8;
    else if (format[0] == 'i')
        ok = (*got == 'i' || *got == 'l') && view->itemsize == 4;
    else
        ok = *got == 'B' && view->itemsize == 1;
    if (!ok) {
        PyErr_Format(PyExc_ValueError, "%s: expected a C-contiguous %s buffer, got format '%s' of %zd bytes",
                     name, format[0] == 'q' ? "int64" : format[0] == 'i' ? "int32" : "uint8", got,
                     view->itemsize);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

static PyObject *paint_intervals(PyObject *self, PyObject *args)
{
    PyObject *o_starts, *o_stops, *o_canvas;
    long long base;
    if (!PyArg_ParseTuple(args, "OOLO", &o_starts, &o_stops, &base, &o_canvas))
        return NULL;
    Py_buffer b_starts, b_stops, b_canvas;
    if (get_buffer(o_starts, &b_starts, "starts", "q", 0) < 0)
        return NULL;
    if (get_buffer(o_stops, &b_stops, "stops", "q", 0) < 0) {
        PyBuffer_Release(&b_starts);
        return NULL;
    }
    if (get_buffer(o_canvas, &b_canvas, "canvas", "B", 1) < 0) {
        PyBuffer_Release(&b_starts);
        PyBuffer_Release(&b_stops);
        return NULL;
    }
    const int64_t *starts = b_starts.buf, *stops = b_stops.buf;
    uint8_t *canvas = b_canvas.buf;
    Py_ssize_t k = b_starts.len / 8, n = b_canvas.len;
    const char *error = NULL;
    Py_ssize_t bad = -1;
    if (b_stops.len / 8 != k)
        error = "starts and stops differ in length";
    for (Py_ssize_t i = 0; !error && i < k; i++) {
        int64_t lo = starts[i] - base, hi = stops[i] - base;
        int64_t previous = i ? stops[i - 1] - base : 0;
        if (lo < previous || hi <= lo || hi > (int64_t)n) {
            error = "interval outside the canvas, empty, or out of order";
            bad = i;
        }
    }
    if (!error) {
        Py_BEGIN_ALLOW_THREADS
        memset(canvas, 0, (size_t)n);
        for (Py_ssize_t i = 0; i < k; i++)
            memset(canvas + (starts[i] - base), 1, (size_t)(stops[i] - starts[i]));
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&b_starts);
    PyBuffer_Release(&b_stops);
    PyBuffer_Release(&b_canvas);
    if (error) {
        if (bad >= 0)
            PyErr_Format(PyExc_ValueError, "paint_intervals: %s (interval %zd of %zd, canvas of %zd)", error,
                         bad, k, n);
        else
            PyErr_Format(PyExc_ValueError, "paint_intervals: %s", error);
        return NULL;
    }
    Py_RETURN_NONE;
}

/* Check the (points, counts) pair; on success the caller owns both views. */
static int get_polygons(PyObject *args, Py_buffer *b_points, Py_buffer *b_counts)
{
    PyObject *o_points, *o_counts;
    if (!PyArg_ParseTuple(args, "OO", &o_points, &o_counts))
        return -1;
    if (get_buffer(o_points, b_points, "points", "i", 0) < 0)
        return -1;
    if (get_buffer(o_counts, b_counts, "counts", "q", 0) < 0) {
        PyBuffer_Release(b_points);
        return -1;
    }
    const int64_t *counts = b_counts->buf;
    Py_ssize_t m = b_counts->len / 8, total = 0;
    for (Py_ssize_t i = 0; i < m; i++) {
        if (counts[i] < 0) {
            PyErr_Format(PyExc_ValueError, "counts[%zd] = %lld is negative", i, (long long)counts[i]);
            goto fail;
        }
        total += (Py_ssize_t)counts[i];
    }
    if (b_points->len % 8 != 0 || total != b_points->len / 8) {
        PyErr_Format(PyExc_ValueError, "points hold %zd values, counts sum to %zd points (need %zd values)",
                     b_points->len / 4, total, 2 * total);
        goto fail;
    }
    return 0;
fail:
    PyBuffer_Release(b_points);
    PyBuffer_Release(b_counts);
    return -1;
}

/* A coordinate as the payload holds it: the server's float32 cast (exact below
 * 2**24, rounded to nearest even above), an integer-valued float. */
static inline int64_t as_payload(int32_t value)
{
    return (int64_t)(float)value;
}

/* Write a decimal integer (|value| <= 2**31); returns the bytes written (at most 11). */
static inline Py_ssize_t write_int(char *out, int64_t value)
{
    char digits[20];
    int n = 0;
    int64_t v = value;
    Py_ssize_t len = 0;
    if (v < 0) {
        out[len++] = '-';
        v = -v;
    }
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        out[len++] = digits[--n];
    return len;
}

static PyObject *points_json(PyObject *self, PyObject *args)
{
    Py_buffer b_points, b_counts;
    if (get_polygons(args, &b_points, &b_counts) < 0)
        return NULL;
    const int32_t *points = b_points.buf;
    const int64_t *counts = b_counts.buf;
    Py_ssize_t m = b_counts.len / 8;
    PyObject *out = PyList_New(m);
    char *scratch = NULL;
    Py_ssize_t capacity = 0;
    /* One point: {"x":-2147483648.0,"y":-2147483648.0}, = 39 bytes at most. */
    const Py_ssize_t per_point = 40;
    for (Py_ssize_t i = 0; out && i < m; i++) {
        Py_ssize_t count = (Py_ssize_t)counts[i];
        if (count * per_point > capacity) {
            capacity = count * per_point;
            char *grown = PyMem_Realloc(scratch, (size_t)capacity);
            if (!grown) {
                PyErr_NoMemory();
                Py_CLEAR(out);
                break;
            }
            scratch = grown;
        }
        char *w = scratch;
        for (Py_ssize_t j = 0; j < count; j++) {
            if (j)
                *w++ = ',';
            memcpy(w, "{\"x\":", 5);
            w += 5;
            w += write_int(w, as_payload(points[0]));
            memcpy(w, ".0,\"y\":", 7);
            w += 7;
            w += write_int(w, as_payload(points[1]));
            memcpy(w, ".0}", 3);
            w += 3;
            points += 2;
        }
        PyObject *text = PyBytes_FromStringAndSize(scratch, w - scratch);
        if (!text) {
            Py_CLEAR(out);
            break;
        }
        PyList_SET_ITEM(out, i, text);
    }
    PyMem_Free(scratch);
    PyBuffer_Release(&b_points);
    PyBuffer_Release(&b_counts);
    return out;
}

/* Coordinates below this share one float object per value within a call
 * (frame pixels: 16K covers every frame side we take); others get their own. */
#define SHARED_FLOATS 16384

/* A new reference to the float of ``value`` (the payload's float32 cast), from
 * the call's cache when it is a small non-negative integer. */
static PyObject *coordinate(int32_t value, PyObject **shared)
{
    int64_t v = as_payload(value);
    if (v < 0 || v >= SHARED_FLOATS)
        return PyFloat_FromDouble((double)v);
    if (!shared[v] && !(shared[v] = PyFloat_FromDouble((double)v)))
        return NULL;
    Py_INCREF(shared[v]);
    return shared[v];
}

static PyObject *points_dicts(PyObject *self, PyObject *args)
{
    Py_buffer b_points, b_counts;
    if (get_polygons(args, &b_points, &b_counts) < 0)
        return NULL;
    const int32_t *points = b_points.buf;
    const int64_t *counts = b_counts.buf;
    Py_ssize_t m = b_counts.len / 8;
    PyObject **shared = PyMem_Calloc(SHARED_FLOATS, sizeof(PyObject *));
    PyObject *out = shared ? PyList_New(m) : PyErr_NoMemory();
    for (Py_ssize_t i = 0; out && i < m; i++) {
        Py_ssize_t count = (Py_ssize_t)counts[i];
        PyObject *polygon = PyList_New(count);
        if (!polygon) {
            Py_CLEAR(out);
            break;
        }
        PyList_SET_ITEM(out, i, polygon);
        for (Py_ssize_t j = 0; j < count; j++, points += 2) {
            PyObject *point = PyDict_New();
            PyObject *x = point ? coordinate(points[0], shared) : NULL;
            PyObject *y = x ? coordinate(points[1], shared) : NULL;
            int failed = !y || PyDict_SetItem(point, KEY_X, x) < 0 || PyDict_SetItem(point, KEY_Y, y) < 0;
            Py_XDECREF(x);
            Py_XDECREF(y);
            if (failed) {
                Py_XDECREF(point);
                Py_CLEAR(out);
                break;
            }
            PyList_SET_ITEM(polygon, j, point);
        }
    }
    if (shared) {
        for (Py_ssize_t v = 0; v < SHARED_FLOATS; v++)
            Py_XDECREF(shared[v]);
        PyMem_Free(shared);
    }
    PyBuffer_Release(&b_points);
    PyBuffer_Release(&b_counts);
    return out;
}

static PyMethodDef methods[] = {
    {"paint_intervals", paint_intervals, METH_VARARGS,
     "paint_intervals(starts, stops, base, canvas): canvas = 0, then 1 on every [start - base, stop - base)."},
    {"points_json", points_json, METH_VARARGS,
     "points_json(points, counts) -> list of each polygon's compact JSON points, brackets excluded."},
    {"points_dicts", points_dicts, METH_VARARGS,
     "points_dicts(points, counts) -> list of each polygon's [{'x': float, 'y': float}, ...]."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_polygons_native",
    "Canvas painting and payload points of the response stage (see masks/polygons_native.py).", -1, methods,
};

PyMODINIT_FUNC PyInit__polygons_native(void)
{
    KEY_X = PyUnicode_InternFromString("x");
    KEY_Y = PyUnicode_InternFromString("y");
    if (!KEY_X || !KEY_Y)
        return NULL;
    return PyModule_Create(&module);
}
