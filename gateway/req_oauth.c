/* The OAuth endpoints on the main listener (docs/oauth.md): discovery documents, client
 * registration, authorize → the provider → callback, token; and the bearer step that lets an
 * access token stand for its member on the MCP endpoint. Each endpoint is a short chain of
 * store (and provider) calls; the request holds the one operation in flight. */
#include "gateway/req_internal.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "gateway/conn.h"
#include "gateway/errors.h"
#include "gateway/fetch.h"
#include "gateway/log.h"
#include "gateway/metrics.h"
#include "gateway/oauth.h"
#include "gateway/oauth_store.h"
#include "gateway/oidc.h"
#include "gateway/server.h"
#include "gateway/util.h"

#define MAX_PARAMS 12
#define SECRET_MAX 64
#define MAX_REDIRECT_URIS 10

enum endpoint {
	EP_RESOURCE_DOC,
	EP_SERVER_DOC,
	EP_REGISTER,
	EP_AUTHORIZE,
	EP_CALLBACK,
	EP_TOKEN,
	EP_BEARER,
};

struct gw_req_oauth {
	enum endpoint ep;
	struct oauth_store_op *op;
	struct gw_oidc_op *oidc;
	const char *form; /* the query string or the form body */
	size_t form_len;
	struct {
		const char *name;
		char *value;
	} params[MAX_PARAMS];
	int n_params;
	cJSON *record; /* the record read from the store (client, sign-in, code, token) */
	cJSON *reply;  /* an answer waiting for its record to be stored */
	char *redirect_uri;
	char secret[SECRET_MAX]; /* a code or state being issued */
	char access[SECRET_MAX], refresh[SECRET_MAX];
	char key[GW_OAUTH_KEY_MAX];
};

static struct gw_oauth *oauth_of(struct gw_req *r)
{
	return gw_server_oauth(gw_conn_server(r->conn));
}

static struct gw_metrics *metrics_of(struct gw_req *r)
{
	return gw_server_metrics(gw_conn_server(r->conn));
}

static struct oauth_store *store_of(struct gw_req *r)
{
	return gw_oauth_store(oauth_of(r));
}

static struct oauth_store *open_store_of(struct gw_req *r)
{
	return gw_oauth_open_store(oauth_of(r));
}

void gw_req_oauth_release(struct gw_req *r)
{
	struct gw_req_oauth *o = r->oauth;

	if (!o)
		return;
	oauth_store_cancel(o->op);
	gw_oidc_cancel(o->oidc);
	for (int i = 0; i < o->n_params; i++) {
		if (o->params[i].value)
			explicit_bzero(o->params[i].value, strlen(o->params[i].value));
		free(o->params[i].value);
	}
	cJSON_Delete(o->record);
	cJSON_Delete(o->reply);
	free(o->redirect_uri);
	explicit_bzero(o, sizeof(*o));
	free(o);
	r->oauth = NULL;
}

/* A parameter of the query string or form body, decoded; NULL when absent or empty. */
static const char *param(struct gw_req *r, const char *name)
{
	struct gw_req_oauth *o = r->oauth;
	char *v;

	for (int i = 0; i < o->n_params; i++)
		if (strcmp(o->params[i].name, name) == 0)
			return o->params[i].value;
	v = gw_form_get(o->form, o->form_len, name);
	if (v && !*v) {
		free(v);
		v = NULL;
	}
	if (o->n_params == MAX_PARAMS)
		abort(); /* the names asked for are fixed in this file: a programming error */
	o->params[o->n_params].name = name;
	o->params[o->n_params++].value = v;
	return v;
}

static const char *record_string(const cJSON *rec, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(rec, name);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool same(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

/* --- answers --- */

static void reply(struct gw_req *r, int status, const char *ctype, const char *headers,
		  struct evbuffer *body)
{
	r->status = status;
	gw_conn_write_response(r->conn, status, ctype, headers, body, r->keep_alive);
	gw_req_finish(r, true);
}

static void reply_json(struct gw_req *r, int status, const cJSON *json)
{
	struct evbuffer *body = evbuffer_new();
	char *text = cJSON_PrintUnformatted(json);

	if (!body || !text)
		abort();
	evbuffer_add(body, text, strlen(text));
	explicit_bzero(text, strlen(text)); /* it may hold tokens */
	free(text);
	reply(r, status, "application/json", "Pragma: no-cache\r\n", body);
	evbuffer_free(body);
}

/* An OAuth error answer (RFC 6749 §5.2, RFC 7591 §3.2.2). */
static void reply_error(struct gw_req *r, int status, const char *error, const char *description)
{
	cJSON *json = cJSON_CreateObject();

	cJSON_AddStringToObject(json, "error", error);
	cJSON_AddStringToObject(json, "error_description", description);
	reply_json(r, status, json);
	cJSON_Delete(json);
}

static void add_escaped(struct evbuffer *out, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '<': evbuffer_add(out, "&lt;", 4); break;
		case '>': evbuffer_add(out, "&gt;", 4); break;
		case '&': evbuffer_add(out, "&amp;", 5); break;
		case '"': evbuffer_add(out, "&quot;", 6); break;
		case '\'': evbuffer_add(out, "&#39;", 5); break;
		default: evbuffer_add(out, s, 1);
		}
	}
}

