/* test_ident.c: normal forms of phone numbers and email addresses
 * (common/include/tp/ident.h). Every contact point must find the same
 * customer from whatever notation it was given (R-SHARED-2): a CTI screen
 * pop looks a caller up by number, a lead is matched by phone or email. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "tp/ident.h"

#define OUT_MAX 64

/* Normalises `in` with default country code "86" and checks the result. */
static void phone_is(const char *in, const char *want) {
    char out[OUT_MAX];
    memset(out, 'x', sizeof out);
    int rc = tp_ident_phone(in, "86", out, sizeof out);
    if (rc != 0) fail_msg("tp_ident_phone(\"%s\") refused, wanted %s", in, want);
    assert_string_equal(out, want);
}

static void phone_refused(const char *in) {
    char out[OUT_MAX] = "";
    int rc = tp_ident_phone(in, "86", out, sizeof out);
    if (rc != -1)
        fail_msg("tp_ident_phone(\"%s\") gave %d \"%s\", wanted -1", in, rc, out);
}

/* R-SHARED-2: the notations a Chinese mobile number arrives in from the
 * phone system, a web form and an international caller all meet in one
 * E.164 form. */
static void test_phone_mobile_notations_meet(void **state) {
    (void)state;
    phone_is("138 0013 8000", "+8613800138000");
    phone_is("13800138000", "+8613800138000");
    phone_is("138-0013-8000", "+8613800138000");
    phone_is("138.0013.8000", "+8613800138000");
    phone_is("+86 13800138000", "+8613800138000");
    phone_is("+86 138 0013 8000", "+8613800138000");
    phone_is("008613800138000", "+8613800138000");
    phone_is("0086 138 0013 8000", "+8613800138000");
    phone_is(" +86\t138 0013 8000 ", "+8613800138000");
}

/* A landline with its area code in parentheses and the trunk "0": the
 * trunk prefix is dropped and the default country code put in front. */
static void test_phone_landline_trunk_prefix(void **state) {
    (void)state;
    phone_is("(010) 6552-1234", "+861065521234");
    phone_is("010 6552 1234", "+861065521234");
    phone_is("01065521234", "+861065521234");
    phone_is("+86 10 6552 1234", "+861065521234");
    phone_is("00861065521234", "+861065521234");
}

/* The default country code is the caller's, not a constant. */
static void test_phone_default_cc_is_used(void **state) {
    (void)state;
    char out[OUT_MAX];
    assert_int_equal(tp_ident_phone("(030) 1234 5678", "49", out, sizeof out), 0);
    assert_string_equal(out, "+493012345678");
    /* an explicit country code wins over the default */
    assert_int_equal(tp_ident_phone("+1 (415) 555-0100", "49", out, sizeof out), 0);
    assert_string_equal(out, "+14155550100");
    assert_int_equal(tp_ident_phone("001 415 555 0100", "86", out, sizeof out), 0);
    assert_string_equal(out, "+14155550100");
}

static void test_phone_garbage_refused(void **state) {
    (void)state;
    phone_refused("");
    phone_refused("   ");
    phone_refused("abc");
    phone_refused("call me");
    phone_refused("138 0013 800x");
    phone_refused("13800138000 ext 12");
    phone_refused("138/0013/8000");
    phone_refused("138,0013,8000");
    phone_refused("++8613800138000");
    phone_refused("+86+13800138000");   /* '+' only in front */
    phone_refused("138+0013+8000");
    phone_refused("86 138+00138000");   /* one '+', but not in front */
    phone_refused("8613800138000+");
    phone_refused("+");
    phone_refused("\xef\xbc\x91\xef\xbc\x93\xef\xbc\x98"); /* fullwidth 138 */
    phone_refused("1380013800\n0");
}

