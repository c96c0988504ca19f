/* tp_sched_load.c: the load generator and the lateness reader of
 * bench/scheduler.
 *
 * Owns its sockets and buffers only. Two modes (output: key=value lines on
 * stdout, for run.sh's helper):
 *
 *   post  --port P --key K --conns C --batch B --events N --base X --ts T
 *         [--spread-ms S] [--owners O] [--rate R] [--max-s M]
 *     N inquiry.received events in HTTP batches of B ({"events":[...]}, one
 *     request in flight per connection, keep-alive) to a running intake.
 *     Event i is of customer "C01JZB" + 21 digits of X + i (27 characters,
 *     the length of the ids intake mints: each event plans the reminder of
 *     a customer of its own), owner rep-<i % O>, and occurred at
 *     T + i * S / N (S = 0: every one at T), so its R-SLA-1 reminder falls
 *     due at that plus [scheduler] inquiry_response. Event i's id is "01JZB"
 *     + the same 21 digits (26 characters, a ULID's length), so a request
 *     sent again is deduplicated by intake. A 503 (intake's back-pressure)
 *     is retried after 20 ms, a request on a connection intake closed
 *     before answering is sent again on a new one; anything else not 202
 *     counts as rejected. --rate:
 *     at most R events/s (a batch waits for its time), else as fast as
 *     intake answers.
 *
 *   late  --port P [--ns tp:] [--since ID]
 *     Reads the journal ({j}:journal) with XRANGE in chunks, and the
 *     scheduler's outbox (outbox:scheduler: fired, not yet journaled by
 *     intake), decodes every reminder.due envelope with the project's own
 *     codec (tp_event_from_msgpack) and reports, once per reminder, its
 *     late_ms (the scheduler computes it when it claims the reminder,
 *     against the due time) as percentiles, the first due time, the last
 *     claim time (due_at + late_ms), how many were journaled (and twice:
 *     fired twice), and the journal delay (journal entry time - due_at).
 *
 *   keys  --port P [--db D] [--sample S]
 *     Memory by key shape: SCANs the whole database, folds every key into a
 *     pattern (between the separators : | { }, a part of 10 or more
 *     characters holding a digit becomes *, other digit runs become #:
 *     "tp:{r3}:cust:C01JZB...17" -> "tp:{r#}:cust:*"), and per pattern
 *     reports the count of keys and, over a uniform sample of up to S of
 *     them (all of them when fewer), MEMORY USAGE ... SAMPLES 0 (exact, key
 *     and dict entry included), the type, the encoding and the element
 *     count. One line per pattern, tab-separated:
 *     pattern count sampled avg_bytes type encoding avg_elements.
 *
 *   move  --port P --ts T [--ns tp:]
 *     Moves every pending reminder to due time T, as the scheduler would
 *     have stored it: each customer's book (tp/reminder.h, with the
 *     project's own codec) and its entries in its group's due index, the
 *     owners' indexes and the shard's index of groups. For the own-path
 *     fire phase, with the scheduler's claims, while nothing else writes.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <jansson.h>

#include "tp/event.h"
#include "tp/keys.h"
#include "tp/reminder.h"
#include "tp_loadclient.h"

typedef struct opts {
    const char *mode;
    int port;
    const char *key;
    int conns;
    int batch;
    long events;
    unsigned long long base;
    long long ts;
    long long spread_ms;
    int owners;
    double max_s;
    double rate;
    const char *ns;
    const char *since;
    int db, sample;
} opts_t;

/* ---- post ---- */

typedef struct conn {
    tp_load_conn_t http; /* first: the pump's view of it */
    long first, n;       /* the events of the request in flight */
    double retry_at;     /* > 0: resend after this time (a 503) */
} conn_t;

