/* reminder.c: a reminder's record to and from its stored msgpack form
 * (tp/reminder.h). */
#include "tp/reminder.h"

#include "tp/keys.h"

#include <msgpack.h>
#include <stdint.h>
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

/* The number of fields of `record` stored: up to its last present one. */
static size_t stored_fields(const json_t *record) {
    size_t n = 0;
    for (size_t f = 0; f < NFIELDS; f++)
        if (present(f, json_object_get(record, fields[f].name))) n = f + 1;
    return n;
}

/* Writes the first `n` fields of `record` (stored_fields). */
static void pack_fields(msgpack_packer *pk, const json_t *record, size_t n) {
    const json_t *due = json_object_get(record, "due_at");
    int has_due = present(F_due_at, due);
    for (size_t f = 0; f < n; f++) {
        const json_t *v = json_object_get(record, fields[f].name);
        size_t ncodes;
        const char *const *codes = codes_of(f, &ncodes);
        int code;
        if (!present(f, v)) {
            msgpack_pack_nil(pk);
        } else if (codes && (code = code_of(codes, ncodes, json_string_value(v))) >= 0) {
            msgpack_pack_int(pk, code);
        } else if (fields[f].kind == KIND_s) {
            size_t l = json_string_length(v);
            msgpack_pack_str(pk, l);
            msgpack_pack_str_body(pk, json_string_value(v), l);
        } else if (f == F_cause_ts && has_due) {
            /* before its due time by a little: fewer bytes than the time */
            msgpack_pack_int64(pk, (int64_t)((uint64_t)json_integer_value(due) -
                                             (uint64_t)json_integer_value(v)));
        } else if (fields[f].kind == KIND_i) {
            msgpack_pack_int64(pk, json_integer_value(v));
        } else if (json_is_true(v)) {
            msgpack_pack_true(pk);
        } else {
            msgpack_pack_false(pk);
        }
    }
}

char *tp_reminder_pack(const json_t *record, size_t *len) {
    if (!json_is_object(record)) return NULL;
    size_t n = stored_fields(record);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, n + 1);
    msgpack_pack_int(&pk, FORM);
    pack_fields(&pk, record, n);
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

/* The record of fields `el`, `nel` of them, stored in form `form`; NULL
 * when one is of the wrong kind (not a record this code wrote). */
static json_t *unpack_fields(const msgpack_object *el, size_t nel, int form) {
    if (nel > NFIELDS) return NULL;
    json_t *out = json_object();
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
        else if (form >= FORM && codes && o->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
                 o->via.u64 < ncodes && codes[o->via.u64])
            v = json_string(codes[o->via.u64]);
        else if (form >= FORM && f == F_cause_ts && int_of(o, &i) == 0 &&
                 nel > F_due_at && el[F_due_at].type != MSGPACK_OBJECT_NIL) {
            cause_delta = i; /* before due_at by this much: set below */
            has_cause_delta = 1;
            continue;
        } else if (fields[f].kind == KIND_i && int_of(o, &i) == 0)
            v = json_integer((json_int_t)i);
        else if (fields[f].kind == KIND_b && o->type == MSGPACK_OBJECT_BOOLEAN)
            v = json_boolean(o->via.boolean);
        if (!v) {
            json_decref(out);
            return NULL;
        }
        json_object_set_new(out, fields[f].name, v);
    }
    if (has_cause_delta) {
        const json_t *due = json_object_get(out, "due_at");
        if (!json_is_integer(due)) { /* due_at of the wrong kind was refused above */
            json_decref(out);
            return NULL;
        }
        json_object_set_new(out, "cause_ts",
                            json_integer((json_int_t)((uint64_t)json_integer_value(due) -
                                                      (uint64_t)cause_delta)));
    }
    return out;
}

/* A zone of our own, sized for `len` bytes: msgpack_unpack_next's default
 * zone is an 8 KB chunk, and a burst of firings unpacks thousands of
 * records a second (its malloc and page faults were the scheduler's
 * largest cost per firing). Objects are 24 bytes: a record of 13 fields
 * fits in the first chunk. */
