/* intake_journal.c: the journal append, with customer resolution before it
 * and coalescing of every batch submitted in one loop iteration into one
 * script call.
 *
 * Flow of a batch: add (prepare, no I/O) -> submit -> [resolve script when
 * some event needs its customer looked up] -> queued -> check handle
 * flushes all queued batches as one JOURNAL script call -> per batch:
 * route accepted events, run the callback, free. */
#include "intake_journal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tp/id.h"
#include "tp/ident.h"
#include "tp/keys.h"
#include "tp/log.h"

/* KEYS journal, phone index, email index, ticket index, then one id key per
 * event. ARGV ttl, then per event: type, envelope, customer, phone, email,
 * ticket. An event not seen before is appended and its addresses indexed
 * (first owner wins); one seen before changes nothing. Returns per event the
 * journal id, or "" for a duplicate. */
static const char JOURNAL_LUA[] =
    "local out = {}\n"
    "for i = 5, #KEYS do\n"
    "  local a = 2 + (i - 5) * 6\n"
    "  if redis.call('EXISTS', KEYS[i]) == 1 then out[#out + 1] = ''\n"
    "  else\n"
    "    local sid = redis.call('XADD', KEYS[1], '*', 't', ARGV[a], 'e', ARGV[a + 1])\n"
    "    redis.call('SET', KEYS[i], sid, 'EX', ARGV[1])\n"
    "    local c = ARGV[a + 2]\n"
    "    if ARGV[a + 3] ~= '' then redis.call('HSETNX', KEYS[2], ARGV[a + 3], c) end\n"
    "    if ARGV[a + 4] ~= '' then redis.call('HSETNX', KEYS[3], ARGV[a + 4], c) end\n"
    "    if ARGV[a + 5] ~= '' then redis.call('HSETNX', KEYS[4], ARGV[a + 5], c) end\n"
    "    out[#out + 1] = sid\n"
    "  end\n"
    "end\n"
    "return out\n";

/* KEYS phone, email, ticket indexes; ARGV groups of (op, customer, x, y).
 * Read only: nothing is indexed before the event is journaled. Returns per
 * group: the customer found (lead by phone, then email; call by number),
 * else the given one; for tickets the owning customer, or "". */
static const char RESOLVE_LUA[] =
    "local out = {}\n"
    "for i = 1, #ARGV, 4 do\n"
    "  local op, c, x, y = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]\n"
    "  if op == 'lead' then\n"
    "    c = (x ~= '' and redis.call('HGET', KEYS[1], x)) or\n"
    "        (y ~= '' and redis.call('HGET', KEYS[2], y)) or c\n"
    "  elseif op == 'call' then\n"
    "    c = redis.call('HGET', KEYS[1], x) or c\n"
    "  else\n"
    "    c = redis.call('HGET', KEYS[3], x) or ''\n"
    "  end\n"
    "  out[#out + 1] = c\n"
    "end\n"
    "return out\n";

/* Events per journal script call at most; a larger batch goes alone. */
#define FLUSH_MAX 1000

enum { RESOLVE_NONE, RESOLVE_LEAD, RESOLVE_CALL,
       RESOLVE_TICKET_GET, RESOLVE_TICKET_SET };
static const char *const resolve_ops[] = {"", "lead", "call",
                                          "ticket_get", "ticket_set"};

typedef struct entry {
    tp_event_t ev;
    int resolve;
    char phone[24];
    char email[256];
    char idkey[TP_ID_MAX + 64];
    msgpack_sbuffer blob;
    int duplicate;
} entry_t;

struct tp_journal_batch {
    tp_journal_t *journal;
    entry_t *entries;
    size_t n, cap;
    int needs_resolve;
    int internal; /* derived events: not refused for a backlog */
    tp_journal_done_cb cb;
    void *arg;
    int outcome;
    tp_event_error_t err;
    size_t err_index;
    struct tp_journal_batch *next;
};

/* One journal script call in flight and the batches it carries. */
typedef struct flush {
    tp_journal_t *journal;
    tp_journal_batch_t *batches;
} flush_t;

