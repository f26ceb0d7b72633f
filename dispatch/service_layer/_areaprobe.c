/* The lookup of dispatch.service_layer.area_index, compiled: which areas hold a point.
 *
 * A Probe holds AreaIndex's tables as C arrays (built once per index, by area_index's
 * _Tables): an open-addressing hash from each listed H3 cell to the set of areas the cell
 * lies wholly inside (a "combo", by number) and its boundary entries; each entry an area
 * and its local test (the cell's centre and whether the area holds it, the boundary
 * segments near the cell, and the 16 x 16 raster of area_grid). The steps and the
 * floating point are those area_index's docstring describes, in the same order, so the
 * answers are the ones its hypothesis tests check against shapely; a configuration too
 * close to call goes to `exact`, a Python callable (area number, lng, lat) -> bool that
 * asks the area's prepared shapely geometry.
 *
 * The point's cell comes from h3-py's own C function (its Cython module exports it), so
 * a lookup makes no Python call unless it must ask shapely. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define GRID 16
#define RASTER_BYTES (GRID * GRID / 4) /* two bits a square */
#define EXACT 2                        /* area_grid.EXACT */
#define TOO_CLOSE 1e-12                /* area_grid._TOO_CLOSE */
#define ROUNDING 1e-9 /* degrees (0.1 mm) off holding_near's reach: far past floats' errors */
#define MAX_LEVELS 16
#define LOCAL_FIELDS 7 /* cx, cy, x0, y0, per_x, per_y, centre_in */
#define SMALL 32

typedef uint64_t (*latlng_to_cell_fn)(double, double, int, int);
static latlng_to_cell_fn h3_latlng_to_cell;

typedef struct {
    uint64_t cell; /* 0: an empty slot (no H3 cell is 0) */
    int32_t combo; /* the set of areas the cell lies wholly inside */
    int32_t first; /* its boundary entries: edges[first, first + count) */
    int32_t count;
} Slot;

typedef struct {
    int32_t area;  /* its place in AreaIndex.areas */
    int32_t local; /* its local test, or -1: ask `exact` */
} Edge;

typedef struct {
    double cx, cy;           /* the cell's centre */
    double x0, y0;           /* the raster's corner ... */
    double per_x, per_y;     /* ... and squares per degree */
    int32_t seg_first;       /* segs[4 * seg_first ...] */
    int32_t seg_count;
    uint8_t centre_in;
    uint8_t raster[RASTER_BYTES];
} Local;

typedef struct {
    PyObject_HEAD
    Slot *slots;
    uint64_t mask;
    int shift;
    Py_ssize_t n_keys;
    int n_levels;
    uint64_t clear[MAX_LEVELS], bits[MAX_LEVELS]; /* coarser cells: ancestor by bits */
    Edge *edges;
    Local *locals;
    double *segs;
    int32_t *combo_first, *combo_count, *combo_areas;
    PyObject *combos; /* tuple: per combo, its areas as a tuple (returned as it is) */
    PyObject *areas;  /* tuple: AreaIndex.areas */
    PyObject *exact;
    int res;
} Probe;

/* A growable list of ints with room for a few on the stack. */
typedef struct {
    Py_ssize_t n, cap;
    int64_t *v;
    int64_t small[SMALL];
} Ints;

static void ints_init(Ints *a) {
    a->n = 0;
    a->cap = SMALL;
    a->v = a->small;
}

static void ints_free(Ints *a) {
    if (a->v != a->small) PyMem_Free(a->v);
}

