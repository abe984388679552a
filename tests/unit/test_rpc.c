/* JSON-RPC classification: what the policy sees of a body, and what the gateway refuses to
 * forward because it could not decide on it; what the audit reads of an answer (the data
 * query's scanner against cJSON's parser, on tricky and on randomly mutated texts). */
#include <stdint.h>
#include <stdlib.h>

#include "gateway/rpc.h"
#include "tests/unit/harness.h"

static const struct gw_error *parse_err(const char *body)
{
	const struct gw_error *err = NULL;
	struct gw_rpc *rpc = gw_rpc_parse(body, strlen(body), &err);

	gw_rpc_free(rpc);
	return rpc ? NULL : err;
}

static void test_refused(void)
{
	CHECK(parse_err("{\"jsonrpc\":\"2.0\",") == &gw_err_parse);
	CHECK(parse_err("") == &gw_err_parse);
	CHECK(parse_err("[]") == &gw_err_invalid);
	CHECK(parse_err("42") == &gw_err_invalid);
	CHECK(parse_err("{\"method\":\"tools/list\",\"id\":1}") == &gw_err_invalid);
	CHECK(parse_err("{\"jsonrpc\":\"1.0\",\"method\":\"x\"}") == &gw_err_invalid);
	CHECK(parse_err("{\"jsonrpc\":\"2.0\",\"method\":7}") == &gw_err_invalid);
	CHECK(parse_err("{\"jsonrpc\":\"2.0\",\"id\":{},\"method\":\"x\"}") == &gw_err_invalid);
	CHECK(parse_err("{\"jsonrpc\":\"2.0\",\"id\":1}") == &gw_err_invalid);
	CHECK(parse_err("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{}}") ==
	      &gw_err_invalid);
	CHECK(parse_err("[{\"jsonrpc\":\"2.0\",\"method\":\"a\"},3]") == &gw_err_invalid);
	CHECK(parse_err("{\"jsonrpc\":\"2.0\",\"method\":\"a\",\"params\":\"x\"}") == &gw_err_invalid);
}

static void test_classified(void)
{
	const char *body = "[{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"method\":\"tools/call\","
			   "\"params\":{\"name\":\"getData\",\"arguments\":{\"prompt\":\"p\"}}},"
			   "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"},"
			   "{\"jsonrpc\":\"2.0\",\"id\":5,\"result\":{}}]";
	const struct gw_error *err = NULL;
	struct gw_rpc *rpc = gw_rpc_parse(body, strlen(body), &err);
	char *id, *allowed;
	size_t len;

	CHECK(rpc != NULL);
	if (!rpc)
		return;
	CHECK(rpc->batch && rpc->n == 3);
	CHECK_STR(rpc->msgs[0].method, "tools/call");
	CHECK_STR(rpc->msgs[0].tool, "getData");
	CHECK_STR(cJSON_GetObjectItem(rpc->msgs[0].arguments, "prompt")->valuestring, "p");
	id = gw_rpc_id_json(rpc->msgs[0].id);
	CHECK_STR(id, "\"a\"");
	free(id);
	CHECK(rpc->msgs[1].id == NULL && rpc->msgs[1].tool == NULL);
	CHECK(rpc->msgs[2].method == NULL && rpc->msgs[2].id != NULL);
	rpc->msgs[0].denied = true;
	allowed = gw_rpc_allowed_body(rpc, &len);
	CHECK_STR(allowed, "[{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"},"
			   "{\"jsonrpc\":\"2.0\",\"id\":5,\"result\":{}}]");
	CHECK(allowed && len == strlen(allowed));
	free(allowed);
	rpc->msgs[1].denied = rpc->msgs[2].denied = true;
	CHECK(gw_rpc_allowed_body(rpc, &len) == NULL);
	gw_rpc_free(rpc);
}

static void test_error_escaped(void)
{
	cJSON *id = cJSON_CreateNumber(9);
	cJSON *e = gw_rpc_error_new(id, -32030, "tool \"x\\y\" is not allowed");
	char *s = cJSON_PrintUnformatted(e);

	CHECK_STR(s, "{\"jsonrpc\":\"2.0\",\"id\":9,\"error\":{\"code\":-32030,"
		     "\"message\":\"tool \\\"x\\\\y\\\" is not allowed\"}}");
	free(s);
	cJSON_Delete(e);
	cJSON_Delete(id);
}

/* ---- what the audit reads of an answer ---- */

/* What gw_rpc_note_answer did before it scanned: the whole text through cJSON. */
static void note_reference(struct gw_rpc_msg *m, const char *text)
{
	cJSON *data = cJSON_Parse(text), *rows;

	if (!data)
		return;
	cJSON_Delete(m->omni_query);
	m->omni_query = cJSON_DetachItemFromObjectCaseSensitive(data, "query");
	rows = cJSON_GetObjectItemCaseSensitive(data, "result");
	if (cJSON_IsArray(rows))
		m->rows = cJSON_GetArraySize(rows);
	else if (cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(rows, "rows")))
		m->rows = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(rows, "rows"));
	cJSON_Delete(data);
}

