/* Redis for the cache, through hiredis's asynchronous API on the gateway's libevent loop: one
 * connection, a time-out on every command, and no blocking call on the loop (host names are
 * resolved with evdns). When Redis is down or slow every command completes at once as a
 * failure, one warning is logged per outage, and the connection is retried with exponential
 * back-off (100 ms doubling to 5 s); one info line says when it is back. */
#ifndef CACHE_REDIS_H
#define CACHE_REDIS_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/event.h>

/* The URL parser (struct cache_redis_url, cache_redis_url_parse) is part of this interface: it
 * lives in its own pure file to be tested and fuzzed alone, and is declared there. */
#include "cache/redis_url.h"

struct cache_redis;
struct cache_redis_cmd;

enum cache_redis_status {
	CACHE_REDIS_OK,    /* the command ran (for GET, val is NULL when the key is absent) */
	CACHE_REDIS_ERROR, /* Redis answered with an error, or an answer of an unexpected type */
	CACHE_REDIS_DOWN,  /* not connected, no reply within timeout_ms, or the connection broke */
};

/* The result of GET, SET or DEL. val (GET only; NULL otherwise or when absent) belongs to the
 * module and is valid during the call only. Called from the loop, never from inside the call
 * that issued the command. */
typedef void (*cache_redis_fn)(void *arg, enum cache_redis_status st, const char *val,
			       size_t len);

/* The end of a prefix purge: how many keys were deleted before it ended (or failed). */
typedef void (*cache_redis_purge_fn)(void *arg, enum cache_redis_status st, long long deleted);

/* A client for url on base, commands timing out after timeout_ms (>= 1). It starts connecting
 * at once; commands issued before the connection is ready fail (a cache miss). Returns NULL
 * with *err (caller frees) when the URL is invalid; a Redis that cannot be reached is not an
 * error here but an outage, handled as described above. */
struct cache_redis *cache_redis_new(struct event_base *base, const char *url, long timeout_ms,
				    char **err);

/* Closes the connection and frees everything, pending commands and purges included; none of
 * their callbacks is called afterwards, and their handles become invalid. May be called from
 * one of this module's callbacks. */
void cache_redis_free(struct cache_redis *r);

/* Whether commands are being sent now (connected, authenticated, database selected). */
bool cache_redis_ready(const struct cache_redis *r);

/* GET key. fn is called exactly once, later, from the loop, unless the returned handle is
 * cancelled first. The handle is valid until fn is called or it is cancelled. */
struct cache_redis_cmd *cache_redis_get(struct cache_redis *r, const char *key,
					cache_redis_fn fn, void *arg);

/* GETDEL key (Redis >= 6.2): the value, deleted in the same step, so of two takes of one key
 * (from any client) only one finds it. Answers, times out and cancels like cache_redis_get. */
struct cache_redis_cmd *cache_redis_take(struct cache_redis *r, const char *key, cache_redis_fn fn,
					 void *arg);

/* Guarantees the command's callback is never called; the handle is invalid afterwards. A reply
 * that still arrives is dropped. */
void cache_redis_cancel(struct cache_redis_cmd *cmd);

/* SET key val EX ttl_s, and DEL key. fn may be NULL (fire and forget); when given, it is called
 * once, later, from the loop. */
void cache_redis_set(struct cache_redis *r, const char *key, const void *val, size_t len,
		     long ttl_s, cache_redis_fn fn, void *arg);
void cache_redis_del(struct cache_redis *r, const char *key, cache_redis_fn fn, void *arg);

/* Deletes every key that starts with prefix, iterating SCAN MATCH prefix* and DEL, each step
 * with its time-out. fn (may be NULL) is called once, later, from the loop. Keys written while
 * the purge runs may survive it (SCAN's guarantee). */
/* Counts one event in the window of key: INCR, with EXPIRE window_s on the first count (atomic,
 * by a server-side script). fn gets the new count as decimal text in val. The handle cancels
 * like a GET's (valid until fn is called). */
struct cache_redis_cmd *cache_redis_count(struct cache_redis *r, const char *key, long window_s,
					  cache_redis_fn fn, void *arg);

void cache_redis_purge(struct cache_redis *r, const char *prefix, cache_redis_purge_fn fn,
		       void *arg);

/* The same purge with a BLOCKING connection, for the command line (never on the loop): each
 * wait is bounded by timeout_ms. Returns 0 with *deleted, or -1 with *err (caller frees). */
int cache_redis_purge_sync(const char *url, long timeout_ms, const char *prefix, long *deleted,
			   char **err);

#endif
