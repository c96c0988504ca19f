/* test_reminder.c: a reminder's record packed (tp/reminder.h) and back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
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

/* ---- a customer's book ---- */

static json_t *book_state(void) {
    return json_pack("{s:s, s:s, s:s}", "grade", "A", "owner", "rep-1", "seq", "2");
}

static json_t *book_reminders(void) {
    json_t *sla = sla_record();
    json_object_del(sla, "rule"); /* the id gives it */
    json_t *reorder = json_pack("{s:s, s:I, s:s, s:s, s:I, s:I, s:I}", "owner", "rep-2",
                                "due_at", (json_int_t)1764000000000LL, "text", "Reorder",
                                "rrule", "FREQ=MONTHLY;COUNT=3", "dtstart",
                                (json_int_t)1763000000000LL, "occurrence",
                                (json_int_t)1764600000000LL, "ahead", (json_int_t)86400000);
    return json_pack("{s:o, s:o}", "C01JZB000000000000000000186|R-SLA-1|1", sla,
                     "C01JZB000000000000000000186|R-REORDER-1|O-7", reorder);
}

static void test_book_round_trip_stores_the_customer_once(void **state) {
    const char *cust = "C01JZB000000000000000000186";
    json_t *st = book_state(), *rems = book_reminders();
    size_t len = 0;
    char *packed = tp_book_pack(cust, st, rems, &len);
    assert_non_null(packed);
    /* the customer's id is the field's name, not in the value; the rules
     * are codes */
    assert_null(memmem(packed, len, cust, strlen(cust)));
    assert_null(memmem(packed, len, "R-SLA-1", 7));
    assert_non_null(memmem(packed, len, "O-7", 3)); /* the subject stays */
    json_t *st2 = NULL, *rems2 = NULL;
    assert_int_equal(tp_book_unpack(cust, packed, len, &st2, &rems2), 0);
    assert_true(json_equal(st, st2));
    /* records come back with their rule, from the key */
    json_object_set_new(json_object_get(rems, "C01JZB000000000000000000186|R-SLA-1|1"), "rule",
                        json_string("R-SLA-1"));
    json_object_set_new(json_object_get(rems, "C01JZB000000000000000000186|R-REORDER-1|O-7"),
                        "rule", json_string("R-REORDER-1"));
    assert_true(json_equal(rems, rems2));
    /* one book, one stored form: insertion order does not matter */
    json_t *rev = json_object();
    json_object_set(rev, "C01JZB000000000000000000186|R-REORDER-1|O-7",
                    json_object_get(rems, "C01JZB000000000000000000186|R-REORDER-1|O-7"));
    json_object_set(rev, "C01JZB000000000000000000186|R-SLA-1|1",
                    json_object_get(rems, "C01JZB000000000000000000186|R-SLA-1|1"));
    size_t len2 = 0;
    char *again = tp_book_pack(cust, st2, rev, &len2);
    assert_int_equal(len, len2);
    assert_memory_equal(packed, again, len);
    /* an inquiry's book (one reminder, small state) is well under 64 bytes */
    json_t *one = json_object();
    json_t *sla = sla_record();
    json_object_set_new(sla, "owner", json_string("rep-58"));
    json_object_set_new(one, "C01JZB000000000000000000186|R-SLA-1|1", sla);
    json_t *small = json_pack("{s:s}", "seq", "1");
    size_t len3 = 0;
    char *inquiry = tp_book_pack(cust, small, one, &len3);
    assert_true(len3 < 40);
    free(inquiry);
    json_decref(small);
    json_decref(one);
    free(again);
    json_decref(rev);
    json_decref(st2);
    json_decref(rems2);
    free(packed);
    json_decref(st);
    json_decref(rems);
}

/* A rule the scheduler does not have (not coded) is stored by its name; a
 * coded rule without a subject, and one whose subject has a '|', come back
 * as they went. */
