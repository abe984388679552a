/* The cache facade (see cache.h): its configuration, the choice of backend (Redis or the LRU),
 * lookups that always answer from the loop, single flight, and the counters. */
#include "cache/cache.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cache/key.h"
#include "cache/lru.h"
#include "cache/redis.h"
#include "cache/redis_url.h"
#include "gateway/log.h"
#include "gateway/util.h"

/* ---- configuration ---- */

static const char *const data_query_tools[] = {"getData", "runQuery", "askOmni", "runSavedQuery",
					       NULL};

static const struct {
	const char *name;
	long ttl_s;
} default_ttls[] = {{"tools/list", 300}, {"pickModel", 300}, {"topics", 600}};

bool cache_tool_is_data_query(const char *tool)
{
	for (const char *const *t = data_query_tools; tool && *t; t++)
		if (strcasecmp(tool, *t) == 0)
			return true;
	return false;
}

static void set_ttl(struct cache_config *cfg, const char *name, long ttl_s)
{
	for (size_t i = 0; i < cfg->n_ttls; i++) {
		if (strcmp(cfg->ttls[i].name, name) == 0) {
			cfg->ttls[i].ttl_s = ttl_s;
			return;
		}
	}
	cfg->ttls = realloc(cfg->ttls, (cfg->n_ttls + 1) * sizeof(*cfg->ttls));
	if (!cfg->ttls)
		abort();
	cfg->ttls[cfg->n_ttls].name = gw_xstrdup(name);
	cfg->ttls[cfg->n_ttls++].ttl_s = ttl_s;
}

static bool whole_number(const cJSON *item, long min, long max, long *out)
{
	if (!cJSON_IsNumber(item) || item->valuedouble != (double)(long)item->valuedouble ||
	    item->valuedouble < min || item->valuedouble > max)
		return false;
	*out = (long)item->valuedouble;
	return true;
}

static void read_number(const cJSON *item, const char *path, long min, long max, long *out,
			struct gw_diag *diag)
{
	if (!whole_number(item, min, max, out))
		gw_diag_add(diag, true, "%s: expected a whole number from %ld to %ld", path, min, max);
}

static void read_bool(const cJSON *item, const char *path, bool *out, struct gw_diag *diag)
{
	if (!cJSON_IsBool(item))
		gw_diag_add(diag, true, "%s: expected true or false", path);
	else
		*out = cJSON_IsTrue(item);
}

/* One entry of cache.ttl_s. */
static void read_ttl(const cJSON *item, const char *path, struct cache_config *cfg,
		     struct gw_diag *diag)
{
	long ttl;

	if (cache_tool_is_data_query(item->string))
		gw_diag_add(diag, true,
			    "%s: data queries (getData, runQuery, askOmni, runSavedQuery) are never "
			    "cached; remove this key",
			    path);
	else if (strcmp(item->string, "tools/call") == 0)
		gw_diag_add(diag, true, "%s: name the tool (e.g. pickModel), not tools/call", path);
	else if (!*item->string)
		gw_diag_add(diag, true, "%s: empty name; use a method, a tool or \"topics\"", path);
	else if (!whole_number(item, 0, 31 * 86400, &ttl))
		gw_diag_add(diag, true, "%s: expected a whole number of seconds (0: not cached, at most "
			    "31 days)", path);
	else
		set_ttl(cfg, item->string, ttl);
}

static void read_ttls(const cJSON *obj, const char *path, struct cache_config *cfg,
		      struct gw_diag *diag)
{
	const cJSON *item;
	char ipath[512];

	if (!cJSON_IsObject(obj)) {
		gw_diag_add(diag, true, "%s: expected an object of name: seconds", path);
		return;
	}
	cJSON_ArrayForEach(item, obj) {
		snprintf(ipath, sizeof(ipath), "%s.%s", path, item->string);
		for (const cJSON *prev = obj->child; prev != item; prev = prev->next)
			if (strcmp(prev->string, item->string) == 0)
				gw_diag_add(diag, true, "%s: set more than once", ipath);
		read_ttl(item, ipath, cfg, diag);
	}
}

/* redis.url, redis.url_env or redis.url_file (the URL may carry a password). */
static void read_url(const cJSON *item, int form, const char *path, struct cache_config *cfg,
		     struct gw_diag *diag)
{
	const char *v = item->valuestring;

