/* The admin listener: plain HTTP on its own address (loopback by default) for the operator and
 * the orchestrator: GET /healthz (alive), /readyz (ready to serve), /metrics (Prometheus). */
#ifndef GW_ADMIN_H
#define GW_ADMIN_H

#include <event2/event.h>

struct gw_admin;
struct gw_server;

/* Listens on listen ("host:port"); NULL after logging why. */
struct gw_admin *gw_admin_new(struct gw_server *srv, struct event_base *base, const char *listen);
void gw_admin_free(struct gw_admin *a);

#endif
