# omni-mcp-gateway: one GNU Makefile for build, tests, run, fuzz and format.
#   make                    build/omni-mcp-gateway
#   make test               unit + integration tests (installs what is missing)
#   make run                fake Omni + gateway with a demo config (or OMNI_URL + USERS_FILE)
#   make SANITIZE=address,undefined test    the same under ASan + UBSan (build/san/)

CC       ?= cc
PKGS     := libevent openssl libcurl libcjson hiredis
CFLAGS   ?= -O2 -g
CFLAGS   += -std=c11 -D_GNU_SOURCE -Wall -Wextra -MMD -MP -I.
CFLAGS   += $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS   += $(shell pkg-config --libs $(PKGS) 2>/dev/null)
ifdef WERROR
CFLAGS   += -Werror
endif

BUILD    := build
ifdef SANITIZE
BUILD    := build/san
CFLAGS   += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS  += -fsanitize=$(SANITIZE)
endif

# Everything but main.c is a library the unit tests link against too.
LIB_SRC  := $(filter-out gateway/main.c,$(wildcard gateway/*.c policy/*.c cache/*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
BIN      := $(BUILD)/omni-mcp-gateway
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all deps test-deps test unit integration run format fuzz clean
all: $(BIN)

$(BIN): $(BUILD)/gateway/main.o $(LIB_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/tests/%: tests/unit/%.c tests/unit/harness.h tests/unit/loop.h tests/unit/redis_server.h tests/unit/audit_config.h $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB_OBJ) $(LDLIBS)

# Installs Debian build and test packages and the npm test tools when missing.
deps:
	@deploy/install-deps.sh build
test-deps:
	@deploy/install-deps.sh test

unit: $(UNIT_BIN)
	@tests/unit/run.sh $(UNIT_BIN)

integration: $(BIN)
	GATEWAY_BIN=$(abspath $(BIN)) node --test --test-concurrency=1 tests/integration/

test: test-deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory integration

run: test-deps
	@$(MAKE) --no-print-directory all
	@deploy/run-demo.sh $(abspath $(BIN))

format:
	clang-format -i gateway/*.[ch] policy/*.[ch] cache/*.[ch] tests/unit/*.[ch] tests/fuzz/*.c

clean:
	rm -rf build

# Fuzzers (libFuzzer + ASan + UBSan, clang): tests/fuzz/fuzz_NAME.c -> build/fuzz/fuzz_NAME, each
# run FUZZ_SECONDS on the seeds in tests/fuzz/corpus/NAME (with tests/fuzz/NAME.dict); what it
# learns goes to build/fuzz/corpus/NAME, a crashing input to build/fuzz/NAME-crash-*.
FUZZ_SECONDS ?= 30
FUZZ_CC      ?= clang
FUZZ_CFLAGS  := -O1 -g -std=c11 -D_GNU_SOURCE -Wall -Wextra -MMD -MP -I. -fno-omit-frame-pointer \
		-fsanitize=address,undefined -fno-sanitize-recover=all \
		$(shell pkg-config --cflags $(PKGS) 2>/dev/null)
FUZZ_OBJ     := $(LIB_SRC:%.c=build/fuzz/obj/%.o)
FUZZ_BIN     := $(patsubst tests/fuzz/%.c,build/fuzz/%,$(wildcard tests/fuzz/fuzz_*.c))

build/fuzz/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_BIN): build/fuzz/%: tests/fuzz/%.c $(FUZZ_OBJ)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_OBJ) $(LDLIBS)

fuzz: $(FUZZ_BIN)
	@status=0; for f in $(FUZZ_BIN); do \
		name=$${f#build/fuzz/fuzz_}; \
		dict=; [ -f tests/fuzz/$$name.dict ] && dict=-dict=tests/fuzz/$$name.dict; \
		mkdir -p build/fuzz/corpus/$$name; \
		echo "fuzz: $$name for $(FUZZ_SECONDS) s"; \
		$$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 $$dict \
			-artifact_prefix=build/fuzz/$$name- \
			build/fuzz/corpus/$$name tests/fuzz/corpus/$$name || status=1; \
	done; exit $$status

# Benchmarks (not part of `make test`; they print tables and assert nothing): the metadata cache
# (upstream round trips saved, a hit against a miss), then the gateway against nginx in front of
# a canned upstream (wrk at c=1 and c=32, JSON and SSE), N open SSE streams (memory per stream),
# and a callgrind profile under load. Installs nginx, wrk and valgrind when missing. About 4
# minutes; see tests/bench/README.md and docs/benchmarks.md.
.PHONY: bench bench-deps
bench-deps:
	@deploy/install-deps.sh bench
bench: bench-deps
	@$(MAKE) --no-print-directory all
	GATEWAY_BIN=$(abspath $(BIN)) node tests/bench/cache.mjs
	GATEWAY_BIN=$(abspath $(BIN)) node tests/bench/proxy.mjs

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