/* "untouched" when the text was not read (the sentinel query stays), else the query as
 * printed and the rows. */
static char *noted(const struct gw_rpc_msg *m)
{
	char *q = m->omni_query ? cJSON_PrintUnformatted(m->omni_query) : strdup("(none)");
	char *s = malloc(strlen(q) + 32);

	if (!s || !q)
		abort();
	sprintf(s, "%s rows=%ld", q, m->rows);
	free(q);
	return s;
}

/* Whether the scan of text notes what cJSON's parse of it notes; reports the text if not. */
static bool same_as_cjson(const char *text, size_t len)
{
	struct gw_rpc_msg got = {0}, want = {0};
	cJSON *answer = cJSON_CreateObject(), *result = cJSON_AddObjectToObject(answer, "result");
	cJSON *content = cJSON_AddArrayToObject(result, "content"), *c = cJSON_CreateObject();
	char *copy = malloc(len + 1), *a, *b;
	bool same;

	if (!copy)
		abort();
	memcpy(copy, text, len);
	copy[len] = '\0';
	cJSON_AddStringToObject(c, "type", "text");
	cJSON_AddStringToObject(c, "text", copy);
	cJSON_AddItemToArray(content, c);
	got.omni_query = cJSON_CreateString("untouched");
	want.omni_query = cJSON_CreateString("untouched");
	got.rows = want.rows = -7;
	gw_rpc_note_answer(&got, answer, true);
	note_reference(&want, copy);
	a = noted(&got);
	b = noted(&want);
	same = strcmp(a, b) == 0;
	if (!same)
		fprintf(stderr, "scan and cJSON differ on %s:\n  scan:  %s\n  cJSON: %s\n", copy, a, b);
	free(a);
	free(b);
	free(copy);
	cJSON_Delete(got.omni_query);
	cJSON_Delete(want.omni_query);
	cJSON_Delete(answer);
	return same;
}

static const char *const data_texts[] = {
	"{\"topic\":\"orders\",\"query\":{\"table\":\"orders\",\"fields\":[\"orders.month\"],"
	"\"limit\":10,\"f\":-1.5e3},\"result\":[{\"a\":1},{\"a\":2},{\"a\":3}]}",
	" \t\r\n{ \"query\" : \"q\\u00e9\\ud83d\\ude00\\n\\\"x\\/\" , \"result\" : { \"rows\" : [ 1 , 2 ] } } trailing",
	"\xEF\xBB\xBF{\"query\":null,\"result\":{\"rows\":[],\"rows\":[1]}}",
	"{\"query\":1,\"query\":2,\"result\":\"x\",\"result\":[1,2]}",
	"{\"qu\\u0065ry\":[true,false,null,0,-0,1.,1.e5,-.5,01,1E+2],\"res\\u0075lt\":[[],{}]}",
	"{\"query\\u0000x\":{\"a\":\"\\u0000b\"},\"result\":{\"rows\\u0000\":[1]}}",
	"{\"query\":\"\\uZZZZ\\u12\\\\\\\"\",\"result\":[1]}",
	"{\"query\":\"\\uA\\\\\\\\\",\"result\":[1]}",
	"{\"query\":123456789012345678901234567890123456789012345678901234567890123456789,\"result\":[]}",
	"[{\"query\":1,\"result\":[1]}]",
	"\"just a string\"",
	"-",
	"{\"query\":1e,\"result\":[1]}",
	"{\"query\":\"\\ud800\",\"result\":[1]}",
	"{\"query\":\"\\udc00\",\"result\":[1]}",
	"{\"query\":\"\\ud800\\u0041\",\"result\":[1]}",
	"{\"query\":\"\\x\",\"result\":[1]}",
	"{\"query\":{\"a\":1,},\"result\":[1]}",
	"{\"query\":[1,],\"result\":[1]}",
	"{\"query\":nul}",
	"{\"query\":{}} ",
	"{\"query\":{},",
	"{\"query\"",
	"{\"result\":{\"rows\":{\"rows\":[1]}}}",
	"",
	"   ",
	"\xEF\xBB\xBF",
};

static void test_data_answer_read(void)
{
	struct gw_rpc_msg m = {0};
	cJSON *answer = cJSON_Parse(
	    "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"isError\":true,\"content\":[{\"type\":"
	    "\"text\",\"text\":\"{\\\"query\\\":{\\\"limit\\\": 10},\\\"result\\\":[{},{}]}\"}]}}");
	char *q;

	m.rows = -1;
	gw_rpc_note_answer(&m, answer, true);
	q = cJSON_PrintUnformatted(m.omni_query);
	CHECK_STR(q, "{\"limit\":10}");
	CHECK(m.rows == 2 && m.is_error && m.rpc_error == 0);
	free(q);
	cJSON_Delete(m.omni_query);
	cJSON_Delete(answer);
	for (size_t i = 0; i < sizeof(data_texts) / sizeof(*data_texts); i++)
		CHECK(same_as_cjson(data_texts[i], strlen(data_texts[i])));
}

