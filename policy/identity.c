/* Upstream identity: the member's own PAT when they have one, else the organization key with
 * their Omni user ID (Omni's embed pattern); X-MCP-User-Required enforced here, fail-closed. */
#include "policy/identity.h"

#include <stddef.h>

const struct gw_error *policy_identity_decide(const struct gw_config *cfg,
					      const struct gw_member *m,
					      bool client_requires_user,
					      struct policy_identity *out)
{
	bool required = cfg->user_required || m->user_required || client_requires_user;

	out->org_key = m->omni_pat == NULL;
	out->credential = out->org_key ? cfg->omni_api_key : m->omni_pat;
	out->user_id = m->omni_user_id;
	out->user_required = required;
	if (out->credential == NULL)
		return &gw_err_org_key_without_user; /* config check prevents this; stay closed */
	if (out->org_key && m->omni_user_id == NULL)
		return &gw_err_org_key_without_user;
	if (required && m->omni_user_id == NULL)
		return &gw_err_user_id_required;
	return NULL;
}
