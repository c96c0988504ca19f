/* test_intake_auth.c: intake's integrations (keys file and legacy api_keys),
 * scopes and the endpoint table, request signatures and the replay window,
 * the token bucket, and configuration errors that name the file and line.
 * Keys files are written to a temporary folder; the clock is passed in. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "intake_auth.h"

static char dir[64];

static void write_file(const char *name, const char *text) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static char *path_of(const char *name) {
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return path;
}

/* Loads `text` as the keys file; NULL with the message in `err`. */
static tp_auth_t *load(const char *text, const char *legacy, char *err, size_t errlen) {
    write_file("keys.ini", text);
    tp_auth_options_t opts = {.keys_file = path_of("keys.ini"),
                              .legacy_keys = legacy,
                              .replay_window_s = 300};
    err[0] = '\0';
    return tp_auth_new(&opts, err, errlen);
}

static const char keys_ini[] =
    "; integrations\n"
    "[cti]\n"
    "key = cti-key-0123456789abcdef\n"
    "scopes = events:write\n"
    "\n"
    "[crm-sync]\n"
    "key_file = crm.key\n"
    "scopes = customers:read, tickets:read reminders:read\n"
    "rate = 2\n"
    "burst = 3\n"
    "\n"
    "[webhooks]\n"
    "key_env = TP_TEST_WEBHOOK_KEY\n"
    "scopes = *\n"
    "require_signature = true\n"
    "secret = s3cret-for-hmac\n"
    "replay_window = 2m\n";

static void test_keys_file_and_legacy_keys(void **state) {
    (void)state;
    write_file("crm.key", "crm-key-from-a-file-0001\n");
    setenv("TP_TEST_WEBHOOK_KEY", "webhook-key-from-env-0002", 1);
    char err[512];
    tp_auth_t *a = load(keys_ini, "old-key-1, old-key-2", err, sizeof err);
    assert_non_null(a);
    assert_int_equal(tp_auth_count(a), 5);

    tp_auth_client_t *c = tp_auth_find(a, "Bearer cti-key-0123456789abcdef");
    assert_non_null(c);
    assert_string_equal(tp_auth_client_name(c), "cti");
    assert_true(tp_auth_client_allows(c, TP_SCOPE_EVENTS_WRITE));
    assert_false(tp_auth_client_allows(c, TP_SCOPE_CUSTOMERS_READ));
    assert_false(tp_auth_client_signs(c));
    assert_int_equal(tp_auth_client_window(c), 300);

    c = tp_auth_find(a, "bearer crm-key-from-a-file-0001"); /* scheme: any case */
    assert_non_null(c);
    assert_string_equal(tp_auth_client_name(c), "crm-sync");
    assert_true(tp_auth_client_allows(c, TP_SCOPE_TICKETS_READ));
    assert_true(tp_auth_client_allows(c, TP_SCOPE_REMINDERS_READ));
    assert_false(tp_auth_client_allows(c, TP_SCOPE_INBOX_READ));
    assert_false(tp_auth_client_allows(c, TP_SCOPE_EVENTS_WRITE));

    c = tp_auth_find(a, "Bearer webhook-key-from-env-0002");
    assert_non_null(c);
    assert_true(tp_auth_client_signs(c));
    assert_int_equal(tp_auth_client_window(c), 120);
    assert_true(tp_auth_client_allows(c, TP_SCOPE_ALL));

    c = tp_auth_find(a, "Bearer old-key-2");
    assert_non_null(c);
    assert_string_equal(tp_auth_client_name(c), "api_keys#2");
    assert_true(tp_auth_client_allows(c, TP_SCOPE_ALL));

    const char *refused[] = {NULL, "", "Bearer", "Bearer ", "cti-key-0123456789abcdef",
                             "Basic cti-key-0123456789abcdef",
                             "Bearer cti-key-0123456789abcde",   /* a prefix */
                             "Bearer cti-key-0123456789abcdefX", /* longer */
                             "Bearer CTI-KEY-0123456789ABCDEF",  /* keys keep case */
                             "Bearer  cti-key-0123456789abcdef"};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
        assert_null(tp_auth_find(a, refused[i]));
    char huge[6000];
    memset(huge, 'k', sizeof huge - 1);
    memcpy(huge, "Bearer ", 7);
    huge[sizeof huge - 1] = '\0';
    assert_null(tp_auth_find(a, huge));
    tp_auth_destroy(&a);
    assert_null(a);
    tp_auth_destroy(&a); /* twice is fine */
    unsetenv("TP_TEST_WEBHOOK_KEY");
}

