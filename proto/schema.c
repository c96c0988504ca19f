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
#define KEY(n, req, max, doc) {n, TP_FIELD_KEY, req, 0, max, NULL, NULL, doc}
#define LIST(n, req, max, item, doc) {n, TP_FIELD_ARRAY, req, 0, max, NULL, item, doc}
#define RRULE(n, req, max, doc) {n, TP_FIELD_RRULE, req, 0, max, NULL, NULL, doc}
#define END {NULL, 0, 0, 0, 0, NULL, NULL, NULL}

#define NAME_MAX_B 200
#define TICKET_CATEGORIES "fault|question|complaint|change"
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
    ENUM("category", 0, TICKET_CATEGORIES,
         "what the caller reported (support queues; default from config)"),
    STR("summary", 0, TP_TEXT_MAX, "what was said"),
    END};

static const tp_field_t inquiry_received[] = {
    ENUM("channel", 1, "phone|email|web|hotline|im", "where it came in"),
    BOOL("urgent", 0, "system down or similar (R-SLA-1: 30 min)"),
    STR("text", 0, TP_TEXT_MAX, "the question"),
    STR("owner", 0, TP_ACTOR_MAX, "who answers; default the account owner"),
    END};

static const tp_field_t ticket_opened[] = {
    KEY("ticket", 0, 64, "ticket id; intake assigns one when missing"),
    STR("title", 1, 500, "short description"),
    ENUM("category", 1, TICKET_CATEGORIES,
         "kind of request; a complaint is high priority at least (R-TICKET-5)"),
    ENUM("priority", 1, "urgent|high|normal|low", "priority"),
    ENUM("channel", 0, "phone|email|web|hotline|im", "where it came in"),
    STR("owner", 0, TP_ACTOR_MAX,
        "owning agent; default: picked in the department (R-TICKET-1)"),
    STR("department", 0, 64, "owning department; default by category"),
    END};

static const tp_field_t ticket_updated[] = {
    KEY("ticket", 1, 64, "ticket id"),
    ENUM("action", 1, "assign|comment|status|transfer", "what the agent did"),
    STR("agent", 1, TP_ACTOR_MAX, "agent user id"),
    ENUM("status", 0,
         "new|assigned|in_progress|waiting_customer|resolved|closed",
         "new status (action status)"),
    STR("note", 0, TP_TEXT_MAX, "comment or reason (required to transfer)"),
    STR("department", 0, 64, "transfer: the department it goes to"),
    STR("to", 0, TP_ACTOR_MAX,
        "transfer: the agent it goes to; default picked in the department"),
    END};
static const tp_field_rule_t ticket_updated_rules[] = {
    {"note", "action", "transfer"}, {NULL, NULL, NULL}};

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

static const tp_field_t notification_read[] = {
    STR("owner", 1, TP_ACTOR_MAX, "the user who read it (whose inbox)"),
    STR("notification", 1, TP_ID_MAX, "the event id of the inbox entry"),
    END};

static const tp_field_t sla_breached[] = {
    KEY("ticket", 1, 64, "ticket id"),
    ENUM("target", 1, "first_response|resolution", "which deadline"),
    ENUM("priority", 1, "urgent|high|normal|low", "ticket priority"),
    TIME("deadline", 1, "the deadline that passed"),
    STR("owner", 1, TP_ACTOR_MAX, "who is notified"),
    STR("title", 0, 500, "ticket title"),
    END};

static const tp_field_t lead_updated[] = {
    INT("urgency", 0, 0, 3, "need urgency 0-3"),
    INT("budget", 0, 0, 3, "budget clarity 0-3"),
    INT("decision", 0, 0, 3, "decision-chain clarity 0-3"),
    STR("need", 0, TP_TEXT_MAX, "the need as now stated"),
    STR("reason", 0, 500, "what changed, for the timeline"),
    END};

static const tp_field_t opportunity_updated[] = {
    KEY("opportunity", 1, 64, "deal id, unique per customer"),
    STR("name", 0, NAME_MAX_B, "deal name"),
    INT("amount", 0, 0, 1000000000000000LL, "in whole currency units"),
    STR("currency", 0, 3, "ISO 4217 code, e.g. CNY"),
    INT("stage", 1, 1, 6, "R-STAGE-1: 1 screening .. 6 review"),
    INT("probability", 0, 0, 100, "percent; overrides the stage default"),
    TIME("expected_close", 0, "expected close date"),
    STR("owner", 0, TP_ACTOR_MAX, "deal owner; default the account owner"),
    STR("team", 0, 64, "owner's team, for the team pipeline"),
    END};

