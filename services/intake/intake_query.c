/* intake_query.c: GET /v1/customers/{id}, /v1/lookup, /v1/inbox/{user},
 * /healthz. Each answer is assembled from a few pipelined reads. */
#include "intake_query.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tp/ident.h"
#include "tp/keys.h"
#include "tp/log.h"
#include "tp/proto.h"

/* KEYS[1] a customer's open reminder ids (set), KEYS[2] reminders (hash). */
static const char REMINDERS_LUA[] =
    "local ids = redis.call('SMEMBERS', KEYS[1])\n"
    "if #ids == 0 then return {} end\n"
    "return redis.call('HMGET', KEYS[2], unpack(ids))\n";

#define TIMELINE_SHOWN 20
#define INBOX_SHOWN 50

struct tp_query {
    tp_store_t *store;
    char default_cc[8];
    int reminders_script;
};

tp_query_t *tp_query_new(tp_store_t *store, const char *default_cc) {
    tp_query_t *self = calloc(1, sizeof *self);
    if (!self) abort();
    self->store = store;
    snprintf(self->default_cc, sizeof self->default_cc, "%s", default_cc);
    self->reminders_script = tp_store_script(store, "reminders", REMINDERS_LUA);
    return self;
}

void tp_query_destroy(tp_query_t **self_p) {
    if (!self_p || !*self_p) return;
    free(*self_p);
    *self_p = NULL;
}

static void respond_obj(tp_http_request_t *req, int status, json_t *o) {
    char *body = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    tp_http_respond_json(req, status, body);
    free(body);
}

static void respond_msg(tp_http_request_t *req, int status, const char *msg) {
    json_t *o = json_object();
    json_object_set_new(o, "error", json_string(msg));
    respond_obj(req, status, o);
}

/* Customer and user ids as the schema allows them in keys. */
static int id_ok(const char *s) {
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

/* A stored JSON string, parsed; a string value when it is not JSON. */
static json_t *stored_json(const redisReply *r) {
    if (!r || r->type != REDIS_REPLY_STRING) return json_null();
    json_t *v = json_loadb(r->str, r->len, 0, NULL);
    return v ? v : json_stringn(r->str, r->len);
}

/* ---- GET /v1/customers/{id} ---- */

enum { PART_PROFILE, PART_TIMELINE, PART_TICKETS, PART_REMINDERS, PARTS };

typedef struct customer_read {
    tp_http_request_t *req;
    char id[TP_CUSTOMER_MAX + 1];
    json_t *parts[PARTS];
    int waiting, failed;
} customer_read_t;

typedef struct part_ctx {
    customer_read_t *read;
    int part;
} part_ctx_t;

static json_t *hash_to_object(const redisReply *r) {
    json_t *o = json_object();
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *k = r->element[i], *v = r->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            continue;
        char key[256];
        snprintf(key, sizeof key, "%.*s", (int)k->len, k->str);
        json_object_set_new(o, key, json_stringn(v->str, v->len));
    }
    return o;
}

static json_t *timeline_entries(const redisReply *r) {
    json_t *a = json_array();
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *entry = r->element[i];
        if (entry->type != REDIS_REPLY_ARRAY || entry->elements != 2) continue;
        json_t *o = hash_to_object(entry->element[1]);
        json_object_set_new(o, "at", json_stringn(entry->element[0]->str,
                                                  entry->element[0]->len));
        json_array_append_new(a, o);
    }
    return a;
}

static void customer_answer(customer_read_t *rd) {
    tp_http_request_t *req = rd->req;
    if (rd->failed) {
        respond_msg(req, 503, "store unavailable, retry later");
    } else if (json_object_size(rd->parts[PART_PROFILE]) == 0 &&
               json_array_size(rd->parts[PART_TIMELINE]) == 0) {
        respond_msg(req, 404, "no such customer");
    } else {
        json_t *o = json_object();
        json_t *profile = rd->parts[PART_PROFILE];
        json_object_set_new(o, "id", json_string(rd->id));
        json_t *grade = json_object_get(profile, "grade");
        json_t *owner = json_object_get(profile, "owner");
        json_object_set(o, "grade", grade ? grade : json_null());
        json_object_set(o, "owner", owner ? owner : json_null());
        json_object_set(o, "profile", profile);
        json_object_set(o, "open_reminders", rd->parts[PART_REMINDERS]);
        json_object_set(o, "open_tickets", rd->parts[PART_TICKETS]);
        json_object_set(o, "timeline", rd->parts[PART_TIMELINE]);
        respond_obj(req, 200, o);
    }
    for (int i = 0; i < PARTS; i++) json_decref(rd->parts[i]);
    free(rd);
}

