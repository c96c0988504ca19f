/* intake_auth.c: integrations, scopes, request signatures and rate limits.
 *
 * Owns the integrations read from the keys file (one INI section each) and
 * from the legacy [intake] api_keys. Keeps each API key only as its SHA-256
 * (compared with sodium_memcmp against every integration, whatever the key
 * given), each signing secret until destroy (then wiped), and one token
 * bucket per integration. Must never log, answer or keep in the clear a key,
 * and never log a secret. Makes decisions only: no sockets, no Redis, no
 * clock of its own. */
#include "intake_auth.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tp/config.h"
#include "tp/log.h"

#define AUTH_NAME_MAX 64
#define AUTH_KEY_MAX 256
#define AUTH_SECRET_MAX AUTH_KEY_MAX
#define AUTH_CLIENTS_MAX 1024
#define AUTH_KEY_MIN_ADVISED 16
#define AUTH_WINDOW_DEFAULT_S 300
#define AUTH_TIMESTAMP_DIGITS 12

/* Settings of one section, to refuse one given twice. */
enum {
    SET_KEY = 1 << 0,
    SET_SECRET = 1 << 1,
    SET_SCOPES = 1 << 2,
    SET_SIGNS = 1 << 3,
    SET_WINDOW = 1 << 4,
    SET_RATE = 1 << 5,
    SET_BURST = 1 << 6,
};

struct tp_auth_client {
    char name[AUTH_NAME_MAX + 1];
    unsigned char key_hash[crypto_hash_sha256_BYTES];
    unsigned char secret[AUTH_SECRET_MAX];
    size_t secret_len;
    unsigned scopes;
    int signs;
    int64_t window_s;
    double rate, burst;  /* rate 0: unlimited */
    tp_bucket_t bucket;
    unsigned set;        /* SET_* while loading */
};

struct tp_auth {
    tp_auth_client_t *clients;
    size_t n, cap;
};

/* ---------------------------------------------------------------------
 * Scopes and the endpoint table */

const char *tp_auth_scope_name(tp_scope_t scope) {
    switch (scope) {
#define XX(name, bit, text) \
    case TP_SCOPE_##name:   \
        return text;
        TP_SCOPE_MAP(XX)
#undef XX
    default:
        return "";
    }
}

static int scope_parse(const char *text, size_t len, unsigned *out) {
    if ((len == 1 && text[0] == '*') || (len == 3 && strncmp(text, "all", 3) == 0)) {
        *out |= TP_SCOPE_ALL;
        return 0;
    }
#define XX(name, bit, t)                                                    \
    if (len == strlen(t) && strncmp(text, t, len) == 0) {                   \
        *out |= TP_SCOPE_##name;                                            \
        return 0;                                                           \
    }
    TP_SCOPE_MAP(XX)
#undef XX
    return -1;
}

/* Every path intake serves, and the scope it needs. A prefix entry ends
 * in '/'. New endpoints are added here, or they answer 404. */
static const struct {
    const char *path;
    tp_scope_t scope;
} endpoints[] = {
    {"/v1/events", TP_SCOPE_EVENTS_WRITE},
    {"/v1/customers", TP_SCOPE_CUSTOMERS_READ},  /* ?at_risk=1 */
    {"/v1/customers/", TP_SCOPE_CUSTOMERS_READ}, /* record, timeline */
    {"/v1/lookup", TP_SCOPE_CUSTOMERS_READ},
    {"/v1/pipeline", TP_SCOPE_CUSTOMERS_READ},
    {"/v1/tickets", TP_SCOPE_TICKETS_READ},
    {"/v1/tickets/", TP_SCOPE_TICKETS_READ},
    {"/v1/reminders", TP_SCOPE_REMINDERS_READ},
    {"/v1/inbox/", TP_SCOPE_INBOX_READ},
};

tp_scope_t tp_auth_scope_for(const char *method, const char *path) {
    (void)method; /* one scope per resource; the method is checked later */
    for (size_t i = 0; i < sizeof endpoints / sizeof endpoints[0]; i++) {
        const char *p = endpoints[i].path;
        size_t n = strlen(p);
        if (p[n - 1] == '/' ? strncmp(path, p, n) == 0 && path[n] != '\0'
                            : strcmp(path, p) == 0)
            return endpoints[i].scope;
    }
    return TP_SCOPE_NONE;
}

