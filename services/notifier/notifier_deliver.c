/* notifier_deliver.c: recipients, rendering, delivery records, attempts,
 * retries, outcomes. Owns the delivery records in Redis ({s<n>}:delivery:
 * <id>, {s<n>}:deliveries:due, {s<n>}:deadletter) and the attempts in
 * flight; never talks to a network itself (the channels do).
 *
 * Shards: a delivery, an inbox and a digest live in the shard of the person
 * they reach (a staff user's, or for the customer's contact the customer's,
 * with the customer's cap counter). An event reaching people of several
 * shards is recorded by one script per shard: first the shards other than
 * its owner's, each under its own done mark ({s<n>}:done:notifier:<ev>),
 * then the owner's shard under the job's done mark. A crash between them
 * leaves the event not done; applied again, the parts done already are
 * no-ops. */
#include "notifier_deliver.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "notifier_webhook.h"
#include "tp/argv.h"
#include "tp/id.h"
#include "tp/keys.h"
#include "tp/log.h"

/* All KEYS of one shard: KEYS done, deliveries:due, cap counter (the
 * customer's; in another shard than the customer's, a placeholder never
 * counted: no delivery there is customer-facing), digest:due, ni inbox keys, nd
 * delivery keys, ng digest lists, ng digest "at" keys. ARGV ttl, inbox
 * entry, inbox max, ni, nd, cap limit, cap ttl ms, now, claim until,
 * customer, cause, ng, then per delivery: id, channel, address, body,
 * recipient, customer-facing (0/1), due at; then per digest item: the
 * line, the digest's time, the user. Returns the ids claimed to start now,
 * then "capped" and the ids capped. */
static const char DELIVER_LUA[] =
    TP_LUA_DONE_CHECK
    "local ni, nd, ng = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[12])\n"
    "for i = 1, ni do\n"
    "  redis.call('LPUSH', KEYS[4 + i], ARGV[2])\n"
    "  redis.call('LTRIM', KEYS[4 + i], 0, tonumber(ARGV[3]) - 1)\n"
    "end\n"
    "for g = 1, ng do\n"
    "  local a = 13 + nd * 7 + (g - 1) * 3\n"
    "  redis.call('RPUSH', KEYS[4 + ni + nd + g], ARGV[a])\n"
    "  if redis.call('SET', KEYS[4 + ni + nd + ng + g], ARGV[a + 1], 'NX') then\n"
    "    redis.call('ZADD', KEYS[4], ARGV[a + 1], ARGV[a + 2])\n"
    "  end\n"
    "end\n"
    "local capped = false\n"
    "local counted = false\n"
    "local now = tonumber(ARGV[8])\n"
    "local out, capped_ids = {}, {}\n"
    "for d = 1, nd do\n"
    "  local a = 13 + (d - 1) * 7\n"
    "  local key = KEYS[4 + ni + d]\n"
    "  if redis.call('EXISTS', key) == 0 then\n"
    "    if ARGV[a + 5] == '1' and tonumber(ARGV[6]) > 0 and not counted then\n"
    "      counted = true\n"
    "      local n = redis.call('INCR', KEYS[3])\n"
    "      if n == 1 then redis.call('PEXPIRE', KEYS[3], ARGV[7]) end\n"
    "      if n > tonumber(ARGV[6]) then capped = true end\n"
    "    end\n"
    "    local st = 'sending'\n"
    "    if ARGV[a + 5] == '1' and capped then st = 'capped' end\n"
    "    redis.call('HSET', key, 'status', st, 'attempts', 0, 'channel',\n"
    "               ARGV[a + 1], 'address', ARGV[a + 2], 'body', ARGV[a + 3],\n"
    "               'customer', ARGV[10], 'recipient', ARGV[a + 4],\n"
    "               'cause', ARGV[11], 'created_at', ARGV[8])\n"
    "    if st == 'capped' then\n"
    "      capped_ids[#capped_ids + 1] = ARGV[a]\n"
    "    elseif tonumber(ARGV[a + 6]) <= now then\n"
    "      redis.call('ZADD', KEYS[2], ARGV[9], ARGV[a])\n"
    "      out[#out + 1] = ARGV[a]\n"
    "    else\n"
    "      redis.call('ZADD', KEYS[2], ARGV[a + 6], ARGV[a])\n"
    "    end\n"
    "  end\n"
    "end\n"
    TP_LUA_DONE_MARK
    "out[#out + 1] = 'capped'\n"
    "for _, id in ipairs(capped_ids) do out[#out + 1] = id end\n"
    "return out\n";

/* KEYS delivery, deliveries:due, outbox, deadletter. ARGV id, outcome
 * (sent | failed | retry | defer), attempts, last error, next attempt ms,
 * now, derived event ("" for retry and defer). Returns 1, or 0 when the
 * delivery was already settled. */
static const char RESULT_LUA[] =
    "local st = redis.call('HGET', KEYS[1], 'status')\n"
    "if st ~= 'sending' then return 0 end\n"
    "if ARGV[2] == 'defer' then\n"
    "  redis.call('ZADD', KEYS[2], ARGV[5], ARGV[1])\n"
    "  return 1\n"
    "end\n"
    "redis.call('HSET', KEYS[1], 'attempts', ARGV[3], 'last_error', ARGV[4])\n"
    "if ARGV[2] == 'retry' then\n"
    "  redis.call('ZADD', KEYS[2], ARGV[5], ARGV[1])\n"
    "  return 1\n"
    "end\n"
    "redis.call('HSET', KEYS[1], 'status', ARGV[2], 'settled_at', ARGV[6])\n"
    "redis.call('ZREM', KEYS[2], ARGV[1])\n"
    "if ARGV[2] == 'failed' then redis.call('ZADD', KEYS[4], ARGV[6], ARGV[1]) end\n"
    "redis.call('ZADD', KEYS[3], ARGV[6], ARGV[7])\n"
    "return 1\n";

/* KEYS one shard's deliveries:due. ARGV now, claim until, limit, the
 * shard's delivery key prefix ("<ns>{s<n>}:delivery:").
 * Claims due deliveries; returns id, attempts, body, customer, recipient,
 * cause, channel, address per delivery. */
static const char CLAIM_LUA[] =
    "local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1],\n"
    "                       'LIMIT', 0, ARGV[3])\n"
    "local out = {}\n"
    "for _, id in ipairs(ids) do\n"
    "  redis.call('ZADD', KEYS[1], ARGV[2], id)\n"
    "  local f = redis.call('HMGET', ARGV[4] .. id, 'attempts', 'body',\n"
    "                       'customer', 'recipient', 'cause', 'channel',\n"
    "                       'address', 'status')\n"
    "  if f[8] == 'sending' then\n"
    "    out[#out + 1] = id\n"
    "    for i = 1, 7 do out[#out + 1] = f[i] or '' end\n"
    "  else redis.call('ZREM', KEYS[1], id) end\n"
    "end\n"
    "return out\n";

/* KEYS one shard's digest:due. ARGV now, claim until, limit, the shard's
 * key prefix ("<ns>{s<n>}:", its users' keys are under it). Claims the
 * digests due; returns user, time, n, then n lines per digest. */
static const char DIGEST_CLAIM_LUA[] =
    "local users = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1],\n"
    "                         'LIMIT', 0, ARGV[3])\n"
    "local out = {}\n"
    "for _, u in ipairs(users) do\n"
    "  local list = ARGV[4] .. 'u:' .. u .. ':digest'\n"
    "  local at = redis.call('GET', list .. ':at')\n"
    "  local items = redis.call('LRANGE', list, 0, 99)\n"
    "  if not at or #items == 0 then\n"
    "    redis.call('ZREM', KEYS[1], u)\n"
    "    redis.call('DEL', list .. ':at')\n"
    "  else\n"
    "    redis.call('ZADD', KEYS[1], ARGV[2], u)\n"
    "    out[#out + 1] = u\n"
    "    out[#out + 1] = at\n"
    "    out[#out + 1] = tostring(#items)\n"
    "    for _, it in ipairs(items) do out[#out + 1] = it end\n"
    "  end\n"
    "end\n"
    "return out\n";