/* One to three random edits of buf (len bytes, at most cap): a byte replaced, inserted or
 * deleted, or the text cut; with nul, an edit may put a NUL byte in. Returns the new length. */
static size_t mutate(char *buf, size_t len, size_t cap, uint32_t *seedp, bool nul)
{
	static const char alphabet[] = "{}[]\":,\\/u0123456789abcdefABCDEF.+-eEnultrsx \t\n\x01\x7f\xef"
				       "\xbb\xbf\xc3\xa9";
	uint32_t seed = *seedp;
	int edits;

	seed = seed * 1103515245u + 12345u;
	edits = 1 + (int)((seed >> 16) % 3);
	for (int e = 0; e < edits; e++) {
		size_t at, kind;
		char c;

		seed = seed * 1103515245u + 12345u;
		kind = (seed >> 16) % 4;
		seed = seed * 1103515245u + 12345u;
		at = len ? (seed >> 8) % (len + 1) : 0;
		seed = seed * 1103515245u + 12345u;
		c = alphabet[(seed >> 16) % (sizeof(alphabet) - 1)];
		if (nul && (seed >> 8) % 50 == 0)
			c = '\0';
		if (kind == 0 && at < len) {
			buf[at] = c;
		} else if (kind == 1 && len + 1 < cap) {
			memmove(buf + at + 1, buf + at, len - at);
			buf[at] = c;
			len++;
		} else if (kind == 2 && at < len) {
			memmove(buf + at, buf + at + 1, len - at - 1);
			len--;
		} else {
			len = at;
		}
	}
	*seedp = seed;
	return len;
}

/* Random edits of the texts above: the scanner must agree with cJSON on every one. */
static void test_data_answer_mutated(void)
{
	uint32_t seed = 12345;
	char buf[512];
	int differ = 0;

	for (int round = 0; round < 40000; round++) {
		const char *base = data_texts[round % (sizeof(data_texts) / sizeof(*data_texts))];
		size_t len = strlen(base);

		memcpy(buf, base, len);
		len = mutate(buf, len, sizeof(buf), &seed, false);
		if (!same_as_cjson(buf, len) && ++differ > 5)
			break;
	}
	CHECK(differ == 0);
}

/* ---- reading whole answers without a tree ---- */

struct transcript {
	char text[8192];
	size_t len;
};

static void say(struct transcript *t, const char *what, const char *text)
{
	t->len += (size_t)snprintf(t->text + t->len, sizeof(t->text) - t->len, "%s%s|", what,
				   text ? text : "(null)");
	if (t->len >= sizeof(t->text))
		t->len = sizeof(t->text) - 1;
}

/* One message as the relay's hook reads it. */
static void say_answer(struct transcript *t, const struct gw_rpc_answer *a)
{
	char *id, num[32];

	if (a->method) {
		say(t, "method list_changed=", a->list_changed ? "1" : "0");
		return;
	}
	id = a->id ? cJSON_PrintUnformatted(a->id) : NULL;
	say(t, "id=", id);
	free(id);
	snprintf(num, sizeof(num), "%d", a->code);
	say(t, "code=", a->has_code ? num : "none");
	say(t, "is_error=", a->is_error ? "1" : "0");
	say(t, "text=", a->text);
}

static void on_read(void *arg, const struct gw_rpc_answer *a)
{
	say_answer(arg, a);
}

/* What the relay read of a message from cJSON's tree before. */
static void say_tree(struct transcript *t, cJSON *msg)
{
	const cJSON *method = cJSON_GetObjectItemCaseSensitive(msg, "method");
	const cJSON *result = cJSON_GetObjectItemCaseSensitive(msg, "result");
	const cJSON *code = cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetObjectItemCaseSensitive(msg, "error"), "code");
	struct gw_rpc_answer a = {0};
	const cJSON *c;

	if (cJSON_IsString(method)) {
		a.method = true;
		a.list_changed = strcmp(method->valuestring, "notifications/tools/list_changed") == 0;
		say_answer(t, &a);
		return;
	}
	a.id = cJSON_GetObjectItemCaseSensitive(msg, "id");
	a.has_code = cJSON_IsNumber(code);
	a.code = a.has_code ? code->valueint : 0;
	a.is_error = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(result, "isError"));
	cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(result, "content")) {
		const cJSON *text = cJSON_GetObjectItemCaseSensitive(c, "text");

		if (cJSON_IsString(text)) {
			a.text = text->valuestring;
			break;
		}
	}
	say_answer(t, &a);
}

