/* notifier_recipient.c: the users file and the defaults. Owns copies of
 * every string and one calendar per time zone named. */
#include "notifier_recipient.h"

#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_ZONES 64

typedef struct person {
    char *id, *name, *role, *email, *phone, *webhook_url, *lang, *manager,
        *zone, *quiet_text;
    unsigned channels;
    int has_channels;
    int digest_min; /* -1: none */
    int line; /* of its section, for messages */
} person_t;

struct tp_recipients {
    person_t *people;
    size_t n, cap;
    person_t defaults;
    tp_calendar_t *zones[MAX_ZONES];
    size_t nzones;
    /* resolved per person, parallel to people[]; [n] is the defaults */
    tp_quiet_t *quiet;
    int *has_quiet;
};

typedef struct load {
    tp_recipients_t *self;
    FILE *f;
    int line; /* lines read so far: inih's handler is not told */
    const char *path;
    char err[400];
    int err_line;
} load_t;

static char *str_copy(const char *s) {
    char *p = strdup(s ? s : "");
    if (!p) abort();
    return p;
}

static void set(char **field, const char *value) {
    free(*field);
    *field = str_copy(value);
}

int tp_recipients_channels(const char *text, unsigned *out) {
    unsigned bits = 0;
    char *copy = str_copy(text), *save = NULL;
    int rc = 0;
    for (char *tok = strtok_r(copy, ", ", &save); tok;
         tok = strtok_r(NULL, ", ", &save)) {
        if (strcmp(tok, "inbox") == 0) bits |= TP_CHANNEL_INBOX;
        else if (strcmp(tok, "email") == 0) bits |= TP_CHANNEL_EMAIL;
        else if (strcmp(tok, "webhook") == 0) bits |= TP_CHANNEL_WEBHOOK;
        else if (strcmp(tok, "sms") == 0) bits |= TP_CHANNEL_SMS;
        else rc = -1;
    }
    free(copy);
    *out = bits;
    return rc;
}

static int fail(load_t *ld, int line, const char *fmt, const char *a) {
    if (!ld->err_line) {
        ld->err_line = line;
        snprintf(ld->err, sizeof ld->err, fmt, a);
    }
    return 0;
}

static person_t *person_for(tp_recipients_t *self, const char *id) {
    for (size_t i = 0; i < self->n; i++)
        if (strcmp(self->people[i].id, id) == 0) return &self->people[i];
    if (self->n == self->cap) {
        size_t cap = self->cap ? self->cap * 2 : 16;
        person_t *p = realloc(self->people, cap * sizeof *p);
        if (!p) abort();
        self->people = p;
        self->cap = cap;
    }
    person_t *p = &self->people[self->n++];
    memset(p, 0, sizeof *p);
    p->id = str_copy(id);
    p->digest_min = -1;
    return p;
}

static int on_line(void *user, const char *section, const char *key,
                   const char *value, int line) {
    load_t *ld = user;
    if (strncmp(section, "user.", 5) != 0 || !section[5])
        return fail(ld, line, "[%s]: expected [user.<id>]", section);
    person_t *p = person_for(ld->self, section + 5);
    if (!p->line) p->line = line;
    if (strcasecmp(key, "name") == 0) set(&p->name, value);
    else if (strcasecmp(key, "role") == 0) {
        if (strcmp(value, "rep") && strcmp(value, "manager") && strcmp(value, "agent"))
            return fail(ld, line, "role: \"%s\" is not rep, manager or agent", value);
        set(&p->role, value);
    } else if (strcasecmp(key, "channels") == 0) {
        if (tp_recipients_channels(value, &p->channels) < 0)
            return fail(ld, line, "channels: \"%s\" (inbox, email, webhook, sms)",
                        value);
        p->has_channels = 1;
    } else if (strcasecmp(key, "email") == 0) set(&p->email, value);
    else if (strcasecmp(key, "phone") == 0) set(&p->phone, value);
    else if (strcasecmp(key, "webhook_url") == 0) {
        if (*value && strncmp(value, "http://", 7) && strncmp(value, "https://", 8))
            return fail(ld, line, "webhook_url: expected http(s)://...%s", "");
        set(&p->webhook_url, value);
    } else if (strcasecmp(key, "lang") == 0) set(&p->lang, value);
    else if (strcasecmp(key, "manager") == 0) set(&p->manager, value);
    else if (strcasecmp(key, "time_zone") == 0) set(&p->zone, value);
    else if (strcasecmp(key, "quiet_hours") == 0) set(&p->quiet_text, value);
    else if (strcasecmp(key, "digest") == 0) {
        int h, m;
        char end;
        if (!*value) {
            p->digest_min = -1;
        } else if (sscanf(value, "%2d:%2d%c", &h, &m, &end) != 2 || h < 0 || h > 23 ||
                   m < 0 || m > 59) {
            return fail(ld, line, "digest: \"%s\" is not HH:MM", value);
        } else {
            p->digest_min = h * 60 + m;
        }
    }
    else return fail(ld, line, "unknown key \"%s\"", key);
    return 1;
}

