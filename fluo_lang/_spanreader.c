/* FLUO's native span reader: OTLP trace export requests, from their wire bytes straight to spans.
 *
 * `read(data, plan, shared, clamped)` walks an `ExportTraceServiceRequest` (or `TracesData`, the
 * same fields) and builds the spans `fluo_lang.otlp.spans_from_request(decode_traces(data))` builds,
 * slot for slot, without a protobuf message per span: decoding the request with protobuf and then
 * reading each field through protobuf's Python API cost several times what the rules do.
 *
 * It reads only the encoding OpenTelemetry's exporters write: the fields OTLP defines, each once,
 * lengths inside their message. For anything else (an unknown field, a field given twice, a string
 * that is not UTF-8, ids OTLP says are invalid, bytes that are not protobuf at all) it returns None
 * and leaves the request to protobuf (`spans_from_request`), which says what is wrong. So it never
 * accepts what protobuf refuses, and where both accept, a test checks they give the same spans.
 * Resources and instrumentation scopes, a few per request, are parsed by protobuf itself
 * (`resource_of`, `scope_check`): their strings are validated exactly as in a whole decode.
 *
 * Everything the spans hold is made by FLUO's Python functions or equal to what they make:
 * names, statuses and attribute values come from the same caches and converters, given as
 * callables by `configure`, with a small memo in C of what those caches hold (immutable
 * values only) so a repeated name or value costs no bytes object and no dict lookup.
 * Every read is bounds-checked against the message it is in.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdint.h>
#include <string.h>

/* ------------------------------------------------------------------ configuration */

/* What short encodings read as, kept in C: a name, a status or an attribute value repeats across
   spans, and looking one up here costs no bytes object and no dict lookup. Only what FLUO's own
   cache (the dict given) holds for those bytes is kept: immutable values, never a list or a map.
   One entry per slot, a newer value replacing an older one. Read and written with the GIL held,
   and no Python code runs between reading an entry and taking a reference to its value. */
#define MEMO_SLOTS 4096 /* a power of two */
#define MEMO_KEY_BYTES 64

typedef struct {
    uint64_t hash;
    Py_ssize_t n;
    uint8_t key[MEMO_KEY_BYTES];
    PyObject *value; /* NULL: empty */
} MemoEntry;

typedef struct {
    MemoEntry slots[MEMO_SLOTS];
} Memo;

static Memo *memo_names = NULL, *memo_statuses = NULL, *memo_values = NULL;


enum {
    SLOT_TRACE_ID,
    SLOT_SPAN_ID,
    SLOT_PARENT_ID,
    SLOT_NAME,
    SLOT_SERVICE,
    SLOT_START,
    SLOT_END,
    SLOT_STATUS,
    SLOT_STATUS_MESSAGE,
    SLOT_KIND,
    SLOT_ATTRS,
    SLOT_ATTRS_SOURCE,
    SLOT_READ,
    SLOT_RESOURCE,
    SLOT_TRACE_REF,
    SLOT_POS,
    N_SLOTS
};

static const char *slot_names[N_SLOTS] = {
    "trace_id", "span_id", "parent_id", "name",   "service",     "start",    "end",      "status",
    "status_message", "kind", "_attrs", "_attrs_source", "_read", "resource", "trace_ref", "_pos",
};

static PyTypeObject *span_type = NULL;
static Py_ssize_t slot_offset[N_SLOTS];

static PyObject *resource_of = NULL;  /* bytes -> (resource dict, service str); raises on a bad Resource */
static PyObject *scope_check = NULL;  /* bytes -> None; raises on a bad InstrumentationScope */
static PyObject *value_cache = NULL;  /* dict: AnyValue bytes -> value */
static PyObject *value_of = NULL;     /* bytes -> value */
static PyObject *dotted_of = NULL;    /* (AnyValue bytes of a map, rest of the key) -> value or None */
static PyObject *name_cache = NULL;   /* dict: name bytes -> str */
static PyObject *name_of = NULL;      /* bytes -> str */
static PyObject *status_cache = NULL; /* dict: Status bytes -> (status, message) */
static PyObject *status_of = NULL;    /* bytes -> (status, message) */
static PyObject *clamp_end = NULL;    /* (span, clamped list or None) -> None */
static PyObject *kinds = NULL;        /* tuple of kind names by number */
static PyObject *kind_default = NULL; /* the name of a kind out of the tuple's range */
static PyObject *positions = NULL;    /* tuple of shared ints 0..n-1 for `_pos` */
static PyObject *empty_bytes = NULL;

