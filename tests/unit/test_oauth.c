/* Unit tests for gateway/oauth.c's rules: which redirect URIs a client may register, PKCE S256,
 * the secrets and store keys, and which member a sign-in or a token record names. */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "gateway/config.h"
#include "gateway/oauth.h"
#include "tests/unit/harness.h"

static struct gw_config *config(const char *json)
{
	struct gw_diag diag = {0};
	char text[2048];
	struct gw_config *cfg;

	snprintf(text, sizeof(text), "%s", json);
	for (char *c = text; *c; c++)
		if (*c == '\'')
			*c = '"';
	cfg = gw_config_parse(text, strlen(text), &diag);
	for (size_t i = 0; !cfg && i < diag.n; i++)
		fprintf(stderr, "  %s\n", diag.lines[i]);
	gw_diag_fini(&diag);
	return cfg;
}

static void test_redirects(void)
{
	struct gw_oauth_config o = {0};
	char *listed[] = {"cursor://anysphere.cursor-mcp/oauth/callback",
			  "https://app.team.example/cb"};
	static const char *const allowed[] = {
		"http://127.0.0.1:33418/callback", "http://127.0.0.1/cb", "http://127.9.9.9:1/",
		"http://localhost:5173/oauth/callback", "http://LOCALHOST:1", "http://[::1]:8080/cb",
		"http://127.0.0.1:4000/cb?x=1", "cursor://anysphere.cursor-mcp/oauth/callback",
		"https://app.team.example/cb",
	};
	static const char *const refused[] = {
		"https://127.0.0.1:3000/cb",          /* loopback is http only: no certificate */
		"http://128.0.0.1/cb", "http://evil.example/cb", "http://localhost.evil.example/cb",
		"http://127.0.0.1.evil.example/cb", "http://127.0.0.1@evil.example/cb",
		"http://localhost:80@evil.example/", "http://127.0.0.1:1/cb#frag",
		"https://app.team.example/cb/", "https://app.team.example/cb?x", "cursor://other/cb",
		"javascript:alert(1)", "", "http://[::2]:80/", "http://127.0.0.1/cb\r\nSet-Cookie: a=b",
		"http://127.0.0.1/c b", "http://127.0.0.1/caf\xc3\xa9",
	};

	o.redirect_uris.items = listed;
	o.redirect_uris.n = 2;
	for (size_t i = 0; i < sizeof(allowed) / sizeof(*allowed); i++) {
		CHECK(gw_oauth_redirect_allowed(&o, allowed[i]));
		if (!gw_oauth_redirect_allowed(&o, allowed[i]))
			fprintf(stderr, "  refused: %s\n", allowed[i]);
	}
	for (size_t i = 0; i < sizeof(refused) / sizeof(*refused); i++) {
		CHECK(!gw_oauth_redirect_allowed(&o, refused[i]));
		if (gw_oauth_redirect_allowed(&o, refused[i]))
			fprintf(stderr, "  allowed: %s\n", refused[i]);
	}
}

