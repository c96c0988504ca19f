/* keys.h: the Redis key layout, in one place.
 *
 * Every key starts with the namespace (config [redis] namespace, default
 * "tp:"). Keys of one customer share the hash tag {c:<customer>} so one
 * customer's update is one script on one node; the scheduler's keys are
 * split into TP_SHARDS shards by customer (tp_key_shard), each its own tag
 * {s<n>}, under {s<n>}:r:. Every scheduler script touches one shard's keys
 * only (the outbox and stats:scheduler aside, see below).
 *
 *   {j}:journal                stream: every accepted event (fields t, e)
 *   {j}:id:<event>             string: journal id of an accepted event id
 *   {j}:phone, {j}:email       hash: normalised number / address -> customer
 *   {j}:ticket                 hash: ticket id -> customer
 *   cursor:<svc>               string: last journal id reconciled by svc
 *   lease:<svc>:reconcile      string: instance holding the reconcile lease
 *   outbox:<svc>               zset: derived events not yet acked by intake
 *   heartbeat:<svc>            hash: instance -> its last beat (JSON, tp/heartbeat.h);
 *                              removed on a clean stop, read by `tpctl status`
 *   {c:<cust>}:profile         hash: the shared customer record (fields:
 *                              services/scoring/scoring_record.c; read by
 *                              services/intake/intake_query.c)
 *   {c:<cust>}:timeline        stream (capped): every contact and effect
 *   {c:<cust>}:done:<svc>:<ev> string: svc applied event ev (expires)
 *   {c:<cust>}:deals           set: the customer's deal (opportunity) ids
 *   {c:<cust>}:deal:<id>       hash: one deal: name, amount, currency, stage,
 *                              probability ("" = stage default), expected_close,
 *                              owner, team, status (open|won|lost), reason,
 *                              stage_since, expected_value, created_at,
 *                              closed_at
 *   {c:<cust>}:complaints      set: open complaint ticket ids (R-HEALTH-1)
 *   {c:<cust>}:overdue         set: ticket ids past an SLA deadline, open
 *   {c:<cust>}:scores          list: satisfaction scores, newest first
 *   pipeline:owner:<user>      zset: "<cust>|<deal>" -> expected value, open deals
 *   pipeline:team:<team>       zset: the same per team
 *   at_risk                    zset: customer -> health, customers at risk
 *   health:watch               zset: customer -> next health check (ms)
 *   {c:<cust>}:tickets         hash: open ticket id -> summary (JSON)
 *   {c:<cust>}:ticket:<id>     hash: one ticket (fields: services/ticketing/
 *                              ticketing_ticket.c; esc_<target>_<step> and
 *                              breached_<target> mark what went out once)
 *   {c:<cust>}:ticket:<id>:history  list: the ticket's history (JSON)
 *   {c:<cust>}:ticket_ids      zset: every ticket id of the customer -> opened
 *   {c:<cust>}:threads         hash: email Message-ID -> ticket id
 *   tickets:all                zset: "<cust>|<ticket>" -> opened, every ticket
 *   tickets:status:<status>    zset: the same per status
 *   tickets:department:<dept>  zset: the same per department
 *   tickets:owner:<user>       zset: the same per owning agent
 *   tickets:open:<user>        zset: an agent's open tickets (assignment load)
 *   tickets:breached           zset: "<cust>|<ticket>" -> first breach (ms)
 *   ticketing:turn             hash: department -> round-robin counter (taken
 *                              by ticketing's read, so instances differ)
 *   ticketing:away             set: agents not assigned new tickets
 *   sla:escalate               zset: "<cust>|<ticket>|<target>|<step>" -> due
 *   ticket:autoclose           zset: "<cust>|<ticket>|<resolved ms>" -> due
 *   {s<n>}:r:due               zset: reminder group g -> a lower bound of the
 *                              earliest due time in {s<n>}:r:due:<g> (exact
 *                              after every firing and poll; a plan lowers it
 *                              with ZADD LT, a close leaves it low)
 *   {s<n>}:r:due:<g>           zset: reminder id -> due ms, the reminders of
 *                              group g = tp_key_reminder_group(customer) (a
 *                              few dozen at a million pending: listpack)
 *   {s<n>}:r:owner:<p>:<user>  zset: reminder id -> due, a person's reminders
 *                              in shard n, part p = tp_key_reminder_owner_part
 *                              (customer), so that a person's index stays a
 *                              listpack at a million pending; the query
 *                              merges the TP_SHARDS x TP_OWNER_PARTS
 *   {s<n>}:r:c:<g>             hash: the scheduler's customers of group g:
 *                              "<cust>" -> what it knows of the customer
 *                              (JSON, with the version "ver" every apply is
 *                              guarded by), and each open reminder
 *                              "<cust>|<rest>" -> its record (msgpack,
 *                              tp/reminder.h); a few dozen customers a hash
 *                              at a million pending: one listpack
 *   {s<n>}:r:count             hash: pending -> reminders pending in shard n
 *   {s<n>}:done:scheduler:<h>:<g>  hash: event id -> 1, the scheduler applied
 *                              it; h its hour (ts / 1 h), g its id's hash mod
 *                              TP_DONE_GROUPS; expires done_ttl after the
 *                              last (tp/consumer.h done_grouped)
 *   stats:<svc>                hash: counters across instances (fired, ...)
 *   replay:<mac>               string: a signed request intake has seen (expires
 *                              after twice the replay window)
 *   sla:due                    zset: "<cust>|<ticket>|<target>" -> deadline
 *   {u:<user>}:inbox           list: in-app notifications (JSON), newest first
 *   {u:<user>}:done:notifier:<ev> string: notifier applied event ev
 *   delivery:<id>              hash: one outbound delivery (id
 *                              "<event>/<channel>/<recipient>"): status
 *                              (sending|sent|failed|capped), channel, address,
 *                              body (the payload sent on every attempt),
 *                              customer, recipient, cause, attempts,
 *                              last_error, created_at, settled_at, replayed_at
 *   deliveries:due             zset: delivery id -> next attempt ms (or the
 *                              end of a claim, or of the quiet hours)
 *   deadletter                 zset: delivery id -> failed at ms; replayed by
 *                              `tpctl deadletter`
 *   {u:<user>}:digest          list: lines waiting for the user's digest
 *   {u:<user>}:digest:at       string: when that digest is due (ms; its id)
 *   digest:due                 zset: user -> digest due ms (or claim end)
 *   {c:<cust>}:contact_cap:<n> string: customer-facing messages in cap window
 *                              n (R-CAD-3; expires with the window)
 *
 * Known gap for Redis Cluster (issue 8): the outbox, sla:due, delivery,
 * pipeline, at_risk and health:watch keys are written in the same script as customer
 * keys; so are ticketing's tickets:*, sla:escalate, ticket:autoclose and
 * {j}:ticket, and intake's ticket queries read customer keys from one
 * script; the scheduler's firing script writes its outbox and
 * stats:scheduler with a shard's keys. */