/* ---------------------------------------------------------------------
 * Loading */

typedef struct {
    tp_auth_t *auth;
    const tp_auth_options_t *opts;
    const char *file;
    char dir[PATH_MAX];
    tp_auth_client_t *current;
    char err[512];
} loader_t;

static void load_fail(loader_t *ld, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void load_fail(loader_t *ld, const char *fmt, ...) {
    if (ld->err[0]) return; /* the first error is the one to fix */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ld->err, sizeof ld->err, fmt, ap);
    va_end(ap);
}

static tp_auth_client_t *client_add(tp_auth_t *self, const char *name) {
    if (self->n == self->cap) {
        self->cap = self->cap ? self->cap * 2 : 8;
        self->clients = realloc(self->clients, self->cap * sizeof *self->clients);
        if (!self->clients) abort();
    }
    tp_auth_client_t *c = &self->clients[self->n++];
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", name);
    return c;
}

static int name_ok(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > AUTH_NAME_MAX) return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("._-", *s)) return 0;
    return 1;
}

/* A key or secret: printable ASCII without spaces. */
static int token_ok(const char *s, size_t n) {
    if (n == 0) return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] <= ' ' || s[i] > '~') return 0;
    return 1;
}

/* Reads a one-line secret file (trailing whitespace dropped) into `out`.
 * Relative paths start at the keys file's folder. Returns its length, or
 * -1 with the reason in `why`. */
static int read_secret_file(const loader_t *ld, const char *path, char *out,
                            size_t cap, char *why, size_t whylen) {
    char full[PATH_MAX];
    int flen = path[0] == '/' || !ld->dir[0]
                   ? snprintf(full, sizeof full, "%s", path)
                   : snprintf(full, sizeof full, "%s/%s", ld->dir, path);
    if (flen < 0 || (size_t)flen >= sizeof full) {
        snprintf(why, whylen, "path too long");
        return -1;
    }
    FILE *f = fopen(full, "r");
    if (!f) {
        snprintf(why, whylen, "cannot read %s: %s", full, strerror(errno));
        return -1;
    }
    size_t n = fread(out, 1, cap, f);
    int bad = ferror(f);
    int more = !bad && n == cap && fgetc(f) != EOF;
    fclose(f);
    while (n > 0 && isspace((unsigned char)out[n - 1])) n--;
    if (bad || more || n >= cap) {
        snprintf(why, whylen, "%s: %s", full, bad ? "read failed" : "too long");
        sodium_memzero(out, cap);
        return -1;
    }
    out[n] = '\0';
    return (int)n;
}

/* key / key_file / key_env and secret / secret_file / secret_env: the value
 * into `out`. Returns its length, or -1 (load_fail called). */
static int secret_value(loader_t *ld, const char *how, const char *value,
                        char *out, size_t cap, const char *what) {
    char why[PATH_MAX + 64];
    int n;
    if (strcmp(how, "") == 0) {
        n = (int)strlen(value);
        if ((size_t)n >= cap) {
            load_fail(ld, "%s: longer than %zu bytes", what, cap - 1);
            return -1;
        }
        memcpy(out, value, (size_t)n + 1);
    } else if (strcmp(how, "_file") == 0) {
        n = read_secret_file(ld, value, out, cap, why, sizeof why);
        if (n < 0) {
            load_fail(ld, "%s_file: %s", what, why);
            return -1;
        }
    } else { /* _env */
        const char *v = getenv(value);
        if (!v || !*v) {
            load_fail(ld, "%s_env: environment variable %s is not set", what, value);
            return -1;
        }
        n = (int)strlen(v);
        if ((size_t)n >= cap) {
            load_fail(ld, "%s_env: %s longer than %zu bytes", what, value, cap - 1);
            return -1;
        }
        memcpy(out, v, (size_t)n + 1);
    }
    if (!token_ok(out, (size_t)n)) {
        sodium_memzero(out, cap);
        load_fail(ld, "%s%s: must be printable ASCII without spaces", what, how);
        return -1;
    }
    return n;
}

