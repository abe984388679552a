/* Admin endpoints over libevent's evhttp: low traffic, no TLS, never on the MCP path. */
#include "gateway/admin.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/log.h"
#include "gateway/server.h"

struct gw_admin {
	struct gw_server *srv;
	struct evhttp *http;
};

static void reply(struct evhttp_request *req, int code, const char *type, struct evbuffer *body)
{
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", type);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Cache-Control", "no-store");
	evhttp_send_reply(req, code, code == 200 ? "OK" : code == 503 ? "Service Unavailable"
					    : "Not Found", body);
}

static void on_request(struct evhttp_request *req, void *arg)
{
	struct gw_admin *a = arg;
	const char *uri = evhttp_request_get_uri(req);
	struct evbuffer *body = evbuffer_new();
	size_t n = strcspn(uri, "?");

	if (!body)
		abort();
	if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
		evbuffer_add_printf(body, "GET only\n");
		reply(req, 405, "text/plain", body);
	} else if (n == 8 && strncmp(uri, "/healthz", 8) == 0) {
		evbuffer_add_printf(body, "ok\n");
		reply(req, 200, "text/plain", body);
	} else if (n == 7 && strncmp(uri, "/readyz", 7) == 0) {
		bool ready = gw_server_ready(a->srv, body);

		reply(req, ready ? 200 : 503, "text/plain", body);
	} else if (n == 8 && strncmp(uri, "/metrics", 8) == 0) {
		gw_server_write_metrics(a->srv, body);
		reply(req, 200, "text/plain; version=0.0.4", body);
	} else {
		evbuffer_add_printf(body, "not found: /healthz, /readyz, /metrics\n");
		reply(req, 404, "text/plain", body);
	}
	evbuffer_free(body);
}

struct gw_admin *gw_admin_new(struct gw_server *srv, struct event_base *base, const char *listen)
{
	struct gw_admin *a = calloc(1, sizeof(*a));
	const char *colon = strrchr(listen, ':');
	struct evhttp_bound_socket *bound;
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	char host[256];
	int port = 0;

	if (!a)
		abort();
	a->srv = srv;
	a->http = evhttp_new(base);
	if (!a->http || !colon || colon - listen >= (long)sizeof(host))
		goto fail;
	snprintf(host, sizeof(host), "%.*s", (int)(colon - listen), listen);
	if (host[0] == '[') { /* [::1]:9090 */
		memmove(host, host + 1, strlen(host));
		host[strcspn(host, "]")] = '\0';
	}
	evhttp_set_allowed_methods(a->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
	evhttp_set_timeout(a->http, 10);
	evhttp_set_gencb(a->http, on_request, a);
	if (!(bound = evhttp_bind_socket_with_handle(a->http, host, (ev_uint16_t)atoi(colon + 1))))
		goto fail;
	/* The real port: with port 0 the system chose it. */
	if (getsockname(evhttp_bound_socket_get_fd(bound), (struct sockaddr *)&ss, &sslen) == 0)
		port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
						      : ((struct sockaddr_in *)&ss)->sin_port);
	gw_info("admin listening on http://%s%s%s:%d/ (healthz, readyz, metrics)",
		strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "", port);
	return a;
fail:
	gw_error("admin: cannot listen on %s", listen);
	gw_admin_free(a);
	return NULL;
}

void gw_admin_free(struct gw_admin *a)
{
	if (!a)
		return;
	if (a->http)
		evhttp_free(a->http);
	free(a);
}
