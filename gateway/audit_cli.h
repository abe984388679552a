/* The `audit verify` and `audit tail` commands: walk an audit file's hash chain, and print
 * audit records (from a file or the Redis stream) as a table. For operators; they print and
 * return exit codes, and use blocking I/O (they never run on the gateway's loop). */
#ifndef GW_AUDIT_CLI_H
#define GW_AUDIT_CLI_H

#include <stdio.h>

#include "gateway/audit.h"

/* Walks the JSON Lines file at path: every line must be a JSON object whose seq is the previous
 * line's + 1 and whose prev is the SHA-256 of the previous line's bytes (without the newline);
 * a first line with seq 1 must have prev "000…0", a first line with a higher seq continues an
 * earlier (rotated) file and is taken as it is. Prints the FIRST problem, with its line number
 * ("line 17: prev does not match line 16 (edited or removed record)", "line 9: seq 12 follows
 * 10 (missing or reordered record)"), and returns 1; or prints "ok: N records, chain intact
 * (seq A..B)" and returns 0. A last line without its newline is a write cut short by a crash
 * (the gateway cuts it off when it starts again): it is reported on a line of its own and not
 * counted, and the result is that of the whole lines before it. Returns 2 when the file cannot
 * be read. Editing the very last line cannot be seen in the file alone (nothing follows it). */
int audit_cli_verify(const char *path, FILE *out);

/* Prints the records of the file at path, or of cfg's Redis stream when path is NULL (a
 * blocking connection), oldest first, as a table: time, member, tool (or method), decision and
 * rule, HTTP status (/JSON-RPC error), rows, duration in ms, and the prompt (or query),
 * truncated. Filters (each may be NULL): user is the member's name, tool matches the tool or
 * the method, since is an ISO-8601 time ("2024-05-01", "2024-05-01T12:00", with seconds,
 * fraction, "Z" or "+02:00"; UTC when no zone is given) or an age ("90s", "30m", "1h", "7d").
 * Returns 0, 1 when the source cannot be read or since is invalid (a message on stderr), 2
 * when there is no source (path NULL and no stream in cfg). */
int audit_cli_tail(const char *path, const struct audit_config *cfg, const char *user,
		   const char *tool, const char *since, FILE *out);

/* The sub-command line after "omni-mcp-gateway audit":
 *   verify FILE
 *   tail [FILE | -c CONFIG] [--user NAME] [--tool NAME] [--since TIME]
 * With -c, tail reads the config's stream when it has one (every replica's records), else its
 * file. Prints to stdout (problems to stderr) and returns the exit code; 2 for a usage error. */
int audit_cli_main(int argc, char **argv);

#endif