static int inquiry_json(char *out, size_t cap, const opts_t *o, long i) {
    long long ts = o->ts + (o->spread_ms > 0 ? (long long)((double)i * (double)o->spread_ms /
                                                            (double)o->events)
                                             : 0);
    return snprintf(out, cap,
                    "{\"id\":\"01JZB%021llu\",\"type\":\"inquiry.received\",\"ts\":%lld,"
                    "\"src\":\"web\",\"customer\":\"C01JZB%021llu\",\"data\":{"
                    "\"channel\":\"web\",\"owner\":\"rep-%ld\"}}",
                    o->base + (unsigned long long)i, ts, o->base + (unsigned long long)i,
                    i % o->owners);
}

static void build_request(conn_t *c, const opts_t *o, long first, long n) {
    size_t cap = (size_t)n * 256 + 64;
    char *body = tp_load_body(&c->http, cap);
    size_t len = (size_t)sprintf(body, "{\"events\":[");
    for (long i = 0; i < n; i++) {
        if (i) body[len++] = ',';
        len += (size_t)inquiry_json(body + len, cap - len, o, first + i);
    }
    len += (size_t)sprintf(body + len, "]}");
    tp_load_post(&c->http, o->key, len);
    c->first = first;
    c->n = n;
    c->retry_at = 0;
}

typedef struct post_stats {
    long accepted, duplicates, rejected, busy_retries, requests, reconnects;
    int reported;
} post_stats_t;

typedef struct post_run {
    post_stats_t stats;
    int port;
} post_run_t;

static void post_done(tp_load_conn_t *http, int status, const char *body, size_t len,
                      void *arg) {
    conn_t *c = (conn_t *)http;
    post_run_t *run = arg;
    post_stats_t *s = &run->stats;
    if (status == 0) {
        /* intake closed the connection (an idle one past its read_timeout,
         * or after a "Connection: close") before answering: the same
         * request again on a new connection */
        tp_load_reconnect(http, run->port);
        s->reconnects++;
        return;
    }
    s->requests++;
    if (status == 202) {
        long dups = tp_load_duplicates(body, len);
        s->duplicates += dups;
        s->accepted += c->n - dups;
    } else if (status == 503) { /* back-pressure: the same events again soon */
        s->busy_retries++;
        http->busy = http->paused = 1;
        c->retry_at = tp_load_now_s() + 0.02;
    } else {
        s->rejected += c->n;
        if (!s->reported++)
            fprintf(stderr, "tp-sched-load: HTTP %d: %.*s\n", status,
                    (int)(len > 300 ? 300 : len), body);
    }
}

static int run_post(const opts_t *o) {
    int n = o->conns;
    conn_t *cs = calloc((size_t)n, sizeof *cs);
    tp_load_conn_t **list = calloc((size_t)n, sizeof *list);
    if (!cs || !list) tp_load_die("calloc");
    for (int i = 0; i < n; i++) {
        cs[i].http.fd = tp_load_connect(o->port);
        list[i] = &cs[i].http;
    }
    post_run_t run = {.port = o->port};
    post_stats_t *s = &run.stats;
    long issued = 0;
    double t0 = tp_load_now_s(), cpu0 = tp_load_cpu_s();
    for (;;) {
        int busy = 0;
        int stop = o->max_s > 0 && tp_load_now_s() - t0 > o->max_s;
        double t = tp_load_now_s(), wait = 1.0;
        for (int i = 0; i < n; i++) {
            conn_t *c = &cs[i];
            if (c->http.paused) { /* a 503 to send again */
                if (stop) {
                    c->http.busy = c->http.paused = 0;
                } else if (t >= c->retry_at) {
                    build_request(c, o, c->first, c->n);
                } else if (c->retry_at - t < wait) {
                    wait = c->retry_at - t;
                }
            }
            /* --rate: a batch is not sent before its time */
            double at = o->rate > 0 ? t0 + (double)issued / o->rate : 0;
            if (!c->http.busy && issued < o->events && !stop && at > t) {
                if (at - t < wait) wait = at - t;
            } else if (!c->http.busy && issued < o->events && !stop) {
                long k = o->events - issued < o->batch ? o->events - issued : o->batch;
                build_request(c, o, issued, k);
                issued += k;
            }
            busy += c->http.busy;
        }
        if (!busy && (issued >= o->events || stop)) break;
        tp_load_pump(list, n, wait, post_done, &run);
    }
    double el = tp_load_now_s() - t0;
    printf("mode=post\nissued=%ld\naccepted=%ld\nduplicates=%ld\nrejected=%ld\n"
           "busy_retries=%ld\nreconnects=%ld\nrequests=%ld\nelapsed_s=%.3f\n"
           "accept_rate=%.0f\ngen_cpu_s=%.3f\n",
           issued, s->accepted, s->duplicates, s->rejected, s->busy_retries, s->reconnects,
           s->requests, el, s->accepted / el, tp_load_cpu_s() - cpu0);
    for (int i = 0; i < n; i++) tp_load_conn_free(&cs[i].http);
    free(cs);
    free(list);
    return s->rejected ? 1 : 0;
}

