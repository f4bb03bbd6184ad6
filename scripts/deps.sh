#!/usr/bin/env bash
# scripts/deps.sh: install (with apt-get, as root, on Debian 12) everything that building,
# running and testing ferry needs. Idempotent: installs only what is missing, and runs
# `apt-get update` only when something is missing. Never leaves a system Prosody, ejabberd
# or ngircd running that this run's install started.
set -euo pipefail

# Building ferry.
BUILD_PKGS=(build-essential cmake pkg-config libstrophe-dev libuv1-dev libcurl4-openssl-dev
            libjansson-dev libmicrohttpd-dev libexpat1-dev libssl-dev libsqlite3-dev sqlite3 libpq-dev)
# Tests and the demo: XMPP/IRC servers on loopback, an XMPP client library, pytest, curl,
# the toml-test vectors (shipped by golang-github-burntsushi-toml-dev), and PostgreSQL 15 for
# the PostgreSQL store's tests (tests/e2e/pg_helpers.py runs its own throwaway server).
TEST_PKGS=(prosody python3 python3-slixmpp python3-pytest curl golang-github-burntsushi-toml-dev
           ejabberd ngircd inspircd anope python3-cryptography postgresql-15)
# The fuzz targets (scripts/fuzz.sh): clang 14 and its libFuzzer runtime
# (libclang_rt.fuzzer*.a ships in libclang-rt-14-dev).
FUZZ_PKGS=(clang libclang-rt-14-dev)

# System instances that a package's maintainer scripts might start: name and pidfile. The pid
# is signalled only if its command line mentions that name.
SERVICES=(
    "prosody:/run/prosody/prosody.pid"
    "ejabberd:/run/ejabberd/ejabberd.pid"
    "ngircd:/run/ngircd/ngircd.pid"
    "inspircd:/run/inspircd/inspircd.pid"
    "anope:/run/anope/anope.pid"
    "postgres:/run/postgresql/15-main.pid"
)

log() { printf 'deps: %s\n' "$*"; }

if ! command -v dpkg-query >/dev/null || ! command -v apt-get >/dev/null; then
    echo "deps: needs a Debian system (dpkg-query, apt-get)" >&2
    exit 1
fi

is_installed() {
    [[ $(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true) == installed ]]
}

missing=()
for p in "${BUILD_PKGS[@]}" "${TEST_PKGS[@]}" "${FUZZ_PKGS[@]}"; do
    is_installed "$p" || missing+=("$p")
done

if [[ ${#missing[@]} -eq 0 ]]; then
    log "all ${#BUILD_PKGS[@]} build, ${#TEST_PKGS[@]} test/demo and ${#FUZZ_PKGS[@]} fuzz packages are already installed"
    exit 0
fi

log "missing, will install: ${missing[*]}"
if [[ $(id -u) -ne 0 ]]; then
    echo "deps: installing needs root (apt-get install); try: sudo $0" >&2
    exit 1
fi

# Keep maintainer scripts from starting system services (invoke-rc.d honours policy-rc.d;
# 101 = "action not allowed"). Only remove the file if this script created it.
POLICY=/usr/sbin/policy-rc.d
created_policy=0
cleanup() {
    if [[ $created_policy -eq 1 ]]; then
        rm -f "$POLICY"
        log "removed the temporary $POLICY"
    fi
}
trap cleanup EXIT
if [[ ! -e $POLICY ]]; then
    printf '#!/bin/sh\n# temporary, from ferry scripts/deps.sh: do not start services\nexit 101\n' >"$POLICY"
    chmod 0755 "$POLICY"
    created_policy=1
    log "created a temporary $POLICY (exit 101) so no system service starts"
fi

# Pidfiles present before the install belong to instances someone else started: leave them.
declare -A running_before=()
for s in "${SERVICES[@]}"; do
    IFS=: read -r name pidfile <<<"$s"
    if [[ -s $pidfile ]] && kill -0 "$(cat "$pidfile" 2>/dev/null)" 2>/dev/null; then
        running_before[$name]=1
    fi
done

export DEBIAN_FRONTEND=noninteractive
log "apt-get update"
apt-get update -q
log "apt-get install ${missing[*]}"
apt-get install -y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}"

# If a system instance got started anyway by this install, stop it by the pid in its pidfile
# (after checking that the pid is that program), never by name.
for s in "${SERVICES[@]}"; do
    IFS=: read -r name pidfile <<<"$s"
    [[ -n ${running_before[$name]:-} ]] && continue
    [[ -s $pidfile ]] || continue
    pid=$(tr -dc '0-9' <"$pidfile" 2>/dev/null || true)
    if [[ -z $pid ]] || ! kill -0 "$pid" 2>/dev/null; then continue; fi
    if [[ $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) != *"$name"* ]]; then
        log "$pidfile names pid $pid, which is not $name: left alone"
        continue
    fi
    log "a system $name (pid $pid) was started by the install: stopping it"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        log "$name (pid $pid) still running after 5 s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
done

still=()
for p in "${missing[@]}"; do is_installed "$p" || still+=("$p"); done
if [[ ${#still[@]} -gt 0 ]]; then
    echo "deps: still not installed: ${still[*]}" >&2
    exit 1
fi
log "installed: ${missing[*]}"