/* A page for the person in the browser, when the flow cannot go back to their client. */
static void reply_page(struct gw_req *r, int status, const char *title, const char *text,
		       const char *detail)
{
	struct evbuffer *body = evbuffer_new();

	if (!body)
		abort();
	evbuffer_add_printf(body, "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>");
	add_escaped(body, title);
	evbuffer_add_printf(body, "</title></head>\n<body><h1>");
	add_escaped(body, title);
	evbuffer_add_printf(body, "</h1>\n<p>");
	add_escaped(body, text);
	if (detail) {
		evbuffer_add_printf(body, " <b>");
		add_escaped(body, detail);
		evbuffer_add_printf(body, "</b>");
	}
	evbuffer_add_printf(body, "</p>\n</body></html>\n");
	reply(r, status, "text/html; charset=utf-8",
	      "Content-Security-Policy: default-src 'none'\r\nX-Frame-Options: DENY\r\n"
	      "Referrer-Policy: no-referrer\r\n",
	      body);
	evbuffer_free(body);
}

/* 302 to base with the parameters in q appended to its query. */
static void reply_redirect(struct gw_req *r, const char *base, struct evbuffer *q)
{
	size_t n = evbuffer_get_length(q);
	char *headers = gw_xasprintf("Location: %s%s%.*s\r\n", base, strchr(base, '?') ? "&" : "?",
				     (int)n, (const char *)evbuffer_pullup(q, -1));

	reply(r, 302, NULL, headers, NULL);
	explicit_bzero(headers, strlen(headers));
	free(headers);
}

/* Back to the client's redirect URI with an OAuth error (RFC 6749 §4.1.2.1, RFC 9207). */
static void redirect_error(struct gw_req *r, const char *error, const char *description,
			   const char *state)
{
	struct evbuffer *q = evbuffer_new();

	if (!q)
		abort();
	gw_form_add(q, "error", error);
	gw_form_add(q, "error_description", description);
	if (state)
		gw_form_add(q, "state", state);
	gw_form_add(q, "iss", r->cfg->oauth.public_url);
	reply_redirect(r, r->oauth->redirect_uri, q);
	evbuffer_free(q);
}

static void page_store_down(struct gw_req *r);
static void error_store_down(struct gw_req *r);

/* The start of every store callback: the operation is over; false after answering an outage
 * (with a page for the browser, or an OAuth error for a client). */
static bool stored(struct gw_req *r, enum oauth_store_status st, bool page)
{
	r->oauth->op = NULL;
	if (st == OAUTH_STORE_OK)
		return true;
	if (page)
		page_store_down(r);
	else
		error_store_down(r);
	return false;
}

static void page_store_down(struct gw_req *r)
{
	reply_page(r, 503, "Sign-in is unavailable",
		   "The gateway cannot reach its state store (Redis) right now. Try again in a "
		   "minute; if it persists, tell the gateway's operator.",
		   NULL);
}

static void error_store_down(struct gw_req *r)
{
	reply_error(r, 503, "temporarily_unavailable",
		    "the gateway's state store (Redis) is unreachable; retry shortly");
}

/* --- discovery (RFC 9728, RFC 8414) --- */

static cJSON *string_array(const char *const *items)
{
	cJSON *a = cJSON_CreateArray();

	for (; *items; items++)
		cJSON_AddItemToArray(a, cJSON_CreateString(*items));
	return a;
}

static void protected_resource(struct gw_req *r)
{
	const struct gw_oauth_config *c = &r->cfg->oauth;
	cJSON *doc = cJSON_CreateObject();
	const char *servers[] = {c->public_url, NULL}, *scopes[] = {GW_OAUTH_SCOPE, NULL};
	const char *methods[] = {"header", NULL};

	cJSON_AddStringToObject(doc, "resource", c->resource);
	cJSON_AddItemToObject(doc, "authorization_servers", string_array(servers));
	cJSON_AddItemToObject(doc, "scopes_supported", string_array(scopes));
	cJSON_AddItemToObject(doc, "bearer_methods_supported", string_array(methods));
	cJSON_AddStringToObject(doc, "resource_name", "omni-mcp-gateway");
	reply_json(r, 200, doc);
	cJSON_Delete(doc);
}

