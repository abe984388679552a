/* The asynchronous Redis client of the cache (see redis.h).
 *
 * hiredis 0.14 has no time-outs of its own and calls back from inside its read handler, where
 * the context must not be freed. So: every command carries a libevent timer; a reply, a failure
 * or a time-out only records the result and activates that event, and the caller's callback
 * runs from the event, as the last thing done there, never inside hiredis. A command whose
 * time-out fired stays registered with hiredis until hiredis lets go of it (a late reply or the
 * context's end), then is freed. A time-out means the connection no longer answers: it is
 * closed and retried like any other outage. The context is only freed outside hiredis
 * callbacks; when hiredis ends it itself (connect failed, connection lost), we only drop our
 * pointer. */
#include "cache/redis.h"

#include <arpa/inet.h>
#include <event2/dns.h>
#include <event2/util.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "cache/redis_url.h"
#include "gateway/log.h"
#include "gateway/util.h"

#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS 5000
#define CONNECT_TIMEOUT_MIN_MS 1000 /* name lookup and TCP connect; a lost SYN costs 1 s */
#define SCAN_COUNT "500"
#define SYNC_TIMEOUT_MIN_MS 5000 /* the command line can afford to wait */

enum conn_state {
	CONN_DOWN,       /* waiting for the retry timer */
	CONN_CONNECTING, /* resolving, connecting, AUTH / SELECT / PING in flight */
	CONN_READY,      /* commands are sent */
};

enum cmd_kind { CMD_GET, CMD_SET, CMD_DEL, CMD_SCAN, CMD_COUNT };

/* What a command produced, handed to whoever wanted it; owned by that holder. */
struct cmd_result {
	enum cache_redis_status status;
	char *val;         /* GET: the value, NULL when absent */
	size_t len;
	long long integer; /* DEL: keys deleted */
	char *cursor;      /* SCAN: the next cursor ("0": done) */
	char **keys;       /* SCAN: the keys of this step */
	size_t *key_lens;
	size_t nkeys;
};

/* An internal continuation (the purge's steps): runs where a caller's callback would. */
typedef void (*cmd_step_fn)(void *ctx, struct cmd_result *res);

struct cache_redis_cmd {
	struct cache_redis *r;
	struct cache_redis_cmd *prev, *next; /* r->cmds: every live command */
	struct event *ev;                    /* the time-out, then the delivery */
	enum cmd_kind kind;
	cache_redis_fn fn; /* a caller's callback, or */
	cmd_step_fn step;  /* an internal one */
	void *arg;
	bool in_hiredis; /* hiredis holds it as privdata: only its callback may free it */
	bool finished;   /* the result is in res; delivery is scheduled */
	bool delivered;  /* delivered, timed out or cancelled: nobody waits for res any more */
	struct cmd_result res;
};

struct purge {
	struct cache_redis *r;
	struct purge *prev, *next; /* r->purges */
	char *pattern;             /* prefix with glob characters escaped, then '*' */
	char *cursor;
	long long deleted;
	struct cache_redis_cmd *cmd; /* the step in flight */
	cache_redis_purge_fn fn;
	void *arg;
};

struct cache_redis {
	struct event_base *base;
	struct cache_redis_url url;
	struct timeval timeout, connect_timeout;
	redisAsyncContext *ac; /* NULL unless connecting or ready */
	enum conn_state state;
	struct evdns_base *dns; /* created on first use, for host names */
	struct evdns_getaddrinfo_request *dns_req;
	struct event *retry_timer, *connect_timer, *fail_ev;
	char fail_why[256];  /* for fail_ev: why the connection is given up */
	redisAsyncContext *fail_ac; /* ... and which connection */
	long long ready_since_ms;
	int dns_inflight;    /* lookups that will still answer */
	bool resolving;      /* inside evdns_getaddrinfo */
	bool handshaking;    /* connected; AUTH / SELECT / PING in flight */
	long backoff_ms;     /* the next retry's delay */
	bool outage;         /* the warning was logged; the info line is due when back */
	bool error_logged;   /* an error reply was logged; quiet until a command succeeds */
	bool freeing;
	struct cache_redis_cmd *cmds;
	struct purge *purges;
};

static struct timeval ms_to_tv(long ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

	return tv;
}

/* ---- commands ---- */

static void result_fini(struct cmd_result *res)
{
	free(res->val);
	free(res->cursor);
	for (size_t i = 0; i < res->nkeys; i++)
		free(res->keys[i]);
	free(res->keys);
	free(res->key_lens);
	memset(res, 0, sizeof(*res));
}