/* KEYS digest:due, the digest list, its "at" key, deliveries:due, nd
 * delivery keys. ARGV at, lines consumed, user, nd, now, claim until, next
 * digest time, then per delivery: id, channel, address, body. Records the
 * digest's deliveries once (a second record of the same digest finds "at"
 * changed) and returns their ids, claimed to start now. */
static const char DIGEST_RECORD_LUA[] =
    "if redis.call('GET', KEYS[3]) ~= ARGV[1] then return {} end\n"
    "local out = {}\n"
    "for d = 1, tonumber(ARGV[4]) do\n"
    "  local a = 8 + (d - 1) * 4\n"
    "  if redis.call('EXISTS', KEYS[4 + d]) == 0 then\n"
    "    redis.call('HSET', KEYS[4 + d], 'status', 'sending', 'attempts', 0,\n"
    "               'channel', ARGV[a + 1], 'address', ARGV[a + 2], 'body',\n"
    "               ARGV[a + 3], 'customer', '', 'recipient', ARGV[3],\n"
    "               'cause', 'digest', 'created_at', ARGV[5])\n"
    "    redis.call('ZADD', KEYS[4], ARGV[6], ARGV[a])\n"
    "    out[#out + 1] = ARGV[a]\n"
    "  end\n"
    "end\n"
    "redis.call('LTRIM', KEYS[2], tonumber(ARGV[2]), -1)\n"
    "if redis.call('LLEN', KEYS[2]) > 0 then\n"
    "  redis.call('SET', KEYS[3], ARGV[7])\n"
    "  redis.call('ZADD', KEYS[1], ARGV[7], ARGV[3])\n"
    "else\n"
    "  redis.call('DEL', KEYS[3])\n"
    "  redis.call('ZREM', KEYS[1], ARGV[3])\n"
    "end\n"
    "return out\n";

/* KEYS done, inbox. ARGV ttl, the notification's event id, read at.
 * Marks the user's inbox entry for that event read. */
static const char READ_LUA[] =
    TP_LUA_DONE_CHECK
    "local items = redis.call('LRANGE', KEYS[2], 0, -1)\n"
    "for i, it in ipairs(items) do\n"
    "  local ok, e = pcall(cjson.decode, it)\n"
    "  if ok and type(e) == 'table' and e.event == ARGV[2] and not e.read then\n"
    "    e.read = true\n"
    "    e.read_at = tonumber(ARGV[3])\n"
    "    redis.call('LSET', KEYS[2], i - 1, cjson.encode(e))\n"
    "  end\n"
    "end\n"
    TP_LUA_DONE_MARK
    "return {1}\n";

#define CLAIM_BATCH "200"
#define CLAIM_FIELDS 8
#define DELIVERY_ID_MAX 400
#define MAX_RECIPIENTS 3

static const char *const channel_names[TP_DELIVER_CHANNELS] = {"email", "webhook",
                                                               "sms"};
static const unsigned channel_bits[TP_DELIVER_CHANNELS] = {
    TP_CHANNEL_EMAIL, TP_CHANNEL_WEBHOOK, TP_CHANNEL_SMS};

struct tp_deliver {
    tp_store_t *store;
    tp_emitter_t *emitter;
    const tp_templates_t *templates;
    const tp_recipients_t *recipients;
    tp_channel_t *channels[TP_DELIVER_CHANNELS];
    tp_deliver_options_t opts;
    char fallback_lang[32], customer_lang[32];
    char escalate[256], customer_rules[512], customer_kinds[256];
    char due_key[TP_SHARDS][128], deadletter_key[TP_SHARDS][128];
    char digest_due_key[TP_SHARDS][128], shard_prefix[TP_SHARDS][32];
    struct shard_arg { /* a claim's callback: which shard answered */
        struct tp_deliver *deliver;
        int shard;
    } shard_args[TP_SHARDS];
    int deliver_script, result_script, claim_script;
    int digest_claim_script, digest_record_script, read_script;
    uv_timer_t retry_timer;
    int closing;
    tp_metric_t *deliveries; /* tp_deliveries_total{channel,status}, or NULL */
};

/* One attempt of one delivery. */
typedef struct attempt {
    tp_deliver_t *deliver;
    int shard; /* of its record */
    char id[DELIVERY_ID_MAX];
    char customer[TP_CUSTOMER_MAX + 1];
    char recipient[TP_ACTOR_MAX + 1];
    char cause[TP_ID_MAX + 1];
    char address[1100];
    int channel;  /* TP_DELIVER_* */
    int attempts; /* made before this one */
} attempt_t;

static int in_list(const char *list, const char *word) {
    size_t n = strlen(word);
    for (const char *p = list; *p;) {
        p += strspn(p, ", ");
        size_t len = strcspn(p, ", ");
        if (len == n && len && strncmp(p, word, n) == 0) return 1;
        p += len;
    }
    return 0;
}

int tp_deliver_options_load(tp_deliver_options_t *o, tp_config_t *cfg,
                            char *err, size_t errlen) {
    o->max_attempts = (int)tp_config_int(cfg, "notifier", "max_attempts", 8, 1, 1000);
    o->backoff_ms = tp_config_ms(cfg, "notifier", "backoff", "1s");
    o->backoff_max_ms = tp_config_ms(cfg, "notifier", "backoff_max", "5m");
    o->claim_ms = tp_config_ms(cfg, "notifier", "claim", "60s");
    o->retry_poll_ms = tp_config_ms(cfg, "notifier", "retry_poll", "1s");
    o->inbox_max = (int)tp_config_int(cfg, "notifier", "inbox_max", 200, 1, 100000);
    o->fallback_lang = tp_config_str(cfg, "notifier", "fallback_lang", "en");
    /* ticketing escalates its own breaches step by step (ticket.escalated) */
    o->escalate = tp_config_str(cfg, "notifier", "escalate", "customer.at_risk");
    o->customer_rules = tp_config_str(cfg, "notifier", "customer_rules", "");
    o->customer_kinds = tp_config_str(cfg, "notifier", "customer_kinds", "");
    o->customer_lang = tp_config_str(cfg, "notifier", "customer_lang", "zh-CN");
    o->customer_cap = (int)tp_config_int(cfg, "notifier", "customer_cap", 2, 0, 1000);
    o->customer_cap_period_ms = tp_config_ms(cfg, "notifier", "customer_cap_period", "7d");
    o->breaker_failures =
        (int)tp_config_int(cfg, "notifier", "breaker_failures", 5, 0, 100000);
    o->breaker_cooldown_ms = tp_config_ms(cfg, "notifier", "breaker_cooldown", "30s");
    if (tp_recipients_channels(
            tp_config_str(cfg, "notifier", "customer_channels", "email"),
            &o->customer_channels) < 0 ||
        (o->customer_channels & (TP_CHANNEL_INBOX | TP_CHANNEL_WEBHOOK))) {
        snprintf(err, errlen, "notifier.customer_channels: email and/or sms");
        return -1;
    }
    if (o->customer_cap_period_ms <= 0 || o->backoff_ms <= 0 ||
        o->retry_poll_ms <= 0 || o->claim_ms <= 0) {
        snprintf(err, errlen, "notifier: backoff, retry_poll, claim and "
                              "customer_cap_period must be positive");
        return -1;
    }
    const char *lists[2][2] = {{"escalate", o->escalate},
                               {"customer_kinds", o->customer_kinds}};
    for (int l = 0; l < 2; l++)
        for (const char *p = lists[l][1]; *p;) {
            p += strspn(p, ", ");
            size_t len = strcspn(p, ", ");
            if (!len) break;
            char kind[64];
            snprintf(kind, sizeof kind, "%.*s", (int)len, p);
            tp_event_type_t type = tp_proto_type(kind);
            if (type == TP_EVENT_NONE ||
                !(tp_proto_schema(type)->consumers & TP_TO(NOTIFIER))) {
                snprintf(err, errlen,
                         "notifier.%s: \"%s\" is not an event type the notifier "
                         "consumes",
                         lists[l][0], kind);
                return -1;
            }
            p += len;
        }
    return 0;
}

int tp_deliver_tag(const tp_event_t *ev, char *tag, size_t len, void *arg) {
    (void)arg;
    const char *owner = tp_event_str(ev, "owner");
    if (!owner || !*owner) return -1;
    return tp_key_user_tag(tag, len, owner) < 0 ? -1 : 0;
}