/* ---- late ---- */

static int cmp_ll(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? -1 : x > y;
}

typedef struct series {
    long long *v;
    long n, cap;
} series_t;

static void push(series_t *s, long long x) {
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 65536;
        s->v = realloc(s->v, (size_t)s->cap * sizeof *s->v);
        if (!s->v) tp_load_die("realloc");
    }
    s->v[s->n++] = x;
}

static long long pct(const series_t *s, double p) {
    return s->n ? s->v[(long)(p * (double)(s->n - 1) + 0.5)] : 0;
}

/* One reminder.due seen: where (journal first), its reminder, due time,
 * lateness and, when journaled, the journal entry's time. */
typedef struct fired {
    char *reminder;
    long long due, late, journaled_ms; /* journaled_ms -1: in the outbox only */
} fired_t;

typedef struct fired_list {
    fired_t *v;
    long n, cap, bad;
} fired_list_t;

static void fired_add(fired_list_t *l, const char *env, size_t len, long long journaled_ms,
                      const char *where) {
    tp_event_t ev;
    tp_event_error_t err;
    tp_event_init(&ev);
    if (tp_event_from_msgpack(&ev, env, len, &err) < 0) {
        if (!l->bad++)
            fprintf(stderr, "tp-sched-load: bad envelope in the %s: %s: %s\n", where,
                    err.field, err.message);
        return;
    }
    if (ev.type == TP_EVENT_REMINDER_DUE) {
        if (l->n == l->cap) {
            l->cap = l->cap ? l->cap * 2 : 65536;
            l->v = realloc(l->v, (size_t)l->cap * sizeof *l->v);
            if (!l->v) tp_load_die("realloc");
        }
        const char *rem = tp_event_str(&ev, "reminder");
        fired_t *f = &l->v[l->n++];
        f->reminder = strdup(rem ? rem : "");
        f->due = tp_event_int(&ev, "due_at", 0);
        f->late = tp_event_int(&ev, "late_ms", 0);
        f->journaled_ms = journaled_ms;
    }
    tp_event_clear(&ev);
}

/* By reminder, journaled ones first. */
static int cmp_fired(const void *a, const void *b) {
    const fired_t *x = a, *y = b;
    int c = strcmp(x->reminder, y->reminder);
    if (c) return c;
    return (x->journaled_ms < 0) - (y->journaled_ms < 0);
}

