/* ticketing_ticket.c: reading a ticket, deciding its change, writing it. */
#include "ticketing_ticket.h"

#include <ctype.h>
#include <jansson.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ticketing_clock.h"
#include "ticketing_state.h"
#include "tp/apply.h"
#include "tp/argv.h"
#include "tp/id.h"
#include "tp/keys.h"
#include "tp/log.h"

#define MAX_ATTEMPTS 8
#define MAX_DERIVED 4
#define SYNTHETIC_TTL "2592000"

static const char *const priorities[] = {"urgent", "high", "normal", "low"};
static const char *const targets[] = {"first_response", "resolution"};
static const char *const steps[] = {"warning", "lead", "manager"};

/* KEYS summaries, threads, profile (one customer's, one slot).
 * ARGV the customer's key prefix ("<ns>{s<n>}:c:<cust>:"), ticket ("" =
 * find), thread id ("" = none), join category ("" = none), join since (ms).
 * Finds the ticket (given, by thread, or the customer's open one of the
 * category reported since), and returns: the ticket id, its fields, and
 * the account owner and contact {owner, contact_email, contact_phone}.
 * The department's turn and its agents' loads live in other slots: read
 * beside it (read_roster). */
static const char READ_LUA[] =
    "local prefix, t = ARGV[1], ARGV[2]\n"
    "if t == '' and ARGV[3] ~= '' then t = redis.call('HGET', KEYS[2], ARGV[3]) or '' end\n"
    "if t == '' and ARGV[4] ~= '' then\n"
    "  local best, at = nil, nil\n"
    "  local s = redis.call('HGETALL', KEYS[1])\n"
    "  for i = 1, #s, 2 do\n"
    "    local ok, o = pcall(cjson.decode, s[i + 1])\n"
    "    if ok and type(o) == 'table' and o.category == ARGV[4] then\n"
    "      local r = tonumber(o.reported_at) or 0\n"
    "      if r >= tonumber(ARGV[5]) and (not at or r > at) then best, at = s[i], r end\n"
    "    end\n"
    "  end\n"
    "  if best then t = best end\n"
    "end\n"
    "local tk = {}\n"
    "if t ~= '' then tk = redis.call('HGETALL', prefix .. 'ticket:' .. t) end\n"
    "local prof = redis.call('HMGET', KEYS[3], 'owner', 'contact_email', 'contact_phone')\n"
    "for i = 1, 3 do prof[i] = prof[i] or '' end\n"
    "return {t, tk, prof}\n";

/* KEYS one shard's open-ticket indexes of the agents ({s<n>}:tickets:open:
 * <agent>). Returns their sizes: an agent's load is the sum over shards. */
static const char LOAD_LUA[] =
    "local out = {}\n"
    "for i = 1, #KEYS do out[i] = redis.call('ZCARD', KEYS[i]) end\n"
    "return out\n";

typedef enum { K_OPEN, K_UPDATE, K_CALL, K_EMAIL, K_SURVEY, K_AUTOCLOSE } kind_t;

struct tp_ticketing {
    tp_store_t *store;
    tp_emitter_t *emitter;
    tp_ticket_rules_t rules;
    const tp_calendar_t *hours;
    const tp_roster_t *roster;
    int read_script, load_script;
    char default_owner[TP_ACTOR_MAX + 1];
    char queues[512];
    char addresses[1024];
    char call_category[16], email_category[16];
};

typedef struct change {
    tp_ticketing_t *tk;
    tp_consumer_t *consumer;
    tp_consumer_job_t *job; /* NULL for a change of the ticketing's own */
    const tp_event_t *ev;
    tp_event_t own; /* the synthetic event of an own change */
    kind_t kind;
    int attempts;
    char done_key[TP_CUSTOMER_MAX + TP_ID_MAX + 64];
    char ttl[24];
    char want[80]; /* ticket asked for, "" = find */
    char dept[65]; /* department whose agents are read */
    /* read */
    char ticket[80];
    char ticket_key[TP_CUSTOMER_MAX + 160];
    json_t *cur, *next; /* the ticket's fields before and after (strings) */
    char account_owner[TP_ACTOR_MAX + 1], contact_email[256], contact_phone[48];
    int64_t turn;
    int away[TP_ROSTER_AGENTS_MAX];
    int64_t open[TP_ROSTER_AGENTS_MAX];
    size_t nagents;
    int reads_waiting, read_failed; /* the ticket and the roster, apart */
    /* decided */
    json_t *history; /* JSON texts */
    int take_turn;   /* round robin may pick an agent: the read takes a turn */
    int index_ticket; /* a new ticket: {j}:ticket gets it before the apply */
    msgpack_sbuffer derived[MAX_DERIVED];
    int nderived;
    tp_apply_t apply;
} change_t;

/* ---- rules ---- */

void tp_ticket_rules_load(tp_ticket_rules_t *r, tp_config_t *cfg) {
    static const char *const first[] = {"30m", "2h", "2h", "2h"};
    static const char *const resolve[] = {"4h", "8h", "24h", "40h"};
    for (int i = 0; i < 4; i++) {
        char key[48];
        snprintf(key, sizeof key, "first_response_%s", priorities[i]);
        r->first_response_ms[i] = tp_config_ms(cfg, "ticketing", key, first[i]);
        snprintf(key, sizeof key, "resolution_%s", priorities[i]);
        r->resolution_ms[i] = tp_config_ms(cfg, "ticketing", key, resolve[i]);
    }
    r->default_owner = tp_config_str(cfg, "ticketing", "default_owner", "support-lead");
    r->warning_share = (int)tp_config_int(cfg, "ticketing", "warning_share", 80, 1, 99);
    r->manager_delay_ms = tp_config_ms(cfg, "ticketing", "manager_delay", "1h");
    r->auto_close_ms = tp_config_ms(cfg, "ticketing", "auto_close", "7d");
    r->join_window_ms = tp_config_ms(cfg, "ticketing", "join_window", "24h");
    r->reopen_window_ms = tp_config_ms(cfg, "ticketing", "reopen_window", "14d");
    r->support_queues = tp_config_str(cfg, "ticketing", "support_queues", "hotline,support");
    r->support_addresses = tp_config_str(cfg, "ticketing", "support_addresses", "");
    r->call_category = tp_config_str(cfg, "ticketing", "call_category", "fault");
    r->email_category = tp_config_str(cfg, "ticketing", "email_category", "question");
}

