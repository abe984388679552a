/* Unit tests for the cache's configuration (cache/cache.c) and Redis URLs (cache/redis.c):
 * defaults, every key, each kind of mistake with the path it names, which answers are
 * cacheable for how long, and what a URL may look like. Configs are written with ' for ". */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache/cache.h"
#include "cache/redis.h"
#include "cache/redis_url.h"
#include "tests/unit/harness.h"

static struct gw_diag diag;
static struct cache_config *cfg;

/* Parses the root object written with ' for "; the result and diag stay until the next call. */
static struct cache_config *parse(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static struct cache_config *parse(const char *fmt, ...)
{
	char text[2048];
	cJSON *root;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	for (char *p = text; *p; p++)
		if (*p == '\'')
			*p = '"';
	cache_config_free(cfg);
	gw_diag_fini(&diag);
	root = cJSON_Parse(text);
	if (!root) {
		fprintf(stderr, "bad test JSON: %s\n", text);
		exit(2);
	}
	cfg = cache_config_parse(root, &diag);
	cJSON_Delete(root);
	return cfg;
}

/* Whether one diagnostic line contains all of want (and is an error, or a warning). */
static bool diag_has(bool error, const char *want)
{
	for (size_t i = 0; i < diag.n; i++) {
		bool is_warning = strncmp(diag.lines[i], "warning: ", 9) == 0;

		if (is_warning != error && strstr(diag.lines[i], want))
			return true;
	}
	for (size_t i = 0; i < diag.n; i++)
		fprintf(stderr, "  diag: %s\n", diag.lines[i]);
	return false;
}

static void test_defaults(void)
{
	CHECK(parse("{'listen':'x'}") != NULL);
	CHECK(diag.n == 0);
	CHECK(cfg->redis_url == NULL);
	CHECK(cfg->redis_timeout_ms == 50);
	CHECK(cfg->enabled);
	CHECK(cfg->max_entries == 10000);
	CHECK(cfg->max_bytes == 67108864);
	CHECK(cfg->topic_tools);
	CHECK(cache_ttl_for(cfg, "tools/list", NULL) == 300);
	CHECK(cache_ttl_for(cfg, "tools/call", "pickModel") == 300);
	CHECK(cache_ttl_for(cfg, "topics", NULL) == 600);
	CHECK(cache_ttl_for(cfg, "tools/call", "pickTopic") == 0);
	CHECK(cache_ttl_for(cfg, "initialize", NULL) == 0);
	CHECK(parse("{'redis':null,'cache':null}") != NULL);
}

static void test_full(void)
{
	CHECK(parse("{'redis':{'url':'redis://10.0.0.5:6380/2','timeout_ms':80},"
		    "'cache':{'enabled':true,'max_entries':5,'max_bytes':4096,"
		    "'ttl_s':{'tools/list':60,'pickTopic':120,'pickModel':0},'topic_tools':false}}") !=
	      NULL);
	CHECK_STR(cfg->redis_url, "redis://10.0.0.5:6380/2");
	CHECK(cfg->redis_timeout_ms == 80);
	CHECK(cfg->max_entries == 5 && cfg->max_bytes == 4096);
	CHECK(!cfg->topic_tools);
	CHECK(cache_ttl_for(cfg, "tools/list", NULL) == 60);
	CHECK(cache_ttl_for(cfg, "tools/call", "pickTopic") == 120);
	CHECK(cache_ttl_for(cfg, "tools/call", "pickModel") == 0); /* 0 turns a default off */
	CHECK(cache_ttl_for(cfg, "topics", NULL) == 600);          /* untouched default */
	/* the LRU bounds mean nothing with Redis: a warning, not an error */
	CHECK(diag.errors == 0 && diag_has(false, "cache.max_entries: bounds the in-process"));
}

static void test_never_cached(void)
{
	const char *tools[] = {"getData", "runQuery", "askOmni", "runSavedQuery"};

	CHECK(parse("{}") != NULL);
	for (size_t i = 0; i < 4; i++) {
		CHECK(cache_ttl_for(cfg, "tools/call", tools[i]) == 0);
		CHECK(cache_tool_is_data_query(tools[i]));
		CHECK(parse("{'cache':{'ttl_s':{'%s':60}}}", tools[i]) == NULL);
		{
			char want[64];

			snprintf(want, sizeof(want), "cache.ttl_s.%s: data queries", tools[i]);
			CHECK(diag_has(true, want));
		}
		parse("{}");
	}
	CHECK(cache_tool_is_data_query("GETDATA"));
	CHECK(!cache_tool_is_data_query("pickModel"));
	CHECK(!cache_tool_is_data_query(NULL));
	CHECK(cache_ttl_for(cfg, "tools/call", NULL) == 0);
	CHECK(parse("{'cache':{'ttl_s':{'tools/call':60}}}") == NULL);
	CHECK(diag_has(true, "cache.ttl_s.tools/call: name the tool"));
	CHECK(parse("{'cache':{'enabled':false}}") != NULL);
	CHECK(cache_ttl_for(cfg, "tools/list", NULL) == 0);
	CHECK(cache_ttl_for(NULL, "tools/list", NULL) == 0);
}

static void test_mistakes(void)
{
	struct {
		const char *config, *want;
	} cases[] = {
		{"{'cache':{'xyz':1}}", "cache.xyz: unknown key"},
		{"{'redis':{'url':'redis://h','xyz':1}}", "redis.xyz: unknown key"},
		{"{'cache':[]}", "cache: expected an object"},
		{"{'redis':'redis://h'}", "redis: expected an object"},
		{"{'redis':{}}", "redis.url: required"},
		{"{'redis':{'url':5}}", "redis.url: expected a non-empty string"},
		{"{'redis':{'url':''}}", "redis.url: expected a non-empty string"},
		{"{'redis':{'url':'http://h'}}", "redis.url: expected redis://"},
		{"{'redis':{'url':'rediss://h'}}", "redis.url: TLS (rediss://) is not supported"},
		{"{'redis':{'url':'redis://h:99999'}}", "redis.url: port must be"},
		{"{'redis':{'url':'redis://h/x'}}", "redis.url: database must be"},
		{"{'redis':{'url':'redis://h','timeout_ms':0}}", "redis.timeout_ms: expected a whole number"},
		{"{'redis':{'url':'redis://h','timeout_ms':'50'}}", "redis.timeout_ms: expected"},
		{"{'redis':{'url':'redis://h','timeout_ms':1.5}}", "redis.timeout_ms: expected"},
		{"{'redis':{'url':'redis://h','url_env':'X'}}", "redis.url_env: give one of"},
		{"{'redis':{'url_env':'GWT_CACHE_UNSET'}}", "redis.url_env: environment variable"},
		{"{'redis':{'url_file':'/nonexistent/redis-url'}}", "redis.url_file: cannot read"},
		{"{'cache':{'enabled':1}}", "cache.enabled: expected true or false"},
		{"{'cache':{'topic_tools':'yes'}}", "cache.topic_tools: expected true or false"},
		{"{'cache':{'max_entries':0}}", "cache.max_entries: expected a whole number"},
		{"{'cache':{'max_bytes':10}}", "cache.max_bytes: expected a whole number from 1024"},
		{"{'cache':{'ttl_s':5}}", "cache.ttl_s: expected an object"},
		{"{'cache':{'ttl_s':{'pickModel':-1}}}", "cache.ttl_s.pickModel: expected a whole number"},
		{"{'cache':{'ttl_s':{'pickModel':'300'}}}", "cache.ttl_s.pickModel: expected"},
		{"{'cache':{'ttl_s':{'':10}}}", "cache.ttl_s.: empty name"},
		{"{'cache':{'ttl_s':{'a':1,'a':2}}}", "cache.ttl_s.a: set more than once"},
		{"{'cache':{'enabled':true,'enabled':false}}", "cache.enabled: set more than once"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		CHECK(parse("%s", cases[i].config) == NULL);
		if (!diag_has(true, cases[i].want))
			fprintf(stderr, "case %zu: %s: no error \"%s\"\n", i, cases[i].config,
				cases[i].want);
		CHECK(diag_has(true, cases[i].want));
	}
}

static void test_url_secrets(void)
{
	char path[] = "/tmp/gwcache-url-XXXXXX";
	int fd = mkstemp(path);
	const char content[] = "redis://:from-file@127.0.0.1:6379/1\n";

	CHECK(parse("{'redis':{'url':'redis://:s3cret@h:1/0'}}") != NULL);
	CHECK(diag_has(false, "redis.url: password written inline"));
	/* no line names the password */
	for (size_t i = 0; i < diag.n; i++)
		CHECK(!strstr(diag.lines[i], "s3cret"));
	setenv("GWT_CACHE_REDIS_URL", "redis://:from-env@h:1/0", 1);
	CHECK(parse("{'redis':{'url_env':'GWT_CACHE_REDIS_URL'}}") != NULL);
	CHECK(diag.n == 0);
	CHECK_STR(cfg->redis_url, "redis://:from-env@h:1/0");
	CHECK(fd >= 0 && write(fd, content, sizeof(content) - 1) == (ssize_t)sizeof(content) - 1);
	close(fd);
	CHECK(parse("{'redis':{'url_file':'%s'}}", path) != NULL);
	CHECK_STR(cfg->redis_url, "redis://:from-file@127.0.0.1:6379/1");
	unlink(path);
	/* a wrong URL in the environment names the key it came from, not the secret */
	setenv("GWT_CACHE_REDIS_URL", "redis://:pw@h:0", 1);
	CHECK(parse("{'redis':{'url_env':'GWT_CACHE_REDIS_URL'}}") == NULL);
	CHECK(diag_has(true, "redis.url_env: port must be"));
	for (size_t i = 0; i < diag.n; i++)
		CHECK(!strstr(diag.lines[i], ":pw@"));
}

static void test_url_parse(void)
{
	struct cache_redis_url u;
	char *err = NULL;

	CHECK(cache_redis_url_parse("redis://127.0.0.1:6379/0", &u, &err) == 0);
	CHECK_STR(u.host, "127.0.0.1");
	CHECK(u.port == 6379 && u.db == 0 && !u.password && !u.user && !u.socket_path);
	CHECK_STR(u.where, "127.0.0.1:6379/0");
	cache_redis_url_fini(&u);

	CHECK(cache_redis_url_parse("redis://cache.internal", &u, &err) == 0);
	CHECK_STR(u.host, "cache.internal");
	CHECK(u.port == 6379 && u.db == 0);
	cache_redis_url_fini(&u);

	CHECK(cache_redis_url_parse("redis://:p%40ss@w0rd@h:7000/3", &u, &err) == 0);
	CHECK_STR(u.password, "p@ss@w0rd");
	CHECK(!u.user);
	CHECK_STR(u.host, "h");
	CHECK(u.port == 7000 && u.db == 3);
	CHECK_STR(u.where, "h:7000/3"); /* no credentials in what is logged */
	cache_redis_url_fini(&u);

	CHECK(cache_redis_url_parse("redis://gw:pw@[::1]:6380/", &u, &err) == 0);
	CHECK_STR(u.user, "gw");
	CHECK_STR(u.password, "pw");
	CHECK_STR(u.host, "::1");
	CHECK(u.port == 6380 && u.db == 0);
	CHECK_STR(u.where, "[::1]:6380/0");
	cache_redis_url_fini(&u);

	CHECK(cache_redis_url_parse("unix:///run/redis/redis.sock?db=4", &u, &err) == 0);
	CHECK_STR(u.socket_path, "/run/redis/redis.sock");
	CHECK(!u.host && u.db == 4);
	cache_redis_url_fini(&u);

	CHECK(cache_redis_url_parse("unix://:pw@/tmp/r.sock", &u, &err) == 0);
	CHECK_STR(u.password, "pw");
	CHECK_STR(u.socket_path, "/tmp/r.sock");
	cache_redis_url_fini(&u);

	{
		const char *bad[] = {"redis://", "redis://:@h", "redis://pw@h", "redis://h:",
				     "redis://h:0", "redis://h:6379/db", "redis://h:6379/0/1",
				     "redis://[::1", "redis://:%zz@h", "unix://relative.sock",
				     "unix:///s.sock?database=1", "tcp://h", "redis://:%00@h"};

		for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
			err = NULL;
			CHECK(cache_redis_url_parse(bad[i], &u, &err) == -1);
			CHECK(err != NULL);
			if (err && strstr(err, "pw"))
				CHECK(!"an error repeats the password");
			free(err);
		}
	}
}

static void test_purge_sync_without_redis(void)
{
	long deleted = 7;
	char *err = NULL;

	CHECK(parse("{}") != NULL);
	CHECK(cache_purge_sync(cfg, NULL, &deleted, &err) == -1);
	CHECK(err && strncmp(err, "in-process cache: ", 18) == 0);
	CHECK(deleted == 0);
	free(err);
	/* nothing listens on port 1: the CLI gets an error, quickly */
	CHECK(parse("{'redis':{'url':'redis://127.0.0.1:1/0'}}") != NULL);
	err = NULL;
	CHECK(cache_purge_sync(cfg, NULL, &deleted, &err) == -1);
	CHECK(err && strstr(err, "cannot connect to redis at 127.0.0.1:1/0"));
	free(err);
}

int main(void)
{
	unsetenv("GWT_CACHE_UNSET");
	test_defaults();
	test_full();
	test_never_cached();
	test_mistakes();
	test_url_secrets();
	test_url_parse();
	test_purge_sync_without_redis();
	cache_config_free(cfg);
	gw_diag_fini(&diag);
	TEST_REPORT();
}