static int64_t backoff(const tp_deliver_t *self, int attempts) {
    int64_t wait = self->opts.backoff_ms;
    for (int i = 1; i < attempts && wait < self->opts.backoff_max_ms; i++) wait *= 2;
    if (wait > self->opts.backoff_max_ms) wait = self->opts.backoff_max_ms;
    uint32_t r = 0;
    if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r) r = 0;
    return wait * 4 / 5 + (int64_t)(r % (uint32_t)(wait * 2 / 5 + 1)); /* +-20% */
}

/* ------------------------------------------------------------------ */
/* Outcomes                                                            */
/* ------------------------------------------------------------------ */

/* An outcome being recorded, with the event it derives. */
typedef struct settle_ctx {
    tp_deliver_t *deliver;
    int shard;
    msgpack_sbuffer derived;
    const char *status; /* for tp_deliveries_total: sent, retrying, failed */
    int channel;
} settle_ctx_t;

static void settle_free(settle_ctx_t *sc) {
    msgpack_sbuffer_destroy(&sc->derived);
    free(sc);
}

static void result_cb(tp_store_t *store, redisReply *r, void *arg) {
    (void)store;
    settle_ctx_t *sc = arg;
    if (r && r->type == REDIS_REPLY_INTEGER && r->integer == 1 && sc->status) {
        /* recorded here (not settled before by another attempt): count it */
        const char *channel = channel_names[sc->channel];
        tp_series_inc(tp_metric_at(sc->deliver->deliveries, channel, sc->status));
        if (strcmp(sc->status, "failed") == 0) /* parked in the dead-letter set */
            tp_series_inc(tp_metric_at(sc->deliver->deliveries, channel, "dead"));
    }
    if (r && r->type == REDIS_REPLY_INTEGER && r->integer == 1 &&
        sc->derived.size && !sc->deliver->closing)
        tp_emitter_send_shard(sc->deliver->emitter, sc->shard, sc->derived.data,
                              sc->derived.size);
    settle_free(sc);
}

/* Records the outcome of attempt `a`: sent, failed, retry later, or defer
 * to `at` (a breaker is open: no attempt was made). */
static void settle(attempt_t *a, const char *outcome, const char *error,
                   int64_t at) {
    tp_deliver_t *self = a->deliver;
    int64_t now = tp_now_ms();
    int defer = strcmp(outcome, "defer") == 0;
    int attempts = a->attempts + (defer ? 0 : 1);
    settle_ctx_t *sc = calloc(1, sizeof *sc);
    if (!sc) abort();
    sc->deliver = self;
    sc->shard = a->shard;
    msgpack_sbuffer_init(&sc->derived);
    sc->channel = a->channel;
    sc->status = defer ? NULL : strcmp(outcome, "retry") == 0 ? "retrying"
                            : strcmp(outcome, "sent") == 0   ? "sent"
                                                             : "failed";
    if (strcmp(outcome, "retry") != 0 && !defer && a->customer[0]) {
        int sent = strcmp(outcome, "sent") == 0;
        json_t *data = json_pack("{s:s, s:s, s:s, s:s, s:i}", "delivery", a->id,
                                 "channel", channel_names[a->channel], "recipient",
                                 a->recipient, "cause", a->cause, "attempts",
                                 attempts);
        if (!sent)
            json_object_set_new(data, "error", json_string(error ? error : ""));
        char id[TP_ID_MAX + 1];
        snprintf(id, sizeof id, "%.110s:%s", a->id, outcome);
        tp_emit_pack(&sc->derived,
                     sent ? TP_EVENT_NOTIFICATION_SENT : TP_EVENT_NOTIFICATION_FAILED,
                     id, now, TP_SERVICE_NOTIFIER, a->customer, data);
    }
    if (strcmp(outcome, "retry") != 0 && !defer)
        tp_log_info("delivery %s %s after %d attempt(s)%s%s", a->id, outcome,
                    attempts, error ? ": " : "", error ? error : "");
    tp_argv_t v;
    tp_argv_init(&v);
    tp_argv_addf(&v, "%sdelivery:%s", self->shard_prefix[a->shard], a->id);
    tp_argv_add(&v, self->due_key[a->shard], (size_t)-1);
    tp_argv_add(&v, tp_emitter_outbox_shard(self->emitter, a->shard), (size_t)-1);
    tp_argv_add(&v, self->deadletter_key[a->shard], (size_t)-1);
    tp_argv_add(&v, a->id, (size_t)-1);
    tp_argv_add(&v, outcome, (size_t)-1);
    tp_argv_add_int(&v, attempts);
    tp_argv_add(&v, error ? error : "", (size_t)-1);
    tp_argv_add_int(&v, defer ? at : now + backoff(self, attempts));
    tp_argv_add_int(&v, now);
    tp_argv_add(&v, sc->derived.size ? sc->derived.data : "", sc->derived.size);
    int rc = tp_store_eval(self->store, self->result_script, result_cb, sc, 4,
                           (int)v.n, v.v, v.len);
    tp_argv_clear(&v);
    if (rc < 0) settle_free(sc); /* the claim expires; another attempt follows */
}

static void attempt_done_cb(long status, const char *error, void *arg) {
    attempt_t *a = arg;
    tp_deliver_t *self = a->deliver;
    if (self->closing) { /* shutting down: the claim expires, retried later */
        free(a);
        return;
    }
    tp_channel_t *ch = self->channels[a->channel];
    tp_verdict_t verdict = ch->classify(status, error);
    int64_t now = tp_now_ms();
    char server[160];
    if (tp_channel_record(ch, a->address, verdict, now, server, sizeof server))
        tp_log_warn("channel %s: %d failures in a row%s%s; waiting %lld ms before "
                    "the next attempt there",
                    ch->name, ch->breaker_failures, *server ? " at " : "", server,
                    (long long)ch->breaker_cooldown_ms);
    if (verdict == TP_VERDICT_SENT) {
        settle(a, "sent", NULL, 0);
    } else {
        char why[300];
        if (error && status)
            snprintf(why, sizeof why, "%ld: %.250s", status, error);
        else if (error)
            snprintf(why, sizeof why, "%.250s", error);
        else
            snprintf(why, sizeof why, "HTTP %ld", status);
        tp_log_warn("delivery %s attempt %d failed: %s", a->id, a->attempts + 1, why);
        settle(a,
               verdict == TP_VERDICT_PERMANENT ||
                       a->attempts + 1 >= self->opts.max_attempts
                   ? "failed"
                   : "retry",
               why, 0);
    }
    free(a);
}

/* Starts attempt `a` (takes ownership) with `payload`. */
static void attempt_start(tp_deliver_t *self, attempt_t *a, const char *payload,
                          size_t len) {
    tp_channel_t *ch = self->channels[a->channel];
    if (!ch) { /* the channel was switched off since: wait for it */
        tp_log_warn("delivery %s: channel %s is off; it waits", a->id,
                    channel_names[a->channel]);
        settle(a, "defer", NULL, tp_now_ms() + self->opts.claim_ms);
        free(a);
        return;
    }
    int64_t until = 0;
    if (!tp_channel_allow(ch, a->address, tp_now_ms(), &until)) {
        settle(a, "defer", NULL, until);
        free(a);
        return;
    }
    if (ch->send(ch, a->id, a->address, payload, len, attempt_done_cb, a) < 0) {
        tp_log_warn("delivery %s: not started; retried after its claim", a->id);
        free(a);
    }
}

/* ------------------------------------------------------------------ */
/* Applying an event: recipients, messages, records                    */
/* ------------------------------------------------------------------ */

/* One delivery being recorded. */
typedef struct pending {
    char id[DELIVERY_ID_MAX];
    int shard; /* its recipient's */
    char recipient[TP_ACTOR_MAX + 1];
    char address[1100];
    int channel;
    int customer_facing;
    int64_t due_at;
    char *payload;
    size_t len;
} pending_t;

#define MAX_PENDING (MAX_RECIPIENTS * TP_DELIVER_CHANNELS)

