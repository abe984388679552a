/* The gateway's OAuth authorization server: its state (a store shared by replicas through
 * Redis, or in memory), its relying-party side (gateway/oidc.h), and the pure rules the
 * endpoints in gateway/req_oauth.c apply: redirect URIs, PKCE, tokens and their records. */
#ifndef GW_OAUTH_H
#define GW_OAUTH_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "gateway/config.h"

struct event_base;
struct cache_redis;
struct oauth_store;
struct gw_oidc;

#define GW_OAUTH_ACCESS_PREFIX "gwat_"
#define GW_OAUTH_REFRESH_PREFIX "gwrt_"
#define GW_OAUTH_SCOPE "mcp"
#define GW_OAUTH_PENDING_TTL_S 600 /* a person has this long to sign in at the provider */
/* A store key: a kind ("client:", "code:", ...) and 64 hex digits of a secret's SHA-256. */
#define GW_OAUTH_KEY_MAX 96

struct gw_oauth;

/* redis NULL: state in memory. redis must outlive the returned object. */
struct gw_oauth *gw_oauth_new(struct event_base *base, struct cache_redis *redis);
void gw_oauth_free(struct gw_oauth *o);
/* Takes a (re)loaded config; cfg must stay valid until the next call. */
void gw_oauth_configure(struct gw_oauth *o, const struct gw_config *cfg);
/* Codes and tokens (written only for a signed-in member). */
struct oauth_store *gw_oauth_store(struct gw_oauth *o);
/* Client registrations and sign-ins in progress (written by anyone). In Redis both are the
 * same keyspace; in memory they are bounded apart. */
struct oauth_store *gw_oauth_open_store(struct gw_oauth *o);
struct gw_oidc *gw_oauth_oidc(struct gw_oauth *o);

/* Access tokens already read from Redis, kept until they expire so that a member's requests do
 * not each ask Redis (in memory mode the store is local already and this keeps nothing). */
const char *gw_oauth_token_cached(struct gw_oauth *o, const char *key, size_t *len);
void gw_oauth_token_keep(struct gw_oauth *o, const char *key, const char *record, size_t len,
			 long ttl_s);

/* A fresh secret: prefix and 32 random bytes in base64url (out holds at least 64 bytes). */
void gw_oauth_secret_new(char *out, size_t size, const char *prefix);
/* The store key of a secret: kind followed by the secret's SHA-256 in hex. */
void gw_oauth_key(char out[GW_OAUTH_KEY_MAX], const char *kind, const char *secret);
/* PKCE S256 (RFC 7636): base64url(SHA-256(verifier)) equals challenge, and verifier is 43 to
 * 128 unreserved characters. */
bool gw_oauth_pkce_ok(const char *verifier, const char *challenge);
/* A code_challenge's shape: 43 base64url characters. */
bool gw_oauth_challenge_valid(const char *challenge);
/* The challenge of verifier (out holds 44 bytes). */
void gw_oauth_challenge_of(const char *verifier, char out[44]);
/* A URL without spaces, control characters or non-ASCII bytes (safe in a header). */
bool gw_oauth_url_printable(const char *url);
/* Whether a client may register uri: http on a loopback address with any port (RFC 8252 §7.3),
 * or one of the operator's redirect_uris exactly. Never a fragment. */
bool gw_oauth_redirect_allowed(const struct gw_oauth_config *oauth, const char *uri);

/* The member a sign-in names: the configured claim's value compared with users[].sign_in
 * (without regard to case). NULL when none; *refused says why nobody was looked up (the
 * claim is missing, or email_verified is false). */
const struct gw_member *gw_oauth_member_of(const struct gw_config *cfg, const cJSON *claims,
					   const char **claim_value, const char **refused);
/* The member a token record names, if they may still sign in: the same name and sign_in. */
const struct gw_member *gw_oauth_member_named(const struct gw_config *cfg, const char *name,
					      const char *sign_in);

#endif
