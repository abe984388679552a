/* Unit tests for gateway/jwt.c: base64url, JWKS parsing, RS256/ES256 verification against keys
 * generated here with OpenSSL (and the RFC 7515 examples), the attacks a verifier must refuse
 * (alg none, HS256 keyed with the RSA modulus, key-type confusion), and the OIDC claim checks. */
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/jwt.h"
#include "gateway/util.h"
#include "tests/unit/harness.h"

#define ISSUER "https://idp.example"
#define CLIENT "client-1.apps.example"
#define NOW 1700000000LL

static EVP_PKEY *rsa_a, *rsa_b, *rsa_small, *ec_a, *ec_b;

static char *b64(const void *data, size_t len)
{
	char *out = gw_xcalloc(gw_b64url_len(len) + 1, 1);

	gw_b64url_encode(data, len, out);
	return out;
}

static char *b64s(const char *s)
{
	return b64(s, strlen(s));
}

/* A public parameter of key as base64url, big-endian, left-padded to pad bytes (0: minimal). */
static char *param_b64(EVP_PKEY *key, const char *name, int pad)
{
	unsigned char buf[1024];
	BIGNUM *bn = NULL;
	int n;
	char *out;

	if (EVP_PKEY_get_bn_param(key, name, &bn) != 1)
		abort();
	n = pad ? BN_bn2binpad(bn, buf, pad) : BN_bn2bin(bn, buf);
	out = b64(buf, (size_t)n);
	BN_free(bn);
	return out;
}

/* The key's modulus as raw bytes: the "secret" of the HS256 confusion attack. */
static unsigned char *rsa_modulus(EVP_PKEY *key, size_t *len)
{
	BIGNUM *bn = NULL;
	unsigned char *buf;

	if (EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_N, &bn) != 1)
		abort();
	buf = gw_xcalloc((size_t)BN_num_bytes(bn), 1);
	*len = (size_t)BN_bn2bin(bn, buf);
	BN_free(bn);
	return buf;
}

/* A JWK for the public part of key; kid NULL leaves it out, extra is spliced in as is. */
static char *jwk(EVP_PKEY *key, const char *kid, const char *extra)
{
	char kid_member[128] = "";
	char *a, *b, *out;

	if (kid)
		snprintf(kid_member, sizeof(kid_member), "\"kid\":\"%s\",", kid);
	if (EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA) {
		a = param_b64(key, OSSL_PKEY_PARAM_RSA_N, 0);
		b = param_b64(key, OSSL_PKEY_PARAM_RSA_E, 0);
		out = gw_xasprintf("{%s\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"%s\"%s}", kid_member, a,
				   b, extra ? extra : "");
	} else {
		a = param_b64(key, OSSL_PKEY_PARAM_EC_PUB_X, 32);
		b = param_b64(key, OSSL_PKEY_PARAM_EC_PUB_Y, 32);
		out = gw_xasprintf(
			"{%s\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"%s}",
			kid_member, a, b, extra ? extra : "");
	}
	free(a);
	free(b);
	return out;
}

/* A key set from JWK texts (NULL-terminated list); aborts when the set does not parse. */
static struct gw_jwks *jwks_of(const char *first, ...)
{
	char *text = gw_xstrdup("{\"keys\":["), *next, *err = NULL;
	struct gw_jwks *jwks;
	const char *k = first;
	va_list ap;

	va_start(ap, first);
	for (int i = 0; k; i++, k = va_arg(ap, const char *)) {
		next = gw_xasprintf("%s%s%s", text, i ? "," : "", k);
		free(text);
		text = next;
	}
	va_end(ap);
	next = gw_xasprintf("%s]}", text);
	free(text);
	jwks = gw_jwks_parse(next, strlen(next), &err);
	if (!jwks) {
		fprintf(stderr, "jwks_of: %s\n", err);
		abort();
	}
	free(next);
	return jwks;
}

/* A JOSE signature of input with key: RS256, or ES256 converted from DER to r || s. */
static char *sign_b64(EVP_PKEY *key, const char *input)
{
	size_t len = (size_t)EVP_PKEY_get_size(key);
	unsigned char *sig = gw_xcalloc(len, 1), raw[64];
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	const unsigned char *p = sig;
	const BIGNUM *r, *s;
	ECDSA_SIG *ecdsa;
	char *out;

	if (!md || EVP_DigestSignInit_ex(md, NULL, "SHA256", NULL, NULL, key, NULL) != 1 ||
	    EVP_DigestSign(md, sig, &len, (const unsigned char *)input, strlen(input)) != 1)
		abort();
	if (EVP_PKEY_get_base_id(key) == EVP_PKEY_EC) {
		ecdsa = d2i_ECDSA_SIG(NULL, &p, (long)len);
		if (!ecdsa)
			abort();
		ECDSA_SIG_get0(ecdsa, &r, &s);
		BN_bn2binpad(r, raw, 32);
		BN_bn2binpad(s, raw + 32, 32);
		ECDSA_SIG_free(ecdsa);
		out = b64(raw, sizeof(raw));
	} else {
		out = b64(sig, len);
	}
	EVP_MD_CTX_free(md);
	free(sig);
	return out;
}