static int run_late(const opts_t *o) {
    redisContext *r = redisConnect("127.0.0.1", o->port);
    if (!r || r->err) {
        fprintf(stderr, "tp-sched-load: redis: %s\n", r ? r->errstr : "no memory");
        return 2;
    }
    char key[256], start[64];
    fired_list_t l = {0};
    long entries = 0;
    double t0 = tp_load_now_s();
    /* the journal: XADD <ns>{j}:journal * t <type> e <envelope> */
    snprintf(key, sizeof key, "%s{j}:journal", o->ns);
    snprintf(start, sizeof start, "%s", o->since ? o->since : "-");
    for (;;) {
        redisReply *rep = redisCommand(r, "XRANGE %s %s + COUNT 20000", key, start);
        if (!rep || rep->type != REDIS_REPLY_ARRAY) {
            fprintf(stderr, "tp-sched-load: XRANGE: %s\n",
                    rep && rep->type == REDIS_REPLY_ERROR ? rep->str : r->errstr);
            return 2;
        }
        if (rep->elements == 0) {
            freeReplyObject(rep);
            break;
        }
        for (size_t i = 0; i < rep->elements; i++) {
            redisReply *e = rep->element[i], *f = e->element[1];
            entries++;
            const char *type = NULL, *env = NULL;
            size_t env_len = 0;
            for (size_t k = 0; k + 1 < f->elements; k += 2) {
                if (!strcmp(f->element[k]->str, "t")) type = f->element[k + 1]->str;
                if (!strcmp(f->element[k]->str, "e")) {
                    env = f->element[k + 1]->str;
                    env_len = f->element[k + 1]->len;
                }
            }
            if (type && !strcmp(type, "reminder.due") && env)
                fired_add(&l, env, env_len, atoll(e->element[0]->str), "journal");
        }
        /* the next chunk starts just after the last id read */
        const char *last = rep->element[rep->elements - 1]->element[0]->str;
        unsigned long long ms = 0, seq = 0;
        sscanf(last, "%llu-%llu", &ms, &seq);
        snprintf(start, sizeof start, "%llu-%llu", ms, seq + 1);
        freeReplyObject(rep);
    }
    long journaled = l.n;
    /* the scheduler's outbox: fired, not yet journaled by intake */
    snprintf(key, sizeof key, "%soutbox:scheduler", o->ns);
    for (long from = 0;; from += 20000) {
        redisReply *rep = redisCommand(r, "ZRANGE %s %ld %ld", key, from, from + 19999);
        if (!rep || rep->type != REDIS_REPLY_ARRAY) {
            fprintf(stderr, "tp-sched-load: ZRANGE outbox failed\n");
            return 2;
        }
        size_t got = rep->elements;
        for (size_t i = 0; i < got; i++)
            fired_add(&l, rep->element[i]->str, rep->element[i]->len, -1, "outbox");
        freeReplyObject(rep);
        if (got < 20000) break;
    }
    qsort(l.v, (size_t)l.n, sizeof *l.v, cmp_fired);
    series_t late = {0}, jdelay = {0};
    long long first_due = 0, last_due = 0, first_claim = 0, last_claim = 0;
    long distinct = 0, outbox_only = 0, repeats = 0;
    double mean = 0;
    for (long i = 0; i < l.n; i++) {
        fired_t *f = &l.v[i];
        if (i > 0 && !strcmp(f->reminder, l.v[i - 1].reminder)) {
            repeats += f->journaled_ms >= 0; /* journaled twice: fired twice */
            continue;
        }
        distinct++;
        push(&late, f->late);
        mean += (double)f->late;
        long long claim = f->due + f->late;
        if (!first_due || f->due < first_due) first_due = f->due;
        if (f->due > last_due) last_due = f->due;
        if (!first_claim || claim < first_claim) first_claim = claim;
        if (claim > last_claim) last_claim = claim;
        if (f->journaled_ms >= 0) push(&jdelay, f->journaled_ms - f->due);
        else outbox_only++;
    }
    qsort(late.v, (size_t)late.n, sizeof *late.v, cmp_ll);
    qsort(jdelay.v, (size_t)jdelay.n, sizeof *jdelay.v, cmp_ll);
    mean = late.n ? mean / (double)late.n : 0;
    printf("mode=late\nentries=%ld\nreminders=%ld\njournaled=%ld\noutbox_only=%ld\n"
           "journaled_twice=%ld\nbad=%ld\nlate_p50_ms=%lld\nlate_p90_ms=%lld\n"
           "late_p99_ms=%lld\nlate_p999_ms=%lld\nlate_max_ms=%lld\nlate_mean_ms=%.2f\n"
           "first_due_ms=%lld\nlast_due_ms=%lld\nfirst_claim_ms=%lld\nlast_claim_ms=%lld\n"
           "journal_delay_p50_ms=%lld\njournal_delay_p99_ms=%lld\n"
           "journal_delay_max_ms=%lld\nread_s=%.3f\n",
           entries, distinct, journaled, outbox_only, repeats, l.bad, pct(&late, 0.50),
           pct(&late, 0.90), pct(&late, 0.99), pct(&late, 0.999),
           late.n ? late.v[late.n - 1] : 0, mean, first_due, last_due, first_claim,
           last_claim, pct(&jdelay, 0.50), pct(&jdelay, 0.99),
           jdelay.n ? jdelay.v[jdelay.n - 1] : 0, tp_load_now_s() - t0);
    for (long i = 0; i < l.n; i++) free(l.v[i].reminder);
    free(l.v);
    free(late.v);
    free(jdelay.v);
    redisFree(r);
    return 0;
}

