/* The response relay: the upstream's answer goes to the client as it arrives (status, the
 * forwarded headers, the body framed for the client), paused while the client reads slower
 * than Omni writes. Responses the gateway must read or change (tools/list replies, batch
 * replies with the gateway's own answers) go through gateway/inspect.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gateway/conn.h"
#include "gateway/log.h"
#include "gateway/req.h"
#include "gateway/req_internal.h"

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
		gw_req_respond_error(r, &gw_err_upstream_refused);
	} else if (err && !r->head_sent) {
		gw_req_respond_error(r, err);
	} else if (err) {
		/* Cut off mid-response: close without the final chunk so the client sees that the
		 * response is incomplete rather than a short one. */
		gw_req_finish(r, false);
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
		gw_req_finish(r, true);
	}
}

const struct upstream_handlers gw_relay_handlers = {
	on_upstream_head,
	on_upstream_body,
	on_upstream_done,
};