static int ints_push(Ints *a, int64_t x) {
    if (a->n == a->cap) {
        Py_ssize_t cap = a->cap * 2;
        int64_t *v = PyMem_Malloc((size_t)cap * sizeof(int64_t));
        if (v == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        memcpy(v, a->v, (size_t)a->n * sizeof(int64_t));
        ints_free(a);
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = x;
    return 0;
}

/* -- the lookup -------------------------------------------------------------------------- */
static inline const Slot *find(const Probe *p, uint64_t cell) {
    uint64_t i = (cell * 0x9E3779B97F4A7C15ull) >> p->shift;
    for (;;) {
        const Slot *s = &p->slots[i];
        if (s->cell == cell) return s;
        if (s->cell == 0) return NULL;
        i = (i + 1) & p->mask;
    }
}

typedef struct {
    int n;
    const Slot *at[MAX_LEVELS + 1];
} Hits;

/* The cell's entries: a listed resolution-10 cell carries its ancestors' too; a cell not
 * listed has its ancestors looked up, coarsest first. */
static void hits_of(const Probe *p, uint64_t cell, Hits *h) {
    h->n = 0;
    if (p->n_keys == 0) return;
    const Slot *s = find(p, cell);
    if (s != NULL) {
        h->at[h->n++] = s;
        return;
    }
    for (int l = 0; l < p->n_levels; l++) {
        s = find(p, (cell & ~p->clear[l]) | p->bits[l]);
        if (s != NULL) h->at[h->n++] = s;
    }
}

/* The table slots hits_of(cell) will read, fetched ahead. */
static inline void prefetch_hits(const Probe *p, uint64_t cell) {
    if (p->n_keys == 0) return;
    __builtin_prefetch(&p->slots[(cell * 0x9E3779B97F4A7C15ull) >> p->shift]);
    for (int l = 0; l < p->n_levels; l++) {
        uint64_t up = (cell & ~p->clear[l]) | p->bits[l];
        __builtin_prefetch(&p->slots[(up * 0x9E3779B97F4A7C15ull) >> p->shift]);
    }
}

/* What the hits' slots point to: their boundary entries and area sets. */
static inline void prefetch_entries(const Probe *p, const Hits *h) {
    for (int j = 0; j < h->n; j++) {
        const Slot *s = h->at[j];
        if (s->count > 0) __builtin_prefetch(&p->edges[s->first]);
        __builtin_prefetch(&p->combo_first[s->combo]);
        __builtin_prefetch(&p->combo_count[s->combo]);
    }
}

/* What those point to: the entries' local tests (or, with `segments`, the tests'
 * segments: a pass later, once the tests are at hand), the sets' areas. */
static inline void prefetch_tests(const Probe *p, const Hits *h, int segments) {
    for (int j = 0; j < h->n; j++) {
        const Slot *s = h->at[j];
        if (!segments && p->combo_count[s->combo] > 0)
            __builtin_prefetch(&p->combo_areas[p->combo_first[s->combo]]);
        for (int32_t e = s->first; e < s->first + s->count; e++) {
            int32_t local = p->edges[e].local;
            if (local < 0) continue;
            const Local *c = &p->locals[local];
            if (segments) {
                __builtin_prefetch(p->segs + 4 * (size_t)c->seg_first);
            } else {
                __builtin_prefetch(c);
                __builtin_prefetch((const char *)c + 64);
            }
        }
    }
}

/* Which side of a->b the point c is: 1 with its sign in *det, 0 when too close to tell
 */
static inline int orient(double ax, double ay, double bx, double by, double cx, double cy,
                         double *det) {
    double left = (bx - ax) * (cy - ay);
    double right = (by - ay) * (cx - ax);
    double d = left - right;
    if (fabs(d) <= TOO_CLOSE * (fabs(left) + fabs(right)) || d == 0.0) return 0;
    *det = d;
    return 1;
}

/* Inside by the parity of boundary crossings between the point and the cell's centre:
 * 1 or 0, -1 when too close to call. */
static int local_test(const Probe *p, const Local *c, double x, double y) {
    double cx = c->cx, cy = c->cy;
    double lox = x < cx ? x : cx, hix = x < cx ? cx : x;
    double loy = y < cy ? y : cy, hiy = y < cy ? cy : y;
    const double *s = p->segs + 4 * (size_t)c->seg_first;
    int crossings = 0;
    for (int32_t k = 0; k < c->seg_count; k++, s += 4) {
        double ax = s[0], ay = s[1], bx = s[2], by = s[3];
        if ((ax < lox && bx < lox) || (ax > hix && bx > hix)) continue;
        if ((ay < loy && by < loy) || (ay > hiy && by > hiy)) continue;
        double d1, d2, d3, d4;
        if (!orient(ax, ay, bx, by, x, y, &d1) || !orient(ax, ay, bx, by, cx, cy, &d2) ||
            !orient(x, y, cx, cy, ax, ay, &d3) || !orient(x, y, cx, cy, bx, by, &d4))
            return -1;
        if ((d1 > 0) != (d2 > 0) && (d3 > 0) != (d4 > 0)) crossings++;
    }
    return c->centre_in != (crossings & 1);
}

/* The raster first (a square the boundary keeps away from answers for all its points),
 * then the local test: 1, 0, or -1 when too close to call. */
static inline int decide(const Probe *p, const Local *c, double lng, double lat) {
    double u = (lng - c->x0) * c->per_x, v = (lat - c->y0) * c->per_y;
    if (0.0 <= u && u < GRID && 0.0 <= v && v < GRID) {
        int k = (int)v * GRID + (int)u;
        int code = (c->raster[k >> 2] >> ((k & 3) << 1)) & 3;
        if (code != EXACT) return code != 0;
    }
    return local_test(p, c, lng, lat);
}

/* The distance from (x, y) to the nearest of the cell's segments. */
static double nearest(const Probe *p, const Local *c, double x, double y) {
    double best = INFINITY;
    const double *s = p->segs + 4 * (size_t)c->seg_first;
    for (int32_t k = 0; k < c->seg_count; k++, s += 4) {
        double ax = s[0], ay = s[1], bx = s[2], by = s[3];
        double dx = bx - ax, dy = by - ay;
        double length2 = dx * dx + dy * dy;
        double t = length2 == 0.0 ? 0.0 : ((x - ax) * dx + (y - ay) * dy) / length2;
        t = t < 0.0 ? 0.0 : t > 1.0 ? 1.0 : t;
        double ex = ax + t * dx - x, ey = ay + t * dy - y;
        double d = ex * ex + ey * ey;
        if (d < best) best = d;
    }
    return sqrt(best);
}

static int ask(const Probe *p, int32_t area, double lng, double lat) {
    PyObject *r = PyObject_CallFunction(p->exact, "idd", (int)area, lng, lat);
    if (r == NULL) return -1;
    int answer = PyObject_IsTrue(r);
    Py_DECREF(r);
    return answer;
}

/* The hits' boundary entries decided for the point: the areas holding it appended to
 * `held`; with `near`, how far it may move within its cell and keep its answer (degrees;
 * INFINITY with no boundary near, 0.0 when not known). -1: a Python error. */
static int edges_of(const Probe *p, const Hits *h, double lat, double lng, Ints *held,
                    double *near) {
    double reach = INFINITY;
    int known = 1;
    for (int j = 0; j < h->n; j++) {
        const Slot *s = h->at[j];
        for (int32_t e = s->first; e < s->first + s->count; e++) {
            const Edge *edge = &p->edges[e];
            int answer = -1;
            if (edge->local >= 0) {
                const Local *c = &p->locals[edge->local];
                answer = decide(p, c, lng, lat);
                if (near != NULL && known) {
                    double d = nearest(p, c, lng, lat);
                    if (d < reach) reach = d;
                }
            } else {
                known = 0;
            }
            if (answer < 0) answer = ask(p, edge->area, lng, lat);
            if (answer < 0) return -1;
            if (answer && ints_push(held, edge->area) < 0) return -1;
        }
    }
    if (near != NULL) {
        double r = reach - ROUNDING;
        *near = !known ? 0.0 : r < 0.0 ? 0.0 : r;
    }
    return 0;
}

/* The areas as AreaIndex.holding returns them: a cell wholly inside its areas answers
 * with its combo's tuple as it is; otherwise a list. */
static PyObject *found(const Probe *p, const Hits *h, const Ints *held) {
    if (h->n == 0) return Py_NewRef(PyTuple_GET_ITEM(p->combos, 0));
    PyObject *first = PyTuple_GET_ITEM(p->combos, h->at[0]->combo);
    if (h->n == 1 && held->n == 0) return Py_NewRef(first);
    PyObject *out = PyList_New(0);
    if (out == NULL) return NULL;
    for (int j = 0; j < h->n; j++) {
        PyObject *combo = PyTuple_GET_ITEM(p->combos, h->at[j]->combo);
        for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(combo); k++)
            if (PyList_Append(out, PyTuple_GET_ITEM(combo, k)) < 0) goto fail;
    }
    for (Py_ssize_t k = 0; k < held->n; k++)
        if (PyList_Append(out, PyTuple_GET_ITEM(p->areas, held->v[k])) < 0) goto fail;
    return out;
fail:
    Py_DECREF(out);
    return NULL;
}

static PyObject *lookup(Probe *p, uint64_t cell, double lat, double lng, int with_near) {
    Hits h;
    Ints held;
    double near = INFINITY;
    hits_of(p, cell, &h);
    ints_init(&held);
    if (edges_of(p, &h, lat, lng, &held, with_near ? &near : NULL) < 0) {
        ints_free(&held);
        return NULL;
    }
    PyObject *out = found(p, &h, &held);
    ints_free(&held);
    if (out == NULL || !with_near) return out;
    return Py_BuildValue("(Nd)", out, near);
}

static int cell_of(double lat, double lng, int res, uint64_t *cell) {
    *cell = h3_latlng_to_cell(lat, lng, res, 0);
    return *cell == 1 && PyErr_Occurred() ? -1 : 0; /* h3-py's "except 1" */
}

static int floats(PyObject *const *args, Py_ssize_t n, double *out) {
    for (Py_ssize_t i = 0; i < n; i++) {
        out[i] = PyFloat_AsDouble(args[i]);
        if (out[i] == -1.0 && PyErr_Occurred()) return -1;
    }
    return 0;
}

static PyObject *Probe_holding(Probe *p, PyObject *const *args, Py_ssize_t nargs) {
    double at[2];
    uint64_t cell;
    if (nargs != 2) return PyErr_Format(PyExc_TypeError, "holding(lat, lng)");
    if (floats(args, 2, at) < 0) return NULL;
    if (p->n_keys == 0) return Py_NewRef(PyTuple_GET_ITEM(p->combos, 0));
    if (cell_of(at[0], at[1], p->res, &cell) < 0) return NULL;
    return lookup(p, cell, at[0], at[1], 0);
}

static PyObject *Probe_holding_near(Probe *p, PyObject *const *args, Py_ssize_t nargs) {
    double at[2];
    if (nargs != 3) return PyErr_Format(PyExc_TypeError, "holding_near(cell, lat, lng)");
    long long cell = PyLong_AsLongLong(args[0]);
    if (cell == -1 && PyErr_Occurred()) return NULL;
    if (floats(args + 1, 2, at) < 0) return NULL;
    return lookup(p, (uint64_t)cell, at[0], at[1], 1);
}

/* The places of the areas the hits' cells lie wholly inside, appended to `held`. */
static int combos_of(const Probe *p, const Hits *h, Ints *held) {
    for (int j = 0; j < h->n; j++) {
        int32_t c = h->at[j]->combo;
        for (int32_t k = 0; k < p->combo_count[c]; k++)
            if (ints_push(held, p->combo_areas[p->combo_first[c] + k]) < 0) return -1;
    }
    return 0;
}

/* A contiguous buffer of exactly n items of `size` bytes. */
static int buffer(PyObject *obj, Py_buffer *view, int writable, Py_ssize_t size,
                  Py_ssize_t n, const char *what) {
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | (writable ? PyBUF_WRITABLE : 0)) < 0)
        return -1;
    if (view->len != size * n) {
        PyBuffer_Release(view);
        PyErr_Format(PyExc_ValueError, "%s: %zd bytes, %zd expected", what, view->len, size * n);
        return -1;
    }
    return 0;
}

