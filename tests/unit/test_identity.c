/* Unit tests for policy/identity.c as a table: (team config, member, what the client asked for)
 * -> the refusal, or the credential and user ID the request runs as upstream. */
#include <stdbool.h>
#include <string.h>

#include "policy/identity.h"
#include "tests/unit/harness.h"

#define PAT "pat-of-member"
#define ORG "org-key-of-team"
#define UID "omni-user-42"

struct identity_case {
	const char *what;
	/* team */
	const char *org_key;
	bool team_required;
	/* member */
	const char *pat;
	const char *user_id;
	bool member_required;
	/* client: X-MCP-User-Required: true */
	bool client_required;
	/* expected */
	const struct gw_error *err;
	const char *credential;
	const char *sent_user_id;
	bool sent_required;
	bool org;
};

static const struct identity_case cases[] = {
	/* member on their own PAT */
	{"PAT, no user ID", NULL, false, PAT, NULL, false, false, NULL, PAT, NULL, false, false},
	{"PAT and user ID", NULL, false, PAT, UID, false, false, NULL, PAT, UID, false, false},
	{"PAT preferred over the team key", ORG, false, PAT, UID, false, false, NULL, PAT, UID, false,
	 false},
	{"PAT, no user ID, team key present", ORG, false, PAT, NULL, false, false, NULL, PAT, NULL,
	 false, false},
	/* user_required from the team, the member or the client */
	{"team requires, has user ID", NULL, true, PAT, UID, false, false, NULL, PAT, UID, true, false},
	{"member requires, has user ID", NULL, false, PAT, UID, true, false, NULL, PAT, UID, true,
	 false},
	{"client requires, has user ID", NULL, false, PAT, UID, false, true, NULL, PAT, UID, true,
	 false},
	{"team requires, no user ID", NULL, true, PAT, NULL, false, false, &gw_err_user_id_required,
	 NULL, NULL, false, false},
	{"member requires, no user ID", NULL, false, PAT, NULL, true, false,
	 &gw_err_user_id_required, NULL, NULL, false, false},
	{"client requires, no user ID", NULL, false, PAT, NULL, false, true,
	 &gw_err_user_id_required, NULL, NULL, false, false},
	{"client requires, team too, no user ID", ORG, true, PAT, NULL, true, true,
	 &gw_err_user_id_required, NULL, NULL, false, false},
	/* member on the organization key */
	{"org key with user ID", ORG, false, NULL, UID, false, false, NULL, ORG, UID, false, true},
	{"org key with user ID, client requires", ORG, false, NULL, UID, false, true, NULL, ORG, UID,
	 true, true},
	{"org key with user ID, team requires", ORG, true, NULL, UID, false, false, NULL, ORG, UID,
	 true, true},
	/* never fall through to the key's admin identity */
	{"org key, no user ID", ORG, false, NULL, NULL, false, false, &gw_err_org_key_without_user,
	 NULL, NULL, false, false},
	{"org key, no user ID, client requires", ORG, false, NULL, NULL, false, true,
	 &gw_err_org_key_without_user, NULL, NULL, false, false},
	{"org key, no user ID, team requires", ORG, true, NULL, NULL, false, false,
	 &gw_err_org_key_without_user, NULL, NULL, false, false},
	/* no credential at all (the config check refuses this; the policy stays closed anyway) */
	{"no PAT, no team key, user ID", NULL, false, NULL, UID, false, false,
	 &gw_err_org_key_without_user, NULL, NULL, false, false},
	{"no PAT, no team key, no user ID", NULL, false, NULL, NULL, false, false,
	 &gw_err_org_key_without_user, NULL, NULL, false, false},
};

static bool same_str(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

static const char *err_name(const struct gw_error *e)
{
	if (e == NULL)
		return "none";
	if (e == &gw_err_user_id_required)
		return "gw_err_user_id_required";
	if (e == &gw_err_org_key_without_user)
		return "gw_err_org_key_without_user";
	return "another error";
}

static void run_case(const struct identity_case *c)
{
	struct gw_config cfg;
	struct gw_member m;
	struct policy_identity out;
	const struct gw_error *err;
	int before = test_failed;

	memset(&cfg, 0, sizeof(cfg));
	memset(&m, 0, sizeof(m));
	cfg.omni_api_key = (char *)c->org_key;
	cfg.user_required = c->team_required;
	cfg.members = &m;
	cfg.n_members = 1;
	m.name = "member";
	m.omni_pat = (char *)c->pat;
	m.omni_user_id = (char *)c->user_id;
	m.user_required = c->member_required;

	err = policy_identity_decide(&cfg, &m, c->client_required, &out);
	CHECK(err == c->err);
	if (c->err == NULL && err == NULL) {
		CHECK(same_str(out.credential, c->credential));
		CHECK(same_str(out.user_id, c->sent_user_id));
		CHECK(out.user_required == c->sent_required);
		CHECK(out.org_key == c->org);
	}
	if (test_failed > before)
		fprintf(stderr, "  case \"%s\": got %s (credential %s, user ID %s, required %d)\n",
			c->what, err_name(err), err ? "-" : out.credential ? out.credential : "(null)",
			err ? "-" : out.user_id ? out.user_id : "(null)", err ? 0 : out.user_required);
}

/* The refusals are 403s that tell the member what to ask the admin for. */
static void test_refusal_errors(void)
{
	CHECK(gw_err_user_id_required.status == 403);
	CHECK(gw_err_org_key_without_user.status == 403);
	CHECK(strstr(gw_err_user_id_required.message, "omni_user_id") != NULL);
	CHECK(strstr(gw_err_org_key_without_user.message, "omni_user_id") != NULL);
	CHECK(&gw_err_user_id_required != &gw_err_org_key_without_user);
}

int main(void)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++)
		run_case(&cases[i]);
	test_refusal_errors();
	TEST_REPORT();
}