static void test_every_endpoint_has_a_scope(void **state) {
    (void)state;
    struct {
        const char *method, *path;
        tp_scope_t scope;
    } cases[] = {
        {"POST", "/v1/events", TP_SCOPE_EVENTS_WRITE},
        {"GET", "/v1/events", TP_SCOPE_EVENTS_WRITE},
        {"GET", "/v1/customers/ACME-1", TP_SCOPE_CUSTOMERS_READ},
        {"GET", "/v1/customers/ACME-1/timeline", TP_SCOPE_CUSTOMERS_READ},
        {"GET", "/v1/customers", TP_SCOPE_CUSTOMERS_READ},
        {"GET", "/v1/lookup", TP_SCOPE_CUSTOMERS_READ},
        {"GET", "/v1/pipeline", TP_SCOPE_CUSTOMERS_READ},
        {"GET", "/v1/tickets/T-1", TP_SCOPE_TICKETS_READ},
        {"GET", "/v1/tickets", TP_SCOPE_TICKETS_READ},
        {"GET", "/v1/reminders", TP_SCOPE_REMINDERS_READ},
        {"GET", "/v1/inbox/rep-1", TP_SCOPE_INBOX_READ},
        {"GET", "/v1/inbox/", TP_SCOPE_NONE},
        {"GET", "/v1/eventsx", TP_SCOPE_NONE},
        {"GET", "/v1/customersx", TP_SCOPE_NONE},
        {"GET", "/", TP_SCOPE_NONE},
        {"GET", "", TP_SCOPE_NONE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tp_scope_t got = tp_auth_scope_for(cases[i].method, cases[i].path);
        if (got != cases[i].scope) fail_msg("%s %s", cases[i].method, cases[i].path);
    }
    assert_string_equal(tp_auth_scope_name(TP_SCOPE_TICKETS_READ), "tickets:read");
    assert_string_equal(tp_auth_scope_name(TP_SCOPE_NONE), "");
}

/* Each bad file is refused with a message holding `want`. */
static void test_bad_keys_files_name_file_and_line(void **state) {
    (void)state;
    struct {
        const char *text, *want;
    } cases[] = {
        {"[a]\nkey = aaaaaaaaaaaaaaaaaaaa\nscopes = events:write, customers:rite\n",
         "keys.ini:3: [a]: scopes: unknown scope 'customers:rite'"},
        {"[a]\nkey = aaaaaaaaaaaaaaaaaaaa\nscope = events:write\n",
         "keys.ini:3: [a]: unknown setting scope"},
        {"[a]\nkey = aaaaaaaaaaaaaaaaaaaa\nkey_env = X\nscopes = *\n",
         "keys.ini:3: [a]: one of key, key_file or key_env, once"},
        {"[a]\nkey = aaaaaaaaaaaaaaaaaaaa\nscopes = *\n[b]\nkey = aaaaaaaaaaaaaaaaaaaa\n"
         "scopes = *\n",
         "a and b have the same API key"},
        {"[a]\nscopes = *\n", "keys.ini: [a]: no key"},
        {"[a]\nkey = aaaaaaaaaaaaaaaaaaaa\n", "keys.ini: [a]: no scopes"},
        {"[a]\nkey = aaaaaaaaaaaaaaaaaaaa\nscopes = *\nrequire_signature = true\n",
         "[a]: require_signature needs secret"},
        {"[a]\nkey = aaaaaaaaaaaaaaaaaaaa\nscopes = *\nrequire_signature = maybe\n",
         "keys.ini:4: [a]: require_signature: not true or false"},
        {"[a]\nkey_env = TP_TEST_UNSET_VARIABLE\nscopes = *\n",
         "keys.ini:2: key_env: environment variable TP_TEST_UNSET_VARIABLE is not set"},
        {"[a]\nkey_file = no-such.key\nscopes = *\n", "keys.ini:2: key_file: cannot read"},
        {"[a]\nkey = aaaaaaaaaaaaaaaaaaaa\nscopes = *\nrate = fast\n",
         "keys.ini:4: [a]: rate:"},
        {"[a]\nkey = aaaaaaaaaaaaaaaaaaaa\nscopes = *\nreplay_window = 0s\n",
         "keys.ini:4: [a]: replay_window:"},
        {"[a]\nkey = aaaaaaaaaaaaaaaaaaaa\nscopes = *\n[b]\nkey = bbbbbbbbbbbbbbbbbbbbb\n"
         "scopes = *\n[a]\nrate = 1\n",
         "keys.ini:8: [a]: integration given twice"},
        {"[has space]\nkey = aaaaaaaaaaaaaaaaaaaa\nscopes = *\n", "keys.ini:2: [has space]"},
        {"[a]\nkey = has space inside\nscopes = *\n", "keys.ini:2: key: must be printable"},
        {"key = aaaaaaaaaaaaaaaaaaaa\n", "keys.ini:1:"},
        {"[a]\nthis is not ini\n", "keys.ini:2: not a name = value line"},
        {"[a\nkey = x\n", "keys.ini:1: a section header is [name]"},
        {"; nothing\n", "no API key configured"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[512];
        tp_auth_t *a = load(cases[i].text, "", err, sizeof err);
        if (a) fail_msg("case %zu loaded", i);
        if (!strstr(err, cases[i].want))
            fail_msg("case %zu: '%s' lacks '%s'", i, err, cases[i].want);
    }
    /* keys and secrets are at most 256 bytes, in the file or in a file */
    char err[512], text[1024], long_key[300];
    memset(long_key, 'k', sizeof long_key);
    for (int len = 256; len <= 257; len++) {
        long_key[len] = '\0';
        snprintf(text, sizeof text, "[a]\nkey = %s\nscopes = *\n", long_key);
        tp_auth_t *a = load(text, "", err, sizeof err);
        assert_true(len == 256 ? a != NULL : a == NULL);
        tp_auth_destroy(&a);
        write_file("crm.key", long_key);
        a = load("[a]\nkey_file = crm.key\nscopes = *\n", "", err, sizeof err);
        assert_true(len == 256 ? a != NULL : a == NULL);
        if (len == 257) assert_non_null(strstr(err, "too long"));
        tp_auth_destroy(&a);
        snprintf(text, sizeof text,
                 "[a]\nkey = kkkkkkkkkkkkkkkkkkkk\nscopes = *\nrequire_signature = 1\n"
                 "secret = %s\n", long_key);
        a = load(text, "", err, sizeof err);
        assert_true(len == 256 ? a != NULL : a == NULL);
        tp_auth_destroy(&a);
        long_key[len] = 'k';
    }
    /* an unreadable keys file, and a bad legacy key */
    tp_auth_options_t opts = {.keys_file = path_of("missing.ini")};
    assert_null(tp_auth_new(&opts, err, sizeof err));
    assert_non_null(strstr(err, "missing.ini: cannot read"));
    opts = (tp_auth_options_t){.legacy_keys = "good-key, bad\x01key"};
    assert_null(tp_auth_new(&opts, err, sizeof err));
    assert_non_null(strstr(err, "intake.api_keys"));
}

static void sign(const char *secret, const char *ts, const char *body, char *out,
                 size_t cap) {
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, (const unsigned char *)secret, strlen(secret));
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)ts, strlen(ts));
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)".", 1);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)body, strlen(body));
    crypto_auth_hmacsha256_final(&st, mac);
    char hex[2 * sizeof mac + 1];
    sodium_bin2hex(hex, sizeof hex, mac, sizeof mac);
    snprintf(out, cap, "v1=%s", hex);
}