/* inih's line source; counts lines for the messages. */
static char *read_line(char *str, int num, void *stream) {
    load_t *ld = stream;
    char *s = fgets(str, num, ld->f);
    if (s) ld->line++;
    return s;
}

static int on_pair(void *user, const char *section, const char *key,
                   const char *value) {
    load_t *ld = user;
    return on_line(ld, section, key, value, ld->line);
}

static tp_calendar_t *zone_get(tp_recipients_t *self, const char *name) {
    for (size_t i = 0; i < self->nzones; i++)
        if (strcmp(tp_calendar_zone(self->zones[i]), name) == 0)
            return self->zones[i];
    if (self->nzones == MAX_ZONES) return NULL;
    tp_calendar_t *cal = tp_calendar_new_zone(name);
    if (cal) self->zones[self->nzones++] = cal;
    return cal;
}

/* The quiet window of `p` (falling back to the defaults). */
static int resolve(tp_recipients_t *self, const person_t *p, const char *what,
                   tp_quiet_t *quiet, int *has, char *err, size_t errlen) {
    const char *zone = p->zone ? p->zone : self->defaults.zone;
    const char *text = p->quiet_text ? p->quiet_text : self->defaults.quiet_text;
    tp_calendar_t *cal = zone_get(self, zone);
    if (!cal) {
        snprintf(err, errlen, "%s: time_zone \"%s\" is unknown", what, zone);
        return -1;
    }
    if (tp_quiet_parse(text, cal, quiet) < 0) {
        snprintf(err, errlen, "%s: quiet_hours \"%s\" is not HH:MM-HH:MM", what,
                 text);
        return -1;
    }
    *has = quiet->start_min != quiet->end_min;
    return 0;
}

