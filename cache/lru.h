/* The in-process cache used when no Redis is configured: least recently used entries go first,
 * bounded by an entry count and by total bytes, each entry with its own expiry. Pure: the
 * caller passes the time, so expiry is testable without waiting. O(1) get, set and delete. */
#ifndef CACHE_LRU_H
#define CACHE_LRU_H

#include <stdbool.h>
#include <stddef.h>

struct cache_lru;

/* An empty cache holding at most max_entries entries and max_bytes bytes, where an entry
 * counts strlen(key) + value length bytes (the payload, not the bookkeeping). Both bounds are at
 * least 1. */
struct cache_lru *cache_lru_new(size_t max_entries, size_t max_bytes);
void cache_lru_free(struct cache_lru *l);

/* The value stored under key and its length, or NULL when absent or expired at now_ms (an
 * expired entry is removed). A hit becomes the most recently used entry. The pointer belongs to
 * the cache and stays valid until the next call that changes it (set, delete, clear, or a get
 * that expires something); copy it to keep it. */
const void *cache_lru_get(struct cache_lru *l, const char *key, size_t *len, long long now_ms);

/* Stores a copy of key and of len bytes of val, replacing any entry under key, expiring at
 * now_ms + ttl_ms, then evicts least recently used entries until both bounds hold again. An
 * entry larger than max_bytes, or a ttl_ms <= 0, is not stored (and the old entry under key is
 * removed, so no stale answer stays behind); returns false then. */
bool cache_lru_set(struct cache_lru *l, const char *key, const void *val, size_t len, long ttl_ms,
		   long long now_ms);

/* Removes the entry under key; returns whether there was one. */
bool cache_lru_delete(struct cache_lru *l, const char *key);

/* Removes every entry whose key starts with prefix; returns how many. O(entries). */
size_t cache_lru_delete_prefix(struct cache_lru *l, const char *prefix);

void cache_lru_clear(struct cache_lru *l);

size_t cache_lru_count(const struct cache_lru *l);
size_t cache_lru_bytes(const struct cache_lru *l);

#endif
