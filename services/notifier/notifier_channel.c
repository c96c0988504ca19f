/* notifier_channel.c: what every channel shares: the HTTP verdicts and the
 * circuit breaker. Owns no state of its own. */
#include "notifier_channel.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "notifier_template.h"

tp_verdict_t tp_channel_classify_http(long status, const char *error) {
    if (!error && status >= 200 && status < 300) return TP_VERDICT_SENT;
    if (status == 0 || status == 408 || status == 425 || status == 429 ||
        status >= 500)
        return TP_VERDICT_RETRY;
    if (status >= 400) return TP_VERDICT_PERMANENT;
    return TP_VERDICT_RETRY; /* 1xx, 3xx: we follow no redirect; try later */
}

static void server_of(const tp_channel_t *self, const char *address, char *out,
                      size_t len) {
    out[0] = '\0';
    if (self->server && address) self->server(address, out, len);
}

static tp_channel_server_t *server_find(tp_channel_t *self, const char *name) {
    for (int i = 0; i < TP_CHANNEL_SERVERS; i++)
        if ((self->servers[i].failures || self->servers[i].open_until) &&
            strcmp(self->servers[i].name, name) == 0)
            return &self->servers[i];
    return NULL;
}

int tp_channel_allow(const tp_channel_t *self, const char *address, int64_t now,
                     int64_t *until) {
    char name[sizeof self->servers[0].name];
    server_of(self, address, name, sizeof name);
    const tp_channel_server_t *s = server_find((tp_channel_t *)self, name);
    if (s && s->open_until > now) {
        if (until) *until = s->open_until;
        return 0;
    }
    return 1;
}

int tp_channel_record(tp_channel_t *self, const char *address, tp_verdict_t verdict,
                      int64_t now, char *server, size_t len) {
    char name[sizeof self->servers[0].name];
    server_of(self, address, name, sizeof name);
    if (server && len) snprintf(server, len, "%s", name);
    tp_channel_server_t *s = server_find(self, name);
    if (verdict != TP_VERDICT_RETRY) {
        if (s) memset(s, 0, sizeof *s); /* healthy: forgotten */
        return 0;
    }
    if (self->breaker_failures <= 0) return 0;
    if (!s) { /* a free slot, else the one closest to being forgotten */
        s = &self->servers[0];
        for (int i = 0; i < TP_CHANNEL_SERVERS; i++) {
            tp_channel_server_t *c = &self->servers[i];
            if (!c->failures && !c->open_until) {
                s = c;
                break;
            }
            if (c->open_until < s->open_until) s = c;
        }
        memset(s, 0, sizeof *s);
        snprintf(s->name, sizeof s->name, "%s", name);
    }
    if (++s->failures >= self->breaker_failures && s->open_until <= now) {
        s->open_until = now + self->breaker_cooldown_ms;
        s->failures = 0; /* after the cooldown, one more round of tries */
        return 1;
    }
    return 0;
}

void tp_channel_destroy(tp_channel_t **self_p) {
    if (!self_p || !*self_p) return;
    tp_channel_t *self = *self_p;
    *self_p = NULL;
    self->destroy(self);
}

char *tp_channel_body_load(const char *path, const char *def, char *err,
                           size_t errlen) {
    char *text = NULL;
    if (!path || !*path) {
        text = strdup(def);
        if (!text) abort();
    } else {
        json_error_t je;
        json_t *doc = json_load_file(path, JSON_DECODE_ANY, &je);
        if (!doc) {
            snprintf(err, errlen, "%s:%d: %s", path, je.line, je.text);
            return NULL;
        }
        json_decref(doc);
        FILE *f = fopen(path, "r");
        if (!f) {
            snprintf(err, errlen, "cannot open %s", path);
            return NULL;
        }
        size_t cap = 65536, n;
        text = calloc(1, cap + 1);
        if (!text) abort();
        n = fread(text, 1, cap, f);
        int bad = ferror(f) || !feof(f);
        fclose(f);
        if (bad) {
            snprintf(err, errlen, "%s: unreadable or larger than 64 KiB", path);
            free(text);
            return NULL;
        }
        text[n] = '\0';
    }
    char bad[100];
    if (tp_template_check(text, TP_CHANNEL_BODY_FIELDS, bad, sizeof bad) < 0) {
        snprintf(err, errlen, "%s: {{%s}} is not one of %s",
                 path && *path ? path : "(built-in body)", bad,
                 TP_CHANNEL_BODY_FIELDS);
        free(text);
        return NULL;
    }
    return text;
}

char *tp_channel_body_render(const char *tmpl, const tp_message_t *msg,
                             size_t *len) {
    json_t *fields = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "delivery", msg->delivery,
        "recipient", msg->recipient ? msg->recipient : "", "customer",
        msg->customer ? msg->customer : "", "kind", msg->kind ? msg->kind : "",
        "lang", msg->lang ? msg->lang : "", "subject",
        msg->subject ? msg->subject : "", "text", msg->text ? msg->text : "",
        "address", msg->address ? msg->address : "");
    if (!fields) return NULL; /* not UTF-8: validated events never are */
    char *out = NULL;
    int rc = tp_template_expand(tmpl, fields, 1, &out);
    json_decref(fields);
    if (rc < 0) return NULL;
    json_error_t je;
    json_t *check = json_loads(out, JSON_DECODE_ANY, &je);
    if (!check) {
        free(out);
        return NULL;
    }
    json_decref(check);
    *len = strlen(out);
    return out;
}
