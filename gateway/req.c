/* The request life cycle: the steps in data-flow order and the upstream request a member's
 * call becomes. The answer's way back is gateway/relay.c. */
#include "gateway/req.h"
#include "gateway/req_internal.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "gateway/auth.h"
#include "gateway/conn.h"
#include "gateway/errors.h"
#include "gateway/inspect.h"
#include "gateway/log.h"
#include "gateway/metrics.h"
#include "gateway/rpc.h"
#include "gateway/server.h"
#include "gateway/upstream.h"
#include "policy/identity.h"
#include "policy/policy.h"

#define GW_USER_AGENT "omni-mcp-gateway/0.1"

/* A header name (lowercase) with its length: most of a request's headers are told apart from
 * it by length alone. */
struct header_name {
	const char *name;
	size_t len;
};
#define HEADER(name) {name, sizeof(name) - 1}

/* Client request headers carried upstream (mcp-transport.md), besides every Mcp-Param-*.
 * Identity headers (Authorization, X-MCP-*) are the gateway's to set and never copied. */
static const struct header_name forwarded_request_headers[] = {
	HEADER("accept"),	  HEADER("content-type"),
	HEADER("mcp-session-id"), HEADER("mcp-protocol-version"),
	HEADER("last-event-id"),  HEADER("mcp-method"),
	HEADER("mcp-name"),	  HEADER("traceparent"),
	HEADER("tracestate"),
};
#define N_FORWARDED (sizeof(forwarded_request_headers) / sizeof(forwarded_request_headers[0]))

static unsigned long long next_req_seq;

/* seq as 16 lowercase hex digits ("%016llx"). */
static void format_id(char id[17], unsigned long long seq)
{
	static const char hex[] = "0123456789abcdef";

	for (int i = 15; i >= 0; i--, seq >>= 4)
		id[i] = hex[seq & 15];
	id[16] = '\0';
}

struct gw_req *gw_req_new(struct gw_conn *c, char *head_buf, const struct gw_http_head *head)
{
	struct gw_req *r = calloc(1, sizeof(*r));

	if (!r)
		abort();
	/* A random start, so that ids differ across restarts and replicas. */
	if (next_req_seq == 0 && RAND_bytes((unsigned char *)&next_req_seq, sizeof(next_req_seq)) != 1)
		next_req_seq = (unsigned long long)time(NULL) << 20;
	format_id(r->id, ++next_req_seq);
	r->conn = c;
	r->cfg = gw_config_ref(gw_server_config(gw_conn_server(c)));
	r->head_buf = head_buf;
	r->head = *head;
	r->keep_alive = head->keep_alive;
	r->upstream_ms = -1;
	r->body = evbuffer_new();
	if (!r->body)
		abort();
	clock_gettime(CLOCK_MONOTONIC, &r->started);
	return r;
}

void gw_req_free(struct gw_req *r)
{
	if (!r)
		return;
	if (r->xfer)
		upstream_xfer_cancel(r->xfer);
	gw_req_cache_release(r);
	gw_req_audit_release(r);
	gw_req_limits_release(r);
	gw_req_oauth_release(r);
	free(r->cors);
	free(r->client_name);
	free(r->client_version);
	if (r->rest_body)
		evbuffer_free(r->rest_body);
	if (r->state)
		r->state->in_flight--;
	gw_rpc_free(r->rpc);
	cJSON_Delete(r->answers);
	free(r->upstream_body);
	free(r->error_detail);
	gw_inspect_free(r->inspect);
	if (r->held)
		evbuffer_free(r->held);
	if (r->held_headers)
		evbuffer_free(r->held_headers);
	evbuffer_free(r->body);
	free(r->head_buf);
	free(r->rpc_id);
	gw_config_unref(r->cfg);
	free(r);
}

const struct gw_http_head *gw_req_head(const struct gw_req *r)
{
	return &r->head;
}

struct evbuffer *gw_req_body(struct gw_req *r)
{
	return r->body;
}

const char *gw_req_id(const struct gw_req *r)
{
	return r->id;
}

const char *gw_req_rpc_id(struct gw_req *r)
{
	cJSON *msg, *id;
	size_t len = evbuffer_get_length(r->body);

	if (r->rpc_id_parsed || len == 0)
		return r->rpc_id;
	r->rpc_id_parsed = true;
	if (r->rpc) {
		if (!r->rpc->batch && r->rpc->msgs[0].id)
			r->rpc_id = gw_rpc_id_json(r->rpc->msgs[0].id);
		return r->rpc_id;
	}
	msg = cJSON_ParseWithLength((const char *)evbuffer_pullup(r->body, -1), len);
	id = cJSON_IsObject(msg) ? cJSON_GetObjectItemCaseSensitive(msg, "id") : NULL;
	if (cJSON_IsNumber(id) || (cJSON_IsString(id) && strlen(id->valuestring) < 256))
		r->rpc_id = cJSON_PrintUnformatted(id);
	cJSON_Delete(msg);
	return r->rpc_id;
}

