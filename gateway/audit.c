/* The audit trail (see audit.h): the "audit" config, record preparation on the loop, and one
 * writer thread per sink (the JSON Lines file, the Redis stream) that chains, writes and
 * confirms records, handing results back to the loop through a socketpair. */
#include "gateway/audit.h"

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <hiredis/hiredis.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cache/cache.h"
#include "cache/redis.h"
#include "gateway/auth.h"
#include "gateway/log.h"
#include "gateway/util.h"

#define RETRY_MS 1000             /* a failing sink is retried this often */
#define FREE_WAIT_MS 5000         /* audit_free writes what is queued for at most this long */
#define BATCH_MAX 256             /* records a writer takes per step (one fdatasync, one pipeline) */
#define REDIS_MIN_TIMEOUT_MS 1000 /* the cache's 50 ms suits a miss, not an audit record */
#define TAIL_CHUNK 65536

static const char zero_hash[65] = "0000000000000000000000000000000000000000000000000000000000000000";

/* ---- small helpers ---- */

/* A secret's bytes do not outlive it in freed memory. */
static void free_secret(char *s)
{
	if (s)
		memset(s, 0, strlen(s));
	free(s);
}

static struct timespec mono_after(long ms)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	t.tv_sec += ms / 1000;
	t.tv_nsec += (ms % 1000) * 1000000L;
	if (t.tv_nsec >= 1000000000L) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000L;
	}
	return t;
}

