/* test_reminder.c: a reminder's record packed (tp/reminder.h) and back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tp/reminder.h"

static json_t *sla_record(void) {
    return json_pack("{s:s, s:s, s:I, s:b, s:I, s:s, s:s}", "rule", "R-SLA-1", "owner",
                     "rep-1", "due_at", (json_int_t)1764720000123LL, "urgent", 0,
                     "cause_ts", (json_int_t)1764719400123LL, "text",
                     "Answer the web inquiry", "closed_by", "contact");
}

static void test_round_trip_is_equal_and_smaller_than_json(void **state) {
    json_t *r = sla_record();
    size_t len = 0;
    char *packed = tp_reminder_pack(r, &len);
    assert_non_null(packed);
    char *text = json_dumps(r, JSON_COMPACT);
    /* the names and the rule are not stored: well under the JSON's size */
    assert_true(len < strlen(text) / 2);
    assert_null(memmem(packed, len, "R-SLA-1", 7));
    /* the rule comes back from the reminder's id */
    json_t *back = tp_reminder_unpack("C01|R-SLA-1|1", packed, len);
    assert_non_null(back);
    assert_true(json_equal(r, back));
    json_decref(back);
    back = tp_reminder_unpack("C01|R-CAD-1", packed, len);
    assert_string_equal(json_string_value(json_object_get(back, "rule")), "R-CAD-1");
    json_decref(back);
    back = tp_reminder_unpack(NULL, packed, len); /* no id: no rule */
    assert_null(json_object_get(back, "rule"));
    free(text);
    free(packed);
    json_decref(back);
    json_decref(r);
}

static void test_recurring_fields_and_gaps(void **state) {
    /* a field in the middle absent, the last ones present */
    json_t *r = json_pack("{s:s, s:s, s:I, s:b, s:s, s:I, s:I, s:I, s:I}", "rule",
                          "R-REORDER-1", "owner", "rep-2", "due_at", (json_int_t)5, "agreed", 1,
                          "rrule", "FREQ=MONTHLY;INTERVAL=2", "dtstart", (json_int_t)0,
                          "occurrence", (json_int_t)-7, "ahead", (json_int_t)86400000,
                          "until", (json_int_t)1893456000000LL);
    json_object_set_new(r, "unknown", json_string("dropped"));
    size_t len = 0;
    char *packed = tp_reminder_pack(r, &len);
    json_t *back = tp_reminder_unpack("C|R-REORDER-1|O-1", packed, len);
    assert_non_null(back);
    json_object_del(r, "unknown");
    assert_true(json_equal(r, back));
    assert_null(json_object_get(back, "urgent"));
    free(packed);
    json_decref(back);
    json_decref(r);
}

static void test_json_written_before_still_reads(void **state) {
    const char *old = "{\"rule\":\"R-CAD-1\",\"owner\":\"rep-1\",\"due_at\":7}";
    json_t *back = tp_reminder_unpack("C|R-OTHER-9", old, strlen(old));
    assert_non_null(back);
    assert_string_equal(json_string_value(json_object_get(back, "rule")), "R-CAD-1");
    assert_int_equal(json_integer_value(json_object_get(back, "due_at")), 7);
    json_decref(back);
}

static void test_bad_bytes_are_refused(void **state) {
    size_t len = 0;
    assert_null(tp_reminder_pack(NULL, &len));
    json_t *arr = json_array();
    assert_null(tp_reminder_pack(arr, &len));
    json_decref(arr);
    assert_null(tp_reminder_unpack("C|R", NULL, 0));
    assert_null(tp_reminder_unpack("C|R", "", 0));
    assert_null(tp_reminder_unpack("C|R", "{not json", 9));
    /* an array whose first field (owner) is an integer */
    const char wrong_kind[] = {(char)0x91, 0x05};
    assert_null(tp_reminder_unpack("C|R", wrong_kind, sizeof wrong_kind));
    /* a record cut short, and one with bytes after it */
    json_t *r = sla_record();
    char *packed = tp_reminder_pack(r, &len);
    assert_null(tp_reminder_unpack("C|R", packed, len - 3));
    char *longer = malloc(len + 1);
    memcpy(longer, packed, len);
    longer[len] = (char)0xc0;
    assert_null(tp_reminder_unpack("C|R", longer, len + 1));
    free(longer);
    free(packed);
    json_decref(r);
}

