/* test_event.c: the event codec: envelope and data validation (each error
 * names its field), UTF-8, the bounded msgpack reader against hostile
 * headers, and JSON <-> msgpack round trips of every catalogue type.
 *
 * Owns nothing beyond each test. Never touches the network or the disk. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tp/event.h"

/* ---------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------ */

static json_t *load(const char *text) {
    json_error_t jerr;
    json_t *j = json_loads(text, 0, &jerr);
    if (j == NULL) fail_msg("bad test JSON: %s: %s", jerr.text, text);
    return j;
}

static const char *LEAD =
    "{\"v\":1,\"id\":\"01HZX3K6Q1R2S3T4V5W6X7Y8Z9\",\"type\":\"lead.captured\","
    "\"ts\":1717171717171,\"src\":\"web\",\"customer\":\"acme-gmbh\",\"actor\":\"u.lee\","
    "\"data\":{\"company\":\"ACME GmbH\",\"contact\":{\"name\":\"Jürgen Ölschläger\","
    "\"email\":\"j@acme.example\",\"phone\":\"+49 30 1234\"},\"industry\":\"manufacturing\","
    "\"size\":250,\"channel\":\"exhibition\",\"need\":\"CRM for 40 reps\",\"urgency\":2,"
    "\"budget\":1,\"decision\":3,\"owner\":\"u.lee\"}}";

/* Loads LEAD, sets `path` (dotted, under the root) to `value` (JSON text,
 * or NULL to delete it), returns the tree. */
static json_t *lead_with(const char *path, const char *value) {
    json_t *root = load(LEAD);
    json_t *obj = root;
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    char *seg = buf, *dot;
    while ((dot = strchr(seg, '.')) != NULL) {
        *dot = '\0';
        obj = json_object_get(obj, seg);
        assert_non_null(obj);
        seg = dot + 1;
    }
    if (value == NULL) {
        json_object_del(obj, seg);
    } else {
        json_error_t jerr;
        json_t *v = json_loads(value, JSON_DECODE_ANY, &jerr);
        if (v == NULL) fail_msg("bad test value: %s", value);
        json_object_set_new(obj, seg, v);
    }
    return root;
}

/* Expects from_json to reject `root` (consumed) naming `field`, with
 * `msg_part` in the message when not NULL. */
static void expect_reject(json_t *root, const char *field, const char *msg_part) {
    tp_event_t ev;
    tp_event_error_t err;
    tp_event_init(&ev);
    memset(&err, 0, sizeof err);
    int rc = tp_event_from_json(&ev, root, &err);
    if (rc != -1 || strcmp(err.field, field) != 0 ||
        (msg_part && strstr(err.message, msg_part) == NULL))
        fail_msg("expected reject at \"%s\" (%s), got rc %d field \"%s\" message \"%s\"", field,
                 msg_part ? msg_part : "", rc, err.field, err.message);
    /* A rejected event is left cleared. */
    assert_null(ev.data);
    assert_null(ev.extra);
    assert_int_equal(ev.type, TP_EVENT_NONE);
    json_decref(root);
}

static void expect_reject_mp(const void *buf, size_t len, const char *field, const char *msg_part) {
    tp_event_t ev;
    tp_event_error_t err;
    tp_event_init(&ev);
    memset(&err, 0, sizeof err);
    int rc = tp_event_from_msgpack(&ev, buf, len, &err);
    if (rc != -1 || strcmp(err.field, field) != 0 ||
        (msg_part && strstr(err.message, msg_part) == NULL))
        fail_msg("expected msgpack reject at \"%s\" (%s), got rc %d field \"%s\" message \"%s\"",
                 field, msg_part ? msg_part : "", rc, err.field, err.message);
    assert_null(ev.data);
    tp_event_clear(&ev);
}

static void accept_json(tp_event_t *ev, const char *text) {
    json_t *root = load(text);
    tp_event_error_t err;
    memset(&err, 0, sizeof err);
    tp_event_init(ev);
    if (tp_event_from_json(ev, root, &err) != 0)
        fail_msg("rejected: field \"%s\": %s\n%s", err.field, err.message, text);
    json_decref(root);
}

/* Packs `ev` and reads it back into `out`. */
static void through_msgpack(const tp_event_t *ev, tp_event_t *out) {
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    assert_int_equal(tp_event_pack(ev, &sb), 0);
    tp_event_error_t err;
    tp_event_init(out);
    if (tp_event_from_msgpack(out, sb.data, sb.size, &err) != 0)
        fail_msg("msgpack rejected: field \"%s\": %s", err.field, err.message);
    msgpack_sbuffer_destroy(&sb);
}

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* ---------------------------------------------------------------------
 * JSON: valid events
 * ------------------------------------------------------------------ */

static void test_lead_captured_valid(void **state) {
    (void)state;
    tp_event_t ev;
    accept_json(&ev, LEAD);
    assert_int_equal(ev.v, 1);
    assert_int_equal(ev.type, TP_EVENT_LEAD_CAPTURED);
    assert_string_equal(ev.id, "01HZX3K6Q1R2S3T4V5W6X7Y8Z9");
    assert_true(ev.ts == 1717171717171LL);
    assert_string_equal(ev.src, "web");
    assert_string_equal(ev.customer, "acme-gmbh");
    assert_string_equal(ev.actor, "u.lee");
    assert_null(ev.extra);
    assert_string_equal(tp_event_str(&ev, "company"), "ACME GmbH");
    assert_string_equal(tp_event_str(&ev, "contact.email"), "j@acme.example");
    assert_string_equal(tp_event_str(&ev, "contact.name"), "Jürgen Ölschläger");
    assert_null(tp_event_str(&ev, "contact.title"));
    assert_null(tp_event_str(&ev, "urgency"));      /* not a string */
    assert_null(tp_event_str(&ev, "company.name")); /* not an object */
    assert_null(tp_event_str(&ev, "contact."));
    assert_true(tp_event_int(&ev, "urgency", -1) == 2);
    assert_true(tp_event_int(&ev, "size", -1) == 250);
    assert_true(tp_event_int(&ev, "company", -1) == -1);
    assert_true(tp_event_int(&ev, "nope.deeper", 7) == 7);
    assert_int_equal(tp_event_bool(&ev, "urgency", 5), 5);
    tp_event_clear(&ev);
    tp_event_clear(&ev); /* safe twice */
    assert_null(ev.data);
}