static int parse_bool(const char *v, int *out) {
    if (!strcasecmp(v, "true") || !strcasecmp(v, "yes") || !strcasecmp(v, "on") ||
        !strcmp(v, "1"))
        *out = 1;
    else if (!strcasecmp(v, "false") || !strcasecmp(v, "no") ||
             !strcasecmp(v, "off") || !strcmp(v, "0"))
        *out = 0;
    else
        return -1;
    return 0;
}

static int parse_number(const char *v, double min, double max, double *out) {
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (errno || end == v || *end || !isfinite(d) || d < min || d > max) return -1;
    *out = d;
    return 0;
}

/* One setting; returns 1, or 0 on error (keys_parse reports the line). */
static int setting(tp_auth_client_t *c, loader_t *ld, const char *name,
                   const char *value) {
    static const char *const sources[] = {"", "_file", "_env"};
    for (int kind = 0; kind < 2; kind++) {
        const char *what = kind == 0 ? "key" : "secret";
        for (size_t s = 0; s < 3; s++) {
            char full[32];
            snprintf(full, sizeof full, "%s%s", what, sources[s]);
            if (strcmp(name, full) != 0) continue;
            unsigned bit = kind == 0 ? SET_KEY : SET_SECRET;
            if (c->set & bit) {
                load_fail(ld, "[%s]: one of %s, %s_file or %s_env, once", c->name,
                          what, what, what);
                return 0;
            }
            c->set |= bit;
            char buf[AUTH_KEY_MAX + 1]; /* keys and secrets: 1..AUTH_KEY_MAX */
            int n = secret_value(ld, sources[s], value, buf, sizeof buf, what);
            if (n < 0) return 0;
            if (kind == 0) {
                if (n < AUTH_KEY_MIN_ADVISED)
                    tp_log_warn("api keys: integration %s: key shorter than %d "
                                "bytes; use a random one (openssl rand -hex 32)",
                                c->name, AUTH_KEY_MIN_ADVISED);
                crypto_hash_sha256(c->key_hash, (const unsigned char *)buf, (size_t)n);
            } else {
                memcpy(c->secret, buf, (size_t)n);
                c->secret_len = (size_t)n;
            }
            sodium_memzero(buf, sizeof buf);
            return 1;
        }
    }
    struct {
        const char *name;
        unsigned bit;
    } once[] = {{"scopes", SET_SCOPES},        {"require_signature", SET_SIGNS},
                {"replay_window", SET_WINDOW}, {"rate", SET_RATE},
                {"burst", SET_BURST}};
    unsigned bit = 0;
    for (size_t i = 0; i < sizeof once / sizeof once[0]; i++)
        if (strcmp(name, once[i].name) == 0) bit = once[i].bit;
    if (!bit) {
        load_fail(ld, "[%s]: unknown setting %s (key, key_file, key_env, scopes, "
                      "require_signature, secret, secret_file, secret_env, "
                      "replay_window, rate, burst)",
                  c->name, name);
        return 0;
    }
    if (c->set & bit) {
        load_fail(ld, "[%s]: %s given twice", c->name, name);
        return 0;
    }
    c->set |= bit;
    if (bit == SET_SCOPES) {
        const char *p = value;
        while (*p) {
            p += strspn(p, ", \t");
            size_t n = strcspn(p, ", \t");
            if (n == 0) break;
            if (scope_parse(p, n, &c->scopes) < 0) {
                load_fail(ld, "[%s]: scopes: unknown scope '%.*s' (events:write, "
                              "customers:read, tickets:read, reminders:read, "
                              "inbox:read or *)",
                          c->name, (int)n, p);
                return 0;
            }
            p += n;
        }
        if (!c->scopes) {
            load_fail(ld, "[%s]: scopes: empty", c->name);
            return 0;
        }
    } else if (bit == SET_SIGNS) {
        if (parse_bool(value, &c->signs) < 0) {
            load_fail(ld, "[%s]: require_signature: not true or false", c->name);
            return 0;
        }
    } else if (bit == SET_WINDOW) {
        int64_t ms;
        if (tp_config_parse_ms(value, &ms) < 0 || ms < 1000 || ms > 86400000) {
            load_fail(ld, "[%s]: replay_window: a duration from 1s to 24h", c->name);
            return 0;
        }
        c->window_s = ms / 1000;
    } else if (bit == SET_RATE) {
        if (parse_number(value, 0, 1e6, &c->rate) < 0) {
            load_fail(ld, "[%s]: rate: requests per second, 0 (unlimited) to 1000000",
                      c->name);
            return 0;
        }
    } else { /* SET_BURST */
        if (parse_number(value, 1, 1e7, &c->burst) < 0) {
            load_fail(ld, "[%s]: burst: requests, 1 to 10000000", c->name);
            return 0;
        }
    }
    return 1;
}

