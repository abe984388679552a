/* JSON-RPC 2.0 message classification for the policy, cache and audit steps, and what the audit
 * reads of Omni's answers, read without building a tree. */
#include "gateway/rpc.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Fills m from its JSON; false when the element is not a JSON-RPC 2.0 message. */
static bool classify(cJSON *json, struct gw_rpc_msg *m)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(json, "jsonrpc");
	const cJSON *method, *params, *id;

	memset(m, 0, sizeof(*m));
	m->json = json;
	m->rows = -1;
	if (!cJSON_IsObject(json) || !cJSON_IsString(v) || strcmp(v->valuestring, "2.0") != 0)
		return false;
	id = cJSON_GetObjectItemCaseSensitive(json, "id");
	if (id && !cJSON_IsNumber(id) && !cJSON_IsString(id) && !cJSON_IsNull(id))
		return false;
	m->id = id;
	method = cJSON_GetObjectItemCaseSensitive(json, "method");
	if (!method) /* a response: the client answers a server's request */
		return cJSON_HasObjectItem(json, "result") || cJSON_HasObjectItem(json, "error");
	if (!cJSON_IsString(method))
		return false;
	m->method = method->valuestring;
	params = cJSON_GetObjectItemCaseSensitive(json, "params");
	if (params && !cJSON_IsObject(params) && !cJSON_IsArray(params))
		return false;
	if (strcmp(m->method, "tools/call") == 0) {
		const cJSON *name = cJSON_GetObjectItemCaseSensitive(params, "name");

		if (!cJSON_IsString(name))
			return false;
		m->tool = name->valuestring;
		m->arguments = cJSON_GetObjectItemCaseSensitive(params, "arguments");
	} else if (strcmp(m->method, "resources/read") == 0 || strcmp(m->method, "prompts/get") == 0) {
		const cJSON *name = cJSON_GetObjectItemCaseSensitive(
		    params, m->method[0] == 'r' ? "uri" : "name");

		m->name = cJSON_IsString(name) ? name->valuestring : NULL;
	}
	return true;
}

struct gw_rpc *gw_rpc_parse(const char *body, size_t len, const struct gw_error **err)
{
	struct gw_rpc *rpc = calloc(1, sizeof(*rpc));
	cJSON *el;
	size_t i = 0;

	if (!rpc)
		abort();
	rpc->doc = cJSON_ParseWithLength(body, len);
	if (!rpc->doc) {
		*err = &gw_err_parse;
		goto fail;
	}
	rpc->batch = cJSON_IsArray(rpc->doc);
	rpc->n = rpc->batch ? (size_t)cJSON_GetArraySize(rpc->doc) : 1;
	*err = &gw_err_invalid;
	if (rpc->n == 0)
		goto fail;
	rpc->msgs = calloc(rpc->n, sizeof(*rpc->msgs));
	if (!rpc->msgs)
		abort();
	if (!rpc->batch) {
		if (!classify(rpc->doc, &rpc->msgs[0]))
			goto fail;
		return rpc;
	}
	cJSON_ArrayForEach(el, rpc->doc) {
		if (!classify(el, &rpc->msgs[i++]))
			goto fail;
	}
	return rpc;
fail:
	gw_rpc_free(rpc);
	return NULL;
}

void gw_rpc_free(struct gw_rpc *rpc)
{
	if (!rpc)
		return;
	for (size_t i = 0; rpc->msgs && i < rpc->n; i++)
		cJSON_Delete(rpc->msgs[i].omni_query);
	cJSON_Delete(rpc->doc);
	free(rpc->msgs);
	free(rpc);
}

char *gw_rpc_id_json(const cJSON *id)
{
	char *s = id ? cJSON_PrintUnformatted(id) : strdup("null");

	if (!s)
		abort();
	return s;
}

cJSON *gw_rpc_error_new(const cJSON *id, int code, const char *message)
{
	cJSON *resp = cJSON_CreateObject(), *error = cJSON_CreateObject();

	if (!resp || !error)
		abort();
	cJSON_AddStringToObject(resp, "jsonrpc", "2.0");
	cJSON_AddItemToObject(resp, "id", id ? cJSON_Duplicate(id, true) : cJSON_CreateNull());
	cJSON_AddNumberToObject(error, "code", code);
	cJSON_AddStringToObject(error, "message", message);
	cJSON_AddItemToObject(resp, "error", error);
	return resp;
}

