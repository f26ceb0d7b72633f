/* The Redis edge's per-fix arithmetic and packing, compiled (geoindex/redis_pipeline.py,
 * geoindex/redis_index.py).
 *
 * pack_command: a command as the Redis protocol's array of bulk strings, the bytes
 * hiredis.pack_command makes for the same arguments, without its per-argument copies and
 * its sprintf per argument (most of a write's client cost: 7 arguments a fix). It packs
 * str, bytes and int arguments (and float, as repr, as hiredis does); for anything else it
 * answers NotImplemented and its caller asks hiredis, whose errors stay what they are.
 *
 * fix_texts: a batch of positions' driver keys and the texts driver_upsert.lua reads, with
 * each fix's res-15 score, the centre of that cell and its region, using H3's own C
 * functions (from the copy of the H3 library h3-py's extension links, as _gridknn.c
 * does). The text is the one RedisGeoIndex made in Python before: "%.17g %.17g %d %s %d
 * %x" and a tail: lat and lng as Python's "%.17g" writes them (by integer arithmetic,
 * g17; outside its range through CPython's own PyOS_double_to_string). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "_h3lib.h"

/* -- pack_command ---------------------------------------------------------------------- */

/* The decimal text of v into the end of buf (24 bytes); returns where it starts. */
static char *decimal(long long v, char *end) {
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    char *p = end;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) *--p = '-';
    return p;
}

static Py_ssize_t digits_of(Py_ssize_t n) {
    Py_ssize_t d = 1;
    while (n >= 10) {
        n /= 10;
        d++;
    }
    return d;
}

typedef struct {
    const char *data;
    Py_ssize_t len;
    char num[24]; /* an int's text, at its end */
} Arg;

#define STACK_ARGS 64

static PyObject *pack_command(PyObject *Py_UNUSED(self), PyObject *command) {
    if (!PyTuple_CheckExact(command)) Py_RETURN_NOTIMPLEMENTED;
    Py_ssize_t n = PyTuple_GET_SIZE(command);
    Arg stack[STACK_ARGS];
    Arg *args = n <= STACK_ARGS ? stack : PyMem_Malloc(sizeof(Arg) * (size_t)n);
    if (args == NULL) return PyErr_NoMemory();
    PyObject *keep = NULL; /* texts made here (floats' repr), alive until written */
    PyObject *out = NULL;
    Py_ssize_t total = 1 + digits_of(n) + 2;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PyTuple_GET_ITEM(command, i);
        Arg *a = &args[i];
        if (PyUnicode_CheckExact(item)) {
            a->data = PyUnicode_AsUTF8AndSize(item, &a->len);
            if (a->data == NULL) goto done;
        } else if (PyBytes_CheckExact(item)) {
            a->data = PyBytes_AS_STRING(item);
            a->len = PyBytes_GET_SIZE(item);
        } else if (PyLong_CheckExact(item)) {
            int overflow;
            long long v = PyLong_AsLongLongAndOverflow(item, &overflow);
            if (overflow) goto not_mine;
            if (v == -1 && PyErr_Occurred()) goto done;
            char *end = a->num + sizeof a->num;
            a->data = decimal(v, end);
            a->len = end - a->data;
        } else if (PyFloat_CheckExact(item)) {
            PyObject *text = PyObject_Repr(item);
            if (text == NULL) goto done;
            if (keep == NULL && (keep = PyList_New(0)) == NULL) {
                Py_DECREF(text);
                goto done;
            }
            int failed = PyList_Append(keep, text);
            Py_DECREF(text);
            if (failed) goto done;
            a->data = PyUnicode_AsUTF8AndSize(text, &a->len);
            if (a->data == NULL) goto done;
        } else {
            goto not_mine;
        }
        total += 1 + digits_of(a->len) + 2 + a->len + 2;
    }
    out = PyBytes_FromStringAndSize(NULL, total);
    if (out == NULL) goto done;
    char *w = PyBytes_AS_STRING(out);
    char num[24], *end = num + sizeof num, *s;
    *w++ = '*';
    s = decimal((long long)n, end);
    memcpy(w, s, (size_t)(end - s));
    w += end - s;
    *w++ = '\r';
    *w++ = '\n';
    for (Py_ssize_t i = 0; i < n; i++) {
        *w++ = '$';
        s = decimal((long long)args[i].len, end);
        memcpy(w, s, (size_t)(end - s));
        w += end - s;
        *w++ = '\r';
        *w++ = '\n';
        memcpy(w, args[i].data, (size_t)args[i].len);
        w += args[i].len;
        *w++ = '\r';
        *w++ = '\n';
    }
    goto done;
