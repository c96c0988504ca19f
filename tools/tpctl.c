/* tpctl: the operator's command line for a Touchpoint deployment.
 *
 *   tpctl [-c FILE] [--json] COMMAND ...     (tpctl help: every command)
 *
 * Reads the services' configuration file (-c FILE or TP_CONFIG; every key
 * overridable as TP_<SECTION>_<KEY>). Talks to Redis as its own ACL user
 * "tpctl" for what only Redis knows (heartbeats, cursors, the journal,
 * the dead letters) and to intake's HTTP API for customer data, so the key
 * layout stays intake's business. Plain output is aligned columns for
 * people; --json prints one JSON document. Exit codes: 0 ok, 1 failure,
 * 2 usage. This file owns the invocation, the Redis connection and the
 * HTTP client; each command group lives in tools/tpctl_<group>.c. Never
 * prints a password or an API key it read. */
#include "tpctl.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tp/log.h"
#include "tp/service.h"
#include "tp/store.h"

static const char USAGE[] =
    "usage: tpctl [-c FILE] [--json] COMMAND ...\n"
    "  status [--prune [--older-than DUR]]     every service instance, from heartbeats\n"
    "  lag                                      journal entries each service has not reconciled\n"
    "  customer ID [--timeline [--limit N] [--before ID]]\n"
    "  tickets --owner U [--status S] [--limit N]\n"
    "  reminders --owner U [--due-before TIME]\n"
    "  deadletter list | replay ID... | replay --all\n"
    "  journal trim [--retention DUR]           behind the slowest service's cursor\n"
    "  keygen curve NAME... [--dir D]           CURVE key pairs for the bus\n"
    "  keygen apikey NAME --scopes S[,S...]     an integration's section for the keys file\n"
    "  post FILE [--bus [--as NAME]]            an event or {\"events\":[...]} to intake\n"
    "-c FILE or TP_CONFIG: the services' configuration. --json: one JSON document.\n"
    "Exit codes: 0 ok, 1 failure, 2 usage.\n";

int tpctl_fail(tpctl_t *t, int code, const char *fmt, ...) {
    fprintf(stderr, "tpctl: %s%s", t->command ? t->command : "", t->command ? ": " : "");
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (code == TPCTL_USAGE) fprintf(stderr, "(tpctl help: the commands)\n");
    return code;
}

