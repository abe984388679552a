/* Per-member policy: the rules of the config's groups and members, resolved once per member into
 * one effective rule, and the pure decisions made from it (tools, models, topics, query-all-views,
 * 2026-07-28 header/body agreement) plus the token bucket behind the rate limits. */
#include "policy/policy.h"
#include "gateway/util.h"

#include <fnmatch.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The settings a rule may write. Each is resolved on its own: the member's own rule wins when it
 * writes the setting, else the member's groups that write it are combined. */
enum policy_setting {
	SET_ALLOW,
	SET_DENY,
	SET_MODELS,
	SET_MODEL,
	SET_TOPICS,
	SET_TOPIC,
	SET_QUERY_ALL_VIEWS,
	SET_USER_REQUIRED,
	SET_RPM,
	SET_TPM,
	SET_BURST,
	SET_MAX_CONCURRENT,
};
#define BIT(s) (1u << (s))

struct policy_strs {
	char **items;
	size_t n;
};

/* A rule as written: one group's, or one member's own "rule" (then also the member's name). */
struct policy_src {
	char *name;  /* "group:finance" or "user:alice": what decisions call it */
	char *path;  /* "groups.finance" or "users[0].rule": where diagnostics point */
	unsigned set; /* BIT(setting) for each setting written */
	struct policy_strs allow, deny, models, topics;
	char *model, *topic;
	bool query_all_views, user_required;
	struct policy_limits limits;
};

/* One entry of an effective list, with the rule that wrote it (borrowed from a policy_src). */
struct policy_pat {
	const char *s;
	const char *from;
};

struct policy_list {
	bool set;          /* false: the setting is not restricted */
	const char *from;  /* the first rule that wrote the list: names "not in the list" refusals */
	struct policy_pat *items;
	size_t n;
};

struct policy_pin {
	const char *value; /* NULL: not pinned */
	const char *from;
};

struct policy_rule {
	const char *member;
	struct policy_list allow, deny, models, topics;
	struct policy_pin model, topic;
	bool query_all_views, user_required;
	struct policy_limits limits;
};

struct policy {
	struct policy_src *groups;
	size_t n_groups;
	struct policy_src *own; /* one per member; set == 0 when the member has no rule */
	struct policy_rule *rules;
	size_t n_rules;
};

/* ---- small helpers ---------------------------------------------------------------------- */

static bool glob_match(const char *pattern, const char *s)
{
	return fnmatch(pattern, s, 0) == 0;
}

static bool has_glob(const char *s)
{
	return strpbrk(s, "*?[") != NULL;
}

/* Copies a client-supplied value into dst for a reason line: printable ASCII only, quotes and
 * backslashes replaced, cut at 64 bytes, so a reason never carries control bytes or runs long. */
static const char *clean(char *dst, size_t size, const char *s)
{
	size_t n = 0;

	for (; s && *s && n + 4 < size && n < 64; s++)
		dst[n++] = (*s >= 0x20 && *s < 0x7f && *s != '"' && *s != '\\') ? *s : '?';
	if (s && *s)
		for (int i = 0; i < 3 && n + 1 < size; i++)
			dst[n++] = '.';
	dst[n] = '\0';
	return dst;
}

/* ---- reading rules ---------------------------------------------------------------------- */

/* A rule's keys, one table (like the config's): type, the setting it writes, where it goes. */
enum rule_key_kind {
	KEY_PATTERNS, /* struct policy_strs: an array of non-empty strings */
	KEY_STRING,   /* char *: a non-empty string */
	KEY_BOOL,     /* bool */
	KEY_RATE,     /* double >= 0 a minute; 0 is unlimited */
	KEY_BURST,    /* double, a whole number >= 1: a smaller bucket would refuse everything */
	KEY_COUNT,    /* long, a whole number >= 0; 0 is unlimited */
	KEY_OBJECT,   /* nested keys of the same rule */
};

struct rule_key {
	const char *name;
	enum rule_key_kind kind;
	enum policy_setting setting;
	size_t offset; /* in struct policy_src */
	const struct rule_key *sub;
};

#define SRC(field) offsetof(struct policy_src, field)
#define END_KEYS {NULL, 0, 0, 0, NULL}

static const struct rule_key tools_keys[] = {
	{"allow", KEY_PATTERNS, SET_ALLOW, SRC(allow), NULL},
	{"deny", KEY_PATTERNS, SET_DENY, SRC(deny), NULL},
	END_KEYS,
};

