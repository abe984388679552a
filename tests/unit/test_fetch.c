/* Tests of gateway/fetch: the form encoding both ways (reserved characters, UTF-8, "+", bad
 * escapes), then real requests on one loop to a small evhttp server this test runs on a
 * loopback port: GET JSON, POST echoing its form, errors answered as statuses, no redirects
 * followed, a server that never answers (time-out), bodies past 1 MiB, a closed port, and
 * cancellation and freeing (no callback afterwards). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "gateway/fetch.h"
#include "tests/unit/harness.h"
#include "tests/unit/loop.h"

#define BIG (GW_FETCH_MAX_BODY + 1)

static char origin[64]; /* http://127.0.0.1:PORT */

/* ---- form encoding ---- */

static char *form_of(struct evbuffer *b)
{
	size_t n = evbuffer_get_length(b);
	char *s = calloc(1, n + 1);

	evbuffer_copyout(b, s, n);
	return s;
}

static void check_get(const char *form, const char *name, const char *want)
{
	char *v = gw_form_get(form, strlen(form), name);

	if (want)
		CHECK_STR(v, want);
	else
		CHECK(v == NULL);
	if (want && !v)
		fprintf(stderr, "  form \"%s\", name \"%s\"\n", form, name);
	free(v);
}

static void test_form_encode(void)
{
	struct evbuffer *b = evbuffer_new();
	const char *values[] = {
		"plain",
		"a b+c&d=e/f?g#h%i",
		"~-._",
		"",
		"caf\xc3\xa9 \xe2\x9c\x93",
		"https://x.example/cb?a=1&b=2",
		"\x01\x7f\xff",
		"==&&",
		NULL,
	};
	char *s, name[16];

	gw_form_add(b, "grant_type", "authorization_code");
	gw_form_add(b, "redirect_uri", "http://127.0.0.1:8/cb?x=1 y");
	gw_form_add(b, "odd name&=", "A-Z.a_z~0 9");
	s = form_of(b);
	CHECK_STR(s, "grant_type=authorization_code&"
		     "redirect_uri=http%3A%2F%2F127.0.0.1%3A8%2Fcb%3Fx%3D1%20y&"
		     "odd%20name%26%3D=A-Z.a_z~0%209");
	free(s);
	evbuffer_drain(b, evbuffer_get_length(b));
	gw_form_add(b, "u", "caf\xc3\xa9+");
	s = form_of(b);
	CHECK_STR(s, "u=caf%C3%A9%2B"); /* UTF-8 bytes each escaped, upper-case hex */
	free(s);

	/* every value comes back as it went in, among others */
	evbuffer_drain(b, evbuffer_get_length(b));
	for (int i = 0; values[i]; i++) {
		snprintf(name, sizeof(name), "k%d", i);
		gw_form_add(b, name, values[i]);
	}
	gw_form_add(b, "odd name&=", "x");
	s = form_of(b);
	for (int i = 0; values[i]; i++) {
		snprintf(name, sizeof(name), "k%d", i);
		check_get(s, name, values[i]);
	}
	check_get(s, "odd name&=", "x");
	free(s);
	evbuffer_free(b);
}

static void test_form_decode(void)
{
	char *v;

	check_get("a=1&b=2", "a", "1");
	check_get("a=1&b=2", "b", "2");
	check_get("a=1&b=2", "c", NULL);
	check_get("", "a", NULL);
	check_get("a=1&a=2", "a", "1");			 /* the first one */
	check_get("ab=1&a=2", "a", "2");		 /* whole names only */
	check_get("a=x+y%2By", "a", "x y+y");		 /* '+' is a space, %2B a plus */
	check_get("a=%e2%9c%93&b", "a", "\xe2\x9c\x93"); /* lower-case hex too */
	check_get("b&a=", "b", "");			 /* no '=': empty */
	check_get("b&a=", "a", "");
	check_get("x=1&&y=2&", "y", "2"); /* empty pairs skipped */
	check_get("my+name=v&my%20name=w", "my name", "v");
	check_get("a==b", "a", "=b");
	check_get("a=%zz", "a", NULL); /* bad escapes */
	check_get("a=%4", "a", NULL);
	check_get("a=%", "a", NULL);
	check_get("a=1%", "a", NULL);
	check_get("a=%g1", "a", NULL);
	check_get("a=%00x", "a", NULL); /* a NUL cannot be in a C string */
	check_get("a=%zz&b=ok", "b", "ok");
	check_get("%zz=1&a=2", "a", "2"); /* a pair with a bad name is not the one asked */
	/* len bounds the form: no NUL needed, nothing read past it */
	v = gw_form_get("a=123&b=4", 4, "a");
	CHECK_STR(v, "12");
	free(v);
	v = gw_form_get("a=%41", 4, "a");
	CHECK(v == NULL);
}

