/* intake_ingress.c: ROUTER socket -> validate -> journal -> answer. */
#include "intake_ingress.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tp/log.h"
#include "tp/service.h"

#define IDENTITY_MAX 256
#define TOKEN_MAX 64

struct tp_ingress {
    tp_bus_socket_t *router;
    tp_journal_t *journal;
    tp_series_t *rejected; /* events refused for a field (metrics) */
};

void tp_ingress_count_rejected(tp_ingress_t *self, tp_series_t *rejected) {
    self->rejected = rejected;
}

typedef struct pending_answer {
    tp_ingress_t *ingress;
    char identity[IDENTITY_MAX];
    size_t identity_len;
    char token[TOKEN_MAX];
    size_t token_len;
} pending_answer_t;

static void answer(tp_ingress_t *self, const pending_answer_t *p,
                   const char *status) {
    const void *frames[3] = {p->identity, p->token, status};
    size_t lens[3] = {p->identity_len, p->token_len, strlen(status)};
    if (tp_bus_send(self->router, frames, lens, 3) < 0)
        tp_log_warn("ingress: answer not sent (%s); the producer resends",
                    zmq_strerror(errno));
}

static void journaled_cb(tp_journal_batch_t *batch, int outcome, void *arg) {
    pending_answer_t *p = arg;
    tp_ingress_t *self = p->ingress;
    {
        if (outcome == TP_JOURNAL_OK) {
            answer(self, p, tp_journal_batch_duplicate(batch, 0) ? "dup" : "ok");
        } else if (outcome == TP_JOURNAL_REJECTED) {
            char status[300];
            const tp_event_error_t *err = tp_journal_batch_error(batch, NULL);
            snprintf(status, sizeof status, "err %s: %s", err->field,
                     err->message);
            tp_series_inc(self->rejected);
            answer(self, p, status);
        } else {
            answer(self, p, "busy");
        }
    }
    free(p);
}

/* With CURVE, the sender's User-Id (from the ZAP handler: a service, or
 * an outside producer of [bus] producers) must be the producer the
 * catalogue names for the event's type: a service emits only its own
 * events, an outside producer only what the outside world may send. */
static int producer_check(tp_bus_socket_t *sock, const tp_event_t *ev,
                          tp_event_error_t *err) {
    const char *peer = tp_bus_peer(sock);
    if (!peer) return 0; /* CURVE off: a development setting */
    const tp_event_schema_t *schema = tp_proto_schema(ev->type);
    int svc = tp_proto_service(peer);
    if (schema && (svc >= 0 ? svc : (int)TP_SERVICE_INTAKE) == (int)schema->producer)
        return 0;
    snprintf(err->field, sizeof err->field, "type");
    snprintf(err->message, sizeof err->message, "%s may not emit %s", peer,
             schema ? schema->name : "this type");
    return -1;
}

static void message_cb(tp_bus_socket_t *sock, const void *const *frames,
                       const size_t *lens, size_t nframes, void *arg) {
    tp_ingress_t *self = arg;
    if (nframes != 3 || lens[0] > IDENTITY_MAX || lens[1] > TOKEN_MAX) {
        tp_log_warn("ingress: dropped a message of %zu frames", nframes);
        return;
    }
    pending_answer_t *p = calloc(1, sizeof *p);
    if (!p) abort();
    p->ingress = self;
    memcpy(p->identity, frames[0], lens[0]);
    p->identity_len = lens[0];
    memcpy(p->token, frames[1], lens[1]);
    p->token_len = lens[1];

    tp_event_t ev;
    tp_event_error_t err;
    tp_event_init(&ev);
    tp_journal_batch_t *b = tp_journal_batch_new(self->journal, 1);
    tp_journal_batch_internal(b);
    if (tp_event_from_msgpack(&ev, frames[2], lens[2], &err) < 0 ||
        producer_check(sock, &ev, &err) < 0 ||
        tp_journal_batch_add(b, &ev, &err) < 0) {
        char status[300];
        snprintf(status, sizeof status, "err %s: %s", err.field, err.message);
        tp_log_warn("ingress: refused an event: %s", status);
        tp_series_inc(self->rejected);
        answer(self, p, status);
        tp_event_clear(&ev);
        tp_journal_batch_destroy(&b);
        free(p);
        return;
    }
    tp_journal_submit(b, journaled_cb, p);
}

tp_ingress_t *tp_ingress_new(tp_bus_t *bus, tp_config_t *cfg,
                             tp_journal_t *journal) {
    tp_ingress_t *self = calloc(1, sizeof *self);
    if (!self) abort();
    self->journal = journal;
    int hwm = tp_service_bus_hwm(cfg);
    self->router = tp_bus_socket_new(bus, ZMQ_ROUTER,
                                     tp_service_endpoint(cfg, TP_SERVICE_INTAKE),
                                     1, hwm, message_cb, self);
    if (!self->router) {
        free(self);
        return NULL;
    }
    return self;
}

void tp_ingress_destroy(tp_ingress_t **self_p) {
    tp_ingress_t *self = self_p ? *self_p : NULL;
    if (!self) return;
    tp_bus_socket_destroy(&self->router);
    free(self);
    *self_p = NULL;
}
