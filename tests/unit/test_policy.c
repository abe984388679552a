/* Unit tests for policy/policy.c: the decision table in tests/unit/policy_cases.json, loaded
 * through the real config loader (gw_config_parse -> policy_new); tools/list filtering, limits
 * and user_required of that team; the check diagnostics, with config paths, for every kind of
 * policy mistake; and the token bucket on injected time. Configs in C use ' for ". */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "gateway/config.h"
#include "policy/policy.h"
#include "tests/unit/harness.h"

/* The Makefile runs the tests from the repository root. */
#define CASES_FILE "tests/unit/policy_cases.json"

static struct gw_diag diag;
static struct gw_config *cfg;

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	if (!f) {
		perror(path);
		exit(2);
	}
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = malloc(n + 1);
	if (!buf || fread(buf, 1, n, f) != (size_t)n)
		exit(2);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static void print_diag(void)
{
	fprintf(stderr, "  diagnostics (%zu, %d errors):\n", diag.n, diag.errors);
	for (size_t i = 0; i < diag.n; i++)
		fprintf(stderr, "    %s\n", diag.lines[i]);
}

/* ---- the decision table ------------------------------------------------------------------ */

static const char *const verdict_names[] = {
    [POLICY_ALLOW] = "allow",
    [POLICY_DENY_TOOL] = "deny_tool",
    [POLICY_DENY_MODEL] = "deny_model",
    [POLICY_DENY_TOPIC] = "deny_topic",
    [POLICY_HEADER_MISMATCH] = "header_mismatch",
};

static int messages_run;

/* One expectation of a case: passes when both are NULL or both equal. */
static void expect_str(const char *about, const char *what, const char *got, const char *want)
{
	if ((!got && !want) || (got && want && strcmp(got, want) == 0)) {
		test_passed++;
		return;
	}
	test_failed++;
	fprintf(stderr, "case \"%s\": %s is \"%s\", expected \"%s\"\n", about, what,
		got ? got : "(none)", want ? want : "(none)");
}

static void expect_true(const char *about, const char *what, bool ok)
{
	if (ok) {
		test_passed++;
		return;
	}
	test_failed++;
	fprintf(stderr, "case \"%s\": %s\n", about, what);
}

static const char *str_of(const cJSON *obj, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static long member_index(const char *name)
{
	for (size_t i = 0; name && i < cfg->n_members; i++)
		if (strcmp(cfg->members[i].name, name) == 0)
			return (long)i;
	return -1;
}

/* Fills h from a case's "headers" (real header names, any case); false on an unknown one, so
 * a typo in the table cannot silently test nothing. */
static bool read_headers(const cJSON *obj, struct policy_headers *h)
{
	static const struct {
		const char *name;
		size_t offset;
	} map[] = {
	    {"x-mcp-model-id", offsetof(struct policy_headers, model_id)},
	    {"x-mcp-topic-name", offsetof(struct policy_headers, topic_name)},
	    {"x-mcp-query-all-views", offsetof(struct policy_headers, query_all_views)},
	    {"mcp-protocol-version", offsetof(struct policy_headers, protocol_version)},
	    {"mcp-method", offsetof(struct policy_headers, mcp_method)},
	    {"mcp-name", offsetof(struct policy_headers, mcp_name)},
	};
	const cJSON *item;

	memset(h, 0, sizeof(*h));
	cJSON_ArrayForEach(item, obj) {
		size_t i = 0;

		while (i < sizeof(map) / sizeof(*map) && strcasecmp(map[i].name, item->string) != 0)
			i++;
		if (i == sizeof(map) / sizeof(*map) || !cJSON_IsString(item))
			return false;
		*(const char **)((char *)h + map[i].offset) = item->valuestring;
	}
	return true;
}

static void run_message(const struct policy_rule *rule, const cJSON *m,
			const struct policy_headers *h, const char *about)
{
	const cJSON *expect = cJSON_GetObjectItemCaseSensitive(m, "expect");
	const cJSON *qav = cJSON_GetObjectItemCaseSensitive(expect, "query_all_views");
	struct policy_msg pm = {0};
	struct policy_decision d;
	const char *want_rule = str_of(expect, "rule");

	pm.method = str_of(m, "method");
	pm.is_request = pm.method && !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m, "notification"));
	pm.tool = str_of(m, "tool");
	pm.arguments = cJSON_GetObjectItemCaseSensitive(m, "arguments");
	pm.name = str_of(m, "uri") ? str_of(m, "uri") : str_of(m, "prompt");
	policy_decide(rule, &pm, h, &d);
	messages_run++;

	expect_str(about, "verdict", verdict_names[d.verdict], str_of(expect, "verdict"));
	expect_str(about, "rule", d.rule, want_rule);
	expect_str(about, "X-MCP-Model-ID sent", d.model_id, str_of(expect, "model"));
	expect_str(about, "X-MCP-Topic-Name sent", d.topic_name, str_of(expect, "topic"));
	expect_true(about, "query_all_views sent differs", d.query_all_views == cJSON_IsTrue(qav));
	/* The reason names the deciding rule and the refused tool, and never a secret. A header
	 * mismatch is a protocol error, not a rule's: its reason names the headers instead. */
	if (d.verdict != POLICY_HEADER_MISMATCH)
		expect_true(about, "reason does not name the rule",
			    want_rule && strstr(d.reason, want_rule));
	else
		expect_true(about, "reason does not name the header", strstr(d.reason, "Mcp-"));
	if (d.verdict == POLICY_DENY_TOOL && pm.tool)
		expect_true(about, "reason does not name the tool", strstr(d.reason, pm.tool) != NULL);
	expect_true(about, "reason carries a secret", strstr(d.reason, "secret") == NULL);
}

