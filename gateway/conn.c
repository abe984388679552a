/* Client connections: request framing (head, Content-Length or chunked body), limits and
 * deadlines, keep-alive, and the flush-then-close ending. States:
 *   IDLE   between requests (keep-alive timer)
 *   HEAD   reading a head   (client timer from its first byte)
 *   BODY   reading a body   (same timer)
 *   BUSY   the request runs and streams its response (no timer; write stalls time out)
 *   CLOSING flushing the last response, then the connection is freed */
#include "gateway/conn.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gateway/http.h"
#include "gateway/log.h"
#include "gateway/req.h"
#include "gateway/server.h"
#include "gateway/stream.h"

/* Output above which an upstream transfer pauses, and below which it resumes. */
#define STREAM_HIGH_WATER (64 * 1024)
#define STREAM_LOW_WATER (16 * 1024)

enum conn_state { CONN_IDLE, CONN_HEAD, CONN_BODY, CONN_BUSY, CONN_CLOSING };

struct gw_conn {
	struct gw_server *srv;
	struct gw_stream *stream;
	struct event *timer;
	enum conn_state state;
	struct gw_req *req;
	long long body_left; /* Content-Length bytes still to read */
	struct gw_chunked chunked;
	char peer[INET6_ADDRSTRLEN];
	TAILQ_ENTRY(gw_conn) link;
};

static void conn_free(struct gw_conn *c)
{
	if (c->req) {
		gw_req_abort(c->req);
		gw_req_free(c->req);
	}
	event_free(c->timer);
	gw_stream_free(c->stream);
	TAILQ_REMOVE(gw_server_conns(c->srv), c, link);
	gw_server_conn_closed(c->srv);
	free(c);
}

void gw_conn_close_idle(struct gw_conn_list *list)
{
	struct gw_conn *c, *next;

	for (c = TAILQ_FIRST(list); c; c = next) {
		next = TAILQ_NEXT(c, link);
		if (c->state == CONN_IDLE)
			conn_free(c);
	}
}

void gw_conn_free_all(struct gw_conn_list *list)
{
	struct gw_conn *c;

	while ((c = TAILQ_FIRST(list)))
		conn_free(c);
}

static void arm_timer(struct gw_conn *c, long ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

	evtimer_add(c->timer, &tv);
}

/* Stops reading and frees the connection once what was written has been sent. */
static void close_after_flush(struct gw_conn *c)
{
	c->state = CONN_CLOSING;
	gw_stream_enable_read(c->stream, false);
	gw_stream_set_write_low(c->stream, 0);
	if (evbuffer_get_length(gw_stream_output(c->stream)) == 0) {
		conn_free(c);
		return;
	}
	arm_timer(c, gw_server_config(c->srv)->client_timeout_ms);
}

/* The head of a response the gateway makes itself; the body follows. */
static void write_own_head(struct gw_conn *c, int status, const char *content_type,
			   size_t body_len, bool keep_alive)
{
	struct evbuffer *out = gw_stream_output(c->stream);

	evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\n", status, gw_http_reason(status));
	if (body_len > 0)
		evbuffer_add_printf(out, "Content-Type: %s\r\n", content_type);
	evbuffer_add_printf(out, "Content-Length: %zu\r\nCache-Control: no-store\r\n", body_len);
	if (c->req) {
		const char *cors = gw_req_cors(c->req);

		evbuffer_add_printf(out, "X-Request-Id: %s\r\n", gw_req_id(c->req));
		if (cors)
			evbuffer_add(out, cors, strlen(cors));
	}
	if (!keep_alive)
		evbuffer_add_printf(out, "Connection: close\r\n");
}

/* RFC 6750 and RFC 9728: where an OAuth-capable client learns how to get a token. */
static void write_www_authenticate(struct evbuffer *out, const struct gw_config *cfg,
				   bool invalid_token)
{
	evbuffer_add_printf(out, "WWW-Authenticate: Bearer realm=\"omni-mcp-gateway\"");
	if (invalid_token)
		evbuffer_add_printf(out, ", error=\"invalid_token\"");
	if (cfg->oauth.resource_metadata)
		evbuffer_add_printf(out, ", resource_metadata=\"%s\"", cfg->oauth.resource_metadata);
	evbuffer_add(out, "\r\n", 2);
}