typedef struct deliver_ctx {
    tp_deliver_t *deliver;
    tp_consumer_t *consumer;
    tp_consumer_job_t *job;
    const tp_event_t *ev; /* borrowed until the job is done */
    char customer[TP_CUSTOMER_MAX + 1];
    char cause[TP_ID_MAX + 1];
    pending_t pending[MAX_PENDING];
    int npending;
    struct {
        char user[TP_ACTOR_MAX + 1];
        char *line;
        int64_t at;
    } digests[MAX_RECIPIENTS];
    int ndigests;
    const char *item_json; /* while planning: the inbox entry */
    char *event_json;      /* while planning: the event, JSON */
    /* recording: one script per shard reached, the owner's last */
    char *item_text;       /* the inbox entry */
    char inbox[MAX_RECIPIENTS][TP_ACTOR_MAX + 1]; /* staff reached */
    int ninbox;
    int owner_shard, customer_shard;
    int parts_waiting, parts_failed;
} deliver_ctx_t;

/* One shard's part of recording an event. */
typedef struct part {
    deliver_ctx_t *ctx;
    int shard;
} part_t;

static void ctx_free(deliver_ctx_t *ctx) {
    free(ctx->item_text);
    for (int i = 0; i < ctx->npending; i++) free(ctx->pending[i].payload);
    for (int i = 0; i < ctx->ndigests; i++) free(ctx->digests[i].line);
    free(ctx);
}

static const pending_t *pending_find(const deliver_ctx_t *ctx, const char *id) {
    for (int i = 0; i < ctx->npending; i++)
        if (strcmp(ctx->pending[i].id, id) == 0) return &ctx->pending[i];
    return NULL;
}

/* Starts the deliveries one part's script claimed to start now. */
static void part_start(deliver_ctx_t *ctx, int shard, const redisReply *r) {
    tp_deliver_t *self = ctx->deliver;
    int capped = 0;
    for (size_t i = 0; i < r->elements; i++) {
        redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_STRING) continue; /* {1}: already done */
        if (strcmp(e->str, "capped") == 0) {
            capped = 1;
            continue;
        }
        const pending_t *p = pending_find(ctx, e->str);
        if (capped) {
            tp_log_info("delivery %s capped (R-CAD-3): not sent", e->str);
            continue;
        }
        if (!p || self->closing) continue; /* claimed: retried when it expires */
        attempt_t *a = calloc(1, sizeof *a);
        if (!a) abort();
        a->deliver = self;
        a->shard = shard;
        snprintf(a->id, sizeof a->id, "%s", p->id);
        snprintf(a->customer, sizeof a->customer, "%s", ctx->customer);
        snprintf(a->recipient, sizeof a->recipient, "%s", p->recipient);
        snprintf(a->cause, sizeof a->cause, "%s", ctx->cause);
        snprintf(a->address, sizeof a->address, "%s", p->address);
        a->channel = p->channel;
        attempt_start(self, a, p->payload, p->len);
    }
}

/* The owner's part (the job's done mark) is recorded, or recording failed:
 * the job ends, then what was claimed starts. */
static void delivered_cb(tp_store_t *store, redisReply *r, void *arg) {
    (void)store;
    deliver_ctx_t *ctx = arg;
    int ok = r && r->type == REDIS_REPLY_ARRAY;
    if (r && r->type == REDIS_REPLY_ERROR) tp_log_error("deliver: %s", r->str);
    /* the job ends first: `ev` is not used after this */
    if (tp_consumer_reply_seen(r)) tp_consumer_job_duplicate(ctx->job);
    tp_consumer_job_done(ctx->job, ok ? 0 : -1);
    if (ok) part_start(ctx, ctx->owner_shard, r);
    ctx_free(ctx);
}

/* A value of `data` as text for a template: times in `zone`'s local time. */
static void field_text(const tp_field_t *f, json_t *v, const tp_calendar_t *zone,
                       char *out, size_t len) {
    out[0] = '\0';
    if (json_is_string(v)) {
        snprintf(out, len, "%s", json_string_value(v));
    } else if (json_is_boolean(v)) {
        snprintf(out, len, "%s", json_is_true(v) ? "yes" : "no");
    } else if (json_is_integer(v) && f->kind == TP_FIELD_TIME && zone) {
        tp_local_time_t t;
        tp_calendar_to_local(zone, (int64_t)json_integer_value(v), &t);
        snprintf(out, len, "%04d-%02d-%02d %02d:%02d", t.year, t.month, t.day,
                 t.hour, t.minute);
    } else if (json_is_integer(v)) {
        snprintf(out, len, "%lld", (long long)json_integer_value(v));
    }
}

/* The template fields of `ev` for one recipient. Caller owns the result. */
static json_t *message_fields(const tp_event_t *ev, const json_t *profile,
                              const char *recipient, const char *recipient_name,
                              const tp_calendar_t *zone) {
    json_t *fields = json_object();
    const tp_event_schema_t *schema = tp_proto_schema(ev->type);
    char text[TP_TEXT_MAX + 1];
    for (const tp_field_t *f = schema->fields; f && f->name; f++) {
        json_t *v = json_object_get(ev->data, f->name);
        if (!v) continue;
        if (f->kind == TP_FIELD_OBJECT) {
            for (const tp_field_t *s = f->sub; s && s->name; s++) {
                json_t *sv = json_object_get(v, s->name);
                if (!sv) continue;
                char name[200];
                snprintf(name, sizeof name, "%s.%s", f->name, s->name);
                field_text(s, sv, zone, text, sizeof text);
                json_object_set_new(fields, name, json_string(text));
            }
            continue;
        }
        field_text(f, v, zone, text, sizeof text);
        json_object_set_new(fields, f->name, json_string(text));
    }
    const char *name = json_string_value(json_object_get(profile, "name"));
    if (!name || !*name) name = json_string_value(json_object_get(profile, "company"));
    if (!name || !*name) name = ev->customer;
    json_object_set_new(fields, "customer", json_string(ev->customer));
    json_object_set_new(fields, "customer_name", json_string(name));
    json_object_set_new(fields, "recipient", json_string(recipient));
    json_object_set_new(fields, "recipient_name", json_string(recipient_name));
    json_object_set_new(fields, "kind", json_string(tp_proto_type_name(ev->type)));
    const char *rule = tp_event_str(ev, "rule");
    json_object_set_new(fields, "rule_name",
                        json_string(rule ? rule : tp_proto_type_name(ev->type)));
    json_t *ts = json_integer(ev->ts);
    static const tp_field_t when = {"when", TP_FIELD_TIME, 1, 0, 0, NULL, NULL, ""};
    field_text(&when, ts, zone, text, sizeof text);
    json_decref(ts);
    json_object_set_new(fields, "when", json_string(text));
    return fields;
}

static int event_urgent(const tp_event_t *ev) {
    if (tp_event_bool(ev, "urgent", 0)) return 1;
    const char *priority = tp_event_str(ev, "priority");
    return priority && strcmp(priority, "urgent") == 0;
}

/* One person (or the customer's contact) to reach. */
typedef struct target {
    char id[TP_ACTOR_MAX + 1]; /* user id, or "contact" */
    const char *name, *lang, *addresses[TP_DELIVER_CHANNELS];
    unsigned channels;
    const char *rule; /* template rule: the event's, or "<rule>.customer" */
    int customer_facing, staff;
    int digest_min;   /* -1: each reminder on its own */
    int has_quiet;
    tp_quiet_t quiet;
    const tp_calendar_t *zone;
} target_t;

static void target_user(const tp_deliver_t *self, const char *id, target_t *t) {
    tp_recipient_t r;
    tp_recipients_get(self->recipients, id, &r);
    memset(t, 0, sizeof *t);
    snprintf(t->id, sizeof t->id, "%s", id);
    t->name = r.name;
    t->lang = r.lang;
    t->channels = r.channels;
    t->addresses[TP_DELIVER_EMAIL] = r.email;
    t->addresses[TP_DELIVER_WEBHOOK] =
        *r.webhook_url || !self->channels[TP_DELIVER_WEBHOOK]
            ? r.webhook_url
            : tp_webhook_default_url(self->channels[TP_DELIVER_WEBHOOK]);
    t->addresses[TP_DELIVER_SMS] = r.phone;
    t->has_quiet = r.has_quiet;
    t->quiet = r.quiet;
    t->zone = r.zone;
    t->staff = 1;
    t->rule = "";
    t->digest_min = r.digest_min;
}

