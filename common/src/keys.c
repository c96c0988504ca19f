/* keys.c: formatting of the Redis keys laid out in tp/keys.h. */
#include "tp/keys.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "tp/id.h"

/* Room for "{s<n>}:c:<id>:" with the longest ids. */
#define TP_KEY_HEAD_MAX 512

int tp_key(char *out, size_t outlen, const char *ns, const char *fmt, ...) {
    int n = snprintf(out, outlen, "%s", ns);
    if (n < 0 || (size_t)n >= outlen) return -1;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(out + n, outlen - (size_t)n, fmt, ap);
    va_end(ap);
    if (m < 0 || (size_t)(n + m) >= outlen) return -1;
    return n + m;
}

int tp_key_shard(const char *id) {
    return (int)(tp_id_hash(id, strlen(id)) % TP_SHARDS);
}

int tp_key_reminder_bucket(const char *customer) { return tp_key_shard(customer); }

/* "<ns><head>" then the formatted rest. */
static int key_vformat(char *out, size_t outlen, const char *ns, const char *head,
                       const char *fmt, va_list ap) {
    int n = snprintf(out, outlen, "%s%s", ns, head);
    if (n < 0 || (size_t)n >= outlen) return -1;
    int m = vsnprintf(out + n, outlen - (size_t)n, fmt, ap);
    if (m < 0 || (size_t)(n + m) >= outlen) return -1;
    return n + m;
}

int tp_key_shard_key(char *out, size_t outlen, const char *ns, int shard,
                     const char *fmt, ...) {
    if (shard < 0 || shard >= TP_SHARDS) return -1;
    char head[16];
    snprintf(head, sizeof head, "{s%d}:", shard);
    va_list ap;
    va_start(ap, fmt);
    int n = key_vformat(out, outlen, ns, head, fmt, ap);
    va_end(ap);
    return n;
}

/* "{s<n>}:<kind>:<id>" into `out`. */
static int tag_of(char *out, size_t outlen, char kind, const char *id) {
    int n = snprintf(out, outlen, "{s%d}:%c:%s", tp_key_shard(id), kind, id);
    return n < 0 || (size_t)n >= outlen ? -1 : n;
}

int tp_key_customer_tag(char *out, size_t outlen, const char *customer) {
    return tag_of(out, outlen, 'c', customer);
}

int tp_key_user_tag(char *out, size_t outlen, const char *user) {
    return tag_of(out, outlen, 'u', user);
}

static int owned_vkey(char *out, size_t outlen, const char *ns, char kind,
                      const char *id, const char *fmt, va_list ap) {
    char head[TP_KEY_HEAD_MAX];
    int h = tag_of(head, sizeof head - 1, kind, id);
    if (h < 0) return -1;
    head[h] = ':';
    head[h + 1] = '\0';
    return key_vformat(out, outlen, ns, head, fmt, ap);
}

int tp_key_customer(char *out, size_t outlen, const char *ns, const char *customer,
                    const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = owned_vkey(out, outlen, ns, 'c', customer, fmt, ap);
    va_end(ap);
    return n;
}

int tp_key_user(char *out, size_t outlen, const char *ns, const char *user,
                const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = owned_vkey(out, outlen, ns, 'u', user, fmt, ap);
    va_end(ap);
    return n;
}

int tp_key_reminder_group(const char *customer) {
    uint64_t h = tp_id_hash(customer, strlen(customer));
    return (int)((h / TP_SHARDS) % TP_REMINDER_GROUPS);
}

int64_t tp_key_due_score(int64_t due_ms) { return due_ms > 0 ? due_ms / 1000 : 0; }

int tp_key_reminder_owner_part(const char *customer) {
    return tp_key_reminder_group(customer) % TP_OWNER_PARTS;
}

int tp_key_reminder_customer(char *out, size_t outlen, const char *reminder) {
    const char *bar = strchr(reminder, '|');
    if (!bar || bar == reminder || (size_t)(bar - reminder) >= outlen) return -1;
    memcpy(out, reminder, (size_t)(bar - reminder));
    out[bar - reminder] = '\0';
    return (int)(bar - reminder);
}
