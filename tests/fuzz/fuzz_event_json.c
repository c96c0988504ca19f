/* fuzz_event_json.c: bytes -> json_loadb -> tp_event_from_json, as intake's
 * POST /events reads a body: one event object, or {"events": [...]}.
 *
 * jansson parses with intake's JSON_REJECT_DUPLICATES, plus JSON_ALLOW_NUL
 * (so "\u0000" reaches the validator, which must refuse it itself) and
 * JSON_DECODE_ANY (so a body that is not an object does too). Every event
 * accepted must survive the msgpack round trip unchanged (fuzz.h): that is
 * the bus carrying what intake acknowledged. */
#include <stddef.h>
#include <stdint.h>

#include "fuzz.h"
#include "tp/event.h"

static void one_event(const json_t *obj) {
    tp_event_t ev;
    tp_event_error_t err;
    tp_event_init(&ev);
    if (tp_event_from_json(&ev, obj, &err) == 0)
        fuzz_event_round_trip(&ev);
    else
        fuzz_check_rejection(&ev, &err);
    tp_event_clear(&ev);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    json_t *root = json_loadb(
        (const char *)data, size,
        JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL | JSON_DECODE_ANY, NULL);
    if (root == NULL) return 0;
    json_t *list = json_object_get(root, "events");
    if (json_is_array(list) && json_object_get(root, "type") == NULL) {
        size_t i;
        json_t *item;
        json_array_foreach(list, i, item) one_event(item);
    } else {
        one_event(root);
    }
    json_decref(root);
    return 0;
}