not_mine:
    out = Py_NewRef(Py_NotImplemented);
done:
    Py_XDECREF(keep);
    if (args != stack) PyMem_Free(args);
    return out;
}

/* -- fix_texts --------------------------------------------------------------------------- */

static H3Error (*lat_lng_to_cell)(const LatLng *g, int res, H3Index *out);
static H3Error (*cell_to_lat_lng)(H3Index cell, LatLng *out);
static double (*degs_to_rads)(double degrees);
static double (*rads_to_degs)(double radians);

static int load_h3(void) {
    if (lat_lng_to_cell != NULL) return 0;
    static const char *const names[] = {"latLngToCell", "cellToLatLng", "degsToRads",
                                        "radsToDegs", NULL};
    void **slots[] = {(void **)&lat_lng_to_cell, (void **)&cell_to_lat_lng,
                      (void **)&degs_to_rads, (void **)&rads_to_degs};
    return h3_functions("h3._cy.latlng", names, slots);
}

static PyObject *s_driver_id, *s_lat, *s_lng, *s_ts_ms, *s_seq;

#define FINE_RES 15
#define SCORE_MASK ((1ULL << 52) - 1)
#define FINE_CELL (1ULL << 59 | (uint64_t)FINE_RES << 52)

/* A growing text buffer. */
typedef struct {
    char *p;
    Py_ssize_t n, cap;
} Buf;

