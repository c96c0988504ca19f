/* reminder.h: the stored form of a reminder's record.
 *
 * A pending reminder's record (what the scheduler planned: owner, due time,
 * urgency, when its cause happened, text, what closes it, and a recurring
 * one's RRULE and occurrence) is kept in Redis as a msgpack array in a
 * fixed field order (TP_REMINDER_FIELD_MAP), without field names and with
 * absent trailing fields left out; its rule is not stored, the reminder's
 * id "<customer>|<rule>[|<subject>]" gives it. The second form (written
 * today) starts with the integer 2 and stores frequent values as small
 * codes (owner "unassigned", closed_by "contact"/"inbound", the scheduler's
 * fixed texts: common/src/reminder.c) and cause_ts as due_at - cause_ts
 * when due_at is there; the first form (owner first) still reads. An
 * inquiry's record is 20-30 bytes where its JSON takes ~150, which counts
 * at a million pending reminders.
 * In memory it is a JSON object with the names below and "rule" (the
 * scheduler's rules, intake's queries and the API read it so). Owns
 * nothing; pure functions, any thread. */
#ifndef TP_REMINDER_H
#define TP_REMINDER_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* XX(name, kind): kind s string, i integer, b boolean; the order is the
 * stored order and never changes (add new fields at the end). */
#define TP_REMINDER_FIELD_MAP(XX)                                             \
    XX(owner, s)                                                              \
    XX(due_at, i)                                                             \
    XX(urgent, b)                                                             \
    XX(cause_ts, i)                                                           \
    XX(text, s)                                                               \
    XX(closed_by, s)                                                          \
    XX(agreed, b)                                                             \
    XX(rrule, s)                                                              \
    XX(dtstart, i)                                                            \
    XX(occurrence, i)                                                         \
    XX(ahead, i)                                                              \
    XX(until, i)

/* Packs `record` (borrowed; fields not in the map, "rule" among them, are
 * not stored, a field of the wrong kind is stored as absent). Returns the bytes (caller frees)
 * and their count in *len, or NULL when `record` is not an object. */
char *tp_reminder_pack(const json_t *record, size_t *len);

/* The record of reminder `id` stored as `len` bytes at `bytes`: the packed
 * form above, or JSON (records written before the packed form), with
 * "rule" from `id` (when `id` names one and the bytes do not). Caller owns
 * the result; NULL when the bytes are neither. */
json_t *tp_reminder_unpack(const char *id, const char *bytes, size_t len);

/* A customer's book: the field "<customer>" of its group hash
 * {s<n>}:r:c:<g> (tp/keys.h), the scheduler's whole knowledge of the
 * customer in one value: what its rules need to know (string fields:
 * grade, owner, tier, ...) and its open reminders. Stored as the msgpack
 * array [3, {state}, reminder, ...], each reminder its record's fields as
 * above, after its key "<rule>[|<subject>]" (its id without "<customer>|";
 * the scheduler's rules as small codes: [code, subject] or code) in place
 * of the form number; state names and reminders in byte order,
 * so that one book has one stored form (the applies compare it whole). One
 * value per customer stores the customer's id once, where a field per
 * reminder stored it again in each. */

/* Packs customer `customer`'s `state` (object; its string fields are
 * stored) and `reminders` (object: id "<customer>|<key>" -> record; all
 * borrowed). Returns the bytes (caller frees) and their count in *len, or
 * NULL when an id is not of `customer`, a record is not an object or a
 * state name is 64 bytes or longer. */
char *tp_book_pack(const char *customer, const json_t *state, const json_t *reminders,
                   size_t *len);

/* The book of `customer` stored as `len` bytes at `bytes` (len 0: none
 * stored, an empty book) into *state and *reminders (id -> record with
 * "rule"; caller owns both). Returns 0, or -1 when the bytes are not a
 * book (both NULL then). */
int tp_book_unpack(const char *customer, const char *bytes, size_t len, json_t **state,
                   json_t **reminders);

/* Calls `cb` with each reminder's id and due time (0: none) of the book of
 * `customer` stored as `len` bytes, without unpacking its records (the
 * scheduler's poll arms thousands a second). Returns the number of
 * reminders, or -1 when the bytes are not a book (`cb` may have been
 * called for some). */
typedef void (*tp_book_due_cb)(const char *id, int64_t due_ms, void *arg);
int tp_book_dues(const char *customer, const char *bytes, size_t len, tp_book_due_cb cb,
                 void *arg);

/* The earliest due time among `reminders` (id -> record; of `owner` only,
 * "unassigned" matching a record without one, unless NULL; a record
 * without a due time counts for none), 0 when none. */
int64_t tp_book_earliest(const json_t *reminders, const char *owner);

/* The owners whose entry in their index of reminders changes from
 * `before` to `after` (both id -> record; borrowed): an object owner -> the
 * new score, tp_key_due_score of that owner's earliest due time in `after`
 * (0: the customer leaves that owner's index). Caller owns. */
json_t *tp_book_owner_moves(const json_t *before, const json_t *after);

#endif