static void test_minimal_and_defaults(void **state) {
    (void)state;
    tp_event_t ev;
    /* No v (defaults to 1), no id, no customer, no actor; optional data
     * fields null count as absent; src may be a service name. */
    accept_json(&ev, "{\"type\":\"inquiry.received\",\"ts\":0,\"src\":\"scheduler\","
                     "\"customer\":null,\"data\":{\"channel\":\"im\",\"urgent\":null}}");
    assert_int_equal(ev.v, 1);
    assert_string_equal(ev.id, "");
    assert_string_equal(ev.customer, "");
    assert_int_equal(tp_event_bool(&ev, "urgent", -1), -1);
    tp_event_clear(&ev);

    accept_json(&ev, "{\"type\":\"inquiry.received\",\"ts\":253402300799999,\"src\":\"hotline\","
                     "\"data\":{\"channel\":\"phone\",\"urgent\":true}}");
    assert_int_equal(tp_event_bool(&ev, "urgent", -1), 1);
    tp_event_clear(&ev);
}

/* ---------------------------------------------------------------------
 * JSON: every error class names its field
 * ------------------------------------------------------------------ */

static void test_missing_required(void **state) {
    (void)state;
    expect_reject(lead_with("data.company", NULL), "data.company", "is required");
    expect_reject(lead_with("data.company", "null"), "data.company", "is required");
    expect_reject(lead_with("data.owner", NULL), "data.owner", "is required");
    expect_reject(lead_with("type", NULL), "type", "is required");
    expect_reject(lead_with("ts", NULL), "ts", "is required");
    expect_reject(lead_with("src", NULL), "src", "is required");
    expect_reject(lead_with("data", NULL), "data", "is required");
    expect_reject(lead_with("data", "null"), "data", "is required");
}

static void test_wrong_type(void **state) {
    (void)state;
    expect_reject(lead_with("data.urgency", "\"high\""), "data.urgency",
                  "must be an integer from 0 to 3");
    expect_reject(lead_with("data.urgency", "2.0"), "data.urgency", "integer");
    expect_reject(lead_with("data.urgency", "true"), "data.urgency", "integer");
    expect_reject(lead_with("data.company", "42"), "data.company", "string");
    expect_reject(lead_with("data.channel", "3"), "data.channel", "must be one of");
    expect_reject(lead_with("data.contact", "\"bob\""), "data.contact", "must be an object");
    expect_reject(lead_with("data.contact.email", "5"), "data.contact.email",
                  "must be a string of at most 254 bytes");
    expect_reject(lead_with("data", "[1,2]"), "data", "must be an object");
    expect_reject(lead_with("ts", "\"1717171717171\""), "ts", "integer");
    expect_reject(lead_with("ts", "1.5"), "ts", "integer");
    expect_reject(lead_with("type", "7"), "type", "string");
    expect_reject(lead_with("src", "true"), "src", "must be one of");
    expect_reject(lead_with("actor", "12"), "actor", "string");
    expect_reject(lead_with("customer", "{}"), "customer", NULL);
    expect_reject(load("[1,2,3]"), "", "object");

    json_t *b = load("{\"type\":\"inquiry.received\",\"ts\":1,\"src\":\"web\","
                     "\"data\":{\"channel\":\"web\",\"urgent\":1}}");
    expect_reject(b, "data.urgent", "must be true or false");
    json_t *t = load("{\"type\":\"contact.logged\",\"ts\":1,\"src\":\"phone\",\"data\":"
                     "{\"channel\":\"phone\",\"direction\":\"in\",\"outcome\":\"reached\","
                     "\"next_contact_at\":-5}}");
    expect_reject(t, "data.next_contact_at", "must be a time in ms");
}

static void test_out_of_range(void **state) {
    (void)state;
    expect_reject(lead_with("data.urgency", "4"), "data.urgency", "must be an integer from 0 to 3");
    expect_reject(lead_with("data.urgency", "-1"), "data.urgency", "from 0 to 3");
    expect_reject(lead_with("data.size", "10000001"), "data.size", "from 0 to 10000000");
    expect_reject(lead_with("ts", "-1"), "ts", "from 0 to 253402300799999");
    expect_reject(lead_with("ts", "253402300800000"), "ts", NULL);
    expect_reject(lead_with("v", "2"), "v", "must be 1");
    expect_reject(lead_with("v", "\"1\""), "v", "must be 1");
}

static void test_bad_enum(void **state) {
    (void)state;
    expect_reject(lead_with("data.channel", "\"fax\""), "data.channel",
                  "must be one of exhibition|community|");
    expect_reject(lead_with("data.channel", "\"\""), "data.channel", NULL);
    expect_reject(lead_with("data.channel", "\"web|other\""), "data.channel", NULL);
    expect_reject(lead_with("data.channel", "\"Web\""), "data.channel", NULL);
    expect_reject(lead_with("src", "\"carrier-pigeon\""), "src", "phone|email|web|hotline|api");
    expect_reject(lead_with("src", "\"\""), "src", NULL);
}

static void test_bad_utf8_in_string(void **state) {
    (void)state;
    static const char *const bad[] = {
        "\xc0\xaf",         /* overlong '/' */
        "\xe0\x80\xaf",     /* overlong, 3 bytes */
        "\xed\xa0\x80",     /* surrogate U+D800 */
        "\xf4\x90\x80\x80", /* U+110000 */
        "ok\xff",           /* never valid */
        "caf\xc3",          /* truncated */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *root = load(LEAD);
        /* The JSON parser never yields invalid UTF-8; a caller-built tree can. */
        json_object_set_new(json_object_get(root, "data"), "company",
                            json_stringn_nocheck(bad[i], strlen(bad[i])));
        expect_reject(root, "data.company", "UTF-8");
    }
    json_t *root = load(LEAD);
    json_object_set_new(json_object_get(json_object_get(root, "data"), "contact"), "name",
                        json_stringn_nocheck("a\0b", 3));
    expect_reject(root, "data.contact.name", "UTF-8");

    /* A NUL inside an unknown field is refused too: the bus would refuse it. */
    root = load(LEAD);
    json_object_set_new(json_object_get(root, "data"), "note", json_stringn_nocheck("a\0b", 3));
    expect_reject(root, "data.note", "NUL");

    root = load(LEAD);
    json_object_set_new(root, "actor", json_stringn_nocheck("\xed\xbf\xbf", 3));
    expect_reject(root, "actor", "UTF-8");
}

static void test_too_long_string(void **state) {
    (void)state;
    char big[300];
    memset(big, 'x', sizeof big);
    char text[320];
    snprintf(text, sizeof text, "\"%.*s\"", 201, big);
    expect_reject(lead_with("data.company", text), "data.company",
                  "must be a string of at most 200 bytes");
    snprintf(text, sizeof text, "\"%.*s\"", 200, big);
    json_t *ok = lead_with("data.company", text);
    tp_event_t ev;
    tp_event_error_t err;
    tp_event_init(&ev);
    assert_int_equal(tp_event_from_json(&ev, ok, &err), 0);
    tp_event_clear(&ev);
    json_decref(ok);

    /* 200 bytes of 2-byte characters is 100 characters: the limit is bytes. */
    char umlauts[2 * 101 + 3] = "\"";
    for (int i = 0; i < 101; i++) strcat(umlauts, "ä");
    strcat(umlauts, "\"");
    expect_reject(lead_with("data.company", umlauts), "data.company", "200 bytes");

    snprintf(text, sizeof text, "\"%.*s\"", 129, big);
    expect_reject(lead_with("actor", text), "actor", "at most 128 bytes");
    expect_reject(lead_with("customer", text), "customer", NULL);
    expect_reject(lead_with("id", text), "id", NULL);
    snprintf(text, sizeof text, "\"%.*s\"", 128, big);
    ok = lead_with("id", text);
    tp_event_init(&ev);
    assert_int_equal(tp_event_from_json(&ev, ok, &err), 0);
    assert_int_equal(strlen(ev.id), 128);
    tp_event_clear(&ev);
    json_decref(ok);
}