static int on_setting(void *user, const char *section, const char *name,
                      const char *value) {
    loader_t *ld = user;
    if (!ld->current || strcmp(ld->current->name, section) != 0) {
        if (!name_ok(section)) {
            load_fail(ld, "[%s]: an integration's name is 1 to %d of A-Z a-z 0-9 . _ -",
                      section, AUTH_NAME_MAX);
            ld->current = NULL;
            return 0;
        }
        for (size_t i = 0; i < ld->auth->n; i++)
            if (strcmp(ld->auth->clients[i].name, section) == 0) {
                load_fail(ld, "[%s]: integration given twice", section);
                ld->current = NULL;
                return 0;
            }
        if (ld->auth->n == AUTH_CLIENTS_MAX) {
            load_fail(ld, "more than %d integrations", AUTH_CLIENTS_MAX);
            return 0;
        }
        ld->current = client_add(ld->auth, section);
    }
    return setting(ld->current, ld, name, value);
}

static char *trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    char *end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1])) *--end = '\0';
    return s;
}

/* The keys file, line by line: "[section]", "name = value", comments
 * after ';' or '#' at the start of a line or ';' after a space. Lines of
 * any length (a key of 256 bytes fits; inih would cut it at 200). Calls
 * on_setting per value; returns 0, the number of the first bad line, or -1
 * when the file cannot be read (errno). */
static int keys_parse(const char *path, loader_t *ld) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char *line = NULL, section[AUTH_NAME_MAX * 2 + 2] = "";
    size_t cap = 0;
    int lineno = 0, bad = 0;
    while (!bad && getline(&line, &cap, f) >= 0) {
        lineno++;
        char *p = trim(line);
        if (*p == '\0' || *p == ';' || *p == '#') continue;
        for (char *c = p + 1; *c; c++)
            if (*c == ';' && isspace((unsigned char)c[-1])) {
                *c = '\0';
                p = trim(p);
                break;
            }
        if (*p == '[') {
            char *close = strchr(p, ']');
            if (!close || close[1] != '\0') {
                load_fail(ld, "a section header is [name]");
                bad = lineno;
                continue;
            }
            *close = '\0';
            snprintf(section, sizeof section, "%s", trim(p + 1));
            continue;
        }
        char *eq = strchr(p, '=');
        if (!eq) {
            load_fail(ld, "not a name = value line");
            bad = lineno;
            continue;
        }
        *eq = '\0';
        char *name = trim(p), *value = trim(eq + 1);
        if (!*name) {
            load_fail(ld, "a setting without a name");
            bad = lineno;
        } else if (!on_setting(ld, section, name, value)) {
            bad = lineno;
        }
    }
    sodium_memzero(line, cap); /* it held keys and secrets */
    free(line);
    fclose(f);
    return bad;
}

/* Defaults, then what every integration must have. Returns 0 or -1. */
static int client_finish(tp_auth_client_t *c, loader_t *ld) {
    if (!(c->set & SET_KEY)) {
        load_fail(ld, "%s: [%s]: no key (key, key_file or key_env)", ld->file, c->name);
        return -1;
    }
    if (!(c->set & SET_SCOPES)) {
        load_fail(ld, "%s: [%s]: no scopes (e.g. scopes = events:write)", ld->file,
                  c->name);
        return -1;
    }
    if (c->signs && !(c->set & SET_SECRET)) {
        load_fail(ld, "%s: [%s]: require_signature needs secret, secret_file or "
                      "secret_env",
                  ld->file, c->name);
        return -1;
    }
    if (!(c->set & SET_WINDOW)) c->window_s = ld->opts->replay_window_s;
    if (!(c->set & SET_RATE)) c->rate = ld->opts->rate;
    if (!(c->set & SET_BURST))
        c->burst = ld->opts->burst >= 1 ? ld->opts->burst : c->rate > 1 ? c->rate : 1;
    return 0;
}

