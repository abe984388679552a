/* Unit tests for gateway/errors.c: the JSON-RPC error body a client receives is valid JSON with
 * the request's id, the error's code and its message. */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <event2/buffer.h>

#include "gateway/errors.h"
#include "tests/unit/harness.h"

static const struct gw_error *const all[] = {
	&gw_err_bad_request,         &gw_err_unauthorized,         &gw_err_user_id_required,
	&gw_err_org_key_without_user, &gw_err_origin,              &gw_err_host,
	&gw_err_not_found,           &gw_err_method,               &gw_err_timeout,
	&gw_err_too_large,           &gw_err_head_too_large,       &gw_err_not_implemented,
	&gw_err_upstream_refused,    &gw_err_upstream_unreachable, &gw_err_upstream_timeout,
	&gw_err_upstream_broken,     &gw_err_overloaded,
};

/* Writes the body of err for id_json and parses it back; NULL when it is not JSON. */
static cJSON *body_of(const struct gw_error *err, const char *id_json)
{
	struct evbuffer *b = evbuffer_new();
	size_t n;
	char *text;
	cJSON *json;

	gw_error_write_body(b, err, id_json);
	n = evbuffer_get_length(b);
	text = malloc(n + 1);
	evbuffer_remove(b, text, n);
	text[n] = '\0';
	json = cJSON_Parse(text);
	free(text);
	evbuffer_free(b);
	return json;
}

static void test_every_error_body(void)
{
	for (size_t i = 0; i < sizeof(all) / sizeof(*all); i++) {
		const struct gw_error *e = all[i];
		cJSON *j = body_of(e, "7");
		const cJSON *error = cJSON_GetObjectItemCaseSensitive(j, "error");
		const cJSON *code = cJSON_GetObjectItemCaseSensitive(error, "code");
		const cJSON *msg = cJSON_GetObjectItemCaseSensitive(error, "message");
		const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
		int before = test_failed;

		CHECK(j != NULL);
		CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "jsonrpc")), "2.0");
		CHECK(cJSON_IsNumber(id) && id->valueint == 7);
		CHECK(cJSON_IsNumber(code) && code->valueint == e->rpc_code);
		CHECK_STR(cJSON_GetStringValue(msg), e->message);
		CHECK(e->status >= 400 && e->status <= 599);
		if (test_failed > before)
			fprintf(stderr, "  error #%zu: %s\n", i, e->message);
		cJSON_Delete(j);
	}
}

static void test_ids(void)
{
	cJSON *j = body_of(&gw_err_unauthorized, NULL);

	CHECK(j != NULL && cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "id")));
	cJSON_Delete(j);
	j = body_of(&gw_err_unauthorized, "\"req-1\"");
	CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "id")), "req-1");
	cJSON_Delete(j);
}

int main(void)
{
	test_every_error_body();
	test_ids();
	TEST_REPORT();
}
