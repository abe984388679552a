/* libcurl's multi interface on the gateway's libevent loop (the "multi_socket" pattern): curl
 * tells us which sockets to watch and when to wake it; the loop tells curl what happened.
 * Response headers are filtered here to the ones a gateway forwards, so callers see only those. */
#include "gateway/upstream.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "gateway/log.h"
#include "gateway/util.h"

struct upstream {
	struct event_base *base;
	CURLM *multi;
	struct event *timer;
	bool kick_queued;  /* timer made active for a 0 ms time-out; it has not run yet */
	bool kick_running; /* on_timer runs from such an activation */
	char *url;
	char *origin; /* scheme://authority of url, for REST paths */
	char *ca_file;
	char *proxy, *no_proxy; /* from the environment (read_proxy_env); NULL: none */
	long connect_timeout_ms;
	struct timeval idle_timeout;
	struct upstream_stats stats;
	bool probing;
	unsigned config_gen; /* counts upstream_configure calls: the options a handle was set for */
	CURL *idle[64]; /* easy handles kept for the next transfers, set for config_gen */
	size_t n_idle;
};

struct upstream_xfer {
	struct upstream *u;
	CURL *easy;
	unsigned config_gen; /* easy's options are those of this configuration */
	struct curl_slist *headers;
	const struct upstream_handlers *h;
	void *arg;
	struct evbuffer *resp_headers;
	int status;
	long long content_length;
	bool head_done;
	struct event *idle; /* Omni sent nothing for idle_timeout: give up */
	struct timespec started;
	long head_ms;
	char errbuf[CURL_ERROR_SIZE];
};

/* Response headers relayed to the client (mcp-transport.md); Content-Length is framing and is
 * handed over separately. Everything else, WWW-Authenticate above all, stays behind. */
static const char *const forwarded_response_headers[] = {
	"content-type", "mcp-session-id", "allow", "cache-control", "x-accel-buffering",
	"retry-after", NULL,
};

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + t.tv_nsec / 1e9;
}

static long ms_since(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - t0->tv_sec) * 1000 + (now.tv_nsec - t0->tv_nsec) / 1000000;
}

static bool header_is(const char *line, size_t len, const char *name)
{
	size_t n = strlen(name);

	return len > n && line[n] == ':' && strncasecmp(line, name, n) == 0;
}

/* Every byte from Omni restarts the idle clock. */
static void touch(struct upstream_xfer *x)
{
	evtimer_add(x->idle, &x->u->idle_timeout);
}

static size_t on_curl_header(char *line, size_t size, size_t nitems, void *arg)
{
	struct upstream_xfer *x = arg;
	size_t len = size * nitems;

	touch(x);
	if (x->head_done)
		return len; /* trailers */
	if (len > 5 && memcmp(line, "HTTP/", 5) == 0) {
		const char *sp = memchr(line, ' ', len);

		x->status = sp ? atoi(sp + 1) : 0;
		x->content_length = -1;
		evbuffer_drain(x->resp_headers, evbuffer_get_length(x->resp_headers));
		return len;
	}
	if (len <= 2) {
		if (x->status >= 100 && x->status < 200)
			return len; /* an interim response; the real head follows */
		x->head_done = true;
		x->head_ms = ms_since(&x->started);
		x->h->on_head(x->arg, x->status, x->resp_headers, x->content_length);
		return len;
	}
	if (header_is(line, len, "content-length")) {
		x->content_length = strtoll(line + 15, NULL, 10);
		return len;
	}
	for (const char *const *h = forwarded_response_headers; *h; h++) {
		if (header_is(line, len, *h)) {
			evbuffer_add(x->resp_headers, line, len);
			break;
		}
	}
	return len;
}

static size_t on_curl_write(char *data, size_t size, size_t nmemb, void *arg)
{
	struct upstream_xfer *x = arg;
	size_t len = size * nmemb;

	if (!x->h->on_body(x->arg, data, len)) {
		/* Waiting for the client is not Omni being idle. */
		evtimer_del(x->idle);
		return CURL_WRITEFUNC_PAUSE;
	}
	touch(x);
	return len;
}

static const struct gw_error *map_curl_error(const struct upstream_xfer *x, CURLcode rc)
{
	if (rc == CURLE_OK)
		return x->head_done ? NULL : &gw_err_upstream_broken;
	if (rc == CURLE_OPERATION_TIMEDOUT)
		return &gw_err_upstream_timeout;
	if (!x->head_done)
		return &gw_err_upstream_unreachable;
	return &gw_err_upstream_broken;
}

