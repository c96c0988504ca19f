/* intake_route.c: one PUSH socket per consuming service; fan-out by the
 * routing table in proto/. */
#include "intake_route.h"

#include <errno.h>
#include <stdlib.h>

#include "tp/log.h"
#include "tp/service.h"

struct tp_router {
    tp_bus_socket_t *feeds[TP_SERVICE_COUNT];
    unsigned long long dropped;
};

tp_router_t *tp_router_new(tp_bus_t *bus, tp_config_t *cfg) {
    tp_router_t *self = calloc(1, sizeof *self);
    if (!self) abort();
    int hwm = tp_service_bus_hwm(cfg);
    for (int s = 0; s < TP_SERVICE_COUNT; s++) {
        if (s == TP_SERVICE_INTAKE) continue;
        const char *ep = tp_service_endpoint(cfg, (tp_service_t)s);
        self->feeds[s] = tp_bus_socket_new(bus, ZMQ_PUSH, ep, 1, hwm, NULL, NULL);
        if (!self->feeds[s]) {
            tp_router_destroy(&self);
            return NULL;
        }
    }
    return self;
}

void tp_router_destroy(tp_router_t **self_p) {
    tp_router_t *self = self_p ? *self_p : NULL;
    if (!self) return;
    for (int s = 0; s < TP_SERVICE_COUNT; s++)
        tp_bus_socket_destroy(&self->feeds[s]);
    free(self);
    *self_p = NULL;
}

void tp_router_route(tp_router_t *self, tp_event_type_t type,
                     const char *payload, size_t len) {
    const tp_event_schema_t *schema = tp_proto_schema(type);
    if (!schema) return;
    const void *frames[1] = {payload};
    size_t lens[1] = {len};
    for (int s = 0; s < TP_SERVICE_COUNT; s++) {
        if (!(schema->consumers & (1u << s)) || !self->feeds[s]) continue;
        if (tp_bus_send(self->feeds[s], frames, lens, 1) < 0) {
            if (self->dropped++ % 10000 == 0)
                tp_log_warn("route to %s: %s (dropped %llu so far; reconcile "
                            "applies them from the journal)",
                            tp_proto_service_name((tp_service_t)s),
                            errno == EAGAIN ? "no instance or queue full"
                                            : zmq_strerror(errno),
                            self->dropped);
        }
    }
}

unsigned long long tp_router_dropped(const tp_router_t *self) {
    return self->dropped;
}