static int category_ok(const char *c) {
    return c && (!strcmp(c, "fault") || !strcmp(c, "question") || !strcmp(c, "complaint") ||
                 !strcmp(c, "change"));
}

tp_ticketing_t *tp_ticketing_new(tp_store_t *store, tp_emitter_t *emitter,
                                 const tp_ticket_rules_t *rules,
                                 const tp_calendar_t *hours, const tp_roster_t *roster) {
    tp_ticketing_t *self = calloc(1, sizeof *self);
    if (!self) abort();
    self->store = store;
    self->emitter = emitter;
    self->rules = *rules;
    self->hours = hours;
    self->roster = roster;
    snprintf(self->default_owner, sizeof self->default_owner, "%s", rules->default_owner);
    snprintf(self->queues, sizeof self->queues, ",%s,", rules->support_queues);
    for (char *p = self->queues; *p; p++)
        if (*p == ' ') memmove(p, p + 1, strlen(p)), p--;
    snprintf(self->addresses, sizeof self->addresses, ",%s,",
             rules->support_addresses ? rules->support_addresses : "");
    for (char *p = self->addresses; *p; p++)
        if (*p == ' ') memmove(p, p + 1, strlen(p)), p--;
        else *p = (char)tolower((unsigned char)*p);
    snprintf(self->call_category, sizeof self->call_category, "%s",
             category_ok(rules->call_category) ? rules->call_category : "fault");
    snprintf(self->email_category, sizeof self->email_category, "%s",
             category_ok(rules->email_category) ? rules->email_category : "question");
    self->rules.default_owner = self->default_owner;
    self->rules.support_queues = self->queues;
    self->rules.support_addresses = self->addresses;
    self->rules.call_category = self->call_category;
    self->rules.email_category = self->email_category;
    self->read_script = tp_store_script(store, "ticket_read", READ_LUA);
    self->load_script = tp_store_script_ro(store, "ticket_load", LOAD_LUA);
    if (tp_apply_script(store) < 0 || self->read_script < 0 || self->load_script < 0) {
        free(self);
        return NULL;
    }
    return self;
}

void tp_ticketing_destroy(tp_ticketing_t **self_p) {
    if (!self_p || !*self_p) return;
    free(*self_p);
    *self_p = NULL;
}

int tp_ticketing_tag(const tp_event_t *ev, char *tag, size_t len, void *arg) {
    (void)arg;
    if (!ev->customer[0]) return -1;
    return tp_key_customer_tag(tag, len, ev->customer) < 0 ? -1 : 0;
}

/* ---- the ticket's fields ---- */

static const char *cur(const change_t *c, const char *f) {
    return json_string_value(json_object_get(c->cur, f));
}
static const char *nx(const change_t *c, const char *f) {
    return json_string_value(json_object_get(c->next, f));
}
static int64_t nx_int(const change_t *c, const char *f) {
    const char *s = nx(c, f);
    return s && *s ? atoll(s) : 0;
}
static void set(change_t *c, const char *f, const char *v) {
    json_object_set_new(c->next, f, json_string(v ? v : ""));
}
static void set_int(change_t *c, const char *f, int64_t v) {
    char buf[24];
    snprintf(buf, sizeof buf, "%lld", (long long)v);
    set(c, f, buf);
}

static int priority_index(const char *priority) {
    for (int i = 0; i < 4; i++)
        if (priority && strcmp(priority, priorities[i]) == 0) return i;
    return 2;
}

/* A target's clock: urgent runs around the clock, the rest in business
 * hours; `pauses` is the ticket's JSON list of [from, to] pairs. */
static void clock_of(const tp_ticketing_t *self, tp_sla_clock_t *c, int64_t opened,
                     int p, int64_t target, const char *pauses) {
    tp_sla_clock_init(c, opened, target, p == 0 ? NULL : self->hours);
    json_t *list = pauses && *pauses ? json_loads(pauses, 0, NULL) : NULL;
    size_t i;
    json_t *pair;
    json_array_foreach(list, i, pair) {
        tp_sla_clock_pause(c, json_integer_value(json_array_get(pair, 0)));
        tp_sla_clock_resume(c, json_integer_value(json_array_get(pair, 1)));
    }
    json_decref(list);
}

/* A history line: who, when, what, from, to, why (R-TICKET-1). */
static void history(change_t *c, const char *by, const char *what, const char *from,
                    const char *to, const char *why) {
    const tp_event_t *ev = c->ev;
    json_t *h = json_pack("{s:I, s:s, s:s, s:s}", "at", (json_int_t)ev->ts, "by",
                          by && *by ? by : ev->src, "what", what, "event", ev->id);
    if (from) json_object_set_new(h, "from", json_string(from));
    if (to) json_object_set_new(h, "to", json_string(to));
    if (why && *why) json_object_set_new(h, "why", json_string(why));
    char *s = json_dumps(h, JSON_COMPACT);
    json_array_append_new(c->history, json_string(s));
    free(s);
    json_decref(h);
}

static const char *agent_of(const tp_event_t *ev) {
    return ev->actor[0] ? ev->actor : tp_event_str(ev, "agent");
}

/* Derives an event (`data` taken) to go out with the change. */
static void derive(change_t *c, tp_event_type_t type, const char *id, json_t *data) {
    if (c->nderived == MAX_DERIVED) {
        json_decref(data);
        return;
    }
    msgpack_sbuffer *b = &c->derived[c->nderived];
    msgpack_sbuffer_init(b);
    if (tp_emit_pack(b, type, id, c->ev->ts, TP_SERVICE_TICKETING, c->ev->customer, data) < 0) {
        msgpack_sbuffer_destroy(b);
        return;
    }
    c->nderived++;
}

/* ---- decisions ---- */

/* Picks the agent of the ticket's department (R-TICKET-1). */
static const char *pick(change_t *c, const char *dept) {
    if (strcmp(dept, c->dept) != 0) return NULL; /* loads read for another */
    return tp_roster_pick(c->tk->roster, dept, c->turn, c->away, c->open);
}

static void make_ticket_id(change_t *c) {
    uint64_t h = tp_id_hash(c->ev->id, strlen(c->ev->id));
    snprintf(c->ticket, sizeof c->ticket, "T%016llx", (unsigned long long)h);
}

