/* ID token verification for the OpenID Connect sign-in: base64url, the provider's JWKS turned into
 * OpenSSL public keys, RS256/ES256 compact JWS verification and the OIDC claim checks. */
#include "gateway/jwt.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/util.h"

#define RSA_MIN_BITS 2048
#define RSA_MAX_BITS 16384 /* OpenSSL's own limit for RSA verification */
#define RSA_MAX_E_BYTES 32 /* e < 2^256, as SP 800-56B; bounds the cost of a verification */
#define P256_COORD 32
#define ES256_SIG 64

enum jwk_type { JWK_RSA, JWK_EC };

/* The one JWS alg each key type serves here. */
static const char *const jwk_alg[] = {[JWK_RSA] = "RS256", [JWK_EC] = "ES256"};

struct jwk {
	char *kid; /* NULL: the key has none */
	enum jwk_type type;
	EVP_PKEY *pkey;
};

struct gw_jwks {
	struct jwk *keys;
	size_t n;
};

static const char b64url_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t gw_b64url_len(size_t len)
{
	return len / 3 * 4 + (len % 3 ? len % 3 + 1 : 0);
}

size_t gw_b64url_encode(const unsigned char *in, size_t len, char *out)
{
	size_t i = 0, o = 0;
	unsigned long v;

	for (; len - i >= 3; i += 3) {
		v = (unsigned long)in[i] << 16 | (unsigned long)in[i + 1] << 8 | in[i + 2];
		out[o++] = b64url_alphabet[v >> 18 & 63];
		out[o++] = b64url_alphabet[v >> 12 & 63];
		out[o++] = b64url_alphabet[v >> 6 & 63];
		out[o++] = b64url_alphabet[v & 63];
	}
	if (len - i > 0) {
		v = (unsigned long)in[i] << 16;
		if (len - i == 2)
			v |= (unsigned long)in[i + 1] << 8;
		out[o++] = b64url_alphabet[v >> 18 & 63];
		out[o++] = b64url_alphabet[v >> 12 & 63];
		if (len - i == 2)
			out[o++] = b64url_alphabet[v >> 6 & 63];
	}
	out[o] = '\0';
	return o;
}

/* The 6-bit value of a base64url character, or -1. */
static int b64url_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

unsigned char *gw_b64url_decode(const char *in, size_t len, size_t *out_len)
{
	unsigned char *out = NULL;
	unsigned long acc = 0;
	size_t o = 0;
	int bits = 0, v;

	if (len % 4 == 1)
		goto fail;
	out = gw_xcalloc(len / 4 * 3 + 3, 1); /* whole quads, up to 2 more bytes, the NUL */
	for (size_t i = 0; i < len; i++) {
		v = b64url_value(in[i]);
		if (v < 0)
			goto fail;
		acc = (acc << 6 | (unsigned long)v) & 0xfff;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (unsigned char)(acc >> bits);
		}
	}
	/* The 2 or 4 bits left over must be zero: one text per byte string. */
	if (acc & ((1UL << bits) - 1))
		goto fail;
	out[o] = '\0';
	if (out_len)
		*out_len = o;
	return out;
fail:
	free(out);
	return NULL;
}

/* The base64url string member name of obj, decoded (caller frees), or NULL. */
static unsigned char *b64_member(const cJSON *obj, const char *name, size_t *len)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);

	if (!cJSON_IsString(v))
		return NULL;
	return gw_b64url_decode(v->valuestring, strlen(v->valuestring), len);
}

/* A public key of type ("RSA", "EC") from the parameters in bld, or NULL. */
static EVP_PKEY *pkey_from_params(const char *type, OSSL_PARAM_BLD *bld)
{
	OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
	EVP_PKEY *pkey = NULL;

	if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1) {
		EVP_PKEY_free(pkey);
		pkey = NULL;
	}
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	return pkey;
}

/* An RSA JWK's public key (RFC 7518 §6.3.1), or NULL when it is missing, too small or too large,
 * or cannot be an RSA public key (even modulus, even or unit exponent). */
