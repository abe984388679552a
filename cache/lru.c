/* The in-process LRU (see lru.h): a chained hash table for lookup and a doubly linked list in
 * recency order (head most recent, tail next to go). Each entry is one allocation holding key
 * and value. */
#include "cache/lru.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct entry {
	struct entry *hnext;      /* hash chain */
	struct entry *prev, *next; /* recency list */
	uint64_t hash;
	long long expires_ms;
	size_t key_len, val_len;
	char data[]; /* key, NUL, value */
};

struct cache_lru {
	struct entry **buckets;
	size_t nbuckets; /* a power of two */
	size_t count, bytes;
	size_t max_entries, max_bytes;
	struct entry *head, *tail;
};

/* FNV-1a: keys are mostly SHA-256 hex already, so a simple spreading hash is enough. */
static uint64_t hash_key(const char *s)
{
	uint64_t h = 14695981039346656037ull;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ull;
	}
	return h;
}

static struct entry **bucket_of(const struct cache_lru *l, uint64_t hash)
{
	return &l->buckets[hash & (l->nbuckets - 1)];
}

struct cache_lru *cache_lru_new(size_t max_entries, size_t max_bytes)
{
	struct cache_lru *l = calloc(1, sizeof(*l));

	if (!l)
		abort();
	l->nbuckets = 64;
	l->buckets = calloc(l->nbuckets, sizeof(*l->buckets));
	if (!l->buckets)
		abort();
	l->max_entries = max_entries ? max_entries : 1;
	l->max_bytes = max_bytes ? max_bytes : 1;
	return l;
}

void cache_lru_free(struct cache_lru *l)
{
	if (!l)
		return;
	cache_lru_clear(l);
	free(l->buckets);
	free(l);
}

/* Doubles the table when it holds more entries than buckets, keeping chains short. */
static void maybe_grow(struct cache_lru *l)
{
	size_t n = l->nbuckets * 2;
	struct entry **b;

	if (l->count <= l->nbuckets)
		return;
	b = calloc(n, sizeof(*b));
	if (!b)
		abort();
	for (struct entry *e = l->head; e; e = e->next) {
		struct entry **slot = &b[e->hash & (n - 1)];

		e->hnext = *slot;
		*slot = e;
	}
	free(l->buckets);
	l->buckets = b;
	l->nbuckets = n;
}

/* The link that points at key's entry (a bucket head or a chain's hnext), or NULL. */
static struct entry **find_link(const struct cache_lru *l, const char *key, uint64_t hash)
{
	for (struct entry **p = bucket_of(l, hash); *p; p = &(*p)->hnext)
		if ((*p)->hash == hash && strcmp((*p)->data, key) == 0)
			return p;
	return NULL;
}

static void list_unlink(struct cache_lru *l, struct entry *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		l->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		l->tail = e->prev;
	e->prev = e->next = NULL;
}

static void list_push_front(struct cache_lru *l, struct entry *e)
{
	e->prev = NULL;
	e->next = l->head;
	if (l->head)
		l->head->prev = e;
	l->head = e;
	if (!l->tail)
		l->tail = e;
}

static void remove_entry(struct cache_lru *l, struct entry *e)
{
	struct entry **p = bucket_of(l, e->hash);

	while (*p != e)
		p = &(*p)->hnext;
	*p = e->hnext;
	list_unlink(l, e);
	l->count--;
	l->bytes -= e->key_len + e->val_len;
	free(e);
}

const void *cache_lru_get(struct cache_lru *l, const char *key, size_t *len, long long now_ms)
{
	struct entry **p = find_link(l, key, hash_key(key));
	struct entry *e;

	if (!p)
		return NULL;
	e = *p;
	if (now_ms >= e->expires_ms) {
		remove_entry(l, e);
		return NULL;
	}
	list_unlink(l, e);
	list_push_front(l, e);
	*len = e->val_len;
	return e->data + e->key_len + 1;
}

static void evict(struct cache_lru *l)
{
	while (l->tail && (l->count > l->max_entries || l->bytes > l->max_bytes))
		remove_entry(l, l->tail);
}

bool cache_lru_set(struct cache_lru *l, const char *key, const void *val, size_t len, long ttl_ms,
		   long long now_ms)
{
	size_t key_len = strlen(key);
	uint64_t hash = hash_key(key);
	struct entry *e;

	cache_lru_delete(l, key);
	if (ttl_ms <= 0 || key_len + len > l->max_bytes)
		return false;
	e = malloc(sizeof(*e) + key_len + 1 + len);
	if (!e)
		abort();
	e->hash = hash;
	e->expires_ms = now_ms + ttl_ms;
	e->key_len = key_len;
	e->val_len = len;
	memcpy(e->data, key, key_len + 1);
	if (len)
		memcpy(e->data + key_len + 1, val, len);
	e->hnext = *bucket_of(l, hash);
	*bucket_of(l, hash) = e;
	list_push_front(l, e);
	l->count++;
	l->bytes += key_len + len;
	evict(l);
	maybe_grow(l);
	return true;
}

bool cache_lru_delete(struct cache_lru *l, const char *key)
{
	struct entry **p = find_link(l, key, hash_key(key));

	if (!p)
		return false;
	remove_entry(l, *p);
	return true;
}

size_t cache_lru_delete_prefix(struct cache_lru *l, const char *prefix)
{
	size_t n = strlen(prefix), removed = 0;
	struct entry *e = l->head, *next;

	for (; e; e = next) {
		next = e->next;
		if (e->key_len >= n && memcmp(e->data, prefix, n) == 0) {
			remove_entry(l, e);
			removed++;
		}
	}
	return removed;
}

void cache_lru_clear(struct cache_lru *l)
{
	struct entry *e = l->head, *next;

	for (; e; e = next) {
		next = e->next;
		free(e);
	}
	memset(l->buckets, 0, l->nbuckets * sizeof(*l->buckets));
	l->head = l->tail = NULL;
	l->count = 0;
	l->bytes = 0;
}

size_t cache_lru_count(const struct cache_lru *l)
{
	return l->count;
}

size_t cache_lru_bytes(const struct cache_lru *l)
{
	return l->bytes;
}
