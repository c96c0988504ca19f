/* fuzz_auth.c: bytes as intake's keys file and as the headers and body of a
 * request -> tp_auth_new, tp_auth_find, tp_auth_verify, tp_auth_admit
 * (services/intake/intake_auth.c).
 *
 * Input: keys file, NUL, Authorization value, NUL, X-TP-Timestamp, NUL,
 * X-TP-Signature, NUL, body (missing parts are NULL headers). The keys file
 * is a memfd opened by its /proc/self/fd path. A fixed integration (loaded
 * once) checks every signature, so inputs reach the header parser whatever
 * the file. Invariants: a failed load says why; a key found belongs to the
 * loaded set; a signature is accepted only when one of its v1= values is
 * the MAC recomputed here over the same bytes; a refusal says why in
 * printable text; the bucket answers 0, or -1 with at least 1 s to wait. */
#include <sodium.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "intake_auth.h"

#define SECRET "fuzz-signing-secret"

static int fd = -1;
static char path[64];
static tp_auth_t *fixed;
static tp_auth_client_t *signer;

static void setup(void) {
    fd = memfd_create("tp-fuzz-auth", 0);
    if (fd < 0) fuzz_die("memfd_create failed");
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    static const char keys[] = "[signer]\nkey = fuzz-key-0123456789abcdef\nscopes = *\n"
                               "require_signature = true\nsecret = " SECRET "\n"
                               "replay_window = 300s\nrate = 3\nburst = 5\n";
    if (pwrite(fd, keys, sizeof keys - 1, 0) != (ssize_t)(sizeof keys - 1))
        fuzz_die("cannot write the keys memfd");
    char err[512];
    tp_auth_options_t opts = {.keys_file = path};
    fixed = tp_auth_new(&opts, err, sizeof err);
    if (!fixed) fuzz_die("the fixed keys file does not load: %s", err);
    signer = tp_auth_find(fixed, "Bearer fuzz-key-0123456789abcdef");
    if (!signer) fuzz_die("the fixed key is not found");
}

/* The next NUL-terminated part of [*p, end), copied; NULL when none left. */
static char *part(const uint8_t **p, const uint8_t *end) {
    if (*p >= end) return NULL;
    const uint8_t *nul = memchr(*p, '\0', (size_t)(end - *p));
    size_t n = nul ? (size_t)(nul - *p) : (size_t)(end - *p);
    char *s = malloc(n + 1);
    if (!s) abort();
    memcpy(s, *p, n);
    s[n] = '\0';
    *p += n + (nul ? 1 : 0);
    return s;
}

/* 1 when a v1=<hex> item of `sig` equals `mac`. */
static int has_mac(const char *sig, const unsigned char *mac) {
    char hex[2 * TP_AUTH_MAC_BYTES + 1];
    sodium_bin2hex(hex, sizeof hex, mac, TP_AUTH_MAC_BYTES);
    for (const char *p = sig; (p = strstr(p, "v1=")) != NULL; p += 3)
        if (strncasecmp(p + 3, hex, sizeof hex - 1) == 0) return 1;
    return 0;
}

static void check_why(const char *why, size_t cap) {
    const char *end = memchr(why, '\0', cap);
    if (!end || end == why) fuzz_die("a refusal without a reason");
    for (const char *c = why; c < end; c++)
        if (*c < ' ' || *c > '~') fuzz_die("a reason with byte 0x%02x", (unsigned char)*c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (fd < 0) setup();
    const uint8_t *p = data, *end = data + size;
    char *file = part(&p, end);
    char *authz = part(&p, end);
    char *ts = part(&p, end);
    char *sig = part(&p, end);
    const char *body = (const char *)p;
    size_t body_len = (size_t)(end - p);

    size_t flen = file ? strlen(file) : 0;
    if (ftruncate(fd, 0) != 0 || pwrite(fd, file ? file : "", flen, 0) != (ssize_t)flen)
        fuzz_die("cannot write the keys memfd");
    char err[512] = "";
    tp_auth_options_t opts = {.keys_file = path, .legacy_keys = authz ? authz : "",
                              .rate = 2};
    tp_auth_t *a = tp_auth_new(&opts, err, sizeof err);
    if (!a) {
        if (!err[0]) fuzz_die("tp_auth_new failed without a reason");
    } else {
        tp_auth_client_t *c = tp_auth_find(a, authz);
        if (c) {
            if (!tp_auth_client_name(c)[0]) fuzz_die("an integration without a name");
            int wait = 0;
            for (int i = 0; i < 3; i++)
                if (tp_auth_admit(c, (uint64_t)i * 100, &wait) < 0 && wait < 1)
                    fuzz_die("a refusal with %d s to wait", wait);
        }
        tp_auth_destroy(&a);
    }

    /* the fixed signer: is the signature accepted exactly when it is right? */
    unsigned char mac[TP_AUTH_MAC_BYTES];
    char why[256];
    int64_t now = 1780000000;
    int rc = tp_auth_verify(signer, ts, sig, body, body_len, now, mac, why, sizeof why);
    if (rc == 0) {
        unsigned char want[TP_AUTH_MAC_BYTES];
        crypto_auth_hmacsha256_state st;
        crypto_auth_hmacsha256_init(&st, (const unsigned char *)SECRET, strlen(SECRET));
        crypto_auth_hmacsha256_update(&st, (const unsigned char *)ts, strlen(ts));
        crypto_auth_hmacsha256_update(&st, (const unsigned char *)".", 1);
        crypto_auth_hmacsha256_update(&st, (const unsigned char *)body, body_len);
        crypto_auth_hmacsha256_final(&st, want);
        if (memcmp(want, mac, sizeof mac) != 0) fuzz_die("the MAC handed back is wrong");
        if (!has_mac(sig, want)) fuzz_die("accepted a signature that is not the MAC");
        long long t = atoll(ts);
        if (t < now - 300 || t > now + 300) fuzz_die("accepted timestamp %s", ts);
    } else {
        check_why(why, sizeof why);
    }
    free(file);
    free(authz);
    free(ts);
    free(sig);
    return 0;
}