static void cmd_destroy(struct cache_redis_cmd *cmd)
{
	struct cache_redis *r = cmd->r;

	if (cmd->prev)
		cmd->prev->next = cmd->next;
	else
		r->cmds = cmd->next;
	if (cmd->next)
		cmd->next->prev = cmd->prev;
	event_free(cmd->ev);
	result_fini(&cmd->res);
	free(cmd);
}

static void on_cmd_event(evutil_socket_t fd, short what, void *arg);

static struct cache_redis_cmd *cmd_new(struct cache_redis *r, enum cmd_kind kind,
				       cache_redis_fn fn, cmd_step_fn step, void *arg)
{
	struct cache_redis_cmd *cmd = calloc(1, sizeof(*cmd));

	if (!cmd)
		abort();
	cmd->r = r;
	cmd->kind = kind;
	cmd->fn = fn;
	cmd->step = step;
	cmd->arg = arg;
	cmd->ev = evtimer_new(r->base, on_cmd_event, cmd);
	if (!cmd->ev)
		abort();
	cmd->next = r->cmds;
	if (r->cmds)
		r->cmds->prev = cmd;
	r->cmds = cmd;
	return cmd;
}

/* Records the end of the command; the result is delivered from the loop. */
static void cmd_finish(struct cache_redis_cmd *cmd, enum cache_redis_status st)
{
	cmd->res.status = st;
	cmd->finished = true;
	event_del(cmd->ev);
	event_active(cmd->ev, EV_TIMEOUT, 1);
}

static void note_error_reply(struct cache_redis *r, const redisReply *reply)
{
	if (r->error_logged)
		return;
	r->error_logged = true;
	if (reply->type == REDIS_REPLY_ERROR)
		gw_warn("redis: command failed: %.*s", (int)reply->len, reply->str);
	else
		gw_warn("redis: command failed: a reply of unexpected type %d", reply->type);
}

static char *copy_bytes(const char *s, size_t n)
{
	char *d = malloc(n + 1);

	if (!d)
		abort();
	memcpy(d, s, n);
	d[n] = '\0';
	return d;
}

/* SCAN answers [cursor, [key, ...]]. */
static bool take_scan(struct cmd_result *res, const redisReply *reply)
{
	const redisReply *keys;

	if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
	    reply->element[0]->type != REDIS_REPLY_STRING ||
	    reply->element[1]->type != REDIS_REPLY_ARRAY)
		return false;
	keys = reply->element[1];
	res->cursor = copy_bytes(reply->element[0]->str, reply->element[0]->len);
	res->keys = calloc(keys->elements + 1, sizeof(*res->keys));
	res->key_lens = calloc(keys->elements + 1, sizeof(*res->key_lens));
	if (!res->keys || !res->key_lens)
		abort();
	for (size_t i = 0; i < keys->elements; i++) {
		if (keys->element[i]->type != REDIS_REPLY_STRING)
			continue;
		res->keys[res->nkeys] = copy_bytes(keys->element[i]->str, keys->element[i]->len);
		res->key_lens[res->nkeys++] = keys->element[i]->len;
	}
	return true;
}

/* Copies what the command needs out of the reply (hiredis frees it when we return). */
static enum cache_redis_status take_reply(struct cache_redis_cmd *cmd, const redisReply *reply)
{
	bool ok = false;

	switch (cmd->kind) {
	case CMD_GET:
		if ((ok = reply->type == REDIS_REPLY_STRING)) {
			cmd->res.val = copy_bytes(reply->str, reply->len);
			cmd->res.len = reply->len;
		}
		ok = ok || reply->type == REDIS_REPLY_NIL;
		break;
	case CMD_SET:
		ok = reply->type == REDIS_REPLY_STATUS;
		break;
	case CMD_DEL:
		if ((ok = reply->type == REDIS_REPLY_INTEGER))
			cmd->res.integer = reply->integer;
		break;
	case CMD_SCAN:
		ok = take_scan(&cmd->res, reply);
		break;
	case CMD_COUNT:
		if ((ok = reply->type == REDIS_REPLY_INTEGER)) {
			char num[32];
			int n = snprintf(num, sizeof(num), "%lld", reply->integer);

			cmd->res.val = copy_bytes(num, (size_t)n);
			cmd->res.len = (size_t)n;
		}
		break;
	}
	if (!ok) {
		note_error_reply(cmd->r, reply);
		return CACHE_REDIS_ERROR;
	}
	cmd->r->error_logged = false;
	return CACHE_REDIS_OK;
}