static int configured = 0;

/* What `otlp.py` checks before using the module: a build of another version of this file (an editable
   install not rebuilt after a pull) is not used. Raise it whenever `read`'s contract changes. */
#define READER_VERSION 2

static int
set_callable(PyObject *dict, const char *key, PyObject **target, int must_call)
{
    PyObject *v = PyDict_GetItemString(dict, key); /* borrowed */
    if (v == NULL) {
        PyErr_Format(PyExc_KeyError, "configure: %s missing", key);
        return -1;
    }
    if (must_call && !PyCallable_Check(v)) {
        PyErr_Format(PyExc_TypeError, "configure: %s is not callable", key);
        return -1;
    }
    Py_INCREF(v);
    Py_XSETREF(*target, v);
    return 0;
}

static PyObject *
configure(PyObject *Py_UNUSED(self), PyObject *args)
{
    PyObject *cls, *hooks;
    if (!PyArg_ParseTuple(args, "O!O!:configure", &PyType_Type, &cls, &PyDict_Type, &hooks)) {
        return NULL;
    }
    Py_ssize_t offsets[N_SLOTS];
    for (int i = 0; i < N_SLOTS; i++) {
        PyObject *d = PyObject_GetAttrString(cls, slot_names[i]);
        if (d == NULL) {
            return NULL;
        }
        if (!Py_IS_TYPE(d, &PyMemberDescr_Type)) {
            Py_DECREF(d);
            PyErr_Format(PyExc_TypeError, "configure: %s is not a slot", slot_names[i]);
            return NULL;
        }
        PyMemberDef *m = ((PyMemberDescrObject *)d)->d_member;
        if (m->type != T_OBJECT_EX || (m->flags & READONLY)) {
            Py_DECREF(d);
            PyErr_Format(PyExc_TypeError, "configure: %s is not a writable object slot", slot_names[i]);
            return NULL;
        }
        offsets[i] = m->offset;
        Py_DECREF(d);
    }
    if (set_callable(hooks, "resource_of", &resource_of, 1) < 0 ||
        set_callable(hooks, "scope_check", &scope_check, 1) < 0 ||
        set_callable(hooks, "value_cache", &value_cache, 0) < 0 ||
        set_callable(hooks, "value_of", &value_of, 1) < 0 ||
        set_callable(hooks, "dotted_of", &dotted_of, 1) < 0 ||
        set_callable(hooks, "name_cache", &name_cache, 0) < 0 ||
        set_callable(hooks, "name_of", &name_of, 1) < 0 ||
        set_callable(hooks, "status_cache", &status_cache, 0) < 0 ||
        set_callable(hooks, "status_of", &status_of, 1) < 0 ||
        set_callable(hooks, "clamp_end", &clamp_end, 1) < 0 ||
        set_callable(hooks, "kinds", &kinds, 0) < 0 ||
        set_callable(hooks, "kind_default", &kind_default, 0) < 0 ||
        set_callable(hooks, "positions", &positions, 0) < 0) {
        return NULL;
    }
    if (!PyDict_CheckExact(value_cache) || !PyDict_CheckExact(name_cache) || !PyDict_CheckExact(status_cache) ||
        !PyTuple_CheckExact(kinds) || !PyTuple_CheckExact(positions)) {
        PyErr_SetString(PyExc_TypeError, "configure: caches must be dicts, kinds and positions tuples");
        return NULL;
    }
    Memo *memos[] = {memo_names, memo_statuses, memo_values};
    for (size_t m = 0; m < sizeof memos / sizeof memos[0]; m++) { /* values of the caches configured before */
        for (int i = 0; i < MEMO_SLOTS; i++) {
            Py_CLEAR(memos[m]->slots[i].value);
        }
    }
    Py_INCREF(cls);
    Py_XSETREF(span_type, (PyTypeObject *)cls);
    memcpy(slot_offset, offsets, sizeof offsets);
    configured = 1;
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------ wire format */

typedef struct {
    const uint8_t *p;
    Py_ssize_t n;
} Slice;

/* A varint at *pp (before end) of at most `most` bytes: 0 and *pp past it, or -1 for a truncated or
   longer one. Values take up to 10 bytes; tags and lengths at most 5, as protobuf reads them (it
   refuses a longer one as corrupt, so the reader must too). */
static inline int
varint_of(const uint8_t **pp, const uint8_t *end, uint64_t *out, int most)
{
    const uint8_t *p = *pp;
    uint64_t v = 0;
    for (int i = 0, shift = 0; i < most; i++, shift += 7) {
        if (p >= end) {
            return -1;
        }
        uint8_t b = *p++;
        if (shift == 63 && b > 1) {
            return -1; /* past 64 bits: left to protobuf */
        }
        v |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) {
            *pp = p;
            *out = v;
            return 0;
        }
    }
    return -1;
}