void gw_conn_write_error(struct gw_conn *c, const struct gw_error *err, const char *id_json,
			 const char *detail, const char *extra_headers, bool keep_alive)
{
	struct evbuffer *out = gw_stream_output(c->stream);
	struct evbuffer *body = evbuffer_new();

	if (!body)
		abort();
	gw_error_write_body_detail(body, err, id_json, detail);
	write_own_head(c, err->status, "application/json", evbuffer_get_length(body), keep_alive);
	if (err->status == 401)
		write_www_authenticate(out, gw_server_config(c->srv), err == &gw_err_invalid_token);
	if (err->status == 405)
		evbuffer_add_printf(out, "Allow: GET, POST, DELETE\r\n");
	if (extra_headers)
		evbuffer_add(out, extra_headers, strlen(extra_headers));
	evbuffer_add(out, "\r\n", 2);
	evbuffer_add_buffer(out, body);
	evbuffer_free(body);
}

void gw_conn_write_json(struct gw_conn *c, int status, struct evbuffer *body, bool keep_alive)
{
	gw_conn_write_response(c, status, "application/json", NULL, body, keep_alive);
}

void gw_conn_write_response(struct gw_conn *c, int status, const char *content_type,
			    const char *extra_headers, struct evbuffer *body, bool keep_alive)
{
	struct evbuffer *out = gw_stream_output(c->stream);

	write_own_head(c, status, content_type, body ? evbuffer_get_length(body) : 0, keep_alive);
	if (extra_headers)
		evbuffer_add(out, extra_headers, strlen(extra_headers));
	evbuffer_add(out, "\r\n", 2);
	if (body)
		evbuffer_add_buffer(out, body);
}

/* An error found while reading a request: answer and close, since the rest of the stream can
 * no longer be framed. */
static void fail_request(struct gw_conn *c, const struct gw_error *err)
{
	gw_info("peer=%s refused before running: %d %s", c->peer, err->status,
		gw_http_reason(err->status));
	gw_conn_write_error(c, err, c->req ? gw_req_rpc_id(c->req) : NULL, NULL, NULL, false);
	if (c->req) {
		gw_req_free(c->req);
		c->req = NULL;
	}
	close_after_flush(c);
}

/* The byte at offset i of the extents v[0..n), or -1 past their end. */
static int byte_at(const struct evbuffer_iovec *v, int n, size_t i)
{
	for (int k = 0; k < n; i -= v[k].iov_len, k++)
		if (i < v[k].iov_len)
			return ((const unsigned char *)v[k].iov_base)[i];
	return -1;
}

/* The length of the head at the front of in (through its blank line: CRLF CRLF, or bare LFs
 * as the parser accepts them), or 0 when no whole head is buffered yet. Only an LF at most
 * GW_HTTP_MAX_HEAD bytes in may start the end of the head. The buffer is read in place (a head
 * is usually in one extent); one spread over more extents than peeked is made contiguous. */
static size_t head_length(struct evbuffer *in)
{
	const size_t window = GW_HTTP_MAX_HEAD + 3; /* an LF, then CR LF */
	struct evbuffer_iovec v[8];
	int n = evbuffer_peek(in, (ev_ssize_t)window, NULL, v, 8);
	size_t base = 0;

	if (n > 8) {
		size_t len = evbuffer_get_length(in);

		v[0].iov_len = len < window ? len : window;
		v[0].iov_base = evbuffer_pullup(in, (ev_ssize_t)v[0].iov_len);
		n = 1;
	}
	for (int k = 0; k < n; base += v[k].iov_len, k++) {
		const char *start = v[k].iov_base, *end = start + v[k].iov_len, *lf;

		for (const char *p = start; (lf = memchr(p, '\n', (size_t)(end - p))); p = lf + 1) {
			size_t i = base + (size_t)(lf - start);
			int next = byte_at(v, n, i + 1);

			if (i > GW_HTTP_MAX_HEAD)
				return 0;
			if (next == '\n')
				return i + 2;
			if (next == '\r' && byte_at(v, n, i + 2) == '\n')
				return i + 3;
		}
	}
	return 0;
}

