/* tpctl_table.h: tpctl's plain output, for people: rows of JSON objects
 * printed as aligned columns (two spaces apart, the last column not
 * padded), times as UTC, ages and durations as "4s", "3m12s", "2h05m",
 * "4d03h"; and the time arguments operators type.
 *
 * Pure: no clock (callers pass `now`), no I/O but the FILE given. Owns
 * nothing beyond one call. */
#ifndef TPCTL_TABLE_H
#define TPCTL_TABLE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum {
    TP_COLUMN_TEXT, /* a string, number or bool as is */
    TP_COLUMN_TIME, /* ms since the epoch -> 2026-12-03T17:45:02Z */
    TP_COLUMN_AGE,  /* ms since the epoch -> how long ago, "12s" */
    TP_COLUMN_MS,   /* a duration in ms -> "1m05s" */
    TP_COLUMN_UNTIL, /* ms since the epoch -> "in 2h05m" or "3m12s ago" */
} tp_column_kind_t;

typedef struct tp_column {
    const char *header; /* "APPLIED" */
    const char *path;   /* key in the row, "sla.resolution.state" for nested */
    tp_column_kind_t kind;
} tp_column_t;

/* Prints the header line and one line per object of `rows`; a missing or
 * null value prints "-". Returns the number of rows printed. */
size_t tp_table_print(FILE *out, const json_t *rows, const tp_column_t *cols, size_t ncols,
                      int64_t now_ms);

/* The value at the dotted `path` of `obj` as a cell's text into `out`.
 * Returns the length written. */
size_t tp_table_cell(const json_t *obj, const tp_column_t *col, int64_t now_ms, char *out,
                     size_t outlen);

/* Prints an object's fields as "key  value" lines, nested objects as
 * dotted keys, arrays of scalars joined by ", ", arrays of objects as
 * "(N)" (the record's lists are shown as tables by the caller). Keys are
 * aligned. */
void tp_table_print_record(FILE *out, const json_t *obj);

/* 1 when a field named `key` holds a time (ms since the epoch) by the
 * record's naming: ts, due, *_at, *_due. */
int tp_table_time_key(const char *key);

/* "2026-12-03T17:45:02Z"; "-" for ms <= 0. */
void tp_table_time(int64_t ms, char *out, size_t outlen);
/* "850ms", "4s", "3m12s", "2h05m", "4d03h"; negative: "-" then the rest. */
void tp_table_duration(int64_t ms, char *out, size_t outlen);

/* A time an operator types: ms since the epoch ("1764784000000"), UTC
 * ("2026-12-03T18:00:00Z", "2026-12-03T18:00Z", "2026-12-03"), or from
 * now ("+2h", "+30m", a duration as in the configuration). Returns 0, or
 * -1 when it is none of these. */
int tp_table_parse_time(const char *text, int64_t now_ms, int64_t *out);

#endif
