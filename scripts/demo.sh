#!/usr/bin/env bash
# scripts/demo.sh: run ferry for real on this machine (Debian 12, as root), with all three
# adapters. Installs what is missing (scripts/deps.sh), builds ferry, then under ./demo/ starts
# on loopback: a Prosody with the user alice@localhost; a webhook receiver that prints what it
# gets (scripts/demo_receiver.py); an ngircd with a channel #demo where a bot talks and answers
# (scripts/demo_ircbot.py); an SMS sandbox that speaks Twilio's API and prints every SMS
# (scripts/demo_sms_sandbox.py); and ferry with a webhook, an IRC and an SMS component. It
# prints what to try. Ctrl-C stops everything it started.
#
#   scripts/demo.sh            install, build, run the demo (Ctrl-C stops it)
#   scripts/demo.sh --no-build use the existing build/ferry (or $FERRY, or $FERRY_BIN)
#   scripts/demo.sh --check    non-interactive self-check: start everything in a temp dir, send
#                              one message each way through each adapter as alice
#                              (scripts/demo_check.py: one "check ok:"/"check FAIL:" line
#                              each), stop ferry (it must exit 0 on SIGTERM, without sanitizer
#                              reports); exit 0 when everything passed
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
FERRY=${FERRY:-${FERRY_BIN:-$ROOT/build/ferry}}
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
    DIR=$(mktemp -d "${TMPDIR:-/tmp}/ferry-demo-check.XXXXXX")
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

