/* schema.c: the `data` fields of each event type, and lookups over the
 * catalogue in tp/proto.h. Owns no state; everything here is constant. */
#include "tp/proto.h"

#include <string.h>

#define STR(n, req, max, doc) {n, TP_FIELD_STRING, req, 0, max, NULL, NULL, doc}
#define INT(n, req, lo, hi, doc) {n, TP_FIELD_INT, req, lo, hi, NULL, NULL, doc}
#define BOOL(n, req, doc) {n, TP_FIELD_BOOL, req, 0, 0, NULL, NULL, doc}
#define ENUM(n, req, ch, doc) {n, TP_FIELD_ENUM, req, 0, 0, ch, NULL, doc}
#define TIME(n, req, doc) {n, TP_FIELD_TIME, req, 0, 253402300799999LL, NULL, NULL, doc}
#define OBJ(n, req, sub, doc) {n, TP_FIELD_OBJECT, req, 0, 0, NULL, sub, doc}
#define END {NULL, 0, 0, 0, 0, NULL, NULL, NULL}

#define NAME_MAX_B 200
#define CHANNELS_LEAD                                                         \
    "exhibition|community|cold_visit|referral|directory|search|phone|email|"  \
    "web|other"

static const tp_field_t contact_person[] = {
    STR("name", 0, NAME_MAX_B, "contact person's name"),
    STR("title", 0, NAME_MAX_B, "job title"),
    STR("phone", 0, 40, "phone number, any common notation"),
    STR("email", 0, 254, "email address"),
    END};

static const tp_field_t lead_captured[] = {
    STR("company", 1, NAME_MAX_B, "company name"),
    OBJ("contact", 0, contact_person, "contact person {name, title, phone, email}"),
    STR("industry", 0, 64, "industry, e.g. manufacturing, fmcg, hightech"),
    INT("size", 0, 0, 10000000, "employees"),
    ENUM("channel", 0, CHANNELS_LEAD, "where the lead came from"),
    STR("need", 0, TP_TEXT_MAX, "first stated need, free text"),
    INT("urgency", 1, 0, 3, "need urgency 0-3 (R-GRADE-1)"),
    INT("budget", 1, 0, 3, "budget clarity 0-3 (R-GRADE-1)"),
    INT("decision", 1, 0, 3, "decision-chain clarity 0-3 (R-GRADE-1)"),
    STR("owner", 1, TP_ACTOR_MAX, "owning sales rep (user id)"),
    END};

static const tp_field_t contact_logged[] = {
    ENUM("channel", 1, "phone|email|visit|meeting|im", "how"),
    ENUM("direction", 1, "in|out", "who reached whom"),
    ENUM("outcome", 1, "reached|no_answer|refused|needs_time|interested",
         "what came of it"),
    TIME("next_contact_at", 0, "agreed next contact, ms (R-CAD-2)"),
    STR("summary", 0, TP_TEXT_MAX, "what was said"),
    END};

static const tp_field_t call_started[] = {
    STR("from", 1, 40, "calling number"),
    STR("to", 1, 40, "called number"),
    ENUM("direction", 1, "in|out", "inbound or outbound"),
    STR("agent", 0, TP_ACTOR_MAX, "agent user id"),
    STR("queue", 0, 64, "phone system queue"),
    END};

static const tp_field_t call_ended[] = {
    STR("from", 1, 40, "calling number"),
    STR("to", 1, 40, "called number"),
    ENUM("direction", 1, "in|out", "inbound or outbound"),
    STR("agent", 0, TP_ACTOR_MAX, "agent user id"),
    STR("queue", 0, 64, "phone system queue"),
    INT("duration_s", 1, 0, 86400 * 7, "call length in seconds"),
    END};

static const tp_field_t inquiry_received[] = {
    ENUM("channel", 1, "phone|email|web|hotline|im", "where it came in"),
    BOOL("urgent", 0, "system down or similar (R-SLA-1: 30 min)"),
    STR("text", 0, TP_TEXT_MAX, "the question"),
    STR("owner", 0, TP_ACTOR_MAX, "who answers; default the account owner"),
    END};

static const tp_field_t ticket_opened[] = {
    STR("ticket", 0, 64, "ticket id; intake assigns one when missing"),
    STR("title", 1, 500, "short description"),
    ENUM("category", 1, "fault|question|complaint|change", "kind of request"),
    ENUM("priority", 1, "urgent|high|normal|low", "priority"),
    ENUM("channel", 0, "phone|email|web|hotline|im", "where it came in"),
    STR("owner", 0, TP_ACTOR_MAX, "agent to notify on breach"),
    END};

