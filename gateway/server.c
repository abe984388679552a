/* The listener and the loop: binds the configured address, wraps accepted sockets in TLS when
 * configured, counts connections against max_connections, and stops on SIGTERM/SIGINT after
 * letting requests in flight finish (up to a drain time-out). */
#include "gateway/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "cache/cache.h"
#include "gateway/audit.h"
#include "gateway/admin.h"
#include "gateway/conn.h"
#include "gateway/metrics.h"
#include "gateway/oauth.h"
#include "gateway/log.h"
#include "gateway/stream.h"

#define READY_WINDOW_S 30.0 /* Omni answered within this long: reachable */
#define PROBE_EVERY_S 10
#define SESSION_SLOTS 1024   /* ended sessions, and session clients, remembered */
#define SESSION_BUCKETS 2048 /* a power of two */
#define SESSION_ID_MAX 128

/* A ring of session ids with a hash index: the newest SESSION_SLOTS are kept, the oldest is
 * forgotten when a new one comes. The ids live in the caller's array (keys, every stride
 * bytes: ended ids, or the session field of the clients); chains hold slot + 1, 0 ends. */
struct session_ring {
	char *keys;
	size_t stride;
	size_t next;
	unsigned short heads[SESSION_BUCKETS];
	unsigned short chain[SESSION_SLOTS];
};
_Static_assert(SESSION_SLOTS < 65535, "a slot + 1 fits a chain link");

struct gw_server {
	struct event_base *base;
	struct gw_config *cfg;
	SSL_CTX *ssl_ctx;
	struct evconnlistener *listener;
	struct upstream *upstream;
	struct cache *cache; /* NULL when the config has no cache section parsed */
	struct audit *audit; /* NULL when auditing is off */
	struct gw_metrics *metrics;
	struct gw_oauth *oauth;
	struct gw_admin *admin;
	struct event *probe_timer;
	char *config_path;
	struct event *sigterm, *sigint, *sighup, *sigusr1, *drain_timer;
	struct gw_conn_list conns;
	struct gw_member_state **states; /* one per member name ever configured */
	size_t n_states;
	long n_conns;
	bool draining;
	char (*ended)[SESSION_ID_MAX]; /* ended session ids, indexed by ended_ring */
	struct session_ring ended_ring;
	struct gw_session_client *clients; /* indexed by clients_ring */
	struct session_ring clients_ring;
};

static void on_probe_timer(evutil_socket_t fd, short what, void *arg)
{
	struct gw_server *srv = arg;

	(void)fd;
	(void)what;
	upstream_probe(srv->upstream, PROBE_EVERY_S);
}

static SSL_CTX *tls_context_new(const struct gw_config *cfg)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (!ctx)
		return NULL;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	if (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, cfg->tls_key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		char err[256];

		ERR_error_string_n(ERR_get_error(), err, sizeof(err));
		gw_error("tls: cannot use %s / %s: %s", cfg->tls_cert, cfg->tls_key, err);
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
		      int socklen, void *arg)
{
	struct gw_server *srv = arg;
	SSL *ssl = NULL;
	int one = 1;

	(void)l;
	(void)socklen;
	if (srv->n_conns >= srv->cfg->max_connections) {
		gw_warn("at max_connections (%ld): refusing a connection", srv->cfg->max_connections);
		evutil_closesocket(fd);
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (srv->ssl_ctx && !(ssl = SSL_new(srv->ssl_ctx))) {
		evutil_closesocket(fd);
		return;
	}
	srv->n_conns++;
	gw_conn_new(srv, srv->base, gw_stream_new(srv->base, fd, ssl), sa);
}

static void on_accept_error(struct evconnlistener *l, void *arg)
{
	(void)l;
	(void)arg;
	/* EMFILE and friends: the listener keeps going; the next accept may succeed. */
	gw_error("accept: %s", strerror(errno));
}

static void maybe_finish_drain(struct gw_server *srv)
{
	if (srv->draining && srv->n_conns == 0)
		event_base_loopexit(srv->base, NULL);
}

static void on_drain_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct gw_server *srv = arg;

	(void)fd;
	(void)what;
	gw_warn("drain time-out: closing %ld connection(s)", srv->n_conns);
	event_base_loopexit(srv->base, NULL);
}