static void authorization_server(struct gw_req *r)
{
	const char *base = r->cfg->oauth.public_url;
	cJSON *doc = cJSON_CreateObject();
	char *url;
	const char *code[] = {"code", NULL}, *grants[] = {"authorization_code", "refresh_token", NULL};
	const char *s256[] = {"S256", NULL}, *none[] = {"none", NULL};
	const char *scopes[] = {GW_OAUTH_SCOPE, NULL};

	cJSON_AddStringToObject(doc, "issuer", base);
	url = gw_xasprintf("%s/oauth/authorize", base);
	cJSON_AddStringToObject(doc, "authorization_endpoint", url);
	free(url);
	url = gw_xasprintf("%s/oauth/token", base);
	cJSON_AddStringToObject(doc, "token_endpoint", url);
	free(url);
	url = gw_xasprintf("%s/oauth/register", base);
	cJSON_AddStringToObject(doc, "registration_endpoint", url);
	free(url);
	cJSON_AddItemToObject(doc, "response_types_supported", string_array(code));
	cJSON_AddItemToObject(doc, "grant_types_supported", string_array(grants));
	cJSON_AddItemToObject(doc, "code_challenge_methods_supported", string_array(s256));
	cJSON_AddItemToObject(doc, "token_endpoint_auth_methods_supported", string_array(none));
	cJSON_AddItemToObject(doc, "scopes_supported", string_array(scopes));
	cJSON_AddBoolToObject(doc, "authorization_response_iss_parameter_supported", true);
	reply_json(r, 200, doc);
	cJSON_Delete(doc);
}

/* --- registration (RFC 7591) --- */

static void on_registered(void *arg, enum oauth_store_status st, const char *val, size_t len)
{
	struct gw_req *r = arg;

	(void)val;
	(void)len;
	r->oauth->op = NULL;
	if (st != OAUTH_STORE_OK)
		error_store_down(r);
	else
		reply_json(r, 201, r->oauth->reply);
}

/* Every value of a metadata array is one of allowed. */
static bool only(const cJSON *arr, const char *const *allowed)
{
	const cJSON *v;

	if (!arr)
		return true;
	if (!cJSON_IsArray(arr))
		return false;
	cJSON_ArrayForEach(v, arr) {
		const char *const *a = allowed;

		while (*a && !(cJSON_IsString(v) && strcmp(v->valuestring, *a) == 0))
			a++;
		if (!*a)
			return false;
	}
	return true;
}

/* The client's redirect URIs, checked; NULL after answering the error. */
static cJSON *registered_uris(struct gw_req *r, const cJSON *meta)
{
	const cJSON *uris = cJSON_GetObjectItemCaseSensitive(meta, "redirect_uris"), *u;
	cJSON *out;

	if (!cJSON_IsArray(uris) || cJSON_GetArraySize(uris) == 0 ||
	    cJSON_GetArraySize(uris) > MAX_REDIRECT_URIS) {
		reply_error(r, 400, "invalid_redirect_uri",
			    "redirect_uris must list 1 to 10 redirect URIs");
		return NULL;
	}
	cJSON_ArrayForEach(u, uris) {
		if (!cJSON_IsString(u) || !gw_oauth_redirect_allowed(&r->cfg->oauth, u->valuestring)) {
			reply_error(r, 400, "invalid_redirect_uri",
				    "a redirect URI must be http on a loopback address, or one the "
				    "gateway's operator listed in oauth.redirect_uris");
			return NULL;
		}
	}
	out = cJSON_Duplicate(uris, true);
	if (!out)
		abort();
	return out;
}

static void do_register(struct gw_req *r)
{
	static const char *const grants[] = {"authorization_code", "refresh_token", NULL};
	static const char *const codes[] = {"code", NULL};
	size_t len = evbuffer_get_length(r->body);
	cJSON *meta = cJSON_ParseWithLength((const char *)evbuffer_pullup(r->body, -1), len);
	const cJSON *name = cJSON_GetObjectItemCaseSensitive(meta, "client_name");
	cJSON *uris, *rec, *out;
	char client_id[SECRET_MAX];
	char *text;

	if (!cJSON_IsObject(meta)) {
		reply_error(r, 400, "invalid_client_metadata", "the body must be a JSON object");
		goto done;
	}
	if (!only(cJSON_GetObjectItemCaseSensitive(meta, "grant_types"), grants) ||
	    !only(cJSON_GetObjectItemCaseSensitive(meta, "response_types"), codes)) {
		reply_error(r, 400, "invalid_client_metadata",
			    "only the authorization_code and refresh_token grants with response "
			    "type code are supported");
		goto done;
	}
	if (!(uris = registered_uris(r, meta)))
		goto done;
	gw_oauth_secret_new(client_id, sizeof(client_id), "gwc_");
	rec = cJSON_CreateObject();
	cJSON_AddItemToObject(rec, "redirect_uris", uris);
	if (cJSON_IsString(name)) {
		char *shown = gw_xstrndup(name->valuestring, 100);

		cJSON_AddStringToObject(rec, "client_name", shown);
		free(shown);
	}
	/* The answer repeats the metadata as the gateway holds it (RFC 7591 §3.2.1): a public
	 * client of both grants, whatever it asked for. */
	out = cJSON_Duplicate(rec, true);
	cJSON_AddStringToObject(out, "client_id", client_id);
	cJSON_AddNumberToObject(out, "client_id_issued_at", (double)time(NULL));
	cJSON_AddStringToObject(out, "token_endpoint_auth_method", "none");
	cJSON_AddItemToObject(out, "grant_types", string_array(grants));
	cJSON_AddItemToObject(out, "response_types", string_array(codes));
	r->oauth->reply = out;
	text = cJSON_PrintUnformatted(rec);
	snprintf(r->oauth->key, sizeof(r->oauth->key), "client:%s", client_id);
	r->oauth->op = oauth_store_put(open_store_of(r), r->oauth->key, text, strlen(text),
				       r->cfg->oauth.client_ttl_s, on_registered, r);
	gw_info("req=%s oauth: client registered (%s)", r->id,
		cJSON_IsString(name) ? "named" : "unnamed");
	free(text);
	cJSON_Delete(rec);
done:
	cJSON_Delete(meta);
}

