/* The gateway's configuration: one JSON file, read with cJSON against one table of keys with
 * types, defaults and validation. Loading never logs; it reports every problem it finds. */
#ifndef GW_CONFIG_H
#define GW_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

struct gw_member_state;

struct gw_member {
	char *name;
	unsigned char token_sha256[32];
	char *omni_pat;     /* secret; NULL when the member runs on the organization key */
	char *omni_user_id; /* NULL when none is configured */
	bool user_required;
	bool has_token;     /* token_sha256 was set (a member may sign in with OAuth only) */
	char *sign_in;      /* the identity provider's claim value this member signs in as */
	struct gw_member_state *state; /* the server's counters for this member (not config) */
};

struct gw_strlist {
	char **items;
	size_t n;
};

/* The gateway as OAuth server for MCP clients, signing people in through the team's OpenID
 * Connect provider (docs/oauth.md). */
struct gw_oauth_config {
	char *public_url;        /* the gateway's origin for clients: the issuer */
	char *resource;          /* public_url + mcp_path (derived) */
	char *resource_metadata; /* the RFC 9728 document's URL (derived) */
	long access_token_ttl_s;
	long refresh_token_ttl_s;
	long code_ttl_s;
	long client_ttl_s;
	struct gw_strlist redirect_uris;
	char *provider_issuer;
	char *provider_client_id;
	char *provider_client_secret; /* secret; NULL: a public client */
	char *provider_claim;
	char *provider_scopes;
	char *provider_ca_file;
};

struct gw_config {
	char *listen;       /* "host:port" as written */
	char *listen_host;  /* parsed from listen */
	int listen_port;
	char *tls_cert;     /* NULL: plain HTTP */
	char *tls_key;
	bool plain_http;
	char *mcp_path;
	char *upstream_url;
	char *upstream_ca_file;
	long upstream_connect_timeout_ms;
	long upstream_idle_timeout_ms;
	long upstream_max_connections;
	struct gw_strlist allowed_origins;
	struct gw_strlist allowed_hosts;
	bool user_required;
	char *omni_api_key; /* secret; NULL when the team has no organization key */
	long max_body_bytes;
	long max_connections;
	long client_timeout_ms;
	long keepalive_timeout_ms;
	char *log_level;
	char *log_format;      /* "text" | "json" | "logfmt" */
	char *log_file;        /* NULL: stderr */
	char *admin_listen;    /* NULL: no admin listener */
	long drain_timeout_ms;
	struct gw_oauth_config oauth; /* "oauth"; oauth.public_url NULL: OAuth off */
	struct gw_member *members;
	size_t n_members;
	struct policy *policy; /* groups and rules (policy/policy.h) */
	struct cache_config *cache; /* "cache" and "redis" (cache/cache.h) */
	struct audit_config *audit; /* "audit" (gateway/audit.h); NULL: auditing off */
	int refs;              /* the server and each request running with this config */
};

/* Problems found while loading: errors make the config unusable, warnings do not. Each line
 * names the config path of the problem ("users[1].omni_pat_env: ..."). */
struct gw_diag {
	char **lines;
	size_t n;
	int errors;
};

/* Loads and validates the file at path. Returns NULL when there is at least one error; the
 * diagnostics (errors and warnings) are appended to diag either way. */
struct gw_config *gw_config_load(const char *path, struct gw_diag *diag);

/* The same from JSON text already in memory (used by load and by the unit tests). */
struct gw_config *gw_config_parse(const char *text, size_t len, struct gw_diag *diag);

/* Frees cfg now, whoever refers to it (for a config that never went live). */
void gw_config_free(struct gw_config *cfg);

/* A reload swaps the server's config while requests still run with the old one: each holds
 * a reference, and the last one out frees it. A loaded config starts with one reference. */
struct gw_config *gw_config_ref(struct gw_config *cfg);
void gw_config_unref(struct gw_config *cfg);

/* For the modules that read their own config sections (cache, audit): the index of item's
 * name in names (NULL-terminated), or -1 after reporting an unknown or repeated key at path. */
struct cJSON;
int gw_config_key_index(const struct cJSON *obj, const struct cJSON *item,
			const char *const *names, const char *path, struct gw_diag *diag);

/* A secret kept in a file (*_file keys): its text without the trailing newline, or NULL with
 * errno set. The caller frees it. */
char *gw_config_read_secret_file(const char *path);

void gw_diag_add(struct gw_diag *diag, bool error, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void gw_diag_fini(struct gw_diag *diag);

#endif
