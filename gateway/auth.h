/* Member authentication: a bearer token is hashed with SHA-256 and compared, in constant time,
 * with every member's stored hash. Tokens themselves are never stored. */
#ifndef GW_AUTH_H
#define GW_AUTH_H

#include <stddef.h>

#include "gateway/config.h"

/* Returns the member whose token is in the Authorization header value ("Bearer <token>"), or
 * NULL when the header is missing, malformed or matches nobody. */
const struct gw_member *gw_auth_member(const struct gw_config *cfg, const char *authorization);

/* Writes a new random member token (43 url-safe characters + NUL) and the hex SHA-256 of it
 * (64 + NUL) for the config. Returns 0, or -1 when the system has no randomness. */
int gw_auth_token_new(char token[44], char sha256_hex[65]);

/* The SHA-256 of len bytes as 64 lower-case hex digits and a NUL. Safe from any thread. */
void gw_auth_sha256_hex(const void *data, size_t len, char out[65]);

#endif
