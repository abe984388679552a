/* Cache keys and identities (see key.h): SHA-256 over length-prefixed fields, and a canonical
 * JSON form of tool arguments so that the same question asked with its keys in another order
 * finds the same entry. */
#include "cache/key.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A growing string; every append aborts on out-of-memory. */
struct buf {
	char *p;
	size_t len, cap;
};

static void buf_add(struct buf *b, const void *data, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 64;

		while (b->len + n + 1 > cap)
			cap *= 2;
		b->p = realloc(b->p, cap);
		if (!b->p)
			abort();
		b->cap = cap;
	}
	memcpy(b->p + b->len, data, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void buf_str(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

/* Hex of SHA-256(data): hex_len digits (at most 64) and a NUL into out. */
static void sha256_hex(const void *data, size_t len, char *out, size_t hex_len)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char d[SHA256_DIGEST_LENGTH];

	SHA256(data, len, d);
	for (size_t i = 0; i < hex_len; i++)
		out[i] = hex[i % 2 ? d[i / 2] & 15 : d[i / 2] >> 4];
	out[hex_len] = '\0';
	OPENSSL_cleanse(d, sizeof(d));
}

char *cache_identity(const char *credential, bool org_key, const char *user_id)
{
	struct buf b = {0};
	char h[33];

	if (!credential || !*credential)
		return NULL;
	sha256_hex(credential, strlen(credential), h, 32);
	buf_str(&b, org_key ? "org:" : "pat:");
	buf_str(&b, h);
	if (user_id && *user_id) {
		buf_str(&b, ":user:");
		buf_str(&b, user_id);
	}
	return b.p;
}

char *cache_identity_prefix(const char *identity)
{
	struct buf b = {0};
	char h[33];

	sha256_hex(identity, strlen(identity), h, 32);
	buf_str(&b, CACHE_KEY_NAMESPACE);
	buf_str(&b, h);
	buf_str(&b, ":");
	return b.p;
}

/* JSON string escaping as RFC 8259 requires; bytes >= 0x80 pass through unchanged, so the same
 * UTF-8 text always gives the same bytes. */
static void add_json_string(struct buf *b, const char *s)
{
	buf_add(b, "\"", 1);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		char esc[8];

		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			buf_add(b, esc, 2);
		} else if (c < 0x20) {
			snprintf(esc, sizeof(esc), "\\u%04x", c);
			buf_add(b, esc, 6);
		} else {
			buf_add(b, s, 1);
		}
	}
	buf_add(b, "\"", 1);
}

struct member {
	const cJSON *item;
	size_t index; /* original position: keeps duplicate keys in a stable order */
};

static int member_cmp(const void *a, const void *b)
{
	const struct member *x = a, *y = b;
	int c = strcmp(x->item->string, y->item->string);

	if (c)
		return c;
	return x->index < y->index ? -1 : x->index > y->index;
}

static void add_canonical(struct buf *b, const cJSON *v);

static void add_object(struct buf *b, const cJSON *obj)
{
	size_t n = 0, i = 0;
	struct member *m;
	const cJSON *it;

	cJSON_ArrayForEach(it, obj)
		n++;
	m = calloc(n ? n : 1, sizeof(*m));
	if (!m)
		abort();
	cJSON_ArrayForEach(it, obj) {
		m[i].item = it;
		m[i].index = i;
		i++;
	}
	qsort(m, n, sizeof(*m), member_cmp);
	buf_add(b, "{", 1);
	for (i = 0; i < n; i++) {
		if (i)
			buf_add(b, ",", 1);
		add_json_string(b, m[i].item->string ? m[i].item->string : "");
		buf_add(b, ":", 1);
		add_canonical(b, m[i].item);
	}
	buf_add(b, "}", 1);
	free(m);
}

static void add_number(struct buf *b, const cJSON *v)
{
	char *s = cJSON_PrintUnformatted(v);

	if (!s)
		abort();
	buf_str(b, s);
	cJSON_free(s);
}

static void add_canonical(struct buf *b, const cJSON *v)
{
	const cJSON *it;
	bool first = true;

	if (cJSON_IsObject(v)) {
		add_object(b, v);
	} else if (cJSON_IsArray(v)) {
		buf_add(b, "[", 1);
		cJSON_ArrayForEach(it, v) {
			if (!first)
				buf_add(b, ",", 1);
			first = false;
			add_canonical(b, it);
		}
		buf_add(b, "]", 1);
	} else if (cJSON_IsString(v)) {
		add_json_string(b, v->valuestring ? v->valuestring : "");
	} else if (cJSON_IsNumber(v)) {
		add_number(b, v);
	} else if (cJSON_IsTrue(v)) {
		buf_str(b, "true");
	} else if (cJSON_IsFalse(v)) {
		buf_str(b, "false");
	} else {
		buf_str(b, "null"); /* null, and raw or invalid items that parsing never produces */
	}
}

char *cache_canonical_json(const cJSON *v)
{
	struct buf b = {0};

	if (!v || cJSON_IsNull(v))
		buf_str(&b, "{}");
	else
		add_canonical(&b, v);
	return b.p;
}

/* One field of the hashed tuple: "<length>:<bytes>," or "-," for NULL. The length comes first,
 * so field boundaries are unambiguous whatever bytes the fields hold. */
static void add_field(struct buf *b, const char *s)
{
	char len[24];

	if (!s) {
		buf_add(b, "-,", 2);
		return;
	}
	snprintf(len, sizeof(len), "%zu:", strlen(s));
	buf_str(b, len);
	buf_str(b, s);
	buf_add(b, ",", 1);
}

char *cache_key(const char *identity, const char *model, const char *topic, const char *method,
		const char *tool, const cJSON *arguments)
{
	struct buf tuple = {0}, key = {0};
	char *args = cache_canonical_json(arguments);
	char *prefix = cache_identity_prefix(identity);
	char h[65];

	buf_str(&tuple, "omnigw-cache-key-v1\n"); /* domain separation from any other SHA-256 use */
	add_field(&tuple, identity);
	add_field(&tuple, model);
	add_field(&tuple, topic);
	add_field(&tuple, method);
	add_field(&tuple, tool);
	add_field(&tuple, args);
	sha256_hex(tuple.p, tuple.len, h, 64);
	buf_str(&key, prefix);
	buf_str(&key, h);
	free(tuple.p);
	free(args);
	free(prefix);
	return key.p;
}