static const tp_field_t ticket_updated[] = {
    STR("ticket", 1, 64, "ticket id"),
    ENUM("action", 1, "assign|comment|status", "what the agent did"),
    STR("agent", 1, TP_ACTOR_MAX, "agent user id"),
    ENUM("status", 0,
         "new|assigned|in_progress|waiting_customer|resolved|closed",
         "new status (action status)"),
    STR("note", 0, TP_TEXT_MAX, "comment or reason"),
    END};

static const tp_field_t lead_graded[] = {
    ENUM("grade", 1, "A|B|C", "new grade"),
    ENUM("previous", 0, "A|B|C", "grade before, absent for a new lead"),
    INT("score", 1, 0, 100, "weighted score behind the grade"),
    INT("fit", 1, 0, 100, "fit score (R-LEAD-2)"),
    STR("owner", 1, TP_ACTOR_MAX, "owning rep"),
    STR("reason", 0, 500, "what moved the grade"),
    STR("cause", 1, TP_ID_MAX, "id of the event that caused it"),
    END};

static const tp_field_t reminder_due[] = {
    STR("reminder", 1, 200, "reminder id"),
    STR("rule", 1, 64, "rule that planned it, e.g. R-TOUCH-1"),
    STR("owner", 1, TP_ACTOR_MAX, "recipient user id"),
    TIME("due_at", 1, "when it was due"),
    INT("late_ms", 0, 0, INT64_MAX, "how late it fired"),
    BOOL("urgent", 0, "bypasses quiet hours"),
    STR("text", 0, 1000, "what to do"),
    END};

static const tp_field_t notification_sent[] = {
    STR("delivery", 1, 300, "delivery id"),
    ENUM("channel", 1, "inbox|webhook|email|sms", "channel"),
    STR("recipient", 1, TP_ACTOR_MAX, "user id"),
    STR("cause", 1, TP_ID_MAX, "id of the event delivered"),
    INT("attempts", 0, 1, 1000, "attempts it took"),
    END};

static const tp_field_t notification_failed[] = {
    STR("delivery", 1, 300, "delivery id"),
    ENUM("channel", 1, "inbox|webhook|email|sms", "channel"),
    STR("recipient", 1, TP_ACTOR_MAX, "user id"),
    STR("cause", 1, TP_ID_MAX, "id of the event delivered"),
    INT("attempts", 0, 1, 1000, "attempts made"),
    STR("error", 0, 500, "last error"),
    END};

static const tp_field_t sla_breached[] = {
    STR("ticket", 1, 64, "ticket id"),
    ENUM("target", 1, "first_response|resolution", "which deadline"),
    ENUM("priority", 1, "urgent|high|normal|low", "ticket priority"),
    TIME("deadline", 1, "the deadline that passed"),
    STR("owner", 1, TP_ACTOR_MAX, "who is notified"),
    STR("title", 0, 500, "ticket title"),
    END};

static const tp_event_schema_t schemas[] = {
    {TP_EVENT_NONE, NULL, 0, TP_SERVICE_INTAKE, NULL, NULL},
#define XX(e, f, n, to, from, doc)                                            \
    {TP_EVENT_##e, n, to, TP_SERVICE_##from, doc, f},
    TP_EVENT_MAP(XX)
#undef XX
};

const tp_event_schema_t *tp_proto_schema(tp_event_type_t type) {
    if (type <= TP_EVENT_NONE || type >= TP_EVENT_COUNT) return NULL;
    return &schemas[type];
}

tp_event_type_t tp_proto_type(const char *name) {
    if (name == NULL) return TP_EVENT_NONE;
    for (int t = 1; t < TP_EVENT_COUNT; t++)
        if (strcmp(schemas[t].name, name) == 0) return (tp_event_type_t)t;
    return TP_EVENT_NONE;
}

const char *tp_proto_type_name(tp_event_type_t type) {
    const tp_event_schema_t *s = tp_proto_schema(type);
    return s ? s->name : "unknown";
}

static const char *const service_names[] = {
#define XX(e, n) n,
    TP_SERVICE_MAP(XX)
#undef XX
};

const char *tp_proto_service_name(tp_service_t svc) {
    if ((int)svc < 0 || svc >= TP_SERVICE_COUNT) return "unknown";
    return service_names[svc];
}

int tp_proto_service(const char *name) {
    for (int i = 0; name && i < TP_SERVICE_COUNT; i++)
        if (strcmp(service_names[i], name) == 0) return i;
    return -1;
}
