/* Config loading: a table of keys per JSON object (type, default, validation), walked by one
 * generic reader, then the checks that span several keys. Secrets are read from *_env or
 * *_file keys; an inline secret is accepted with a warning. */
#include "gateway/config.h"

#include "cache/cache.h"
#include "gateway/audit.h"
#include "gateway/util.h"
#include "policy/policy.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

enum key_kind {
	KEY_STRING,  /* char *, NULL when absent without default */
	KEY_BOOL,    /* bool */
	KEY_NUMBER,  /* long, at least min */
	KEY_STRLIST, /* struct gw_strlist */
	KEY_SECRET,  /* char *: NAME (inline, warned), NAME_env or NAME_file */
	KEY_SHA256,  /* unsigned char[32] from 64 hex digits */
	KEY_OBJECT,  /* nested table, fields in the same struct */
	KEY_MEMBERS, /* the users array */
	KEY_MODULE,  /* read and validated by another module (policy) from the same JSON */
};

struct key {
	const char *name;
	enum key_kind kind;
	size_t offset;
	bool required;
	const char *def_str;
	long def_num;
	long min;
	const struct key *sub;
};

#define END_KEYS {NULL, 0, 0, false, NULL, 0, 0, NULL}
#define CFG(field) offsetof(struct gw_config, field)
#define MEM(field) offsetof(struct gw_member, field)
#define OAUTH(field) offsetof(struct gw_config, oauth.field)

static const struct key tls_keys[] = {
	{"cert", KEY_STRING, CFG(tls_cert), true, NULL, 0, 0, NULL},
	{"key", KEY_STRING, CFG(tls_key), true, NULL, 0, 0, NULL},
	END_KEYS,
};

static const struct key upstream_keys[] = {
	{"url", KEY_STRING, CFG(upstream_url), true, NULL, 0, 0, NULL},
	{"ca_file", KEY_STRING, CFG(upstream_ca_file), false, NULL, 0, 0, NULL},
	{"connect_timeout_ms", KEY_NUMBER, CFG(upstream_connect_timeout_ms), false, NULL, 5000, 1, NULL},
	{"idle_timeout_ms", KEY_NUMBER, CFG(upstream_idle_timeout_ms), false, NULL, 300000, 1000, NULL},
	{"max_connections", KEY_NUMBER, CFG(upstream_max_connections), false, NULL, 64, 1, NULL},
	END_KEYS,
};

static const struct key admin_keys[] = {
	{"listen", KEY_STRING, CFG(admin_listen), false, "127.0.0.1:9090", 0, 0, NULL},
	END_KEYS,
};

static const struct key log_keys[] = {
	{"format", KEY_STRING, CFG(log_format), false, "text", 0, 0, NULL},
	{"file", KEY_STRING, CFG(log_file), false, NULL, 0, 0, NULL},
	END_KEYS,
};

static const struct key provider_keys[] = {
	{"issuer", KEY_STRING, OAUTH(provider_issuer), true, NULL, 0, 0, NULL},
	{"client_id", KEY_STRING, OAUTH(provider_client_id), true, NULL, 0, 0, NULL},
	{"client_secret", KEY_SECRET, OAUTH(provider_client_secret), false, NULL, 0, 0, NULL},
	{"claim", KEY_STRING, OAUTH(provider_claim), false, "email", 0, 0, NULL},
	{"scopes", KEY_STRING, OAUTH(provider_scopes), false, "openid email", 0, 0, NULL},
	{"ca_file", KEY_STRING, OAUTH(provider_ca_file), false, NULL, 0, 0, NULL},
	END_KEYS,
};