struct tp_journal {
    uv_loop_t *loop;
    tp_store_t *store;
    tp_router_t *router;
    tp_journal_options_t opts;
    int journal_script, resolve_script;
    char journal_key[128], phone_key[128], email_key[128], ticket_key[128];
    uv_check_t flusher;
    tp_journal_batch_t *queued, **queued_tail; /* ready to journal */
    tp_journal_batch_t *finished, **finished_tail; /* outcome known */
    int pending;                                   /* submitted, not done */
    int backlogged;                                /* tp_journal_set_backlogged */
    tp_journal_stats_t stats;
    const char **argv;                             /* scratch for flushes */
    size_t *argvlen;
};

static void fail_field(tp_event_error_t *err, const char *field,
                       const char *msg) {
    snprintf(err->field, sizeof err->field, "%s", field);
    snprintf(err->message, sizeof err->message, "%s", msg);
}

tp_journal_batch_t *tp_journal_batch_new(tp_journal_t *self, size_t cap) {
    tp_journal_batch_t *b = calloc(1, sizeof *b);
    if (!b) abort();
    b->journal = self;
    b->cap = cap ? cap : 1;
    b->entries = calloc(b->cap, sizeof *b->entries);
    if (!b->entries) abort();
    return b;
}

void tp_journal_batch_internal(tp_journal_batch_t *b) { b->internal = 1; }

void tp_journal_set_backlogged(tp_journal_t *self, int backlogged) {
    self->backlogged = backlogged;
}

void tp_journal_batch_destroy(tp_journal_batch_t **batch_p) {
    tp_journal_batch_t *b = batch_p ? *batch_p : NULL;
    if (!b) return;
    for (size_t i = 0; i < b->n; i++) {
        tp_event_clear(&b->entries[i].ev);
        msgpack_sbuffer_destroy(&b->entries[i].blob);
    }
    free(b->entries);
    free(b);
    *batch_p = NULL;
}

/* 1 when `dept` is one of the comma-separated `list` (spaces ignored). */
static int department_known(const char *list, const char *dept) {
    size_t n = strlen(dept);
    for (const char *p = list; *p;) {
        while (*p == ' ' || *p == ',') p++;
        const char *end = p;
        while (*end && *end != ',') end++;
        const char *last = end;
        while (last > p && last[-1] == ' ') last--;
        if ((size_t)(last - p) == n && n && memcmp(p, dept, n) == 0) return 1;
        p = end;
    }
    return 0;
}

