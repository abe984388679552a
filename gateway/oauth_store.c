/* The OAuth server's key/value state (see oauth_store.h): cache_redis commands under
 * OAUTH_STORE_PREFIX, or a cache_lru. Every operation with a callback is listed so that freeing
 * the store silences it; in memory the work is done at once and only the answer waits for the
 * loop, which also keeps the order of operations the order of calls, as on one Redis
 * connection. */
#include "gateway/oauth_store.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "cache/lru.h"
#include "cache/redis.h"
#include "gateway/util.h"

/* The in-memory byte bound per entry allowed: values are small JSON documents; this keeps a
 * runaway value from growing the process without limiting the entry count in practice. */
#define MEM_BYTES_PER_ENTRY 16384

struct oauth_store {
	struct event_base *base;
	struct cache_redis *redis;  /* NULL: in memory */
	struct cache_lru *lru;	    /* in memory only */
	struct oauth_store_op *ops; /* every operation whose callback is due */
};

struct oauth_store_op {
	struct oauth_store *s;
	struct oauth_store_op *prev, *next;
	oauth_store_fn fn;
	void *arg;
	struct cache_redis_cmd *cmd; /* Redis: the command in flight */
	struct event *deliver;	     /* memory: the answer's event */
	enum oauth_store_status st;  /* memory: the answer */
	char *val;		     /* memory: the answer; Redis put: what was written */
	size_t len;
	bool verify; /* Redis put: the answer is a GET that must find val */
};

static long long now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static char *copy_bytes(const void *val, size_t len)
{
	char *d = malloc(len + 1);

	if (!d)
		abort();
	if (len)
		memcpy(d, val, len);
	d[len] = '\0';
	return d;
}

static char *redis_key(const char *key)
{
	return gw_xasprintf("%s%s", OAUTH_STORE_PREFIX, key);
}

/* ---- operations ---- */

static struct oauth_store_op *op_new(struct oauth_store *s, oauth_store_fn fn, void *arg)
{
	struct oauth_store_op *op = gw_xcalloc(1, sizeof(*op));

	op->s = s;
	op->fn = fn;
	op->arg = arg;
	op->next = s->ops;
	if (s->ops)
		s->ops->prev = op;
	s->ops = op;
	return op;
}

/* Unlists and frees op; a command or answer still pending is dropped. */
static void op_free(struct oauth_store_op *op)
{
	struct oauth_store *s = op->s;

	if (op->prev)
		op->prev->next = op->next;
	else
		s->ops = op->next;
	if (op->next)
		op->next->prev = op->prev;
	cache_redis_cancel(op->cmd);
	if (op->deliver)
		event_free(op->deliver);
	free(op->val);
	free(op);
}

/* Memory: the answer, from the loop. op is gone before the callback, which may free s. */
static void on_mem_deliver(evutil_socket_t fd, short what, void *arg)
{
	struct oauth_store_op *op = arg;
	oauth_store_fn fn = op->fn;
	void *cb_arg = op->arg;
	enum oauth_store_status st = op->st;
	char *val = op->val;
	size_t len = op->len;

	(void)fd;
	(void)what;
	op->val = NULL;
	op_free(op);
	fn(cb_arg, st, val, len);
	free(val);
}

/* Memory: schedules the answer (val copied; NULL: absent). */
static struct oauth_store_op *mem_answer(struct oauth_store *s, enum oauth_store_status st,
					 const void *val, size_t len, oauth_store_fn fn, void *arg)
{
	struct oauth_store_op *op = op_new(s, fn, arg);

	op->st = st;
	op->val = val ? copy_bytes(val, len) : NULL;
	op->len = val ? len : 0;
	op->deliver = evtimer_new(s->base, on_mem_deliver, op);
	if (!op->deliver)
		abort();
	event_active(op->deliver, EV_TIMEOUT, 1);
	return op;
}