static const struct key oauth_keys[] = {
	{"public_url", KEY_STRING, OAUTH(public_url), true, NULL, 0, 0, NULL},
	{"access_token_ttl_s", KEY_NUMBER, OAUTH(access_token_ttl_s), false, NULL, 900, 1, NULL},
	{"refresh_token_ttl_s", KEY_NUMBER, OAUTH(refresh_token_ttl_s), false, NULL, 2592000, 60, NULL},
	{"code_ttl_s", KEY_NUMBER, OAUTH(code_ttl_s), false, NULL, 60, 1, NULL},
	{"client_ttl_s", KEY_NUMBER, OAUTH(client_ttl_s), false, NULL, 7776000, 60, NULL},
	{"redirect_uris", KEY_STRLIST, OAUTH(redirect_uris), false, NULL, 0, 0, NULL},
	{"provider", KEY_OBJECT, 0, true, NULL, 0, 0, provider_keys},
	END_KEYS,
};

static const struct key member_keys[] = {
	{"name", KEY_STRING, MEM(name), true, NULL, 0, 0, NULL},
	{"token_sha256", KEY_SHA256, MEM(token_sha256), false, NULL, 0, 0, NULL},
	{"sign_in", KEY_STRING, MEM(sign_in), false, NULL, 0, 0, NULL},
	{"omni_pat", KEY_SECRET, MEM(omni_pat), false, NULL, 0, 0, NULL},
	{"omni_user_id", KEY_STRING, MEM(omni_user_id), false, NULL, 0, 0, NULL},
	{"user_required", KEY_BOOL, MEM(user_required), false, NULL, 0, 0, NULL},
	{"groups", KEY_MODULE, 0, false, NULL, 0, 0, NULL},
	{"rule", KEY_MODULE, 0, false, NULL, 0, 0, NULL},
	END_KEYS,
};

static const struct key root_keys[] = {
	{"listen", KEY_STRING, CFG(listen), false, "127.0.0.1:8443", 0, 0, NULL},
	{"tls", KEY_OBJECT, 0, false, NULL, 0, 0, tls_keys},
	{"plain_http", KEY_BOOL, CFG(plain_http), false, NULL, 0, 0, NULL},
	{"mcp_path", KEY_STRING, CFG(mcp_path), false, "/mcp", 0, 0, NULL},
	{"upstream", KEY_OBJECT, 0, true, NULL, 0, 0, upstream_keys},
	{"allowed_origins", KEY_STRLIST, CFG(allowed_origins), false, NULL, 0, 0, NULL},
	{"allowed_hosts", KEY_STRLIST, CFG(allowed_hosts), false, NULL, 0, 0, NULL},
	{"user_required", KEY_BOOL, CFG(user_required), false, NULL, 0, 0, NULL},
	{"omni_api_key", KEY_SECRET, CFG(omni_api_key), false, NULL, 0, 0, NULL},
	{"max_body_bytes", KEY_NUMBER, CFG(max_body_bytes), false, NULL, 4194304, 1024, NULL},
	{"max_connections", KEY_NUMBER, CFG(max_connections), false, NULL, 10000, 1, NULL},
	{"client_timeout_ms", KEY_NUMBER, CFG(client_timeout_ms), false, NULL, 10000, 100, NULL},
	{"keepalive_timeout_ms", KEY_NUMBER, CFG(keepalive_timeout_ms), false, NULL, 60000, 100, NULL},
	{"log_level", KEY_STRING, CFG(log_level), false, "info", 0, 0, NULL},
	{"log", KEY_OBJECT, 0, false, NULL, 0, 0, log_keys},
	{"admin", KEY_OBJECT, 0, false, NULL, 0, 0, admin_keys},
	{"drain_timeout_ms", KEY_NUMBER, CFG(drain_timeout_ms), false, NULL, 10000, 0, NULL},
	{"oauth", KEY_OBJECT, 0, false, NULL, 0, 0, oauth_keys},
	{"users", KEY_MEMBERS, 0, true, NULL, 0, 0, member_keys},
	{"groups", KEY_MODULE, 0, false, NULL, 0, 0, NULL},
	{"redis", KEY_MODULE, 0, false, NULL, 0, 0, NULL},
	{"cache", KEY_MODULE, 0, false, NULL, 0, 0, NULL},
	{"audit", KEY_MODULE, 0, false, NULL, 0, 0, NULL},
	END_KEYS,
};