static EVP_PKEY *rsa_key(const cJSON *obj)
{
	unsigned char *n_bin = NULL, *e_bin = NULL;
	size_t n_len = 0, e_len = 0;
	BIGNUM *n = NULL, *e = NULL;
	OSSL_PARAM_BLD *bld = NULL;
	EVP_PKEY *pkey = NULL;
	int bits;

	n_bin = b64_member(obj, "n", &n_len);
	e_bin = b64_member(obj, "e", &e_len);
	if (!n_bin || !e_bin || n_len > RSA_MAX_BITS / 8 + 1 || e_len > RSA_MAX_E_BYTES)
		goto out;
	n = BN_bin2bn(n_bin, (int)n_len, NULL);
	e = BN_bin2bn(e_bin, (int)e_len, NULL);
	if (!n || !e)
		goto out;
	bits = BN_num_bits(n);
	if (bits < RSA_MIN_BITS || bits > RSA_MAX_BITS || !BN_is_odd(n) || !BN_is_odd(e) ||
	    BN_is_one(e))
		goto out;
	bld = OSSL_PARAM_BLD_new();
	if (!bld || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e))
		goto out;
	pkey = pkey_from_params("RSA", bld);
out:
	OSSL_PARAM_BLD_free(bld);
	BN_free(n);
	BN_free(e);
	free(n_bin);
	free(e_bin);
	return pkey;
}

/* A P-256 JWK's public key (RFC 7518 §6.2.1), or NULL when the curve is another, a coordinate is
 * not exactly 32 bytes, or the point is not on the curve. */
static EVP_PKEY *ec_key(const cJSON *obj)
{
	const cJSON *crv = cJSON_GetObjectItemCaseSensitive(obj, "crv");
	unsigned char *x = NULL, *y = NULL, point[1 + 2 * P256_COORD];
	size_t x_len = 0, y_len = 0;
	OSSL_PARAM_BLD *bld = NULL;
	EVP_PKEY_CTX *check = NULL;
	EVP_PKEY *pkey = NULL;

	if (!cJSON_IsString(crv) || strcmp(crv->valuestring, "P-256") != 0)
		goto out;
	x = b64_member(obj, "x", &x_len);
	y = b64_member(obj, "y", &y_len);
	if (!x || !y || x_len != P256_COORD || y_len != P256_COORD)
		goto out;
	point[0] = 0x04; /* uncompressed: 0x04 || x || y */
	memcpy(point + 1, x, P256_COORD);
	memcpy(point + 1 + P256_COORD, y, P256_COORD);
	bld = OSSL_PARAM_BLD_new();
	if (!bld ||
	    !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) ||
	    !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point)))
		goto out;
	pkey = pkey_from_params("EC", bld);
	if (!pkey)
		goto out;
	check = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
	if (!check || EVP_PKEY_public_check(check) != 1) {
		EVP_PKEY_free(pkey);
		pkey = NULL;
	}
out:
	EVP_PKEY_CTX_free(check);
	OSSL_PARAM_BLD_free(bld);
	free(x);
	free(y);
	return pkey;
}

/* Fills key from one member of the keys array; false when the key is not one we can use. */
static bool jwk_parse(const cJSON *obj, struct jwk *key)
{
	const cJSON *kty = cJSON_GetObjectItemCaseSensitive(obj, "kty");
	const cJSON *use = cJSON_GetObjectItemCaseSensitive(obj, "use");
	const cJSON *alg = cJSON_GetObjectItemCaseSensitive(obj, "alg");
	const cJSON *kid = cJSON_GetObjectItemCaseSensitive(obj, "kid");
	bool ok = false;

	if (!cJSON_IsObject(obj) || !cJSON_IsString(kty))
		goto out;
	if (use && !(cJSON_IsString(use) && strcmp(use->valuestring, "sig") == 0))
		goto out;
	if (kid && !cJSON_IsString(kid))
		goto out;
	if (strcmp(kty->valuestring, "RSA") == 0)
		key->type = JWK_RSA;
	else if (strcmp(kty->valuestring, "EC") == 0)
		key->type = JWK_EC;
	else
		goto out;
	/* A key published for another alg (RS512, ES384, RSA-OAEP...) is not one we verify with. */
	if (alg && !(cJSON_IsString(alg) && strcmp(alg->valuestring, jwk_alg[key->type]) == 0))
		goto out;
	key->pkey = key->type == JWK_RSA ? rsa_key(obj) : ec_key(obj);
	if (!key->pkey)
		goto out;
	key->kid = kid ? gw_xstrdup(kid->valuestring) : NULL;
	ok = true;
out:
	return ok;
}

struct gw_jwks *gw_jwks_parse(const char *json, size_t len, char **err)
{
	struct gw_jwks *jwks = NULL;
	const cJSON *keys, *obj;
	cJSON *root;