static int load_file(tp_auth_t *self, loader_t *ld) {
    const char *slash = strrchr(ld->file, '/');
    if (slash)
        snprintf(ld->dir, sizeof ld->dir, "%.*s", (int)(slash - ld->file), ld->file);
    size_t first = self->n;
    int line = keys_parse(ld->file, ld);
    if (line < 0) {
        load_fail(ld, "%s: cannot read: %s", ld->file, strerror(errno));
        return -1;
    }
    if (line > 0) {
        char msg[sizeof ld->err];
        memcpy(msg, ld->err, sizeof msg);
        ld->err[0] = '\0';
        load_fail(ld, "%s:%d: %s", ld->file, line, msg[0] ? msg : "not an INI line");
        return -1;
    }
    for (size_t i = first; i < self->n; i++)
        if (client_finish(&self->clients[i], ld) < 0) return -1;
    return 0;
}

static int load_legacy(tp_auth_t *self, loader_t *ld, const char *keys) {
    const char *p = keys;
    size_t index = 0;
    while (*p) {
        p += strspn(p, ", ");
        size_t n = strcspn(p, ", ");
        if (n == 0) break;
        if (n > AUTH_KEY_MAX || !token_ok(p, n)) {
            load_fail(ld, "intake.api_keys: keys are 1 to %d bytes of printable ASCII",
                      AUTH_KEY_MAX);
            return -1;
        }
        char name[32];
        snprintf(name, sizeof name, "api_keys#%zu", ++index);
        tp_auth_client_t *c = client_add(self, name);
        crypto_hash_sha256(c->key_hash, (const unsigned char *)p, n);
        c->set = SET_KEY | SET_SCOPES;
        c->scopes = TP_SCOPE_ALL;
        if (client_finish(c, ld) < 0) return -1;
        p += n;
    }
    return 0;
}

tp_auth_t *tp_auth_new(const tp_auth_options_t *opts, char *err, size_t errlen) {
    if (sodium_init() < 0) {
        snprintf(err, errlen, "sodium_init failed");
        return NULL;
    }
    tp_auth_options_t o = *opts;
    if (o.replay_window_s <= 0) o.replay_window_s = AUTH_WINDOW_DEFAULT_S;
    tp_auth_t *self = calloc(1, sizeof *self);
    if (!self) abort();
    loader_t ld = {.auth = self, .opts = &o, .file = o.keys_file};
    if (o.keys_file && o.keys_file[0] && load_file(self, &ld) < 0) goto fail;
    ld.file = "intake.api_keys";
    if (o.legacy_keys && load_legacy(self, &ld, o.legacy_keys) < 0) goto fail;
    if (self->n == 0) {
        load_fail(&ld, "no API key configured: set [intake] keys_file (or api_keys)");
        goto fail;
    }
    for (size_t i = 0; i < self->n; i++)
        for (size_t j = i + 1; j < self->n; j++)
            if (sodium_memcmp(self->clients[i].key_hash, self->clients[j].key_hash,
                              sizeof self->clients[i].key_hash) == 0) {
                load_fail(&ld, "%s and %s have the same API key: give each its own",
                          self->clients[i].name, self->clients[j].name);
                goto fail;
            }
    return self;
fail:
    snprintf(err, errlen, "%s", ld.err);
    tp_auth_destroy(&self);
    return NULL;
}

void tp_auth_destroy(tp_auth_t **self_p) {
    if (!self_p || !*self_p) return;
    tp_auth_t *self = *self_p;
    if (self->clients) sodium_memzero(self->clients, self->cap * sizeof *self->clients);
    free(self->clients);
    free(self);
    *self_p = NULL;
}

size_t tp_auth_count(const tp_auth_t *self) {
    return self->n;
}

/* ---------------------------------------------------------------------
 * Keys */