char *gw_rpc_allowed_body(const struct gw_rpc *rpc, size_t *len)
{
	cJSON *arr;
	char *s;
	size_t kept = 0;

	for (size_t i = 0; i < rpc->n; i++)
		kept += !rpc->msgs[i].denied;
	if (kept == 0)
		return NULL;
	if (!rpc->batch) {
		s = cJSON_PrintUnformatted(rpc->doc);
	} else {
		arr = cJSON_CreateArray();
		for (size_t i = 0; i < rpc->n; i++)
			if (!rpc->msgs[i].denied)
				cJSON_AddItemReferenceToArray(arr, rpc->msgs[i].json);
		s = cJSON_PrintUnformatted(arr);
		cJSON_Delete(arr); /* references: the elements stay in rpc->doc */
	}
	if (!s)
		abort();
	*len = strlen(s);
	return s;
}

struct gw_rpc_msg *gw_rpc_find(struct gw_rpc *rpc, const cJSON *id)
{
	for (size_t i = 0; rpc && id && i < rpc->n; i++)
		if (rpc->msgs[i].method && rpc->msgs[i].id && cJSON_Compare(rpc->msgs[i].id, id, true))
			return &rpc->msgs[i];
	return NULL;
}

/* ---- reading answers without building a tree ----
 *
 * What the audit needs of Omni's answer is small: each message's id, error code and isError,
 * and for a data query the query and the row count inside the result's text content (itself
 * JSON: {topic, query, result, ...}). Parsing with cJSON built a tree of the whole answer, and
 * then one of every row of the text, only to count them. This scanner reads a text in one
 * pass without allocating, noting the parts the audit wants, and accepts exactly what cJSON
 * 1.7.15's parser accepts (tests/unit/test_rpc.c compares the two), so that what cJSON could
 * not parse still records nothing. Keys compare as cJSON's do: unescaped, as C strings. */

#define SCAN_FAIL ((size_t)-1)
#define SCAN_NESTING_LIMIT 1000 /* CJSON_NESTING_LIMIT */

/* What a value is to the audit. */
enum scan_role {
	SCAN_OTHER,
	/* a data query's text: {"query": ..., "result": [rows] | {"rows": [rows]}} */
	SCAN_DATA, SCAN_DATA_QUERY, SCAN_DATA_RESULT, SCAN_DATA_ROWS,
	/* an answer: a message, or a batch of them */
	SCAN_MSGS, SCAN_MSG, SCAN_MSG_METHOD, SCAN_MSG_ID, SCAN_MSG_ERROR, SCAN_MSG_CODE,
	SCAN_MSG_RESULT, SCAN_MSG_IS_ERROR, SCAN_MSG_CONTENT, SCAN_MSG_CONTENT_ITEM, SCAN_MSG_TEXT,
};

/* The members that matter in an object of role parent: the first one named key (as cJSON's
 * lookups find it) has role child. */
static const struct scan_key {
	enum scan_role parent;
	const char *key;
	enum scan_role child;
} scan_keys[] = {
	{SCAN_DATA, "query", SCAN_DATA_QUERY},
	{SCAN_DATA, "result", SCAN_DATA_RESULT},
	{SCAN_DATA_RESULT, "rows", SCAN_DATA_ROWS},
	{SCAN_MSG, "method", SCAN_MSG_METHOD},
	{SCAN_MSG, "id", SCAN_MSG_ID},
	{SCAN_MSG, "error", SCAN_MSG_ERROR},
	{SCAN_MSG, "result", SCAN_MSG_RESULT},
	{SCAN_MSG_ERROR, "code", SCAN_MSG_CODE},
	{SCAN_MSG_RESULT, "isError", SCAN_MSG_IS_ERROR},
	{SCAN_MSG_RESULT, "content", SCAN_MSG_CONTENT},
	{SCAN_MSG_CONTENT_ITEM, "text", SCAN_MSG_TEXT},
};

/* A message of an answer: spans of the text ([at, end); end 0: absent). */
struct scan_msg {
	bool method, list_changed;
	size_t id_at, id_end;
	size_t code_at, code_end; /* error.code, a number */
	bool is_error;
	size_t text_at, text_end; /* the first text content, a string with its quotes */
};

struct scan {
	const unsigned char *s;
	size_t len;
	size_t depth;
	/* a data query's text */
	size_t query_at, query_end; /* the first "query" */
	long rows;                  /* -1 until the first "result" (or its "rows") is an array */
	/* an answer's messages */
	struct scan_msg cur, *msgs;
	size_t n_msgs, cap_msgs;
};

