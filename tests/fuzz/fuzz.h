/* fuzz.h: what the libFuzzer targets in tests/fuzz/ share, header-only.
 *
 * Owns nothing. An invariant that fails is a finding: fuzz_die() prints why
 * and aborts, so libFuzzer saves the input as a crash, the same as for a
 * sanitizer report. Never used outside tests/fuzz/. */
#ifndef TP_FUZZ_H
#define TP_FUZZ_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tp/event.h"

/* Prints "fuzz: invariant broken: <why>" and aborts. */
static void fuzz_die(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));
static void fuzz_die(const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "fuzz: invariant broken: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

/* A rejection leaves the event cleared, and its error is a NUL-terminated
 * field and message of printable ASCII (event.h: intake echoes both in its
 * JSON replies and logs them). */
static inline void fuzz_check_rejection(const tp_event_t *ev,
                                        const tp_event_error_t *err) {
    if (ev->data != NULL || ev->extra != NULL || ev->type != TP_EVENT_NONE)
        fuzz_die("a rejected event was not cleared");
    const char *parts[2] = {err->field, err->message};
    size_t caps[2] = {sizeof err->field, sizeof err->message};
    for (int i = 0; i < 2; i++) {
        const char *end = memchr(parts[i], '\0', caps[i]);
        if (end == NULL)
            fuzz_die("error %s is not terminated", i ? "message" : "field");
        for (const char *p = parts[i]; p < end; p++)
            if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
                fuzz_die("error %s has byte 0x%02x: \"%s\"",
                         i ? "message" : "field", (unsigned char)*p, parts[i]);
    }
    if (err->message[0] == '\0') fuzz_die("a rejection without a message");
}

/* An accepted event crosses the bus and comes back the same: msgpack out
 * (tp_event_pack must not refuse it), msgpack in (must accept it), and both
 * JSON forms equal. Then the JSON form read again must be accepted too (a
 * service re-validating what it decoded). */
static inline void fuzz_event_round_trip(const tp_event_t *ev) {
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    if (tp_event_pack(ev, &sb) != 0)
        fuzz_die("tp_event_pack refused an accepted event");

    tp_event_t back;
    tp_event_error_t err;
    tp_event_init(&back);
    if (tp_event_from_msgpack(&back, sb.data, sb.size, &err) != 0)
        fuzz_die(
            "tp_event_from_msgpack refused what tp_event_pack wrote: %s: %s",
            err.field, err.message);
    json_t *a = tp_event_to_json(ev);
    json_t *b = tp_event_to_json(&back);
    if (!json_equal(a, b)) {
        char *ta = json_dumps(a, JSON_SORT_KEYS),
             *tb = json_dumps(b, JSON_SORT_KEYS);
        fuzz_die("the msgpack round trip changed the event:\n  %s\n  %s",
                 ta ? ta : "?", tb ? tb : "?");
    }

    tp_event_t again;
    tp_event_init(&again);
    if (tp_event_from_json(&again, b, &err) != 0)
        fuzz_die("tp_event_from_json refused the JSON form of a decoded event: "
                 "%s: %s",
                 err.field, err.message);

    tp_event_clear(&again);
    json_decref(a);
    json_decref(b);
    tp_event_clear(&back);
    msgpack_sbuffer_destroy(&sb);
}

#endif