static void zone_init(msgpack_zone *zone, size_t len) {
    if (!msgpack_zone_init(zone, 512 + len * 8)) abort();
}

static json_t *unpack(const char *bytes, size_t len) {
    if (!bytes || len == 0) return NULL;
    if (bytes[0] == '{') { /* JSON, as written before the packed form */
        json_t *j = json_loadb(bytes, len, 0, NULL);
        if (json_is_object(j)) return j;
        json_decref(j);
        return NULL;
    }
    msgpack_zone zone;
    zone_init(&zone, len);
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
    out = unpack_fields(el, nel, form);
done:
    msgpack_zone_destroy(&zone);
    return out;
}

/* ---- a customer's book ---- */

/* The book's form, its first element. */
#define BOOK_FORM 3
/* A state name is shorter than this. */
#define BOOK_NAME_MAX 64
/* A reminder's id "<customer>|<key>" is shorter than this. */
#define BOOK_ID_MAX 512

/* The scheduler's rules (services/scheduler/scheduler_plan.c), stored in a
 * reminder's key as a small code: "R-SLA-1|3" is [1, "3"], "R-CAD-1" is 2.
 * A rule not here is stored as its name. Codes never change; add new ones
 * at the end. */
static const char *const rule_codes[] = {
    NULL,        "R-SLA-1",   "R-CAD-1",          "R-TOUCH-1", "R-MAIL-1",
    "R-VISIT-1", "R-STAGE-3", "R-STAGE-3-manager", "R-STAGE-4", "R-STAGE-4-report",
    "R-DAYS-1",  "R-PAY-1",   "R-SAT-1",           "R-REORDER-1",
};

/* Writes a reminder's key "<rule>[|<subject>]": [code, subject], code, or
 * the key itself. */
static void pack_key(msgpack_packer *pk, const char *key) {
    size_t rl = strcspn(key, "|");
    char rule[32];
    int code = -1;
    if (rl < sizeof rule) {
        memcpy(rule, key, rl);
        rule[rl] = '\0';
        code = code_of(rule_codes, NCODES(rule_codes), rule);
    }
    if (code < 0) {
        size_t kl = strlen(key);
        msgpack_pack_str(pk, kl);
        msgpack_pack_str_body(pk, key, kl);
        return;
    }
    if (!key[rl]) {
        msgpack_pack_int(pk, code);
        return;
    }
    const char *subject = key + rl + 1;
    size_t sl = strlen(subject);
    msgpack_pack_array(pk, 2);
    msgpack_pack_int(pk, code);
    msgpack_pack_str(pk, sl);
    msgpack_pack_str_body(pk, subject, sl);
}

/* The id "<customer>|<key>" of book entry `e` into `id` (BOOK_ID_MAX
 * bytes). Returns 0, or -1 when `e` is not an entry or the id too long. */
static int entry_id(const msgpack_object *e, const char *customer, size_t clen, char *id) {
    if (e->type != MSGPACK_OBJECT_ARRAY || e->via.array.size < 1) return -1;
    const msgpack_object *k = &e->via.array.ptr[0];
    const char *rule = NULL, *part = NULL;
    size_t rl = 0, pl = 0;
    if (k->type == MSGPACK_OBJECT_STR) {
        part = k->via.str.ptr;
        pl = k->via.str.size;
    } else {
        const msgpack_object *c = k;
        if (k->type == MSGPACK_OBJECT_ARRAY && k->via.array.size == 2 &&
            k->via.array.ptr[1].type == MSGPACK_OBJECT_STR) {
            c = &k->via.array.ptr[0];
            part = k->via.array.ptr[1].via.str.ptr;
            pl = k->via.array.ptr[1].via.str.size;
        } else if (k->type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
            return -1;
        }
        if (c->type != MSGPACK_OBJECT_POSITIVE_INTEGER || c->via.u64 == 0 ||
            c->via.u64 >= NCODES(rule_codes))
            return -1;
        rule = rule_codes[c->via.u64];
        rl = strlen(rule);
    }
    /* "<customer>|" rule ["|"] part */
    size_t n = clen + 1 + rl + (rule && part ? 1 : 0) + pl;
    if (n >= BOOK_ID_MAX) return -1;
    char *w = id;
    memcpy(w, customer, clen);
    w += clen;
    *w++ = '|';
    if (rule) {
        memcpy(w, rule, rl);
        w += rl;
        if (part) *w++ = '|';
    }
    if (part) {
        memcpy(w, part, pl);
        w += pl;
    }
    *w = '\0';
    return 0;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The keys of `obj` in byte order (caller frees the array, not the keys). */
static const char **sorted_keys(const json_t *obj, size_t *n) {
    *n = json_object_size(obj);
    const char **keys = malloc((*n ? *n : 1) * sizeof *keys);
    if (!keys) abort();
    size_t i = 0;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v) keys[i++] = k;
    qsort(keys, *n, sizeof *keys, cmp_str);
    return keys;
}

