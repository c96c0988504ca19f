/* tpctl_keygen.c: keys an operator hands out.
 *
 *   tpctl keygen curve NAME... [--dir D]      (D: [bus] keys_dir by default)
 *     writes D/NAME.key (public and secret key, mode 0600: for that process
 *     kind only) and D/NAME.pub (the public key: intake needs every
 *     service's and producer's, each service needs intake's) for every NAME
 *     without a key yet; an existing pair is kept, so it can run at every
 *     start. Keys are ZeroMQ's Z85 text from zmq_curve_keypair (libsodium).
 *     (Was tools/tp-keygen.)
 *   tpctl keygen apikey NAME --scopes S[,S...]
 *     prints a new integration's section for intake's keys file
 *     ([intake] keys_file, read by services/intake/intake_auth.c): a
 *     random 256-bit key (libsodium) as 64 hex digits and its scopes,
 *     checked against intake's own scope list (TP_SCOPE_MAP).
 *
 * Owns only the files it creates; never overwrites a secret key. */
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "intake_auth.h"
#include "tpctl.h"

/* Writes `text` to `path` created with `mode`, only if it does not exist. */
static int write_new(tpctl_t *t, const char *path, mode_t mode, const char *text) {
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, mode);
    if (fd < 0) return tpctl_fail(t, TPCTL_FAIL, "%s: %s", path, strerror(errno)), -1;
    size_t len = strlen(text);
    int ok = write(fd, text, len) == (ssize_t)len;
    ok = close(fd) == 0 && ok;
    if (!ok) return tpctl_fail(t, TPCTL_FAIL, "%s: write failed", path), -1;
    return 0;
}

/* One pair; its outcome appended to `out`. */
static int curve_one(tpctl_t *t, const char *dir, const char *name, json_t *out) {
    char key_path[4096], pub_path[4096];
    snprintf(key_path, sizeof key_path, "%s/%s.key", dir, name);
    snprintf(pub_path, sizeof pub_path, "%s/%s.pub", dir, name);
    if (access(key_path, F_OK) == 0) {
        json_array_append_new(out, json_pack("{s:s, s:s, s:s, s:s}", "name", name, "key_file",
                                             key_path, "pub_file", pub_path, "status", "kept"));
        return 0;
    }
    char public_key[41], secret_key[41], text[512];
    if (zmq_curve_keypair(public_key, secret_key) != 0)
        return tpctl_fail(t, TPCTL_FAIL, "zmq_curve_keypair: %s", zmq_strerror(errno)), -1;
    snprintf(text, sizeof text,
             "; CURVE key pair of %s (tpctl keygen curve). Secret: for %s only.\n"
             "[curve]\npublic = %s\nsecret = %s\n", name, name, public_key, secret_key);
    sodium_memzero(secret_key, sizeof secret_key);
    int rc = write_new(t, key_path, 0600, text);
    sodium_memzero(text, sizeof text);
    if (rc < 0) return -1;
    snprintf(text, sizeof text, "; CURVE public key of %s (tpctl keygen curve).\n"
             "[curve]\npublic = %s\n", name, public_key);
    unlink(pub_path); /* a stale one from an older pair */
    if (write_new(t, pub_path, 0644, text) < 0) return -1;
    json_array_append_new(out, json_pack("{s:s, s:s, s:s, s:s, s:s}", "name", name, "key_file",
                                         key_path, "pub_file", pub_path, "public", public_key,
                                         "status", "new"));
    return 0;
}

static int curve(tpctl_t *t, int argc, char **argv) {
    t->command = "keygen curve";
    const char *dir = NULL;
    json_t *names = json_array();
    for (int i = 0; i < argc; i++) {
        int o = tpctl_opt(t, argc, argv, &i, "--dir", &dir);
        if (o < 0) return json_decref(names), TPCTL_USAGE;
        if (o) continue;
        if (argv[i][0] == '-' || !argv[i][0] || strchr(argv[i], '/') || strchr(argv[i], '.'))
            return json_decref(names),
                   tpctl_fail(t, TPCTL_USAGE, "'%s' is not a name (letters, digits, - and _)",
                              argv[i]);
        json_array_append_new(names, json_string(argv[i]));
    }
    if (!dir) dir = tp_config_str(t->cfg, "bus", "keys_dir", "");
    if (!dir || !*dir)
        return json_decref(names), tpctl_fail(t, TPCTL_USAGE, "--dir: where the keys go "
                                                               "(or [bus] keys_dir)");
    if (json_array_size(names) == 0)
        return json_decref(names), tpctl_fail(t, TPCTL_USAGE, "NAME: at least one");
    if (!zmq_has("curve"))
        return json_decref(names), tpctl_fail(t, TPCTL_FAIL, "this libzmq has no CURVE");
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return json_decref(names), tpctl_fail(t, TPCTL_FAIL, "--dir %s: %s", dir, strerror(errno));
    json_t *out = json_array();
    int rc = TPCTL_OK;
    size_t i;
    json_t *n;
    json_array_foreach(names, i, n) if (curve_one(t, dir, json_string_value(n), out) < 0) rc =
        TPCTL_FAIL;
    if (t->json) {
        json_t *doc = json_pack("{s:s, s:o}", "dir", dir, "keys", out);
        if (tpctl_print_json(doc) != TPCTL_OK) rc = TPCTL_FAIL;
        json_decref(doc);
    } else {
        json_array_foreach(out, i, n)
            printf("%s: %s\n", json_string_value(json_object_get(n, "key_file")),
                   json_string_value(json_object_get(n, "status")));
        json_decref(out);
    }
    json_decref(names);
    return rc;
}