static const struct rule_key rate_keys[] = {
	{"requests_per_minute", KEY_RATE, SET_RPM, SRC(limits.requests_per_minute), NULL},
	{"tool_calls_per_minute", KEY_RATE, SET_TPM, SRC(limits.tool_calls_per_minute), NULL},
	{"burst", KEY_BURST, SET_BURST, SRC(limits.burst), NULL},
	END_KEYS,
};

static const struct rule_key rule_keys[] = {
	{"tools", KEY_OBJECT, 0, 0, tools_keys},
	{"models", KEY_PATTERNS, SET_MODELS, SRC(models), NULL},
	{"model", KEY_STRING, SET_MODEL, SRC(model), NULL},
	{"topics", KEY_PATTERNS, SET_TOPICS, SRC(topics), NULL},
	{"topic", KEY_STRING, SET_TOPIC, SRC(topic), NULL},
	{"query_all_views", KEY_BOOL, SET_QUERY_ALL_VIEWS, SRC(query_all_views), NULL},
	{"user_required", KEY_BOOL, SET_USER_REQUIRED, SRC(user_required), NULL},
	{"rate", KEY_OBJECT, 0, 0, rate_keys},
	{"max_concurrent", KEY_COUNT, SET_MAX_CONCURRENT, SRC(limits.max_concurrent), NULL},
	END_KEYS,
};

static bool read_patterns(const cJSON *item, const char *path, struct policy_strs *out,
			  struct gw_diag *diag)
{
	const cJSON *s;
	size_t i = 0;
	bool ok = true;

	if (!cJSON_IsArray(item)) {
		gw_diag_add(diag, true, "%s: expected an array of strings", path);
		return false;
	}
	out->items = gw_xcalloc(cJSON_GetArraySize(item), sizeof(char *));
	cJSON_ArrayForEach(s, item) {
		if (!cJSON_IsString(s) || !*s->valuestring) {
			gw_diag_add(diag, true, "%s[%zu]: expected a non-empty string", path, i);
			ok = false;
		} else {
			out->items[out->n++] = gw_xstrdup(s->valuestring);
		}
		i++;
	}
	return ok;
}

/* A number from min to a billion (far beyond any sane limit, and exact in a long); whole
 * numbers only when whole. */
static bool read_num(const cJSON *item, const char *path, double min, bool whole, double *out,
		     struct gw_diag *diag)
{
	double v = cJSON_IsNumber(item) ? item->valuedouble : -1;

	if (!cJSON_IsNumber(item) || v < min || v > 1e9 || (whole && v != (double)(long)v)) {
		gw_diag_add(diag, true, "%s: expected a %snumber from %g to 1000000000", path,
			    whole ? "whole " : "", min);
		return false;
	}
	*out = v;
	return true;
}

static void read_keys(const cJSON *obj, const char *path, const struct rule_key *table,
		      struct policy_src *src, struct gw_diag *diag);

/* Reads one present, non-null item into src according to k; marks the setting written. */
static void read_key(const cJSON *item, const char *path, const struct rule_key *k,
		     struct policy_src *src, struct gw_diag *diag)
{
	void *field = (char *)src + k->offset;
	bool ok = false;
	double n;

	switch (k->kind) {
	case KEY_PATTERNS:
		ok = read_patterns(item, path, field, diag);
		break;
	case KEY_STRING:
		ok = cJSON_IsString(item) && *item->valuestring;
		if (ok)
			*(char **)field = gw_xstrdup(item->valuestring);
		else
			gw_diag_add(diag, true, "%s: expected a non-empty string", path);
		break;
	case KEY_BOOL:
		ok = cJSON_IsBool(item);
		if (ok)
			*(bool *)field = cJSON_IsTrue(item);
		else
			gw_diag_add(diag, true, "%s: expected true or false", path);
		break;
	case KEY_RATE:
	case KEY_BURST:
		ok = read_num(item, path, k->kind == KEY_BURST, k->kind == KEY_BURST, field, diag);
		break;
	case KEY_COUNT:
		ok = read_num(item, path, 0, true, &n, diag);
		if (ok)
			*(long *)field = (long)n;
		break;
	case KEY_OBJECT:
		if (cJSON_IsObject(item))
			read_keys(item, path, k->sub, src, diag);
		else
			gw_diag_add(diag, true, "%s: expected an object", path);
		return;
	}
	if (ok)
		src->set |= BIT(k->setting);
}

/* Walks obj against table: unknown and repeated keys are errors, null means "not set" (as in
 * the rest of the config). */