/* The options every transfer shares, set once per handle: pooled handles are not reset (a
 * curl_easy_reset and setting these again cost more than the rest of a transfer's setup), so
 * set_transfer_options sets everything that differs between transfers on every one. The proxy
 * and its exceptions are given explicitly (read_proxy_env): left unset, curl would read the
 * environment on every transfer. */
static void set_handle_options(const struct upstream *u, CURL *e)
{
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_curl_header);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_curl_write);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_PROXY, u->proxy ? u->proxy : "");
	curl_easy_setopt(e, CURLOPT_NOPROXY, !u->proxy ? "*" : u->no_proxy ? u->no_proxy : "");
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, u->connect_timeout_ms);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	if (u->ca_file)
		curl_easy_setopt(e, CURLOPT_CAINFO, u->ca_file);
}

static const char *env_either(const char *lower, const char *upper)
{
	const char *v = getenv(lower);

	if ((!v || !*v) && upper)
		v = getenv(upper);
	return v && *v ? v : NULL;
}

/* The proxy for Omni as curl would pick it from the environment (https_proxy or HTTPS_PROXY
 * for an https URL, http_proxy for http, else all_proxy or ALL_PROXY; no_proxy or NO_PROXY),
 * read when the configuration is (start and reload), not on every transfer. */
static void read_proxy_env(struct upstream *u)
{
	bool https = strncasecmp(u->url, "https://", 8) == 0;
	const char *proxy = https ? env_either("https_proxy", "HTTPS_PROXY")
				  : env_either("http_proxy", NULL);
	const char *no_proxy = env_either("no_proxy", "NO_PROXY");

	if (!proxy)
		proxy = env_either("all_proxy", "ALL_PROXY");
	free(u->proxy);
	free(u->no_proxy);
	u->proxy = proxy ? gw_xstrdup(proxy) : NULL;
	u->no_proxy = no_proxy ? gw_xstrdup(no_proxy) : NULL;
}

/* A finished transfer's handle goes back to the pool: creating one per request costs an
 * allocation and its initialisation on the hot path. A handle set for an older configuration
 * is freed instead. */
static void easy_release(struct upstream *u, CURL *easy, unsigned config_gen)
{
	if (config_gen == u->config_gen && u->n_idle < sizeof(u->idle) / sizeof(u->idle[0]))
		u->idle[u->n_idle++] = easy;
	else
		curl_easy_cleanup(easy);
}

static CURL *easy_take(struct upstream *u)
{
	CURL *e;

	if (u->n_idle > 0)
		return u->idle[--u->n_idle];
	if (!(e = curl_easy_init()))
		abort();
	set_handle_options(u, e);
	return e;
}

static void easy_pool_empty(struct upstream *u)
{
	while (u->n_idle > 0)
		curl_easy_cleanup(u->idle[--u->n_idle]);
}

static void xfer_free(struct upstream_xfer *x)
{
	event_free(x->idle);
	curl_multi_remove_handle(x->u->multi, x->easy);
	easy_release(x->u, x->easy, x->config_gen);
	curl_slist_free_all(x->headers);
	evbuffer_free(x->resp_headers);
	free(x);
}

/* Connection reuse and reachability, for /metrics and /readyz. */
static void count_connection(struct upstream_xfer *x)
{
	long connects = 0;

	curl_easy_getinfo(x->easy, CURLINFO_NUM_CONNECTS, &connects);
	if (connects > 0)
		x->u->stats.connections_new++;
	else if (x->head_done)
		x->u->stats.connections_reused++;
	if (x->head_done)
		x->u->stats.last_ok = now_s();
	else
		x->u->stats.last_fail = now_s();
}

/* Reaps finished transfers. Runs after curl_multi_socket_action returns, so a transfer can be
 * removed and freed here without pulling it from under curl. */
static void reap_finished(struct upstream *u)
{
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(u->multi, &left))) {
		struct upstream_xfer *x;
		const struct gw_error *err;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
		err = map_curl_error(x, msg->data.result);
		count_connection(x);
		if (err)
			gw_warn("upstream: %s (%s)", curl_easy_strerror(msg->data.result),
				x->errbuf[0] ? x->errbuf : "no detail");
		x->h->on_done(x->arg, err);
		xfer_free(x);
	}
}

/* Runs from the loop, outside curl, so the transfer can be ended here. */
static void on_idle_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct upstream_xfer *x = arg;

	(void)fd;
	(void)what;
	gw_warn("upstream: nothing received for %ld ms; transfer closed",
		(long)x->u->idle_timeout.tv_sec * 1000 + x->u->idle_timeout.tv_usec / 1000);
	x->u->stats.last_fail = now_s();
	x->h->on_done(x->arg, &gw_err_upstream_timeout);
	xfer_free(x);
}