void gw_diag_add(struct gw_diag *diag, bool error, const char *fmt, ...)
{
	char buf[512];
	int n = 0;
	va_list ap;

	if (!error)
		n = snprintf(buf, sizeof(buf), "warning: ");
	va_start(ap, fmt);
	vsnprintf(buf + n, sizeof(buf) - n, fmt, ap);
	va_end(ap);
	diag->lines = realloc(diag->lines, (diag->n + 1) * sizeof(*diag->lines));
	if (!diag->lines)
		abort();
	diag->lines[diag->n++] = strdup(buf);
	if (error)
		diag->errors++;
}

void gw_diag_fini(struct gw_diag *diag)
{
	for (size_t i = 0; i < diag->n; i++)
		free(diag->lines[i]);
	free(diag->lines);
	diag->lines = NULL;
	diag->n = 0;
	diag->errors = 0;
}

/* Reads a whole small file (a secret or the config); NULL with errno set on failure. */
static char *read_file(const char *path, size_t *len_out)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t len = 0, cap = 0, n;

	if (!f)
		return NULL;
	do {
		if (len + 4096 + 1 > cap) {
			cap = cap ? cap * 2 : 8192;
			buf = realloc(buf, cap);
			if (!buf)
				abort();
		}
		n = fread(buf + len, 1, cap - len - 1, f);
		len += n;
	} while (n > 0);
	if (ferror(f)) {
		free(buf);
		buf = NULL;
	} else {
		buf[len] = '\0';
		if (len_out)
			*len_out = len;
	}
	fclose(f);
	return buf;
}