int tp_journal_batch_add(tp_journal_batch_t *b, tp_event_t *ev,
                         tp_event_error_t *err) {
    if (b->n >= b->cap) {
        fail_field(err, "events", "too many events in one request");
        return -1;
    }
    tp_journal_t *j = b->journal;
    entry_t *e = &b->entries[b->n];
    memset(e, 0, sizeof *e);
    const char *cust = ev->customer[0] ? ev->customer : NULL;

    if ((ev->type == TP_EVENT_TICKET_OPENED || ev->type == TP_EVENT_TICKET_UPDATED) &&
        j->opts.departments && tp_event_str(ev, "department") &&
        !department_known(j->opts.departments, tp_event_str(ev, "department"))) {
        char msg[160];
        snprintf(msg, sizeof msg, "not a department: one of %.120s", j->opts.departments);
        fail_field(err, "data.department", msg);
        return -1;
    }

    switch (ev->type) {
    case TP_EVENT_LEAD_CAPTURED: {
        const char *phone = tp_event_str(ev, "contact.phone");
        const char *email = tp_event_str(ev, "contact.email");
        if (phone && *phone &&
            tp_ident_phone(phone, j->opts.default_cc, e->phone,
                           sizeof e->phone) < 0) {
            fail_field(err, "data.contact.phone", "not a phone number");
            return -1;
        }
        if (email && *email &&
            tp_ident_email(email, e->email, sizeof e->email) < 0) {
            fail_field(err, "data.contact.email", "not an email address");
            return -1;
        }
        /* a known customer needs no look-up; its addresses are indexed
         * when the event is journaled */
        e->resolve = cust ? RESOLVE_NONE : RESOLVE_LEAD;
        break;
    }
    case TP_EVENT_CALL_STARTED:
    case TP_EVENT_CALL_ENDED: {
        if (cust) break;
        const char *dir = tp_event_str(ev, "direction");
        const char *num = tp_event_str(
            ev, dir && strcmp(dir, "out") == 0 ? "to" : "from");
        if (!num || tp_ident_phone(num, j->opts.default_cc, e->phone,
                                   sizeof e->phone) < 0) {
            fail_field(err,
                       dir && strcmp(dir, "out") == 0 ? "data.to" : "data.from",
                       "not a phone number: cannot find the customer");
            return -1;
        }
        e->resolve = RESOLVE_CALL;
        break;
    }
    case TP_EVENT_EMAIL_RECEIVED: {
        /* the sender's address finds the customer, as a lead's does */
        if (cust) break;
        if (tp_ident_email(tp_event_str(ev, "from"), e->email, sizeof e->email) < 0) {
            fail_field(err, "data.from", "not an email address: cannot find the customer");
            return -1;
        }
        e->resolve = RESOLVE_LEAD;
        break;
    }
    case TP_EVENT_TICKET_OPENED:
        if (!cust) {
            fail_field(err, "customer", "required for ticket.opened");
            return -1;
        }
        if (!tp_event_str(ev, "ticket")) {
            char tid[TP_ULID_LEN + 2] = "T";
            tp_id_ulid(tid + 1, tp_now_ms());
            json_object_set_new(ev->data, "ticket", json_string(tid));
        }
        e->resolve = RESOLVE_TICKET_SET;
        break;
    case TP_EVENT_TICKET_UPDATED:
        e->resolve = RESOLVE_TICKET_GET;
        break;
    default:
        if (!cust) {
            char msg[96];
            snprintf(msg, sizeof msg, "required for %s",
                     tp_proto_type_name(ev->type));
            fail_field(err, "customer", msg);
            return -1;
        }
    }
    if (e->resolve == RESOLVE_LEAD || e->resolve == RESOLVE_CALL) {
        char cid[TP_ULID_LEN + 2] = "C";
        tp_id_ulid(cid + 1, tp_now_ms());
        memcpy(ev->customer, cid, sizeof cid);
    }
    if (!ev->id[0]) tp_id_ulid(ev->id, tp_now_ms());
    if (e->resolve != RESOLVE_NONE) b->needs_resolve = 1;

    e->ev = *ev; /* move */
    tp_event_init(ev);
    b->n++;
    return 0;
}

size_t tp_journal_batch_count(const tp_journal_batch_t *b) { return b->n; }
const char *tp_journal_batch_id(const tp_journal_batch_t *b, size_t i) {
    return i < b->n ? b->entries[i].ev.id : NULL;
}
int tp_journal_batch_duplicate(const tp_journal_batch_t *b, size_t i) {
    return i < b->n ? b->entries[i].duplicate : 0;
}
const tp_event_error_t *tp_journal_batch_error(const tp_journal_batch_t *b,
                                               size_t *index) {
    if (index) *index = b->err_index;
    return &b->err;
}

/* ---- completion ---- */

static void finish(tp_journal_batch_t *b, int outcome) {
    tp_journal_t *j = b->journal;
    b->outcome = outcome;
    b->next = NULL;
    *j->finished_tail = b;
    j->finished_tail = &b->next;
}

static void flusher_cb(uv_check_t *h);

static void start_flusher(tp_journal_t *j) {
    if (!uv_is_active((uv_handle_t *)&j->flusher))
        uv_check_start(&j->flusher, flusher_cb);
}

static void complete_finished(tp_journal_t *j) {
    while (j->finished) {
        tp_journal_batch_t *b = j->finished;
        j->finished = b->next;
        if (!j->finished) j->finished_tail = &j->finished;
        j->pending--;
        b->cb(b, b->outcome, b->arg);
        tp_journal_batch_destroy(&b);
    }
}

