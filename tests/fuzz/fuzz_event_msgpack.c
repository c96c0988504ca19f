/* fuzz_event_msgpack.c: bytes -> tp_event_from_msgpack, as every consumer
 * reads an event off the bus or the journal.
 *
 * The bounded pre-scan is what keeps a 5-byte header from asking for
 * gigabytes; libFuzzer's -rss_limit_mb and -malloc_limit_mb (run.sh) turn
 * an allocation that escaped it into a crash. Every event accepted must
 * survive pack -> decode unchanged, and its JSON form must be accepted by
 * tp_event_from_json (fuzz.h). */
#include <stddef.h>
#include <stdint.h>

#include "fuzz.h"
#include "tp/event.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tp_event_t ev;
    tp_event_error_t err;
    tp_event_init(&ev);
    if (tp_event_from_msgpack(&ev, (const char *)data, size, &err) == 0)
        fuzz_event_round_trip(&ev);
    else
        fuzz_check_rejection(&ev, &err);
    tp_event_clear(&ev);
    return 0;
}