static void run_case(const cJSON *c)
{
	const char *about = str_of(c, "about");
	const cJSON *batch = cJSON_GetObjectItemCaseSensitive(c, "batch");
	long mi = member_index(str_of(c, "member"));
	struct policy_headers h;
	const cJSON *m;
	char label[300];
	int i = 0;

	expect_true(about, "no such member", mi >= 0);
	expect_true(about, "unknown header name",
		    read_headers(cJSON_GetObjectItemCaseSensitive(c, "headers"), &h));
	if (mi < 0)
		return;
	if (!batch) {
		run_message(policy_rule_of(cfg->policy, (size_t)mi), c, &h, about);
		return;
	}
	cJSON_ArrayForEach(m, batch) {
		snprintf(label, sizeof(label), "%s [%d]", about, i++);
		run_message(policy_rule_of(cfg->policy, (size_t)mi), m, &h, label);
	}
}

/* Loads the table's config through the real loader; the team stays in cfg for the tests that
 * follow. */
static void test_cases(void)
{
	char *text = slurp(CASES_FILE);
	cJSON *doc = cJSON_Parse(text);
	cJSON *cases = cJSON_GetObjectItemCaseSensitive(doc, "cases");
	char *config = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(doc, "config"));
	const cJSON *c;
	int n = 0;

	CHECK(doc && config);
	cfg = config ? gw_config_parse(config, strlen(config), &diag) : NULL;
	CHECK(cfg != NULL);
	CHECK(diag.errors == 0);
	if (!cfg || diag.errors) {
		print_diag();
		goto out;
	}
	cJSON_ArrayForEach(c, cases) {
		run_case(c);
		n++;
	}
	CHECK(n >= 60);
	printf("%s: %d cases, %d messages decided\n", CASES_FILE, n, messages_run);
out:
	free(config);
	cJSON_Delete(doc);
	free(text);
}

static const struct policy_rule *rule_of(const char *member)
{
	long i = member_index(member);

	return i < 0 ? NULL : policy_rule_of(cfg->policy, (size_t)i);
}

