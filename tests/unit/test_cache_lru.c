/* Unit tests for cache/lru.c: hits and misses, eviction in least-recently-used order by entry
 * count and by bytes, expiry with an injected clock, delete, prefix delete and clear. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/lru.h"
#include "tests/unit/harness.h"

/* The value under key as a string ("" for a miss), copied to a static buffer. */
static const char *get(struct cache_lru *l, const char *key, long long now)
{
	static char out[256];
	size_t len = 0;
	const char *v = cache_lru_get(l, key, &len, now);

	if (!v)
		return "";
	snprintf(out, sizeof(out), "%.*s", (int)len, v);
	return out;
}

static bool has(struct cache_lru *l, const char *key, long long now)
{
	size_t len;

	return cache_lru_get(l, key, &len, now) != NULL;
}

static void test_basic(void)
{
	struct cache_lru *l = cache_lru_new(10, 1000);
	const char bin[] = {'a', '\0', 'b'};
	size_t len = 0;
	const char *v;

	CHECK(!has(l, "k", 0));
	CHECK(cache_lru_set(l, "k", "value", 5, 1000, 0));
	CHECK_STR(get(l, "k", 1), "value");
	CHECK(cache_lru_count(l) == 1 && cache_lru_bytes(l) == 1 + 5);
	CHECK(cache_lru_set(l, "k", "other!", 6, 1000, 0)); /* replaces */
	CHECK_STR(get(l, "k", 1), "other!");
	CHECK(cache_lru_count(l) == 1 && cache_lru_bytes(l) == 1 + 6);
	CHECK(cache_lru_set(l, "bin", bin, sizeof(bin), 1000, 0));
	v = cache_lru_get(l, "bin", &len, 0);
	CHECK(v && len == 3 && memcmp(v, bin, 3) == 0);
	CHECK(cache_lru_set(l, "empty", "", 0, 1000, 0));
	v = cache_lru_get(l, "empty", &len, 0);
	CHECK(v && len == 0);
	CHECK(cache_lru_delete(l, "k"));
	CHECK(!cache_lru_delete(l, "k"));
	CHECK(!has(l, "k", 0));
	CHECK(cache_lru_count(l) == 2);
	cache_lru_clear(l);
	CHECK(cache_lru_count(l) == 0 && cache_lru_bytes(l) == 0 && !has(l, "bin", 0));
	CHECK(cache_lru_set(l, "after-clear", "x", 1, 1000, 0));
	CHECK_STR(get(l, "after-clear", 0), "x");
	cache_lru_free(l);
}

static void test_eviction_by_count(void)
{
	struct cache_lru *l = cache_lru_new(3, 1 << 20);

	cache_lru_set(l, "a", "1", 1, 1000, 0);
	cache_lru_set(l, "b", "2", 1, 1000, 0);
	cache_lru_set(l, "c", "3", 1, 1000, 0);
	CHECK(has(l, "a", 0)); /* a is now the most recent; b is next to go */
	cache_lru_set(l, "d", "4", 1, 1000, 0);
	CHECK(cache_lru_count(l) == 3);
	CHECK(!has(l, "b", 0));
	CHECK(has(l, "a", 0) && has(l, "c", 0) && has(l, "d", 0));
	/* order now (most recent first): d c a; replacing c makes it the most recent */
	cache_lru_set(l, "c", "33", 2, 1000, 0);
	cache_lru_set(l, "e", "5", 1, 1000, 0);
	CHECK(!has(l, "a", 0));
	CHECK(has(l, "c", 0) && has(l, "d", 0) && has(l, "e", 0));
	cache_lru_free(l);
}

