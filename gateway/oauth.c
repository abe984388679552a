/* The authorization server's state and rules, apart from HTTP: the store, the relying party,
 * the access-token memo, and the checks on redirect URIs, PKCE and sign-ins. */
#include "gateway/oauth.h"

#include <arpa/inet.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cache/lru.h"
#include "gateway/auth.h"
#include "gateway/jwt.h"
#include "gateway/oauth_store.h"
#include "gateway/oidc.h"
#include "gateway/util.h"

/* In memory, what anyone may create (client registrations, sign-ins begun) is kept apart from
 * what only a signed-in person creates (codes, tokens), so that a flood of registrations can
 * evict other registrations but never a member's tokens. */
#define OPEN_STORE_MAX_ENTRIES 20000
#define STORE_MAX_ENTRIES 100000
#define MEMO_MAX_ENTRIES 10000
#define MEMO_MAX_BYTES (4 << 20)

struct gw_oauth {
	struct oauth_store *store;      /* codes and tokens */
	struct oauth_store *open_store; /* registrations and sign-ins in progress */
	struct gw_oidc *oidc;
	struct cache_lru *memo; /* NULL in memory mode */
};

struct gw_oauth *gw_oauth_new(struct event_base *base, struct cache_redis *redis)
{
	struct gw_oauth *o = gw_xcalloc(1, sizeof(*o));

	o->store = oauth_store_new(base, redis, STORE_MAX_ENTRIES);
	o->open_store = oauth_store_new(base, redis, OPEN_STORE_MAX_ENTRIES);
	o->oidc = gw_oidc_new(base);
	if (redis)
		o->memo = cache_lru_new(MEMO_MAX_ENTRIES, MEMO_MAX_BYTES);
	return o;
}

void gw_oauth_free(struct gw_oauth *o)
{
	if (!o)
		return;
	gw_oidc_free(o->oidc);
	oauth_store_free(o->store);
	oauth_store_free(o->open_store);
	if (o->memo)
		cache_lru_free(o->memo);
	free(o);
}

void gw_oauth_configure(struct gw_oauth *o, const struct gw_config *cfg)
{
	gw_oidc_configure(o->oidc, &cfg->oauth);
}

struct oauth_store *gw_oauth_store(struct gw_oauth *o)
{
	return o->store;
}

struct oauth_store *gw_oauth_open_store(struct gw_oauth *o)
{
	return o->open_store;
}

