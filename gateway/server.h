/* The server: one event_base, the listener (TLS or plain), the upstream, the live config and
 * the signals. Connections ask it for the config and the upstream. */
#ifndef GW_SERVER_H
#define GW_SERVER_H

#include <stdbool.h>

#include <event2/buffer.h>

#include "gateway/config.h"
#include "gateway/upstream.h"
#include "policy/policy.h"

struct gw_server;

/* What the gateway counts per member while it runs: rate-limit buckets and requests in
 * flight. Kept by member name across reloads; a member's config entry points at it. */
struct gw_member_state {
	char *name;
	struct policy_bucket requests;
	struct policy_bucket tool_calls;
	long in_flight;
};

/* Takes ownership of cfg, loaded from config_path (re-read on SIGHUP). Returns NULL after
 * logging why the listener could not start. */
struct gw_server *gw_server_new(struct gw_config *cfg, const char *config_path);
/* Runs the loop until a signal asks it to stop; returns the process exit code. */
int gw_server_run(struct gw_server *srv);
void gw_server_free(struct gw_server *srv);

/* The live config; a request keeps a reference to the one it started with. */
struct gw_config *gw_server_config(const struct gw_server *srv);
struct upstream *gw_server_upstream(struct gw_server *srv);
struct cache *gw_server_cache(struct gw_server *srv);
struct audit *gw_server_audit(struct gw_server *srv);
struct gw_metrics *gw_server_metrics(struct gw_server *srv);
/* The OAuth server's state (gateway/oauth.h); present even when oauth is off. */
struct gw_oauth *gw_server_oauth(struct gw_server *srv);

/* For the admin listener: readiness (config loaded, Omni reachable recently, Redis when
 * configured), with the reasons written to why; and the whole /metrics page. */
bool gw_server_ready(struct gw_server *srv, struct evbuffer *why);
void gw_server_write_metrics(struct gw_server *srv, struct evbuffer *out);

/* The client that initialized an MCP session (clientInfo of its initialize), for the audit
 * of the session's later requests. Bounded like the ended sessions. */
struct gw_session_client {
	char session[128];
	char name[64];
	char version[32];
};
void gw_server_session_client_set(struct gw_server *srv, const char *session, const char *name,
				  const char *version);
/* NULL when unknown (or session is NULL). */
const struct gw_session_client *gw_server_session_client(const struct gw_server *srv,
							 const char *session);

/* MCP sessions known to have ended (a DELETE went through, or Omni answered 404 for one):
 * answers from the cache are never served for them, so clients learn of the end from Omni
 * and re-initialize. Bounded: the oldest are forgotten. */
void gw_server_session_ended(struct gw_server *srv, const char *session_id);
bool gw_server_session_is_ended(const struct gw_server *srv, const char *session_id);
bool gw_server_draining(const struct gw_server *srv);
/* The live connections; conn.c adds and removes itself. */
struct gw_conn_list *gw_server_conns(struct gw_server *srv);
void gw_server_conn_closed(struct gw_server *srv);

#endif