/* The next local `minute` of the day after `now` in `zone`. */
static int64_t next_local_minute(const tp_calendar_t *zone, int minute, int64_t now) {
    tp_local_time_t l;
    tp_calendar_to_local(zone, now, &l);
    l.hour = minute / 60, l.minute = minute % 60, l.second = 0;
    int64_t t = tp_calendar_from_local(zone, &l);
    if (t > now) return t;
    tp_calendar_to_local(zone, now + 24 * 3600 * 1000LL, &l);
    l.hour = minute / 60, l.minute = minute % 60, l.second = 0;
    return tp_calendar_from_local(zone, &l);
}

/* Renders and prepares one delivery per channel of `t`. */
static void plan_target(deliver_ctx_t *ctx, const target_t *t, const json_t *profile,
                        int64_t now) {
    tp_deliver_t *self = ctx->deliver;
    const tp_event_t *ev = ctx->ev;
    const char *kind = tp_proto_type_name(ev->type);
    const char *rule = t->rule;
    json_t *fields = message_fields(ev, profile, t->id, t->name, t->zone);
    char *subject = NULL, *text = NULL, *html = NULL;
    char err[300];
    int rendered = 0;
    int64_t due = now;
    if (t->staff && t->digest_min >= 0 && ev->type == TP_EVENT_REMINDER_DUE &&
        !event_urgent(ev) && ctx->ndigests < MAX_RECIPIENTS) {
        /* folded into the recipient's digest: one line, its subject */
        if (tp_templates_render(self->templates, kind, rule, t->lang, self->fallback_lang,
                                fields, &subject, &text, &html, err, sizeof err) < 0) {
            tp_log_error("event %s: %s; not in %s's digest", ev->id, err, t->id);
        } else {
            size_t n = strlen(subject) + 8;
            char *line = malloc(n);
            if (!line) abort();
            snprintf(line, n, "- %s", subject);
            snprintf(ctx->digests[ctx->ndigests].user, sizeof ctx->digests[0].user, "%.128s",
                     t->id);
            ctx->digests[ctx->ndigests].line = line;
            ctx->digests[ctx->ndigests].at = next_local_minute(t->zone, t->digest_min, now);
            ctx->ndigests++;
        }
        free(subject);
        free(text);
        free(html);
        json_decref(fields);
        return;
    }
    if (t->has_quiet && !event_urgent(ev)) due = tp_quiet_next_allowed(&t->quiet, now);
    for (int c = 0; c < TP_DELIVER_CHANNELS; c++) {
        tp_channel_t *ch = self->channels[c];
        if (!ch || !(t->channels & channel_bits[c])) continue;
        const char *address = t->addresses[c];
        if (!address || !*address) continue; /* nowhere to send it */
        if (!rendered) {
            if (tp_templates_render(self->templates, kind, rule, t->lang,
                                    self->fallback_lang, fields, &subject, &text,
                                    &html, err, sizeof err) < 0) {
                tp_log_error("event %s: %s; nothing sent to %s", ev->id, err, t->id);
                break;
            }
            rendered = 1;
        }
        pending_t *p = &ctx->pending[ctx->npending];
        p->shard = t->staff ? tp_key_shard(t->id) : ctx->customer_shard;
        snprintf(p->id, sizeof p->id, "%.128s/%.16s/%.128s", ev->id, ch->name, t->id);
        tp_message_t msg = {.delivery = p->id,
                            .address = address,
                            .recipient = t->id,
                            .customer = ev->customer,
                            .kind = kind,
                            .lang = t->lang,
                            .subject = subject,
                            .text = text,
                            .html = html,
                            .item_json = t->staff ? ctx->item_json : NULL,
                            .event_json = ctx->event_json,
                            .now_ms = now};
        p->payload = ch->prepare(ch, &msg, &p->len, err, sizeof err);
        if (!p->payload) {
            tp_log_warn("event %s: %s to %s skipped: %s", ev->id, ch->name, t->id, err);
            continue;
        }
        snprintf(p->recipient, sizeof p->recipient, "%.128s", t->id);
        snprintf(p->address, sizeof p->address, "%s", address);
        p->channel = c;
        p->customer_facing = t->customer_facing;
        p->due_at = due;
        ctx->npending++;
    }
    free(subject);
    free(text);
    free(html);
    json_decref(fields);
}

static void parts_send(deliver_ctx_t *ctx);
static void parts_settle(deliver_ctx_t *ctx);

static void record(deliver_ctx_t *ctx, const json_t *profile) {
    tp_deliver_t *self = ctx->deliver;
    const tp_event_t *ev = ctx->ev;
    const char *owner = tp_event_str(ev, "owner");
    const char *kind = tp_proto_type_name(ev->type);
    const char *ns = tp_store_ns(self->store);
    int64_t now = tp_now_ms();

    target_t targets[MAX_RECIPIENTS];
    int n = 0;
    int to_customer_only = in_list(self->customer_kinds, kind);
    if (!to_customer_only) target_user(self, owner, &targets[n++]);
    if (!to_customer_only && in_list(self->escalate, kind)) {
        tp_recipient_t r;
        tp_recipients_get(self->recipients, owner, &r);
        if (*r.manager && strcmp(r.manager, owner) != 0)
            target_user(self, r.manager, &targets[n++]);
    }
    const char *rule = tp_event_str(ev, "rule");
    for (int i = 0; i < n; i++) targets[i].rule = rule ? rule : "";
    char customer_rule[100];
    if (to_customer_only || (rule && in_list(self->customer_rules, rule))) {
        target_t *t = &targets[n++];
        memset(t, 0, sizeof *t);
        snprintf(t->id, sizeof t->id, "contact");
        const char *name = json_string_value(json_object_get(profile, "contact_name"));
        t->name = name && *name ? name : ev->customer;
        t->lang = self->customer_lang;
        t->channels = self->opts.customer_channels;
        /* the event's own contact data first (survey.requested carries
         * them), else the customer record's */
        const char *email = tp_event_str(ev, "email"), *phone = tp_event_str(ev, "phone");
        t->addresses[TP_DELIVER_EMAIL] =
            email && *email ? email
                            : json_string_value(json_object_get(profile, "contact_email"));
        t->addresses[TP_DELIVER_SMS] =
            phone && *phone ? phone
                            : json_string_value(json_object_get(profile, "contact_phone"));
        t->customer_facing = 1;
        if (to_customer_only)
            snprintf(customer_rule, sizeof customer_rule, "customer");
        else
            snprintf(customer_rule, sizeof customer_rule, "%.64s.customer", rule);
        t->rule = customer_rule;
        tp_recipient_t d;
        tp_recipients_get(self->recipients, "", &d); /* the defaults' zone */
        t->zone = d.zone;
        t->has_quiet = d.has_quiet;
        t->quiet = d.quiet;
    }
    /* the in-app entry, for the staff among the recipients */
    json_t *item = json_pack("{s:s, s:s, s:s, s:I}", "event", ev->id, "kind", kind,
                             "customer", ev->customer, "at", (json_int_t)ev->ts);
    static const char *const copied[] = {"rule", "reminder", "text", "ticket",
                                         "target", "title", "due_at", "deadline",
                                         "late_ms", "urgent", "priority", "health"};
    for (size_t i = 0; i < sizeof copied / sizeof *copied; i++) {
        json_t *v = json_object_get(ev->data, copied[i]);
        if (v) json_object_set(item, copied[i], v);
    }
    char *item_text = json_dumps(item, JSON_COMPACT);
    json_decref(item);
    json_t *event = tp_event_to_json(ev);
    ctx->event_json = json_dumps(event, JSON_COMPACT);
    json_decref(event);
    ctx->item_json = item_text;
    for (int i = 0; i < n; i++) plan_target(ctx, &targets[i], profile, now);
    ctx->item_json = NULL;
    free(ctx->event_json);
    ctx->event_json = NULL;

    ctx->item_text = item_text;
    for (int i = 0; i < n; i++)
        if (targets[i].staff)
            snprintf(ctx->inbox[ctx->ninbox++], sizeof ctx->inbox[0], "%.128s", targets[i].id);
    (void)ns;
    parts_send(ctx);
}

static void part_send(deliver_ctx_t *ctx, int shard, tp_store_reply_cb cb, void *arg);