/* 1 when `s` (n bytes) names one of intake's scopes. */
static int scope_known(const char *s, size_t n) {
#define XX(e, bit, text) \
    if (n == strlen(text) && strncmp(s, text, n) == 0) return 1;
    TP_SCOPE_MAP(XX)
#undef XX
    return n == 1 && s[0] == '*';
}

static int apikey(tpctl_t *t, int argc, char **argv) {
    t->command = "keygen apikey";
    const char *name = NULL, *scopes = NULL;
    for (int i = 0; i < argc; i++) {
        int o = tpctl_opt(t, argc, argv, &i, "--scopes", &scopes);
        if (o < 0) return TPCTL_USAGE;
        if (o) continue;
        if (name) return tpctl_fail(t, TPCTL_USAGE, "unexpected argument '%s'", argv[i]);
        name = argv[i];
    }
    if (!name) return tpctl_fail(t, TPCTL_USAGE, "NAME: the integration's name is required");
    if (!*name || strpbrk(name, "[]; \t\r\n=#") || name[0] == '-')
        return tpctl_fail(t, TPCTL_USAGE, "NAME: '%s' cannot be a section name (no spaces, "
                                          "brackets, ';', '=' or '#')", name);
    if (!scopes || !*scopes)
        return tpctl_fail(t, TPCTL_USAGE, "--scopes is required (e.g. events:write, or * for all)");
    json_t *list = json_array();
    char joined[512] = "";
    for (const char *p = scopes; *p;) {
        p += strspn(p, ", ");
        size_t n = strcspn(p, ", ");
        if (n == 0) break;
        if (!scope_known(p, n)) {
            json_decref(list);
            return tpctl_fail(t, TPCTL_USAGE, "--scopes: unknown scope '%.*s' (events:write, "
                              "customers:read, tickets:read, reminders:read, inbox:read, "
                              "events:derived, or *)", (int)n, p);
        }
        json_array_append_new(list, json_stringn(p, n));
        size_t used = strlen(joined);
        snprintf(joined + used, sizeof joined - used, "%s%.*s", used ? ", " : "", (int)n, p);
        p += n;
    }
    if (json_array_size(list) == 0) {
        json_decref(list);
        return tpctl_fail(t, TPCTL_USAGE, "--scopes is empty");
    }
    if (sodium_init() < 0) {
        json_decref(list);
        return tpctl_fail(t, TPCTL_FAIL, "libsodium did not initialise");
    }
    unsigned char raw[32];
    char key[2 * sizeof raw + 1];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2hex(key, sizeof key, raw, sizeof raw);
    sodium_memzero(raw, sizeof raw);
    char section[1024];
    snprintf(section, sizeof section, "[%s]\nkey = %s\nscopes = %s\n", name, key, joined);
    int rc = TPCTL_OK;
    if (t->json) {
        json_t *doc = json_pack("{s:s, s:s, s:o, s:s}", "name", name, "key", key, "scopes", list,
                                "section", section);
        rc = tpctl_print_json(doc);
        json_decref(doc);
    } else {
        fputs(section, stdout);
        json_decref(list);
        fprintf(stderr, "(append to intake's keys file, [intake] keys_file; give the key to "
                        "%s only)\n", name);
    }
    sodium_memzero(key, sizeof key);
    sodium_memzero(section, sizeof section);
    return rc;
}

int tpctl_keygen(tpctl_t *t, int argc, char **argv) {
    if (argc >= 1 && strcmp(argv[0], "curve") == 0) return curve(t, argc - 1, argv + 1);
    if (argc >= 1 && strcmp(argv[0], "apikey") == 0) return apikey(t, argc - 1, argv + 1);
    return tpctl_fail(t, TPCTL_USAGE, "expected: keygen curve NAME... [--dir D] | keygen apikey "
                                      "NAME --scopes S[,S...]");
}
