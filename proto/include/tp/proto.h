/* proto.h: the event schema, the one source of truth.
 *
 * Owns the catalogue of event types, the fields of each type's `data`, the
 * services, and which services consume which type (the routing table).
 * Everything else derives from these lists: the codec's validation, intake's
 * routing, and the README's event table (tools/tp-schema).
 *
 * To add a type: one line in TP_EVENT_MAP and one field list in schema.c.
 * Never match event types by ad-hoc strings elsewhere. */
#ifndef TP_PROTO_H
#define TP_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define TP_PROTO_VERSION 1

/* The services. XX(ENUM, "name") */
#define TP_SERVICE_MAP(XX)                                                    \
    XX(INTAKE, "intake")                                                      \
    XX(SCORING, "scoring")                                                    \
    XX(SCHEDULER, "scheduler")                                                \
    XX(NOTIFIER, "notifier")                                                  \
    XX(TICKETING, "ticketing")

typedef enum {
#define XX(e, n) TP_SERVICE_##e,
    TP_SERVICE_MAP(XX)
#undef XX
        TP_SERVICE_COUNT
} tp_service_t;

#define TP_TO(svc) (1u << TP_SERVICE_##svc)
#define TP_TO_NONE 0u

/* The customer states (R-STAGE-2), as the record and stage.changed say them. */
#define TP_CUSTOMER_STATES                                                    \
    "potential|target|intent|signed|long_term|lost|churned"
/* Why customers leave or deals are lost (R-CHURN-1). */
#define TP_CHURN_REASONS "market|price|service|policy|product|competitor"

/* The catalogue. XX(ENUM, fields, NULL, "type", consumers, producer, "meaning")
 * fields: the name of the `data` field list in schema.c.
 * consumers: bit set of services the event is routed to.
 * producer: INTAKE for events from the outside world (HTTP or native
 * producers), otherwise the one service allowed to emit it. scoring keeps the
 * shared customer record and its timeline, so it consumes every type. */