static int put(Buf *b, const char *s, Py_ssize_t len) {
    if (b->n + len > b->cap) {
        Py_ssize_t cap = (b->cap + len) * 2;
        char *p = PyMem_Realloc(b->p, (size_t)cap);
        if (p == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, (size_t)len);
    b->n += len;
    return 0;
}

static const unsigned long long POW10[20] = {
    1ULL, 10ULL, 100ULL, 1000ULL, 10000ULL, 100000ULL, 1000000ULL, 10000000ULL,
    100000000ULL, 1000000000ULL, 10000000000ULL, 100000000000ULL, 1000000000000ULL,
    10000000000000ULL, 100000000000000ULL, 1000000000000000ULL, 10000000000000000ULL,
    100000000000000000ULL, 1000000000000000000ULL, 10000000000000000000ULL};

/* Python's "%.17g" % v for 1e-3 <= |v| < 2^52 (every latitude and longitude but those
 * within a metre of 0), by integer arithmetic: |v| = m * 2^q exactly (m < 2^53, -62 <= q
 * < 0), so m * 10^k (k <= 19) fits 128 bits and its 17 leading digits are cut exactly,
 * rounded half to even as CPython's dtoa rounds; a fifth of dtoa's bignum work. Returns
 * the length written into out (32 bytes), 0 outside that range. */
static int g17(double v, char *out) {
    double a = fabs(v);
    if (!(a >= 1e-3 && a < 4503599627370496.0)) return 0;
    int q;
    uint64_t m = (uint64_t)ldexp(frexp(a, &q), 53);
    int s = 53 - q; /* a = m / 2^s, 1 <= s <= 62 */
    int e10 = (int)floor(log10(a));
    unsigned __int128 n, d;
    for (int tries = 0;; tries++) {
        int k = 16 - e10;
        if (tries == 3 || k < 0 || k > 19) return 0;
        n = (unsigned __int128)m * POW10[k];
        d = n >> s;
        if (d < POW10[16]) e10--;
        else if (d >= POW10[17]) e10++;
        else break;
    }
    unsigned __int128 rem = n - (d << s), half = (unsigned __int128)1 << (s - 1);
    if (rem > half || (rem == half && (d & 1))) d++;
    if (d == POW10[17]) {
        d = POW10[16];
        e10++;
    }
    char digits[17];
    uint64_t x = (uint64_t)d;
    for (int i = 16; i >= 0; i--) {
        digits[i] = (char)('0' + x % 10);
        x /= 10;
    }
    int last = 16; /* the last digit kept: trailing zeros of the fraction go */
    int w = 0;
    if (v < 0) out[w++] = '-';
    if (e10 >= 0) { /* 1 <= |v| < 2^52: e10 <= 15 */
        while (last > e10 && digits[last] == '0') last--;
        memcpy(out + w, digits, (size_t)e10 + 1);
        w += e10 + 1;
        if (last > e10) {
            out[w++] = '.';
            memcpy(out + w, digits + e10 + 1, (size_t)(last - e10));
            w += last - e10;
        }
    } else { /* -3 <= e10 <= -1: 0.0...digits */
        while (digits[last] == '0') last--;
        out[w++] = '0';
        out[w++] = '.';
        for (int i = 0; i < -e10 - 1; i++) out[w++] = '0';
        memcpy(out + w, digits, (size_t)last + 1);
        w += last + 1;
    }
    return w;
}

static PyObject *format_g17(PyObject *Py_UNUSED(self), PyObject *arg) {
    double v = PyFloat_AsDouble(arg);
    if (v == -1.0 && PyErr_Occurred()) return NULL;
    char out[32];
    int n = g17(v, out);
    if (n == 0) Py_RETURN_NONE;
    return PyUnicode_DecodeASCII(out, n, NULL);
}

static int put_double(Buf *b, double v) {
    char fast[32];
    int n = g17(v, fast);
    if (n > 0) return put(b, fast, n);
    char *text = PyOS_double_to_string(v, 'g', 17, 0, NULL);
    if (text == NULL) return -1;
    int r = put(b, text, (Py_ssize_t)strlen(text));
    PyMem_Free(text);
    return r;
}

static int put_int(Buf *b, PyObject *v) {
    int overflow;
    long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (x == -1 && PyErr_Occurred()) return -1;
    if (overflow || !PyLong_Check(v)) {
        PyErr_SetString(PyExc_TypeError, "ts_ms and seq must be integers of 64 bits");
        return -1;
    }
    char num[24], *end = num + sizeof num, *s = decimal(x, end);
    return put(b, s, end - s);
}

static int put_hex(Buf *b, uint64_t v) {
    char num[24], *end = num + sizeof num, *p = end;
    do {
        *--p = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v);
    return put(b, p, end - p);
}

/* fix_texts(positions, key_head, tail, head, low, parents, write_region)
 * -> (keys, texts, prepared): per position its driver key (key_head + id + "}"), its text
 * and (position, score, lat, lng, region), region = head | score | low unless that is in
 * `parents` (then write_region(score)). */
static PyObject *fix_texts(PyObject *Py_UNUSED(self), PyObject *args) {
    PyObject *positions, *key_head, *tail, *parents, *write_region;
    unsigned long long head, low;
    if (!PyArg_ParseTuple(args, "OUUKKOO:fix_texts", &positions, &key_head, &tail, &head, &low,
                          &parents, &write_region))
        return NULL;
    if (load_h3() < 0) return NULL;
    PyObject *seq = PySequence_Fast(positions, "positions must be a sequence");
    if (seq == NULL) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    int check_parents = PyObject_IsTrue(parents);
    if (check_parents < 0) {
        Py_DECREF(seq);
        return NULL;
    }
    Py_ssize_t head_len, tail_len;
    const char *head_s = PyUnicode_AsUTF8AndSize(key_head, &head_len);
    const char *tail_s = PyUnicode_AsUTF8AndSize(tail, &tail_len);
    PyObject *keys = PyList_New(n), *texts = PyList_New(n), *prepared = PyList_New(n);
    Buf b = {NULL, 0, 0};
    if (head_s == NULL || tail_s == NULL || !keys || !texts || !prepared) goto fail;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *p = PySequence_Fast_GET_ITEM(seq, i);
        PyObject *id = PyObject_GetAttr(p, s_driver_id);
        if (id == NULL) goto fail;
        Py_ssize_t id_len;
        const char *id_s = PyUnicode_AsUTF8AndSize(id, &id_len);
        if (id_s == NULL) {
            Py_DECREF(id);
            goto fail;
        }
        b.n = 0;
        if (put(&b, head_s, head_len) < 0 || put(&b, id_s, id_len) < 0 || put(&b, "}", 1) < 0) {
            Py_DECREF(id);
            goto fail;
        }
        Py_DECREF(id);
        PyObject *key = PyUnicode_DecodeUTF8(b.p, b.n, NULL);
        if (key == NULL) goto fail;
        PyList_SET_ITEM(keys, i, key);

        PyObject *o_lat = PyObject_GetAttr(p, s_lat), *o_lng = PyObject_GetAttr(p, s_lng);
        double lat = o_lat ? PyFloat_AsDouble(o_lat) : -1.0;
        double lng = o_lng ? PyFloat_AsDouble(o_lng) : -1.0;
        Py_XDECREF(o_lat);
        Py_XDECREF(o_lng);
        if (PyErr_Occurred()) goto fail;
        LatLng at = {degs_to_rads(lat), degs_to_rads(lng)};
        H3Index cell;
        if (lat_lng_to_cell(&at, FINE_RES, &cell) != 0) {
            PyErr_SetString(PyExc_ValueError, "no H3 cell for a position");
            goto fail;
        }
        uint64_t score = cell & SCORE_MASK;
        LatLng centre;
        if (cell_to_lat_lng(FINE_CELL | score, &centre) != 0) {
            PyErr_SetString(PyExc_ValueError, "no centre for an H3 cell");
            goto fail;
        }
        double c_lat = rads_to_degs(centre.lat), c_lng = rads_to_degs(centre.lng);
        PyObject *o_score = PyLong_FromUnsignedLongLong(score);
        PyObject *o_region = PyLong_FromUnsignedLongLong(head | score | low);
        if (o_score == NULL || o_region == NULL) {
            Py_XDECREF(o_score);
            Py_XDECREF(o_region);
            goto fail;
        }
        if (check_parents) {
            int in = PySequence_Contains(parents, o_region);
            if (in > 0) {
                Py_SETREF(o_region, PyObject_CallOneArg(write_region, o_score));
                if (o_region != NULL && !PyLong_Check(o_region)) {
                    PyErr_SetString(PyExc_TypeError, "write_region must answer an int");
                    Py_CLEAR(o_region);
                }
            }
            if (in < 0 || o_region == NULL) {
                Py_DECREF(o_score);
                Py_XDECREF(o_region);
                goto fail;
            }
        }
        uint64_t region = PyLong_AsUnsignedLongLong(o_region);
        PyObject *ts = PyObject_GetAttr(p, s_ts_ms), *sq = PyObject_GetAttr(p, s_seq);
        b.n = 0;
        int bad = ts == NULL || sq == NULL || (region == (uint64_t)-1 && PyErr_Occurred());
        bad = bad || put_double(&b, c_lat) < 0 || put(&b, " ", 1) < 0;
        bad = bad || put_double(&b, c_lng) < 0 || put(&b, " ", 1) < 0;
        bad = bad || put_int(&b, ts) < 0 || put(&b, " ", 1) < 0;
        bad = bad || (sq == Py_None ? put(&b, "-", 1) : put_int(&b, sq)) < 0;
        bad = bad || put(&b, " ", 1) < 0;
        if (!bad) {
            char num[24], *end = num + sizeof num, *s = decimal((long long)score, end);
            bad = put(&b, s, end - s) < 0 || put(&b, " ", 1) < 0 || put_hex(&b, region) < 0 ||
                  put(&b, tail_s, tail_len) < 0;
        }
        Py_XDECREF(ts);
        Py_XDECREF(sq);
        PyObject *text = bad ? NULL : PyUnicode_DecodeUTF8(b.p, b.n, NULL);
        PyObject *o_lat2 = text ? PyFloat_FromDouble(c_lat) : NULL;
        PyObject *o_lng2 = o_lat2 ? PyFloat_FromDouble(c_lng) : NULL;
        if (o_lng2 == NULL) {
            Py_XDECREF(text);
            Py_XDECREF(o_lat2);
            Py_DECREF(o_score);
            Py_DECREF(o_region);
            goto fail;
        }
        PyList_SET_ITEM(texts, i, text);
        PyObject *row = PyTuple_New(5);
        if (row == NULL) {
            Py_DECREF(o_lat2);
            Py_DECREF(o_lng2);
            Py_DECREF(o_score);
            Py_DECREF(o_region);
            goto fail;
        }
        PyTuple_SET_ITEM(row, 0, Py_NewRef(p));
        PyTuple_SET_ITEM(row, 1, o_score);
        PyTuple_SET_ITEM(row, 2, o_lat2);
        PyTuple_SET_ITEM(row, 3, o_lng2);
        PyTuple_SET_ITEM(row, 4, o_region);
        PyList_SET_ITEM(prepared, i, row);
    }
    PyMem_Free(b.p);
    Py_DECREF(seq);
    PyObject *out = PyTuple_Pack(3, keys, texts, prepared);
    Py_DECREF(keys);
    Py_DECREF(texts);
    Py_DECREF(prepared);
    return out;
fail:
    PyMem_Free(b.p);
    Py_DECREF(seq);
    Py_XDECREF(keys);
    Py_XDECREF(texts);
    Py_XDECREF(prepared);
    return NULL;
}

