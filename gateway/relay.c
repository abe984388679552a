/* The response relay: the upstream's answer goes to the client as it arrives (status, the
 * forwarded headers, the body framed for the client), paused while the client reads slower
 * than Omni writes. Responses the gateway must read or change (tools/list replies, batch
 * replies with the gateway's own answers) go through gateway/inspect.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cache/cache.h"
#include "gateway/audit.h"
#include "gateway/conn.h"
#include "gateway/log.h"
#include "gateway/req.h"
#include "gateway/req_internal.h"
#include "gateway/server.h"

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

/* A tools/list result loses the tools the member may not call, so their agent never plans
 * with them, and gains the gateway's own topic tools. Returns true when it changed. */
static bool filter_tools(struct gw_req *r, cJSON *result)
{
	cJSON *tools = cJSON_GetObjectItemCaseSensitive(result, "tools");
	int before = cJSON_GetArraySize(tools);
	bool changed = false;
	cJSON *t, *next;

	if (!cJSON_IsArray(tools))
		return false;
	gw_req_topic_tools_add(r, tools);
	changed = cJSON_GetArraySize(tools) != before;
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

/* Whether msg answers one of the request's tools/list messages. */
static bool answers_tools_list(const struct gw_req *r, const cJSON *msg)
{
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(msg, "id");

	for (size_t i = 0; r->rpc && id && i < r->rpc->n; i++) {
		const struct gw_rpc_msg *m = &r->rpc->msgs[i];

		if (m->method && strcmp(m->method, "tools/list") == 0 && m->id &&
		    cJSON_Compare(m->id, id, true))
			return true;
	}
	return false;
}

/* The hook of the response inspection, for each JSON-RPC message from Omni: the cache learns
 * of changed tool lists and stores answers (unfiltered: the policy applies when serving), and
 * tools/list results are filtered for the member. */
static bool on_response_message(void *arg, cJSON *msg)
{
	struct gw_req *r = arg;
	const cJSON *method = cJSON_GetObjectItemCaseSensitive(msg, "method");

	if (cJSON_IsString(method)) {
		if (strcmp(method->valuestring, "notifications/tools/list_changed") == 0)
			gw_req_cache_tools_changed(r);
		return false;
	}
	if (r->cache_key)
		gw_req_cache_capture(r, msg);
	if (r->cfg->audit) {
		struct gw_rpc_msg *m = gw_rpc_find(r->rpc, cJSON_GetObjectItemCaseSensitive(msg, "id"));

		if (m)
			gw_rpc_note_answer(m, msg, m->tool && cache_tool_is_data_query(m->tool));
	}
	if (r->inspect_tools_list && answers_tools_list(r, msg))
		return filter_tools(r, cJSON_GetObjectItemCaseSensitive(msg, "result"));
	return false;
}

/* on_response_message for a response that is only read (see reads_only): the same steps, on
 * what the scan read of a message. */
static void on_response_read(void *arg, const struct gw_rpc_answer *a)
{
	struct gw_req *r = arg;

	if (a->method) {
		if (a->list_changed)
			gw_req_cache_tools_changed(r);
		return;
	}
	if (r->cfg->audit) {
		struct gw_rpc_msg *m = gw_rpc_find(r->rpc, a->id);

		if (m)
			gw_rpc_note(m, a, m->tool && cache_tool_is_data_query(m->tool));
	}
}

/* Whether nothing in the response changes or is kept (no tools/list to filter, no answers of
 * the gateway to add, none to cache): it is then only read, for the audit, without a tree. */
static bool reads_only(const struct gw_req *r)
{
	return !r->inspect_tools_list && !r->answers && !r->cache_key;
}

static struct gw_inspect *inspect_new(struct gw_req *r)
{
	return reads_only(r) ? gw_inspect_new_reader(on_response_read, r)
			     : gw_inspect_new(on_response_message, r);
}

static bool has_tool_call(const struct gw_req *r)
{
	for (size_t i = 0; r->rpc && i < r->rpc->n; i++)
		if (r->rpc->msgs[i].tool && !r->rpc->msgs[i].denied)
			return true;
	return false;
}

/* The value of header name in "Name: value\r\n" lines, copied into out; false if absent. */
static bool header_value(struct evbuffer *headers, const char *name, char *out, size_t size)
{
	size_t len = evbuffer_get_length(headers), n = strlen(name);
	const char *p = (const char *)evbuffer_pullup(headers, -1), *line = p;

	while (line && line < p + len) {
		const char *eol = memchr(line, '\n', p + len - line);
		size_t l = eol ? (size_t)(eol - line) : (size_t)(p + len - line);

		if (l > n && line[n] == ':' && strncasecmp(line, name, n) == 0) {
			const char *v = line + n + 1;

			while (*v == ' ')
				v++;
			l -= v - line;
			while (l > 0 && (v[l - 1] == '\r' || v[l - 1] == ' '))
				l--;
			snprintf(out, size, "%.*s", (int)l, v);
			return true;
		}
		line = eol ? eol + 1 : NULL;
	}
	return false;
}

/* Whether the response's messages must be read: to filter or cache an answer, to add the
 * gateway's own answers, or for the audit (isError; a data query's query and rows). */
static bool must_inspect(const struct gw_req *r, int status)
{
	if (status < 200 || status >= 300)
		return false;
	return r->inspect_tools_list || r->answers || r->cache_key ||
	       (r->cfg->audit && has_tool_call(r));
}

#define HELD_MAX (16 << 20) /* the largest JSON answer held whole to be read */
#define LIST_CHANGED "notifications/tools/list_changed"
#define LIST_CHANGED_LEN (sizeof(LIST_CHANGED) - 1)

/* Whether an SSE stream is watched only for Omni's tool list changing (the cache keeps tool
 * lists): its bytes pass untouched and are scanned for the notification's name. */
static bool watch_list_changed(const struct gw_req *r, int status)
{
	return status >= 200 && status < 300 && r->cfg->cache &&
	       cache_ttl_for(r->cfg->cache, "tools/list", NULL) > 0;
}

/* A session ended by the client (DELETE) or unknown to Omni (404) gets no cached answers. */
static void note_session_end(struct gw_req *r, int status)
{
	const char *session = gw_http_header(&r->head, "mcp-session-id");

	if (session && ((r->method == UPSTREAM_DELETE && status >= 200 && status < 300) ||
			status == 404))
		gw_server_session_ended(gw_conn_server(r->conn), session);
}

static char *put(char *o, const char *s, size_t n)
{
	memcpy(o, s, n);
	return o + n;
}

/* v in decimal ("%lld", without printf on every response). */
static char *put_num(char *o, long long v)
{
	char digits[24];
	unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
	size_t n = 0;

	do
		digits[sizeof(digits) - ++n] = (char)('0' + u % 10);
	while ((u /= 10) > 0);
	if (v < 0)
		*o++ = '-';
	return put(o, digits + sizeof(digits) - n, n);
}

static void write_head(struct gw_req *r, int status, struct evbuffer *headers,
		       long long content_length)
{
	struct evbuffer *out = gw_conn_output(r->conn);
	const char *reason = gw_http_reason(status);
	size_t reason_len = strlen(reason);
	char line[128], *o;

	if (r->head.minor == 0)
		r->keep_alive = false; /* HTTP/1.0: the body ends when the connection does */
	if (reason_len > sizeof(line) - 32)
		reason_len = sizeof(line) - 32; /* the reasons are short; never more than fits */
	o = put(line, "HTTP/1.1 ", 9);
	o = put_num(o, status);
	*o++ = ' ';
	o = put(o, reason, reason_len);
	o = put(o, "\r\n", 2);
	evbuffer_add(out, line, (size_t)(o - line));
	evbuffer_add_buffer(out, headers);
	if (r->cors)
		evbuffer_add(out, r->cors, strlen(r->cors));
	o = put(line, "X-Request-Id: ", 14);
	o = put(o, r->id, strlen(r->id));
	o = put(o, "\r\n", 2);
	if (status == 204 || status == 304) {
		/* no body */
	} else if (content_length >= 0) {
		o = put(o, "Content-Length: ", 16);
		o = put_num(o, content_length);
		o = put(o, "\r\n", 2);
	} else if (r->head.minor == 1) {
		o = put(o, "Transfer-Encoding: chunked\r\n", 28);
		r->chunked = true;
	}
	if (!r->keep_alive)
		o = put(o, "Connection: close\r\n", 19);
	o = put(o, "\r\n", 2);
	evbuffer_add(out, line, (size_t)(o - line));
	r->head_sent = true;
}

/* Body bytes to the client, framed as the head said. */
static void write_body(struct gw_req *r, const void *data, size_t len)
{
	struct evbuffer *out = gw_conn_output(r->conn);

	if (len == 0)
		return;
	if (r->chunked) {
		static const char hex[] = "0123456789abcdef";
		char size[24];
		size_t n = 2;

		size[sizeof(size) - 2] = '\r';
		size[sizeof(size) - 1] = '\n';
		for (size_t v = len; v > 0; v >>= 4)
			size[sizeof(size) - ++n] = hex[v & 15];
		evbuffer_add(out, size + sizeof(size) - n, n); /* "%zx\r\n" */
	}
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
	bool inspect = must_inspect(r, status);
	bool watch = !inspect && watch_list_changed(r, status);

	r->status = status;
	r->upstream_ms = upstream_xfer_head_ms(r->xfer);
	note_session_end(r, status);
	if (r->client_name) {
		char session[128];

		if (header_value(headers, "mcp-session-id", session, sizeof(session)))
			gw_server_session_client_set(gw_conn_server(r->conn), session, r->client_name,
						     r->client_version);
	}
	/* A data query's answer is complete for the client only once its audit record is in:
	 * chunked framing makes the final chunk that moment. */
	if (r->cfg->audit && gw_req_has_data_query(r))
		content_length = -1;
	if (status == 401 || status == 403) {
		/* Omni refused the member's credential. Its body and WWW-Authenticate would send
		 * the client to log in at Omni; the client is told what happened instead. */
		r->refused = true;
		return;
	}
	if (watch && has_content_type(headers, "text/event-stream")) {
		r->watch_list_changed = true;
		write_head(r, status, headers, content_length);
	} else if (inspect && has_content_type(headers, "text/event-stream")) {
		struct evbuffer *events = evbuffer_new();

		r->inspect = inspect_new(r);
		write_head(r, status, headers, -1); /* the body changes: its length is unknown */
		if (!events)
			abort();
		gw_inspect_sse_events(r->answers, events);
		write_body_buffer(r, events);
		evbuffer_free(events);
	} else if (inspect) {
		/* JSON (or a 202 without body while the gateway has answers to add): held whole. */
		r->inspect = inspect_new(r);
		r->held = evbuffer_new();
		r->held_headers = evbuffer_new();
		if (!r->held || !r->held_headers)
			abort();
		evbuffer_add_buffer(r->held_headers, headers);
	} else {
		write_head(r, status, headers, content_length);
	}
}

/* Scans streamed bytes for the list_changed notification without copying them: a match may
 * straddle two chunks, so the last bytes of the previous chunk are kept. A name quoted inside
 * some other message would only drop a cache entry early. */
static void watch(struct gw_req *r, const char *data, size_t len)
{
	char joint[2 * LIST_CHANGED_LEN];
	size_t head = len < LIST_CHANGED_LEN ? len : LIST_CHANGED_LEN - 1;
	size_t keep;

	memcpy(joint, r->watch_tail, r->watch_tail_len);
	memcpy(joint + r->watch_tail_len, data, head);
	if (memmem(joint, r->watch_tail_len + head, LIST_CHANGED, LIST_CHANGED_LEN) ||
	    memmem(data, len, LIST_CHANGED, LIST_CHANGED_LEN))
		gw_req_cache_tools_changed(r);
	keep = len < LIST_CHANGED_LEN - 1 ? len : LIST_CHANGED_LEN - 1;
	if (r->watch_tail_len + keep > LIST_CHANGED_LEN - 1) {
		size_t drop = r->watch_tail_len + keep - (LIST_CHANGED_LEN - 1);

		memmove(r->watch_tail, r->watch_tail + drop, r->watch_tail_len - drop);
		r->watch_tail_len -= drop;
	}
	memcpy(r->watch_tail + r->watch_tail_len, data + len - keep, keep);
	r->watch_tail_len += keep;
}

/* A JSON answer too large to hold for reading: sent on as it is (unfiltered, uncached, its
 * audit record without query and rows) rather than kept in memory whole. */
static void stop_holding(struct gw_req *r)
{
	gw_warn("req=%s member=%s JSON answer over %d MiB: passed on without inspection", r->id,
		r->member ? r->member->name : "-", HELD_MAX >> 20);
	write_head(r, r->status, r->held_headers, -1);
	write_body_buffer(r, r->held);
	evbuffer_free(r->held);
	r->held = NULL;
	gw_inspect_free(r->inspect);
	r->inspect = NULL;
}

static bool on_upstream_body(void *arg, const char *data, size_t len)
{
	struct gw_req *r = arg;
	struct evbuffer *out;

	if (r->refused)
		return true; /* dropped: the client gets the gateway's error */
	if (r->held && evbuffer_get_length(r->held) + len > HELD_MAX)
		stop_holding(r);
	if (r->held) {
		evbuffer_add(r->held, data, len);
		return true;
	}
	if (gw_conn_output_full(r->conn)) {
		r->paused = true;
		return false;
	}
	if (!r->inspect) {
		if (r->watch_list_changed)
			watch(r, data, len);
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

/* The rest of a successful answer, and its end. */
static void complete(struct gw_req *r)
{
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
	gw_req_finish(r, true);
}

/* A data query's records are in (or failed): its answer completes, unless the audit could not
 * record it and the policy is to refuse: then the client gets no complete answer either. */
static void on_audited(struct gw_req *r, bool ok)
{
	if (ok || r->cfg->audit->on_failure == AUDIT_CONTINUE) {
		complete(r);
		return;
	}
	gw_warn("req=%s member=%s data query answered but not audited: answer withheld", r->id,
		r->member->name);
	if (r->held)
		gw_req_respond_error(r, &gw_err_audit_unavailable);
	else
		gw_req_finish(r, false); /* no final chunk: the client sees an incomplete answer */
}

static void on_upstream_done(void *arg, const struct gw_error *err)
{
	struct gw_req *r = arg;

	r->xfer = NULL;
	if (r->refused) {
		gw_warn("req=%s member=%s Omni refused the member's credential (HTTP %d)", r->id,
			r->member->name, r->status);
		gw_req_respond_error(r, &gw_err_upstream_refused);
	} else if (err && !r->head_sent) {
		gw_req_respond_error(r, err);
	} else if (err) {
		/* Cut off mid-response: close without the final chunk so the client sees that the
		 * response is incomplete rather than a short one. */
		gw_req_finish(r, false);
	} else if (!(gw_req_has_data_query(r) &&
		     gw_req_audit(r, gw_req_elapsed_ms(r), on_audited))) {
		complete(r);
	}
}

const struct upstream_handlers gw_relay_handlers = {
	on_upstream_head,
	on_upstream_body,
	on_upstream_done,
};


/* Whether the client accepts an SSE answer (MCP clients list both; SSE is what Omni sends). */
static bool client_takes_sse(const struct gw_req *r)
{
	const char *accept = gw_http_header(&r->head, "accept");

	return accept && strcasestr(accept, "text/event-stream");
}

void gw_relay_answer_cached(struct gw_req *r, const char *result, size_t len)
{
	cJSON *msg = cJSON_CreateObject();
	cJSON *res = cJSON_ParseWithLength(result, len);
	struct evbuffer *headers = evbuffer_new(), *body = evbuffer_new();
	bool sse = client_takes_sse(r);
	char *text;

	if (!msg || !headers || !body)
		abort();
	if (!res) { /* not what we stored: ask Omni instead */
		cJSON_Delete(msg);
		evbuffer_free(headers);
		evbuffer_free(body);
		r->cache_hit = false;
		gw_req_forward(r);
		return;
	}
	if (r->inspect_tools_list)
		filter_tools(r, res);
	cJSON_AddStringToObject(msg, "jsonrpc", "2.0");
	cJSON_AddItemToObject(msg, "id", cJSON_Duplicate(r->rpc->msgs[0].id, true));
	cJSON_AddItemToObject(msg, "result", res);
	text = cJSON_PrintUnformatted(msg);
	if (!text)
		abort();
	if (sse)
		evbuffer_add_printf(body, "event: message\ndata: %s\n\n", text);
	else
		evbuffer_add(body, text, strlen(text));
	evbuffer_add_printf(headers, "Content-Type: %s\r\nCache-Control: no-cache\r\n",
			    sse ? "text/event-stream" : "application/json");
	r->status = 200;
	write_head(r, 200, headers, (long long)evbuffer_get_length(body));
	write_body_buffer(r, body);
	free(text);
	cJSON_Delete(msg);
	evbuffer_free(headers);
	evbuffer_free(body);
	gw_req_finish(r, true);
}
