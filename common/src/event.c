/* event.c: the event envelope: validation against the schema in proto/, the
 * JSON form (HTTP) and the msgpack form (bus, journal).
 *
 * Owns the rules of the envelope (v, id, type, ts, src, customer, actor,
 * data, up to EXTRA_MAX unknown fields) and of `data` (the field tables in
 * proto/schema.c), the bounded msgpack pre-scan and the UTF-8 check.
 *
 * Must never: trust a byte of its input (no assert on it, no allocation
 * sized by a header before the bytes behind it are known to be there),
 * recurse deeper than TP_EVENT_DEPTH_MAX, or log rejected input (callers
 * decide what a rejection is worth; a flood of bad events must not become a
 * flood of log lines).
 *
 * Sharing, not copying: an event holds jansson references. tp_event_from_json
 * and tp_event_to_json share the `data` tree and the extra values with their
 * argument instead of deep-copying them (intake handles ~100k events/s), so
 * a change made through one shows through the other (intake setting
 * data.ticket also changes the request body it is about to free: harmless).
 * tp_event_copy gives an independent deep copy. The msgpack path builds a
 * fresh tree and hands it over without a copy. Any thread; no global state;
 * one event is used by one thread at a time. */
#include "tp/event.h"

#include <assert.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tp/log.h"
#include "tp/recur.h"

#define TS_MAX 253402300799999LL /* 9999-12-31T23:59:59.999Z */
#define EXTRA_MAX 32             /* unknown envelope fields kept, at most */

/* The envelope's own keys; anything else at the top level is `extra`. */
enum { K_V, K_ID, K_TYPE, K_TS, K_SRC, K_CUSTOMER, K_ACTOR, K_DATA, K_COUNT };
static const struct {
    const char *name;
    size_t len;
} envelope_keys[K_COUNT] = {
    {"v", 1},   {"id", 2},       {"type", 4},  {"ts", 2},
    {"src", 3}, {"customer", 8}, {"actor", 5}, {"data", 4},
};

/* The envelope key `key` names (K_V..K_DATA), or K_COUNT for an unknown one. */
static int envelope_key(const char *key, size_t klen) {
    int k = 0;
    while (k < K_COUNT &&
           !(envelope_keys[k].len == klen && memcmp(envelope_keys[k].name, key, klen) == 0))
        k++;
    return k;
}

static int is_envelope_key(const char *key, size_t klen) {
    return envelope_key(key, klen) < K_COUNT;
}

/* ---------------------------------------------------------------------
 * Errors and field paths
 * ------------------------------------------------------------------ */

/* A dotted field path under construction ("data.contact.email"). */
typedef struct {
    char buf[sizeof(((tp_event_error_t *)0)->field)];
    size_t len;
} path_t;

