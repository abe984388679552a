/* `audit verify` walks a file's hash chain and names the first broken, missing or reordered
 * record; `audit tail` prints records from a file or the Redis stream as a table. Blocking I/O:
 * these run as commands, never on the gateway's loop. */
#include "gateway/audit_cli.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

#include "gateway/auth.h"

#define TAIL_PAGE "500" /* stream entries per XRANGE */
#define PROMPT_WIDTH 60

static const char zero_hash[65] = "0000000000000000000000000000000000000000000000000000000000000000";

/* A JSON object spanning exactly len bytes (trailing bytes mean an edited line), or NULL. */
static cJSON *parse_line(const char *line, size_t len)
{
	const char *end = NULL;
	cJSON *rec = cJSON_ParseWithLengthOpts(line, len, &end, false);

	if (rec && (!cJSON_IsObject(rec) || end != line + len)) {
		cJSON_Delete(rec);
		rec = NULL;
	}
	return rec;
}

/* A whole number from 1 to 2^53 (what a double holds exactly). */
static bool get_seq(const cJSON *rec, unsigned long long *seq)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(rec, "seq");
	double d = cJSON_IsNumber(v) ? v->valuedouble : 0;

	if (d < 1 || d > 9007199254740992.0 || d != (double)(unsigned long long)d)
		return false;
	*seq = (unsigned long long)d;
	return true;
}

/* ---- verify ---- */

struct chain_walk {
	size_t records;
	unsigned long long first_seq, last_seq;
	char last_hash[65];
};

/* Checks line number n (its bytes without the newline) against the walk so far; prints the
 * problem and returns -1, or takes the line in. */
static int check_line(struct chain_walk *w, size_t n, const char *line, size_t len, FILE *out)
{
	cJSON *rec = parse_line(line, len);
	const cJSON *prev = cJSON_GetObjectItemCaseSensitive(rec, "prev");
	unsigned long long seq = 0;
	int rc = -1;

	if (!rec)
		fprintf(out, "line %zu: not a JSON object (edited or corrupted record)\n", n);
	else if (!get_seq(rec, &seq) || !cJSON_IsString(prev))
		fprintf(out, "line %zu: no valid seq and prev (not an audit record, or edited)\n", n);
	else if (w->records == 0 && seq == 1 && strcmp(prev->valuestring, zero_hash) != 0)
		fprintf(out, "line %zu: seq 1 must have prev 000...0 (edited record)\n", n);
	else if (w->records > 0 && seq > w->last_seq + 1)
		fprintf(out, "line %zu: seq %llu follows %llu (missing or reordered record)\n", n, seq,
			w->last_seq);
	else if (w->records > 0 && seq <= w->last_seq)
		fprintf(out, "line %zu: seq %llu follows %llu (reordered or repeated record)\n", n, seq,
			w->last_seq);
	else if (w->records > 0 && strcmp(prev->valuestring, w->last_hash) != 0)
		fprintf(out, "line %zu: prev does not match line %zu (edited or removed record)\n", n,
			n - 1);
	else
		rc = 0;
	if (rc == 0) {
		if (w->records++ == 0)
			w->first_seq = seq;
		w->last_seq = seq;
		gw_auth_sha256_hex(line, len, w->last_hash);
	}
	cJSON_Delete(rec);
	return rc;
}

static void print_intact(const struct chain_walk *w, FILE *out)
{
	fprintf(out, "ok: %zu records, chain intact", w->records);
	if (w->records)
		fprintf(out, " (seq %llu..%llu)", w->first_seq, w->last_seq);
	if (w->records && w->first_seq > 1)
		fprintf(out, "; the file starts at seq %llu, continuing an earlier (rotated) file",
			w->first_seq);
	fputc('\n', out);
}