/* hiredis's reply callback for commands: a reply, or NULL when the context ends. Inside hiredis:
 * records and schedules only. */
static void on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct cache_redis_cmd *cmd = privdata;

	(void)ac;
	cmd->in_hiredis = false;
	if (cmd->r->freeing)
		return; /* cache_redis_free frees every command once hiredis is done */
	if (cmd->delivered) {
		cmd_destroy(cmd); /* timed out or cancelled earlier: the late reply is dropped */
		return;
	}
	cmd_finish(cmd, reply ? take_reply(cmd, reply) : CACHE_REDIS_DOWN);
}

static void conn_lost(struct cache_redis *r, const char *why);

/* The command's event: its result is in, or its time-out fired. The callback is called last,
 * after the command is released, so it may do anything, free the client included. */
static void on_cmd_event(evutil_socket_t fd, short what, void *arg)
{
	struct cache_redis_cmd *cmd = arg;
	struct cache_redis *r = cmd->r;
	bool timed_out = !cmd->finished;
	struct cmd_result res = cmd->res;
	cache_redis_fn fn = cmd->fn;
	cmd_step_fn step = cmd->step;
	void *cb_arg = cmd->arg;
	char why[64];

	(void)fd;
	(void)what;
	memset(&cmd->res, 0, sizeof(cmd->res));
	cmd->delivered = true;
	if (timed_out)
		res.status = CACHE_REDIS_DOWN;
	if (!cmd->in_hiredis)
		cmd_destroy(cmd);
	if (timed_out) {
		snprintf(why, sizeof(why), "no reply within %ld ms",
			 (long)(r->timeout.tv_sec * 1000 + r->timeout.tv_usec / 1000));
		conn_lost(r, why);
	}
	if (step)
		step(cb_arg, &res);
	else if (fn)
		fn(cb_arg, res.status, res.val, res.len);
	result_fini(&res);
}

/* Sends argv, or fails the command at once when there is no ready connection. */
static void cmd_send(struct cache_redis_cmd *cmd, int argc, const char **argv,
		     const size_t *argvlen)
{
	struct cache_redis *r = cmd->r;

	if (r->state != CONN_READY ||
	    redisAsyncCommandArgv(r->ac, on_reply, cmd, argc, argv, argvlen) != REDIS_OK) {
		cmd_finish(cmd, CACHE_REDIS_DOWN);
		return;
	}
	cmd->in_hiredis = true;
	evtimer_add(cmd->ev, &r->timeout);
}

struct cache_redis_cmd *cache_redis_get(struct cache_redis *r, const char *key,
					cache_redis_fn fn, void *arg)
{
	struct cache_redis_cmd *cmd = cmd_new(r, CMD_GET, fn, NULL, arg);
	const char *argv[] = {"GET", key};
	size_t lens[] = {3, strlen(key)};

	cmd_send(cmd, 2, argv, lens);
	return cmd;
}

/* GETDEL answers like GET (a string or nil), so it is a GET to take_reply. */
struct cache_redis_cmd *cache_redis_take(struct cache_redis *r, const char *key, cache_redis_fn fn,
					 void *arg)
{
	struct cache_redis_cmd *cmd = cmd_new(r, CMD_GET, fn, NULL, arg);
	const char *argv[] = {"GETDEL", key};
	size_t lens[] = {6, strlen(key)};

	cmd_send(cmd, 2, argv, lens);
	return cmd;
}

void cache_redis_cancel(struct cache_redis_cmd *cmd)
{
	if (!cmd)
		return;
	cmd->delivered = true;
	event_del(cmd->ev);
	if (!cmd->in_hiredis)
		cmd_destroy(cmd);
	else
		result_fini(&cmd->res);
}

void cache_redis_set(struct cache_redis *r, const char *key, const void *val, size_t len,
		     long ttl_s, cache_redis_fn fn, void *arg)
{
	struct cache_redis_cmd *cmd = cmd_new(r, CMD_SET, fn, NULL, arg);
	char ttl[24];
	const char *argv[] = {"SET", key, val ? val : "", "EX", ttl};
	size_t lens[5];

	snprintf(ttl, sizeof(ttl), "%ld", ttl_s > 0 ? ttl_s : 1);
	lens[0] = 3;
	lens[1] = strlen(key);
	lens[2] = len;
	lens[3] = 2;
	lens[4] = strlen(ttl);
	cmd_send(cmd, 5, argv, lens);
}