static void test_unknown_type(void **state) {
    (void)state;
    expect_reject(lead_with("type", "\"x.y\""), "type", "unknown event type \"x.y\"");
    expect_reject(lead_with("type", "\"lead.captured \""), "type", "unknown event type");
    expect_reject(lead_with("type", "\"\""), "type", "unknown event type \"\"");
    /* Hostile names are quoted safely: no quotes or control bytes echoed. */
    expect_reject(lead_with("type", "\"a\\\"b\\n\""), "type", "unknown event type \"a?b?\"");
    json_t *root = load(LEAD);
    json_object_set_new(root, "type", json_stringn_nocheck("lead.captured\0x", 15));
    expect_reject(root, "type", "unknown event type");
}

static void test_bad_id_chars(void **state) {
    (void)state;
    static const char *const bad[] = {"\"a b\"", "\"a{b\"", "\"a}b\"", "\"a|b\"", "\"\"",
                                      "\"tab\\there\"", "\"caf\u00e9\"", "\"x\\u007f\"", "17"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_reject(lead_with("id", bad[i]), "id", "printable ASCII");
    expect_reject(lead_with("customer", "\"acme gmbh\""), "customer", "A-Z a-z 0-9");
    expect_reject(lead_with("customer", "\"acme/1\""), "customer", NULL);
    expect_reject(lead_with("customer", "\"\""), "customer", NULL);

    tp_event_t ev;
    accept_json(&ev, "{\"id\":\"email:<abc@x.example>#1\",\"customer\":\"tel:+49.30-1_2@a\","
                     "\"type\":\"inquiry.received\",\"ts\":1,\"src\":\"email\","
                     "\"data\":{\"channel\":\"email\"}}");
    assert_string_equal(ev.id, "email:<abc@x.example>#1");
    tp_event_clear(&ev);
}

static void test_nested_contact_email(void **state) {
    (void)state;
    expect_reject(lead_with("data.contact.email", "5"), "data.contact.email", "string");
    expect_reject(lead_with("data.contact.email", "{\"a\":1}"), "data.contact.email", "string");
    expect_reject(lead_with("data.contact.phone", "\"+49 30 1234 5678 9012 3456 7890 1234 5678 90\""),
                  "data.contact.phone", "at most 40 bytes");
    /* Unknown fields inside contact are kept; null optional ones are absent. */
    tp_event_t ev;
    json_t *root = lead_with("data.contact.fax", "\"+49 30 9\"");
    json_object_set_new(json_object_get(json_object_get(root, "data"), "contact"), "email",
                        json_null());
    tp_event_error_t err;
    tp_event_init(&ev);
    assert_int_equal(tp_event_from_json(&ev, root, &err), 0);
    assert_string_equal(tp_event_str(&ev, "contact.fax"), "+49 30 9");
    tp_event_clear(&ev);
    json_decref(root);
}

static void test_extra_fields_bounded(void **state) {
    (void)state;
    json_t *root = load(LEAD);
    char key[16];
    for (int i = 0; i < 32; i++) {
        snprintf(key, sizeof key, "x%d", i);
        json_object_set_new(root, key, json_integer(i));
    }
    tp_event_t ev;
    tp_event_error_t err;
    tp_event_init(&ev);
    assert_int_equal(tp_event_from_json(&ev, root, &err), 0);
    assert_int_equal(json_object_size(ev.extra), 32);
    tp_event_clear(&ev);
    json_object_set_new(root, "x32", json_true());
    expect_reject(root, "", "more than 32");

    /* Extra values of any JSON kind, nested at most 8 levels in all. */
    root = load(LEAD);
    json_object_set_new(root, "trace", load("{\"a\":[{\"b\":{\"c\":[[[1]]]}}]}")); /* 8 */
    tp_event_init(&ev);
    assert_int_equal(tp_event_from_json(&ev, root, &err), 0);
    tp_event_clear(&ev);
    json_object_set_new(root, "trace", load("{\"a\":[{\"b\":{\"c\":[[[[1]]]]}}]}")); /* 9 */
    expect_reject(root, "trace.a[0].b.c[0][0][0]", "deeper than 8");

    /* A hostile key in an error's field name: sanitized and truncated. */
    char longkey[300];
    memset(longkey, 'k', sizeof longkey - 1);
    longkey[sizeof longkey - 1] = '\0';
    longkey[3] = '"';
    root = load(LEAD);
    json_object_set_new(root, longkey, load("[[[[[[[[1]]]]]]]]"));
    tp_event_init(&ev);
    assert_int_equal(tp_event_from_json(&ev, root, &err), -1);
    assert_int_equal(strlen(err.field), sizeof err.field - 1);
    assert_memory_equal(err.field, "kkk?kkk", 7);
    assert_string_equal(err.field + sizeof err.field - 4, "...");
    json_decref(root);

    root = load(LEAD);
    json_object_set_new(json_object_get(root, "data"), "deep",
                        load("[[[[[[[1]]]]]]]")); /* data=2, 7 arrays: 3..9 */
    expect_reject(root, "data.deep[0][0][0][0][0][0]", "deeper than 8");
}

static void test_validate_data_direct(void **state) {
    (void)state;
    tp_event_error_t err;
    json_t *d = load("{\"grade\":\"A\",\"score\":91,\"fit\":80,\"owner\":\"u.kim\",\"cause\":\"01HZ\"}");
    assert_int_equal(tp_event_validate_data(TP_EVENT_LEAD_GRADED, d, &err), 0);
    json_object_set_new(d, "previous", json_string("D"));
    assert_int_equal(tp_event_validate_data(TP_EVENT_LEAD_GRADED, d, &err), -1);
    assert_string_equal(err.field, "data.previous");
    assert_string_equal(err.message, "must be one of A|B|C");
    assert_int_equal(tp_event_validate_data(TP_EVENT_LEAD_GRADED, d, NULL), -1);
    assert_int_equal(tp_event_validate_data(TP_EVENT_NONE, d, &err), -1);
    assert_int_equal(tp_event_validate_data(TP_EVENT_COUNT, d, &err), -1);
    json_decref(d);
}

/* ---------------------------------------------------------------------
 * UTF-8
 * ------------------------------------------------------------------ */

static void test_utf8(void **state) {
    (void)state;
    static const struct {
        const char *s;
        size_t len;
        int ok;
    } cases[] = {
        {"", 0, 1},
        {"plain ascii text, long enough for the fast path", 47, 1},
        {"\xc2\x80", 2, 1},                 /* U+0080 */
        {"\xdf\xbf", 2, 1},                 /* U+07FF */
        {"\xe0\xa0\x80", 3, 1},             /* U+0800 */
        {"\xed\x9f\xbf", 3, 1},             /* U+D7FF */
        {"\xee\x80\x80", 3, 1},             /* U+E000 */
        {"\xef\xbf\xbf", 3, 1},             /* U+FFFF */
        {"\xf0\x90\x80\x80", 4, 1},         /* U+10000 */
        {"\xf4\x8f\xbf\xbf", 4, 1},         /* U+10FFFF */
        {"\xc0\x80", 2, 0},                 /* overlong NUL */
        {"\xc1\xbf", 2, 0},                 /* overlong */
        {"\xe0\x9f\xbf", 3, 0},             /* overlong */
        {"\xf0\x8f\xbf\xbf", 4, 0},         /* overlong */
        {"\xed\xa0\x80", 3, 0},             /* U+D800 */
        {"\xed\xbf\xbf", 3, 0},             /* U+DFFF */
        {"\xf4\x90\x80\x80", 4, 0},         /* U+110000 */
        {"\xf5\x80\x80\x80", 4, 0},
        {"\xf8\x88\x80\x80\x80", 5, 0},     /* 5-byte form */
        {"\x80", 1, 0},                     /* stray continuation */
        {"\xc3", 1, 0},                     /* truncated */
        {"\xe2\x82", 2, 0},                 /* truncated */
        {"\xe2\x28\xa1", 3, 0},             /* bad continuation */
        {"a\0b", 3, 0},                     /* NUL */
        {"0123456789abcdef\0", 17, 0},      /* NUL after the fast path */
        {"0123456\0" "89abcdef", 16, 0},    /* NUL inside a fast-path word */
        {"01234567\xe2\x82\xac" "89abcdefgh", 21, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (tp_utf8_valid(cases[i].s, cases[i].len) != cases[i].ok)
            fail_msg("case %zu: expected %d", i, cases[i].ok);
}

/* ---------------------------------------------------------------------
 * msgpack: round trips
 * ------------------------------------------------------------------ */

static void test_unknown_fields_round_trip(void **state) {
    (void)state;
    const char *text =
        "{\"v\":1,\"id\":\"ev-1\",\"type\":\"lead.captured\",\"ts\":1717171717171,"
        "\"src\":\"api\",\"customer\":\"c:42\",\"actor\":\"ünïcødé\","
        "\"data\":{\"company\":\"ACME\",\"urgency\":0,\"budget\":0,\"decision\":0,"
        "\"owner\":\"u.lee\",\"utm\":{\"source\":\"fair\",\"tags\":[\"a\",1,2.5,null,true]},"
        "\"contact\":{\"name\":\"Ann\",\"linkedin\":\"ann-x\"},\"score_hint\":-17},"
        "\"trace\":{\"span\":\"abc\",\"hops\":[1,2,3],\"big\":9223372036854775807,"
        "\"neg\":-9223372036854775807},\"weight\":0.125,\"flag\":false,\"nothing\":null,"
        "\"list\":[[],{}]}";
    json_t *orig = load(text);
    tp_event_t a, b;
    accept_json(&a, text);
    assert_non_null(a.extra);
    assert_int_equal(json_object_size(a.extra), 5);
    through_msgpack(&a, &b);
    json_t *back = tp_event_to_json(&b);
    if (!json_equal(orig, back)) {
        char *s = json_dumps(back, JSON_SORT_KEYS);
        fail_msg("round trip differs: %s", s);
    }
    /* And the bytes are stable: packing the decoded event gives the same. */
    msgpack_sbuffer s1, s2;
    msgpack_sbuffer_init(&s1);
    msgpack_sbuffer_init(&s2);
    assert_int_equal(tp_event_pack(&a, &s1), 0);
    assert_int_equal(tp_event_pack(&b, &s2), 0);
    assert_int_equal(s1.size, s2.size);
    assert_memory_equal(s1.data, s2.data, s1.size);
    msgpack_sbuffer_destroy(&s1);
    msgpack_sbuffer_destroy(&s2);
    json_decref(back);
    json_decref(orig);
    tp_event_clear(&a);
    tp_event_clear(&b);
}

static void test_pack_omits_empty_and_appends(void **state) {
    (void)state;
    tp_event_t ev, back;
    accept_json(&ev, "{\"type\":\"call.started\",\"ts\":5,\"src\":\"phone\",\"data\":"
                     "{\"from\":\"+4930\",\"to\":\"+4940\",\"direction\":\"in\"}}");
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_sbuffer_write(&sb, "prefix", 6); /* pack appends */
    assert_int_equal(tp_event_pack(&ev, &sb), 0);
    /* map of 5: v, type, ts, src, data (no empty id/customer/actor) */
    assert_int_equal((unsigned char)sb.data[6], 0x85);
    tp_event_error_t err;
    tp_event_init(&back);
    assert_int_equal(tp_event_from_msgpack(&back, sb.data + 6, sb.size - 6, &err), 0);
    assert_string_equal(back.id, "");
    assert_string_equal(back.customer, "");
    assert_string_equal(back.actor, "");
    /* Intake assigns an id later; it then travels. */
    snprintf(ev.id, sizeof ev.id, "%s", "01HZX3K6Q1R2S3T4V5W6X7Y8Z9");
    tp_event_t again;
    through_msgpack(&ev, &again);
    assert_string_equal(again.id, ev.id);
    tp_event_clear(&again);
    msgpack_sbuffer_destroy(&sb);
    tp_event_clear(&ev);
    tp_event_clear(&back);
}

static void test_copy_is_independent(void **state) {
    (void)state;
    tp_event_t a, b;
    accept_json(&a, "{\"type\":\"ticket.opened\",\"ts\":5,\"src\":\"web\",\"x\":{\"y\":1},"
                    "\"data\":{\"title\":\"Printer\",\"category\":\"fault\","
                    "\"priority\":\"high\"}}");
    tp_event_init(&b);
    tp_event_copy(&b, &a);
    assert_true(b.data != a.data);
    json_object_set_new(b.data, "ticket", json_string("T-1"));
    json_object_set_new(json_object_get(b.extra, "x"), "y", json_integer(2));
    assert_null(tp_event_str(&a, "ticket"));
    assert_string_equal(tp_event_str(&b, "ticket"), "T-1");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(a.extra, "x"), "y")), 1);
    assert_int_equal(b.type, TP_EVENT_TICKET_OPENED);
    assert_string_equal(b.src, "web");
    tp_event_clear(&a);
    tp_event_clear(&b);
}

