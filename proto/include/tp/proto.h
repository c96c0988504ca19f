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

/* The catalogue. XX(ENUM, fields, "type", consumers, producer, "meaning")
 * fields: the name of the `data` field list in schema.c.
 * consumers: bit set of services the event is routed to.
 * producer: INTAKE for events from the outside world (HTTP or native
 * producers), otherwise the one service allowed to emit it. scoring keeps the
 * shared customer record and its timeline, so it consumes every type. */
#define TP_EVENT_MAP(XX)                                                      \
    XX(LEAD_CAPTURED, lead_captured, "lead.captured", TP_TO(SCORING), INTAKE,               \
       "A new lead from any channel (R-LEAD-1, R-GRADE-1).")                  \
    XX(CONTACT_LOGGED, contact_logged, "contact.logged",                                      \
       TP_TO(SCORING) | TP_TO(SCHEDULER), INTAKE,                             \
       "A contact with the customer happened (R-GRADE-3, R-CAD-4).")          \
    XX(CALL_STARTED, call_started, "call.started", TP_TO(SCORING), INTAKE,                  \
       "The phone system picked up or placed a call.")                        \
    XX(CALL_ENDED, call_ended, "call.ended", TP_TO(SCORING), INTAKE,                      \
       "A call ended.")                                                       \
    XX(INQUIRY_RECEIVED, inquiry_received, "inquiry.received",                                  \
       TP_TO(SCORING) | TP_TO(SCHEDULER), INTAKE,                             \
       "A customer asked something; the answer is due (R-SLA-1).")            \
    XX(TICKET_OPENED, ticket_opened, "ticket.opened", TP_TO(SCORING) | TP_TO(TICKETING),     \
       INTAKE, "An after-sales ticket was opened (R-TICKET-1).")              \
    XX(TICKET_UPDATED, ticket_updated, "ticket.updated", TP_TO(SCORING) | TP_TO(TICKETING),   \
       INTAKE, "An agent assigned, commented on or moved a ticket.")          \
    XX(LEAD_GRADED, lead_graded, "lead.graded", TP_TO(SCORING) | TP_TO(SCHEDULER),         \
       SCORING, "A lead got a new grade (R-GRADE-2, R-GRADE-3).")             \
    XX(REMINDER_DUE, reminder_due, "reminder.due", TP_TO(SCORING) | TP_TO(NOTIFIER),        \
       SCHEDULER, "A planned reminder fell due.")                             \
    XX(NOTIFICATION_SENT, notification_sent, "notification.sent", TP_TO(SCORING), NOTIFIER,     \
       "A notification was delivered on one channel.")                        \
    XX(NOTIFICATION_FAILED, notification_failed, "notification.failed", TP_TO(SCORING), NOTIFIER, \
       "A notification could not be delivered after every retry.")            \
    XX(SLA_BREACHED, sla_breached, "sla.breached", TP_TO(SCORING) | TP_TO(NOTIFIER),        \
       TICKETING, "A ticket missed an SLA deadline (R-TICKET-3).")

typedef enum {
    TP_EVENT_NONE = 0,
#define XX(e, f, n, to, from, doc) TP_EVENT_##e,
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
    TP_FIELD_OBJECT  /* a map whose fields are `sub` */
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

typedef struct tp_event_schema {
    tp_event_type_t type;
    const char *name;
    unsigned consumers; /* TP_TO() bits */
    tp_service_t producer;
    const char *doc;
    const tp_field_t *fields; /* terminated by a NULL name */
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
