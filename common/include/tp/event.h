/* event.h: the event envelope in memory, its validation against proto/, and
 * its two wire forms: JSON (HTTP) and msgpack (the bus and the journal).
 *
 * Owns each event's `data` and unknown envelope fields (jansson trees).
 * Never trusts its input: every string is checked as UTF-8 with a length
 * limit, every msgpack count and nesting depth is bounded by the bytes
 * actually present before anything is allocated, and a rejected event names
 * the offending field ("data.contact.email"). */
#ifndef TP_EVENT_H
#define TP_EVENT_H

#include <jansson.h>
#include <msgpack.h>
#include <stdint.h>

#include "tp/proto.h"

/* Nesting deeper than this (maps and arrays) is rejected. */
#define TP_EVENT_DEPTH_MAX 8

typedef struct tp_event {
    int v;                              /* schema version, TP_PROTO_VERSION */
    char id[TP_ID_MAX + 1];             /* "" until intake assigns one */
    tp_event_type_t type;
    int64_t ts;                         /* occurrence, ms since epoch, UTC */
    char src[TP_SRC_MAX + 1];
    char customer[TP_CUSTOMER_MAX + 1]; /* "" until intake resolves it */
    char actor[TP_ACTOR_MAX + 1];       /* "" when absent */
    json_t *data;  /* owned; a JSON object, validated against the type */
    json_t *extra; /* owned; unknown envelope fields, kept; may be NULL */
} tp_event_t;

typedef struct tp_event_error {
    char field[96];    /* "data.contact.email", "type", "" for the body */
    char message[160]; /* "must be a string of at most 254 bytes" */
} tp_event_error_t;

/* Zeroes `ev` (no allocation). */
void tp_event_init(tp_event_t *ev);
/* Frees what `ev` owns and zeroes it. Safe twice. */
void tp_event_clear(tp_event_t *ev);

/* Validates the JSON object `obj` and fills `ev` (which must be init'ed or
 * cleared). `id` and `customer` may be missing (intake fills them); every
 * other required field must be present and well formed. Returns 0, or -1
 * with `err` filled and `ev` cleared. `obj` is borrowed. */
int tp_event_from_json(tp_event_t *ev, const json_t *obj, tp_event_error_t *err);

/* Decodes and validates one msgpack envelope of `len` bytes, as
 * tp_event_from_json does. Bounded: rejects before allocating when a header
 * claims more elements or bytes than `len` holds, or nesting goes deeper
 * than TP_EVENT_DEPTH_MAX. Returns 0 or -1 (err filled, ev cleared). */
int tp_event_from_msgpack(tp_event_t *ev, const char *buf, size_t len,
                          tp_event_error_t *err);

/* Appends the msgpack envelope of `ev` to `out` (a map: v, id, type, ts,
 * src, customer, [actor], data, then the extra fields). Returns 0 or -1. */
int tp_event_pack(const tp_event_t *ev, msgpack_sbuffer *out);

/* The JSON form of `ev`. Caller owns the result. */
json_t *tp_event_to_json(const tp_event_t *ev);

/* Deep-copies `src` into `dst` (init'ed or cleared). */
void tp_event_copy(tp_event_t *dst, const tp_event_t *src);

/* Accessors over `data`, by dotted path ("contact.phone"). Borrowed / by
 * value; `def` when absent or of another kind. */
const char *tp_event_str(const tp_event_t *ev, const char *path);
int64_t tp_event_int(const tp_event_t *ev, const char *path, int64_t def);
int tp_event_bool(const tp_event_t *ev, const char *path, int def);

/* Checks a JSON value for `data` of `type` (used by from_json/msgpack, and
 * by services building derived events). Returns 0 or -1 with err. */
int tp_event_validate_data(tp_event_type_t type, const json_t *data,
                           tp_event_error_t *err);

/* 1 when `s` (len bytes) is valid UTF-8 without NUL bytes, else 0. */
int tp_utf8_valid(const char *s, size_t len);

#endif
