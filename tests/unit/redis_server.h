/* A real redis-server for the unit tests that need one: started on a free loopback port,
 * waited for until it answers PING, killed at the end. Header-only, like harness.h. A test
 * that needs Redis fails (never skips) when redis-server is not installed: CI installs it. */
#ifndef TEST_REDIS_SERVER_H
#define TEST_REDIS_SERVER_H

#include <arpa/inet.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static pid_t redis_pid = -1;
static int redis_port = -1;

/* A watchdog for a test that drives Redis: after seconds, the redis-server is killed and the
 * test exits with a failure instead of hanging CI. */
static void redis_watchdog_fire(int sig)
{
	static const char msg[] = "unit test with Redis: stuck; giving up\n";

	(void)sig;
	if (redis_pid > 0)
		kill(redis_pid, SIGKILL);
	if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0) {
	}
	_exit(1);
}

static inline void redis_watchdog(unsigned seconds)
{
	signal(SIGALRM, redis_watchdog_fire);
	alarm(seconds);
}

static inline long long redis_now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static inline bool redis_installed(void)
{
	const char *env = getenv("PATH");
	char buf[4096], *d, *save = NULL;

	snprintf(buf, sizeof(buf), "%s", env ? env : "/usr/bin:/bin");
	for (d = strtok_r(buf, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		char full[4200];

		snprintf(full, sizeof(full), "%s/redis-server", d);
		if (access(full, X_OK) == 0)
			return true;
	}
	return false;
}

/* A port nobody listens on right now: bind to port 0 and ask which one it got. */
static inline int free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

/* The test's own blocking connection to database db (never used by the code under test). */
static inline redisContext *redis_direct(int db)
{
	struct timeval tv = {1, 0};
	redisContext *c = redisConnectWithTimeout("127.0.0.1", redis_port, tv);
	redisReply *r;

	if (c && c->err) {
		redisFree(c);
		return NULL;
	}
	if (!c)
		return NULL;
	redisSetTimeout(c, tv);
	if (db != 0 && (r = redisCommand(c, "SELECT %d", db)))
		freeReplyObject(r);
	return c;
}

/* Runs one command (with one string argument) on a new blocking connection to db 0; the reply
 * (caller frees) or NULL. */
static inline redisReply *redis_direct_cmd(const char *fmt, const char *arg)
{
	redisContext *c = redis_direct(0);
	redisReply *r = NULL;

	if (c) {
		r = redisCommand(c, fmt, arg);
		redisFree(c);
	}
	return r;
}

static inline bool redis_answers(void)
{
	redisContext *c = redis_direct(0);
	redisReply *r = c ? redisCommand(c, "PING") : NULL;
	bool ok = r && r->type == REDIS_REPLY_STATUS;

	if (r)
		freeReplyObject(r);
	if (c)
		redisFree(c);
	return ok;
}

/* Starts redis-server on redis_port and waits (up to 10 s) until it answers PING. */
static inline bool redis_start(void)
{
	char port[16];
	long long until = redis_now_ms() + 10000;

	snprintf(port, sizeof(port), "%d", redis_port);
	redis_pid = fork();
	if (redis_pid == 0) {
		int devnull = open("/dev/null", O_RDWR);

		dup2(devnull, STDIN_FILENO);
		dup2(devnull, STDOUT_FILENO);
		dup2(devnull, STDERR_FILENO);
		execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1",
		       "--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel",
		       "warning", (char *)NULL);
		_exit(127);
	}
	if (redis_pid < 0)
		return false;
	while (redis_now_ms() < until) {
		int status;

		if (waitpid(redis_pid, &status, WNOHANG) == redis_pid) {
			fprintf(stderr, "redis-server exited at start (status %d)\n", status);
			redis_pid = -1;
			return false;
		}
		if (redis_answers())
			return true;
		usleep(20000);
	}
	return false;
}

/* SIGKILL (an outage); a stopped (SIGSTOP) server is continued first so that it can die. */
static inline void redis_kill(void)
{
	if (redis_pid <= 0)
		return;
	kill(redis_pid, SIGCONT);
	kill(redis_pid, SIGKILL);
	waitpid(redis_pid, NULL, 0);
	redis_pid = -1;
}

#endif
