/* The cache the gateway uses for Omni metadata (tools/list, pickModel, topic metadata): Redis
 * when configured, shared by every replica, else an in-process LRU; the same behaviour apart
 * from sharing. Lookups always answer later from the loop, a failing Redis answers as a miss,
 * and concurrent misses of one key can wait for one leader (single flight). Keys come from
 * cache/key.h; which answers are cached, and for how long, from cache_ttl_for. */
#ifndef CACHE_CACHE_H
#define CACHE_CACHE_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>
#include <event2/event.h>

#include "gateway/config.h"

/* ---- configuration ---- */

/* How long answers of one name are kept: a method ("tools/list"), a tool ("pickModel") or
 * "topics" for the REST topic metadata (GET /api/v1/models/{id}/topic[/{name}]). */
struct cache_ttl {
	char *name;
	long ttl_s; /* 0: not cached */
};

struct cache_config {
	char *redis_url;       /* secret (it may hold a password); NULL: the in-process LRU */
	long redis_timeout_ms; /* every Redis command; default 50 */
	bool enabled;          /* default true */
	long max_entries;      /* LRU only; default 10000 */
	long max_bytes;        /* LRU only (keys + values); default 64 MiB */
	struct cache_ttl *ttls; /* defaults (tools/list 300, pickModel 300, topics 600) updated by
				 * cache.ttl_s */
	size_t n_ttls;
	bool topic_tools;      /* serve listTopics / describeTopic; default true */
};

/* Reads the root keys "redis" {url | url_env | url_file, timeout_ms} and "cache" {enabled,
 * max_entries, max_bytes, ttl_s, topic_tools}, all optional. Every problem goes to diag with
 * its path ("cache.ttl_s.getData: ..."): unknown keys, wrong types, an invalid URL, and a ttl
 * for a data-query tool (getData, runQuery, askOmni, runSavedQuery are never cached). Returns
 * NULL when there was an error; the caller frees the result with cache_config_free. */
struct cache_config *cache_config_parse(const cJSON *root, struct gw_diag *diag);
void cache_config_free(struct cache_config *cfg);

/* Seconds to keep the answer to method (tools/call: of tool), or 0 when it is not cached: the
 * cache is disabled, no ttl is configured for the name, or tool is a data query. The name
 * looked up is tool when tool is not NULL, else method ("tools/list", or "topics"). */
long cache_ttl_for(const struct cache_config *cfg, const char *method, const char *tool);

/* Whether tool is one of the data queries that are never cached (any letter case). */
bool cache_tool_is_data_query(const char *tool);

/* ---- the cache ---- */

struct cache;
struct cache_lookup;
struct cache_flight_wait;

/* A lookup's answer: val (len bytes) on a hit, NULL on a miss, an error or a time-out. val
 * belongs to the cache and is valid during the call only. */
typedef void (*cache_get_fn)(void *arg, const void *val, size_t len);

/* A single-flight follower's answer: the leader's value, or NULL when the leader failed. val is
 * valid during the call only. */
typedef void (*cache_flight_fn)(void *arg, const void *val, size_t len);

struct cache_stats {
	unsigned long long hits;   /* lookups answered with a value */
	unsigned long long misses; /* lookups of an absent (or expired) key */
	unsigned long long errors; /* lookups and writes that failed: Redis down, slow or refusing */
	unsigned long long sets;   /* values handed to cache_set for storing */
};

/* A cache on base for cfg: Redis when cfg->redis_url is set, else the LRU; with enabled false,
 * one that stores nothing and answers every lookup with a miss. cfg is copied from (it may be
 * freed afterwards). Returns NULL only for a Redis URL that cache_config_parse would refuse. */
struct cache *cache_new(struct event_base *base, const struct cache_config *cfg);

/* Frees the cache, its pending lookups, flights and writes; no callback is called afterwards
 * and every handle (lookup, wait) becomes invalid. */
void cache_free(struct cache *c);

/* Whether lookups can hit now: the LRU always; Redis while connected. */
bool cache_available(const struct cache *c);

/* Looks key up. cb is ALWAYS called later, from the loop (never inside cache_get), exactly once,
 * unless the returned handle is cancelled first. The handle is valid until cb is called. */
struct cache_lookup *cache_get(struct cache *c, const char *key, cache_get_fn cb, void *arg);

/* The request went away: guarantees cb is never called. The handle is invalid afterwards. */
void cache_lookup_cancel(struct cache_lookup *l);

/* Stores a copy of val under key for ttl_s seconds (ttl_s <= 0: nothing is stored). Fire and
 * forget: failures are counted and logged once per outage. */
void cache_set(struct cache *c, const char *key, const void *val, size_t len, long ttl_s);

/* Drops key; fire and forget. */
void cache_del(struct cache *c, const char *key);

/* Drops every key starting with prefix (cache_identity_prefix: one identity), in the
 * background for Redis (SCAN + DEL); fire and forget. */
void cache_purge_prefix(struct cache *c, const char *prefix);

/* Single flight for key. Returns true when the caller is the leader: it fetches the answer and
 * must then call cache_flight_done exactly once, also when it fails or its request goes away
 * (with NULL); *wait is set to NULL. Returns false when a leader is already fetching: the
 * caller is a follower, *wait is its handle, and cb is called once, later, from the loop, with
 * the leader's value or NULL, unless cache_flight_wait_cancel is called first. Followers wait as
 * long as the leader does; their own request time-outs bound that. */
bool cache_flight_join(struct cache *c, const char *key, cache_flight_fn cb, void *arg,
		       struct cache_flight_wait **wait);

/* The leader's result (val NULL: it failed): hands a copy to every follower, ends the flight.
 * A key with no flight is ignored. */
void cache_flight_done(struct cache *c, const char *key, const void *val, size_t len);

/* The follower's request went away: guarantees its cb is never called; wait becomes invalid. */
void cache_flight_wait_cancel(struct cache_flight_wait *wait);

/* The Redis client under the cache when it is connected (shared counters, such as rate
 * limits across replicas, use it), else NULL. */
struct cache_redis *cache_redis_of(struct cache *c);
/* The Redis client whatever its state (NULL when none is configured): for a module that keeps
 * it and lets its commands fail while Redis is away. */
struct cache_redis *cache_redis_client(struct cache *c);

/* The counters so far, for metrics. */
void cache_stats_get(const struct cache *c, struct cache_stats *out);

/* For the command line (`omni-mcp-gateway cache purge [--user NAME]`): deletes the Redis keys
 * starting with prefix (NULL: every key of the gateway, "omnigw:v1:", nothing else) over a
 * BLOCKING connection, never to be used on the loop. Returns 0 with *deleted, or -1 with *err
 * (caller frees): no Redis configured (the in-process cache lives in each gateway process), or
 * Redis cannot be reached or refuses. */
int cache_purge_sync(const struct cache_config *cfg, const char *prefix, long *deleted,
		     char **err);

#endif