void cache_redis_del(struct cache_redis *r, const char *key, cache_redis_fn fn, void *arg)
{
	struct cache_redis_cmd *cmd = cmd_new(r, CMD_DEL, fn, NULL, arg);
	const char *argv[] = {"DEL", key};
	size_t lens[] = {3, strlen(key)};

	cmd_send(cmd, 2, argv, lens);
}

/* INCR, and EXPIRE on the first count, in one step on the server: a window's counter never
 * outlives its window, even if the gateway goes away between the two. */
static const char count_script[] =
    "local n = redis.call('INCR', KEYS[1]) "
    "if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end "
    "return n";

struct cache_redis_cmd *cache_redis_count(struct cache_redis *r, const char *key, long window_s,
					  cache_redis_fn fn, void *arg)
{
	struct cache_redis_cmd *cmd = cmd_new(r, CMD_COUNT, fn, NULL, arg);
	char ttl[32];
	const char *argv[] = {"EVAL", count_script, "1", key, ttl};
	size_t lens[5];

	snprintf(ttl, sizeof(ttl), "%ld", window_s);
	for (int i = 0; i < 5; i++)
		lens[i] = strlen(argv[i]);
	cmd_send(cmd, 5, argv, lens);
	return cmd;
}

/* ---- prefix purge ---- */

/* prefix with SCAN's glob characters escaped, then "*". */
static char *match_pattern(const char *prefix)
{
	size_t n = strlen(prefix);
	char *p = malloc(2 * n + 2), *o = p;

	if (!p)
		abort();
	for (; *prefix; prefix++) {
		if (strchr("*?[]\\", *prefix))
			*o++ = '\\';
		*o++ = *prefix;
	}
	*o++ = '*';
	*o = '\0';
	return p;
}

/* Ends the purge: released first, then the callback, last. */
static void purge_finish(struct purge *p, enum cache_redis_status st)
{
	struct cache_redis *r = p->r;
	cache_redis_purge_fn fn = p->fn;
	void *arg = p->arg;
	long long deleted = p->deleted;

	if (p->prev)
		p->prev->next = p->next;
	else
		r->purges = p->next;
	if (p->next)
		p->next->prev = p->prev;
	free(p->pattern);
	free(p->cursor);
	free(p);
	if (st != CACHE_REDIS_OK)
		gw_debug("redis: purge ended early after %lld keys", deleted);
	if (fn)
		fn(arg, st, deleted);
}

static void purge_on_scan(void *ctx, struct cmd_result *res);

static void purge_scan(struct purge *p)
{
	const char *argv[] = {"SCAN", p->cursor, "MATCH", p->pattern, "COUNT", SCAN_COUNT};
	size_t lens[6];

	for (int i = 0; i < 6; i++)
		lens[i] = strlen(argv[i]);
	p->cmd = cmd_new(p->r, CMD_SCAN, NULL, purge_on_scan, p);
	cmd_send(p->cmd, 6, argv, lens);
}

static void purge_next(struct purge *p)
{
	if (strcmp(p->cursor, "0") == 0)
		purge_finish(p, CACHE_REDIS_OK);
	else
		purge_scan(p);
}

static void purge_on_del(void *ctx, struct cmd_result *res)
{
	struct purge *p = ctx;

	p->cmd = NULL;
	if (res->status != CACHE_REDIS_OK) {
		purge_finish(p, res->status);
		return;
	}
	p->deleted += res->integer;
	purge_next(p);
}

static void purge_on_scan(void *ctx, struct cmd_result *res)
{
	struct purge *p = ctx;
	const char **argv;
	size_t *lens;

	p->cmd = NULL;
	if (res->status != CACHE_REDIS_OK) {
		purge_finish(p, res->status);
		return;
	}
	free(p->cursor);
	p->cursor = gw_xstrdup(res->cursor);
	if (!res->nkeys) {
		purge_next(p);
		return;
	}
	argv = calloc(res->nkeys + 1, sizeof(*argv));
	lens = calloc(res->nkeys + 1, sizeof(*lens));
	if (!argv || !lens)
		abort();
	argv[0] = "DEL";
	lens[0] = 3;
	for (size_t i = 0; i < res->nkeys; i++) {
		argv[i + 1] = res->keys[i];
		lens[i + 1] = res->key_lens[i];
	}
	p->cmd = cmd_new(p->r, CMD_DEL, NULL, purge_on_del, p);
	cmd_send(p->cmd, (int)res->nkeys + 1, argv, lens);
	free(argv);
	free(lens);
}