/* A new ticket's fields; the caller has set ticket and the key. */
static void open_ticket(change_t *c, const char *title, const char *category,
                        const char *priority, const char *channel, const char *owner,
                        const char *dept, const char *contact, const char *why) {
    tp_ticketing_t *tk = c->tk;
    const tp_event_t *ev = c->ev;
    int p = priority_index(priority);
    int complaint = category && strcmp(category, "complaint") == 0;
    if (complaint && p > 1) p = 1; /* R-TICKET-5: high priority at least */
    if (!dept || !tp_roster_has(tk->roster, dept))
        dept = tp_roster_department_for(tk->roster, category);
    set(c, "ticket", c->ticket);
    set(c, "customer", ev->customer);
    set(c, "title", title);
    set(c, "category", category);
    set(c, "priority", priorities[p]);
    set(c, "channel", channel);
    set(c, "department", dept);
    set(c, "contact", contact);
    set(c, "status", "new");
    set_int(c, "opened_at", ev->ts);
    set_int(c, "reported_at", ev->ts);
    set(c, "reports", "1");
    set(c, "pauses", "[]");
    history(c, ev->actor[0] ? ev->actor : contact, "opened", NULL, "new", why ? why : title);
    const char *agent = owner && *owner ? owner : pick(c, dept);
    set(c, "owner", agent);
    if (agent) {
        set(c, "status", "assigned");
        history(c, owner && *owner ? agent_of(ev) : "ticketing", "assigned", "new",
                "assigned", agent);
    }
    if (complaint) {
        const char *to = c->account_owner[0] ? c->account_owner : tk->default_owner;
        char id[TP_ID_MAX + 1];
        snprintf(id, sizeof id, "%s:complaint", c->ticket);
        derive(c, TP_EVENT_TICKET_ESCALATED, id,
               json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "ticket", c->ticket,
                         "step", "complaint", "owner", to, "priority", priorities[p],
                         "department", dept, "title", title ? title : "", "text",
                         "a customer complaint: call the customer (R-TICKET-5)"));
    }
}

/* Moves the ticket to `to` when the state machine allows it; else the
 * history says why and nothing else changes. Returns 1 moved, 0 not. */
static int move(change_t *c, const char *by, const char *to, const char *note) {
    const char *from = nx(c, "status");
    char why[160] = "";
    int f = tp_ticket_state(from), t = tp_ticket_state(to);
    if (!to) {
        history(c, by, "rejected", NULL, NULL, "no status given");
        return 0;
    }
    if (!tp_ticket_transition_ok((tp_ticket_state_t)f, (tp_ticket_state_t)t, why, sizeof why)) {
        tp_log_info("ticket %s: %s", c->ticket, why);
        history(c, by, "rejected", NULL, NULL, why);
        return 0;
    }
    history(c, by, "status", from, to, note);
    if (strcmp(from, to) == 0) return 1;
    int64_t ts = c->ev->ts;
    int pausing = !strcmp(to, "waiting_customer") || !strcmp(to, "resolved");
    const char *paused_at = nx(c, "paused_at");
    int was_paused = paused_at && *paused_at;
    /* R-TICKET-3: waiting for the customer, or resolved, pauses the clocks;
     * leaving those states resumes them with the pause recorded */
    if (was_paused && !pausing && strcmp(to, "closed") != 0) {
        json_t *pauses = json_loads(nx(c, "pauses") ? nx(c, "pauses") : "[]", 0, NULL);
        if (!json_is_array(pauses)) {
            json_decref(pauses);
            pauses = json_array();
        }
        json_array_append_new(pauses, json_pack("[I, I]", (json_int_t)atoll(paused_at),
                                                (json_int_t)ts));
        char *text = json_dumps(pauses, JSON_COMPACT);
        set(c, "pauses", text);
        free(text);
        json_decref(pauses);
        set(c, "paused_at", "");
    }
    if (pausing && !was_paused) set_int(c, "paused_at", ts);
    if (!strcmp(to, "closed")) set(c, "paused_at", "");
    if (!strcmp(to, "resolved")) set_int(c, "resolved_at", ts);
    if (!strcmp(to, "closed")) set_int(c, "closed_at", ts);
    set(c, "status", to);
    return 1;
}

/* An agent acted: the first response is made (R-TICKET-3). */
static void responded(change_t *c) {
    const char *r = nx(c, "responded_at");
    if (!r || !*r) set_int(c, "responded_at", c->ev->ts);
}

static void decide_update(change_t *c) {
    const tp_event_t *ev = c->ev;
    const char *action = tp_event_str(ev, "action");
    const char *agent = agent_of(ev);
    const char *note = tp_event_str(ev, "note");
    char status[32], was[TP_ACTOR_MAX + 1]; /* copies: set() frees the old values */
    snprintf(status, sizeof status, "%s", nx(c, "status"));
    snprintf(was, sizeof was, "%s", nx(c, "owner") ? nx(c, "owner") : "");
    if (!strcmp(action, "assign")) {
        set(c, "owner", tp_event_str(ev, "agent"));
        if (tp_ticket_state(status) == TP_TICKET_NEW) set(c, "status", "assigned");
        history(c, agent, "assign", *was ? was : NULL, tp_event_str(ev, "agent"), note);
        if (strcmp(nx(c, "status"), status) != 0)
            history(c, agent, "status", status, nx(c, "status"), NULL);
        responded(c);
    } else if (!strcmp(action, "status")) {
        if (move(c, agent, tp_event_str(ev, "status"), note)) responded(c);
    } else if (!strcmp(action, "transfer")) {
        const char *dept = tp_event_str(ev, "department");
        const char *to = tp_event_str(ev, "to");
        char old_dept[65];
        const char *old_owner = was;
        snprintf(old_dept, sizeof old_dept, "%s", nx(c, "department") ? nx(c, "department") : "");
        char why[160] = "";
        if (!dept && !to)
            snprintf(why, sizeof why, "a transfer names a department or an agent");
        else if (dept && !tp_roster_has(c->tk->roster, dept))
            snprintf(why, sizeof why, "no department %s", dept);
        else if (tp_ticket_state_settled((tp_ticket_state_t)tp_ticket_state(status)))
            snprintf(why, sizeof why, "a %s ticket cannot be transferred", status);
        if (why[0]) {
            history(c, agent, "rejected", NULL, NULL, why);
            return;
        }
        if (!dept) dept = old_dept;
        const char *owner = to ? to : pick(c, dept);
        char from[200], dest[200];
        snprintf(from, sizeof from, "%s/%s", old_dept, old_owner);
        snprintf(dest, sizeof dest, "%s/%s", dept, owner ? owner : "");
        set(c, "department", dept);
        set(c, "owner", owner);
        history(c, agent, "transferred", from, dest, note);
        if (owner && tp_ticket_state(status) == TP_TICKET_NEW) {
            set(c, "status", "assigned");
            history(c, agent, "status", status, "assigned", NULL);
        }
        /* nobody available there: the ticket keeps its state, unowned; its
         * warnings go to the department lead (nothing goes back to new) */
        set_int(c, "transfers", nx_int(c, "transfers") + 1);
        responded(c);
    } else { /* comment */
        history(c, agent, "comment", NULL, NULL, note);
        responded(c);
    }
}