static void read_keys(const cJSON *obj, const char *path, const struct rule_key *table,
		      struct policy_src *src, struct gw_diag *diag)
{
	unsigned seen = 0;
	const cJSON *item;
	char kpath[320];

	cJSON_ArrayForEach(item, obj) {
		const struct rule_key *k = table;

		snprintf(kpath, sizeof(kpath), "%s.%s", path, item->string);
		while (k->name && strcmp(k->name, item->string) != 0)
			k++;
		if (!k->name)
			gw_diag_add(diag, true, "%s: unknown key", kpath);
		else if (seen & BIT(k - table))
			gw_diag_add(diag, true, "%s: set more than once", kpath);
		else if (!cJSON_IsNull(item))
			read_key(item, kpath, k, src, diag);
		if (k->name)
			seen |= BIT(k - table);
	}
}

/* Mistakes inside one rule as written: a pin outside its own list, a tool both allowed and
 * denied by the same spelling (deny would win, so the allow entry is a mistake either way). */
static void check_src(const struct policy_src *s, struct gw_diag *diag)
{
	bool in = false;

	for (size_t i = 0; s->model && (s->set & BIT(SET_MODELS)) && i < s->models.n; i++)
		in = in || strcmp(s->models.items[i], s->model) == 0;
	if (s->model && (s->set & BIT(SET_MODELS)) && !in)
		gw_diag_add(diag, true, "%s.model: \"%s\" is not in %s.models", s->path, s->model,
			    s->path);
	in = false;
	for (size_t i = 0; s->topic && (s->set & BIT(SET_TOPICS)) && i < s->topics.n; i++)
		in = in || glob_match(s->topics.items[i], s->topic);
	if (s->topic && (s->set & BIT(SET_TOPICS)) && !in)
		gw_diag_add(diag, true, "%s.topic: \"%s\" matches none of %s.topics", s->path,
			    s->topic, s->path);
	for (size_t i = 0; i < s->deny.n; i++)
		for (size_t j = 0; j < s->allow.n; j++)
			if (strcmp(s->deny.items[i], s->allow.items[j]) == 0)
				gw_diag_add(diag, true,
					    "%s.tools.deny[%zu]: \"%s\" is also in %s.tools.allow[%zu]; "
					    "remove it from one of them",
					    s->path, i, s->deny.items[i], s->path, j);
}

static void read_src(const cJSON *obj, struct policy_src *src, struct gw_diag *diag)
{
	int errors = diag->errors;

	read_keys(obj, src->path, rule_keys, src, diag);
	if (diag->errors == errors)
		check_src(src, diag);
}

static bool valid_group_name(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!(*s >= 'a' && *s <= 'z') && !(*s >= 'A' && *s <= 'Z') &&
		    !(*s >= '0' && *s <= '9') && !strchr("._@-", *s))
			return false;
	return true;
}

static void read_groups(struct policy *p, const cJSON *groups, struct gw_diag *diag)
{
	const cJSON *g;

	if (!groups || cJSON_IsNull(groups))
		return;
	if (!cJSON_IsObject(groups)) {
		gw_diag_add(diag, true, "groups: expected an object of named groups");
		return;
	}
	p->groups = gw_xcalloc(cJSON_GetArraySize(groups), sizeof(*p->groups));
	cJSON_ArrayForEach(g, groups) {
		struct policy_src *src = &p->groups[p->n_groups++];

		src->name = gw_xasprintf("group:%s", g->string);
		src->path = gw_xasprintf("groups.%s", g->string);
		if (!valid_group_name(g->string))
			gw_diag_add(diag, true, "%s: group names use letters, digits and . _ @ - only",
				    src->path);
		for (size_t i = 0; i + 1 < p->n_groups; i++)
			if (strcmp(p->groups[i].name, src->name) == 0)
				gw_diag_add(diag, true, "%s: group %s is defined more than once",
					    src->path, g->string);
		if (!cJSON_IsObject(g))
			gw_diag_add(diag, true, "%s: expected an object (a rule)", src->path);
		else
			read_src(g, src, diag);
	}
}

static const struct policy_src *find_group(const struct policy *p, const char *name)
{
	for (size_t i = 0; i < p->n_groups; i++)
		if (strcmp(p->groups[i].name + strlen("group:"), name) == 0)
			return &p->groups[i];
	return NULL;
}

/* Reads users[i].groups into gs (at most cap known groups, in the order written); returns how
 * many. Unknown groups are errors, repeats warnings. */
