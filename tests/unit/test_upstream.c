/* Tests of gateway/upstream on one loop against a raw HTTP/1.1 server this test plays itself on
 * a loopback port, reading each request off the socket: pooled curl handles carry no method or
 * body from one transfer into the next (POST, DELETE, GET, POST on one kept-alive connection),
 * a transfer started from a loop callback is on the wire when that loop round ends, and a proxy
 * from the environment is used. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/event.h>

#include "gateway/upstream.h"
#include "tests/unit/harness.h"
#include "tests/unit/loop.h"

static int listener = -1, conn = -1; /* the server's side */
static char url[64];                  /* http://127.0.0.1:PORT/mcp */

/* ---- the server ---- */

static bool server_start(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);

	listener = socket(AF_INET, SOCK_STREAM, 0);
	if (listener < 0 || bind(listener, (struct sockaddr *)&a, sizeof(a)) != 0 ||
	    listen(listener, 8) != 0 || getsockname(listener, (struct sockaddr *)&a, &len) != 0)
		return false;
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/mcp", ntohs(a.sin_port));
	return true;
}

static bool readable(int fd, int ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};

	return poll(&p, 1, ms) == 1;
}

/* Runs the loop (so that curl connects and sends) until fd has something to read. */
static bool loop_until_readable(int fd, long max_ms)
{
	for (long waited = 0; waited < max_ms && !readable(fd, 0); waited += 5)
		run_for(5);
	return readable(fd, 0);
}

struct request {
	char line[64]; /* "POST /mcp HTTP/1.1" */
	char body[64];
	bool has_length; /* a Content-Length header came */
};

/* Reads one request from conn (accepting it first when there is none yet): the head up to the
 * blank line, then Content-Length bytes of body. */
static bool read_request(struct request *rq)
{
	char buf[4096];
	size_t n = 0;
	const char *end, *cl;
	long body = 0;

	*rq = (struct request){0};
	if (conn < 0) {
		if (!loop_until_readable(listener, 5000) ||
		    (conn = accept(listener, NULL, NULL)) < 0)
			return false;
	}
	for (;;) {
		ssize_t r;

		if (!loop_until_readable(conn, 5000))
			return false;
		if ((r = recv(conn, buf + n, sizeof(buf) - 1 - n, 0)) <= 0)
			return false;
		n += (size_t)r;
		buf[n] = '\0';
		if (!(end = strstr(buf, "\r\n\r\n")))
			continue;
		cl = strcasestr(buf, "\r\nContent-Length:");
		rq->has_length = cl && cl < end;
		body = rq->has_length ? strtol(cl + 17, NULL, 10) : 0;
		if ((long)(n - (size_t)(end + 4 - buf)) >= body)
			break;
	}
	snprintf(rq->line, sizeof(rq->line), "%.*s", (int)strcspn(buf, "\r"), buf);
	snprintf(rq->body, sizeof(rq->body), "%.*s", (int)body, end + 4);
	return true;
}

static void answer(const char *body)
{
	char out[256];
	int n = snprintf(out, sizeof(out),
			 "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
			 "%zu\r\n\r\n%s",
			 strlen(body), body);

	CHECK(send(conn, out, (size_t)n, MSG_NOSIGNAL) == n);
}

/* ---- transfers ---- */

struct result {
	bool done;
	int status;
	char body[64];
	const struct gw_error *err;
};

static void on_head(void *arg, int status, struct evbuffer *headers, long long len)
{
	(void)headers;
	(void)len;
	((struct result *)arg)->status = status;
}

static bool on_body(void *arg, const char *data, size_t len)
{
	struct result *res = arg;
	size_t have = strlen(res->body);

	snprintf(res->body + have, sizeof(res->body) - have, "%.*s", (int)len, data);
	return true;
}

static void on_done(void *arg, const struct gw_error *err)
{
	struct result *res = arg;

	res->done = true;
	res->err = err;
}

static const struct upstream_handlers handlers = {on_head, on_body, on_done};

static struct upstream_xfer *start(struct upstream *u, enum upstream_method m, const char *body,
				   struct result *res)
{
	struct curl_slist *h = curl_slist_append(NULL, "X-Test: 1");

	*res = (struct result){0};
	return upstream_xfer_start(u, m, NULL, h, body, body ? strlen(body) : 0, &handlers, res);
}

/* One transfer, from start to done: what the server saw of it, and the answer came back. */
static void round_trip(struct upstream *u, enum upstream_method m, const char *body,
		       const char *want_line, bool want_length, const char *want_body)
{
	struct result res;
	struct request rq;

	CHECK(start(u, m, body, &res) != NULL);
	CHECK(read_request(&rq));
	CHECK_STR(rq.line, want_line);
	CHECK(rq.has_length == want_length);
	CHECK_STR(rq.body, want_body);
	answer("{\"ok\":1}");
	CHECK(run_until(&res.done, 5000));
	CHECK(res.err == NULL && res.status == 200);
	CHECK_STR(res.body, "{\"ok\":1}");
}