	root = cJSON_ParseWithLength(json, len);
	keys = cJSON_GetObjectItemCaseSensitive(root, "keys");
	if (!root) {
		if (err)
			*err = gw_xstrdup("the JWKS is not JSON");
		goto out;
	}
	if (!cJSON_IsObject(root) || !cJSON_IsArray(keys)) {
		if (err)
			*err = gw_xstrdup("the JWKS is not an object with a \"keys\" array");
		goto out;
	}
	jwks = gw_xcalloc(1, sizeof(*jwks));
	jwks->keys = gw_xcalloc((size_t)cJSON_GetArraySize(keys), sizeof(*jwks->keys));
	cJSON_ArrayForEach(obj, keys)
	{
		if (jwk_parse(obj, &jwks->keys[jwks->n]))
			jwks->n++;
	}
out:
	cJSON_Delete(root);
	/* Keys refused by OpenSSL leave errors behind; the TLS code reads the same queue. */
	ERR_clear_error();
	return jwks;
}

void gw_jwks_free(struct gw_jwks *jwks)
{
	if (!jwks)
		return;
	for (size_t i = 0; i < jwks->n; i++) {
		free(jwks->keys[i].kid);
		EVP_PKEY_free(jwks->keys[i].pkey);
	}
	free(jwks->keys);
	free(jwks);
}

size_t gw_jwks_count(const struct gw_jwks *jwks)
{
	return jwks ? jwks->n : 0;
}

/* True when two members of obj have the same name (RFC 7515 §5.2: reject, rather than guess
 * which one a different parser would have used). */
static bool has_duplicate_name(const cJSON *obj)
{
	bool dup = false;

	for (const cJSON *a = obj->child; a && !dup; a = a->next)
		for (const cJSON *b = a->next; b && !dup; b = b->next)
			dup = strcmp(a->string, b->string) == 0;
	return dup;
}

/* The JSON object in buf[0..len) (NUL-terminated at len, as gw_b64url_decode leaves it), or NULL
 * when it is not exactly one object, with nothing but blanks after it and no NUL inside. */
static cJSON *json_object(const unsigned char *buf, size_t len)
{
	cJSON *json = NULL;

	if (memchr(buf, '\0', len))
		goto out;
	json = cJSON_ParseWithLengthOpts((const char *)buf, len + 1, NULL, true);
	if (!cJSON_IsObject(json) || has_duplicate_name(json)) {
		cJSON_Delete(json);
		json = NULL;
	}
out:
	return json;
}

/* The key for a token's kid (NULL: the token has none) and alg's key type. */
static enum gw_jwt_result find_key(const struct gw_jwks *jwks, const char *kid, enum jwk_type type,
				   const struct jwk **found, const char **reason)
{
	enum gw_jwt_result rc = GW_JWT_OK;
	const struct jwk *match = NULL;
	size_t named = 0, of_type = 0;

	for (size_t i = 0; jwks && i < jwks->n; i++) {
		const struct jwk *k = &jwks->keys[i];

		if (kid) {
			if (!k->kid || strcmp(k->kid, kid) != 0)
				continue;
			named++;
			if (k->type == type && !match)
				match = k;
		} else if (k->type == type) {
			of_type++;
			match = k;
		}
	}
	if (kid && !match && named) {
		rc = GW_JWT_ALG;
		*reason = "alg does not fit the type of the key its kid names";
	} else if (kid && !match) {
		rc = GW_JWT_UNKNOWN_KID;
		*reason = "no key in the JWKS for the token's kid";
	} else if (!kid && of_type != 1) {
		rc = GW_JWT_UNKNOWN_KID;
		*reason = "token without kid and not exactly one key of its type in the JWKS";
	}
	*found = match;
	return rc;
}

/* The DER ECDSA-Sig-Value of a JOSE ES256 signature (r || s, 32 bytes each), OPENSSL_malloc'd,
 * or NULL when raw is not 64 bytes. */