static void on_socket_event(evutil_socket_t fd, short what, void *arg)
{
	struct upstream *u = arg;
	int running, flags = 0;

	if (what & EV_READ)
		flags |= CURL_CSELECT_IN;
	if (what & EV_WRITE)
		flags |= CURL_CSELECT_OUT;
	curl_multi_socket_action(u->multi, fd, flags, &running);
	reap_finished(u);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct upstream *u = arg;
	int running;

	(void)fd;
	(void)what;
	u->kick_running = u->kick_queued;
	u->kick_queued = false;
	curl_multi_socket_action(u->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	reap_finished(u);
	u->kick_running = false;
}

/* CURLMOPT_SOCKETFUNCTION: keep one persistent event per socket curl uses. */
static int on_curl_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
	struct upstream *u = userp;
	struct event *ev = socketp;
	short kind = EV_PERSIST;

	(void)easy;
	if (what == CURL_POLL_REMOVE) {
		if (ev)
			event_free(ev);
		curl_multi_assign(u->multi, s, NULL);
		return 0;
	}
	if (what & CURL_POLL_IN)
		kind |= EV_READ;
	if (what & CURL_POLL_OUT)
		kind |= EV_WRITE;
	if (ev) {
		event_del(ev);
		event_assign(ev, u->base, s, kind, on_socket_event, u);
	} else {
		ev = event_new(u->base, s, kind, on_socket_event, u);
		if (!ev)
			abort();
		curl_multi_assign(u->multi, s, ev);
	}
	event_add(ev, NULL);
	return 0;
}

/* CURLMOPT_TIMERFUNCTION: curl wants to be woken after timeout_ms (-1: never). A 0 ms time-out
 * (every new transfer asks for one) makes the timer active at once, so curl runs later in the
 * same loop round instead of costing a round of its own with another epoll_wait. Asked again
 * from such a run, it waits for the next round: I/O is polled between two of curl's runs, and
 * a curl that keeps asking for 0 ms cannot hold the loop. */
static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
	struct upstream *u = userp;
	struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};

	(void)multi;
	if (timeout_ms == 0 && !u->kick_running) {
		if (!u->kick_queued) {
			evtimer_del(u->timer);
			event_active(u->timer, EV_TIMEOUT, 1);
			u->kick_queued = true;
		}
		return 0;
	}
	u->kick_queued = false; /* both calls below take the timer out of the active queue */
	if (timeout_ms < 0)
		evtimer_del(u->timer);
	else
		evtimer_add(u->timer, &tv);
	return 0;
}

struct upstream *upstream_new(struct event_base *base, const struct gw_config *cfg)
{
	struct upstream *u = calloc(1, sizeof(*u));

	if (!u)
		abort();
	u->base = base;
	u->multi = curl_multi_init();
	u->timer = evtimer_new(base, on_timer, u);
	if (!u->multi || !u->timer)
		abort();
	upstream_configure(u, cfg);
	curl_multi_setopt(u->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
	curl_multi_setopt(u->multi, CURLMOPT_SOCKETDATA, u);
	curl_multi_setopt(u->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
	curl_multi_setopt(u->multi, CURLMOPT_TIMERDATA, u);
	return u;
}

void upstream_configure(struct upstream *u, const struct gw_config *cfg)
{
	const char *authority;

	free(u->url);
	free(u->origin);
	free(u->ca_file);
	u->url = strdup(cfg->upstream_url);
	u->ca_file = cfg->upstream_ca_file ? strdup(cfg->upstream_ca_file) : NULL;
	if (!u->url || (cfg->upstream_ca_file && !u->ca_file))
		abort();
	authority = strstr(u->url, "://") + 3; /* the config checked the scheme */
	u->origin = strndup(u->url, authority + strcspn(authority, "/?#") - u->url);
	if (!u->origin)
		abort();
	read_proxy_env(u);
	u->connect_timeout_ms = cfg->upstream_connect_timeout_ms;
	/* curl's connection cache counts busy connections too: sized only for the idle ones, every
	 * transfer that ends while long-lived streams hold connections would close its own, and
	 * POSTs would stop reusing connections once more streams than that are open. */
	curl_multi_setopt(u->multi, CURLMOPT_MAXCONNECTS,
			  cfg->upstream_max_connections + cfg->max_connections);
	u->idle_timeout.tv_sec = cfg->upstream_idle_timeout_ms / 1000;
	u->idle_timeout.tv_usec = (cfg->upstream_idle_timeout_ms % 1000) * 1000;
	easy_pool_empty(u); /* their options are the old configuration's */
	u->config_gen++;
}

void upstream_free(struct upstream *u)
{
	if (!u)
		return;
	easy_pool_empty(u);
	curl_multi_cleanup(u->multi);
	event_free(u->timer);
	free(u->url);
	free(u->origin);
	free(u->ca_file);
	free(u->proxy);
	free(u->no_proxy);
	free(u);
}

/* Everything that differs between transfers, set on every one (see set_handle_options). The
 * method's options are all set whatever the handle did before: a POST after a DELETE must not
 * stay a DELETE, a GET after a POST must not keep the POST's body (freed by now). */
static void set_transfer_options(struct upstream_xfer *x, enum upstream_method method,
				 const char *path, const void *body, size_t body_len)
{
	struct upstream *u = x->u;
	CURL *e = x->easy;
	char url[2048];

	if (path)
		snprintf(url, sizeof(url), "%s%s", u->origin, path);
	curl_easy_setopt(e, CURLOPT_URL, path ? url : u->url); /* curl copies it */
	curl_easy_setopt(e, CURLOPT_PRIVATE, x);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
	if (method == UPSTREAM_POST) {
		curl_easy_setopt(e, CURLOPT_POST, 1L);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
	} else {
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, NULL);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)-1);
		curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
	}
	curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method == UPSTREAM_DELETE ? "DELETE" : NULL);
	/* GET streams stay open for a session and carry small events: a 4 KiB receive buffer
	 * instead of curl's 16 KiB is most of the memory an open stream costs. */
	curl_easy_setopt(e, CURLOPT_BUFFERSIZE,
			 method == UPSTREAM_GET ? 4096L : (long)CURL_MAX_WRITE_SIZE);
}