static size_t scan_value(struct scan *sc, size_t i, enum scan_role role);

/* cJSON skips every byte up to the space as white space. */
static inline size_t scan_ws(const struct scan *sc, size_t i)
{
	while (i < sc->len && sc->s[i] <= 32)
		i++;
	return i;
}

/* cJSON's parse_hex4: 0 when any digit is not hex. */
static unsigned scan_hex4(const unsigned char *p)
{
	unsigned h = 0;

	for (int k = 0; k < 4; k++) {
		unsigned c = p[k];

		if (c >= '0' && c <= '9')
			h = (h << 4) | (c - '0');
		else if (c >= 'A' && c <= 'F')
			h = (h << 4) | (c - 'A' + 10);
		else if (c >= 'a' && c <= 'f')
			h = (h << 4) | (c - 'a' + 10);
		else
			return 0;
	}
	return h;
}

/* The length of the \u escape at p (6, or 12 for a surrogate pair) before end; 0 if invalid.
 * Its code point goes to *cp. */
static size_t scan_utf16(const unsigned char *p, const unsigned char *end, unsigned long *cp)
{
	unsigned first, second;

	if (end - p < 6)
		return 0;
	first = scan_hex4(p + 2);
	if (first >= 0xDC00 && first <= 0xDFFF)
		return 0;
	if (first < 0xD800 || first > 0xDBFF) {
		*cp = first;
		return 6;
	}
	if (end - (p + 6) < 6 || p[6] != '\\' || p[7] != 'u')
		return 0;
	second = scan_hex4(p + 8);
	if (second < 0xDC00 || second > 0xDFFF)
		return 0;
	*cp = 0x10000 + (((unsigned long)(first & 0x3FF) << 10) | (second & 0x3FF));
	return 12;
}

#define SCAN_ONES 0x0101010101010101ULL
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define SCAN_LITTLE_ENDIAN 1 /* the first byte in memory is the lowest of a loaded word */
#else
#define SCAN_LITTLE_ENDIAN 0
#endif

/* Whether one of the 8 bytes of v is c (c times SCAN_ONES). */
static inline uint64_t scan_has(uint64_t v, uint64_t c)
{
	uint64_t x = v ^ c;

	return (x - SCAN_ONES) & ~x & (0x80 * SCAN_ONES);
}

/* The first backslash (with quote: or quote) in [p, end), or end; 8 bytes at a time, the
 * lowest flagged byte of scan_has being the first match. */
static inline const unsigned char *scan_plain(const unsigned char *p, const unsigned char *end,
					      bool quote)
{
	uint64_t v, m;

	for (; SCAN_LITTLE_ENDIAN && end - p >= 8; p += 8) {
		memcpy(&v, p, 8);
		m = scan_has(v, '\\' * SCAN_ONES) | (quote ? scan_has(v, '"' * SCAN_ONES) : 0);
		if (m)
			return p + (__builtin_ctzll(m) >> 3);
	}
	while (p < end && *p != '\\' && !(quote && *p == '"'))
		p++;
	return p;
}

/* Appends k bytes to out (size bytes, one kept for the NUL) at *n, as far as they fit. */
static void scan_emit(char *out, size_t size, size_t *n, const unsigned char *bytes, size_t k)
{
	if (out && *n + 1 < size)
		memcpy(out + *n, bytes, k < size - 1 - *n ? k : size - 1 - *n);
	*n += k;
}

/* Walks the escapes of the string between s[a] and the closing quote s[e] as cJSON's
 * parse_string does. With out, writes up to size - 1 unescaped bytes there (NUL-terminated)
 * and returns the unescaped length; without, checks only. SCAN_FAIL on a bad escape. */