char *tp_book_pack(const char *customer, const json_t *state, const json_t *reminders,
                   size_t *len) {
    if (!customer || !json_is_object(state) || !json_is_object(reminders)) return NULL;
    size_t clen = strlen(customer), nstate, nrem;
    const char **skeys = sorted_keys(state, &nstate);
    const char **rkeys = sorted_keys(reminders, &nrem);
    char *out = NULL;
    for (size_t i = 0; i < nstate; i++) /* names tp_book_unpack reads back */
        if (strlen(skeys[i]) >= BOOK_NAME_MAX) goto done;
    for (size_t i = 0; i < nrem; i++) /* every id "<customer>|<key>", a record */
        if (strlen(rkeys[i]) >= BOOK_ID_MAX || strncmp(rkeys[i], customer, clen) != 0 ||
            rkeys[i][clen] != '|' ||
            !rkeys[i][clen + 1] || !json_is_object(json_object_get(reminders, rkeys[i])))
            goto done;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 2 + nrem);
    msgpack_pack_int(&pk, BOOK_FORM);
    size_t nstr = 0;
    for (size_t i = 0; i < nstate; i++) nstr += json_is_string(json_object_get(state, skeys[i]));
    msgpack_pack_map(&pk, nstr);
    for (size_t i = 0; i < nstate; i++) {
        const json_t *v = json_object_get(state, skeys[i]);
        if (!json_is_string(v)) continue;
        size_t kl = strlen(skeys[i]), vl = json_string_length(v);
        msgpack_pack_str(&pk, kl);
        msgpack_pack_str_body(&pk, skeys[i], kl);
        msgpack_pack_str(&pk, vl);
        msgpack_pack_str_body(&pk, json_string_value(v), vl);
    }
    for (size_t i = 0; i < nrem; i++) {
        const json_t *record = json_object_get(reminders, rkeys[i]);
        size_t n = stored_fields(record);
        msgpack_pack_array(&pk, n + 1);
        pack_key(&pk, rkeys[i] + clen + 1);
        pack_fields(&pk, record, n);
    }
    if (!sb.data) abort();
    *len = sb.size;
    out = sb.data;
done:
    free(skeys);
    free(rkeys);
    return out;
}

/* Unpacks `len` bytes at `bytes` into `root` (in `zone`, initialised
 * here: the caller destroys it). Returns 0 when they are one book's
 * outline, [3, {...}, ...] and nothing after, else -1; the entries are
 * the callers' to check. */
static int book_root(const char *bytes, size_t len, msgpack_zone *zone, msgpack_object *root) {
    zone_init(zone, len);
    size_t off = 0;
    if (!bytes || msgpack_unpack(bytes, len, &off, zone, root) != MSGPACK_UNPACK_SUCCESS ||
        off != len || root->type != MSGPACK_OBJECT_ARRAY || root->via.array.size < 2)
        return -1;
    const msgpack_object *el = root->via.array.ptr;
    return el[0].type == MSGPACK_OBJECT_POSITIVE_INTEGER && el[0].via.u64 == BOOK_FORM &&
                   el[1].type == MSGPACK_OBJECT_MAP
               ? 0
               : -1;
}

