#!/usr/bin/env bash
# scripts/demo.sh: run ferry for real on this machine (Debian 12, as root).
# Installs what is missing (scripts/deps.sh), builds ferry, then under ./demo/ starts a
# Prosody on loopback with the user alice@localhost, a webhook receiver that prints what it
# gets (scripts/demo_receiver.py), and ferry with the webhook adapter, and prints what to try.
# Ctrl-C stops everything it started.
#
#   scripts/demo.sh            install, build, run the demo (Ctrl-C stops it)
#   scripts/demo.sh --no-build use the existing build/ferry (or $FERRY)
#   scripts/demo.sh --check    non-interactive self-check: start everything in a temp dir,
#                              POST one message to ferry, expect 202, stop (ferry must exit 0
#                              on SIGTERM); exit 0 on success
# shellcheck disable=SC2317  # functions called from traps and wait_for look unreachable
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "$0" | sed '/shellcheck/d; $d; s/^# \{0,1\}//'; }

BUILD=1
CHECK=0
for arg in "$@"; do
    case $arg in
        --no-build) BUILD=0 ;;
        --check) CHECK=1 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "demo: unknown option $arg" >&2; usage >&2; exit 2 ;;
    esac
done

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
FERRY=${FERRY:-$ROOT/build/ferry}
PY=/usr/bin/python3   # Debian's python3 (has slixmpp); another python3 on PATH may not

if [[ -t 1 ]]; then B=$'\033[1m' N=$'\033[0m'; else B='' N=''; fi
say() { printf '%sdemo:%s %s\n' "$B" "$N" "$*"; }
die() { printf 'demo: ERROR: %s\n' "$*" >&2; exit 1; }

# --- 1. dependencies and build -------------------------------------------------------------
"$ROOT/scripts/deps.sh"
if [[ $BUILD -eq 1 ]]; then
    say "building ferry (cmake, RelWithDebInfo)"
    if ! { cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo && cmake --build build -j2; }; then
        die "the build failed (output above): ferry cannot run until it builds"
    fi
    FERRY=$ROOT/build/ferry
fi
[[ -x $FERRY ]] || die "$FERRY does not exist or is not executable (run without --no-build to build it)"

# --- 2. working directory, ports, secrets --------------------------------------------------
if [[ $CHECK -eq 1 ]]; then
    DIR=$(mktemp -d /tmp/ferry-demo-check.XXXXXX)
