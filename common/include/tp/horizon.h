/* horizon.h: how far the journal may be trimmed, one rule for intake's
 * timer (services/intake/intake_trim.c) and the operator's `tpctl journal
 * trim`: only entries older than the retention horizon AND at or before
 * every consuming service's cursor (the last entry it reconciled), so
 * nothing still owed to a service is ever trimmed; a service without a
 * cursor yet holds everything.
 *
 * Pure: no I/O, no clock (the caller passes `now`). Owns nothing. */
#ifndef TP_HORIZON_H
#define TP_HORIZON_H

#include <stddef.h>
#include <stdint.h>

#include "tp/argv.h"

/* Adds the keys the rule reads to `a`: "<ns>{j}:journal", then
 * "<ns>cursor:<svc>" for every consuming service in catalogue order.
 * Returns how many were added. */
int tp_horizon_keys(tp_argv_t *a, const char *ns);

/* The consuming services' names in the order of tp_horizon_keys' cursors;
 * `i` from 0 to tp_horizon_count() - 1. Borrowed, static. */
int tp_horizon_count(void);
const char *tp_horizon_service(int i);

/* The MINID for XTRIM from the cursors' values (`cursors[i]` NULL when a
 * service has none) and the retention horizon `now_ms - retention_ms`:
 * the oldest of the horizon and every cursor's successor, as "<ms>-<seq>"
 * in `out`. Returns 0, or -1 when some cursor is missing or malformed (no
 * trim at all) or `out` is too small. */
int tp_horizon_floor(const char *const *cursors, size_t n, int64_t now_ms,
                     int64_t retention_ms, char *out, size_t outlen);

/* 1 when stream id `a` ("<ms>-<seq>", or "<ms>") is older than `b`. */
int tp_horizon_older(const char *a, const char *b);

#endif