/* ---- keys ---- */

typedef struct shape {
    char *pattern;
    long count;
    char **sample; /* reservoir of up to `cap` keys */
    long nsample;
} shape_t;

/* Folds `key` into its pattern (see the header). */
static void fold(const char *key, size_t len, char *out, size_t cap) {
    size_t o = 0;
    size_t i = 0;
    while (i < len && o + 2 < cap) {
        if (strchr(":|{}", key[i])) {
            out[o++] = key[i++];
            continue;
        }
        size_t j = i;
        int digit = 0;
        while (j < len && !strchr(":|{}", key[j])) digit |= key[j] >= '0' && key[j] <= '9', j++;
        if (j - i >= 10 && digit) {
            out[o++] = '*';
        } else {
            for (size_t k = i; k < j && o + 2 < cap; k++) {
                int d = key[k] >= '0' && key[k] <= '9';
                if (d && o > 0 && out[o - 1] == '#') continue;
                out[o++] = d ? '#' : key[k];
            }
        }
        i = j;
    }
    out[o] = '\0';
}

static unsigned long long rng_state = 88172645463325252ULL;
static unsigned long long rng(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static long long reply_int(redisContext *r, const char *fmt, const char *key) {
    redisReply *x = redisCommand(r, fmt, key);
    long long v = x && x->type == REDIS_REPLY_INTEGER ? x->integer : 0;
    if (x) freeReplyObject(x);
    return v;
}

static int run_keys(const opts_t *o, int db, int cap) {
    redisContext *r = redisConnect("127.0.0.1", o->port);
    if (!r || r->err) {
        fprintf(stderr, "tp-sched-load: redis: %s\n", r ? r->errstr : "no memory");
        return 2;
    }
    redisReply *x = redisCommand(r, "SELECT %d", db);
    if (x) freeReplyObject(x);
    shape_t *shapes = NULL;
    long nshapes = 0, keys = 0;
    char cursor[32] = "0", pattern[512];
    double t0 = tp_load_now_s();
    do {
        x = redisCommand(r, "SCAN %s COUNT 20000", cursor);
        if (!x || x->type != REDIS_REPLY_ARRAY || x->elements != 2) {
            fprintf(stderr, "tp-sched-load: SCAN failed\n");
            return 2;
        }
        snprintf(cursor, sizeof cursor, "%s", x->element[0]->str);
        redisReply *list = x->element[1];
        for (size_t i = 0; i < list->elements; i++) {
            const char *key = list->element[i]->str;
            fold(key, list->element[i]->len, pattern, sizeof pattern);
            shape_t *s = NULL;
            for (long k = 0; k < nshapes; k++)
                if (!strcmp(shapes[k].pattern, pattern)) {
                    s = &shapes[k];
                    break;
                }
            if (!s) {
                shapes = realloc(shapes, (size_t)(nshapes + 1) * sizeof *shapes);
                if (!shapes) tp_load_die("realloc");
                s = &shapes[nshapes++];
                s->pattern = strdup(pattern);
                s->count = 0;
                s->sample = calloc((size_t)cap, sizeof *s->sample);
                s->nsample = 0;
            }
            s->count++;
            keys++;
            if (s->nsample < cap) { /* reservoir sampling */
                s->sample[s->nsample++] = strdup(key);
            } else {
                unsigned long long j = rng() % (unsigned long long)s->count;
                if (j < (unsigned long long)cap) {
                    free(s->sample[j]);
                    s->sample[j] = strdup(key);
                }
            }
        }
        freeReplyObject(x);
    } while (strcmp(cursor, "0") != 0);
    for (long k = 0; k < nshapes; k++) {
        shape_t *s = &shapes[k];
        double bytes = 0, elems = 0;
        char type[32] = "", enc[32] = "";
        for (long i = 0; i < s->nsample; i++) {
            const char *key = s->sample[i];
            bytes += (double)reply_int(r, "MEMORY USAGE %s SAMPLES 0", key);
            x = redisCommand(r, "TYPE %s", key);
            if (x && x->type == REDIS_REPLY_STATUS) snprintf(type, sizeof type, "%s", x->str);
            if (x) freeReplyObject(x);
            x = redisCommand(r, "OBJECT ENCODING %s", key);
            if (x && x->type == REDIS_REPLY_STRING) snprintf(enc, sizeof enc, "%s", x->str);
            if (x) freeReplyObject(x);
            const char *f = !strcmp(type, "zset")     ? "ZCARD %s"
                            : !strcmp(type, "hash")   ? "HLEN %s"
                            : !strcmp(type, "set")    ? "SCARD %s"
                            : !strcmp(type, "list")   ? "LLEN %s"
                            : !strcmp(type, "stream") ? "XLEN %s"
                                                      : "STRLEN %s";
            elems += (double)reply_int(r, f, key);
        }
        printf("%s\t%ld\t%ld\t%.1f\t%s\t%s\t%.1f\n", s->pattern, s->count, s->nsample,
               s->nsample ? bytes / (double)s->nsample : 0, type, enc,
               s->nsample ? elems / (double)s->nsample : 0);
    }
    fprintf(stderr, "tp-sched-load: keys: %ld keys, %ld patterns in %.2fs\n", keys, nshapes,
            tp_load_now_s() - t0);
    redisFree(r);
    return 0;
}

/* ---- move ---- */

static int run_move(const opts_t *o) {
    redisContext *r = redisConnect("127.0.0.1", o->port);
    if (!r || r->err) {
        fprintf(stderr, "tp-sched-load: redis: %s\n", r ? r->errstr : "no memory");
        return 2;
    }
    long moved = 0;
    long long score = (long long)tp_key_due_score(o->ts);
    for (int n = 0; n < TP_SHARDS; n++) {
        redisReply *groups = redisCommand(r, "ZRANGE %s{s%d}:r:due 0 -1", o->ns, n);
        for (size_t gi = 0; groups && gi < groups->elements; gi++) {
            const char *g = groups->element[gi]->str;
            redisReply *books = redisCommand(r, "HGETALL %s{s%d}:r:c:%s", o->ns, n, g);
            for (size_t i = 0; books && i + 1 < books->elements; i += 2) {
                const char *customer = books->element[i]->str;
                json_t *state, *before;
                if (tp_book_unpack(customer, books->element[i + 1]->str,
                                   books->element[i + 1]->len, &state, &before) < 0)
                    continue;
                json_t *after = json_deep_copy(before);
                const char *id;
                json_t *rec;
                json_object_foreach(after, id, rec) {
                    json_object_set_new(rec, "due_at", json_integer(o->ts));
                    moved++;
                }
                size_t len;
                char *book = tp_book_pack(customer, state, after, &len);
                json_t *moves = tp_book_owner_moves(before, after);
                const char *owner;
                json_t *v;
                redisAppendCommand(r, "HSET %s{s%d}:r:c:%s %s %b", o->ns, n, g, customer, book,
                                   len);
                redisAppendCommand(r, "ZADD %s{s%d}:r:due:%s %lld %s", o->ns, n, g, score,
                                   customer);
                int sent = 2;
                json_object_foreach(moves, owner, v) {
                    redisAppendCommand(r, "ZADD %s{s%d}:r:owner:%d:%s %lld %s", o->ns, n,
                                       atoi(g) % TP_OWNER_PARTS, owner, score, customer);
                    sent++;
                }
                for (int k = 0; k < sent; k++) {
                    redisReply *x = NULL;
                    if (redisGetReply(r, (void **)&x) != REDIS_OK) tp_load_die("move: redis");
                    freeReplyObject(x);
                }
                free(book);
                json_decref(moves);
                json_decref(after);
                json_decref(before);
                json_decref(state);
            }
            if (books) freeReplyObject(books);
            redisReply *x = redisCommand(r, "ZADD %s{s%d}:r:due %lld %s", o->ns, n, score, g);
            if (x) freeReplyObject(x);
        }
        if (groups) freeReplyObject(groups);
    }
    printf("moved=%ld\n", moved);
    redisFree(r);
    return 0;
}

int main(int argc, char **argv) {
    opts_t o = {.conns = 4, .batch = 1000, .events = 100000, .owners = 50, .ns = "tp:",
                .sample = 300};
    if (argc < 2) goto usage;
    o.mode = argv[1];
    for (int i = 2; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--port")) o.port = atoi(v);
        else if (!strcmp(k, "--key")) o.key = v;
        else if (!strcmp(k, "--conns")) o.conns = atoi(v);
        else if (!strcmp(k, "--batch")) o.batch = atoi(v);
        else if (!strcmp(k, "--events")) o.events = atol(v);
        else if (!strcmp(k, "--base")) o.base = strtoull(v, NULL, 10);
        else if (!strcmp(k, "--ts")) o.ts = atoll(v);
        else if (!strcmp(k, "--spread-ms")) o.spread_ms = atoll(v);
        else if (!strcmp(k, "--owners")) o.owners = atoi(v);
        else if (!strcmp(k, "--max-s")) o.max_s = atof(v);
        else if (!strcmp(k, "--rate")) o.rate = atof(v);
        else if (!strcmp(k, "--ns")) o.ns = v;
        else if (!strcmp(k, "--since")) o.since = v;
        else if (!strcmp(k, "--db")) o.db = atoi(v);
        else if (!strcmp(k, "--sample")) o.sample = atoi(v);
        else goto usage;
    }
    if (o.conns < 1 || o.conns > 256 || o.batch < 1 || o.owners < 1 || !o.port) goto usage;
    if (!strcmp(o.mode, "post") && o.key) return run_post(&o);
    if (!strcmp(o.mode, "late")) return run_late(&o);
    if (!strcmp(o.mode, "keys") && o.sample > 0) return run_keys(&o, o.db, o.sample);
    if (!strcmp(o.mode, "move") && o.ts > 0) return run_move(&o);
usage:
    fprintf(stderr,
            "usage: tp-sched-load post --port P --key K [--conns C] [--batch B] "
            "[--events N] [--base X] --ts T [--spread-ms S] [--owners O] [--rate R]\n"
            "                          [--max-s M]\n"
            "       tp-sched-load late --port P [--ns tp:] [--since ID]\n"
            "       tp-sched-load keys --port P [--db D] [--sample S]\n"
            "       tp-sched-load move --port P --ts T [--ns tp:]\n");
    return 2;
}
