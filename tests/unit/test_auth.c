/* Unit tests for gateway/auth.c: the tokens `omni-mcp-gateway token` prints, and which member an
 * Authorization header value authenticates as. */
#include <stdlib.h>
#include <string.h>

#include "gateway/auth.h"
#include "tests/unit/harness.h"

static bool url_safe(const char *s)
{
	for (; *s; s++)
		if (!(('A' <= *s && *s <= 'Z') || ('a' <= *s && *s <= 'z') || ('0' <= *s && *s <= '9') ||
		      *s == '-' || *s == '_'))
			return false;
	return true;
}

static bool lower_hex(const char *s)
{
	for (; *s; s++)
		if (!(('0' <= *s && *s <= '9') || ('a' <= *s && *s <= 'f')))
			return false;
	return true;
}

static void test_sha256_hex(void)
{
	char hex[65];

	gw_auth_sha256_hex("abc", 3, hex);
	CHECK_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	gw_auth_sha256_hex("", 0, hex);
	CHECK_STR(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void test_token_new(void)
{
	char seen[16][44];

	for (int i = 0; i < 16; i++) {
		char token[44], sha[65], again[65];

		memset(token, '!', sizeof(token));
		memset(sha, '!', sizeof(sha));
		CHECK(gw_auth_token_new(token, sha) == 0);
		CHECK(strlen(token) == 43);
		CHECK(url_safe(token));
		CHECK(strlen(sha) == 64);
		CHECK(lower_hex(sha));
		/* What goes in the config is the SHA-256 of exactly the token the member uses. */
		gw_auth_sha256_hex(token, strlen(token), again);
		CHECK_STR(sha, again);
		for (int j = 0; j < i; j++)
			CHECK(strcmp(token, seen[j]) != 0);
		memcpy(seen[i], token, sizeof(token));
	}
}

/* A config whose members' token hashes come from gw_auth_sha256_hex, read through the real
 * config loader, so the test covers hex written by `token` -> config -> lookup. */
static struct gw_config *config_with_tokens(const char *tok_a, const char *tok_b,
					    const char *tok_c)
{
	char ha[65], hb[65], hc[65], text[1024];
	struct gw_diag diag = {0};
	struct gw_config *cfg;

	gw_auth_sha256_hex(tok_a, strlen(tok_a), ha);
	gw_auth_sha256_hex(tok_b, strlen(tok_b), hb);
	gw_auth_sha256_hex(tok_c, strlen(tok_c), hc);
	snprintf(text, sizeof(text),
		 "{\"upstream\":{\"url\":\"https://a.example/mcp\"},\"omni_api_key_env\":\"GWT_ORG\","
		 "\"users\":[{\"name\":\"alice\",\"token_sha256\":\"%s\",\"omni_user_id\":\"ua\"},"
		 "{\"name\":\"bob\",\"token_sha256\":\"%s\",\"omni_user_id\":\"ub\"},"
		 "{\"name\":\"nobody\",\"token_sha256\":\"%s\",\"omni_user_id\":\"un\"}]}",
		 ha, hb, hc);
	setenv("GWT_ORG", "org", 1);
	cfg = gw_config_parse(text, strlen(text), &diag);
	for (size_t i = 0; i < diag.n; i++)
		fprintf(stderr, "  config: %s\n", diag.lines[i]);
	gw_diag_fini(&diag);
	return cfg;
}

static const char *who(const struct gw_member *m)
{
	return m ? m->name : "(nobody)";
}

static void test_lookup(void)
{
	char token[44], sha[65];
	struct gw_config *cfg;
	char header[96];

	CHECK(gw_auth_token_new(token, sha) == 0);
	/* The third member's token is empty: an empty bearer token must not match it. */
	cfg = config_with_tokens(token, "tok-bob", "");
	CHECK(cfg != NULL);
	if (!cfg)
		return;

	snprintf(header, sizeof(header), "Bearer %s", token);
	CHECK_STR(who(gw_auth_member(cfg, header)), "alice");
	CHECK_STR(who(gw_auth_member(cfg, "Bearer tok-bob")), "bob");
	/* The scheme is case-insensitive (RFC 9110 11.1), the token is not. */
	CHECK_STR(who(gw_auth_member(cfg, "bearer tok-bob")), "bob");
	CHECK_STR(who(gw_auth_member(cfg, "BEARER tok-bob")), "bob");
	CHECK_STR(who(gw_auth_member(cfg, "Bearer  tok-bob")), "bob");
	CHECK(gw_auth_member(cfg, "Bearer TOK-BOB") == NULL);

	/* wrong, partial or longer tokens */
	CHECK(gw_auth_member(cfg, "Bearer tok-bo") == NULL);
	CHECK(gw_auth_member(cfg, "Bearer tok-bobb") == NULL);
	CHECK(gw_auth_member(cfg, "Bearer tok-bob x") == NULL);
	CHECK(gw_auth_member(cfg, "Bearer wrong") == NULL);
	/* what the config stores is not a token */
	snprintf(header, sizeof(header), "Bearer %s", sha);
	CHECK(gw_auth_member(cfg, header) == NULL);

	/* missing header, other schemes, no token */
	CHECK(gw_auth_member(cfg, NULL) == NULL);
	CHECK(gw_auth_member(cfg, "") == NULL);
	CHECK(gw_auth_member(cfg, "tok-bob") == NULL);
	CHECK(gw_auth_member(cfg, "Basic dG9rLWJvYjo=") == NULL);
	CHECK(gw_auth_member(cfg, "Basic tok-bob") == NULL);
	CHECK(gw_auth_member(cfg, "Bearertok-bob") == NULL);
	CHECK(gw_auth_member(cfg, "Bearer") == NULL);
	CHECK(gw_auth_member(cfg, "Bearer ") == NULL);
	CHECK(gw_auth_member(cfg, "Bearer     ") == NULL);
	gw_config_free(cfg);
}

int main(void)
{
	test_sha256_hex();
	test_token_new();
	test_lookup();
	TEST_REPORT();
}