/* A secret file usually ends with a newline that is not part of the secret. */
static void trim_right(char *s)
{
	size_t n = strlen(s);

	while (n > 0 && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
}

static bool hex_decode(const char *hex, unsigned char *out, size_t out_len)
{
	if (strlen(hex) != out_len * 2)
		return false;
	for (size_t i = 0; i < out_len; i++) {
		unsigned int b;

		if (!isxdigit((unsigned char)hex[2 * i]) || !isxdigit((unsigned char)hex[2 * i + 1]) ||
		    sscanf(hex + 2 * i, "%2x", &b) != 1)
			return false;
		out[i] = (unsigned char)b;
	}
	return true;
}

char *gw_config_read_secret_file(const char *path)
{
	char *s = read_file(path, NULL);

	if (s)
		trim_right(s);
	return s;
}

int gw_config_key_index(const cJSON *obj, const cJSON *item, const char *const *names,
			const char *path, struct gw_diag *diag)
{
	int i;

	for (i = 0; names[i] && strcmp(names[i], item->string) != 0; i++)
		;
	if (!names[i]) {
		gw_diag_add(diag, true, "%s: unknown key", path);
		return -1;
	}
	for (const cJSON *prev = obj->child; prev != item; prev = prev->next) {
		if (strcmp(prev->string, item->string) == 0) {
			gw_diag_add(diag, true, "%s: set more than once", path);
			return -1;
		}
	}
	return i;
}

/* Which spelling of a secret key an item uses: 0 inline, 1 _env, 2 _file; -1 no match. */
static int secret_form(const char *key_name, const char *item_name)
{
	size_t n = strlen(key_name);

	if (strncmp(key_name, item_name, n) != 0)
		return -1;
	if (item_name[n] == '\0')
		return 0;
	if (strcmp(item_name + n, "_env") == 0)
		return 1;
	if (strcmp(item_name + n, "_file") == 0)
		return 2;
	return -1;
}

static const struct key *find_key(const struct key *table, const char *name, int *form)
{
	for (const struct key *k = table; k->name; k++) {
		*form = k->kind == KEY_SECRET ? secret_form(k->name, name)
					      : (strcmp(k->name, name) == 0 ? 0 : -1);
		if (*form >= 0)
			return k;
	}
	return NULL;
}

static void read_secret(const cJSON *item, int form, const char *path, char **dst,
			struct gw_diag *diag)
{
	const char *v = item->valuestring;

	if (form == 0) {
		gw_diag_add(diag, false, "%s: secret written inline in the config; prefer %s_env or %s_file",
			    path, path, path);
		*dst = gw_xstrdup(v);
	} else if (form == 1) {
		const char *env = getenv(v);

		if (!env || !*env)
			gw_diag_add(diag, true, "%s: environment variable %s is not set", path, v);
		else
			*dst = gw_xstrdup(env);
	} else {
		char *s = gw_config_read_secret_file(v);

		if (!s) {
			gw_diag_add(diag, true, "%s: cannot read %s: %s", path, v, strerror(errno));
			return;
		}
		if (!*s) {
			gw_diag_add(diag, true, "%s: %s is empty", path, v);
			free(s);
			return;
		}
		*dst = s;
	}
}

static void read_members(const cJSON *item, const char *path, struct gw_config *cfg,
			 const struct key *table, struct gw_diag *diag);

static void read_object(const cJSON *obj, const char *path, void *base, const struct key *table,
			struct gw_diag *diag);

/* Reads one present, non-null item into base according to k. */
static void read_item(const cJSON *item, int form, const char *path, void *base,
		      const struct key *k, struct gw_diag *diag)
{
	void *field = (char *)base + k->offset;

	switch (k->kind) {
	case KEY_STRING:
	case KEY_SECRET:
		if (!cJSON_IsString(item) || !*item->valuestring) {
			gw_diag_add(diag, true, "%s: expected a non-empty string", path);
			return;
		}
		free(*(char **)field);
		*(char **)field = NULL;
		if (k->kind == KEY_SECRET)
			read_secret(item, form, path, (char **)field, diag);
		else
			*(char **)field = gw_xstrdup(item->valuestring);
		break;
	case KEY_BOOL:
		if (!cJSON_IsBool(item))
			gw_diag_add(diag, true, "%s: expected true or false", path);
		else
			*(bool *)field = cJSON_IsTrue(item);
		break;
	case KEY_NUMBER:
		/* Range first: casting a double beyond long's range is undefined. */
		if (!cJSON_IsNumber(item) || item->valuedouble < k->min || item->valuedouble > 1e15 ||
		    item->valuedouble != (double)(long)item->valuedouble)
			gw_diag_add(diag, true, "%s: expected a whole number of at least %ld (and at most 1e15)", path, k->min);
		else
			*(long *)field = (long)item->valuedouble;
		break;
	case KEY_SHA256:
		if (!cJSON_IsString(item) ||
		    !hex_decode(item->valuestring, (unsigned char *)field, 32))
			gw_diag_add(diag, true,
				    "%s: expected 64 hex digits (the SHA-256 printed by `omni-mcp-gateway token`)",
				    path);
		break;
	case KEY_STRLIST: {
		struct gw_strlist *list = field;
		const cJSON *s;
		size_t i = 0;

		if (!cJSON_IsArray(item)) {
			gw_diag_add(diag, true, "%s: expected an array of strings", path);
			return;
		}
		list->items = calloc(cJSON_GetArraySize(item) + 1, sizeof(char *));
		if (!list->items)
			abort();
		cJSON_ArrayForEach(s, item) {
			if (!cJSON_IsString(s) || !*s->valuestring)
				gw_diag_add(diag, true, "%s[%zu]: expected a non-empty string", path, i);
			else
				list->items[list->n++] = gw_xstrdup(s->valuestring);
			i++;
		}
		break;
	}
	case KEY_OBJECT:
		if (!cJSON_IsObject(item))
			gw_diag_add(diag, true, "%s: expected an object", path);
		else
			read_object(item, path, base, k->sub, diag);
		break;
	case KEY_MEMBERS:
		read_members(item, path, base, k->sub, diag);
		break;
	case KEY_MODULE:
		break;
	}
}

static void apply_default(void *base, const struct key *k)
{
	void *field = (char *)base + k->offset;

	if (k->kind == KEY_STRING && k->def_str)
		*(char **)field = gw_xstrdup(k->def_str);
	else if (k->kind == KEY_NUMBER)
		*(long *)field = k->def_num;
}

/* Walks obj against table: unknown keys, duplicates and two spellings of one secret are
 * errors; absent keys take their default or are reported when required. */
static void read_object(const cJSON *obj, const char *prefix, void *base, const struct key *table,
			struct gw_diag *diag)
{
	uint64_t seen = 0;
	char path[256];
	const cJSON *item;

	cJSON_ArrayForEach(item, obj) {
		int form;
		const struct key *k = find_key(table, item->string, &form);

		snprintf(path, sizeof(path), "%s%s%s", prefix, *prefix ? "." : "", item->string);
		if (!k) {
			gw_diag_add(diag, true, "%s: unknown key", path);
			continue;
		}
		if (seen & (1ull << (k - table))) {
			gw_diag_add(diag, true, "%s: %s is set more than once", path, k->name);
			continue;
		}
		if (cJSON_IsNull(item) && !k->required)
			continue; /* null means "not set": the default applies */
		seen |= 1ull << (k - table);
		if (cJSON_IsNull(item))
			gw_diag_add(diag, true, "%s: must not be null", path);
		else
			read_item(item, form, path, base, k, diag);
	}
	for (const struct key *k = table; k->name; k++) {
		if (seen & (1ull << (k - table)))
			continue;
		if (k->required)
			gw_diag_add(diag, true, "%s%s%s: required key is missing", prefix,
				    *prefix ? "." : "", k->name);
		else
			apply_default(base, k);
	}
}

static bool valid_member_name(const char *s)
{
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("._@-", *s))
			return false;
	return true;
}