/* --- authorize: check the client's request, then send the browser to the provider --- */

static void on_pending_stored(void *arg, enum oauth_store_status st, const char *val, size_t len)
{
	struct gw_req *r = arg;
	const struct gw_oauth_config *c = &r->cfg->oauth;
	const cJSON *rec = r->oauth->record;
	struct evbuffer *q;
	char *callback, challenge[44];

	(void)val;
	(void)len;
	if (!stored(r, st, true))
		return;
	q = evbuffer_new();
	if (!q)
		abort();
	callback = gw_xasprintf("%s/oauth/callback", c->public_url);
	gw_oauth_challenge_of(record_string(rec, "verifier"), challenge);
	gw_form_add(q, "response_type", "code");
	gw_form_add(q, "client_id", c->provider_client_id);
	gw_form_add(q, "redirect_uri", callback);
	gw_form_add(q, "scope", c->provider_scopes);
	gw_form_add(q, "state", r->oauth->secret);
	gw_form_add(q, "nonce", record_string(rec, "nonce"));
	gw_form_add(q, "code_challenge", challenge);
	gw_form_add(q, "code_challenge_method", "S256");
	reply_redirect(r, gw_oidc_authorization_endpoint(gw_oauth_oidc(oauth_of(r))), q);
	evbuffer_free(q);
	free(callback);
}

/* The provider is known: remember this sign-in under a fresh state, then redirect. */
static void start_sign_in(struct gw_req *r)
{
	struct gw_req_oauth *o = r->oauth;
	char nonce[SECRET_MAX], verifier[SECRET_MAX];
	const char *state = param(r, "state"), *resource = param(r, "resource");
	cJSON *rec = cJSON_CreateObject();
	char *text;

	gw_oauth_secret_new(o->secret, sizeof(o->secret), "");
	gw_oauth_secret_new(nonce, sizeof(nonce), "");
	gw_oauth_secret_new(verifier, sizeof(verifier), "");
	cJSON_AddStringToObject(rec, "client_id", param(r, "client_id"));
	cJSON_AddStringToObject(rec, "redirect_uri", o->redirect_uri);
	if (state)
		cJSON_AddStringToObject(rec, "state", state);
	cJSON_AddStringToObject(rec, "challenge", param(r, "code_challenge"));
	cJSON_AddStringToObject(rec, "resource", resource ? resource : r->cfg->oauth.resource);
	cJSON_AddStringToObject(rec, "nonce", nonce);
	cJSON_AddStringToObject(rec, "verifier", verifier);
	cJSON_Delete(o->record);
	o->record = rec;
	text = cJSON_PrintUnformatted(rec);
	gw_oauth_key(o->key, "signin:", o->secret);
	o->op = oauth_store_put(open_store_of(r), o->key, text, strlen(text), GW_OAUTH_PENDING_TTL_S,
				on_pending_stored, r);
	explicit_bzero(text, strlen(text));
	free(text);
	explicit_bzero(verifier, sizeof(verifier));
}

static void on_provider_ready(void *arg, const char *authorization_endpoint)
{
	struct gw_req *r = arg;

	r->oauth->oidc = NULL;
	if (!authorization_endpoint)
		reply_page(r, 502, "Sign-in is unavailable",
			   "The gateway cannot reach the team's identity provider. Try again in a "
			   "minute; if it persists, tell the gateway's operator.",
			   NULL);
	else
		start_sign_in(r);
}

/* The redirect URI the request names, when the client registered it exactly; NULL otherwise.
 * Without one, a client that registered a single URI means that one. */
static const char *choose_redirect(struct gw_req *r, const cJSON *client)
{
	const cJSON *uris = cJSON_GetObjectItemCaseSensitive(client, "redirect_uris"), *u;
	const char *asked = param(r, "redirect_uri");

	if (!asked)
		return cJSON_GetArraySize(uris) == 1 && cJSON_IsString(uris->child)
			       ? uris->child->valuestring
			       : NULL;
	cJSON_ArrayForEach(u, uris)
		if (cJSON_IsString(u) && strcmp(u->valuestring, asked) == 0)
			return u->valuestring;
	return NULL;
}

