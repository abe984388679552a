/* Per-member policy: what each member may ask Omni, decided before anything reaches it. Pure:
 * no I/O, no clock of its own (callers pass the time), so every decision is testable from a
 * table. Rules attach to groups and to members; a member's own rule wins over a group's. */
#ifndef POLICY_POLICY_H
#define POLICY_POLICY_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "gateway/config.h"

struct policy;

/* One member's effective rule, resolved once when the config is loaded. */
struct policy_rule;

/* What a JSON-RPC message asks for (one element of a batch, or the single message). */
struct policy_msg {
	const char *method;       /* JSON-RPC method; NULL for a response (no method) */
	bool is_request;          /* has an id (else a notification or a response) */
	const char *tool;         /* params.name of tools/call; NULL otherwise */
	const char *name;         /* params.uri of resources/read, params.name of prompts/get: what
				   * Mcp-Name must equal (2026-07-28); NULL otherwise */
	const cJSON *arguments;   /* params.arguments of tools/call; NULL otherwise */
};

/* What the client's HTTP request said besides the body. NULL for a header not sent. */
struct policy_headers {
	const char *model_id;          /* X-MCP-Model-ID */
	const char *topic_name;        /* X-MCP-Topic-Name */
	const char *query_all_views;   /* X-MCP-Query-All-Views */
	const char *protocol_version;  /* MCP-Protocol-Version */
	const char *mcp_method;        /* Mcp-Method (2026-07-28) */
	const char *mcp_name;          /* Mcp-Name (2026-07-28) */
};

enum policy_verdict {
	POLICY_ALLOW,
	POLICY_DENY_TOOL,        /* tools/call of a tool the rule does not allow */
	POLICY_DENY_MODEL,       /* a model outside the allowed set (header or modelId argument) */
	POLICY_DENY_TOPIC,       /* a topic outside the allowed set (header or topicName argument) */
	POLICY_HEADER_MISMATCH,  /* Mcp-Method / Mcp-Name disagree with the body: 400, -32020 */
};

struct policy_decision {
	enum policy_verdict verdict;
	const char *rule;     /* the rule that decided: "user:alice", "group:interns" or "default" */
	char reason[256];     /* for the client and the audit, e.g. "tool getData is not allowed for
			       * alice (rule group:interns)"; names no secret */
	/* What the gateway sends upstream as its own headers when allowed (NULL / false: none). */
	const char *model_id;     /* X-MCP-Model-ID: the pin, else the client's allowed request */
	const char *topic_name;   /* X-MCP-Topic-Name: likewise */
	bool query_all_views;     /* X-MCP-Query-All-Views: true (client asked, and the rule allows) */
};

/* Reads "groups" at the root of the config and "groups"/"rule" of every users[i] from root,
 * resolves each member's effective rule, and checks for mistakes: unknown group, unknown key,
 * bad types, a pin outside its own allowed set, a tool both allowed and denied explicitly,
 * groups that pin different models/topics for one member without the member's rule settling
 * it. Each problem goes to diag with its config path ("users[2].groups[0]: unknown group
 * \"internz\""). Returns NULL when there was an error. cfg gives the member names, in order. */
struct policy *policy_new(const cJSON *root, const struct gw_config *cfg, struct gw_diag *diag);
void policy_free(struct policy *p);

/* The effective rule of member index i of cfg->members (never NULL for a valid index). */
const struct policy_rule *policy_rule_of(const struct policy *p, size_t member_index);

/* Decides one message. Pure. */
void policy_decide(const struct policy_rule *rule, const struct policy_msg *msg,
		   const struct policy_headers *h, struct policy_decision *out);

/* Whether the rule lets its member ask about this topic (the pin, else the topics globs);
 * used to filter the topics the gateway lists. */
bool policy_topic_allowed(const struct policy_rule *rule, const char *topic);

/* Whether the rule lets its member call this tool (used to filter tools/list replies). */
bool policy_tool_allowed(const struct policy_rule *rule, const char *tool);

/* Whether the rule requires a user ID (user_required in the member's rule or a group's). The
 * gateway ORs it with the team's and the member's own user_required and the client's header: a
 * rule can add the requirement, never lift one set elsewhere. */
bool policy_user_required(const struct policy_rule *rule);

/* Rate limits of a rule; 0 means unlimited. */
struct policy_limits {
	double requests_per_minute;
	double tool_calls_per_minute;
	double burst;          /* bucket size; 0 when not configured: policy_bucket_take then uses
				* the per-minute rate / 6 rounded up, >= 1 */
	long max_concurrent;   /* open streams / requests in flight at once */
};
const struct policy_limits *policy_limits_of(const struct policy_rule *rule);

/* A token bucket. now is seconds on a monotonic clock. Returns true and takes a token, or
 * returns false and sets *retry_after_s (whole seconds, >= 1) to when one will be there.
 * per_minute <= 0 is unlimited (always true); burst < 1 takes the default above. A zeroed
 * bucket starts full. */
struct policy_bucket {
	double tokens;
	double updated;
	bool primed;
};
bool policy_bucket_take(struct policy_bucket *b, double per_minute, double burst, double now,
			long *retry_after_s);

#endif
