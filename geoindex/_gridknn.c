/* The embedded backend's k-nearest store (geoindex/memory.py), compiled: drivers in boxes
 * of a 3-D grid over their unit vectors, searched nearest box first.
 *
 * Why boxes of unit vectors: the straight-line (chord) distance between two points of the
 * unit sphere grows with their great-circle distance, and no point of a box is nearer the
 * query than the box's nearest corner, edge or face. So boxes can be visited in order of
 * that lower bound with no special case at the poles, the antimeridian or an H3 pentagon.
 *
 * Layout: a driver's row (unit vector, stored lat/lng, cos of its latitude, fix time, id)
 * lives in one box of 125 m; a box of 4 x 4 x 4 boxes one level up lists its non-empty
 * children, up to boxes of 512 km under one root. A box's rows or list sit in its entry in
 * its parent's list, beside its corner, so a search reads those arrays and nothing else.
 * A write touches one row (a driver leaving a box moves the box's last row into its
 * place) and, only when a box empties or is born, its parents' lists: O(1). Drivers find
 * their rows through a dict of slots, boxes their entries through a table of box keys.
 *
 * A search pops boxes from a heap by lower bound, from the root down, and stops when the
 * next bound is past the radius or past the k-th distance found. Chords only prune, with
 * MARGIN (6 mm) to spare over their rounding; every distance kept is the haversine of
 * geoindex.cells.haversine_m, term by term in the same order with the same libm (and no
 * contraction into FMAs, no fused sincos: setup.py's flags), so the answers, ties broken
 * by id, are the other backends' to the last bit. Hits come back as geoindex.model's
 * Neighbor, built as its dataclass __init__ builds one (object.__setattr__ per field),
 * without the call's Python frame: a frozen dataclass's __init__ costs more than the
 * search.
 *
 * Below the grid, the Redis backend's hot arithmetic: a search disk's cells and centres
 * (with H3's own C functions), a step's plan (geoindex/search.py) and the ranking of the
 * members its scans return (geoindex/knn.py). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "_h3lib.h"

#define EARTH_RADIUS_M 6371008.8     /* geoindex.cells.EARTH_RADIUS_M */
#define DEG_TO_RAD (Py_MATH_PI / 180.0) /* as CPython's math.radians */
#define LEVELS 7                     /* 125 m, 500 m, 2 km, 8 km, 32 km, 128 km, 512 km */
#define SHIFT 2                      /* a box holds 4 x 4 x 4 boxes of the level below */
#define INDEX_BITS 18
#define BIAS (1 << 17) /* indices + BIAS are >= 0 (|x| / BOX0 < 51,000), a multiple of 4^6 */
#define MARGIN 1e-9    /* unit-sphere lengths (6 mm): far past the chords' rounding */
#define FIRST_REACH_M 500.0
#define NONE (-1)
#define ROOT 0
#define EMPTY_KEY UINT64_MAX

static const double BOX0 = 125.0 / EARTH_RADIUS_M; /* the finest box's edge */

typedef struct {
    double x, y, z;   /* unit vector */
    double lat, lng;  /* degrees, as stored */
    double cos_lat;   /* cos(radians(lat)): the haversine's term for this driver */
    long long ts_ms;  /* fix time */
    PyObject *id;     /* borrowed: the key of the grid's `where` dict */
    int32_t slot;
} Row;

/* A box's contents, kept where its parent lists it (the root's in the Grid): its corner
 * nearest -infinity (the edge follows from the level) beside its rows (level 0) or its
 * non-empty children's entries (above), so a search reads nothing else. */
typedef struct {
    double lo[3];
    void *items; /* Row[] at level 0, Entry[] above */
    int32_t n, cap;
    int32_t box; /* its Box */
} Entry;

/* What a write needs to find a box's entry, and its key in the box table. */
typedef struct {
    uint64_t key;
    int32_t level, parent, pos; /* pos: its entry's place in its parent's items */
} Box;

typedef struct {
    double lb2; /* squared lower bound of the box's chords from the query */
    const Entry *entry;
    int level;
} Queued;

typedef struct {
    double d;
    const Row *row;
} Hit;

typedef struct {
    PyObject_HEAD
    PyObject *where; /* driver id -> slot */
    uint64_t *keys;  /* box key -> box number, open addressing */
    int32_t *vals;
    uint64_t mask;
    int shift;
    Py_ssize_t n_keys;
    Entry root;
    Box *boxes;
    int32_t n_boxes, cap_boxes, free_box; /* freed boxes chained through parent */
    int32_t *slot_box, *slot_row;         /* per slot: its box and row */
    int32_t n_slots, cap_slots, free_slot; /* freed slots chained through slot_box */
    Queued *heap; /* search scratch, kept between searches */
    Py_ssize_t cap_heap;
    Hit *best;
    Py_ssize_t cap_best;
} Grid;

static PyTypeObject *neighbor_type;
static PyObject *neighbor_fields[5]; /* the descriptors of its slots */
static const char *const NEIGHBOR_FIELDS[5] = {"driver_id", "distance_m", "lat", "lng", "ts_ms"};

static double edge_of(int level) { return BOX0 * (double)(1 << (SHIFT * level)); }

static uint64_t index_of(double v) { return (uint64_t)((int64_t)floor(v / BOX0) + BIAS); }

static uint64_t key_of(int level, uint64_t bx, uint64_t by, uint64_t bz) {
    return ((uint64_t)level << (3 * INDEX_BITS)) | (bx << (2 * INDEX_BITS)) | (by << INDEX_BITS) |
           bz;
}

static void unit_vector(double lat, double lng, double *x, double *y, double *z) {
    double p = lat * DEG_TO_RAD, lam = lng * DEG_TO_RAD;
    double c = cos(p);
    *x = c * cos(lam);
    *y = c * sin(lam);
    *z = sin(p);
}