static bool ts_before(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

static bool mono_due(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return !ts_before(&now, t);
}

/* "2024-05-01T12:00:00.123Z": the record time format (`audit tail` parses it). Every record
 * takes one, so the part up to the second is formatted once a second (per thread). */
static void utc_now(char out[32])
{
	static _Thread_local char head[32];
	static _Thread_local time_t head_sec;
	static _Thread_local bool have_head;
	struct timespec ts;
	struct tm tm;
	int ms;

	clock_gettime(CLOCK_REALTIME, &ts);
	if (!have_head || ts.tv_sec != head_sec) {
		gmtime_r(&ts.tv_sec, &tm);
		strftime(head, sizeof(head), "%Y-%m-%dT%H:%M:%S", &tm);
		head_sec = ts.tv_sec;
		have_head = true;
	}
	ms = (int)(ts.tv_nsec / 1000000L % 1000);
	memcpy(out, head, 19);
	out[19] = '.';
	out[20] = (char)('0' + ms / 100);
	out[21] = (char)('0' + ms / 10 % 10);
	out[22] = (char)('0' + ms % 10);
	out[23] = 'Z';
	out[24] = '\0';
}

/* ---- configuration ---- */

static const char *const audit_keys[] = {"file",      "fsync",      "fsync_interval_ms",
					 "redis_stream", "queue_max", "on_failure",
					 "redact",    NULL};
static const char *const stream_keys[] = {"key", "maxlen", NULL};
static const char *const fsync_names[] = {"interval", "always", "never", NULL}; /* enum order */
static const char *const on_failure_names[] = {"refuse", "continue", NULL};

/* A non-empty string, or null (out stays NULL). */
static void read_string(const cJSON *item, const char *path, char **out, struct gw_diag *diag)
{
	if (cJSON_IsNull(item))
		return;
	if (!cJSON_IsString(item) || !*item->valuestring) {
		gw_diag_add(diag, true, "%s: expected a non-empty string or null", path);
		return;
	}
	free(*out);
	*out = gw_xstrdup(item->valuestring);
}

static void read_long(const cJSON *item, const char *path, long min, long max, long *out,
		      struct gw_diag *diag)
{
	double d = item->valuedouble;

	if (!cJSON_IsNumber(item) || d < (double)min || d > (double)max || d != (double)(long)d) {
		gw_diag_add(diag, true, "%s: expected a whole number from %ld to %ld", path, min, max);
		return;
	}
	*out = (long)d;
}

static void read_enum(const cJSON *item, const char *path, const char *const *names, int *out,
		      struct gw_diag *diag)
{
	char list[128] = "";
	size_t n = 0;

	for (int i = 0; cJSON_IsString(item) && names[i]; i++) {
		if (strcmp(item->valuestring, names[i]) == 0) {
			*out = i;
			return;
		}
	}
	for (int i = 0; names[i]; i++)
		n += (size_t)snprintf(list + n, sizeof(list) - n, "%s\"%s\"",
				      i == 0 ? "" : names[i + 1] ? ", " : " or ", names[i]);
	gw_diag_add(diag, true, "%s: expected %s", path, list);
}

/* A dotted path through objects (arrays on the way apply it to each element). */
static bool valid_redact_path(const char *p)
{
	if (!*p || *p == '.' || p[strlen(p) - 1] == '.')
		return false;
	return strstr(p, "..") == NULL;
}

static void read_redact(const cJSON *item, const char *path, struct gw_strlist *list,
			struct gw_diag *diag)
{
	const cJSON *el;
	size_t i = 0;

	if (!cJSON_IsArray(item)) {
		gw_diag_add(diag, true, "%s: expected an array of paths like \"arguments.prompt\"", path);
		return;
	}
	list->items = gw_xcalloc((size_t)cJSON_GetArraySize(item) + 1, sizeof(*list->items));
	cJSON_ArrayForEach(el, item) {
		if (!cJSON_IsString(el) || !valid_redact_path(el->valuestring))
			gw_diag_add(diag, true, "%s[%zu]: expected a dotted path like \"arguments.prompt\"",
				    path, i);
		else
			list->items[list->n++] = gw_xstrdup(el->valuestring);
		i++;
	}
}

static void read_stream(const cJSON *obj, struct audit_config *cfg, struct gw_diag *diag)
{
	const cJSON *item;
	char path[256];

	if (cJSON_IsNull(obj))
		return;
	if (!cJSON_IsObject(obj)) {
		gw_diag_add(diag, true, "audit.redis_stream: expected an object like {\"key\": "
			    "\"omni-mcp-gateway:audit\", \"maxlen\": 1000000} or null");
		return;
	}
	cfg->stream_key = gw_xstrdup("omni-mcp-gateway:audit");
	cJSON_ArrayForEach(item, obj) {
		snprintf(path, sizeof(path), "audit.redis_stream.%s", item->string);
		switch (gw_config_key_index(obj, item, stream_keys, path, diag)) {
		case 0:
			if (!cJSON_IsString(item) || !*item->valuestring) {
				gw_diag_add(diag, true, "%s: expected a non-empty string", path);
			} else {
				free(cfg->stream_key);
				cfg->stream_key = gw_xstrdup(item->valuestring);
			}
			break;
		case 1:
			read_long(item, path, 1, 1000000000L, &cfg->stream_maxlen, diag);
			break;
		default:
			break;
		}
	}
}

/* The stream's connection is the top-level "redis", read by the cache's parser (url, url_env or
 * url_file); its problems are that parser's to report, so its diagnostics are not repeated. */
static void read_redis_conn(const cJSON *root, struct audit_config *cfg, struct gw_diag *diag)
{
	struct gw_diag scratch = {0};
	struct cache_config *cc = cache_config_parse(root, &scratch);

	if (cc && cc->redis_url) {
		cfg->redis_url = gw_xstrdup(cc->redis_url);
		cfg->redis_timeout_ms = cc->redis_timeout_ms;
	} else if (!cJSON_GetObjectItemCaseSensitive(root, "redis")) {
		gw_diag_add(diag, true, "audit.redis_stream: needs the top-level \"redis\": {\"url\": "
			    "\"redis://host:6379/0\"}");
	} else {
		gw_diag_add(diag, true, "audit.redis_stream: the top-level \"redis\" cannot be used "
			    "until the config's other errors are fixed");
	}
	cache_config_free(cc);
	gw_diag_fini(&scratch);
}

static void read_audit_key(const cJSON *obj, const cJSON *item, struct audit_config *cfg,
			   struct gw_diag *diag)
{
	char path[256];
	int v;

	snprintf(path, sizeof(path), "audit.%s", item->string);
	switch (gw_config_key_index(obj, item, audit_keys, path, diag)) {
	case 0:
		read_string(item, path, &cfg->file, diag);
		break;
	case 1:
		v = (int)cfg->fsync;
		read_enum(item, path, fsync_names, &v, diag);
		cfg->fsync = (enum audit_fsync)v;
		break;
	case 2:
		read_long(item, path, 1, 3600000L, &cfg->fsync_interval_ms, diag);
		break;
	case 3:
		read_stream(item, cfg, diag);
		break;
	case 4:
		read_long(item, path, 1, 10000000L, &cfg->queue_max, diag);
		break;
	case 5:
		v = (int)cfg->on_failure;
		read_enum(item, path, on_failure_names, &v, diag);
		cfg->on_failure = (enum audit_on_failure)v;
		break;
	case 6:
		read_redact(item, path, &cfg->redact, diag);
		break;
	default:
		break;
	}
}

static void config_fini(struct audit_config *cfg)
{
	free(cfg->file);
	free(cfg->stream_key);
	free_secret(cfg->redis_url);
	for (size_t i = 0; i < cfg->redact.n; i++)
		free(cfg->redact.items[i]);
	free(cfg->redact.items);
	memset(cfg, 0, sizeof(*cfg));
}

void audit_config_free(struct audit_config *cfg)
{
	if (!cfg)
		return;
	config_fini(cfg);
	free(cfg);
}

struct audit_config *audit_config_parse(const cJSON *root, struct gw_diag *diag)
{
	const cJSON *obj = cJSON_GetObjectItemCaseSensitive(root, "audit"), *item;
	int errors_before = diag->errors;
	struct audit_config *cfg;

	if (!obj || cJSON_IsNull(obj))
		return NULL;
	if (!cJSON_IsObject(obj)) {
		gw_diag_add(diag, true, "audit: expected an object like {\"file\": "
			    "\"/var/log/omni-mcp-gateway/audit.jsonl\"}");
		return NULL;
	}
	cfg = gw_xcalloc(1, sizeof(*cfg));
	cfg->fsync = AUDIT_FSYNC_INTERVAL;
	cfg->fsync_interval_ms = 1000;
	cfg->stream_maxlen = 1000000;
	cfg->queue_max = 10000;
	cfg->on_failure = AUDIT_REFUSE;
	cJSON_ArrayForEach(item, obj)
		read_audit_key(obj, item, cfg, diag);
	if (cfg->stream_key)
		read_redis_conn(root, cfg, diag);
	if (!cfg->file && !cfg->stream_key && diag->errors == errors_before)
		gw_diag_add(diag, true, "audit: give at least one sink, audit.file or "
			    "audit.redis_stream (or remove \"audit\" to turn auditing off)");
	if (diag->errors == errors_before)
		return cfg;
	audit_config_free(cfg);
	return NULL;
}

static void config_copy(struct audit_config *dst, const struct audit_config *src)
{
	*dst = *src;
	dst->file = src->file ? gw_xstrdup(src->file) : NULL;
	dst->stream_key = src->stream_key ? gw_xstrdup(src->stream_key) : NULL;
	dst->redis_url = src->redis_url ? gw_xstrdup(src->redis_url) : NULL;
	dst->redact.items = gw_xcalloc(src->redact.n + 1, sizeof(*dst->redact.items));
	for (size_t i = 0; i < src->redact.n; i++)
		dst->redact.items[i] = gw_xstrdup(src->redact.items[i]);
}

/* ---- the state shared by the loop and the writers ---- */

enum { SINK_FILE, SINK_STREAM, N_SINKS };

struct job { /* one record, shared by the sinks */
	char *body; /* the record serialized without seq and prev: "{...}" */
	size_t len;
	audit_done_fn done;
	void *arg;
	int pending; /* sinks that have not finished it; the loop's */
	bool ok;
};

struct item { /* a record's passage through one sink */
	struct job *job;
	bool ok;
	struct item *next;
};

struct sink;

struct sink_ops {
	/* (Re)opens the file or (re)connects; 0, or -1 with s->why. */
	int (*reopen)(struct sink *s);
	/* Writes the items in order, setting ok on those that made it; -1 with s->why when the
	 * sink broke (the remaining items are not ok). */
	int (*write)(struct sink *s, struct item *items);
	int (*sync)(struct sink *s);
	void (*close)(struct sink *s);
};

struct audit {
	struct event_base *base;
	struct audit_config cfg;
	pthread_mutex_t mu; /* the sinks' queues and flags, and notified */
	struct sink *sinks[N_SINKS];
	evutil_socket_t notify[2]; /* writers -> loop: "finished items are waiting" */
	struct event *notify_ev;
	bool notified;
	/* the loop's */
	size_t pending;
	unsigned long long queued, written, failed;
	atomic_ullong dropped; /* also read by the writers for the recovery record */
};

struct sink {
	struct audit *a;
	const struct sink_ops *ops;
	const char *kind; /* "file" | "stream" */
	char *label;      /* for logs: the path, or the key and where */
	pthread_t thread;
	sem_t wake; /* posted by whoever finds waiting set (see sink_wait) */
	/* under a->mu */
	struct item *pending, **pending_tail;
	struct item *finished, **finished_tail;
	bool reopen, stop;
	bool waiting; /* asleep on wake and not woken yet */
	struct timespec stop_by;
	/* written by the writer, read by the loop without the lock */
	atomic_bool failing;
	/* the writer's own from here on */
	struct timespec retry_at, sync_at;
	char down_since[32];
	unsigned long long lost, dropped_before;
	char why[256];
	bool dirty; /* written since the last fdatasync ("interval") */
	bool have_chain;
	unsigned long long seq; /* of the last record written */
	char prev[65];          /* its line's hash */
	int fd;
	bool need_trunc; /* a partial line could not be cut off: repair before writing */
	off_t trunc_to;
	redisContext *rc;
	char chain[96];
};

static int sink_why(struct sink *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int sink_why(struct sink *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->why, sizeof(s->why), fmt, ap);
	va_end(ap);
	return -1;
}

static char *put(char *o, const char *s, size_t n)
{
	memcpy(o, s, n);
	return o + n;
}

/* One line for a sink: the body with seq, prev (and chain) appended, and a newline. The hash
 * of the line is taken without the newline. */
static char *compose_line(const struct job *j, unsigned long long seq, const char *prev,
			  const char *chain, size_t *len)
{
	char digits[24], *line, *o;
	size_t nd = 0, nc = chain ? strlen(chain) : 0;

	do
		digits[sizeof(digits) - ++nd] = (char)('0' + seq % 10);
	while ((seq /= 10) > 0);
	/* body without its '}', ',', "seq":N, ,"prev":"HEX", ,"chain":"ID", }, newline, NUL */
	line = gw_xcalloc(1, j->len + 8 + nd + 10 + 64 + (chain ? 12 + nc : 0) + 4);
	o = put(line, j->body, j->len - 1);
	if (j->len > 2)
		*o++ = ',';
	o = put(o, "\"seq\":", 6);
	o = put(o, digits + sizeof(digits) - nd, nd);
	o = put(o, ",\"prev\":\"", 9);
	o = put(o, prev, 64);
	*o++ = '"';
	if (chain) {
		o = put(o, ",\"chain\":\"", 10);
		o = put(o, chain, nc);
		*o++ = '"';
	}
	o = put(o, "}\n", 2);
	*len = (size_t)(o - line);
	return line;
}

/* ---- the file sink (runs on its writer thread) ---- */

static int write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EIO;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static int pread_all(int fd, char *buf, size_t len, off_t off)
{
	while (len > 0) {
		ssize_t n = pread(fd, buf, len, off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EIO;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

/* Finds the last '\n' before end, reading backwards in chunks (a record may be long).
 * Returns 1 with *at, 0 when there is none, -1 on a read error. */
static int find_newline_back(int fd, off_t end, off_t *at)
{
	char *buf = gw_xcalloc(1, TAIL_CHUNK);
	int rc = 0;

	while (end > 0) {
		off_t from = end > TAIL_CHUNK ? end - TAIL_CHUNK : 0;
		char *nl;

		if (pread_all(fd, buf, (size_t)(end - from), from) < 0) {
			rc = -1;
			break;
		}
		if ((nl = memrchr(buf, '\n', (size_t)(end - from)))) {
			*at = from + (nl - buf);
			rc = 1;
			break;
		}
		end = from;
	}
	free(buf);
	return rc;
}

/* A crash in the middle of a write (power loss) can leave an incomplete last line. It was
 * never confirmed, and left there it would break the chain, so it is cut off, loudly. */
static int file_cut_partial(struct sink *s, int fd)
{
	struct stat st;
	off_t nl = -1;
	char last = '\n';
	int found;

	if (fstat(fd, &st) < 0 || (st.st_size > 0 && pread_all(fd, &last, 1, st.st_size - 1) < 0))
		return sink_why(s, "cannot read %s: %s", s->label, strerror(errno));
	if (st.st_size == 0 || last == '\n')
		return 0;
	if ((found = find_newline_back(fd, st.st_size, &nl)) < 0)
		return sink_why(s, "cannot read %s: %s", s->label, strerror(errno));
	gw_warn("audit: %s ends with %lld bytes of an incomplete record (a write cut short by a "
		"crash); cutting them off so the chain goes on",
		s->label, (long long)(st.st_size - (nl + 1)));
	if (ftruncate(fd, nl + 1) < 0)
		return sink_why(s, "cannot cut the incomplete record off %s: %s", s->label,
				strerror(errno));
	return 0;
}

/* Continues the chain of an existing file: seq and hash of its last line. */
static int file_read_chain(struct sink *s, int fd)
{
	struct stat st;
	off_t nl = -1, start;
	char *line = NULL;
	cJSON *rec = NULL;
	const cJSON *seq;
	int rc = -1, found;

	if (fstat(fd, &st) < 0 || (found = find_newline_back(fd, st.st_size - 1, &nl)) < 0) {
		sink_why(s, "cannot read %s: %s", s->label, strerror(errno));
		goto fail;
	}
	s->seq = 0;
	memcpy(s->prev, zero_hash, sizeof(zero_hash));
	if (st.st_size == 0)
		return 0;
	start = found ? nl + 1 : 0;
	line = gw_xcalloc(1, (size_t)(st.st_size - start));
	if (pread_all(fd, line, (size_t)(st.st_size - 1 - start), start) < 0) {
		sink_why(s, "cannot read %s: %s", s->label, strerror(errno));
		goto fail;
	}
	rec = cJSON_ParseWithLength(line, (size_t)(st.st_size - 1 - start));
	seq = cJSON_GetObjectItemCaseSensitive(rec, "seq");
	if (!cJSON_IsNumber(seq) || seq->valuedouble < 1 || seq->valuedouble > 9007199254740992.0) {
		sink_why(s, "the last line of %s is not an audit record; move the file away to "
			 "start a new chain", s->label);
		goto fail;
	}
	s->seq = (unsigned long long)seq->valuedouble;
	gw_auth_sha256_hex(line, (size_t)(st.st_size - 1 - start), s->prev);
	rc = 0;
fail:
	cJSON_Delete(rec);
	free(line);
	return rc;
}

/* A new file's directory entry must reach the disk too, or a crash loses the whole file. */
static void sync_dir(const char *path)
{
	char *copy = gw_xstrdup(path);
	int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd >= 0) {
		if (fsync(fd) < 0)
			gw_debug("audit: fsync of the directory of %s: %s", path, strerror(errno));
		close(fd);
	}
	free(copy);
}

/* The lock keeps a second writer (another gateway, or the next audit during a reload) from
 * forking the chain. */
static int file_open(struct sink *s)
{
	const char *path = s->a->cfg.file;
	int fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	struct stat st;

	if (fd < 0)
		return sink_why(s, "cannot open %s: %s", path, strerror(errno));
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		sink_why(s, "%s is locked by another writer: %s", path,
			 errno == EWOULDBLOCK ? "another gateway or audit uses it" : strerror(errno));
		goto fail;
	}
	if (file_cut_partial(s, fd) < 0 || (!s->have_chain && file_read_chain(s, fd) < 0))
		goto fail;
	s->have_chain = true;
	if (fstat(fd, &st) == 0 && st.st_size == 0 && s->a->cfg.fsync != AUDIT_FSYNC_NEVER)
		sync_dir(path);
	s->fd = fd;
	return 0;
fail:
	close(fd);
	return -1;
}

/* Cuts a failed write's bytes off; when even that fails, nothing more is written until it is
 * done (on the next reopen). */
static void file_truncate(struct sink *s, off_t to)
{
	if (ftruncate(s->fd, to) == 0)
		return;
	gw_error("audit: cannot cut a partial record off %s: %s; retried before anything else is "
		 "written", s->label, strerror(errno));
	s->need_trunc = true;
	s->trunc_to = to;
}

static void file_close(struct sink *s)
{
	if (s->fd < 0)
		return;
	if (s->need_trunc && ftruncate(s->fd, s->trunc_to) == 0)
		s->need_trunc = false;
	if (s->a->cfg.fsync != AUDIT_FSYNC_NEVER && s->dirty && fdatasync(s->fd) < 0)
		gw_warn("audit: fdatasync %s: %s", s->label, strerror(errno));
	s->dirty = false;
	close(s->fd);
	s->fd = -1;
}

static int file_reopen(struct sink *s)
{
	if (s->fd >= 0 && s->need_trunc && ftruncate(s->fd, s->trunc_to) < 0)
		return sink_why(s, "cannot cut a partial record off %s: %s", s->label,
				strerror(errno));
	s->need_trunc = false;
	file_close(s);
	return file_open(s);
}

/* Appends one record at *end, or cuts the attempt off again: the file never keeps half a
 * line. The chain moves on only when the line is in. */
static int file_append(struct sink *s, const struct job *j, off_t *end)
{
	size_t len;
	char *line = compose_line(j, s->seq + 1, s->prev, NULL, &len);
	int rc = 0;

	if (write_all(s->fd, line, len) < 0) {
		rc = sink_why(s, "cannot write %s: %s", s->label, strerror(errno));
		file_truncate(s, *end);
	} else {
		*end += (off_t)len;
		s->seq++;
		gw_auth_sha256_hex(line, len - 1, s->prev);
	}
	free(line);
	return rc;
}

/* With "always", one fdatasync confirms the batch; if it fails the batch is cut off and the
 * chain rewound, so no line stays in the file whose record was reported failed. */
static int file_write(struct sink *s, struct item *items)
{
	unsigned long long seq0 = s->seq;
	char prev0[65];
	struct stat st;
	off_t start, end;
	size_t n_ok = 0;
	int rc = 0;

	if (s->fd < 0 || s->need_trunc || fstat(s->fd, &st) < 0)
		return sink_why(s, "cannot write %s: %s", s->label,
				s->fd < 0 ? "not open" : s->need_trunc ? "partial record" : strerror(errno));
	memcpy(prev0, s->prev, sizeof(prev0));
	start = end = st.st_size;
	for (struct item *it = items; it && rc == 0; it = it->next) {
		if ((rc = file_append(s, it->job, &end)) == 0) {
			it->ok = true;
			n_ok++;
		}
	}
	if (n_ok && s->a->cfg.fsync == AUDIT_FSYNC_ALWAYS && fdatasync(s->fd) < 0) {
		rc = sink_why(s, "fdatasync %s: %s", s->label, strerror(errno));
		file_truncate(s, start);
		s->seq = seq0;
		memcpy(s->prev, prev0, sizeof(prev0));
		for (struct item *it = items; it; it = it->next)
			it->ok = false;
	} else if (n_ok && s->a->cfg.fsync == AUDIT_FSYNC_INTERVAL && !s->dirty) {
		s->dirty = true;
		s->sync_at = mono_after(s->a->cfg.fsync_interval_ms);
	}
	return rc;
}

static int file_sync(struct sink *s)
{
	s->dirty = false;
	if (s->fd >= 0 && fdatasync(s->fd) < 0)
		return sink_why(s, "fdatasync %s: %s", s->label, strerror(errno));
	return 0;
}

static const struct sink_ops file_ops = {file_reopen, file_write, file_sync, file_close};

/* ---- the stream sink (runs on its writer thread) ---- */

/* AUTH or SELECT on a new connection; -1 with *err on an error reply or a broken one. */
static int redis_setup_cmd(redisContext *c, const char *where, int argc, const char **argv,
			   char **err)
{
	redisReply *rep = redisCommandArgv(c, argc, argv, NULL);
	int rc = 0;

	if (!rep || rep->type == REDIS_REPLY_ERROR) {
		*err = gw_xasprintf("redis at %s: %s: %s", where, argv[0], rep ? rep->str : c->errstr);
		rc = -1;
	}
	if (rep)
		freeReplyObject(rep);
	return rc;
}

struct redisContext *audit_redis_connect(const char *url, long timeout_ms, char **err)
{
	struct cache_redis_url u;
	struct timeval tv;
	redisContext *c;
	char db[16];

	if (timeout_ms < REDIS_MIN_TIMEOUT_MS)
		timeout_ms = REDIS_MIN_TIMEOUT_MS;
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	if (cache_redis_url_parse(url, &u, err) != 0)
		return NULL;
	c = u.socket_path ? redisConnectUnixWithTimeout(u.socket_path, tv)
			  : redisConnectWithTimeout(u.host, u.port, tv);
	if (!c)
		abort();
	if (c->err) {
		*err = gw_xasprintf("cannot connect to redis at %s: %s", u.where, c->errstr);
		goto fail;
	}
	redisSetTimeout(c, tv);
	if (!u.socket_path)
		redisEnableKeepAlive(c);
	if (u.password) {
		const char *argv[] = {"AUTH", u.user ? u.user : u.password, u.password};

		if (redis_setup_cmd(c, u.where, u.user ? 3 : 2, argv, err) < 0)
			goto fail;
	}
	snprintf(db, sizeof(db), "%d", u.db);
	if (u.db && redis_setup_cmd(c, u.where, 2, (const char *[]){"SELECT", db}, err) < 0)
		goto fail;
	cache_redis_url_fini(&u);
	return c;
fail:
	redisFree(c);
	cache_redis_url_fini(&u);
	return NULL;
}

/* Replicas share the stream, and a record whose XADD timed out may or may not be in it, so
 * each connection starts a chain of its own: "host-random", seq from 1. */
static void new_chain(struct sink *s)
{
	unsigned char rnd[4];
	char host[64] = "gateway";

	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		abort();
	gethostname(host, sizeof(host) - 1);
	for (char *p = host; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		      *p == '.' || *p == '-' || *p == '_'))
			*p = '_';
	snprintf(s->chain, sizeof(s->chain), "%s-%02x%02x%02x%02x", host, rnd[0], rnd[1], rnd[2],
		 rnd[3]);
	s->seq = 0;
	memcpy(s->prev, zero_hash, sizeof(zero_hash));
	s->have_chain = true;
}

static void stream_close(struct sink *s)
{
	if (s->rc)
		redisFree(s->rc);
	s->rc = NULL;
}

static int stream_reopen(struct sink *s)
{
	char *err = NULL;

	stream_close(s);
	s->rc = audit_redis_connect(s->a->cfg.redis_url, s->a->cfg.redis_timeout_ms, &err);
	if (!s->rc) {
		sink_why(s, "%s", err);
		free(err);
		return -1;
	}
	new_chain(s);
	return 0;
}

/* Sends one XADD per item (pipelined), chained ahead; the chain state follows the replies. */
static void stream_send(struct sink *s, struct item *items, char **lines, char (*hashes)[65])
{
	const struct audit_config *cfg = &s->a->cfg;
	char maxlen[24], seq[24];
	const char *prev = s->prev;
	size_t i = 0, len;

	snprintf(maxlen, sizeof(maxlen), "%ld", cfg->stream_maxlen);
	for (struct item *it = items; it; it = it->next, i++) {
		const char *argv[11] = {"XADD", cfg->stream_key, "MAXLEN", maxlen, "*", "chain",
					s->chain, "seq", seq, "record", NULL};
		size_t lens[11];

		lines[i] = compose_line(it->job, s->seq + 1 + i, prev, s->chain, &len);
		gw_auth_sha256_hex(lines[i], len - 1, hashes[i]);
		prev = hashes[i];
		snprintf(seq, sizeof(seq), "%llu", s->seq + 1 + i);
		argv[10] = lines[i];
		for (int k = 0; k < 11; k++)
			lens[k] = strlen(argv[k]);
		lens[10] = len - 1;
		redisAppendCommandArgv(s->rc, 11, argv, lens);
	}
}

static int stream_write(struct sink *s, struct item *items)
{
	size_t n = 0, i = 0;
	char **lines;
	char (*hashes)[65];
	int rc = 0;

	if (!s->rc)
		return sink_why(s, "not connected to redis");
	for (struct item *it = items; it; it = it->next)
		n++;
	lines = gw_xcalloc(n, sizeof(*lines));
	hashes = gw_xcalloc(n, sizeof(*hashes));
	stream_send(s, items, lines, hashes);
	for (struct item *it = items; it; it = it->next, i++) {
		redisReply *rep = NULL;

		if (redisGetReply(s->rc, (void **)&rep) != REDIS_OK || !rep) {
			rc = sink_why(s, "XADD %s: %s", s->label, s->rc->errstr[0] ? s->rc->errstr : "no reply");
			break;
		}
		if (rep->type == REDIS_REPLY_ERROR) {
			rc = sink_why(s, "XADD %s: %s", s->label, rep->str);
		} else if (rc == 0) {
			it->ok = true;
			s->seq++;
			memcpy(s->prev, hashes[i], sizeof(hashes[i]));
		} else {
			it->ok = true; /* in the stream, after a gap the chain shows */
		}
		freeReplyObject(rep);
	}
	if (rc < 0)
		stream_close(s); /* the next connection starts a new chain */
	for (i = 0; i < n; i++)
		free(lines[i]);
	free(lines);
	free(hashes);
	return rc;
}

static int stream_sync(struct sink *s)
{
	s->dirty = false;
	return 0;
}

static const struct sink_ops stream_ops = {stream_reopen, stream_write, stream_sync, stream_close};

/* ---- the writer thread ---- */

/* The first failure of an outage is logged; the rest of it is retried quietly. */
static void sink_fail(struct sink *s)
{
	s->retry_at = mono_after(RETRY_MS);
	if (atomic_load(&s->failing)) {
		gw_debug("audit: %s sink still failing: %s", s->kind, s->why);
		return;
	}
	utc_now(s->down_since);
	s->lost = 0;
	s->dropped_before = atomic_load(&s->a->dropped);
	atomic_store(&s->failing, true);
	gw_warn("audit: %s sink failing: %s; new records are refused (%s) until it recovers, "
		"retried every %d ms", s->kind, s->why,
		s->a->cfg.on_failure == AUDIT_REFUSE ? "on_failure refuse: data queries get 503"
						     : "on_failure continue: requests go on unaudited",
		RETRY_MS);
}

/* The record that proves a sink works again also tells a reader of the chain about the gap. */
static char *recovery_body(struct sink *s, size_t *len)
{
	cJSON *rec = cJSON_CreateObject();
	char now[32], *body;

	utc_now(now);
	cJSON_AddStringToObject(rec, "time", now);
	cJSON_AddStringToObject(rec, "event", "audit_sink_recovered");
	cJSON_AddStringToObject(rec, "sink", s->kind);
	cJSON_AddStringToObject(rec, "down_since", s->down_since);
	cJSON_AddStringToObject(rec, "error", s->why);
	cJSON_AddNumberToObject(rec, "failed", (double)s->lost);
	cJSON_AddNumberToObject(rec, "refused",
				(double)(atomic_load(&s->a->dropped) - s->dropped_before));
	if (!(body = cJSON_PrintUnformatted(rec)))
		abort();
	cJSON_Delete(rec);
	*len = strlen(body);
	return body;
}

static void sink_recover(struct sink *s)
{
	struct job job = {0};
	struct item probe = {0};

	if (s->ops->reopen(s) < 0) {
		sink_fail(s);
		return;
	}
	job.body = recovery_body(s, &job.len);
	probe.job = &job;
	if (s->ops->write(s, &probe) < 0 || !probe.ok) {
		free(job.body);
		sink_fail(s);
		return;
	}
	free(job.body);
	gw_info("audit: %s sink recovered; while down since %s, %llu records failed and %llu were "
		"refused", s->kind, s->down_since, s->lost,
		atomic_load(&s->a->dropped) - s->dropped_before);
	atomic_store(&s->failing, false);
}

static void sink_write(struct sink *s, struct item *batch, bool give_up)
{
	if (!atomic_load(&s->failing) && !give_up && s->ops->write(s, batch) < 0)
		sink_fail(s);
	for (struct item *it = batch; it; it = it->next)
		if (!it->ok && atomic_load(&s->failing))
			s->lost++;
}

/* One round of work, outside the lock. */
static void sink_step(struct sink *s, struct item *batch, bool reopen, bool stopping,
		      bool give_up)
{
	if (reopen && !atomic_load(&s->failing) && s->ops->reopen(s) < 0)
		sink_fail(s);
	if (atomic_load(&s->failing) && !stopping && mono_due(&s->retry_at))
		sink_recover(s);
	if (batch)
		sink_write(s, batch, give_up);
	if (s->dirty && (stopping || mono_due(&s->sync_at)) && s->ops->sync(s) < 0)
		sink_fail(s);
}

/* Sleeps until there is work or a timer of the sink is due; called and returns under a->mu.
 * A semaphore, not a condition variable: glibc takes the mutex back from a condition wait in
 * its contended state, so every record would cost the writer one more futex call (a wake of
 * nobody) at its next unlock. Whoever gives the writer work posts once when it finds waiting
 * set, after unlocking (sink_take_waiter); a post that comes after a time-out only makes the
 * next wait return early. */
static void sink_wait(struct sink *s)
{
	while (!s->pending && !s->reopen && !s->stop) {
		bool retry = atomic_load(&s->failing), sync = s->dirty, timed_out = false;
		struct timespec until;

		if (retry || sync) {
			until = retry ? s->retry_at : s->sync_at;
			if (retry && sync && ts_before(&s->sync_at, &until))
				until = s->sync_at;
		}
		s->waiting = true;
		pthread_mutex_unlock(&s->a->mu);
		if (!retry && !sync)
			sem_wait(&s->wake);
		else if (sem_clockwait(&s->wake, CLOCK_MONOTONIC, &until) < 0)
			timed_out = errno == ETIMEDOUT;
		pthread_mutex_lock(&s->a->mu);
		if (timed_out)
			break;
	}
	s->waiting = false;
}

/* Under a->mu: whether the writer must be woken (sem_post after the unlock) for work just
 * given to it; true at most once per sleep. */
static bool sink_take_waiter(struct sink *s)
{
	bool waiting = s->waiting;

	s->waiting = false;
	return waiting;
}

static struct item *take_batch(struct sink *s)
{
	struct item *first = s->pending, *last = first;

	if (!first)
		return NULL;
	for (int n = 1; n < BATCH_MAX && last->next; n++)
		last = last->next;
	s->pending = last->next;
	if (!s->pending)
		s->pending_tail = &s->pending;
	last->next = NULL;
	return first;
}

/* Hands a batch to the loop (under a->mu); one byte wakes it, however many batches wait. */
static void sink_finish(struct sink *s, struct item *batch)
{
	struct audit *a = s->a;

	*s->finished_tail = batch;
	while (batch->next)
		batch = batch->next;
	s->finished_tail = &batch->next;
	if (!a->notified && send(a->notify[1], "!", 1, MSG_DONTWAIT | MSG_NOSIGNAL) == 1)
		a->notified = true;
}

static void *sink_main(void *arg)
{
	struct sink *s = arg;
	struct audit *a = s->a;

	if (s->ops->reopen(s) < 0)
		sink_fail(s);
	pthread_mutex_lock(&a->mu);
	for (;;) {
		struct item *batch;
		bool reopen, stopping, give_up;

		sink_wait(s);
		batch = take_batch(s);
		reopen = s->reopen;
		s->reopen = false;
		stopping = s->stop;
		give_up = stopping && mono_due(&s->stop_by);
		pthread_mutex_unlock(&a->mu);
		sink_step(s, batch, reopen, stopping, give_up);
		pthread_mutex_lock(&a->mu);
		if (batch)
			sink_finish(s, batch);
		if (s->stop && !s->pending)
			break;
	}
	pthread_mutex_unlock(&a->mu);
	s->ops->close(s);
	return NULL;
}

static char *stream_label(const struct audit_config *cfg)
{
	struct cache_redis_url u;
	char *err = NULL, *label;

	if (cache_redis_url_parse(cfg->redis_url, &u, &err) != 0) {
		free(err);
		return gw_xasprintf("%s", cfg->stream_key);
	}
	label = gw_xasprintf("%s at %s", cfg->stream_key, u.where);
	cache_redis_url_fini(&u);
	return label;
}

static struct sink *sink_new(struct audit *a, int which)
{
	struct sink *s = gw_xcalloc(1, sizeof(*s));

	s->a = a;
	s->ops = which == SINK_FILE ? &file_ops : &stream_ops;
	s->kind = which == SINK_FILE ? "file" : "stream";
	s->label = which == SINK_FILE ? gw_xstrdup(a->cfg.file) : stream_label(&a->cfg);
	s->pending_tail = &s->pending;
	s->finished_tail = &s->finished;
	s->fd = -1;
	memcpy(s->prev, zero_hash, sizeof(zero_hash));
	atomic_init(&s->failing, false);
	if (sem_init(&s->wake, 0, 0) != 0)
		abort();
	return s;
}

/* The writers block every signal: the loop handles them, and a failed write's SIGXFSZ or
 * SIGPIPE then only leaves an error code instead of killing the process. Failing to start a
 * thread is resource exhaustion at start-up, treated like out-of-memory. */
static void sink_start(struct sink *s)
{
	sigset_t all, old;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	if (pthread_create(&s->thread, NULL, sink_main, s) != 0)
		abort();
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static void sink_free(struct sink *s)
{
	sem_destroy(&s->wake);
	free(s->label);
	free(s);
}

/* ---- the loop's side ---- */

static void job_done(struct audit *a, struct item *it)
{
	struct job *j = it->job;

	if (!it->ok)
		j->ok = false;
	free(it);
	if (--j->pending > 0)
		return;
	a->pending--;
	if (j->ok)
		a->written++;
	else
		a->failed++;
	if (j->done)
		j->done(j->arg, j->ok);
	free(j->body);
	free(j);
}

static void take_finished(struct audit *a)
{
	struct item *lists[N_SINKS] = {NULL};

	pthread_mutex_lock(&a->mu);
	a->notified = false;
	for (int i = 0; i < N_SINKS; i++) {
		struct sink *s = a->sinks[i];

		if (!s)
			continue;
		lists[i] = s->finished;
		s->finished = NULL;
		s->finished_tail = &s->finished;
	}
	pthread_mutex_unlock(&a->mu);
	for (int i = 0; i < N_SINKS; i++) {
		while (lists[i]) {
			struct item *next = lists[i]->next;

			job_done(a, lists[i]);
			lists[i] = next;
		}
	}
}

/* Writers send a byte only when the loop has not been told yet, so one read nearly always
 * empties the socket; a byte left over only makes the event fire once more. */
static void on_notify(evutil_socket_t fd, short what, void *arg)
{
	char buf[64];

	(void)what;
	while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) == (ssize_t)sizeof(buf))
		;
	take_finished(arg);
}