static unsigned char *es256_der(const unsigned char *raw, size_t raw_len, size_t *der_len)
{
	unsigned char *der = NULL;
	ECDSA_SIG *sig = NULL;
	BIGNUM *r = NULL, *s = NULL;
	int n;

	if (raw_len != ES256_SIG)
		goto out;
	r = BN_bin2bn(raw, ES256_SIG / 2, NULL);
	s = BN_bin2bn(raw + ES256_SIG / 2, ES256_SIG / 2, NULL);
	sig = ECDSA_SIG_new();
	if (!r || !s || !sig || ECDSA_SIG_set0(sig, r, s) != 1)
		goto out;
	r = s = NULL; /* sig owns them now */
	n = i2d_ECDSA_SIG(sig, &der);
	if (n <= 0) {
		OPENSSL_free(der);
		der = NULL;
		goto out;
	}
	*der_len = (size_t)n;
out:
	BN_free(r);
	BN_free(s);
	ECDSA_SIG_free(sig);
	return der;
}

/* Whether sig is key's signature (SHA-256; PKCS #1 v1.5 for RSA) of input. */
static bool verify_signature(const struct jwk *key, const char *input, size_t input_len,
			     const unsigned char *sig, size_t sig_len, const char **reason)
{
	EVP_MD_CTX *md = NULL;
	EVP_PKEY_CTX *pctx = NULL;
	unsigned char *der = NULL;
	size_t der_len = 0;
	bool ok = false;

	*reason = "the signature does not verify";
	if (key->type == JWK_EC) {
		der = es256_der(sig, sig_len, &der_len);
		if (!der) {
			*reason = "ES256 signature is not 64 bytes";
			goto out;
		}
		sig = der;
		sig_len = der_len;
	} else if (sig_len != (size_t)EVP_PKEY_get_size(key->pkey)) {
		*reason = "RS256 signature length does not match the key";
		goto out;
	}
	md = EVP_MD_CTX_new();
	if (!md || EVP_DigestVerifyInit_ex(md, &pctx, "SHA256", NULL, NULL, key->pkey, NULL) != 1)
		goto out;
	if (key->type == JWK_RSA && EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1)
		goto out;
	ok = EVP_DigestVerify(md, sig, sig_len, (const unsigned char *)input, input_len) == 1;
out:
	EVP_MD_CTX_free(md);
	OPENSSL_free(der);
	return ok;
}

enum gw_jwt_result gw_jwt_verify(const char *token, size_t len, const struct gw_jwks *jwks,
				 cJSON **claims, char *why, size_t why_len)
{
	enum gw_jwt_result rc = GW_JWT_MALFORMED;
	const char *reason = "ok", *dot1 = NULL, *dot2 = NULL;
	unsigned char *head_raw = NULL, *body_raw = NULL, *sig = NULL;
	size_t head_len = 0, body_len = 0, sig_len = 0;
	cJSON *head = NULL, *body = NULL;
	const cJSON *alg, *kid;
	const struct jwk *key = NULL;
	enum jwk_type type;

	*claims = NULL;
	if (!token || len == 0 || len > GW_JWT_MAX_LEN) {
		reason = "token empty or too long";
		goto out;
	}
	dot1 = memchr(token, '.', len);
	if (dot1)
		dot2 = memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token));
	if (!dot2 || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token))) {
		reason = "token is not three dot-separated parts";
		goto out;
	}
	head_raw = gw_b64url_decode(token, (size_t)(dot1 - token), &head_len);
	body_raw = gw_b64url_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), &body_len);
	sig = gw_b64url_decode(dot2 + 1, len - (size_t)(dot2 + 1 - token), &sig_len);
	if (!head_raw || !body_raw || !sig) {
		reason = "a token part is not base64url";
		goto out;
	}
	head = json_object(head_raw, head_len);
	if (!head) {
		reason = "token header is not a JSON object";
		goto out;
	}
	alg = cJSON_GetObjectItemCaseSensitive(head, "alg");
	kid = cJSON_GetObjectItemCaseSensitive(head, "kid");
	if (!cJSON_IsString(alg)) {
		reason = "token header without alg";
		goto out;
	}
	/* We understand no extension, so a header that makes one critical is refused (§4.1.11). */
	if (cJSON_GetObjectItemCaseSensitive(head, "crit")) {
		reason = "token header has crit";
		goto out;
	}
	if (kid && !cJSON_IsString(kid)) {
		reason = "token kid is not a string";
		goto out;
	}
	rc = GW_JWT_ALG;
	if (strcmp(alg->valuestring, jwk_alg[JWK_RSA]) == 0) {
		type = JWK_RSA;
	} else if (strcmp(alg->valuestring, jwk_alg[JWK_EC]) == 0) {
		type = JWK_EC;
	} else {
		reason = "alg is not RS256 or ES256";
		goto out;
	}
	rc = find_key(jwks, kid ? kid->valuestring : NULL, type, &key, &reason);
	if (rc != GW_JWT_OK)
		goto out;
	rc = GW_JWT_SIGNATURE;
	/* The signing input is the text as received, up to the second dot. */
	if (!verify_signature(key, token, (size_t)(dot2 - token), sig, sig_len, &reason))
		goto out;
	rc = GW_JWT_MALFORMED;
	body = json_object(body_raw, body_len);
	if (!body) {
		reason = "token payload is not a JSON object";
		goto out;
	}
	*claims = body;
	reason = "ok";
	rc = GW_JWT_OK;