/* Handles go back to the pool without curl_easy_reset: each transfer sets its whole method. */
static void test_methods_on_pooled_handles(struct upstream *u)
{
	struct upstream_stats st;

	round_trip(u, UPSTREAM_POST, "{\"n\":1}", "POST /mcp HTTP/1.1", true, "{\"n\":1}");
	round_trip(u, UPSTREAM_DELETE, NULL, "DELETE /mcp HTTP/1.1", false, "");
	round_trip(u, UPSTREAM_POST, "{\"n\":2}", "POST /mcp HTTP/1.1", true, "{\"n\":2}");
	round_trip(u, UPSTREAM_GET, NULL, "GET /mcp HTTP/1.1", false, "");
	round_trip(u, UPSTREAM_POST, "{\"n\":3}", "POST /mcp HTTP/1.1", true, "{\"n\":3}");
	upstream_stats_get(u, &st);
	CHECK(st.connections_new == 1 && st.connections_reused == 4);
}

struct kick {
	struct upstream *u;
	struct result res;
	bool started;
};

static void on_kick(evutil_socket_t fd, short what, void *arg)
{
	struct kick *k = arg;

	(void)fd;
	(void)what;
	k->started = start(k->u, UPSTREAM_POST, "{\"n\":4}", &k->res) != NULL;
}

/* curl asks for a 0 ms time-out when a transfer is added; it runs later in the same round, not
 * in a round of its own: one loop round (EVLOOP_ONCE, no waiting) that starts the transfer from
 * a callback also sends it on the kept-alive connection. */
static void test_started_in_the_same_round(struct upstream *u)
{
	struct kick k = {.u = u};
	struct event *ev = event_new(base, -1, 0, on_kick, &k);
	struct request rq;

	event_active(ev, EV_READ, 1);
	event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	CHECK(k.started);
	CHECK(readable(conn, 0)); /* the request is there before the loop ran again */
	CHECK(read_request(&rq));
	CHECK_STR(rq.line, "POST /mcp HTTP/1.1");
	CHECK_STR(rq.body, "{\"n\":4}");
	answer("{\"ok\":1}");
	CHECK(run_until(&k.res.done, 5000));
	CHECK(k.res.err == NULL && k.res.status == 200);
	event_free(ev);
}

/* A proxy in the environment is used for Omni as curl would (read once per configuration, not
 * per transfer): the request reaches the proxy in absolute form. */
static void test_proxy_from_environment(const struct gw_config *base_cfg)
{
	struct gw_config cfg = *base_cfg;
	char proxy[64];
	struct result res;
	struct request rq;
	struct upstream *u;

	snprintf(proxy, sizeof(proxy), "%.*s", (int)(strlen(url) - strlen("/mcp")), url);
	setenv("http_proxy", proxy, 1);
	close(conn);
	conn = -1; /* the proxied upstream opens a connection of its own */
	cfg.upstream_url = "http://omni.invalid/mcp";
	u = upstream_new(base, &cfg);
	unsetenv("http_proxy");
	CHECK(start(u, UPSTREAM_POST, "{\"n\":5}", &res) != NULL);
	CHECK(read_request(&rq));
	CHECK_STR(rq.line, "POST http://omni.invalid/mcp HTTP/1.1");
	CHECK_STR(rq.body, "{\"n\":5}");
	answer("{\"ok\":1}");
	CHECK(run_until(&res.done, 5000));
	CHECK(res.err == NULL && res.status == 200);
	upstream_free(u);
}

int main(void)
{
	struct gw_config cfg = {0};
	struct upstream *u;

	signal(SIGPIPE, SIG_IGN);
	alarm(60);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	base = event_base_new();
	if (!server_start()) {
		CHECK(!"the test server started");
		TEST_REPORT();
	}
	cfg.upstream_url = url;
	cfg.upstream_connect_timeout_ms = 5000;
	cfg.upstream_idle_timeout_ms = 10000;
	cfg.upstream_max_connections = 4;
	cfg.max_connections = 16;
	u = upstream_new(base, &cfg);
	test_methods_on_pooled_handles(u);
	test_started_in_the_same_round(u);
	upstream_free(u);
	test_proxy_from_environment(&cfg);
	close(conn);
	close(listener);
	event_base_free(base);
	curl_global_cleanup();
	libevent_global_shutdown();
	TEST_REPORT();
}