static size_t scan_unescape(const unsigned char *s, size_t a, size_t e, char *out, size_t size)
{
	size_t n = 0, p = a + 1;

	/* unescaped, the string always fits: copied 8 bytes at a time */
	bool room = SCAN_LITTLE_ENDIAN && out && size >= e - a;

	while (p < e) {
		size_t run, k = 1, step = 2;
		unsigned char u[4];
		unsigned long cp = 0;

		if (room) {
			uint64_t v, m = 0;

			for (; e - p >= 8; p += 8, n += 8) {
				memcpy(&v, s + p, 8);
				memcpy(out + n, &v, 8);
				if ((m = scan_has(v, '\\' * SCAN_ONES)))
					break;
			}
			run = m ? (size_t)__builtin_ctzll(m) >> 3 : 0;
			if (!m)
				for (; p + run < e && s[p + run] != '\\'; run++)
					out[n + run] = (char)s[p + run];
			n += run;
		} else {
			run = (size_t)(scan_plain(s + p, s + e, false) - s) - p;
			scan_emit(out, size, &n, s + p, run);
		}
		if ((p += run) >= e)
			break;
		/* as in cJSON: after a \u escape that ate a backslash, p + 1 may be the quote */
		switch (s[p + 1]) {
		case 'b': u[0] = '\b'; break;
		case 'f': u[0] = '\f'; break;
		case 'n': u[0] = '\n'; break;
		case 'r': u[0] = '\r'; break;
		case 't': u[0] = '\t'; break;
		case '"': case '\\': case '/': u[0] = s[p + 1]; break;
		case 'u':
			if (!(step = scan_utf16(s + p, s + e, &cp)))
				return SCAN_FAIL;
			k = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
			for (size_t j = k - 1; j > 0; j--, cp >>= 6)
				u[j] = (unsigned char)(0x80 | (cp & 0x3F));
			u[0] = (unsigned char)(cp | (k == 1 ? 0 : k == 2 ? 0xC0 : k == 3 ? 0xE0 : 0xF0));
			break;
		default:
			return SCAN_FAIL;
		}
		for (size_t j = 0; j < k; j++, n++)
			if (out && n + 1 < size)
				out[n] = (char)u[j];
		p += step;
	}
	if (out)
		out[n < size ? n : size - 1] = '\0';
	return n;
}

/* cJSON's walk of a string at s[i] == '"' with a closing quote at s[e], exactly: the first
 * quote after an even number of backslashes ends it (each backslash takes the byte after it
 * along), then its escapes are read, and a \u escape takes 6 bytes whatever they are. */
static size_t scan_string_exact(const struct scan *sc, size_t i, size_t *close)
{
	const unsigned char *s = sc->s, *start = s + i + 1, *end = s + sc->len, *q = start;
	size_t k;

	for (;; q++) {
		if (!(q = memchr(q, '"', (size_t)(end - q))))
			return SCAN_FAIL;
		for (k = 0; q - k > start && q[-1 - (ptrdiff_t)k] == '\\'; k++)
			;
		if (k % 2 == 0)
			break;
	}
	*close = (size_t)(q - s);
	if (memchr(start, '\\', (size_t)(q - start)) &&
	    scan_unescape(s, i, *close, NULL, 0) == SCAN_FAIL)
		return SCAN_FAIL;
	return *close + 1;
}

/* Whether none of the 4 bytes at p is a quote or a backslash. */
static bool scan_plain4(const unsigned char *p)
{
	return p[0] != '"' && p[0] != '\\' && p[1] != '"' && p[1] != '\\' && p[2] != '"' &&
	       p[2] != '\\' && p[3] != '"' && p[3] != '\\';
}

/* A string at s[i] == '"': the index after its closing quote, or SCAN_FAIL; *close gets the
 * closing quote's index. One pass while the escapes are ordinary; a \u escape whose digits
 * hold a quote or a backslash (where cJSON's two walks of the string part ways) goes to
 * scan_string_exact. */
static size_t scan_string(const struct scan *sc, size_t i, size_t *close)
{
	const unsigned char *s = sc->s, *p = s + i + 1, *end = s + sc->len;
	unsigned first, second;

	for (;;) {
		if ((p = scan_plain(p, end, true)) >= end)
			return SCAN_FAIL;
		if (*p == '"')
			break;
		if (end - p < 2)
			return SCAN_FAIL;
		switch (p[1]) {
		case 'b': case 'f': case 'n': case 'r': case 't': case '"': case '\\': case '/':
			p += 2;
			continue;
		case 'u':
			break;
		default:
			return SCAN_FAIL;
		}
		if (end - p < 6 || !scan_plain4(p + 2))
			return scan_string_exact(sc, i, close);
		first = scan_hex4(p + 2);
		if (first >= 0xDC00 && first <= 0xDFFF)
			return SCAN_FAIL;
		if (first < 0xD800 || first > 0xDBFF) {
			p += 6;
			continue;
		}
		if (end - p < 12 || p[6] != '\\' || p[7] != 'u' || !scan_plain4(p + 8))
			return scan_string_exact(sc, i, close);
		second = scan_hex4(p + 8);
		if (second < 0xDC00 || second > 0xDFFF)
			return SCAN_FAIL;
		p += 12;
	}
	*close = (size_t)(p - s);
	return *close + 1;
}

