/* reminder.c: a reminder's record to and from its stored msgpack form
 * (tp/reminder.h). */
#include "tp/reminder.h"

#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

typedef enum { KIND_s, KIND_i, KIND_b } kind_t;

enum {
#define XX(name, kind) F_##name,
    TP_REMINDER_FIELD_MAP(XX)
#undef XX
};

static const struct {
    const char *name;
    kind_t kind;
} fields[] = {
#define XX(name, kind) {#name, KIND_##kind},
    TP_REMINDER_FIELD_MAP(XX)
#undef XX
};
#define NFIELDS (sizeof fields / sizeof fields[0])

/* The stored form's version, its first element (the first form had none:
 * its first element is the owner, a string or nil). */
#define FORM 2

/* Frequent string values stored as small integers (codes never change;
 * add new ones at the end). Index = code. */
static const char *const owner_codes[] = {"unassigned"};
static const char *const closed_by_codes[] = {NULL, "contact", "inbound"};
/* the scheduler's fixed texts (services/scheduler/scheduler_plan.c); a text
 * not here, or changed there, is stored as it is */
static const char *const text_codes[] = {
    NULL,
    "Follow up at the time agreed with the customer",
    "No reply to the product email: plan the next step",
    "Return visit by phone",
    "Return visit on site",
    "Answer the phone inquiry",
    "Answer the email inquiry",
    "Answer the web inquiry",
    "Answer the hotline inquiry",
    "Answer the im inquiry",
    "Answer the phone inquiry (urgent)",
    "Answer the email inquiry (urgent)",
    "Answer the web inquiry (urgent)",
    "Answer the hotline inquiry (urgent)",
    "Answer the im inquiry (urgent)",
};
#define NCODES(a) (sizeof(a) / sizeof(a)[0])

/* The code of `s` in `codes`, or -1. */
static int code_of(const char *const *codes, size_t n, const char *s) {
    for (size_t c = 0; c < n; c++)
        if (codes[c] && strcmp(codes[c], s) == 0) return (int)c;
    return -1;
}

/* The codes of field `f`, or NULL when it has none. */
static const char *const *codes_of(size_t f, size_t *n) {
    if (f == F_owner) { *n = NCODES(owner_codes); return owner_codes; }
    if (f == F_closed_by) { *n = NCODES(closed_by_codes); return closed_by_codes; }
    if (f == F_text) { *n = NCODES(text_codes); return text_codes; }
    *n = 0;
    return NULL;
}

/* 1 when `v` is stored for field `f`. */
static int present(size_t f, const json_t *v) {
    switch (fields[f].kind) {
    case KIND_s: return json_is_string(v);
    case KIND_i: return json_is_integer(v);
    case KIND_b: return json_is_boolean(v);
    }
    return 0;
}

char *tp_reminder_pack(const json_t *record, size_t *len) {
    if (!json_is_object(record)) return NULL;
    size_t n = 0; /* fields up to the last present one */
    for (size_t f = 0; f < NFIELDS; f++)
        if (present(f, json_object_get(record, fields[f].name))) n = f + 1;
    const json_t *due = json_object_get(record, "due_at");
    int has_due = present(F_due_at, due);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, n + 1);
    msgpack_pack_int(&pk, FORM);
    for (size_t f = 0; f < n; f++) {
        const json_t *v = json_object_get(record, fields[f].name);
        size_t ncodes;
        const char *const *codes = codes_of(f, &ncodes);
        int code;
        if (!present(f, v)) {
            msgpack_pack_nil(&pk);
        } else if (codes && (code = code_of(codes, ncodes, json_string_value(v))) >= 0) {
            msgpack_pack_int(&pk, code);
        } else if (fields[f].kind == KIND_s) {
            size_t l = json_string_length(v);
            msgpack_pack_str(&pk, l);
            msgpack_pack_str_body(&pk, json_string_value(v), l);
        } else if (f == F_cause_ts && has_due) {
            /* before its due time by a little: fewer bytes than the time */
            msgpack_pack_int64(&pk, (int64_t)((uint64_t)json_integer_value(due) -
                                              (uint64_t)json_integer_value(v)));
        } else if (fields[f].kind == KIND_i) {
            msgpack_pack_int64(&pk, json_integer_value(v));
        } else if (json_is_true(v)) {
            msgpack_pack_true(&pk);
        } else {
            msgpack_pack_false(&pk);
        }
    }
    if (!sb.data) abort(); /* an array header is always written */
    *len = sb.size;
    return sb.data; /* the buffer is malloc'd: the caller frees it */
}