static void test_signatures(void **state) {
    (void)state;
    setenv("TP_TEST_WEBHOOK_KEY", "webhook-key-from-env-0002", 1);
    write_file("crm.key", "crm-key-from-a-file-0001\n");
    char err[512];
    tp_auth_t *a = load(keys_ini, "", err, sizeof err);
    assert_non_null(a);
    tp_auth_client_t *c = tp_auth_find(a, "Bearer webhook-key-from-env-0002");
    assert_non_null(c);
    const char *body = "{\"type\":\"contact.logged\"}";
    int64_t now = 1780000000;
    char ts[32], sig[128], why[256], two[300];
    unsigned char mac[TP_AUTH_MAC_BYTES];
    snprintf(ts, sizeof ts, "%lld", (long long)now);
    sign("s3cret-for-hmac", ts, body, sig, sizeof sig);

    assert_int_equal(tp_auth_verify(c, ts, sig, body, strlen(body), now, mac, why,
                                     sizeof why), 0);
    /* the MAC handed back is the one signed */
    char hex[2 * TP_AUTH_MAC_BYTES + 1];
    sodium_bin2hex(hex, sizeof hex, mac, sizeof mac);
    assert_string_equal(hex, sig + 3);
    /* within the window either way */
    assert_int_equal(tp_auth_verify(c, ts, sig, body, strlen(body), now + 120, mac,
                                    why, sizeof why), 0);
    assert_int_equal(tp_auth_verify(c, ts, sig, body, strlen(body), now - 120, mac,
                                    why, sizeof why), 0);
    /* stale and future */
    assert_int_equal(tp_auth_verify(c, ts, sig, body, strlen(body), now + 121, mac,
                                    why, sizeof why), -1);
    assert_non_null(strstr(why, "stale"));
    assert_int_equal(tp_auth_verify(c, ts, sig, body, strlen(body), now - 121, mac,
                                    why, sizeof why), -1);
    assert_non_null(strstr(why, "future"));
    /* a tampered body, a tampered timestamp */
    const char *tampered = "{\"type\":\"contact.logged\" }";
    assert_int_equal(tp_auth_verify(c, ts, sig, tampered, strlen(tampered), now, mac,
                                    why, sizeof why), -1);
    assert_non_null(strstr(why, "does not match"));
    char ts2[32];
    snprintf(ts2, sizeof ts2, "%lld", (long long)now + 1);
    assert_int_equal(tp_auth_verify(c, ts2, sig, body, strlen(body), now, mac, why,
                                    sizeof why), -1);
    assert_non_null(strstr(why, "does not match"));
    /* signed with another secret */
    char other[128];
    sign("not-the-secret", ts, body, other, sizeof other);
    assert_int_equal(tp_auth_verify(c, ts, other, body, strlen(body), now, mac, why,
                                    sizeof why), -1);
    /* during a rotation: either of two signatures may match */
    snprintf(two, sizeof two, "%s, %s", other, sig);
    assert_int_equal(tp_auth_verify(c, ts, two, body, strlen(body), now, mac, why,
                                    sizeof why), 0);
    /* missing and malformed headers */
    assert_int_equal(tp_auth_verify(c, NULL, sig, body, strlen(body), now, mac, why,
                                    sizeof why), -1);
    assert_non_null(strstr(why, "X-TP-Timestamp header missing"));
    assert_int_equal(tp_auth_verify(c, ts, NULL, body, strlen(body), now, mac, why,
                                    sizeof why), -1);
    assert_non_null(strstr(why, "X-TP-Signature header missing"));
    const char *bad_ts[] = {"", "-5", "17800000OO", "1780000000.5", "99999999999999",
                            " 1780000000"};
    for (size_t i = 0; i < sizeof bad_ts / sizeof bad_ts[0]; i++)
        assert_int_equal(tp_auth_verify(c, bad_ts[i], sig, body, strlen(body), now, mac,
                                         why, sizeof why), -1);
    const char *bad_sig[] = {"v1=", "v1=zz", sig + 3, "v2=00", "v1=0011"};
    for (size_t i = 0; i < sizeof bad_sig / sizeof bad_sig[0]; i++) {
        assert_int_equal(tp_auth_verify(c, ts, bad_sig[i], body, strlen(body), now, mac,
                                        why, sizeof why), -1);
        assert_non_null(strstr(why, "no v1="));
    }
    /* an empty body signs as timestamp "." alone */
    sign("s3cret-for-hmac", ts, "", sig, sizeof sig);
    assert_int_equal(tp_auth_verify(c, ts, sig, "", 0, now, mac, why, sizeof why), 0);
    tp_auth_destroy(&a);
    unsetenv("TP_TEST_WEBHOOK_KEY");
}