void cache_redis_purge(struct cache_redis *r, const char *prefix, cache_redis_purge_fn fn,
		       void *arg)
{
	struct purge *p = calloc(1, sizeof(*p));

	if (!p)
		abort();
	p->r = r;
	p->pattern = match_pattern(prefix);
	p->cursor = gw_xstrdup("0");
	p->fn = fn;
	p->arg = arg;
	p->next = r->purges;
	if (r->purges)
		r->purges->prev = p;
	r->purges = p;
	purge_scan(p);
}

/* ---- connection ---- */

static long long now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* The first failure of an outage is logged; the rest of it is quiet. */
static void outage_begin(struct cache_redis *r, const char *why)
{
	if (r->outage) {
		gw_debug("redis: still unreachable at %s (%s)", r->url.where, why);
		return;
	}
	r->outage = true;
	gw_warn("redis: unreachable (%s at %s); cache bypassed until it returns", why, r->url.where);
}

static void schedule_retry(struct cache_redis *r, long delay_ms)
{
	struct timeval tv = ms_to_tv(delay_ms);

	evtimer_add(r->retry_timer, &tv);
}

/* Forgets the context (hiredis ends it, or the caller is about to) and plans the next attempt.
 * A connection that was ready for a while and drops is retried at once, quietly: Redis may
 * have closed an idle connection or restarted; the outage starts when an attempt fails. */
static void conn_gone(struct cache_redis *r, const char *why)
{
	bool quiet = r->state == CONN_READY && now_ms() - r->ready_since_ms >= 1000;

	r->ac = NULL;
	r->state = CONN_DOWN;
	evtimer_del(r->connect_timer);
	if (quiet) {
		gw_debug("redis: connection to %s lost (%s); reconnecting", r->url.where, why);
		schedule_retry(r, 0);
		return;
	}
	outage_begin(r, why);
	schedule_retry(r, r->backoff_ms);
	r->backoff_ms = r->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : r->backoff_ms * 2;
}

/* We give up on the connection (a time-out, a refused handshake): an outage. Never called from
 * inside a hiredis callback: freeing the context runs the pending commands' callbacks (they
 * record a failure, see on_reply) and ends the context. */
static void conn_lost(struct cache_redis *r, const char *why)
{
	redisAsyncContext *ac = r->ac;

	if (r->state == CONN_DOWN)
		return;
	if (r->dns_req) {
		evdns_getaddrinfo_cancel(r->dns_req); /* answers EVUTIL_EAI_CANCEL later */
		r->dns_req = NULL;
	}
	r->state = CONN_CONNECTING; /* a loss we decide on is never the quiet kind */
	conn_gone(r, why);
	if (ac)
		redisAsyncFree(ac);
}

static void on_fail_event(evutil_socket_t fd, short what, void *arg)
{
	struct cache_redis *r = arg;

	(void)fd;
	(void)what;
	if (r->ac && r->ac == r->fail_ac)
		conn_lost(r, r->fail_why);
}

/* Resolving and connecting may take connect_timeout; once connected, AUTH, SELECT and PING
 * must answer within timeout_ms like any command, so a Redis too slow for the requests is
 * not taken back only to be given up again at the next command. */
static void on_connect_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct cache_redis *r = arg;
	const struct timeval *tv = r->handshaking ? &r->timeout : &r->connect_timeout;
	char why[80];

	(void)fd;
	(void)what;
	snprintf(why, sizeof(why), "no %s within %ld ms",
		 r->handshaking ? "answer to PING" : "connection",
		 (long)tv->tv_sec * 1000 + tv->tv_usec / 1000);
	conn_lost(r, why);
}

static void conn_ready(struct cache_redis *r)
{
	r->state = CONN_READY;
	r->ready_since_ms = now_ms();
	r->backoff_ms = BACKOFF_FIRST_MS;
	evtimer_del(r->connect_timer);
	if (r->outage)
		gw_info("redis: reachable again at %s; cache resumed", r->url.where);
	else
		gw_info("redis: connected to %s", r->url.where);
	r->outage = false;
}

/* Replies to AUTH, SELECT and PING (privdata names the command). An error reply gives up the
 * connection, from an event: the context must not be freed inside its own callback. */
