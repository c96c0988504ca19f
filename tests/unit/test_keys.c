/* test_keys.c: key formatting, the shards and the reminder naming of
 * tp/keys.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "tp/keys.h"

static void test_key_fits_or_fails(void **state) {
    char out[16];
    assert_int_equal(tp_key(out, sizeof out, "tp:", "{s%d}:r:due", 3), 13);
    assert_string_equal(out, "tp:{s3}:r:due");
    assert_int_equal(tp_key(out, sizeof out, "tp:", "%s", "0123456789abcdef"), -1);
}

static void test_bucket_in_range_and_stable(void **state) {
    int b = tp_key_reminder_bucket("C01JZB000000000000000000017");
    assert_true(b >= 0 && b < TP_REMINDER_BUCKETS);
    assert_int_equal(b, tp_key_reminder_bucket("C01JZB000000000000000000017"));
    /* the bucket is the shard: FNV-1a 64 of the id, mod 16 (the Python
     * tests' tp_harness.shard computes the same) */
    assert_int_equal(tp_key_shard("C01JZB000000000000000000017"), b);
    assert_int_equal(tp_key_shard("SAT-1"), 11);
}

static void test_shard_stable_and_spread(void **state) {
    /* FNV-1a, modulo TP_SHARDS: stable across builds (the stored layout,
     * and tests/lib/tp_harness.py's shard() computes the same) */
    assert_int_equal(tp_key_shard("ACME"), 9);
    assert_int_equal(tp_key_shard("rep-1"), 0);
    assert_int_equal(tp_key_shard("C-1"), 2);
    assert_int_equal(TP_REMINDER_BUCKETS, TP_SHARDS);
    assert_int_equal(tp_key_reminder_bucket("ACME"), tp_key_shard("ACME"));
    int seen[TP_SHARDS] = {0};
    char id[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(id, sizeof id, "C%04d", i);
        int s = tp_key_shard(id);
        assert_true(s >= 0 && s < TP_SHARDS);
        seen[s]++;
    }
    for (int s = 0; s < TP_SHARDS; s++) /* about 62 each: none starved */
        assert_true(seen[s] > 20);
}

static void test_owned_keys_carry_their_shard_tag(void **state) {
    char out[128];
    assert_int_equal(tp_key_customer(out, sizeof out, "tp:", "ACME", "profile"), 22);
    assert_string_equal(out, "tp:{s9}:c:ACME:profile");
    assert_true(tp_key_customer(out, sizeof out, "tp:", "ACME", "ticket:%s", "T-1") > 0);
    assert_string_equal(out, "tp:{s9}:c:ACME:ticket:T-1");
    assert_true(tp_key_customer(out, sizeof out, "tp:", "ACME", "%s", "") > 0);
    assert_string_equal(out, "tp:{s9}:c:ACME:"); /* the prefix of them all */
    assert_true(tp_key_user(out, sizeof out, "tp:", "rep-1", "inbox") > 0);
    assert_string_equal(out, "tp:{s0}:u:rep-1:inbox");
    assert_true(tp_key_shard_key(out, sizeof out, "tp:", 15, "outbox:%s", "scoring") > 0);
    assert_string_equal(out, "tp:{s15}:outbox:scoring");
    assert_int_equal(tp_key_shard_key(out, sizeof out, "tp:", TP_SHARDS, "x"), -1);
    assert_int_equal(tp_key_shard_key(out, sizeof out, "tp:", -1, "x"), -1);
    assert_int_equal(tp_key_customer(out, 12, "tp:", "ACME", "profile"), -1);
    /* a consumer's tag: the key prefix without the namespace */
    assert_int_equal(tp_key_customer_tag(out, sizeof out, "ACME"), 11);
    assert_string_equal(out, "{s9}:c:ACME");
    assert_true(tp_key_user_tag(out, sizeof out, "rep-1") > 0);
    assert_string_equal(out, "{s0}:u:rep-1");
    assert_int_equal(tp_key_customer_tag(out, 8, "ACME"), -1);
}

static void test_groups_spread_customers(void **state) {
    /* 64k customers of one shard fall into the shard's groups evenly enough
     * that none holds many more than its share */
    static int count[TP_REMINDER_GROUPS];
    char id[32];
    int in_shard = 0;
    for (int i = 0; i < 4000000 && in_shard < 16 * TP_REMINDER_GROUPS; i++) {
        snprintf(id, sizeof id, "C01JZB%021d", i);
        if (tp_key_shard(id) != 3) continue;
        int g = tp_key_reminder_group(id);
        assert_true(g >= 0 && g < TP_REMINDER_GROUPS);
        count[g]++;
        in_shard++;
    }
    assert_int_equal(in_shard, 16 * TP_REMINDER_GROUPS);
    int max = 0, empty = 0;
    for (int g = 0; g < TP_REMINDER_GROUPS; g++) {
        if (count[g] > max) max = count[g];
        if (count[g] == 0) empty++;
    }
    assert_true(max <= 48); /* share 16 */
    assert_true(empty < TP_REMINDER_GROUPS / 100);
}

static void test_reminder_customer(void **state) {
    char out[64];
    const char *id = "C01JZB000000000000000000017|R-SLA-1|01JZB000000000000000000017";
    assert_int_equal(tp_key_reminder_customer(out, sizeof out, id), 27);
    assert_string_equal(out, "C01JZB000000000000000000017");
    assert_int_equal(tp_key_reminder_customer(out, sizeof out, "no-bar"), -1);
    assert_int_equal(tp_key_reminder_customer(out, sizeof out, "|R-SLA-1"), -1);
    assert_int_equal(tp_key_reminder_customer(out, 4, id), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_fits_or_fails),
        cmocka_unit_test(test_bucket_in_range_and_stable),
        cmocka_unit_test(test_shard_stable_and_spread),
        cmocka_unit_test(test_owned_keys_carry_their_shard_tag),
        cmocka_unit_test(test_groups_spread_customers),
        cmocka_unit_test(test_reminder_customer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