static PyObject *Probe_holding_many(Probe *p, PyObject *args) {
    PyObject *cells_o, *lats_o, *lngs_o, *offsets_o, *near_o;
    if (!PyArg_ParseTuple(args, "OOOOO", &cells_o, &lats_o, &lngs_o, &offsets_o, &near_o))
        return NULL;
    Py_buffer cells, lats, lngs, offsets, near;
    PyObject *out = NULL;
    int got = 0;
    if (PyObject_GetBuffer(lats_o, &lats, PyBUF_C_CONTIGUOUS) < 0) return NULL;
    got = 1;
    Py_ssize_t n = lats.len / (Py_ssize_t)sizeof(double);
    if (buffer(lngs_o, &lngs, 0, sizeof(double), n, "lngs") < 0) goto done;
    got = 2;
    if (buffer(cells_o, &cells, 0, sizeof(int64_t), n, "cells") < 0) goto done;
    got = 3;
    if (buffer(offsets_o, &offsets, 1, sizeof(int64_t), n + 1, "offsets") < 0) goto done;
    got = 4;
    int with_near = near_o != Py_None;
    if (with_near && buffer(near_o, &near, 1, sizeof(double), n, "near") < 0) goto done;
    got = with_near ? 5 : 4;
    {
        const double *la = lats.buf, *lo = lngs.buf;
        const int64_t *ce = cells.buf;
        int64_t *off = offsets.buf;
        double *reach = with_near ? near.buf : NULL;
        Ints held;
        Hits h;
        ints_init(&held);
        off[0] = 0;
        for (Py_ssize_t i = 0; i < n; i++) {
            hits_of(p, (uint64_t)ce[i], &h);
            if (combos_of(p, &h, &held) < 0 ||
                edges_of(p, &h, la[i], lo[i], &held, reach ? reach + i : NULL) < 0) {
                ints_free(&held);
                goto done;
            }
            off[i + 1] = held.n;
        }
        out = PyBytes_FromStringAndSize((const char *)held.v, held.n * (Py_ssize_t)sizeof(int64_t));
        ints_free(&held);
    }
done:
    if (got >= 5) PyBuffer_Release(&near);
    if (got >= 4) PyBuffer_Release(&offsets);
    if (got >= 3) PyBuffer_Release(&cells);
    if (got >= 2) PyBuffer_Release(&lngs);
    if (got >= 1) PyBuffer_Release(&lats);
    return out;
}

/* -- building ---------------------------------------------------------------------------- */
static void *copy_of(Py_buffer *b) {
    void *out = PyMem_Malloc(b->len ? (size_t)b->len : 1);
    if (out == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    memcpy(out, b->buf, (size_t)b->len);
    return out;
}

static int fail(const char *what) {
    PyErr_Format(PyExc_ValueError, "inconsistent tables: %s", what);
    return -1;
}

/* Every index read by a lookup in range, so a lookup never checks one. */
static int check(Probe *p, Py_ssize_t n_edges, Py_ssize_t n_locals, Py_ssize_t n_segs,
                 Py_ssize_t n_combos, Py_ssize_t n_combo_areas) {
    Py_ssize_t n_areas = PyTuple_GET_SIZE(p->areas);
    if (n_combos < 1 || PyTuple_GET_SIZE(p->combos) != n_combos) return fail("combos");
    if (PyTuple_GET_SIZE(PyTuple_GET_ITEM(p->combos, 0)) != 0) return fail("combo 0");
    for (Py_ssize_t i = 0; i < n_combos; i++) {
        int64_t a = p->combo_first[i], c = p->combo_count[i];
        PyObject *t = PyTuple_GET_ITEM(p->combos, i);
        if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) != c || a < 0 || c < 0 || a + c > n_combo_areas)
            return fail("combo ranges");
    }
    for (Py_ssize_t i = 0; i < n_combo_areas; i++)
        if (p->combo_areas[i] < 0 || p->combo_areas[i] >= n_areas) return fail("combo areas");
    for (uint64_t i = 0; i <= p->mask; i++) {
        const Slot *s = &p->slots[i];
        if (s->cell == 0) continue;
        if (s->combo < 0 || s->combo >= n_combos || s->first < 0 || s->count < 0 ||
            (int64_t)s->first + s->count > n_edges)
            return fail("keys");
    }
    for (Py_ssize_t i = 0; i < n_edges; i++) {
        const Edge *e = &p->edges[i];
        if (e->area < 0 || e->area >= n_areas || e->local < -1 || e->local >= n_locals)
            return fail("edges");
    }
    for (Py_ssize_t i = 0; i < n_locals; i++) {
        const Local *c = &p->locals[i];
        if (c->seg_first < 0 || c->seg_count < 0 || (int64_t)c->seg_first + c->seg_count > n_segs)
            return fail("segment ranges");
    }
    return 0;
}