/* One sample per catalogue type; the test fails when a type is added to
 * proto/ without a sample here. */
static const char *const samples[] = {
    /* lead.captured */
    "{\"v\":1,\"id\":\"s-1\",\"type\":\"lead.captured\",\"ts\":1717000000000,\"src\":\"phone\","
    "\"customer\":\"acme\",\"actor\":\"u.lee\",\"data\":{\"company\":\"ACME\",\"contact\":{\"name\":"
    "\"Ann\",\"title\":\"CTO\",\"phone\":\"+49 30 1\",\"email\":\"ann@acme.example\"},"
    "\"industry\":\"fmcg\",\"size\":10000000,\"channel\":\"referral\",\"need\":\"CRM\","
    "\"urgency\":3,\"budget\":0,\"decision\":2,\"owner\":\"u.lee\"}}",
    /* contact.logged */
    "{\"v\":1,\"id\":\"s-2\",\"type\":\"contact.logged\",\"ts\":1717000000001,\"src\":\"api\","
    "\"customer\":\"acme\",\"actor\":\"u.lee\",\"data\":{\"channel\":\"visit\",\"direction\":\"out\","
    "\"outcome\":\"needs_time\",\"next_contact_at\":1717600000000,\"summary\":\"Call back\"}}",
    /* call.started */
    "{\"v\":1,\"id\":\"s-3\",\"type\":\"call.started\",\"ts\":1717000000002,\"src\":\"phone\","
    "\"data\":{\"from\":\"+4930111\",\"to\":\"+4940222\",\"direction\":\"in\",\"agent\":\"u.kim\","
    "\"queue\":\"sales\"}}",
    /* call.ended */
    "{\"v\":1,\"id\":\"s-4\",\"type\":\"call.ended\",\"ts\":1717000000003,\"src\":\"phone\","
    "\"data\":{\"from\":\"+4930111\",\"to\":\"+4940222\",\"direction\":\"out\",\"agent\":\"u.kim\","
    "\"queue\":\"sales\",\"duration_s\":604800}}",
    /* inquiry.received */
    "{\"v\":1,\"id\":\"s-5\",\"type\":\"inquiry.received\",\"ts\":1717000000004,\"src\":\"hotline\","
    "\"customer\":\"acme\",\"data\":{\"channel\":\"hotline\",\"urgent\":true,\"text\":\"System down\","
    "\"owner\":\"u.lee\"}}",
    /* ticket.opened */
    "{\"v\":1,\"id\":\"s-6\",\"type\":\"ticket.opened\",\"ts\":1717000000005,\"src\":\"email\","
    "\"customer\":\"acme\",\"data\":{\"ticket\":\"T-100\",\"title\":\"Printer jams\","
    "\"category\":\"fault\",\"priority\":\"urgent\",\"channel\":\"email\",\"owner\":\"u.kim\"}}",
    /* ticket.updated */
    "{\"v\":1,\"id\":\"s-7\",\"type\":\"ticket.updated\",\"ts\":1717000000006,\"src\":\"web\","
    "\"actor\":\"u.kim\",\"data\":{\"ticket\":\"T-100\",\"action\":\"status\",\"agent\":\"u.kim\","
    "\"status\":\"waiting_customer\",\"note\":\"Asked for logs\"}}",
    /* lead.graded */
    "{\"v\":1,\"id\":\"s-8\",\"type\":\"lead.graded\",\"ts\":1717000000007,\"src\":\"scoring\","
    "\"customer\":\"acme\",\"data\":{\"grade\":\"A\",\"previous\":\"B\",\"score\":100,\"fit\":0,"
    "\"owner\":\"u.lee\",\"reason\":\"urgency 3\",\"cause\":\"s-1\"}}",
    /* reminder.due */
    "{\"v\":1,\"id\":\"s-9\",\"type\":\"reminder.due\",\"ts\":1717000000008,\"src\":\"scheduler\","
    "\"customer\":\"acme\",\"data\":{\"reminder\":\"r-1\",\"rule\":\"R-TOUCH-1\",\"owner\":\"u.lee\","
    "\"due_at\":1717000000000,\"late_ms\":9223372036854775807,\"urgent\":false,"
    "\"text\":\"Call ACME\"}}",
    /* notification.sent */
    "{\"v\":1,\"id\":\"s-10\",\"type\":\"notification.sent\",\"ts\":1717000000009,"
    "\"src\":\"notifier\",\"data\":{\"delivery\":\"d-1\",\"channel\":\"sms\",\"recipient\":\"u.lee\","
    "\"cause\":\"s-9\",\"attempts\":1}}",
    /* notification.failed */
    "{\"v\":1,\"id\":\"s-11\",\"type\":\"notification.failed\",\"ts\":1717000000010,"
    "\"src\":\"notifier\",\"data\":{\"delivery\":\"d-2\",\"channel\":\"webhook\","
    "\"recipient\":\"u.lee\",\"cause\":\"s-9\",\"attempts\":1000,\"error\":\"HTTP 503\"}}",
    /* notification.read */
    "{\"v\":1,\"id\":\"s-11r\",\"type\":\"notification.read\",\"ts\":1717000000010,"
    "\"src\":\"web\",\"customer\":\"acme\",\"data\":{\"owner\":\"u.lee\","
    "\"notification\":\"s-9\"}}",
    /* sla.breached */
    "{\"v\":1,\"id\":\"s-12\",\"type\":\"sla.breached\",\"ts\":1717000000011,\"src\":\"ticketing\","
    "\"customer\":\"acme\",\"data\":{\"ticket\":\"T-100\",\"target\":\"first_response\","
    "\"priority\":\"urgent\",\"deadline\":1717000000000,\"owner\":\"u.kim\","
    "\"title\":\"Printer jams\"}}",
    /* lead.updated */
    "{\"v\":1,\"id\":\"s-13\",\"type\":\"lead.updated\",\"ts\":1717000000012,\"src\":\"api\","
    "\"customer\":\"acme\",\"data\":{\"urgency\":3,\"reason\":\"line down\"}}",
    /* opportunity.updated */
    "{\"v\":1,\"id\":\"s-14\",\"type\":\"opportunity.updated\",\"ts\":1717000000013,\"src\":\"api\","
    "\"customer\":\"acme\",\"data\":{\"opportunity\":\"D-1\",\"name\":\"MES\","
    "\"amount\":1000000,\"currency\":\"CNY\",\"stage\":3,\"probability\":80,"
    "\"expected_close\":1720000000000,\"owner\":\"u.kim\",\"team\":\"east\"}}",
    /* deal.closed */
    "{\"v\":1,\"id\":\"s-15\",\"type\":\"deal.closed\",\"ts\":1717000000014,\"src\":\"api\","
    "\"customer\":\"acme\",\"data\":{\"opportunity\":\"D-1\",\"outcome\":\"lost\","
    "\"reason\":\"price\"}}",
    /* customer.updated */
    "{\"v\":1,\"id\":\"s-16\",\"type\":\"customer.updated\",\"ts\":1717000000015,\"src\":\"api\","
    "\"customer\":\"acme\",\"data\":{\"relationship\":\"vip\",\"revenue_tier\":3,"
    "\"modules\":[\"MES\",\"WMS\"],\"key_people\":[{\"name\":\"Wang\","
    "\"role\":\"decision_maker\",\"birthday\":\"03-14\"}],"
    "\"special_days\":[{\"what\":\"founded\",\"date\":\"2001-06-01\"}]}}",
    /* customer.merged */
    "{\"v\":1,\"id\":\"s-17\",\"type\":\"customer.merged\",\"ts\":1717000000016,\"src\":\"api\","
    "\"customer\":\"acme\",\"data\":{\"from\":\"C01J\",\"reason\":\"same phone\"}}",
    /* survey.answered */
    "{\"v\":1,\"id\":\"s-18\",\"type\":\"survey.answered\",\"ts\":1717000000017,\"src\":\"web\","
    "\"customer\":\"acme\",\"data\":{\"score\":2,\"about\":\"ticket\",\"ticket\":\"T-100\"}}",
    /* stage.changed */
    "{\"v\":1,\"id\":\"s-19\",\"type\":\"stage.changed\",\"ts\":1717000000018,\"src\":\"scoring\","
    "\"customer\":\"acme\",\"data\":{\"opportunity\":\"D-1\",\"from\":2,\"to\":3,"
    "\"dwell_ms\":864000000,\"owner\":\"u.kim\",\"state\":\"intent\",\"cause\":\"s-14\"}}",
    /* customer.at_risk */
    "{\"v\":1,\"id\":\"s-20\",\"type\":\"customer.at_risk\",\"ts\":1717000000019,\"src\":\"scoring\","
    "\"customer\":\"acme\",\"data\":{\"health\":42,\"threshold\":60,\"owner\":\"u.kim\","
    "\"cause\":\"s-18\"}}",
    /* payment.scheduled */
    "{\"v\":1,\"id\":\"s-21\",\"type\":\"payment.scheduled\",\"ts\":1717000000020,\"src\":\"api\","
    "\"customer\":\"acme\",\"data\":{\"payment\":\"P-1\",\"amount\":250000,"
    "\"currency\":\"CNY\",\"due_at\":1720000000000}}",
    /* payment.received */
    "{\"v\":1,\"id\":\"s-22\",\"type\":\"payment.received\",\"ts\":1717000000021,\"src\":\"api\","
    "\"customer\":\"acme\",\"data\":{\"payment\":\"P-1\",\"amount\":250000}}",
    /* order.placed */
    "{\"v\":1,\"id\":\"s-23\",\"type\":\"order.placed\",\"ts\":1717000000022,\"src\":\"api\","
    "\"customer\":\"acme\",\"data\":{\"order\":\"O-1\",\"product\":\"toner\","
    "\"rrule\":\"FREQ=MONTHLY;INTERVAL=2\",\"advance_days\":7}}",
    /* email.received */
    "{\"v\":1,\"id\":\"s-24\",\"type\":\"email.received\",\"ts\":1717000000023,\"src\":\"email\","
    "\"customer\":\"acme\",\"data\":{\"from\":\"li@acme.example\",\"to\":\"support@tp.example\","
    "\"subject\":\"Re: export\",\"message_id\":\"<m2@acme.example>\","
    "\"in_reply_to\":\"<m1@acme.example>\",\"text\":\"still broken\"}}",
    /* ticket.escalated */
    "{\"v\":1,\"id\":\"s-25\",\"type\":\"ticket.escalated\",\"ts\":1717000000024,"
    "\"src\":\"ticketing\",\"customer\":\"acme\",\"data\":{\"ticket\":\"T-1\",\"step\":\"lead\","
    "\"owner\":\"eng-lead\",\"target\":\"resolution\",\"deadline\":1717000000000}}",
    /* survey.requested */
    "{\"v\":1,\"id\":\"s-26\",\"type\":\"survey.requested\",\"ts\":1717000000025,"
    "\"src\":\"ticketing\",\"customer\":\"acme\",\"data\":{\"ticket\":\"T-1\","
    "\"owner\":\"li@acme.example\",\"email\":\"li@acme.example\"}}",
};