static inline int
varint(const uint8_t **pp, const uint8_t *end, uint64_t *out)
{
    return varint_of(pp, end, out, 10);
}

#define SHORT_VARINT 5 /* the most bytes of a tag or a length */

/* A field's tag: its number and wire type. */
static inline int
tag(const uint8_t **pp, const uint8_t *end, uint32_t *field, int *wire)
{
    uint64_t t;
    if (varint_of(pp, end, &t, SHORT_VARINT) < 0 || t > UINT32_MAX) {
        return -1;
    }
    *field = (uint32_t)(t >> 3);
    *wire = (int)(t & 7);
    return 0;
}

/* A length-delimited field's bytes, inside the message. */
static inline int
delimited(const uint8_t **pp, const uint8_t *end, Slice *out)
{
    uint64_t n;
    if (varint_of(pp, end, &n, SHORT_VARINT) < 0 || n > INT32_MAX || n > (uint64_t)(end - *pp)) {
        return -1;
    }
    out->p = *pp;
    out->n = (Py_ssize_t)n;
    *pp += n;
    return 0;
}

static inline int
fixed64(const uint8_t **pp, const uint8_t *end, uint64_t *out)
{
    if (end - *pp < 8) {
        return -1;
    }
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) {
        v = (v << 8) | (*pp)[i];
    }
    *pp += 8;
    *out = v;
    return 0;
}

/* Whether bytes are UTF-8 as protobuf checks a string field's (strict: no surrogates, no over-long forms). */
static int
utf8(Slice s)
{
    for (Py_ssize_t i = 0; i < s.n; i++) {
        if (s.p[i] & 0x80) {
            PyObject *u = PyUnicode_DecodeUTF8((const char *)s.p, s.n, "strict");
            if (u == NULL) {
                PyErr_Clear();
                return 0;
            }
            Py_DECREF(u);
            return 1;
        }
    }
    return 1;
}

static int
all_zero(Slice s)
{
    for (Py_ssize_t i = 0; i < s.n; i++) {
        if (s.p[i]) {
            return 0;
        }
    }
    return 1;
}

/* ------------------------------------------------------------------ reading */

#define BAIL 1  /* leave the request to protobuf */
#define MAX_SCANNED 256 /* attributes of a span its planned keys are looked up in by a scan */
#define ERROR -1 /* a Python exception is set */

typedef struct {
    Slice key;
    Slice value;
} Entry;

typedef struct {
    PyObject *key;       /* str: the `_read` key */
    Slice utf8;          /* its UTF-8 bytes */
    Py_ssize_t n_heads;  /* dotted readings: a flat head key holding a map, and the rest of the key */
    Slice *heads;
    PyObject **rests;    /* borrowed from the plan */
} Key;

typedef struct {
    PyObject *out;       /* the list of spans */
    PyObject *shared;    /* the SharedRequest the spans' attributes read from, or NULL: each its own bytes */
    PyObject *clamped;   /* a list, or Py_None */
    Key *keys;
    Py_ssize_t n_keys;
    Entry *entries;      /* one span's attributes, reused */
    Py_ssize_t cap;
    PyObject *resource;  /* the current block's resource dict and service */
    PyObject *service;
} Reader;

static inline void
set_slot(PyObject *obj, int slot, PyObject *value) /* steals value */
{
    PyObject **p = (PyObject **)((char *)obj + slot_offset[slot]);
    Py_XSETREF(*p, value);
}


static inline uint64_t
fnv1a(Slice raw)
{
    uint64_t h = 1469598103934665603ULL;
    for (Py_ssize_t i = 0; i < raw.n; i++) {
        h = (h ^ raw.p[i]) * 1099511628211ULL;
    }
    return h;
}