static const tp_field_t deal_closed[] = {
    KEY("opportunity", 1, 64, "deal id"),
    ENUM("outcome", 1, "won|lost", "how it ended"),
    ENUM("reason", 0, TP_CHURN_REASONS, "why it was lost (R-CHURN-1)"),
    STR("note", 0, TP_TEXT_MAX, "details"),
    END};
static const tp_field_rule_t deal_closed_rules[] = {
    {"reason", "outcome", "lost"}, {NULL, NULL, NULL}};

static const tp_field_t key_person[] = {
    STR("name", 1, NAME_MAX_B, "name"),
    STR("role", 0, 64, "role in the decision chain, e.g. decision_maker, "
                       "department_head, user"),
    STR("title", 0, NAME_MAX_B, "job title"),
    STR("department", 0, 64, "department"),
    STR("phone", 0, 40, "phone"),
    STR("email", 0, 254, "email"),
    STR("birthday", 0, 10, "MM-DD or YYYY-MM-DD (R-DAYS-1)"),
    END};
static const tp_field_t key_person_item[] = {
    OBJ("person", 1, key_person, "a key person"), END};

static const tp_field_t special_day[] = {
    STR("what", 1, 200, "e.g. company anniversary"),
    STR("date", 1, 10, "MM-DD or YYYY-MM-DD"),
    END};
static const tp_field_t special_day_item[] = {
    OBJ("day", 1, special_day, "a special day"), END};
static const tp_field_t module_item[] = {
    STR("module", 1, 100, "an installed software module"), END};

static const tp_field_t customer_updated[] = {
    STR("name", 0, NAME_MAX_B, "organisation name"),
    STR("level", 0, 64, "organisation level"),
    STR("address", 0, 500, "address"),
    STR("legal_rep", 0, NAME_MAX_B, "legal representative"),
    STR("business_state", 0, 64, "business state"),
    STR("aftersales_state", 0, 64, "after-sales state"),
    LIST("modules", 0, 100, module_item, "installed software modules"),
    STR("hardware", 0, 2000, "hardware"),
    STR("notes", 0, TP_TEXT_MAX, "relationship notes"),
    STR("owner", 0, TP_ACTOR_MAX, "account owner"),
    STR("team", 0, 64, "owner's team"),
    STR("manager", 0, TP_ACTOR_MAX, "owner's manager (escalations)"),
    ENUM("relationship", 0, "vip|normal", "R-CUST-2"),
    INT("revenue_tier", 0, 1, 3, "R-CUST-2: 3 high, 2, 1"),
    ENUM("growth", 0, "quality|target|normal", "R-CUST-2"),
    ENUM("need_level", 0, "high|normal|low", "R-CUST-2"),
    LIST("key_people", 0, 50, key_person_item, "the decision chain"),
    LIST("special_days", 0, 50, special_day_item, "anniversaries and the like"),
    ENUM("churned", 0, TP_CHURN_REASONS, "the customer left, and why"),
    END};

static const tp_field_t customer_merged[] = {
    KEY("from", 1, TP_CUSTOMER_MAX, "the record that joins this one"),
    STR("reason", 0, 500, "why they are one"),
    END};

static const tp_field_t survey_answered[] = {
    INT("score", 1, 1, 5, "1 (bad) .. 5 (excellent)"),
    STR("comment", 0, TP_TEXT_MAX, "what the customer said"),
    ENUM("about", 0, "ticket|project|visit|other", "what was rated"),
    KEY("ticket", 0, 64, "the ticket, when about one"),
    END};

static const tp_field_t stage_changed[] = {
    KEY("opportunity", 1, 64, "deal id"),
    STR("name", 0, NAME_MAX_B, "deal name"),
    INT("from", 1, 0, 6, "previous stage, 0 for a new deal"),
    INT("to", 1, 1, 6, "new stage"),
    INT("dwell_ms", 1, 0, INT64_MAX, "time spent in the previous stage"),
    STR("owner", 1, TP_ACTOR_MAX, "deal owner"),
    ENUM("state", 1, TP_CUSTOMER_STATES, "the customer's state now"),
    STR("cause", 1, TP_ID_MAX, "id of the event that caused it"),
    END};