static void on_authorize_client(void *arg, enum oauth_store_status st, const char *val,
				size_t len)
{
	struct gw_req *r = arg;
	struct gw_req_oauth *o = r->oauth;
	const char *state = param(r, "state"), *resource = param(r, "resource");
	const char *method = param(r, "code_challenge_method"), *redirect;
	const char *challenge = param(r, "code_challenge");
	cJSON *client;

	if (!stored(r, st, true))
		return;
	client = val ? cJSON_ParseWithLength(val, len) : NULL;
	redirect = client ? choose_redirect(r, client) : NULL;
	if (!redirect) {
		/* Never redirect to a URI the client did not register: answer the browser. */
		reply_page(r, 400, "Sign-in request refused",
			   client ? "The redirect_uri is not one this client registered."
				  : "This client is not registered with the gateway (or its "
				    "registration expired): restart the sign-in from your MCP client.",
			   NULL);
		cJSON_Delete(client);
		return;
	}
	o->redirect_uri = gw_xstrdup(redirect);
	cJSON_Delete(client);
	if (!same(param(r, "response_type"), "code"))
		redirect_error(r, "unsupported_response_type", "response_type must be code", state);
	else if (!challenge || !gw_oauth_challenge_valid(challenge) || !same(method, "S256"))
		redirect_error(r, "invalid_request",
			       "PKCE is required: code_challenge with code_challenge_method S256",
			       state);
	else if (resource && !same(resource, r->cfg->oauth.resource))
		redirect_error(r, "invalid_target", "resource must be this gateway's MCP endpoint",
			       state);
	else if (gw_oidc_authorization_endpoint(gw_oauth_oidc(oauth_of(r))))
		start_sign_in(r);
	else
		o->oidc = gw_oidc_wait_ready(gw_oauth_oidc(oauth_of(r)), on_provider_ready, r);
}

static void do_authorize(struct gw_req *r)
{
	const char *client_id = param(r, "client_id");

	if (!client_id || strlen(client_id) > SECRET_MAX) {
		reply_page(r, 400, "Sign-in request refused",
			   "The request names no registered client_id: restart the sign-in from "
			   "your MCP client.",
			   NULL);
		return;
	}
	snprintf(r->oauth->key, sizeof(r->oauth->key), "client:%s", client_id);
	r->oauth->op = oauth_store_get(open_store_of(r), r->oauth->key, on_authorize_client, r);
}

/* --- callback: the provider sends the browser back --- */

static void on_code_stored(void *arg, enum oauth_store_status st, const char *val, size_t len)
{
	struct gw_req *r = arg;
	struct evbuffer *q;
	const char *state = record_string(r->oauth->record, "state");

	(void)val;
	(void)len;
	if (!stored(r, st, true))
		return;
	q = evbuffer_new();
	if (!q)
		abort();
	gw_form_add(q, "code", r->oauth->secret);
	if (state)
		gw_form_add(q, "state", state);
	gw_form_add(q, "iss", r->cfg->oauth.public_url);
	reply_redirect(r, r->oauth->redirect_uri, q);
	evbuffer_free(q);
}

static void on_signed_in(void *arg, enum gw_oidc_result result, const cJSON *claims,
			 const char *why)
{
	struct gw_req *r = arg;
	struct gw_req_oauth *o = r->oauth;
	const struct gw_member *m;
	const char *who, *refused;
	cJSON *code;
	char *text;

	o->oidc = NULL;
	if (result != GW_OIDC_OK) {
		gw_metrics_sign_in(metrics_of(r), result == GW_OIDC_INVALID ? GW_SIGN_IN_INVALID
									     : GW_SIGN_IN_PROVIDER);
		gw_warn("req=%s oauth: sign-in failed: %s", r->id, why);
		reply_page(r, 502, "Sign-in failed",
			   result == GW_OIDC_INVALID
				   ? "The identity provider's answer could not be verified, so the "
				     "gateway did not sign you in. Tell the gateway's operator."
				   : "The gateway could not complete the sign-in with the identity "
				     "provider. Start again from your MCP client.",
			   NULL);
		return;
	}
	m = gw_oauth_member_of(r->cfg, claims, &who, &refused);
	if (!m) {
		gw_metrics_sign_in(metrics_of(r), GW_SIGN_IN_NO_MEMBER);
		gw_info("req=%s oauth: sign-in refused: %s", r->id,
			refused ? refused : "no member entry for this person");
		reply_page(r, 403, "No access through this gateway",
			   refused ? refused
				   : "You signed in, but no member of this gateway signs in as",
			   refused ? NULL : who);
		return;
	}
	code = cJSON_CreateObject();
	cJSON_AddStringToObject(code, "client_id", record_string(o->record, "client_id"));
	cJSON_AddStringToObject(code, "redirect_uri", o->redirect_uri);
	cJSON_AddStringToObject(code, "challenge", record_string(o->record, "challenge"));
	cJSON_AddStringToObject(code, "resource", record_string(o->record, "resource"));
	cJSON_AddStringToObject(code, "member", m->name);
	cJSON_AddStringToObject(code, "sign_in", m->sign_in);
	text = cJSON_PrintUnformatted(code);
	cJSON_Delete(code);
	gw_oauth_secret_new(o->secret, sizeof(o->secret), "");
	gw_oauth_key(o->key, "code:", o->secret);
	o->op = oauth_store_put(store_of(r), o->key, text, strlen(text), r->cfg->oauth.code_ttl_s,
				on_code_stored, r);
	free(text);
	gw_metrics_sign_in(metrics_of(r), GW_SIGN_IN_OK);
	gw_info("req=%s member=%s oauth: signed in", r->id, m->name);
}