static int Probe_init(Probe *p, PyObject *args, PyObject *kwds) {
    static char *names[] = {"cells", "keys", "levels", "edges", "locals", "seg_ranges",
                            "rasters", "segs", "combo_ranges", "combo_areas", "combos",
                            "areas", "exact", "res", NULL};
    Py_buffer b[10];
    PyObject *combos, *areas, *exact;
    int res, got = 0, rc = -1;
    if (p->slots != NULL) {
        PyErr_SetString(PyExc_TypeError, "a Probe is built once");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "y*y*y*y*y*y*y*y*y*y*O!O!Oi", names, &b[0],
                                     &b[1], &b[2], &b[3], &b[4], &b[5], &b[6], &b[7], &b[8],
                                     &b[9], &PyTuple_Type, &combos, &PyTuple_Type, &areas,
                                     &exact, &res))
        return -1;
    got = 10;
    Py_buffer *cells = &b[0], *keys = &b[1], *levels = &b[2], *edges = &b[3], *locals = &b[4],
              *seg_ranges = &b[5], *rasters = &b[6], *segs = &b[7], *combo_ranges = &b[8],
              *combo_areas = &b[9];
    Py_ssize_t n_keys = cells->len / 8, n_locals = locals->len / (8 * LOCAL_FIELDS);
    Py_ssize_t n_levels = levels->len / 16, n_combos = combo_ranges->len / 8;
    if (cells->len % 8 || keys->len != 12 * n_keys || levels->len % 16 ||
        n_levels > MAX_LEVELS || edges->len % 8 || locals->len % (8 * LOCAL_FIELDS) ||
        seg_ranges->len != 8 * n_locals || rasters->len != RASTER_BYTES * n_locals ||
        segs->len % 32 || combo_ranges->len % 8 || combo_areas->len % 4) {
        fail("sizes");
        goto done;
    }
    Py_INCREF(combos);
    p->combos = combos;
    Py_INCREF(areas);
    p->areas = areas;
    Py_INCREF(exact);
    p->exact = exact;
    p->res = res;
    p->n_keys = n_keys;
    p->n_levels = (int)n_levels;
    const int64_t *lv = levels->buf;
    for (int l = 0; l < p->n_levels; l++) {
        p->clear[l] = (uint64_t)lv[2 * l];
        p->bits[l] = (uint64_t)lv[2 * l + 1];
    }
    /* At most half full: a miss ends after a probe or two. */
    int log2 = 1;
    while (((Py_ssize_t)1 << log2) < 2 * n_keys) log2++;
    p->mask = ((uint64_t)1 << log2) - 1;
    p->shift = 64 - log2;
    p->slots = PyMem_Calloc((size_t)p->mask + 1, sizeof(Slot));
    if (p->slots == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    const int64_t *cv = cells->buf;
    const int32_t *kv = keys->buf;
    for (Py_ssize_t i = 0; i < n_keys; i++) {
        uint64_t cell = (uint64_t)cv[i];
        if (cell == 0 || find(p, cell) != NULL) {
            fail("cells: 0 or listed twice");
            goto done;
        }
        uint64_t at = (cell * 0x9E3779B97F4A7C15ull) >> p->shift;
        while (p->slots[at].cell != 0) at = (at + 1) & p->mask;
        p->slots[at] = (Slot){cell, kv[3 * i], kv[3 * i + 1], kv[3 * i + 2]};
    }
    p->locals = PyMem_Calloc(n_locals ? (size_t)n_locals : 1, sizeof(Local));
    if (p->locals == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    const double *lf = locals->buf;
    const int32_t *sr = seg_ranges->buf;
    const uint8_t *rs = rasters->buf;
    for (Py_ssize_t i = 0; i < n_locals; i++) {
        Local *c = &p->locals[i];
        const double *f = lf + LOCAL_FIELDS * i;
        c->cx = f[0], c->cy = f[1], c->x0 = f[2], c->y0 = f[3], c->per_x = f[4], c->per_y = f[5];
        c->centre_in = f[6] != 0.0;
        c->seg_first = sr[2 * i], c->seg_count = sr[2 * i + 1];
        memcpy(c->raster, rs + RASTER_BYTES * i, RASTER_BYTES);
    }
    if ((p->edges = copy_of(edges)) == NULL || (p->segs = copy_of(segs)) == NULL ||
        (p->combo_areas = copy_of(combo_areas)) == NULL)
        goto done;
    p->combo_first = PyMem_Malloc((size_t)(n_combos ? n_combos : 1) * sizeof(int32_t));
    p->combo_count = PyMem_Malloc((size_t)(n_combos ? n_combos : 1) * sizeof(int32_t));
    if (p->combo_first == NULL || p->combo_count == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    const int32_t *cr = combo_ranges->buf;
    for (Py_ssize_t i = 0; i < n_combos; i++) {
        p->combo_first[i] = cr[2 * i];
        p->combo_count[i] = cr[2 * i + 1];
    }
    rc = check(p, edges->len / 8, n_locals, segs->len / 32, n_combos, combo_areas->len / 4);
    if (rc == 0) {
        /* The combos (tens of thousands of tuples of CompiledAreas, frozen, which refer to
         * none of them) can be in no reference cycle: untracked, a full garbage collection
         * does not walk them. They are freed by their reference counts, as ever. */
        for (Py_ssize_t i = 0; i < n_combos; i++) {
            PyObject *t = PyTuple_GET_ITEM(combos, i);
            if (PyObject_GC_IsTracked(t)) PyObject_GC_UnTrack(t);
        }
        if (PyObject_GC_IsTracked(combos)) PyObject_GC_UnTrack(combos);
    }
done:
    for (int i = 0; i < got; i++) PyBuffer_Release(&b[i]);
    return rc;
}

static int Probe_traverse(Probe *p, visitproc visit, void *arg) {
    Py_VISIT(p->combos);
    Py_VISIT(p->areas);
    Py_VISIT(p->exact);
    return 0;
}

static int Probe_clear(Probe *p) {
    Py_CLEAR(p->combos);
    Py_CLEAR(p->areas);
    Py_CLEAR(p->exact);
    return 0;
}

static void Probe_dealloc(Probe *p) {
    PyObject_GC_UnTrack(p);
    Probe_clear(p);
    PyMem_Free(p->slots);
    PyMem_Free(p->edges);
    PyMem_Free(p->locals);
    PyMem_Free(p->segs);
    PyMem_Free(p->combo_first);
    PyMem_Free(p->combo_count);
    PyMem_Free(p->combo_areas);
    Py_TYPE(p)->tp_free((PyObject *)p);
}

static PyMethodDef Probe_methods[] = {
    {"holding", (PyCFunction)(void (*)(void))Probe_holding, METH_FASTCALL,
     "holding(lat, lng): the areas holding a valid point."},
    {"holding_near", (PyCFunction)(void (*)(void))Probe_holding_near, METH_FASTCALL,
     "holding_near(cell, lat, lng): (the areas, how far the point may move in its cell)."},
    {"holding_many", (PyCFunction)Probe_holding_many, METH_VARARGS,
     "holding_many(cells, lats, lngs, offsets, near): the held areas' places as int64 "
     "bytes; offsets (int64, n + 1) and near (float64, n, or None) filled."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ProbeType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "dispatch.service_layer._areaprobe.Probe",
    .tp_doc = "An AreaIndex's lookup tables, compiled.",
    .tp_basicsize = sizeof(Probe),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Probe_init,
    .tp_dealloc = (destructor)Probe_dealloc,
    .tp_traverse = (traverseproc)Probe_traverse,
    .tp_clear = (inquiry)Probe_clear,
    .tp_methods = Probe_methods,
};

/* -- what an instance last found for each driver (geofence.Geofence) -------------------- *
 * Seen keeps, per driver, the areas the driver's last look found (sorted area numbers of
 * the index it was found with), when to ask the backend again (`due`, ms), the version of
 * the areas then, and where the fix was (its cell, lng, lat, and how far it may move in
 * that cell and keep those areas, squared). `screen` takes a batch of fixes (driver, lat,
 * lng) and does geofence.py's per-fix work in one call: the last fix of each driver, its
 * cell, the same-cell skip, the look, and the comparison with what was last found; it
 * answers only the fixes whose areas must go to the backend, each with the look to
 * `remember` once the backend has answered. Area numbers are places in the index's
 * areas: a look is compared only with one found by the same Probe (and version). */
#define INLINE_AREAS 8
#define FEW 8 /* fixes a screen keeps its scratch for on the stack */
/* A screen's scratch per fix: its entry, a driver's place in order, a look's cell and place */
#define SCRATCH_EACH (2 * sizeof(Py_ssize_t) + sizeof(uint64_t) + 2 * sizeof(double))

typedef struct {
    int64_t due, version;
    uint64_t gen; /* the Probe it was found with: Seen numbers the probes it meets */
    uint64_t cell;
    double lng, lat, near2;
    int32_t n;   /* areas holding it; -1: nothing known (only named in a batch) */
    int32_t cap; /* of heap */
    int32_t *heap;
    int32_t small[INLINE_AREAS];
    uint64_t batch; /* the last screen that named the driver, and its last fix there */
    Py_ssize_t at;
} Entry;

/* A look as `screen` hands it out and `remember` takes it back (the bytes of a token). */
typedef struct {
    int64_t version;
    uint64_t gen, cell;
    double lng, lat, near2;
    int32_t n, pad;
    /* then n int32 area numbers, sorted */
} Look;

typedef struct {
    PyObject_HEAD
    PyObject *slots; /* dict: driver -> its entry's number */
    Entry *entries;
    Py_ssize_t n_entries, cap;
    Py_ssize_t *free; /* numbers of forgotten entries, to reuse */
    Py_ssize_t n_free, free_cap;
    Py_ssize_t known; /* entries with n >= 0 */
    uint64_t batch;
    PyObject *probe, *holds; /* the last Probe screened with and its holds, numbered gen */
    uint64_t gen;
} Seen;

static inline const int32_t *areas_of(const Entry *e) {
    return e->n <= INLINE_AREAS ? e->small : e->heap;
}

static int set_areas(Entry *e, const int32_t *areas, int32_t n) {
    if (n > INLINE_AREAS) {
        if (n > e->cap) {
            int32_t *heap = PyMem_Realloc(e->heap, (size_t)n * sizeof(int32_t));
            if (heap == NULL) {
                PyErr_NoMemory();
                return -1;
            }
            e->heap = heap;
            e->cap = n;
        }
        memcpy(e->heap, areas, (size_t)n * sizeof(int32_t));
    } else if (n > 0) {
        memcpy(e->small, areas, (size_t)n * sizeof(int32_t));
    }
    e->n = n;
    return 0;
}

/* The entry of a driver: its number, or -1 with no entry (and no error) when `create` is
 * 0; -2 on an error. */
static Py_ssize_t entry_of(Seen *s, PyObject *driver, int create) {
    PyObject *at = PyDict_GetItemWithError(s->slots, driver);
    if (at != NULL) return PyLong_AsSsize_t(at);
    if (PyErr_Occurred()) return -2;
    if (!create) return -1;
    Py_ssize_t k;
    int reused = s->n_free > 0;
    if (reused) {
        k = s->free[--s->n_free];
    } else {
        if (s->n_entries == s->cap) {
            Py_ssize_t cap = s->cap ? 2 * s->cap : 1024;
            Entry *entries = PyMem_Realloc(s->entries, (size_t)cap * sizeof(Entry));
            if (entries == NULL) {
                PyErr_NoMemory();
                return -2;
            }
            s->entries = entries;
            s->cap = cap;
        }
        k = s->n_entries++;
        s->entries[k].heap = NULL;
        s->entries[k].cap = 0;
    }
    Entry *e = &s->entries[k];
    e->n = -1;
    e->batch = 0;
    PyObject *number = PyLong_FromSsize_t(k);
    if (number == NULL || PyDict_SetItem(s->slots, driver, number) < 0) {
        Py_XDECREF(number);
        if (reused)
            s->n_free++; /* back where it was */
        else
            s->n_entries--;
        return -2;
    }
    Py_DECREF(number);
    return k;
}

static int grow_free(Seen *s) {
    if (s->n_free < s->free_cap) return 0;
    Py_ssize_t cap = s->free_cap ? 2 * s->free_cap : 1024;
    Py_ssize_t *free = PyMem_Realloc(s->free, (size_t)cap * sizeof(Py_ssize_t));
    if (free == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    s->free = free;
    s->free_cap = cap;
    return 0;
}

static void sort_unique(Ints *a) {
    int64_t *v = a->v;
    for (Py_ssize_t i = 1; i < a->n; i++) { /* insertion sort: a handful of areas */
        int64_t x = v[i];
        Py_ssize_t j = i;
        for (; j > 0 && v[j - 1] > x; j--) v[j] = v[j - 1];
        v[j] = x;
    }
    Py_ssize_t m = 0;
    for (Py_ssize_t i = 0; i < a->n; i++)
        if (m == 0 || v[m - 1] != v[i]) v[m++] = v[i];
    a->n = m;
}

static int same_areas(const Entry *e, const Ints *sorted) {
    if (e->n != sorted->n) return 0;
    const int32_t *mine = areas_of(e);
    for (Py_ssize_t i = 0; i < sorted->n; i++)
        if (mine[i] != sorted->v[i]) return 0;
    return 1;
}

/* (driver, {area id: dwell ms} of the areas found, in the lookup's order, the look as
 * bytes); `holds`: per area number, its (id, dwell ms). */
static PyObject *changed(PyObject *holds, PyObject *driver, const Ints *held, const Ints *sorted,
                         const Look *look) {
    PyObject *found = PyDict_New();
    if (found == NULL) return NULL;
    for (Py_ssize_t k = 0; k < held->n; k++) {
        PyObject *hold = PyTuple_GET_ITEM(holds, held->v[k]);
        if (PyDict_SetItem(found, PyTuple_GET_ITEM(hold, 0), PyTuple_GET_ITEM(hold, 1)) < 0) {
            Py_DECREF(found);
            return NULL;
        }
    }
    Py_ssize_t size = (Py_ssize_t)sizeof(Look) + sorted->n * (Py_ssize_t)sizeof(int32_t);
    PyObject *token = PyBytes_FromStringAndSize(NULL, size);
    if (token == NULL) {
        Py_DECREF(found);
        return NULL;
    }
    char *buf = PyBytes_AS_STRING(token);
    memcpy(buf, look, sizeof(Look));
    int32_t *areas = (int32_t *)(buf + sizeof(Look));
    for (Py_ssize_t k = 0; k < sorted->n; k++) areas[k] = (int32_t)sorted->v[k];
    return Py_BuildValue("(ONN)", driver, found, token);
}

static PyObject *str_driver_id, *str_lat, *str_lng;

/* A fix's driver (a new reference): a (driver, lat, lng) tuple's first item, or the
 * driver_id of an object with driver_id, lat and lng (a geoindex Position). */
static PyObject *fix_driver(PyObject *fix) {
    if (!PyTuple_Check(fix)) return PyObject_GetAttr(fix, str_driver_id);
    if (PyTuple_GET_SIZE(fix) != 3)
        return PyErr_Format(PyExc_TypeError, "screen: a fix is (driver, lat, lng)");
    return Py_NewRef(PyTuple_GET_ITEM(fix, 0));
}

static int fix_place(PyObject *fix, double *lat, double *lng) {
    PyObject *y, *x;
    if (PyTuple_Check(fix)) {
        y = Py_NewRef(PyTuple_GET_ITEM(fix, 1));
        x = Py_NewRef(PyTuple_GET_ITEM(fix, 2));
    } else {
        if ((y = PyObject_GetAttr(fix, str_lat)) == NULL) return -1;
        if ((x = PyObject_GetAttr(fix, str_lng)) == NULL) {
            Py_DECREF(y);
            return -1;
        }
    }
    *lat = PyFloat_AsDouble(y);
    *lng = PyFloat_AsDouble(x);
    Py_DECREF(y);
    Py_DECREF(x);
    return (*lat == -1.0 || *lng == -1.0) && PyErr_Occurred() ? -1 : 0;
}

static PyObject *Seen_screen(Seen *s, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 6)
        return PyErr_Format(PyExc_TypeError,
                            "screen(probe, holds, fixes, version, now_ms, known_only)");
    if (!PyObject_TypeCheck(args[0], &ProbeType))
        return PyErr_Format(PyExc_TypeError, "screen: a Probe expected");
    Probe *p = (Probe *)args[0];
    PyObject *holds = args[1];
    if ((PyObject *)p != s->probe || holds != s->holds) { /* checked once per index */
        if (!PyTuple_Check(holds) || PyTuple_GET_SIZE(holds) != PyTuple_GET_SIZE(p->areas))
            return PyErr_Format(PyExc_TypeError, "screen: holds, a tuple of one per area");
        for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(holds); k++) {
            PyObject *hold = PyTuple_GET_ITEM(holds, k);
            if (!PyTuple_Check(hold) || PyTuple_GET_SIZE(hold) != 2)
                return PyErr_Format(PyExc_TypeError, "screen: each hold an (id, dwell ms)");
        }
        Py_XSETREF(s->probe, Py_NewRef((PyObject *)p));
        Py_XSETREF(s->holds, Py_NewRef(holds));
        s->gen++;
    }
    int64_t version = PyLong_AsLongLong(args[3]);
    if (version == -1 && PyErr_Occurred()) return NULL;
    int64_t now = PyLong_AsLongLong(args[4]);
    if (now == -1 && PyErr_Occurred()) return NULL;
    int known_only = PyObject_IsTrue(args[5]);
    if (known_only < 0) return NULL;
    PyObject *seq = PySequence_Fast(args[2], "screen: fixes must be a sequence");
    if (seq == NULL) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq), m = 0, n_looks = 0;
    _Alignas(8) char few_scratch[FEW * SCRATCH_EACH];
    PyObject **fixes = PySequence_Fast_ITEMS(seq);
    PyObject *out = NULL;
    /* Per fix its entry (ks), then per driver named (order) the cell and place of its
     * last fix, for those that need a look. */
    char *scratch = n <= FEW ? few_scratch : PyMem_Malloc((size_t)n * SCRATCH_EACH);
    Py_ssize_t *ks = (Py_ssize_t *)scratch, *order = ks + n;
    uint64_t *cells = (uint64_t *)(order + n);
    double *lats = (double *)(cells + n), *lngs = lats + n;
    Hits *hits = NULL, few_hits[FEW]; /* a single fix's call (update_location) mallocs none */
    Ints held, sorted;
    ints_init(&held);
    ints_init(&sorted);
    if (scratch == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    /* Each driver once, at its last fix, in the order first named. The entries are
     * found first and fetched ahead (each is a cache miss on a busy instance). */
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *driver = fix_driver(fixes[i]);
        if (driver == NULL) goto done;
        Py_ssize_t k = entry_of(s, driver, !known_only);
        Py_DECREF(driver);
        if (k == -2) goto done;
        ks[i] = k;
        if (k >= 0) {
            __builtin_prefetch(&s->entries[k]);
            __builtin_prefetch((char *)&s->entries[k] + 64);
        }
    }
    uint64_t batch = ++s->batch;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t k = ks[i];
        if (k < 0 || (known_only && s->entries[k].n < 0)) continue;
        Entry *e = &s->entries[k];
        if (e->batch != batch) {
            e->batch = batch;
            order[m++] = k;
        }
        e->at = i;
    }
    /* Each one's cell; the same-cell skip; the lookup tables of those left fetched
     * ahead while the next cells are computed. */
    for (Py_ssize_t j = 0; j < m; j++) {
        Entry *e = &s->entries[order[j]];
        double lat, lng;
        if (fix_place(fixes[e->at], &lat, &lng) < 0) goto done;
        uint64_t cell;
        if (cell_of(lat, lng, p->res, &cell) < 0) goto done;
        int fresh = e->n >= 0 && now < e->due && e->version == version && e->gen == s->gen;
        if (fresh && e->cell == cell) {
            double dx = lng - e->lng, dy = lat - e->lat;
            if (dx * dx + dy * dy < e->near2) continue; /* the same areas: no look */
        }
        prefetch_hits(p, cell);
        order[n_looks] = order[j];
        cells[n_looks] = cell;
        lats[n_looks] = lat;
        lngs[n_looks++] = lng;
    }
    /* The looks' slots are at hand now: what they point to fetched ahead in turn (their
     * boundary entries and area sets, then the entries' tests and segments). */
    hits = n_looks <= FEW ? few_hits : PyMem_Malloc((size_t)n_looks * sizeof(Hits));
    if (hits == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t j = 0; j < n_looks; j++) {
        hits_of(p, cells[j], &hits[j]);
        prefetch_entries(p, &hits[j]);
    }
    for (Py_ssize_t j = 0; j < n_looks; j++) prefetch_tests(p, &hits[j], 0);
    for (Py_ssize_t j = 0; j < n_looks; j++) prefetch_tests(p, &hits[j], 1);
    out = PyList_New(0);
    if (out == NULL) goto done;
    for (Py_ssize_t j = 0; j < n_looks; j++) {
        Entry *e = &s->entries[order[j]];
        uint64_t cell = cells[j];
        double lat = lats[j], lng = lngs[j];
        int fresh = e->n >= 0 && now < e->due && e->version == version && e->gen == s->gen;
        const Hits *h = &hits[j];
        double near = INFINITY;
        held.n = 0;
        if (combos_of(p, h, &held) < 0 || edges_of(p, h, lat, lng, &held, &near) < 0)
            goto fail;
        sorted.n = 0;
        for (Py_ssize_t k = 0; k < held.n; k++)
            if (ints_push(&sorted, held.v[k]) < 0) goto fail;
        sort_unique(&sorted);
        double near2 = near * near;
        if (fresh && same_areas(e, &sorted)) { /* moved, the same areas: nothing to ask */
            e->cell = cell;
            e->lng = lng;
            e->lat = lat;
            e->near2 = near2;
            continue;
        }
        Look look = {version, s->gen, cell, lng, lat, near2, (int32_t)sorted.n, 0};
        PyObject *driver = fix_driver(fixes[e->at]);
        if (driver == NULL) goto fail;
        PyObject *item = changed(holds, driver, &held, &sorted, &look);
        Py_DECREF(driver);
        if (item == NULL) goto fail;
        int rc = PyList_Append(out, item);
        Py_DECREF(item);
        if (rc < 0) goto fail;
    }
    goto done;
fail:
    Py_CLEAR(out);
done:
    ints_free(&held);
    ints_free(&sorted);
    if (hits != few_hits) PyMem_Free(hits);
    if (scratch != few_scratch) PyMem_Free(scratch);
    Py_DECREF(seq);
    return out;
}