static void on_handshake(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct cache_redis *r = ac->data;
	const redisReply *rep = reply;
	const char *what = privdata;

	if (r->freeing || ac != r->ac || !rep || r->fail_ac == ac)
		return; /* the first refusal is the one to report */
	if (rep->type == REDIS_REPLY_ERROR) {
		snprintf(r->fail_why, sizeof(r->fail_why), "%s: %.*s", what, (int)rep->len, rep->str);
		r->fail_ac = ac;
		event_active(r->fail_ev, EV_TIMEOUT, 1);
		return;
	}
	if (strcmp(what, "PING") == 0)
		conn_ready(r);
}

/* hiredis frees the context after a failed connect returns from here. */
static void on_connect(const redisAsyncContext *ac, int status)
{
	struct cache_redis *r = ac->data;

	if (r->freeing || ac != r->ac)
		return;
	if (status == REDIS_OK) {
		r->handshaking = true;
		evtimer_add(r->connect_timer, &r->timeout);
		return;
	}
	conn_gone(r, ac->c.errstr[0] ? ac->c.errstr : "connect failed");
}

/* The context is ending (connection lost, or freed by us: then it is no longer r->ac). */
static void on_disconnect(const redisAsyncContext *ac, int status)
{
	struct cache_redis *r = ac->data;

	(void)status;
	if (r->freeing || ac != r->ac)
		return;
	conn_gone(r, ac->c.errstr[0] ? ac->c.errstr : "connection closed");
}

/* AUTH, SELECT and PING are queued behind the connect; PING's answer makes us ready. */
static void send_handshake(struct cache_redis *r)
{
	const struct cache_redis_url *u = &r->url;
	char db[16];

	if (u->password) {
		const char *argv[] = {"AUTH", u->user ? u->user : u->password, u->password};

		redisAsyncCommandArgv(r->ac, on_handshake, "AUTH", u->user ? 3 : 2, argv, NULL);
	}
	if (u->db) {
		const char *argv[] = {"SELECT", db};

		snprintf(db, sizeof(db), "%d", u->db);
		redisAsyncCommandArgv(r->ac, on_handshake, "SELECT", 2, argv, NULL);
	}
	redisAsyncCommand(r->ac, on_handshake, "PING", "PING");
}

/* Starts the TCP (to a numeric address) or unix socket connection. */
static void connect_to(struct cache_redis *r, const char *ip)
{
	redisAsyncContext *ac = ip ? redisAsyncConnect(ip, r->url.port)
				   : redisAsyncConnectUnix(r->url.socket_path);
	char why[160];

	if (!ac)
		abort();
	if (ac->err) {
		snprintf(why, sizeof(why), "%s", ac->errstr);
		redisAsyncFree(ac);
		conn_gone(r, why);
		return;
	}
	ac->data = r;
	if (redisLibeventAttach(ac, r->base) != REDIS_OK)
		abort();
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	r->fail_ac = NULL; /* a new context may sit where a failed one was */
	r->ac = ac;
	send_handshake(r);
}

static void on_finalize(evutil_socket_t fd, short what, void *arg);

/* The address of a lookup that made it, IPv4 preferred (Redis often listens there only). */
static const struct evutil_addrinfo *pick_address(const struct evutil_addrinfo *res)
{
	const struct evutil_addrinfo *pick = NULL;

	for (const struct evutil_addrinfo *a = res; a; a = a->ai_next)
		if ((a->ai_family == AF_INET || a->ai_family == AF_INET6) &&
		    (!pick || (a->ai_family == AF_INET && pick->ai_family != AF_INET)))
			pick = a;
	return pick;
}

/* evdns's answer: from the loop, or from inside evdns_getaddrinfo (then r->resolving is set).
 * A cancelled lookup still answers (EVUTIL_EAI_CANCEL), later: a freed client waits for it. */