/* header.payload (both given as JSON text), signed with key. */
static char *token(const char *header, const char *payload, EVP_PKEY *key)
{
	char *h = b64s(header), *p = b64s(payload), *input, *sig, *out;

	input = gw_xasprintf("%s.%s", h, p);
	sig = sign_b64(key, input);
	out = gw_xasprintf("%s.%s", input, sig);
	free(h);
	free(p);
	free(input);
	free(sig);
	return out;
}

static char *claims_json(void)
{
	return gw_xasprintf("{\"iss\":\"" ISSUER "\",\"aud\":\"" CLIENT "\",\"sub\":\"1234\","
			    "\"email\":\"alice@team.example\",\"iat\":%lld,\"exp\":%lld,"
			    "\"nonce\":\"n-0S6_WzA2Mj\"}",
			    NOW, NOW + 300);
}

static enum gw_jwt_result verify(const char *tok, const struct gw_jwks *jwks, cJSON **claims)
{
	char why[128];
	cJSON *unused = NULL;
	enum gw_jwt_result rc;

	rc = gw_jwt_verify(tok, strlen(tok), jwks, claims ? claims : &unused, why, sizeof(why));
	CHECK(strlen(why) > 0 && !strstr(why, tok));
	if (rc != GW_JWT_OK)
		CHECK((claims ? *claims : unused) == NULL);
	cJSON_Delete(unused);
	return rc;
}

static void test_b64url(void)
{
	static const char *const vectors[][2] = {
		{"", ""},	    {"f", "Zg"},	  {"fo", "Zm8"},	  {"foo", "Zm9v"},
		{"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"},
	};
	unsigned char bytes[40], std[64], *dec;
	char enc[64];
	size_t n, dec_len;

	for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		n = gw_b64url_encode((const unsigned char *)vectors[i][0], strlen(vectors[i][0]),
				     enc);
		CHECK_STR(enc, vectors[i][1]);
		CHECK(n == strlen(vectors[i][1]));
	}
	/* The url-safe alphabet: 0xfb 0xff encodes with '-' and '_', never '+' or '/'. */
	gw_b64url_encode((const unsigned char *)"\xfb\xff\xbf", 3, enc);
	CHECK_STR(enc, "-_-_");

	/* Round trips, and agreement with OpenSSL's standard base64 once translated. */
	for (size_t len = 0; len <= 40; len++) {
		RAND_bytes(bytes, sizeof(bytes));
		n = gw_b64url_encode(bytes, len, enc);
		CHECK(n == gw_b64url_len(len) && strlen(enc) == n);
		EVP_EncodeBlock(std, bytes, (int)len);
		for (unsigned char *c = std; *c; c++)
			*c = *c == '+' ? '-' : *c == '/' ? '_' : *c;
		*(unsigned char *)strchrnul((char *)std, '=') = '\0';
		CHECK_STR(enc, (char *)std);
		dec = gw_b64url_decode(enc, n, &dec_len);
		CHECK(dec && dec_len == len && memcmp(dec, bytes, len) == 0);
		free(dec);
	}

	dec = gw_b64url_decode("", 0, &dec_len);
	CHECK(dec && dec_len == 0);
	free(dec);
	dec = gw_b64url_decode("Zm9vYmFy!!", 8, &dec_len); /* only len bytes are read */
	CHECK(dec && dec_len == 6 && memcmp(dec, "foobar", 6) == 0 && dec[6] == '\0');
	free(dec);

	static const char *const bad[] = {
		"Zg==",	  "Zm8=",  "Zg=",	/* padding */
		"Z",	  "Zm9vY", "Zm9vYmFyZ", /* len % 4 == 1 */
		"Zm9/",	  "Zm9+",  "Zm 9v",
		"Zm9v\n", "Zm.v",  "Zm9v\xc3\xa9", /* outside the alphabet */
		"Zh",	  "Zm9",   "Zm9vYh",	   /* unused bits set: not the canonical text */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		dec = gw_b64url_decode(bad[i], strlen(bad[i]), &dec_len);
		if (dec)
			fprintf(stderr, "  decoded \"%s\"\n", bad[i]);
		CHECK(dec == NULL);
		free(dec);
	}
	CHECK(gw_b64url_decode("Zm\0v", 4, &dec_len) == NULL);
	CHECK(gw_b64url_len(0) == 0 && gw_b64url_len(1) == 2 && gw_b64url_len(2) == 3);
	CHECK(gw_b64url_len(3) == 4 && gw_b64url_len(32) == 43 && gw_b64url_len(256) == 342);
}