static void read_members(const cJSON *arr, const char *path, struct gw_config *cfg,
			 const struct key *table, struct gw_diag *diag)
{
	const cJSON *item;
	char ipath[300];

	if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) == 0) {
		gw_diag_add(diag, true, "%s: expected a non-empty array of members", path);
		return;
	}
	cfg->members = calloc(cJSON_GetArraySize(arr), sizeof(*cfg->members));
	if (!cfg->members)
		abort();
	cJSON_ArrayForEach(item, arr) {
		struct gw_member *m = &cfg->members[cfg->n_members];

		snprintf(ipath, sizeof(ipath), "%s[%zu]", path, cfg->n_members++);
		if (!cJSON_IsObject(item)) {
			gw_diag_add(diag, true, "%s: expected an object", ipath);
			continue;
		}
		read_object(item, ipath, m, table, diag);
		m->has_token = cJSON_IsString(cJSON_GetObjectItemCaseSensitive(item, "token_sha256"));
		if (m->name && !valid_member_name(m->name))
			gw_diag_add(diag, true, "%s.name: use letters, digits and . _ @ - only", ipath);
	}
}

/* Splits "host:port" or "[v6]:port". */
static bool parse_listen(struct gw_config *cfg)
{
	const char *s = cfg->listen, *colon;
	char *end;
	long port;

	if (*s == '[') {
		const char *close = strchr(s, ']');

		if (!close || close[1] != ':')
			return false;
		cfg->listen_host = strndup(s + 1, close - s - 1);
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon || colon == s)
			return false;
		cfg->listen_host = strndup(s, colon - s);
	}
	if (!cfg->listen_host)
		abort();
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (errno || *end || end == colon + 1 || port < 0 || port > 65535)
		return false;
	cfg->listen_port = (int)port;
	return true;
}