int audit_cli_verify(const char *path, FILE *out)
{
	FILE *f = fopen(path, "rb");
	struct chain_walk w = {0};
	char *line = NULL;
	size_t cap = 0, n = 0;
	ssize_t len;
	int rc = 0;

	if (!f) {
		fprintf(out, "%s: cannot open: %s\n", path, strerror(errno));
		return 2;
	}
	while ((len = getline(&line, &cap, f)) > 0) {
		n++;
		if (line[len - 1] != '\n') {
			fprintf(out, "line %zu: incomplete last record (no newline: a write cut short by "
				"a crash); not counted\n", n);
			break;
		}
		if (check_line(&w, n, line, (size_t)len - 1, out) < 0) {
			rc = 1;
			goto done;
		}
	}
	if (ferror(f)) {
		fprintf(out, "%s: read error: %s\n", path, strerror(errno));
		rc = 2;
		goto done;
	}
	print_intact(&w, out);
done:
	free(line);
	fclose(f);
	return rc;
}

/* ---- time ---- */

/* Milliseconds from the digits after a '.' ("5" -> 500, "123456" -> 123); *p moves past them. */
static long long parse_frac(const char **p)
{
	long long v = 0;
	int i = 0;

	for (; **p >= '0' && **p <= '9'; (*p)++, i++)
		if (i < 3)
			v = v * 10 + (**p - '0');
	for (; i < 3; i++)
		v *= 10;
	return v;
}

/* "2024-05-01", "2024-05-01T12:00[:00[.123]]" with "Z", "+02:00", "-0500" or no zone (UTC);
 * a space may stand for the T. */
static int parse_time_ms(const char *s, long long *ms)
{
	struct tm tm = {0};
	int y, mo, d, h = 0, mi = 0, sec = 0, n = 0, oh = 0, om = 0, sign = 0;
	long long frac = 0;
	const char *p;

	if (sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3)
		return -1;
	p = s + n;
	if ((*p == 'T' || *p == ' ') && sscanf(p + 1, "%2d:%2d%n", &h, &mi, &n) == 2) {
		p += 1 + n;
		if (*p == ':' && sscanf(p + 1, "%2d%n", &sec, &n) == 1)
			p += 1 + n;
		if (*p == '.') {
			p++;
			frac = parse_frac(&p);
		}
	}
	if (*p == 'Z') {
		p++;
	} else if ((*p == '+' || *p == '-') &&
		   (sscanf(p + 1, "%2d:%2d%n", &oh, &om, &n) == 2 ||
		    sscanf(p + 1, "%2d%2d%n", &oh, &om, &n) == 2)) {
		sign = *p == '+' ? 1 : -1;
		p += 1 + n;
	}
	if (*p || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 || mi > 59 ||
	    sec < 0 || sec > 60)
		return -1;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	*ms = ((long long)timegm(&tm) - sign * (oh * 3600LL + om * 60LL)) * 1000 + frac;
	return 0;
}

/* An ISO-8601 time or an age ("30m") before now. */
static int parse_since(const char *s, long long *ms)
{
	static const struct {
		char unit;
		long long ms;
	} units[] = {{'s', 1000}, {'m', 60000}, {'h', 3600000}, {'d', 86400000}};
	long long n;
	char unit = 0;
	int used = 0;

	if (sscanf(s, "%lld%c%n", &n, &unit, &used) == 2 && s[used] == '\0' && n >= 0) {
		for (size_t i = 0; i < sizeof(units) / sizeof(*units); i++) {
			if (unit == units[i].unit) {
				*ms = (long long)time(NULL) * 1000 - n * units[i].ms;
				return 0;
			}
		}
	}
	return parse_time_ms(s, ms);
}

/* ---- tail ---- */

struct tail_filter {
	const char *user, *tool;
	bool have_since;
	long long since_ms;
	size_t unreadable;
};

