/* Redis URLs as the config writes them. Pure: parsing only, so it can be unit-tested and
 * fuzzed; the password is kept apart so that nothing logs it. */
#ifndef CACHE_REDIS_URL_H
#define CACHE_REDIS_URL_H

/* A parsed Redis URL:
 *   redis://[[user]:password@]host[:port][/db]    host may be [IPv6]; port 6379, db 0
 *   unix://[[user]:password@]/path/to.sock[?db=N]
 * user and password are percent-decoded. password is a secret: never log it. */
struct cache_redis_url {
	char *host;        /* NULL for a unix socket */
	int port;
	char *socket_path; /* NULL for TCP */
	char *user;        /* NULL: AUTH password only (or no AUTH) */
	char *password;    /* NULL: no AUTH */
	int db;
	char *where;       /* "host:port/db" or "unix:/path/db" for logs: no credentials */
};

/* Parses url into out (zeroed first). Returns 0, or -1 with *err (caller frees) saying what is
 * wrong, without repeating the URL (it may hold a password). */
int cache_redis_url_parse(const char *url, struct cache_redis_url *out, char **err);

/* Frees the strings of u, wiping the password; u itself belongs to the caller. */
void cache_redis_url_fini(struct cache_redis_url *u);

#endif