#define TP_EVENT_MAP(XX)                                                      \
    XX(LEAD_CAPTURED, lead_captured, NULL, "lead.captured", TP_TO(SCORING), INTAKE,               \
       "A new lead from any channel (R-LEAD-1, R-GRADE-1).")                  \
    XX(CONTACT_LOGGED, contact_logged, NULL, "contact.logged",                                      \
       TP_TO(SCORING) | TP_TO(SCHEDULER), INTAKE,                             \
       "A contact with the customer happened (R-GRADE-3, R-CAD-4).")          \
    XX(CALL_STARTED, call_started, NULL, "call.started", TP_TO(SCORING), INTAKE,                  \
       "The phone system picked up or placed a call.")                        \
    XX(CALL_ENDED, call_ended, NULL, "call.ended", TP_TO(SCORING) | TP_TO(TICKETING), INTAKE,  \
       "A call ended; an inbound call on a support queue opens a ticket or "  \
       "joins the caller's open one (R-TICKET-1, R-TICKET-7).")               \
    XX(INQUIRY_RECEIVED, inquiry_received, NULL, "inquiry.received",                                  \
       TP_TO(SCORING) | TP_TO(SCHEDULER), INTAKE,                             \
       "A customer asked something; the answer is due (R-SLA-1).")            \
    XX(TICKET_OPENED, ticket_opened, NULL, "ticket.opened", TP_TO(SCORING) | TP_TO(TICKETING),     \
       INTAKE, "An after-sales ticket was opened (R-TICKET-1).")              \
    XX(TICKET_UPDATED, ticket_updated, ticket_updated_rules, "ticket.updated",                      \
       TP_TO(SCORING) | TP_TO(TICKETING), INTAKE,                             \
       "An agent assigned, commented on, moved or transferred a ticket "      \
       "(R-TICKET-1, R-TICKET-2).")                                           \
    XX(LEAD_GRADED, lead_graded, NULL, "lead.graded", TP_TO(SCHEDULER),            \
       SCORING, "A lead got a new grade (R-GRADE-2, R-GRADE-3).")             \
    XX(REMINDER_DUE, reminder_due, NULL, "reminder.due", TP_TO(SCORING) | TP_TO(NOTIFIER),        \
       SCHEDULER, "A planned reminder fell due.")                             \
    XX(NOTIFICATION_SENT, notification_sent, NULL, "notification.sent", TP_TO(SCORING), NOTIFIER,     \
       "A notification was delivered on one channel.")                        \
    XX(NOTIFICATION_FAILED, notification_failed, NULL, "notification.failed", TP_TO(SCORING), NOTIFIER, \
       "A notification could not be delivered after every retry.")            \
    XX(NOTIFICATION_READ, notification_read, NULL, "notification.read",       \
       TP_TO(SCORING) | TP_TO(NOTIFIER), INTAKE,                              \
       "A user read an in-app notification; the inbox entry is marked read.") \
    XX(SLA_BREACHED, sla_breached, NULL, "sla.breached", TP_TO(SCORING) | TP_TO(NOTIFIER),        \
       TICKETING, "A ticket missed an SLA deadline (R-TICKET-3).")           \
    XX(LEAD_UPDATED, lead_updated, NULL, "lead.updated", TP_TO(SCORING), INTAKE,   \
       "A lead's urgency, budget or decision chain changed (R-GRADE-3).")     \
    XX(OPPORTUNITY_UPDATED, opportunity_updated, NULL, "opportunity.updated",       \
       TP_TO(SCORING), INTAKE,                                                \
       "A deal was created or changed: amount, stage, probability "           \
       "(R-STAGE-1, R-VALUE-1).")                                             \
    XX(DEAL_CLOSED, deal_closed, deal_closed_rules, "deal.closed", TP_TO(SCORING), INTAKE,      \
       "A deal was won or lost, with the reason (R-CHURN-1).")                \
    XX(CUSTOMER_UPDATED, customer_updated, NULL, "customer.updated",                \
       TP_TO(SCORING) | TP_TO(SCHEDULER), INTAKE,                                                \
       "Archive and classification of a customer (R-CUST-1, R-CUST-2).")      \
    XX(CUSTOMER_MERGED, customer_merged, NULL, "customer.merged", TP_TO(SCORING),  \
       INTAKE, "Two records were found to be one customer; `from` joins "     \
       "the envelope's customer.")                                            \
    XX(SURVEY_ANSWERED, survey_answered, NULL, "survey.answered",                   \
       TP_TO(SCORING) | TP_TO(SCHEDULER) | TP_TO(TICKETING), INTAKE,                             \
       "A satisfaction score 1-5 (R-SAT-1); below 4 plans the owner's "       \
       "follow-up.")                                                          \
    XX(STAGE_CHANGED, stage_changed, NULL, "stage.changed", TP_TO(SCHEDULER),      \
       SCORING, "A deal moved to another stage, with the time it spent in "   \
       "the previous one (R-STAGE-1, R-STAGE-3).")                            \
    XX(CUSTOMER_AT_RISK, customer_at_risk, NULL, "customer.at_risk",                \
       TP_TO(NOTIFIER), SCORING,                                              \
       "A customer's health fell below the threshold (R-HEALTH-1); once per " \
       "episode.")                                                            \
    XX(PAYMENT_SCHEDULED, payment_scheduled, NULL, "payment.scheduled",       \
       TP_TO(SCORING) | TP_TO(SCHEDULER), INTAKE,                             \
       "A contract payment falls due on a date (R-PAY-1).")                   \
    XX(PAYMENT_RECEIVED, payment_received, NULL, "payment.received",          \
       TP_TO(SCORING) | TP_TO(SCHEDULER), INTAKE,                             \
       "A scheduled payment came in; its reminders stop (R-PAY-1).")          \
    XX(ORDER_PLACED, order_placed, NULL, "order.placed",                      \
       TP_TO(SCORING) | TP_TO(SCHEDULER), INTAKE,                             \
       "An order of consumables with its reorder cycle (R-REORDER-1).")       \
    XX(EMAIL_RECEIVED, email_received, NULL, "email.received",                \
       TP_TO(SCORING) | TP_TO(TICKETING), INTAKE,                             \
       "An inbound email: opens a ticket, or comments on (and reopens) the "  \
       "ticket whose thread it answers (R-TICKET-1, R-TICKET-2).")            \
    XX(TICKET_ESCALATED, ticket_escalated, NULL, "ticket.escalated",          \
       TP_TO(SCORING) | TP_TO(NOTIFIER), TICKETING,                           \
       "A ticket needs someone's attention: the SLA warning to the owner, "   \
       "the department lead on breach, then the manager (R-TICKET-4); a "     \
       "complaint to the account owner (R-TICKET-5). Once per step.")         \
    XX(SURVEY_REQUESTED, survey_requested, NULL, "survey.requested",          \
       TP_TO(SCORING) | TP_TO(NOTIFIER), TICKETING,                           \
       "A closed ticket asks its customer's contact for a satisfaction "      \
       "score (R-TICKET-6, R-SAT-1).")