static void part_cb(tp_store_t *store, redisReply *r, void *arg) {
    part_t *part = arg;
    deliver_ctx_t *ctx = part->ctx;
    if (r && r->type == REDIS_REPLY_ARRAY) {
        part_start(ctx, part->shard, r);
    } else {
        if (r && r->type == REDIS_REPLY_ERROR) tp_log_error("deliver: %s", r->str);
        ctx->parts_failed = 1;
    }
    free(part);
    parts_settle(ctx);
}

/* Every other shard's part is recorded: the owner's last, or the job fails
 * (applied again later: the parts done are no-ops then). */
static void parts_settle(deliver_ctx_t *ctx) {
    if (--ctx->parts_waiting) return;
    if (ctx->parts_failed || ctx->deliver->closing) {
        delivered_cb(ctx->deliver->store, NULL, ctx);
        return;
    }
    part_send(ctx, ctx->owner_shard, delivered_cb, ctx);
}

/* 1 when shard `shard` has something of the event to record. */
static int part_reaches(const deliver_ctx_t *ctx, int shard) {
    for (int i = 0; i < ctx->ninbox; i++)
        if (tp_key_shard(ctx->inbox[i]) == shard) return 1;
    for (int i = 0; i < ctx->npending; i++)
        if (ctx->pending[i].shard == shard) return 1;
    for (int i = 0; i < ctx->ndigests; i++)
        if (tp_key_shard(ctx->digests[i].user) == shard) return 1;
    return 0;
}

static void parts_send(deliver_ctx_t *ctx) {
    ctx->parts_waiting = 1; /* held while sending */
    for (int shard = 0; shard < TP_SHARDS && !ctx->parts_failed; shard++) {
        if (shard == ctx->owner_shard || !part_reaches(ctx, shard)) continue;
        part_t *part = malloc(sizeof *part);
        if (!part) abort();
        part->ctx = ctx;
        part->shard = shard;
        ctx->parts_waiting++;
        part_send(ctx, shard, part_cb, part);
    }
    parts_settle(ctx);
}

/* Records the part of the event in `shard`: its inboxes, deliveries and
 * digest lines, under the job's done mark (the owner's shard) or the
 * shard's own. `cb` runs once. */
static void part_send(deliver_ctx_t *ctx, int shard, tp_store_reply_cb cb, void *arg) {
    tp_deliver_t *self = ctx->deliver;
    const tp_event_t *ev = ctx->ev;
    const char *ns = tp_store_ns(self->store);
    int64_t now = tp_now_ms();
    char key[TP_CUSTOMER_MAX + TP_ID_MAX + 96];
    tp_argv_t v;
    tp_argv_init(&v);
    if (shard == ctx->owner_shard) {
        tp_argv_add(&v, tp_consumer_job_done_key(ctx->job), (size_t)-1);
    } else {
        tp_key_shard_key(key, sizeof key, ns, shard, "done:notifier:%s", ev->id);
        tp_argv_addf(&v, "%s", key);
    }
    tp_argv_add(&v, self->due_key[shard], (size_t)-1);
    int64_t period = self->opts.customer_cap_period_ms;
    if (shard == ctx->customer_shard) {
        tp_key_customer(key, sizeof key, ns, ev->customer, "contact_cap:%lld",
                        (long long)(now / period));
        tp_argv_addf(&v, "%s", key);
    } else {
        tp_argv_add(&v, self->due_key[shard], (size_t)-1); /* never counted */
    }
    tp_argv_add(&v, self->digest_due_key[shard], (size_t)-1);
    int ninbox = 0, npending = 0, ndigests = 0;
    for (int i = 0; i < ctx->ninbox; i++)
        if (tp_key_shard(ctx->inbox[i]) == shard) {
            tp_key_user(key, sizeof key, ns, ctx->inbox[i], "inbox");
            tp_argv_addf(&v, "%s", key);
            ninbox++;
        }
    for (int i = 0; i < ctx->npending; i++)
        if (ctx->pending[i].shard == shard) {
            tp_argv_addf(&v, "%sdelivery:%s", self->shard_prefix[shard], ctx->pending[i].id);
            npending++;
        }
    for (int i = 0; i < ctx->ndigests; i++)
        if (tp_key_shard(ctx->digests[i].user) == shard) {
            tp_key_user(key, sizeof key, ns, ctx->digests[i].user, "digest");
            tp_argv_addf(&v, "%s", key);
            ndigests++;
        }
    for (int i = 0; i < ctx->ndigests; i++)
        if (tp_key_shard(ctx->digests[i].user) == shard) {
            tp_key_user(key, sizeof key, ns, ctx->digests[i].user, "digest:at");
            tp_argv_addf(&v, "%s", key);
        }
    tp_argv_add(&v, tp_consumer_done_ttl(ctx->consumer), (size_t)-1);
    tp_argv_add(&v, ctx->item_text, (size_t)-1);
    tp_argv_add_int(&v, self->opts.inbox_max);
    tp_argv_add_int(&v, ninbox);
    tp_argv_add_int(&v, npending);
    tp_argv_add_int(&v, self->opts.customer_cap);
    tp_argv_add_int(&v, period);
    tp_argv_add_int(&v, now);
    tp_argv_add_int(&v, now + self->opts.claim_ms);
    tp_argv_add(&v, ev->customer, (size_t)-1);
    tp_argv_add(&v, ev->id, (size_t)-1);
    tp_argv_add_int(&v, ndigests);
    for (int i = 0; i < ctx->npending; i++) {
        pending_t *p = &ctx->pending[i];
        if (p->shard != shard) continue;
        tp_argv_add(&v, p->id, (size_t)-1);
        tp_argv_add(&v, channel_names[p->channel], (size_t)-1);
        tp_argv_add(&v, p->address, (size_t)-1);
        tp_argv_add(&v, p->payload, p->len);
        tp_argv_add(&v, p->recipient, (size_t)-1);
        tp_argv_add(&v, p->customer_facing ? "1" : "0", 1);
        tp_argv_add_int(&v, p->due_at);
    }
    for (int i = 0; i < ctx->ndigests; i++) {
        if (tp_key_shard(ctx->digests[i].user) != shard) continue;
        tp_argv_add(&v, ctx->digests[i].line, (size_t)-1);
        tp_argv_add_int(&v, ctx->digests[i].at);
        tp_argv_add(&v, ctx->digests[i].user, (size_t)-1);
    }
    int rc = tp_store_eval(self->store, self->deliver_script, cb, arg,
                           4 + ninbox + npending + 2 * ndigests, (int)v.n, v.v, v.len);
    tp_argv_clear(&v);
    if (rc < 0) cb(self->store, NULL, arg);
}

static void profile_cb(tp_store_t *store, redisReply *r, void *arg) {
    deliver_ctx_t *ctx = arg;
    if (!r || r->type != REDIS_REPLY_ARRAY || ctx->deliver->closing) {
        delivered_cb(store, NULL, ctx); /* the job fails; redelivered later */
        return;
    }
    static const char *const names[] = {"name", "company", "contact_name",
                                        "contact_email", "contact_phone"};
    json_t *profile = json_object();
    for (size_t i = 0; i < r->elements && i < 5; i++)
        if (r->element[i]->type == REDIS_REPLY_STRING)
            json_object_set_new(profile, names[i],
                                json_stringn(r->element[i]->str, r->element[i]->len));
    record(ctx, profile);
    json_decref(profile);
}

static void read_cb(tp_store_t *store, redisReply *r, void *arg) {
    (void)store;
    if (r && r->type == REDIS_REPLY_ERROR) tp_log_error("notification.read: %s", r->str);
    if (tp_consumer_reply_seen(r)) tp_consumer_job_duplicate(arg);
    tp_consumer_job_done(arg, r && r->type == REDIS_REPLY_ARRAY ? 0 : -1);
}

/* notification.read: the entry in the owner's inbox is marked read. */
static void mark_read(tp_deliver_t *self, tp_consumer_t *consumer,
                      tp_consumer_job_t *job, const tp_event_t *ev) {
    tp_argv_t v;
    tp_argv_init(&v);
    tp_argv_add(&v, tp_consumer_job_done_key(job), (size_t)-1);
    char inbox[TP_ACTOR_MAX + 64];
    tp_key_user(inbox, sizeof inbox, tp_store_ns(self->store), tp_event_str(ev, "owner"),
                "inbox");
    tp_argv_add(&v, inbox, (size_t)-1);
    tp_argv_add(&v, tp_consumer_done_ttl(consumer), (size_t)-1);
    tp_argv_add(&v, tp_event_str(ev, "notification"), (size_t)-1);
    tp_argv_add_int(&v, ev->ts);
    int rc = tp_store_eval(self->store, self->read_script, read_cb, job, 2, (int)v.n, v.v,
                           v.len);
    tp_argv_clear(&v);
    if (rc < 0) tp_consumer_job_done(job, -1);
}