static void customer_part_cb(tp_store_t *store, redisReply *r, void *arg) {
    part_ctx_t ctx = *(part_ctx_t *)arg;
    free(arg);
    customer_read_t *rd = ctx.read;
    if (!r || r->type == REDIS_REPLY_ERROR) {
        if (r) tp_log_error("customer read: %s", r->str);
        rd->failed = 1;
    } else if (r->type == REDIS_REPLY_ARRAY) {
        json_t *v = NULL;
        switch (ctx.part) {
        case PART_PROFILE:
            v = hash_to_object(r);
            break;
        case PART_TIMELINE:
            v = timeline_entries(r);
            break;
        case PART_TICKETS:
            v = json_array();
            for (size_t i = 1; i < r->elements; i += 2)
                json_array_append_new(v, stored_json(r->element[i]));
            break;
        case PART_REMINDERS:
            v = json_array();
            for (size_t i = 0; i < r->elements; i++)
                if (r->element[i]->type == REDIS_REPLY_STRING)
                    json_array_append_new(v, stored_json(r->element[i]));
            break;
        }
        json_decref(rd->parts[ctx.part]);
        rd->parts[ctx.part] = v;
    }
    if (--rd->waiting == 0) customer_answer(rd);
}

/* A read that could not be sent: the record is answered as unavailable. */
static void part_not_sent(customer_read_t *rd, part_ctx_t *ctx) {
    free(ctx);
    rd->failed = 1;
    rd->waiting--;
}

static void get_customer(tp_query_t *self, tp_http_request_t *req,
                         const char *id) {
    if (!id_ok(id)) {
        respond_msg(req, 400, "customer: not a valid customer id");
        return;
    }
    customer_read_t *rd = calloc(1, sizeof *rd);
    if (!rd) abort();
    rd->req = req;
    snprintf(rd->id, sizeof rd->id, "%s", id);
    rd->parts[PART_PROFILE] = json_object();
    rd->parts[PART_TIMELINE] = json_array();
    rd->parts[PART_TICKETS] = json_array();
    rd->parts[PART_REMINDERS] = json_array();
    rd->waiting = PARTS + 1; /* +1 held until every read is sent */

    const char *ns = tp_store_ns(self->store);
    char k1[256], k2[256];
    part_ctx_t *ctx;
#define CTX(p) (ctx = malloc(sizeof *ctx), ctx->read = rd, ctx->part = (p), ctx)
    tp_key(k1, sizeof k1, ns, "{c:%s}:profile", id);
    if (tp_store_command(self->store, customer_part_cb, CTX(PART_PROFILE),
                         "HGETALL %s", k1) < 0) {
        part_not_sent(rd, ctx);
    }
    tp_key(k1, sizeof k1, ns, "{c:%s}:timeline", id);
    if (tp_store_command(self->store, customer_part_cb, CTX(PART_TIMELINE),
                         "XREVRANGE %s + - COUNT %d", k1, TIMELINE_SHOWN) < 0) {
        part_not_sent(rd, ctx);
    }
    tp_key(k1, sizeof k1, ns, "{c:%s}:tickets", id);
    if (tp_store_command(self->store, customer_part_cb, CTX(PART_TICKETS),
                         "HGETALL %s", k1) < 0) {
        part_not_sent(rd, ctx);
    }
    int bucket = tp_key_reminder_bucket(id);
    tp_key(k1, sizeof k1, ns, "{r%d}:cust:%s", bucket, id);
    tp_key(k2, sizeof k2, ns, "{r%d}:rem", bucket);
    const char *argv[2] = {k1, k2};
    size_t lens[2] = {strlen(k1), strlen(k2)};
    if (tp_store_eval(self->store, self->reminders_script, customer_part_cb,
                      CTX(PART_REMINDERS), 2, 2, argv, lens) < 0) {
        part_not_sent(rd, ctx);
    }
#undef CTX
    if (--rd->waiting == 0) customer_answer(rd);
}