static void test_jwks_parse(void)
{
	static const char *const not_jwks[] = {
		"", "{", "[]", "{\"keys\":{}}", "{\"keys\":\"x\"}", "{}", "\"keys\"", "null",
	};
	char *err = NULL, *k_rsa, *k_ec, *k_small, *text, *x, *y, *n;
	struct gw_jwks *jwks;

	for (size_t i = 0; i < sizeof(not_jwks) / sizeof(not_jwks[0]); i++) {
		err = NULL;
		jwks = gw_jwks_parse(not_jwks[i], strlen(not_jwks[i]), &err);
		CHECK(jwks == NULL && err != NULL);
		free(err);
	}
	jwks = gw_jwks_parse("{\"keys\":[]}", 11, &err);
	CHECK(jwks && gw_jwks_count(jwks) == 0);
	gw_jwks_free(jwks);
	CHECK(gw_jwks_count(NULL) == 0);
	gw_jwks_free(NULL);

	k_rsa = jwk(rsa_a, "r1", ",\"use\":\"sig\",\"alg\":\"RS256\"");
	k_ec = jwk(ec_a, "e1", ",\"use\":\"sig\",\"alg\":\"ES256\"");
	k_small = jwk(rsa_small, "small", NULL);
	x = param_b64(ec_a, OSSL_PKEY_PARAM_EC_PUB_X, 32);
	y = param_b64(ec_a, OSSL_PKEY_PARAM_EC_PUB_Y, 32);
	n = param_b64(rsa_a, OSSL_PKEY_PARAM_RSA_N, 0);
	/* y with its last character changed: a point that is not on the curve */
	y[strlen(y) - 2] = y[strlen(y) - 2] == 'A' ? 'B' : 'A';
	text = gw_xasprintf(
		"{\"keys\":[%s,%s,%s,"
		"{\"kty\":\"oct\",\"kid\":\"h\",\"k\":\"c2VjcmV0\"},"
		"{\"kty\":\"OKP\",\"kid\":\"ed\",\"crv\":\"Ed25519\",\"x\":\"%s\"},"
		"{\"kid\":\"p384\",\"kty\":\"EC\",\"crv\":\"P-384\",\"x\":\"%s\",\"y\":\"%s\"},"
		"{\"kid\":\"offcurve\",\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"},"
		"{\"kid\":\"short\",\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%.40s\",\"y\":\"%s\"},"
		"{\"kid\":\"enc\",\"kty\":\"RSA\",\"use\":\"enc\",\"n\":\"%s\",\"e\":\"AQAB\"},"
		"{\"kid\":\"rs512\",\"kty\":\"RSA\",\"alg\":\"RS512\",\"n\":\"%s\",\"e\":\"AQAB\"},"
		"{\"kid\":\"even-e\",\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"AQAA\"},"
		"{\"kid\":\"e-one\",\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"AQ\"},"
		"{\"kid\":\"padded\",\"kty\":\"RSA\",\"n\":\"%s=\",\"e\":\"AQAB\"},"
		"{\"kid\":\"no-n\",\"kty\":\"RSA\",\"e\":\"AQAB\"},"
		"{\"kid\":7,\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"AQAB\"},"
		"{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"AQAB\"},"
		"\"not an object\",42,null,{}]}",
		k_rsa, k_ec, k_small, x, x, x, x, y, x, x, n, n, n, n, n, n, n);
	err = NULL;
	jwks = gw_jwks_parse(text, strlen(text), &err);
	CHECK(jwks != NULL && err == NULL);
	/* kept: r1, e1 and the RSA key without kid */
	CHECK(gw_jwks_count(jwks) == 3);
	CHECK(ERR_peek_error() == 0);
	gw_jwks_free(jwks);
	free(text);
	free(k_rsa);
	free(k_ec);
	free(k_small);
	free(x);
	free(y);
	free(n);
}

static void test_verify_ok(void)
{
	char *k1 = jwk(rsa_a, "r1", NULL), *k2 = jwk(ec_a, "e1", NULL), *body = claims_json();
	struct gw_jwks *jwks = jwks_of(k1, k2, NULL);
	cJSON *claims = NULL;
	char *tok, *longer;
	bool all_ok = true, short_seen = false;

	tok = token("{\"alg\":\"RS256\",\"kid\":\"r1\",\"typ\":\"JWT\"}", body, rsa_a);
	CHECK(verify(tok, jwks, &claims) == GW_JWT_OK);
	CHECK(cJSON_IsObject(claims));
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(claims, "email")), "alice@team.example");
	CHECK(gw_jwt_check_claims(claims, ISSUER, CLIENT, "n-0S6_WzA2Mj", NOW, 60, NULL, 0));
	cJSON_Delete(claims);
	claims = NULL;

	/* only len bytes are the token: what follows is not read */
	longer = gw_xasprintf("%sXYZ.junk", tok);
	CHECK(gw_jwt_verify(longer, strlen(tok), jwks, &claims, NULL, 0) == GW_JWT_OK);
	cJSON_Delete(claims);
	claims = NULL;
	CHECK(gw_jwt_verify(longer, strlen(longer), jwks, &claims, NULL, 0) != GW_JWT_OK);
	free(longer);
	free(tok);

	tok = token("{\"alg\":\"ES256\",\"kid\":\"e1\"}", body, ec_a);
	CHECK(verify(tok, jwks, &claims) == GW_JWT_OK);
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(claims, "sub")), "1234");
	cJSON_Delete(claims);
	claims = NULL;
	free(tok);

	/* ES256 signatures are random: sign until r or s is short (a leading zero byte in r || s,
	 * a shorter INTEGER in the DER), about one signature in 128. */
	for (int i = 0; i < 2000 && !short_seen; i++) {
		unsigned char *raw;
		size_t raw_len = 0;

		tok = token("{\"alg\":\"ES256\",\"kid\":\"e1\"}", body, ec_a);
		all_ok &= gw_jwt_verify(tok, strlen(tok), jwks, &claims, NULL, 0) == GW_JWT_OK;
		cJSON_Delete(claims);
		claims = NULL;
		raw = gw_b64url_decode(strrchr(tok, '.') + 1, strlen(strrchr(tok, '.') + 1),
				       &raw_len);
		short_seen = raw && raw_len == 64 && (raw[0] == 0 || raw[32] == 0);
		free(raw);
		free(tok);
	}
	CHECK(all_ok);
	CHECK(short_seen);

	/* No kid: the set's only key of the alg's type. */
	tok = token("{\"alg\":\"RS256\"}", body, rsa_a);
	CHECK(verify(tok, jwks, NULL) == GW_JWT_OK);
	free(tok);
	tok = token("{\"alg\":\"ES256\"}", body, ec_a);
	CHECK(verify(tok, jwks, NULL) == GW_JWT_OK);
	free(tok);

	gw_jwks_free(jwks);
	free(k1);
	free(k2);
	free(body);
}