/* ---- the test server ---- */

struct server {
	struct evhttp *http;
	int port;
	int slow_seen;
	char last_method[8];
	char last_accept[64];
	char last_type[64];
	unsigned short last_peer_port;
};

static struct server srv;

static void note_request(struct evhttp_request *req)
{
	struct evkeyvalq *h = evhttp_request_get_input_headers(req);
	const char *accept = evhttp_find_header(h, "Accept");
	const char *type = evhttp_find_header(h, "Content-Type");
	char *addr = NULL;
	ev_uint16_t port = 0;

	snprintf(srv.last_method, sizeof(srv.last_method), "%s",
		 evhttp_request_get_command(req) == EVHTTP_REQ_POST  ? "POST"
		 : evhttp_request_get_command(req) == EVHTTP_REQ_GET ? "GET"
								     : "OTHER");
	snprintf(srv.last_accept, sizeof(srv.last_accept), "%s", accept ? accept : "");
	snprintf(srv.last_type, sizeof(srv.last_type), "%s", type ? type : "");
	evhttp_connection_get_peer(evhttp_request_get_connection(req), &addr, &port);
	srv.last_peer_port = port;
}

static void reply(struct evhttp_request *req, int code, const char *type, const void *body,
		  size_t len)
{
	struct evbuffer *b = evbuffer_new();

	evbuffer_add(b, body, len);
	if (type)
		evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", type);
	evhttp_send_reply(req, code, code == 200 ? "OK" : "Other", b);
	evbuffer_free(b);
}

static void on_json(struct evhttp_request *req, void *arg)
{
	static const char body[] = "{\"issuer\":\"http://127.0.0.1\",\"ok\":true}";

	(void)arg;
	note_request(req);
	reply(req, 200, "application/json", body, sizeof(body) - 1);
}

static void on_echo(struct evhttp_request *req, void *arg)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t n = evbuffer_get_length(in);
	char *copy = malloc(n + 1);

	(void)arg;
	note_request(req);
	evbuffer_remove(in, copy, n);
	reply(req, 200, "text/plain", copy, n);
	free(copy);
}

static void on_slow(struct evhttp_request *req, void *arg)
{
	(void)arg;
	(void)req; /* never answered; evhttp frees it when the client goes */
	srv.slow_seen++;
}

static void send_size(struct evhttp_request *req, size_t n)
{
	char *body = malloc(n);

	memset(body, 'x', n);
	reply(req, 200, "application/json", body, n);
	free(body);
}

static void on_big(struct evhttp_request *req, void *arg)
{
	(void)arg;
	send_size(req, BIG);
}

static void on_max(struct evhttp_request *req, void *arg)
{
	(void)arg;
	send_size(req, GW_FETCH_MAX_BODY);
}

/* Chunked, no Content-Length: only counting the bytes catches it. */
static void on_big_chunked(struct evhttp_request *req, void *arg)
{
	struct evbuffer *b = evbuffer_new();
	char chunk[65536];

	(void)arg;
	memset(chunk, 'y', sizeof(chunk));
	evhttp_send_reply_start(req, 200, "OK");
	for (size_t sent = 0; sent < (size_t)BIG + sizeof(chunk); sent += sizeof(chunk)) {
		evbuffer_add(b, chunk, sizeof(chunk));
		evhttp_send_reply_chunk(req, b);
	}
	evhttp_send_reply_end(req);
	evbuffer_free(b);
}