int tp_book_unpack(const char *customer, const char *bytes, size_t len, json_t **state,
                   json_t **reminders) {
    *state = json_object();
    *reminders = json_object();
    if (len == 0) return 0;
    msgpack_zone zone;
    msgpack_object root;
    int rc = -1;
    if (book_root(bytes, len, &zone, &root) < 0) goto done;
    const msgpack_object *el = root.via.array.ptr;
    for (uint32_t i = 0; i < el[1].via.map.size; i++) {
        const msgpack_object_kv *kv = &el[1].via.map.ptr[i];
        if (kv->key.type != MSGPACK_OBJECT_STR || kv->val.type != MSGPACK_OBJECT_STR) goto done;
        char name[BOOK_NAME_MAX];
        if (kv->key.via.str.size >= sizeof name) goto done;
        memcpy(name, kv->key.via.str.ptr, kv->key.via.str.size);
        name[kv->key.via.str.size] = '\0';
        json_object_set_new(*state, name,
                            json_stringn(kv->val.via.str.ptr, kv->val.via.str.size));
    }
    size_t clen = strlen(customer);
    for (uint32_t i = 2; i < root.via.array.size; i++) {
        const msgpack_object *e = &el[i];
        char id[BOOK_ID_MAX];
        if (entry_id(e, customer, clen, id) < 0) goto done;
        json_t *record = with_rule(unpack_fields(e->via.array.ptr + 1, e->via.array.size - 1,
                                                 FORM),
                                   id);
        if (!record) goto done;
        json_object_set_new(*reminders, id, record);
    }
    rc = 0;
done:
    msgpack_zone_destroy(&zone);
    if (rc < 0) {
        json_decref(*state);
        json_decref(*reminders);
        *state = *reminders = NULL;
    }
    return rc;
}

int64_t tp_book_earliest(const json_t *reminders, const char *owner) {
    int64_t earliest = 0;
    const char *id;
    json_t *r;
    json_object_foreach((json_t *)reminders, id, r) {
        const char *o = json_string_value(json_object_get(r, "owner"));
        if (owner && strcmp(o ? o : "unassigned", owner) != 0) continue;
        json_int_t due = json_integer_value(json_object_get(r, "due_at"));
        if (due <= 0) continue; /* not a time */
        if (earliest == 0 || due < earliest) earliest = due;
    }
    return earliest;
}

/* The owners of `reminders` (id -> record) into the object `owners`. */
static void owners_add(json_t *owners, const json_t *reminders) {
    const char *id;
    json_t *r;
    json_object_foreach((json_t *)reminders, id, r) {
        const char *o = json_string_value(json_object_get(r, "owner"));
        json_object_set_new(owners, o ? o : "unassigned", json_true());
    }
}

json_t *tp_book_owner_moves(const json_t *before, const json_t *after) {
    json_t *owners = json_object(), *moves = json_object();
    owners_add(owners, before);
    owners_add(owners, after);
    const char *owner;
    json_t *v;
    json_object_foreach(owners, owner, v) {
        int64_t was = tp_key_due_score(tp_book_earliest(before, owner));
        int64_t now = tp_key_due_score(tp_book_earliest(after, owner));
        if (was != now) json_object_set_new(moves, owner, json_integer(now));
    }
    json_decref(owners);
    return moves;
}

int tp_book_dues(const char *customer, const char *bytes, size_t len, tp_book_due_cb cb,
                 void *arg) {
    if (len == 0) return 0;
    msgpack_zone zone;
    msgpack_object root;
    int n = -1;
    if (book_root(bytes, len, &zone, &root) < 0) goto done;
    size_t clen = strlen(customer);
    char id[BOOK_ID_MAX];
    n = 0;
    for (uint32_t i = 2; i < root.via.array.size; i++) {
        const msgpack_object *e = &root.via.array.ptr[i];
        if (entry_id(e, customer, clen, id) < 0) {
            n = -1;
            goto done;
        }
        int64_t due = 0;
        if (e->via.array.size > 1 + F_due_at) int_of(&e->via.array.ptr[1 + F_due_at], &due);
        cb(id, due, arg);
        n++;
    }
done:
    msgpack_zone_destroy(&zone);
    return n;
}