static const char *str_field(const cJSON *obj, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool tail_match(const struct tail_filter *f, const cJSON *rec)
{
	const char *member = str_field(rec, "member"), *tool = str_field(rec, "tool");
	const char *method = str_field(rec, "method"), *time_s = str_field(rec, "time");
	long long t;

	if (f->user && (!member || strcmp(member, f->user) != 0))
		return false;
	if (f->tool && !(tool && strcmp(tool, f->tool) == 0) &&
	    !(method && strcmp(method, f->tool) == 0))
		return false;
	if (f->have_since) {
		if (!time_s || parse_time_ms(time_s, &t) < 0 || t < f->since_ms)
			return false;
	}
	return true;
}

/* Prints s in width columns (UTF-8 characters, not bytes), control characters as spaces,
 * "…" when cut; when pad, pads to width and adds the column separator. */
static void put_cell(FILE *out, const char *s, int width, bool pad)
{
	const unsigned char *p = (const unsigned char *)(s ? s : "-");
	int total = 0, keep, n = 0;

	for (const unsigned char *q = p; *q; q++)
		total += (*q & 0xC0) != 0x80;
	keep = total <= width ? total : width - 1;
	for (; *p; p++) {
		bool starts = (*p & 0xC0) != 0x80;

		if (starts && n == keep)
			break;
		n += starts;
		fputc(*p < 0x20 || *p == 0x7f ? ' ' : *p, out);
	}
	if (total > width)
		fputs("\xe2\x80\xa6", out);
	if (!pad)
		return;
	for (n = total > width ? width : total; n < width; n++)
		fputc(' ', out);
	fputc(' ', out);
}

static void num_cell(char *buf, size_t size, const cJSON *obj, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);

	if (cJSON_IsNumber(v))
		snprintf(buf, size, "%.0f", v->valuedouble);
	else
		snprintf(buf, size, "-");
}

static void status_cell(char *buf, size_t size, const cJSON *rec)
{
	const cJSON *http = cJSON_GetObjectItemCaseSensitive(rec, "http_status");
	const cJSON *rpc = cJSON_GetObjectItemCaseSensitive(rec, "rpc_error");
	int n = snprintf(buf, size, "%s", "-");

	if (cJSON_IsNumber(http))
		n = snprintf(buf, size, "%.0f", http->valuedouble);
	if (cJSON_IsNumber(rpc))
		snprintf(buf + n, size - (size_t)n, "/%.0f", rpc->valuedouble);
	else if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rec, "is_error")))
		snprintf(buf + n, size - (size_t)n, " err");
}

/* The prompt column: the natural-language prompt, else the query (text or JSON); for the
 * module's own event records, what happened. Returns a string to free. */
static char *prompt_cell(const cJSON *rec)
{
	const cJSON *args = cJSON_GetObjectItemCaseSensitive(rec, "arguments");
	const cJSON *q = cJSON_GetObjectItemCaseSensitive(args, "query");
	const char *event = str_field(rec, "event");
	char *s = NULL;

	if (event) {
		const cJSON *failed = cJSON_GetObjectItemCaseSensitive(rec, "failed");
		const cJSON *refused = cJSON_GetObjectItemCaseSensitive(rec, "refused");

		if (asprintf(&s, "%s: %s sink, %.0f failed, %.0f refused since %s (%s)", event,
			     str_field(rec, "sink") ? str_field(rec, "sink") : "?",
			     cJSON_IsNumber(failed) ? failed->valuedouble : 0,
			     cJSON_IsNumber(refused) ? refused->valuedouble : 0,
			     str_field(rec, "down_since") ? str_field(rec, "down_since") : "?",
			     str_field(rec, "error") ? str_field(rec, "error") : "?") < 0)
			abort();
	} else if (str_field(args, "prompt")) {
		s = strdup(str_field(args, "prompt"));
	} else if (cJSON_IsString(q)) {
		s = strdup(q->valuestring);
	} else if (q) {
		s = cJSON_PrintUnformatted(q);
	} else {
		s = strdup("");
	}
	if (!s)
		abort();
	return s;
}

static void tail_header(FILE *out)
{
	fprintf(out, "%-24s %-12s %-20s %-24s %-10s %7s %7s %s\n", "TIME", "MEMBER", "TOOL",
		"DECISION", "STATUS", "ROWS", "MS", "PROMPT");
}