/* An inbound call on a support queue: joins the caller's open ticket the
 * read found (R-TICKET-7), else opens one. */
static void decide_call(change_t *c) {
    const tp_event_t *ev = c->ev;
    const char *from = tp_event_str(ev, "from");
    const char *summary = tp_event_str(ev, "summary");
    if (json_object_size(c->cur)) { /* the caller's open ticket */
        set_int(c, "reported_at", ev->ts);
        set_int(c, "reports", nx_int(c, "reports") + 1);
        history(c, from, "joined", NULL, NULL,
                summary ? summary : "the caller reported the same problem again");
        if (!strcmp(nx(c, "status"), "waiting_customer"))
            move(c, from, "in_progress", "the customer called");
        return;
    }
    make_ticket_id(c);
    const char *cat = tp_event_str(ev, "category");
    char title[200];
    snprintf(title, sizeof title, "Hotline call from %s%s%.120s", from, summary ? ": " : "",
             summary ? summary : "");
    open_ticket(c, title, cat ? cat : c->tk->rules.call_category, "normal", "hotline", NULL,
                NULL, from, summary);
}

static void decide_email(change_t *c) {
    const tp_event_t *ev = c->ev;
    const char *from = tp_event_str(ev, "from");
    const char *subject = tp_event_str(ev, "subject");
    const char *text = tp_event_str(ev, "text");
    const char *status = nx(c, "status");
    int answers = json_object_size(c->cur) && status;
    if (answers && !strcmp(status, "resolved") &&
        ev->ts - nx_int(c, "resolved_at") > c->tk->rules.reopen_window_ms)
        answers = 0; /* too late to reopen: a new ticket */
    if (answers && !strcmp(status, "closed")) answers = 0;
    if (answers) {
        history(c, from, "comment", NULL, NULL, text ? text : subject);
        if (!strcmp(status, "resolved") || !strcmp(status, "waiting_customer"))
            move(c, from, "in_progress", !strcmp(status, "resolved")
                                             ? "reopened: the customer replied"
                                             : "the customer replied");
        return;
    }
    char follows[80] = ""; /* a copy: the record read goes */
    if (json_object_size(c->cur)) snprintf(follows, sizeof follows, "%s", cur(c, "ticket"));
    json_decref(c->cur);
    c->cur = json_object();
    json_decref(c->next);
    c->next = json_object();
    make_ticket_id(c);
    tp_key_customer(c->ticket_key, sizeof c->ticket_key, tp_store_ns(c->tk->store),
                    ev->customer, "ticket:%s", c->ticket);
    char why[200];
    if (*follows) snprintf(why, sizeof why, "follows %s", follows);
    open_ticket(c, subject && *subject ? subject : "Email", c->tk->rules.email_category,
                "normal", "email", NULL, NULL, from, *follows ? why : text);
}

/* R-SAT-1: the score on the ticket. */
static void decide_survey(change_t *c) {
    const tp_event_t *ev = c->ev;
    if (!json_object_size(c->cur)) return;
    char why[300];
    const char *comment = tp_event_str(ev, "comment");
    snprintf(why, sizeof why, "score %lld%s%.250s", (long long)tp_event_int(ev, "score", 0),
             comment ? ": " : "", comment ? comment : "");
    set_int(c, "satisfaction", tp_event_int(ev, "score", 0));
    set_int(c, "survey_at", ev->ts);
    history(c, ev->src, "survey", NULL, NULL, why);
}

/* ---- writing ---- */

static void member_of(char *out, size_t len, const change_t *c, const char *target,
                      const char *step) {
    snprintf(out, len, "%s|%s|%s%s%s", c->ev->customer, c->ticket, target, step ? "|" : "",
             step ? step : "");
}

/* The deadlines and escalation steps of both targets, as the ticket now
 * stands: running clocks are (re)scheduled, stopped ones removed. */
static void schedule(change_t *c, int k_due, int k_esc) {
    tp_ticketing_t *tk = c->tk;
    tp_apply_t *a = &c->apply;
    const char *status = nx(c, "status");
    const char *paused_at = nx(c, "paused_at");
    int closed = !strcmp(status, "closed");
    int paused = paused_at && *paused_at;
    int p = priority_index(nx(c, "priority"));
    int64_t opened = nx_int(c, "opened_at");
    const char *responded_at = nx(c, "responded_at");
    for (int t = 0; t < 2; t++) {
        int running = !closed && !paused && (t == 1 || !(responded_at && *responded_at));
        char member[TP_CUSTOMER_MAX + 200], field[64];
        tp_sla_clock_t clk;
        int64_t due = 0;
        if (running) {
            clock_of(tk, &clk, opened, p,
                     t ? tk->rules.resolution_ms[p] : tk->rules.first_response_ms[p],
                     nx(c, "pauses"));
            due = tp_sla_clock_deadline(&clk);
            snprintf(field, sizeof field, "%s_due", targets[t]);
            set_int(c, field, due);
        }
        member_of(member, sizeof member, c, targets[t], NULL);
        snprintf(field, sizeof field, "breached_%s", targets[t]);
        if (running && !(nx(c, field) && *nx(c, field))) {
            tp_apply_cmd(a, "ZADD", k_due);
            tp_apply_int(a, due);
        } else {
            tp_apply_cmd(a, "ZREM", k_due);
        }
        tp_apply_str(a, member);
        int64_t at[3] = {0, due, due + tk->rules.manager_delay_ms};
        if (running) at[0] = tp_sla_clock_point(&clk, tk->rules.warning_share);
        for (int s = 0; s < 3; s++) {
            member_of(member, sizeof member, c, targets[t], steps[s]);
            snprintf(field, sizeof field, "esc_%s_%s", targets[t], steps[s]);
            if (running && !(nx(c, field) && *nx(c, field)) && at[s] > 0) {
                tp_apply_cmd(a, "ZADD", k_esc);
                tp_apply_int(a, at[s]);
            } else {
                tp_apply_cmd(a, "ZREM", k_esc);
            }
            tp_apply_str(a, member);
        }
    }
}