/* The examples of RFC 7515 A.2 (RS256) and A.3 (ES256): interoperability with other signers. */
static void test_rfc7515_examples(void)
{
	static const char rsa_jwk[] = "{\"kty\":\"RSA\",\"e\":\"AQAB\",\"n\":"
				      "\"ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji"
				      "9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-"
				      "SFd2lZS-pCgNMsD1W_YpRPEwOWvG"
				      "6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-"
				      "bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R"
				      "2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_"
				      "I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj"
				      "8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ\"}";
	static const char ec_jwk[] = "{\"kty\":\"EC\",\"crv\":\"P-256\","
				     "\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
				     "\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"}";
	static const char body[] = "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGF"
				   "tcGxlLmNvbS9pc19yb290Ijp0cnVlfQ";
	static const char rsa_sig[] = "cC4hiUPoj9Eetdgtv3hF80EGrhuB__"
				      "dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_"
				      "O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_"
				      "nZLgrnbyTyWzO75vRK5h6xBArLI"
				      "ARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--"
				      "xi12jzDwusC-eOkHWEsqtFZESc6BfI7noO"
				      "PqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWyw"
				      "lVmtVrBp0igcN_IoypGlUPQG"
				      "e77Rw";
	static const char ec_sig[] = "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8IS"
				     "lSApmWQxfKTUJqPP3-Kg6NU1Q";
	struct gw_jwks *jwks = jwks_of(rsa_jwk, ec_jwk, NULL);
	cJSON *claims = NULL;
	char *tok;

	CHECK(gw_jwks_count(jwks) == 2);
	tok = gw_xasprintf("eyJhbGciOiJSUzI1NiJ9.%s.%s", body, rsa_sig);
	CHECK(verify(tok, jwks, &claims) == GW_JWT_OK);
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(claims, "iss")), "joe");
	cJSON_Delete(claims);
	free(tok);
	tok = gw_xasprintf("eyJhbGciOiJFUzI1NiJ9.%s.%s", body, ec_sig);
	CHECK(verify(tok, jwks, NULL) == GW_JWT_OK);
	free(tok);
	/* The A.3 signature over another payload ({}). */
	tok = gw_xasprintf("eyJhbGciOiJFUzI1NiJ9.e30.%s", ec_sig);
	CHECK(verify(tok, jwks, NULL) == GW_JWT_SIGNATURE);
	free(tok);
	gw_jwks_free(jwks);
}