struct gw_oidc *gw_oauth_oidc(struct gw_oauth *o)
{
	return o->oidc;
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *gw_oauth_token_cached(struct gw_oauth *o, const char *key, size_t *len)
{
	return o->memo ? cache_lru_get(o->memo, key, len, now_ms()) : NULL;
}

void gw_oauth_token_keep(struct gw_oauth *o, const char *key, const char *record, size_t len,
			 long ttl_s)
{
	if (o->memo && ttl_s > 0)
		cache_lru_set(o->memo, key, record, len, ttl_s * 1000, now_ms());
}

void gw_oauth_secret_new(char *out, size_t size, const char *prefix)
{
	unsigned char raw[32];
	size_t n = strlen(prefix);

	if (size < n + gw_b64url_len(sizeof(raw)) + 1 || RAND_bytes(raw, sizeof(raw)) != 1)
		abort();
	memcpy(out, prefix, n);
	gw_b64url_encode(raw, sizeof(raw), out + n);
	OPENSSL_cleanse(raw, sizeof(raw));
}

void gw_oauth_key(char out[GW_OAUTH_KEY_MAX], const char *kind, const char *secret)
{
	char hex[65];

	gw_auth_sha256_hex(secret, strlen(secret), hex);
	snprintf(out, GW_OAUTH_KEY_MAX, "%s%s", kind, hex);
}

static bool unreserved(const char *s, size_t min, size_t max)
{
	size_t n = strlen(s);

	if (n < min || n > max)
		return false;
	for (; *s; s++)
		if (!(('A' <= *s && *s <= 'Z') || ('a' <= *s && *s <= 'z') ||
		      ('0' <= *s && *s <= '9') || strchr("-._~", *s)))
			return false;
	return true;
}

void gw_oauth_challenge_of(const char *verifier, char out[44])
{
	unsigned char digest[SHA256_DIGEST_LENGTH];

	SHA256((const unsigned char *)verifier, strlen(verifier), digest);
	gw_b64url_encode(digest, sizeof(digest), out);
}

bool gw_oauth_challenge_valid(const char *challenge)
{
	return unreserved(challenge, 43, 43) && !strpbrk(challenge, ".~");
}

bool gw_oauth_pkce_ok(const char *verifier, const char *challenge)
{
	char expect[44];

	if (!unreserved(verifier, 43, 128) || strlen(challenge) != 43)
		return false;
	gw_oauth_challenge_of(verifier, expect);
	return CRYPTO_memcmp(expect, challenge, 43) == 0;
}

/* http://<loopback>[:port]/... : the host a native client listens on for its redirect. */
static bool loopback_http(const char *uri)
{
	const char *host, *end;
	char name[64];
	struct in_addr a4;

	if (strncmp(uri, "http://", 7) != 0)
		return false;
	host = uri + 7;
	if (strncmp(host, "[::1]", 5) == 0)
		end = host + 5;
	else {
		end = host + strcspn(host, ":/?#@");
		if (*end == '@' || (size_t)(end - host) >= sizeof(name))
			return false;
		memcpy(name, host, end - host);
		name[end - host] = '\0';
		if (strcasecmp(name, "localhost") != 0 &&
		    (inet_pton(AF_INET, name, &a4) != 1 || (ntohl(a4.s_addr) >> 24) != 127))
			return false;
	}
	if (*end == ':')
		for (end++; '0' <= *end && *end <= '9'; end++)
			;
	return *end == '\0' || *end == '/' || *end == '?';
}

bool gw_oauth_url_printable(const char *url)
{
	for (const unsigned char *p = (const unsigned char *)url; *p; p++)
		if (*p <= ' ' || *p >= 0x7f)
			return false;
	return *url != '\0';
}

bool gw_oauth_redirect_allowed(const struct gw_oauth_config *oauth, const char *uri)
{
	/* It becomes a Location header: no spaces or control characters (header injection). */
	if (strchr(uri, '#') || strlen(uri) > 2048 || !gw_oauth_url_printable(uri))
		return false;
	for (size_t i = 0; i < oauth->redirect_uris.n; i++)
		if (strcmp(oauth->redirect_uris.items[i], uri) == 0)
			return true;
	return loopback_http(uri);
}

const struct gw_member *gw_oauth_member_of(const struct gw_config *cfg, const cJSON *claims,
					   const char **claim_value, const char **refused)
{
	const char *claim = cfg->oauth.provider_claim;
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(claims, claim);
	const cJSON *verified = cJSON_GetObjectItemCaseSensitive(claims, "email_verified");

	*claim_value = NULL;
	*refused = NULL;
	if (!cJSON_IsString(v) || !*v->valuestring) {
		*refused = "the provider's ID token lacks the claim that names members";
		return NULL;
	}
	*claim_value = v->valuestring;
	/* An address the provider has not verified could be anyone's. */
	if (strcmp(claim, "email") == 0 &&
	    (cJSON_IsFalse(verified) ||
	     (cJSON_IsString(verified) && strcmp(verified->valuestring, "false") == 0))) {
		*refused = "the provider has not verified this email address";
		return NULL;
	}
	for (size_t i = 0; i < cfg->n_members; i++)
		if (cfg->members[i].sign_in && strcasecmp(cfg->members[i].sign_in, v->valuestring) == 0)
			return &cfg->members[i];
	return NULL;
}

const struct gw_member *gw_oauth_member_named(const struct gw_config *cfg, const char *name,
					      const char *sign_in)
{
	if (!name || !sign_in)
		return NULL;
	for (size_t i = 0; i < cfg->n_members; i++) {
		const struct gw_member *m = &cfg->members[i];

		if (strcmp(m->name, name) == 0)
			return m->sign_in && strcasecmp(m->sign_in, sign_in) == 0 ? m : NULL;
	}
	return NULL;
}
