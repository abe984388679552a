/* Unit tests for gateway/config.c: values and defaults of a valid config, and for every kind of
 * mistake an operator can make, the diagnostic line that names its config path. Configs are
 * written with ' for " to keep them readable. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gateway/config.h"
#include "tests/unit/harness.h"

#define HEX_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define HEX_B "0123456789ABCDEF0123456789abcdef0123456789ABCDEF0123456789abcdef"
#define UP "'upstream':{'url':'https://acme.omniapp.co/mcp/https'}"
#define ORG "'omni_api_key_env':'GWT_ORG_KEY'"
#define ALICE                                                                                \
	"{'name':'alice','token_sha256':'" HEX_A "','omni_pat_env':'GWT_PAT_ALICE',"       \
	"'omni_user_id':'u-alice'}"
#define BOB "{'name':'bob','token_sha256':'" HEX_B "','omni_user_id':'u-bob'}"
/* A valid config: alice on her PAT, bob on the organization key. */
#define BASE UP "," ORG ",'users':[" ALICE "," BOB "]"

static char tmpdir[64];
static char cert_path[128], key_path[128], ca_path[128], org_file[128], pat_file[128],
	pat_crlf_file[128], empty_file[128], config_file[128];

static struct gw_diag diag;
static struct gw_config *cfg;

static void write_file(char *path, size_t size, const char *name, const char *content)
{
	FILE *f;

	snprintf(path, size, "%s/%s", tmpdir, name);
	f = fopen(path, "w");
	if (!f) {
		perror(path);
		exit(2);
	}
	fputs(content, f);
	fclose(f);
}

static void fixtures_init(void)
{
	const char *base = getenv("TMPDIR");

	snprintf(tmpdir, sizeof(tmpdir), "%s/gwcfg.XXXXXX", base && *base ? base : "/tmp");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		exit(2);
	}
	write_file(cert_path, sizeof(cert_path), "cert.pem", "not parsed by the config\n");
	write_file(key_path, sizeof(key_path), "key.pem", "not parsed by the config\n");
	write_file(ca_path, sizeof(ca_path), "ca.pem", "not parsed by the config\n");
	write_file(org_file, sizeof(org_file), "org.key", "org-key-from-file\n");
	write_file(pat_file, sizeof(pat_file), "pat", "pat-from-file\n");
	write_file(pat_crlf_file, sizeof(pat_crlf_file), "pat-crlf", "pat-crlf\r\n\n");
	write_file(empty_file, sizeof(empty_file), "empty", "\n");
	setenv("GWT_PAT_ALICE", "pat-alice", 1);
	setenv("GWT_ORG_KEY", "org-key", 1);
	setenv("GWT_EMPTY", "", 1);
	unsetenv("GWT_UNSET");
}

static void fixtures_fini(void)
{
	const char *files[] = {cert_path, key_path, ca_path, org_file, pat_file, pat_crlf_file,
			       empty_file, config_file};

	for (size_t i = 0; i < sizeof(files) / sizeof(*files); i++)
		if (*files[i])
			unlink(files[i]);
	rmdir(tmpdir);
}

/* Parses the config written with ' for ", after printf formatting; the result and diag stay
 * until the next call. */