static void test_verify_refused(void)
{
	char *k_rsa = jwk(rsa_a, "r1", NULL), *k_ec = jwk(ec_a, "e1", NULL);
	char *k_bare = jwk(rsa_b, NULL, NULL), *k_small = jwk(rsa_small, "small", NULL);
	char *body = claims_json(), *tok, *h, *p, *s, *mod_b64;
	struct gw_jwks *jwks = jwks_of(k_rsa, k_ec, k_small, NULL);
	struct gw_jwks *two_rsa = jwks_of(k_rsa, k_bare, NULL), *bare = jwks_of(k_bare, NULL);
	unsigned char mac[EVP_MAX_MD_SIZE], *modulus;
	size_t mac_len, mod_len;

	/* signed by another key under a known kid */
	tok = token("{\"alg\":\"RS256\",\"kid\":\"r1\"}", body, rsa_b);
	CHECK(verify(tok, jwks, NULL) == GW_JWT_SIGNATURE);
	free(tok);
	tok = token("{\"alg\":\"ES256\",\"kid\":\"e1\"}", body, ec_b);
	CHECK(verify(tok, jwks, NULL) == GW_JWT_SIGNATURE);
	free(tok);

	/* one payload character changed (still base64url, still JSON-looking) */
	tok = token("{\"alg\":\"RS256\",\"kid\":\"r1\"}", body, rsa_a);
	p = strchr(tok, '.') + 10;
	*p = *p == 'A' ? 'B' : 'A';
	CHECK(verify(tok, jwks, NULL) == GW_JWT_SIGNATURE);
	free(tok);
	tok = token("{\"alg\":\"ES256\",\"kid\":\"e1\"}", body, ec_a);
	p = strchr(tok, '.') + 10;
	*p = *p == 'A' ? 'B' : 'A';
	CHECK(verify(tok, jwks, NULL) == GW_JWT_SIGNATURE);
	free(tok);
	/* one signature character changed */
	tok = token("{\"alg\":\"RS256\",\"kid\":\"r1\"}", body, rsa_a);
	p = strrchr(tok, '.') + 5;
	*p = *p == 'A' ? 'B' : 'A';
	CHECK(verify(tok, jwks, NULL) == GW_JWT_SIGNATURE);
	free(tok);

	/* kids: unknown, a skipped (1024-bit) key's, a kid-less key is not matched by a kid */
	tok = token("{\"alg\":\"RS256\",\"kid\":\"r9\"}", body, rsa_a);
	CHECK(verify(tok, jwks, NULL) == GW_JWT_UNKNOWN_KID);
	CHECK(verify(tok, NULL, NULL) == GW_JWT_UNKNOWN_KID);
	free(tok);
	tok = token("{\"alg\":\"RS256\",\"kid\":\"small\"}", body, rsa_small);
	CHECK(verify(tok, jwks, NULL) == GW_JWT_UNKNOWN_KID);
	free(tok);
	tok = token("{\"alg\":\"RS256\",\"kid\":\"r9\"}", body, rsa_b);
	CHECK(verify(tok, bare, NULL) == GW_JWT_UNKNOWN_KID);
	free(tok);
	/* no kid: fine with one RSA key, not with two */
	tok = token("{\"alg\":\"RS256\"}", body, rsa_b);
	CHECK(verify(tok, bare, NULL) == GW_JWT_OK);
	CHECK(verify(tok, two_rsa, NULL) == GW_JWT_UNKNOWN_KID);
	free(tok);
	tok = token("{\"alg\":\"ES256\"}", body, ec_a);
	CHECK(verify(tok, two_rsa, NULL) == GW_JWT_UNKNOWN_KID);
	free(tok);

	/* alg none, with and without a signature */
	h = b64s("{\"alg\":\"none\",\"kid\":\"r1\"}");
	p = b64s(body);
	tok = gw_xasprintf("%s.%s.", h, p);
	CHECK(verify(tok, jwks, NULL) == GW_JWT_ALG);
	free(tok);
	free(h);
	h = b64s("{\"alg\":\"none\"}");
	tok = gw_xasprintf("%s.%s.", h, p);
	CHECK(verify(tok, jwks, NULL) == GW_JWT_ALG);
	free(tok);
	free(h);

	/* HS256 keyed with the RSA modulus: the classic confusion */
	modulus = rsa_modulus(rsa_a, &mod_len);
	mod_b64 = param_b64(rsa_a, OSSL_PKEY_PARAM_RSA_N, 0);
	h = b64s("{\"alg\":\"HS256\",\"kid\":\"r1\"}");
	s = gw_xasprintf("%s.%s", h, p);
	if (!EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, modulus, mod_len,
		       (const unsigned char *)s, strlen(s), mac, sizeof(mac), &mac_len))
		abort();
	free(s);
	s = b64(mac, mac_len);
	tok = gw_xasprintf("%s.%s.%s", h, p, s);
	CHECK(verify(tok, jwks, NULL) == GW_JWT_ALG);
	free(tok);
	free(s);
	free(h);
	free(modulus);
	free(mod_b64);

	/* other and mis-cased algs */
	static const char *const algs[] = {"RS512", "PS256",  "ES384", "EdDSA",
					   "rs256", "RS256 ", ""};
	for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++) {
		char *header = gw_xasprintf("{\"alg\":\"%s\",\"kid\":\"r1\"}", algs[i]);

		tok = token(header, body, rsa_a);
		CHECK(verify(tok, jwks, NULL) == GW_JWT_ALG);
		free(tok);
		free(header);
	}

	/* key-type confusion: an alg that does not fit the key its kid names */
	tok = token("{\"alg\":\"ES256\",\"kid\":\"r1\"}", body, ec_a);
	CHECK(verify(tok, jwks, NULL) == GW_JWT_ALG);
	free(tok);
	tok = token("{\"alg\":\"RS256\",\"kid\":\"e1\"}", body, rsa_a);
	CHECK(verify(tok, jwks, NULL) == GW_JWT_ALG);
	free(tok);

	free(p);
	CHECK(ERR_peek_error() == 0); /* nothing left in OpenSSL's queue for the TLS code */
	gw_jwks_free(jwks);
	gw_jwks_free(two_rsa);
	gw_jwks_free(bare);
	free(k_rsa);
	free(k_ec);
	free(k_bare);
	free(k_small);
	free(body);
}

/* header and payload texts put together with a valid RS256 signature over them. */
static enum gw_jwt_result verify_texts(const char *header, const char *payload, size_t payload_len,
				       const struct gw_jwks *jwks)
{
	char *h = b64s(header), *p = b64(payload, payload_len), *input, *sig, *tok;
	enum gw_jwt_result rc;

	input = gw_xasprintf("%s.%s", h, p);
	sig = sign_b64(rsa_a, input);
	tok = gw_xasprintf("%s.%s", input, sig);
	rc = verify(tok, jwks, NULL);
	free(h);
	free(p);
	free(input);
	free(sig);
	free(tok);
	return rc;
}

