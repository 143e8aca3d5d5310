# mbms-gateway — the two set-up commands are `make demo` and `make test`.
# Both install missing Debian packages first (DEBIAN_FRONTEND=noninteractive: tshark asks otherwise).

SWIFT ?= swift
SHELL := /bin/bash
APT_PACKAGES := pkg-config libssl-dev libpcap-dev libsrtp2-dev libsqlite3-dev sqlite3 tshark curl openssl

.PHONY: deps demo test bench build clean

deps:
	@missing=""; \
	for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" -ne 0 ] && SUDO=sudo; \
	  $$SUDO apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi
	@# The independent FLUTE receiver used as a test oracle (PyPI flute-alc); tests skip without it.
	@python3 -c 'import flute.receiver' 2>/dev/null || python3 -m pip install -q flute-alc 2>/dev/null || \
	  echo "note: could not install flute-alc; the independent FLUTE receiver test will be skipped"

build: deps
	$(SWIFT) build -c release --product mbms-gateway

## Runs the product end to end on input it generates itself (no ../shared needed).
demo: build
	.build/release/mbms-gateway demo

## Runs every test (vectors, round trips, libsrtp2 interop, malformed input, ...).
test: deps
	$(SWIFT) build --build-tests
	@mkdir -p .build; set -o pipefail; \
	$(SWIFT) test --disable-swift-testing 2>&1 | tee .build/test.log; rc=$$?; \
	summary=$$(grep -E "Executed [0-9]+ tests?, with [0-9]+ failures?" .build/test.log | tail -1); \
	n=$$(echo "$$summary" | sed -E 's/.*Executed ([0-9]+) test.*/\1/'); \
	f=$$(echo "$$summary" | sed -E 's/.*with ([0-9]+) failure.*/\1/'); \
	skipped=$$(grep -cE "Test Case .* skipped" .build/test.log || true); \
	echo "tests: $$((n - f - skipped)) passed, $$f failed, $$skipped skipped"; \
	exit $$rc

## SRTP protect throughput: ours vs Debian libsrtp2 vs the OpenSSL floor, same run (release build);
## then the product's own `bench` (crypto, replay, live relay, workers, allocations per packet).
bench: deps
	$(SWIFT) build -c release --product srtp-bench
	.build/release/srtp-bench
	$(SWIFT) build -c release --product mbms-gateway
	.build/release/mbms-gateway bench

clean:
	rm -rf .build
