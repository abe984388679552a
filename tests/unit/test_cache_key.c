/* Unit tests for cache/key.c: identities hide the credential, keys are stable for the same
 * tuple whatever the order of argument keys, differ when any field differs (concatenation
 * included), and never reveal a PAT. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#include "cache/key.h"
#include "tests/unit/harness.h"

#define PAT_A "omni-pat-of-alice-0123456789"
#define PAT_B "omni-pat-of-bob-9876543210"
#define ORG "org-key-of-the-team"

static cJSON *json(const char *text)
{
	cJSON *v = cJSON_Parse(text);

	if (!v) {
		fprintf(stderr, "bad test JSON: %s\n", text);
		exit(2);
	}
	return v;
}

static bool all_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isxdigit((unsigned char)s[i]) || isupper((unsigned char)s[i]))
			return false;
	return true;
}

static void sha256_hex(const char *s, char out[65])
{
	unsigned char d[32];

	SHA256((const unsigned char *)s, strlen(s), d);
	for (int i = 0; i < 32; i++)
		sprintf(out + 2 * i, "%02x", d[i]);
}

static void test_identity(void)
{
	char *pat = cache_identity(PAT_A, false, NULL);
	char *pat_user = cache_identity(PAT_A, false, "u-42");
	char *org_user = cache_identity(ORG, true, "u-42");
	char *org = cache_identity(ORG, true, NULL);
	char *empty_user = cache_identity(PAT_A, false, "");
	char hex[65];

	sha256_hex(PAT_A, hex);
	CHECK(pat && strncmp(pat, "pat:", 4) == 0 && strlen(pat) == 36 && all_hex(pat + 4, 32));
	CHECK(pat && strncmp(pat + 4, hex, 32) == 0);
	CHECK(!strstr(pat, PAT_A));
	CHECK(pat_user && strncmp(pat_user, pat, 36) == 0);
	CHECK_STR(pat_user + 36, ":user:u-42");
	CHECK(org_user && strncmp(org_user, "org:", 4) == 0 && strlen(org_user) == 46);
	CHECK(!strstr(org_user, ORG));
	CHECK_STR(org_user + 36, ":user:u-42");
	CHECK(org && strlen(org) == 36 && strncmp(org, "org:", 4) == 0);
	CHECK_STR(empty_user, pat); /* "" is no user */
	CHECK(cache_identity(NULL, false, "u") == NULL);
	CHECK(cache_identity("", true, "u") == NULL);
	/* the same secret as a PAT or as the team key is not the same identity */
	{
		char *as_org = cache_identity(PAT_A, true, NULL);

		CHECK(strcmp(as_org, pat) != 0);
		free(as_org);
	}
	free(pat);
	free(pat_user);
	free(org_user);
	free(org);
	free(empty_user);
}

static void test_canonical(void)
{
	struct {
		const char *in, *out;
	} cases[] = {
		{"{\"b\":1,\"a\":2}", "{\"a\":2,\"b\":1}"},
		{"{ \"z\" : [ 3 , { \"d\" : true , \"c\" : null } ] , \"a\" : false }",
		 "{\"a\":false,\"z\":[3,{\"c\":null,\"d\":true}]}"},
		{"{\"s\":\"q\\\"b\\\\n\\n\\u0001é\"}", "{\"s\":\"q\\\"b\\\\n\\u000a\\u0001é\"}"},
		{"{\"n\":1.5,\"m\":1e3,\"k\":-0.25,\"i\":12345678901}",
		 "{\"i\":12345678901,\"k\":-0.25,\"m\":1000,\"n\":1.5}"},
		{"{\"B\":1,\"a\":2,\"_\":3}", "{\"B\":1,\"_\":3,\"a\":2}"}, /* byte order */
		{"[2,1]", "[2,1]"},                                       /* arrays keep order */
		{"{}", "{}"},
		{"null", "{}"},
		{"\"text\"", "\"text\""},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		cJSON *v = json(cases[i].in);
		char *c = cache_canonical_json(v);

		CHECK_STR(c, cases[i].out);
		free(c);
		cJSON_Delete(v);
	}
	{
		char *c = cache_canonical_json(NULL);

		CHECK_STR(c, "{}");
		free(c);
	}
}

/* A key is "omnigw:v1:" + 32 hex + ":" + 64 hex. */
static bool key_shape(const char *k)
{
	return k && strlen(k) == 10 + 32 + 1 + 64 && strncmp(k, CACHE_KEY_NAMESPACE, 10) == 0 &&
	       all_hex(k + 10, 32) && k[42] == ':' && all_hex(k + 43, 64);
}