long gw_req_elapsed_ms(const struct gw_req *r)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - r->started.tv_sec) * 1000 +
	       (now.tv_nsec - r->started.tv_nsec) / 1000000;
}

/* The path part of the target, for matching and logs (a query string may carry anything). */
static size_t path_len(const char *target)
{
	return strcspn(target, "?#");
}

/* The JSON-RPC method for logs and metrics: the single message's, "batch", or the HTTP
 * method for GET and DELETE. */
static const char *rpc_method(const struct gw_req *r)
{
	if (!r->rpc)
		return r->head.method;
	return r->rpc->batch ? "batch" : r->rpc->msgs[0].method;
}

static const char *rpc_tool(const struct gw_req *r)
{
	return r->rpc && !r->rpc->batch ? r->rpc->msgs[0].tool : NULL;
}

static void log_access(const struct gw_req *r, long ms)
{
	char path[256];
	size_t n = path_len(r->head.target);
	struct gw_log_field f[] = {
		{"req", r->id, 0, false},
		{"member", r->member ? r->member->name : NULL, 0, false},
		{"peer", gw_conn_peer(r->conn), 0, false},
		{"method", r->head.method, 0, false},
		{"path", path, 0, false},
		{"rpc", rpc_method(r), 0, false},
		{"tool", rpc_tool(r), 0, false},
		{"status", NULL, r->status, true},
		{"bytes", NULL, (long long)r->bytes_out, true},
		{"ms", NULL, ms, true},
		{"upstream_ms", NULL, r->upstream_ms, true},
		{"cache", r->cache_hit ? "hit" : (r->cache_key ? "miss" : NULL), 0, false},
	};

	if (n >= sizeof(path))
		n = sizeof(path) - 1;
	memcpy(path, r->head.target, n);
	path[n] = '\0';
	gw_log_access(f, (int)(sizeof(f) / sizeof(f[0])));
}

/* What every request leaves when it ends, however: its audit records, access line and
 * metrics. */
static void account(struct gw_req *r)
{
	long ms = gw_req_elapsed_ms(r);

	gw_req_audit(r, ms, NULL);
	log_access(r, ms);
	gw_metrics_request(gw_server_metrics(gw_conn_server(r->conn)),
			   r->member ? r->member->name : NULL, rpc_method(r), rpc_tool(r), r->status,
			   ms / 1000.0, r->upstream_ms >= 0 ? r->upstream_ms / 1000.0 : -1);
}

void gw_req_finish(struct gw_req *r, bool keep_alive)
{
	account(r);
	gw_conn_req_done(r->conn, keep_alive && r->keep_alive);
}

void gw_req_respond_error(struct gw_req *r, const struct gw_error *err)
{
	char retry[48];

	snprintf(retry, sizeof(retry), "Retry-After: %ld\r\n", r->retry_after);
	r->status = err->status;
	r->rpc_error = err->rpc_code;
	gw_conn_write_error(r->conn, err, gw_req_rpc_id(r), r->error_detail,
			    err->status == 429 ? retry : NULL, r->keep_alive);
	gw_req_finish(r, true);
}

/* Answers with a JSON body the gateway made (the answers to denied messages). */
void gw_req_respond_json(struct gw_req *r, int status, const cJSON *json)
{
	struct evbuffer *body = NULL;
	char *text;

	if (json) {
		text = cJSON_PrintUnformatted(json);
		body = evbuffer_new();
		if (!text || !body)
			abort();
		evbuffer_add(body, text, strlen(text));
		free(text);
	}
	r->status = status;
	gw_conn_write_json(r->conn, status, body, r->keep_alive);
	if (body)
		evbuffer_free(body);
	gw_req_finish(r, true);
}

/* Step: the endpoint and its methods. */
static const struct gw_error *step_route(struct gw_req *r)
{
	const char *m = r->head.method;
	size_t n = path_len(r->head.target);

	if (n != strlen(r->cfg->mcp_path) || strncmp(r->head.target, r->cfg->mcp_path, n) != 0)
		return &gw_err_not_found;
	if (strcmp(m, "POST") == 0)
		r->method = UPSTREAM_POST;
	else if (strcmp(m, "GET") == 0)
		r->method = UPSTREAM_GET;
	else if (strcmp(m, "DELETE") == 0)
		r->method = UPSTREAM_DELETE;
	else
		return &gw_err_method;
	return NULL;
}