#ifndef TP_KEYS_H
#define TP_KEYS_H

#include <stddef.h>

#define TP_SHARDS 16
/* The scheduler's buckets are the shards. */
#define TP_REMINDER_BUCKETS TP_SHARDS
/* Reminder groups per shard: each group's due index {s<n>}:r:due:<g> stays
 * a small listpack-encoded zset up to a few million pending reminders
 * (deploy/redis.conf's zset-max-listpack-entries). */
#define TP_REMINDER_GROUPS 1024
/* Parts of a person's reminder index per shard. */
#define TP_OWNER_PARTS 8

/* Formats `ns` followed by the printf-style rest into `out`. Returns the
 * length, or -1 when it does not fit (keys are bounded by the id limits). */
int tp_key(char *out, size_t outlen, const char *ns, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The shard of `id` (a customer), 0 .. TP_SHARDS-1: its keys' tag {s<n>}. */
int tp_key_shard(const char *id);
/* The reminder bucket of `customer`: its shard. */
int tp_key_reminder_bucket(const char *customer);
/* The reminder group of `customer` within its shard, 0 ..
 * TP_REMINDER_GROUPS-1 (independent of the shard). */
int tp_key_reminder_group(const char *customer);
/* The part of a person's index in a shard that holds `customer`'s
 * reminders, 0 .. TP_OWNER_PARTS-1. */
int tp_key_reminder_owner_part(const char *customer);

/* A reminder is "<customer>|<rest>", a field of its customer's group hash
 * {s<n>}:r:c:<g> (its record, tp/reminder.h), beside the customer's state
 * (field "<customer>"). */
/* The customer of `reminder` into `out`. Returns its length, or -1 when
 * `reminder` names none or it does not fit. */
int tp_key_reminder_customer(char *out, size_t outlen, const char *reminder);

#endif