struct audit *audit_new(struct event_base *base, const struct audit_config *cfg)
{
	struct audit *a;

	if (!cfg)
		return NULL;
	a = gw_xcalloc(1, sizeof(*a));
	a->base = base;
	config_copy(&a->cfg, cfg);
	atomic_init(&a->dropped, 0);
	if (pthread_mutex_init(&a->mu, NULL) != 0 ||
	    evutil_socketpair(AF_UNIX, SOCK_STREAM, 0, a->notify) < 0)
		abort(); /* resource exhaustion at start-up */
	evutil_make_socket_nonblocking(a->notify[0]);
	evutil_make_socket_nonblocking(a->notify[1]);
	evutil_make_socket_closeonexec(a->notify[0]);
	evutil_make_socket_closeonexec(a->notify[1]);
	a->notify_ev = event_new(base, a->notify[0], EV_READ | EV_PERSIST, on_notify, a);
	if (!a->notify_ev || event_add(a->notify_ev, NULL) < 0)
		abort();
	if (cfg->file)
		a->sinks[SINK_FILE] = sink_new(a, SINK_FILE);
	if (cfg->stream_key)
		a->sinks[SINK_STREAM] = sink_new(a, SINK_STREAM);
	for (int i = 0; i < N_SINKS; i++)
		if (a->sinks[i])
			sink_start(a->sinks[i]);
	return a;
}