static void test_pkce(void)
{
	/* RFC 7636 appendix B. */
	const char *verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
	const char *challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
	char out[44];
	char long_verifier[130];

	gw_oauth_challenge_of(verifier, out);
	CHECK_STR(out, challenge);
	CHECK(gw_oauth_pkce_ok(verifier, challenge));
	CHECK(gw_oauth_challenge_valid(challenge));
	CHECK(!gw_oauth_pkce_ok("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXj", challenge));
	CHECK(!gw_oauth_pkce_ok(verifier, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cN"));
	CHECK(!gw_oauth_pkce_ok("short", challenge));
	CHECK(!gw_oauth_pkce_ok("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjX k", challenge));
	memset(long_verifier, 'a', 129);
	long_verifier[129] = '\0';
	CHECK(!gw_oauth_pkce_ok(long_verifier, challenge)); /* 129 > 128 */
	long_verifier[128] = '\0';
	gw_oauth_challenge_of(long_verifier, out);
	CHECK(gw_oauth_pkce_ok(long_verifier, out));
	/* plain (challenge == verifier) is not S256 */
	CHECK(!gw_oauth_pkce_ok(verifier, verifier));
	CHECK(!gw_oauth_challenge_valid("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-c"));
	CHECK(!gw_oauth_challenge_valid("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw+cM"));
	CHECK(!gw_oauth_challenge_valid("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw.cM"));
}

static void test_secrets(void)
{
	char a[64], b[64], key[GW_OAUTH_KEY_MAX];

	gw_oauth_secret_new(a, sizeof(a), GW_OAUTH_ACCESS_PREFIX);
	gw_oauth_secret_new(b, sizeof(b), GW_OAUTH_ACCESS_PREFIX);
	CHECK(strncmp(a, "gwat_", 5) == 0 && strlen(a) == 5 + 43);
	CHECK(strcmp(a, b) != 0);
	CHECK(strspn(a + 5, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") == 43);
	gw_oauth_key(key, "access:", "abc");
	/* SHA-256("abc"): the key never holds the secret itself */
	CHECK_STR(key, "access:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void test_members(void)
{
	struct gw_config *cfg = config(
		"{'upstream':{'url':'https://acme.omniapp.co/mcp/https'},"
		"'oauth':{'public_url':'https://mcp.team.example','provider':{'issuer':"
		"'https://idp.example','client_id':'gw'}},'users':["
		"{'name':'alice','sign_in':'Alice@Team.example','omni_pat':'p1'},"
		"{'name':'bob','token_sha256':'" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		"','omni_pat':'p2'}]}");
	cJSON *claims;
	const char *who, *refused;

	CHECK(cfg != NULL);
	if (!cfg)
		return;
	claims = cJSON_Parse("{\"email\":\"alice@team.EXAMPLE\",\"email_verified\":true}");
	CHECK(gw_oauth_member_of(cfg, claims, &who, &refused) == &cfg->members[0]);
	CHECK_STR(who, "alice@team.EXAMPLE");
	cJSON_Delete(claims);
	/* no email_verified claim at all (Entra ID): accepted */
	claims = cJSON_Parse("{\"email\":\"alice@team.example\"}");
	CHECK(gw_oauth_member_of(cfg, claims, &who, &refused) == &cfg->members[0]);
	cJSON_Delete(claims);
	claims = cJSON_Parse("{\"email\":\"alice@team.example\",\"email_verified\":false}");
	CHECK(gw_oauth_member_of(cfg, claims, &who, &refused) == NULL && refused != NULL);
	cJSON_Delete(claims);
	claims = cJSON_Parse("{\"email\":\"alice@team.example\",\"email_verified\":\"false\"}");
	CHECK(gw_oauth_member_of(cfg, claims, &who, &refused) == NULL && refused != NULL);
	cJSON_Delete(claims);
	claims = cJSON_Parse("{\"email\":\"eve@elsewhere.example\",\"email_verified\":true}");
	CHECK(gw_oauth_member_of(cfg, claims, &who, &refused) == NULL && refused == NULL);
	CHECK_STR(who, "eve@elsewhere.example");
	cJSON_Delete(claims);
	claims = cJSON_Parse("{\"sub\":\"1\"}");
	CHECK(gw_oauth_member_of(cfg, claims, &who, &refused) == NULL && refused != NULL);
	cJSON_Delete(claims);
	/* bob has no sign_in: nobody can sign in as him, not even with his name */
	claims = cJSON_Parse("{\"email\":\"bob\"}");
	CHECK(gw_oauth_member_of(cfg, claims, &who, &refused) == NULL);
	cJSON_Delete(claims);

	CHECK(gw_oauth_member_named(cfg, "alice", "alice@team.example") == &cfg->members[0]);
	CHECK(gw_oauth_member_named(cfg, "alice", "other@team.example") == NULL);
	CHECK(gw_oauth_member_named(cfg, "bob", "bob@team.example") == NULL);
	CHECK(gw_oauth_member_named(cfg, "zed", "alice@team.example") == NULL);
	CHECK(gw_oauth_member_named(cfg, NULL, "alice@team.example") == NULL);
	gw_config_free(cfg);
}

int main(void)
{
	test_redirects();
	test_pkce();
	test_secrets();
	test_members();
	TEST_REPORT();
}
