/* The gateway as an OpenID Connect relying party of the team's identity provider: discovery
 * from the issuer URL, the code exchange through libcurl, and the ID token verified against the
 * provider's JWKS (kept, and fetched again once when a token names an unknown kid). Everything
 * runs on the loop; every fetch has a time-out. */
#ifndef GW_OIDC_H
#define GW_OIDC_H

#include <cjson/cJSON.h>
#include <event2/event.h>

#include "gateway/config.h"

struct gw_oidc;
struct gw_oidc_op;

enum gw_oidc_result {
	GW_OIDC_OK,
	GW_OIDC_UNAVAILABLE, /* the provider could not be reached or answered out of spec */
	GW_OIDC_REFUSED,     /* the provider refused the code (invalid_grant, ...) */
	GW_OIDC_INVALID,     /* the ID token did not verify (signature, kid, iss, aud, exp, nonce) */
};

/* Called once, from the loop. ready: the provider's authorization endpoint, or NULL when
 * discovery failed. */
typedef void (*gw_oidc_ready_fn)(void *arg, const char *authorization_endpoint);
/* claims: the verified ID token's payload on GW_OIDC_OK (valid during the call only); why: a
 * reason for the log otherwise (never a token). */
typedef void (*gw_oidc_sign_in_fn)(void *arg, enum gw_oidc_result result, const cJSON *claims,
				   const char *why);

struct gw_oidc *gw_oidc_new(struct event_base *base);
/* Cancels everything in flight; no callback is called afterwards. */
void gw_oidc_free(struct gw_oidc *o);

/* Takes the provider settings of a (re)loaded config: a new issuer or CA file forgets what was
 * discovered and starts discovery again. oauth must stay valid until the next call. */
void gw_oidc_configure(struct gw_oidc *o, const struct gw_oauth_config *oauth);

/* The provider's authorization endpoint when discovery has succeeded, else NULL: then
 * gw_oidc_wait_ready calls fn once discovery ends (it starts it when needed). */
const char *gw_oidc_authorization_endpoint(const struct gw_oidc *o);
struct gw_oidc_op *gw_oidc_wait_ready(struct gw_oidc *o, gw_oidc_ready_fn fn, void *arg);

/* Exchanges the provider's code (with the PKCE verifier sent with the authorization request)
 * and verifies the ID token it answers, nonce included. fn is called once, later. */
struct gw_oidc_op *gw_oidc_sign_in(struct gw_oidc *o, const char *code, const char *verifier,
				   const char *nonce, gw_oidc_sign_in_fn fn, void *arg);

/* No callback for op afterwards; op is invalid. */
void gw_oidc_cancel(struct gw_oidc_op *op);

/* Counters for /metrics and tests: JWKS fetches made. */
unsigned long gw_oidc_jwks_fetches(const struct gw_oidc *o);

#endif
