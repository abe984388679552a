/* libFuzzer target for gateway/config.c: gw_config_parse on arbitrary text. A config is either
 * refused with at least one error line, or accepted with the fields the server dereferences
 * set. Inputs that could name a secret file are skipped: a secret file is read whole, and
 * /dev/zero or a FIFO there is the operator's doing, not a parser bug. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/config.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	setenv("FUZZ_PAT", "pat-from-env", 1);
	setenv("FUZZ_ORG", "org-from-env", 1);
	return 0;
}

/* Secrets are read from omni_pat_file and omni_api_key_file (ca_file and tls are only checked
 * with access()); a \u escape could spell those keys another way. */
static bool may_read_files(const uint8_t *data, size_t size)
{
	return memmem(data, size, "pat_file", 8) || memmem(data, size, "key_file", 8) ||
	       memmem(data, size, "\\u", 2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gw_diag diag = {0};
	struct gw_config *cfg;

	if (may_read_files(data, size))
		return -1;
	cfg = gw_config_parse((const char *)data, size, &diag);
	if (cfg) {
		if (diag.errors)
			abort();
		if (!cfg->listen_host || !cfg->mcp_path || !cfg->upstream_url || !cfg->log_level ||
		    cfg->n_members == 0 || cfg->max_connections < 1 || cfg->max_body_bytes < 1024 ||
		    cfg->client_timeout_ms < 100)
			abort(); /* accepted, but the server would crash or refuse everyone */
		for (size_t i = 0; i < cfg->n_members; i++)
			if (!cfg->members[i].name ||
			    (!cfg->members[i].omni_pat && !cfg->omni_api_key))
				abort();
	} else if (diag.errors == 0 || diag.n == 0) {
		abort();
	}
	gw_config_free(cfg);
	gw_diag_fini(&diag);
	return 0;
}