# Six distinct free ports on 127.0.0.1, chosen by the kernel.
read -r C2S_PORT COMP_PORT HTTP_PORT RECV_PORT IRC_PORT SANDBOX_PORT < <("$PY" - <<'EOF'
import socket
socks = [socket.socket() for _ in range(6)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
EOF
)
rand() { "$PY" -c "import secrets; print(secrets.token_hex($1))"; }
COMP_SECRET=$(rand 16)
TOKEN=$(rand 16)
SIGNING_SECRET=whsec_$("$PY" -c 'import base64, secrets; print(base64.b64encode(secrets.token_bytes(24)).decode())')
TWILIO_SID=AC$(rand 16)
TWILIO_TOKEN=$(rand 16)
HOOKS=hooks.localhost          # the three component domains
IRC=irc.localhost
SMS=sms.localhost
IRC_SERVER=127.0.0.1           # the IRC server as JIDs name it (#chan%SERVER@irc.localhost)
CHANNEL='#demo'
ROOM="$CHANNEL%$IRC_SERVER@$IRC"
BOT=demobot
ALICE_NUMBER=+15550001111      # alice's number at the SMS sandbox; 555-01xx are fictional
FRIEND=+15557654321            # a phone to text with

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
    # Once: a second Ctrl-C (or a signal sent to the whole group) must not cut the cleanup short.
    trap - EXIT
    trap '' INT TERM HUP
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
http_up() {    # url: answers at all (any status)
    curl -sS -o /dev/null --max-time 1 "$1" 2>/dev/null
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

-- ferry's three components (one link each)
Component "$HOOKS"
    component_secret = "$COMP_SECRET"
Component "$IRC"
    component_secret = "$COMP_SECRET"
Component "$SMS"
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
wait_for receiver "$!" 10 http_up "http://127.0.0.1:$RECV_PORT/" || { show_log receiver "$DIR/receiver.log"; exit 1; }

# --- 6. ngircd and the IRC bot -------------------------------------------------------------
# ngircd drops to nobody after reading its config; without a PidFile it writes nothing, and in
# the foreground (-n) it logs to stdout, which the shell opened for it.
mkdir -p "$DIR/ngircd.d"
cat >"$DIR/ngircd.conf" <<EOF
# ngircd for the ferry demo: loopback only
[Global]
Name = irc.localhost
Info = ferry demo IRC server
AdminInfo1 = ferry demo
AdminInfo2 = loopback only
AdminEMail = root@localhost
Listen = 127.0.0.1
Ports = $IRC_PORT
MotdPhrase = "ferry demo IRC server: join $CHANNEL"
ServerUID = nobody
[Limits]
MaxConnectionsIP = 0
MaxJoins = 0
MaxPenaltyTime = 0
[Options]
PAM = no
DNS = no
Ident = no
IncludeDir = $DIR/ngircd.d
EOF
chmod 644 "$DIR/ngircd.conf"
say "starting ngircd on 127.0.0.1:$IRC_PORT"
NGIRCD=$(command -v ngircd || echo /usr/sbin/ngircd)
"$NGIRCD" -n -f "$DIR/ngircd.conf" >"$DIR/ngircd.log" 2>&1 &
started ngircd $!
ngircd_ready() { grep -q 'Server "irc.localhost" .*ready' "$DIR/ngircd.log" 2>/dev/null; }
wait_for ngircd "$!" 10 ngircd_ready || { show_log ngircd "$DIR/ngircd.log"; exit 1; }

say "starting the IRC bot $BOT in $CHANNEL"
"$PY" -u "$ROOT/scripts/demo_ircbot.py" --port "$IRC_PORT" --nick "$BOT" --channel "$CHANNEL" \
    --server-name "$IRC_SERVER" --gateway "$IRC" >"$DIR/ircbot.log" 2>&1 &
started ircbot $!
bot_ready() { grep -q "^ircbot: joined" "$DIR/ircbot.log" 2>/dev/null; }
wait_for "IRC bot" "$!" 20 bot_ready || { show_log ircbot "$DIR/ircbot.log"; exit 1; }

# --- 7. the SMS sandbox --------------------------------------------------------------------
SMS_INBOUND_URL="http://127.0.0.1:$HTTP_PORT/sms/sms/inbound"
say "starting the SMS sandbox (a Twilio stand-in) on 127.0.0.1:$SANDBOX_PORT"
"$PY" -u "$ROOT/scripts/demo_sms_sandbox.py" --port "$SANDBOX_PORT" --account-sid "$TWILIO_SID" \
    --auth-token "$TWILIO_TOKEN" --number "$ALICE_NUMBER" --inbound-url "$SMS_INBOUND_URL" \
    >"$DIR/sandbox.log" 2>&1 &
started sandbox $!
wait_for "SMS sandbox" "$!" 10 http_up "http://127.0.0.1:$SANDBOX_PORT/" || { show_log sandbox "$DIR/sandbox.log"; exit 1; }

# --- 8. ferry ------------------------------------------------------------------------------
cat >"$DIR/gateway.toml" <<EOF
# ferry demo configuration (written by scripts/demo.sh; every key: gateway.toml.example)
[xmpp]
host = "127.0.0.1"
port = $COMP_PORT

[http]
listen = "127.0.0.1:$HTTP_PORT"
public_url = "http://127.0.0.1:$HTTP_PORT"

[storage]
path = "$DIR/ferry.db"

[log]
level = "info"

# webhooks: alerts@$HOOKS
[components.hooks]
adapter = "webhook"
domain = "$HOOKS"
secret = "$COMP_SECRET"

[components.hooks.endpoints.alerts]
url = "http://127.0.0.1:$RECV_PORT/incoming"
format = "json"
signing_secret = "$SIGNING_SECRET"
token = "$TOKEN"
deliver_to = ["alice@localhost"]
allow = ["localhost"]

# IRC: $ROOM (or, through default_server, $CHANNEL@$IRC)
[components.irc]
adapter = "irc"
domain = "$IRC"
secret = "$COMP_SECRET"
allow = ["localhost"]
default_server = "$IRC_SERVER"

[components.irc.servers."$IRC_SERVER"]
host = "127.0.0.1"
port = $IRC_PORT
tls = false

# SMS: $FRIEND@$SMS, through the SANDBOX. For a real Twilio account: drop api_url, put your
# account_sid and auth_token (or auth_token_file), your Twilio number in users, a public_url
# Twilio can reach, and point the number's messaging webhook at {public_url}/sms/sms/inbound.
[components.sms]
adapter = "sms"
domain = "$SMS"
secret = "$COMP_SECRET"
provider = "twilio"
api_url = "http://127.0.0.1:$SANDBOX_PORT"
account_sid = "$TWILIO_SID"
auth_token = "$TWILIO_TOKEN"
default_country_code = "1"

[[components.sms.users]]
jid = "alice@localhost"
number = "$ALICE_NUMBER"
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
    die "ferry did not come up with its components linked ($HEALTH_URL did not answer 200)"
}
say "ferry is up and linked to Prosody as $HOOKS, $IRC and $SMS"

# The two commands the user is told to paste (and that --check runs as they are).
HOOK_URL="http://127.0.0.1:$HTTP_PORT/hooks/hooks/alerts"
WEBHOOK_TEXT="Disk almost full on db1"
WEBHOOK_CMD="curl -i -H 'Authorization: Bearer $TOKEN' -H 'Content-Type: application/json' \\
         --data '{\"text\": \"$WEBHOOK_TEXT\"}' $HOOK_URL"
SMS_TEXT="Hi Alice, this is a phone"
SMS_CMD="curl -sS --fail-with-body --data-urlencode 'From=$FRIEND' \\
         --data-urlencode 'Body=$SMS_TEXT' http://127.0.0.1:$SANDBOX_PORT/sandbox/receive"

# --- 9a. self-check ------------------------------------------------------------------------
if [[ $CHECK -eq 1 ]]; then
    say "checking each adapter both ways as alice@localhost"
    status=0
    "$PY" -u "$ROOT/scripts/demo_check.py" --c2s-port "$C2S_PORT" --jid alice@localhost \
        --password alicepw --timeout 15 \
        --webhook-jid "alerts@$HOOKS" --receiver-log "$DIR/receiver.log" \
        --webhook-cmd "$WEBHOOK_CMD" --webhook-text "$WEBHOOK_TEXT" \
        --room "$ROOM" --nick alice --bot-nick "$BOT" --bot-log "$DIR/ircbot.log" \
        --sms-jid "$FRIEND@$SMS" --sandbox-log "$DIR/sandbox.log" \
        --sms-cmd "$SMS_CMD" --sms-text "$SMS_TEXT" || status=$?
    if [[ $status -ne 0 ]]; then
        show_log ferry "$DIR/ferry.log"
        show_log ircbot "$DIR/ircbot.log"
        show_log sandbox "$DIR/sandbox.log"
        say "check failed: see the check FAIL lines above"
        exit 1
    fi
    kill -0 "$FERRY_PID" 2>/dev/null || { show_log ferry "$DIR/ferry.log"; die "ferry exited during the checks"; }
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
    if grep -Eq 'ERROR: AddressSanitizer|runtime error:|LeakSanitizer' "$DIR/ferry.log"; then
        show_log ferry "$DIR/ferry.log"
        die "sanitizer report in ferry's log ($DIR/ferry.log)"
    fi
    say "ferry stopped cleanly on SIGTERM"
    say "check passed: webhook, IRC and SMS, one message each way"
    exit 0
fi

# --- 9b. interactive: show the logs and tell the user what to try --------------------------
cat <<EOF

==========================================================================================
 ferry demo is running (files in $DIR, configuration: $DIR/gateway.toml)

 Log in with any XMPP client:
      account   alice@localhost   password  alicepw
      server    127.0.0.1   port $C2S_PORT   (no TLS: allow plain-text auth; loopback only)
 e.g. profanity:  /connect alice@localhost server 127.0.0.1 port $C2S_PORT tls disable

 1. WEBHOOKS
    XMPP -> HTTP: send a message to   alerts@$HOOKS
      and watch the receiver print it below (ferry POSTs it, signed, to 127.0.0.1:$RECV_PORT).
    HTTP -> XMPP: paste this; the text arrives in alice's client from alerts@$HOOKS:

    $WEBHOOK_CMD

 2. IRC (a local ngircd; $BOT talks in $CHANNEL every few seconds)
    Join the group chat   $ROOM
      (or the short form  $CHANNEL@$IRC, since $IRC_SERVER is the default_server)
    Say something; mention "$BOT" and it answers. Chat privately with
      $BOT%$IRC_SERVER@$IRC.  Commands for the server go to  $IRC_SERVER@$IRC.

 3. SMS (a SANDBOX that speaks Twilio's API on 127.0.0.1:$SANDBOX_PORT: no SMS leaves it)
    alice's number is $ALICE_NUMBER. Chat with   $FRIEND@$SMS
      and watch the sandbox print the SMS below (then report it delivered: a receipt).
    Receive an SMS from $FRIEND: paste this (the sandbox posts ferry what Twilio would,
      signed with X-Twilio-Signature):

    $SMS_CMD

    For a real account, in [components.sms] of gateway.toml:
      Twilio: provider = "twilio", no api_url (https://api.twilio.com), account_sid = "AC...",
              auth_token_file = "/path" (or auth_token), users' number = your Twilio number;
              the number's messaging webhook: {public_url}/sms/sms/inbound
      Telnyx: provider = "telnyx", api_key_file = "/path" (or api_key), public_key = the
              portal's base64 Ed25519 key; the messaging profile's webhook: the same URL
      and [http] public_url = an https URL the provider can reach (e.g. your reverse proxy).

 Health: curl $HEALTH_URL
 Logs:   $DIR/{ferry,receiver,ircbot,sandbox,ngircd,prosody}.log
 Ctrl-C stops everything the demo started.
==========================================================================================

EOF
tail -n +1 -f --pid="$FERRY_PID" "$DIR/ferry.log" 2>/dev/null &
TAIL_PIDS+=($!)
for log in receiver ircbot sandbox; do
    tail -n 0 -f --pid="$FERRY_PID" "$DIR/$log.log" 2>/dev/null &
    TAIL_PIDS+=($!)
done

set +e
wait "$FERRY_PID"
rc=$?
set -e
say "ferry exited (status $rc)"
exit "$rc"
