/* id.h: ULIDs (time-ordered, 26 characters of Crockford base32) and the
 * clock. Owns nothing. */
#ifndef TP_ID_H
#define TP_ID_H

#include <stddef.h>
#include <stdint.h>

#define TP_ULID_LEN 26

/* Writes a new ULID for time `ms` into `out` (27 bytes with the NUL). */
void tp_id_ulid(char out[TP_ULID_LEN + 1], int64_t ms);
/* Wall clock, ms since the epoch, UTC. */
int64_t tp_now_ms(void);
/* 64-bit FNV-1a of `len` bytes: stable across runs and hosts, for buckets. */
uint64_t tp_id_hash(const void *bytes, size_t len);

#endif
