/* The OAuth server's state (registered clients, pending sign-ins, codes, tokens): keys with
 * values that expire, in Redis when one is configured (so every replica sees every key), in a
 * bounded in-memory LRU otherwise. Answers always come later, from the loop. */
#ifndef GW_OAUTH_STORE_H
#define GW_OAUTH_STORE_H

#include <stddef.h>

struct event_base;
struct cache_redis; /* cache/redis.h */

#define OAUTH_STORE_PREFIX "omnigw:v1:oauth:" /* before every key in Redis */

struct oauth_store;
struct oauth_store_op;

enum oauth_store_status {
	OAUTH_STORE_OK,	  /* done; for a get or take, val is NULL when absent or expired */
	OAUTH_STORE_DOWN, /* Redis unreachable, timed out or failed: answer 503, never "absent" */
};

/* The end of an operation. val (get and take only, NULL otherwise or when absent) belongs to
 * the store and is valid during the call only. Called from the loop, never from inside the call
 * that started the operation; it may free the store. */
typedef void (*oauth_store_fn)(void *arg, enum oauth_store_status st, const char *val, size_t len);

/* A store on base. redis NULL: in memory, holding at most max_entries (>= 1) keys, the least
 * recently used evicted first. Otherwise in redis, which the caller keeps alive longer than the
 * store; commands issued before its connection is ready answer DOWN. Keys are given without
 * prefix (OAUTH_STORE_PREFIX is added in Redis). */
struct oauth_store *oauth_store_new(struct event_base *base, struct cache_redis *redis,
				    size_t max_entries);

/* Frees the store and every operation in flight; no callback is called afterwards. */
void oauth_store_free(struct oauth_store *s);

/* Stores len bytes of val under key for ttl_s seconds (>= 1; less counts as 1), replacing what
 * was there. fn may be NULL (fire and forget; returns NULL then). When given, it is called once,
 * later, unless the returned handle is cancelled or the store freed first (the handle is valid
 * until then): OK stored; DOWN perhaps not (in memory: the value was too large, the store
 * holding 16 KiB per entry on average). Cancelling stops the callback, not the write. */
struct oauth_store_op *oauth_store_put(struct oauth_store *s, const char *key, const void *val,
				       size_t len, long ttl_s, oauth_store_fn fn, void *arg);

/* The value under key. fn is called exactly once, later, from the loop, unless the returned
 * handle is cancelled or the store freed first; the handle is valid until then. */
struct oauth_store_op *oauth_store_get(struct oauth_store *s, const char *key, oauth_store_fn fn,
				       void *arg);

/* The value under key, deleted in the same atomic step: of two takes of one key, from this
 * replica or any other, only one finds it (single-use codes, rotating refresh tokens). In
 * Redis this is GETDEL (Redis >= 6.2; an older Redis answers DOWN). Called back like a get;
 * a take cancelled in flight may still have deleted the key. */
struct oauth_store_op *oauth_store_take(struct oauth_store *s, const char *key, oauth_store_fn fn,
					void *arg);

/* Deletes key, fire and forget (a failure is not reported: the key expires anyway). */
void oauth_store_del(struct oauth_store *s, const char *key);

/* Guarantees the operation's callback is never called; op may be NULL. */
void oauth_store_cancel(struct oauth_store_op *op);

#endif