/* Reads a head if a whole one is buffered. Returns false when more input is needed or the
 * connection failed. */
static bool read_head(struct gw_conn *c)
{
	struct evbuffer *in = gw_stream_input(c->stream);
	const struct gw_config *cfg = gw_server_config(c->srv);
	size_t len = head_length(in);
	struct gw_http_head head;
	const char *err;
	char *buf;
	int rc;

	if (len == 0) {
		if (evbuffer_get_length(in) > GW_HTTP_MAX_HEAD)
			fail_request(c, &gw_err_head_too_large);
		else if (c->state == CONN_IDLE && evbuffer_get_length(in) > 0) {
			c->state = CONN_HEAD;
			arm_timer(c, cfg->client_timeout_ms);
		}
		return false;
	}
	if (len > GW_HTTP_MAX_HEAD) {
		fail_request(c, &gw_err_head_too_large);
		return false;
	}
	if (c->state == CONN_IDLE)
		arm_timer(c, cfg->client_timeout_ms);
	buf = malloc(len + 1);
	if (!buf)
		abort();
	evbuffer_remove(in, buf, len);
	buf[len] = '\0';
	rc = gw_http_parse_head(buf, len, &head, &err);
	if (rc < 0) {
		gw_debug("peer=%s bad request: %s", c->peer, err);
		free(buf);
		fail_request(c, rc == -2 ? &gw_err_not_implemented : &gw_err_bad_request);
		return false;
	}
	c->req = gw_req_new(c, buf, &head);
	if (head.content_length > cfg->max_body_bytes) {
		fail_request(c, &gw_err_too_large);
		return false;
	}
	c->body_left = head.content_length > 0 ? head.content_length : 0;
	memset(&c->chunked, 0, sizeof(c->chunked));
	c->state = CONN_BODY;
	if (head.chunked || c->body_left > 0) {
		const char *expect = gw_http_header(&head, "expect");

		if (expect && strcasecmp(expect, "100-continue") == 0)
			evbuffer_add_printf(gw_stream_output(c->stream), "HTTP/1.1 100 Continue\r\n\r\n");
	}
	return true;
}

/* Moves body bytes into the request. Returns true once the body is complete. */
static bool read_body(struct gw_conn *c)
{
	struct evbuffer *in = gw_stream_input(c->stream);
	struct evbuffer *body = gw_req_body(c->req);
	const struct gw_http_head *head = gw_req_head(c->req);
	const char *err;
	int rc;

	if (!head->chunked) {
		size_t avail = evbuffer_get_length(in);
		size_t n = (long long)avail < c->body_left ? avail : (size_t)c->body_left;

		evbuffer_remove_buffer(in, body, n);
		c->body_left -= n;
		return c->body_left == 0;
	}
	rc = gw_chunked_step(&c->chunked, in, body, gw_server_config(c->srv)->max_body_bytes, &err);
	if (rc == -1)
		fail_request(c, &gw_err_bad_request);
	else if (rc == -2)
		fail_request(c, &gw_err_too_large);
	return rc == 1;
}

/* Drives the read states as far as the buffered input allows. */
static void process_input(struct gw_conn *c)
{
	for (;;) {
		if (c->state == CONN_IDLE || c->state == CONN_HEAD) {
			if (!read_head(c))
				return;
		}
		if (c->state != CONN_BODY)
			return;
		if (!read_body(c))
			return;
		c->state = CONN_BUSY;
		evtimer_del(c->timer);
		gw_req_run(c->req); /* may finish at once and bring us back to IDLE or free us */
		return;
	}
}