static void test_eviction_by_bytes(void)
{
	struct cache_lru *l = cache_lru_new(100, 100);
	char val[30];

	memset(val, 'v', sizeof(val));
	/* each entry is 1 + 30 = 31 bytes: three fit in 100, a fourth pushes out the oldest */
	cache_lru_set(l, "a", val, 30, 1000, 0);
	cache_lru_set(l, "b", val, 30, 1000, 0);
	cache_lru_set(l, "c", val, 30, 1000, 0);
	CHECK(cache_lru_bytes(l) == 93 && cache_lru_count(l) == 3);
	cache_lru_set(l, "d", val, 30, 1000, 0);
	CHECK(cache_lru_bytes(l) == 93 && cache_lru_count(l) == 3);
	CHECK(!has(l, "a", 0) && has(l, "b", 0) && has(l, "c", 0) && has(l, "d", 0));
	/* a large entry pushes out as many as needed, least recent first: c, d, then b, used
	 * last, since 71 + 31 > 100 */
	{
		char big[70];

		memset(big, 'B', sizeof(big));
		CHECK(has(l, "b", 0));
		cache_lru_set(l, "e", big, 70, 1000, 0);
		CHECK(cache_lru_bytes(l) <= 100);
		CHECK(has(l, "e", 0) && !has(l, "c", 0) && !has(l, "d", 0) && !has(l, "b", 0));
	}
	/* an entry larger than the bound is refused and removes the old value of its key */
	{
		char huge[200];

		memset(huge, 'H', sizeof(huge));
		CHECK(!cache_lru_set(l, "e", huge, sizeof(huge), 1000, 0));
		CHECK(!has(l, "e", 0));
		CHECK(cache_lru_bytes(l) == 0 && cache_lru_count(l) == 0);
	}
	cache_lru_free(l);
}

static void test_ttl(void)
{
	struct cache_lru *l = cache_lru_new(10, 1000);

	CHECK(cache_lru_set(l, "k", "v", 1, 1000, 5000));
	CHECK(cache_lru_set(l, "long", "v", 1, 60000, 5000));
	CHECK(has(l, "k", 5999));
	CHECK(!has(l, "k", 6000)); /* expired: removed */
	CHECK(cache_lru_count(l) == 1);
	CHECK(has(l, "long", 6000));
	CHECK(!cache_lru_set(l, "zero", "v", 1, 0, 0)); /* no ttl: not stored */
	CHECK(!has(l, "zero", 0));
	/* a set renews the expiry */
	cache_lru_set(l, "k", "v2", 2, 1000, 7000);
	CHECK_STR(get(l, "k", 7999), "v2");
	CHECK(!has(l, "k", 8000));
	cache_lru_free(l);
}

static void test_prefix_delete(void)
{
	struct cache_lru *l = cache_lru_new(100, 10000);
	char key[32];

	for (int i = 0; i < 10; i++) {
		snprintf(key, sizeof(key), "omnigw:v1:aaaa:%d", i);
		cache_lru_set(l, key, "x", 1, 1000, 0);
		snprintf(key, sizeof(key), "omnigw:v1:bbbb:%d", i);
		cache_lru_set(l, key, "y", 1, 1000, 0);
	}
	cache_lru_set(l, "omnigw:v1:aaa", "short", 5, 1000, 0); /* shorter than the prefix */
	CHECK(cache_lru_delete_prefix(l, "omnigw:v1:aaaa:") == 10);
	CHECK(cache_lru_count(l) == 11);
	CHECK(!has(l, "omnigw:v1:aaaa:3", 0) && has(l, "omnigw:v1:bbbb:3", 0));
	CHECK(has(l, "omnigw:v1:aaa", 0));
	CHECK(cache_lru_delete_prefix(l, "nothing") == 0);
	CHECK(cache_lru_delete_prefix(l, "") == 11);
	CHECK(cache_lru_count(l) == 0 && cache_lru_bytes(l) == 0);
	cache_lru_free(l);
}

/* Many entries: the table grows, every entry is still found, the bound holds. */
static void test_many(void)
{
	struct cache_lru *l = cache_lru_new(5000, 1 << 24);
	char key[32];
	int found = 0;

	for (int i = 0; i < 20000; i++) {
		snprintf(key, sizeof(key), "key-%d", i);
		cache_lru_set(l, key, key, strlen(key), 1000, 0);
	}
	CHECK(cache_lru_count(l) == 5000);
	for (int i = 15000; i < 20000; i++) {
		snprintf(key, sizeof(key), "key-%d", i);
		found += strcmp(get(l, key, 0), key) == 0;
	}
	CHECK(found == 5000);
	CHECK(!has(l, "key-14999", 0));
	cache_lru_free(l);
}

int main(void)
{
	test_basic();
	test_eviction_by_count();
	test_eviction_by_bytes();
	test_ttl();
	test_prefix_delete();
	test_many();
	TEST_REPORT();
}
