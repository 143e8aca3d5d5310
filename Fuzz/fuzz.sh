#!/usr/bin/env bash
# libFuzzer campaign driver for the Fuzz package (issue 19 finding 12). Called by the root
# Makefile (`make fuzz`, `make fuzz-smoke`, `make fuzz-seeds`); run from the repository root.
#
#   Fuzz/fuzz.sh build              build, -sanitize=fuzzer,address (FUZZ_CONFIG: release)
#   Fuzz/fuzz.sh run   [TARGET...]  campaign: each target in turn, one process (-jobs not used:
#                                   a single in-process fuzzer is one job), FUZZ_RUNS executions
#                                   or FUZZ_SECONDS, whichever comes first
#   Fuzz/fuzz.sh smoke [TARGET...]  bounded CI smoke (debug build, FUZZ_SMOKE_CONFIG): the seed
#                                   corpus, then FUZZ_SMOKE_RUNS runs or FUZZ_SMOKE_SECONDS per
#                                   target; fails on any crash, leak, hang or oracle failure
#   Fuzz/fuzz.sh seeds [TARGET...]  regenerate Fuzz/Corpus/<target>/ from ../shared (the targets'
#                                   --make-seeds mode)
#   Fuzz/fuzz.sh summary            the table of the last campaign's logs
#
# New corpus entries go to $FUZZ_WORK/corpus/<target>/ (not into git); crashes, leaks and hangs
# to $FUZZ_WORK/artifacts/<target>/; logs to $FUZZ_SCRATCH/logs/.
set -uo pipefail