void tp_deliver_apply(tp_consumer_t *consumer, tp_consumer_job_t *job,
                      const tp_event_t *ev, void *arg) {
    tp_deliver_t *self = arg;
    if (ev->type == TP_EVENT_NOTIFICATION_READ) {
        mark_read(self, consumer, job, ev);
        return;
    }
    deliver_ctx_t *ctx = calloc(1, sizeof *ctx);
    if (!ctx) abort();
    ctx->deliver = self;
    ctx->consumer = consumer;
    ctx->job = job;
    ctx->ev = ev;
    snprintf(ctx->customer, sizeof ctx->customer, "%s", ev->customer);
    snprintf(ctx->cause, sizeof ctx->cause, "%s", ev->id);
    ctx->owner_shard = tp_key_shard(tp_event_str(ev, "owner"));
    ctx->customer_shard = tp_key_shard(ev->customer);
    char key[TP_CUSTOMER_MAX + 64];
    tp_key_customer(key, sizeof key, tp_store_ns(self->store), ev->customer, "profile");
    if (tp_store_command(self->store, profile_cb, ctx,
                         "HMGET %s name company contact_name contact_email "
                         "contact_phone",
                         key) < 0)
        delivered_cb(self->store, NULL, ctx);
}

/* ------------------------------------------------------------------ */
/* Retries                                                             */
/* ------------------------------------------------------------------ */

static int channel_index(const char *name) {
    for (int c = 0; c < TP_DELIVER_CHANNELS; c++)
        if (strcmp(channel_names[c], name) == 0) return c;
    return -1;
}

static const char *reply_str(const redisReply *r) {
    return r->type == REDIS_REPLY_STRING ? r->str : "";
}

static void claimed_cb(tp_store_t *store, redisReply *r, void *arg) {
    (void)store;
    struct shard_arg *sa = arg;
    tp_deliver_t *self = sa->deliver;
    if (!r || r->type != REDIS_REPLY_ARRAY || self->closing) return;
    for (size_t i = 0; i + CLAIM_FIELDS - 1 < r->elements; i += CLAIM_FIELDS) {
        redisReply **f = &r->element[i];
        if (f[0]->type != REDIS_REPLY_STRING || f[2]->type != REDIS_REPLY_STRING)
            continue;
        /* records from before channels were named are webhooks */
        int channel = channel_index(*reply_str(f[6]) ? reply_str(f[6]) : "webhook");
        if (channel < 0) continue;
        attempt_t *a = calloc(1, sizeof *a);
        if (!a) abort();
        a->deliver = self;
        a->shard = sa->shard;
        snprintf(a->id, sizeof a->id, "%s", f[0]->str);
        a->attempts = atoi(reply_str(f[1]));
        snprintf(a->customer, sizeof a->customer, "%s", reply_str(f[3]));
        snprintf(a->recipient, sizeof a->recipient, "%s", reply_str(f[4]));
        snprintf(a->cause, sizeof a->cause, "%s", reply_str(f[5]));
        snprintf(a->address, sizeof a->address, "%s", reply_str(f[7]));
        if (!a->address[0] && channel == TP_DELIVER_WEBHOOK && self->channels[channel])
            snprintf(a->address, sizeof a->address, "%s",
                     tp_webhook_default_url(self->channels[channel]));
        a->channel = channel;
        attempt_start(self, a, f[2]->str, f[2]->len);
    }
}

/* ---- digests: a day's non-urgent reminders in one message ---- */

typedef struct digest_ctx {
    tp_deliver_t *deliver;
    int shard; /* the user's */
    char user[TP_ACTOR_MAX + 1];
    pending_t pending[TP_DELIVER_CHANNELS];
    int npending;
} digest_ctx_t;

static void digest_recorded_cb(tp_store_t *store, redisReply *r, void *arg) {
    (void)store;
    digest_ctx_t *dc = arg;
    tp_deliver_t *self = dc->deliver;
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && !self->closing &&
                       i < r->elements; i++) {
        if (r->element[i]->type != REDIS_REPLY_STRING) continue;
        for (int p = 0; p < dc->npending; p++) {
            pending_t *pd = &dc->pending[p];
            if (strcmp(pd->id, r->element[i]->str) != 0) continue;
            attempt_t *a = calloc(1, sizeof *a);
            if (!a) abort();
            a->deliver = self;
            a->shard = dc->shard;
            snprintf(a->id, sizeof a->id, "%s", pd->id);
            snprintf(a->recipient, sizeof a->recipient, "%s", dc->user);
            snprintf(a->cause, sizeof a->cause, "digest");
            snprintf(a->address, sizeof a->address, "%s", pd->address);
            a->channel = pd->channel;
            attempt_start(self, a, pd->payload, pd->len);
        }
    }
    for (int p = 0; p < dc->npending; p++) free(dc->pending[p].payload);
    free(dc);
}

/* Renders, records and starts the digest of `user` due at `at_text` with
 * its `n` lines. */
static void digest_send(tp_deliver_t *self, const char *user, const char *at_text,
                        redisReply **lines, size_t n) {
    target_t t;
    target_user(self, user, &t);
    int64_t at = atoll(at_text), now = tp_now_ms();
    size_t total = 1;
    for (size_t i = 0; i < n; i++) total += lines[i]->len + 1;
    char *items = calloc(1, total);
    if (!items) abort();
    for (size_t i = 0; i < n; i++) {
        strcat(items, lines[i]->str); /* sized above */
        if (i + 1 < n) strcat(items, "\n");
    }
    tp_local_time_t l;
    tp_calendar_to_local(t.zone, at, &l);
    char date[32], count[16];
    snprintf(date, sizeof date, "%04d-%02d-%02d", l.year, l.month, l.day);
    snprintf(count, sizeof count, "%zu", n);
    json_t *fields = json_pack("{s:s, s:s, s:s, s:s, s:s}", "count", count, "items", items,
                               "recipient", user, "recipient_name", t.name, "date", date);
    free(items);
    digest_ctx_t *dc = calloc(1, sizeof *dc);
    if (!dc) abort();
    dc->deliver = self;
    dc->shard = tp_key_shard(user);
    snprintf(dc->user, sizeof dc->user, "%s", user);
    char *subject = NULL, *text = NULL, *html = NULL, err[300];
    if (!fields || tp_templates_render(self->templates, "reminder.due", "digest", t.lang,
                                       self->fallback_lang, fields, &subject, &text,
                                       &html, err, sizeof err) < 0) {
        tp_log_error("digest of %s: %s", user, fields ? err : "not UTF-8");
    } else {
        for (int c = 0; c < TP_DELIVER_CHANNELS; c++) {
            tp_channel_t *ch = self->channels[c];
            const char *address = t.addresses[c];
            if (!ch || !(t.channels & channel_bits[c]) || !address || !*address) continue;
            pending_t *p = &dc->pending[dc->npending];
            snprintf(p->id, sizeof p->id, "digest:%.20s/%.16s/%.128s", at_text, ch->name,
                     user);
            tp_message_t msg = {.delivery = p->id, .address = address, .recipient = user,
                                .customer = "", .kind = "digest", .lang = t.lang,
                                .subject = subject, .text = text, .html = html,
                                .now_ms = now};
            p->payload = ch->prepare(ch, &msg, &p->len, err, sizeof err);
            if (!p->payload) {
                tp_log_warn("digest of %s: %s skipped: %s", user, ch->name, err);
                continue;
            }
            snprintf(p->address, sizeof p->address, "%s", address);
            p->channel = c;
            dc->npending++;
        }
    }
    free(subject);
    free(text);
    free(html);
    json_decref(fields);

    const char *ns = tp_store_ns(self->store);
    tp_argv_t v;
    tp_argv_init(&v);
    char key[TP_ACTOR_MAX + 64];
    tp_argv_add(&v, self->digest_due_key[dc->shard], (size_t)-1);
    tp_key_user(key, sizeof key, ns, user, "digest");
    tp_argv_addf(&v, "%s", key);
    tp_key_user(key, sizeof key, ns, user, "digest:at");
    tp_argv_addf(&v, "%s", key);
    tp_argv_add(&v, self->due_key[dc->shard], (size_t)-1);
    for (int i = 0; i < dc->npending; i++)
        tp_argv_addf(&v, "%sdelivery:%s", self->shard_prefix[dc->shard], dc->pending[i].id);
    tp_argv_add(&v, at_text, (size_t)-1);
    tp_argv_add_int(&v, (int64_t)n);
    tp_argv_add(&v, user, (size_t)-1);
    tp_argv_add_int(&v, dc->npending);
    tp_argv_add_int(&v, now);
    tp_argv_add_int(&v, now + self->opts.claim_ms);
    tp_argv_add_int(&v, t.digest_min >= 0 ? next_local_minute(t.zone, t.digest_min, now)
                                          : now);
    for (int i = 0; i < dc->npending; i++) {
        pending_t *p = &dc->pending[i];
        tp_argv_add(&v, p->id, (size_t)-1);
        tp_argv_add(&v, channel_names[p->channel], (size_t)-1);
        tp_argv_add(&v, p->address, (size_t)-1);
        tp_argv_add(&v, p->payload, p->len);
    }
    int rc = tp_store_eval(self->store, self->digest_record_script, digest_recorded_cb, dc,
                           4 + dc->npending, (int)v.n, v.v, v.len);
    tp_argv_clear(&v);
    if (rc < 0) digest_recorded_cb(self->store, NULL, dc); /* the claim expires */
}

