/* Cache keys: which Omni identity an entry belongs to and what was asked, hashed with SHA-256.
 * Pure: no I/O, no clock. A key never contains a credential, only hashes of one, so keys can be
 * logged, listed in Redis and purged by identity without exposing a secret. */
#ifndef CACHE_KEY_H
#define CACHE_KEY_H

#include <stdbool.h>

#include <cjson/cJSON.h>

/* Every key starts with this, so a purge of everything the gateway cached ("cache purge"
 * without --user) never touches other data in the same Redis database. */
#define CACHE_KEY_NAMESPACE "omnigw:v1:"

/* The identity a request runs as upstream, without the secret:
 *   PAT:              "pat:" + first 32 hex of SHA-256(PAT) [+ ":user:" + user_id]
 *   organization key: "org:" + first 32 hex of SHA-256(key) [+ ":user:" + user_id]
 * credential is the member's PAT or the team's key (org_key says which); user_id is the user
 * the request runs as (NULL or "" for none). Two members with different PATs, or one key with
 * different users, get different identities. Returns a string the caller frees, or NULL when
 * credential is NULL or empty (nothing to run as). */
char *cache_identity(const char *credential, bool org_key, const char *user_id);

/* The key of one cacheable answer:
 *   "omnigw:v1:" + first 32 hex of SHA-256(identity) + ":" + SHA-256 hex of the tuple
 * The tuple (identity, model, topic, method, tool, canonical arguments) is hashed with each
 * field length-prefixed, and NULL kept apart from "", so no two different tuples share a key by
 * concatenation. model, topic, tool and arguments may be NULL; identity and method must not.
 * Returns a string the caller frees. */
char *cache_key(const char *identity, const char *model, const char *topic, const char *method,
		const char *tool, const cJSON *arguments);

/* "omnigw:v1:" + first 32 hex of SHA-256(identity) + ":": the prefix shared by every key of
 * this identity, for purging one identity (cache_purge_prefix). The caller frees it. */
char *cache_identity_prefix(const char *identity);

/* The canonical JSON text of v: object keys sorted by byte order, no whitespace, numbers as
 * cJSON prints them, strings escaped as JSON requires. NULL and JSON null give "{}" (a call
 * without arguments is the same call as one with empty arguments). The caller frees it. */
char *cache_canonical_json(const cJSON *v);

#endif