static PyObject *Seen_remember(Seen *s, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) return PyErr_Format(PyExc_TypeError, "remember(driver, look, due)");
    char *buf;
    Py_ssize_t size;
    if (PyBytes_AsStringAndSize(args[1], &buf, &size) < 0) return NULL;
    Look look;
    if (size < (Py_ssize_t)sizeof(Look)) goto bad;
    memcpy(&look, buf, sizeof(Look));
    if (look.n < 0 || size != (Py_ssize_t)sizeof(Look) + look.n * (Py_ssize_t)sizeof(int32_t))
        goto bad;
    int64_t due = PyLong_AsLongLong(args[2]);
    if (due == -1 && PyErr_Occurred()) return NULL;
    Py_ssize_t k = entry_of(s, args[0], 1);
    if (k < 0) return NULL;
    Entry *e = &s->entries[k];
    int was_known = e->n >= 0;
    int32_t areas[64], *copy = areas; /* aligned: the token's bytes need not be */
    if (look.n > 64 && (copy = PyMem_Malloc((size_t)look.n * sizeof(int32_t))) == NULL)
        return PyErr_NoMemory();
    memcpy(copy, buf + sizeof(Look), (size_t)look.n * sizeof(int32_t));
    int rc = set_areas(e, copy, look.n);
    if (copy != areas) PyMem_Free(copy);
    if (rc < 0) {
        e->n = -1;
        if (was_known) s->known--;
        return NULL;
    }
    if (!was_known) s->known++;
    e->due = due;
    e->version = look.version;
    e->gen = look.gen;
    e->cell = look.cell;
    e->lng = look.lng;
    e->lat = look.lat;
    e->near2 = look.near2;
    Py_RETURN_NONE;