/* A value from a cache dict by bytes key, or what `convert` makes of those bytes. New reference. */
static PyObject *
cached(Memo *memo, PyObject *cache, PyObject *convert, Slice raw)
{
    MemoEntry *e = NULL;
    uint64_t h = 0;
    if (raw.n <= MEMO_KEY_BYTES) {
        h = fnv1a(raw);
        e = &memo->slots[h & (MEMO_SLOTS - 1)];
        if (e->value != NULL && e->hash == h && e->n == raw.n && memcmp(e->key, raw.p, (size_t)raw.n) == 0) {
            return Py_NewRef(e->value);
        }
    }
    PyObject *b = PyBytes_FromStringAndSize((const char *)raw.p, raw.n);
    if (b == NULL) {
        return NULL;
    }
    PyObject *v = PyDict_GetItemWithError(cache, b); /* borrowed */
    if (v != NULL) {
        Py_INCREF(v);
    }
    else if (!PyErr_Occurred()) {
        v = PyObject_CallOneArg(convert, b);
        if (v != NULL && e != NULL) {
            PyObject *held = PyDict_GetItemWithError(cache, b); /* borrowed; bytes hash: it cannot fail */
            if (held != v) {
                e = NULL; /* not kept by FLUO's cache (a list or a map, or a long key): not kept here either */
                PyErr_Clear();
            }
        }
    }
    Py_DECREF(b);
    if (v != NULL && e != NULL) {
        e = &memo->slots[h & (MEMO_SLOTS - 1)]; /* the same slot: converting may have filled it */
        PyObject *old = e->value;
        e->hash = h;
        e->n = raw.n;
        memcpy(e->key, raw.p, (size_t)raw.n);
        e->value = Py_NewRef(v);
        Py_XDECREF(old);
    }
    return v;
}

static const Entry *
find(const Entry *entries, Py_ssize_t n, Slice key)
{
    for (Py_ssize_t i = n - 1; i >= 0; i--) { /* a repeated key keeps its last value, as in protobuf's map */
        if (entries[i].key.n == key.n && memcmp(entries[i].key.p, key.p, (size_t)key.n) == 0) {
            return &entries[i];
        }
    }
    return NULL;
}

/* The `_read` dict of a span: each planned key's value, or None. */
static PyObject *
read_keys(Reader *r, Py_ssize_t n_entries)
{
    PyObject *read = PyDict_New();
    if (read == NULL) {
        return NULL;
    }
    for (Py_ssize_t k = 0; k < r->n_keys; k++) {
        Key *key = &r->keys[k];
        PyObject *v = NULL;
        const Entry *e = find(r->entries, n_entries, key->utf8);
        if (e != NULL) {
            v = cached(memo_values, value_cache, value_of, e->value);
        }
        else {
            for (Py_ssize_t h = 0; h < key->n_heads && v == NULL; h++) {
                const Entry *head = find(r->entries, n_entries, key->heads[h]);
                if (head == NULL) {
                    continue;
                }
                PyObject *raw = PyBytes_FromStringAndSize((const char *)head->value.p, head->value.n);
                if (raw == NULL) {
                    break;
                }
                v = PyObject_CallFunctionObjArgs(dotted_of, raw, key->rests[h], NULL);
                Py_DECREF(raw);
                if (v == Py_None) {
                    Py_CLEAR(v);
                }
                else if (v == NULL) {
                    break;
                }
            }
            if (v == NULL && !PyErr_Occurred()) {
                v = Py_NewRef(Py_None);
            }
        }
        if (v == NULL || PyDict_SetItem(read, key->key, v) < 0) {
            Py_XDECREF(v);
            Py_DECREF(read);
            return NULL;
        }
        Py_DECREF(v);
    }
    return read;
}

/* One map entry of `Span.attributes` (a KeyValue on the wire): its key, UTF-8, and its value's bytes. */
static int
entry(Slice msg, Entry *out)
{
    const uint8_t *p = msg.p, *end = msg.p + msg.n;
    int seen = 0;
    out->key.p = out->value.p = msg.p;
    out->key.n = out->value.n = 0;
    while (p < end) {
        uint32_t field;
        int wire;
        if (tag(&p, end, &field, &wire) < 0 || wire != 2 || (field != 1 && field != 2) || (seen & (1 << field))) {
            return BAIL;
        }
        seen |= 1 << field;
        if (delimited(&p, end, field == 1 ? &out->key : &out->value) < 0) {
            return BAIL;
        }
    }
    return utf8(out->key) ? 0 : BAIL;
}