/* A list field checks each item and names it (TP_FIELD_ARRAY), and a
 * conditional rule names the field it requires. */
static void test_lists_and_rules(void **state) {
    (void)state;
    tp_event_t ev;
    tp_event_error_t err;
    tp_event_init(&ev);
    json_t *j = json_loads(
        "{\"type\":\"customer.updated\",\"ts\":1,\"src\":\"api\",\"customer\":\"a\","
        "\"data\":{\"key_people\":[{\"name\":\"Wang\"},{\"role\":\"cfo\"}]}}", 0, NULL);
    assert_int_equal(tp_event_from_json(&ev, j, &err), -1);
    assert_string_equal(err.field, "data.key_people[1].name");
    json_decref(j);
    j = json_loads("{\"type\":\"customer.updated\",\"ts\":1,\"src\":\"api\","
                   "\"customer\":\"a\",\"data\":{\"modules\":\"MES\"}}", 0, NULL);
    assert_int_equal(tp_event_from_json(&ev, j, &err), -1);
    assert_string_equal(err.field, "data.modules");
    json_decref(j);
    j = json_loads("{\"type\":\"deal.closed\",\"ts\":1,\"src\":\"api\",\"customer\":\"a\","
                   "\"data\":{\"opportunity\":\"D\",\"outcome\":\"lost\"}}", 0, NULL);
    assert_int_equal(tp_event_from_json(&ev, j, &err), -1);
    assert_string_equal(err.field, "data.reason");
    assert_string_equal(err.message, "required when outcome is lost");
    json_decref(j);
    j = json_loads("{\"type\":\"deal.closed\",\"ts\":1,\"src\":\"api\",\"customer\":\"a\","
                   "\"data\":{\"opportunity\":\"D\",\"outcome\":\"won\"}}", 0, NULL);
    assert_int_equal(tp_event_from_json(&ev, j, &err), 0);
    tp_event_clear(&ev);
    json_decref(j);
}