/* Whether gw_rpc_read_answers reads body as the relay read cJSON's tree of it. */
static bool reads_as_cjson(const char *body, size_t len, bool cstring)
{
	struct transcript got = {.len = 0}, want = {.len = 0};
	cJSON *json = cstring ? cJSON_Parse(body) : cJSON_ParseWithLength(body, len), *el;
	cJSON *batch = cJSON_IsArray(json) ? json : NULL;
	bool ok = gw_rpc_read_answers(body, len, cstring, on_read, &got), same;

	say(&got, "ok=", ok ? "1" : "0");
	if (cJSON_IsObject(json))
		say_tree(&want, json);
	cJSON_ArrayForEach(el, batch)
		if (cJSON_IsObject(el))
			say_tree(&want, el);
	say(&want, "ok=", json ? "1" : "0");
	cJSON_Delete(json);
	same = strcmp(got.text, want.text) == 0;
	if (!same)
		fprintf(stderr, "reader and cJSON differ on %.*s:\n  reader: %s\n  cJSON:  %s\n",
			(int)len, body, got.text, want.text);
	return same;
}

static const char *const answer_texts[] = {
	"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"content\":[{\"type\":\"text\",\"text\":"
	"\"{\\\"query\\\":{\\\"a\\\":1},\\\"result\\\":[1,2]}\"}],\"isError\":false}}",
	"[{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"error\":{\"code\":-32602,\"message\":\"bad\"}},"
	"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"},3,\"x\",[{}],"
	"{\"id\":2.5,\"result\":{\"isError\":true,\"content\":{\"k\":{\"text\":7},\"l\":{\"text\":"
	"\"t\\u00e9\\n\"}}}}]",
	"\xEF\xBB\xBF {\"method\":\"notifications/tools/list_\\u0063hanged\",\"id\":null}",
	"{\"method\":7,\"id\":{\"x\":[1]},\"error\":{\"code\":1e10,\"code\":5},\"result\":[1]}",
	"{\"id\":null,\"error\":{\"code\":-1e400},\"result\":{\"content\":[{\"text\":\"a\\u0000b\"},"
	"{\"text\":\"c\"}],\"content\":[{\"text\":\"d\"}],\"isError\":true,\"isError\":false}}",
	"{\"id\":1,\"result\":{\"content\":[{\"text\":\"\\uD83D\\uDE00 \\\"q\\\" \\/\"}]}} trailing",
	"{\"id\":1,\"result\":{\"content\":[{\"text\":\"\\uZZZZ\\u12\\\\\\\"\"}]}}",
	"{\"id\":1,\"error\":{\"code\":\"-32000\"},\"result\":{\"content\":[]}}",
	"{\"id\":1,\"method\":\"notifications/tools/list_changed\\u0000x\"}",
	"[]",
	"{}",
	"[{\"id\":1},{\"id\":2,\"result\":{}},{\"id\":1}]",
	"{\"id\":1,\"result\":{\"content\":[{\"text\":\"\\ud800\"}]}}",
	"{\"id\":1,",
	"nul",
	"",
};

static void test_read_answers(void)
{
	uint32_t seed = 777;
	char buf[600];
	int differ = 0;

	for (size_t i = 0; i < sizeof(answer_texts) / sizeof(*answer_texts); i++) {
		CHECK(reads_as_cjson(answer_texts[i], strlen(answer_texts[i]), true));
		CHECK(reads_as_cjson(answer_texts[i], strlen(answer_texts[i]), false));
	}
	/* bytes after the value, and NUL bytes, count only without the C string's end */
	CHECK(reads_as_cjson("\xEF\xBB\xBF{}", 5, false) && reads_as_cjson("\xEF\xBB\xBF" "1", 4, false));
	CHECK(reads_as_cjson("\xEF\xBB\xBF" "1", 4, true));
	CHECK(reads_as_cjson("{\"id\":\0 1,\"result\":{\"content\":[{\"text\":\"a\0b\"}]}}", 44, false));
	for (int round = 0; round < 40000; round++) {
		const char *base = answer_texts[round % (sizeof(answer_texts) / sizeof(*answer_texts))];
		size_t len = strlen(base);
		bool cstring = round & 1;

		memcpy(buf, base, len);
		len = mutate(buf, len, sizeof(buf) - 1, &seed, !cstring);
		buf[len] = '\0';
		if (!reads_as_cjson(buf, cstring ? strlen(buf) : len, cstring) && ++differ > 5)
			break;
	}
	CHECK(differ == 0);
}

int main(void)
{
	test_refused();
	test_classified();
	test_error_escaped();
	test_data_answer_read();
	test_data_answer_mutated();
	test_read_answers();
	TEST_REPORT();
}