/* values[i] = the first header named names[i] (case-insensitive), or NULL, as
 * gw_http_header() gives it: several names in one pass over the head. */
static void headers_of(const struct gw_http_head *head, const struct header_name *names,
		       const char **values, size_t n)
{
	for (size_t i = 0; i < n; i++)
		values[i] = NULL;
	for (size_t h = 0; h < head->n_headers; h++) {
		size_t len = strlen(head->headers[h].name);

		for (size_t i = 0; i < n; i++)
			if (!values[i] && len == names[i].len &&
			    strcasecmp(head->headers[h].name, names[i].name) == 0)
				values[i] = head->headers[h].value;
	}
}

static bool in_list(const struct gw_strlist *l, const char *s)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcasecmp(l->items[i], s) == 0)
			return true;
	return false;
}

/* Step: DNS-rebinding protection. Browsers send Origin; a request without one is not from a
 * page. Host is checked only when the operator listed the names the gateway answers to. */
static const struct gw_error *step_origin(struct gw_req *r)
{
	static const struct header_name names[] = {HEADER("origin"), HEADER("host")};
	const char *v[2], *origin, *host;

	headers_of(&r->head, names, v, 2);
	origin = v[0];
	host = v[1];
	if (origin && !in_list(&r->cfg->allowed_origins, origin))
		return &gw_err_origin;
	if (r->cfg->allowed_hosts.n > 0 && (!host || !in_list(&r->cfg->allowed_hosts, host)))
		return &gw_err_host;
	return NULL;
}

/* Step: who is this member. */
static const struct gw_error *step_authenticate(struct gw_req *r)
{
	r->member = gw_auth_member(r->cfg, gw_http_header(&r->head, "authorization"));
	return r->member ? NULL : gw_req_oauth_authenticate(r);
}

/* Step: which Omni identity the request runs as, and whether it may run at all. */
static const struct gw_error *step_identity(struct gw_req *r)
{
	const char *req_hdr = gw_http_header(&r->head, "x-mcp-user-required");
	bool requires;

	r->member_index = (size_t)(r->member - r->cfg->members);
	r->rule = policy_rule_of(r->cfg->policy, r->member_index);
	/* The client's header, or the member's policy rule, may tighten the config's setting. */
	requires = (req_hdr && strcasecmp(req_hdr, "true") == 0) || policy_user_required(r->rule);
	return policy_identity_decide(r->cfg, r->member, requires, &r->ident);
}

/* Step: a POST body must be JSON-RPC; the gateway never forwards what it could not decide on. */
static const struct gw_error *step_parse(struct gw_req *r)
{
	const struct gw_error *err = NULL;
	size_t len = evbuffer_get_length(r->body);

	if (r->method != UPSTREAM_POST)
		return NULL;
	r->rpc = gw_rpc_parse((const char *)evbuffer_pullup(r->body, -1), len, &err);
	return r->rpc ? NULL : err;
}

static void policy_headers_of(const struct gw_req *r, struct policy_headers *h)
{
	static const struct header_name names[] = {
		HEADER("x-mcp-model-id"),
		HEADER("x-mcp-topic-name"),
		HEADER("x-mcp-query-all-views"),
		HEADER("mcp-protocol-version"),
		HEADER("mcp-method"),
		HEADER("mcp-name"),
	};
	const char *v[sizeof(names) / sizeof(names[0])];

	headers_of(&r->head, names, v, sizeof(names) / sizeof(names[0]));
	h->model_id = v[0];
	h->topic_name = v[1];
	h->query_all_views = v[2];
	h->protocol_version = v[3];
	h->mcp_method = v[4];
	h->mcp_name = v[5];
}

/* The client's name and version from an initialize, for the audit of its session. */
static void note_client(struct gw_req *r, const struct gw_rpc_msg *m)
{
	const cJSON *info, *name, *version;

	if (!m->method || strcmp(m->method, "initialize") != 0 || r->client_name)
		return;
	info = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(m->json, "params"),
						"clientInfo");
	name = cJSON_GetObjectItemCaseSensitive(info, "name");
	version = cJSON_GetObjectItemCaseSensitive(info, "version");
	if (cJSON_IsString(name))
		r->client_name = strndup(name->valuestring, 63);
	if (cJSON_IsString(version))
		r->client_version = strndup(version->valuestring, 31);
}

/* Step: while the audit cannot record, data queries wait outside (on_failure "refuse"). */
static const struct gw_error *step_audit(struct gw_req *r)
{
	return gw_req_audit_refuses(r) ? &gw_err_audit_unavailable : NULL;
}

