/* ticketing_roster.h: departments and the people in them (R-TICKET-1,
 * R-TICKET-4), from the [ticketing] configuration: the departments, each
 * one's agents, lead and manager, the department a category goes to, and
 * how a ticket picks its agent (round robin, or least open tickets among
 * the agents available). Pure: owns the lists read from configuration;
 * never touches Redis (the counters and loads it decides on are read by
 * the caller). */
#ifndef TICKETING_ROSTER_H
#define TICKETING_ROSTER_H

#include <stddef.h>
#include <stdint.h>

#include "tp/config.h"

#define TP_ROSTER_DEPARTMENTS_MAX 16
#define TP_ROSTER_AGENTS_MAX 32

typedef enum { TP_ROSTER_ROUND_ROBIN, TP_ROSTER_LEAST_OPEN } tp_roster_strategy_t;

typedef struct tp_roster tp_roster_t;

/* Reads [ticketing] departments, agents_<dept>, lead_<dept>,
 * manager_<dept> (default: manager), department_<category> (default:
 * faults and changes to engineering, questions and complaints to sales,
 * when configured), default_department (default: the first), assignment
 * and default_owner. Strings copied.
 * Returns NULL with the reason in `err` (naming section.key) when the
 * lists do not hold together. Caller owns the result. */
tp_roster_t *tp_roster_new(tp_config_t *cfg, char *err, size_t errlen);
void tp_roster_destroy(tp_roster_t **self_p);

/* 1 when `dept` is a configured department. */
int tp_roster_has(const tp_roster_t *self, const char *dept);
/* The department a ticket of `category` goes to when the event names none.
 * Borrowed. */
const char *tp_roster_department_for(const tp_roster_t *self, const char *category);
/* The agents of `dept` (NULL when unknown; *n 0). Borrowed. */
const char *const *tp_roster_agents(const tp_roster_t *self, const char *dept, size_t *n);
/* The lead and the manager of `dept`, falling back to the default owner
 * (told of anything nobody else is). Borrowed. */
const char *tp_roster_lead(const tp_roster_t *self, const char *dept);
const char *tp_roster_manager(const tp_roster_t *self, const char *dept);
tp_roster_strategy_t tp_roster_strategy(const tp_roster_t *self);

/* The agent of `dept` a new ticket goes to, or NULL when nobody is
 * available. `away[i]` (1: away) and `open[i]` (open tickets) are per
 * agent in tp_roster_agents order; `turn` is the department's round-robin
 * counter. Round robin takes the turn-th agent, skipping those away; least
 * open takes the available agent with the fewest open tickets, the first
 * listed on a tie. Borrowed. */
const char *tp_roster_pick(const tp_roster_t *self, const char *dept, int64_t turn,
                           const int *away, const int64_t *open);

#endif