/* geoindex.cells.haversine_m, with each latitude's cosine given. */
static double haversine(double lat1, double lng1, double cos1, double lat2, double lng2,
                        double cos2) {
    double p1 = lat1 * DEG_TO_RAD;
    double p2 = lat2 * DEG_TO_RAD;
    double sdp = sin((p2 - p1) / 2);
    double sdl = sin((lng2 - lng1) * DEG_TO_RAD / 2);
    double a = sdp * sdp + cos1 * cos2 * sdl * sdl;
    double s = sqrt(a);
    return 2 * EARTH_RADIUS_M * asin(s < 1.0 ? s : 1.0);
}

/* -- growable arrays ------------------------------------------------------------------- */

/* Makes room for `need` items of `size` bytes in the array *array points to. */
static int grow(void *array, Py_ssize_t *cap, Py_ssize_t need, size_t size) {
    if (need <= *cap) return 0;
    Py_ssize_t n = *cap ? *cap : 4;
    while (n < need) n *= 2;
    void **items = array, *p = PyMem_Realloc(*items, (size_t)n * size);
    if (p == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    *items = p;
    *cap = n;
    return 0;
}

static int grow32(void *array, int32_t *cap, Py_ssize_t need, size_t size) {
    Py_ssize_t c = *cap;
    if (need > INT32_MAX) {
        PyErr_NoMemory();
        return -1;
    }
    if (grow(array, &c, need, size) < 0) return -1;
    *cap = (int32_t)c;
    return 0;
}

/* -- the box table ---------------------------------------------------------------------- */

static uint64_t home(const Grid *g, uint64_t key) {
    return (key * 0x9E3779B97F4A7C15ULL) >> g->shift;
}

static int32_t table_find(const Grid *g, uint64_t key) {
    for (uint64_t i = home(g, key);; i = (i + 1) & g->mask) {
        if (g->keys[i] == key) return g->vals[i];
        if (g->keys[i] == EMPTY_KEY) return NONE;
    }
}

static int table_resize(Grid *g, int shift) {
    uint64_t size = 1ULL << (64 - shift);
    uint64_t *old_keys = g->keys;
    int32_t *old_vals = g->vals;
    uint64_t old_size = old_keys ? g->mask + 1 : 0;
    uint64_t *keys = PyMem_Malloc(size * sizeof(uint64_t));
    int32_t *vals = PyMem_Malloc(size * sizeof(int32_t));
    if (keys == NULL || vals == NULL) {
        PyMem_Free(keys);
        PyMem_Free(vals);
        PyErr_NoMemory();
        return -1;
    }
    memset(keys, 0xFF, size * sizeof(uint64_t)); /* EMPTY_KEY */
    g->keys = keys;
    g->vals = vals;
    g->mask = size - 1;
    g->shift = shift;
    for (uint64_t j = 0; j < old_size; j++) {
        if (old_keys[j] == EMPTY_KEY) continue;
        uint64_t i = home(g, old_keys[j]);
        while (keys[i] != EMPTY_KEY) i = (i + 1) & g->mask;
        keys[i] = old_keys[j];
        vals[i] = old_vals[j];
    }
    PyMem_Free(old_keys);
    PyMem_Free(old_vals);
    return 0;
}

static int table_put(Grid *g, uint64_t key, int32_t val) {
    if ((uint64_t)(g->n_keys + 1) * 2 > g->mask + 1 && table_resize(g, g->shift - 1) < 0)
        return -1;
    uint64_t i = home(g, key);
    while (g->keys[i] != EMPTY_KEY) i = (i + 1) & g->mask;
    g->keys[i] = key;
    g->vals[i] = val;
    g->n_keys++;
    return 0;
}

/* Removal by backward shift: each later key of the run moves back unless its home lies
 * cyclically in (hole, its place], so every key stays reachable from its home. */
static void table_del(Grid *g, uint64_t key) {
    uint64_t hole = home(g, key);
    while (g->keys[hole] != key) hole = (hole + 1) & g->mask;
    for (uint64_t j = (hole + 1) & g->mask; g->keys[j] != EMPTY_KEY; j = (j + 1) & g->mask) {
        uint64_t h = home(g, g->keys[j]);
        int stays = hole <= j ? (hole < h && h <= j) : (hole < h || h <= j);
        if (!stays) {
            g->keys[hole] = g->keys[j];
            g->vals[hole] = g->vals[j];
            hole = j;
        }
    }
    g->keys[hole] = EMPTY_KEY;
    g->n_keys--;
}

/* -- boxes ------------------------------------------------------------------------------ */

static int32_t box_alloc(Grid *g) {
    if (g->free_box != NONE) {
        int32_t b = g->free_box;
        g->free_box = g->boxes[b].parent;
        return b;
    }
    if (grow32(&g->boxes, &g->cap_boxes, g->n_boxes + 1, sizeof(Box)) < 0) return NONE;
    return g->n_boxes++;
}

static Entry *entry_of(Grid *g, int32_t b) {
    if (b == ROOT) return &g->root;
    const Box *box = &g->boxes[b];
    return (Entry *)entry_of(g, box->parent)->items + box->pos;
}

static int add_entry(Grid *g, int32_t parent, const Entry *entry) {
    Entry *p = entry_of(g, parent);
    if (grow32(&p->items, &p->cap, p->n + 1, sizeof(Entry)) < 0) return -1;
    ((Entry *)p->items)[p->n] = *entry;
    g->boxes[entry->box].pos = p->n++;
    return 0;
}

static void box_release(Grid *g, int32_t b);

/* The box of level `level` at (level-`level`) indices bx, by, bz, made (with any missing
 * parents) if there is none. */
static int32_t box_get(Grid *g, int level, uint64_t bx, uint64_t by, uint64_t bz) {
    uint64_t key = key_of(level, bx, by, bz);
    int32_t b = table_find(g, key);
    if (b != NONE) return b;
    int32_t parent = ROOT;
    if (level + 1 < LEVELS) {
        parent = box_get(g, level + 1, bx >> SHIFT, by >> SHIFT, bz >> SHIFT);
        if (parent == NONE) return NONE;
    }
    b = box_alloc(g);
    if (b == NONE) {
        box_release(g, parent);
        return NONE;
    }
    g->boxes[b] = (Box){key, level, parent, 0};
    int s = SHIFT * level;
    Entry entry = {{(double)((int64_t)(bx << s) - BIAS) * BOX0,
                    (double)((int64_t)(by << s) - BIAS) * BOX0,
                    (double)((int64_t)(bz << s) - BIAS) * BOX0},
                   NULL, 0, 0, b};
    if (table_put(g, key, b) < 0 || add_entry(g, parent, &entry) < 0) {
        if (table_find(g, key) != NONE) table_del(g, key);
        g->boxes[b].parent = g->free_box;
        g->free_box = b;
        box_release(g, parent);
        return NONE;
    }
    return b;
}

/* Frees box b if it is empty, and so on up (never the root). */
static void box_release(Grid *g, int32_t b) {
    while (b != ROOT) {
        Entry *entry = entry_of(g, b);
        if (entry->n > 0) return;
        PyMem_Free(entry->items);
        Box *box = &g->boxes[b];
        table_del(g, box->key);
        Entry *p = entry_of(g, box->parent), *items = p->items;
        Entry last = items[--p->n];
        if (last.box != b) {
            items[box->pos] = last;
            g->boxes[last.box].pos = box->pos;
        }
        int32_t parent = box->parent;
        box->parent = g->free_box;
        g->free_box = b;
        b = parent;
    }
}

static int row_push(Grid *g, int32_t b, const Row *row) {
    Entry *entry = entry_of(g, b);
    if (grow32(&entry->items, &entry->cap, entry->n + 1, sizeof(Row)) < 0) return -1;
    ((Row *)entry->items)[entry->n] = *row;
    g->slot_box[row->slot] = b;
    g->slot_row[row->slot] = entry->n++;
    return 0;
}

static void row_remove(Grid *g, int32_t b, int32_t i) {
    Entry *entry = entry_of(g, b);
    Row *rows = entry->items;
    if (i != --entry->n) {
        rows[i] = rows[entry->n];
        g->slot_row[rows[i].slot] = i;
    }
    box_release(g, b);
}

static double lower_bound2(const Entry *entry, double edge, const double q[3]) {
    double s = 0.0;
    for (int a = 0; a < 3; a++) {
        double below = entry->lo[a] - q[a], above = q[a] - (entry->lo[a] + edge);
        double d = below > 0.0 ? below : above > 0.0 ? above : 0.0;
        s += d * d;
    }
    return s;
}

static void free_entry(Entry *entry, int level) {
    for (int32_t i = 0; level > 0 && i < entry->n; i++)
        free_entry((Entry *)entry->items + i, level - 1);
    PyMem_Free(entry->items);
}

/* -- the Grid type ---------------------------------------------------------------------- */

static PyObject *Grid_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, ":Grid", kwlist)) return NULL;
    Grid *g = (Grid *)type->tp_alloc(type, 0);
    if (g == NULL) return NULL;
    g->free_box = g->free_slot = NONE;
    g->where = PyDict_New();
    if (g->where == NULL || table_resize(g, 64 - 6) < 0 || box_alloc(g) != ROOT) {
        Py_DECREF(g);
        return NULL;
    }
    g->boxes[ROOT] = (Box){0, LEVELS, NONE, 0};
    g->root.box = ROOT;
    return (PyObject *)g;
}

