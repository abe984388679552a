/* omni-mcp-gateway: the command line. Runs the gateway, checks a config, or makes a member
 * token. Sub-commands print for operators; the running gateway logs to stderr. */
#include <curl/curl.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache.h"
#include "cache/key.h"
#include "gateway/audit_cli.h"
#include "gateway/auth.h"
#include "gateway/config.h"
#include "gateway/log.h"
#include "gateway/server.h"

#define GW_VERSION "0.1.0"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: omni-mcp-gateway -c FILE          run the gateway\n"
		"       omni-mcp-gateway check -c FILE    validate a config; one line per problem\n"
		"       omni-mcp-gateway token            print a new member token and its SHA-256\n"
		"       omni-mcp-gateway audit verify FILE\n"
		"       omni-mcp-gateway audit tail [FILE | -c CONFIG] [--user NAME] [--tool NAME] [--since TIME]\n"
		"       omni-mcp-gateway cache purge -c FILE [--user NAME]\n"
		"                                         drop cached metadata (one member's, or all)\n"
		"       omni-mcp-gateway --version\n");
}

/* Finds "-c FILE" / "--config FILE" in argv[from..]; NULL when absent or anything else is there. */
static const char *config_arg(int argc, char **argv, int from)
{
	const char *path = NULL;

	for (int i = from; i < argc; i++) {
		if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc)
			path = argv[++i];
		else
			return NULL;
	}
	return path;
}

static void print_diag(const struct gw_diag *diag, const char *path, FILE *out)
{
	for (size_t i = 0; i < diag->n; i++)
		fprintf(out, "%s: %s\n", path, diag->lines[i]);
}

static int cmd_check(const char *path)
{
	struct gw_diag diag = {0};
	struct gw_config *cfg = gw_config_load(path, &diag);

	print_diag(&diag, path, stdout);
	if (cfg)
		printf("%s: ok (%zu members)\n", path, cfg->n_members);
	gw_config_free(cfg);
	gw_diag_fini(&diag);
	return cfg ? 0 : 1;
}

static int cmd_token(void)
{
	char token[44], hex[65];

	if (gw_auth_token_new(token, hex) < 0) {
		fprintf(stderr, "token: no randomness available\n");
		return 1;
	}
	printf("token: %s\ntoken_sha256: %s\n", token, hex);
	printf("# give the token to the member; put token_sha256 in their users[] entry\n");
	return 0;
}

/* The identity prefix of one member's cache entries: the Omni identity they run as. */
static char *member_prefix(const struct gw_config *cfg, const char *name)
{
	char *identity, *prefix;

	for (size_t i = 0; i < cfg->n_members; i++) {
		const struct gw_member *m = &cfg->members[i];

		if (strcmp(m->name, name) != 0)
			continue;
		identity = cache_identity(m->omni_pat ? m->omni_pat : cfg->omni_api_key,
					  m->omni_pat == NULL, m->omni_user_id);
		prefix = identity ? cache_identity_prefix(identity) : NULL;
		free(identity);
		return prefix;
	}
	return NULL;
}

/* cache purge -c FILE [--user NAME]: talks to Redis directly (a blocking connection is fine
 * here: this is not the gateway's loop). */
static int cmd_cache_purge(int argc, char **argv)
{
	const char *path = NULL, *user = NULL;
	struct gw_diag diag = {0};
	struct gw_config *cfg;
	char *prefix = NULL, *err = NULL;
	long deleted = 0;
	int rc = 1;

	for (int i = 0; i < argc; i++) {
		if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc)
			path = argv[++i];
		else if (strcmp(argv[i], "--user") == 0 && i + 1 < argc)
			user = argv[++i];
		else
			path = NULL, i = argc;
	}
	if (!path) {
		usage(stderr);
		return 2;
	}
	cfg = gw_config_load(path, &diag);
	print_diag(&diag, path, stderr);
	gw_diag_fini(&diag);
	if (!cfg)
		return 1;
	if (user && !(prefix = member_prefix(cfg, user))) {
		fprintf(stderr, "cache purge: no member named %s in %s\n", user, path);
		goto out;
	}
	if (cache_purge_sync(cfg->cache, prefix, &deleted, &err) < 0) {
		fprintf(stderr, "cache purge: %s\n", err);
		goto out;
	}
	printf("cache purge: %ld entr%s deleted%s%s\n", deleted, deleted == 1 ? "y" : "ies",
	       user ? " for " : "", user ? user : "");
	rc = 0;
out:
	free(err);
	free(prefix);
	gw_config_free(cfg);
	return rc;
}

static int cmd_run(const char *path)
{
	struct gw_diag diag = {0};
	struct gw_config *cfg = gw_config_load(path, &diag);
	struct gw_server *srv;
	int rc;

	/* The config's own warnings already go where, and how, it says logs go. */
	if (cfg && gw_log_configure(cfg->log_format, cfg->log_file) < 0) {
		gw_error("cannot open log file %s", cfg->log_file);
		gw_config_free(cfg);
		cfg = NULL;
	}
	for (size_t i = 0; i < diag.n; i++)
		gw_log(cfg ? GW_LOG_WARN : GW_LOG_ERROR, "config %s: %s", path, diag.lines[i]);
	gw_diag_fini(&diag);
	if (!cfg)
		return 1;
	gw_log_set_level(gw_log_level_parse(cfg->log_level));
	signal(SIGPIPE, SIG_IGN);
	/* Every request allocates and frees buffers of 16 KiB and more (TLS records, curl's
	 * receive buffer): with glibc's default 128 KiB trim threshold the top of the heap was
	 * given back and taken again all the time (brk and page faults: about 5% of the CPU under
	 * load). Up to 16 MiB of free heap is kept instead. */
	mallopt(M_TRIM_THRESHOLD, 16 << 20);
	mallopt(M_TOP_PAD, 1 << 20);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		gw_error("libcurl: global init failed");
		gw_config_free(cfg);
		return 1;
	}
	srv = gw_server_new(cfg, path);
	if (!srv) {
		curl_global_cleanup();
		return 1;
	}
	gw_info("omni-mcp-gateway %s: %zu members, upstream %s", GW_VERSION, cfg->n_members,
		cfg->upstream_url);
	rc = gw_server_run(srv);
	gw_server_free(srv);
	curl_global_cleanup();
	return rc;
}

int main(int argc, char **argv)
{
	const char *path;

	if (argc >= 2 && strcmp(argv[1], "token") == 0 && argc == 2)
		return cmd_token();
	if (argc >= 2 && strcmp(argv[1], "--version") == 0) {
		printf("omni-mcp-gateway %s\n", GW_VERSION);
		return 0;
	}
	if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
		usage(stdout);
		return 0;
	}
	if (argc >= 2 && strcmp(argv[1], "audit") == 0)
		return audit_cli_main(argc - 2, argv + 2);
	if (argc >= 3 && strcmp(argv[1], "cache") == 0 && strcmp(argv[2], "purge") == 0)
		return cmd_cache_purge(argc - 3, argv + 3);
	if (argc >= 2 && strcmp(argv[1], "check") == 0) {
		path = config_arg(argc, argv, 2);
		if (!path) {
			usage(stderr);
			return 2;
		}
		return cmd_check(path);
	}
	path = config_arg(argc, argv, 1);
	if (!path) {
		usage(stderr);
		return 2;
	}
	return cmd_run(path);
}