/* ---- journal step ---- */

static int pack_entry(entry_t *e, const tp_journal_t *j) {
    msgpack_sbuffer_init(&e->blob);
    if (tp_event_pack(&e->ev, &e->blob) < 0) return -1;
    tp_key(e->idkey, sizeof e->idkey, tp_store_ns(j->store), "{j}:id:%s",
           e->ev.id);
    return 0;
}

static void enqueue(tp_journal_batch_t *b) {
    tp_journal_t *j = b->journal;
    for (size_t i = 0; i < b->n; i++)
        if (pack_entry(&b->entries[i], j) < 0) {
            b->err_index = i;
            fail_field(&b->err, "", "event could not be encoded");
            finish(b, TP_JOURNAL_REJECTED);
            start_flusher(j);
            return;
        }
    b->next = NULL;
    *j->queued_tail = b;
    j->queued_tail = &b->next;
    start_flusher(j);
}

static void journal_reply_cb(tp_store_t *store, redisReply *reply, void *arg) {
    flush_t *f = arg;
    tp_journal_t *j = f->journal;
    size_t k = 0;
    int ok = reply && reply->type == REDIS_REPLY_ARRAY;
    if (reply && reply->type == REDIS_REPLY_ERROR)
        tp_log_error("journal script failed: %s", reply->str);
    tp_journal_batch_t *b = f->batches;
    while (b) {
        tp_journal_batch_t *next = b->next;
        int outcome = TP_JOURNAL_UNAVAILABLE;
        if (ok && k + b->n <= reply->elements) {
            outcome = TP_JOURNAL_OK;
            for (size_t i = 0; i < b->n; i++, k++) {
                redisReply *r = reply->element[k];
                entry_t *e = &b->entries[i];
                e->duplicate = !(r->type == REDIS_REPLY_STRING && r->len > 0);
                if (e->duplicate) {
                    j->stats.duplicates++;
                } else {
                    j->stats.accepted++;
                    tp_router_route(j->router, e->ev.type, e->blob.data,
                                    e->blob.size);
                }
            }
        }
        finish(b, outcome);
        b = next;
    }
    free(f);
    complete_finished(j);
}

static void flush_queued(tp_journal_t *j) {
    while (j->queued) {
        flush_t *f = calloc(1, sizeof *f);
        if (!f) abort();
        f->journal = j;
        size_t events = 0;
        tp_journal_batch_t **tail = &f->batches;
        while (j->queued && (events == 0 || events + j->queued->n <= FLUSH_MAX)) {
            tp_journal_batch_t *b = j->queued;
            j->queued = b->next;
            b->next = NULL;
            *tail = b;
            tail = &b->next;
            events += b->n;
        }
        if (!j->queued) j->queued_tail = &j->queued;

        size_t argc = 5 + events * 7, a = 0;
        const char **argv = malloc(argc * sizeof *argv);
        size_t *lens = malloc(argc * sizeof *lens);
        if (!argv || !lens) abort();
        char ttl[24];
        snprintf(ttl, sizeof ttl, "%lld", j->opts.dedupe_ttl_s);
#define PUSH(s, n) (argv[a] = (s), lens[a] = (n), a++)
#define PUSHS(s) PUSH((s), strlen(s))
        PUSHS(j->journal_key);
        PUSHS(j->phone_key);
        PUSHS(j->email_key);
        PUSHS(j->ticket_key);
        for (tp_journal_batch_t *b = f->batches; b; b = b->next)
            for (size_t i = 0; i < b->n; i++) PUSHS(b->entries[i].idkey);
        PUSHS(ttl);
        for (tp_journal_batch_t *b = f->batches; b; b = b->next)
            for (size_t i = 0; i < b->n; i++) {
                entry_t *e = &b->entries[i];
                const char *ticket = e->ev.type == TP_EVENT_TICKET_OPENED
                                         ? tp_event_str(&e->ev, "ticket")
                                         : NULL;
                PUSHS(tp_proto_type_name(e->ev.type));
                PUSH(e->blob.data, e->blob.size);
                PUSHS(e->ev.customer);
                PUSHS(e->phone);
                PUSHS(e->email);
                PUSHS(ticket ? ticket : "");
            }
#undef PUSHS
#undef PUSH
        j->stats.script_calls++;
        int rc = tp_store_eval(j->store, j->journal_script, journal_reply_cb, f,
                               (int)(4 + events), (int)a, argv, lens);
        free(argv);
        free(lens);
        if (rc < 0) {
            tp_journal_batch_t *b = f->batches;
            while (b) {
                tp_journal_batch_t *next = b->next;
                finish(b, TP_JOURNAL_UNAVAILABLE);
                b = next;
            }
            free(f);
        }
    }
}