static void on_stop_signal(evutil_socket_t sig, short what, void *arg)
{
	struct gw_server *srv = arg;
	struct timeval tv = {srv->cfg->drain_timeout_ms / 1000, (srv->cfg->drain_timeout_ms % 1000) * 1000};

	(void)what;
	if (srv->draining) {
		event_base_loopexit(srv->base, NULL);
		return;
	}
	gw_info("signal %d: no longer accepting; draining %ld connection(s)", (int)sig,
		srv->n_conns);
	srv->draining = true;
	/* Closed, not disabled: a disabled listener's socket still completes handshakes into its
	 * backlog, and those clients would wait for nothing until the process exits. */
	evconnlistener_free(srv->listener);
	srv->listener = NULL;
	evtimer_add(srv->drain_timer, &tv);
	gw_conn_close_idle(&srv->conns);
	maybe_finish_drain(srv);
}

/* The listen address as a sockaddr; "localhost" means 127.0.0.1. Port 0 is allowed (the
 * system chooses), which libevent's own parser refuses. */
static int listen_sockaddr(const struct gw_config *cfg, struct sockaddr_storage *ss, int *len)
{
	const char *host = strcmp(cfg->listen_host, "localhost") == 0 ? "127.0.0.1" : cfg->listen_host;
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(cfg->listen_port);
		*len = sizeof(*sin);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(cfg->listen_port);
		*len = sizeof(*sin6);
		return 0;
	}
	return -1;
}

static struct gw_member_state *state_for(struct gw_server *srv, const char *name)
{
	struct gw_member_state *st;

	for (size_t i = 0; i < srv->n_states; i++)
		if (strcmp(srv->states[i]->name, name) == 0)
			return srv->states[i];
	st = calloc(1, sizeof(*st));
	srv->states = realloc(srv->states, (srv->n_states + 1) * sizeof(*srv->states));
	if (!st || !srv->states || !(st->name = strdup(name)))
		abort();
	srv->states[srv->n_states++] = st;
	return st;
}

/* A member keeps their counters (rate buckets, requests in flight) across reloads. */
static void attach_states(struct gw_server *srv, struct gw_config *cfg)
{
	for (size_t i = 0; i < cfg->n_members; i++)
		cfg->members[i].state = state_for(srv, cfg->members[i].name);
}

/* What a reload cannot change without a restart: said, not silently ignored. */
static void warn_restart_needed(const struct gw_config *old, const struct gw_config *cfg)
{
	if (strcmp(old->listen, cfg->listen) != 0)
		gw_warn("reload: listen changed to %s; the gateway keeps %s until restarted",
			cfg->listen, old->listen);
	if ((old->tls_cert == NULL) != (cfg->tls_cert == NULL))
		gw_warn("reload: turning TLS on or off needs a restart");
	if (!old->audit != !cfg->audit ||
	    (old->audit && cfg->audit &&
	     ((!old->audit->file != !cfg->audit->file) ||
	      (old->audit->file && strcmp(old->audit->file, cfg->audit->file) != 0))))
		gw_warn("reload: audit sinks change with a restart; the running audit continues");
	if (!old->cache != !cfg->cache ||
	    (old->cache && cfg->cache && !old->cache->redis_url != !cfg->cache->redis_url) ||
	    (old->cache && cfg->cache && old->cache->redis_url && cfg->cache->redis_url &&
	     strcmp(old->cache->redis_url, cfg->cache->redis_url) != 0))
		gw_warn("reload: a new redis URL needs a restart; TTLs apply now");
}

/* New certificates for new connections (connections open keep their session). Returns -1
 * after logging when the new files cannot be used: the reload is refused. */