/* A denied message is answered by the gateway (a request) or dropped (a notification). */
static void deny(struct gw_req *r, struct gw_rpc_msg *m, const struct policy_decision *d)
{
	m->denied = true;
	gw_info("req=%s member=%s denied: %s", r->id, r->member->name, d->reason);
	if (!m->id)
		return;
	if (!r->answers)
		r->answers = cJSON_CreateArray();
	cJSON_AddItemToArray(r->answers, gw_rpc_error_new(m->id, gw_err_policy.rpc_code, d->reason));
}


/* When every message was denied, the gateway answers alone; nothing reaches Omni. The request
 * is freed by the answer: the caller must not touch it afterwards. */
static void answer_all_denied(struct gw_req *r)
{
	if (!r->answers)
		gw_req_respond_json(r, 202, NULL);
	else if (!r->rpc->batch)
		gw_req_respond_json(r, 200, cJSON_GetArrayItem(r->answers, 0));
	else
		gw_req_respond_json(r, 200, r->answers);
}

/* Step: the member's policy, message by message (each batch element on its own). */
static const struct gw_error *step_policy(struct gw_req *r)
{
	struct policy_headers h;
	struct policy_msg pm;
	struct policy_decision d;
	size_t denied = 0;
	bool first = true;

	policy_headers_of(r, &h);
	memset(&pm, 0, sizeof(pm));
	/* GET, DELETE: the pins still apply, and a model or topic header outside the member's
	 * set refuses the request. */
	policy_decide(r->rule, &pm, &h, &r->decision);
	if (!r->rpc && r->decision.verdict != POLICY_ALLOW) {
		gw_info("req=%s member=%s denied: %s", r->id, r->member->name, r->decision.reason);
		r->error_detail = strdup(r->decision.reason);
		return &gw_err_policy_request;
	}
	for (size_t i = 0; r->rpc && i < r->rpc->n; i++) {
		struct gw_rpc_msg *m = &r->rpc->msgs[i];

		pm.method = m->method;
		pm.is_request = m->id != NULL;
		pm.tool = m->tool;
		pm.arguments = m->arguments;
		pm.name = m->name;
		policy_decide(r->rule, &pm, &h, &d);
		m->rule = d.rule;
		note_client(r, m);
		if (d.verdict == POLICY_HEADER_MISMATCH) {
			r->error_detail = strdup(d.reason);
			return &gw_err_header_mismatch;
		}
		if (d.verdict != POLICY_ALLOW) {
			m->rpc_error = m->id ? gw_err_policy.rpc_code : 0;
			deny(r, m, &d);
			denied++;
			continue;
		}
		if (first)
			r->decision = d;
		first = false;
		if (m->method && strcmp(m->method, "tools/list") == 0)
			r->inspect_tools_list = true;
	}
	if (r->rpc && denied == r->rpc->n) {
		answer_all_denied(r);
		return &gw_req_later;
	}
	if (denied > 0)
		r->upstream_body = gw_rpc_allowed_body(r->rpc, &r->upstream_len);
	return NULL;
}

/* name is strlen(name) bytes long. */
static bool forwarded_request_header(const char *name, size_t len)
{
	if (len >= 10 && strncasecmp(name, "mcp-param-", 10) == 0)
		return true;
	for (size_t i = 0; i < N_FORWARDED; i++)
		if (len == forwarded_request_headers[i].len &&
		    strcasecmp(name, forwarded_request_headers[i].name) == 0)
			return true;
	return false;
}

/* Appends s to line[0..*n), cut at cap bytes. */
static void append(char *line, size_t *n, size_t cap, const char *s)
{
	size_t len = strlen(s);

	if (len > cap - *n)
		len = cap - *n;
	memcpy(line + *n, s, len);
	*n += len;
}

/* Appends the header line a b c (b and c may be NULL), cut where the printf this replaced cut
 * it. */
static struct curl_slist *add_header(struct curl_slist *list, const char *a, const char *b,
				     const char *c)
{
	char line[GW_HTTP_MAX_HEAD + 64];
	size_t n = 0;
	struct curl_slist *l;

	append(line, &n, sizeof(line) - 1, a);
	if (b)
		append(line, &n, sizeof(line) - 1, b);
	if (c)
		append(line, &n, sizeof(line) - 1, c);
	line[n] = '\0';
	l = curl_slist_append(list, line);
	if (!l)
		abort();
	return l;
}

/* The upstream request's headers: the member's identity, then the client's MCP headers. curl
 * sets Host from the upstream URL; its own defaults for Accept, Content-Type and Expect are
 * removed so that Omni sees what the client sent. */