/* -- region_changes -------------------------------------------------------------------- */

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "region_changes packs doubles as struct's '<d' by copying them: little-endian only"
#endif

/* A version's decimal text (digits only, at most 19) as a double, as float(int(text))
 * gives it (a uint64 converted with rounding to nearest even); -1 for any other text. */
static double version_of(const char *s, Py_ssize_t n) {
    if (n < 1 || n > 19) return -1.0;
    uint64_t v = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1.0;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    return (double)v;
}

static PyObject *packed_doubles(const double *d, int count, const char *tail, Py_ssize_t tail_len) {
    PyObject *out = PyBytes_FromStringAndSize(NULL, 8 * count + tail_len);
    if (out == NULL) return NULL;
    char *w = PyBytes_AS_STRING(out);
    memcpy(w, d, (size_t)(8 * count));
    memcpy(w + 8 * count, tail, (size_t)tail_len);
    return out;
}

/* region_changes(prepared, replies, states, state_of, named, accepted, stale, gone)
 * -> (results, ops): RedisGeoIndex.upsert_valid's reading of driver_upsert.lua's replies
 * (see there), in C: per fix ACCEPTED or STALE, and per region its changes (driver_id,
 * meta value, geo member, score, ts), a driver that left a region gone(driver_id, ver, ts,
 * old region) there. A state ("avail prods") missing from `states` is state_of's; each
 * state met goes into `named`. */