static int reload_tls(struct gw_server *srv, const struct gw_config *cfg)
{
	SSL_CTX *ctx;

	if (!srv->ssl_ctx || !cfg->tls_cert)
		return 0;
	if (!(ctx = tls_context_new(cfg)))
		return -1;
	SSL_CTX_free(srv->ssl_ctx);
	srv->ssl_ctx = ctx;
	return 0;
}

/* SIGHUP: a new config is loaded and validated whole, then swapped in for new requests;
 * requests in flight finish with the config they started with. A config with problems is
 * refused and the running one stays. */
static void on_reload_signal(evutil_socket_t sig, short what, void *arg)
{
	struct gw_server *srv = arg;
	struct gw_diag diag = {0};
	struct gw_config *cfg = gw_config_load(srv->config_path, &diag);

	(void)sig;
	(void)what;
	for (size_t i = 0; i < diag.n; i++)
		gw_log(cfg ? GW_LOG_WARN : GW_LOG_ERROR, "reload %s: %s", srv->config_path,
		       diag.lines[i]);
	if (!cfg || reload_tls(srv, cfg) < 0) {
		gw_error("reload: kept the running config: %d problem(s) in %s", diag.errors + !!cfg,
			 srv->config_path);
		gw_metrics_reload(srv->metrics, false);
		gw_diag_fini(&diag);
		gw_config_unref(cfg);
		return;
	}
	gw_diag_fini(&diag);
	warn_restart_needed(srv->cfg, cfg);
	if (gw_log_configure(cfg->log_format, cfg->log_file) < 0)
		gw_error("reload: cannot open log file %s; logging stays as it was", cfg->log_file);
	gw_metrics_reload(srv->metrics, true);
	attach_states(srv, cfg);
	upstream_configure(srv->upstream, cfg);
	gw_oauth_configure(srv->oauth, cfg);
	gw_log_set_level(gw_log_level_parse(cfg->log_level));
	gw_config_unref(srv->cfg);
	srv->cfg = cfg;
	gw_info("reload: config applied (%zu members)", cfg->n_members);
}

/* SIGUSR1: logrotate moved the audit file; continue the chain in a new one. */
static void on_reopen_signal(evutil_socket_t sig, short what, void *arg)
{
	struct gw_server *srv = arg;

	(void)sig;
	(void)what;
	gw_log_reopen();
	if (srv->audit) {
		audit_reopen(srv->audit);
		gw_info("audit: file reopened");
	}
}

static int bind_listener(struct gw_server *srv)
{
	struct sockaddr_storage ss;
	int sslen;
	char host[INET6_ADDRSTRLEN];
	int port;

	if (listen_sockaddr(srv->cfg, &ss, &sslen) < 0) {
		gw_error("listen: cannot use %s (use a numeric address or localhost)", srv->cfg->listen);
		return -1;
	}
	srv->listener = evconnlistener_new_bind(srv->base, on_accept, srv,
						LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 1024,
						(struct sockaddr *)&ss, sslen);
	if (!srv->listener) {
		gw_error("listen: cannot bind %s: %s", srv->cfg->listen, strerror(errno));
		return -1;
	}
	evconnlistener_set_error_cb(srv->listener, on_accept_error);
	/* Report the real port: with port 0 the system chose it. */
	sslen = sizeof(ss);
	getsockname(evconnlistener_get_fd(srv->listener), (struct sockaddr *)&ss, (socklen_t *)&sslen);
	if (ss.ss_family == AF_INET6) {
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, host, sizeof(host));
		port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
		gw_info("listening on %s://[%s]:%d%s", srv->ssl_ctx ? "https" : "http", host, port,
			srv->cfg->mcp_path);
	} else {
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, host, sizeof(host));
		port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		gw_info("listening on %s://%s:%d%s", srv->ssl_ctx ? "https" : "http", host, port,
			srv->cfg->mcp_path);
	}
	return 0;
}

struct gw_server *gw_server_new(struct gw_config *cfg, const char *config_path)
{
	struct gw_server *srv = calloc(1, sizeof(*srv));

