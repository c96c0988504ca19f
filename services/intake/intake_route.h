/* intake_route.h: sends each journaled event to the services consuming its
 * type, over one ZeroMQ PUSH per service (its instances PULL and share the
 * load). Owns those sockets. Never blocks and never retries: a message that
 * cannot be queued (no instance up, high-water mark reached) is dropped and
 * counted, since the consumer's reconcile walk applies it from the journal. */
#ifndef INTAKE_ROUTE_H
#define INTAKE_ROUTE_H

#include <stddef.h>

#include "tp/bus.h"
#include "tp/config.h"
#include "tp/proto.h"

typedef struct tp_router tp_router_t;

/* Binds one PUSH per consuming service at [bus] <svc>_endpoint. `bus` and
 * `cfg` are borrowed. Caller owns the result; NULL on failure (logged). */
tp_router_t *tp_router_new(tp_bus_t *bus, tp_config_t *cfg);
void tp_router_destroy(tp_router_t **self_p);

/* Sends the msgpack envelope `payload` (copied) to every consumer of
 * `type`. */
void tp_router_route(tp_router_t *self, tp_event_type_t type,
                     const char *payload, size_t len);

/* Messages dropped so far (no peer or high-water mark). */
unsigned long long tp_router_dropped(const tp_router_t *self);

#endif