static void on_resolved(int result, struct evutil_addrinfo *res, void *arg)
{
	struct cache_redis *r = arg;
	const struct evutil_addrinfo *a;
	char ip[INET6_ADDRSTRLEN] = "", why[160];

	if (!r->resolving)
		r->dns_inflight--;
	if (result == 0) {
		a = pick_address(res);
		if (a && a->ai_family == AF_INET)
			evutil_inet_ntop(AF_INET, &((const struct sockaddr_in *)a->ai_addr)->sin_addr, ip,
					 sizeof(ip));
		else if (a)
			evutil_inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)a->ai_addr)->sin6_addr,
					 ip, sizeof(ip));
		evutil_freeaddrinfo(res);
	}
	if (r->freeing) {
		if (r->dns_inflight == 0)
			event_base_once(r->base, -1, EV_TIMEOUT, on_finalize, r, NULL);
		return;
	}
	if (result == EVUTIL_EAI_CANCEL)
		return; /* an attempt given up already (conn_lost) */
	r->dns_req = NULL;
	if (result != 0 || !*ip) {
		snprintf(why, sizeof(why), "cannot resolve %s: %s", r->url.host,
			 result ? evutil_gai_strerror(result) : "no address");
		conn_gone(r, why);
		return;
	}
	connect_to(r, ip);
}

static bool is_numeric_host(const char *host)
{
	unsigned char buf[16];

	return evutil_inet_pton(AF_INET, host, buf) == 1 || evutil_inet_pton(AF_INET6, host, buf) == 1;
}

/* getaddrinfo would block the loop; evdns reads /etc/resolv.conf and /etc/hosts once. */
static void resolve(struct cache_redis *r)
{
	struct evutil_addrinfo hints = {0};
	struct evdns_getaddrinfo_request *req;

	if (!r->dns)
		r->dns = evdns_base_new(r->base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
						     EVDNS_BASE_DISABLE_WHEN_INACTIVE);
	if (!r->dns)
		abort();
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	r->resolving = true;
	req = evdns_getaddrinfo(r->dns, r->url.host, NULL, &hints, on_resolved, r);
	r->resolving = false;
	if (req) { /* NULL: answered already, from /etc/hosts or an immediate failure */
		r->dns_req = req;
		r->dns_inflight++;
	}
}

static void start_connect(struct cache_redis *r)
{
	r->state = CONN_CONNECTING;
	r->handshaking = false;
	evtimer_add(r->connect_timer, &r->connect_timeout);
	if (r->url.socket_path)
		connect_to(r, NULL);
	else if (is_numeric_host(r->url.host))
		connect_to(r, r->url.host);
	else
		resolve(r);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	start_connect(arg);
}

struct cache_redis *cache_redis_new(struct event_base *base, const char *url, long timeout_ms,
				    char **err)
{
	struct cache_redis *r = calloc(1, sizeof(*r));

	if (!r)
		abort();
	if (cache_redis_url_parse(url, &r->url, err) != 0) {
		free(r);
		return NULL;
	}
	r->base = base;
	r->timeout = ms_to_tv(timeout_ms > 0 ? timeout_ms : 1);
	r->connect_timeout =
		ms_to_tv(timeout_ms > CONNECT_TIMEOUT_MIN_MS ? timeout_ms : CONNECT_TIMEOUT_MIN_MS);
	r->backoff_ms = BACKOFF_FIRST_MS;
	r->retry_timer = evtimer_new(base, on_retry, r);
	r->connect_timer = evtimer_new(base, on_connect_timeout, r);
	r->fail_ev = evtimer_new(base, on_fail_event, r);
	if (!r->retry_timer || !r->connect_timer || !r->fail_ev)
		abort();
	start_connect(r);
	return r;
}

/* The last of a freed client: once no lookup can answer any more. */
static void finalize(struct cache_redis *r)
{
	if (r->dns)
		evdns_base_free(r->dns, 0);
	free(r);
}

static void on_finalize(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	finalize(arg);
}

void cache_redis_free(struct cache_redis *r)
{
	redisAsyncContext *ac;

	if (!r)
		return;
	r->freeing = true;
	if (r->dns_req)
		evdns_getaddrinfo_cancel(r->dns_req);
	ac = r->ac;
	r->ac = NULL;
	if (ac)
		redisAsyncFree(ac); /* pending commands let go of hiredis (see on_reply) */
	while (r->cmds)
		cmd_destroy(r->cmds);
	while (r->purges) {
		struct purge *p = r->purges;

		r->purges = p->next;
		free(p->pattern);
		free(p->cursor);
		free(p);
	}
	event_free(r->retry_timer);
	event_free(r->connect_timer);
	event_free(r->fail_ev);
	cache_redis_url_fini(&r->url);
	/* evdns answers a cancelled lookup later and needs its base until then; r is the lookup's
	 * argument, so both wait for the last answer (on_resolved). */
	if (r->dns_inflight == 0)
		finalize(r);
}

bool cache_redis_ready(const struct cache_redis *r)
{
	return r->state == CONN_READY;
}