static void Grid_dealloc(Grid *g) {
    free_entry(&g->root, LEVELS);
    PyMem_Free(g->boxes);
    PyMem_Free(g->keys);
    PyMem_Free(g->vals);
    PyMem_Free(g->slot_box);
    PyMem_Free(g->slot_row);
    PyMem_Free(g->heap);
    PyMem_Free(g->best);
    Py_XDECREF(g->where);
    Py_TYPE(g)->tp_free((PyObject *)g);
}

static Py_ssize_t Grid_len(Grid *g) { return PyDict_Size(g->where); }

static int32_t slot_alloc(Grid *g) {
    if (g->free_slot != NONE) {
        int32_t s = g->free_slot;
        g->free_slot = g->slot_box[s];
        return s;
    }
    Py_ssize_t need = g->n_slots + 1;
    int32_t cap = g->cap_slots;
    if (grow32(&g->slot_box, &cap, need, sizeof(int32_t)) < 0) return NONE;
    if (grow32(&g->slot_row, &g->cap_slots, need, sizeof(int32_t)) < 0) return NONE;
    return g->n_slots++;
}

static PyObject *Grid_add(Grid *g, PyObject *args) {
    PyObject *id;
    Row row;
    if (!PyArg_ParseTuple(args, "O!Ldd:add", &PyUnicode_Type, &id, &row.ts_ms, &row.lat,
                          &row.lng))
        return NULL;
    if (!isfinite(row.lat) || !isfinite(row.lng)) {
        PyErr_SetString(PyExc_ValueError, "lat and lng must be finite");
        return NULL;
    }
    unit_vector(row.lat, row.lng, &row.x, &row.y, &row.z);
    row.cos_lat = cos(row.lat * DEG_TO_RAD);
    uint64_t bx = index_of(row.x), by = index_of(row.y), bz = index_of(row.z);
    PyObject *known = PyDict_GetItemWithError(g->where, id);
    if (known == NULL && PyErr_Occurred()) return NULL;
    if (known != NULL) { /* a move: the same slot, maybe the same box */
        row.slot = (int32_t)PyLong_AsLong(known);
        int32_t old_box = g->slot_box[row.slot], old_row = g->slot_row[row.slot];
        Row *old = (Row *)entry_of(g, old_box)->items + old_row;
        row.id = old->id;
        if (g->boxes[old_box].key == key_of(0, bx, by, bz)) {
            *old = row;
            Py_RETURN_NONE;
        }
        int32_t b = box_get(g, 0, bx, by, bz);
        if (b == NONE) return NULL;
        if (row_push(g, b, &row) < 0) {
            box_release(g, b);
            return NULL;
        }
        row_remove(g, old_box, old_row);
        Py_RETURN_NONE;
    }
    int32_t b = box_get(g, 0, bx, by, bz);
    if (b == NONE) return NULL;
    row.slot = slot_alloc(g);
    PyObject *slot = row.slot == NONE ? NULL : PyLong_FromLong(row.slot);
    if (slot == NULL || PyDict_SetItem(g->where, id, slot) < 0) {
        Py_XDECREF(slot);
        if (row.slot != NONE) {
            g->slot_box[row.slot] = g->free_slot;
            g->free_slot = row.slot;
        }
        box_release(g, b);
        return NULL;
    }
    Py_DECREF(slot);
    row.id = id; /* the dict's key now */
    if (row_push(g, b, &row) < 0) {
        PyDict_DelItem(g->where, id);
        g->slot_box[row.slot] = g->free_slot;
        g->free_slot = row.slot;
        box_release(g, b);
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *Grid_remove(Grid *g, PyObject *id) {
    PyObject *known = PyDict_GetItemWithError(g->where, id);
    if (known == NULL) {
        if (!PyErr_Occurred()) PyErr_SetObject(PyExc_KeyError, id);
        return NULL;
    }
    int32_t slot = (int32_t)PyLong_AsLong(known);
    row_remove(g, g->slot_box[slot], g->slot_row[slot]);
    g->slot_box[slot] = g->free_slot;
    g->free_slot = slot;
    if (PyDict_DelItem(g->where, id) < 0) return NULL;
    Py_RETURN_NONE;
}

static int heap_push(Grid *g, Py_ssize_t *n, Queued item) {
    if (grow(&g->heap, &g->cap_heap, *n + 1, sizeof(Queued)) < 0) return -1;
    Queued *h = g->heap;
    Py_ssize_t i = (*n)++;
    while (i > 0 && h[(i - 1) / 2].lb2 > item.lb2) {
        h[i] = h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h[i] = item;
    return 0;
}

static Queued heap_pop(Grid *g, Py_ssize_t *n) {
    Queued *h = g->heap, top = h[0], last = h[--(*n)];
    Py_ssize_t i = 0;
    for (;;) {
        Py_ssize_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && h[c + 1].lb2 < h[c].lb2) c++;
        if (h[c].lb2 >= last.lb2) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = last;
    return top;
}

/* (d, id) before (hit.d, hit's id): the order of sorted((distance, candidate)). */
static int before(double d, PyObject *id, const Hit *hit) {
    return d < hit->d || (d == hit->d && PyUnicode_Compare(id, hit->row->id) < 0);
}

/* A Neighbor of the five values (references it takes over, any of them NULL on error). */
static PyObject *neighbor_of(PyObject *values[5]) {
    PyObject *obj = NULL;
    for (int f = 0; f < 5; f++)
        if (values[f] == NULL) goto done;
    obj = neighbor_type->tp_alloc(neighbor_type, 0);
    for (int f = 0; obj != NULL && f < 5; f++) {
        PyObject *field = neighbor_fields[f];
        if (Py_TYPE(field)->tp_descr_set(field, obj, values[f]) < 0) Py_CLEAR(obj);
    }
done:
    for (int f = 0; f < 5; f++) Py_XDECREF(values[f]);
    return obj;
}

static PyObject *neighbor_new(const Hit *hit) {
    PyObject *values[5] = {Py_NewRef(hit->row->id), PyFloat_FromDouble(hit->d),
                           PyFloat_FromDouble(hit->row->lat), PyFloat_FromDouble(hit->row->lng),
                           PyLong_FromLongLong(hit->row->ts_ms)};
    return neighbor_of(values);
}

static double chord_of(double metres) {
    double half = metres / (2 * EARTH_RADIUS_M);
    return half >= Py_MATH_PI / 2 ? 2.0 : 2 * sin(half);
}

/* The query: where it is, and what it asks for. */
typedef struct {
    double lat, lng, cos_lat, q[3], radius;
    int k;
    long long min_ts;
} Query;

/* Fills g->best with the k nearest hits whose chord is within `limit` (and 6 mm), nearest
 * first; returns how many it found, or -1 on error. With k found, they are the k nearest
 * of all (any nearer driver is nearer by chord too, so within the limit). */
static int search(Grid *g, const Query *s, double limit) {
    double bound = limit + MARGIN, bound2 = bound * bound;
    Hit *best = g->best;
    int found = 0, k = s->k;
    Py_ssize_t queued = 0;
    if (heap_push(g, &queued, (Queued){0.0, &g->root, LEVELS}) < 0) return -1;
    while (queued > 0) {
        Queued next = heap_pop(g, &queued);
        if (next.lb2 > bound2) break;
        if (next.level > 0) {
            double edge = edge_of(next.level - 1);
            const Entry *kid = next.entry->items, *end = kid + next.entry->n;
            for (; kid < end; kid++) {
                double lb2 = lower_bound2(kid, edge, s->q);
                if (lb2 > bound2) continue;
                __builtin_prefetch(kid->items); /* read when it comes up, likely soon */
                if (heap_push(g, &queued, (Queued){lb2, kid, next.level - 1}) < 0) return -1;
            }
            continue;
        }
        const Row *row = next.entry->items, *end = row + next.entry->n;
        for (; row < end; row++) {
            if (row->ts_ms < s->min_ts) continue;
            double dx = row->x - s->q[0], dy = row->y - s->q[1], dz = row->z - s->q[2];
            if (dx * dx + dy * dy + dz * dz > bound2) continue;
            double d = haversine(s->lat, s->lng, s->cos_lat, row->lat, row->lng, row->cos_lat);
            if (d > s->radius || (found == k && !before(d, row->id, &best[k - 1]))) continue;
            int i = found < k ? found++ : k - 1;
            for (; i > 0 && before(d, row->id, &best[i - 1]); i--) best[i] = best[i - 1];
            best[i].d = d;
            best[i].row = row;
            if (found == k) {
                bound = fmin(limit, chord_of(best[k - 1].d)) + MARGIN;
                bound2 = bound * bound;
            }
        }
    }
    return found;
}

static PyObject *Grid_nearest(Grid *g, PyObject *args) {
    Query s;
    if (!PyArg_ParseTuple(args, "ddidL:nearest", &s.lat, &s.lng, &s.k, &s.radius, &s.min_ts))
        return NULL;
    if (s.k < 1 || !(s.radius >= 0.0) || !isfinite(s.lat) || !isfinite(s.lng)) {
        PyErr_SetString(PyExc_ValueError, "k must be at least 1, radius_m not negative, "
                                          "lat and lng finite");
        return NULL;
    }
    if (grow(&g->best, &g->cap_best, s.k, sizeof(Hit)) < 0) return NULL;
    unit_vector(s.lat, s.lng, &s.q[0], &s.q[1], &s.q[2]);
    s.cos_lat = cos(s.lat * DEG_TO_RAD);
    /* Until the bound shrinks to the k-th distance, every box within it is queued: so
     * reach FIRST_REACH_M first (a dense centre's k-th driver is nearer), then 4x as far,
     * and so on up to the radius, each time from the top. */
    int found;
    for (double reach = FIRST_REACH_M;; reach *= 4) {
        double limit = chord_of(reach < s.radius ? reach : s.radius);
        found = search(g, &s, limit);
        if (found < 0) return NULL;
        if (found == s.k || reach >= s.radius) break;
    }
    const Hit *best = g->best;
    for (int i = 0; i < found; i++) __builtin_prefetch(best[i].row->id); /* all at once */
    PyObject *hits = PyList_New(found);
    for (int i = 0; hits != NULL && i < found; i++) {
        PyObject *hit = neighbor_new(&best[i]);
        if (hit == NULL) Py_CLEAR(hits);
        else PyList_SET_ITEM(hits, i, hit);
    }
    return hits;
}

static PyObject *Grid_box_count(Grid *g, PyObject *Py_UNUSED(ignored)) {
    return PyLong_FromSsize_t(g->n_keys);
}

static PyMethodDef Grid_methods[] = {
    {"add", (PyCFunction)Grid_add, METH_VARARGS,
     "add(driver_id, ts_ms, lat, lng): list the driver there (moving it if listed)."},
    {"remove", (PyCFunction)Grid_remove, METH_O,
     "remove(driver_id): unlist the driver (KeyError if not listed)."},
    {"nearest", (PyCFunction)Grid_nearest, METH_VARARGS,
     "nearest(lat, lng, k, radius_m, min_ts) -> the k nearest drivers within radius_m whose "
     "fix is at least min_ts, as Neighbors, nearest first (ties by id)."},
    {"box_count", (PyCFunction)Grid_box_count, METH_NOARGS,
     "box_count() -> the boxes holding drivers, at every level."},
    {NULL, NULL, 0, NULL},
};

static PySequenceMethods Grid_as_sequence = {.sq_length = (lenfunc)Grid_len};

static PyTypeObject GridType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "geoindex._gridknn.Grid",
    .tp_doc = "One searchable set of drivers (every available driver, or one product's).",
    .tp_basicsize = sizeof(Grid),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = Grid_new,
    .tp_dealloc = (destructor)Grid_dealloc,
    .tp_methods = Grid_methods,
    .tp_as_sequence = &Grid_as_sequence,
};

static PyObject *haversine_m(PyObject *Py_UNUSED(self), PyObject *args) {
    double lat1, lng1, lat2, lng2;
    if (!PyArg_ParseTuple(args, "dddd:haversine_m", &lat1, &lng1, &lat2, &lng2)) return NULL;
    return PyFloat_FromDouble(haversine(lat1, lng1, cos(lat1 * DEG_TO_RAD), lat2, lng2,
                                        cos(lat2 * DEG_TO_RAD)));
}

/* -- the Redis backend's search plan (geoindex/search.py's plan_step) ------------------ */

typedef struct {
    double lower; /* bound on every driver in the cell */
    Py_ssize_t cell;
} Bound;

static int by_lower(const void *a, const void *b) {
    double x = ((const Bound *)a)->lower, y = ((const Bound *)b)->lower;
    return (x > y) - (x < y);
}

/* -- the Redis backend's search disks (geoindex/search.py's disk) --------------------- */

/* H3's own C functions (_h3lib.h): a disk's cells and their centres at C speed, where
 * through h3-py a centre's calls and objects were most of a disk's first plan. */
static H3Error (*max_grid_disk_size)(int k, int64_t *out);
static H3Error (*grid_disk_distances)(H3Index origin, int k, H3Index *out, int *distances);
static H3Error (*cell_to_latlng)(H3Index cell, LatLng *out);

static int load_h3(void) {
    if (cell_to_latlng != NULL) return 0;
    static const char *const names[] = {"maxGridDiskSize", "gridDiskDistances",
                                        "cellToLatLng", NULL};
    void **slots[] = {(void **)&max_grid_disk_size, (void **)&grid_disk_distances,
                      (void **)&cell_to_latlng};
    return h3_functions("h3._cy.cells", names, slots);
}

/* Cells' centres as unit vectors, remembered in a table of CENTRE_SLOTS (2 MiB; a cell
 * takes its slot from whichever had it): searches near each other share most of their
 * disks' cells, and a lookup costs a fraction of cellToLatLng's trigonometry. */
#define CENTRE_BITS 16
typedef struct {
    H3Index cell; /* 0: empty */
    double v[3];
} Centre;
static Centre *centres;

static int centre_of(H3Index cell, double v[3]) {
    Centre *slot = NULL;
    if (centres != NULL) {
        slot = &centres[(cell * 0x9E3779B97F4A7C15ULL) >> (64 - CENTRE_BITS)];
        if (slot->cell == cell) {
            memcpy(v, slot->v, sizeof slot->v);
            return 0;
        }
    }
    LatLng at;
    if (cell_to_latlng(cell, &at) != 0) return -1;
    double c = cos(at.lat);
    v[0] = c * cos(at.lng);
    v[1] = c * sin(at.lng);
    v[2] = sin(at.lat);
    if (slot != NULL) {
        slot->cell = cell;
        memcpy(slot->v, v, sizeof slot->v);
    }
    return 0;
}

/* The disk of `rings` rings around `origin` as plan() reads it: its cells' centres as unit
 * vectors, then the ring just outside it's; per disk cell its score range (as doubles)
 * and the index of its region (its parent at region_res, by H3 digits) among `regions`,
 * listed in the order the disk first meets them. */
static PyObject *disk(PyObject *Py_UNUSED(self), PyObject *args) {
    unsigned long long origin;
    int rings, region_res;
    if (!PyArg_ParseTuple(args, "Kii:disk", &origin, &rings, &region_res)) return NULL;
    int res = (int)((origin >> 52) & 0xF);
    if (rings < 0 || rings > 1000 || region_res < 0 || region_res > res) {
        PyErr_SetString(PyExc_ValueError, "disk: need 0 <= rings <= 1000 and "
                                          "0 <= region_res <= the origin's resolution");
        return NULL;
    }
    if (load_h3() < 0) return NULL;
    if (centres == NULL) /* without it, every centre is computed */
        centres = PyMem_Calloc((size_t)1 << CENTRE_BITS, sizeof(Centre));
    PyObject *result = NULL, *xyz = NULL, *lohi = NULL, *index = NULL, *regions = NULL;
    int64_t most = 0;
    if (max_grid_disk_size(rings + 1, &most) != 0) {
        PyErr_SetString(PyExc_ValueError, "disk: too many rings");
        return NULL;
    }
    /* found: what H3 gives (with holes, H3_NULL, around a pentagon); cells: the disk's
     * cells, then the outer ring's; seen: the regions met so far. */
    H3Index *found = PyMem_Calloc((size_t)most, sizeof(H3Index));
    H3Index *cells = PyMem_Malloc((size_t)most * sizeof(H3Index));
    H3Index *seen = PyMem_Malloc((size_t)most * sizeof(H3Index));
    int *ring = PyMem_Calloc((size_t)most, sizeof(int));
    if (found == NULL || cells == NULL || seen == NULL || ring == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    if (grid_disk_distances((H3Index)origin, rings + 1, found, ring) != 0) {
        PyErr_SetString(PyExc_ValueError, "disk: not a valid H3 cell");
        goto done;
    }
    Py_ssize_t size = 0, n = 0;
    for (int64_t i = 0; i < most; i++)
        if (found[i] != 0 && ring[i] <= rings) cells[n++] = found[i];
    size = n;
    for (int64_t i = 0; i < most; i++)
        if (found[i] != 0 && ring[i] > rings) cells[n++] = found[i];
    xyz = PyBytes_FromStringAndSize(NULL, n * 3 * (Py_ssize_t)sizeof(double));
    lohi = PyBytes_FromStringAndSize(NULL, size * 2 * (Py_ssize_t)sizeof(double));
    index = PyBytes_FromStringAndSize(NULL, size * (Py_ssize_t)sizeof(int64_t));
    regions = PyList_New(0);
    if (xyz == NULL || lohi == NULL || index == NULL || regions == NULL) goto done;
    double *v = (double *)PyBytes_AS_STRING(xyz), *lh = (double *)PyBytes_AS_STRING(lohi);
    int64_t *at = (int64_t *)PyBytes_AS_STRING(index);
    for (Py_ssize_t i = 0; i < n; i++)
        if (centre_of(cells[i], &v[3 * i]) < 0) {
            PyErr_SetString(PyExc_ValueError, "disk: a cell without a centre");
            goto done;
        }
    /* cell_to_parent by bit arithmetic: set the resolution, fill the finer digits with
     * 7s. A score is a res-15 cell less its header; a cell's descendants' scores are the
     * range ending at its own (its unused digits are 7s). */
    const uint64_t keep = ~((uint64_t)0xF << 52), score = ((uint64_t)1 << 52) - 1;
    const uint64_t fill =
        ((uint64_t)region_res << 52) | (((uint64_t)1 << (3 * (15 - region_res))) - 1);
    const double below = (double)(((uint64_t)1 << (3 * (15 - res))) - 1);
    Py_ssize_t n_seen = 0;
    for (Py_ssize_t i = 0; i < size; i++) {
        H3Index region = (cells[i] & keep) | fill;
        Py_ssize_t r = 0;
        while (r < n_seen && seen[r] != region) r++;
        if (r == n_seen) {
            seen[n_seen++] = region;
            PyObject *number = PyLong_FromUnsignedLongLong(region);
            int failed = number == NULL || PyList_Append(regions, number) < 0;
            Py_XDECREF(number);
            if (failed) goto done;
        }
        at[i] = r;
        lh[2 * i + 1] = (double)(cells[i] & score);
        lh[2 * i] = lh[2 * i + 1] - below;
    }
    result = Py_BuildValue("(nOOON)", size, xyz, lohi, index, PyList_AsTuple(regions));
done:
    PyMem_Free(found);
    PyMem_Free(cells);
    PyMem_Free(seen);
    PyMem_Free(ring);
    Py_XDECREF(xyz);
    Py_XDECREF(lohi);
    Py_XDECREF(index);
    Py_XDECREF(regions);
    return result;
}

/* plan_step's arithmetic over one H3 disk: great-circle distances from the query to the
 * cells' centres (from their chords), what the disk covers, each cell's lower bound, the
 * cells that can hold a hit nearest bound first. Bounds carry a metre of margin (search.py),
 * so these need not be numpy's to the last bit. */
static PyObject *plan(PyObject *Py_UNUSED(self), PyObject *args) {
    Py_buffer xyz, lohi, regions;
    Py_ssize_t size;
    double lat, lng, spread, spill, radius;
    if (!PyArg_ParseTuple(args, "y*y*y*nddddd:plan", &xyz, &lohi, &regions, &size, &lat, &lng,
                          &spread, &spill, &radius))
        return NULL;
    PyObject *result = NULL, *rows = NULL, *kept_regions = NULL;
    Bound *bounds = NULL;
    Py_ssize_t cells = xyz.len / (Py_ssize_t)(3 * sizeof(double));
    if (size < 0 || size >= cells || lohi.len != size * 2 * (Py_ssize_t)sizeof(double) ||
        regions.len != size * (Py_ssize_t)sizeof(int64_t)) {
        PyErr_SetString(PyExc_ValueError, "plan: the disk's arrays disagree on its size");
        goto done;
    }
    const double *c = xyz.buf, *lh = lohi.buf;
    const int64_t *region = regions.buf;
    double qx, qy, qz;
    unit_vector(lat, lng, &qx, &qy, &qz);
    bounds = PyMem_Malloc((size_t)(size ? size : 1) * sizeof(Bound));
    if (bounds == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    double covered = INFINITY;
    for (Py_ssize_t i = 0; i < cells; i++) {
        double dx = c[3 * i] - qx, dy = c[3 * i + 1] - qy, dz = c[3 * i + 2] - qz;
        double half_chord = sqrt(dx * dx + dy * dy + dz * dz) * 0.5;
        double d = asin(half_chord < 1.0 ? half_chord : 1.0) * (2 * EARTH_RADIUS_M);
        if (i < size) {
            bounds[i].lower = d - spread;
            bounds[i].cell = i;
        } else if (d < covered) {
            covered = d;
        }
    }
    covered -= spill;
    double cap = (covered < radius ? covered : radius) + 1e-9;
    Py_ssize_t kept = 0;
    for (Py_ssize_t i = 0; i < size; i++)
        if (bounds[i].lower < cap) bounds[kept++] = bounds[i];
    qsort(bounds, (size_t)kept, sizeof(Bound), by_lower);
    rows = PyBytes_FromStringAndSize(NULL, kept * 3 * (Py_ssize_t)sizeof(double));
    kept_regions = PyBytes_FromStringAndSize(NULL, kept * (Py_ssize_t)sizeof(int64_t));
    if (rows == NULL || kept_regions == NULL) goto done;
    double *out = (double *)PyBytes_AS_STRING(rows);
    int64_t *out_region = (int64_t *)PyBytes_AS_STRING(kept_regions);
    for (Py_ssize_t j = 0; j < kept; j++) {
        Py_ssize_t i = bounds[j].cell;
        out[3 * j] = lh[2 * i];
        out[3 * j + 1] = lh[2 * i + 1];
        out[3 * j + 2] = bounds[j].lower;
        out_region[j] = region[i];
    }
    result = Py_BuildValue("(dOO)", covered, rows, kept_regions);
done:
    PyMem_Free(bounds);
    Py_XDECREF(rows);
    Py_XDECREF(kept_regions);
    PyBuffer_Release(&xyz);
    PyBuffer_Release(&lohi);
    PyBuffer_Release(&regions);
    return result;
}

/* -- the Redis backend's candidates (geoindex/knn.py) --------------------------------- */

typedef struct {
    double d, lat, lng, ts;
    const char *id; /* UTF-8, inside its member */
    Py_ssize_t len, order;
} Found;

static int id_cmp(const Found *a, const Found *b) {
    int c = memcmp(a->id, b->id, (size_t)(a->len < b->len ? a->len : b->len));
    return c ? c : (a->len > b->len) - (a->len < b->len);
}

/* By driver, its newest fix first (the first given among equal times). UTF-8's byte
 * order is its code points' order: Python's order of the ids as str. */
static int by_driver_newest(const void *x, const void *y) {
    const Found *a = x, *b = y;
    int c = id_cmp(a, b);
    if (c) return c;
    if (a->ts != b->ts) return a->ts < b->ts ? 1 : -1;
    return (a->order > b->order) - (a->order < b->order);
}

static int by_distance(const void *x, const void *y) {
    const Found *a = x, *b = y;
    if (a->d != b->d) return a->d < b->d ? -1 : 1;
    return id_cmp(a, b);
}

#define MEMBER_HEAD 24 /* pack("<ddd", lat, lng, ts) before the id: geoindex/lua/knn.lua */

/* The drivers knn.lua's members name, one each (its newest fix: a driver crossing a region
 * border may briefly sit in both), within radius_m, nearest first (ties by id), as
 * Neighbors with the distance geoindex.cells.haversine_m gives. */
static PyObject *rank(PyObject *Py_UNUSED(self), PyObject *args) {
    PyObject *members;
    double lat, lng, radius;
    if (!PyArg_ParseTuple(args, "O!ddd:rank", &PyList_Type, &members, &lat, &lng, &radius))
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(members), kept = 0;
    Found *found = PyMem_Malloc((size_t)(n ? n : 1) * sizeof(Found));
    if (found == NULL) return PyErr_NoMemory();
    PyObject *hits = NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *m = PyList_GET_ITEM(members, i);
        if (!PyBytes_Check(m) || PyBytes_GET_SIZE(m) < MEMBER_HEAD) {
            PyErr_SetString(PyExc_ValueError, "rank: a member is bytes of 24 or more");
            goto done;
        }
        const char *p = PyBytes_AS_STRING(m);
        Found *f = &found[i];
        f->lat = PyFloat_Unpack8(p, 1);
        f->lng = PyFloat_Unpack8(p + 8, 1);
        f->ts = trunc(PyFloat_Unpack8(p + 16, 1)); /* int(ts), as the fix time compares */
        f->id = p + MEMBER_HEAD;
        f->len = PyBytes_GET_SIZE(m) - MEMBER_HEAD;
        f->order = i;
    }
    qsort(found, (size_t)n, sizeof(Found), by_driver_newest);
    double cos_lat = cos(lat * DEG_TO_RAD);
    for (Py_ssize_t i = 0; i < n; i++) {
        Found *f = &found[i];
        if (i > 0 && id_cmp(f, &found[i - 1]) == 0) continue; /* an older fix */
        f->d = haversine(lat, lng, cos_lat, f->lat, f->lng, cos(f->lat * DEG_TO_RAD));
        if (f->d <= radius) found[kept++] = *f;
    }
    qsort(found, (size_t)kept, sizeof(Found), by_distance);
    hits = PyList_New(kept);
    for (Py_ssize_t i = 0; hits != NULL && i < kept; i++) {
        const Found *f = &found[i];
        PyObject *values[5] = {PyUnicode_DecodeUTF8(f->id, f->len, "strict"),
                               PyFloat_FromDouble(f->d), PyFloat_FromDouble(f->lat),
                               PyFloat_FromDouble(f->lng), PyLong_FromDouble(f->ts)};
        PyObject *hit = neighbor_of(values);
        if (hit == NULL) Py_CLEAR(hits);
        else PyList_SET_ITEM(hits, i, hit);
    }
done:
    PyMem_Free(found);
    return hits;
}

static PyMethodDef module_methods[] = {
    {"rank", rank, METH_VARARGS,
     "rank(members, lat, lng, radius_m) -> the drivers knn.lua's members name within radius_m "
     "(each once, its newest fix), nearest first (ties by id), as Neighbors."},
    {"disk", disk, METH_VARARGS,
     "disk(origin, rings, region_res) -> (size, xyz, lohi, region_index, regions): the disk "
     "of `rings` rings around the H3 cell `origin` as plan() reads it (geoindex.search)."},
    {"haversine_m", haversine_m, METH_VARARGS,
     "haversine_m(lat1, lng1, lat2, lng2): the distance a search computes (for tests)."},
    {"plan", plan, METH_VARARGS,
     "plan(xyz, lohi, regions, size, lat, lng, spread_m, spill_m, radius_m): geoindex.search's "
     "plan_step over a disk: (covered, rows (lo, hi, bound) as doubles, their regions as "
     "int64s), nearest bound first."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "geoindex._gridknn",
    .m_doc = "The embedded backend's k-nearest store and the Redis backend's search arithmetic, "
             "compiled (see the C source's header).",
    .m_size = -1,
    .m_methods = module_methods,
};

/* Neighbor's fields, checked against the ones neighbor_new sets. */
static int load_neighbor(void) {
    PyObject *model = PyImport_ImportModule("geoindex.model");
    if (model == NULL) return -1;
    PyObject *type = PyObject_GetAttrString(model, "Neighbor");
    Py_DECREF(model);
    if (type == NULL) return -1;
    PyObject *names = PyObject_GetAttrString(type, "__match_args__");
    PyObject *expected = Py_BuildValue("(sssss)", NEIGHBOR_FIELDS[0], NEIGHBOR_FIELDS[1],
                                       NEIGHBOR_FIELDS[2], NEIGHBOR_FIELDS[3], NEIGHBOR_FIELDS[4]);
    int same = names && expected ? PyObject_RichCompareBool(names, expected, Py_EQ) : -1;
    Py_XDECREF(names);
    Py_XDECREF(expected);
    if (same != 1 || !PyType_Check(type)) {
        Py_DECREF(type);
        if (same == 0) PyErr_SetString(PyExc_ImportError, "Neighbor's fields changed");
        return -1;
    }
    neighbor_type = (PyTypeObject *)type;
    for (int f = 0; f < 5; f++) { /* its slots' descriptors: what object.__setattr__ calls */
        neighbor_fields[f] = PyObject_GetAttrString(type, NEIGHBOR_FIELDS[f]);
        if (neighbor_fields[f] == NULL) return -1;
        if (Py_TYPE(neighbor_fields[f])->tp_descr_set == NULL) {
            PyErr_SetString(PyExc_ImportError, "Neighbor's fields are not slots");
            return -1;
        }
    }
    return 0;
}

PyMODINIT_FUNC PyInit__gridknn(void) {
    if (PyType_Ready(&GridType) < 0 || load_neighbor() < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    if (PyModule_AddObjectRef(m, "Grid", (PyObject *)&GridType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
