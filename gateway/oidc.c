/* OpenID Connect relying party: discovery document, JWKS and the authorization code exchange,
 * each fetched once for every operation waiting on it. An operation is a small state machine:
 * wait for discovery → exchange the code → wait for keys → verify (→ keys again, once). */
#include "gateway/oidc.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include "gateway/fetch.h"
#include "gateway/jwt.h"
#include "gateway/log.h"
#include "gateway/oauth.h"
#include "gateway/util.h"

#define FETCH_TIMEOUT_MS 10000
#define CLOCK_LEEWAY_S 60

enum op_kind { OP_READY, OP_SIGN_IN };
enum op_wait { WAIT_NONE, WAIT_DISCOVERY, WAIT_TOKEN, WAIT_JWKS };

struct gw_oidc_op {
	struct gw_oidc *o;
	enum op_kind kind;
	enum op_wait wait;
	unsigned long since; /* the wake round it began waiting in */
	TAILQ_ENTRY(gw_oidc_op) link;
	struct gw_fetch_req *token_req;
	char *code, *verifier, *nonce;
	char *id_token;
	bool refetched; /* the keys were fetched again for this token's unknown kid */
	struct event *defer; /* ends an operation that failed at its start, from the loop */
	gw_oidc_ready_fn ready_fn;
	gw_oidc_sign_in_fn sign_in_fn;
	void *arg;
};

TAILQ_HEAD(op_list, gw_oidc_op);

struct gw_oidc {
	struct event_base *base;
	struct gw_fetch *fetch;
	const struct gw_oauth_config *cfg;
	char *issuer; /* the issuer discovery ran for */
	char *ca_file;
	char *authorization_endpoint, *token_endpoint, *jwks_uri; /* NULL until discovered */
	struct gw_jwks *jwks;
	struct gw_fetch_req *discovery, *keys;
	struct op_list ops;
	unsigned long round; /* wake rounds so far */
	unsigned long jwks_fetches;
};

static void op_sign_in_step(struct gw_oidc_op *op);

static void op_free(struct gw_oidc_op *op)
{
	TAILQ_REMOVE(&op->o->ops, op, link);
	if (op->defer)
		event_free(op->defer);
	if (op->token_req)
		gw_fetch_cancel(op->token_req);
	free(op->code);
	if (op->verifier)
		explicit_bzero(op->verifier, strlen(op->verifier));
	free(op->verifier);
	free(op->nonce);
	if (op->id_token)
		explicit_bzero(op->id_token, strlen(op->id_token));
	free(op->id_token);
	free(op);
}

/* Ends a sign-in with its result; the operation is gone afterwards. */
static void op_finish(struct gw_oidc_op *op, enum gw_oidc_result result, const cJSON *claims,
		      const char *why)
{
	gw_oidc_sign_in_fn fn = op->sign_in_fn;
	void *arg = op->arg;

	op_free(op);
	fn(arg, result, claims, why);
}

static struct gw_oidc_op *op_new(struct gw_oidc *o, enum op_kind kind, void *arg)
{
	struct gw_oidc_op *op = gw_xcalloc(1, sizeof(*op));

	op->o = o;
	op->kind = kind;
	op->arg = arg;
	TAILQ_INSERT_TAIL(&o->ops, op, link);
	return op;
}

static void wait_for(struct gw_oidc_op *op, enum op_wait what)
{
	op->wait = what;
	op->since = op->o->round;
}

/* Wakes every operation that was waiting for what (discovery or the keys) when the answer
 * came. The list can change under the walk (an operation ends, or starts waiting again: for
 * keys fetched anew after an unknown kid, which this round must not answer), so the walk
 * restarts each time. */
static void wake(struct gw_oidc *o, enum op_wait what)
{
	unsigned long round = ++o->round;
	struct gw_oidc_op *op;

	for (;;) {
		TAILQ_FOREACH(op, &o->ops, link)
			if (op->wait == what && op->since < round)
				break;
		if (!op)
			return;
		op->wait = WAIT_NONE;
		if (op->kind == OP_READY) {
			gw_oidc_ready_fn fn = op->ready_fn;
			void *arg = op->arg;

			op_free(op);
			fn(arg, o->authorization_endpoint);
		} else {
			op_sign_in_step(op);
		}
	}
}