static void on_missing(struct evhttp_request *req, void *arg)
{
	static const char body[] = "{\"error\":\"invalid_grant\"}";

	(void)arg;
	reply(req, 400, "application/json", body, sizeof(body) - 1);
}

static void on_redirect(struct evhttp_request *req, void *arg)
{
	char loc[128];

	(void)arg;
	snprintf(loc, sizeof(loc), "%s/json", origin);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Location", loc);
	reply(req, 302, NULL, "", 0);
}

static void on_empty(struct evhttp_request *req, void *arg)
{
	(void)arg;
	reply(req, 204, NULL, "", 0);
}

static bool server_start(void)
{
	struct evhttp_bound_socket *bound;
	struct sockaddr_in a;
	socklen_t len = sizeof(a);

	srv.http = evhttp_new(base);
	evhttp_set_allowed_methods(srv.http, EVHTTP_REQ_GET | EVHTTP_REQ_POST);
	evhttp_set_cb(srv.http, "/json", on_json, NULL);
	evhttp_set_cb(srv.http, "/echo", on_echo, NULL);
	evhttp_set_cb(srv.http, "/slow", on_slow, NULL);
	evhttp_set_cb(srv.http, "/big", on_big, NULL);
	evhttp_set_cb(srv.http, "/max", on_max, NULL);
	evhttp_set_cb(srv.http, "/bigchunked", on_big_chunked, NULL);
	evhttp_set_cb(srv.http, "/missing", on_missing, NULL);
	evhttp_set_cb(srv.http, "/redirect", on_redirect, NULL);
	evhttp_set_cb(srv.http, "/empty", on_empty, NULL);
	bound = evhttp_bind_socket_with_handle(srv.http, "127.0.0.1", 0);
	if (!bound ||
	    getsockname(evhttp_bound_socket_get_fd(bound), (struct sockaddr *)&a, &len) != 0)
		return false;
	srv.port = ntohs(a.sin_port);
	snprintf(origin, sizeof(origin), "http://127.0.0.1:%d", srv.port);
	return true;
}

/* ---- requests ---- */

struct got {
	bool done;
	int calls;
	int status;
	char *body;
	size_t len;
	char error[512];
	bool had_error;
};

static void on_fetched(void *arg, int status, const char *body, size_t len, const char *error)
{
	struct got *g = arg;

	g->done = true;
	g->calls++;
	g->status = status;
	free(g->body);
	g->body = malloc(len + 1);
	memcpy(g->body, body, len + 1); /* the NUL too: it must be there */
	g->len = len;
	g->had_error = error != NULL;
	snprintf(g->error, sizeof(g->error), "%s", error ? error : "");
}

static void got_fini(struct got *g)
{
	free(g->body);
	g->body = NULL;
}

static char *url_of(const char *path)
{
	static char url[128];

	snprintf(url, sizeof(url), "%s%s", origin, path);
	return url;
}

/* Starts a request, checks it is not answered inside the call, and waits for its answer. */
static void fetch(struct gw_fetch *f, const char *url, const char *form, long timeout_ms,
		  struct got *g)
{
	*g = (struct got){0};
	CHECK(gw_fetch_start(f, url, form, NULL, timeout_ms, on_fetched, g) != NULL);
	CHECK(!g->done);
	CHECK(run_until(&g->done, timeout_ms + 5000));
}