static void test_book_keys_coded_or_named(void **state) {
    const char *cust = "C-9";
    json_t *st = json_object();
    json_t *rems = json_pack(
        "{s:{s:I}, s:{s:I}, s:{s:I}}", "C-9|R-OTHER-9|x", "due_at", (json_int_t)5,
        "C-9|R-CAD-1", "due_at", (json_int_t)6, "C-9|R-PAY-1|P-1|ahead", "due_at",
        (json_int_t)7);
    size_t len = 0;
    char *packed = tp_book_pack(cust, st, rems, &len);
    assert_non_null(packed);
    assert_non_null(memmem(packed, len, "R-OTHER-9|x", 11));
    assert_null(memmem(packed, len, "R-CAD-1", 7));
    assert_non_null(memmem(packed, len, "P-1|ahead", 9));
    json_t *st2, *rems2;
    assert_int_equal(tp_book_unpack(cust, packed, len, &st2, &rems2), 0);
    assert_int_equal(json_object_size(rems2), 3);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(rems2, "C-9|R-OTHER-9|x"), "rule")),
        "R-OTHER-9");
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(rems2, "C-9|R-CAD-1"), "due_at")), 6);
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(rems2, "C-9|R-PAY-1|P-1|ahead"), "rule")),
                        "R-PAY-1");
    /* a code no rule has: not a book this code wrote */
    const char unknown_code[] = {(char)0x93, 0x03, (char)0x80, (char)0x91, 0x7f};
    json_t *s3, *r3;
    assert_int_equal(tp_book_unpack(cust, unknown_code, sizeof unknown_code, &s3, &r3), -1);
    free(packed);
    json_decref(st2);
    json_decref(rems2);
    json_decref(st);
    json_decref(rems);
}

static void test_book_empty_and_refused(void **state) {
    json_t *st = NULL, *rems = NULL;
    /* nothing stored: an empty book */
    assert_int_equal(tp_book_unpack("C", NULL, 0, &st, &rems), 0);
    assert_int_equal(json_object_size(st), 0);
    assert_int_equal(json_object_size(rems), 0);
    size_t len = 0;
    char *packed = tp_book_pack("C", st, rems, &len);
    assert_non_null(packed);
    json_decref(st);
    json_decref(rems);
    assert_int_equal(tp_book_unpack("C", packed, len, &st, &rems), 0);
    assert_int_equal(json_object_size(rems), 0);
    json_decref(st);
    json_decref(rems);
    free(packed);
    /* an id of another customer, a customer's id that is a prefix only */
    st = book_state();
    rems = book_reminders();
    assert_null(tp_book_pack("C02", st, rems, &len));
    assert_null(tp_book_pack("C01JZB", st, rems, &len));
    /* cut short, trailing bytes, a record (the old form), not a book */
    packed = tp_book_pack("C01JZB000000000000000000186", st, rems, &len);
    json_t *s2, *r2;
    assert_int_equal(tp_book_unpack("C01JZB000000000000000000186", packed, len - 2, &s2, &r2),
                     -1);
    assert_null(s2);
    assert_null(r2);
    char *longer = malloc(len + 1);
    memcpy(longer, packed, len);
    longer[len] = (char)0xc0;
    assert_int_equal(tp_book_unpack("C", longer, len + 1, &s2, &r2), -1);
    free(longer);
    json_t *sla = sla_record();
    size_t rlen = 0;
    char *record = tp_reminder_pack(sla, &rlen);
    assert_int_equal(tp_book_unpack("C", record, rlen, &s2, &r2), -1);
    assert_int_equal(tp_book_unpack("C", "{\"ver\":\"1\"}", 11, &s2, &r2), -1);
    /* a state value that is not a string */
    const char bad_state[] = {(char)0x92, 0x03, (char)0x81, (char)0xa1, 'a', 0x01};
    assert_int_equal(tp_book_unpack("C", bad_state, sizeof bad_state, &s2, &r2), -1);
    free(record);
    json_decref(sla);
    free(packed);
    json_decref(st);
    json_decref(rems);
}

static void test_book_earliest_overall_and_per_owner(void **state) {
    json_t *rems = book_reminders();
    assert_int_equal(tp_book_earliest(rems, NULL), 1764000000000LL);
    assert_int_equal(tp_book_earliest(rems, "rep-1"), 1764720000123LL);
    assert_int_equal(tp_book_earliest(rems, "rep-2"), 1764000000000LL);
    assert_int_equal(tp_book_earliest(rems, "rep-3"), 0);
    json_object_del(json_object_get(rems, "C01JZB000000000000000000186|R-SLA-1|1"), "owner");
    assert_int_equal(tp_book_earliest(rems, "unassigned"), 1764720000123LL);
    /* a record without a due time counts for none, wherever it comes */
    json_object_set_new(rems, "C01JZB000000000000000000186|R-CAD-1",
                        json_pack("{s:s}", "owner", "rep-1"));
    json_object_set_new(rems, "C01JZB000000000000000000186|R-MAIL-1",
                        json_pack("{s:s, s:I}", "owner", "rep-1", "due_at",
                                  (json_int_t)1764800000000LL));
    assert_int_equal(tp_book_earliest(rems, NULL), 1764000000000LL);
    assert_int_equal(tp_book_earliest(rems, "rep-1"), 1764800000000LL);
    json_t *none = json_object();
    assert_int_equal(tp_book_earliest(none, NULL), 0);
    json_decref(none);
    json_decref(rems);
}