static size_t read_member_groups(const struct policy *p, const cJSON *arr, size_t i,
				 const struct policy_src **gs, size_t cap, struct gw_diag *diag)
{
	const cJSON *s;
	size_t n = 0, j = 0;

	if (!arr || cJSON_IsNull(arr))
		return 0;
	if (!cJSON_IsArray(arr)) {
		gw_diag_add(diag, true, "users[%zu].groups: expected an array of group names", i);
		return 0;
	}
	cJSON_ArrayForEach(s, arr) {
		const struct policy_src *g = cJSON_IsString(s) ? find_group(p, s->valuestring) : NULL;
		bool repeated = false;

		if (!cJSON_IsString(s))
			gw_diag_add(diag, true, "users[%zu].groups[%zu]: expected a group name", i, j);
		else if (!g)
			gw_diag_add(diag, true, "users[%zu].groups[%zu]: unknown group \"%s\"", i, j,
				    s->valuestring);
		for (size_t k = 0; g && k < n; k++)
			repeated = repeated || gs[k] == g;
		if (repeated)
			gw_diag_add(diag, false, "users[%zu].groups[%zu]: group %s is listed twice", i,
				    j, s->valuestring);
		else if (g && n < cap)
			gs[n++] = g;
		j++;
	}
	return n;
}

/* ---- resolution ------------------------------------------------------------------------- */

static const struct policy_strs *src_list(const struct policy_src *s, enum policy_setting k)
{
	return k == SET_ALLOW ? &s->allow
	       : k == SET_DENY ? &s->deny
	       : k == SET_MODELS ? &s->models
				 : &s->topics;
}

static void list_append(struct policy_list *l, const struct policy_src *s, enum policy_setting k)
{
	const struct policy_strs *add = src_list(s, k);

	if (!l->set)
		l->from = s->name;
	l->set = true;
	l->items = realloc(l->items, (l->n + add->n + 1) * sizeof(*l->items));
	if (!l->items)
		abort();
	for (size_t i = 0; i < add->n; i++)
		l->items[l->n++] = (struct policy_pat){add->items[i], s->name};
}

/* Lists: the member's own, else the union over the groups that write the setting. */
static void resolve_list(struct policy_list *out, enum policy_setting k,
			 const struct policy_src *own, const struct policy_src **gs, size_t ng)
{
	if (own->set & BIT(k)) {
		list_append(out, own, k);
		return;
	}
	for (size_t i = 0; i < ng; i++)
		if (gs[i]->set & BIT(k))
			list_append(out, gs[i], k);
}

/* Pins: the member's own, else the groups' one value; groups that disagree are an error the
 * member's rule settles. */
static void resolve_pin(struct policy_pin *out, enum policy_setting k, const struct policy_src *own,
			const struct policy_src **gs, size_t ng, size_t mi, struct gw_diag *diag)
{
	const char *what = k == SET_MODEL ? "model" : "topic";
	const struct policy_src *first = NULL;

	if (own->set & BIT(k)) {
		out->value = k == SET_MODEL ? own->model : own->topic;
		out->from = own->name;
		return;
	}
	for (size_t i = 0; i < ng; i++) {
		const char *v = k == SET_MODEL ? gs[i]->model : gs[i]->topic;

		if (!(gs[i]->set & BIT(k)))
			continue;
		if (!first) {
			first = gs[i];
			out->value = v;
			out->from = first->name;
		} else if (strcmp(out->value, v) != 0) {
			gw_diag_add(diag, true,
				    "users[%zu]: groups %s and %s pin different %ss; set %s in the "
				    "member's rule",
				    mi, first->name + strlen("group:"), gs[i]->name + strlen("group:"),
				    what, what);
			return;
		}
	}
}

/* Flags: the member's own, else true when any of its groups says true. */
static bool resolve_flag(enum policy_setting k, const struct policy_src *own,
			 const struct policy_src **gs, size_t ng)
{
	bool v = false;

	if (own->set & BIT(k))
		return k == SET_QUERY_ALL_VIEWS ? own->query_all_views : own->user_required;
	for (size_t i = 0; i < ng; i++)
		if (gs[i]->set & BIT(k))
			v = v || (k == SET_QUERY_ALL_VIEWS ? gs[i]->query_all_views
							   : gs[i]->user_required);
	return v;
}

static double limit_field(const struct policy_src *s, enum policy_setting k)
{
	return k == SET_RPM   ? s->limits.requests_per_minute
	       : k == SET_TPM ? s->limits.tool_calls_per_minute
	       : k == SET_BURST ? s->limits.burst
				: (double)s->limits.max_concurrent;
}

/* Limits: the member's own, else the most generous among the groups that write it (0, unlimited,
 * is the most generous), so being in two groups never limits a member more than one. */