/* Fills `err` (may be NULL) and returns -1. */
static int fail(tp_event_error_t *err, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(tp_event_error_t *err, const char *field, const char *fmt, ...) {
    if (err == NULL) return -1;
    snprintf(err->field, sizeof err->field, "%s", field ? field : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return -1;
}

/* Copies untrusted bytes into `out` as printable ASCII (anything else, and
 * quotes and backslashes, become '?'), so an error message or field name
 * is always safe to log and to put in a JSON reply. Truncates with "...". */
static void sanitize(char *out, size_t cap, const char *s, size_t len) {
    size_t n = 0;
    assert(cap >= 4);
    for (size_t i = 0; i < len; i++) {
        if (n + 1 >= cap) {
            memcpy(out + cap - 4, "...", 4);
            return;
        }
        unsigned char c = (unsigned char)s[i];
        out[n++] = (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') ? (char)c : '?';
    }
    out[n] = '\0';
}

/* Appends ".key" (or "key" at the root) to `p`; returns the old length
 * for path_pop. A path too long for the buffer is truncated, never
 * overflowed. */
static size_t path_push(path_t *p, const char *key, size_t klen) {
    size_t old = p->len;
    if (sizeof p->buf - p->len < 6) return old; /* room for ".x..." */
    if (p->len > 0) p->buf[p->len++] = '.';
    sanitize(p->buf + p->len, sizeof p->buf - p->len, key, klen);
    p->len += strlen(p->buf + p->len);
    return old;
}

static size_t path_push_index(path_t *p, size_t i) {
    size_t old = p->len;
    int n = snprintf(p->buf + p->len, sizeof p->buf - p->len, "[%zu]", i);
    if (n > 0 && (size_t)n < sizeof p->buf - p->len) p->len += (size_t)n;
    p->buf[p->len] = '\0';
    return old;
}

static void path_pop(path_t *p, size_t old) {
    p->len = old;
    p->buf[old] = '\0';
}

/* Out of memory aborts; the supervisor restarts the service (STYLE). */
static json_t *need(json_t *j, const char *what) {
    if (j == NULL) {
        tp_log_error("%s: out of memory", what);
        abort();
    }
    return j;
}

static void need_ok(int rc, const char *what) {
    if (rc != 0) {
        tp_log_error("%s: out of memory", what);
        abort();
    }
}

/* ---------------------------------------------------------------------
 * UTF-8
 * ------------------------------------------------------------------ */

int tp_utf8_valid(const char *s, size_t len) {
    if (len == 0) return 1; /* msgpack hands "" over as (NULL, 0) */
    const unsigned char *p = (const unsigned char *)s;
    const unsigned char *end = p + len;
    while (p < end) {
        /* ASCII fast path, 8 bytes at a time: no high bit, no zero byte. */
        while (end - p >= 8) {
            uint64_t w;
            memcpy(&w, p, 8);
            if ((w & 0x8080808080808080ULL) != 0) break;
            if (((w - 0x0101010101010101ULL) & ~w & 0x8080808080808080ULL) != 0)
                return 0; /* a NUL byte */
            p += 8;
        }
        if (p >= end) break;
        unsigned c = *p;
        if (c < 0x80) {
            if (c == 0) return 0;
            p++;
            continue;
        }
        size_t n;
        uint32_t cp, min;
        if (c >= 0xC2 && c <= 0xDF) { /* 0xC0, 0xC1: always overlong */
            n = 1, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            n = 2, cp = c & 0x0F, min = 0x800;
        } else if (c >= 0xF0 && c <= 0xF4) { /* 0xF5..: above U+10FFFF */
            n = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return 0; /* a stray continuation byte, or 0xC0/0xC1/0xF5.. */
        }
        if ((size_t)(end - p) <= n) return 0; /* truncated sequence */
        for (size_t i = 1; i <= n; i++) {
            if ((p[i] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (p[i] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
        p += n + 1;
    }
    return 1;
}

/* ---------------------------------------------------------------------
 * Small matchers
 * ------------------------------------------------------------------ */

/* 1 when s[0..len) equals one of the '|'-separated `choices`. */
static int choice_match(const char *choices, const char *s, size_t len) {
    const char *c = choices;
    for (;;) {
        const char *bar = strchr(c, '|');
        size_t n = bar ? (size_t)(bar - c) : strlen(c);
        if (n == len && memcmp(c, s, len) == 0) return 1;
        if (bar == NULL) return 0;
        c = bar + 1;
    }
}

static tp_event_type_t type_lookup(const char *s, size_t len) {
    for (int t = 1; t < TP_EVENT_COUNT; t++) {
        const char *name = tp_proto_type_name((tp_event_type_t)t);
        if (strlen(name) == len && memcmp(name, s, len) == 0) return (tp_event_type_t)t;
    }
    return TP_EVENT_NONE;
}

/* id: 1..TP_ID_MAX bytes of printable ASCII without space, '{', '}', '|'
 * (they are Redis hash-tag and key separators downstream). */
static int id_valid(const char *s, size_t len) {
    if (len == 0 || len > TP_ID_MAX) return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c >= 0x7f || c == '{' || c == '}' || c == '|') return 0;
    }
    return 1;
}

/* customer: 1..TP_CUSTOMER_MAX of [A-Za-z0-9._:@+-]. */
static int customer_valid(const char *s, size_t len) {
    if (len == 0 || len > TP_CUSTOMER_MAX) return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
            continue;
        if (c == '.' || c == '_' || c == ':' || c == '@' || c == '+' || c == '-') continue;
        return 0;
    }
    return 1;
}

static int src_valid(const char *s, size_t len) {
    if (len == 0 || len > TP_SRC_MAX || memchr(s, '\0', len) != NULL) return 0;
    return choice_match(TP_SOURCES, s, len) || tp_proto_service(s) >= 0;
}

/* ---------------------------------------------------------------------
 * Bounded trees (JSON given by a caller)
 * ------------------------------------------------------------------ */

/* Checks a caller's jansson tree the way the msgpack path is checked before
 * conversion: containers at most TP_EVENT_DEPTH_MAX deep (`depth` is the
 * level `j` sits at, the envelope being 1) and no NUL byte in a string or
 * key (jansson allows them under JSON_ALLOW_NUL; the bus does not). The
 * recursion stops at the depth limit, so it is bounded too. */
static int tree_check(const json_t *j, int depth, path_t *path, tp_event_error_t *err) {
    if (json_is_string(j)) {
        if (memchr(json_string_value(j), '\0', json_string_length(j)) != NULL)
            return fail(err, path->buf, "must not contain NUL bytes");
        return 0;
    }
    if (!json_is_object(j) && !json_is_array(j)) return 0;
    if (depth > TP_EVENT_DEPTH_MAX)
        return fail(err, path->buf, "nests deeper than %d levels", TP_EVENT_DEPTH_MAX);
    if (json_is_array(j)) {
        for (size_t i = 0; i < json_array_size(j); i++) {
            size_t old = path_push_index(path, i);
            int rc = tree_check(json_array_get(j, i), depth + 1, path, err);
            path_pop(path, old);
            if (rc != 0) return -1;
        }
        return 0;
    }
    const char *key;
    size_t klen;
    json_t *v;
    json_t *o = (json_t *)j; /* jansson's iterators are not const-correct */
    json_object_keylen_foreach(o, key, klen, v) {
        size_t old = path_push(path, key, klen);
        int rc = memchr(key, '\0', klen) != NULL
                     ? fail(err, path->buf, "key must not contain NUL bytes")
                     : tree_check(v, depth + 1, path, err);
        path_pop(path, old);
        if (rc != 0) return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------------
 * Data validation against the field tables
 * ------------------------------------------------------------------ */

static int field_check(const tp_field_t *f, const json_t *v, const char *field,
                       tp_event_error_t *err);

/* Validates the object `obj` against `fields`; `prefix` names `obj` in
 * errors ("data", "data.contact"). Unknown members are kept, not errors. */
static int fields_check(const tp_field_t *fields, const json_t *obj, const char *prefix,
                        tp_event_error_t *err) {
    for (const tp_field_t *f = fields; f->name != NULL; f++) {
        char field[sizeof(((tp_event_error_t *)0)->field)];
        snprintf(field, sizeof field, "%s.%s", prefix, f->name);
        const json_t *v = json_object_get(obj, f->name);
        if (v == NULL || json_is_null(v)) { /* null counts as absent */
            if (f->required) return fail(err, field, "is required");
            continue;
        }
        if (field_check(f, v, field, err) != 0) return -1;
    }
    return 0;
}

static int field_check(const tp_field_t *f, const json_t *v, const char *field,
                       tp_event_error_t *err) {
    switch (f->kind) {
    case TP_FIELD_STRING: {
        if (!json_is_string(v) || json_string_length(v) > (size_t)f->max)
            return fail(err, field, "must be a string of at most %lld bytes",
                        (long long)f->max);
        if (!tp_utf8_valid(json_string_value(v), json_string_length(v)))
            return fail(err, field, "must be valid UTF-8 without NUL bytes");
        return 0;
    }
    case TP_FIELD_INT:
    case TP_FIELD_TIME: {
        /* json_is_integer: a real (3.0) or a boolean is not an integer. */
        json_int_t n = json_is_integer(v) ? json_integer_value(v) : 0;
        if (!json_is_integer(v) || n < f->min || n > f->max) {
            if (f->kind == TP_FIELD_TIME)
                return fail(err, field, "must be a time in ms since the epoch from %lld to %lld",
                            (long long)f->min, (long long)f->max);
            return fail(err, field, "must be an integer from %lld to %lld", (long long)f->min,
                        (long long)f->max);
        }
        return 0;
    }
    case TP_FIELD_BOOL:
        if (!json_is_boolean(v)) return fail(err, field, "must be true or false");
        return 0;
    case TP_FIELD_ENUM:
        if (!json_is_string(v) ||
            !choice_match(f->choices, json_string_value(v), json_string_length(v)))
            return fail(err, field, "must be one of %s", f->choices);
        return 0;
    case TP_FIELD_OBJECT:
        if (!json_is_object(v)) return fail(err, field, "must be an object");
        return fields_check(f->sub, v, field, err);
    case TP_FIELD_KEY:
        if (!json_is_string(v) || json_string_length(v) == 0 ||
            json_string_length(v) > (size_t)f->max ||
            !id_valid(json_string_value(v), json_string_length(v)))
            return fail(err, field,
                        "must be an id of 1 to %lld printable ASCII characters "
                        "without spaces, braces or '|'", (long long)f->max);
        return 0;
    case TP_FIELD_RRULE: {
        if (!json_is_string(v) || json_string_length(v) > (size_t)f->max)
            return fail(err, field, "must be a string of at most %lld bytes",
                        (long long)f->max);
        if (!tp_utf8_valid(json_string_value(v), json_string_length(v)))
            return fail(err, field, "must be valid UTF-8 without NUL bytes");
        /* `why` never quotes the rule, so the message is safe to echo. */
        char why[160];
        if (!tp_recur_valid(json_string_value(v), why, sizeof why))
            return fail(err, field, "must be an RFC 5545 rule: %s", why);
        return 0;
    }
    case TP_FIELD_ARRAY:
        if (!json_is_array(v) || json_array_size(v) > (size_t)f->max)
            return fail(err, field, "must be a list of at most %lld items",
                        (long long)f->max);
        for (size_t i = 0; i < json_array_size(v); i++) {
            char item[sizeof err->field];
            snprintf(item, sizeof item, "%s[%zu]", field, i);
            if (field_check(&f->sub[0], json_array_get(v, i), item, err) != 0)
                return -1;
        }
        return 0;
    }
    return fail(err, field, "has an unknown kind in the schema"); /* not reached */
}

/* `trusted`: the tree was built by msgpack_to_json, which already bounded
 * its depth and checked every string; skip the walk. */
static int data_check(tp_event_type_t type, const json_t *data, int trusted,
                      tp_event_error_t *err) {
    const tp_event_schema_t *schema = tp_proto_schema(type);
    if (schema == NULL) return fail(err, "type", "unknown event type");
    if (!json_is_object(data)) return fail(err, "data", "must be an object");
    if (fields_check(schema->fields, data, "data", err) != 0) return -1;
    for (const tp_field_rule_t *r = schema->rules; r && r->field; r++) {
        const json_t *when = json_object_get(data, r->when);
        const json_t *v = json_object_get(data, r->field);
        if (json_is_string(when) && strcmp(json_string_value(when), r->equals) == 0 &&
            (!v || json_is_null(v))) {
            char field[sizeof err->field];
            snprintf(field, sizeof field, "data.%s", r->field);
            return fail(err, field, "required when %s is %s", r->when, r->equals);
        }
    }
    if (trusted) return 0;
    path_t path = {"data", 4};
    return tree_check(data, 2, &path, err); /* data sits at level 2 */
}

int tp_event_validate_data(tp_event_type_t type, const json_t *data, tp_event_error_t *err) {
    return data_check(type, data, 0, err);
}

/* ---------------------------------------------------------------------
 * Envelope
 * ------------------------------------------------------------------ */

void tp_event_init(tp_event_t *ev) {
    assert(ev != NULL);
    memset(ev, 0, sizeof *ev);
}

void tp_event_clear(tp_event_t *ev) {
    if (ev == NULL) return;
    json_decref(ev->data);
    json_decref(ev->extra);
    memset(ev, 0, sizeof *ev);
}

/* Validates the envelope `obj` and, only when all of it is valid, fills
 * `ev` with new references to its `data` and unknown members (no copies).
 * `trusted` as for data_check. */
static int envelope_parse(tp_event_t *ev, const json_t *obj, int trusted,
                          tp_event_error_t *err) {
    if (!json_is_object(obj)) return fail(err, "", "the event must be an object");

    /* One pass over the members: the envelope's own, then the rest. */
    const json_t *m[K_COUNT] = {NULL};
    size_t extra_count = 0;
    const char *key;
    size_t klen;
    json_t *v;
    json_t *o = (json_t *)obj; /* jansson's iterators are not const-correct */
    json_object_keylen_foreach(o, key, klen, v) {
        int k = envelope_key(key, klen);
        if (k < K_COUNT) {
            m[k] = json_is_null(v) ? NULL : v; /* null counts as absent */
            continue;
        }
        if (++extra_count > EXTRA_MAX)
            return fail(err, "", "has more than %d unknown top-level fields", EXTRA_MAX);
    }

    /* Checked in envelope order, so the first error is deterministic. */
    if (m[K_V] && !(json_is_integer(m[K_V]) && json_integer_value(m[K_V]) == TP_PROTO_VERSION))
        return fail(err, "v", "must be %d", TP_PROTO_VERSION);

    const json_t *id = m[K_ID];
    if (id && (!json_is_string(id) || !id_valid(json_string_value(id), json_string_length(id))))
        return fail(err, "id",
                    "must be 1 to %d printable ASCII characters without spaces, "
                    "'{', '}' or '|'",
                    TP_ID_MAX);

    const json_t *jt = m[K_TYPE];
    if (jt == NULL) return fail(err, "type", "is required");
    if (!json_is_string(jt)) return fail(err, "type", "must be a string naming an event type");
    tp_event_type_t type = type_lookup(json_string_value(jt), json_string_length(jt));
    if (type == TP_EVENT_NONE) {
        char name[64];
        sanitize(name, sizeof name, json_string_value(jt), json_string_length(jt));
        return fail(err, "type", "unknown event type \"%s\"", name);
    }

    const json_t *ts = m[K_TS];
    if (ts == NULL) return fail(err, "ts", "is required");
    if (!json_is_integer(ts) || json_integer_value(ts) < 0 || json_integer_value(ts) > TS_MAX)
        return fail(err, "ts", "must be an integer time in ms since the epoch from 0 to %lld",
                    TS_MAX);

    const json_t *src = m[K_SRC];
    if (src == NULL) return fail(err, "src", "is required");
    if (!json_is_string(src) || !src_valid(json_string_value(src), json_string_length(src)))
        return fail(err, "src", "must be one of %s or a service name", TP_SOURCES);

    const json_t *cust = m[K_CUSTOMER];
    if (cust &&
        (!json_is_string(cust) || !customer_valid(json_string_value(cust), json_string_length(cust))))
        return fail(err, "customer", "must be 1 to %d characters of A-Z a-z 0-9 . _ : @ + -",
                    TP_CUSTOMER_MAX);

    const json_t *actor = m[K_ACTOR];
    if (actor && (!json_is_string(actor) || json_string_length(actor) > TP_ACTOR_MAX ||
                  !tp_utf8_valid(json_string_value(actor), json_string_length(actor))))
        return fail(err, "actor", "must be a UTF-8 string of at most %d bytes", TP_ACTOR_MAX);

    const json_t *data = m[K_DATA];
    if (data == NULL) return fail(err, "data", "is required");
    if (data_check(type, data, trusted, err) != 0) return -1;

    /* The unknown members: any JSON, bounded like the rest. */
    if (extra_count > 0 && !trusted) {
        json_object_keylen_foreach(o, key, klen, v) {
            if (is_envelope_key(key, klen)) continue;
            path_t path = {"", 0};
            path_push(&path, key, klen);
            if (memchr(key, '\0', klen) != NULL)
                return fail(err, path.buf, "key must not contain NUL bytes");
            if (tree_check(v, 2, &path, err) != 0) return -1;
        }
    }

    /* Valid: fill the event. Lengths were checked above, so the copies fit. */
    ev->v = TP_PROTO_VERSION;
    ev->type = type;
    ev->ts = (int64_t)json_integer_value(ts);
    memcpy(ev->src, json_string_value(src), json_string_length(src) + 1);
    if (id) memcpy(ev->id, json_string_value(id), json_string_length(id) + 1);
    if (cust) memcpy(ev->customer, json_string_value(cust), json_string_length(cust) + 1);
    if (actor) memcpy(ev->actor, json_string_value(actor), json_string_length(actor) + 1);
    ev->data = json_incref((json_t *)data);
    if (extra_count > 0) {
        ev->extra = need(json_object(), "json_object");
        json_object_keylen_foreach(o, key, klen, v) {
            if (!is_envelope_key(key, klen))
                need_ok(json_object_setn_nocheck(ev->extra, key, klen, v), "json_object_setn");
        }
    }
    return 0;
}

int tp_event_from_json(tp_event_t *ev, const json_t *obj, tp_event_error_t *err) {
    assert(ev != NULL);
    tp_event_clear(ev);
    return envelope_parse(ev, obj, 0, err);
}

/* ---------------------------------------------------------------------
 * msgpack in: bounded scan, unpack, convert, validate
 * ------------------------------------------------------------------ */

static uint64_t be_read(const unsigned char *p, size_t n) {
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) x = (x << 8) | p[i];
    return x;
}

/* Walks buf[0..len) as exactly one msgpack object without allocating.
 * Every header is checked against the bytes remaining before it is
 * believed: a str/bin/ext length must fit, and the elements still owed by
 * every open array and map (each needs at least one byte) must fit too, so
 * a 5-byte "array of 4 billion" fails at its header. Containers nest at
 * most TP_EVENT_DEPTH_MAX deep. O(len). Only after this passes may
 * msgpack_unpack_next (which allocates per claimed element) see the
 * bytes. */
static int msgpack_scan(const unsigned char *p, size_t len, tp_event_error_t *err) {
    uint64_t left[TP_EVENT_DEPTH_MAX + 1]; /* elements owed per open container */
    int top = 0;
    uint64_t owed = 1; /* sum of left[]: the root object */
    size_t pos = 0;
    left[0] = 1;

    while (top >= 0) {
        if (left[top] == 0) {
            top--;
            continue;
        }
        left[top]--;
        owed--;
        if (pos >= len) return fail(err, "", "malformed msgpack: truncated");
        unsigned char b = p[pos++];
        size_t hdr = 0;     /* bytes of length/count after the type byte */
        uint64_t body = 0;  /* payload bytes to skip */
        uint64_t elems = 0; /* child elements (2 per map pair) */
        int container = 0;

        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
            /* fixint, negative fixint, nil, false, true */
        } else if (b <= 0x8f) {
            container = 1, elems = 2u * (b & 0x0f);
        } else if (b <= 0x9f) {
            container = 1, elems = b & 0x0f;
        } else if (b <= 0xbf) {
            body = b & 0x1f;
        } else {
            switch (b) {
            case 0xc4: case 0xd9: hdr = 1; break; /* bin8, str8 */
            case 0xc5: case 0xda: hdr = 2; break; /* bin16, str16 */
            case 0xc6: case 0xdb: hdr = 4; break; /* bin32, str32 */
            case 0xc7: hdr = 1, body = 1; break;  /* ext8: + type byte */
            case 0xc8: hdr = 2, body = 1; break;  /* ext16 */
            case 0xc9: hdr = 4, body = 1; break;  /* ext32 */
            case 0xca: body = 4; break;           /* float32 */
            case 0xcb: body = 8; break;           /* float64 */
            case 0xcc: case 0xd0: body = 1; break; /* uint8, int8 */
            case 0xcd: case 0xd1: body = 2; break;
            case 0xce: case 0xd2: body = 4; break;
            case 0xcf: case 0xd3: body = 8; break;
            case 0xd4: body = 2; break;           /* fixext1: type + 1 */
            case 0xd5: body = 3; break;
            case 0xd6: body = 5; break;
            case 0xd7: body = 9; break;
            case 0xd8: body = 17; break;
            case 0xdc: hdr = 2, container = 1; break; /* array16 */
            case 0xdd: hdr = 4, container = 1; break; /* array32 */
            case 0xde: hdr = 2, container = 2; break; /* map16 */
            case 0xdf: hdr = 4, container = 2; break; /* map32 */
            default: /* 0xc1: never used */
                return fail(err, "", "malformed msgpack: invalid byte 0x%02x", b);
            }
        }
        if (hdr > 0) {
            if (len - pos < hdr) return fail(err, "", "malformed msgpack: truncated");
            uint64_t n = be_read(p + pos, hdr);
            pos += hdr;
            if (container == 2) elems = 2 * n; /* map: key and value */
            else if (container == 1) elems = n;
            else body += n;
        }
        if (body > len - pos)
            return fail(err, "", "malformed msgpack: a value claims %llu bytes, %zu remain",
                        (unsigned long long)body, len - pos);
        pos += (size_t)body;
        if (!container) continue;
        if (top + 1 > TP_EVENT_DEPTH_MAX)
            return fail(err, "", "malformed msgpack: nests deeper than %d levels",
                        TP_EVENT_DEPTH_MAX);
        owed += elems;
        if (owed > len - pos)
            return fail(err, "", "malformed msgpack: a container claims %llu elements, %zu bytes remain",
                        (unsigned long long)elems, len - pos);
        left[++top] = elems;
    }
    if (pos != len)
        return fail(err, "", "malformed msgpack: %zu trailing bytes after the event", len - pos);
    return 0;
}

/* Converts a scanned msgpack object into a new jansson tree (caller owns
 * it), or NULL with `err`. Depth was bounded by msgpack_scan, so the
 * recursion is too. Strings (and keys) must be UTF-8 without NUL; map keys
 * must be strings and unique; bin and ext have no JSON form and are
 * rejected; integers must fit int64; floats must be finite. */
/* msgpack-c points an empty string at NULL; jansson wants a pointer. */
static const char *str_ptr(const msgpack_object_str *s) {
    return s->size == 0 ? "" : s->ptr;
}

static json_t *msgpack_to_json(const msgpack_object *mo, path_t *path, tp_event_error_t *err) {
    switch (mo->type) {
    case MSGPACK_OBJECT_NIL:
        return need(json_null(), "json_null");
    case MSGPACK_OBJECT_BOOLEAN:
        return need(json_boolean(mo->via.boolean), "json_boolean");
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        if (mo->via.u64 > (uint64_t)INT64_MAX) {
            fail(err, path->buf, "number out of range");
            return NULL;
        }
        return need(json_integer((json_int_t)mo->via.u64), "json_integer");
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return need(json_integer((json_int_t)mo->via.i64), "json_integer");
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        if (!isfinite(mo->via.f64)) {
            fail(err, path->buf, "number out of range");
            return NULL;
        }
        return need(json_real(mo->via.f64), "json_real");
    case MSGPACK_OBJECT_STR:
        if (!tp_utf8_valid(mo->via.str.ptr, mo->via.str.size)) {
            fail(err, path->buf, "must be valid UTF-8 without NUL bytes");
            return NULL;
        }
        return need(json_stringn_nocheck(str_ptr(&mo->via.str), mo->via.str.size),
                    "json_stringn");
    case MSGPACK_OBJECT_BIN:
        fail(err, path->buf, "binary values are not supported");
        return NULL;
    case MSGPACK_OBJECT_EXT:
        fail(err, path->buf, "extension values are not supported");
        return NULL;
    case MSGPACK_OBJECT_ARRAY: {
        json_t *arr = need(json_array(), "json_array");
        for (uint32_t i = 0; i < mo->via.array.size; i++) {
            size_t old = path_push_index(path, i);
            json_t *item = msgpack_to_json(&mo->via.array.ptr[i], path, err);
            path_pop(path, old);
            if (item == NULL) {
                json_decref(arr);
                return NULL;
            }
            need_ok(json_array_append_new(arr, item), "json_array_append");
        }
        return arr;
    }
    case MSGPACK_OBJECT_MAP: {
        json_t *obj = need(json_object(), "json_object");
        for (uint32_t i = 0; i < mo->via.map.size; i++) {
            const msgpack_object *k = &mo->via.map.ptr[i].key;
            if (k->type != MSGPACK_OBJECT_STR) {
                fail(err, path->buf, "map keys must be strings");
                goto fail_map;
            }
            const char *key = str_ptr(&k->via.str);
            size_t old = path_push(path, key, k->via.str.size);
            if (!tp_utf8_valid(k->via.str.ptr, k->via.str.size)) {
                fail(err, path->buf, "key must be valid UTF-8 without NUL bytes");
                goto fail_map;
            }
            if (json_object_getn(obj, key, k->via.str.size) != NULL) {
                /* Two readers could disagree on which one wins. */
                fail(err, path->buf, "duplicate key");
                goto fail_map;
            }
            json_t *val = msgpack_to_json(&mo->via.map.ptr[i].val, path, err);
            path_pop(path, old);
            if (val == NULL) goto fail_map;
            need_ok(json_object_setn_new_nocheck(obj, key, k->via.str.size, val),
                    "json_object_setn");
        }
        return obj;
    fail_map:
        json_decref(obj);
        return NULL;
    }
    }
    fail(err, path->buf, "unsupported msgpack value");
    return NULL;
}

int tp_event_from_msgpack(tp_event_t *ev, const char *buf, size_t len, tp_event_error_t *err) {
    assert(ev != NULL);
    tp_event_clear(ev);
    if (buf == NULL || len == 0) return fail(err, "", "malformed msgpack: empty");
    if (msgpack_scan((const unsigned char *)buf, len, err) != 0) return -1;

    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    msgpack_unpack_return ret = msgpack_unpack_next(&up, buf, len, &off);
    if (ret == MSGPACK_UNPACK_NOMEM_ERROR) {
        tp_log_error("msgpack_unpack_next: out of memory");
        abort();
    }
    int rc = -1;
    path_t path = {"", 0};
    json_t *root = NULL;
    if (ret != MSGPACK_UNPACK_SUCCESS || off != len) {
        /* The scan accepted what the unpacker refuses: a bug, not input. */
        fail(err, "", "malformed msgpack");
        goto done;
    }
    if (up.data.type != MSGPACK_OBJECT_MAP) {
        fail(err, "", "the event must be a map");
        goto done;
    }
    root = msgpack_to_json(&up.data, &path, err);
    if (root == NULL) goto done;
    rc = envelope_parse(ev, root, 1, err);
    json_decref(root); /* ev keeps its own references to data and extra */
done:
    msgpack_unpacked_destroy(&up);
    return rc;
}

/* ---------------------------------------------------------------------
 * msgpack out
 * ------------------------------------------------------------------ */

static int pack_str(msgpack_packer *pk, const char *s, size_t len) {
    return msgpack_pack_str_with_body(pk, s, len);
}

/* Packs a jansson value. Refuses (-1) what tp_event_from_msgpack would
 * refuse to read back: nesting deeper than the limit. */
static int pack_json(msgpack_packer *pk, const json_t *j, int depth) {
    switch (json_typeof(j)) {
    case JSON_NULL:
        return msgpack_pack_nil(pk);
    case JSON_TRUE:
        return msgpack_pack_true(pk);
    case JSON_FALSE:
        return msgpack_pack_false(pk);
    case JSON_INTEGER:
        return msgpack_pack_int64(pk, (int64_t)json_integer_value(j));
    case JSON_REAL:
        return msgpack_pack_double(pk, json_real_value(j));
    case JSON_STRING:
        return pack_str(pk, json_string_value(j), json_string_length(j));
    case JSON_ARRAY: {
        if (depth > TP_EVENT_DEPTH_MAX) return -1;
        if (msgpack_pack_array(pk, json_array_size(j)) != 0) return -1;
        for (size_t i = 0; i < json_array_size(j); i++)
            if (pack_json(pk, json_array_get(j, i), depth + 1) != 0) return -1;
        return 0;
    }
    case JSON_OBJECT: {
        if (depth > TP_EVENT_DEPTH_MAX) return -1;
        if (msgpack_pack_map(pk, json_object_size(j)) != 0) return -1;
        const char *key;
        size_t klen;
        json_t *v;
        json_t *o = (json_t *)j;
        json_object_keylen_foreach(o, key, klen, v) {
            if (pack_str(pk, key, klen) != 0 || pack_json(pk, v, depth + 1) != 0) return -1;
        }
        return 0;
    }
    }
    return -1;
}

int tp_event_pack(const tp_event_t *ev, msgpack_sbuffer *out) {
    assert(ev != NULL && out != NULL);
    const char *type = tp_proto_schema(ev->type) ? tp_proto_type_name(ev->type) : NULL;
    if (type == NULL || !json_is_object(ev->data)) {
        tp_log_error("tp_event_pack: event has no type or no data object");
        return -1;
    }
    /* id, customer and actor are written only when set: "" is not a valid
     * value on input, and absence is (intake fills id and customer). */
    size_t n = 5 + (ev->id[0] != '\0') + (ev->customer[0] != '\0') + (ev->actor[0] != '\0');
    size_t n_extra = 0;
    if (ev->extra != NULL) {
        const char *key;
        size_t klen;
        json_t *v;
        json_object_keylen_foreach(ev->extra, key, klen, v) {
            if (!is_envelope_key(key, klen)) n_extra++;
        }
        if (n_extra > EXTRA_MAX) {
            tp_log_error("tp_event_pack: %zu extra fields, at most %d", n_extra, EXTRA_MAX);
            return -1;
        }
    }

    size_t start = out->size;
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    int rc = msgpack_pack_map(&pk, n + n_extra);
    rc |= pack_str(&pk, "v", 1) | msgpack_pack_int(&pk, ev->v ? ev->v : TP_PROTO_VERSION);
    if (ev->id[0] != '\0') rc |= pack_str(&pk, "id", 2) | pack_str(&pk, ev->id, strlen(ev->id));
    rc |= pack_str(&pk, "type", 4) | pack_str(&pk, type, strlen(type));
    rc |= pack_str(&pk, "ts", 2) | msgpack_pack_int64(&pk, ev->ts);
    rc |= pack_str(&pk, "src", 3) | pack_str(&pk, ev->src, strlen(ev->src));
    if (ev->customer[0] != '\0')
        rc |= pack_str(&pk, "customer", 8) | pack_str(&pk, ev->customer, strlen(ev->customer));
    if (ev->actor[0] != '\0')
        rc |= pack_str(&pk, "actor", 5) | pack_str(&pk, ev->actor, strlen(ev->actor));
    rc |= pack_str(&pk, "data", 4);
    if (rc == 0) rc = pack_json(&pk, ev->data, 2);
    if (rc == 0 && ev->extra != NULL) {
        /* An extra key named like an envelope field cannot come from a
         * decoded event; a service that set one is skipped, not trusted. */
        const char *key;
        size_t klen;
        json_t *v;
        json_object_keylen_foreach(ev->extra, key, klen, v) {
            if (is_envelope_key(key, klen)) continue;
            if (pack_str(&pk, key, klen) != 0 || pack_json(&pk, v, 2) != 0) {
                rc = -1;
                break;
            }
        }
    }
    if (rc != 0) {
        out->size = start; /* leave `out` as it was */
        tp_log_error("tp_event_pack: %s event %s: out of memory or nesting deeper than %d",
                     type, ev->id, TP_EVENT_DEPTH_MAX);
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------------
 * JSON out, copy, accessors
 * ------------------------------------------------------------------ */

static void set_str(json_t *obj, const char *key, const char *s) {
    need_ok(json_object_set_new_nocheck(obj, key, need(json_string_nocheck(s), "json_string")),
            "json_object_set");
}

json_t *tp_event_to_json(const tp_event_t *ev) {
    assert(ev != NULL);
    json_t *obj = need(json_object(), "json_object");
    need_ok(json_object_set_new_nocheck(obj, "v", need(json_integer(ev->v ? ev->v : TP_PROTO_VERSION),
                                                       "json_integer")),
            "json_object_set");
    if (ev->id[0] != '\0') set_str(obj, "id", ev->id);
    set_str(obj, "type", tp_proto_type_name(ev->type));
    need_ok(json_object_set_new_nocheck(obj, "ts", need(json_integer(ev->ts), "json_integer")),
            "json_object_set");
    set_str(obj, "src", ev->src);
    if (ev->customer[0] != '\0') set_str(obj, "customer", ev->customer);
    if (ev->actor[0] != '\0') set_str(obj, "actor", ev->actor);
    if (ev->data != NULL) need_ok(json_object_set_nocheck(obj, "data", ev->data), "json_object_set");
    if (ev->extra != NULL) {
        const char *key;
        size_t klen;
        json_t *v;
        json_object_keylen_foreach(ev->extra, key, klen, v) {
            if (!is_envelope_key(key, klen))
                need_ok(json_object_setn_nocheck(obj, key, klen, v), "json_object_setn");
        }
    }
    return obj;
}

void tp_event_copy(tp_event_t *dst, const tp_event_t *src) {
    assert(dst != NULL && src != NULL && dst != src);
    tp_event_clear(dst);
    json_t *data = src->data, *extra = src->extra;
    memcpy(dst, src, sizeof *dst);
    dst->data = data ? need(json_deep_copy(data), "json_deep_copy") : NULL;
    dst->extra = extra ? need(json_deep_copy(extra), "json_deep_copy") : NULL;
}

/* The value at dotted `path` inside `data`, or NULL. Borrowed. */
static const json_t *data_at(const tp_event_t *ev, const char *path) {
    if (ev == NULL || path == NULL) return NULL;
    const json_t *j = ev->data;
    for (;;) {
        if (!json_is_object(j)) return NULL;
        const char *dot = strchr(path, '.');
        size_t n = dot ? (size_t)(dot - path) : strlen(path);
        j = json_object_getn(j, path, n);
        if (dot == NULL || j == NULL) return j;
        path = dot + 1;
    }
}

const char *tp_event_str(const tp_event_t *ev, const char *path) {
    const json_t *j = data_at(ev, path);
    return json_is_string(j) ? json_string_value(j) : NULL;
}

int64_t tp_event_int(const tp_event_t *ev, const char *path, int64_t def) {
    const json_t *j = data_at(ev, path);
    return json_is_integer(j) ? (int64_t)json_integer_value(j) : def;
}

int tp_event_bool(const tp_event_t *ev, const char *path, int def) {
    const json_t *j = data_at(ev, path);
    return json_is_boolean(j) ? json_is_true(j) : def;
}
