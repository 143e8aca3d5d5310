# mbms-gateway — the two set-up commands are `make demo` and `make test`.
# Both install missing Debian packages first (DEBIAN_FRONTEND=noninteractive: tshark asks otherwise).

SWIFT ?= swift
SHELL := /bin/bash
APT_PACKAGES := pkg-config libssl-dev libpcap-dev libsrtp2-dev libsqlite3-dev sqlite3 tshark curl openssl

.PHONY: deps demo test bench build clean sanitize soak crash-restart fuzz fuzz-smoke fuzz-build fuzz-seeds

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
	@# Then each libFuzzer target over its seed corpus plus a bounded smoke (issue 19 finding 12).
	@$(MAKE) --no-print-directory fuzz-smoke

## SRTP protect throughput: ours vs Debian libsrtp2 vs the OpenSSL floor, same run (release build);
## then the product's own `bench` (crypto, replay, live relay, workers, allocations per packet).
bench: deps
	$(SWIFT) build -c release --product srtp-bench
	.build/release/srtp-bench
	$(SWIFT) build -c release --product mbms-gateway
	.build/release/mbms-gateway bench

## The whole suite under AddressSanitizer (UBSan in trap mode on the C targets; swiftc has none on Linux),
## then the threaded tests (lanes, workers, rings, live runs) under ThreadSanitizer: Tools/sanitize.sh.
## Fresh builds in .build-asan and .build-tsan take ~20 min each on 2 CPUs.
sanitize: deps
	SWIFT="$(SWIFT)" Tools/sanitize.sh

## Soak and overload of `run` on loopback (issue 19 finding 14): steady RTP on 4 sessions, garbage, MTK
## switches every 4 s; RSS and open fds sampled every 10 s must stay flat after warm-up; then an overload
## burst (drops counted by reason) and recovery. DURATION in seconds (default 300). Docs/Soak.md.
## SOAK_SCRATCH picks the build folder; SOAK_BUILD=0 uses the binary there as it is; SEED repeats a run.
SOAK_SCRATCH ?= .build
SOAK_BINARY ?= $(SOAK_SCRATCH)/release/mbms-gateway
SOAK_BUILD ?= 1
DURATION ?= 300
KILLS ?= 20
SEED ?=

soak:
	@if [ "$(SOAK_BUILD)" != 0 ]; then $(SWIFT) build -c release --scratch-path $(SOAK_SCRATCH) --product mbms-gateway; fi
	python3 Tools/soak.py --binary $(SOAK_BINARY) --duration $(DURATION) $(if $(SEED),--seed $(SEED)) \
	  --out $(SOAK_SCRATCH)/soak/$$(date +%Y%m%d-%H%M%S) $(SOAK_ARGS)

## Crash-restart (issue 19 finding 15): KILLS kill -9 of `run` at seeded random points, restarts on the same
## store, then no (MKI, SSRC, index), MIKEY TS or MTK ID reused, checked on the captured output.
crash-restart:
	@if [ "$(SOAK_BUILD)" != 0 ]; then $(SWIFT) build -c release --scratch-path $(SOAK_SCRATCH) --product mbms-gateway; fi
	python3 Tools/crash-restart.py --self-test
	python3 Tools/crash-restart.py --binary $(SOAK_BINARY) --kills $(KILLS) $(if $(SEED),--seed $(SEED)) \
	  --out $(SOAK_SCRATCH)/crash-restart/$$(date +%Y%m%d-%H%M%S) $(CRASH_ARGS)

## Coverage-guided fuzzing (issue 19 finding 12; Fuzz/README.md): one libFuzzer target per decoder, built
## from the Fuzz/ package (release, -sanitize=fuzzer,address) in FUZZ_SCRATCH. `make fuzz` runs every target
## in turn for FUZZ_RUNS executions or FUZZ_SECONDS, whichever comes first (FUZZ_TARGETS picks some); new
## corpus entries go to FUZZ_SCRATCH/work/corpus/<target>/, crashes to FUZZ_SCRATCH/work/artifacts/<target>/.
## `make fuzz-smoke` (run by `make test`; a debug build with the same sanitizers, cheaper to build from
## scratch): the seed corpus plus FUZZ_SMOKE_RUNS runs or FUZZ_SMOKE_SECONDS per target.
## `make fuzz-seeds` regenerates Fuzz/Corpus/ from ../shared.
FUZZ_SCRATCH ?= .build-fuzz
FUZZ_RUNS ?= 10000000
FUZZ_SECONDS ?= 7200
FUZZ_SMOKE_RUNS ?= 200000
FUZZ_SMOKE_SECONDS ?= 20
FUZZ_SMOKE_CONFIG ?= debug
FUZZ_TARGETS ?=
FUZZ_ENV = SWIFT="$(SWIFT)" FUZZ_SCRATCH="$(FUZZ_SCRATCH)" FUZZ_RUNS="$(FUZZ_RUNS)" FUZZ_SECONDS="$(FUZZ_SECONDS)" \
	FUZZ_SMOKE_RUNS="$(FUZZ_SMOKE_RUNS)" FUZZ_SMOKE_SECONDS="$(FUZZ_SMOKE_SECONDS)" FUZZ_SMOKE_CONFIG="$(FUZZ_SMOKE_CONFIG)"

fuzz-build:
	$(FUZZ_ENV) Fuzz/fuzz.sh build

fuzz:
	$(FUZZ_ENV) Fuzz/fuzz.sh run $(FUZZ_TARGETS)

fuzz-smoke:
	$(FUZZ_ENV) Fuzz/fuzz.sh smoke $(FUZZ_TARGETS)

fuzz-seeds:
	$(FUZZ_ENV) Fuzz/fuzz.sh seeds $(FUZZ_TARGETS)

clean:
	rm -rf .build