/* E.164 allows 8..15 digits after the '+': the edges, and beyond them. */
static void test_phone_length_bounds(void **state) {
    (void)state;
    phone_refused("1234");             /* 86 + 1234 = 6 digits */
    phone_refused("12345");            /* 7 digits */
    phone_is("123456", "+86123456");   /* 8 digits: shortest allowed */
    phone_refused("+1234567");         /* 7 digits */
    phone_is("+12345678", "+12345678");
    phone_is("+123456789012345", "+123456789012345"); /* 15: longest */
    phone_refused("+1234567890123456");                /* 16 */
    phone_refused("0086 1234567890123456");            /* 16 after 00 */
    phone_refused("1380013800012345");  /* 86 + 16 digits */
    /* far more digits than any buffer inside: refused, no overflow */
    phone_refused("1234567890123456789012345678901234567890123456789012345678901234567890");
    phone_refused("+12345678901234567890123456789012345678901234567890");
}

/* The output must fit, NUL included, or nothing is promised. */
static void test_phone_output_buffer_bound(void **state) {
    (void)state;
    char out[16];
    /* "+8613800138000" is 14 characters + NUL = 15 bytes */
    memset(out, 'x', sizeof out);
    assert_int_equal(tp_ident_phone("13800138000", "86", out, 15), 0);
    assert_string_equal(out, "+8613800138000");
    memset(out, 'x', sizeof out);
    assert_int_equal(tp_ident_phone("13800138000", "86", out, 14), -1);
    assert_int_equal(out[14], 'x'); /* nothing written past the given size */
    assert_int_equal(out[13], 'x');
}

/* ---- email ---- */

static void email_is(const char *in, const char *want) {
    char out[OUT_MAX];
    memset(out, 'x', sizeof out);
    int rc = tp_ident_email(in, out, sizeof out);
    if (rc != 0) fail_msg("tp_ident_email(\"%s\") refused, wanted %s", in, want);
    assert_string_equal(out, want);
}

static void email_refused(const char *in) {
    char out[OUT_MAX] = "";
    int rc = tp_ident_email(in, out, sizeof out);
    if (rc != -1)
        fail_msg("tp_ident_email(\"%s\") gave %d \"%s\", wanted -1", in, rc, out);
}

/* R-SHARED-2: the same mailbox typed by a rep and sent by a mail server
 * finds the same customer. */
static void test_email_trimmed_and_lowercased(void **state) {
    (void)state;
    email_is("li.lei@example.com", "li.lei@example.com");
    email_is("Li.Lei@Example.COM", "li.lei@example.com");
    email_is("  LI.LEI@EXAMPLE.COM", "li.lei@example.com");
    email_is("li.lei@example.com \t\r\n", "li.lei@example.com");
    email_is("\t Li.Lei+crm@Sub.Example.Com  ", "li.lei+crm@sub.example.com");
    email_is("a@b", "a@b");
}

static void test_email_invalid_refused(void **state) {
    (void)state;
    email_refused("");
    email_refused("   ");
    email_refused("li.lei");
    email_refused("li.lei.example.com");
    email_refused("@example.com");
    email_refused("li.lei@");
    email_refused("  li.lei@  ");
    email_refused("@");
    email_refused("li@lei@example.com");
    email_refused("li lei@example.com");
    email_refused("li.lei@exam ple.com");
    email_refused("li.lei@example.com\tbcc@evil.com");
}

/* The normal form must fit, NUL included. */
static void test_email_output_buffer_bound(void **state) {
    (void)state;
    char out[16];
    memset(out, 'x', sizeof out);
    assert_int_equal(tp_ident_email(" A@B.CN ", out, 7), 0); /* "a@b.cn" + NUL */
    assert_string_equal(out, "a@b.cn");
    memset(out, 'x', sizeof out);
    assert_int_equal(tp_ident_email("A@B.CN", out, 6), -1);
    assert_int_equal(out[6], 'x');
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_phone_mobile_notations_meet),
        cmocka_unit_test(test_phone_landline_trunk_prefix),
        cmocka_unit_test(test_phone_default_cc_is_used),
        cmocka_unit_test(test_phone_garbage_refused),
        cmocka_unit_test(test_phone_length_bounds),
        cmocka_unit_test(test_phone_output_buffer_bound),
        cmocka_unit_test(test_email_trimmed_and_lowercased),
        cmocka_unit_test(test_email_invalid_refused),
        cmocka_unit_test(test_email_output_buffer_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