static struct curl_slist *upstream_headers(const struct gw_req *r)
{
	struct curl_slist *h = NULL;
	bool accept = false, ctype = false;

	/* identity.c refuses a member without a credential before this step. */
	h = add_header(h, "Authorization: Bearer ", r->ident.credential, NULL);
	if (r->ident.user_id)
		h = add_header(h, "X-MCP-User-ID: ", r->ident.user_id, NULL);
	if (r->ident.user_required)
		h = add_header(h, "X-MCP-User-Required: true", NULL, NULL);
	if (r->decision.model_id)
		h = add_header(h, "X-MCP-Model-ID: ", r->decision.model_id, NULL);
	if (r->decision.topic_name)
		h = add_header(h, "X-MCP-Topic-Name: ", r->decision.topic_name, NULL);
	if (r->decision.query_all_views)
		h = add_header(h, "X-MCP-Query-All-Views: true", NULL, NULL);
	for (size_t i = 0; i < r->head.n_headers; i++) {
		const struct gw_http_header *hd = &r->head.headers[i];
		size_t len = strlen(hd->name);

		if (!forwarded_request_header(hd->name, len))
			continue;
		accept |= len == 6 && strcasecmp(hd->name, "accept") == 0;
		ctype |= len == 12 && strcasecmp(hd->name, "content-type") == 0;
		h = add_header(h, hd->name, ": ", hd->value);
	}
	if (!accept)
		h = add_header(h, "Accept:", NULL, NULL);
	if (!ctype)
		h = add_header(h, "Content-Type:", NULL, NULL);
	h = add_header(h, "Expect:", NULL, NULL);
	h = add_header(h, "User-Agent: " GW_USER_AGENT, NULL, NULL);
	h = add_header(h, "X-Request-Id: ", r->id, NULL);
	return h;
}

/* Step: forward to Omni and relay the answer. */
void gw_req_forward(struct gw_req *r)
{
	size_t len = evbuffer_get_length(r->body);
	const void *body = len ? (const void *)evbuffer_pullup(r->body, -1) : "";

	if (r->upstream_body) {
		body = r->upstream_body;
		len = r->upstream_len;
	}
	r->xfer = upstream_xfer_start(gw_server_upstream(gw_conn_server(r->conn)), r->method, NULL,
				      upstream_headers(r), body, len, &gw_relay_handlers, r);
	if (!r->xfer)
		gw_req_respond_error(r, &gw_err_upstream_unreachable);
}

void gw_req_run(struct gw_req *r)
{
	const struct gw_error *err;

	gw_req_cors_note(r);
	if (gw_req_cors_preflight(r) || gw_req_oauth_start(r))
		return;
	if ((err = step_route(r)) || (err = step_origin(r)) || (err = step_authenticate(r))) {
		if (err != &gw_req_later)
			gw_req_respond_error(r, err);
		return;
	}
	gw_req_run_authenticated(r);
}

void gw_req_run_authenticated(struct gw_req *r)
{
	const struct gw_error *err;

	if ((err = step_identity(r)) || (err = step_parse(r)) || (err = step_policy(r)) ||
	    (err = step_audit(r)) || (err = gw_req_limits(r))) {
		if (err == &gw_err_rate_limited || err == &gw_err_too_many_streams)
			gw_metrics_rate_limited(gw_server_metrics(gw_conn_server(r->conn)),
						r->member->name);
		if (err != &gw_req_later)
			gw_req_respond_error(r, err);
		return;
	}
	gw_req_proceed(r);
}

void gw_req_proceed(struct gw_req *r)
{
	if (gw_req_topic_tool_start(r) || gw_req_cache_start(r))
		return;
	gw_req_forward(r);
}

void gw_req_on_drained(struct gw_req *r)
{
	if (r->paused && r->xfer) {
		r->paused = false;
		upstream_xfer_resume(r->xfer);
	}
}

void gw_req_abort(struct gw_req *r)
{
	bool running = r->xfer || r->cache_lookup || r->cache_wait || r->rate_pending > 0 ||
		       r->audit_ticket || r->oauth;

	gw_req_cache_release(r);
	gw_req_oauth_release(r);
	if (r->xfer) {
		gw_info("req=%s member=%s client went away; upstream transfer closed", r->id,
			r->member ? r->member->name : "-");
		upstream_xfer_cancel(r->xfer);
		r->xfer = NULL;
	}
	if (!running)
		return;
	/* A GET stream always ends here, so it is logged and counted like any request; one that
	 * never got its head has nginx's "client closed request" status. */
	if (!r->head_sent)
		r->status = 499;
	account(r);
}