tp_auth_client_t *tp_auth_find(const tp_auth_t *self, const char *authorization) {
    if (!authorization || strncasecmp(authorization, "Bearer ", 7) != 0) return NULL;
    const char *given = authorization + 7;
    size_t len = strlen(given);
    if (len == 0 || len > AUTH_KEY_MAX) return NULL; /* no key is that long */
    unsigned char hash[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(hash, (const unsigned char *)given, len);
    tp_auth_client_t *found = NULL;
    /* every key compared, the match or not: timing tells nothing of which */
    for (size_t i = 0; i < self->n; i++) {
        int same = sodium_memcmp(hash, self->clients[i].key_hash, sizeof hash) == 0;
        if (same) found = &self->clients[i];
    }
    return found;
}

const char *tp_auth_client_name(const tp_auth_client_t *client) {
    return client->name;
}

int tp_auth_client_allows(const tp_auth_client_t *client, tp_scope_t scope) {
    return (client->scopes & (unsigned)scope) == (unsigned)scope;
}

int tp_auth_client_signs(const tp_auth_client_t *client) {
    return client->signs;
}

int64_t tp_auth_client_window(const tp_auth_client_t *client) {
    return client->window_s;
}

/* ---------------------------------------------------------------------
 * Signatures */

int tp_auth_verify(const tp_auth_client_t *client, const char *timestamp,
                   const char *signature, const char *body, size_t len,
                   int64_t now_s, unsigned char mac[TP_AUTH_MAC_BYTES], char *why,
                   size_t whylen) {
    if (!timestamp || !*timestamp) {
        snprintf(why, whylen, "signature required: X-TP-Timestamp header missing");
        return -1;
    }
    size_t digits = strspn(timestamp, "0123456789");
    if (digits == 0 || digits > AUTH_TIMESTAMP_DIGITS || timestamp[digits]) {
        snprintf(why, whylen, "X-TP-Timestamp: not Unix time in seconds");
        return -1;
    }
    int64_t ts = strtoll(timestamp, NULL, 10);
    if (ts < now_s - client->window_s) {
        snprintf(why, whylen,
                 "X-TP-Timestamp: stale, %lld s old (the replay window is %lld s)",
                 (long long)(now_s - ts), (long long)client->window_s);
        return -1;
    }
    if (ts > now_s + client->window_s) {
        snprintf(why, whylen,
                 "X-TP-Timestamp: %lld s in the future (the replay window is %lld s)",
                 (long long)(ts - now_s), (long long)client->window_s);
        return -1;
    }
    if (!signature || !*signature) {
        snprintf(why, whylen, "signature required: X-TP-Signature header missing");
        return -1;
    }
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, client->secret, client->secret_len);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)timestamp, digits);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)".", 1);
    if (len) crypto_auth_hmacsha256_update(&st, (const unsigned char *)body, len);
    crypto_auth_hmacsha256_final(&st, mac);
    sodium_memzero(&st, sizeof st);

    /* "v1=<hex>[, v1=<hex>]": several while a secret is being rotated */
    int seen_v1 = 0, match = 0;
    const char *p = signature;
    while (*p) {
        p += strspn(p, ", \t");
        size_t n = strcspn(p, ", \t");
        if (n == 0) break;
        unsigned char given[TP_AUTH_MAC_BYTES];
        size_t got = 0;
        if (n == 3 + 2 * TP_AUTH_MAC_BYTES && strncmp(p, "v1=", 3) == 0 &&
            sodium_hex2bin(given, sizeof given, p + 3, n - 3, NULL, &got, NULL) == 0 &&
            got == sizeof given) {
            seen_v1 = 1;
            match |= crypto_verify_32(given, mac) == 0;
        }
        p += n;
    }
    if (!seen_v1) {
        snprintf(why, whylen, "X-TP-Signature: no v1=<64 hex digits> signature");
        return -1;
    }
    if (!match) {
        snprintf(why, whylen,
                 "X-TP-Signature: does not match the timestamp and body "
                 "(HMAC-SHA256 of timestamp \".\" body)");
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------------
 * Rate limit: a token bucket of `burst` tokens refilled at `rate` per
 * second, per integration and per intake instance. */

/* Refills `b` up to `now_ms`; 1 when it holds a whole token, else 0 with
 * the whole seconds until it will in *retry_after_s (at least 1). */
static int bucket_ready(tp_bucket_t *b, double rate, double burst, uint64_t now_ms,
                        int *retry_after_s) {
    if (!b->started) {
        b->started = 1;
        b->tokens = burst;
    } else if (now_ms > b->last_ms) {
        b->tokens += (double)(now_ms - b->last_ms) * rate / 1000.0;
        if (b->tokens > burst) b->tokens = burst;
    }
    b->last_ms = now_ms > b->last_ms ? now_ms : b->last_ms;
    if (b->tokens >= 1.0) return 1;
    double wait_s = (1.0 - b->tokens) / rate;
    int s = (int)ceil(wait_s - 1e-9); /* 5.9999999 or 6.0000001: 6 */
    *retry_after_s = s < 1 ? 1 : s;
    return 0;
}

int tp_auth_admit(tp_auth_client_t *c, uint64_t now_ms, int *retry_after_s) {
    if (c->rate <= 0) return 0;
    if (!bucket_ready(&c->bucket, c->rate, c->burst, now_ms, retry_after_s)) return -1;
    c->bucket.tokens -= 1.0;
    return 0;
}

/* ---------------------------------------------------------------------
 * Lockout: failed authentications per peer address. A table of
 * LOCKOUT_SLOTS peers by hash; a slot in use passes to another peer only
 * once its bucket is full again (its peer has not failed for a while), so
 * a flood of addresses cannot wipe a guesser's record; a peer that finds
 * no slot is not tracked. */

#define LOCKOUT_SLOTS 4096
#define LOCKOUT_PROBES 8

typedef struct lockout_slot {
    uint64_t peer; /* hash of the address, 0: free */
    tp_bucket_t bucket;
} lockout_slot_t;

struct tp_lockout {
    double rate, burst;
    lockout_slot_t slots[LOCKOUT_SLOTS];
};

tp_lockout_t *tp_lockout_new(double rate, double burst) {
    if (rate <= 0) return NULL;
    tp_lockout_t *self = calloc(1, sizeof *self);
    if (!self) abort();
    self->rate = rate;
    self->burst = burst >= 1 ? burst : 1;
    return self;
}

void tp_lockout_destroy(tp_lockout_t **self_p) {
    if (!self_p) return;
    free(*self_p);
    *self_p = NULL;
}

static uint64_t peer_hash(const char *peer) {
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)peer; *p; p++) {
        h ^= *p;
        h *= 1099511628211ULL;
    }
    return h ? h : 1;
}