static void tail_print(FILE *out, const cJSON *rec)
{
	const char *decision = str_field(rec, "decision"), *rule = str_field(rec, "rule");
	const char *tool = str_field(rec, "tool");
	char status[32], rows[32], ms[32], dec[256];
	char *prompt = prompt_cell(rec);

	if (!tool)
		tool = str_field(rec, "event") ? "(audit)" : str_field(rec, "method");
	snprintf(dec, sizeof(dec), "%s%s%s", decision ? decision : "-", rule ? " " : "",
		 rule ? rule : "");
	status_cell(status, sizeof(status), rec);
	num_cell(rows, sizeof(rows), rec, "rows");
	num_cell(ms, sizeof(ms), rec, "duration_ms");
	put_cell(out, str_field(rec, "time"), 24, true);
	put_cell(out, str_field(rec, "member"), 12, true);
	put_cell(out, tool, 20, true);
	put_cell(out, dec, 24, true);
	put_cell(out, status, 10, true);
	fprintf(out, "%7s %7s ", rows, ms);
	put_cell(out, prompt, PROMPT_WIDTH, false);
	fputc('\n', out);
	free(prompt);
}

static void tail_record(struct tail_filter *f, const char *line, size_t len, FILE *out)
{
	cJSON *rec = parse_line(line, len);

	if (!rec)
		f->unreadable++;
	else if (tail_match(f, rec))
		tail_print(out, rec);
	cJSON_Delete(rec);
}

static int tail_file(const char *path, struct tail_filter *f, FILE *out)
{
	FILE *in = fopen(path, "rb");
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int rc = 0;

	if (!in) {
		fprintf(stderr, "audit tail: cannot open %s: %s\n", path, strerror(errno));
		return 1;
	}
	tail_header(out);
	while ((len = getline(&line, &cap, in)) > 0)
		if (line[len - 1] == '\n') /* an incomplete last line is no record */
			tail_record(f, line, (size_t)len - 1, out);
	if (ferror(in)) {
		fprintf(stderr, "audit tail: reading %s: %s\n", path, strerror(errno));
		rc = 1;
	}
	free(line);
	fclose(in);
	return rc;
}

/* The "record" field of one XRANGE entry [id, [field, value, ...]]. */
static void tail_entry(struct tail_filter *f, const redisReply *e, FILE *out)
{
	const redisReply *fields;

	if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
	    e->element[1]->type != REDIS_REPLY_ARRAY) {
		f->unreadable++;
		return;
	}
	fields = e->element[1];
	for (size_t i = 0; i + 1 < fields->elements; i += 2) {
		if (fields->element[i]->type == REDIS_REPLY_STRING &&
		    strcmp(fields->element[i]->str, "record") == 0 &&
		    fields->element[i + 1]->type == REDIS_REPLY_STRING) {
			tail_record(f, fields->element[i + 1]->str, fields->element[i + 1]->len, out);
			return;
		}
	}
	f->unreadable++;
}

/* The id after "ms-seq", to page on with an inclusive XRANGE start. */
static void next_id(const char *id, char *buf, size_t size)
{
	unsigned long long ms = 0, seq = 0;

	sscanf(id, "%llu-%llu", &ms, &seq);
	snprintf(buf, size, "%llu-%llu", ms, seq + 1);
}

static int tail_stream(const struct audit_config *cfg, struct tail_filter *f, FILE *out)
{
	char *err = NULL, start[64] = "-";
	redisContext *c = audit_redis_connect(cfg->redis_url, cfg->redis_timeout_ms, &err);
	redisReply *rep = NULL;
	int rc = 1;

	if (!c) {
		fprintf(stderr, "audit tail: %s\n", err);
		free(err);
		return 1;
	}
	if (f->have_since)
		snprintf(start, sizeof(start), "%lld-0", f->since_ms > 0 ? f->since_ms : 0);
	tail_header(out);
	for (;;) {
		const char *argv[] = {"XRANGE", cfg->stream_key, start, "+", "COUNT", TAIL_PAGE};

		rep = redisCommandArgv(c, 6, argv, NULL);
		if (!rep || rep->type != REDIS_REPLY_ARRAY) {
			fprintf(stderr, "audit tail: XRANGE %s: %s\n", cfg->stream_key,
				rep && rep->type == REDIS_REPLY_ERROR ? rep->str : c->errstr);
			goto fail;
		}
		for (size_t i = 0; i < rep->elements; i++)
			tail_entry(f, rep->element[i], out);
		if (rep->elements < (size_t)atoi(TAIL_PAGE))
			break;
		next_id(rep->element[rep->elements - 1]->element[0]->str, start, sizeof(start));
		freeReplyObject(rep);
		rep = NULL;
	}
	rc = 0;
fail:
	if (rep)
		freeReplyObject(rep);
	redisFree(c);
	return rc;
}