static PyObject *region_changes(PyObject *Py_UNUSED(self), PyObject *args) {
    PyObject *prepared, *replies, *states, *state_of, *named, *accepted, *stale, *gone;
    if (!PyArg_ParseTuple(args, "O!O!O!OO!OOO:region_changes", &PyList_Type, &prepared,
                          &PyList_Type, &replies, &PyDict_Type, &states, &state_of, &PySet_Type,
                          &named, &accepted, &stale, &gone))
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(prepared);
    if (PyList_GET_SIZE(replies) != n) {
        PyErr_SetString(PyExc_ValueError, "a reply for each fix");
        return NULL;
    }
    PyObject *results = PyList_New(n), *ops = PyDict_New(), *empty = PyBytes_FromString("");
    PyObject *zero = PyLong_FromLong(0);
    if (!results || !ops || !empty || !zero) goto fail;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *row = PyList_GET_ITEM(prepared, i), *reply = PyList_GET_ITEM(replies, i);
        if (!PyTuple_Check(row) || PyTuple_GET_SIZE(row) != 5) {
            PyErr_SetString(PyExc_TypeError, "prepared rows are (position, score, lat, lng, region)");
            goto fail;
        }
        PyObject *text = NULL; /* the reply as bytes */
        if (PyBytes_Check(reply)) {
            text = Py_NewRef(reply);
        } else {
            PyObject *str = PyObject_Str(reply);
            text = str == NULL ? NULL : PyUnicode_AsUTF8String(str);
            Py_XDECREF(str);
            if (text == NULL) goto fail;
        }
        const char *r = PyBytes_AS_STRING(text);
        Py_ssize_t len = PyBytes_GET_SIZE(text);
        if (len == 0) { /* driver_upsert.lua: '' when stale, else "ver prev avail prods" */
            Py_DECREF(text);
            PyList_SET_ITEM(results, i, Py_NewRef(stale));
            continue;
        }
        PyList_SET_ITEM(results, i, Py_NewRef(accepted));
        const char *sp1 = memchr(r, ' ', (size_t)len);
        const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(r + len - sp1 - 1)) : NULL;
        double ver = sp1 ? version_of(r, sp1 - r) : -1.0;
        if (sp2 == NULL || ver < 0) {
            PyErr_Format(PyExc_ValueError, "driver_upsert.lua answered %R", text);
            Py_DECREF(text);
            goto fail;
        }
        PyObject *state = PyBytes_FromStringAndSize(sp2 + 1, r + len - sp2 - 1);
        PyObject *old_region = PyBytes_FromStringAndSize(sp1 + 1, sp2 - sp1 - 1);
        Py_DECREF(text);
        if (state == NULL || old_region == NULL) {
            Py_XDECREF(state);
            Py_XDECREF(old_region);
            goto fail;
        }
        PyObject *tail = PyDict_GetItemWithError(states, state); /* borrowed */
        if (tail != NULL) {
            Py_INCREF(tail);
        } else if (!PyErr_Occurred()) {
            tail = PyObject_CallOneArg(state_of, state);
        }
        int failed = tail == NULL || !PyBytes_Check(tail) || PyBytes_GET_SIZE(tail) == 0 ||
                     PySet_Add(named, state) < 0;
        Py_DECREF(state);
        if (failed) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "a state's tail is bytes");
            Py_XDECREF(tail);
            Py_DECREF(old_region);
            goto fail;
        }
        PyObject *p = PyTuple_GET_ITEM(row, 0), *score = PyTuple_GET_ITEM(row, 1);
        PyObject *region = PyTuple_GET_ITEM(row, 4);
        double lat = PyFloat_AsDouble(PyTuple_GET_ITEM(row, 2));
        double lng = PyFloat_AsDouble(PyTuple_GET_ITEM(row, 3));
        PyObject *id = PyObject_GetAttr(p, s_driver_id), *ts = PyObject_GetAttr(p, s_ts_ms);
        double ts_d = ts == NULL ? -1.0 : PyLong_AsDouble(ts);
        PyObject *change = NULL;
        if (id != NULL && ts != NULL && !PyErr_Occurred()) {
            double head[4] = {ver, ts_d, lat, lng};
            PyObject *value = packed_doubles(head, 4, PyBytes_AS_STRING(tail), PyBytes_GET_SIZE(tail));
            if (value != NULL && PyBytes_AS_STRING(tail)[PyBytes_GET_SIZE(tail) - 1] == 'a') {
                Py_ssize_t id_len;
                const char *id_s = PyUnicode_AsUTF8AndSize(id, &id_len);
                double at[3] = {lat, lng, ts_d};
                PyObject *member = id_s == NULL ? NULL : packed_doubles(at, 3, id_s, id_len);
                if (member != NULL) change = PyTuple_Pack(5, id, value, member, score, ts);
                Py_XDECREF(member);
            } else if (value != NULL) {
                change = PyTuple_Pack(5, id, value, empty, zero, ts);
            }
            Py_XDECREF(value);
        }
        Py_DECREF(tail);
        PyObject *list = NULL;
        if (change != NULL) {
            list = PyDict_GetItemWithError(ops, region);
            if (list == NULL && !PyErr_Occurred()) {
                list = PyList_New(0);
                if (list != NULL && PyDict_SetItem(ops, region, list) < 0) Py_CLEAR(list);
                Py_XDECREF(list); /* the dict holds it */
            }
        }
        failed = list == NULL || PyList_Append(list, change) < 0;
        Py_XDECREF(change);
        /* a driver that came from another region: gone from there */
        if (!failed && PyBytes_GET_SIZE(old_region) > 0) {
            PyObject *old = PyLong_FromString(PyBytes_AS_STRING(old_region), NULL, 16);
            int moved = old == NULL ? -1 : PyObject_RichCompareBool(old, region, Py_NE);
            if (moved > 0) {
                PyObject *o_ver = PyFloat_FromDouble(ver);
                PyObject *left = o_ver == NULL ? NULL
                                 : PyObject_CallFunctionObjArgs(gone, id, o_ver, ts, old, NULL);
                Py_XDECREF(o_ver);
                PyObject *there = left == NULL ? NULL : PyDict_GetItemWithError(ops, old);
                if (left != NULL && there == NULL && !PyErr_Occurred()) {
                    there = PyList_New(0);
                    if (there != NULL && PyDict_SetItem(ops, old, there) < 0) Py_CLEAR(there);
                    Py_XDECREF(there);
                }
                failed = there == NULL || PyList_Append(there, left) < 0;
                Py_XDECREF(left);
            } else if (moved < 0) {
                failed = 1;
            }
            Py_XDECREF(old);
        }
        Py_DECREF(old_region);
        Py_XDECREF(id);
        Py_XDECREF(ts);
        if (failed) goto fail;
    }
    Py_DECREF(empty);
    Py_DECREF(zero);
    PyObject *out = PyTuple_Pack(2, results, ops);
    Py_DECREF(results);
    Py_DECREF(ops);
    return out;