static void digests_claimed_cb(tp_store_t *store, redisReply *r, void *arg) {
    (void)store;
    tp_deliver_t *self = ((struct shard_arg *)arg)->deliver;
    if (!r || r->type != REDIS_REPLY_ARRAY || self->closing) return;
    for (size_t i = 0; i + 2 < r->elements;) {
        redisReply **f = &r->element[i];
        size_t n = (size_t)atoll(reply_str(f[2]));
        if (i + 3 + n > r->elements) break;
        int ok = f[0]->type == REDIS_REPLY_STRING && f[1]->type == REDIS_REPLY_STRING;
        for (size_t k = 0; k < n; k++) ok &= f[3 + k]->type == REDIS_REPLY_STRING;
        if (ok) digest_send(self, f[0]->str, f[1]->str, &f[3], n);
        i += 3 + n;
    }
}

static void retry_timer_cb(uv_timer_t *t) {
    tp_deliver_t *self = t->data;
    if (self->closing || !tp_store_connected(self->store)) return;
    int64_t now = tp_now_ms();
    for (int shard = 0; shard < TP_SHARDS; shard++) { /* one script per slot */
        tp_argv_t v;
        tp_argv_init(&v);
        tp_argv_add(&v, self->due_key[shard], (size_t)-1);
        tp_argv_add_int(&v, now);
        tp_argv_add_int(&v, now + self->opts.claim_ms);
        tp_argv_add(&v, CLAIM_BATCH, (size_t)-1);
        tp_argv_addf(&v, "%sdelivery:", self->shard_prefix[shard]);
        tp_store_eval(self->store, self->claim_script, claimed_cb, &self->shard_args[shard],
                      1, (int)v.n, v.v, v.len);
        tp_argv_clear(&v);
        tp_argv_init(&v);
        tp_argv_add(&v, self->digest_due_key[shard], (size_t)-1);
        tp_argv_add_int(&v, now);
        tp_argv_add_int(&v, now + self->opts.claim_ms);
        tp_argv_add(&v, "50", 2);
        tp_argv_add(&v, self->shard_prefix[shard], (size_t)-1);
        tp_store_eval(self->store, self->digest_claim_script, digests_claimed_cb,
                      &self->shard_args[shard], 1, (int)v.n, v.v, v.len);
        tp_argv_clear(&v);
    }
}

void tp_deliver_count_in(tp_deliver_t *self, tp_metrics_t *metrics) {
    self->deliveries = tp_metrics_counter(
        metrics, "tp_deliveries_total",
        "Delivery attempts by channel and outcome: sent, retrying (failed, tried again "
        "later), failed (given up) and dead (parked in the dead-letter set: every "
        "failed one).",
        "channel,status");
}

tp_deliver_t *tp_deliver_new(uv_loop_t *loop, tp_store_t *store,
                             tp_emitter_t *emitter,
                             const tp_templates_t *templates,
                             const tp_recipients_t *recipients,
                             tp_channel_t *const channels[TP_DELIVER_CHANNELS],
                             const tp_deliver_options_t *opts) {
    tp_deliver_t *self = calloc(1, sizeof *self);
    if (!self) abort();
    self->store = store;
    self->emitter = emitter;
    self->templates = templates;
    self->recipients = recipients;
    self->opts = *opts;
    for (int c = 0; c < TP_DELIVER_CHANNELS; c++) {
        self->channels[c] = channels[c];
        if (channels[c]) {
            channels[c]->breaker_failures = opts->breaker_failures;
            channels[c]->breaker_cooldown_ms = opts->breaker_cooldown_ms;
        }
    }
    snprintf(self->fallback_lang, sizeof self->fallback_lang, "%s", opts->fallback_lang);
    snprintf(self->customer_lang, sizeof self->customer_lang, "%s", opts->customer_lang);
    snprintf(self->escalate, sizeof self->escalate, "%s", opts->escalate);
    snprintf(self->customer_rules, sizeof self->customer_rules, "%s",
             opts->customer_rules);
    snprintf(self->customer_kinds, sizeof self->customer_kinds, "%s",
             opts->customer_kinds);
    self->opts.customer_kinds = self->customer_kinds;
    self->opts.fallback_lang = self->fallback_lang;
    self->opts.customer_lang = self->customer_lang;
    self->opts.escalate = self->escalate;
    self->opts.customer_rules = self->customer_rules;
    for (int shard = 0; shard < TP_SHARDS; shard++) {
        const char *ns = tp_store_ns(store);
        self->shard_args[shard].deliver = self;
        self->shard_args[shard].shard = shard;
        tp_key_shard_key(self->due_key[shard], sizeof self->due_key[shard], ns, shard,
                         "deliveries:due");
        tp_key_shard_key(self->deadletter_key[shard], sizeof self->deadletter_key[shard], ns,
                         shard, "deadletter");
        tp_key_shard_key(self->digest_due_key[shard], sizeof self->digest_due_key[shard], ns,
                         shard, "digest:due");
        tp_key_shard_key(self->shard_prefix[shard], sizeof self->shard_prefix[shard], ns,
                         shard, "%s", "");
    }
    self->deliver_script = tp_store_script(store, "notifier_deliver", DELIVER_LUA);
    self->result_script = tp_store_script(store, "notifier_result", RESULT_LUA);
    self->claim_script = tp_store_script(store, "notifier_claim", CLAIM_LUA);
    self->digest_claim_script =
        tp_store_script(store, "notifier_digest_claim", DIGEST_CLAIM_LUA);
    self->read_script = tp_store_script(store, "notifier_read", READ_LUA);
    self->digest_record_script =
        tp_store_script(store, "notifier_digest_record", DIGEST_RECORD_LUA);
    if (self->deliver_script < 0 || self->result_script < 0 || self->claim_script < 0 ||
        self->digest_claim_script < 0 || self->digest_record_script < 0 ||
        self->read_script < 0) {
        free(self);
        return NULL;
    }
    uv_timer_init(loop, &self->retry_timer);
    self->retry_timer.data = self;
    uv_timer_start(&self->retry_timer, retry_timer_cb,
                   (uint64_t)self->opts.retry_poll_ms,
                   (uint64_t)self->opts.retry_poll_ms);
    return self;
}

void tp_deliver_shutdown(tp_deliver_t *self) {
    if (self) self->closing = 1;
}

static void retry_close_cb(uv_handle_t *h) { free(h->data); }

void tp_deliver_destroy(tp_deliver_t **self_p) {
    tp_deliver_t *self = self_p ? *self_p : NULL;
    if (!self) return;
    *self_p = NULL;
    self->closing = 1;
    uv_close((uv_handle_t *)&self->retry_timer, retry_close_cb);
}