static void test_token_bucket(void **state) {
    (void)state;
    char err[512];
    write_file("crm.key", "crm-key-from-a-file-0001\n");
    setenv("TP_TEST_WEBHOOK_KEY", "webhook-key-from-env-0002", 1);
    tp_auth_t *a = load(keys_ini, "", err, sizeof err);
    assert_non_null(a);
    tp_auth_client_t *c = tp_auth_find(a, "Bearer crm-key-from-a-file-0001");
    int wait = 0;
    uint64_t t = 1000000;
    for (int i = 0; i < 3; i++) assert_int_equal(tp_auth_admit(c, t, &wait), 0);
    assert_int_equal(tp_auth_admit(c, t, &wait), -1); /* burst of 3 spent */
    assert_int_equal(wait, 1);
    assert_int_equal(tp_auth_admit(c, t + 499, &wait), -1);
    assert_int_equal(tp_auth_admit(c, t + 500, &wait), 0); /* 2 per second */
    assert_int_equal(tp_auth_admit(c, t + 500, &wait), -1);
    /* a long pause refills to the burst, not beyond */
    t += 60000;
    for (int i = 0; i < 3; i++) assert_int_equal(tp_auth_admit(c, t, &wait), 0);
    assert_int_equal(tp_auth_admit(c, t, &wait), -1);
    /* a clock that steps back takes nothing extra */
    assert_int_equal(tp_auth_admit(c, t - 5000, &wait), -1);
    /* no rate: unlimited */
    tp_auth_client_t *u = tp_auth_find(a, "Bearer cti-key-0123456789abcdef");
    for (int i = 0; i < 10000; i++) assert_int_equal(tp_auth_admit(u, t, &wait), 0);
    tp_auth_destroy(&a);

    /* slow rates answer how long to wait; defaults come from [intake] */
    write_file("slow.ini", "[slow]\nkey = slow-key-0123456789ab\nscopes = *\n");
    tp_auth_options_t opts = {.keys_file = path_of("slow.ini"), .rate = 0.1};
    a = tp_auth_new(&opts, err, sizeof err);
    assert_non_null(a);
    c = tp_auth_find(a, "Bearer slow-key-0123456789ab");
    assert_int_equal(tp_auth_admit(c, t, &wait), 0); /* burst: max(1, rate) */
    assert_int_equal(tp_auth_admit(c, t, &wait), -1);
    assert_int_equal(wait, 10);
    assert_int_equal(tp_auth_admit(c, t + 4000, &wait), -1);
    assert_int_equal(wait, 6);
    tp_auth_destroy(&a);
    unsetenv("TP_TEST_WEBHOOK_KEY");
}

