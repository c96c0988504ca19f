/* keys.h: the Redis key layout, in one place.
 *
 * Every key starts with the namespace (config [redis] namespace, default
 * "tp:"). The layout is safe for Redis Cluster (issue 8): every Lua script
 * touches keys of one hash tag only, so one slot.
 *
 * Shards. Customers and users are spread over TP_SHARDS shards by
 * tp_key_shard(id); shard n is the hash tag {s<n>}. A customer's keys and a
 * user's keys live under the tag of their shard, and so does every index a
 * customer's (user's) script writes: the shard's own outbox, ticket
 * indexes, SLA queues, pipeline ranking, at-risk list, deliveries. An
 * effect of one event is therefore one script on one node; readers of an
 * index (intake's queries, the sweeps, tools) ask each of the TP_SHARDS
 * shards and merge in C. Build keys with the functions below, never with
 * format strings in services. Scripts take every key they touch as KEYS;
 * one that builds a key inside Lua builds it under the tag of its KEYS.
 *
 * Journal and global singletons ({j} and untagged keys are each written
 * alone, or only together with keys of their own tag):
 *   {j}:journal                stream: every accepted event (fields t, e)
 *   {j}:id:<event>             string: journal id of an accepted event id
 *   {j}:phone, {j}:email       hash: normalised number / address -> customer
 *                              (written by intake's journal script; scoring's
 *                              merge writes them alone, before its apply)
 *   {j}:ticket                 hash: ticket id -> customer (intake's journal
 *                              script for a ticket.opened with a ticket id;
 *                              ticketing writes it alone, before its apply,
 *                              for the ids it assigns)
 *   cursor:<svc>               string: last journal id reconciled by svc
 *   lease:<svc>:reconcile      string: instance holding the reconcile lease
 *                              (lease and cursor are two slots: taken, read
 *                              and set one after the other, consumer.c)
 *   outbox:<svc>               zset: derived events not yet acked by intake
 *                              (the old, unsharded outbox: still swept for
 *                              one release; the scheduler writes it today)
 *   stats:<svc>                hash: counters across instances
 *   heartbeat:<svc>            hash: instance -> its last beat (JSON,
 *                              tp/heartbeat.h); removed on a clean stop,
 *                              read by `tpctl status`
 *   replay:<mac>               string: a signed request intake has seen
 *                              (expires after twice the replay window)
 *   ticketing:turn             hash: department -> round-robin counter
 *   ticketing:away             set: agents not assigned new tickets
 *
 * Per shard ({s<n>}: n = tp_key_shard(customer or user)):
 *   {s<n>}:outbox:<svc>        zset: derived events not yet acked by intake
 *                              (tp_emitter_outbox_of)
 *   {s<n>}:c:<cust>:profile    hash: the shared customer record (fields:
 *                              services/scoring/scoring_record.c; read by
 *                              services/intake/intake_query.c)
 *   {s<n>}:c:<cust>:timeline   stream (capped): every contact and effect
 *   {s<n>}:c:<cust>:done:<svc>:<ev>  string: svc applied event ev (expires)
 *   {s<n>}:c:<cust>:deals      set: the customer's deal (opportunity) ids
 *   {s<n>}:c:<cust>:deal:<id>  hash: one deal: name, amount, currency,
 *                              stage, probability ("" = stage default),
 *                              expected_close, owner, team, status
 *                              (open|won|lost), reason, stage_since,
 *                              expected_value, created_at, closed_at
 *   {s<n>}:c:<cust>:complaints set: open complaint ticket ids (R-HEALTH-1)
 *   {s<n>}:c:<cust>:overdue    set: ticket ids past an SLA deadline, open
 *   {s<n>}:c:<cust>:scores     list: satisfaction scores, newest first
 *   {s<n>}:pipeline:owner:<user>  zset: "<cust>|<deal>" -> expected value,
 *                              open deals of the shard's customers
 *   {s<n>}:pipeline:team:<team>   zset: the same per team
 *   {s<n>}:at_risk             zset: customer -> health, customers at risk
 *   {s<n>}:health:watch        zset: customer -> next health check (ms)
 *   {s<n>}:c:<cust>:tickets    hash: open ticket id -> summary (JSON)
 *   {s<n>}:c:<cust>:ticket:<id>  hash: one ticket (fields: services/
 *                              ticketing/ticketing_ticket.c; esc_<target>_
 *                              <step> and breached_<target> mark what went
 *                              out once)
 *   {s<n>}:c:<cust>:ticket:<id>:history  list: the ticket's history (JSON)
 *   {s<n>}:c:<cust>:ticket_ids zset: every ticket id of the customer -> opened
 *   {s<n>}:c:<cust>:threads    hash: email Message-ID -> ticket id
 *   {s<n>}:tickets:all         zset: "<cust>|<ticket>" -> opened
 *   {s<n>}:tickets:status:<status>  zset: the same per status
 *   {s<n>}:tickets:department:<dept>  zset: the same per department
 *   {s<n>}:tickets:owner:<user>  zset: the same per owning agent
 *   {s<n>}:tickets:open:<user> zset: an agent's open tickets (assignment
 *                              load: summed over the shards)
 *   {s<n>}:tickets:breached    zset: "<cust>|<ticket>" -> first breach (ms)
 *   {s<n>}:sla:due             zset: "<cust>|<ticket>|<target>" -> deadline
 *   {s<n>}:sla:escalate        zset: "<cust>|<ticket>|<target>|<step>" -> due
 *   {s<n>}:ticket:autoclose    zset: "<cust>|<ticket>|<resolved ms>" -> due
 *   {s<n>}:c:<cust>:contact_cap:<n>  string: customer-facing messages in cap
 *                              window n (R-CAD-3; expires with the window)
 *   {s<n>}:u:<user>:inbox      list: in-app notifications (JSON), newest
 *                              first
 *   {s<n>}:u:<user>:done:notifier:<ev>  string: notifier applied event ev
 *                              (its owner's part: the consumer's done mark)
 *   {s<n>}:done:notifier:<ev>  string: the notifier recorded its part of ev
 *                              in shard n (an event reaching people of
 *                              several shards: one script per shard)
 *   {s<n>}:u:<user>:digest     list: lines waiting for the user's digest
 *   {s<n>}:u:<user>:digest:at  string: when that digest is due (ms; its id)
 *   {s<n>}:digest:due          zset: user -> digest due ms (or claim end)
 *   {s<n>}:delivery:<id>       hash: one outbound delivery (id
 *                              "<event>/<channel>/<recipient>"): status
 *                              (sending|sent|failed|capped), channel,
 *                              address, body (the payload sent on every
 *                              attempt), customer, recipient, cause,
 *                              attempts, last_error, created_at, settled_at,
 *                              replayed_at
 *   {s<n>}:deliveries:due      zset: delivery id -> next attempt ms (or the
 *                              end of a claim, or of the quiet hours)
 *   {s<n>}:deadletter          zset: delivery id -> failed at ms; listed
 *                              and replayed by common/src/deadletter.c
 *
 * Scheduler (services/scheduler; n = tp_key_shard(customer)):
 *   (every score of the three indexes below is a due time in whole seconds,
 *   tp_key_due_score; the books hold the exact times)
 *   {s<n>}:r:due               zset: reminder group g -> a lower bound of the
 *                              earliest due time in {s<n>}:r:due:<g> (exact
 *                              after every firing and poll; a plan lowers it
 *                              with ZADD LT, a close leaves it low)
 *   {s<n>}:r:due:<g>           zset: customer -> the earliest due time of its
 *                              open reminders, the customers of group g =
 *                              tp_key_reminder_group(customer) that have one
 *                              (a few dozen at a million pending: listpack)
 *   {s<n>}:r:owner:<p>:<user>  zset: customer -> the earliest due time of its
 *                              open reminders owned by user, part p =
 *                              tp_key_reminder_owner_part(customer), so that
 *                              a person's index stays a listpack at a
 *                              million pending; the query merges the
 *                              TP_SHARDS x TP_OWNER_PARTS
 *   {s<n>}:r:c:<g>             hash: the scheduler's customers of group g:
 *                              "<cust>" -> its book (tp/reminder.h
 *                              tp_book_*: what the rules know of the
 *                              customer and its open reminders, packed; the
 *                              applies and claims compare it whole); a few
 *                              dozen customers a hash at a million pending:
 *                              one listpack
 *   {s<n>}:r:count             hash: pending -> reminders pending in shard n
 *   {s<n>}:r:stats             hash: fired, late -> the shard's firings
 *   {s<n>}:done:scheduler:<h>:<g>  hash: the event id's digest -> 1, the
 *                              scheduler applied it; h its hour (ts / 1 h),
 *                              g its digest's group (tp_consumer_done_mark);
 *                              expires done_ttl after the last (tp/consumer.h
 *                              done_grouped)
 *   {s<n>}:outbox:scheduler    the shard's outbox, as every service's
 */