static char *json_string(const cJSON *obj, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);

	return cJSON_IsString(v) && *v->valuestring ? gw_xstrdup(v->valuestring) : NULL;
}

static void on_discovery(void *arg, int status, const char *body, size_t len, const char *error)
{
	struct gw_oidc *o = arg;
	cJSON *doc = status == 200 ? cJSON_ParseWithLength(body, len) : NULL;
	char *issuer = json_string(doc, "issuer");

	o->discovery = NULL;
	o->authorization_endpoint = json_string(doc, "authorization_endpoint");
	o->token_endpoint = json_string(doc, "token_endpoint");
	o->jwks_uri = json_string(doc, "jwks_uri");
	if (!issuer || strcmp(issuer, o->issuer) != 0 || !o->authorization_endpoint ||
	    !o->token_endpoint || !o->jwks_uri ||
	    !gw_oauth_url_printable(o->authorization_endpoint)) {
		if (status == 200)
			gw_warn("oidc: %s/.well-known/openid-configuration is not a discovery document "
				"for this issuer (its issuer, authorization_endpoint, token_endpoint and "
				"jwks_uri are required)",
				o->issuer);
		else
			gw_warn("oidc: discovery at %s failed: %s", o->issuer,
				status ? "unexpected HTTP status" : error);
		free(o->authorization_endpoint);
		free(o->token_endpoint);
		free(o->jwks_uri);
		o->authorization_endpoint = o->token_endpoint = o->jwks_uri = NULL;
	} else {
		gw_info("oidc: provider %s discovered", o->issuer);
	}
	free(issuer);
	cJSON_Delete(doc);
	wake(o, WAIT_DISCOVERY);
}

static void start_discovery(struct gw_oidc *o)
{
	char *url;

	if (o->discovery || !o->issuer)
		return;
	url = gw_xasprintf("%s%s.well-known/openid-configuration", o->issuer,
			   o->issuer[strlen(o->issuer) - 1] == '/' ? "" : "/");
	o->discovery = gw_fetch_start(o->fetch, url, NULL, o->ca_file, FETCH_TIMEOUT_MS,
				      on_discovery, o);
	free(url);
	if (!o->discovery)
		gw_warn("oidc: cannot start discovery for %s", o->issuer);
}

static void on_keys(void *arg, int status, const char *body, size_t len, const char *error)
{
	struct gw_oidc *o = arg;
	char *err = NULL;
	struct gw_jwks *jwks = status == 200 ? gw_jwks_parse(body, len, &err) : NULL;

	o->keys = NULL;
	if (jwks) {
		gw_jwks_free(o->jwks);
		o->jwks = jwks;
	} else {
		gw_warn("oidc: keys from %s unusable: %s", o->jwks_uri,
			err ? err : status ? "unexpected HTTP status" : error);
	}
	free(err);
	wake(o, WAIT_JWKS);
}

static void start_keys(struct gw_oidc *o)
{
	if (o->keys)
		return;
	o->jwks_fetches++;
	o->keys = gw_fetch_start(o->fetch, o->jwks_uri, NULL, o->ca_file, FETCH_TIMEOUT_MS,
				 on_keys, o);
	if (!o->keys)
		gw_warn("oidc: cannot start fetching keys from %s", o->jwks_uri);
}

static void forget_provider(struct gw_oidc *o)
{
	struct gw_oidc_op *op;

	if (o->discovery)
		gw_fetch_cancel(o->discovery);
	if (o->keys)
		gw_fetch_cancel(o->keys);
	o->discovery = o->keys = NULL;
	free(o->authorization_endpoint);
	free(o->token_endpoint);
	free(o->jwks_uri);
	o->authorization_endpoint = o->token_endpoint = o->jwks_uri = NULL;
	gw_jwks_free(o->jwks);
	o->jwks = NULL;
	/* Operations begun with the old provider cannot finish with the new one. */
	while ((op = TAILQ_FIRST(&o->ops))) {
		if (op->kind == OP_READY) {
			gw_oidc_ready_fn fn = op->ready_fn;
			void *arg = op->arg;

			op_free(op);
			fn(arg, NULL);
		} else {
			op_finish(op, GW_OIDC_UNAVAILABLE, NULL, "the provider changed in a reload");
		}
	}
}

static bool differ(const char *a, const char *b)
{
	return (a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0);
}

