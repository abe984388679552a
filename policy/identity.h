/* Which Omni identity a member's request runs as, and whether it may run at all. Pure: no I/O,
 * decided from the config and what the client asked for. */
#ifndef POLICY_IDENTITY_H
#define POLICY_IDENTITY_H

#include <stdbool.h>

#include "gateway/config.h"
#include "gateway/errors.h"

struct policy_identity {
	const char *credential; /* the member's PAT, or the team's organization key */
	const char *user_id;    /* sent as X-MCP-User-ID; NULL for none */
	bool user_required;     /* send X-MCP-User-Required: true */
	bool org_key;           /* credential is the organization key */
};

/* Decides the upstream identity of member m. client_requires_user is true when the client sent
 * X-MCP-User-Required: true (a client may tighten the rule, never loosen it). Returns NULL and
 * fills out, or returns the error to answer with: a member on the organization key without a
 * user ID is always refused, so nobody falls through to the key's admin identity. */
const struct gw_error *policy_identity_decide(const struct gw_config *cfg,
					      const struct gw_member *m,
					      bool client_requires_user,
					      struct policy_identity *out);

#endif
