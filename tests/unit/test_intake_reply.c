/* test_intake_reply.c: the reminders intake answers from a customer's book
 * (tp_query_book_reminders): every one for the customer's record, a
 * person's due by a time for GET /v1/reminders, each with its id, customer
 * and rule; bytes that are not a book refused. Books are packed here with
 * tp_book_pack, as the scheduler stores them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "intake_reply.h"
#include "tp/reminder.h"

#define CUST "C-1"
#define T 1763900000000LL /* a time, ms */

static json_t *record(const char *owner, json_int_t due) {
    json_t *r = json_pack("{s:I, s:b, s:I, s:s}", "due_at", due, "urgent", 0, "cause_ts",
                          due - 1000, "text", "Answer the web inquiry");
    if (owner) json_object_set_new(r, "owner", json_string(owner));
    return r;
}

/* A book of three reminders: rep-1's due at T+300 and T+100, one
 * unassigned (no owner) due at T+200. Caller frees; its length in *len. */
static char *book(size_t *len) {
    json_t *state = json_pack("{s:s}", "owner", "rep-1");
    json_t *reminders = json_object();
    json_object_set_new(reminders, CUST "|R-SLA-1|1", record("rep-1", T + 300));
    json_object_set_new(reminders, CUST "|R-SLA-1|2", record("rep-1", T + 100));
    json_object_set_new(reminders, CUST "|R-CAD-1", record(NULL, T + 200));
    char *packed = tp_book_pack(CUST, state, reminders, len);
    assert_non_null(packed);
    json_decref(state);
    json_decref(reminders);
    return packed;
}

static const char *id_at(const json_t *items, size_t i) {
    return json_string_value(json_object_get(json_array_get(items, i), "id"));
}

static void test_every_reminder_of_the_book_as_answered(void **state) {
    (void)state;
    size_t len;
    char *packed = book(&len);
    json_t *items = json_array();
    assert_int_equal(tp_query_book_reminders(CUST, packed, len, NULL, 0, items), 0);
    assert_int_equal(json_array_size(items), 3);
    /* in id order, each with its id, customer and rule beside its record */
    assert_string_equal(id_at(items, 0), CUST "|R-CAD-1");
    assert_string_equal(id_at(items, 1), CUST "|R-SLA-1|1");
    assert_string_equal(id_at(items, 2), CUST "|R-SLA-1|2");
    const json_t *first = json_array_get(items, 1);
    assert_string_equal(json_string_value(json_object_get(first, "customer")), CUST);
    assert_string_equal(json_string_value(json_object_get(first, "rule")), "R-SLA-1");
    assert_string_equal(json_string_value(json_object_get(first, "owner")), "rep-1");
    assert_int_equal(json_integer_value(json_object_get(first, "due_at")), T + 300);
    assert_int_equal(json_integer_value(json_object_get(first, "cause_ts")), T - 700);
    assert_string_equal(json_string_value(json_object_get(first, "text")),
                        "Answer the web inquiry");
    assert_true(json_is_false(json_object_get(first, "urgent")));
    /* appended: a second book adds to the same list */
    assert_int_equal(tp_query_book_reminders(CUST, packed, len, NULL, 0, items), 0);
    assert_int_equal(json_array_size(items), 6);
    json_decref(items);
    free(packed);
}

static void test_a_persons_reminders_due_by_a_time(void **state) {
    (void)state;
    size_t len;
    char *packed = book(&len);
    json_t *items = json_array();
    /* rep-1's, due at or before T+300: both; the unassigned one is not theirs */
    assert_int_equal(tp_query_book_reminders(CUST, packed, len, "rep-1", T + 300, items), 0);
    assert_int_equal(json_array_size(items), 2);
    assert_string_equal(id_at(items, 0), CUST "|R-SLA-1|1");
    assert_string_equal(id_at(items, 1), CUST "|R-SLA-1|2");
    json_array_clear(items);
    /* before T+300: only the one due at T+100 */
    assert_int_equal(tp_query_book_reminders(CUST, packed, len, "rep-1", T + 299, items), 0);
    assert_int_equal(json_array_size(items), 1);
    assert_string_equal(id_at(items, 0), CUST "|R-SLA-1|2");
    json_array_clear(items);
    /* a record without an owner is "unassigned"'s, as its index is */
    assert_int_equal(tp_query_book_reminders(CUST, packed, len, "unassigned", T + 1000, items),
                     0);
    assert_int_equal(json_array_size(items), 1);
    assert_string_equal(id_at(items, 0), CUST "|R-CAD-1");
    json_array_clear(items);
    /* another person: none */
    assert_int_equal(tp_query_book_reminders(CUST, packed, len, "rep-2", T + 1000, items), 0);
    assert_int_equal(json_array_size(items), 0);
    json_decref(items);
    free(packed);
}

static void test_no_book_and_bytes_that_are_not_one(void **state) {
    (void)state;
    json_t *items = json_array();
    /* none stored (an empty field): nothing, no error */
    assert_int_equal(tp_query_book_reminders(CUST, "", 0, NULL, 0, items), 0);
    assert_int_equal(json_array_size(items), 0);
    /* a reminder's own record (the layout before books), JSON, a cut book */
    json_t *one = record("rep-1", T + 100);
    size_t len;
    char *rec = tp_reminder_pack(one, &len);
    assert_int_equal(tp_query_book_reminders(CUST, rec, len, NULL, 0, items), -1);
    free(rec);
    json_decref(one);
    assert_int_equal(tp_query_book_reminders(CUST, "{\"ver\":\"1\"}", 11, NULL, 0, items), -1);
    char *packed = book(&len);
    assert_int_equal(tp_query_book_reminders(CUST, packed, len - 1, NULL, 0, items), -1);
    free(packed);
    assert_int_equal(json_array_size(items), 0);
    json_decref(items);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_reminder_of_the_book_as_answered),
        cmocka_unit_test(test_a_persons_reminders_due_by_a_time),
        cmocka_unit_test(test_no_book_and_bytes_that_are_not_one),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