static void test_get_and_post(struct gw_fetch *f)
{
	struct got g;
	unsigned short first_port;
	struct evbuffer *form = evbuffer_new();
	char *sent;

	fetch(f, url_of("/json"), NULL, 5000, &g);
	CHECK(g.status == 200 && !g.had_error);
	CHECK_STR(g.body, "{\"issuer\":\"http://127.0.0.1\",\"ok\":true}");
	CHECK(g.len == strlen(g.body));
	CHECK_STR(srv.last_method, "GET");
	CHECK_STR(srv.last_accept, "application/json");
	first_port = srv.last_peer_port;
	got_fini(&g);

	gw_form_add(form, "grant_type", "authorization_code");
	gw_form_add(form, "code", "a+b/c=d&e f");
	gw_form_add(form, "redirect_uri", "http://127.0.0.1:9/cb");
	sent = form_of(form);
	fetch(f, url_of("/echo"), sent, 5000, &g);
	CHECK(g.status == 200);
	CHECK_STR(g.body, sent);
	CHECK_STR(srv.last_method, "POST");
	CHECK_STR(srv.last_type, "application/x-www-form-urlencoded");
	CHECK_STR(srv.last_accept, "application/json");
	CHECK(srv.last_peer_port == first_port); /* the kept-alive connection was reused */
	{
		char *code = gw_form_get(g.body, g.len, "code");

		CHECK_STR(code, "a+b/c=d&e f");
		free(code);
	}
	got_fini(&g);
	free(sent);
	evbuffer_free(form);

	/* an empty POST body is still a POST */
	fetch(f, url_of("/echo"), "", 5000, &g);
	CHECK(g.status == 200 && g.len == 0 && g.body[0] == '\0');
	CHECK_STR(srv.last_method, "POST");
	got_fini(&g);
}

static void test_statuses(struct gw_fetch *f)
{
	struct got g;

	fetch(f, url_of("/missing"), NULL, 5000, &g);
	CHECK(g.status == 400 && !g.had_error);
	CHECK_STR(g.body, "{\"error\":\"invalid_grant\"}");
	got_fini(&g);
	fetch(f, url_of("/nowhere"), NULL, 5000, &g);
	CHECK(g.status == 404);
	got_fini(&g);
	fetch(f, url_of("/redirect"), NULL, 5000, &g);
	CHECK(g.status == 302); /* not followed */
	got_fini(&g);
	fetch(f, url_of("/empty"), NULL, 5000, &g);
	CHECK(g.status == 204 && g.len == 0 && g.body && g.body[0] == '\0');
	got_fini(&g);
}