struct upstream_xfer *upstream_xfer_start(struct upstream *u, enum upstream_method method,
					  const char *path, struct curl_slist *headers,
					  const void *body, size_t body_len,
					  const struct upstream_handlers *h, void *arg)
{
	struct upstream_xfer *x = calloc(1, sizeof(*x));

	if (!x)
		abort();
	x->u = u;
	x->headers = headers;
	x->h = h;
	x->arg = arg;
	x->head_ms = -1;
	x->content_length = -1;
	x->easy = easy_take(u);
	x->config_gen = u->config_gen;
	x->resp_headers = evbuffer_new();
	/* An upstream that sends nothing for idle_timeout is given up on, waiting for the head
	 * included; long SSE streams stay open while the server sends keep-alives. */
	x->idle = evtimer_new(u->base, on_idle_timeout, x);
	if (!x->resp_headers || !x->idle)
		abort();
	clock_gettime(CLOCK_MONOTONIC, &x->started);
	set_transfer_options(x, method, path, body, body_len);
	if (curl_multi_add_handle(u->multi, x->easy) != CURLM_OK) {
		event_free(x->idle);
		easy_release(u, x->easy, x->config_gen);
		curl_slist_free_all(x->headers);
		evbuffer_free(x->resp_headers);
		free(x);
		return NULL;
	}
	touch(x);
	return x;
}

void upstream_xfer_resume(struct upstream_xfer *x)
{
	touch(x);
	curl_easy_pause(x->easy, CURLPAUSE_CONT);
}

void upstream_xfer_cancel(struct upstream_xfer *x)
{
	xfer_free(x);
}

long upstream_xfer_head_ms(const struct upstream_xfer *x)
{
	return x->head_ms;
}

void upstream_stats_get(const struct upstream *u, struct upstream_stats *out)
{
	*out = u->stats;
}

bool upstream_reachable(const struct upstream *u, double window_s)
{
	if (u->stats.last_ok > 0 && now_s() - u->stats.last_ok <= window_s)
		return true;
	return u->stats.last_ok > u->stats.last_fail;
}

static void on_probe_head(void *arg, int status, struct evbuffer *headers, long long len)
{
	(void)arg;
	(void)status;
	(void)headers;
	(void)len;
}

static bool on_probe_body(void *arg, const char *data, size_t len)
{
	(void)arg;
	(void)data;
	(void)len;
	return true;
}

static void on_probe_done(void *arg, const struct gw_error *err)
{
	struct upstream *u = arg;

	(void)err;
	u->probing = false;
}

static const struct upstream_handlers probe_handlers = {on_probe_head, on_probe_body,
							on_probe_done};

void upstream_probe(struct upstream *u, double window_s)
{
	struct curl_slist *h;

	if (u->probing || (u->stats.last_ok > 0 && now_s() - u->stats.last_ok <= window_s))
		return;
	h = curl_slist_append(NULL, "User-Agent: omni-mcp-gateway/0.1 (readiness probe)");
	if (!h)
		abort();
	u->probing = upstream_xfer_start(u, UPSTREAM_GET, NULL, h, NULL, 0, &probe_handlers, u) != NULL;
}