else
    DIR=$ROOT/demo
    for f in "$DIR"/*.pid; do
        [[ -s $f ]] || continue
        if kill -0 "$(cat "$f")" 2>/dev/null; then
            die "a demo seems to be running already ($f: pid $(cat "$f")); stop it first (Ctrl-C in its terminal)"
        fi
    done
    rm -rf "$DIR"
    mkdir -p "$DIR"
fi
mkdir -p "$DIR/data/localhost/accounts" "$DIR/certs"

# Four distinct free ports on 127.0.0.1, chosen by the kernel.
read -r C2S_PORT COMP_PORT HTTP_PORT RECV_PORT < <("$PY" - <<'EOF'
import socket
socks = [socket.socket() for _ in range(4)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
EOF
)
rand() { "$PY" -c "import secrets; print(secrets.token_hex($1))"; }
COMP_SECRET=$(rand 16)
TOKEN=$(rand 16)
SIGNING_SECRET=whsec_$("$PY" -c 'import base64, secrets; print(base64.b64encode(secrets.token_bytes(24)).decode())')
DOMAIN=hooks.localhost

# --- 3. stop everything we started, by pid -------------------------------------------------
PIDS=()        # "name:pid", in start order
TAIL_PIDS=()
stop_pid() {   # name pid: SIGTERM, wait up to 5 s, then SIGKILL
    local name=$1 pid=$2 i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        say "$name (pid $pid) did not stop within 5 s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}
CAUGHT=""
cleanup() {
    local rc=$? i j entry name pid
    trap - EXIT INT TERM HUP
    if [[ ${#PIDS[@]} -gt 0 ]]; then
        say "stopping what the demo started"
        for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
            entry=${PIDS[i]}
            name=${entry%%:*} pid=${entry#*:}
            # Ctrl-C reached ferry too (same process group): let its graceful shutdown
            # (at most 5 s) finish instead of interrupting it with a second signal.
            if [[ $CAUGHT == INT && $name == ferry ]]; then
                for ((j = 0; j < 60; j++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            fi
            stop_pid "$name" "$pid"
        done
    fi
    for pid in "${TAIL_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -f "$DIR"/*.pid 2>/dev/null || true
    if [[ $CHECK -eq 1 ]]; then
        if [[ $rc -eq 0 ]]; then
            rm -rf "$DIR"
        else
            say "logs kept in $DIR"
        fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'CAUGHT=INT; exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

started() {    # name pid
    PIDS+=("$1:$2")
    echo "$2" >"$DIR/$1.pid"
}
show_log() {   # name file: print a log's tail on failure
    echo "--- last lines of $2 ---" >&2
    tail -n 30 "$2" >&2 2>/dev/null || true
    echo "---" >&2
}
wait_for() {   # name pid seconds command...: poll the command until it succeeds (bounded)
    local name=$1 pid=$2 secs=$3 i
    shift 3
    for ((i = 0; i < secs * 10; i++)); do
        if "$@"; then return 0; fi
        kill -0 "$pid" 2>/dev/null || { say "$name exited before it was ready"; return 1; }
        sleep 0.1
    done
    say "$name not ready within $secs s"
    return 1
}

# --- 4. Prosody ----------------------------------------------------------------------------
cat >"$DIR/prosody.cfg.lua" <<EOF
-- Prosody for the ferry demo: loopback only, everything under $DIR.
run_as_root = true
daemonize = false
pidfile = "$DIR/prosody-self.pid"
data_path = "$DIR/data"
certificates = "$DIR/certs"
log = { { levels = { min = "info" }, to = "file", filename = "$DIR/prosody.log" } }
modules_enabled = { "disco", "ping", "roster", "saslauth", "offline" }
modules_disabled = { "s2s" }
c2s_ports = { $C2S_PORT }
c2s_interfaces = { "127.0.0.1" }
component_ports = { $COMP_PORT }
component_interfaces = { "127.0.0.1" }
http_ports = {}
https_ports = {}
-- plain passwords over unencrypted loopback, for the demo only
allow_unencrypted_plain_auth = true
c2s_require_encryption = false
authentication = "internal_plain"

VirtualHost "localhost"

Component "$DOMAIN"
    component_secret = "$COMP_SECRET"
EOF
# The user alice/alicepw (internal_plain stores one Lua file per user).
printf 'return { ["password"] = "alicepw"; };\n' >"$DIR/data/localhost/accounts/alice.dat"

say "starting Prosody (c2s 127.0.0.1:$C2S_PORT, components 127.0.0.1:$COMP_PORT)"
prosody --config "$DIR/prosody.cfg.lua" -F >"$DIR/prosody.out" 2>&1 &
started prosody $!
prosody_ready() { grep -q "Activated service 'component'" "$DIR/prosody.log" 2>/dev/null; }
wait_for Prosody "$!" 15 prosody_ready || { show_log prosody "$DIR/prosody.log"; show_log prosody "$DIR/prosody.out"; exit 1; }

# --- 5. the webhook receiver ---------------------------------------------------------------
say "starting the webhook receiver on 127.0.0.1:$RECV_PORT"
"$PY" -u "$ROOT/scripts/demo_receiver.py" --port "$RECV_PORT" --signing-secret "$SIGNING_SECRET" \
    >"$DIR/receiver.log" 2>&1 &
started receiver $!
receiver_ready() { curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$RECV_PORT/" 2>/dev/null; }
wait_for receiver "$!" 10 receiver_ready || { show_log receiver "$DIR/receiver.log"; exit 1; }

# --- 6. ferry ------------------------------------------------------------------------------
cat >"$DIR/gateway.toml" <<EOF
# ferry demo configuration (written by scripts/demo.sh; see gateway.toml.example)
[xmpp]
host = "127.0.0.1"
port = $COMP_PORT

[http]
listen = "127.0.0.1:$HTTP_PORT"
public_url = "http://127.0.0.1:$HTTP_PORT"

[log]
level = "info"

[components.hooks]
adapter = "webhook"
domain = "$DOMAIN"
secret = "$COMP_SECRET"

[components.hooks.endpoints.alerts]
url = "http://127.0.0.1:$RECV_PORT/incoming"
format = "json"
signing_secret = "$SIGNING_SECRET"
token = "$TOKEN"
deliver_to = ["alice@localhost"]
allow = ["localhost"]
EOF
chmod 600 "$DIR/gateway.toml"

if ! "$FERRY" --check-config -c "$DIR/gateway.toml" >"$DIR/check-config.out" 2>&1; then
    cat "$DIR/check-config.out" >&2
    die "ferry --check-config rejected the demo's gateway.toml ($DIR/gateway.toml)"
fi

say "starting ferry ($FERRY -c $DIR/gateway.toml)"
"$FERRY" -c "$DIR/gateway.toml" >"$DIR/ferry.log" 2>&1 &
FERRY_PID=$!
started ferry "$FERRY_PID"
HEALTH_URL="http://127.0.0.1:$HTTP_PORT/healthz"
ferry_linked() { curl -fsS -o /dev/null --max-time 1 "$HEALTH_URL" 2>/dev/null; }
wait_for ferry "$FERRY_PID" 20 ferry_linked || {
    show_log ferry "$DIR/ferry.log"
    show_log prosody "$DIR/prosody.log"
    die "ferry did not come up with its component linked ($HEALTH_URL did not answer 200)"
}
say "ferry is up and linked to Prosody as $DOMAIN"

HOOK_URL="http://127.0.0.1:$HTTP_PORT/hooks/hooks/alerts"

# --- 7a. self-check ------------------------------------------------------------------------
if [[ $CHECK -eq 1 ]]; then
    status=$(curl -sS -o "$DIR/post.out" -w '%{http_code}' --max-time 10 \
        -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
        --data '{"text": "hello from demo.sh --check"}' "$HOOK_URL") || status="curl failed"
    if [[ $status != 202 ]]; then
        say "POST $HOOK_URL answered $status (expected 202): $(head -c 300 "$DIR/post.out" 2>/dev/null)"
        show_log ferry "$DIR/ferry.log"
        exit 1
    fi
    say "POST $HOOK_URL answered 202"
    sleep 0.5   # let the message go out before stopping
    kill -0 "$FERRY_PID" 2>/dev/null || { show_log ferry "$DIR/ferry.log"; die "ferry exited after the POST"; }
    # Graceful shutdown: SIGTERM, exit status 0 within 5 s.
    kill -TERM "$FERRY_PID"
    for ((i = 0; i < 60; i++)); do kill -0 "$FERRY_PID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$FERRY_PID" 2>/dev/null; then
        show_log ferry "$DIR/ferry.log"
        die "ferry did not exit within 6 s of SIGTERM"
    fi
    status=0
    wait "$FERRY_PID" || status=$?
    if [[ $status -ne 0 ]]; then
        show_log ferry "$DIR/ferry.log"
        die "ferry exited with status $status on SIGTERM (expected 0)"
    fi
    say "ferry stopped cleanly on SIGTERM"
    say "check passed: Prosody, receiver and ferry started, inbound webhook accepted (202)"
    exit 0
fi

# --- 7b. interactive: show the logs and tell the user what to try --------------------------
cat <<EOF

==========================================================================================
 ferry demo is running (files in $DIR)

 1. XMPP -> webhook. Log in with any XMPP client:
      account   alice@localhost   password  alicepw
      server    127.0.0.1   port $C2S_PORT   (no TLS: allow plain-text auth; loopback only)
    e.g. profanity:  /connect alice@localhost server 127.0.0.1 port $C2S_PORT tls disable
    Send a message to   alerts@$DOMAIN
    and watch the receiver print it below (ferry POSTs it to http://127.0.0.1:$RECV_PORT/incoming).

 2. webhook -> XMPP. Paste this; the text arrives in alice's client from alerts@$DOMAIN:

    curl -i -H 'Authorization: Bearer $TOKEN' -H 'Content-Type: application/json' \\
         --data '{"text": "Disk almost full on db1"}' $HOOK_URL

 Health: curl $HEALTH_URL
 Logs:   $DIR/ferry.log  $DIR/receiver.log  $DIR/prosody.log
 Ctrl-C stops Prosody, the receiver and ferry.
==========================================================================================

EOF
tail -n +1 -f --pid="$FERRY_PID" "$DIR/ferry.log" 2>/dev/null &
TAIL_PIDS+=($!)
tail -n 0 -f --pid="$FERRY_PID" "$DIR/receiver.log" 2>/dev/null &
TAIL_PIDS+=($!)

set +e
wait "$FERRY_PID"
rc=$?
set -e
say "ferry exited (status $rc)"
exit "$rc"