/* Redis: a command's answer (from cache_redis's own event, never inside the call). */
static void on_redis_reply(void *arg, enum cache_redis_status cst, const char *val, size_t len)
{
	struct oauth_store_op *op = arg;
	oauth_store_fn fn = op->fn;
	void *cb_arg = op->arg;
	enum oauth_store_status st = cst == CACHE_REDIS_OK ? OAUTH_STORE_OK : OAUTH_STORE_DOWN;

	if (op->verify) {
		/* SET does not hand back a handle: the GET behind it on the same connection
		 * says whether the value is there. */
		if (!val || len != op->len || memcmp(val, op->val, len) != 0)
			st = OAUTH_STORE_DOWN;
		val = NULL;
		len = 0;
	}
	op->cmd = NULL; /* cache_redis let go of it */
	op_free(op);
	fn(cb_arg, st, st == OAUTH_STORE_OK ? val : NULL, st == OAUTH_STORE_OK ? len : 0);
}

/* ---- the store ---- */

struct oauth_store *oauth_store_new(struct event_base *base, struct cache_redis *redis,
				    size_t max_entries)
{
	struct oauth_store *s = gw_xcalloc(1, sizeof(*s));
	size_t n = max_entries ? max_entries : 1;

	s->base = base;
	s->redis = redis;
	if (!redis)
		s->lru = cache_lru_new(
			n, n > SIZE_MAX / MEM_BYTES_PER_ENTRY ? SIZE_MAX : n * MEM_BYTES_PER_ENTRY);
	return s;
}

void oauth_store_free(struct oauth_store *s)
{
	if (!s)
		return;
	while (s->ops)
		op_free(s->ops);
	cache_lru_free(s->lru);
	free(s);
}

struct oauth_store_op *oauth_store_put(struct oauth_store *s, const char *key, const void *val,
				       size_t len, long ttl_s, oauth_store_fn fn, void *arg)
{
	struct oauth_store_op *op = NULL;
	char *k;
	bool stored;

	if (ttl_s < 1)
		ttl_s = 1;
	if (!s->redis) {
		stored = cache_lru_set(s->lru, key, val, len, ttl_s * 1000, now_ms());
		if (fn)
			op = mem_answer(s, stored ? OAUTH_STORE_OK : OAUTH_STORE_DOWN, NULL, 0, fn,
					arg);
		return op;
	}
	k = redis_key(key);
	cache_redis_set(s->redis, k, val, len, ttl_s, NULL, NULL);
	if (fn) {
		op = op_new(s, fn, arg);
		op->verify = true;
		op->val = copy_bytes(val, len);
		op->len = len;
		op->cmd = cache_redis_get(s->redis, k, on_redis_reply, op);
	}
	free(k);
	return op;
}

/* get and take: in memory at once, answered later; in Redis, GET or GETDEL. */
static struct oauth_store_op *lookup(struct oauth_store *s, const char *key, bool take,
				     oauth_store_fn fn, void *arg)
{
	struct oauth_store_op *op;
	const void *val;
	size_t len = 0;
	char *k;

	if (!s->redis) {
		val = cache_lru_get(s->lru, key, &len, now_ms());
		op = mem_answer(s, OAUTH_STORE_OK, val, len, fn, arg);
		if (val && take)
			cache_lru_delete(s->lru, key); /* after the copy: val belonged to the LRU */
		return op;
	}
	k = redis_key(key);
	op = op_new(s, fn, arg);
	op->cmd = take ? cache_redis_take(s->redis, k, on_redis_reply, op)
		       : cache_redis_get(s->redis, k, on_redis_reply, op);
	free(k);
	return op;
}

struct oauth_store_op *oauth_store_get(struct oauth_store *s, const char *key, oauth_store_fn fn,
				       void *arg)
{
	return lookup(s, key, false, fn, arg);
}

struct oauth_store_op *oauth_store_take(struct oauth_store *s, const char *key, oauth_store_fn fn,
					void *arg)
{
	return lookup(s, key, true, fn, arg);
}

void oauth_store_del(struct oauth_store *s, const char *key)
{
	char *k;

	if (!s->redis) {
		cache_lru_delete(s->lru, key);
		return;
	}
	k = redis_key(key);
	cache_redis_del(s->redis, k, NULL, NULL);
	free(k);
}

void oauth_store_cancel(struct oauth_store_op *op)
{
	if (op)
		op_free(op);
}