	if (!srv)
		abort();
	srv->cfg = cfg;
	TAILQ_INIT(&srv->conns);
	srv->base = event_base_new();
	srv->config_path = strdup(config_path);
	srv->metrics = gw_metrics_new();
	srv->ended = calloc(SESSION_SLOTS, SESSION_ID_MAX);
	srv->clients = calloc(SESSION_SLOTS, sizeof(*srv->clients));
	if (!srv->base || !srv->config_path || !srv->ended || !srv->clients)
		abort();
	srv->ended_ring.keys = srv->ended[0];
	srv->ended_ring.stride = SESSION_ID_MAX;
	srv->clients_ring.keys = (char *)srv->clients + offsetof(struct gw_session_client, session);
	srv->clients_ring.stride = sizeof(*srv->clients);
	attach_states(srv, cfg);
	/* Handlers first: a supervisor may signal as soon as it reads "listening", and a SIGHUP
	 * without a handler would end the process. They run once the loop does. */
	srv->sigterm = evsignal_new(srv->base, SIGTERM, on_stop_signal, srv);
	srv->sigint = evsignal_new(srv->base, SIGINT, on_stop_signal, srv);
	srv->sighup = evsignal_new(srv->base, SIGHUP, on_reload_signal, srv);
	srv->sigusr1 = evsignal_new(srv->base, SIGUSR1, on_reopen_signal, srv);
	srv->drain_timer = evtimer_new(srv->base, on_drain_timeout, srv);
	if (!srv->sigterm || !srv->sigint || !srv->sighup || !srv->sigusr1 || !srv->drain_timer)
		abort();
	evsignal_add(srv->sigusr1, NULL);
	evsignal_add(srv->sigterm, NULL);
	evsignal_add(srv->sigint, NULL);
	evsignal_add(srv->sighup, NULL);
	if (cfg->tls_cert && !(srv->ssl_ctx = tls_context_new(cfg)))
		goto fail;
	if (bind_listener(srv) < 0)
		goto fail;
	srv->upstream = upstream_new(srv->base, cfg);
	if (cfg->cache)
		srv->cache = cache_new(srv->base, cfg->cache);
	if (cfg->audit)
		srv->audit = audit_new(srv->base, cfg->audit);
	/* The client, not "the client if connected": it is still connecting now. */
	srv->oauth = gw_oauth_new(srv->base, cache_redis_client(srv->cache));
	gw_oauth_configure(srv->oauth, cfg);
	if (cfg->admin_listen && !(srv->admin = gw_admin_new(srv, srv->base, cfg->admin_listen)))
		goto fail;
	if (srv->admin) {
		/* /readyz needs to know whether Omni answers even while nobody uses the gateway. */
		struct timeval every = {PROBE_EVERY_S, 0};

		srv->probe_timer = event_new(srv->base, -1, EV_PERSIST, on_probe_timer, srv);
		if (!srv->probe_timer)
			abort();
		event_add(srv->probe_timer, &every);
		upstream_probe(srv->upstream, PROBE_EVERY_S);
	}
	return srv;
fail:
	gw_server_free(srv);
	return NULL;
}

int gw_server_run(struct gw_server *srv)
{
	event_base_dispatch(srv->base);
	gw_info("stopped");
	return 0;
}

void gw_server_free(struct gw_server *srv)
{
	if (!srv)
		return;
	gw_conn_free_all(&srv->conns);
	gw_admin_free(srv->admin);
	if (srv->probe_timer)
		event_free(srv->probe_timer);
	if (srv->listener)
		evconnlistener_free(srv->listener);
	if (srv->sigterm)
		event_free(srv->sigterm);
	if (srv->sigint)
		event_free(srv->sigint);
	if (srv->sighup)
		event_free(srv->sighup);
	if (srv->sigusr1)
		event_free(srv->sigusr1);
	if (srv->drain_timer)
		event_free(srv->drain_timer);
	upstream_free(srv->upstream);
	gw_oauth_free(srv->oauth); /* before the cache: its store uses the cache's Redis */
	if (srv->cache)
		cache_free(srv->cache);
	audit_free(srv->audit); /* flushes what is queued, bounded */
	gw_metrics_free(srv->metrics);
	SSL_CTX_free(srv->ssl_ctx);
	event_base_free(srv->base);
	for (size_t i = 0; i < srv->n_states; i++) {
		free(srv->states[i]->name);
		free(srv->states[i]);
	}
	free(srv->states);
	free(srv->ended);
	free(srv->clients);
	free(srv->config_path);
	gw_config_unref(srv->cfg);
	free(srv);
}