static void flusher_cb(uv_check_t *h) {
    tp_journal_t *j = h->data;
    flush_queued(j);
    complete_finished(j);
    if (!j->queued && !j->finished) uv_check_stop(h);
}

/* ---- resolve step ---- */

/* A ticket.opened earlier in the batch for `ticket`, or NULL. */
static const entry_t *opened_earlier(const tp_journal_batch_t *b, size_t upto,
                                     const char *ticket) {
    for (size_t i = 0; i < upto; i++) {
        const entry_t *e = &b->entries[i];
        const char *t = tp_event_str(&e->ev, "ticket");
        if (e->ev.type == TP_EVENT_TICKET_OPENED && t && strcmp(t, ticket) == 0)
            return e;
    }
    return NULL;
}

static void reject(tp_journal_batch_t *b, size_t i, const char *field,
                   const char *msg) {
    b->err_index = i;
    fail_field(&b->err, field, msg);
    finish(b, TP_JOURNAL_REJECTED);
    start_flusher(b->journal);
}

static void resolve_reply_cb(tp_store_t *store, redisReply *reply, void *arg) {
    tp_journal_batch_t *b = arg;
    tp_journal_t *j = b->journal;
    size_t k = 0;
    if (!reply || reply->type != REDIS_REPLY_ARRAY) {
        if (reply && reply->type == REDIS_REPLY_ERROR)
            tp_log_error("resolve script failed: %s", reply->str);
        finish(b, TP_JOURNAL_UNAVAILABLE);
        start_flusher(j);
        return;
    }
    for (size_t i = 0; i < b->n; i++) {
        entry_t *e = &b->entries[i];
        if (e->resolve == RESOLVE_NONE) continue;
        redisReply *r = k < reply->elements ? reply->element[k] : NULL;
        k++;
        const char *found = r && r->type == REDIS_REPLY_STRING &&
                                    r->len <= TP_CUSTOMER_MAX ? r->str : "";
        const char *ticket = tp_event_str(&e->ev, "ticket");
        if (e->resolve == RESOLVE_TICKET_SET) {
            const entry_t *prior = opened_earlier(b, i, ticket);
            if ((*found && strcmp(found, e->ev.customer) != 0) ||
                (prior && strcmp(prior->ev.customer, e->ev.customer) != 0)) {
                reject(b, i, "data.ticket", "ticket id belongs to another customer");
                return;
            }
            continue;
        }
        if (e->resolve == RESOLVE_TICKET_GET && !*found) {
            const entry_t *prior = opened_earlier(b, i, ticket);
            if (!prior) {
                reject(b, i, "data.ticket", "unknown ticket");
                return;
            }
            found = prior->ev.customer;
        }
        if (!*found) {
            reject(b, i, "customer", "cannot find the customer");
            return;
        }
        snprintf(e->ev.customer, sizeof e->ev.customer, "%s", found);
    }
    enqueue(b);
}