static double resolve_limit(enum policy_setting k, const struct policy_src *own,
			    const struct policy_src **gs, size_t ng)
{
	double v = 0;
	bool any = false;

	if (own->set & BIT(k))
		return limit_field(own, k);
	for (size_t i = 0; i < ng; i++) {
		double g = limit_field(gs[i], k);

		if (!(gs[i]->set & BIT(k)))
			continue;
		v = !any ? g : (v == 0 || g == 0) ? 0 : (g > v ? g : v);
		any = true;
	}
	return v;
}

static bool list_has(const struct policy_list *l, const char *v, bool glob)
{
	for (size_t i = 0; i < l->n; i++)
		if (glob ? glob_match(l->items[i].s, v) : strcmp(l->items[i].s, v) == 0)
			return true;
	return false;
}

static bool list_written_by(const struct policy_list *l, const char *from)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->items[i].from == from)
			return true;
	return l->set && l->from == from;
}

/* A pin outside the member's allowed list, when pin and list come from different rules (one
 * rule's own mismatch was reported at its path already). */
static void check_pin(const struct policy_pin *pin, const struct policy_list *l, bool glob,
		      const char *what, size_t mi, struct gw_diag *diag)
{
	if (!pin->value || !l->set || list_written_by(l, pin->from) || list_has(l, pin->value, glob))
		return;
	gw_diag_add(diag, true,
		    "users[%zu]: %s \"%s\" pinned by %s is not among the %ss allowed by %s; set %ss "
		    "or %s in the member's rule",
		    mi, what, pin->value, pin->from, what, l->from, what, what);
}

/* A tool one rule allows by name and another denies by name: deny wins, which the operator may
 * not expect, so say it. */
static void check_tool_overlap(const struct policy_rule *r, size_t mi, struct gw_diag *diag)
{
	for (size_t i = 0; i < r->allow.n; i++) {
		const struct policy_pat *a = &r->allow.items[i];

		for (size_t j = 0; !has_glob(a->s) && j < r->deny.n; j++)
			if (r->deny.items[j].from != a->from && strcmp(r->deny.items[j].s, a->s) == 0)
				gw_diag_add(diag, false,
					    "users[%zu]: tool %s is allowed by %s and denied by %s; "
					    "the deny wins",
					    mi, a->s, a->from, r->deny.items[j].from);
	}
}

static void resolve(struct policy_rule *r, const struct policy_src *own,
		    const struct policy_src **gs, size_t ng, size_t mi, struct gw_diag *diag)
{
	r->member = own->name + strlen("user:");
	resolve_list(&r->allow, SET_ALLOW, own, gs, ng);
	resolve_list(&r->deny, SET_DENY, own, gs, ng);
	resolve_list(&r->models, SET_MODELS, own, gs, ng);
	resolve_list(&r->topics, SET_TOPICS, own, gs, ng);
	resolve_pin(&r->model, SET_MODEL, own, gs, ng, mi, diag);
	resolve_pin(&r->topic, SET_TOPIC, own, gs, ng, mi, diag);
	r->query_all_views = resolve_flag(SET_QUERY_ALL_VIEWS, own, gs, ng);
	r->user_required = resolve_flag(SET_USER_REQUIRED, own, gs, ng);
	r->limits.requests_per_minute = resolve_limit(SET_RPM, own, gs, ng);
	r->limits.tool_calls_per_minute = resolve_limit(SET_TPM, own, gs, ng);
	r->limits.burst = resolve_limit(SET_BURST, own, gs, ng);
	r->limits.max_concurrent = (long)resolve_limit(SET_MAX_CONCURRENT, own, gs, ng);
	check_pin(&r->model, &r->models, false, "model", mi, diag);
	check_pin(&r->topic, &r->topics, true, "topic", mi, diag);
	check_tool_overlap(r, mi, diag);
}

static void read_member(struct policy *p, const cJSON *user, size_t i, const char *name,
			struct gw_diag *diag)
{
	const cJSON *groups = cJSON_IsObject(user) ? cJSON_GetObjectItemCaseSensitive(user, "groups")
						   : NULL;
	const cJSON *rule = cJSON_IsObject(user) ? cJSON_GetObjectItemCaseSensitive(user, "rule")
						 : NULL;
	size_t cap = cJSON_IsArray(groups) ? (size_t)cJSON_GetArraySize(groups) : 0;
	const struct policy_src **gs = gw_xcalloc(cap, sizeof(*gs));
	struct policy_src *own = &p->own[i];
	size_t ng;