struct gw_oauth *gw_server_oauth(struct gw_server *srv)
{
	return srv->oauth;
}

struct gw_config *gw_server_config(const struct gw_server *srv)
{
	return srv->cfg;
}

struct upstream *gw_server_upstream(struct gw_server *srv)
{
	return srv->upstream;
}

struct cache *gw_server_cache(struct gw_server *srv)
{
	return srv->cache;
}

struct audit *gw_server_audit(struct gw_server *srv)
{
	return srv->audit;
}

struct gw_metrics *gw_server_metrics(struct gw_server *srv)
{
	return srv->metrics;
}

bool gw_server_ready(struct gw_server *srv, struct evbuffer *why)
{
	bool ready = !srv->draining;

	if (srv->draining)
		evbuffer_add_printf(why, "draining: not taking new connections\n");
	if (!upstream_reachable(srv->upstream, READY_WINDOW_S)) {
		ready = false;
		evbuffer_add_printf(why, "upstream: Omni did not answer recently\n");
	}
	/* Redis down is not a reason to take the replica out: the cache steps aside and rate
	 * limits fall back to this replica's own counts, so every request is still served. */
	if (srv->cache && srv->cfg->cache && srv->cfg->cache->redis_url &&
	    !cache_available(srv->cache))
		evbuffer_add_printf(why, "redis: not connected (cache bypassed, rate limits per "
					 "replica); still serving\n");
	if (ready)
		evbuffer_add_printf(why, "ready\n");
	return ready;
}

static void gauge(struct evbuffer *out, const char *name, const char *help, const char *type,
		  double v)
{
	evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
	gw_metrics_line(out, name, NULL, NULL, v);
}

void gw_server_write_metrics(struct gw_server *srv, struct evbuffer *out)
{
	struct upstream_stats us;
	long streams = 0;

	gw_metrics_write(srv->metrics, out);
	for (size_t i = 0; i < srv->n_states; i++)
		streams += srv->states[i]->in_flight;
	gauge(out, "omni_gw_open_streams", "Requests and streams in flight.", "gauge", streams);
	gauge(out, "omni_gw_client_connections", "Client connections open.", "gauge", srv->n_conns);
	upstream_stats_get(srv->upstream, &us);
	evbuffer_add_printf(out, "# HELP omni_gw_upstream_connections_total Upstream transfers "
				 "by connection: new or reused.\n# TYPE "
				 "omni_gw_upstream_connections_total counter\n");
	gw_metrics_line(out, "omni_gw_upstream_connections_total", "connection", "new",
			(double)us.connections_new);
	gw_metrics_line(out, "omni_gw_upstream_connections_total", "connection", "reused",
			(double)us.connections_reused);
	if (srv->cache) {
		struct cache_stats cs;

		cache_stats_get(srv->cache, &cs);
		gauge(out, "omni_gw_cache_hits_total", "Cache lookups answered.", "counter", cs.hits);
		gauge(out, "omni_gw_cache_misses_total", "Cache lookups missed.", "counter", cs.misses);
		gauge(out, "omni_gw_cache_errors_total", "Cache operations that failed (Redis).",
		      "counter", cs.errors);
	}
	if (srv->audit) {
		struct audit_stats as;

		audit_stats_get(srv->audit, &as);
		gauge(out, "omni_gw_audit_queue_depth", "Audit records not yet written.", "gauge",
		      as.pending);
		gauge(out, "omni_gw_audit_written_total", "Audit records written.", "counter",
		      as.written);
		gauge(out, "omni_gw_audit_failed_total", "Audit records a sink failed.", "counter",
		      as.failed);
		gauge(out, "omni_gw_audit_dropped_total", "Audit records refused (queue full or sink "
		      "failing).", "counter", as.dropped);
	}
}

