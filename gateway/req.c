/* The request life cycle: the steps in data-flow order, the upstream request a member's call
 * becomes, and the relay of the upstream's response (JSON or SSE) back to the client as it
 * arrives, with the transfer paused while the client reads slower than Omni writes. */
#include "gateway/req.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <openssl/rand.h>
#include <stdarg.h>
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
#include "gateway/rpc.h"
#include "gateway/server.h"
#include "gateway/upstream.h"
#include "policy/identity.h"
#include "policy/policy.h"

#define GW_USER_AGENT "omni-mcp-gateway/0.1"

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
	bool answered;             /* a step wrote the whole response itself */
	bool inspect_tools_list;   /* the response holds a tools/list result to filter */
	struct gw_inspect *inspect; /* the response's messages are read (and maybe changed) */
	struct evbuffer *held;      /* a JSON response held whole until it can be changed */
	struct evbuffer *held_headers;
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

/* Client request headers carried upstream (mcp-transport.md), besides every Mcp-Param-*.
 * Identity headers (Authorization, X-MCP-*) are the gateway's to set and never copied. */
static const char *const forwarded_request_headers[] = {
	"accept", "content-type", "mcp-session-id", "mcp-protocol-version", "last-event-id",
	"mcp-method", "mcp-name", "traceparent", "tracestate", NULL,
};

static unsigned long long next_req_seq;

struct gw_req *gw_req_new(struct gw_conn *c, char *head_buf, const struct gw_http_head *head)
{
	struct gw_req *r = calloc(1, sizeof(*r));