	own->name = gw_xasprintf("user:%s", name ? name : "?");
	own->path = gw_xasprintf("users[%zu].rule", i);
	ng = read_member_groups(p, groups, i, gs, cap, diag);
	if (rule && !cJSON_IsNull(rule) && !cJSON_IsObject(rule))
		gw_diag_add(diag, true, "%s: expected an object", own->path);
	else if (rule && cJSON_IsObject(rule))
		read_src(rule, own, diag);
	resolve(&p->rules[i], own, gs, ng, i, diag);
	free(gs);
}

struct policy *policy_new(const cJSON *root, const struct gw_config *cfg, struct gw_diag *diag)
{
	struct policy *p = gw_xcalloc(1, sizeof(*p));
	const cJSON *users = cJSON_GetObjectItemCaseSensitive(root, "users");
	const cJSON *user = cJSON_IsArray(users) ? users->child : NULL;
	int errors = diag->errors;

	read_groups(p, cJSON_GetObjectItemCaseSensitive(root, "groups"), diag);
	p->n_rules = cfg->n_members;
	p->own = gw_xcalloc(p->n_rules, sizeof(*p->own));
	p->rules = gw_xcalloc(p->n_rules, sizeof(*p->rules));
	for (size_t i = 0; i < p->n_rules; i++) {
		read_member(p, user, i, cfg->members[i].name, diag);
		user = user ? user->next : NULL;
	}
	if (diag->errors > errors) {
		policy_free(p);
		return NULL;
	}
	return p;
}

static void src_fini(struct policy_src *s)
{
	struct policy_strs *lists[] = {&s->allow, &s->deny, &s->models, &s->topics};

	for (size_t i = 0; i < sizeof(lists) / sizeof(*lists); i++) {
		for (size_t j = 0; j < lists[i]->n; j++)
			free(lists[i]->items[j]);
		free(lists[i]->items);
	}
	free(s->model);
	free(s->topic);
	free(s->name);
	free(s->path);
}

void policy_free(struct policy *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n_groups; i++)
		src_fini(&p->groups[i]);
	for (size_t i = 0; i < p->n_rules; i++) {
		src_fini(&p->own[i]);
		free(p->rules[i].allow.items);
		free(p->rules[i].deny.items);
		free(p->rules[i].models.items);
		free(p->rules[i].topics.items);
	}
	free(p->groups);
	free(p->own);
	free(p->rules);
	free(p);
}

const struct policy_rule *policy_rule_of(const struct policy *p, size_t member_index)
{
	return member_index < p->n_rules ? &p->rules[member_index] : NULL;
}

const struct policy_limits *policy_limits_of(const struct policy_rule *rule)
{
	return &rule->limits;
}

bool policy_user_required(const struct policy_rule *rule)
{
	return rule->user_required;
}

/* ---- decisions -------------------------------------------------------------------------- */

/* Whether the rule lets its member call tool, and which rule said so ("default" when no rule
 * restricts tools). Deny beats allow; an allow list that is set admits only what it matches. */
static bool tool_allowed(const struct policy_rule *r, const char *tool, const char **by)
{
	*by = "default";
	if (!tool)
		return false;
	for (size_t i = 0; i < r->deny.n; i++)
		if (glob_match(r->deny.items[i].s, tool)) {
			*by = r->deny.items[i].from;
			return false;
		}
	if (!r->allow.set)
		return true;
	for (size_t i = 0; i < r->allow.n; i++)
		if (glob_match(r->allow.items[i].s, tool)) {
			*by = r->allow.items[i].from;
			return true;
		}
	*by = r->allow.from;
	return false;
}

bool policy_tool_allowed(const struct policy_rule *rule, const char *tool)
{
	const char *by;

	return tool_allowed(rule, tool, &by);
}

/* Decodes the 2026-07-28 sentinel "=?base64?...?=" into a new NUL-terminated buffer (*len bytes
 * without the NUL); any other value is copied as is. NULL when the base64 is malformed. */
static char *header_value_decode(const char *v, size_t *len)
{
	static const char alphabet[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t n = strlen(v), pre = strlen("=?base64?"), bits = 0, o = 0;
	uint32_t acc = 0;
	char *out;

	if (n < pre + 2 || strncmp(v, "=?base64?", pre) != 0 || strcmp(v + n - 2, "?=") != 0) {
		*len = n;
		return gw_xstrdup(v);
	}
	out = gw_xcalloc(n, 1);
	for (size_t i = pre; i < n - 2; i++) {
		const char *c = v[i] ? strchr(alphabet, v[i]) : NULL;

		if (v[i] == '=' && (i + 3 >= n || v[i + 1] == '=' || v[i + 1] == '?'))
			break; /* padding, only at the end */
		if (!c) {
			free(out);
			return NULL;
		}
		acc = (acc << 6) | (uint32_t)(c - alphabet);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (char)((acc >> bits) & 0xff);
		}
	}
	*len = o;
	return out;
}