#ifndef TP_KEYS_H
#define TP_KEYS_H

#include <stddef.h>
#include <stdint.h>

/* The number of shards (hash tags {s0} .. {s15}). Changing it moves every
 * customer's and user's keys: it is part of the stored layout. */
#define TP_SHARDS 16
/* The scheduler's buckets are the shards (same hash, same n). */
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

/* The shard of a customer or user id, 0 .. TP_SHARDS-1 (FNV-1a of the id:
 * stable across builds and machines). */
int tp_key_shard(const char *id);
/* The reminder bucket of `customer`: its shard (kept for the scheduler). */
int tp_key_reminder_bucket(const char *customer);

/* "<ns>{s<n>}:" followed by the printf-style rest, n = `shard`: a shard's
 * own index (outbox, sla:due, deliveries:due, ...). Returns the length, or
 * -1 when it does not fit or the shard is out of range. */
int tp_key_shard_key(char *out, size_t outlen, const char *ns, int shard,
                     const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* "<ns>{s<n>}:c:<customer>:" followed by the rest, n its shard: one of the
 * customer's keys (rest "profile", "ticket:T-1", ...). An empty rest gives
 * the prefix of them all. Returns the length or -1. */
int tp_key_customer(char *out, size_t outlen, const char *ns,
                    const char *customer, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* "<ns>{s<n>}:u:<user>:" followed by the rest: one of a user's keys. */
int tp_key_user(char *out, size_t outlen, const char *ns, const char *user,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* The consumer tag of a customer's or user's events (tp/consumer.h):
 * "{s<n>}:c:<customer>" / "{s<n>}:u:<user>", without the namespace: done
 * marks go under it in the right shard, and events of one customer (user)
 * are applied in turn. Returns the length or -1. */
int tp_key_customer_tag(char *out, size_t outlen, const char *customer);
int tp_key_user_tag(char *out, size_t outlen, const char *user);

/* The reminder group of `customer` within its shard, 0 ..
 * TP_REMINDER_GROUPS-1 (independent of the shard). */
int tp_key_reminder_group(const char *customer);
/* The score of due time `due_ms` in the scheduler's indexes ({s<n>}:r:due,
 * r:due:<g>, r:owner:...): whole seconds, which a listpack stores in 4
 * bytes where milliseconds take 8; the books hold the exact time. */
int64_t tp_key_due_score(int64_t due_ms);
/* The part of a person's index in a shard that holds `customer`'s
 * reminders, 0 .. TP_OWNER_PARTS-1. */
int tp_key_reminder_owner_part(const char *customer);

/* A reminder's id is "<customer>|<rule>[|<subject>]", kept in its
 * customer's book (field "<customer>" of {s<n>}:r:c:<g>, tp/reminder.h). */
/* The customer of `reminder` into `out`. Returns its length, or -1 when
 * `reminder` names none or it does not fit. */
int tp_key_reminder_customer(char *out, size_t outlen, const char *reminder);

#endif