/* Posts the writers that sink_take_waiter said to wake (after a->mu is released). */
static void wake_writers(struct audit *a, const bool wake[N_SINKS])
{
	for (int i = 0; i < N_SINKS; i++)
		if (wake[i])
			sem_post(&a->sinks[i]->wake);
}

void audit_free(struct audit *a)
{
	bool wake[N_SINKS] = {false};

	if (!a)
		return;
	pthread_mutex_lock(&a->mu);
	for (int i = 0; i < N_SINKS; i++) {
		if (a->sinks[i]) {
			a->sinks[i]->stop = true;
			a->sinks[i]->stop_by = mono_after(FREE_WAIT_MS);
			wake[i] = sink_take_waiter(a->sinks[i]);
		}
	}
	pthread_mutex_unlock(&a->mu);
	wake_writers(a, wake);
	for (int i = 0; i < N_SINKS; i++)
		if (a->sinks[i])
			pthread_join(a->sinks[i]->thread, NULL);
	take_finished(a);
	for (int i = 0; i < N_SINKS; i++)
		if (a->sinks[i])
			sink_free(a->sinks[i]);
	event_free(a->notify_ev);
	evutil_closesocket(a->notify[0]);
	evutil_closesocket(a->notify[1]);
	pthread_mutex_destroy(&a->mu);
	config_fini(&a->cfg);
	free(a);
}