	if (!r)
		abort();
	/* A random start, so that ids differ across restarts and replicas. */
	if (next_req_seq == 0 && RAND_bytes((unsigned char *)&next_req_seq, sizeof(next_req_seq)) != 1)
		next_req_seq = (unsigned long long)time(NULL) << 20;
	snprintf(r->id, sizeof(r->id), "%016llx", ++next_req_seq);
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

static long elapsed_ms(const struct gw_req *r)
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

static void log_access(const struct gw_req *r)
{
	gw_info("req=%s member=%s peer=%s \"%s %.*s\" status=%d bytes=%zu ms=%ld upstream_ms=%ld",
		r->id, r->member ? r->member->name : "-", gw_conn_peer(r->conn), r->head.method,
		(int)path_len(r->head.target), r->head.target, r->status, r->bytes_out,
		elapsed_ms(r), r->upstream_ms);
}

static void finish(struct gw_req *r, bool keep_alive)
{
	log_access(r);
	gw_conn_req_done(r->conn, keep_alive && r->keep_alive);
}

static void respond_error(struct gw_req *r, const struct gw_error *err)
{
	char retry[48];

	snprintf(retry, sizeof(retry), "Retry-After: %ld\r\n", r->retry_after);
	r->status = err->status;
	gw_conn_write_error(r->conn, err, gw_req_rpc_id(r), r->error_detail,
			    err->status == 429 ? retry : NULL, r->keep_alive);
	finish(r, true);
}

/* Answers with a JSON body the gateway made (the answers to denied messages). */
static void respond_json(struct gw_req *r, int status, const cJSON *json)
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
	finish(r, true);
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
	const char *origin = gw_http_header(&r->head, "origin");
	const char *host = gw_http_header(&r->head, "host");

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
	return r->member ? NULL : &gw_err_unauthorized;
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
	h->model_id = gw_http_header(&r->head, "x-mcp-model-id");
	h->topic_name = gw_http_header(&r->head, "x-mcp-topic-name");
	h->query_all_views = gw_http_header(&r->head, "x-mcp-query-all-views");
	h->protocol_version = gw_http_header(&r->head, "mcp-protocol-version");
	h->mcp_method = gw_http_header(&r->head, "mcp-method");
	h->mcp_name = gw_http_header(&r->head, "mcp-name");
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

/* When every message was denied, the gateway answers alone; nothing reaches Omni. */
static void answer_all_denied(struct gw_req *r)
{
	r->answered = true;
	if (!r->answers)
		respond_json(r, 202, NULL);
	else if (!r->rpc->batch)
		respond_json(r, 200, cJSON_GetArrayItem(r->answers, 0));
	else
		respond_json(r, 200, r->answers);
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
		if (d.verdict == POLICY_HEADER_MISMATCH) {
			r->error_detail = strdup(d.reason);
			return &gw_err_header_mismatch;
		}
		if (d.verdict != POLICY_ALLOW) {
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
	if (r->rpc && denied == r->rpc->n)
		answer_all_denied(r);
	else if (denied > 0)
		r->upstream_body = gw_rpc_allowed_body(r->rpc, &r->upstream_len);
	return NULL;
}

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + t.tv_nsec / 1e9;
}

/* Step: the member's rates and requests in flight. */
static const struct gw_error *step_limits(struct gw_req *r)
{
	const struct policy_limits *l = policy_limits_of(r->rule);
	struct gw_member_state *st = r->member->state;
	double now = now_s();

	if (l->max_concurrent > 0 && st->in_flight >= l->max_concurrent) {
		r->retry_after = 1;
		return &gw_err_too_many_streams;
	}
	if (l->requests_per_minute > 0 &&
	    !policy_bucket_take(&st->requests, l->requests_per_minute, l->burst, now, &r->retry_after))
		return &gw_err_rate_limited;
	for (size_t i = 0; r->rpc && i < r->rpc->n; i++) {
		if (!r->rpc->msgs[i].tool || r->rpc->msgs[i].denied || l->tool_calls_per_minute <= 0)
			continue;
		if (!policy_bucket_take(&st->tool_calls, l->tool_calls_per_minute, l->burst, now,
					&r->retry_after))
			return &gw_err_rate_limited;
	}
	st->in_flight++;
	r->state = st;
	return NULL;
}

static bool forwarded_request_header(const char *name)
{
	if (strncasecmp(name, "mcp-param-", 10) == 0)
		return true;
	for (const char *const *h = forwarded_request_headers; *h; h++)
		if (strcasecmp(name, *h) == 0)
			return true;
	return false;
}

static struct curl_slist *add_header(struct curl_slist *list, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static struct curl_slist *add_header(struct curl_slist *list, const char *fmt, ...)
{
	char line[GW_HTTP_MAX_HEAD + 64];
	struct curl_slist *l;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
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

	h = add_header(h, "Authorization: Bearer %s", r->ident.credential);
	if (r->ident.user_id)
		h = add_header(h, "X-MCP-User-ID: %s", r->ident.user_id);
	if (r->ident.user_required)
		h = add_header(h, "X-MCP-User-Required: true");
	if (r->decision.model_id)
		h = add_header(h, "X-MCP-Model-ID: %s", r->decision.model_id);
	if (r->decision.topic_name)
		h = add_header(h, "X-MCP-Topic-Name: %s", r->decision.topic_name);
	if (r->decision.query_all_views)
		h = add_header(h, "X-MCP-Query-All-Views: true");
	for (size_t i = 0; i < r->head.n_headers; i++) {
		const struct gw_http_header *hd = &r->head.headers[i];

		if (!forwarded_request_header(hd->name))
			continue;
		accept |= strcasecmp(hd->name, "accept") == 0;
		ctype |= strcasecmp(hd->name, "content-type") == 0;
		h = add_header(h, "%s: %s", hd->name, hd->value);
	}
	if (!accept)
		h = add_header(h, "Accept:");
	if (!ctype)
		h = add_header(h, "Content-Type:");
	h = add_header(h, "Expect:");
	h = add_header(h, "User-Agent: " GW_USER_AGENT);
	h = add_header(h, "X-Request-Id: %s", r->id);
	return h;
}

/* The response's content type, from the forwarded header lines. */
static bool has_content_type(struct evbuffer *headers, const char *type)
{
	size_t len = evbuffer_get_length(headers);
	const char *p = (const char *)evbuffer_pullup(headers, -1);
	const char *line = p;

	while (line && line < p + len) {
		const char *eol = memchr(line, '\n', p + len - line);

		if (strncasecmp(line, "content-type:", 13) == 0) {
			const char *v = line + 13;

			while (*v == ' ')
				v++;
			return strncasecmp(v, type, strlen(type)) == 0;
		}
		line = eol ? eol + 1 : NULL;
	}
	return false;
}

/* The hook of the response inspection: a tools/list result loses the tools the member may
 * not call, so their agent never plans with them. */
static bool on_response_message(void *arg, cJSON *msg)
{
	struct gw_req *r = arg;
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(msg, "id");
	cJSON *tools = cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetObjectItemCaseSensitive(msg, "result"), "tools");
	bool is_list = false, changed = false;
	cJSON *t, *next;

	if (!r->inspect_tools_list || !id || !cJSON_IsArray(tools))
		return false;
	for (size_t i = 0; i < r->rpc->n && !is_list; i++) {
		const struct gw_rpc_msg *m = &r->rpc->msgs[i];

		is_list = m->method && strcmp(m->method, "tools/list") == 0 && m->id &&
			  cJSON_Compare(m->id, id, true);
	}
	if (!is_list)
		return false;
	for (t = tools->child; t; t = next) {
		const cJSON *name = cJSON_GetObjectItemCaseSensitive(t, "name");

		next = t->next;
		if (cJSON_IsString(name) && policy_tool_allowed(r->rule, name->valuestring))
			continue;
		cJSON_Delete(cJSON_DetachItemViaPointer(tools, t));
		changed = true;
	}
	return changed;
}

static void write_head(struct gw_req *r, int status, struct evbuffer *headers,
		       long long content_length)
{
	struct evbuffer *out = gw_conn_output(r->conn);

	if (r->head.minor == 0)
		r->keep_alive = false; /* HTTP/1.0: the body ends when the connection does */
	evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\n", status, gw_http_reason(status));
	evbuffer_add_buffer(out, headers);
	evbuffer_add_printf(out, "X-Request-Id: %s\r\n", r->id);
	if (status == 204 || status == 304) {
		/* no body */
	} else if (content_length >= 0) {
		evbuffer_add_printf(out, "Content-Length: %lld\r\n", content_length);
	} else if (r->head.minor == 1) {
		evbuffer_add_printf(out, "Transfer-Encoding: chunked\r\n");
		r->chunked = true;
	}
	if (!r->keep_alive)
		evbuffer_add_printf(out, "Connection: close\r\n");
	evbuffer_add(out, "\r\n", 2);
	r->head_sent = true;
}

/* Body bytes to the client, framed as the head said. */
static void write_body(struct gw_req *r, const void *data, size_t len)
{
	struct evbuffer *out = gw_conn_output(r->conn);

	if (len == 0)
		return;
	if (r->chunked)
		evbuffer_add_printf(out, "%zx\r\n", len);
	evbuffer_add(out, data, len);
	if (r->chunked)
		evbuffer_add(out, "\r\n", 2);
	r->bytes_out += len;
}

static void write_body_buffer(struct gw_req *r, struct evbuffer *b)
{
	size_t len = evbuffer_get_length(b);

	write_body(r, evbuffer_pullup(b, -1), len);
	evbuffer_drain(b, len);
}

static void on_upstream_head(void *arg, int status, struct evbuffer *headers,
			     long long content_length)
{
	struct gw_req *r = arg;
	bool inspect = (r->inspect_tools_list || r->answers) && status >= 200 && status < 300;

	r->status = status;
	r->upstream_ms = upstream_xfer_head_ms(r->xfer);
	if (status == 401 || status == 403) {
		/* Omni refused the member's credential. Its body and WWW-Authenticate would send
		 * the client to log in at Omni; the client is told what happened instead. */
		r->refused = true;
		return;
	}
	if (inspect && has_content_type(headers, "text/event-stream")) {
		struct evbuffer *events = evbuffer_new();

		r->inspect = gw_inspect_new(on_response_message, r);
		write_head(r, status, headers, -1); /* the body changes: its length is unknown */
		if (!events)
			abort();
		gw_inspect_sse_events(r->answers, events);
		write_body_buffer(r, events);
		evbuffer_free(events);
	} else if (inspect) {
		/* JSON (or a 202 without body while the gateway has answers to add): held whole. */
		r->inspect = gw_inspect_new(on_response_message, r);
		r->held = evbuffer_new();
		r->held_headers = evbuffer_new();
		if (!r->held || !r->held_headers)
			abort();
		evbuffer_add_buffer(r->held_headers, headers);
	} else {
		write_head(r, status, headers, content_length);
	}
}

static bool on_upstream_body(void *arg, const char *data, size_t len)
{
	struct gw_req *r = arg;
	struct evbuffer *out;

	if (r->refused)
		return true; /* dropped: the client gets the gateway's error */
	if (r->held) {
		evbuffer_add(r->held, data, len);
		return true;
	}
	if (gw_conn_output_full(r->conn)) {
		r->paused = true;
		return false;
	}
	if (!r->inspect) {
		write_body(r, data, len);
		return true;
	}
	out = evbuffer_new();
	if (!out)
		abort();
	gw_inspect_sse(r->inspect, data, len, out);
	write_body_buffer(r, out);
	evbuffer_free(out);
	return true;
}

/* A held JSON response, changed and sent whole. A 202 (no body: the allowed messages were
 * notifications) becomes a 200 carrying the gateway's answers. */
static void release_held(struct gw_req *r)
{
	struct evbuffer *body = evbuffer_new();
	size_t len = evbuffer_get_length(r->held);

	if (!body)
		abort();
	if (len == 0 && r->answers) {
		cJSON *one = r->rpc->batch ? r->answers : cJSON_GetArrayItem(r->answers, 0);
		char *text = cJSON_PrintUnformatted(one);

		if (!text)
			abort();
		evbuffer_add(body, text, strlen(text));
		free(text);
		r->status = 200;
		evbuffer_drain(r->held_headers, evbuffer_get_length(r->held_headers));
		evbuffer_add_printf(r->held_headers, "Content-Type: application/json\r\n");
	} else {
		gw_inspect_json(r->inspect, (const char *)evbuffer_pullup(r->held, -1), len,
				r->answers, body);
	}
	write_head(r, r->status, r->held_headers, (long long)evbuffer_get_length(body));
	write_body_buffer(r, body);
	evbuffer_free(body);
}

static void on_upstream_done(void *arg, const struct gw_error *err)
{
	struct gw_req *r = arg;

	r->xfer = NULL;
	if (r->refused) {
		gw_warn("req=%s member=%s Omni refused the member's credential (HTTP %d)", r->id,
			r->member->name, r->status);
		respond_error(r, &gw_err_upstream_refused);
	} else if (err && !r->head_sent) {
		respond_error(r, err);
	} else if (err) {
		/* Cut off mid-response: close without the final chunk so the client sees that the
		 * response is incomplete rather than a short one. */
		finish(r, false);
	} else {
		if (r->held) {
			release_held(r);
		} else if (r->inspect) {
			struct evbuffer *rest = evbuffer_new();

			if (!rest)
				abort();
			gw_inspect_sse_end(r->inspect, rest);
			write_body_buffer(r, rest);
			evbuffer_free(rest);
		}
		if (r->chunked)
			evbuffer_add(gw_conn_output(r->conn), "0\r\n\r\n", 5);
		finish(r, true);
	}
}

static const struct upstream_handlers relay_handlers = {
	on_upstream_head,
	on_upstream_body,
	on_upstream_done,
};

/* Step: forward to Omni and relay the answer. */
static void step_forward(struct gw_req *r)
{
	size_t len = evbuffer_get_length(r->body);
	const void *body = len ? (const void *)evbuffer_pullup(r->body, -1) : "";

	if (r->upstream_body) {
		body = r->upstream_body;
		len = r->upstream_len;
	}
	r->xfer = upstream_xfer_start(gw_server_upstream(gw_conn_server(r->conn)), r->method,
				      upstream_headers(r), body, len, &relay_handlers, r);
	if (!r->xfer)
		respond_error(r, &gw_err_upstream_unreachable);
}

void gw_req_run(struct gw_req *r)
{
	const struct gw_error *err;

	if ((err = step_route(r)) || (err = step_origin(r)) || (err = step_authenticate(r)) ||
	    (err = step_identity(r)) || (err = step_parse(r)) || (err = step_policy(r))) {
		respond_error(r, err);
		return;
	}
	if (r->answered)
		return;
	if ((err = step_limits(r))) {
		respond_error(r, err);
		return;
	}
	step_forward(r);
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
	if (!r->xfer)
		return;
	gw_info("req=%s member=%s client went away; upstream transfer closed", r->id,
		r->member ? r->member->name : "-");
	upstream_xfer_cancel(r->xfer);
	r->xfer = NULL;
}