/* R-REORDER-1: an order's rrule is checked at the door (TP_FIELD_RRULE),
 * naming the field and libical's verdict; a good rule passes. */
static void test_order_rrule_checked(void **state) {
    (void)state;
    static const char *fmt =
        "{\"type\":\"order.placed\",\"ts\":1,\"src\":\"api\",\"customer\":\"acme\","
        "\"data\":{\"order\":\"O-1\",\"product\":\"toner\",\"rrule\":\"%s\"}}";
    char text[512];
    snprintf(text, sizeof text, fmt, "FREQ=SOMETIMES");
    expect_reject(load(text), "data.rrule", "must be an RFC 5545 rule: ");
    snprintf(text, sizeof text, fmt, "FREQ=HOURLY");
    expect_reject(load(text), "data.rrule", "finer than DAILY");
    tp_event_t ev;
    snprintf(text, sizeof text, fmt, "FREQ=WEEKLY;INTERVAL=3;BYDAY=MO;COUNT=10");
    accept_json(&ev, text);
    assert_int_equal(ev.type, TP_EVENT_ORDER_PLACED);
    tp_event_clear(&ev);
}

static void test_round_trip_every_type(void **state) {
    (void)state;
    int seen[TP_EVENT_COUNT] = {0};
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
        tp_event_t a, b, c;
        accept_json(&a, samples[i]);
        seen[a.type]++;
        /* JSON -> event -> msgpack -> event -> JSON -> event */
        through_msgpack(&a, &b);
        json_t *ja = tp_event_to_json(&a);
        json_t *jb = tp_event_to_json(&b);
        if (!json_equal(ja, jb)) fail_msg("%s: msgpack round trip differs", samples[i]);
        tp_event_error_t err;
        tp_event_init(&c);
        assert_int_equal(tp_event_from_json(&c, jb, &err), 0);
        json_t *jc = tp_event_to_json(&c);
        assert_true(json_equal(ja, jc));
        json_t *orig = load(samples[i]);
        if (!json_equal(orig, ja)) fail_msg("%s: JSON round trip differs", samples[i]);
        json_decref(orig);
        json_decref(ja);
        json_decref(jb);
        json_decref(jc);
        tp_event_clear(&a);
        tp_event_clear(&b);
        tp_event_clear(&c);
    }
    for (int t = 1; t < TP_EVENT_COUNT; t++)
        if (seen[t] == 0) fail_msg("no sample for %s", tp_proto_type_name((tp_event_type_t)t));
}