bad:
    return PyErr_Format(PyExc_ValueError, "remember: not a look screen answered");
}

static PyObject *Seen_forget(Seen *s, PyObject *driver) {
    Py_ssize_t k = entry_of(s, driver, 0);
    if (k == -2) return NULL;
    if (k >= 0) {
        if (grow_free(s) < 0) return NULL;
        if (PyDict_DelItem(s->slots, driver) < 0) return NULL;
        Entry *e = &s->entries[k];
        if (e->n >= 0) s->known--;
        e->n = -1;
        s->free[s->n_free++] = k;
    }
    Py_RETURN_NONE;
}

static PyObject *Seen_clear(Seen *s, PyObject *unused) {
    PyDict_Clear(s->slots);
    for (Py_ssize_t k = 0; k < s->n_entries; k++) PyMem_Free(s->entries[k].heap);
    s->n_entries = 0;
    s->n_free = 0;
    s->known = 0;
    Py_RETURN_NONE;
}

static PyObject *Seen_areas(Seen *s, PyObject *driver) {
    Py_ssize_t k = entry_of(s, driver, 0);
    if (k == -2) return NULL;
    if (k == -1 || s->entries[k].n < 0) Py_RETURN_NONE;
    const Entry *e = &s->entries[k];
    PyObject *out = PyTuple_New(e->n);
    if (out == NULL) return NULL;
    for (int32_t i = 0; i < e->n; i++) {
        PyObject *x = PyLong_FromLong(areas_of(e)[i]);
        if (x == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyTuple_SET_ITEM(out, i, x);
    }
    return out;
}

static Py_ssize_t Seen_len(Seen *s) { return s->known; }

static int Seen_init(Seen *s, PyObject *args, PyObject *kwds) {
    if (!PyArg_ParseTuple(args, ":Seen")) return -1;
    if (s->slots != NULL) {
        PyErr_SetString(PyExc_TypeError, "a Seen is built once");
        return -1;
    }
    s->slots = PyDict_New();
    if (s->slots == NULL) return -1;
    if (grow_free(s) < 0) return -1;
    return 0;
}

static int Seen_traverse(Seen *s, visitproc visit, void *arg) {
    Py_VISIT(s->slots);
    Py_VISIT(s->probe);
    Py_VISIT(s->holds);
    return 0;
}

static int Seen_clear_refs(Seen *s) {
    Py_CLEAR(s->slots);
    Py_CLEAR(s->probe);
    Py_CLEAR(s->holds);
    return 0;
}

static void Seen_dealloc(Seen *s) {
    PyObject_GC_UnTrack(s);
    Seen_clear_refs(s);
    for (Py_ssize_t k = 0; k < s->n_entries; k++) PyMem_Free(s->entries[k].heap);
    PyMem_Free(s->entries);
    PyMem_Free(s->free);
    Py_TYPE(s)->tp_free((PyObject *)s);
}

static PyMethodDef Seen_methods[] = {
    {"screen", (PyCFunction)(void (*)(void))Seen_screen, METH_FASTCALL,
     "screen(probe, holds, fixes, version, now_ms, known_only): of a batch of fixes "
     "((driver, lat, lng) tuples or Positions), each driver's last fix whose areas must go to the backend, as (driver, "
     "{area id: dwell ms} of the areas found (holds: per area, its (id, dwell ms)), the "
     "look to remember), in the order the drivers are first named."},
    {"remember", (PyCFunction)(void (*)(void))Seen_remember, METH_FASTCALL,
     "remember(driver, look, due): a look screen answered, trusted until due (ms)."},
    {"forget", (PyCFunction)Seen_forget, METH_O, "forget(driver): nothing known of it."},
    {"clear", (PyCFunction)Seen_clear, METH_NOARGS, "clear(): nothing known of anyone."},
    {"areas", (PyCFunction)Seen_areas, METH_O,
     "areas(driver): the area numbers last found for it, sorted; None if none known."},
    {NULL, NULL, 0, NULL},
};

static PySequenceMethods Seen_as_sequence = {.sq_length = (lenfunc)Seen_len};

static PyTypeObject SeenType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "dispatch.service_layer._areaprobe.Seen",
    .tp_doc = "What an instance last found for each driver's fix (geofence.Geofence).",
    .tp_basicsize = sizeof(Seen),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Seen_init,
    .tp_dealloc = (destructor)Seen_dealloc,
    .tp_traverse = (traverseproc)Seen_traverse,
    .tp_clear = (inquiry)Seen_clear_refs,
    .tp_methods = Seen_methods,
    .tp_as_sequence = &Seen_as_sequence,
};