bool audit_accepting(const struct audit *a)
{
	for (int i = 0; i < N_SINKS; i++)
		if (a->sinks[i] && atomic_load(&a->sinks[i]->failing))
			return false;
	return a->pending < (size_t)a->cfg.queue_max;
}

/* Replaces child in place, keeping its key; every duplicate of a key is replaced as well, so a
 * repeated key cannot smuggle a value past redaction. */
static void redact_item(cJSON *obj, cJSON *child)
{
	cJSON *r = cJSON_CreateString("[redacted]");

	if (!r)
		abort();
	r->string = child->string;
	r->type |= child->type & cJSON_StringIsConst;
	child->string = NULL;
	cJSON_ReplaceItemViaPointer(obj, child, r);
}

/* Replaces the field at path (dotted; arrays on the way apply the rest to each element). */
static void redact_path(cJSON *node, const char *path)
{
	const char *dot = strchr(path, '.');
	size_t n = dot ? (size_t)(dot - path) : strlen(path);
	cJSON *child, *next;

	if (cJSON_IsArray(node)) {
		cJSON_ArrayForEach(child, node)
			redact_path(child, path);
		return;
	}
	if (!cJSON_IsObject(node))
		return;
	for (child = node->child; child; child = next) {
		next = child->next;
		if (!child->string || strlen(child->string) != n || memcmp(child->string, path, n) != 0)
			continue;
		if (dot)
			redact_path(child, dot + 1);
		else
			redact_item(node, child);
	}
}