/* Sets "rule" of `record` from `id` "<customer>|<rule>[|<subject>]"
 * unless it has one. Returns `record`. */
static json_t *with_rule(json_t *record, const char *id) {
    const char *rule = id ? strchr(id, '|') : NULL;
    if (!record || !rule || json_object_get(record, "rule")) return record;
    rule++;
    size_t n = strcspn(rule, "|");
    if (n > 0) json_object_set_new(record, "rule", json_stringn(rule, n));
    return record;
}

static json_t *unpack(const char *bytes, size_t len);

json_t *tp_reminder_unpack(const char *id, const char *bytes, size_t len) {
    return with_rule(unpack(bytes, len), id);
}

/* An integer object's value into *v. Returns 0, or -1 when `o` is none. */
static int int_of(const msgpack_object *o, int64_t *v) {
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= (uint64_t)INT64_MAX) {
        *v = (int64_t)o->via.u64;
        return 0;
    }
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *v = o->via.i64;
        return 0;
    }
    return -1;
}

static json_t *unpack(const char *bytes, size_t len) {
    if (!bytes || len == 0) return NULL;
    if (bytes[0] == '{') { /* JSON, as written before the packed form */
        json_t *j = json_loadb(bytes, len, 0, NULL);
        if (json_is_object(j)) return j;
        json_decref(j);
        return NULL;
    }
    /* A zone of our own, sized for a record: msgpack_unpack_next's default
     * zone is an 8 KB chunk, and a burst of firings unpacks thousands of
     * records a second (its malloc and page faults were the scheduler's
     * largest cost per firing). Strings point into `bytes`. */
    msgpack_zone zone;
    if (!msgpack_zone_init(&zone, 512)) abort();
    msgpack_object root;
    size_t off = 0;
    json_t *out = NULL;
    if (msgpack_unpack(bytes, len, &off, &zone, &root) != MSGPACK_UNPACK_SUCCESS ||
        off != len || root.type != MSGPACK_OBJECT_ARRAY)
        goto done;
    const msgpack_object *el = root.via.array.ptr;
    size_t nel = root.via.array.size;
    /* the form: FORM first, or the first form (owner first: a string or nil) */
    int form = 1;
    if (nel > 0 && el[0].type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        if (el[0].via.u64 != FORM) goto done;
        form = FORM;
        el++;
        nel--;
    }
    if (nel > NFIELDS) goto done;
    out = json_object();
    int64_t cause_delta = 0;
    int has_cause_delta = 0;
    for (size_t f = 0; f < nel; f++) {
        const msgpack_object *o = &el[f];
        json_t *v = NULL;
        int64_t i;
        size_t ncodes;
        const char *const *codes = codes_of(f, &ncodes);
        if (o->type == MSGPACK_OBJECT_NIL) continue;
        if (fields[f].kind == KIND_s && o->type == MSGPACK_OBJECT_STR)
            v = json_stringn(o->via.str.ptr, o->via.str.size);
        else if (form == FORM && codes && o->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
                 o->via.u64 < ncodes && codes[o->via.u64])
            v = json_string(codes[o->via.u64]);
        else if (form == FORM && f == F_cause_ts && int_of(o, &i) == 0 &&
                 nel > F_due_at && el[F_due_at].type != MSGPACK_OBJECT_NIL) {
            cause_delta = i; /* before due_at by this much: set below */
            has_cause_delta = 1;
            continue;
        } else if (fields[f].kind == KIND_i && int_of(o, &i) == 0)
            v = json_integer((json_int_t)i);
        else if (fields[f].kind == KIND_b && o->type == MSGPACK_OBJECT_BOOLEAN)
            v = json_boolean(o->via.boolean);
        if (!v) { /* the wrong kind: not a record this code wrote */
            json_decref(out);
            out = NULL;
            goto done;
        }
        json_object_set_new(out, fields[f].name, v);
    }
    if (has_cause_delta) {
        const json_t *due = json_object_get(out, "due_at");
        if (!json_is_integer(due)) { /* due_at of the wrong kind was refused above */
            json_decref(out);
            out = NULL;
            goto done;
        }
        json_object_set_new(out, "cause_ts",
                            json_integer((json_int_t)((uint64_t)json_integer_value(due) -
                                                      (uint64_t)cause_delta)));
    }
done:
    msgpack_zone_destroy(&zone);
    return out;
}