	if (!cJSON_IsString(item) || !*v) {
		gw_diag_add(diag, true, "%s: expected a non-empty string", path);
		return;
	}
	if (cfg->redis_url) {
		gw_diag_add(diag, true, "%s: give one of redis.url, redis.url_env, redis.url_file", path);
		return;
	}
	if (form == 0) {
		cfg->redis_url = gw_xstrdup(v);
	} else if (form == 1) {
		const char *env = getenv(v);

		if (!env || !*env)
			gw_diag_add(diag, true, "%s: environment variable %s is not set", path, v);
		else
			cfg->redis_url = gw_xstrdup(env);
	} else if (!(cfg->redis_url = gw_config_read_secret_file(v)) || !*cfg->redis_url) {
		gw_diag_add(diag, true, "%s: cannot read %s: %s", path, v,
			    cfg->redis_url ? "empty" : strerror(errno));
	}
}

static void check_url(const char *path, int form, struct cache_config *cfg, struct gw_diag *diag)
{
	struct cache_redis_url u;
	char *err = NULL;

	if (!cfg->redis_url || !*cfg->redis_url)
		return;
	if (cache_redis_url_parse(cfg->redis_url, &u, &err) != 0) {
		gw_diag_add(diag, true, "%s: %s", path, err);
		free(err);
		return;
	}
	if (u.password && form == 0)
		gw_diag_add(diag, false,
			    "%s: password written inline in the config; prefer redis.url_env or "
			    "redis.url_file",
			    path);
	cache_redis_url_fini(&u);
}

static void read_redis(const cJSON *obj, struct cache_config *cfg, struct gw_diag *diag)
{
	static const char *const names[] = {"url", "url_env", "url_file", "timeout_ms", NULL};
	int errors_before = diag->errors, url_form = 0;
	const cJSON *item;
	char path[256];

	if (!cJSON_IsObject(obj)) {
		gw_diag_add(diag, true, "redis: expected an object, e.g. {\"url\": "
			    "\"redis://127.0.0.1:6379/0\"}");
		return;
	}
	cJSON_ArrayForEach(item, obj) {
		int i;

		snprintf(path, sizeof(path), "redis.%s", item->string);
		if ((i = gw_config_key_index(obj, item, names, path, diag)) < 0)
			continue;
		if (i == 3) {
			read_number(item, path, 1, 60000, &cfg->redis_timeout_ms, diag);
			continue;
		}
		url_form = i;
		read_url(item, i, path, cfg, diag);
	}
	if (!cfg->redis_url && diag->errors == errors_before)
		gw_diag_add(diag, true, "redis.url: required (redis://host:port/db); remove \"redis\" "
			    "to use the in-process cache");
	snprintf(path, sizeof(path), "redis.%s", names[url_form]);
	check_url(path, url_form, cfg, diag);
}

/* The LRU's bounds mean nothing next to Redis (its maxmemory bounds it): said, not refused. */
static void lru_only(const char *path, bool have_redis, struct gw_diag *diag)
{
	if (have_redis)
		gw_diag_add(diag, false, "%s: bounds the in-process cache only; with redis, Redis's "
			    "maxmemory does", path);
}

static void read_cache(const cJSON *obj, struct cache_config *cfg, bool have_redis,
		       struct gw_diag *diag)
{
	static const char *const names[] = {"enabled", "max_entries", "max_bytes", "ttl_s",
					    "topic_tools", NULL};
	const cJSON *item;
	char path[256];

	if (!cJSON_IsObject(obj)) {
		gw_diag_add(diag, true, "cache: expected an object");
		return;
	}
	cJSON_ArrayForEach(item, obj) {
		snprintf(path, sizeof(path), "cache.%s", item->string);
		switch (gw_config_key_index(obj, item, names, path, diag)) {
		case 0:
			read_bool(item, path, &cfg->enabled, diag);
			break;
		case 1:
			read_number(item, path, 1, 100000000, &cfg->max_entries, diag);
			lru_only(path, have_redis, diag);
			break;
		case 2:
			read_number(item, path, 1024, 1L << 40, &cfg->max_bytes, diag);
			lru_only(path, have_redis, diag);
			break;
		case 3:
			read_ttls(item, path, cfg, diag);
			break;
		case 4:
			read_bool(item, path, &cfg->topic_tools, diag);
			break;
		default:
			break;
		}
	}
}

struct cache_config *cache_config_parse(const cJSON *root, struct gw_diag *diag)
{
	struct cache_config *cfg = calloc(1, sizeof(*cfg));
	int errors_before = diag->errors;
	const cJSON *redis = cJSON_GetObjectItemCaseSensitive(root, "redis");
	const cJSON *cache = cJSON_GetObjectItemCaseSensitive(root, "cache");

