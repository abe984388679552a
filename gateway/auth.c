/* Bearer tokens for members: SHA-256 at rest, constant-time comparison, token generation. */
#include "gateway/auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static EVP_MD *sha256_md;

static void sha256_fetch(void)
{
	if (!(sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL)))
		abort(); /* OpenSSL without SHA-256: no token could be checked */
}

/* SHA256() fetches the algorithm anew on every call in OpenSSL 3 (most of its cost for a
 * token); it is fetched once here and kept for the process. Any thread may call this. */
static void sha256(const void *data, size_t len, unsigned char digest[SHA256_DIGEST_LENGTH])
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	unsigned int n = 0;

	pthread_once(&once, sha256_fetch);
	if (EVP_Digest(data, len, digest, &n, sha256_md, NULL) != 1 || n != SHA256_DIGEST_LENGTH)
		abort();
}

const struct gw_member *gw_auth_member(const struct gw_config *cfg, const char *authorization)
{
	unsigned char digest[SHA256_DIGEST_LENGTH];
	const struct gw_member *found = NULL;
	const char *token;

	if (!authorization || strncasecmp(authorization, "Bearer ", 7) != 0)
		return NULL;
	token = authorization + 7;
	while (*token == ' ')
		token++;
	if (!*token)
		return NULL;
	sha256(token, strlen(token), digest);
	/* Compare with every member, without stopping early, so timing tells nothing. */
	for (size_t i = 0; i < cfg->n_members; i++)
		if (CRYPTO_memcmp(digest, cfg->members[i].token_sha256, sizeof(digest)) == 0 &&
		    cfg->members[i].has_token)
			found = &cfg->members[i];
	return found;
}

void gw_auth_sha256_hex(const void *data, size_t len, char out[65])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char digest[SHA256_DIGEST_LENGTH];

	sha256(data, len, digest);
	for (int i = 0; i < SHA256_DIGEST_LENGTH; i++) {
		out[2 * i] = hex[digest[i] >> 4];
		out[2 * i + 1] = hex[digest[i] & 15];
	}
	out[64] = '\0';
}

int gw_auth_token_new(char token[44], char sha256_hex[65])
{
	unsigned char raw[32];
	unsigned char b64[48];
	int n;

	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return -1;
	n = EVP_EncodeBlock(b64, raw, sizeof(raw)); /* 44 chars, one '=' of padding */
	/* url-safe alphabet, no padding: easy to paste into a client config */
	for (int i = 0; i < n; i++) {
		if (b64[i] == '+')
			b64[i] = '-';
		else if (b64[i] == '/')
			b64[i] = '_';
	}
	memcpy(token, b64, 43);
	token[43] = '\0';
	gw_auth_sha256_hex(token, 43, sha256_hex);
	OPENSSL_cleanse(raw, sizeof(raw));
	return 0;
}