static void test_frequent_values_are_codes_and_cause_a_delta(void **state) {
    json_t *r = sla_record();
    size_t len0 = 0, len = 0;
    char *named = tp_reminder_pack(r, &len0);
    json_object_set_new(r, "owner", json_string("unassigned"));
    char *packed = tp_reminder_pack(r, &len);
    /* "unassigned" and "contact" are small integers, cause_ts a delta */
    assert_null(memmem(packed, len, "unassigned", 10));
    assert_null(memmem(packed, len, "contact", 7));
    assert_null(memmem(packed, len, "inquiry", 7));
    assert_true(len + 5 == len0); /* "rep-1" is 6 bytes, the code 1 */
    assert_true(len <= 20);       /* 62 in the first form */
    json_t *back = tp_reminder_unpack("C|R-SLA-1", packed, len);
    json_object_set_new(r, "rule", json_string("R-SLA-1"));
    assert_true(json_equal(r, back));
    json_decref(back);
    /* another closer as a string; a cause after its due time; no due time */
    json_object_set_new(r, "closed_by", json_string("inbound"));
    json_object_set_new(r, "cause_ts", json_integer(1764720000124LL));
    free(packed);
    packed = tp_reminder_pack(r, &len);
    back = tp_reminder_unpack("C|R-SLA-1", packed, len);
    assert_true(json_equal(r, back));
    json_decref(back);
    json_object_del(r, "due_at");
    free(packed);
    packed = tp_reminder_pack(r, &len);
    back = tp_reminder_unpack("C|R-SLA-1", packed, len);
    assert_true(json_equal(r, back));
    json_decref(back);
    json_object_set_new(r, "closed_by", json_string("other"));
    json_object_set_new(r, "text", json_string("Answer the web inquiry!"));
    json_object_set_new(r, "owner", json_string("rep-9"));
    free(packed);
    packed = tp_reminder_pack(r, &len);
    back = tp_reminder_unpack("C|R-SLA-1", packed, len);
    assert_true(json_equal(r, back));
    json_decref(back);
    free(packed);
    free(named);
    json_decref(r);
}

static void test_first_packed_form_still_reads(void **state) {
    /* [owner "rep-1", due_at 7, urgent false, cause_ts 5, text "t", closed_by "contact"] */
    const char old[] = {(char)0x96, (char)0xa5, 'r', 'e', 'p', '-', '1', 0x07, (char)0xc2,
                        0x05, (char)0xa1, 't', (char)0xa7, 'c', 'o', 'n', 't', 'a', 'c', 't'};
    json_t *back = tp_reminder_unpack("C|R-SLA-1", old, sizeof old);
    assert_non_null(back);
    json_t *want = json_pack("{s:s, s:s, s:I, s:b, s:I, s:s, s:s}", "rule", "R-SLA-1", "owner",
                             "rep-1", "due_at", (json_int_t)7, "urgent", 0, "cause_ts",
                             (json_int_t)5, "text", "t", "closed_by", "contact");
    assert_true(json_equal(want, back));
    json_decref(want);
    json_decref(back);
    /* an unknown form, and a code where the first form had a string */
    const char future[] = {(char)0x91, 0x03};
    assert_null(tp_reminder_unpack("C|R", future, sizeof future));
    const char coded_in_first[] = {(char)0x97, (char)0xc0, 0x07, (char)0xc2, 0x05, (char)0xc0,
                                   (char)0xc0, 0x01};
    assert_null(tp_reminder_unpack("C|R", coded_in_first, sizeof coded_in_first));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_is_equal_and_smaller_than_json),
        cmocka_unit_test(test_recurring_fields_and_gaps),
        cmocka_unit_test(test_json_written_before_still_reads),
        cmocka_unit_test(test_bad_bytes_are_refused),
        cmocka_unit_test(test_frequent_values_are_codes_and_cause_a_delta),
        cmocka_unit_test(test_first_packed_form_still_reads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