typedef enum {
    TP_EVENT_NONE = 0,
#define XX(e, f, r, n, to, from, doc) TP_EVENT_##e,
    TP_EVENT_MAP(XX)
#undef XX
        TP_EVENT_COUNT
} tp_event_type_t;

/* Kinds of fields in `data`. */
typedef enum {
    TP_FIELD_STRING, /* UTF-8, at most `max` bytes */
    TP_FIELD_INT,    /* integer in [min, max] */
    TP_FIELD_BOOL,
    TP_FIELD_ENUM,   /* one of `choices`, "a|b|c" */
    TP_FIELD_TIME,   /* ms since epoch, UTC, in [min, max] */
    TP_FIELD_OBJECT, /* a map whose fields are `sub` */
    TP_FIELD_ARRAY,  /* at most `max` items, each as described by sub[0] */
    TP_FIELD_KEY,    /* an id used in keys: at most `max` bytes of printable
                        ASCII without spaces, braces or '|' */
    TP_FIELD_RRULE   /* an RFC 5545 RRULE, at most `max` bytes, checked by
                        tp_recur_valid */
} tp_field_kind_t;

typedef struct tp_field {
    const char *name;
    tp_field_kind_t kind;
    int required;
    int64_t min, max;           /* INT/TIME range; STRING: max bytes */
    const char *choices;        /* ENUM: "a|b|c" */
    const struct tp_field *sub; /* OBJECT: terminated by a NULL name */
    const char *doc;
} tp_field_t;

/* A field required only when another one has a given value ("reason" when
 * "outcome" is "lost"). Lists end with a NULL field. */
typedef struct tp_field_rule {
    const char *field;
    const char *when;
    const char *equals;
} tp_field_rule_t;

typedef struct tp_event_schema {
    tp_event_type_t type;
    const char *name;
    unsigned consumers; /* TP_TO() bits */
    tp_service_t producer;
    const char *doc;
    const tp_field_t *fields; /* terminated by a NULL name */
    const tp_field_rule_t *rules; /* NULL, or terminated by a NULL field */
} tp_event_schema_t;

/* Envelope limits (bytes, UTF-8). */
#define TP_ID_MAX 128
#define TP_CUSTOMER_MAX 128
#define TP_ACTOR_MAX 128
#define TP_SRC_MAX 32
#define TP_TEXT_MAX 8192
/* Sources from the outside world; services use their own name as `src`. */
#define TP_SOURCES "phone|email|web|hotline|api"

/* The schema of `type`, or NULL for TP_EVENT_NONE / out of range. */
const tp_event_schema_t *tp_proto_schema(tp_event_type_t type);
/* The type named `name`, or TP_EVENT_NONE when unknown. */
tp_event_type_t tp_proto_type(const char *name);
const char *tp_proto_type_name(tp_event_type_t type);
const char *tp_proto_service_name(tp_service_t svc);
/* The service named `name`, or -1. */
int tp_proto_service(const char *name);

#endif
