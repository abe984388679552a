/* Inside the request module: struct gw_req, shared by the steps (req.c) and the response
 * relay (relay.c). Nothing outside gateway/req*.c and gateway/relay.c includes this. */
#ifndef GW_REQ_INTERNAL_H
#define GW_REQ_INTERNAL_H

#include <stdbool.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <event2/buffer.h>

#include "gateway/config.h"
#include "gateway/http.h"
#include "gateway/inspect.h"
#include "gateway/rpc.h"
#include "gateway/upstream.h"
#include "policy/identity.h"
#include "policy/policy.h"

struct gw_req {
	struct gw_conn *conn;
	struct gw_config *cfg; /* the config this request started with (a reference) */
	char id[17];
	char *head_buf;
	struct gw_http_head head;
	struct evbuffer *body;
	char *rpc_id; /* JSON text of the JSON-RPC id, parsed only for error answers */
	bool rpc_id_parsed;
	const struct gw_member *member;
	size_t member_index;
	struct gw_member_state *state; /* set once the request counts as in flight */
	struct policy_identity ident;
	struct gw_rpc *rpc;            /* the POST body's messages */
	const struct policy_rule *rule;
	struct policy_decision decision; /* headers the gateway sends upstream */
	cJSON *answers;       /* the gateway's own answers to denied batch elements, or NULL */
	char *upstream_body;  /* the body sent upstream when denied elements were removed */
	size_t upstream_len;
	char *error_detail;        /* for the error answered by a step, when it has one */
	long retry_after;          /* seconds, for a 429 */
	bool inspect_tools_list;   /* the response holds a tools/list result to filter */
	struct gw_inspect *inspect; /* the response's messages are read (and maybe changed) */
	bool watch_list_changed;    /* the stream passes untouched, scanned for tools/list_changed */
	char watch_tail[40];        /* the end of the previous chunk, for a name split across two */
	size_t watch_tail_len;
	struct evbuffer *held;      /* a JSON response held whole until it can be changed */
	struct evbuffer *held_headers;
	char *cache_key;            /* set when the answer may come from the cache */
	long cache_ttl;
	struct cache_lookup *cache_lookup;
	struct cache_flight_wait *cache_wait;
	bool cache_leader;          /* fetching for the single flight of cache_key */
	bool cache_stored;
	bool cache_hit;
	bool audited;               /* its records were submitted */
	struct audit_ticket *audit_ticket; /* records in flight whose outcome it waits for */
	int rpc_error;              /* the gateway's own error code answered, for the audit */
	char *client_name;          /* from an initialize in this request */
	char *client_version;
	const char *topic_model;    /* the model of a topic tool call */
	struct evbuffer *rest_body; /* Omni's REST answer for a topic tool */
	int rest_status;
	struct cache_redis_cmd *rate_cmds[2]; /* shared counts in flight (requests, tool calls) */
	int rate_pending;
	bool rate_over;
	struct gw_req_oauth *oauth; /* an OAuth endpoint's or access token's state (req_oauth.c) */
	char *cors;                 /* CORS header lines for a browser's request, or NULL */
	enum upstream_method method;
	struct upstream_xfer *xfer;
	int status;
	bool refused;    /* upstream answered 401/403 */
	bool head_sent;  /* the response head went to the client */
	bool chunked;    /* the response is framed with chunked encoding */
	bool keep_alive; /* after this response */
	bool paused;
	long upstream_ms; /* until the upstream's response head; -1 when none came */
	size_t bytes_out;
	struct timespec started;
};

/* The response relay: upstream callbacks that write the answer to the client. */
extern const struct upstream_handlers gw_relay_handlers;

/* A step's verdict meaning "it goes on later, or was answered already": the request may be
 * gone, the caller does nothing more. Compared by pointer; never written to a client. */
extern const struct gw_error gw_req_later;

/* The steps after authentication (from identity on); an access token checked later goes on
 * here. */
void gw_req_run_authenticated(struct gw_req *r);

/* OAuth (req_oauth.c). start answers the OAuth endpoints (true: the request is handled);
 * authenticate checks an access token when no static token matched: NULL with r->member set,
 * an error, or &gw_req_later (then gw_req_run_authenticated or an error answer follows). */
bool gw_req_oauth_start(struct gw_req *r);
const struct gw_error *gw_req_oauth_authenticate(struct gw_req *r);
void gw_req_oauth_release(struct gw_req *r);

/* CORS (req_cors.c): note works out the headers of the request's answers from its Origin;
 * preflight answers an OPTIONS preflight (true: the request is handled). */
void gw_req_cors_note(struct gw_req *r);
bool gw_req_cors_preflight(struct gw_req *r);

/* The limits step (req_limits.c): NULL to go on, an error, or &gw_req_later when the counts
 * are shared through Redis (the request then goes on with gw_req_proceed, or is answered). */
const struct gw_error *gw_req_limits(struct gw_req *r);
void gw_req_limits_release(struct gw_req *r);
/* The steps after the limits: the gateway's own tools, the cache, Omni. */
void gw_req_proceed(struct gw_req *r);

/* Forwards the request to Omni (the last step). */
void gw_req_forward(struct gw_req *r);

/* The cache step (req_cache.c). start returns true when the request now waits for the cache
 * (it continues from a callback), false to forward at once. */
bool gw_req_cache_start(struct gw_req *r);
void gw_req_cache_capture(struct gw_req *r, const cJSON *msg);
void gw_req_cache_tools_changed(struct gw_req *r);
/* Leaves any lookup or flight; the request is going away or done. */
void gw_req_cache_release(struct gw_req *r);

/* The gateway's own topic tools (req_topics.c): add their definitions to a tools/list
 * result, and answer a call to one (true: the request is handled). */
void gw_req_topic_tools_add(struct gw_req *r, cJSON *tools);
bool gw_req_topic_tool_start(struct gw_req *r);

/* The audit step (req_audit.c). gw_req_audit submits the request's records; it returns true
 * when then will be called (later, once every record is in, or already, with ok false when
 * every record was refused): the caller must not touch r afterwards. It returns false when
 * there is nothing to wait for. then may be NULL. */
bool gw_req_audit(struct gw_req *r, long duration_ms, void (*then)(struct gw_req *r, bool ok));
/* Whether a data query must be refused now: the audit is failing and on_failure is refuse. */
bool gw_req_audit_refuses(struct gw_req *r);
bool gw_req_has_data_query(const struct gw_req *r);
/* The request goes away: records still in flight no longer report to it. */
void gw_req_audit_release(struct gw_req *r);
/* Milliseconds since the request arrived. */
long gw_req_elapsed_ms(const struct gw_req *r);

/* Answers the request from a cached result (JSON text of the JSON-RPC result), in the framing
 * the client accepts, with the client's id; tools/list results are filtered for the member. */
void gw_relay_answer_cached(struct gw_req *r, const char *result, size_t len);

/* Ends the request: logs its access line and hands the connection back. */
void gw_req_finish(struct gw_req *r, bool keep_alive);
/* Answers with err (and the request's id) and ends the request. */
void gw_req_respond_error(struct gw_req *r, const struct gw_error *err);
/* Answers with a JSON body the gateway made (NULL: no body) and ends the request. */
void gw_req_respond_json(struct gw_req *r, int status, const cJSON *json);

#endif