static bool header_era(const struct policy_headers *h)
{
	/* Protocol versions are dates: any later version keeps the header/body rule. */
	return h->mcp_method ||
	       (h->protocol_version && strcmp(h->protocol_version, "2026-07-28") >= 0);
}

static void deny(struct policy_decision *out, enum policy_verdict v, const char *rule,
		 const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void deny(struct policy_decision *out, enum policy_verdict v, const char *rule,
		 const char *fmt, ...)
{
	va_list ap;

	out->verdict = v;
	out->rule = rule;
	va_start(ap, fmt);
	vsnprintf(out->reason, sizeof(out->reason), fmt, ap);
	va_end(ap);
}

/* The body value Mcp-Name mirrors, for the methods that need one. */
static bool mcp_name_source(const struct policy_msg *m, const char **v)
{
	if (strcmp(m->method, "tools/call") == 0) {
		*v = m->tool;
		return true;
	}
	if (strcmp(m->method, "resources/read") == 0 || strcmp(m->method, "prompts/get") == 0) {
		*v = m->name;
		return true;
	}
	return false;
}

static bool check_mcp_name(const struct policy_msg *m, const char *hv,
			   struct policy_decision *out)
{
	const char *body;
	char *dec;
	size_t len;
	bool ok;
	char a[80], b[80];

	if (!mcp_name_source(m, &body))
		return true;
	if (!hv) {
		deny(out, POLICY_HEADER_MISMATCH, "default",
		     "Mcp-Name header is missing; %s needs it (MCP 2026-07-28)", m->method);
		return false;
	}
	dec = header_value_decode(hv, &len);
	ok = dec && body && strlen(body) == len && memcmp(dec, body, len) == 0;
	if (!ok)
		deny(out, POLICY_HEADER_MISMATCH, "default",
		     "Mcp-Name header \"%s\" does not match the body's %s \"%s\"", clean(a, sizeof(a), hv),
		     strcmp(m->method, "resources/read") == 0 ? "params.uri" : "params.name",
		     body ? clean(b, sizeof(b), body) : "(none)");
	free(dec);
	return ok;
}

/* MCP 2026-07-28 mirrors the method and name in headers; an intermediary that routes on one and
 * a server that runs the other must not disagree, so any difference is refused. */
static bool check_headers(const struct policy_msg *m, const struct policy_headers *h,
			  struct policy_decision *out)
{
	char a[80], b[80];

	if (!header_era(h))
		return true;
	if (!m->method) {
		if (h->mcp_method)
			deny(out, POLICY_HEADER_MISMATCH, "default",
			     "Mcp-Method header \"%s\" on a message without a method",
			     clean(a, sizeof(a), h->mcp_method));
		return !h->mcp_method;
	}
	if (!h->mcp_method && m->is_request) {
		deny(out, POLICY_HEADER_MISMATCH, "default",
		     "Mcp-Method header is missing; every request needs it (MCP 2026-07-28)");
		return false;
	}
	if (h->mcp_method && strcmp(h->mcp_method, m->method) != 0) {
		deny(out, POLICY_HEADER_MISMATCH, "default",
		     "Mcp-Method header \"%s\" does not match the body's method \"%s\"",
		     clean(a, sizeof(a), h->mcp_method), clean(b, sizeof(b), m->method));
		return false;
	}
	return check_mcp_name(m, h->mcp_name, out);
}

/* Whether v is in the allowed set: the pin when pinned, else the list, else anything; *by is the
 * rule that narrowed the set. */
static bool value_allowed(const struct policy_pin *pin, const struct policy_list *l, bool glob,
			  const char *v, const char **by)
{
	if (pin->value) {
		*by = pin->from;
		return strcmp(pin->value, v) == 0;
	}
	*by = l->set ? l->from : "default";
	return !l->set || list_has(l, v, glob);
}

bool policy_topic_allowed(const struct policy_rule *rule, const char *topic)
{
	const char *by;

	return value_allowed(&rule->topic, &rule->topics, true, topic, &by);
}

/* Checks the client's header and the tool's argument (argname) for one of model / topic. On
 * success *send is what the gateway sends as its own header: the pin, else the client's
 * allowed header. */
static bool decide_value(const struct policy_rule *r, const cJSON *args, const char *header,
			 bool topic, struct policy_decision *out, const char **send)
{
	const struct policy_pin *pin = topic ? &r->topic : &r->model;
	const struct policy_list *l = topic ? &r->topics : &r->models;
	const char *what = topic ? "topic" : "model";
	const char *argname = topic ? "topicName" : "modelId";
	enum policy_verdict v = topic ? POLICY_DENY_TOPIC : POLICY_DENY_MODEL;
	const cJSON *arg = cJSON_IsObject(args) ? cJSON_GetObjectItemCaseSensitive(args, argname)
						: NULL;
	const char *by;
	char a[80];

	if (header && *header && !value_allowed(pin, l, topic, header, &by)) {
		deny(out, v, by, "%s %s (X-MCP-%s header) is not allowed for %s (rule %s)", what,
		     clean(a, sizeof(a), header), topic ? "Topic-Name" : "Model-ID", r->member, by);
		return false;
	}
	if (arg && cJSON_IsString(arg) && !value_allowed(pin, l, topic, arg->valuestring, &by)) {
		deny(out, v, by, "%s %s (%s argument) is not allowed for %s (rule %s)", what,
		     clean(a, sizeof(a), arg->valuestring), argname, r->member, by);
		return false;
	}
	if (arg && !cJSON_IsString(arg) && !cJSON_IsNull(arg) && (pin->value || l->set)) {
		deny(out, v, pin->value ? pin->from : l->from,
		     "%s argument is not a string and cannot be checked for %s (rule %s)", argname,
		     r->member, pin->value ? pin->from : l->from);
		return false;
	}
	*send = pin->value ? pin->value : (header && *header ? header : NULL);
	return true;
}

void policy_decide(const struct policy_rule *rule, const struct policy_msg *msg,
		   const struct policy_headers *h, struct policy_decision *out)
{
	static const struct policy_headers none;
	bool call = msg->method && strcmp(msg->method, "tools/call") == 0;
	const char *by = "default";
	const cJSON *args;
	char t[80];

	if (!h)
		h = &none;
	memset(out, 0, sizeof(*out));
	out->verdict = POLICY_ALLOW;
	out->rule = "default";
	if (!check_headers(msg, h, out))
		return;
	if (call && !tool_allowed(rule, msg->tool, &by)) {
		if (msg->tool)
			deny(out, POLICY_DENY_TOOL, by, "tool %s is not allowed for %s (rule %s)",
			     clean(t, sizeof(t), msg->tool), rule->member, by);
		else
			deny(out, POLICY_DENY_TOOL, by, "tools/call without a tool name (rule %s)", by);
		return;
	}
	args = call ? msg->arguments : NULL;
	if (!decide_value(rule, args, h->model_id, false, out, &out->model_id) ||
	    !decide_value(rule, args, h->topic_name, true, out, &out->topic_name)) {
		out->model_id = out->topic_name = NULL;
		return;
	}
	out->query_all_views = rule->query_all_views && h->query_all_views &&
			       strcasecmp(h->query_all_views, "true") == 0;
	out->rule = by;
	snprintf(out->reason, sizeof(out->reason), "allowed for %s (rule %s)", rule->member, by);
}

/* ---- rate limits ------------------------------------------------------------------------ */

static double ceil_pos(double x)
{
	double c = (double)(long)x;

	return c < x ? c + 1 : c;
}

bool policy_bucket_take(struct policy_bucket *b, double per_minute, double burst, double now,
			long *retry_after_s)
{
	double rate = per_minute / 60.0; /* tokens per second */
	double wait;

	if (per_minute <= 0)
		return true;
	if (burst < 1)
		burst = ceil_pos(per_minute / 6) < 1 ? 1 : ceil_pos(per_minute / 6);
	if (!b->primed) {
		b->tokens = burst;
		b->updated = now;
		b->primed = true;
	} else if (now > b->updated) {
		b->tokens += (now - b->updated) * rate;
		b->updated = now;
	}
	if (b->tokens > burst) /* also when a reload made the bucket smaller */
		b->tokens = burst;
	/* The epsilon absorbs rounding in the refill so that exactly enough time gives a token. */
	if (b->tokens >= 1 - 1e-9) {
		b->tokens -= 1;
		return true;
	}
	wait = ceil_pos((1 - b->tokens) / rate - 1e-9);
	if (retry_after_s)
		*retry_after_s = wait < 1 ? 1 : (long)wait;
	return false;
}