out:
	if (why && why_len)
		snprintf(why, why_len, "%s", reason);
	cJSON_Delete(head);
	free(head_raw);
	free(body_raw);
	free(sig);
	ERR_clear_error();
	return rc;
}

/* What is wrong with aud (and azp) for client_id, or NULL. */
static const char *aud_problem(const cJSON *claims, const char *client_id)
{
	const cJSON *aud = cJSON_GetObjectItemCaseSensitive(claims, "aud");
	const cJSON *azp = cJSON_GetObjectItemCaseSensitive(claims, "azp");
	const char *problem = NULL;
	const cJSON *item;
	bool found = false;
	size_t n = 0;

	if (!client_id) {
		problem = "no client_id to check aud against";
	} else if (cJSON_IsString(aud)) {
		if (strcmp(aud->valuestring, client_id) != 0)
			problem = "aud is not our client_id";
	} else if (cJSON_IsArray(aud)) {
		cJSON_ArrayForEach(item, aud)
		{
			n++;
			if (cJSON_IsString(item) && strcmp(item->valuestring, client_id) == 0)
				found = true;
		}
		if (!found)
			problem = "aud does not contain our client_id";
		else if (n > 1 &&
			 !(cJSON_IsString(azp) && strcmp(azp->valuestring, client_id) == 0))
			problem = "aud has several entries and azp is not our client_id";
	} else {
		problem = "aud missing or not a string or array";
	}
	return problem;
}

/* What is wrong with the claims, or NULL. */
static const char *claims_problem(const cJSON *claims, const char *issuer, const char *client_id,
				  const char *nonce, long long now, long leeway_s)
{
	const cJSON *iss = cJSON_GetObjectItemCaseSensitive(claims, "iss");
	const cJSON *exp = cJSON_GetObjectItemCaseSensitive(claims, "exp");
	const cJSON *iat = cJSON_GetObjectItemCaseSensitive(claims, "iat");
	const cJSON *nbf = cJSON_GetObjectItemCaseSensitive(claims, "nbf");
	const cJSON *got_nonce = cJSON_GetObjectItemCaseSensitive(claims, "nonce");
	double leeway = leeway_s > 0 ? (double)leeway_s : 0;
	double earliest = (double)now - leeway, latest = (double)now + leeway;
	const char *problem = NULL;

	if (!cJSON_IsObject(claims))
		problem = "claims are not an object";
	else if (!issuer || !cJSON_IsString(iss) || strcmp(iss->valuestring, issuer) != 0)
		problem = "iss is not the provider's issuer";
	else if ((problem = aud_problem(claims, client_id)))
		;
	else if (!cJSON_IsNumber(exp))
		problem = "exp missing or not a number";
	else if (!(exp->valuedouble > earliest))
		problem = "exp is in the past";
	else if (iat && !cJSON_IsNumber(iat))
		problem = "iat is not a number";
	else if (iat && iat->valuedouble > latest)
		problem = "iat is in the future";
	else if (nbf && !cJSON_IsNumber(nbf))
		problem = "nbf is not a number";
	else if (nbf && nbf->valuedouble > latest)
		problem = "nbf is in the future";
	else if (nonce && !cJSON_IsString(got_nonce))
		problem = "nonce missing";
	else if (nonce && strcmp(got_nonce->valuestring, nonce) != 0)
		problem = "nonce does not match";
	return problem;
}

bool gw_jwt_check_claims(const cJSON *claims, const char *issuer, const char *client_id,
			 const char *nonce, long long now, long leeway_s, char *why, size_t why_len)
{
	const char *problem = claims_problem(claims, issuer, client_id, nonce, now, leeway_s);

	if (why && why_len)
		snprintf(why, why_len, "%s", problem ? problem : "ok");
	return !problem;
}