static struct gw_config *parse(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static struct gw_config *parse(const char *fmt, ...)
{
	char text[8192];
	va_list ap;

	gw_config_free(cfg);
	gw_diag_fini(&diag);
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	for (char *c = text; *c; c++)
		if (*c == '\'')
			*c = '"';
	cfg = gw_config_parse(text, strlen(text), &diag);
	return cfg;
}

static void print_diag(void)
{
	fprintf(stderr, "  diagnostics (%zu, %d errors):\n", diag.n, diag.errors);
	for (size_t i = 0; i < diag.n; i++)
		fprintf(stderr, "    %s\n", diag.lines[i]);
}

/* The first diagnostic line that starts with prefix and contains needle, or NULL. */
static const char *diag_find(const char *prefix, const char *needle)
{
	for (size_t i = 0; i < diag.n; i++)
		if (strncmp(diag.lines[i], prefix, strlen(prefix)) == 0 &&
		    (!needle || strstr(diag.lines[i], needle)))
			return diag.lines[i];
	return NULL;
}

static bool diag_any(const char *needle)
{
	for (size_t i = 0; i < diag.n; i++)
		if (strstr(diag.lines[i], needle))
			return true;
	return false;
}

/* The config is refused, with an error line starting with prefix and containing needle. */
#define CHECK_REFUSED(prefix, needle)                                                        \
	do {                                                                                 \
		int before_ = test_failed;                                                   \
		CHECK(cfg == NULL);                                                          \
		CHECK(diag.errors >= 1);                                                     \
		CHECK(diag_find(prefix, needle) != NULL);                                    \
		if (test_failed > before_) {                                                 \
			fprintf(stderr, "  expected error \"%s...%s\"\n", prefix,            \
				needle ? needle : "");                                       \
			print_diag();                                                        \
		}                                                                            \
	} while (0)

/* The config is accepted, with no error and no warning. */
#define CHECK_CLEAN()                                                                        \
	do {                                                                                 \
		int before_ = test_failed;                                                   \
		CHECK(cfg != NULL);                                                          \
		CHECK(diag.errors == 0 && diag.n == 0);                                      \
		if (test_failed > before_)                                                   \
			print_diag();                                                        \
	} while (0)

static void test_full_config(void)
{
	parse("{'listen':'0.0.0.0:9443','tls':{'cert':'%s','key':'%s'},'mcp_path':'/team/mcp',"
	      "'upstream':{'url':'https://acme.omniapp.co/mcp/https','ca_file':'%s',"
	      "'connect_timeout_ms':2500,'idle_timeout_ms':60000,'max_connections':8},"
	      "'allowed_origins':['https://app.example','http://localhost:3000'],"
	      "'allowed_hosts':['mcp.team.example'],'user_required':true,"
	      "'omni_api_key_file':'%s','max_body_bytes':1048576,'max_connections':500,"
	      "'client_timeout_ms':7000,'keepalive_timeout_ms':30000,'log_level':'debug',"
	      "'users':[" ALICE ",{'name':'bob.smith@example','token_sha256':'" HEX_B "',"
	      "'omni_user_id':'u-bob','user_required':true},"
	      "{'name':'carol','token_sha256':'%064d','omni_pat_file':'%s'}]}",
	      cert_path, key_path, ca_path, org_file, 7, pat_file);
	CHECK_CLEAN();
	if (!cfg)
		return;
	CHECK_STR(cfg->listen, "0.0.0.0:9443");
	CHECK_STR(cfg->listen_host, "0.0.0.0");
	CHECK(cfg->listen_port == 9443);
	CHECK_STR(cfg->tls_cert, cert_path);
	CHECK_STR(cfg->tls_key, key_path);
	CHECK(!cfg->plain_http);
	CHECK_STR(cfg->mcp_path, "/team/mcp");
	CHECK_STR(cfg->upstream_url, "https://acme.omniapp.co/mcp/https");
	CHECK_STR(cfg->upstream_ca_file, ca_path);
	CHECK(cfg->upstream_connect_timeout_ms == 2500);
	CHECK(cfg->upstream_idle_timeout_ms == 60000);
	CHECK(cfg->upstream_max_connections == 8);
	CHECK(cfg->allowed_origins.n == 2);
	if (cfg->allowed_origins.n == 2) {
		CHECK_STR(cfg->allowed_origins.items[0], "https://app.example");
		CHECK_STR(cfg->allowed_origins.items[1], "http://localhost:3000");
	}
	CHECK(cfg->allowed_hosts.n == 1);
	if (cfg->allowed_hosts.n == 1)
		CHECK_STR(cfg->allowed_hosts.items[0], "mcp.team.example");
	CHECK(cfg->user_required);
	CHECK_STR(cfg->omni_api_key, "org-key-from-file"); /* trailing newline trimmed */
	CHECK(cfg->max_body_bytes == 1048576);
	CHECK(cfg->max_connections == 500);
	CHECK(cfg->client_timeout_ms == 7000);
	CHECK(cfg->keepalive_timeout_ms == 30000);
	CHECK_STR(cfg->log_level, "debug");

	CHECK(cfg->n_members == 3);
	if (cfg->n_members != 3)
		return;
	CHECK_STR(cfg->members[0].name, "alice");
	CHECK(cfg->members[0].token_sha256[0] == 0xaa && cfg->members[0].token_sha256[31] == 0xaa);
	CHECK_STR(cfg->members[0].omni_pat, "pat-alice");
	CHECK_STR(cfg->members[0].omni_user_id, "u-alice");
	CHECK(!cfg->members[0].user_required);
	CHECK_STR(cfg->members[1].name, "bob.smith@example");
	/* Upper- and lower-case hex both decode. */
	CHECK(cfg->members[1].token_sha256[0] == 0x01 && cfg->members[1].token_sha256[7] == 0xef &&
	      cfg->members[1].token_sha256[8] == 0x01 && cfg->members[1].token_sha256[31] == 0xef);
	CHECK(cfg->members[1].omni_pat == NULL);
	CHECK_STR(cfg->members[1].omni_user_id, "u-bob");
	CHECK(cfg->members[1].user_required);
	CHECK(cfg->members[2].token_sha256[0] == 0 && cfg->members[2].token_sha256[31] == 0x07);
	CHECK_STR(cfg->members[2].omni_pat, "pat-from-file");
	CHECK(cfg->members[2].omni_user_id == NULL);
}

static void test_defaults(void)
{
	parse("{" UP ",'users':[" ALICE "]}");
	CHECK_CLEAN();
	if (!cfg)
		return;
	CHECK_STR(cfg->listen, "127.0.0.1:8443");
	CHECK_STR(cfg->listen_host, "127.0.0.1");
	CHECK(cfg->listen_port == 8443);
	CHECK(cfg->tls_cert == NULL && cfg->tls_key == NULL);
	CHECK(!cfg->plain_http);
	CHECK_STR(cfg->mcp_path, "/mcp");
	CHECK(cfg->upstream_ca_file == NULL);
	CHECK(cfg->upstream_connect_timeout_ms == 5000);
	CHECK(cfg->upstream_idle_timeout_ms == 300000);
	CHECK(cfg->upstream_max_connections == 64);
	CHECK(cfg->allowed_origins.n == 0);
	CHECK(cfg->allowed_hosts.n == 0);
	CHECK(!cfg->user_required);
	CHECK(cfg->omni_api_key == NULL);
	CHECK(cfg->max_body_bytes == 4194304);
	CHECK(cfg->max_connections == 10000);
	CHECK(cfg->client_timeout_ms == 10000);
	CHECK(cfg->keepalive_timeout_ms == 60000);
	CHECK_STR(cfg->log_level, "info");
	CHECK(cfg->n_members == 1);
}

/* An optional key written as null takes its default (or is refused): it must never leave the
 * field empty, where the server would crash on a NULL mcp_path/listen or refuse every
 * connection with max_connections 0. */
static void test_null_means_default(void)
{
	parse("{'mcp_path':null," BASE "}");
	CHECK(cfg ? cfg->mcp_path && strcmp(cfg->mcp_path, "/mcp") == 0
		  : diag_find("mcp_path:", NULL) != NULL);
	parse("{'listen':null," BASE "}");
	CHECK(cfg ? cfg->listen_host && cfg->listen_port == 8443 : diag_find("listen:", NULL) != NULL);
	parse("{'log_level':null," BASE "}");
	CHECK(cfg ? cfg->log_level && strcmp(cfg->log_level, "info") == 0
		  : diag_find("log_level:", NULL) != NULL);
	parse("{'max_connections':null," BASE "}");
	CHECK(cfg ? cfg->max_connections == 10000 : diag_find("max_connections:", NULL) != NULL);
	parse("{'upstream':{'url':'https://a.example','connect_timeout_ms':null}," ORG
	      ",'users':[" ALICE "]}");
	CHECK(cfg ? cfg->upstream_connect_timeout_ms == 5000
		  : diag_find("upstream.connect_timeout_ms:", NULL) != NULL);
	/* null for a key without a default is simply absent. */
	parse("{'tls':null,'allowed_origins':null," BASE "}");
	CHECK(cfg != NULL && cfg->tls_cert == NULL && cfg->allowed_origins.n == 0);
}

struct refusal {
	const char *json;   /* whole config, ' for " */
	const char *prefix; /* the error line starts with this: path and message */
};

#define U1(member_json) "{" UP "," ORG ",'users':[" ALICE "," member_json "]}"

static const struct refusal type_errors[] = {
	/* strings */
	{"{'mcp_path':5," BASE "}", "mcp_path: expected a non-empty string"},
	{"{'mcp_path':''," BASE "}", "mcp_path: expected a non-empty string"},
	{"{'listen':8443," BASE "}", "listen: expected a non-empty string"},
	{"{'upstream':{'url':5},'users':[" ALICE "]}", "upstream.url: expected a non-empty string"},
	{"{'tls':{'cert':5,'key':'/k'}," BASE "}", "tls.cert: expected a non-empty string"},
	{U1("{'name':5,'token_sha256':'" HEX_B "','omni_user_id':'u'}"),
	 "users[1].name: expected a non-empty string"},
	{U1("{'name':'bob','token_sha256':'" HEX_B "','omni_user_id':''}"),
	 "users[1].omni_user_id: expected a non-empty string"},
	/* booleans */
	{"{'plain_http':'yes'," BASE "}", "plain_http: expected true or false"},
	{"{'user_required':1," BASE "}", "user_required: expected true or false"},
	{U1("{'name':'bob','token_sha256':'" HEX_B "','omni_user_id':'u','user_required':'true'}"),
	 "users[1].user_required: expected true or false"},
	/* numbers */
	{"{'upstream':{'url':'https://a.example','connect_timeout_ms':'5000'},'users':[" ALICE "]}",
	 "upstream.connect_timeout_ms: expected a whole number of at least 1"},
	{"{'upstream':{'url':'https://a.example','connect_timeout_ms':0},'users':[" ALICE "]}",
	 "upstream.connect_timeout_ms: expected a whole number of at least 1"},
	{"{'upstream':{'url':'https://a.example','idle_timeout_ms':999},'users':[" ALICE "]}",
	 "upstream.idle_timeout_ms: expected a whole number of at least 1000"},
	{"{'upstream':{'url':'https://a.example','max_connections':2.5},'users':[" ALICE "]}",
	 "upstream.max_connections: expected a whole number of at least 1"},
	{"{'max_body_bytes':100," BASE "}", "max_body_bytes: expected a whole number of at least 1024"},
	{"{'max_connections':-5," BASE "}", "max_connections: expected a whole number of at least 1"},
	{"{'max_connections':true," BASE "}", "max_connections: expected a whole number"},
	{"{'max_connections':1e300," BASE "}", "max_connections: expected a whole number"},
	{"{'max_connections':-1e300," BASE "}", "max_connections: expected a whole number"},
	{"{'max_connections':9.3e18," BASE "}", "max_connections: expected a whole number"},
	{"{'client_timeout_ms':[100]," BASE "}",
	 "client_timeout_ms: expected a whole number of at least 100"},
	{"{'keepalive_timeout_ms':{}," BASE "}", "keepalive_timeout_ms: expected a whole number"},
	/* string lists */
	{"{'allowed_origins':'https://a.example'," BASE "}",
	 "allowed_origins: expected an array of strings"},
	{"{'allowed_origins':['https://a.example',3]," BASE "}",
	 "allowed_origins[1]: expected a non-empty string"},
	{"{'allowed_hosts':['']," BASE "}", "allowed_hosts[0]: expected a non-empty string"},
	/* secrets */
	{"{'omni_api_key_env':5," UP ",'users':[" ALICE "]}",
	 "omni_api_key_env: expected a non-empty string"},
	{"{'omni_api_key':''," UP ",'users':[" ALICE "]}", "omni_api_key: expected a non-empty string"},
	{U1("{'name':'bob','token_sha256':'" HEX_B "','omni_pat_file':['/p']}"),
	 "users[1].omni_pat_file: expected a non-empty string"},
	/* SHA-256 */
	{U1("{'name':'bob','token_sha256':'abc','omni_user_id':'u'}"),
	 "users[1].token_sha256: expected 64 hex digits"},
	{U1("{'name':'bob','token_sha256':'" HEX_A "a','omni_user_id':'u'}"),
	 "users[1].token_sha256: expected 64 hex digits"},
	{U1("{'name':'bob','token_sha256':'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',"
	    "'omni_user_id':'u'}"),
	 "users[1].token_sha256: expected 64 hex digits"},
	{U1("{'name':'bob','token_sha256':'gaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',"
	    "'omni_user_id':'u'}"),
	 "users[1].token_sha256: expected 64 hex digits"},
	{U1("{'name':'bob','token_sha256':' aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',"
	    "'omni_user_id':'u'}"),
	 "users[1].token_sha256: expected 64 hex digits"},
	{U1("{'name':'bob','token_sha256':12,'omni_user_id':'u'}"),
	 "users[1].token_sha256: expected 64 hex digits"},
	/* objects and the members array */
	{"{'tls':'cert.pem'," BASE "}", "tls: expected an object"},
	{"{'upstream':'https://a.example','users':[" ALICE "]}", "upstream: expected an object"},
	{"{'upstream':null,'users':[" ALICE "]}", "upstream: must not be null"},
	{"{" UP ",'users':{'alice':{}}}", "users: expected a non-empty array of members"},
	{"{" UP ",'users':[]}", "users: expected a non-empty array of members"},
	{"{" UP ",'users':null}", "users: must not be null"},
	{"{" UP "," ORG ",'users':[" ALICE ",'bob']}", "users[1]: expected an object"},
	/* values checked after reading */
	{"{'mcp_path':'mcp'," BASE "}", "mcp_path: must start with /"},
	{"{'log_level':'verbose'," BASE "}", "log_level: expected debug, info, warn or error"},
	{"{'upstream':{'url':'ftp://a.example/mcp'},'users':[" ALICE "]}",
	 "upstream.url: must be an http:// or https:// URL"},
	{"{'upstream':{'url':'acme.omniapp.co/mcp'},'users':[" ALICE "]}",
	 "upstream.url: must be an http:// or https:// URL"},
	{"{'upstream':{'url':'https://a.example','ca_file':'/nonexistent/ca.pem'},'users':[" ALICE
	 "]}",
	 "upstream.ca_file: cannot read /nonexistent/ca.pem"},
	{"{'tls':{'cert':'/nonexistent/cert.pem','key':'/nonexistent/key.pem'},'listen':"
	 "'0.0.0.0:8443'," BASE "}",
	 "tls.cert: cannot read /nonexistent/cert.pem"},
	{U1("{'name':'bob smith','token_sha256':'" HEX_B "','omni_user_id':'u'}"),
	 "users[1].name: use letters, digits and . _ @ - only"},
	/* unknown keys, at the root, nested and in a member */
	{"{'lisen':'0.0.0.0:8443'," BASE "}", "lisen: unknown key"},
	{"{'omni_api_key_environment':'X'," BASE "}", "omni_api_key_environment: unknown key"},
	{"{'upstream':{'url':'https://a.example','timeout':5},'users':[" ALICE "]}",
	 "upstream.timeout: unknown key"},
	{"{'tls':{'certificate':'/c','cert':'/c','key':'/k'}," BASE "}", "tls.certificate: unknown key"},
	{U1("{'name':'bob','token_sha256':'" HEX_B "','omni_user_id':'u','pat':'x'}"),
	 "users[1].pat: unknown key"},
	{U1("{'name':'bob','token_sha256':'" HEX_B "','omni_user_id':'u','omni_pat_envx':'X'}"),
	 "users[1].omni_pat_envx: unknown key"},
	/* required keys */
	{"{'users':[" ALICE "]}", "upstream: required key is missing"},
	{"{'upstream':{},'users':[" ALICE "]}", "upstream.url: required key is missing"},
	{"{" UP "}", "users: required key is missing"},
	{"{'tls':{'cert':'/c'}," BASE "}", "tls.key: required key is missing"},
	{U1("{'name':'bob','omni_user_id':'u'}"), "users[1]: needs token_sha256, or sign_in with oauth"},
	{U1("{'token_sha256':'" HEX_B "','omni_user_id':'u'}"), "users[1].name: required key is missing"},
	/* a key written twice */
	{"{'mcp_path':'/a','mcp_path':'/b'," BASE "}", "mcp_path: mcp_path is set more than once"},
	/* not a config at all */
	{"", "config: not a JSON object"},
	{"[1,2]", "config: not a JSON object"},
	{"{'users':", "config: not a JSON object"},
};

static void test_refusals(void)
{
	for (size_t i = 0; i < sizeof(type_errors) / sizeof(*type_errors); i++) {
		int before = test_failed;

		parse("%s", type_errors[i].json);
		CHECK_REFUSED(type_errors[i].prefix, NULL);
		if (test_failed > before)
			fprintf(stderr, "  config: %s\n", type_errors[i].json);
	}
}

/* Every problem is reported, not only the first. */
static void test_all_problems_reported(void)
{
	parse("{'lisen':'x','mcp_path':5,'upstream':{'url':'https://a.example','connect_timeout_ms':-1},"
	      "'users':[" ALICE ",{'name':'bob','token_sha256':'zz'}]}");
	CHECK_REFUSED("lisen: unknown key", NULL);
	CHECK_REFUSED("mcp_path: expected", NULL);
	CHECK_REFUSED("upstream.connect_timeout_ms: expected", NULL);
	CHECK_REFUSED("users[1].token_sha256: expected", NULL);
	CHECK_REFUSED("users[1]: no omni_pat and no team omni_api_key", NULL);
	CHECK(diag.errors >= 5);
}

static void test_secrets(void)
{
	/* from the environment */
	parse("{" BASE "}");
	CHECK_CLEAN();
	if (cfg) {
		CHECK_STR(cfg->members[0].omni_pat, "pat-alice");
		CHECK_STR(cfg->omni_api_key, "org-key");
	}

	/* from a file, the trailing newline (and CR) trimmed */
	parse("{" UP ",'omni_api_key_file':'%s','users':[{'name':'a','token_sha256':'" HEX_A
	      "','omni_pat_file':'%s'},{'name':'b','token_sha256':'" HEX_B
	      "','omni_user_id':'u'}]}",
	      org_file, pat_crlf_file);
	CHECK_CLEAN();
	if (cfg) {
		CHECK_STR(cfg->omni_api_key, "org-key-from-file");
		CHECK_STR(cfg->members[0].omni_pat, "pat-crlf");
	}

	/* an unset or empty variable is an error naming the key and the variable */
	parse("{" UP ",'users':[{'name':'a','token_sha256':'" HEX_A "','omni_pat_env':'GWT_UNSET'}]}");
	CHECK_REFUSED("users[0].omni_pat_env: ", "GWT_UNSET");
	CHECK(diag_find("users[0].omni_pat_env: ", "not set") != NULL);
	parse("{" UP ",'omni_api_key_env':'GWT_EMPTY','users':[" ALICE "]}");
	CHECK_REFUSED("omni_api_key_env: ", "GWT_EMPTY");

	/* a missing or empty file */
	parse("{" UP ",'users':[{'name':'a','token_sha256':'" HEX_A
	      "','omni_pat_file':'/nonexistent/pat'}]}");
	CHECK_REFUSED("users[0].omni_pat_file: cannot read /nonexistent/pat", NULL);
	parse("{" UP ",'users':[{'name':'a','token_sha256':'" HEX_A "','omni_pat_file':'%s'}]}",
	      empty_file);
	CHECK_REFUSED("users[0].omni_pat_file: ", "empty");

	/* two spellings of one secret */
	parse("{" UP ",'users':[{'name':'a','token_sha256':'" HEX_A
	      "','omni_pat':'inline-pat','omni_pat_env':'GWT_PAT_ALICE'}]}");
	CHECK_REFUSED("users[0].omni_pat_env: ", "more than once");
	CHECK(!diag_any("inline-pat"));
	parse("{" UP ",'omni_api_key_env':'GWT_ORG_KEY','omni_api_key_file':'%s','users':[" ALICE "]}",
	      org_file);
	CHECK_REFUSED("omni_api_key_file: ", "more than once");

	/* inline: accepted, with a warning that names the key and never repeats the secret */
	parse("{" UP ",'users':[{'name':'a','token_sha256':'" HEX_A
	      "','omni_pat':'inline-pat-secret'}]}");
	CHECK(cfg != NULL);
	CHECK(diag.errors == 0);
	CHECK(diag.n == 1);
	CHECK(diag_find("warning: users[0].omni_pat: ", "inline") != NULL);
	CHECK(!diag_any("inline-pat-secret"));
	if (cfg)
		CHECK_STR(cfg->members[0].omni_pat, "inline-pat-secret");
	parse("{" UP ",'omni_api_key':'inline-org-secret','users':[" BOB "]}");
	CHECK(cfg != NULL && diag.errors == 0);
	CHECK(diag_find("warning: omni_api_key: ", "inline") != NULL);
	CHECK(!diag_any("inline-org-secret"));
}

static void test_members(void)
{
	/* duplicate names and tokens */
	parse("{" UP "," ORG ",'users':[" ALICE ",{'name':'alice','token_sha256':'" HEX_B
	      "','omni_user_id':'u'}]}");
	CHECK_REFUSED("users[1].name: ", "users[0]");
	parse("{" UP "," ORG ",'users':[" ALICE ",{'name':'bob','token_sha256':'" HEX_A
	      "','omni_user_id':'u'}]}");
	CHECK_REFUSED("users[1].token_sha256: ", "users[0]");
	/* the same token in different hex case is still the same token */
	parse("{" UP "," ORG ",'users':[{'name':'a','token_sha256':'" HEX_B "','omni_user_id':'u'},"
	      "{'name':'b','token_sha256':'0123456789abcdef0123456789abcdef0123456789abcdef0123456789abc"
	      "def','omni_user_id':'v'}]}");
	CHECK_REFUSED("users[1].token_sha256: ", "users[0]");

	/* no PAT and no organization key: no credential at all */
	parse("{" UP ",'users':[" ALICE "," BOB "]}");
	CHECK_REFUSED("users[1]: ", "bob");
	CHECK(diag_find("users[1]: ", "omni_api_key") != NULL);
	CHECK(diag_find("users[0]", NULL) == NULL); /* alice has her PAT */

	/* on the organization key without a user ID: accepted, but warned (refused at runtime) */
	parse("{" UP "," ORG ",'users':[" ALICE ",{'name':'bob','token_sha256':'" HEX_B "'}]}");
	CHECK(cfg != NULL);
	CHECK(diag.errors == 0);
	CHECK(diag_find("warning: users[1]: ", "omni_user_id") != NULL);
	CHECK(diag_find("warning: users[1]: ", "bob") != NULL);
	CHECK(diag.n == 1);

	/* a PAT without user ID is fine */
	parse("{" UP ",'users':[{'name':'a','token_sha256':'" HEX_A "','omni_pat_env':'GWT_PAT_ALICE'}]}");
	CHECK_CLEAN();
}

static void test_listen(void)
{
	/* plain HTTP: loopback only, unless plain_http says a load balancer terminates TLS */
	parse("{'listen':'0.0.0.0:8443'," BASE "}");
	CHECK_REFUSED("listen: plain HTTP on a non-loopback address", NULL);
	parse("{'listen':'[::]:8443'," BASE "}");
	CHECK_REFUSED("listen: plain HTTP", NULL);
	parse("{'listen':'10.0.0.5:80'," BASE "}");
	CHECK_REFUSED("listen: plain HTTP", NULL);
	parse("{'listen':'localhost.example.com:80'," BASE "}");
	CHECK_REFUSED("listen: plain HTTP", NULL);
	parse("{'listen':'0.0.0.0:8443','plain_http':true," BASE "}");
	CHECK_CLEAN();
	if (cfg) {
		CHECK(cfg->plain_http);
		CHECK_STR(cfg->listen_host, "0.0.0.0");
	}
	parse("{'listen':'127.0.0.1:8080'," BASE "}");
	CHECK_CLEAN();
	parse("{'listen':'127.9.9.9:8080'," BASE "}");
	CHECK_CLEAN();
	parse("{'listen':'localhost:8080'," BASE "}");
	CHECK_CLEAN();
	if (cfg) {
		CHECK_STR(cfg->listen_host, "localhost");
		CHECK(cfg->listen_port == 8080);
	}
	parse("{'listen':'[::1]:8443'," BASE "}");
	CHECK_CLEAN();
	if (cfg) {
		CHECK_STR(cfg->listen_host, "::1");
		CHECK(cfg->listen_port == 8443);
	}
	parse("{'listen':'0.0.0.0:65535','tls':{'cert':'%s','key':'%s'}," BASE "}", cert_path,
	      key_path);
	CHECK_CLEAN();
	if (cfg)
		CHECK(cfg->listen_port == 65535);
	parse("{'listen':'[::]:443','tls':{'cert':'%s','key':'%s'}," BASE "}", cert_path, key_path);
	CHECK_CLEAN();
	if (cfg)
		CHECK_STR(cfg->listen_host, "::");

	/* TLS and plain_http contradict each other */
	parse("{'listen':'0.0.0.0:8443','plain_http':true,'tls':{'cert':'%s','key':'%s'}," BASE "}",
	      cert_path, key_path);
	CHECK_REFUSED("plain_http: ", "tls");

	static const char *const bad[] = {
		"8443", "127.0.0.1", "127.0.0.1:", ":8443", "127.0.0.1:65536", "127.0.0.1:-1",
		"127.0.0.1:80x", "127.0.0.1:99999999999999999999", "[::1]8443", "[::1", "[::1]:",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		int before = test_failed;

		parse("{'listen':'%s'," BASE "}", bad[i]);
		CHECK_REFUSED("listen: expected host:port", NULL);
		if (test_failed > before)
			fprintf(stderr, "  listen: %s\n", bad[i]);
	}
}

static void test_upstream_url(void)
{
	parse("{'upstream':{'url':'http://omni.internal:8080/mcp'}," ORG ",'users':[" ALICE "]}");
	CHECK(cfg != NULL && diag.errors == 0);
	CHECK(diag_find("warning: upstream.url: ", "plain http") != NULL);
	parse("{'upstream':{'url':'https://acme.omniapp.co/mcp/https'}," ORG ",'users':[" ALICE "]}");
	CHECK_CLEAN();
}

/* Text after the config object is a mistake (a half-deleted edit, two configs pasted), not
 * something to ignore. */
static void test_trailing_text(void)
{
	parse("{" BASE "} trailing");
	CHECK_REFUSED("config: ", NULL);
	parse("{" BASE "}{'listen':'0.0.0.0:80','plain_http':true}");
	CHECK_REFUSED("config: ", NULL);
	parse("{" BASE "}\n");
	CHECK_CLEAN();
}

static void test_load(void)
{
	char text[2048];

	snprintf(text, sizeof(text), "{" BASE ",'mcp_path':'/from-file'}\n");
	for (char *c = text; *c; c++)
		if (*c == '\'')
			*c = '"';
	write_file(config_file, sizeof(config_file), "gateway.json", text);
	gw_config_free(cfg);
	gw_diag_fini(&diag);
	cfg = gw_config_load(config_file, &diag);
	CHECK_CLEAN();
	if (cfg)
		CHECK_STR(cfg->mcp_path, "/from-file");

	gw_config_free(cfg);
	gw_diag_fini(&diag);
	cfg = gw_config_load("/nonexistent/gateway.json", &diag);
	CHECK_REFUSED("/nonexistent/gateway.json: cannot read", NULL);
}

#define OIDC "'provider':{'issuer':'https://accounts.google.com','client_id':'gw'}"
#define SIGN_IN_CAROL "{'name':'carol','sign_in':'Carol@Team.example','omni_pat_env':'GWT_PAT_ALICE'}"

static void test_oauth(void)
{
	/* Off unless configured; a member may then still not go without a token. */
	parse("{" BASE "}");
	CHECK(cfg && cfg->oauth.public_url == NULL && cfg->oauth.resource_metadata == NULL);
	parse("{" UP ",'users':[{'name':'carol','omni_pat_env':'GWT_PAT_ALICE'}]}");
	CHECK_REFUSED("users[0]: needs token_sha256, or sign_in", NULL);
	parse("{" UP ",'users':[" SIGN_IN_CAROL "]}");
	CHECK(cfg != NULL && diag_find("warning: users[0].sign_in: no oauth block", NULL));

	/* A whole block: defaults, derived URLs, a trailing slash dropped, members by sign_in. */
	parse("{" UP "," ORG ",'mcp_path':'/team/mcp','oauth':{'public_url':'https://mcp.team.example/',"
	      "'provider':{'issuer':'https://kc.example/realms/team','client_id':'gw',"
	      "'client_secret_env':'GWT_ORG_KEY'}},'users':[" ALICE "," SIGN_IN_CAROL "]}");
	if (!cfg)
		print_diag();
	CHECK(cfg != NULL);
	if (cfg) {
		CHECK_STR(cfg->oauth.public_url, "https://mcp.team.example");
		CHECK_STR(cfg->oauth.resource, "https://mcp.team.example/team/mcp");
		CHECK_STR(cfg->oauth.resource_metadata,
			  "https://mcp.team.example/.well-known/oauth-protected-resource/team/mcp");
		CHECK(cfg->oauth.access_token_ttl_s == 900 && cfg->oauth.code_ttl_s == 60);
		CHECK(cfg->oauth.refresh_token_ttl_s == 2592000 && cfg->oauth.client_ttl_s == 7776000);
		CHECK_STR(cfg->oauth.provider_claim, "email");
		CHECK_STR(cfg->oauth.provider_scopes, "openid email");
		CHECK_STR(cfg->oauth.provider_client_secret, "org-key");
		CHECK(cfg->members[0].has_token && !cfg->members[1].has_token);
		CHECK_STR(cfg->members[1].sign_in, "Carol@Team.example");
	}

	/* Mistakes, each named. */
	parse("{" BASE ",'oauth':{'public_url':'http://mcp.team.example'," OIDC "}}");
	CHECK_REFUSED("oauth.public_url: must be https", NULL);
	parse("{" BASE ",'plain_http':true,'oauth':{'public_url':'http://mcp.team.example'," OIDC "}}");
	CHECK(cfg != NULL);
	parse("{" BASE ",'oauth':{'public_url':'http://127.0.0.1:8443'," OIDC "}}");
	CHECK(cfg != NULL);
	parse("{" BASE ",'oauth':{'public_url':'https://mcp.team.example/mcp'," OIDC "}}");
	CHECK_REFUSED("oauth.public_url: expected https://host[:port]", NULL);
	parse("{" BASE ",'oauth':{'public_url':'mcp.team.example'," OIDC "}}");
	CHECK_REFUSED("oauth.public_url: expected", NULL);
	parse("{" BASE ",'oauth':{'public_url':'https://mcp.team.example'}}");
	CHECK_REFUSED("oauth.provider: required key is missing", NULL);
	parse("{" BASE ",'oauth':{'public_url':'https://mcp.team.example','provider':{'issuer':"
	      "'http://idp.example','client_id':'gw'}}}");
	CHECK_REFUSED("oauth.provider.issuer: expected an https:// URL", NULL);
	parse("{" BASE ",'oauth':{'public_url':'https://mcp.team.example','provider':{'issuer':"
	      "'http://localhost:9000/idp','client_id':'gw'}}}");
	CHECK(cfg != NULL);
	parse("{" BASE ",'oauth':{'public_url':'https://mcp.team.example','provider':{'issuer':"
	      "'https://idp.example','client_id':'gw','scopes':'email profile openidx'}}}");
	CHECK_REFUSED("oauth.provider.scopes: must include openid", NULL);
	parse("{" BASE ",'oauth':{'public_url':'https://mcp.team.example','access_token_ttl_s':0,"
	      OIDC "}}");
	CHECK_REFUSED("oauth.access_token_ttl_s: expected a whole number of at least 1", NULL);
	parse("{" BASE ",'oauth':{'public_url':'https://mcp.team.example','issuer':'x'," OIDC "}}");
	CHECK_REFUSED("oauth.issuer: unknown key", NULL);
	parse("{" UP ",'oauth':{'public_url':'https://mcp.team.example'," OIDC "},'users':["
	      SIGN_IN_CAROL ",{'name':'c2','sign_in':'carol@team.EXAMPLE','omni_pat_env':"
	      "'GWT_PAT_ALICE'}]}");
	CHECK_REFUSED("users[1].sign_in: carol@team.EXAMPLE also signs in as users[0]", NULL);
	/* Two members without a token are not "the same token". */
	parse("{" UP ",'oauth':{'public_url':'https://mcp.team.example'," OIDC "},'users':["
	      SIGN_IN_CAROL ",{'name':'dan','sign_in':'dan@team.example','omni_pat_env':"
	      "'GWT_PAT_ALICE'}]}");
	CHECK(cfg != NULL && !diag_any("same token"));
}

int main(void)
{
	fixtures_init();
	test_oauth();
	test_full_config();
	test_defaults();
	test_null_means_default();
	test_refusals();
	test_all_problems_reported();
	test_secrets();
	test_members();
	test_listen();
	test_upstream_url();
	test_trailing_text();
	test_load();
	gw_config_free(cfg);
	gw_diag_fini(&diag);
	fixtures_fini();
	TEST_REPORT();
}