	if (!cfg)
		abort();
	cfg->redis_timeout_ms = 50;
	cfg->enabled = true;
	cfg->max_entries = 10000;
	cfg->max_bytes = 64L * 1024 * 1024;
	cfg->topic_tools = true;
	for (size_t i = 0; i < sizeof(default_ttls) / sizeof(*default_ttls); i++)
		set_ttl(cfg, default_ttls[i].name, default_ttls[i].ttl_s);
	if (redis && !cJSON_IsNull(redis))
		read_redis(redis, cfg, diag);
	if (cache && !cJSON_IsNull(cache))
		read_cache(cache, cfg, cfg->redis_url != NULL, diag);
	if (diag->errors > errors_before) {
		cache_config_free(cfg);
		return NULL;
	}
	return cfg;
}

void cache_config_free(struct cache_config *cfg)
{
	if (!cfg)
		return;
	if (cfg->redis_url)
		explicit_bzero(cfg->redis_url, strlen(cfg->redis_url));
	free(cfg->redis_url);
	for (size_t i = 0; i < cfg->n_ttls; i++)
		free(cfg->ttls[i].name);
	free(cfg->ttls);
	free(cfg);
}

long cache_ttl_for(const struct cache_config *cfg, const char *method, const char *tool)
{
	const char *name = tool ? tool : method;

	if (!cfg || !cfg->enabled || !name || cache_tool_is_data_query(tool))
		return 0;
	if (!tool && method && strcmp(method, "tools/call") == 0)
		return 0; /* a tool call names its tool, or is not cached */
	for (size_t i = 0; i < cfg->n_ttls; i++)
		if (strcmp(cfg->ttls[i].name, name) == 0)
			return cfg->ttls[i].ttl_s;
	return 0;
}

/* ---- the cache ---- */

#define FLIGHT_BUCKETS 256

struct cache_flight {
	char *key;
	struct cache_flight *next; /* bucket chain */
	struct cache_flight_wait *waiters;
};

struct cache_flight_wait {
	struct cache *c;
	struct cache_flight *flight; /* NULL once the leader is done and delivery is scheduled */
	struct cache_flight_wait *prev, *next; /* flight->waiters, or c->delivering */
	cache_flight_fn cb;
	void *arg;
	struct event *ev;
	void *val; /* the leader's value (a copy), NULL when it failed */
	size_t len;
};

struct cache_lookup {
	struct cache *c;
	struct cache_lookup *prev, *next; /* c->lookups */
	cache_get_fn cb;
	void *arg;
	struct cache_redis_cmd *cmd; /* Redis: the GET in flight */
	struct event *ev;            /* LRU: the delivery */
	void *val;                   /* LRU: a copy of the hit */
	size_t len;
};

struct cache {
	struct event_base *base;
	bool enabled;
	struct cache_lru *lru;
	struct cache_redis *redis;
	struct cache_stats stats;
	struct cache_lookup *lookups;
	struct cache_flight *flights[FLIGHT_BUCKETS];
	struct cache_flight_wait *delivering;
};

static long long now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void *copy_val(const void *val, size_t len)
{
	void *d;

	if (!val)
		return NULL;
	d = malloc(len ? len : 1);
	if (!d)
		abort();
	memcpy(d, val, len);
	return d;
}

struct cache *cache_new(struct event_base *base, const struct cache_config *cfg)
{
	struct cache *c = calloc(1, sizeof(*c));
	char *err = NULL;

	if (!c)
		abort();
	c->base = base;
	c->enabled = cfg->enabled;
	/* Redis is connected even with caching off: the rate limits of every replica meet there. */
	if (cfg->redis_url) {
		c->redis = cache_redis_new(base, cfg->redis_url, cfg->redis_timeout_ms, &err);
		if (!c->redis) {
			gw_error("cache: redis.url: %s", err);
			free(err);
			free(c);
			return NULL;
		}
	} else if (c->enabled) {
		c->lru = cache_lru_new((size_t)cfg->max_entries, (size_t)cfg->max_bytes);
	}
	return c;
}

static void lookup_unlink(struct cache_lookup *l)
{
	struct cache *c = l->c;

	if (l->prev)
		l->prev->next = l->next;
	else
		c->lookups = l->next;
	if (l->next)
		l->next->prev = l->prev;
}

static void lookup_free(struct cache_lookup *l)
{
	lookup_unlink(l);
	if (l->ev)
		event_free(l->ev);
	free(l->val);
	free(l);
}

