/* deadletter.h: the notifier's dead deliveries, for operators' tools.
 *
 * Dead deliveries are kept per shard ({s<n>}:deadletter, id -> failed at
 * ms; the record is {s<n>}:delivery:<id>, tp/keys.h). These calls read and
 * replay them over a blocking hiredis connection (a tool's, never a
 * service's loop): the listing asks every shard and merges, a replay finds
 * the shard holding the id. Whichever tool calls them (tpctl deadletter)
 * sees the same thing. Never returns message bodies or
 * addresses. */
#ifndef TP_DEADLETTER_H
#define TP_DEADLETTER_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

typedef struct tp_deadletter_entry {
    const char *id;         /* "<event>/<channel>/<recipient>" */
    const char *channel;    /* "" when the record is gone */
    const char *recipient;
    const char *attempts;
    const char *last_error;
    int64_t failed_at;      /* ms since the epoch */
    int shard;
} tp_deadletter_entry_t;

/* Called once per dead delivery, oldest failure first; the entry is
 * borrowed until it returns. */
typedef void (*tp_deadletter_entry_cb)(const tp_deadletter_entry_t *entry, void *arg);

/* Lists the dead deliveries under namespace `ns`. Returns how many, or -1
 * with the reason in `err` (a Redis error; nothing listed). */
long tp_deadletter_list(redisContext *c, const char *ns, tp_deadletter_entry_cb cb,
                        void *arg, char *err, size_t errlen);

/* Puts dead delivery `id` back in its shard's queue with its attempts
 * reset, atomically and only when it is still dead (replaying twice sends
 * once; the notifier sends the stored payload under the same id).
 * Returns 1 replayed, 0 not dead (or unknown), -1 a Redis error in `err`. */
int tp_deadletter_replay(redisContext *c, const char *ns, const char *id, char *err,
                         size_t errlen);

#endif