enum {
    F_TRACE_ID = 1,
    F_SPAN_ID = 2,
    F_TRACE_STATE = 3,
    F_PARENT = 4,
    F_NAME = 5,
    F_KIND = 6,
    F_START = 7,
    F_END = 8,
    F_ATTRIBUTES = 9,
    F_DROPPED_ATTRIBUTES = 10,
    F_EVENTS = 11,
    F_DROPPED_EVENTS = 12,
    F_LINKS = 13,
    F_DROPPED_LINKS = 14,
    F_STATUS = 15,
    F_FLAGS = 16,
};

static const int span_wire[17] = {
    -1, 2, 2, 2, 2, 2, 0, 1, 1, 2, 0, 2, 0, 2, 0, 2, 5,
};

static int
span(Reader *r, Slice msg)
{
    const uint8_t *p = msg.p, *end = msg.p + msg.n;
    Slice tid = {p, 0}, sid = {p, 0}, pid = {p, 0}, name = {p, 0}, status = {p, 0}, skipped;
    uint64_t start = 0, stop = 0, kind = 0, ignored;
    uint32_t seen = 0;
    Py_ssize_t n_entries = 0;
    while (p < end) {
        uint32_t field;
        int wire;
        if (tag(&p, end, &field, &wire) < 0 || field == 0 || field > 16 || wire != span_wire[field]) {
            return BAIL;
        }
        if (field != F_ATTRIBUTES && field != F_EVENTS && field != F_LINKS) {
            if (seen & (1u << field)) {
                return BAIL; /* a field given twice: protobuf's rules for that are left to protobuf */
            }
            seen |= 1u << field;
        }
        int bad = 0;
        switch (field) {
        case F_TRACE_ID: bad = delimited(&p, end, &tid); break;
        case F_SPAN_ID: bad = delimited(&p, end, &sid); break;
        case F_PARENT: bad = delimited(&p, end, &pid); break;
        case F_NAME: bad = delimited(&p, end, &name); break;
        case F_STATUS: bad = delimited(&p, end, &status); break;
        case F_TRACE_STATE: bad = delimited(&p, end, &skipped) < 0 || !utf8(skipped); break;
        case F_EVENTS:
        case F_LINKS: bad = delimited(&p, end, &skipped); break; /* bytes in FLUO's schema: never parsed */
        case F_KIND: bad = varint(&p, end, &kind); break;
        case F_DROPPED_ATTRIBUTES:
        case F_DROPPED_EVENTS:
        case F_DROPPED_LINKS: bad = varint(&p, end, &ignored); break;
        case F_START: bad = fixed64(&p, end, &start); break;
        case F_END: bad = fixed64(&p, end, &stop); break;
        case F_FLAGS:
            bad = end - p < 4;
            p += bad ? 0 : 4;
            break;
        case F_ATTRIBUTES: {
            Slice e;
            if (delimited(&p, end, &e) < 0) {
                return BAIL;
            }
            if (n_entries == r->cap) {
                Py_ssize_t cap = r->cap ? r->cap * 2 : 32;
                Entry *grown = PyMem_Realloc(r->entries, (size_t)cap * sizeof(Entry));
                if (grown == NULL) {
                    PyErr_NoMemory();
                    return ERROR;
                }
                r->entries = grown;
                r->cap = cap;
            }
            if (entry(e, &r->entries[n_entries]) != 0) {
                return BAIL;
            }
            n_entries++;
            break;
        }
        }
        if (bad) {
            return BAIL;
        }
    }
    /* Ids as `spans_from_request` takes them: invalid ones are left to it (it names them); an
       all-zero parent id is no parent. */
    if (tid.n != 16 || sid.n != 8 || all_zero(tid) || all_zero(sid)) {
        return BAIL;
    }
    if (pid.n) {
        if (pid.n != 8) {
            return BAIL;
        }
        if (all_zero(pid)) {
            pid.n = 0;
        }
    }
    PyObject *s = span_type->tp_alloc(span_type, 0);
    if (s == NULL) {
        return ERROR;
    }
    PyObject *v;
#define SET(slot, expr)          \
    do {                         \
        v = (expr);              \
        if (v == NULL) {         \
            goto error;          \
        }                        \
        set_slot(s, (slot), v);  \
    } while (0)
    SET(SLOT_TRACE_ID, PyBytes_FromStringAndSize((const char *)tid.p, tid.n));
    SET(SLOT_SPAN_ID, PyBytes_FromStringAndSize((const char *)sid.p, sid.n));
    SET(SLOT_PARENT_ID, pid.n ? PyBytes_FromStringAndSize((const char *)pid.p, pid.n) : Py_NewRef(empty_bytes));
    SET(SLOT_NAME, cached(memo_names, name_cache, name_of, name));
    SET(SLOT_SERVICE, Py_NewRef(r->service));
    SET(SLOT_START, PyLong_FromUnsignedLongLong(start));
    SET(SLOT_END, PyLong_FromUnsignedLongLong(stop));
    PyObject *st = cached(memo_statuses, status_cache, status_of, status);
    if (st == NULL) {
        goto error;
    }
    if (!PyTuple_CheckExact(st) || PyTuple_GET_SIZE(st) != 2) {
        Py_DECREF(st);
        PyErr_SetString(PyExc_TypeError, "status_of must give a (status, message) tuple");
        goto error;
    }
    set_slot(s, SLOT_STATUS, Py_NewRef(PyTuple_GET_ITEM(st, 0)));
    set_slot(s, SLOT_STATUS_MESSAGE, Py_NewRef(PyTuple_GET_ITEM(st, 1)));
    Py_DECREF(st);
    int32_t k = (int32_t)(uint32_t)kind; /* an enum is an int32: the low 32 bits of its varint */
    SET(SLOT_KIND, Py_NewRef(k >= 0 && k < PyTuple_GET_SIZE(kinds) ? PyTuple_GET_ITEM(kinds, k) : kind_default));
    SET(SLOT_ATTRS, Py_NewRef(Py_None));
    Py_ssize_t position = PyList_GET_SIZE(r->out);
    if (r->shared != NULL) {
        SET(SLOT_ATTRS_SOURCE, Py_NewRef(r->shared));
        SET(SLOT_POS, position < PyTuple_GET_SIZE(positions) ? Py_NewRef(PyTuple_GET_ITEM(positions, position))
                                                             : PyLong_FromSsize_t(position));
    }
    else {
        SET(SLOT_ATTRS_SOURCE, PyBytes_FromStringAndSize((const char *)msg.p, msg.n));
    }
    /* The planned keys are looked up by a scan of the span's attributes: past MAX_SCANNED of them, where
       scans would cost more than protobuf's map, none is prefetched and each is read on first use (`_read`
       None: `Span.attr`, through protobuf's map of the span's own bytes, as without a plan). */
    SET(SLOT_READ, r->n_keys && n_entries <= MAX_SCANNED ? read_keys(r, n_entries) : Py_NewRef(Py_None));
    SET(SLOT_RESOURCE, Py_NewRef(r->resource));
    SET(SLOT_TRACE_REF, Py_NewRef(Py_None));
#undef SET
    if (PyList_Append(r->out, s) < 0) {
        goto error;
    }
    if (stop < start) {
        PyObject *done = PyObject_CallFunctionObjArgs(clamp_end, s, r->clamped, NULL);
        if (done == NULL) {
            goto error;
        }
        Py_DECREF(done);
    }
    Py_DECREF(s);
    return 0;
error:
    Py_DECREF(s);
    return ERROR;
}

