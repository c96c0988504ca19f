/* fuzz_rrule.c: bytes as an RRULE string -> tp_recur_valid, and when valid
 * tp_recur_between from a fixed start, at most 16 occurrences, the way the
 * scheduler plans an order's reorders (order.placed data.rrule, up to 200
 * bytes from the network; the fuzzer tries longer ones too).
 *
 * The start is 2026-03-20T08:30:00.250Z in Europe/Berlin, so the first
 * occurrences cross the spring DST change. Invariants (recur.h): a rule
 * tp_recur_valid accepts is not refused by tp_recur_between, which answers
 * 0..16 occurrences, strictly ascending, after `after`; a refusal says why. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "tp/recur.h"

#define DTSTART 1773995400250LL /* 2026-03-20T08:30:00.250Z */
#define MAX 16

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *rule = malloc(size + 1);
    if (rule == NULL) abort();
    memcpy(rule, data, size);
    rule[size] = '\0';

    char why[160];
    if (!tp_recur_valid(rule, why, sizeof why)) {
        if (why[0] == '\0') fuzz_die("tp_recur_valid refused without a reason");
        free(rule);
        return 0;
    }
    int64_t out[MAX];
    int n = tp_recur_between(rule, DTSTART, "Europe/Berlin", DTSTART - 1, 0,
                             out, MAX, why, sizeof why);
    if (n < 0) fuzz_die("tp_recur_between refused a valid rule: %s", why);
    if (n > MAX) fuzz_die("%d occurrences for at most %d", n, MAX);
    for (int i = 0; i < n; i++) {
        if (out[i] < DTSTART) fuzz_die("occurrence %d is before the start", i);
        if (i > 0 && out[i] <= out[i - 1])
            fuzz_die("occurrence %d is not after %d", i, i - 1);
    }
    free(rule);
    return 0;
}
