/* The audit trail: one JSON line per request, appended to a file and/or a Redis stream by one
 * writer thread per sink, each line chained to the previous one of its sink by SHA-256 so that
 * an edited, removed or reordered record shows. The loop never waits for a disk or for Redis. */
#ifndef GW_AUDIT_H
#define GW_AUDIT_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>
#include <event2/event.h>

#include "gateway/config.h"

/* ---- configuration ---- */

enum audit_fsync {
	AUDIT_FSYNC_INTERVAL, /* written at once, fdatasync every fsync_interval_ms (default) */
	AUDIT_FSYNC_ALWAYS,   /* a record is confirmed only once fdatasync returned */
	AUDIT_FSYNC_NEVER,    /* the kernel decides when it reaches the disk */
};

enum audit_on_failure {
	AUDIT_REFUSE,   /* default: data queries get a 503 until every sink accepts again */
	AUDIT_CONTINUE, /* requests go on unaudited; counted (dropped, failed) and logged */
};

struct audit_config {
	char *file;                /* the JSON Lines file; NULL: no file sink */
	enum audit_fsync fsync;
	long fsync_interval_ms;    /* default 1000 */
	char *stream_key;          /* the Redis stream; NULL: no stream sink */
	long stream_maxlen;        /* XADD MAXLEN (exact); default 1000000 */
	char *redis_url;           /* secret (may hold a password): the top-level redis.url */
	long redis_timeout_ms;     /* redis.timeout_ms, raised to at least 1000 for the audit */
	long queue_max;            /* records submitted and not yet confirmed; default 10000 */
	enum audit_on_failure on_failure;
	struct gw_strlist redact;  /* record paths ("arguments.prompt") replaced by "[redacted]" */
};

/* Reads the root key "audit":
 *   {"file": PATH|null, "fsync": "always"|"interval"|"never", "fsync_interval_ms": 1000,
 *    "redis_stream": {"key": "omni-mcp-gateway:audit", "maxlen": 1000000}|null,
 *    "queue_max": 10000, "on_failure": "refuse"|"continue", "redact": ["arguments.query"]}
 * The stream uses the connection of the top-level "redis" (url, url_env or url_file, and
 * timeout_ms), read here through cache_config_parse; its own problems are reported by the
 * cache's parse, not twice. Returns NULL when "audit" is absent or null (auditing off) and when
 * there is an error: diag->errors grew, each line naming its path ("audit.fsync: ..."). */
struct audit_config *audit_config_parse(const cJSON *root, struct gw_diag *diag);
void audit_config_free(struct audit_config *cfg);

/* ---- the audit ---- */

/* The record the gateway submits is a JSON object it fills when the request ends. These are
 * the names `audit tail` reads; the rest is written as given:
 *   time ("2024-05-01T12:00:00.123Z", UTC; added here when absent), request_id, member,
 *   omni_user_id, credential ("pat" | "org_key", never the secret), client_addr, client_name,
 *   client_version, session_id, protocol_version, method, tool, arguments (object), model,
 *   topic, decision ("allow" | "deny"), rule, http_status, rpc_error, is_error, response_bytes,
 *   duration_ms, cache_hit, omni_query, rows.
 * The module adds "seq" and "prev" (and "chain" in the stream) and drops any the record had.
 * It never adds an Authorization value, PAT or token, and writes none unless the record holds
 * one: keep them out of records; redaction covers argument fields only.
 *
 * The file: one line per record, {...record..., "seq": N, "prev": HEX}, prev being the SHA-256
 * of the previous line's bytes without its newline (64 zeros before seq 1). The chain goes on
 * across restarts (read from the file's last line) and rotations.
 * The stream: XADD key MAXLEN maxlen * chain ID seq N record LINE, where LINE also holds
 * "chain". Replicas share the stream and a timed-out XADD may or may not have landed, so each
 * connection starts a chain of its own (ID "host-random", seq from 1); interleaved chains are
 * told apart by ID.
 * After an outage a sink's chain holds one {"event": "audit_sink_recovered", "sink", "down_since",
 * "error", "failed", "refused"} record: the gap is itself on the record. */

struct audit;