static bool is_loopback(const char *host)
{
	struct in_addr a4;
	struct in6_addr a6;

	if (strcmp(host, "localhost") == 0)
		return true;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, host, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6);
	return false;
}

static void check_members(struct gw_config *cfg, struct gw_diag *diag)
{
	for (size_t i = 0; i < cfg->n_members; i++) {
		struct gw_member *m = &cfg->members[i];

		for (size_t j = 0; j < i; j++) {
			if (m->name && cfg->members[j].name && strcmp(m->name, cfg->members[j].name) == 0)
				gw_diag_add(diag, true, "users[%zu].name: %s is also users[%zu]", i, m->name, j);
			if (m->has_token && cfg->members[j].has_token &&
			    memcmp(m->token_sha256, cfg->members[j].token_sha256, 32) == 0)
				gw_diag_add(diag, true, "users[%zu].token_sha256: same token as users[%zu]", i, j);
			if (m->sign_in && cfg->members[j].sign_in &&
			    strcasecmp(m->sign_in, cfg->members[j].sign_in) == 0)
				gw_diag_add(diag, true, "users[%zu].sign_in: %s also signs in as users[%zu]", i,
					    m->sign_in, j);
		}
		if (!m->has_token && !m->sign_in)
			gw_diag_add(diag, true, "users[%zu]: needs token_sha256, or sign_in with oauth", i);
		else if (m->sign_in && !cfg->oauth.public_url)
			gw_diag_add(diag, false, "users[%zu].sign_in: no oauth block: %s cannot sign in", i,
				    m->name ? m->name : "this member");
		if (!m->omni_pat && !cfg->omni_api_key)
			gw_diag_add(diag, true,
				    "users[%zu]: no omni_pat and no team omni_api_key: %s has no Omni credential",
				    i, m->name ? m->name : "this member");
		else if (!m->omni_pat && !m->omni_user_id)
			gw_diag_add(diag, false,
				    "users[%zu]: on the organization key without omni_user_id: %s will be "
				    "refused (the key alone runs as an admin)",
				    i, m->name ? m->name : "this member");
	}
}

/* Reads "scheme://host[:port]" at the start of url: *rest points after it, *loopback tells
 * whether host is a loopback name. */
static bool parse_authority(const char *url, const char **rest, bool *loopback)
{
	const char *host = strstr(url, "://"), *end;
	char name[256];
	size_t n;

	if (!host || strcspn(url, ":") != (size_t)(host - url))
		return false;
	host += 3;
	if (*host == '[') {
		end = strchr(host, ']');
		if (!end)
			return false;
		n = (size_t)(end - host - 1);
		host++;
		end++;
	} else {
		n = strcspn(host, ":/?#@");
		end = host + n;
	}
	if (n == 0 || n >= sizeof(name))
		return false;
	memcpy(name, host, n);
	name[n] = '\0';
	*loopback = is_loopback(name);
	if (*end == ':') {
		end++;
		if (!isdigit((unsigned char)*end))
			return false;
		while (isdigit((unsigned char)*end))
			end++;
	}
	*rest = end;
	return *end == '\0' || *end == '/';
}

static bool has_word(const char *list, const char *word)
{
	size_t n = strlen(word);

	for (const char *p = list; (p = strstr(p, word)); p += n)
		if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0'))
			return true;
	return false;
}

static bool is_https(const char *url)
{
	return strncmp(url, "https://", 8) == 0;
}