redisContext *tpctl_redis(tpctl_t *t) {
    if (t->redis) return t->redis;
    tp_store_options_t so;
    tp_service_store_options_as(t->cfg, "tpctl", &so);
    char err[256];
    if (tp_config_check(t->cfg, err, sizeof err) < 0) {
        tpctl_fail(t, TPCTL_FAIL, "%s", err);
        return NULL;
    }
    t->ns = so.ns ? so.ns : "tp:";
    struct timeval tv = {5, 0};
    const char *host = so.host ? so.host : "127.0.0.1";
    int port = so.port ? so.port : 6379;
    redisContext *c = redisConnectWithTimeout(host, port, tv);
    if (!c || c->err) {
        tpctl_fail(t, TPCTL_FAIL, "cannot connect to Redis at %s:%d: %s", host, port,
                   c ? c->errstr : "out of memory");
        redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    if (so.password) {
        redisReply *r = so.user ? redisCommand(c, "AUTH %s %s", so.user, so.password)
                                : redisCommand(c, "AUTH %s", so.password);
        if (!r || r->type == REDIS_REPLY_ERROR) {
            tpctl_fail(t, TPCTL_FAIL, "Redis AUTH as %s failed: %s", so.user ? so.user : "default",
                       r ? r->str : c->errstr);
            freeReplyObject(r);
            redisFree(c);
            return NULL;
        }
        freeReplyObject(r);
    }
    return t->redis = c;
}

redisReply *tpctl_reply(tpctl_t *t, redisReply *r, const char *what) {
    if (!r) {
        tpctl_fail(t, TPCTL_FAIL, "%s: %s", what, t->redis ? t->redis->errstr : "no connection");
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        tpctl_fail(t, TPCTL_FAIL, "%s: %s", what, r->str);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

/* ---- intake's HTTP API ---- */

typedef struct body_buf {
    char *bytes;
    size_t len;
} body_buf_t;

static size_t body_write(char *ptr, size_t size, size_t n, void *arg) {
    body_buf_t *b = arg;
    size_t add = size * n;
    if (b->len + add > 64u << 20) return 0; /* no answer of intake's is that big */
    char *p = realloc(b->bytes, b->len + add + 1);
    if (!p) abort();
    memcpy(p + b->len, ptr, add);
    b->bytes = p;
    b->len += add;
    b->bytes[b->len] = '\0';
    return add;
}

/* [tpctl] intake_url, else http://[intake] listen:[intake] port. */
static void intake_url(tpctl_t *t, char *out, size_t outlen) {
    const char *url = tp_config_str(t->cfg, "tpctl", "intake_url", "");
    if (*url) {
        snprintf(out, outlen, "%s", url);
        size_t n = strlen(out);
        while (n > 0 && out[n - 1] == '/') out[--n] = '\0';
        return;
    }
    const char *host = tp_config_str(t->cfg, "intake", "listen", "127.0.0.1");
    if (!*host || strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0) host = "127.0.0.1";
    int port = (int)tp_config_int(t->cfg, "intake", "port", 8080, 1, 65535);
    snprintf(out, outlen, "http://%s:%d", host, port);
}

/* The API key from [tpctl] api_key_file (its first line). */
static int api_key(tpctl_t *t, char *out, size_t outlen) {
    const char *path = tp_config_str(t->cfg, "tpctl", "api_key_file", "");
    if (!*path)
        return tpctl_fail(t, TPCTL_FAIL, "tpctl.api_key_file is not set (a file holding an "
                                         "API key of intake's, e.g. from tpctl keygen apikey)"),
               -1;
    FILE *f = fopen(path, "r");
    if (!f)
        return tpctl_fail(t, TPCTL_FAIL, "tpctl.api_key_file: %s: %s", path, strerror(errno)),
               -1;
    if (!fgets(out, (int)outlen, f)) out[0] = '\0';
    fclose(f);
    out[strcspn(out, "\r\n")] = '\0';
    if (!out[0]) return tpctl_fail(t, TPCTL_FAIL, "tpctl.api_key_file: %s is empty", path), -1;
    return 0;
}

int tpctl_http(tpctl_t *t, const char *method, const char *path, const char *body,
               size_t body_len, json_t **answer) {
    *answer = NULL;
    char base[512], url[4096], key[1024], auth[1100];
    intake_url(t, base, sizeof base);
    char err[256];
    long timeout_ms = (long)tp_config_ms(t->cfg, "tpctl", "http_timeout", "30s");
    if (api_key(t, key, sizeof key) < 0) return -1;
    if (tp_config_check(t->cfg, err, sizeof err) < 0)
        return tpctl_fail(t, TPCTL_FAIL, "%s", err), -1;
    snprintf(url, sizeof url, "%s%s", base, path);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
    CURL *curl = curl_easy_init();
    if (!curl) abort();
    struct curl_slist *headers = curl_slist_append(NULL, auth);
    if (body) headers = curl_slist_append(headers, "Content-Type: application/json");
    body_buf_t got = {0};
    char curl_err[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, body_write);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &got);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, curl_err);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms);
    if (body) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    }
    CURLcode rc = curl_easy_perform(curl);
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    if (rc != CURLE_OK) {
        free(got.bytes);
        return tpctl_fail(t, TPCTL_FAIL, "cannot reach intake at %s: %s", base,
                          curl_err[0] ? curl_err : curl_easy_strerror(rc)),
               -1;
    }
    if (got.bytes) *answer = json_loadb(got.bytes, got.len, 0, NULL);
    free(got.bytes);
    return (int)status;
}

int tpctl_url_escape(const char *s, char *out, size_t outlen) {
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        int plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                    (*p >= '0' && *p <= '9') || strchr("-._~", *p);
        if (o + (plain ? 1 : 3) >= outlen) return -1;
        if (plain) {
            out[o++] = (char)*p;
        } else {
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    if (o >= outlen) return -1;
    out[o] = '\0';
    return 0;
}

int tpctl_http_error(tpctl_t *t, int status, json_t *answer) {
    const char *error = json_string_value(json_object_get(answer, "error"));
    const char *field = json_string_value(json_object_get(answer, "field"));
    const char *scope = json_string_value(json_object_get(answer, "scope"));
    if (status == 401)
        return tpctl_fail(t, TPCTL_FAIL, "intake refused the API key of tpctl.api_key_file "
                                         "(401%s%s)", error ? ": " : "", error ? error : "");
    if (status == 403)
        return tpctl_fail(t, TPCTL_FAIL, "the API key of tpctl.api_key_file lacks the scope %s",
                          scope ? scope : error ? error : "(unnamed)");
    return tpctl_fail(t, TPCTL_FAIL, "intake answered %d%s%s%s%s", status, error ? ": " : "",
                      error ? error : "", field ? " (field " : "", field ? field : "");
}

int tpctl_print_json(const json_t *doc) {
    if (json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER) < 0) return TPCTL_FAIL;
    fputc('\n', stdout);
    return fflush(stdout) == 0 ? TPCTL_OK : TPCTL_FAIL;
}