/* Whether the string between the quotes s[a] and s[e] is name, compared as cJSON does (strcmp
 * on the unescaped bytes, which end at an escaped NUL). */
static bool scan_string_is(const struct scan *sc, size_t a, size_t e, const char *name)
{
	char buf[40];
	size_t n = strlen(name);

	if (e - a - 1 < n || n + 2 > sizeof(buf))
		return false; /* unescaping never lengthens */
	if (!memchr(sc->s + a + 1, '\\', e - a - 1) && !memchr(sc->s + a + 1, '\0', e - a - 1))
		return e - a - 1 == n && memcmp(sc->s + a + 1, name, n) == 0;
	scan_unescape(sc->s, a, e, buf, n + 2);
	return strcmp(buf, name) == 0;
}

/* cJSON copies the bytes of [0-9+-eE.] and takes what strtod reads of them. */
static size_t scan_number(const struct scan *sc, size_t i)
{
	const unsigned char *s = sc->s;
	size_t end = i, p = i, digits = 0, q;

	while (end < sc->len && ((s[end] >= '0' && s[end] <= '9') || s[end] == '+' ||
				 s[end] == '-' || s[end] == 'e' || s[end] == 'E' || s[end] == '.'))
		end++;
	if (p < end && (s[p] == '+' || s[p] == '-'))
		p++;
	for (; p < end && s[p] >= '0' && s[p] <= '9'; p++)
		digits++;
	if (p < end && s[p] == '.')
		for (p++; p < end && s[p] >= '0' && s[p] <= '9'; p++)
			digits++;
	if (digits == 0)
		return SCAN_FAIL;
	if (p < end && (s[p] == 'e' || s[p] == 'E')) {
		q = p + 1;
		if (q < end && (s[q] == '+' || s[q] == '-'))
			q++;
		if (q < end && s[q] >= '0' && s[q] <= '9') {
			while (q < end && s[q] >= '0' && s[q] <= '9')
				q++;
			p = q;
		}
	}
	return p;
}

/* The role of each element of an array of role role. */
static enum scan_role scan_element_role(enum scan_role role)
{
	return role == SCAN_MSGS ? SCAN_MSG : role == SCAN_MSG_CONTENT ? SCAN_MSG_CONTENT_ITEM
								  : SCAN_OTHER;
}

static size_t scan_array(struct scan *sc, size_t i, enum scan_role role)
{
	enum scan_role child = scan_element_role(role);
	long n = 0;

	if (sc->depth >= SCAN_NESTING_LIMIT)
		return SCAN_FAIL;
	sc->depth++;
	i = scan_ws(sc, i + 1);
	if (i < sc->len && sc->s[i] == ']')
		goto done;
	for (;;) {
		if ((i = scan_value(sc, scan_ws(sc, i), child)) == SCAN_FAIL)
			return SCAN_FAIL;
		n++;
		i = scan_ws(sc, i);
		if (i >= sc->len || sc->s[i] != ',')
			break;
		i++;
	}
	if (i >= sc->len || sc->s[i] != ']')
		return SCAN_FAIL;
done:
	sc->depth--;
	if (role == SCAN_DATA_RESULT || role == SCAN_DATA_ROWS)
		sc->rows = n;
	return i + 1;
}

/* The role of the member named by the string s[key..close] in an object of role role; seen
 * holds the keys of scan_keys met before in that object. */
static enum scan_role scan_member_role(const struct scan *sc, enum scan_role role, size_t key,
				       size_t close, unsigned *seen)
{
	if (role == SCAN_MSG_CONTENT)
		return SCAN_MSG_CONTENT_ITEM; /* cJSON_ArrayForEach walks an object's members too */
	for (size_t k = 0; role != SCAN_OTHER && k < sizeof(scan_keys) / sizeof(*scan_keys); k++) {
		if (scan_keys[k].parent != role || (*seen & (1u << k)) ||
		    !scan_string_is(sc, key, close, scan_keys[k].key))
			continue;
		*seen |= 1u << k;
		return scan_keys[k].child;
	}
	return SCAN_OTHER;
}

