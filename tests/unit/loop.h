/* The event loop of a unit test that drives asynchronous modules (Redis, fetch, the OAuth
 * store): one base, and running it until a flag is set or a deadline passes. */
#ifndef TEST_LOOP_H
#define TEST_LOOP_H

#include <stdbool.h>

#include <event2/event.h>

static struct event_base *base;

static void on_guard(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	*(bool *)arg = true;
}

/* Runs the loop until *flag is true or max_ms passed; returns *flag. */
static bool run_until(const bool *flag, long max_ms)
{
	bool expired = false;
	struct event *guard = evtimer_new(base, on_guard, &expired);
	struct timeval tv = {max_ms / 1000, (max_ms % 1000) * 1000};

	evtimer_add(guard, &tv);
	while (!*flag && !expired)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(guard);
	return *flag;
}

static void run_for(long ms)
{
	bool never = false;

	run_until(&never, ms);
}

#endif