static char *summary_of(const change_t *c) {
    json_t *o = json_object();
    static const char *const copied[] = {"ticket", "title", "status", "priority", "owner",
                                         "department", "category"};
    for (size_t i = 0; i < sizeof copied / sizeof *copied; i++)
        json_object_set_new(o, copied[i], json_string(nx(c, copied[i]) ? nx(c, copied[i]) : ""));
    static const char *const times[] = {"first_response_due", "resolution_due", "opened_at",
                                        "reported_at"};
    for (size_t i = 0; i < sizeof times / sizeof *times; i++)
        json_object_set_new(o, times[i], json_integer(nx_int(c, times[i])));
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

static int settled(const char *status) {
    return status && tp_ticket_state_settled((tp_ticket_state_t)tp_ticket_state(status));
}

/* Moves `member` from the index of `old` value to the one of `now`. */
static void reindex(change_t *c, const char *what, const char *old, const char *now,
                    const char *member, int64_t score) {
    tp_apply_t *a = &c->apply;
    char ns[32]; /* the customer's shard's indexes */
    tp_key_shard_key(ns, sizeof ns, tp_store_ns(c->tk->store), tp_key_shard(c->ev->customer),
                     "%s", "");
    if (old && now && !strcmp(old, now)) return;
    if (old && *old) {
        tp_apply_cmd(a, "ZREM", tp_apply_key(a, "%stickets:%s:%s", ns, what, old));
        tp_apply_str(a, member);
    }
    if (now && *now) {
        tp_apply_cmd(a, "ZADD", tp_apply_key(a, "%stickets:%s:%s", ns, what, now));
        tp_apply_int(a, score);
        tp_apply_str(a, member);
    }
}

/* The survey for the customer's contact (R-TICKET-6). */
static void request_survey(change_t *c) {
    const char *contact = nx(c, "contact");
    const char *email = c->contact_email[0] ? c->contact_email : NULL;
    const char *phone = c->contact_phone[0] ? c->contact_phone : NULL;
    if (contact && strchr(contact, '@')) email = contact;
    else if (contact && *contact) phone = contact;
    const char *to = email ? email : phone ? phone : c->ev->customer;
    json_t *d = json_pack("{s:s, s:s, s:s}", "ticket", c->ticket, "owner", to, "title",
                          nx(c, "title") ? nx(c, "title") : "");
    if (email) json_object_set_new(d, "email", json_string(email));
    if (phone) json_object_set_new(d, "phone", json_string(phone));
    if (c->account_owner[0])
        json_object_set_new(d, "account_owner", json_string(c->account_owner));
    char id[TP_ID_MAX + 1];
    snprintf(id, sizeof id, "%s:survey", c->ticket);
    derive(c, TP_EVENT_SURVEY_REQUESTED, id, d);
}

/* Describes the change as one guarded apply. */
static void build(change_t *c) {
    tp_ticketing_t *tk = c->tk;
    const tp_event_t *ev = c->ev;
    const char *ns = tp_store_ns(tk->store);
    char sh[32]; /* "<ns>{s<n>}:", the customer's shard's indexes */
    tp_key_shard_key(sh, sizeof sh, ns, tp_key_shard(ev->customer), "%s", "");
    char key[TP_CUSTOMER_MAX + 200];
    tp_apply_t *a = &c->apply;
    int has_ticket = c->ticket[0] && nx(c, "status");
    const char *ver = cur(c, "ver");
    tp_apply_init(a, c->done_key, c->ttl, has_ticket ? c->ticket_key : NULL, ver ? ver : "0");
    c->index_ticket = 0;
    /* R-SAT-1's follow-up of a low score is the scheduler's (it consumes
     * survey.answered too) */
    if (!has_ticket) return;

    const char *status = nx(c, "status"), *was = cur(c, "status");
    if (!strcmp(status, "closed") && (!was || strcmp(was, "closed"))) request_survey(c);
    char member[TP_CUSTOMER_MAX + 100];
    snprintf(member, sizeof member, "%s|%s", ev->customer, c->ticket);
    int64_t opened = nx_int(c, "opened_at");
    int k_ticket = tp_apply_key(a, "%s", c->ticket_key);
    tp_key_customer(key, sizeof key, ns, ev->customer, "tickets");
    int k_sum = tp_apply_key(a, "%s", key);
    schedule(c, tp_apply_key(a, "%ssla:due", sh), tp_apply_key(a, "%ssla:escalate", sh));
    set_int(c, "ver", (ver ? atoll(ver) : 0) + 1);
    set_int(c, "updated_at", ev->ts);

    tp_apply_cmd(a, "HSET", k_ticket);
    const char *f;
    json_t *v;
    json_object_foreach(c->next, f, v) {
        const char *old = cur(c, f);
        if (!old || strcmp(old, json_string_value(v)) != 0)
            tp_apply_pair(a, f, json_string_value(v));
    }
    size_t i;
    json_array_foreach(c->history, i, v) {
        if (i == 0) {
            tp_key_customer(key, sizeof key, ns, ev->customer, "ticket:%s:history", c->ticket);
            tp_apply_cmd(a, "RPUSH", tp_apply_key(a, "%s", key));
        }
        tp_apply_str(a, json_string_value(v));
    }
    if (settled(status)) {
        tp_apply_cmd(a, "HDEL", k_sum);
        tp_apply_str(a, c->ticket);
    } else {
        char *sum = summary_of(c);
        tp_apply_cmd(a, "HSET", k_sum);
        tp_apply_pair(a, c->ticket, sum);
        free(sum);
    }
    if (!was) { /* a new ticket: its owner and the shard's indexes ({j}:ticket
                 * is another slot's: indexed before the apply) */
        c->index_ticket = c->kind != K_OPEN; /* intake's journal indexed those */
        tp_key_customer(key, sizeof key, ns, ev->customer, "ticket_ids");
        tp_apply_cmd(a, "ZADD", tp_apply_key(a, "%s", key));
        tp_apply_int(a, opened);
        tp_apply_str(a, c->ticket);
        tp_apply_cmd(a, "ZADD", tp_apply_key(a, "%stickets:all", sh));
        tp_apply_int(a, opened);
        tp_apply_str(a, member);
    }
    reindex(c, "status", was, status, member, opened);
    reindex(c, "department", cur(c, "department"), nx(c, "department"), member, opened);
    reindex(c, "owner", cur(c, "owner"), nx(c, "owner"), member, opened);
    /* the agents' loads: open tickets per owner */
    const char *old_owner = was && !settled(was) ? cur(c, "owner") : NULL;
    const char *new_owner = !settled(status) ? nx(c, "owner") : NULL;
    reindex(c, "open", old_owner, new_owner, member, opened);
    /* auto-close of a resolved ticket after the quiet period */
    char ac[TP_CUSTOMER_MAX + 120];
    if (was && !strcmp(was, "resolved") && strcmp(status, "resolved") != 0) {
        snprintf(ac, sizeof ac, "%s|%s", member, cur(c, "resolved_at"));
        tp_apply_cmd(a, "ZREM", tp_apply_key(a, "%sticket:autoclose", sh));
        tp_apply_str(a, ac);
    }
    if (!strcmp(status, "resolved") && (!was || strcmp(was, "resolved") != 0)) {
        snprintf(ac, sizeof ac, "%s|%s", member, nx(c, "resolved_at"));
        tp_apply_cmd(a, "ZADD", tp_apply_key(a, "%sticket:autoclose", sh));
        tp_apply_int(a, ev->ts + tk->rules.auto_close_ms);
        tp_apply_str(a, ac);
    }
    if (c->kind == K_EMAIL) { /* the thread finds the ticket again */
        tp_key_customer(key, sizeof key, ns, ev->customer, "threads");
        int k_threads = tp_apply_key(a, "%s", key);
        tp_apply_cmd(a, "HSET", k_threads);
        tp_apply_pair(a, tp_event_str(ev, "message_id"), c->ticket);
    }
    if (c->nderived) {
        int k_out = tp_apply_key(a, "%s", tp_emitter_outbox_of(tk->emitter, ev->customer));
        for (int d = 0; d < c->nderived; d++) {
            tp_apply_cmd(a, "ZADD", k_out);
            tp_apply_int(a, tp_now_ms());
            tp_apply_arg(a, c->derived[d].data, c->derived[d].size);
        }
    }
}

/* ---- the change's life ---- */

static void change_reset(change_t *c) {
    json_decref(c->cur);
    json_decref(c->next);
    json_decref(c->history);
    c->cur = c->next = c->history = NULL;
    for (int d = 0; d < c->nderived; d++) msgpack_sbuffer_destroy(&c->derived[d]);
    c->nderived = 0;
    tp_apply_clear(&c->apply);
    memset(&c->apply, 0, sizeof c->apply);
}

static void change_end(change_t *c, int status) {
    if (c->job) tp_consumer_job_done(c->job, status);
    else if (status < 0) tp_log_warn("ticket %s: own change failed; retried later", c->want);
    change_reset(c);
    tp_event_clear(&c->own);
    free(c);
}

static void read_ticket(change_t *c);

static void applied_cb(tp_store_t *store, redisReply *r, void *arg) {
    change_t *c = arg;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 1) {
        if (r && r->type == REDIS_REPLY_ERROR) tp_log_error("ticket change: %s", r->str);
        change_end(c, -1);
        return;
    }
    if (r->element[0]->integer == TP_APPLY_STALE) {
        if (++c->attempts < MAX_ATTEMPTS) {
            change_reset(c);
            read_ticket(c);
            return;
        }
        change_end(c, -1);
        return;
    }
    if (r->element[0]->integer == TP_APPLY_DONE)
        for (int d = 0; d < c->nderived; d++)
            tp_emitter_send_of(c->tk->emitter, c->ev->customer, c->derived[d].data,
                               c->derived[d].size);
    if (r->element[0]->integer == TP_APPLY_DUPLICATE && c->job)
        tp_consumer_job_duplicate(c->job);
    change_end(c, 0);
}