/* ---- GET /v1/lookup?phone=|email= ---- */

static void lookup_cb(tp_store_t *store, redisReply *r, void *arg) {
    tp_http_request_t *req = arg;
    if (!r || r->type == REDIS_REPLY_ERROR) {
        respond_msg(req, 503, "store unavailable, retry later");
        return;
    }
    json_t *o = json_object(), *ids = json_array();
    if (r->type == REDIS_REPLY_STRING)
        json_array_append_new(ids, json_stringn(r->str, r->len));
    json_object_set_new(o, "customers", ids);
    respond_obj(req, 200, o);
}

static void lookup(tp_query_t *self, tp_http_request_t *req) {
    const char *phone = tp_http_query(req, "phone");
    const char *email = tp_http_query(req, "email");
    char norm[300], key[128];
    const char *ns = tp_store_ns(self->store);
    if (phone) {
        if (tp_ident_phone(phone, self->default_cc, norm, sizeof norm) < 0) {
            respond_msg(req, 400, "phone: not a phone number");
            return;
        }
        tp_key(key, sizeof key, ns, "{j}:phone");
    } else if (email) {
        if (tp_ident_email(email, norm, sizeof norm) < 0) {
            respond_msg(req, 400, "email: not an email address");
            return;
        }
        tp_key(key, sizeof key, ns, "{j}:email");
    } else {
        respond_msg(req, 400, "phone or email: one is required");
        return;
    }
    if (tp_store_command(self->store, lookup_cb, req, "HGET %s %s", key, norm) < 0)
        respond_msg(req, 503, "store unavailable, retry later");
}

/* ---- GET /v1/inbox/{user} ---- */

typedef struct inbox_ctx {
    tp_http_request_t *req;
    char user[TP_ACTOR_MAX + 1];
} inbox_ctx_t;

static void inbox_cb(tp_store_t *store, redisReply *r, void *arg) {
    inbox_ctx_t *ctx = arg;
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        respond_msg(ctx->req, 503, "store unavailable, retry later");
    } else {
        json_t *o = json_object(), *items = json_array();
        for (size_t i = 0; i < r->elements; i++)
            json_array_append_new(items, stored_json(r->element[i]));
        json_object_set_new(o, "user", json_string(ctx->user));
        json_object_set_new(o, "items", items);
        respond_obj(ctx->req, 200, o);
    }
    free(ctx);
}

static void inbox(tp_query_t *self, tp_http_request_t *req, const char *user) {
    if (!id_ok(user)) {
        respond_msg(req, 400, "user: not a valid user id");
        return;
    }
    inbox_ctx_t *ctx = malloc(sizeof *ctx);
    if (!ctx) abort();
    ctx->req = req;
    snprintf(ctx->user, sizeof ctx->user, "%s", user);
    char key[256];
    tp_key(key, sizeof key, tp_store_ns(self->store), "{u:%s}:inbox", user);
    if (tp_store_command(self->store, inbox_cb, ctx, "LRANGE %s 0 %d", key,
                         INBOX_SHOWN - 1) < 0) {
        free(ctx);
        respond_msg(req, 503, "store unavailable, retry later");
    }
}

int tp_query_handle(tp_query_t *self, tp_http_request_t *req) {
    const char *path = tp_http_path(req);
    if (strcmp(path, "/healthz") == 0) {
        int up = tp_store_connected(self->store);
        char body[64];
        snprintf(body, sizeof body, "{\"status\":\"ok\",\"redis\":\"%s\"}",
                 up ? "up" : "down");
        tp_http_respond_json(req, 200, body);
        return 0;
    }
    if (strncmp(path, "/v1/customers/", 14) == 0 && !strchr(path + 14, '/')) {
        get_customer(self, req, path + 14);
        return 0;
    }
    if (strcmp(path, "/v1/lookup") == 0) {
        lookup(self, req);
        return 0;
    }
    if (strncmp(path, "/v1/inbox/", 10) == 0 && !strchr(path + 10, '/')) {
        inbox(self, req, path + 10);
        return 0;
    }
    return -1;
}