/* tools/list filtering: which of Omni's tools each member sees, as a row of 0/1. */
static void test_tool_filter(void)
{
	static const char *const tools[] = {
	    "pickModel",	"pickTopic",	 "getData",	      "runQuery",
	    "askOmni",		"checkStatus",	 "searchOmniDocs",    "searchDashboards",
	    "listDashboardQueries", "runSavedQuery", "listBranches"};
	static const struct {
		const char *member, *row;
	} rows[] = {
	    {"ivan", "11000010000"},  /* interns: pick*, searchOmniDocs */
	    {"iris", "11000011101"},  /* interns + readers: union of allow lists */
	    {"dan", "11000010000"},   /* interns + analysts: analysts deny nothing interns allow */
	    {"walt", "11100111101"},  /* analysts: deny askOmni, run* */
	    {"alice", "11110111111"}, /* her own deny: askOmni */
	    {"pete", "11111111111"},  /* his own allow: * */
	    {"xena", "00000000000"},  /* her own empty allow list */
	    {"yuri", "10000010000"},  /* interns, and his own deny: pickTopic */
	    {"nina", "11111111111"},  /* default */
	};
	char got[16];

	if (!cfg)
		return;
	for (size_t r = 0; r < sizeof(rows) / sizeof(*rows); r++) {
		const struct policy_rule *rule = rule_of(rows[r].member);

		CHECK(rule != NULL);
		if (!rule)
			continue;
		for (size_t t = 0; t < sizeof(tools) / sizeof(*tools); t++)
			got[t] = policy_tool_allowed(rule, tools[t]) ? '1' : '0';
		got[sizeof(tools) / sizeof(*tools)] = '\0';
		if (strcmp(got, rows[r].row) != 0)
			fprintf(stderr, "tools/list filter of %s:\n", rows[r].member);
		CHECK_STR(got, rows[r].row);
	}
	CHECK(!policy_tool_allowed(rule_of("nina"), NULL));
	CHECK(policy_rule_of(cfg->policy, cfg->n_members) == NULL);
}

/* Limits: the member's own value wins; else the most generous among the groups setting it. */
static void test_limits(void)
{
	static const struct {
		const char *member;
		double rpm, tpm, burst;
		long max_concurrent;
	} rows[] = {
	    {"alice", 120, 30, 10, 4}, /* finance */
	    {"fred", 120, 30, 10, 4},  /* finance + modelers (no limits) */
	    {"greg", 120, 30, 10, 8},  /* finance + finance_ro: max of each */
	    {"walt", 200, 0, 0, 2},    /* analysts 20 tool calls, sales 0 = unlimited: unlimited */
	    {"sam", 60, 0, 0, 2},
	    {"quinn", 5, 20, 0, 0},    /* own requests_per_minute, analysts' tool calls */
	    {"nina", 0, 0, 0, 0},      /* default: no limits */
	};

	if (!cfg)
		return;
	for (size_t r = 0; r < sizeof(rows) / sizeof(*rows); r++) {
		const struct policy_limits *l = policy_limits_of(rule_of(rows[r].member));

		if (l->requests_per_minute != rows[r].rpm || l->tool_calls_per_minute != rows[r].tpm ||
		    l->burst != rows[r].burst || l->max_concurrent != rows[r].max_concurrent)
			fprintf(stderr, "limits of %s: %g %g %g %ld\n", rows[r].member,
				l->requests_per_minute, l->tool_calls_per_minute, l->burst,
				l->max_concurrent);
		CHECK(l->requests_per_minute == rows[r].rpm);
		CHECK(l->tool_calls_per_minute == rows[r].tpm);
		CHECK(l->burst == rows[r].burst);
		CHECK(l->max_concurrent == rows[r].max_concurrent);
	}
	CHECK(policy_user_required(rule_of("dan")));    /* analysts */
	CHECK(policy_user_required(rule_of("walt")));   /* analysts + sales: any true */
	CHECK(!policy_user_required(rule_of("quinn"))); /* own rule says false */
	CHECK(!policy_user_required(rule_of("nina")));
	CHECK(!policy_user_required(rule_of("ivan")));
}

/* ---- check: mistakes and their config paths ---------------------------------------------- */