struct gw_conn_list *gw_server_conns(struct gw_server *srv)
{
	return &srv->conns;
}

bool gw_server_draining(const struct gw_server *srv)
{
	return srv->draining;
}

void gw_server_conn_closed(struct gw_server *srv)
{
	srv->n_conns--;
	maybe_finish_drain(srv);
}

static char *ring_key(const struct session_ring *ring, size_t slot)
{
	return ring->keys + slot * ring->stride;
}

static size_t ring_bucket(const char *id)
{
	unsigned h = 2166136261u;

	for (; *id; id++)
		h = (h ^ (unsigned char)*id) * 16777619u;
	return h & (SESSION_BUCKETS - 1);
}

/* The lowest slot holding id, or -1. The lowest, as when the ring was scanned from its start:
 * an id set twice is found where it was found before the index. */
static long ring_find(const struct session_ring *ring, const char *id)
{
	long found = -1;

	for (unsigned s = ring->heads[ring_bucket(id)]; s; s = ring->chain[s - 1])
		if ((found < 0 || (long)s - 1 < found) && strcmp(ring_key(ring, s - 1), id) == 0)
			found = (long)s - 1;
	return found;
}

/* Empties slot (its key becomes ""), taking it out of its chain. */
static void ring_forget(struct session_ring *ring, size_t slot)
{
	char *key = ring_key(ring, slot);
	unsigned short *link;

	if (!key[0])
		return;
	for (link = &ring->heads[ring_bucket(key)]; *link != slot + 1;
	     link = &ring->chain[*link - 1])
		;
	*link = ring->chain[slot];
	ring->chain[slot] = 0;
	key[0] = '\0';
}

/* Takes the next slot for id (shorter than SESSION_ID_MAX), forgetting the one it held, the
 * oldest. Returns the slot; its key is id. An empty id is never found, so it is not indexed:
 * only slots with a key are in a chain. */
static size_t ring_add(struct session_ring *ring, const char *id)
{
	size_t slot = ring->next;
	unsigned short *head = &ring->heads[ring_bucket(id)];

	ring_forget(ring, slot);
	strcpy(ring_key(ring, slot), id);
	if (id[0]) {
		ring->chain[slot] = *head;
		*head = (unsigned short)(slot + 1);
	}
	ring->next = (slot + 1) % SESSION_SLOTS;
	return slot;
}

void gw_server_session_ended(struct gw_server *srv, const char *session_id)
{
	if (strlen(session_id) >= SESSION_ID_MAX || gw_server_session_is_ended(srv, session_id))
		return;
	ring_add(&srv->ended_ring, session_id);
}

bool gw_server_session_is_ended(const struct gw_server *srv, const char *session_id)
{
	return ring_find(&srv->ended_ring, session_id) >= 0;
}

static void copy_bounded(char *dst, size_t size, const char *src)
{
	snprintf(dst, size, "%s", src ? src : "");
}

void gw_server_session_client_set(struct gw_server *srv, const char *session, const char *name,
				  const char *version)
{
	struct gw_session_client *c;

	if (!session || strlen(session) >= sizeof(c->session))
		return;
	c = &srv->clients[ring_add(&srv->clients_ring, session)];
	copy_bounded(c->name, sizeof(c->name), name);
	copy_bounded(c->version, sizeof(c->version), version);
}

const struct gw_session_client *gw_server_session_client(const struct gw_server *srv,
							 const char *session)
{
	long slot = session ? ring_find(&srv->clients_ring, session) : -1;

	return slot >= 0 ? &srv->clients[slot] : NULL;
}
