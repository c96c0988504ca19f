/* id.c: ULIDs, the wall clock and a stable hash. Owns no state but the
 * random source, read through getrandom(2). */
#include "tp/id.h"

#include <sys/random.h>
#include <time.h>

static const char crockford[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

void tp_id_ulid(char out[TP_ULID_LEN + 1], int64_t ms) {
    unsigned char rnd[10];
    ssize_t got = getrandom(rnd, sizeof rnd, 0);
    if (got != (ssize_t)sizeof rnd) { /* never short for 10 bytes; be safe */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t x = (uint64_t)ts.tv_nsec * 6364136223846793005ULL + (uint64_t)ms;
        for (int i = 0; i < 10; i++) rnd[i] = (unsigned char)(x >> ((i % 8) * 8));
    }
    uint64_t t = (uint64_t)ms;
    for (int i = 9; i >= 0; i--) { /* 48-bit time in 10 chars */
        out[i] = crockford[t & 31];
        t >>= 5;
    }
    /* 80 random bits in 16 chars */
    uint64_t hi = 0, lo = 0;
    for (int i = 0; i < 5; i++) hi = (hi << 8) | rnd[i];
    for (int i = 5; i < 10; i++) lo = (lo << 8) | rnd[i];
    for (int i = 17; i >= 10; i--) {
        out[i] = crockford[hi & 31];
        hi >>= 5;
    }
    for (int i = 25; i >= 18; i--) {
        out[i] = crockford[lo & 31];
        lo >>= 5;
    }
    out[TP_ULID_LEN] = '\0';
}

int64_t tp_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t tp_id_hash(const void *bytes, size_t len) {
    const unsigned char *p = bytes;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    return h;
}
