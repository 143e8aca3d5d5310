#!/usr/bin/env bash
# `make sanitize`: the whole test suite under AddressSanitizer, then the threaded tests under
# ThreadSanitizer, each in a build folder of its own (fresh builds take ~20 min each on 2 CPUs).
#
# * ASan instruments Swift and C. swiftc has no UndefinedBehaviorSanitizer on Linux
#   ("unsupported option '-sanitize=undefined'"); Swift code traps on overflow, bounds and
#   nil by itself in these debug builds, so UBSan covers the C targets (CBatchAES, CMultiHash,
#   CInternetChecksum, CMapGuard): -fsanitize=undefined in trap mode (no run-time library:
#   undefined behaviour stops the test process with SIGILL, which fails the run).
# * LeakSanitizer is off: XCTest, Foundation's Process and the Swift runtime keep allocations
#   to process exit that LSan reports as leaks in every test process. Leaks of the product are
#   watched where they matter, over time: `make soak` (RSS and fds flat for an hour).
# * The threaded tests (replay lanes, live workers, SPSC rings, threaded capture scans, the
#   live gateway and key server as child processes, which are TSan builds too) run under TSan.
set -euo pipefail
SWIFT=${SWIFT:-swift}
cd "$(dirname "$0")/.."
TSAN_TESTS=${TSAN_TESTS:-'SPSCRingTests|ReplayPipelineTests|ReplayBatchTests|LiveWorkersTests|LiveTests|LiveLifecycleTests|LiveDownloadTests|LiveHardeningTests|CaptureTests|SessionLookaheadTests|KeystreamReuseTests|MSKDistributionServiceTests|SRTPBatchProtectTests|KernelDropTests'}
export CI=${CI:-true}

echo "== AddressSanitizer (+ UBSan on the C targets): the whole suite"
$SWIFT build --build-tests --sanitize=address -Xcc -fsanitize=undefined -Xcc -fsanitize-trap=undefined --scratch-path .build-asan
MBMS_SANITIZER=address ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:abort_on_error=1 \
  $SWIFT test --skip-build --sanitize=address --scratch-path .build-asan --disable-swift-testing 2>&1 | tee .build-asan/test.log
grep -q "ERROR: AddressSanitizer" .build-asan/test.log && { echo "AddressSanitizer reported an error"; exit 1; }

echo "== ThreadSanitizer: the threaded tests ($TSAN_TESTS)"
$SWIFT build --build-tests --sanitize=thread --scratch-path .build-tsan
MBMS_SANITIZER=thread TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
  $SWIFT test --skip-build --sanitize=thread --scratch-path .build-tsan --disable-swift-testing --filter "$TSAN_TESTS" 2>&1 | tee .build-tsan/test.log
grep -q "WARNING: ThreadSanitizer" .build-tsan/test.log && { echo "ThreadSanitizer reported a race"; exit 1; }
echo "sanitize: clean"
