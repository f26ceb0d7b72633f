/* H3's own C functions for the index's C modules (_gridknn.c, _resp.c), from the copy of
 * the H3 library linked into an extension module of h3-py (its public C API, exported
 * there). Through h3-py each call costs over a microsecond of calls and objects; here it
 * costs what H3's arithmetic does. */
#ifndef GEOINDEX_H3LIB_H
#define GEOINDEX_H3LIB_H

#include <Python.h>
#include <dlfcn.h>
#include <stdint.h>

typedef uint64_t H3Index;
typedef uint32_t H3Error;
typedef struct {
    double lat, lng; /* radians */
} LatLng;

/* Fills slots[i] with H3's function names[i] (NULL-terminated) from h3-py's extension
 * `module`: 0, or -1 with an exception set and every slot NULL. The import loads the
 * library; dlopen only finds it (and it stays loaded). */
static int h3_functions(const char *module, const char *const names[], void **slots[]) {
    PyObject *mod = PyImport_ImportModule(module);
    if (mod == NULL) return -1;
    PyObject *path = PyModule_GetFilenameObject(mod);
    Py_DECREF(mod);
    if (path == NULL) return -1;
    const char *file = PyUnicode_AsUTF8(path);
    void *lib = file == NULL ? NULL : dlopen(file, RTLD_LAZY | RTLD_NOLOAD);
    int found = lib != NULL;
    for (int i = 0; names[i] != NULL; i++) {
        *slots[i] = found ? dlsym(lib, names[i]) : NULL;
        found = found && *slots[i] != NULL;
    }
    if (!found) {
        for (int i = 0; names[i] != NULL; i++) *slots[i] = NULL;
        if (!PyErr_Occurred())
            PyErr_Format(PyExc_ImportError, "H3's C functions not found in %U", path);
        Py_DECREF(path);
        return -1;
    }
    Py_DECREF(path);
    return 0;
}

#endif
