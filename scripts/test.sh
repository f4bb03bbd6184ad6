#!/usr/bin/env bash
# test.sh: the README's test command. Installs what the tests need, builds
# ferry twice (plain, and with AddressSanitizer + UndefinedBehaviorSanitizer),
# and runs the unit tests and the end-to-end suite (real Prosody) on both, the durable,
# webhook, SMS, IRC archive and IRC settings groups once more on a throwaway PostgreSQL store;
# then every fuzz target for 30 s (clang, two at a time: about 3 minutes).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/deps.sh

cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j2
cmake -S . -B build-asan -DFERRY_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
cmake --build build-asan -j2

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

echo "== unit tests (plain build)"
(cd build && FERRY_BIN="$PWD/ferry" ctest --output-on-failure)
echo "== unit tests (ASan + UBSan)"
(cd build-asan && FERRY_BIN="$PWD/ferry" ctest --output-on-failure)

echo "== end-to-end (plain build)"
FERRY_BIN="$PWD/build/ferry" /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/e2e
echo "== end-to-end (ASan + UBSan)"
FERRY_BIN="$PWD/build-asan/ferry" /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/e2e

# The durable, webhook, SMS, IRC archive and IRC settings (registrations, SASL) groups once
# more with every ferry's store in a throwaway PostgreSQL (tests/e2e/pg_helpers.py; about
# two and a half minutes on the plain build).
PG_TESTS=(tests/e2e/test_durable.py tests/e2e/test_inbound.py tests/e2e/test_outbound.py
          tests/e2e/test_sms.py tests/e2e/test_irc_archive.py tests/e2e/test_irc_sasl.py)
echo "== end-to-end on the PostgreSQL store (plain build)"
FERRY_BIN="$PWD/build/ferry" /usr/bin/python3 -m pytest -q -p no:cacheprovider --store=postgresql "${PG_TESTS[@]}"
echo "== end-to-end on the PostgreSQL store (ASan + UBSan)"
FERRY_BIN="$PWD/build-asan/ferry" /usr/bin/python3 -m pytest -q -p no:cacheprovider --store=postgresql "${PG_TESTS[@]}"

echo "== fuzz targets (30 s each)"
bash scripts/fuzz.sh -j 2