static void test_verify_malformed(void)
{
	char *k_rsa = jwk(rsa_a, "r1", NULL), *k_ec = jwk(ec_a, "e1", NULL);
	struct gw_jwks *jwks = jwks_of(k_rsa, k_ec, NULL);
	char *body = claims_json(), *good, *tok, *big, *h, *p, *sig;
	const char *dot1, *dot2;
	unsigned char raw[72];
	cJSON *claims = NULL;

	good = token("{\"alg\":\"RS256\",\"kid\":\"r1\"}", body, rsa_a);
	dot1 = strchr(good, '.');
	dot2 = strrchr(good, '.');
	CHECK(verify(good, jwks, NULL) == GW_JWT_OK);

	/* two parts, four parts, empty */
	tok = gw_xstrndup(good, (size_t)(dot2 - good));
	CHECK(verify(tok, jwks, NULL) == GW_JWT_MALFORMED);
	free(tok);
	tok = gw_xasprintf("%s.", good);
	CHECK(verify(tok, jwks, NULL) == GW_JWT_MALFORMED);
	free(tok);
	CHECK(gw_jwt_verify("", 0, jwks, &claims, NULL, 0) == GW_JWT_MALFORMED && !claims);
	CHECK(verify("..", jwks, NULL) == GW_JWT_MALFORMED);
	CHECK(verify("abc", jwks, NULL) == GW_JWT_MALFORMED);

	/* bad base64url: the standard alphabet, padding, a stray character */
	tok = gw_xstrdup(good);
	tok[dot1 - good + 3] = '+';
	CHECK(verify(tok, jwks, NULL) == GW_JWT_MALFORMED);
	tok[dot1 - good + 3] = '/';
	CHECK(verify(tok, jwks, NULL) == GW_JWT_MALFORMED);
	tok[dot1 - good + 3] = ' ';
	CHECK(verify(tok, jwks, NULL) == GW_JWT_MALFORMED);
	free(tok);
	h = gw_xstrndup(good, (size_t)(dot1 - good));
	tok = gw_xasprintf("%s=%s", h, dot1); /* padding on the header */
	CHECK(verify(tok, jwks, NULL) == GW_JWT_MALFORMED);
	free(tok);
	tok = gw_xasprintf("%s==", good); /* padding on the signature */
	CHECK(verify(tok, jwks, NULL) == GW_JWT_MALFORMED);
	free(tok);
	free(h);

	/* headers that are not what a JWS header must be (signatures valid) */
	CHECK(verify_texts("not json", body, strlen(body), jwks) == GW_JWT_MALFORMED);
	CHECK(verify_texts("[\"RS256\"]", body, strlen(body), jwks) == GW_JWT_MALFORMED);
	CHECK(verify_texts("{\"kid\":\"r1\"}", body, strlen(body), jwks) == GW_JWT_MALFORMED);
	CHECK(verify_texts("{\"alg\":256,\"kid\":\"r1\"}", body, strlen(body), jwks) ==
	      GW_JWT_MALFORMED);
	CHECK(verify_texts("{\"ALG\":\"RS256\",\"kid\":\"r1\"}", body, strlen(body), jwks) ==
	      GW_JWT_MALFORMED);
	CHECK(verify_texts("{\"alg\":\"RS256\",\"kid\":1}", body, strlen(body), jwks) ==
	      GW_JWT_MALFORMED);
	CHECK(verify_texts("{\"alg\":\"RS256\",\"kid\":\"r1\",\"crit\":[\"exp\"],\"exp\":1}", body,
			   strlen(body), jwks) == GW_JWT_MALFORMED);
	CHECK(verify_texts("{\"alg\":\"none\",\"alg\":\"RS256\",\"kid\":\"r1\"}", body,
			   strlen(body), jwks) == GW_JWT_MALFORMED);
	CHECK(verify_texts("{\"alg\":\"RS256\",\"kid\":\"r1\"} x", body, strlen(body), jwks) ==
	      GW_JWT_MALFORMED);
	CHECK(verify_texts("{\"alg\":\"RS256\",\"kid\":\"r1\"} \n", body, strlen(body), jwks) ==
	      GW_JWT_OK);
	/* payloads that are not one JSON object, though signed */
	CHECK(verify_texts("{\"alg\":\"RS256\",\"kid\":\"r1\"}", "", 0, jwks) == GW_JWT_MALFORMED);
	CHECK(verify_texts("{\"alg\":\"RS256\",\"kid\":\"r1\"}", "[1]", 3, jwks) ==
	      GW_JWT_MALFORMED);
	CHECK(verify_texts("{\"alg\":\"RS256\",\"kid\":\"r1\"}", "{\"a\":1}\0{}", 10, jwks) ==
	      GW_JWT_MALFORMED);
	/* cJSON alone would take a NUL for a blank */
	CHECK(verify_texts("{\"alg\":\"RS256\",\"kid\":\"r1\"}", "{\"a\":1}\0", 8, jwks) ==
	      GW_JWT_MALFORMED);
	CHECK(verify_texts("{\"alg\":\"RS256\",\"kid\":\"r1\"}", "{\"aud\":\"x\",\"aud\":\"y\"}",
			   21, jwks) == GW_JWT_MALFORMED);

	/* longer than GW_JWT_MAX_LEN, whatever it holds */
	big = gw_xcalloc(GW_JWT_MAX_LEN + 2, 1);
	memset(big, 'A', GW_JWT_MAX_LEN + 1);
	memcpy(big, good, strlen(good));
	CHECK(verify(big, jwks, NULL) == GW_JWT_MALFORMED);
	free(big);

	/* ES256 signatures of the wrong length: 63, 65, and OpenSSL's DER form */
	h = b64s("{\"alg\":\"ES256\",\"kid\":\"e1\"}");
	p = b64s(body);
	for (size_t len = 63; len <= 65; len += 2) {
		RAND_bytes(raw, sizeof(raw));
		sig = b64(raw, len);
		tok = gw_xasprintf("%s.%s.%s", h, p, sig);
		CHECK(verify(tok, jwks, NULL) == GW_JWT_SIGNATURE);
		free(tok);
		free(sig);
	}
	memset(raw, 0, sizeof(raw)); /* r = s = 0 */
	sig = b64(raw, 64);
	tok = gw_xasprintf("%s.%s.%s", h, p, sig);
	CHECK(verify(tok, jwks, NULL) == GW_JWT_SIGNATURE);
	free(tok);
	free(sig);
	{
		char *input = gw_xasprintf("%s.%s", h, p);
		EVP_MD_CTX *md = EVP_MD_CTX_new();
		unsigned char der[80];
		size_t der_len = sizeof(der);

		if (EVP_DigestSignInit_ex(md, NULL, "SHA256", NULL, NULL, ec_a, NULL) != 1 ||
		    EVP_DigestSign(md, der, &der_len, (unsigned char *)input, strlen(input)) != 1)
			abort();
		sig = b64(der, der_len);
		tok = gw_xasprintf("%s.%s", input, sig);
		CHECK(verify(tok, jwks, NULL) == GW_JWT_SIGNATURE);
		free(tok);
		free(sig);
		free(input);
		EVP_MD_CTX_free(md);
	}
	free(h);
	free(p);
	/* an RS256 signature three bytes short (four characters cut from its start) */
	tok = gw_xasprintf("%.*s%s", (int)(dot2 + 1 - good), good, dot2 + 5);
	CHECK(verify(tok, jwks, NULL) == GW_JWT_SIGNATURE);
	free(tok);

	CHECK(ERR_peek_error() == 0);
	gw_jwks_free(jwks);
	free(good);
	free(body);
	free(k_rsa);
	free(k_ec);
}