static void record_prepare(const struct audit *a, cJSON *record)
{
	static const char *const ours[] = {"seq", "prev", "chain"};
	char now[32];

	for (size_t i = 0; i < sizeof(ours) / sizeof(*ours); i++)
		while (cJSON_GetObjectItemCaseSensitive(record, ours[i]))
			cJSON_DeleteItemFromObjectCaseSensitive(record, ours[i]);
	if (!cJSON_GetObjectItemCaseSensitive(record, "time")) {
		utc_now(now);
		cJSON_AddStringToObject(record, "time", now);
	}
	for (size_t i = 0; i < a->cfg.redact.n; i++)
		redact_path(record, a->cfg.redact.items[i]);
}

/* A writer is woken only when it sleeps, and after the unlock: woken under the lock, it would
 * block on the mutex at once and cost both threads a round of futex calls. */
static void queue_job(struct audit *a, struct job *j)
{
	struct item *its[N_SINKS] = {NULL};
	bool wake[N_SINKS] = {false};

	for (int i = 0; i < N_SINKS; i++) {
		if (!a->sinks[i])
			continue;
		its[i] = gw_xcalloc(1, sizeof(*its[i]));
		its[i]->job = j;
		j->pending++;
	}
	pthread_mutex_lock(&a->mu);
	for (int i = 0; i < N_SINKS; i++) {
		struct sink *s = a->sinks[i];

		if (!s)
			continue;
		*s->pending_tail = its[i];
		s->pending_tail = &its[i]->next;
		wake[i] = sink_take_waiter(s);
	}
	pthread_mutex_unlock(&a->mu);
	wake_writers(a, wake);
}