static void on_callback_pending(void *arg, enum oauth_store_status st, const char *val,
				size_t len)
{
	struct gw_req *r = arg;
	struct gw_req_oauth *o = r->oauth;
	const char *code = param(r, "code");

	if (!stored(r, st, true))
		return;
	o->record = val ? cJSON_ParseWithLength(val, len) : NULL;
	if (!record_string(o->record, "redirect_uri") || !record_string(o->record, "verifier")) {
		reply_page(r, 400, "Sign-in expired",
			   "This sign-in was already completed or has expired: start again from your "
			   "MCP client.",
			   NULL);
		return;
	}
	o->redirect_uri = gw_xstrdup(record_string(o->record, "redirect_uri"));
	if (param(r, "error") || !code) {
		redirect_error(r, "access_denied", "the sign-in at the identity provider did not complete",
			       record_string(o->record, "state"));
		return;
	}
	o->oidc = gw_oidc_sign_in(gw_oauth_oidc(oauth_of(r)), code,
				  record_string(o->record, "verifier"),
				  record_string(o->record, "nonce"), on_signed_in, r);
}

static void do_callback(struct gw_req *r)
{
	const char *state = param(r, "state");

	if (!state) {
		reply_page(r, 400, "Sign-in request refused",
			   "The identity provider's answer carries no state: start again from your "
			   "MCP client.",
			   NULL);
		return;
	}
	gw_oauth_key(r->oauth->key, "signin:", state);
	r->oauth->op = oauth_store_take(open_store_of(r), r->oauth->key, on_callback_pending, r);
}

/* --- token: codes and refresh tokens become access tokens --- */

static void on_refresh_stored(void *arg, enum oauth_store_status st, const char *val,
			      size_t len)
{
	struct gw_req *r = arg;
	struct gw_req_oauth *o = r->oauth;
	cJSON *out;

	(void)val;
	(void)len;
	if (!stored(r, st, false))
		return;
	gw_metrics_tokens_issued(metrics_of(r), !same(param(r, "grant_type"), "authorization_code"));
	out = cJSON_CreateObject();
	cJSON_AddStringToObject(out, "access_token", o->access);
	cJSON_AddStringToObject(out, "token_type", "Bearer");
	cJSON_AddNumberToObject(out, "expires_in", (double)r->cfg->oauth.access_token_ttl_s);
	cJSON_AddStringToObject(out, "refresh_token", o->refresh);
	cJSON_AddStringToObject(out, "scope", GW_OAUTH_SCOPE);
	reply_json(r, 200, out);
	cJSON_Delete(out);
}

static void on_access_stored(void *arg, enum oauth_store_status st, const char *val, size_t len)
{
	struct gw_req *r = arg;
	struct gw_req_oauth *o = r->oauth;
	cJSON *rec;
	char *text;

	(void)val;
	(void)len;
	if (!stored(r, st, false))
		return;
	rec = cJSON_CreateObject();
	cJSON_AddStringToObject(rec, "member", record_string(o->record, "member"));
	cJSON_AddStringToObject(rec, "sign_in", record_string(o->record, "sign_in"));
	cJSON_AddStringToObject(rec, "client_id", record_string(o->record, "client_id"));
	cJSON_AddStringToObject(rec, "resource", record_string(o->record, "resource"));
	text = cJSON_PrintUnformatted(rec);
	cJSON_Delete(rec);
	gw_oauth_secret_new(o->refresh, sizeof(o->refresh), GW_OAUTH_REFRESH_PREFIX);
	gw_oauth_key(o->key, "refresh:", o->refresh);
	o->op = oauth_store_put(store_of(r), o->key, text, strlen(text),
				r->cfg->oauth.refresh_token_ttl_s, on_refresh_stored, r);
	free(text);
}

/* The grant checked out: a new access token and a new refresh token for the member of
 * o->record (a code or the refresh token just used up). */
static void issue_tokens(struct gw_req *r)
{
	struct gw_req_oauth *o = r->oauth;
	long ttl = r->cfg->oauth.access_token_ttl_s;
	cJSON *rec = cJSON_CreateObject();
	char *text;

	cJSON_AddStringToObject(rec, "member", record_string(o->record, "member"));
	cJSON_AddStringToObject(rec, "sign_in", record_string(o->record, "sign_in"));
	cJSON_AddStringToObject(rec, "client_id", record_string(o->record, "client_id"));
	cJSON_AddStringToObject(rec, "aud", r->cfg->oauth.resource);
	cJSON_AddNumberToObject(rec, "exp", (double)(time(NULL) + ttl));
	text = cJSON_PrintUnformatted(rec);
	cJSON_Delete(rec);
	gw_oauth_secret_new(o->access, sizeof(o->access), GW_OAUTH_ACCESS_PREFIX);
	gw_oauth_key(o->key, "access:", o->access);
	o->op = oauth_store_put(store_of(r), o->key, text, strlen(text), ttl, on_access_stored, r);
	free(text);
	gw_info("req=%s member=%s oauth: tokens issued (%s)", r->id,
		record_string(o->record, "member"), param(r, "grant_type"));
}