/* ---- blocking purge for the command line ---- */

static redisReply *sync_cmd(redisContext *c, char **err, int argc, const char **argv,
			    const size_t *lens)
{
	redisReply *rep = redisCommandArgv(c, argc, argv, lens);

	if (!rep) {
		*err = gw_xasprintf("%s: %s", argv[0], c->errstr[0] ? c->errstr : "no reply");
		return NULL;
	}
	if (rep->type == REDIS_REPLY_ERROR) {
		*err = gw_xasprintf("%s: %s", argv[0], rep->str);
		freeReplyObject(rep);
		return NULL;
	}
	return rep;
}

static redisContext *sync_connect(const struct cache_redis_url *u, long timeout_ms, char **err)
{
	struct timeval tv = ms_to_tv(timeout_ms > SYNC_TIMEOUT_MIN_MS ? timeout_ms : SYNC_TIMEOUT_MIN_MS);
	redisContext *c = u->socket_path ? redisConnectUnixWithTimeout(u->socket_path, tv)
					 : redisConnectWithTimeout(u->host, u->port, tv);
	redisReply *rep = NULL;
	char db[16];

	if (!c)
		abort();
	if (c->err) {
		*err = gw_xasprintf("cannot connect to redis at %s: %s", u->where, c->errstr);
		goto fail;
	}
	redisSetTimeout(c, tv);
	if (u->password) {
		const char *argv[] = {"AUTH", u->user ? u->user : u->password, u->password};

		if (!(rep = sync_cmd(c, err, u->user ? 3 : 2, argv, NULL)))
			goto fail;
		freeReplyObject(rep);
	}
	if (u->db) {
		const char *argv[] = {"SELECT", db};

		snprintf(db, sizeof(db), "%d", u->db);
		if (!(rep = sync_cmd(c, err, 2, argv, NULL)))
			goto fail;
		freeReplyObject(rep);
	}
	return c;
fail:
	redisFree(c);
	return NULL;
}

/* One SCAN step and the DEL of what it found; returns the next cursor, or NULL with *err. */
static char *sync_step(redisContext *c, const char *cursor, const char *pattern, long *deleted,
		       char **err)
{
	const char *argv[] = {"SCAN", cursor, "MATCH", pattern, "COUNT", SCAN_COUNT};
	redisReply *rep = sync_cmd(c, err, 6, argv, NULL), *del = NULL;
	struct cmd_result res = {0};
	char *next = NULL;

	if (!rep)
		goto fail;
	if (!take_scan(&res, rep)) {
		*err = gw_xstrdup("SCAN: unexpected reply");
		goto fail;
	}
	if (res.nkeys) {
		const char **dargv = calloc(res.nkeys + 1, sizeof(*dargv));
		size_t *dlens = calloc(res.nkeys + 1, sizeof(*dlens));

		if (!dargv || !dlens)
			abort();
		dargv[0] = "DEL";
		dlens[0] = 3;
		for (size_t i = 0; i < res.nkeys; i++) {
			dargv[i + 1] = res.keys[i];
			dlens[i + 1] = res.key_lens[i];
		}
		del = sync_cmd(c, err, (int)res.nkeys + 1, dargv, dlens);
		free(dargv);
		free(dlens);
		if (!del)
			goto fail;
		if (del->type == REDIS_REPLY_INTEGER)
			*deleted += (long)del->integer;
	}
	next = gw_xstrdup(res.cursor);
fail:
	if (rep)
		freeReplyObject(rep);
	if (del)
		freeReplyObject(del);
	result_fini(&res);
	return next;
}

int cache_redis_purge_sync(const char *url, long timeout_ms, const char *prefix, long *deleted,
			   char **err)
{
	struct cache_redis_url u;
	redisContext *c = NULL;
	char *pattern = NULL, *cursor = NULL;
	int rc = -1;

	*deleted = 0;
	if (cache_redis_url_parse(url, &u, err) != 0)
		return -1;
	if (!(c = sync_connect(&u, timeout_ms, err)))
		goto fail;
	pattern = match_pattern(prefix);
	cursor = gw_xstrdup("0");
	do {
		char *next = sync_step(c, cursor, pattern, deleted, err);

		free(cursor);
		if (!(cursor = next))
			goto fail;
	} while (strcmp(cursor, "0") != 0);
	rc = 0;
fail:
	if (c)
		redisFree(c);
	free(pattern);
	free(cursor);
	cache_redis_url_fini(&u);
	return rc;
}