#define UP "'upstream':{'url':'https://acme.omniapp.co/mcp/https'},'omni_api_key_env':'GWT_POLICY_ORG'"
#define HEX0 "0000000000000000000000000000000000000000000000000000000000000001"
#define HEX1 "0000000000000000000000000000000000000000000000000000000000000002"

/* A config with groups (the inside of the object) and two members u0 and u1 with extra keys
 * (",'groups':[...]" etc.); result and diag stay until the next call. */
static struct gw_config *load(const char *groups, const char *u0, const char *u1)
{
	char text[8192];

	gw_config_free(cfg);
	gw_diag_fini(&diag);
	snprintf(text, sizeof(text),
		 "{" UP ",'groups':{%s},'users':["
		 "{'name':'u0','token_sha256':'" HEX0 "','omni_user_id':'id0'%s},"
		 "{'name':'u1','token_sha256':'" HEX1 "','omni_user_id':'id1'%s}]}",
		 groups, u0, u1);
	for (char *c = text; *c; c++)
		if (*c == '\'')
			*c = '"';
	cfg = gw_config_parse(text, strlen(text), &diag);
	return cfg;
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

/* The config is refused, with an error line starting with prefix and containing needle. */
#define CHECK_REFUSED(prefix, needle)                                                        \
	do {                                                                                 \
		int before_ = test_failed;                                                   \
		CHECK(cfg == NULL);                                                          \
		CHECK(diag_find(prefix, needle) != NULL);                                    \
		if (test_failed > before_) {                                                 \
			fprintf(stderr, "  expected error \"%s...%s\"\n", prefix, needle);   \
			print_diag();                                                        \
		}                                                                            \
	} while (0)

/* The config is accepted with exactly this one warning line (or none when line is NULL). */
#define CHECK_ACCEPTED(line)                                                                 \
	do {                                                                                 \
		int before_ = test_failed;                                                   \
		const char *line_ = (line);                                                  \
		CHECK(cfg != NULL);                                                          \
		CHECK(diag.errors == 0 && diag.n == (line_ ? 1u : 0u));                      \
		if (line_ && diag.n == 1)                                                    \
			CHECK_STR(diag.lines[0], line_);                                     \
		if (test_failed > before_)                                                   \
			print_diag();                                                        \
	} while (0)

static void test_check_unknown(void)
{
	load("'interns':{}", ",'groups':['internz']", "");
	CHECK_REFUSED("users[0].groups[0]: unknown group \"internz\"", "");
	load("", ",'groups':['interns']", "");
	CHECK_REFUSED("users[0].groups[0]: unknown group \"interns\"", "");
	load("'g':{'colour':'red'}", "", "");
	CHECK_REFUSED("groups.g.colour: unknown key", "");
	load("'g':{'tools':{'permit':['x']}}", "", "");
	CHECK_REFUSED("groups.g.tools.permit: unknown key", "");
	load("'g':{'rate':{'per_hour':5}}", "", "");
	CHECK_REFUSED("groups.g.rate.per_hour: unknown key", "");
	load("", "", ",'rule':{'tool':{'allow':[]}}");
	CHECK_REFUSED("users[1].rule.tool: unknown key", "");
	load("'g':{'model':'a','model':'b'}", "", "");
	CHECK_REFUSED("groups.g.model: set more than once", "");
	load("'g':{},'g':{}", "", "");
	CHECK_REFUSED("groups.g: group g is defined more than once", "");
	load("'bad name':{}", "", "");
	CHECK_REFUSED("groups.bad name: group names use letters", "");
	/* Every mistake is reported, not only the first. */
	load("'g':{'colour':1,'shape':2}", ",'groups':['nope']", "");
	CHECK(diag.errors == 3);
}

static void test_check_types(void)
{
	static const struct {
		const char *groups, *line;
	} rows[] = {
	    {"'g':{'tools':['x']}", "groups.g.tools: expected an object"},
	    {"'g':{'tools':{'allow':'getData'}}", "groups.g.tools.allow: expected an array of strings"},
	    {"'g':{'tools':{'deny':['ok','']}}", "groups.g.tools.deny[1]: expected a non-empty string"},
	    {"'g':{'models':['m1',7]}", "groups.g.models[1]: expected a non-empty string"},
	    {"'g':{'model':7}", "groups.g.model: expected a non-empty string"},
	    {"'g':{'topic':''}", "groups.g.topic: expected a non-empty string"},
	    {"'g':{'topics':'fin_*'}", "groups.g.topics: expected an array of strings"},
	    {"'g':{'query_all_views':'yes'}", "groups.g.query_all_views: expected true or false"},
	    {"'g':{'user_required':1}", "groups.g.user_required: expected true or false"},
	    {"'g':{'rate':60}", "groups.g.rate: expected an object"},
	    {"'g':{'rate':{'requests_per_minute':'60'}}", "groups.g.rate.requests_per_minute: expected a number"},
	    {"'g':{'rate':{'tool_calls_per_minute':-1}}", "groups.g.rate.tool_calls_per_minute: expected a number"},
	    {"'g':{'rate':{'burst':0}}", "groups.g.rate.burst: expected a whole number from 1"},
	    {"'g':{'rate':{'burst':2.5}}", "groups.g.rate.burst: expected a whole number"},
	    {"'g':{'max_concurrent':-1}", "groups.g.max_concurrent: expected a whole number from 0"},
	    {"'g':{'max_concurrent':1.5}", "groups.g.max_concurrent: expected a whole number"},
	    {"'g':5", "groups.g: expected an object"},
	};

	for (size_t i = 0; i < sizeof(rows) / sizeof(*rows); i++) {
		load(rows[i].groups, "", "");
		CHECK_REFUSED(rows[i].line, "");
	}
	load("", ",'groups':'finance'", "");
	CHECK_REFUSED("users[0].groups: expected an array of group names", "");
	load("'g':{}", ",'groups':['g',3]", "");
	CHECK_REFUSED("users[0].groups[1]: expected a group name", "");
	load("", "", ",'rule':['x']");
	CHECK_REFUSED("users[1].rule: expected an object", "");
	load("", "", ",'rule':{'rate':{'burst':'big'}}");
	CHECK_REFUSED("users[1].rule.rate.burst: expected a whole number", "");
	load("", "", "");
	CHECK_ACCEPTED(NULL);
	/* groups must be an object of named groups. */
	{
		char text[512];

		gw_config_free(cfg);
		gw_diag_fini(&diag);
		snprintf(text, sizeof(text),
			 "{" UP ",'groups':['g'],'users':[{'name':'u0','token_sha256':'" HEX0
			 "','omni_user_id':'id0'}]}");
		for (char *c = text; *c; c++)
			if (*c == '\'')
				*c = '"';
		cfg = gw_config_parse(text, strlen(text), &diag);
		CHECK_REFUSED("groups: expected an object of named groups", "");
	}
	/* null means "not set", as everywhere in the config. */
	load("'g':{'model':null,'tools':{'allow':null},'rate':null}", ",'groups':['g'],'rule':null",
	     ",'groups':null");
	CHECK_ACCEPTED(NULL);
}

static void test_check_pins(void)
{
	/* A pin outside its own rule's list. */
	load("'finance':{'models':['m1','m2'],'model':'m3'}", "", "");
	CHECK_REFUSED("groups.finance.model: \"m3\" is not in groups.finance.models", "");
	load("'finance':{'topics':['fin_*'],'topic':'hr'}", "", "");
	CHECK_REFUSED("groups.finance.topic: \"hr\" matches none of groups.finance.topics", "");
	load("", ",'rule':{'models':['m1'],'model':'m2'}", "");
	CHECK_REFUSED("users[0].rule.model: \"m2\" is not in users[0].rule.models", "");
	load("'finance':{'topics':['fin_*'],'topic':'fin_ledger'}", ",'groups':['finance']", "");
	CHECK_ACCEPTED(NULL);

	/* A pin from one rule outside the list from another. */
	load("'a':{'model':'m1'},'b':{'models':['m2']}", ",'groups':['a','b']", "");
	CHECK_REFUSED("users[0]: model \"m1\" pinned by group:a is not among the models allowed by "
		      "group:b",
		      "");
	load("'b':{'models':['m2']}", "", ",'groups':['b'],'rule':{'model':'m9'}");
	CHECK_REFUSED("users[1]: model \"m9\" pinned by user:u1", "group:b");
	load("'a':{'topic':'sales_x'}", ",'groups':['a'],'rule':{'topics':['fin_*']}", "");
	CHECK_REFUSED("users[0]: topic \"sales_x\" pinned by group:a", "allowed by user:u0");
	/* ...settled by the member's rule setting the list too. */
	load("'b':{'models':['m2']}", "", ",'groups':['b'],'rule':{'model':'m9','models':['m9']}");
	CHECK_ACCEPTED(NULL);

	/* Groups pinning different values for one member. */
	load("'finance':{'model':'m-fin'},'sales':{'model':'m-sales'}", ",'groups':['finance']",
	     ",'groups':['finance','sales']");
	CHECK_REFUSED("users[1]: groups finance and sales pin different models; set model in the "
		      "member's rule",
		      "");
	load("'finance':{'topic':'invoices'},'sales':{'topic':'pipeline'}", "",
	     ",'groups':['finance','sales']");
	CHECK_REFUSED("users[1]: groups finance and sales pin different topics; set topic in the "
		      "member's rule",
		      "");
	load("'finance':{'model':'m-fin'},'sales':{'model':'m-sales'}", "",
	     ",'groups':['finance','sales'],'rule':{'model':'m-fin'}");
	CHECK_ACCEPTED(NULL);
	load("'finance':{'model':'m-fin'},'fin2':{'model':'m-fin'}", "", ",'groups':['finance','fin2']");
	CHECK_ACCEPTED(NULL);
	/* Groups that conflict but share no member are fine. */
	load("'finance':{'model':'m-fin'},'sales':{'model':'m-sales'}", ",'groups':['finance']",
	     ",'groups':['sales']");
	CHECK_ACCEPTED(NULL);
}

static void test_check_tools(void)
{
	/* The same name allowed and denied by one rule: an error (one of the two is a mistake). */
	load("'g':{'tools':{'allow':['pick*','getData'],'deny':['getData']}}", "", "");
	CHECK_REFUSED("groups.g.tools.deny[0]: \"getData\" is also in groups.g.tools.allow[1]", "");
	load("", ",'rule':{'tools':{'allow':['*'],'deny':['*']}}", "");
	CHECK_REFUSED("users[0].rule.tools.deny[0]: \"*\" is also in users[0].rule.tools.allow[0]", "");
	/* A glob carving an exception out of another is the normal use: fine. */
	load("'g':{'tools':{'allow':['get*'],'deny':['getData']}}", ",'groups':['g']", "");
	CHECK_ACCEPTED(NULL);
	/* Allowed by name in one rule, denied by name in another: deny wins; a warning says so. */
	load("'g':{'tools':{'deny':['getData']}}", ",'groups':['g'],'rule':{'tools':{'allow':['getData']}}",
	     "");
	CHECK_ACCEPTED("warning: users[0]: tool getData is allowed by user:u0 and denied by group:g; "
		       "the deny wins");
	if (cfg)
		CHECK(!policy_tool_allowed(policy_rule_of(cfg->policy, 0), "getData"));
	load("'a':{'tools':{'allow':['getData']}},'b':{'tools':{'deny':['getData']}}", "",
	     ",'groups':['a','b']");
	CHECK_ACCEPTED("warning: users[1]: tool getData is allowed by group:a and denied by group:b; "
		       "the deny wins");
	/* A group listed twice for one member. */
	load("'g':{}", ",'groups':['g','g']", "");
	CHECK_ACCEPTED("warning: users[0].groups[1]: group g is listed twice");
}

/* ---- the token bucket -------------------------------------------------------------------- */

static void test_bucket(void)
{
	struct policy_bucket b = {0};
	long retry = 0;

	/* 60 a minute (one a second), burst 3: a fresh bucket is full. */
	CHECK(policy_bucket_take(&b, 60, 3, 1000, &retry));
	CHECK(policy_bucket_take(&b, 60, 3, 1000, &retry));
	CHECK(policy_bucket_take(&b, 60, 3, 1000, &retry));
	CHECK(!policy_bucket_take(&b, 60, 3, 1000, &retry));
	CHECK(retry == 1);
	retry = 0;
	CHECK(!policy_bucket_take(&b, 60, 3, 1000.5, &retry)); /* half a token */
	CHECK(retry == 1);
	CHECK(policy_bucket_take(&b, 60, 3, 1001, &retry));
	CHECK(!policy_bucket_take(&b, 60, 3, 1001, &retry));
	/* A long pause refills only up to the burst. */
	for (int i = 0; i < 3; i++)
		CHECK(policy_bucket_take(&b, 60, 3, 5000, &retry));
	CHECK(!policy_bucket_take(&b, 60, 3, 5000, &retry));
	/* A clock that went backwards adds nothing and breaks nothing. */
	CHECK(!policy_bucket_take(&b, 60, 3, 4000, &retry));
	CHECK(retry >= 1);

	/* 30 a minute: one token every 2 s. */
	memset(&b, 0, sizeof(b));
	CHECK(policy_bucket_take(&b, 30, 1, 0, &retry));
	CHECK(!policy_bucket_take(&b, 30, 1, 0, &retry));
	CHECK(retry == 2);
	CHECK(!policy_bucket_take(&b, 30, 1, 1, &retry));
	CHECK(retry == 1);
	CHECK(!policy_bucket_take(&b, 30, 1, 1.9, &retry));
	CHECK(retry == 1); /* whole seconds, at least one */
	CHECK(policy_bucket_take(&b, 30, 1, 2, &retry));

	/* 7 a minute: rounding in the refill still gives the token on time. */
	memset(&b, 0, sizeof(b));
	CHECK(policy_bucket_take(&b, 7, 1, 0, &retry));
	CHECK(!policy_bucket_take(&b, 7, 1, 0, &retry));
	CHECK(retry == 9); /* 60/7 = 8.57 s */
	CHECK(policy_bucket_take(&b, 7, 1, 60.0 / 7, &retry));

	/* No burst configured: per-minute / 6 rounded up. */
	memset(&b, 0, sizeof(b));
	for (int i = 0; i < 20; i++)
		CHECK(policy_bucket_take(&b, 120, 0, 0, &retry));
	CHECK(!policy_bucket_take(&b, 120, 0, 0, &retry));
	memset(&b, 0, sizeof(b));
	CHECK(policy_bucket_take(&b, 5, 0, 0, &retry)); /* ceil(5/6) = 1 */
	CHECK(!policy_bucket_take(&b, 5, 0, 0, &retry));
	CHECK(retry == 12);

	/* A reload that shrinks the burst shrinks a full bucket with it. */
	memset(&b, 0, sizeof(b));
	CHECK(policy_bucket_take(&b, 60, 10, 0, &retry)); /* 9 left */
	CHECK(policy_bucket_take(&b, 60, 2, 0, &retry));  /* cut to 2, 1 left */
	CHECK(policy_bucket_take(&b, 60, 2, 0, &retry));
	CHECK(!policy_bucket_take(&b, 60, 2, 0, &retry));

	/* 0 is unlimited; retry_after may be NULL. */
	memset(&b, 0, sizeof(b));
	for (int i = 0; i < 1000; i++)
		CHECK(policy_bucket_take(&b, 0, 0, 0, NULL));
	memset(&b, 0, sizeof(b));
	CHECK(policy_bucket_take(&b, 60, 1, 0, NULL));
	CHECK(!policy_bucket_take(&b, 60, 1, 0, NULL));
}

int main(void)
{
	setenv("GWT_POLICY_ORG", "org-key", 1);
	test_cases();
	test_tool_filter();
	test_limits();
	test_check_unknown();
	test_check_types();
	test_check_pins();
	test_check_tools();
	test_bucket();
	gw_config_free(cfg);
	gw_diag_fini(&diag);
	TEST_REPORT();
}