/* The slot of `peer`, a new one when `claim`, or NULL. */
static lockout_slot_t *lockout_slot(tp_lockout_t *self, const char *peer, uint64_t now_ms,
                                    int claim) {
    uint64_t h = peer_hash(peer);
    lockout_slot_t *spare = NULL;
    for (int i = 0; i < LOCKOUT_PROBES; i++) {
        lockout_slot_t *s = &self->slots[(h + (uint64_t)i) % LOCKOUT_SLOTS];
        if (s->peer == h) return s;
        int wait;
        if (!spare && (s->peer == 0 ||
                       (bucket_ready(&s->bucket, self->rate, self->burst, now_ms, &wait) &&
                        s->bucket.tokens >= self->burst)))
            spare = s;
    }
    if (!claim || !spare) return NULL;
    spare->peer = h;
    spare->bucket = (tp_bucket_t){0};
    return spare;
}

int tp_lockout_check(tp_lockout_t *self, const char *peer, uint64_t now_ms,
                     int *retry_after_s) {
    if (!self) return 0;
    lockout_slot_t *s = lockout_slot(self, peer, now_ms, 0);
    if (!s) return 0;
    return bucket_ready(&s->bucket, self->rate, self->burst, now_ms, retry_after_s) ? 0 : -1;
}

void tp_lockout_fail(tp_lockout_t *self, const char *peer, uint64_t now_ms) {
    if (!self) return;
    lockout_slot_t *s = lockout_slot(self, peer, now_ms, 1);
    int wait;
    if (s && bucket_ready(&s->bucket, self->rate, self->burst, now_ms, &wait))
        s->bucket.tokens -= 1.0;
}