/* -- cells -------------------------------------------------------------------------------- */
static PyObject *mod_cell_at(PyObject *m, PyObject *const *args, Py_ssize_t nargs) {
    double at[2];
    uint64_t cell;
    if (nargs != 3) return PyErr_Format(PyExc_TypeError, "cell_at(lat, lng, res)");
    if (floats(args, 2, at) < 0) return NULL;
    long res = PyLong_AsLong(args[2]);
    if (res == -1 && PyErr_Occurred()) return NULL;
    if (cell_of(at[0], at[1], (int)res, &cell) < 0) return NULL;
    return PyLong_FromUnsignedLongLong(cell);
}

static PyObject *mod_cells(PyObject *m, PyObject *args) {
    PyObject *lats_o, *lngs_o, *out_o;
    int res;
    if (!PyArg_ParseTuple(args, "OOiO", &lats_o, &lngs_o, &res, &out_o)) return NULL;
    Py_buffer lats, lngs, out;
    if (PyObject_GetBuffer(lats_o, &lats, PyBUF_C_CONTIGUOUS) < 0) return NULL;
    Py_ssize_t n = lats.len / (Py_ssize_t)sizeof(double);
    PyObject *rc = NULL;
    if (buffer(lngs_o, &lngs, 0, sizeof(double), n, "lngs") < 0) goto no_lngs;
    if (buffer(out_o, &out, 1, sizeof(int64_t), n, "out") < 0) goto no_out;
    const double *la = lats.buf, *lo = lngs.buf;
    int64_t *cells = out.buf;
    for (Py_ssize_t i = 0; i < n; i++) {
        uint64_t cell;
        if (cell_of(la[i], lo[i], res, &cell) < 0) goto failed;
        cells[i] = (int64_t)cell;
    }
    rc = Py_NewRef(Py_None);
failed:
    PyBuffer_Release(&out);
no_out:
    PyBuffer_Release(&lngs);
no_lngs:
    PyBuffer_Release(&lats);
    return rc;
}