void gw_conn_req_done(struct gw_conn *c, bool keep_alive)
{
	gw_req_free(c->req);
	c->req = NULL;
	if (!keep_alive || gw_server_draining(c->srv)) {
		close_after_flush(c);
		return;
	}
	c->state = CONN_IDLE;
	arm_timer(c, gw_server_config(c->srv)->keepalive_timeout_ms);
	/* A pipelined request may already be buffered; take it from the loop, not from here,
	 * so that the caller's stack unwinds first. */
	if (evbuffer_get_length(gw_stream_input(c->stream)) > 0)
		gw_stream_trigger_read(c->stream);
}

static void on_read(struct gw_stream *s, void *arg)
{
	(void)s;
	process_input(arg);
}

static void on_write(struct gw_stream *s, void *arg)
{
	struct gw_conn *c = arg;

	(void)s;
	if (c->state == CONN_CLOSING) {
		if (evbuffer_get_length(gw_stream_output(c->stream)) == 0)
			conn_free(c);
	} else if (c->state == CONN_BUSY && c->req) {
		gw_req_on_drained(c->req);
	}
}

static void on_event(struct gw_stream *s, int what, void *arg)
{
	struct gw_conn *c = arg;

	(void)s;
	if (what & GW_STREAM_TIMEOUT)
		gw_info("peer=%s closed: client stopped reading", c->peer);
	else if ((what & GW_STREAM_ERROR) && c->state != CONN_IDLE)
		gw_debug("peer=%s connection error", c->peer);
	conn_free(c); /* EOF, error or write time-out: the client is gone */
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct gw_conn *c = arg;

	(void)fd;
	(void)what;
	switch (c->state) {
	case CONN_HEAD:
	case CONN_BODY:
		fail_request(c, &gw_err_timeout);
		break;
	case CONN_IDLE:
		/* A fresh connection that never sent a byte gets the same 408, then closes. */
		if (evbuffer_get_length(gw_stream_input(c->stream)) > 0)
			fail_request(c, &gw_err_timeout);
		else
			conn_free(c);
		break;
	default:
		conn_free(c);
		break;
	}
}

static void format_peer(const struct sockaddr *sa, char *out, size_t len)
{
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, len);
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out, len);
	else
		snprintf(out, len, "unix");
}

static const struct gw_stream_callbacks conn_callbacks = {on_read, on_write, on_event};

struct gw_conn *gw_conn_new(struct gw_server *srv, struct event_base *base, struct gw_stream *stream,
			    const struct sockaddr *peer)
{
	struct gw_conn *c = calloc(1, sizeof(*c));
	const struct gw_config *cfg = gw_server_config(srv);

	if (!c)
		abort();
	c->srv = srv;
	c->stream = stream;
	c->state = CONN_IDLE;
	c->timer = evtimer_new(base, on_timer, c);
	if (!c->timer)
		abort();
	format_peer(peer, c->peer, sizeof(c->peer));
	TAILQ_INSERT_TAIL(gw_server_conns(srv), c, link);
	gw_stream_set_callbacks(stream, &conn_callbacks, c);
	/* A client that stops reading while output is pending is given up on after this long. */
	gw_stream_set_write_timeout(stream, cfg->client_timeout_ms);
	gw_stream_set_write_low(stream, STREAM_LOW_WATER);
	/* Input beyond one head is not read while a request runs: pipelined bytes wait there. */
	gw_stream_set_read_high(stream, 2 * GW_HTTP_MAX_HEAD);
	gw_stream_enable_read(stream, true);
	/* The TLS handshake and the first request must arrive within the client time-out. */
	arm_timer(c, cfg->client_timeout_ms);
	return c;
}

struct gw_server *gw_conn_server(const struct gw_conn *c)
{
	return c->srv;
}

struct evbuffer *gw_conn_output(struct gw_conn *c)
{
	return gw_stream_output(c->stream);
}

const char *gw_conn_peer(const struct gw_conn *c)
{
	return c->peer;
}

bool gw_conn_output_full(struct gw_conn *c)
{
	return evbuffer_get_length(gw_stream_output(c->stream)) > STREAM_HIGH_WATER;
}