/* The code or refresh token, now used up, is checked against the request. */
static void on_grant(void *arg, enum oauth_store_status st, const char *val, size_t len)
{
	struct gw_req *r = arg;
	struct gw_req_oauth *o = r->oauth;
	bool by_code = same(param(r, "grant_type"), "authorization_code");
	const char *resource = param(r, "resource");

	if (!stored(r, st, false))
		return;
	cJSON_Delete(o->record);
	o->record = val ? cJSON_ParseWithLength(val, len) : NULL;
	if (!record_string(o->record, "member"))
		reply_error(r, 400, "invalid_grant",
			    by_code ? "the code is unknown, used or expired"
				    : "the refresh token is unknown, used or expired");
	else if (!same(record_string(o->record, "client_id"), param(r, "client_id")))
		reply_error(r, 400, "invalid_grant", "the grant was issued to another client");
	else if (by_code && !same(record_string(o->record, "redirect_uri"), param(r, "redirect_uri")))
		reply_error(r, 400, "invalid_grant", "redirect_uri differs from the authorization's");
	else if (by_code && !gw_oauth_pkce_ok(param(r, "code_verifier"),
					      record_string(o->record, "challenge")))
		reply_error(r, 400, "invalid_grant", "code_verifier does not match the code_challenge");
	else if (resource && !same(resource, record_string(o->record, "resource")))
		reply_error(r, 400, "invalid_target", "resource differs from the authorization's");
	else if (!gw_oauth_member_named(r->cfg, record_string(o->record, "member"),
					record_string(o->record, "sign_in")))
		reply_error(r, 400, "invalid_grant", "this member may no longer sign in");
	else
		issue_tokens(r);
}

static void on_token_client(void *arg, enum oauth_store_status st, const char *val, size_t len)
{
	struct gw_req *r = arg;
	struct gw_req_oauth *o = r->oauth;
	bool by_code = same(param(r, "grant_type"), "authorization_code");
	const char *secret = param(r, by_code ? "code" : "refresh_token");

	(void)len;
	if (!stored(r, st, false))
		return;
	if (!val) {
		reply_error(r, 401, "invalid_client", "unknown client_id: register the client again");
		return;
	}
	gw_oauth_key(o->key, by_code ? "code:" : "refresh:", secret);
	o->op = oauth_store_take(store_of(r), o->key, on_grant, r);
}

static void do_token(struct gw_req *r)
{
	const char *type = gw_http_header(&r->head, "content-type");
	const char *grant = param(r, "grant_type"), *client_id = param(r, "client_id");
	const char *resource = param(r, "resource");
	bool by_code = same(grant, "authorization_code");

	if (!type || strncasecmp(type, "application/x-www-form-urlencoded", 33) != 0)
		reply_error(r, 400, "invalid_request",
			    "send the parameters as application/x-www-form-urlencoded");
	else if (!grant)
		reply_error(r, 400, "invalid_request", "grant_type is missing");
	else if (!by_code && !same(grant, "refresh_token"))
		reply_error(r, 400, "unsupported_grant_type",
			    "grant_type must be authorization_code or refresh_token");
	else if (!client_id || strlen(client_id) > SECRET_MAX)
		reply_error(r, 400, "invalid_request", "client_id is missing");
	else if (by_code && (!param(r, "code") || !param(r, "code_verifier") ||
			     !param(r, "redirect_uri")))
		reply_error(r, 400, "invalid_request",
			    "code, code_verifier and redirect_uri are required");
	else if (!by_code && !param(r, "refresh_token"))
		reply_error(r, 400, "invalid_request", "refresh_token is missing");
	else if (resource && !same(resource, r->cfg->oauth.resource))
		reply_error(r, 400, "invalid_target", "resource must be this gateway's MCP endpoint");
	else {
		snprintf(r->oauth->key, sizeof(r->oauth->key), "client:%s", client_id);
		r->oauth->op = oauth_store_get(open_store_of(r), r->oauth->key, on_token_client, r);
	}
}

/* --- the routes --- */

static struct gw_req_oauth *context_new(struct gw_req *r, enum endpoint ep)
{
	struct gw_req_oauth *o = gw_xcalloc(1, sizeof(*o));
	const char *q = strchr(r->head.target, '?');

	o->ep = ep;
	if (ep == EP_TOKEN) {
		o->form_len = evbuffer_get_length(r->body);
		o->form = o->form_len ? (const char *)evbuffer_pullup(r->body, -1) : "";
	} else if (q) {
		o->form = q + 1;
		o->form_len = strcspn(o->form, "#");
	} else {
		o->form = "";
	}
	r->oauth = o;
	return o;
}