static void check_oauth(struct gw_config *cfg, struct gw_diag *diag)
{
	struct gw_oauth_config *o = &cfg->oauth;
	const char *rest;
	bool loopback;
	size_t n;

	if (!o->public_url)
		return;
	if (!parse_authority(o->public_url, &rest, &loopback) || (*rest && strcmp(rest, "/") != 0) ||
	    (!is_https(o->public_url) && strncmp(o->public_url, "http://", 7) != 0))
		gw_diag_add(diag, true, "oauth.public_url: expected https://host[:port], nothing after");
	else if (!is_https(o->public_url) && !cfg->plain_http && !loopback)
		gw_diag_add(diag, true, "oauth.public_url: must be https (or set plain_http behind a TLS "
					"load balancer)");
	n = strlen(o->public_url);
	if (n > 0 && o->public_url[n - 1] == '/')
		o->public_url[n - 1] = '\0';
	if (o->provider_issuer && (!parse_authority(o->provider_issuer, &rest, &loopback) ||
				   (!is_https(o->provider_issuer) && !loopback)))
		gw_diag_add(diag, true, "oauth.provider.issuer: expected an https:// URL (http only on "
					"loopback)");
	if (o->provider_scopes && !has_word(o->provider_scopes, "openid"))
		gw_diag_add(diag, true, "oauth.provider.scopes: must include openid");
	if (o->provider_ca_file && access(o->provider_ca_file, R_OK) != 0)
		gw_diag_add(diag, true, "oauth.provider.ca_file: cannot read %s: %s",
			    o->provider_ca_file, strerror(errno));
	if (cfg->mcp_path) {
		o->resource = gw_xasprintf("%s%s", o->public_url, cfg->mcp_path);
		o->resource_metadata = gw_xasprintf("%s/.well-known/oauth-protected-resource%s",
						    o->public_url, cfg->mcp_path);
	}
}

/* The checks that span several keys. */
static void check_config(struct gw_config *cfg, struct gw_diag *diag)
{
	if (cfg->listen && !parse_listen(cfg))
		gw_diag_add(diag, true, "listen: expected host:port, e.g. 0.0.0.0:8443 or [::1]:8443");
	else if (cfg->listen_host && !cfg->tls_cert && !cfg->plain_http && !is_loopback(cfg->listen_host))
		gw_diag_add(diag, true,
			    "listen: plain HTTP on a non-loopback address: configure tls, or set "
			    "plain_http: true behind a TLS-terminating load balancer");
	if (cfg->tls_cert && cfg->plain_http)
		gw_diag_add(diag, true, "plain_http: contradicts tls; remove one of them");
	if (cfg->tls_cert && access(cfg->tls_cert, R_OK) != 0)
		gw_diag_add(diag, true, "tls.cert: cannot read %s: %s", cfg->tls_cert, strerror(errno));
	if (cfg->tls_key && access(cfg->tls_key, R_OK) != 0)
		gw_diag_add(diag, true, "tls.key: cannot read %s: %s", cfg->tls_key, strerror(errno));
	if (cfg->mcp_path && cfg->mcp_path[0] != '/')
		gw_diag_add(diag, true, "mcp_path: must start with /");
	if (cfg->upstream_url && strncmp(cfg->upstream_url, "https://", 8) != 0 &&
	    strncmp(cfg->upstream_url, "http://", 7) != 0)
		gw_diag_add(diag, true, "upstream.url: must be an http:// or https:// URL");
	else if (cfg->upstream_url && strncmp(cfg->upstream_url, "http://", 7) == 0)
		gw_diag_add(diag, false,
			    "upstream.url: plain http: members' Omni credentials cross the network unencrypted");
	if (cfg->upstream_ca_file && access(cfg->upstream_ca_file, R_OK) != 0)
		gw_diag_add(diag, true, "upstream.ca_file: cannot read %s: %s", cfg->upstream_ca_file,
			    strerror(errno));
	if (cfg->log_level && strcmp(cfg->log_level, "debug") && strcmp(cfg->log_level, "info") &&
	    strcmp(cfg->log_level, "warn") && strcmp(cfg->log_level, "error"))
		gw_diag_add(diag, true, "log_level: expected debug, info, warn or error");
	if (!cfg->log_format)
		cfg->log_format = gw_xstrdup("text");
	if (strcmp(cfg->log_format, "text") && strcmp(cfg->log_format, "json") &&
	    strcmp(cfg->log_format, "logfmt"))
		gw_diag_add(diag, true, "log.format: expected text, json or logfmt");
	check_members(cfg, diag);
	check_oauth(cfg, diag);
}

