/* keys.c: formatting of the Redis keys laid out in tp/keys.h. */
#include "tp/keys.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "tp/id.h"

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

int tp_key_reminder_bucket(const char *customer) {
    return tp_key_shard(customer);
}

int tp_key_reminder_group(const char *customer) {
    uint64_t h = tp_id_hash(customer, strlen(customer));
    return (int)((h / TP_SHARDS) % TP_REMINDER_GROUPS);
}

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