static const tp_field_t customer_at_risk[] = {
    INT("health", 1, 0, 100, "health now"),
    INT("threshold", 1, 0, 100, "the at-risk threshold"),
    STR("owner", 1, TP_ACTOR_MAX, "account owner, notified"),
    STR("text", 0, 1000, "what pulls the health down"),
    STR("cause", 1, TP_ID_MAX, "id of the event that caused it"),
    END};

static const tp_field_t payment_scheduled[] = {
    KEY("payment", 1, 64, "payment id, unique per customer"),
    STR("contract", 0, 64, "the contract it belongs to"),
    INT("amount", 1, 0, 1000000000000000LL, "in whole currency units"),
    STR("currency", 0, 3, "ISO 4217 code"),
    TIME("due_at", 1, "when it is due"),
    STR("owner", 0, TP_ACTOR_MAX, "who collects; default the account owner"),
    END};

static const tp_field_t payment_received[] = {
    KEY("payment", 1, 64, "payment id"),
    INT("amount", 0, 0, 1000000000000000LL, "amount received"),
    END};

static const tp_field_t order_placed[] = {
    KEY("order", 1, 64, "order id"),
    STR("product", 1, NAME_MAX_B, "the consumable ordered"),
    INT("quantity", 0, 0, 1000000000, "quantity ordered"),
    RRULE("rrule", 0, 200, "RFC 5545 recurrence of the next orders, "
                           "e.g. FREQ=MONTHLY;INTERVAL=2"),
    ENUM("unit", 0, "day|week|month|year", "instead of rrule: the cycle's unit"),
    INT("interval", 0, 1, 1000, "instead of rrule: units between orders"),
    TIME("start", 0, "first expected reorder; default the order's ts plus "
                     "one cycle"),
    TIME("end", 0, "no reminders after this"),
    INT("advance_days", 0, 0, 365, "remind this many days ahead (default 7)"),
    STR("owner", 0, TP_ACTOR_MAX, "who follows up; default the account owner"),
    END};

static const tp_field_t email_received[] = {
    STR("from", 1, 254, "sender's address"),
    STR("to", 1, 254, "the support address it was sent to"),
    STR("subject", 0, 500, "subject line"),
    STR("message_id", 1, 998, "Message-ID of this email"),
    STR("in_reply_to", 0, 998, "Message-ID it answers (In-Reply-To)"),
    STR("text", 0, TP_TEXT_MAX, "the body as text"),
    END};

static const tp_field_t ticket_escalated[] = {
    KEY("ticket", 1, 64, "ticket id"),
    ENUM("step", 1, "warning|lead|manager|complaint",
         "warning: share of the target used (to the owner); lead: breached "
         "(to the department lead); manager: still breached later; "
         "complaint: to the account owner"),
    STR("owner", 1, TP_ACTOR_MAX, "who is notified"),
    ENUM("target", 0, "first_response|resolution", "the SLA target (SLA steps)"),
    TIME("deadline", 0, "the target's deadline"),
    ENUM("priority", 0, "urgent|high|normal|low", "ticket priority"),
    STR("department", 0, 64, "the ticket's department"),
    STR("title", 0, 500, "ticket title"),
    STR("text", 0, 1000, "what to do"),
    END};

static const tp_field_t survey_requested[] = {
    KEY("ticket", 1, 64, "the closed ticket"),
    STR("owner", 1, TP_ACTOR_MAX,
        "recipient: the customer's contact (email, phone, or the customer id)"),
    STR("email", 0, 254, "contact email, when known"),
    STR("phone", 0, 40, "contact phone, when known"),
    STR("title", 0, 500, "ticket title"),
    STR("account_owner", 0, TP_ACTOR_MAX, "who follows a low score up"),
    END};

static const tp_event_schema_t schemas[] = {
    {TP_EVENT_NONE, NULL, 0, TP_SERVICE_INTAKE, NULL, NULL, NULL},
#define XX(e, f, r, n, to, from, doc)                                         \
    {TP_EVENT_##e, n, to, TP_SERVICE_##from, doc, f, r},
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