static void copy_str(char *out, size_t len, const redisReply *r) {
    snprintf(out, len, "%s", r && r->type == REDIS_REPLY_STRING ? r->str : "");
}

static void read_done(change_t *c);
static void indexed_cb(tp_store_t *store, redisReply *r, void *arg);

/* One of the reads is answered: the change goes on after the last. */
static void read_settle(change_t *c) {
    if (--c->reads_waiting) return;
    if (c->read_failed) {
        change_end(c, -1);
        return;
    }
    read_done(c);
}

static void read_cb(tp_store_t *store, redisReply *r, void *arg) {
    change_t *c = arg;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
        r->element[1]->type != REDIS_REPLY_ARRAY || r->element[2]->type != REDIS_REPLY_ARRAY ||
        r->element[2]->elements != 3) {
        if (r && r->type == REDIS_REPLY_ERROR) tp_log_error("ticket read: %s", r->str);
        c->read_failed = 1;
        read_settle(c);
        return;
    }
    copy_str(c->ticket, sizeof c->ticket, r->element[0]);
    c->cur = json_object();
    redisReply *t = r->element[1];
    for (size_t i = 0; i + 1 < t->elements; i += 2)
        if (t->element[i]->type == REDIS_REPLY_STRING && t->element[i + 1]->type == REDIS_REPLY_STRING)
            json_object_set_new(c->cur, t->element[i]->str, json_string(t->element[i + 1]->str));
    if (!json_object_get(c->cur, "ver")) json_object_clear(c->cur);
    c->next = json_deep_copy(c->cur);
    c->history = json_array();
    copy_str(c->account_owner, sizeof c->account_owner, r->element[2]->element[0]);
    copy_str(c->contact_email, sizeof c->contact_email, r->element[2]->element[1]);
    copy_str(c->contact_phone, sizeof c->contact_phone, r->element[2]->element[2]);
    read_settle(c);
}

static void turn_cb(tp_store_t *store, redisReply *r, void *arg) {
    change_t *c = arg;
    if (r && r->type == REDIS_REPLY_INTEGER)
        c->turn = r->integer - 1;
    else
        c->read_failed = 1;
    read_settle(c);
}

static void away_cb(tp_store_t *store, redisReply *r, void *arg) {
    change_t *c = arg;
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == c->nagents)
        for (size_t i = 0; i < r->elements; i++) c->away[i] = r->element[i]->integer != 0;
    else
        c->read_failed = 1;
    read_settle(c);
}

static void load_cb(tp_store_t *store, redisReply *r, void *arg) {
    change_t *c = arg;
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == c->nagents)
        for (size_t i = 0; i < r->elements; i++) c->open[i] += r->element[i]->integer;
    else
        c->read_failed = 1;
    read_settle(c);
}

