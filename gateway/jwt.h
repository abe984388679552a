/* ID tokens from the team's OpenID Connect provider: base64url, the provider's JSON Web Key Set,
 * compact JWS verification (RS256 and ES256 only) and the OpenID Connect claim checks. Pure: no
 * I/O, no logging; fetching the JWKS and refetching it on an unknown kid is the caller's job. */
#ifndef GW_JWT_H
#define GW_JWT_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

/* Longer tokens are refused as GW_JWT_MALFORMED before anything is decoded. */
#define GW_JWT_MAX_LEN 16384

/* base64url without padding (RFC 4648 §5). gw_b64url_len is the encoded length of len bytes.
 * encode: out must hold gw_b64url_len(len) + 1 bytes; it is NUL-terminated; returns the
 * characters written. decode: rejects padding '=', characters outside the alphabet, impossible
 * lengths (len % 4 == 1) and non-canonical text (unused bits of the last character not zero);
 * returns a malloc'd buffer (caller frees), NUL-terminated after *out_len bytes for convenience,
 * or NULL. An empty input decodes to an empty buffer, not NULL. */
size_t gw_b64url_len(size_t len);
size_t gw_b64url_encode(const unsigned char *in, size_t len, char *out);
unsigned char *gw_b64url_decode(const char *in, size_t len, size_t *out_len);

/* A JSON Web Key Set (RFC 7517) from the provider's jwks_uri: the signing keys it holds.
 * Keys kept: kty "RSA" (n, e; 2048 to 16384 bits) and kty "EC" crv "P-256" (x, y of 32 bytes
 * each, a point on the curve), with use absent or "sig" and alg absent or the one alg the key
 * can serve (RS256 for RSA, ES256 for EC); other keys are skipped silently. A key without kid is
 * kept (matched only when the token has no kid, see gw_jwt_verify). Returns NULL with *err
 * (caller frees) when the text is not a JWKS object with a keys array. A set with zero usable
 * keys is returned (not an error). */
struct gw_jwks;
struct gw_jwks *gw_jwks_parse(const char *json, size_t len, char **err);
void gw_jwks_free(struct gw_jwks *jwks);
size_t gw_jwks_count(const struct gw_jwks *jwks);

enum gw_jwt_result {
	GW_JWT_OK,
	GW_JWT_MALFORMED, /* not 3 base64url parts of JSON objects; no alg; crit; duplicate names */
	GW_JWT_ALG,	  /* not RS256/ES256 (none, HS256... refused), or not the kid's key type */
	GW_JWT_UNKNOWN_KID, /* no key in the set for the kid: the caller refetches the JWKS once */
	GW_JWT_SIGNATURE,   /* the signature does not verify */
};

/* Verifies a compact JWS of len bytes (at most GW_JWT_MAX_LEN) against jwks (NULL is an empty
 * set). The key is the one whose kid equals the header's kid; a token without kid uses the set's
 * only key of the alg's type (several or none: GW_JWT_UNKNOWN_KID). The header's jku, x5u, jwk
 * and x5c are ignored: keys come only from the set. A header with crit, or a header or payload
 * with a member name twice (RFC 7515 §5.2), is malformed. The payload is parsed only after the
 * signature verifies. On GW_JWT_OK, *claims is the parsed payload object (caller cJSON_Delete's
 * it); otherwise *claims is NULL. why (may be NULL) gets a short static reason for logs, never
 * the token or any part of it. */
enum gw_jwt_result gw_jwt_verify(const char *token, size_t len, const struct gw_jwks *jwks,
				 cJSON **claims, char *why, size_t why_len);

/* OpenID Connect Core §3.1.3.7 checks on verified claims: iss equals issuer exactly; aud is
 * client_id or an array containing it (when an array with more than one entry, azp must equal
 * client_id); exp is a number > now - leeway_s; iat, when present, is a number <= now +
 * leeway_s; nbf, when present, is a number <= now + leeway_s (RFC 7519 §4.1.5); nonce equals
 * nonce (when nonce is not NULL). now is Unix seconds. Returns true, or false with why (may be
 * NULL), a short static reason naming the claim. */
bool gw_jwt_check_claims(const cJSON *claims, const char *issuer, const char *client_id,
			 const char *nonce, long long now, long leeway_s, char *why,
			 size_t why_len);

#endif
