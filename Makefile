# The two commands: `make run` and `make test`. Both install what is missing first (scripts/setup.sh,
# idempotent), then build the workspace once in release mode.
CARGO ?= cargo
RELEASE_DIR := target/release
MODULE_SO := $(RELEASE_DIR)/chat_alias.so

.PHONY: all deps build run test check-symbols check-config bench bench-micro demo fuzz fmt lint clean

all: build

deps:
	@bash scripts/setup.sh >/dev/null

build: deps
	$(CARGO) build --release --workspace --bins --lib
	@# Replace atomically: rewriting the file in place would change the pages of a chat_alias.so a
	@# running Kamailio has mapped (SIGBUS in its workers).
	@cp -f $(RELEASE_DIR)/libchat_alias.so $(MODULE_SO).tmp && mv -f $(MODULE_SO).tmp $(MODULE_SO)

check-symbols: build
	@bash scripts/check-symbols.sh $(MODULE_SO)

check-config: build
	@kamailio -c -f kamailio/kamailio.cfg -A 'MODULE_PATH="$(CURDIR)/$(MODULE_SO)"' \
	  -A 'GROUPS_DIR="$(CURDIR)/kamailio/groups"' > target/check-config.log 2>&1 \
	  || { cat target/check-config.log; exit 1; }
	@echo "check-config: kamailio/kamailio.cfg parses and loads chat_alias.so"

test: build check-symbols check-config
	CHAT_ALIAS_MODULE=$(CURDIR)/$(MODULE_SO) CHAT_ALIAS_RELAY_BIN=$(CURDIR)/$(RELEASE_DIR)/chat-alias-relay \
	  $(CARGO) test --release --workspace

run: build
	@bash scripts/run-stack.sh

# A scripted conversation of three chat-alias-client processes in sip:lounge@im.example.net (alice,
# and two anonymous "bob"s: the second is told it is bob-2). Uses the stack of `make run` if one
# answers on CHAT_ALIAS_SIP_PORT (default 5060), else starts its own on free ports.
demo: build
	@bash scripts/demo.sh

# The product against its baselines in the same run (scripts/bench.sh): joins and Kamailio memory
# with sipp against the sample config + relay and against bench/baseline.cfg, then the fan-out part
# when its binary is built; one table, rows as JSON under target/bench/. Figures: docs/benchmarks.md.
bench: build
	bash scripts/bench.sh

# Criterion micro-benchmarks of the per-join work without Kamailio (alias table, group policy, parsers).
bench-micro: deps
	$(CARGO) bench -p chat-alias-focus -p chat-alias-proto --bench focus --bench proto

# Every cargo-fuzz target (crates/*/fuzz: the parsers of untrusted bytes and the MSRP switch) for a
# set time each (FUZZ_SECONDS; defaults reach 10 million executions per target on 2 cores), with
# nightly and cargo-fuzz installed when missing. Table in docs/fuzzing.md; non-zero on a finding.
# Not part of `make test`.
fuzz:
	bash scripts/fuzz.sh

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

clean:
	$(CARGO) clean