int audit_submit(struct audit *a, cJSON *record, audit_done_fn done, void *arg)
{
	struct job *j;

	if (!cJSON_IsObject(record) || !audit_accepting(a)) {
		cJSON_Delete(record);
		atomic_fetch_add(&a->dropped, 1);
		return -1;
	}
	record_prepare(a, record);
	j = gw_xcalloc(1, sizeof(*j));
	if (!(j->body = cJSON_PrintUnformatted(record)))
		abort();
	cJSON_Delete(record);
	j->len = strlen(j->body);
	j->done = done;
	j->arg = arg;
	j->ok = true;
	a->pending++;
	a->queued++;
	queue_job(a, j);
	return 0;
}

/* ---- records written straight into their line (audit_record_*) ---- */

struct audit_record {
	const struct audit *a;
	char *buf; /* "{" and the fields so far; room for a NUL is kept */
	size_t len, cap;
	bool has_time;
};

static void rec_reserve(struct audit_record *rec, size_t more)
{
	if (rec->len + more < rec->cap)
		return;
	while (rec->len + more >= rec->cap)
		rec->cap *= 2;
	if (!(rec->buf = realloc(rec->buf, rec->cap)))
		abort();
}

static void rec_add(struct audit_record *rec, const char *s, size_t n)
{
	rec_reserve(rec, n);
	memcpy(rec->buf + rec->len, s, n);
	rec->len += n;
}

/* A string as cJSON prints it: '"', '\\' and the bytes below 32 escaped (\b \f \n \r \t or
 * \u00xx), every other byte as it is. */