static void wait_unlink(struct cache_flight_wait *w)
{
	struct cache_flight_wait **head = w->flight ? &w->flight->waiters : &w->c->delivering;

	if (w->prev)
		w->prev->next = w->next;
	else
		*head = w->next;
	if (w->next)
		w->next->prev = w->prev;
	w->prev = w->next = NULL;
}

static void wait_free(struct cache_flight_wait *w)
{
	wait_unlink(w);
	event_free(w->ev);
	free(w->val);
	free(w);
}

void cache_free(struct cache *c)
{
	if (!c)
		return;
	while (c->lookups) {
		if (c->lookups->cmd)
			cache_redis_cancel(c->lookups->cmd);
		lookup_free(c->lookups);
	}
	for (size_t i = 0; i < FLIGHT_BUCKETS; i++) {
		while (c->flights[i]) {
			struct cache_flight *f = c->flights[i];

			while (f->waiters)
				wait_free(f->waiters);
			c->flights[i] = f->next;
			free(f->key);
			free(f);
		}
	}
	while (c->delivering)
		wait_free(c->delivering);
	cache_redis_free(c->redis);
	cache_lru_free(c->lru);
	free(c);
}

bool cache_available(const struct cache *c)
{
	if (c->redis)
		return cache_redis_ready(c->redis);
	return c->lru != NULL;
}

static void count_lookup(struct cache *c, bool failed, const void *val)
{
	if (failed)
		c->stats.errors++;
	else if (val)
		c->stats.hits++;
	else
		c->stats.misses++;
}

/* Redis answered (from the loop, see redis.h): release the lookup, then call back, last. */
static void on_redis_get(void *arg, enum cache_redis_status st, const char *val, size_t len)
{
	struct cache_lookup *l = arg;
	cache_get_fn cb = l->cb;
	void *cb_arg = l->arg;

	l->cmd = NULL;
	count_lookup(l->c, st != CACHE_REDIS_OK, val);
	lookup_free(l);
	cb(cb_arg, st == CACHE_REDIS_OK ? val : NULL, st == CACHE_REDIS_OK ? len : 0);
}

/* An LRU answer, taken when asked and delivered from the loop; counted when delivered, as a
 * Redis answer is (a cancelled lookup counts for nothing). */
static void on_lookup_event(evutil_socket_t fd, short what, void *arg)
{
	struct cache_lookup *l = arg;
	cache_get_fn cb = l->cb;
	void *cb_arg = l->arg;
	void *val = l->val;
	size_t len = l->len;

	(void)fd;
	(void)what;
	l->val = NULL;
	count_lookup(l->c, false, val);
	lookup_free(l);
	cb(cb_arg, val, len);
	free(val);
}

struct cache_lookup *cache_get(struct cache *c, const char *key, cache_get_fn cb, void *arg)
{
	struct cache_lookup *l = calloc(1, sizeof(*l));

	if (!l)
		abort();
	l->c = c;
	l->cb = cb;
	l->arg = arg;
	l->next = c->lookups;
	if (c->lookups)
		c->lookups->prev = l;
	c->lookups = l;
	if (c->redis && c->enabled) {
		l->cmd = cache_redis_get(c->redis, key, on_redis_get, l);
		return l;
	}
	if (c->lru) {
		size_t len = 0;
		const void *v = cache_lru_get(c->lru, key, &len, now_ms());

		l->val = copy_val(v, len);
		l->len = v ? len : 0;
	}
	l->ev = evtimer_new(c->base, on_lookup_event, l);
	if (!l->ev)
		abort();
	event_active(l->ev, EV_TIMEOUT, 1);
	return l;
}

void cache_lookup_cancel(struct cache_lookup *l)
{
	if (!l)
		return;
	if (l->cmd)
		cache_redis_cancel(l->cmd);
	lookup_free(l);
}

static void on_write_done(void *arg, enum cache_redis_status st, const char *val, size_t len)
{
	struct cache *c = arg;

	(void)val;
	(void)len;
	if (st != CACHE_REDIS_OK)
		c->stats.errors++;
}

void cache_set(struct cache *c, const char *key, const void *val, size_t len, long ttl_s)
{
	if (!c->enabled || ttl_s <= 0)
		return;
	c->stats.sets++;
	if (c->redis)
		cache_redis_set(c->redis, key, val, len, ttl_s, on_write_done, c);
	else if (!cache_lru_set(c->lru, key, val, len, ttl_s * 1000, now_ms()))
		gw_debug("cache: an entry of %zu bytes does not fit the in-process cache", len);
}

void cache_del(struct cache *c, const char *key)
{
	if (c->redis)
		cache_redis_del(c->redis, key, on_write_done, c);
	else if (c->lru)
		cache_lru_delete(c->lru, key);
}