static void test_lockout_of_failing_addresses(void **state) {
    (void)state;
    int wait = 0;
    uint64_t t = 1000000;
    /* rate 0: no lockout, and NULL is accepted everywhere */
    tp_lockout_t *none = tp_lockout_new(0, 5);
    assert_null(none);
    tp_lockout_fail(none, "10.0.0.1", t);
    assert_int_equal(tp_lockout_check(none, "10.0.0.1", t, &wait), 0);

    tp_lockout_t *l = tp_lockout_new(1.0, 3); /* 3 failures, then one a second */
    assert_non_null(l);
    assert_int_equal(tp_lockout_check(l, "10.0.0.1", t, &wait), 0); /* never failed */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(tp_lockout_check(l, "10.0.0.1", t, &wait), 0);
        tp_lockout_fail(l, "10.0.0.1", t);
    }
    assert_int_equal(tp_lockout_check(l, "10.0.0.1", t, &wait), -1);
    assert_int_equal(wait, 1);
    /* another address is not affected */
    assert_int_equal(tp_lockout_check(l, "10.0.0.2", t, &wait), 0);
    /* a flood of other addresses failing does not wipe the record */
    char peer[32];
    for (int i = 0; i < 20000; i++) {
        snprintf(peer, sizeof peer, "172.16.%d.%d", i / 256, i % 256);
        tp_lockout_fail(l, peer, t);
    }
    assert_int_equal(tp_lockout_check(l, "10.0.0.1", t + 999, &wait), -1);
    /* a token back after a second: one more try, then locked again */
    assert_int_equal(tp_lockout_check(l, "10.0.0.1", t + 1000, &wait), 0);
    tp_lockout_fail(l, "10.0.0.1", t + 1000);
    assert_int_equal(tp_lockout_check(l, "10.0.0.1", t + 1000, &wait), -1);
    /* quiet for long enough, the whole burst is back */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(tp_lockout_check(l, "10.0.0.1", t + 60000, &wait), 0);
        tp_lockout_fail(l, "10.0.0.1", t + 60000);
    }
    assert_int_equal(tp_lockout_check(l, "10.0.0.1", t + 60000, &wait), -1);
    tp_lockout_destroy(&l);
    assert_null(l);
    tp_lockout_destroy(&l);
}

static int setup(void **state) {
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/tp-auth-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    const char *names[] = {"keys.ini", "crm.key", "slow.ini"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) unlink(path_of(names[i]));
    return rmdir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys_file_and_legacy_keys),
        cmocka_unit_test(test_every_endpoint_has_a_scope),
        cmocka_unit_test(test_bad_keys_files_name_file_and_line),
        cmocka_unit_test(test_signatures),
        cmocka_unit_test(test_token_bucket),
        cmocka_unit_test(test_lockout_of_failing_addresses),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
