/* intake_reply.h: what every query of intake answers with: JSON answers
 * and errors, the checks of ids and names in paths and parameters, and the
 * conversions of stored replies (hashes, numbers, stream entries, a
 * customer's book of reminders) into JSON. Shared by the query modules
 * (intake_query.c, intake_timeline.c, intake_lists.c, intake_reminders.c,
 * intake_tickets.c); owns nothing, keeps no state. */
#ifndef INTAKE_REPLY_H
#define INTAKE_REPLY_H

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "tp/http.h"

/* Most rows one list answer carries (pipeline, at-risk list). */
#define TP_QUERY_LIST_MAX 500

/* Answers `o` (taken) as JSON. */
void tp_query_respond(tp_http_request_t *req, int status, json_t *o);
/* Answers {"error": message, "field": field}; field NULL: left out. */
void tp_query_error(tp_http_request_t *req, int status, const char *message,
                    const char *field);
/* 503: the store did not answer (reply NULL or an error reply). */
void tp_query_unavailable(tp_http_request_t *req);

/* A customer id as the schema allows it in keys (A-Z a-z 0-9 . _ : @ + -,
 * 1 to TP_CUSTOMER_MAX bytes). */
int tp_query_id_ok(const char *s);
/* A name that keys a list (owner, team): 1 to `max` bytes of valid UTF-8
 * without control characters. */
int tp_query_name_ok(const char *s, size_t max);

/* A flat field/value array reply (HGETALL, a stream entry's fields) as an
 * object of strings. */
json_t *tp_query_hash(const redisReply *r);
/* Stored text as a JSON number: an integer when it is one, else a finite
 * decimal; NULL when it is neither (or absent: r NULL / not a string). */
json_t *tp_query_number(const char *s, size_t len);
json_t *tp_query_reply_number(const redisReply *r);
/* The string member `key` of `o` as a number, else null. */
json_t *tp_query_field_number(const json_t *o, const char *key);
/* The string member `key` of `o` (a new reference), else null. */
json_t *tp_query_field_string(const json_t *o, const char *key);
/* One stream entry [id, [field, value, ...]] as its fields plus "at" (the
 * stream id); NULL when the reply is not shaped like one. */
json_t *tp_query_stream_entry(const redisReply *entry);
/* The open reminders of `customer` in its book (`len` bytes at `book`:
 * the field "<customer>" of its group hash, tp/reminder.h tp_book_*), as
 * answered: each its record with its id and customer, which the book keeps
 * out of the records. With `owner` (not NULL): only the reminders of
 * `owner` ("unassigned" matching a record without one) due at or before
 * `due_before`; with NULL, all of them. Appended to `items` (borrowed) in
 * the book's order (by id). Returns 0, or -1 when the bytes are not a book
 * (nothing appended); the one decoding path of the customer's record and
 * of a person's reminders. */
int tp_query_book_reminders(const char *customer, const char *book, size_t len,
                            const char *owner, int64_t due_before, json_t *items);

#endif