static void rec_string(struct audit_record *rec, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s);
	char *o;

	rec_reserve(rec, 6 * n + 2);
	o = rec->buf + rec->len;
	*o++ = '"';
	for (; *p; p++) {
		if (*p > 31 && *p != '"' && *p != '\\') {
			*o++ = (char)*p;
			continue;
		}
		*o++ = '\\';
		switch (*p) {
		case '"': case '\\': *o++ = (char)*p; break;
		case '\b': *o++ = 'b'; break;
		case '\f': *o++ = 'f'; break;
		case '\n': *o++ = 'n'; break;
		case '\r': *o++ = 'r'; break;
		case '\t': *o++ = 't'; break;
		default:
			o = put(o, "u00", 3);
			*o++ = hex[*p >> 4];
			*o++ = hex[*p & 15];
		}
	}
	*o++ = '"';
	rec->len = (size_t)(o - rec->buf);
}

/* A number as cJSON 1.7.15 prints it: "%1.15g", or "%1.17g" when that does not read back as
 * the same double; null for NaN and infinities. Whole numbers below 10^15, which is what "%1.15g"
 * prints as plain digits, are written without printf. */
static void rec_number(struct audit_record *rec, double d)
{
	char out[32];
	int n;

	if (isnan(d) || isinf(d)) {
		rec_add(rec, "null", 4);
		return;
	}
	if (d > -1e15 && d < 1e15 && d == (double)(long long)d && (d != 0 || !signbit(d))) {
		long long v = (long long)d;
		unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;

		n = 0;
		do
			out[sizeof(out) - ++n] = (char)('0' + u % 10);
		while ((u /= 10) > 0);
		if (v < 0)
			out[sizeof(out) - ++n] = '-';
		rec_add(rec, out + sizeof(out) - n, (size_t)n);
		return;
	}
	n = snprintf(out, sizeof(out), "%1.15g", d);
	{
		double back = strtod(out, NULL), diff = back - d, a = back < 0 ? -back : back;
		double b = d < 0 ? -d : d;

		if (diff < 0)
			diff = -diff;
		if (!(diff <= (a > b ? a : b) * DBL_EPSILON)) /* cJSON's compare_double */
			n = snprintf(out, sizeof(out), "%1.17g", d);
	}
	rec_add(rec, out, (size_t)n);
}

static bool redacted(const struct audit *a, const char *name)
{
	for (size_t i = 0; a && i < a->cfg.redact.n; i++)
		if (strcmp(a->cfg.redact.items[i], name) == 0)
			return true;
	return false;
}

/* Writes the field's name (plain: it needs no escaping); false when its value is not to be
 * written: the field is one the module adds itself (dropped), or it was written as
 * "[redacted]". */
static bool rec_field(struct audit_record *rec, const char *name)
{
	size_t n = strlen(name);
	char *o;

	if ((name[0] == 's' && strcmp(name, "seq") == 0) ||
	    (name[0] == 'p' && strcmp(name, "prev") == 0) ||
	    (name[0] == 'c' && strcmp(name, "chain") == 0))
		return false;
	if (name[0] == 't' && strcmp(name, "time") == 0)
		rec->has_time = true;
	rec_reserve(rec, n + 4);
	o = rec->buf + rec->len;
	if (rec->len > 1)
		*o++ = ',';
	*o++ = '"';
	o = put(o, name, n);
	o = put(o, "\":", 2);
	rec->len = (size_t)(o - rec->buf);
	if (!redacted(rec->a, name))
		return true;
	rec_string(rec, "[redacted]");
	return false;
}

struct audit_record *audit_record_new(const struct audit *a)
{
	struct audit_record *rec = gw_xcalloc(1, sizeof(*rec));

	rec->a = a;
	rec->cap = 1024;
	if (!(rec->buf = malloc(rec->cap)))
		abort();
	rec->buf[0] = '{';
	rec->len = 1;
	return rec;
}

void audit_record_string(struct audit_record *rec, const char *name, const char *value)
{
	if (!rec_field(rec, name))
		return;
	if (value)
		rec_string(rec, value);
	else
		rec_add(rec, "null", 4);
}

void audit_record_number(struct audit_record *rec, const char *name, double value)
{
	if (rec_field(rec, name))
		rec_number(rec, value);
}

void audit_record_bool(struct audit_record *rec, const char *name, bool value)
{
	if (rec_field(rec, name))
		rec_add(rec, value ? "true" : "false", value ? 4 : 5);
}

void audit_record_null(struct audit_record *rec, const char *name)
{
	if (rec_field(rec, name))
		rec_add(rec, "null", 4);
}

/* value printed by cJSON itself (into the line when it fits), with the redact paths inside
 * the field applied to a copy. */
void audit_record_json(struct audit_record *rec, const char *name, const cJSON *value)
{
	size_t n = strlen(name), room;
	cJSON *copy = NULL;
	char *text;

	if (!rec_field(rec, name))
		return;
	if (!value) {
		rec_add(rec, "null", 4);
		return;
	}
	for (size_t i = 0; rec->a && i < rec->a->cfg.redact.n; i++) {
		const char *path = rec->a->cfg.redact.items[i];

		if (strncmp(path, name, n) != 0 || path[n] != '.')
			continue;
		if (!copy && !(copy = cJSON_Duplicate(value, true)))
			abort();
		redact_path(copy, path + n + 1);
	}
	if (copy)
		value = copy;
	rec_reserve(rec, 256);
	room = rec->cap - rec->len;
	if (room <= INT_MAX &&
	    cJSON_PrintPreallocated((cJSON *)value, rec->buf + rec->len, (int)room, false)) {
		rec->len += strlen(rec->buf + rec->len);
	} else {
		if (!(text = cJSON_PrintUnformatted(value)))
			abort();
		rec_add(rec, text, strlen(text));
		free(text);
	}
	cJSON_Delete(copy);
}

int audit_submit_record(struct audit *a, struct audit_record *rec, audit_done_fn done, void *arg)
{
	struct job *j;
	char now[32];

	if (!audit_accepting(a)) {
		free(rec->buf);
		free(rec);
		atomic_fetch_add(&a->dropped, 1);
		return -1;
	}
	if (!rec->has_time && rec_field(rec, "time")) {
		utc_now(now);
		rec_string(rec, now);
	}
	rec_add(rec, "}", 1);
	rec->buf[rec->len] = '\0';
	j = gw_xcalloc(1, sizeof(*j));
	j->body = rec->buf;
	j->len = rec->len;
	j->done = done;
	j->arg = arg;
	j->ok = true;
	free(rec);
	a->pending++;
	a->queued++;
	queue_job(a, j);
	return 0;
}

void audit_reopen(struct audit *a)
{
	struct sink *s = a->sinks[SINK_FILE];
	bool wake;

	if (!s)
		return;
	pthread_mutex_lock(&a->mu);
	s->reopen = true;
	wake = sink_take_waiter(s);
	pthread_mutex_unlock(&a->mu);
	if (wake)
		sem_post(&s->wake);
}

void audit_stats_get(const struct audit *a, struct audit_stats *out)
{
	out->queued = a->queued;
	out->written = a->written;
	out->failed = a->failed;
	out->dropped = atomic_load(&((struct audit *)a)->dropped);
	out->pending = a->pending;
}