static PyMethodDef module_methods[] = {
    {"cell_at", (PyCFunction)(void (*)(void))mod_cell_at, METH_FASTCALL,
     "cell_at(lat, lng, res): the point's H3 cell, as h3.api.basic_int.latlng_to_cell."},
    {"cells", (PyCFunction)mod_cells, METH_VARARGS,
     "cells(lats, lngs, res, out): each point's H3 cell into out (int64)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_areaprobe", "Point-in-area lookups, compiled (area_index).", -1,
    module_methods,
};

/* h3-py's latlng_to_cell as a C function: its Cython module lists it in __pyx_capi__. */
static int import_h3(void) {
    static const char *sig = "H3Index (double, double, int, int __pyx_skip_dispatch)";
    PyObject *mod = PyImport_ImportModule("h3._cy.latlng");
    if (mod == NULL) return -1;
    PyObject *api = PyObject_GetAttrString(mod, "__pyx_capi__");
    Py_DECREF(mod);
    if (api == NULL) return -1;
    PyObject *capsule = PyDict_GetItemString(api, "latlng_to_cell");
    if (capsule == NULL || !PyCapsule_IsValid(capsule, sig)) {
        Py_DECREF(api);
        PyErr_SetString(PyExc_ImportError,
                        "h3._cy.latlng exports no latlng_to_cell of the expected signature");
        return -1;
    }
    h3_latlng_to_cell = (latlng_to_cell_fn)PyCapsule_GetPointer(capsule, sig);
    Py_DECREF(api);
    return h3_latlng_to_cell == NULL ? -1 : 0;
}

PyMODINIT_FUNC PyInit__areaprobe(void) {
    if (import_h3() < 0) return NULL;
    if ((str_driver_id = PyUnicode_InternFromString("driver_id")) == NULL ||
        (str_lat = PyUnicode_InternFromString("lat")) == NULL ||
        (str_lng = PyUnicode_InternFromString("lng")) == NULL)
        return NULL;
    if (PyType_Ready(&ProbeType) < 0 || PyType_Ready(&SeenType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    if (PyModule_AddObjectRef(m, "Probe", (PyObject *)&ProbeType) < 0 ||
        PyModule_AddObjectRef(m, "Seen", (PyObject *)&SeenType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