static void read_done(change_t *c) {
    const tp_event_t *ev = c->ev;
    if (c->ticket[0])
        tp_key_customer(c->ticket_key, sizeof c->ticket_key, tp_store_ns(c->tk->store),
                        ev->customer, "ticket:%s", c->ticket);
    int exists = json_object_size(c->cur) > 0;

    switch (c->kind) {
    case K_OPEN:
        if (exists) { /* opened twice: nothing to do */
            change_end(c, 0);
            return;
        }
        open_ticket(c, tp_event_str(ev, "title"), tp_event_str(ev, "category"),
                    tp_event_str(ev, "priority"), tp_event_str(ev, "channel"),
                    tp_event_str(ev, "owner"), tp_event_str(ev, "department"), NULL, NULL);
        break;
    case K_UPDATE:
        if (!exists) { /* its ticket.opened is on the way */
            tp_log_info("ticket %s of %s not found yet; retried by reconcile", c->want,
                        ev->customer);
            change_end(c, -1);
            return;
        }
        decide_update(c);
        break;
    case K_CALL:
        if (!exists) c->ticket[0] = '\0';
        decide_call(c);
        break;
    case K_EMAIL:
        if (!exists) c->ticket[0] = '\0';
        decide_email(c);
        break;
    case K_SURVEY:
        if (!exists) c->ticket[0] = '\0';
        decide_survey(c);
        break;
    case K_AUTOCLOSE: {
        char at[24];
        snprintf(at, sizeof at, "%lld", (long long)tp_event_int(ev, "resolved_at", 0));
        if (!exists || !cur(c, "status") || strcmp(cur(c, "status"), "resolved") != 0 ||
            !cur(c, "resolved_at") || strcmp(cur(c, "resolved_at"), at) != 0) {
            /* reopened or closed meanwhile: only the schedule entry goes */
            char m[TP_CUSTOMER_MAX + 200], key[128];
            snprintf(m, sizeof m, "%s|%s|%s", ev->customer, c->want, at);
            tp_key_shard_key(key, sizeof key, tp_store_ns(c->tk->store),
                             tp_key_shard(ev->customer), "ticket:autoclose");
            tp_store_command(c->tk->store, NULL, NULL, "ZREM %s %s", key, m);
            change_end(c, 0);
            return;
        }
        move(c, "ticketing", "closed", tp_event_str(ev, "note"));
        break;
    }
    }
    if (c->ticket[0])
        tp_key_customer(c->ticket_key, sizeof c->ticket_key, tp_store_ns(c->tk->store),
                        ev->customer, "ticket:%s", c->ticket);
    build(c);
    if (c->index_ticket) { /* {j}:ticket first: a crash after it repeats it */
        char key[64];
        tp_key(key, sizeof key, tp_store_ns(c->tk->store), "{j}:ticket");
        const char *argv[4] = {"HSETNX", key, c->ticket, ev->customer};
        size_t lens[4] = {6, strlen(key), strlen(c->ticket), strlen(ev->customer)};
        if (tp_store_command_argv(c->tk->store, indexed_cb, c, 4, argv, lens) < 0)
            change_end(c, -1);
        return;
    }
    if (tp_apply_send(&c->apply, c->tk->store, applied_cb, c) < 0) change_end(c, -1);
}

static void indexed_cb(tp_store_t *store, redisReply *r, void *arg) {
    change_t *c = arg;
    if (!r || r->type == REDIS_REPLY_ERROR) {
        if (r) tp_log_error("ticket %s: {j}:ticket: %s", c->ticket, r->str);
        change_end(c, -1);
        return;
    }
    if (tp_apply_send(&c->apply, c->tk->store, applied_cb, c) < 0) change_end(c, -1);
}

/* The department's round-robin turn (taken here, so that instances
 * picking at the same time get different turns; a change that is retried
 * or needs no agent leaves a turn unused: one agent is skipped once), who
 * of its agents is away, and their loads summed over the shards. Each
 * command is one slot. */
static void read_roster(change_t *c) {
    tp_ticketing_t *tk = c->tk;
    const char *ns = tp_store_ns(tk->store);
    char key[TP_ACTOR_MAX + 64];
    size_t n = 0;
    const char *const *agents = tp_roster_agents(tk->roster, c->dept, &n);
    if (n > TP_ROSTER_AGENTS_MAX) n = TP_ROSTER_AGENTS_MAX;
    c->nagents = n;
    memset(c->open, 0, sizeof c->open);
    memset(c->away, 0, sizeof c->away);
    c->turn = 0;
    if (c->take_turn) {
        tp_key(key, sizeof key, ns, "ticketing:turn");
        const char *argv[4] = {"HINCRBY", key, c->dept, "1"};
        size_t lens[4] = {7, strlen(key), strlen(c->dept), 1};
        c->reads_waiting++;
        if (tp_store_command_argv(tk->store, turn_cb, c, 4, argv, lens) < 0) {
            c->reads_waiting--;
            c->read_failed = 1;
        }
    }
    if (!n) return;
    tp_argv_t a;
    tp_argv_init(&a);
    tp_argv_add(&a, "SMISMEMBER", 10);
    tp_argv_addf(&a, "%sticketing:away", ns);
    for (size_t i = 0; i < n; i++) tp_argv_add(&a, agents[i], (size_t)-1);
    c->reads_waiting++;
    if (tp_store_command_argv(tk->store, away_cb, c, (int)a.n, a.v, a.len) < 0) {
        c->reads_waiting--;
        c->read_failed = 1;
    }
    tp_argv_clear(&a);
    for (int shard = 0; shard < TP_SHARDS && !c->read_failed; shard++) {
        tp_argv_init(&a);
        for (size_t i = 0; i < n; i++) {
            tp_key_shard_key(key, sizeof key, ns, shard, "tickets:open:%s", agents[i]);
            tp_argv_addf(&a, "%s", key);
        }
        c->reads_waiting++;
        if (tp_store_eval(tk->store, tk->load_script, load_cb, c, (int)n, (int)a.n, a.v,
                          a.len) < 0) {
            c->reads_waiting--;
            c->read_failed = 1;
        }
        tp_argv_clear(&a);
    }
}