SWIFT=${SWIFT:-swift}
ROOT=$(pwd)
FUZZ_SCRATCH=${FUZZ_SCRATCH:-.build-fuzz}
case $FUZZ_SCRATCH in /*) ;; *) FUZZ_SCRATCH=$ROOT/$FUZZ_SCRATCH ;; esac
FUZZ_WORK=${FUZZ_WORK:-$FUZZ_SCRATCH/work}
FUZZ_RUNS=${FUZZ_RUNS:-10000000}
FUZZ_SECONDS=${FUZZ_SECONDS:-7200}
FUZZ_SMOKE_RUNS=${FUZZ_SMOKE_RUNS:-200000}
FUZZ_SMOKE_SECONDS=${FUZZ_SMOKE_SECONDS:-20}
FUZZ_ARGS=${FUZZ_ARGS:-}
# Build configuration, -sanitize=fuzzer,address in both: release for the campaign (`run`), debug
# for the smoke (a clean debug build takes ~1.5 min here against ~5 min for release; CI builds it
# from scratch on every run).
FUZZ_CONFIG=${FUZZ_CONFIG:-release}
FUZZ_SMOKE_CONFIG=${FUZZ_SMOKE_CONFIG:-debug}
ALL_TARGETS="srtp mikey flute dcf pcap config keyserver"
LOGS=$FUZZ_SCRATCH/logs
BIN=$FUZZ_SCRATCH/$FUZZ_CONFIG

# Hangs are findings: one input may take at most 10 s (libFuzzer's default is 1200 s).
COMMON_FLAGS="-timeout=10 -rss_limit_mb=2048 -print_final_stats=1"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0}
# Swift's own crash backtracer runs in a second thread that trips ASan; libFuzzer and ASan
# report the crash with a symbolised stack instead.
export SWIFT_BACKTRACE=enable=no

cmd=${1:-}; shift || true
targets=${*:-$ALL_TARGETS}

build() {
    echo "fuzz: building $(echo $ALL_TARGETS | wc -w) targets ($FUZZ_CONFIG, -sanitize=fuzzer,address) in $FUZZ_SCRATCH"
    # lld: gold stops with "internal error in format_file_lineno" on these sanitizer builds.
    (cd Fuzz && "$SWIFT" build -c "$FUZZ_CONFIG" --scratch-path "$FUZZ_SCRATCH" -Xswiftc -sanitize=fuzzer,address -Xswiftc -use-ld=lld)
}

dict_flag() { [ -f "Fuzz/Dictionaries/$1.dict" ] && echo "-dict=Fuzz/Dictionaries/$1.dict"; }

# Final numbers of one libFuzzer log: runs, seconds, exec/s, cov, ft (from -print_final_stats
# and the last status line).
stats() {
    local log=$1
    local runs secs execs cov ft
    runs=$(grep -E '^stat::number_of_executed_units:' "$log" | tail -1 | awk '{print $2}')
    secs=$(grep -E '^Done [0-9]+ runs in [0-9]+ second' "$log" | tail -1 | awk '{print $5}')
    execs=$(grep -E '^stat::average_exec_per_sec:' "$log" | tail -1 | awk '{print $2}')
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | awk '{print $2}')
    ft=$(grep -oE 'ft: [0-9]+' "$log" | tail -1 | awk '{print $2}')
    echo "${runs:-?} ${secs:-?} ${execs:-?} ${cov:-?} ${ft:-?}"
}

run_one() {   # target, runs, seconds, writable corpus, label
    local t=$1 runs=$2 secs=$3 corpus=$4 label=$5
    local bin=$BIN/fuzz-$t log=$LOGS/$label-$t.log arts=$FUZZ_WORK/artifacts/$t
    [ -x "$bin" ] || { echo "fuzz: $bin missing (run: Fuzz/fuzz.sh build)"; return 2; }
    mkdir -p "$corpus" "$arts" "$LOGS"
    local start=$SECONDS
    # shellcheck disable=SC2046
    "$bin" $COMMON_FLAGS -runs="$runs" -max_total_time="$secs" -artifact_prefix="$arts/" $(dict_flag "$t") $FUZZ_ARGS \
        "$corpus" "Fuzz/Corpus/$t" >"$log" 2>&1
    local rc=$?
    read -r n s e c f <<<"$(stats "$log")"
    printf "%-10s rc=%-3s runs=%-10s secs=%-6s exec/s=%-7s cov=%-6s ft=%-6s wall=%ss log=%s\n" \
        "$t" "$rc" "$n" "$s" "$e" "$c" "$f" "$((SECONDS - start))" "${log#$ROOT/}"
    if [ $rc -ne 0 ]; then
        echo "fuzz: $t FAILED (exit $rc); the report:"
        grep -E 'ERROR: |SUMMARY: |FUZZ ORACLE FAILURE|Fatal error|deadly signal|Test unit written|==[0-9]+==' "$log" | head -20 | sed 's/^/  /'
    fi
    return $rc
}

case $cmd in
build)
    build
    ;;
run)
    build || exit 1
    failed=""
    mkdir -p "$LOGS"
    : >"$LOGS/summary.txt"
    for t in $targets; do
        run_one "$t" "$FUZZ_RUNS" "$FUZZ_SECONDS" "$FUZZ_WORK/corpus/$t" campaign | tee -a "$LOGS/summary.txt"
        [ "${PIPESTATUS[0]}" -eq 0 ] || failed="$failed $t"
    done
    echo "fuzz: new corpus entries in ${FUZZ_WORK#$ROOT/}/corpus/<target>/ (minimise with -merge=1 before committing any)"
    [ -z "$failed" ] || { echo "fuzz: crashes/leaks/hangs in:$failed (artifacts in ${FUZZ_WORK#$ROOT/}/artifacts/)"; exit 1; }
    ;;
smoke)
    FUZZ_CONFIG=$FUZZ_SMOKE_CONFIG
    BIN=$FUZZ_SCRATCH/$FUZZ_CONFIG
    start=$SECONDS
    build || exit 1
    built=$SECONDS
    failed=""
    for t in $targets; do
        tmp=$(mktemp -d "${TMPDIR:-/tmp}/fuzz-smoke-$t.XXXXXX")
        run_one "$t" "$FUZZ_SMOKE_RUNS" "$FUZZ_SMOKE_SECONDS" "$tmp" smoke || failed="$failed $t"
        rm -rf "$tmp"
    done
    echo "fuzz-smoke: build $((built - start)) s, smoke $((SECONDS - built)) s"
    [ -z "$failed" ] || { echo "fuzz-smoke: FAILED:$failed"; exit 1; }
    ;;
seeds)
    build || exit 1
    for t in $targets; do
        rm -rf "Fuzz/Corpus/$t"
        "$BIN/fuzz-$t" --make-seeds "Fuzz/Corpus/$t" || exit 1
    done
    ;;
summary)
    for f in "$LOGS"/campaign-*.log; do
        t=${f##*/campaign-}; t=${t%.log}
        read -r n s e c ft <<<"$(stats "$f")"
        printf "| %s | %s | %s | %s | %s | %s |\n" "$t" "$n" "$s" "$e" "$c" "$ft"
    done
    ;;
*)
    sed -n '2,20p' "$0"
    exit 2
    ;;
esac