fail:
    Py_XDECREF(results);
    Py_XDECREF(ops);
    Py_XDECREF(empty);
    Py_XDECREF(zero);
    return NULL;
}

/* -- Position's __init__ -------------------------------------------------------------- */

/* geoindex.model.Position is a frozen dataclass with slots: its generated __init__ sets
 * each field through object.__setattr__, a Python frame and five calls for every fix
 * (about 8 thousand instructions). This one sets the same slots through their descriptors,
 * with the same signature: (driver_id, lat, lng, ts_ms, seq=None), by position or name. */
static const char *const POSITION_FIELDS[5] = {"driver_id", "lat", "lng", "ts_ms", "seq"};
static PyObject *position_names[5], *position_slots[5];

static PyObject *position_init(PyObject *Py_UNUSED(module), PyObject *const *args,
                               Py_ssize_t nargs, PyObject *kwnames) {
    PyObject *values[5] = {NULL, NULL, NULL, NULL, Py_None};
    if (nargs < 1 || nargs > 6) {
        PyErr_Format(PyExc_TypeError, "Position.__init__() takes from 5 to 6 positional "
                                      "arguments but %zd were given", nargs);
        return NULL;
    }
    PyObject *self = args[0];
    for (Py_ssize_t i = 1; i < nargs; i++) values[i - 1] = args[i];
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    for (Py_ssize_t j = 0; j < nkw; j++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, j);
        int f = 0;
        while (f < 5 && name != position_names[f] &&
               !(PyUnicode_Check(name) && PyUnicode_Compare(name, position_names[f]) == 0))
            f++;
        if (f == 5) {
            PyErr_Format(PyExc_TypeError,
                         "Position.__init__() got an unexpected keyword argument '%S'", name);
            return NULL;
        }
        if (f < nargs - 1) {
            PyErr_Format(PyExc_TypeError,
                         "Position.__init__() got multiple values for argument '%S'", name);
            return NULL;
        }
        values[f] = args[nargs + j];
    }
    for (int f = 0; f < 4; f++) {
        if (values[f] == NULL) {
            PyErr_Format(PyExc_TypeError,
                         "Position.__init__() missing required argument: '%s'",
                         POSITION_FIELDS[f]);
            return NULL;
        }
    }
    for (int f = 0; f < 5; f++) {
        PyObject *slot = position_slots[f];
        if (Py_TYPE(slot)->tp_descr_set(slot, self, values[f]) < 0) return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef POSITION_INIT = {
    "__init__", (PyCFunction)(void (*)(void))position_init, METH_FASTCALL | METH_KEYWORDS,
    "__init__($self, /, driver_id, lat, lng, ts_ms, seq=None)\n--\n\n"
    "Position's fields, set as its dataclass __init__ sets them."};

/* position_init_for(Position): the __init__ above for Position, whose fields are checked
 * to be the ones it sets, each a slot. */
static PyObject *position_init_for(PyObject *Py_UNUSED(self), PyObject *type) {
    PyObject *names = PyObject_GetAttrString(type, "__match_args__");
    PyObject *expected = Py_BuildValue("(sssss)", POSITION_FIELDS[0], POSITION_FIELDS[1],
                                       POSITION_FIELDS[2], POSITION_FIELDS[3], POSITION_FIELDS[4]);
    int same = names && expected ? PyObject_RichCompareBool(names, expected, Py_EQ) : -1;
    Py_XDECREF(names);
    Py_XDECREF(expected);
    if (same != 1 || !PyType_Check(type)) {
        if (same >= 0) PyErr_SetString(PyExc_TypeError, "not Position's fields");
        return NULL;
    }
    for (int f = 0; f < 5; f++) {
        PyObject *slot = PyObject_GetAttrString(type, POSITION_FIELDS[f]);
        if (slot == NULL) return NULL;
        if (Py_TYPE(slot)->tp_descr_set == NULL) {
            Py_DECREF(slot);
            PyErr_SetString(PyExc_TypeError, "Position's fields are not slots");
            return NULL;
        }
        Py_XSETREF(position_slots[f], slot);
    }
    PyObject *init = PyCFunction_New(&POSITION_INIT, NULL);
    if (init == NULL) return NULL;
    PyObject *method = PyInstanceMethod_New(init);
    Py_DECREF(init);
    return method;
}

static PyMethodDef module_methods[] = {
    {"region_changes", region_changes, METH_VARARGS,
     "region_changes(prepared, replies, states, state_of, named, accepted, stale, gone) -> "
     "(results, ops)."},
    {"position_init_for", position_init_for, METH_O,
     "An __init__ for geoindex.model.Position setting its slots in C."},
    {"format_g17", format_g17, METH_O,
     "\"%.17g\" % v by the fast path fix_texts takes, None where it does not apply."},
    {"pack_command", pack_command, METH_O,
     "A command (a tuple) as the Redis protocol's bytes, or NotImplemented for arguments "
     "other than str, bytes, int and float."},
    {"fix_texts", fix_texts, METH_VARARGS,
     "fix_texts(positions, key_head, tail, head, low, parents, write_region) -> (keys, "
     "texts, [(position, score, lat, lng, region)])."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "geoindex._resp",
    .m_doc = "The Redis edge's per-fix arithmetic and packing, compiled (see the C source).",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC PyInit__resp(void) {
    s_driver_id = PyUnicode_InternFromString("driver_id");
    s_lat = PyUnicode_InternFromString("lat");
    s_lng = PyUnicode_InternFromString("lng");
    s_ts_ms = PyUnicode_InternFromString("ts_ms");
    s_seq = PyUnicode_InternFromString("seq");
    if (!s_driver_id || !s_lat || !s_lng || !s_ts_ms || !s_seq) return NULL;
    for (int f = 0; f < 5; f++) {
        position_names[f] = PyUnicode_InternFromString(POSITION_FIELDS[f]);
        if (position_names[f] == NULL) return NULL;
    }
    return PyModule_Create(&module);
}