static void read_ticket(change_t *c) {
    tp_ticketing_t *tk = c->tk;
    const tp_event_t *ev = c->ev;
    const char *ns = tp_store_ns(tk->store);
    char prefix[TP_CUSTOMER_MAX + 64];
    tp_key_customer(prefix, sizeof prefix, ns, ev->customer, "%s", "");
    tp_argv_t a;
    tp_argv_init(&a);
    tp_argv_addf(&a, "%stickets", prefix);
    tp_argv_addf(&a, "%sthreads", prefix);
    tp_argv_addf(&a, "%sprofile", prefix);
    tp_argv_add(&a, prefix, (size_t)-1);
    tp_argv_add(&a, c->want, (size_t)-1);
    const char *thread = c->kind == K_EMAIL ? tp_event_str(ev, "in_reply_to") : NULL;
    tp_argv_add(&a, thread ? thread : "", (size_t)-1);
    const char *join = NULL;
    if (c->kind == K_CALL) {
        join = tp_event_str(ev, "category");
        if (!join) join = tk->rules.call_category;
    }
    tp_argv_add(&a, join ? join : "", (size_t)-1);
    tp_argv_add_int(&a, ev->ts - tk->rules.join_window_ms);
    c->reads_waiting = 1; /* held while sending */
    c->read_failed = 0;
    c->reads_waiting++;
    if (tp_store_eval(tk->store, tk->read_script, read_cb, c, 3, (int)a.n, a.v, a.len) < 0) {
        c->reads_waiting--;
        c->read_failed = 1;
    }
    tp_argv_clear(&a);
    if (!c->read_failed) read_roster(c);
    read_settle(c);
}

static change_t *change_new(tp_ticketing_t *self, kind_t kind) {
    change_t *c = calloc(1, sizeof *c);
    if (!c) abort();
    c->tk = self;
    c->kind = kind;
    tp_event_init(&c->own);
    return c;
}

/* 1 when an inbound call came in on a support queue. */
static int support_call(const tp_ticketing_t *self, const tp_event_t *ev) {
    const char *queue = tp_event_str(ev, "queue");
    const char *dir = tp_event_str(ev, "direction");
    if (!queue || !*queue || !dir || strcmp(dir, "in") != 0) return 0;
    char needle[80];
    snprintf(needle, sizeof needle, ",%s,", queue);
    return strstr(self->queues, needle) != NULL;
}

/* 1 when an email went to a support address (any, when none is
 * configured). */
static int support_mail(const tp_ticketing_t *self, const tp_event_t *ev) {
    if (!strcmp(self->addresses, ",,")) return 1;
    char needle[270];
    snprintf(needle, sizeof needle, ",%s,", tp_event_str(ev, "to"));
    for (char *p = needle; *p; p++) *p = (char)tolower((unsigned char)*p);
    return strstr(self->addresses, needle) != NULL;
}

void tp_ticketing_apply(tp_consumer_t *consumer, tp_consumer_job_t *job,
                        const tp_event_t *ev, void *arg) {
    tp_ticketing_t *self = arg;
    kind_t kind;
    const char *ticket = tp_event_str(ev, "ticket");
    const char *dept = NULL;
    switch (ev->type) {
    case TP_EVENT_TICKET_OPENED:
        kind = K_OPEN;
        if (!ticket) { /* intake assigns one; never reached for journaled events */
            tp_consumer_job_done(job, 0);
            return;
        }
        dept = tp_event_str(ev, "department");
        if (!dept || !tp_roster_has(self->roster, dept))
            dept = tp_roster_department_for(self->roster, tp_event_str(ev, "category"));
        break;
    case TP_EVENT_TICKET_UPDATED:
        kind = K_UPDATE;
        dept = tp_event_str(ev, "department");
        break;
    case TP_EVENT_CALL_ENDED:
        if (!support_call(self, ev)) {
            tp_consumer_job_done(job, 0);
            return;
        }
        kind = K_CALL;
        ticket = NULL;
        dept = tp_event_str(ev, "category");
        dept = tp_roster_department_for(self->roster, dept ? dept : self->rules.call_category);
        break;
    case TP_EVENT_EMAIL_RECEIVED:
        if (!support_mail(self, ev)) {
            tp_consumer_job_done(job, 0);
            return;
        }
        kind = K_EMAIL;
        ticket = NULL;
        dept = tp_roster_department_for(self->roster, self->rules.email_category);
        break;
    case TP_EVENT_SURVEY_ANSWERED:
        kind = K_SURVEY;
        break;
    default:
        tp_consumer_job_done(job, 0);
        return;
    }
    change_t *c = change_new(self, kind);
    c->consumer = consumer;
    c->job = job;
    c->ev = ev;
    snprintf(c->done_key, sizeof c->done_key, "%s", tp_consumer_job_done_key(job));
    snprintf(c->ttl, sizeof c->ttl, "%s", tp_consumer_done_ttl(consumer));
    snprintf(c->want, sizeof c->want, "%s", ticket ? ticket : "");
    snprintf(c->dept, sizeof c->dept, "%s", dept ? dept : "");
    /* a change that may pick an agent by round robin */
    int picks = kind == K_CALL || kind == K_EMAIL ||
                (kind == K_OPEN && !tp_event_str(ev, "owner")) ||
                (kind == K_UPDATE && !strcmp(tp_event_str(ev, "action"), "transfer") &&
                 !tp_event_str(ev, "to"));
    c->take_turn = picks && tp_roster_strategy(self->roster) == TP_ROSTER_ROUND_ROBIN;
    read_ticket(c);
}

void tp_ticketing_autoclose(tp_ticketing_t *self, const char *customer, const char *ticket,
                            int64_t resolved_at) {
    change_t *c = change_new(self, K_AUTOCLOSE);
    tp_event_t *ev = &c->own;
    ev->v = TP_PROTO_VERSION;
    ev->type = TP_EVENT_TICKET_UPDATED;
    ev->ts = tp_now_ms();
    snprintf(ev->id, sizeof ev->id, "autoclose:%s:%lld", ticket, (long long)resolved_at);
    snprintf(ev->src, sizeof ev->src, "ticketing");
    snprintf(ev->customer, sizeof ev->customer, "%s", customer);
    ev->data = json_pack("{s:s, s:I, s:s}", "ticket", ticket, "resolved_at",
                         (json_int_t)resolved_at, "note",
                         "closed after the quiet period (no reply since resolved)");
    c->ev = ev;
    tp_key_customer(c->done_key, sizeof c->done_key, tp_store_ns(self->store), customer,
                    "done:ticketing:%s", ev->id);
    snprintf(c->ttl, sizeof c->ttl, "%s", SYNTHETIC_TTL);
    snprintf(c->want, sizeof c->want, "%s", ticket);
    read_ticket(c);
}
