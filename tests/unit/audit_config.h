/* For the audit unit tests: an audit config from JSON text written with single quotes, its
 * problems printed, parsed by the real audit_config_parse. Header-only, like harness.h. */
#ifndef TEST_AUDIT_CONFIG_H
#define TEST_AUDIT_CONFIG_H

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>

#include "gateway/audit.h"

static struct audit_config *config(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static struct audit_config *config(const char *fmt, ...)
{
	struct gw_diag diag = {0};
	char text[2048];
	struct audit_config *cfg;
	cJSON *root;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	for (char *p = text; *p; p++)
		if (*p == '\'')
			*p = '"';
	root = cJSON_Parse(text);
	cfg = audit_config_parse(root, &diag);
	for (size_t i = 0; i < diag.n; i++)
		fprintf(stderr, "config: %s\n", diag.lines[i]);
	cJSON_Delete(root);
	gw_diag_fini(&diag);
	return cfg;
}

#endif