static bool path_is(const char *target, const char *path)
{
	size_t n = strlen(path);

	return strncmp(target, path, n) == 0 && (target[n] == '\0' || target[n] == '?');
}

bool gw_req_oauth_start(struct gw_req *r)
{
	const struct gw_oauth_config *c = &r->cfg->oauth;
	const char *t = r->head.target, *m = r->head.method;
	const char *prm = "/.well-known/oauth-protected-resource";
	bool get = strcmp(m, "GET") == 0, post = strcmp(m, "POST") == 0;
	enum endpoint ep;

	if (!c->public_url || (strncmp(t, "/.well-known/", 13) != 0 && strncmp(t, "/oauth/", 7) != 0))
		return false;
	if (path_is(t, prm) || (strncmp(t, prm, strlen(prm)) == 0 &&
				path_is(t + strlen(prm), r->cfg->mcp_path)))
		ep = EP_RESOURCE_DOC;
	else if (path_is(t, "/.well-known/oauth-authorization-server"))
		ep = EP_SERVER_DOC;
	else if (path_is(t, "/oauth/register"))
		ep = EP_REGISTER;
	else if (path_is(t, "/oauth/authorize"))
		ep = EP_AUTHORIZE;
	else if (path_is(t, "/oauth/callback"))
		ep = EP_CALLBACK;
	else if (path_is(t, "/oauth/token"))
		ep = EP_TOKEN;
	else
		return false;
	context_new(r, ep);
	if (ep == EP_REGISTER || ep == EP_TOKEN ? !post : !get)
		reply(r, 405, NULL, ep == EP_REGISTER || ep == EP_TOKEN ? "Allow: POST\r\n"
									  : "Allow: GET\r\n",
		      NULL);
	else if (ep == EP_RESOURCE_DOC)
		protected_resource(r);
	else if (ep == EP_SERVER_DOC)
		authorization_server(r);
	else if (ep == EP_REGISTER) {
		do_register(r);
	} else if (ep == EP_AUTHORIZE) {
		do_authorize(r);
	} else if (ep == EP_CALLBACK) {
		do_callback(r);
	} else {
		do_token(r);
	}
	return true;
}

/* --- the bearer step on the MCP endpoint --- */

/* The member an access token's record names, if it still may run: NULL otherwise. */
static const struct gw_member *member_of_record(struct gw_req *r, const char *val, size_t len,
						long *ttl_left)
{
	cJSON *rec = cJSON_ParseWithLength(val, len);
	const cJSON *exp = cJSON_GetObjectItemCaseSensitive(rec, "exp");
	const struct gw_member *m = NULL;

	*ttl_left = cJSON_IsNumber(exp) ? (long)(exp->valuedouble - (double)time(NULL)) : 0;
	/* The audience: a token another gateway issued into a shared Redis is not for this one. */
	if (*ttl_left > 0 && same(record_string(rec, "aud"), r->cfg->oauth.resource))
		m = gw_oauth_member_named(r->cfg, record_string(rec, "member"),
					  record_string(rec, "sign_in"));
	cJSON_Delete(rec);
	return m;
}

static void on_access_token(void *arg, enum oauth_store_status st, const char *val, size_t len)
{
	struct gw_req *r = arg;
	long ttl;

	r->oauth->op = NULL;
	if (st != OAUTH_STORE_OK) {
		gw_req_oauth_release(r);
		gw_req_respond_error(r, &gw_err_token_store);
		return;
	}
	r->member = val ? member_of_record(r, val, len, &ttl) : NULL;
	if (r->member)
		gw_oauth_token_keep(oauth_of(r), r->oauth->key, val, len, ttl);
	gw_req_oauth_release(r);
	if (!r->member)
		gw_req_respond_error(r, &gw_err_invalid_token);
	else
		gw_req_run_authenticated(r);
}

const struct gw_error *gw_req_oauth_authenticate(struct gw_req *r)
{
	const char *auth = gw_http_header(&r->head, "authorization"), *token, *val;
	struct gw_req_oauth *o;
	size_t len;
	long ttl;

	if (!r->cfg->oauth.public_url || !auth || strncasecmp(auth, "Bearer ", 7) != 0)
		return &gw_err_unauthorized;
	token = auth + 7 + strspn(auth + 7, " ");
	if (strncmp(token, GW_OAUTH_ACCESS_PREFIX, strlen(GW_OAUTH_ACCESS_PREFIX)) != 0)
		return &gw_err_invalid_token;
	o = context_new(r, EP_BEARER);
	gw_oauth_key(o->key, "access:", token);
	val = gw_oauth_token_cached(oauth_of(r), o->key, &len);
	if (val) {
		r->member = member_of_record(r, val, len, &ttl);
		gw_req_oauth_release(r);
		return r->member ? NULL : &gw_err_invalid_token;
	}
	o->op = oauth_store_get(store_of(r), o->key, on_access_token, r);
	return &gw_req_later;
}