/* Notes the value s[at..end) of a member of role role. */
static void scan_note(struct scan *sc, enum scan_role role, size_t at, size_t end)
{
	unsigned char c = sc->s[at];

	switch (role) {
	case SCAN_DATA_QUERY:
		sc->query_at = at;
		sc->query_end = end;
		break;
	case SCAN_MSG_METHOD:
		sc->cur.method = c == '"';
		sc->cur.list_changed = c == '"' && scan_string_is(sc, at, end - 1,
								  "notifications/tools/list_changed");
		break;
	case SCAN_MSG_ID:
		sc->cur.id_at = at;
		sc->cur.id_end = end;
		break;
	case SCAN_MSG_CODE:
		if (c == '-' || (c >= '0' && c <= '9')) {
			sc->cur.code_at = at;
			sc->cur.code_end = end;
		}
		break;
	case SCAN_MSG_IS_ERROR:
		sc->cur.is_error = c == 't';
		break;
	case SCAN_MSG_TEXT:
		if (c == '"' && !sc->cur.text_end) {
			sc->cur.text_at = at;
			sc->cur.text_end = end;
		}
		break;
	default:
		break;
	}
}

static size_t scan_object(struct scan *sc, size_t i, enum scan_role role)
{
	unsigned seen = 0;

	if (sc->depth >= SCAN_NESTING_LIMIT)
		return SCAN_FAIL;
	sc->depth++;
	if (role == SCAN_MSGS)
		role = SCAN_MSG; /* a single message */
	if (role == SCAN_MSG)
		memset(&sc->cur, 0, sizeof(sc->cur));
	i = scan_ws(sc, i + 1);
	if (i < sc->len && sc->s[i] == '}')
		goto done;
	for (;;) {
		enum scan_role child;
		size_t key = scan_ws(sc, i), close, at;

		if (key >= sc->len || sc->s[key] != '"' ||
		    (i = scan_string(sc, key, &close)) == SCAN_FAIL)
			return SCAN_FAIL;
		i = scan_ws(sc, i);
		if (i >= sc->len || sc->s[i] != ':')
			return SCAN_FAIL;
		at = scan_ws(sc, i + 1);
		child = scan_member_role(sc, role, key, close, &seen);
		if ((i = scan_value(sc, at, child)) == SCAN_FAIL)
			return SCAN_FAIL;
		if (child != SCAN_OTHER)
			scan_note(sc, child, at, i);
		i = scan_ws(sc, i);
		if (i >= sc->len || sc->s[i] != ',')
			break;
		i++;
	}
	if (i >= sc->len || sc->s[i] != '}')
		return SCAN_FAIL;
done:
	sc->depth--;
	if (role == SCAN_MSG) {
		if (sc->n_msgs == sc->cap_msgs) {
			sc->cap_msgs = sc->cap_msgs ? 2 * sc->cap_msgs : 4;
			sc->msgs = realloc(sc->msgs, sc->cap_msgs * sizeof(*sc->msgs));
			if (!sc->msgs)
				abort();
		}
		sc->msgs[sc->n_msgs++] = sc->cur;
	}
	return i + 1;
}

/* A value at s[i] (white space skipped): the index after it, or SCAN_FAIL. */
static size_t scan_value(struct scan *sc, size_t i, enum scan_role role)
{
	const unsigned char *s = sc->s + i;
	size_t left = sc->len - i, close;

	if (i >= sc->len)
		return SCAN_FAIL;
	switch (*s) {
	case 'n':
		return left >= 4 && memcmp(s, "null", 4) == 0 ? i + 4 : SCAN_FAIL;
	case 'f':
		return left >= 5 && memcmp(s, "false", 5) == 0 ? i + 5 : SCAN_FAIL;
	case 't':
		return left >= 4 && memcmp(s, "true", 4) == 0 ? i + 4 : SCAN_FAIL;
	case '"':
		return scan_string(sc, i, &close);
	case '[':
		return scan_array(sc, i, role);
	case '{':
		return scan_object(sc, i, role);
	default:
		return *s == '-' || (*s >= '0' && *s <= '9') ? scan_number(sc, i) : SCAN_FAIL;
	}
}

/* Reads s[0..len) as cJSON would (cstring: cJSON_Parse of a NUL-terminated text, else
 * cJSON_ParseWithLength; a UTF-8 byte order mark skipped, anything after the value ignored)
 * with role for the root; false when cJSON would not parse it. */