/* Called once per accepted record, from the loop: ok when the record is in every sink as far
 * as the fsync policy promises (file: written, and fdatasync'ed with "always"; stream: XADD
 * acknowledged), false when a sink failed it (that sink holds no part of it; another sink may
 * hold it whole). */
typedef void (*audit_done_fn)(void *arg, bool ok);

/* Starts the writer threads for cfg's sinks on base (cfg is copied; it may be freed). The
 * threads never touch base: they hand results back through a socketpair the loop watches, so
 * libevent needs no thread support (no evthread_use_pthreads). The file is opened and the
 * chain's last seq and hash read from its last line by the thread, at once: a sink that cannot
 * start is failing (see audit_accepting) and retried every second. Returns NULL when cfg is
 * NULL. Two audits must never write one file at once (a second one finds it locked and fails
 * until the first is freed): on a reload, free the old audit before making the new one. */
struct audit *audit_new(struct event_base *base, const struct audit_config *cfg);

/* Writes what is queued, waiting at most 5 s (then the rest fails), stops the threads, and
 * calls done for every record still pending (from inside this call, so their args must still
 * be valid). Never call it from a done callback. NULL is fine. */
void audit_free(struct audit *a);

/* Takes record (always: it is freed here, whatever the result). Drops any "seq", "prev" and
 * "chain", adds "time" when absent, replaces the configured redact paths by "[redacted]", and
 * queues one serialized line for every sink; each sink adds its own seq and prev when it
 * writes. Returns 0 when queued (done is called later, from the loop; done may be NULL), -1
 * when refused at once (a sink is failing or queue_max records are in flight; counted as
 * dropped; done is not called): the caller applies on_failure. */
int audit_submit(struct audit *a, cJSON *record, audit_done_fn done, void *arg);

/* A record written field by field straight into its line, for the gateway's own records on the
 * loop: no cJSON tree to build, print and free. The line is byte for byte what audit_submit
 * writes for a cJSON object holding the same fields in the same order (cJSON's escaping and
 * number format, "time" added when absent, the redact paths applied, "seq", "prev" and
 * "chain" dropped). Names are the record's plain field names (no escaping needed). */
struct audit_record;

/* A new record for a (its redact paths apply); a may be NULL (nothing is redacted). */
struct audit_record *audit_record_new(const struct audit *a);
/* A string, or null when value is NULL. */
void audit_record_string(struct audit_record *rec, const char *name, const char *value);
void audit_record_number(struct audit_record *rec, const char *name, double value);
void audit_record_bool(struct audit_record *rec, const char *name, bool value);
void audit_record_null(struct audit_record *rec, const char *name);
/* A copy of value as cJSON prints it, or null when value is NULL. */
void audit_record_json(struct audit_record *rec, const char *name, const cJSON *value);
/* audit_submit for a record made with audit_record_new; takes rec (always). */
int audit_submit_record(struct audit *a, struct audit_record *rec, audit_done_fn done, void *arg);

/* False while a sink is failing or the queue is full. With on_failure "refuse" the gateway
 * answers data queries with a 503 while this is false. A failing sink is retried every second:
 * reopened (reconnected), then proven by writing an "audit_sink_recovered" record that says
 * since when it failed and how many records were lost; accepting again once that is in. */
bool audit_accepting(const struct audit *a);

/* Reopens the file (SIGUSR1 after logrotate moved it); the chain goes on in the new file: its
 * first record's seq and prev continue the old file's last. */
void audit_reopen(struct audit *a);

struct audit_stats {
	unsigned long long queued;  /* records accepted by audit_submit */
	unsigned long long written; /* confirmed in every sink (done ok) */
	unsigned long long failed;  /* failed by a sink (done not ok) */
	unsigned long long dropped; /* refused by audit_submit */
	unsigned long long pending; /* accepted and not yet confirmed or failed, now */
};

void audit_stats_get(const struct audit *a, struct audit_stats *out);

/* ---- shared with the command line (gateway/audit_cli.c) ---- */


/* A BLOCKING hiredis connection to url (AUTH and SELECT done), every wait bounded by
 * max(timeout_ms, 1000). For the writer thread and the command line, never for the loop.
 * Returns NULL with *err (caller frees; it names no password). */
struct redisContext *audit_redis_connect(const char *url, long timeout_ms, char **err);

#endif