void gw_oidc_configure(struct gw_oidc *o, const struct gw_oauth_config *oauth)
{
	const char *issuer = oauth && oauth->public_url ? oauth->provider_issuer : NULL;
	const char *ca = issuer ? oauth->provider_ca_file : NULL;

	o->cfg = oauth;
	if (!differ(issuer, o->issuer) && !differ(ca, o->ca_file))
		return;
	forget_provider(o);
	free(o->issuer);
	free(o->ca_file);
	o->issuer = issuer ? gw_xstrdup(issuer) : NULL;
	o->ca_file = ca ? gw_xstrdup(ca) : NULL;
	start_discovery(o);
}

struct gw_oidc *gw_oidc_new(struct event_base *base)
{
	struct gw_oidc *o = gw_xcalloc(1, sizeof(*o));

	o->base = base;
	o->fetch = gw_fetch_new(base);
	TAILQ_INIT(&o->ops);
	return o;
}

void gw_oidc_free(struct gw_oidc *o)
{
	struct gw_oidc_op *op;

	if (!o)
		return;
	while ((op = TAILQ_FIRST(&o->ops)))
		op_free(op);
	if (o->discovery)
		gw_fetch_cancel(o->discovery);
	if (o->keys)
		gw_fetch_cancel(o->keys);
	gw_fetch_free(o->fetch);
	gw_jwks_free(o->jwks);
	free(o->authorization_endpoint);
	free(o->token_endpoint);
	free(o->jwks_uri);
	free(o->issuer);
	free(o->ca_file);
	free(o);
}

const char *gw_oidc_authorization_endpoint(const struct gw_oidc *o)
{
	return o->authorization_endpoint;
}

static void on_defer(evutil_socket_t fd, short what, void *arg)
{
	struct gw_oidc_op *op = arg;

	(void)fd;
	(void)what;
	if (op->kind == OP_READY) {
		gw_oidc_ready_fn fn = op->ready_fn;
		void *fn_arg = op->arg;

		op_free(op);
		fn(fn_arg, NULL);
	} else {
		op_finish(op, GW_OIDC_UNAVAILABLE, NULL, "cannot reach the provider");
	}
}

/* An operation that cannot even start still reports from the loop, never from the call. */
static void defer_failure(struct gw_oidc_op *op)
{
	op->wait = WAIT_NONE;
	op->defer = evtimer_new(op->o->base, on_defer, op);
	if (!op->defer)
		abort();
	event_active(op->defer, EV_TIMEOUT, 0);
}

struct gw_oidc_op *gw_oidc_wait_ready(struct gw_oidc *o, gw_oidc_ready_fn fn, void *arg)
{
	struct gw_oidc_op *op = op_new(o, OP_READY, arg);

	op->ready_fn = fn;
	wait_for(op, WAIT_DISCOVERY);
	start_discovery(o);
	if (!o->discovery)
		defer_failure(op);
	return op;
}

/* The token endpoint's answer: an id_token, or the provider's refusal. */
static void on_token(void *arg, int status, const char *body, size_t len, const char *error)
{
	struct gw_oidc_op *op = arg;
	cJSON *doc = status ? cJSON_ParseWithLength(body, len) : NULL;

	op->token_req = NULL;
	if (status == 200 && (op->id_token = json_string(doc, "id_token"))) {
		cJSON_Delete(doc);
		op->wait = WAIT_NONE;
		op_sign_in_step(op);
		return;
	}
	if (status == 400 || status == 401) {
		char *code = json_string(doc, "error");
		char why[160];

		snprintf(why, sizeof(why), "the provider refused the code: %s",
			 code ? code : "HTTP 400");
		free(code);
		cJSON_Delete(doc);
		op_finish(op, GW_OIDC_REFUSED, NULL, why);
		return;
	}
	cJSON_Delete(doc);
	op_finish(op, GW_OIDC_UNAVAILABLE, NULL,
		  status == 200 ? "the provider's token answer has no id_token"
		  : status     ? "the provider's token endpoint failed"
			       : error);
}

/* POSTs the code to the provider's token endpoint; NULL when it cannot be sent. */
static struct gw_fetch_req *fetch_token(struct gw_oidc_op *op)
{
	struct gw_oidc *o = op->o;
	struct gw_fetch_req *req;
	struct evbuffer *form = evbuffer_new();
	char *redirect = gw_xasprintf("%s/oauth/callback", o->cfg->public_url);
	size_t len;
	char *text;