static bool scan_text(struct scan *sc, const char *s, size_t len, bool cstring, enum scan_role role)
{
	size_t i = 0;

	memset(sc, 0, sizeof(*sc));
	sc->s = (const unsigned char *)s;
	sc->len = len;
	sc->rows = -1;
	/* cJSON skips it when 5 bytes can be read, counting the NUL of a C string */
	if (len + cstring >= 5 && memcmp(s, "\xEF\xBB\xBF", 3) == 0)
		i = 3;
	return scan_value(sc, scan_ws(sc, i), role) != SCAN_FAIL;
}

/* cJSON's number: strtod's value, and valueint saturated. */
static int scan_int(const struct scan *sc, size_t at, size_t end)
{
	char buf[64], *copy = end - at < sizeof(buf) ? buf : malloc(end - at + 1);
	double d;

	if (!copy)
		abort();
	memcpy(copy, sc->s + at, end - at);
	copy[end - at] = '\0';
	d = strtod(copy, NULL);
	if (copy != buf)
		free(copy);
	return d >= INT_MAX ? INT_MAX : d <= (double)INT_MIN ? INT_MIN : (int)d;
}

bool gw_rpc_read_answers(const char *body, size_t len, bool cstring, gw_rpc_answer_fn fn,
			 void *arg)
{
	struct scan sc;
	bool ok = scan_text(&sc, body, len, cstring, SCAN_MSGS);
	char small[4096];

	for (size_t i = 0; ok && i < sc.n_msgs; i++) {
		const struct scan_msg *m = &sc.msgs[i];
		struct gw_rpc_answer a = {.method = m->method, .list_changed = m->list_changed,
					  .is_error = m->is_error};
		cJSON *id = NULL;
		char *text = NULL;

		if (m->id_end && !(id = cJSON_ParseWithLength(body + m->id_at, m->id_end - m->id_at)))
			abort(); /* out of memory: it was read as valid */
		a.id = id;
		if ((a.has_code = m->code_end > 0))
			a.code = scan_int(&sc, m->code_at, m->code_end);
		if (m->text_end) {
			size_t size = m->text_end - m->text_at; /* never less than unescaped */

			text = size <= sizeof(small) ? small : malloc(size);
			if (!text)
				abort();
			scan_unescape(sc.s, m->text_at, m->text_end - 1, text, size);
			a.text = text;
		}
		fn(arg, &a);
		cJSON_Delete(id);
		if (text != small)
			free(text);
	}
	free(sc.msgs);
	return ok;
}

void gw_rpc_note(struct gw_rpc_msg *m, const struct gw_rpc_answer *a, bool data_query)
{
	struct scan sc;

	if (a->has_code)
		m->rpc_error = a->code;
	m->is_error = a->is_error;
	if (!data_query || !a->text || !scan_text(&sc, a->text, strlen(a->text), true, SCAN_DATA))
		return;
	cJSON_Delete(m->omni_query);
	m->omni_query = NULL;
	if (sc.query_end) {
		/* the same tree cJSON made of it inside the whole text */
		m->omni_query = cJSON_ParseWithLength(a->text + sc.query_at, sc.query_end - sc.query_at);
		if (!m->omni_query)
			abort(); /* out of memory: the text was read as valid */
	}
	if (sc.rows >= 0)
		m->rows = sc.rows;
	free(sc.msgs);
}

/* The string in a tool result's first text content, or NULL. */
static const char *result_text(const cJSON *result)
{
	const cJSON *c;

	cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(result, "content")) {
		const cJSON *text = cJSON_GetObjectItemCaseSensitive(c, "text");

		if (cJSON_IsString(text))
			return text->valuestring;
	}
	return NULL;
}

void gw_rpc_note_answer(struct gw_rpc_msg *m, const cJSON *answer, bool data_query)
{
	const cJSON *result = cJSON_GetObjectItemCaseSensitive(answer, "result");
	const cJSON *code = cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetObjectItemCaseSensitive(answer, "error"), "code");
	struct gw_rpc_answer a = {
	    .id = cJSON_GetObjectItemCaseSensitive(answer, "id"),
	    .has_code = cJSON_IsNumber(code),
	    .code = cJSON_IsNumber(code) ? code->valueint : 0,
	    .is_error = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(result, "isError")),
	    .text = result_text(result),
	};

	gw_rpc_note(m, &a, data_query);
}