int audit_cli_tail(const char *path, const struct audit_config *cfg, const char *user,
		   const char *tool, const char *since, FILE *out)
{
	struct tail_filter f = {user, tool, false, 0, 0};
	int rc;

	if (since) {
		if (parse_since(since, &f.since_ms) < 0) {
			fprintf(stderr, "audit tail: --since %s: expected a time like 2024-05-01T12:00Z "
				"or an age like 30m, 1h, 7d\n", since);
			return 1;
		}
		f.have_since = true;
	}
	if (path)
		rc = tail_file(path, &f, out);
	else if (cfg && cfg->stream_key)
		rc = tail_stream(cfg, &f, out);
	else {
		fprintf(stderr, "audit tail: give a file, or a config with audit.redis_stream\n");
		return 2;
	}
	if (f.unreadable)
		fprintf(stderr, "audit tail: %zu entries were not audit records and were skipped\n",
			f.unreadable);
	return rc;
}

/* ---- the command line ---- */

static void usage(void)
{
	fprintf(stderr, "usage: omni-mcp-gateway audit verify FILE\n"
			"       omni-mcp-gateway audit tail [FILE | -c CONFIG] [--user NAME] "
			"[--tool NAME] [--since TIME]\n");
}

static char *read_text(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t len = 0, cap = 0, n;

	if (!f)
		return NULL;
	do {
		if (len + 4097 > cap) {
			cap = cap ? cap * 2 : 8192;
			if (!(buf = realloc(buf, cap)))
				abort();
		}
		len += n = fread(buf + len, 1, cap - len - 1, f);
	} while (n > 0);
	buf[len] = '\0';
	fclose(f);
	return buf;
}

/* Reads only what tail needs from the config: "audit" and the top-level "redis". */
static struct audit_config *load_config(const char *path)
{
	struct gw_diag diag = {0};
	struct audit_config *cfg = NULL;
	char *text = read_text(path);
	cJSON *root = text ? cJSON_Parse(text) : NULL;

	if (!root) {
		fprintf(stderr, "audit tail: %s: %s\n", path,
			text ? "not valid JSON" : strerror(errno));
		goto fail;
	}
	cfg = audit_config_parse(root, &diag);
	for (size_t i = 0; i < diag.n; i++)
		fprintf(stderr, "%s: %s\n", path, diag.lines[i]);
	if (!cfg && !diag.errors)
		fprintf(stderr, "audit tail: %s has no \"audit\" section\n", path);
fail:
	gw_diag_fini(&diag);
	cJSON_Delete(root);
	free(text);
	return cfg;
}

static int cmd_tail(int argc, char **argv)
{
	const char *file = NULL, *config = NULL, *user = NULL, *tool = NULL, *since = NULL;
	struct audit_config *cfg = NULL;
	int rc;

	for (int i = 1; i < argc; i++) {
		const char **opt = strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0 ? &config
				   : strcmp(argv[i], "--user") == 0				   ? &user
				   : strcmp(argv[i], "--tool") == 0				   ? &tool
				   : strcmp(argv[i], "--since") == 0				   ? &since
												   : NULL;

		if (opt && i + 1 < argc)
			*opt = argv[++i];
		else if (!opt && argv[i][0] != '-' && !file)
			file = argv[i];
		else
			goto usage;
	}
	if (!file == !config)
		goto usage;
	if (config && !(cfg = load_config(config)))
		return 1;
	if (cfg && !cfg->stream_key)
		file = cfg->file;
	rc = audit_cli_tail(file, cfg, user, tool, since, stdout);
	audit_config_free(cfg);
	return rc;
usage:
	usage();
	return 2;
}

int audit_cli_main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[0], "verify") == 0)
		return audit_cli_verify(argv[1], stdout);
	if (argc >= 1 && strcmp(argv[0], "tail") == 0)
		return cmd_tail(argc, argv);
	usage();
	return 2;
}