static void test_key_stable(void)
{
	char *id = cache_identity(PAT_A, false, "u-1");
	cJSON *a1 = json("{\"modelId\":\"m1\",\"opts\":{\"x\":1,\"y\":[1,2]}}");
	cJSON *a2 = json("{ \"opts\" : { \"y\" : [1, 2], \"x\" : 1 }, \"modelId\" : \"m1\" }");
	char *k1 = cache_key(id, "m1", "t1", "tools/call", "pickModel", a1);
	char *k2 = cache_key(id, "m1", "t1", "tools/call", "pickModel", a2);
	char *k3 = cache_key(id, "m1", "t1", "tools/call", "pickModel", a1);
	char *prefix = cache_identity_prefix(id);

	CHECK(key_shape(k1));
	CHECK_STR(k1, k2);
	CHECK_STR(k1, k3);
	CHECK(prefix && strlen(prefix) == 43 && strncmp(k1, prefix, strlen(prefix)) == 0);
	free(k1);
	free(k2);
	free(k3);
	free(prefix);
	free(id);
	cJSON_Delete(a1);
	cJSON_Delete(a2);
}

static void test_key_no_arguments(void)
{
	cJSON *empty = json("{}"), *null = json("null");
	char *k_null = cache_key("pat:x", NULL, NULL, "tools/list", NULL, NULL);
	char *k_empty = cache_key("pat:x", NULL, NULL, "tools/list", NULL, empty);
	char *k_jnull = cache_key("pat:x", NULL, NULL, "tools/list", NULL, null);

	CHECK_STR(k_null, k_empty);
	CHECK_STR(k_null, k_jnull);
	free(k_null);
	free(k_empty);
	free(k_jnull);
	cJSON_Delete(empty);
	cJSON_Delete(null);
}

/* Every field matters, NULL is not "", and moving bytes between fields changes the key. */
static void test_key_fields(void)
{
	cJSON *args = json("{\"q\":\"x\"}"), *args2 = json("{\"q\":\"y\"}");
	const char *base_id = "pat:aaaa:user:u";
	char *keys[12];
	size_t n = 0;

	keys[n++] = cache_key(base_id, "m", "t", "tools/call", "pickModel", args);
	keys[n++] = cache_key("pat:aaaa:user:v", "m", "t", "tools/call", "pickModel", args);
	keys[n++] = cache_key(base_id, "m2", "t", "tools/call", "pickModel", args);
	keys[n++] = cache_key(base_id, "m", "t2", "tools/call", "pickModel", args);
	keys[n++] = cache_key(base_id, "m", "t", "tools/list", "pickModel", args);
	keys[n++] = cache_key(base_id, "m", "t", "tools/call", "pickTopic", args);
	keys[n++] = cache_key(base_id, "m", "t", "tools/call", "pickModel", args2);
	keys[n++] = cache_key(base_id, NULL, "t", "tools/call", "pickModel", args);
	keys[n++] = cache_key(base_id, "", "t", "tools/call", "pickModel", args);
	keys[n++] = cache_key(base_id, "mt", "", "tools/call", "pickModel", args);
	keys[n++] = cache_key(base_id, "m", "t", "tools/call", NULL, args);
	keys[n++] = cache_key(base_id, "m", "t", "tools/call", "", args);
	for (size_t i = 0; i < n; i++) {
		CHECK(key_shape(keys[i]));
		for (size_t j = 0; j < i; j++)
			if (strcmp(keys[i], keys[j]) == 0)
				fprintf(stderr, "keys %zu and %zu collide\n", j, i);
	}
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < i; j++)
			CHECK(strcmp(keys[i], keys[j]) != 0);
	/* concatenation: ("ab","c") vs ("a","bc") */
	{
		char *x = cache_key(base_id, "ab", "c", "m", NULL, NULL);
		char *y = cache_key(base_id, "a", "bc", "m", NULL, NULL);

		CHECK(strcmp(x, y) != 0);
		free(x);
		free(y);
	}
	for (size_t i = 0; i < n; i++)
		free(keys[i]);
	cJSON_Delete(args);
	cJSON_Delete(args2);
}

/* Two members with different PATs never share a key, nor a purge prefix, and no part of a key
 * gives away a PAT or the hash kept in the identity. */
static void test_members_apart(void)
{
	char *ida = cache_identity(PAT_A, false, NULL), *idb = cache_identity(PAT_B, false, NULL);
	char *ka = cache_key(ida, NULL, NULL, "tools/list", NULL, NULL);
	char *kb = cache_key(idb, NULL, NULL, "tools/list", NULL, NULL);
	char *pa = cache_identity_prefix(ida), *pb = cache_identity_prefix(idb);
	char hex[65];

	CHECK(strcmp(ka, kb) != 0);
	CHECK(strcmp(pa, pb) != 0);
	CHECK(strncmp(kb, pa, strlen(pa)) != 0);
	CHECK(!strstr(ka, PAT_A) && !strstr(ka, ida + 4));
	sha256_hex(PAT_A, hex);
	hex[16] = '\0';
	CHECK(!strstr(ka, hex) && !strstr(pa, hex));
	free(ida);
	free(idb);
	free(ka);
	free(kb);
	free(pa);
	free(pb);
}

int main(void)
{
	test_identity();
	test_canonical();
	test_key_stable();
	test_key_no_arguments();
	test_key_fields();
	test_members_apart();
	TEST_REPORT();
}