/* gw_jwt_check_claims on claims written as JSON; why must name want_in_why when refused. */
static bool claims_ok(const char *json, const char *nonce, const char *want_in_why)
{
	cJSON *claims = cJSON_Parse(json);
	char why[128] = "";
	bool ok;

	if (!claims)
		abort();
	ok = gw_jwt_check_claims(claims, ISSUER, CLIENT, nonce, NOW, 60, why, sizeof(why));
	if (!ok && want_in_why && !strstr(why, want_in_why)) {
		fprintf(stderr, "  why \"%s\" does not name %s\n", why, want_in_why);
		CHECK(false);
	}
	cJSON_Delete(claims);
	return ok;
}

#define C(members) "{\"iss\":\"" ISSUER "\",\"exp\":1700000300" members "}"
#define AUD ",\"aud\":\"" CLIENT "\""

static void test_claims(void)
{
	char *body = claims_json();
	cJSON *parsed = cJSON_Parse(body);
	char why[64];

	CHECK(claims_ok(body, "n-0S6_WzA2Mj", NULL));
	CHECK(claims_ok(body, NULL, NULL));
	CHECK(!gw_jwt_check_claims(parsed, ISSUER, CLIENT, "other", NOW, 60, why, sizeof(why)));
	CHECK(strstr(why, "nonce") != NULL);
	CHECK(!gw_jwt_check_claims(parsed, ISSUER, "other-client", NULL, NOW, 60, why, 8));
	CHECK(strlen(why) == 7); /* truncated to why_len */
	cJSON_Delete(parsed);
	free(body);

	/* iss: exactly the issuer */
	CHECK(claims_ok(C(AUD), NULL, NULL));
	CHECK(!claims_ok("{\"iss\":\"" ISSUER "/\",\"exp\":1700000300" AUD "}", NULL, "iss"));
	CHECK(!claims_ok("{\"iss\":\"HTTPS://IDP.EXAMPLE\",\"exp\":1700000300" AUD "}", NULL,
			 "iss"));
	CHECK(!claims_ok("{\"exp\":1700000300" AUD "}", NULL, "iss"));
	CHECK(!claims_ok("{\"iss\":7,\"exp\":1700000300" AUD "}", NULL, "iss"));

	/* aud: string or array, azp when the array has several entries */
	CHECK(!claims_ok(C(",\"aud\":\"client-2\""), NULL, "aud"));
	CHECK(!claims_ok(C(""), NULL, "aud"));
	CHECK(!claims_ok(C(",\"aud\":1"), NULL, "aud"));
	CHECK(!claims_ok(C(",\"aud\":\"" CLIENT "x\""), NULL, "aud"));
	CHECK(claims_ok(C(",\"aud\":[\"" CLIENT "\"]"), NULL, NULL));
	CHECK(!claims_ok(C(",\"aud\":[]"), NULL, "aud"));
	CHECK(!claims_ok(C(",\"aud\":[\"client-2\"]"), NULL, "aud"));
	CHECK(!claims_ok(C(",\"aud\":[\"client-2\",\"client-3\"],\"azp\":\"" CLIENT "\""), NULL,
			 "aud"));
	CHECK(!claims_ok(C(",\"aud\":[\"" CLIENT "\",\"client-2\"]"), NULL, "azp"));
	CHECK(!claims_ok(C(",\"aud\":[\"client-2\",\"" CLIENT "\"],\"azp\":\"client-2\""), NULL,
			 "azp"));
	CHECK(!claims_ok(C(",\"aud\":[\"client-2\",\"" CLIENT "\"],\"azp\":1"), NULL, "azp"));
	CHECK(claims_ok(C(",\"aud\":[\"client-2\",\"" CLIENT "\"],\"azp\":\"" CLIENT "\""), NULL,
			NULL));

	/* exp: after now - leeway (60 s) */
	CHECK(claims_ok("{\"iss\":\"" ISSUER "\",\"exp\":1699999970" AUD "}", NULL, NULL));
	CHECK(!claims_ok("{\"iss\":\"" ISSUER "\",\"exp\":1699999940" AUD "}", NULL, "exp"));
	CHECK(!claims_ok("{\"iss\":\"" ISSUER "\",\"exp\":1699999939" AUD "}", NULL, "exp"));
	CHECK(claims_ok("{\"iss\":\"" ISSUER "\",\"exp\":1699999941" AUD "}", NULL, NULL));
	CHECK(!claims_ok("{\"iss\":\"" ISSUER "\"" AUD "}", NULL, "exp"));
	CHECK(!claims_ok("{\"iss\":\"" ISSUER "\",\"exp\":\"1800000000\"" AUD "}", NULL, "exp"));

	/* iat and nbf: not after now + leeway */
	CHECK(claims_ok(C(AUD ",\"iat\":1700000030"), NULL, NULL));
	CHECK(claims_ok(C(AUD ",\"iat\":1700000060"), NULL, NULL));
	CHECK(!claims_ok(C(AUD ",\"iat\":1700000061"), NULL, "iat"));
	CHECK(!claims_ok(C(AUD ",\"iat\":\"1700000000\""), NULL, "iat"));
	CHECK(claims_ok(C(AUD ",\"nbf\":1700000030"), NULL, NULL));
	CHECK(!claims_ok(C(AUD ",\"nbf\":1700000100"), NULL, "nbf"));

	/* nonce: equal when asked for */
	CHECK(claims_ok(C(AUD ",\"nonce\":\"abc\""), "abc", NULL));
	CHECK(!claims_ok(C(AUD ",\"nonce\":\"abd\""), "abc", "nonce"));
	CHECK(!claims_ok(C(AUD ",\"nonce\":\"abc \""), "abc", "nonce"));
	CHECK(!claims_ok(C(AUD), "abc", "nonce"));
	CHECK(!claims_ok(C(AUD ",\"nonce\":null"), "abc", "nonce"));
	CHECK(claims_ok(C(AUD ",\"nonce\":\"abc\""), NULL, NULL));

	/* not an object, nothing configured */
	parsed = cJSON_Parse("[1]");
	CHECK(!gw_jwt_check_claims(parsed, ISSUER, CLIENT, NULL, NOW, 60, NULL, 0));
	CHECK(!gw_jwt_check_claims(NULL, ISSUER, CLIENT, NULL, NOW, 60, NULL, 0));
	cJSON_Delete(parsed);
	parsed = cJSON_Parse(C(AUD));
	CHECK(!gw_jwt_check_claims(parsed, NULL, CLIENT, NULL, NOW, 60, NULL, 0));
	CHECK(!gw_jwt_check_claims(parsed, ISSUER, NULL, NULL, NOW, 60, NULL, 0));
	CHECK(gw_jwt_check_claims(parsed, ISSUER, CLIENT, NULL, NOW, 0, NULL, 0));
	CHECK(!gw_jwt_check_claims(parsed, ISSUER, CLIENT, NULL, NOW + 300, 0, NULL, 0));
	cJSON_Delete(parsed);
}

int main(void)
{
	rsa_a = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	rsa_b = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	rsa_small = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
	ec_a = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	ec_b = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	if (!rsa_a || !rsa_b || !rsa_small || !ec_a || !ec_b) {
		fprintf(stderr, "key generation failed\n");
		return 1;
	}
	test_b64url();
	test_jwks_parse();
	test_verify_ok();
	test_rfc7515_examples();
	test_verify_refused();
	test_verify_malformed();
	test_claims();
	EVP_PKEY_free(rsa_a);
	EVP_PKEY_free(rsa_b);
	EVP_PKEY_free(rsa_small);
	EVP_PKEY_free(ec_a);
	EVP_PKEY_free(ec_b);
	TEST_REPORT();
}