	if (!form)
		abort();
	gw_form_add(form, "grant_type", "authorization_code");
	gw_form_add(form, "code", op->code);
	gw_form_add(form, "redirect_uri", redirect);
	gw_form_add(form, "client_id", o->cfg->provider_client_id);
	if (o->cfg->provider_client_secret)
		gw_form_add(form, "client_secret", o->cfg->provider_client_secret);
	gw_form_add(form, "code_verifier", op->verifier);
	len = evbuffer_get_length(form);
	text = gw_xcalloc(1, len + 1);
	evbuffer_remove(form, text, len);
	text[len] = '\0';
	evbuffer_free(form);
	free(redirect);
	req = gw_fetch_start(o->fetch, o->token_endpoint, text, o->ca_file, FETCH_TIMEOUT_MS,
			     on_token, op);
	explicit_bzero(text, len);
	free(text);
	return req;
}

/* Verifies the ID token with the keys held; asks for the keys (again, once) when needed. */
static void verify(struct gw_oidc_op *op)
{
	struct gw_oidc *o = op->o;
	cJSON *claims = NULL;
	char why[160] = "";
	enum gw_jwt_result r;

	if (!o->jwks) {
		wait_for(op, WAIT_JWKS);
		start_keys(o);
		if (!o->keys)
			op_finish(op, GW_OIDC_UNAVAILABLE, NULL, "cannot fetch the provider's keys");
		return;
	}
	r = gw_jwt_verify(op->id_token, strlen(op->id_token), o->jwks, &claims, why, sizeof(why));
	if (r == GW_JWT_UNKNOWN_KID && !op->refetched) {
		/* The provider may have rotated its keys since they were fetched. */
		op->refetched = true;
		wait_for(op, WAIT_JWKS);
		start_keys(o);
		if (!o->keys)
			op_finish(op, GW_OIDC_UNAVAILABLE, NULL, "cannot fetch the provider's keys");
		return;
	}
	if (r != GW_JWT_OK) {
		op_finish(op, GW_OIDC_INVALID, NULL, why[0] ? why : "the ID token does not verify");
		return;
	}
	if (!gw_jwt_check_claims(claims, o->issuer, o->cfg->provider_client_id, op->nonce,
				 (long long)time(NULL), CLOCK_LEEWAY_S, why, sizeof(why)))
		op_finish(op, GW_OIDC_INVALID, NULL, why);
	else
		op_finish(op, GW_OIDC_OK, claims, NULL);
	cJSON_Delete(claims);
}

/* Moves a sign-in on from whatever it last waited for. */
static void op_sign_in_step(struct gw_oidc_op *op)
{
	struct gw_oidc *o = op->o;

	if (!o->token_endpoint) {
		if (op->id_token || !o->discovery) {
			op_finish(op, GW_OIDC_UNAVAILABLE, NULL, "the provider's discovery failed");
			return;
		}
		wait_for(op, WAIT_DISCOVERY);
		return;
	}
	if (!op->id_token) {
		wait_for(op, WAIT_TOKEN);
		op->token_req = fetch_token(op);
		if (!op->token_req)
			op_finish(op, GW_OIDC_UNAVAILABLE, NULL, "cannot start the code exchange");
		return;
	}
	verify(op);
}

struct gw_oidc_op *gw_oidc_sign_in(struct gw_oidc *o, const char *code, const char *verifier,
				   const char *nonce, gw_oidc_sign_in_fn fn, void *arg)
{
	struct gw_oidc_op *op = op_new(o, OP_SIGN_IN, arg);

	op->sign_in_fn = fn;
	op->code = gw_xstrdup(code);
	op->verifier = gw_xstrdup(verifier);
	op->nonce = gw_xstrdup(nonce);
	wait_for(op, WAIT_DISCOVERY);
	if (o->token_endpoint) {
		wait_for(op, WAIT_TOKEN);
		op->token_req = fetch_token(op);
	} else {
		start_discovery(o);
	}
	if (!o->token_endpoint ? !o->discovery : !op->token_req)
		defer_failure(op);
	return op;
}

void gw_oidc_cancel(struct gw_oidc_op *op)
{
	if (op)
		op_free(op);
}

unsigned long gw_oidc_jwks_fetches(const struct gw_oidc *o)
{
	return o->jwks_fetches;
}