/* ---------------------------------------------------------------------
 * msgpack: hostile bytes
 * ------------------------------------------------------------------ */

/* A valid packed sample event, for truncation and mutation. Caller
 * destroys `sb`. */
static void packed_lead(msgpack_sbuffer *sb) {
    tp_event_t ev;
    accept_json(&ev, LEAD);
    msgpack_sbuffer_init(sb);
    assert_int_equal(tp_event_pack(&ev, sb), 0);
    tp_event_clear(&ev);
}

static void test_mp_huge_array_header(void **state) {
    (void)state;
    /* 5 bytes claiming 4294967295 elements: an unpacker trusting the
     * header would allocate ~64 GB of msgpack_object. The scan must refuse
     * it at the header, before msgpack_unpack_next, at once. */
    const unsigned char a32[] = {0xdd, 0xff, 0xff, 0xff, 0xff};
    double t0 = now_ms();
    expect_reject_mp(a32, sizeof a32, "", "claims 4294967295 elements");
    /* Inside an otherwise plausible envelope: {"data": array32(2^32-1)} */
    const unsigned char in_map[] = {0x81, 0xa4, 'd', 'a', 't', 'a', 0xdd, 0xff, 0xff, 0xff, 0xff, 0x01};
    expect_reject_mp(in_map, sizeof in_map, "", "claims 4294967295 elements");
    /* Many small claims that only fail together. */
    const unsigned char nested[] = {0x92, 0xdc, 0x00, 0x05, 0x01, 0x01, 0x01};
    expect_reject_mp(nested, sizeof nested, "", "claims 5 elements");
    assert_true(now_ms() - t0 < 50.0);
}

static void test_mp_huge_map_header(void **state) {
    (void)state;
    const unsigned char m32[] = {0xdf, 0x80, 0x00, 0x00, 0x00, 0xa1, 'v', 0x01};
    double t0 = now_ms();
    expect_reject_mp(m32, sizeof m32, "", "claims 4294967296 elements"); /* 2^31 pairs */
    const unsigned char m16[] = {0xde, 0xff, 0xff, 0xa1, 'v'};
    expect_reject_mp(m16, sizeof m16, "", "claims 131070 elements");
    assert_true(now_ms() - t0 < 50.0);
}

static void test_mp_huge_str_header(void **state) {
    (void)state;
    /* {"type": str32 of 1 GB} with 3 bytes present */
    const unsigned char s32[] = {0x81, 0xa4, 't', 'y', 'p', 'e', 0xdb, 0x40, 0x00, 0x00, 0x00,
                                 'l', 'e', 'a'};
    double t0 = now_ms();
    expect_reject_mp(s32, sizeof s32, "", "claims 1073741824 bytes");
    const unsigned char b32[] = {0xc6, 0xff, 0xff, 0xff, 0xff, 0x00};
    expect_reject_mp(b32, sizeof b32, "", "claims 4294967295 bytes");
    const unsigned char e32[] = {0xc9, 0x7f, 0xff, 0xff, 0xff, 0x01, 0x00};
    expect_reject_mp(e32, sizeof e32, "", "claims 2147483648 bytes"); /* + type byte */
    const unsigned char hdr_cut[] = {0xdb, 0x00, 0x00};
    expect_reject_mp(hdr_cut, sizeof hdr_cut, "", "truncated");
    assert_true(now_ms() - t0 < 50.0);
}

static void test_mp_depth(void **state) {
    (void)state;
    unsigned char deep[101];
    memset(deep, 0x91, 100); /* 100 nested one-element arrays */
    deep[100] = 0xc0;
    expect_reject_mp(deep, sizeof deep, "", "deeper than 8");

    /* Depth 9 through maps: the envelope, data, then 7 more. */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    for (int i = 0; i < 8; i++) {
        msgpack_pack_str_with_body(&pk, "k", 1);
        msgpack_pack_map(&pk, 1);
    }
    msgpack_pack_str_with_body(&pk, "k", 1);
    msgpack_pack_nil(&pk);
    expect_reject_mp(sb.data, sb.size, "", "deeper than 8");
    msgpack_sbuffer_destroy(&sb);

    /* Exactly 8 is fine as far as the scan goes (then the envelope is
     * checked: no type). */
    const unsigned char eight[] = {0x81, 0xa1, 'x', 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x90};
    expect_reject_mp(eight, sizeof eight, "type", "is required");
}

static void test_mp_truncated_and_trailing(void **state) {
    (void)state;
    msgpack_sbuffer sb;
    packed_lead(&sb);
    /* Every proper prefix is rejected. */
    for (size_t n = 0; n < sb.size; n++) {
        tp_event_t ev;
        tp_event_error_t err;
        tp_event_init(&ev);
        if (tp_event_from_msgpack(&ev, sb.data, n, &err) != -1)
            fail_msg("prefix of %zu/%zu bytes accepted", n, sb.size);
        assert_null(ev.data);
    }
    expect_reject_mp(sb.data, sb.size - 1, "", "malformed msgpack");
    expect_reject_mp(NULL, 0, "", "empty");
    /* Trailing garbage: one byte, or a whole second event. */
    char *two = malloc(2 * sb.size);
    assert_non_null(two);
    memcpy(two, sb.data, sb.size);
    two[sb.size] = (char)0xc0;
    expect_reject_mp(two, sb.size + 1, "", "1 trailing bytes");
    memcpy(two + sb.size, sb.data, sb.size);
    expect_reject_mp(two, 2 * sb.size, "", "trailing");
    free(two);
    msgpack_sbuffer_destroy(&sb);
}

