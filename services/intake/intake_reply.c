/* intake_reply.c: what every query of intake answers with (intake_reply.h). */
#include "intake_reply.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tp/event.h"
#include "tp/reminder.h"
#include "tp/proto.h"

void tp_query_respond(tp_http_request_t *req, int status, json_t *o) {
    char *body = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!body) abort();
    tp_http_respond_json(req, status, body);
    free(body);
}

void tp_query_error(tp_http_request_t *req, int status, const char *message,
                    const char *field) {
    json_t *o = json_object();
    json_object_set_new(o, "error", json_string(message));
    if (field) json_object_set_new(o, "field", json_string(field));
    tp_query_respond(req, status, o);
}

void tp_query_unavailable(tp_http_request_t *req) {
    tp_query_error(req, 503, "store unavailable, retry later", NULL);
}

int tp_query_id_ok(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > TP_CUSTOMER_MAX) return 0;
    for (; *s; s++) {
        char c = *s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || strchr("._:@+-", c)))
            return 0;
    }
    return 1;
}

int tp_query_name_ok(const char *s, size_t max) {
    size_t n = strlen(s);
    if (n == 0 || n > max || !tp_utf8_valid(s, n)) return 0;
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) return 0;
    return 1;
}

json_t *tp_query_hash(const redisReply *r) {
    json_t *o = json_object();
    if (!r || r->type != REDIS_REPLY_ARRAY) return o;
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *k = r->element[i], *v = r->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            continue;
        json_t *s = json_stringn(v->str, v->len);
        if (!s) continue; /* not UTF-8: nothing a JSON client could read */
        json_object_setn_new(o, k->str, k->len, s);
    }
    return o;
}

json_t *tp_query_number(const char *s, size_t len) {
    char buf[64];
    if (!s || len == 0 || len >= sizeof buf) return NULL;
    memcpy(buf, s, len);
    buf[len] = '\0';
    /* Only plain decimal notation: strtod would take "inf", "nan", hex. */
    if (strspn(buf, "0123456789+-.eE") != len) return NULL;
    char *end;
    errno = 0;
    long long i = strtoll(buf, &end, 10);
    if (*end == '\0' && errno == 0 && end != buf) return json_integer(i);
    errno = 0;
    double d = strtod(buf, &end);
    if (*end != '\0' || end == buf || errno == ERANGE || !isfinite(d))
        return NULL;
    return json_real(d);
}

json_t *tp_query_reply_number(const redisReply *r) {
    if (!r || r->type != REDIS_REPLY_STRING) return NULL;
    return tp_query_number(r->str, r->len);
}

json_t *tp_query_field_number(const json_t *o, const char *key) {
    const json_t *v = json_object_get(o, key);
    json_t *n = NULL;
    if (json_is_string(v))
        n = tp_query_number(json_string_value(v), json_string_length(v));
    return n ? n : json_null();
}

json_t *tp_query_field_string(const json_t *o, const char *key) {
    json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_incref(v) : json_null();
}

json_t *tp_query_stream_entry(const redisReply *entry) {
    if (entry->type != REDIS_REPLY_ARRAY || entry->elements != 2 ||
        entry->element[0]->type != REDIS_REPLY_STRING)
        return NULL;
    json_t *o = tp_query_hash(entry->element[1]);
    json_object_set_new(
        o, "at", json_stringn(entry->element[0]->str, entry->element[0]->len));
    return o;
}

int tp_query_book_reminders(const char *customer, const char *book, size_t len,
                            const char *owner, int64_t due_before, json_t *items) {
    json_t *state, *reminders;
    if (tp_book_unpack(customer, book, len, &state, &reminders) < 0) return -1;
    const char *id;
    json_t *record;
    json_object_foreach(reminders, id, record) {
        if (owner) {
            const char *o = json_string_value(json_object_get(record, "owner"));
            if (strcmp(o ? o : "unassigned", owner) != 0 ||
                json_integer_value(json_object_get(record, "due_at")) > due_before)
                continue;
        }
        /* the decoded book is ours: its records are answered as they are */
        json_object_set_new(record, "id", json_string(id));
        json_object_set_new(record, "customer", json_string(customer));
        json_array_append(items, record);
    }
    json_decref(state);
    json_decref(reminders);
    return 0;
}
