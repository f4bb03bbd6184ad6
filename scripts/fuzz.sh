#!/usr/bin/env bash
# scripts/fuzz.sh: builds the libFuzzer targets of tests/fuzz with clang
# (ASan + UBSan, in build-fuzz) and runs each for a while; fails if any of
# them crashes, leaks, hangs or trips its oracle. What each target covers:
# tests/fuzz/README.md.
#
#   scripts/fuzz.sh                 every target 30 s, one after another
#   scripts/fuzz.sh --long          every target 10 minutes
#   scripts/fuzz.sh --time 120 -j 2 irc_line http
#                                   120 s each, two at a time, just these two
#
# New inputs that reach new code are kept in build-fuzz/fuzz-corpus/TARGET
# (next runs start from them); a crasher is written to
# build-fuzz/fuzz-crashes/TARGET-crash-... and the run's log to
# build-fuzz/fuzz-logs/TARGET.log. Keep a crasher as a regression test:
# fix the bug, then copy the file to tests/fuzz/regressions/TARGET/.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
    sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
}

seconds=30
jobs=1
targets=()
while [[ $# -gt 0 ]]; do
    case $1 in
        --long) seconds=600 ;;
        --time) seconds=${2:?--time needs seconds}; shift ;;
        -j) jobs=${2:?-j needs a number}; shift ;;
        -h|--help) usage ;;
        -*) echo "fuzz: unknown option $1" >&2; usage ;;
        *) targets+=("$1") ;;
    esac
    shift
done
[[ $seconds =~ ^[0-9]+$ && $seconds -gt 0 ]] || { echo "fuzz: --time wants seconds" >&2; exit 2; }
[[ $jobs =~ ^[0-9]+$ && $jobs -gt 0 ]] || { echo "fuzz: -j wants a number" >&2; exit 2; }

if [[ ${#targets[@]} -eq 0 ]]; then
    for f in tests/fuzz/fuzz_*.c; do
        t=${f#tests/fuzz/fuzz_}
        targets+=("${t%.c}")
    done
fi
for t in "${targets[@]}"; do
    [[ -f tests/fuzz/fuzz_$t.c ]] || { echo "fuzz: no target $t (tests/fuzz/fuzz_$t.c)" >&2; exit 2; }
done

command -v clang >/dev/null || { echo "fuzz: needs clang and libclang-rt-14-dev (scripts/deps.sh)" >&2; exit 1; }
CC=clang cmake -S . -B build-fuzz -DFERRY_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-fuzz -j2 --target fuzz_all >/dev/null

out=build-fuzz
mkdir -p "$out/fuzz-corpus" "$out/fuzz-crashes" "$out/fuzz-logs"
# Leaks fail a run too; a report stops at the first error.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

run_one() {
    local t=$1 log=$out/fuzz-logs/$1.log
    local args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
                -artifact_prefix="$out/fuzz-crashes/$t-")
    [[ -f tests/fuzz/$t.dict ]] && args+=(-dict="tests/fuzz/$t.dict")
    if [[ -f tests/fuzz/$t.options ]]; then
        while read -r opt; do [[ -n $opt && $opt != \#* ]] && args+=("$opt"); done <"tests/fuzz/$t.options"
    fi
    mkdir -p "$out/fuzz-corpus/$t"
    local seeds=() d
    for d in tests/fuzz/corpus/$t tests/fuzz/regressions/$t; do
        [[ -d $d ]] && seeds+=("$d")
    done
    local rc=0
    # (braces: the shell's own "Aborted" notice goes nowhere; the log says it all)
    { "$out/fuzz_$t" "${args[@]}" "$out/fuzz-corpus/$t" "${seeds[@]}" >"$log" 2>&1; } 2>/dev/null || rc=$?
    local execs secs
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    secs=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
    if [[ $rc -eq 0 ]]; then
        printf 'fuzz: %-14s ok      %10s execs in %s s\n' "$t" "${execs:-?}" "${secs:-$seconds}"
    else
        printf 'fuzz: %-14s FAILED  (exit %d; log %s)\n' "$t" "$rc" "$log"
        grep -a -m1 -E 'FUZZ ORACLE|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error' "$log" |
            sed 's/^/fuzz:   /' || true
        ls "$out/fuzz-crashes/$t-"* 2>/dev/null | sed 's/^/fuzz:   input: /' || true
    fi
    return $rc
}

echo "fuzz: ${#targets[@]} target(s), $seconds s each, $jobs at a time"
failed=0
running=0
for t in "${targets[@]}"; do
    if [[ $running -ge $jobs ]]; then
        wait -n || failed=1
        running=$((running - 1))
    fi
    run_one "$t" &
    running=$((running + 1))
done
while [[ $running -gt 0 ]]; do
    wait -n || failed=1
    running=$((running - 1))
done
if [[ $failed -ne 0 ]]; then
    echo "fuzz: FAILED (see above)"
    exit 1
fi
echo "fuzz: all ${#targets[@]} target(s) ran $seconds s without a finding"