tp_recipients_t *tp_recipients_new(tp_config_t *cfg, char *err, size_t errlen) {
    tp_recipients_t *self = calloc(1, sizeof *self);
    if (!self) abort();
    person_t *d = &self->defaults;
    d->id = str_copy("");
    d->name = str_copy("");
    d->role = str_copy("rep");
    d->email = str_copy("");
    d->phone = str_copy("");
    d->webhook_url = str_copy("");
    d->manager = str_copy("");
    d->lang = str_copy(tp_config_str(cfg, "notifier", "default_lang", "zh-CN"));
    d->zone = str_copy(tp_config_str(cfg, "notifier", "default_time_zone", "Asia/Shanghai"));
    d->quiet_text = str_copy(tp_config_str(cfg, "notifier", "default_quiet_hours", ""));
    if (tp_recipients_channels(
            tp_config_str(cfg, "notifier", "default_channels", "inbox,webhook"),
            &d->channels) < 0) {
        snprintf(err, errlen, "notifier.default_channels: inbox, email, webhook "
                              "or sms, comma-separated");
        goto fail;
    }
    d->channels |= TP_CHANNEL_INBOX;

    const char *path = tp_config_str(cfg, "notifier", "users", "");
    if (*path) {
        load_t ld = {.self = self, .path = path, .f = fopen(path, "r")};
        if (!ld.f) {
            snprintf(err, errlen, "notifier.users: cannot open %s: %s", path,
                     strerror(errno));
            goto fail;
        }
        int syntax = ini_parse_stream(read_line, &ld, on_pair, &ld);
        fclose(ld.f);
        if (syntax == -2) abort();
        if (ld.err_line) {
            snprintf(err, errlen, "%s:%d: %s", path, ld.err_line, ld.err);
            goto fail;
        }
        if (syntax != 0) {
            snprintf(err, errlen, "%s:%d: syntax error", path, syntax);
            goto fail;
        }
    }
    self->quiet = calloc(self->n + 1, sizeof *self->quiet);
    self->has_quiet = calloc(self->n + 1, sizeof *self->has_quiet);
    if (!self->quiet || !self->has_quiet) abort();
    char what[300];
    for (size_t i = 0; i < self->n; i++) {
        snprintf(what, sizeof what, "%s:%d: [user.%s]", path, self->people[i].line,
                 self->people[i].id);
        if (resolve(self, &self->people[i], what, &self->quiet[i],
                    &self->has_quiet[i], err, errlen) < 0)
            goto fail;
    }
    if (resolve(self, d, "notifier.default_time_zone / default_quiet_hours",
                &self->quiet[self->n], &self->has_quiet[self->n], err, errlen) < 0)
        goto fail;
    return self;
fail:
    tp_recipients_destroy(&self);
    return NULL;
}

static void person_free(person_t *p) {
    free(p->id);
    free(p->name);
    free(p->role);
    free(p->email);
    free(p->phone);
    free(p->webhook_url);
    free(p->lang);
    free(p->manager);
    free(p->zone);
    free(p->quiet_text);
}

void tp_recipients_destroy(tp_recipients_t **self_p) {
    if (!self_p || !*self_p) return;
    tp_recipients_t *self = *self_p;
    *self_p = NULL;
    for (size_t i = 0; i < self->n; i++) person_free(&self->people[i]);
    free(self->people);
    person_free(&self->defaults);
    for (size_t i = 0; i < self->nzones; i++) tp_calendar_destroy(&self->zones[i]);
    free(self->quiet);
    free(self->has_quiet);
    free(self);
}

#define OR(a, b) ((a) ? (a) : (b))

void tp_recipients_get(const tp_recipients_t *self, const char *id,
                       tp_recipient_t *out) {
    const person_t *d = &self->defaults, *p = NULL;
    size_t i = 0;
    for (; i < self->n; i++)
        if (strcmp(self->people[i].id, id) == 0) {
            p = &self->people[i];
            break;
        }
    memset(out, 0, sizeof *out);
    if (!p) {
        out->id = id;
        out->name = id;
        out->role = d->role;
        out->email = d->email;
        out->phone = d->phone;
        out->webhook_url = d->webhook_url;
        out->lang = d->lang;
        out->manager = d->manager;
        out->channels = d->channels;
        out->quiet = self->quiet[self->n];
        out->has_quiet = self->has_quiet[self->n];
        out->zone = out->quiet.zone;
        out->digest_min = -1;
        return;
    }
    out->id = p->id;
    out->name = p->name && *p->name ? p->name : p->id;
    out->role = OR(p->role, d->role);
    out->email = OR(p->email, d->email);
    out->phone = OR(p->phone, d->phone);
    out->webhook_url = OR(p->webhook_url, d->webhook_url);
    out->lang = OR(p->lang, d->lang);
    out->manager = OR(p->manager, d->manager);
    out->channels = (p->has_channels ? p->channels : d->channels) | TP_CHANNEL_INBOX;
    out->quiet = self->quiet[i];
    out->has_quiet = self->has_quiet[i];
    out->zone = out->quiet.zone;
    out->digest_min = p->digest_min;
}