static void on_purge_done(void *arg, enum cache_redis_status st, long long deleted)
{
	struct cache *c = arg;

	if (st != CACHE_REDIS_OK)
		c->stats.errors++;
	gw_debug("cache: purge deleted %lld entries%s", deleted,
		 st == CACHE_REDIS_OK ? "" : " before it failed");
}

void cache_purge_prefix(struct cache *c, const char *prefix)
{
	size_t n;

	if (c->redis) {
		cache_redis_purge(c->redis, prefix, on_purge_done, c);
	} else if (c->lru) {
		n = cache_lru_delete_prefix(c->lru, prefix); /* not inside gw_debug: it may not run */
		gw_debug("cache: purge deleted %zu entries", n);
	}
}

void cache_stats_get(const struct cache *c, struct cache_stats *out)
{
	*out = c->stats;
}

/* ---- single flight ---- */

static struct cache_flight **flight_bucket(struct cache *c, const char *key)
{
	uint32_t h = 2166136261u;

	for (; *key; key++)
		h = (h ^ (unsigned char)*key) * 16777619u;
	return &c->flights[h % FLIGHT_BUCKETS];
}

/* The link that points at key's flight, or NULL. */
static struct cache_flight **flight_find(struct cache *c, const char *key)
{
	for (struct cache_flight **p = flight_bucket(c, key); *p; p = &(*p)->next)
		if (strcmp((*p)->key, key) == 0)
			return p;
	return NULL;
}

static void on_wait_event(evutil_socket_t fd, short what, void *arg)
{
	struct cache_flight_wait *w = arg;
	cache_flight_fn cb = w->cb;
	void *cb_arg = w->arg;
	void *val = w->val;
	size_t len = w->len;

	(void)fd;
	(void)what;
	w->val = NULL;
	wait_free(w);
	cb(cb_arg, val, len);
	free(val);
}

bool cache_flight_join(struct cache *c, const char *key, cache_flight_fn cb, void *arg,
		       struct cache_flight_wait **wait)
{
	struct cache_flight **p = flight_find(c, key);
	struct cache_flight *f;
	struct cache_flight_wait *w;

	*wait = NULL;
	if (!p) {
		f = calloc(1, sizeof(*f));
		if (!f)
			abort();
		f->key = gw_xstrdup(key);
		p = flight_bucket(c, key);
		f->next = *p;
		*p = f;
		return true;
	}
	f = *p;
	w = calloc(1, sizeof(*w));
	if (!w)
		abort();
	w->c = c;
	w->flight = f;
	w->cb = cb;
	w->arg = arg;
	w->ev = evtimer_new(c->base, on_wait_event, w);
	if (!w->ev)
		abort();
	w->next = f->waiters;
	if (f->waiters)
		f->waiters->prev = w;
	f->waiters = w;
	*wait = w;
	return false;
}

void cache_flight_done(struct cache *c, const char *key, const void *val, size_t len)
{
	struct cache_flight **p = flight_find(c, key);
	struct cache_flight *f;

	if (!p)
		return;
	f = *p;
	*p = f->next;
	while (f->waiters) {
		struct cache_flight_wait *w = f->waiters;

		wait_unlink(w);
		w->flight = NULL;
		w->val = copy_val(val, len);
		w->len = val ? len : 0;
		w->next = c->delivering;
		if (c->delivering)
			c->delivering->prev = w;
		c->delivering = w;
		event_active(w->ev, EV_TIMEOUT, 1);
	}
	free(f->key);
	free(f);
}

void cache_flight_wait_cancel(struct cache_flight_wait *wait)
{
	if (wait)
		wait_free(wait);
}

/* ---- command line ---- */

int cache_purge_sync(const struct cache_config *cfg, const char *prefix, long *deleted,
		     char **err)
{
	*deleted = 0;
	if (!cfg || !cfg->redis_url) {
		*err = gw_xstrdup("in-process cache: entries live inside each gateway process and go "
			       "when it restarts; configure redis to purge from the command line");
		return -1;
	}
	return cache_redis_purge_sync(cfg->redis_url, cfg->redis_timeout_ms,
				      prefix && *prefix ? prefix : CACHE_KEY_NAMESPACE, deleted, err);
}

struct cache_redis *cache_redis_client(struct cache *c)
{
	return c ? c->redis : NULL;
}

struct cache_redis *cache_redis_of(struct cache *c)
{
	return c && c->redis && cache_redis_ready(c->redis) ? c->redis : NULL;
}