/* A message field (resource, scope) parsed by protobuf through `check`; NULL with the exception it raised. */
static PyObject *
by_protobuf(PyObject *check, Slice raw)
{
    PyObject *b = PyBytes_FromStringAndSize((const char *)raw.p, raw.n);
    if (b == NULL) {
        return NULL;
    }
    PyObject *got = PyObject_CallOneArg(check, b);
    Py_DECREF(b);
    return got;
}

/* One field of a ResourceSpans or a ScopeSpans, which have one shape: 1 a message, given at most once (the
   resource, the scope), 2 the repeated children, 3 the schema URL, a string given at most once. 0 and the field
   (*pp past it), or BAIL for anything else. */
static int
block_field(const uint8_t **pp, const uint8_t *end, int *seen, uint32_t *field, Slice *sub)
{
    int wire;
    if (tag(pp, end, field, &wire) < 0 || wire != 2 || *field < 1 || *field > 3 || delimited(pp, end, sub) < 0) {
        return BAIL;
    }
    if (*field == 2) {
        return 0;
    }
    if (*seen & (1 << *field)) {
        return BAIL;
    }
    *seen |= 1 << *field;
    return *field == 3 && !utf8(*sub) ? BAIL : 0;
}

static int
scope_spans(Reader *r, Slice msg)
{
    const uint8_t *p = msg.p, *end = msg.p + msg.n;
    int seen = 0;
    while (p < end) {
        uint32_t field = 0;
        Slice sub = {NULL, 0};
        int got = block_field(&p, end, &seen, &field, &sub);
        if (got == 0 && field == 2) {
            got = span(r, sub);
        }
        else if (got == 0 && field == 1) {
            PyObject *ok = by_protobuf(scope_check, sub);
            if (ok == NULL) {
                return ERROR;
            }
            Py_DECREF(ok);
        }
        if (got != 0) {
            return got;
        }
    }
    return 0;
}

