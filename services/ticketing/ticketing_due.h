/* ticketing_due.h: a watch over one per-shard zset of times that fall due
 * ("<ns>{s<n>}:<name>", members "<customer>|<ticket>|...", scored by when
 * they fall due), the shape both SLA modules share: every interval, per
 * shard (one script per slot), the members whose time has passed (at most
 * 200 a shard and turn), each with chosen fields of its ticket's hash,
 * handed to the owner, who claims each in a script of its own (removing
 * the member first, so any number of instances take it once). A member
 * that names no customer of its shard is dropped with an error logged.
 * Owns its timer and keys; reads only. */
#ifndef TICKETING_DUE_H
#define TICKETING_DUE_H

#include <hiredis/hiredis.h>
#include <stdint.h>
#include <uv.h>

#include "tp/keys.h"
#include "tp/store.h"

typedef struct tp_due_watch tp_due_watch_t;

/* One member due: its shard, the member and its parts (customer, ticket,
 * the rest after the second '|'), when it fell due, and the ticket's
 * fields in the order asked for ("" when unset). All borrowed until the
 * callback returns. */
typedef struct tp_due_item {
    int shard;
    const char *member;
    const char *customer, *ticket, *rest;
    int64_t when;
    const char *const *fields;
} tp_due_item_t;
typedef void (*tp_due_cb)(void *arg, const tp_due_item_t *item);

#define TP_DUE_FIELDS_MAX 8

/* Watches "<ns>{s<n>}:<name>" in every shard every `interval_ms` (<= 0:
 * 1 s). `fields` (at most TP_DUE_FIELDS_MAX, copied) are read from each
 * member's ticket. `store` borrowed, `arg` borrowed for `due`. Caller owns
 * the result; NULL on failure. */
tp_due_watch_t *tp_due_watch_new(uv_loop_t *loop, tp_store_t *store, const char *name,
                                 const char *const *fields, int nfields, int64_t interval_ms,
                                 tp_due_cb due, void *arg);
/* Nothing is handed over after this (scans still owed by Redis end
 * without calling `due`), so the owner may free `arg` at once. Run the
 * loop afterwards (the watch is freed once its timer is closed and its
 * scans answered). */
void tp_due_watch_destroy(tp_due_watch_t **self_p);

/* The watched key of `shard`, and the shard's key prefix ("<ns>{s<n>}:").
 * Borrowed. */
const char *tp_due_watch_key(const tp_due_watch_t *self, int shard);
const char *tp_due_watch_prefix(const tp_due_watch_t *self, int shard);

#endif