int tpctl_opt(tpctl_t *t, int argc, char **argv, int *i, const char *name,
              const char **value) {
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0) return 0;
    if (a[n] == '=') {
        *value = a + n + 1;
        return 1;
    }
    if (a[n] != '\0') return 0;
    if (*i + 1 >= argc) {
        tpctl_fail(t, TPCTL_USAGE, "%s needs a value", name);
        return -1;
    }
    *value = argv[++*i];
    return 1;
}

char *tpctl_read_file(tpctl_t *t, const char *path, size_t *len) {
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f) {
        tpctl_fail(t, TPCTL_FAIL, "%s: %s", path, strerror(errno));
        return NULL;
    }
    body_buf_t b = {0};
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        if (body_write(chunk, 1, n, &b) != n) break;
    int bad = ferror(f);
    if (f != stdin) fclose(f);
    if (bad) {
        free(b.bytes);
        tpctl_fail(t, TPCTL_FAIL, "%s: read failed", path);
        return NULL;
    }
    if (!b.bytes) {
        b.bytes = calloc(1, 1);
        if (!b.bytes) abort();
    }
    *len = b.len;
    return b.bytes;
}

/* ---- dispatch ---- */

static const struct {
    const char *name;
    int (*run)(tpctl_t *t, int argc, char **argv);
} COMMANDS[] = {
    {"status", tpctl_status},         {"lag", tpctl_lag},
    {"customer", tpctl_customer},     {"tickets", tpctl_tickets},
    {"reminders", tpctl_reminders},   {"deadletter", tpctl_deadletter},
    {"journal", tpctl_journal},       {"keygen", tpctl_keygen},
    {"post", tpctl_post},
};

int main(int argc, char **argv) {
    tpctl_t t = {0};
    tp_log_stream(stderr); /* stdout is this tool's answer; logs go aside */
    const char *config = getenv("TP_CONFIG");
    /* the global options, wherever they stand; the rest stays in order */
    char **rest = calloc((size_t)argc + 1, sizeof *rest);
    if (!rest) abort();
    int nrest = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            t.json = 1;
        } else if (strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) {
            if (i + 1 >= argc) {
                free(rest);
                return tpctl_fail(&t, TPCTL_USAGE, "%s needs a file", argv[i]);
            }
            config = argv[++i];
        } else {
            rest[nrest++] = argv[i];
        }
    }
    if (nrest == 0 || strcmp(rest[0], "help") == 0 || strcmp(rest[0], "--help") == 0 ||
        strcmp(rest[0], "-h") == 0) {
        fputs(USAGE, nrest == 0 ? stderr : stdout);
        free(rest);
        return nrest == 0 ? TPCTL_USAGE : TPCTL_OK;
    }
    int rc = -1;
    for (size_t c = 0; c < sizeof COMMANDS / sizeof *COMMANDS; c++) {
        if (strcmp(rest[0], COMMANDS[c].name) != 0) continue;
        char err[512];
        t.cfg = tp_config_new(config && *config ? config : NULL, err, sizeof err);
        if (!t.cfg) {
            fprintf(stderr, "tpctl: %s\n", err);
            free(rest);
            return TPCTL_FAIL;
        }
        t.ns = tp_config_str(t.cfg, "redis", "namespace", "tp:");
        t.command = COMMANDS[c].name;
        curl_global_init(CURL_GLOBAL_DEFAULT);
        rc = COMMANDS[c].run(&t, nrest - 1, rest + 1);
        curl_global_cleanup();
        break;
    }
    if (rc < 0) {
        fprintf(stderr, "tpctl: unknown command '%s'\n%s", rest[0], USAGE);
        rc = TPCTL_USAGE;
    }
    if (t.redis) redisFree(t.redis);
    tp_config_destroy(&t.cfg);
    free(rest);
    return rc;
}