static void test_mp_values_rejected(void **state) {
    (void)state;
    /* Builds {"v":1,"type":"call.started","ts":1,"src":"phone","data":{...,<key>:<raw>}} */
    struct {
        const char *key;
        unsigned char raw[16];
        size_t len;
        const char *field, *msg;
    } cases[] = {
        {"from", {0xc4, 0x02, 'h', 'i'}, 4, "data.from", "binary"},
        {"from", {0xd4, 0x01, 0x00}, 3, "data.from", "extension"},
        {"from", {0xa2, 0xc3, 0x28}, 3, "data.from", "UTF-8"},
        {"from", {0xa2, 'a', 0x00}, 3, "data.from", "UTF-8"},
        {"n", {0xcf, 0x80, 0, 0, 0, 0, 0, 0, 0}, 9, "data.n", "number out of range"},
        {"n", {0xcb, 0x7f, 0xf0, 0, 0, 0, 0, 0, 0}, 9, "data.n", "number out of range"}, /* inf */
        {"n", {0xc1}, 1, "", "invalid byte 0xc1"},
        {"from", {0x01}, 1, "data.from", "must be a string"},
        {"from", {0xca, 0x3f, 0x80, 0, 0}, 5, "data.from", "must be a string"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 5);
        msgpack_pack_str_with_body(&pk, "v", 1);
        msgpack_pack_int(&pk, 1);
        msgpack_pack_str_with_body(&pk, "type", 4);
        msgpack_pack_str_with_body(&pk, "call.started", 12);
        msgpack_pack_str_with_body(&pk, "ts", 2);
        msgpack_pack_int(&pk, 1);
        msgpack_pack_str_with_body(&pk, "src", 3);
        msgpack_pack_str_with_body(&pk, "phone", 5);
        msgpack_pack_str_with_body(&pk, "data", 4);
        int own_from = strcmp(cases[i].key, "from") == 0;
        msgpack_pack_map(&pk, own_from ? 3 : 4);
        if (!own_from) {
            msgpack_pack_str_with_body(&pk, "from", 4);
            msgpack_pack_str_with_body(&pk, "+4930", 5);
        }
        msgpack_pack_str_with_body(&pk, "to", 2);
        msgpack_pack_str_with_body(&pk, "+4940", 5);
        msgpack_pack_str_with_body(&pk, "direction", 9);
        msgpack_pack_str_with_body(&pk, "in", 2);
        msgpack_pack_str_with_body(&pk, cases[i].key, strlen(cases[i].key));
        msgpack_sbuffer_write(&sb, (const char *)cases[i].raw, cases[i].len);
        expect_reject_mp(sb.data, sb.size, cases[i].field, cases[i].msg);
        msgpack_sbuffer_destroy(&sb);
    }

    /* Non-string keys, duplicate keys, a root that is not a map. */
    const unsigned char int_key[] = {0x81, 0x01, 0x02};
    expect_reject_mp(int_key, sizeof int_key, "", "keys must be strings");
    const unsigned char dup[] = {0x82, 0xa1, 'v', 0x01, 0xa1, 'v', 0x02};
    expect_reject_mp(dup, sizeof dup, "v", "duplicate key");
    const unsigned char arr[] = {0x91, 0x01};
    expect_reject_mp(arr, sizeof arr, "", "must be a map");
    const unsigned char nul_key[] = {0x81, 0xa3, 't', 0x00, 'x', 0x01};
    expect_reject_mp(nul_key, sizeof nul_key, "t?x", "UTF-8");
}

static void test_mp_mutations_do_not_crash(void **state) {
    (void)state;
    /* Every byte of a valid event replaced by a handful of interesting
     * values: whatever the verdict, no crash, no leak, no over-read (run
     * under ASan), and any accepted event packs again. */
    static const unsigned char vals[] = {0x00, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0,
                                         0xc1, 0xc4, 0xc7, 0xca, 0xcb, 0xcf, 0xd3, 0xd8, 0xd9,
                                         0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0xe0, 0xff};
    msgpack_sbuffer sb;
    packed_lead(&sb);
    char *buf = malloc(sb.size);
    assert_non_null(buf);
    int accepted = 0;
    for (size_t i = 0; i < sb.size; i++) {
        for (size_t k = 0; k < sizeof vals; k++) {
            memcpy(buf, sb.data, sb.size);
            buf[i] = (char)vals[k];
            tp_event_t ev;
            tp_event_error_t err;
            tp_event_init(&ev);
            if (tp_event_from_msgpack(&ev, buf, sb.size, &err) == 0) {
                accepted++;
                msgpack_sbuffer out;
                msgpack_sbuffer_init(&out);
                assert_int_equal(tp_event_pack(&ev, &out), 0);
                msgpack_sbuffer_destroy(&out);
            } else {
                assert_null(ev.data);
            }
            tp_event_clear(&ev);
        }
    }
    assert_true(accepted > 0); /* e.g. changed letters inside strings */
    free(buf);
    msgpack_sbuffer_destroy(&sb);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lead_captured_valid),
        cmocka_unit_test(test_minimal_and_defaults),
        cmocka_unit_test(test_missing_required),
        cmocka_unit_test(test_wrong_type),
        cmocka_unit_test(test_out_of_range),
        cmocka_unit_test(test_bad_enum),
        cmocka_unit_test(test_bad_utf8_in_string),
        cmocka_unit_test(test_too_long_string),
        cmocka_unit_test(test_unknown_type),
        cmocka_unit_test(test_bad_id_chars),
        cmocka_unit_test(test_nested_contact_email),
        cmocka_unit_test(test_extra_fields_bounded),
        cmocka_unit_test(test_validate_data_direct),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_unknown_fields_round_trip),
        cmocka_unit_test(test_pack_omits_empty_and_appends),
        cmocka_unit_test(test_copy_is_independent),
        cmocka_unit_test(test_round_trip_every_type),
        cmocka_unit_test(test_lists_and_rules),
        cmocka_unit_test(test_order_rrule_checked),
        cmocka_unit_test(test_mp_huge_array_header),
        cmocka_unit_test(test_mp_huge_map_header),
        cmocka_unit_test(test_mp_huge_str_header),
        cmocka_unit_test(test_mp_depth),
        cmocka_unit_test(test_mp_truncated_and_trailing),
        cmocka_unit_test(test_mp_values_rejected),
        cmocka_unit_test(test_mp_mutations_do_not_crash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
