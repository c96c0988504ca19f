/* reminder.c: a reminder's record to and from its stored msgpack form
 * (tp/reminder.h). */
#include "tp/reminder.h"

#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

typedef enum { KIND_s, KIND_i, KIND_b } kind_t;

static const struct {
    const char *name;
    kind_t kind;
} fields[] = {
#define XX(name, kind) {#name, KIND_##kind},
    TP_REMINDER_FIELD_MAP(XX)
#undef XX
};
#define NFIELDS (sizeof fields / sizeof fields[0])

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
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, n);
    for (size_t f = 0; f < n; f++) {
        const json_t *v = json_object_get(record, fields[f].name);
        if (!present(f, v)) {
            msgpack_pack_nil(&pk);
        } else if (fields[f].kind == KIND_s) {
            size_t l = json_string_length(v);
            msgpack_pack_str(&pk, l);
            msgpack_pack_str_body(&pk, json_string_value(v), l);
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

static json_t *unpack(const char *bytes, size_t len) {
    if (!bytes || len == 0) return NULL;
    if (bytes[0] == '{') { /* JSON, as written before the packed form */
        json_t *j = json_loadb(bytes, len, 0, NULL);
        if (json_is_object(j)) return j;
        json_decref(j);
        return NULL;
    }
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    json_t *out = NULL;
    if (msgpack_unpack_next(&up, bytes, len, &off) != MSGPACK_UNPACK_SUCCESS || off != len ||
        up.data.type != MSGPACK_OBJECT_ARRAY || up.data.via.array.size > NFIELDS)
        goto done;
    out = json_object();
    for (size_t f = 0; f < up.data.via.array.size; f++) {
        const msgpack_object *o = &up.data.via.array.ptr[f];
        json_t *v = NULL;
        if (o->type == MSGPACK_OBJECT_NIL) continue;
        if (fields[f].kind == KIND_s && o->type == MSGPACK_OBJECT_STR)
            v = json_stringn(o->via.str.ptr, o->via.str.size);
        else if (fields[f].kind == KIND_i && o->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
                 o->via.u64 <= (uint64_t)INT64_MAX)
            v = json_integer((json_int_t)o->via.u64);
        else if (fields[f].kind == KIND_i && o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
            v = json_integer((json_int_t)o->via.i64);
        else if (fields[f].kind == KIND_b && o->type == MSGPACK_OBJECT_BOOLEAN)
            v = json_boolean(o->via.boolean);
        if (!v) { /* the wrong kind: not a record this code wrote */
            json_decref(out);
            out = NULL;
            goto done;
        }
        json_object_set_new(out, fields[f].name, v);
    }
done:
    msgpack_unpacked_destroy(&up);
    return out;
}
