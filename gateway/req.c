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
#include "gateway/log.h"
#include "gateway/server.h"
#include "gateway/upstream.h"
#include "policy/identity.h"

#define GW_USER_AGENT "omni-mcp-gateway/0.1"

struct gw_req {
	struct gw_conn *conn;
	const struct gw_config *cfg;
	char id[17];
	char *head_buf;
	struct gw_http_head head;
	struct evbuffer *body;
	char *rpc_id; /* JSON text of the JSON-RPC id, parsed only for error answers */
	bool rpc_id_parsed;
	const struct gw_member *member;
	struct policy_identity ident;
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
	r->cfg = gw_server_config(gw_conn_server(c));
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
	evbuffer_free(r->body);
	free(r->head_buf);
	free(r->rpc_id);
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
	r->status = err->status;
	gw_conn_write_error(r->conn, err, gw_req_rpc_id(r), r->keep_alive);
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
	bool client_requires = req_hdr && strcasecmp(req_hdr, "true") == 0;

	return policy_identity_decide(r->cfg, r->member, client_requires, &r->ident);
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

static void on_upstream_head(void *arg, int status, struct evbuffer *headers,
			     long long content_length)
{
	struct gw_req *r = arg;
	struct evbuffer *out = gw_conn_output(r->conn);

	r->status = status;
	r->upstream_ms = upstream_xfer_head_ms(r->xfer);
	if (status == 401 || status == 403) {
		/* Omni refused the member's credential. Its body and WWW-Authenticate would send
		 * the client to log in at Omni; the client is told what happened instead. */
		r->refused = true;
		return;
	}
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

static bool on_upstream_body(void *arg, const char *data, size_t len)
{
	struct gw_req *r = arg;
	struct evbuffer *out = gw_conn_output(r->conn);

	if (r->refused)
		return true; /* dropped: the client gets the gateway's error */
	if (gw_conn_output_full(r->conn)) {
		r->paused = true;
		return false;
	}
	if (r->chunked)
		evbuffer_add_printf(out, "%zx\r\n", len);
	evbuffer_add(out, data, len);
	if (r->chunked)
		evbuffer_add(out, "\r\n", 2);
	r->bytes_out += len;
	return true;
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

	r->xfer = upstream_xfer_start(gw_server_upstream(gw_conn_server(r->conn)), r->method,
				      upstream_headers(r), body, len, &relay_handlers, r);
	if (!r->xfer)
		respond_error(r, &gw_err_upstream_unreachable);
}

void gw_req_run(struct gw_req *r)
{
	const struct gw_error *err;

	if ((err = step_route(r)) || (err = step_origin(r)) || (err = step_authenticate(r)) ||
	    (err = step_identity(r))) {
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