static int
resource_spans(Reader *r, Slice msg)
{
    /* The resource may come after the spans on the wire: find it in a first pass, read the spans in a second. */
    const uint8_t *p, *end = msg.p + msg.n;
    Slice resource = {msg.p, 0};
    int seen = 0;
    for (p = msg.p; p < end;) {
        uint32_t field = 0;
        Slice sub = {NULL, 0};
        if (block_field(&p, end, &seen, &field, &sub) != 0) {
            return BAIL;
        }
        if (field == 1) {
            resource = sub;
        }
    }
    PyObject *got = by_protobuf(resource_of, resource);
    if (got == NULL) {
        return ERROR;
    }
    if (!PyTuple_CheckExact(got) || PyTuple_GET_SIZE(got) != 2) {
        Py_DECREF(got);
        PyErr_SetString(PyExc_TypeError, "resource_of must give a (resource, service) tuple");
        return ERROR;
    }
    Py_XSETREF(r->resource, Py_NewRef(PyTuple_GET_ITEM(got, 0)));
    Py_XSETREF(r->service, Py_NewRef(PyTuple_GET_ITEM(got, 1)));
    Py_DECREF(got);
    for (p = msg.p, seen = 0; p < end;) {
        uint32_t field = 0;
        Slice sub = {NULL, 0};
        if (block_field(&p, end, &seen, &field, &sub) != 0) {
            return BAIL; /* not reached: read above */
        }
        if (field == 2) {
            int done = scope_spans(r, sub);
            if (done != 0) {
                return done;
            }
        }
    }
    return 0;
}

static int
request(Reader *r, Slice msg)
{
    const uint8_t *p = msg.p, *end = msg.p + msg.n;
    while (p < end) {
        uint32_t field;
        int wire;
        Slice sub = {NULL, 0};
        if (tag(&p, end, &field, &wire) < 0 || field != 1 || wire != 2 || delimited(&p, end, &sub) < 0) {
            return BAIL;
        }
        int done = resource_spans(r, sub);
        if (done != 0) {
            return done;
        }
    }
    return 0;
}