typedef struct dues_seen {
    int n;
    char ids[4][128];
    int64_t due[4];
} dues_seen_t;

static void due_seen(const char *id, int64_t due, void *arg) {
    dues_seen_t *d = arg;
    if (d->n < 4) {
        snprintf(d->ids[d->n], sizeof d->ids[0], "%s", id);
        d->due[d->n] = due;
    }
    d->n++;
}

/* The ids and due times of a book without unpacking its records: the
 * same as the unpacked book's. */
static void test_book_dues(void **state) {
    const char *cust = "C01JZB000000000000000000186";
    json_t *st = book_state(), *rems = book_reminders();
    size_t len = 0;
    char *packed = tp_book_pack(cust, st, rems, &len);
    dues_seen_t d = {0};
    assert_int_equal(tp_book_dues(cust, packed, len, due_seen, &d), 2);
    assert_int_equal(d.n, 2);
    for (int i = 0; i < 2; i++) {
        json_t *r = json_object_get(rems, d.ids[i]);
        assert_non_null(r);
        assert_int_equal(d.due[i], json_integer_value(json_object_get(r, "due_at")));
    }
    memset(&d, 0, sizeof d);
    assert_int_equal(tp_book_dues(cust, NULL, 0, due_seen, &d), 0);
    assert_int_equal(tp_book_dues(cust, packed, len - 1, due_seen, &d), -1);
    assert_int_equal(tp_book_dues(cust, "{}", 2, due_seen, &d), -1);
    /* what tp_book_unpack refuses, the walk refuses too: a state not a map */
    const char no_map[] = {(char)0x92, 0x03, (char)0x90};
    json_t *s2, *r2;
    assert_int_equal(tp_book_unpack(cust, no_map, sizeof no_map, &s2, &r2), -1);
    assert_int_equal(tp_book_dues(cust, no_map, sizeof no_map, due_seen, &d), -1);
    free(packed);
    json_decref(st);
    json_decref(rems);
}

static void test_book_owner_moves(void **state) {
    json_t *before = book_reminders(); /* rep-1 at ...0123, rep-2 at 1764000000000 */
    json_t *after = json_deep_copy(before);
    /* nothing changed: nobody moves */
    json_t *moves = tp_book_owner_moves(before, after);
    assert_int_equal(json_object_size(moves), 0);
    json_decref(moves);
    /* rep-2's reminder fires, rep-1's moves by a few ms (the same second:
     * its entry stays), a new one for rep-3 */
    json_object_del(after, "C01JZB000000000000000000186|R-REORDER-1|O-7");
    json_object_set_new(json_object_get(after, "C01JZB000000000000000000186|R-SLA-1|1"),
                        "due_at", json_integer(1764720000456LL));
    json_object_set_new(after, "C01JZB000000000000000000186|R-CAD-1",
                        json_pack("{s:s, s:I}", "owner", "rep-3", "due_at",
                                  (json_int_t)1764800000999LL));
    moves = tp_book_owner_moves(before, after);
    assert_int_equal(json_object_size(moves), 2);
    assert_int_equal(json_integer_value(json_object_get(moves, "rep-2")), 0);
    assert_int_equal(json_integer_value(json_object_get(moves, "rep-3")), 1764800000);
    assert_null(json_object_get(moves, "rep-1"));
    json_decref(moves);
    json_decref(after);
    json_decref(before);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_is_equal_and_smaller_than_json),
        cmocka_unit_test(test_recurring_fields_and_gaps),
        cmocka_unit_test(test_json_written_before_still_reads),
        cmocka_unit_test(test_bad_bytes_are_refused),
        cmocka_unit_test(test_frequent_values_are_codes_and_cause_a_delta),
        cmocka_unit_test(test_first_packed_form_still_reads),
        cmocka_unit_test(test_book_round_trip_stores_the_customer_once),
        cmocka_unit_test(test_book_keys_coded_or_named),
        cmocka_unit_test(test_book_empty_and_refused),
        cmocka_unit_test(test_book_earliest_overall_and_per_owner),
        cmocka_unit_test(test_book_owner_moves),
        cmocka_unit_test(test_book_dues),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