static void resolve(tp_journal_batch_t *b) {
    tp_journal_t *j = b->journal;
    size_t argc = 3 + b->n * 4, a = 0;
    const char **argv = malloc(argc * sizeof *argv);
    size_t *lens = malloc(argc * sizeof *lens);
    if (!argv || !lens) abort();
#define PUSH(s) (argv[a] = (s), lens[a] = strlen(argv[a]), a++)
    PUSH(j->phone_key);
    PUSH(j->email_key);
    PUSH(j->ticket_key);
    for (size_t i = 0; i < b->n; i++) {
        entry_t *e = &b->entries[i];
        if (e->resolve == RESOLVE_NONE) continue;
        const char *ticket = tp_event_str(&e->ev, "ticket");
        PUSH(resolve_ops[e->resolve]);
        PUSH(e->ev.customer);
        if (e->resolve == RESOLVE_TICKET_GET || e->resolve == RESOLVE_TICKET_SET)
            PUSH(ticket ? ticket : "");
        else
            PUSH(e->phone);
        PUSH(e->email);
    }
#undef PUSH
    int rc = tp_store_eval(j->store, j->resolve_script, resolve_reply_cb, b, 3,
                           (int)a, argv, lens);
    free(argv);
    free(lens);
    if (rc < 0) {
        finish(b, TP_JOURNAL_UNAVAILABLE);
        start_flusher(j);
    }
}

void tp_journal_submit(tp_journal_batch_t *b, tp_journal_done_cb cb, void *arg) {
    tp_journal_t *j = b->journal;
    b->cb = cb;
    b->arg = arg;
    j->pending++;
    if (j->pending > j->opts.max_pending) {
        finish(b, TP_JOURNAL_BUSY);
        start_flusher(j);
        return;
    }
    if (j->backlogged && !b->internal) {
        finish(b, TP_JOURNAL_BACKLOGGED);
        start_flusher(j);
        return;
    }
    if (!tp_store_connected(j->store)) {
        finish(b, TP_JOURNAL_UNAVAILABLE);
        start_flusher(j);
        return;
    }
    if (b->needs_resolve)
        resolve(b);
    else
        enqueue(b);
}

tp_journal_t *tp_journal_new(uv_loop_t *loop, tp_store_t *store,
                             tp_router_t *router,
                             const tp_journal_options_t *opts) {
    tp_journal_t *j = calloc(1, sizeof *j);
    if (!j) abort();
    j->loop = loop;
    j->store = store;
    j->router = router;
    j->opts = *opts;
    if (j->opts.max_pending <= 0) j->opts.max_pending = 10000;
    if (j->opts.dedupe_ttl_s <= 0) j->opts.dedupe_ttl_s = 7 * 86400;
    const char *ns = tp_store_ns(store);
    tp_key(j->journal_key, sizeof j->journal_key, ns, "{j}:journal");
    tp_key(j->phone_key, sizeof j->phone_key, ns, "{j}:phone");
    tp_key(j->email_key, sizeof j->email_key, ns, "{j}:email");
    tp_key(j->ticket_key, sizeof j->ticket_key, ns, "{j}:ticket");
    j->journal_script = tp_store_script(store, "journal", JOURNAL_LUA);
    j->resolve_script = tp_store_script_ro(store, "resolve", RESOLVE_LUA);
    j->queued_tail = &j->queued;
    j->finished_tail = &j->finished;
    uv_check_init(loop, &j->flusher);
    j->flusher.data = j;
    if (j->journal_script < 0 || j->resolve_script < 0) {
        tp_log_error("journal: cannot register scripts");
        tp_journal_destroy(&j);
        return NULL;
    }
    return j;
}

static void flusher_close_cb(uv_handle_t *h) { free(h->data); }

void tp_journal_destroy(tp_journal_t **self_p) {
    tp_journal_t *j = self_p ? *self_p : NULL;
    if (!j) return;
    *self_p = NULL;
    /* Batches still queued were never sent: fail them now. Batches in a
     * script call complete when the store fails its callbacks. */
    while (j->queued) {
        tp_journal_batch_t *b = j->queued;
        j->queued = b->next;
        finish(b, TP_JOURNAL_UNAVAILABLE);
    }
    j->queued_tail = &j->queued;
    complete_finished(j);
    uv_close((uv_handle_t *)&j->flusher, flusher_close_cb);
}

void tp_journal_stats(const tp_journal_t *self, tp_journal_stats_t *out) {
    *out = self->stats;
    out->pending = self->pending;
}