struct gw_config *gw_config_parse(const char *text, size_t len, struct gw_diag *diag)
{
	struct gw_config *cfg;
	const char *end = NULL;
	cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, false);
	int errors_before = diag->errors;

	while (root && end < text + len && isspace((unsigned char)*end))
		end++;
	if (!root || !cJSON_IsObject(root) || end < text + len) {
		gw_diag_add(diag, true, "config: not a JSON object (error near byte %ld)",
			    root ? (long)(end - text) : (long)(cJSON_GetErrorPtr() - text));
		cJSON_Delete(root);
		return NULL;
	}
	cfg = calloc(1, sizeof(*cfg));
	if (!cfg)
		abort();
	cfg->refs = 1;
	read_object(root, "", cfg, root_keys, diag);
	check_config(cfg, diag);
	if (diag->errors == errors_before)
		cfg->policy = policy_new(root, cfg, diag);
	cfg->cache = cache_config_parse(root, diag);
	cfg->audit = audit_config_parse(root, diag);
	cJSON_Delete(root);
	if (diag->errors > errors_before) {
		gw_config_free(cfg);
		return NULL;
	}
	return cfg;
}

struct gw_config *gw_config_load(const char *path, struct gw_diag *diag)
{
	size_t len;
	char *text = read_file(path, &len);
	struct gw_config *cfg;

	if (!text) {
		gw_diag_add(diag, true, "%s: cannot read: %s", path, strerror(errno));
		return NULL;
	}
	cfg = gw_config_parse(text, len, diag);
	free(text);
	return cfg;
}

/* Overwrites a secret before freeing it, so it does not linger in freed heap memory. */
static void free_secret(char *s)
{
	if (s)
		explicit_bzero(s, strlen(s));
	free(s);
}

static void free_strlist(struct gw_strlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->items[i]);
	free(l->items);
}

struct gw_config *gw_config_ref(struct gw_config *cfg)
{
	cfg->refs++;
	return cfg;
}

void gw_config_unref(struct gw_config *cfg)
{
	if (cfg && --cfg->refs == 0)
		gw_config_free(cfg);
}

void gw_config_free(struct gw_config *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; i < cfg->n_members; i++) {
		free(cfg->members[i].name);
		free_secret(cfg->members[i].omni_pat);
		free(cfg->members[i].omni_user_id);
		free(cfg->members[i].sign_in);
	}
	free(cfg->oauth.public_url);
	free(cfg->oauth.resource);
	free(cfg->oauth.resource_metadata);
	free_strlist(&cfg->oauth.redirect_uris);
	free(cfg->oauth.provider_issuer);
	free(cfg->oauth.provider_client_id);
	free_secret(cfg->oauth.provider_client_secret);
	free(cfg->oauth.provider_claim);
	free(cfg->oauth.provider_scopes);
	free(cfg->oauth.provider_ca_file);
	free(cfg->members);
	policy_free(cfg->policy);
	cache_config_free(cfg->cache);
	audit_config_free(cfg->audit);
	free(cfg->listen);
	free(cfg->listen_host);
	free(cfg->tls_cert);
	free(cfg->tls_key);
	free(cfg->mcp_path);
	free(cfg->upstream_url);
	free(cfg->upstream_ca_file);
	free_strlist(&cfg->allowed_origins);
	free_strlist(&cfg->allowed_hosts);
	free_secret(cfg->omni_api_key);
	free(cfg->log_level);
	free(cfg->log_format);
	free(cfg->log_file);
	free(cfg->admin_listen);
	free(cfg);
}