/* The plan's keys: (key str, its UTF-8 bytes, ((head bytes, rest str), ...)), as `read` takes them. */
static int
plan_keys(PyObject *plan, Key **out, Py_ssize_t *n_out)
{
    Py_ssize_t n = PyTuple_GET_SIZE(plan), total = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PyTuple_GET_ITEM(plan, i);
        if (!PyTuple_CheckExact(item) || PyTuple_GET_SIZE(item) != 3 || !PyUnicode_CheckExact(PyTuple_GET_ITEM(item, 0)) ||
            !PyBytes_CheckExact(PyTuple_GET_ITEM(item, 1)) || !PyTuple_CheckExact(PyTuple_GET_ITEM(item, 2))) {
            PyErr_SetString(PyExc_TypeError, "plan: (key, key bytes, readings) tuples");
            return -1;
        }
        PyObject *readings = PyTuple_GET_ITEM(item, 2);
        for (Py_ssize_t h = 0; h < PyTuple_GET_SIZE(readings); h++) {
            PyObject *reading = PyTuple_GET_ITEM(readings, h);
            if (!PyTuple_CheckExact(reading) || PyTuple_GET_SIZE(reading) != 2 ||
                !PyBytes_CheckExact(PyTuple_GET_ITEM(reading, 0)) || !PyUnicode_CheckExact(PyTuple_GET_ITEM(reading, 1))) {
                PyErr_SetString(PyExc_TypeError, "plan: readings are (head bytes, rest) tuples");
                return -1;
            }
        }
        total += PyTuple_GET_SIZE(readings);
    }
    Key *keys = PyMem_Calloc((size_t)(n ? n : 1), sizeof(Key));
    Slice *heads = PyMem_Calloc((size_t)(total ? total : 1), sizeof(Slice));
    PyObject **rests = PyMem_Calloc((size_t)(total ? total : 1), sizeof(PyObject *));
    if (keys == NULL || heads == NULL || rests == NULL) {
        PyMem_Free(keys);
        PyMem_Free(heads);
        PyMem_Free(rests);
        PyErr_NoMemory();
        return -1;
    }
    keys[0].heads = heads; /* freed through keys[0] (`free_keys`), an empty plan's too */
    keys[0].rests = rests;
    Py_ssize_t used = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PyTuple_GET_ITEM(plan, i);
        PyObject *b = PyTuple_GET_ITEM(item, 1), *readings = PyTuple_GET_ITEM(item, 2);
        keys[i].key = PyTuple_GET_ITEM(item, 0);
        keys[i].utf8.p = (const uint8_t *)PyBytes_AS_STRING(b);
        keys[i].utf8.n = PyBytes_GET_SIZE(b);
        keys[i].n_heads = PyTuple_GET_SIZE(readings);
        keys[i].heads = heads + used;
        keys[i].rests = rests + used;
        for (Py_ssize_t h = 0; h < keys[i].n_heads; h++) {
            PyObject *head = PyTuple_GET_ITEM(PyTuple_GET_ITEM(readings, h), 0);
            heads[used + h].p = (const uint8_t *)PyBytes_AS_STRING(head);
            heads[used + h].n = PyBytes_GET_SIZE(head);
            rests[used + h] = PyTuple_GET_ITEM(PyTuple_GET_ITEM(readings, h), 1);
        }
        used += keys[i].n_heads;
    }
    *out = keys;
    *n_out = n;
    return 0;
}

static void
free_keys(Key *keys)
{
    if (keys != NULL) {
        PyMem_Free(keys[0].heads);
        PyMem_Free(keys[0].rests);
        PyMem_Free(keys);
    }
}

static PyObject *
read_spans(PyObject *Py_UNUSED(self), PyObject *args)
{
    Py_buffer data;
    PyObject *plan, *shared, *clamped;
    if (!configured) {
        PyErr_SetString(PyExc_RuntimeError, "the span reader is not configured");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "y*O!OO:read", &data, &PyTuple_Type, &plan, &shared, &clamped)) {
        return NULL;
    }
    Reader r = {0};
    r.shared = shared == Py_None ? NULL : shared;
    r.clamped = clamped;
    r.resource = Py_NewRef(Py_None);
    r.service = Py_NewRef(Py_None);
    PyObject *result = NULL;
    if (plan_keys(plan, &r.keys, &r.n_keys) < 0) {
        goto done;
    }
    r.out = PyList_New(0);
    if (r.out == NULL) {
        goto done;
    }
    Slice msg = {(const uint8_t *)data.buf, data.len};
    int got = request(&r, msg);
    if (got == 0) {
        result = Py_NewRef(r.out);
    }
    else if (got == BAIL) {
        result = Py_NewRef(Py_None);
    }
done:
    Py_XDECREF(r.out);
    Py_XDECREF(r.resource);
    Py_XDECREF(r.service);
    free_keys(r.keys);
    PyMem_Free(r.entries);
    PyBuffer_Release(&data);
    return result;
}

static PyMethodDef methods[] = {
    {"configure", configure, METH_VARARGS,
     "configure(span_class, hooks): the span class (its slots are set directly) and the converters to call."},
    {"read", read_spans, METH_VARARGS,
     "read(data, plan, shared, clamped) -> list of spans, or None: left to protobuf."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_spanreader",
    .m_doc = "FLUO's native span reader (see fluo_lang/_spanreader.c).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC
PyInit__spanreader(void)
{
    empty_bytes = PyBytes_FromStringAndSize(NULL, 0);
    memo_names = PyMem_Calloc(1, sizeof(Memo));
    memo_statuses = PyMem_Calloc(1, sizeof(Memo));
    memo_values = PyMem_Calloc(1, sizeof(Memo));
    if (empty_bytes == NULL || memo_names == NULL || memo_statuses == NULL || memo_values == NULL) {
        return PyErr_NoMemory();
    }
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && PyModule_AddIntConstant(m, "VERSION", READER_VERSION) < 0) {
        Py_CLEAR(m);
    }
    return m;
}