static void test_failures(struct gw_fetch *f)
{
	struct got g;
	char url[64];
	int closed_port;

	/* never answered: the time-out ends it */
	fetch(f, url_of("/slow"), NULL, 300, &g);
	CHECK(g.status == 0 && g.had_error && strstr(g.error, "time-out"));
	CHECK(g.len == 0 && g.body[0] == '\0');
	CHECK(srv.slow_seen == 1);
	got_fini(&g);

	/* bodies: exactly the limit is fine, one byte more is not (with and without length) */
	fetch(f, url_of("/max"), NULL, 10000, &g);
	CHECK(g.status == 200 && g.len == GW_FETCH_MAX_BODY);
	got_fini(&g);
	fetch(f, url_of("/big"), NULL, 10000, &g);
	CHECK(g.status == 0 && strstr(g.error, "larger than"));
	got_fini(&g);
	fetch(f, url_of("/bigchunked"), NULL, 10000, &g);
	CHECK(g.status == 0 && strstr(g.error, "larger than"));
	got_fini(&g);

	/* a port nobody listens on */
	{
		struct sockaddr_in a = {.sin_family = AF_INET,
					.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		socklen_t len = sizeof(a);
		int fd = socket(AF_INET, SOCK_STREAM, 0);

		bind(fd, (struct sockaddr *)&a, sizeof(a));
		getsockname(fd, (struct sockaddr *)&a, &len);
		closed_port = ntohs(a.sin_port);
		close(fd);
	}
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/json", closed_port);
	fetch(f, url, NULL, 5000, &g);
	CHECK(g.status == 0 && strstr(g.error, "connect"));
	got_fini(&g);

	/* only http and https */
	fetch(f, "file:///etc/passwd", NULL, 5000, &g);
	CHECK(g.status == 0 && g.had_error && g.len == 0);
	got_fini(&g);
	fetch(f, "gopher://127.0.0.1:1/", NULL, 5000, &g);
	CHECK(g.status == 0 && g.had_error);
	got_fini(&g);
	/* TLS to a plain-HTTP server */
	snprintf(url, sizeof(url), "https://127.0.0.1:%d/json", srv.port);
	fetch(f, url, NULL, 5000, &g);
	CHECK(g.status == 0 && strstr(g.error, "TLS"));
	got_fini(&g);

	/* the server still works after all that */
	fetch(f, url_of("/json"), NULL, 5000, &g);
	CHECK(g.status == 200);
	got_fini(&g);
}

static void on_free_client(void *arg, int status, const char *body, size_t len, const char *error)
{
	struct gw_fetch **fp = arg;

	(void)status;
	(void)body;
	(void)len;
	(void)error;
	gw_fetch_free(*fp);
	*fp = NULL;
}

static void test_cancel_and_free(struct gw_fetch *f)
{
	struct got a = {0}, b = {0}, d = {0}, e = {0};
	struct gw_fetch_req *r;
	struct gw_fetch *f2;

	/* cancelled at once, and cancelled in flight */
	r = gw_fetch_start(f, url_of("/json"), NULL, NULL, 5000, on_fetched, &a);
	CHECK(r != NULL);
	gw_fetch_cancel(r);
	r = gw_fetch_start(f, url_of("/slow"), NULL, NULL, 5000, on_fetched, &b);
	CHECK(r != NULL);
	run_for(100);
	CHECK(srv.slow_seen == 2);
	gw_fetch_cancel(r);
	gw_fetch_cancel(NULL);
	run_for(300);
	CHECK(!a.done && !b.done);
	/* the client goes on */
	fetch(f, url_of("/json"), NULL, 5000, &d);
	CHECK(d.status == 200 && d.calls == 1);
	got_fini(&d);

	/* a client freed with requests in flight calls nothing */
	f2 = gw_fetch_new(base);
	gw_fetch_start(f2, url_of("/slow"), NULL, NULL, 5000, on_fetched, &b);
	run_for(100); /* at the server by now */
	gw_fetch_start(f2, url_of("/json"), NULL, NULL, 5000, on_fetched, &a);
	gw_fetch_free(f2);
	run_for(200);
	CHECK(!a.done && !b.done);
	gw_fetch_free(NULL);

	/* a callback may free its client, other requests pending */
	f2 = gw_fetch_new(base);
	CHECK(gw_fetch_start(f2, url_of("/json"), NULL, NULL, 5000, on_free_client, &f2) != NULL);
	gw_fetch_start(f2, url_of("/slow"), NULL, NULL, 5000, on_fetched, &e);
	for (int i = 0; i < 50 && f2; i++)
		run_for(20);
	CHECK(f2 == NULL);
	run_for(100);
	CHECK(!e.done);
}

/* Many at once, each answered once. */
static void test_concurrent(struct gw_fetch *f)
{
	struct got g[20];
	bool all = false;

	for (int i = 0; i < 20; i++) {
		g[i] = (struct got){0};
		CHECK(gw_fetch_start(f, url_of(i % 2 ? "/json" : "/echo"), i % 2 ? NULL : "x=1",
				     NULL, 5000, on_fetched, &g[i]) != NULL);
	}
	for (int t = 0; t < 250 && !all; t++) {
		run_for(20);
		all = true;
		for (int i = 0; i < 20; i++)
			all = all && g[i].done;
	}
	CHECK(all);
	for (int i = 0; i < 20; i++) {
		CHECK(g[i].calls == 1 && g[i].status == 200);
		got_fini(&g[i]);
	}
}

int main(void)
{
	struct gw_fetch *f;

	signal(SIGPIPE, SIG_IGN);
	alarm(120);
	test_form_encode();
	test_form_decode();
	base = event_base_new();
	if (!server_start()) {
		CHECK(!"the test server started");
		TEST_REPORT();
	}
	f = gw_fetch_new(base);
	test_get_and_post(f);
	test_statuses(f);
	test_failures(f);
	test_cancel_and_free(f);
	test_concurrent(f);
	gw_fetch_free(f);
	evhttp_free(srv.http);
	event_base_free(base);
	libevent_global_shutdown();
	TEST_REPORT();
}
