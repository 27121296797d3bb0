#!/bin/bash
# bench/compare.sh — xmppd side by side with Prosody and ejabberd (issue 5, "The comparison").
#
# Run as root on a Debian 12 machine, from anywhere inside the repository:
#
#   bench/compare.sh                 default sizes (about 6 minutes on 2 cores)
#   bench/compare.sh --large         occasional run: 50 000 idle sessions and more (see SIZES below)
#   bench/compare.sh --servers "xmppd prosody"   a subset (xmppd first: the fixed-rate chat needs its peak)
#   bench/compare.sh --work DIR      keep configs, logs and JSON results in DIR (default: a new /tmp/xmppd-bench.*)
#   bench/compare.sh --modern        issue 13 instead: every server with its archive, carbons and stream
#                                    management on, and the MODERN SCENARIOS below instead of the ones above
#
# What it does, one server at a time (start, every scenario, stop, next):
#   xmppd on 127.0.0.4, Prosody on 127.0.0.2, ejabberd on 127.0.0.3, each on the standard ports
#   5222 (STARTTLS) and 5223 (Direct TLS), all serving the one domain "bench.test" with the same
#   self-signed certificate (made here with openssl). Nothing else is reachable: s2s is off
#   everywhere, no name is ever resolved (xmppbench connects by IP literal and uses bench.test
#   only as the XMPP domain and TLS server name), /etc/hosts is never touched, and the peers'
#   resolvers are pointed at 127.0.0.1 anyway. All traffic stays on loopback.
#   Accounts are made with each server's own admin interface through `xmppbench users`
#   (xmppd: admin socket; Prosody: prosodyctl shell; ejabberd: its HTTP API on 127.0.0.3:5280).
#   Limits are relaxed equally: Prosody without mod_limits (and limits = {}), ejabberd with
#   shaper none, max_user_sessions and listener backlog high; xmppd with its defaults (its auth
#   throttle only slows down failed logins; none fail here). Max stanza size 256 KiB everywhere.
#   Logging is at warning level on all three.
#
# Scenarios (xmppbench; see cmd/xmppbench), in this order on a freshly started server:
#   idle       N sessions held → server RSS per session (the server is restarted after the accounts
#              are made, so this meets a fresh process); sessions cycle over the accounts
#   login      login storm → logins/s, p50/p99 login time (SCRAM cache warm, so the tool does no PBKDF2)
#   tls, login-dtls, login-sasl2, login-fast   over Direct TLS, RATIO_ROUNDS rounds in turn: bare TLS
#              handshakes, then RFC 6120 logins, SASL2 + Bind 2 logins, and SASL2 logins with a FAST
#              token (XEP-0484) where offered → logins ÷ handshakes per round
#              (median and range), and the server's CPU per handshake and per login
#   chat-max   P pairs, as fast as the window allows → delivered msg/s, latency
#   chat-half  P pairs at a fixed total rate of half xmppd's chat-max peak (the same offered load
#              on every server) → p50/p99/p99.9 latency; a peer whose own peak is below that rate
#              is not run (it would only queue for minutes) and shows as "saturated"
#   chat-own   (peers only) P pairs at half of the peer's own chat-max peak
#   presence   U users with C roster contacts each log in at once → presence deliveries/s; then,
#              with everyone online, UPDATE_ROUNDS rounds in which each user changes its status
#              once → status-change deliveries/s and server CPU per delivery (the broadcast alone)
# After all servers, xmppd once more (chat-peerhalf): P pairs at half of the best peer's chat-max
# peak, the load of that peer's chat-own run, so both latencies compare at one load both carry.
# Then prints one table, figure × server, with xmppd's ratio to the best peer (bench/report.py).
#
# MODERN SCENARIOS (--modern; issue 13). The servers as above, plus: Prosody with mod_mam (its default
# storage, archive_expires_after = "never", default_archive_policy = true), mod_carbons and mod_smacks
# (hibernation 1 h); ejabberd with mod_mam (default: always, its default Mnesia storage), mod_carboncopy and
# mod_stream_mgmt (resume_timeout 1 h); xmppd with its [archive] on (its default) and stream management
# (on by default, resume timeout 1 h). In order:
#   chat-archive    P pairs as fast as the window allows: every message archived for both parties
#                   (xmppd: durable before delivered) → delivered msg/s, latency
#   chat-archive-own (peers) P pairs at half of the server's own chat-archive peak
#   chat-plain-own, chat-sm-own   P pairs at half of the server's own chat-archive peak, without and with
#                   --sm (XEP-0198 on every session, <r/> every 10 stanzas) → server CPU per message, and
#                   its ratio: what stream management costs
#   resume          RES_N sessions with SM chat a little, are all cut at once (silently: no FIN or RST
#                   reaches the server, as a phone out of coverage), get messages meanwhile and resume from
#                   new connections → resumed/failed, lost, duplicated, resume p50/p99, server CPU per resume
#   resume-sasl2    the same, resuming inside SASL2's <authenticate/> where offered (XEP-0388 inline)
#   hibernate       HIB_N sessions with SM cut (RST: the server learns at once) and held HIB_HOLD → server
#                   RSS per hibernated session; then resumed to show they were held
#   archive         ARCH_FILL messages between two users at full speed (the fill rate: one pair's chat with
#                   the archive on; at most ARCH_FILL_TIME), then ARCH_QUERIES queries of each kind: pages
#                   of 50 (newest, by with, by time range, by before-id) and full-text (XEP-0431) p50/p99;
#                   the data folder's growth per archived copy against the raw stanza's size
# After all servers, xmppd once more (chat-archive-peerhalf): at half of the best peer's chat-archive peak,
# the load of that peer's chat-archive-own run, so both p99 latencies compare at one load both carry.
#
# Needs: Go (the version in go.mod) on PATH; installs prosody, lua-unbound, ejabberd, openssl and
# python3 with apt-get when missing (services are kept from starting with policy-rc.d).
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "$0" | sed 's/^# \{0,1\}//; /^set -euo/d'; }

LARGE=0
MODERN=0
WORK=""
SERVERS="xmppd prosody ejabberd"
while [ $# -gt 0 ]; do
	case $1 in
	--large) LARGE=1 ;;
	--modern) MODERN=1 ;;
	--work) WORK=$2; shift ;;
	--servers) SERVERS=$2; shift ;;
	-h | --help) usage; exit 0 ;;
	*) echo "compare.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
	esac
	shift
done

# --- sizes --------------------------------------------------------------------------------------
DOMAIN=bench.test
PASSWORD=bench-pass
if [ "$LARGE" = 1 ]; then
	ACCOUNTS=10000     # u1..u10000; idle sessions cycle over them (several resources per account)
	IDLE=50000         # spread over 127.0.0.10-250 as source addresses (xmppbench --sources auto)
	IDLE_HOLD=20s
	LOGINS=10000
	PAIRS=1000
	CHAT_SECS=30s
	PRES_USERS=2000
	PRES_CONTACTS=20
	CONCURRENCY=100
else
	ACCOUNTS=2000      # u1..u2000; the idle sessions cycle over them (2-3 resources per account)
	IDLE=5000
	IDLE_HOLD=10s
	LOGINS=2000
	PAIRS=200
	CHAT_SECS=10s
	PRES_USERS=500
	PRES_CONTACTS=10
	CONCURRENCY=50
fi
if [ "$LARGE" = 1 ]; then
	RES_N=1000         # --modern: sessions cut and resumed (the issue's 1,000)
	HIB_N=10000        # --modern: hibernated sessions (the issue's 10,000, held for an hour)
	HIB_HOLD=1h
	ARCH_FILL=1000000  # --modern: one user's archive (the issue's 1,000,000)
	ARCH_FILL_TIME=30m
else
	RES_N=1000
	HIB_N=1990         # + 10 senders within the 2,000 accounts
	HIB_HOLD=10s
	ARCH_FILL=20000
	ARCH_FILL_TIME=120s
fi
ARCH_QUERIES=200     # --modern: queries of each kind
UPDATE_ROUNDS=20     # presence: rounds of the update phase (everyone online changes status once per round)
RATIO_ROUNDS=3       # rounds of TLS handshakes, RFC 6120, SASL2 and FAST logins (the "÷ TLS handshakes/s" rows)
# Any size can be overridden from the environment for a quick try, e.g.
#   BENCH_IDLE=200 BENCH_ACCOUNTS=200 BENCH_LOGINS=200 BENCH_PAIRS=20 BENCH_CHAT_SECS=3s bench/compare.sh
for v in ACCOUNTS IDLE IDLE_HOLD LOGINS PAIRS CHAT_SECS PRES_USERS PRES_CONTACTS UPDATE_ROUNDS CONCURRENCY RATIO_ROUNDS \
	RES_N HIB_N HIB_HOLD ARCH_FILL ARCH_FILL_TIME ARCH_QUERIES; do
	o=BENCH_$v
	if [ -n "${!o:-}" ]; then printf -v "$v" '%s' "${!o}"; fi
done

declare -A IP=([prosody]=127.0.0.2 [ejabberd]=127.0.0.3 [xmppd]=127.0.0.4)
C2S_PORT=5222
TLS_PORT=5223
EJ_API_PORT=5280

log() { printf '\n=== %s  %s\n' "$(date +%T)" "$*"; }
die() { echo "compare.sh: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (ejabberdctl switches to user ejabberd, Prosody needs run_as_root, the hosts jail needs a mount namespace)"
for s in $SERVERS; do [ -n "${IP[$s]:-}" ] || die "--servers: unknown server $s (xmppd, prosody, ejabberd)"; done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
[ -f "$ROOT/go.mod" ] && [ -d "$ROOT/cmd/xmppbench" ] || die "$ROOT is not the xmppd repository"
JAIL=$ROOT/testdata/interop/fed/hostsjail.sh

# --- packages -----------------------------------------------------------------------------------
install_missing() {
	local pkgs=()
	command -v prosodyctl >/dev/null || pkgs+=(prosody)
	# Prosody resolves with libunbound when it is there (configured below to stay on loopback).
	dpkg -s lua-unbound >/dev/null 2>&1 || pkgs+=(lua-unbound)
	command -v ejabberdctl >/dev/null || pkgs+=(ejabberd)
	command -v openssl >/dev/null || pkgs+=(openssl)
	[ -x /usr/bin/python3 ] || pkgs+=(python3)
	command -v unshare >/dev/null || pkgs+=(util-linux)
	[ ${#pkgs[@]} -gt 0 ] || return 0
	log "apt-get install ${pkgs[*]}"
	# The packages ship init scripts: never let them start the system instances (they would
	# listen on every interface, on the ports used here).
	local policy=/usr/sbin/policy-rc.d made=""
	if [ ! -e $policy ]; then
		printf '#!/bin/sh\n# bench/compare.sh: no service starts during apt-get install\nexit 101\n' >$policy
		chmod 755 $policy
		made=1
	fi
	local rc=0
	{ apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${pkgs[@]}" </dev/null; } || rc=$?
	[ -z "$made" ] || rm -f $policy
	[ $rc = 0 ] || die "apt-get install failed"
}
install_missing
command -v go >/dev/null || die "Go is needed on PATH ($(sed -n 's/^go //p' "$ROOT/go.mod") or later; Debian's golang is too old)"

# --- work folder, file descriptors, binaries -----------------------------------------------------
if [ -z "$WORK" ]; then WORK=$(mktemp -d /tmp/xmppd-bench.XXXXXX); fi
mkdir -p "$WORK"/{bin,results}
WORK=$(cd "$WORK" && pwd)
chmod 755 "$WORK" # ejabberd (its own user) reads its folder below
RES=$WORK/results

# Servers and the tool inherit this (ejabberdctl's su keeps it; Prosody and xmppd are children).
nr_open=$(cat /proc/sys/fs/nr_open 2>/dev/null || echo 1048576)
want_fds=$((IDLE * 2 + 10000))
[ "$MODERN" = 0 ] || want_fds=$(((HIB_N > IDLE ? HIB_N : IDLE) * 2 + 10000)) # the cut connections stay open until resumed
[ "$want_fds" -le "$nr_open" ] || want_fds=$nr_open
if [ "$(ulimit -Hn)" != unlimited ] && [ "$(ulimit -Hn)" -lt "$want_fds" ]; then
	# Raising the hard limit needs CAP_SYS_RESOURCE; each process (the server, the tool) holds
	# one descriptor per session, so the current limit may still do.
	ulimit -Hn "$want_fds" 2>/dev/null ||
		[ "$(ulimit -Hn)" -ge $((IDLE + 1000)) ] ||
		die "$IDLE idle sessions need about $((IDLE + 1000)) file descriptors per process; the hard limit is $(ulimit -Hn) and cannot be raised here (no CAP_SYS_RESOURCE?): use a smaller BENCH_IDLE"
fi
ulimit -n "$(ulimit -Hn)"

log "building xmppd and xmppbench ($(go version | cut -d' ' -f3), commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'))"
(cd "$ROOT" && go build -o "$WORK/bin/xmppd" ./cmd/xmppd && go build -o "$WORK/bin/xmppbench" ./cmd/xmppbench)
XB=$WORK/bin/xmppbench

# --- loopback-only name resolution for the peers ---------------------------------------------------
printf '127.0.0.1 localhost\n' >"$WORK/hosts"
printf 'nameserver 127.0.0.1\n' >"$WORK/resolv.conf"
chmod 644 "$WORK/hosts" "$WORK/resolv.conf"

# --- one certificate for all three -----------------------------------------------------------------
CERT=$WORK/$DOMAIN.crt KEY=$WORK/$DOMAIN.key
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
	-subj "/CN=$DOMAIN" -addext "subjectAltName=DNS:$DOMAIN,DNS:*.$DOMAIN" \
	-keyout "$KEY" -out "$CERT" 2>/dev/null
chmod 600 "$KEY" # Prosody and xmppd run as root; ejabberd gets its own copy

# --- process bookkeeping: everything started here is stopped here, by pid or ctl -------------------
CUR="" CUR_PID="" CUR_STOP=""
EPMD_BEFORE=" $( (pgrep -x epmd || true) | tr '\n' ' ') "

pid_alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }

wait_gone() { # pid seconds what
	local i=0
	while pid_alive "$1"; do
		if [ $i -ge $(($2 * 10)) ]; then
			echo "  $3 (pid $1) still running after $2 s: SIGKILL"
			kill -KILL "$1" 2>/dev/null || true
			sleep 0.5
			return
		fi
		sleep 0.1
		i=$((i + 1))
	done
}

wait_tcp() { # host port seconds
	local i=0
	until (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; do
		[ $i -lt $(($3 * 10)) ] || die "nothing listens on $1:$2 after $3 s"
		sleep 0.1
		i=$((i + 1))
	done
}

port_free() { # host port
	if (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; then
		die "$1:$2 is already in use (another server running? this script stops only what it started)"
	fi
}

stop_current() {
	[ -n "$CUR" ] || return 0
	local what=$CUR pid=$CUR_PID
	CUR=""
	echo "  stopping $what (pid ${pid:-?})"
	if [ -n "$CUR_STOP" ]; then eval "$CUR_STOP" >/dev/null 2>&1 || true; fi
	[ -z "$pid" ] || wait_gone "$pid" 30 "$what"
	# ejabberd must not leave an epmd behind (it should never start one: fixed dist port).
	local e
	for e in $(pgrep -x epmd || true); do
		case "$EPMD_BEFORE" in *" $e "*) ;; *) echo "  stopping epmd pid $e left by $what"; kill "$e" 2>/dev/null || true ;; esac
	done
}
trap 'rc=$?; stop_current; [ $rc = 0 ] || echo "compare.sh: failed (rc $rc); configs and logs are in $WORK" >&2' EXIT
trap 'exit 130' INT TERM

# --- servers --------------------------------------------------------------------------------------
start_xmppd() {
	local d=$WORK/xmppd ip=${IP[xmppd]}
	[ "${1:-}" != new ] || rm -rf "$d" # "new": empty data; otherwise a restart on the same data
	mkdir -p "$d/data"
	cat >"$d/xmppd.toml" <<EOF
# bench/compare.sh: xmppd with its default limits, c2s only, on $ip
domains = ["$DOMAIN"]
data_dir = "$d/data"

[log]
level = "warn"

[[tls.certificates]]
cert = "$CERT"
key = "$KEY"

[c2s]
listen = ["$ip:$C2S_PORT"]
direct_tls = ["$ip:$TLS_PORT"]

[s2s]
listen = []
direct_tls = []
dns_server = "127.0.0.1:53"   # never used (no s2s); should anything ask, it stays on loopback
$([ "$MODERN" = 0 ] || printf '\n# --modern (issue 13): the archive and stream management are on by default\n[archive]\nexpire_after = "never"\n')
EOF
	"$WORK/bin/xmppd" --config "$d/xmppd.toml" config check >/dev/null
	port_free "$ip" $C2S_PORT
	"$WORK/bin/xmppd" --config "$d/xmppd.toml" serve >"$d/serve.log" 2>&1 </dev/null &
	CUR=xmppd CUR_PID=$! CUR_STOP="kill -TERM $!"
	wait_tcp "$ip" $C2S_PORT 30
	USERS_ARGS=(--server xmppd --config "$d/xmppd.toml" --xmppd-bin "$WORK/bin/xmppd")
}

# --modern: the archive, carbons and stream management on, as modern-anchors.sh (shared/interop) runs them.
PROSODY_MODERN_MODULES="" PROSODY_MODERN="" EJABBERD_MODERN=""
if [ "$MODERN" = 1 ]; then
	PROSODY_MODERN_MODULES='; "mam"; "carbons"; "smacks"'
	PROSODY_MODERN='-- --modern (issue 13): archive everything, keep it, hibernate SM sessions for an hour
default_archive_policy = true
archive_expires_after = "never"
smacks_hibernation_time = 3600'
	EJABBERD_MODERN='  mod_mam: {default: always}
  mod_carboncopy: {}
  mod_stream_mgmt: {resume_timeout: 3600}'
fi

start_prosody() {
	local d=$WORK/prosody ip=${IP[prosody]}
	[ "${1:-}" != new ] || rm -rf "$d" # "new": empty data; otherwise a restart on the same data
	mkdir -p "$d/data"
	cat >"$d/prosody.cfg.lua" <<EOF
-- bench/compare.sh: Prosody $(dpkg-query -W -f '${Version}' prosody 2>/dev/null), c2s only, on $ip
local base = "$d"
run_as_root = true
pidfile = base.."/prosody.pid"
data_path = base.."/data"
certificates = base
log = { warn = base.."/prosody.log" }
interfaces = { "$ip" }
c2s_ports = { $C2S_PORT }
c2s_direct_tls_ports = { $TLS_PORT }
-- Direct TLS has no SNI-less fallback to the VirtualHost's certificate in 0.12: name it (else
-- every handshake fails with "handshake failure").
c2s_direct_tls_ssl = { key = "$KEY"; certificate = "$CERT" }
s2s_ports = {}
http_ports = {}
https_ports = {}
-- libunbound, should anything be resolved: hosts file and resolver on loopback only.
unbound = { hoststxt = "$WORK/hosts"; resolvconf = "$WORK/resolv.conf" }
modules_enabled = { "roster"; "saslauth"; "tls"; "disco"; "ping"; "admin_shell"$PROSODY_MODERN_MODULES }
modules_disabled = { "s2s" }   -- (presence, message, iq, offline, c2s are loaded anyway)
$PROSODY_MODERN
-- Limits relaxed: mod_limits is not loaded, and there would be nothing to apply.
limits = {}
-- Tuned as its operators would: Lua's generational collector (Prosody 0.12 with Lua 5.4) halves
-- its CPU per login here (issue 12).
gc = { mode = "generational" }
c2s_stanza_size_limit = 262144
allow_registration = false
authentication = "internal_hashed"
c2s_require_encryption = true
VirtualHost "$DOMAIN"
  ssl = { key = "$KEY"; certificate = "$CERT" }
EOF
	port_free "$ip" $C2S_PORT
	rm -f "$d/prosody.pid"
	prosodyctl --config "$d/prosody.cfg.lua" start >"$d/start.log" 2>&1 || { cat "$d/start.log"; die "prosodyctl start failed"; }
	local i=0
	while [ ! -s "$d/prosody.pid" ]; do
		[ $i -lt 300 ] || die "Prosody wrote no pid file"
		sleep 0.1
		i=$((i + 1))
	done
	CUR=prosody CUR_PID=$(cat "$d/prosody.pid") CUR_STOP="prosodyctl --config '$d/prosody.cfg.lua' stop"
	wait_tcp "$ip" $C2S_PORT 30
	USERS_ARGS=(--server prosody --config "$d/prosody.cfg.lua")
}

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start_ejabberd() {
	local d=$WORK/ejabberd ip=${IP[ejabberd]}
	[ "${1:-}" != new ] || rm -rf "$d" # "new": empty data; otherwise a restart on the same data
	mkdir -p "$d"/{db,logs}
	cat "$KEY" "$CERT" >"$d/$DOMAIN.pem"
	cat >"$d/ejabberd.yml" <<EOF
# bench/compare.sh: ejabberd $(dpkg-query -W -f '${Version}' ejabberd 2>/dev/null), c2s only, on $ip
hosts: [$DOMAIN]
loglevel: warning
log_rotate_count: 0
certfiles: ["$d/$DOMAIN.pem"]
listen:
  - {port: $C2S_PORT, ip: $ip, module: ejabberd_c2s, starttls_required: true, max_stanza_size: 262144, shaper: c2s_shaper, access: c2s, backlog: 4096}
  - {port: $TLS_PORT, ip: $ip, module: ejabberd_c2s, tls: true, max_stanza_size: 262144, shaper: c2s_shaper, access: c2s, backlog: 4096}
  # only for creating the accounts (xmppbench users --server ejabberd)
  - {port: $EJ_API_PORT, ip: $ip, module: ejabberd_http, request_handlers: {/api: mod_http_api}}
auth_method: internal
auth_password_format: scram
auth_scram_hash: sha256      # SCRAM-SHA-256, as xmppd
acl:
  local: {user_regexp: ""}
  loopback: {ip: [127.0.0.0/8]}
access_rules:
  local: {allow: local}
  c2s: {deny: blocked, allow: all}
api_permissions:
  "console commands": {from: [ejabberd_ctl], who: all, what: "*"}
  "loopback admin": {from: [mod_http_api], who: {ip: 127.0.0.0/8}, what: "*"}
shaper_rules:
  max_user_sessions: 1000000
  c2s_shaper: none           # no traffic shaping
modules:
  mod_disco: {}
  mod_offline: {}
  mod_ping: {}
  mod_roster: {versioning: true}
  mod_http_api: {}
$EJABBERD_MODERN
EOF
	cat >"$d/ejabberdctl.cfg" <<EOF
ERLANG_NODE=ejabberd-bench-$$@localhost
INET_DIST_INTERFACE=127.0.0.1
ERL_DIST_PORT=$(free_port)   # fixed distribution port: no epmd at all
ERL_EPMD_ADDRESS=127.0.0.1
ERL_MAX_PORTS=$((IDLE + 65536))
EJABBERD_PID_PATH=$d/ejabberd.pid
ERL_OPTIONS="-env ERL_CRASH_DUMP_BYTES 0"
EOF
	cat >"$d/inetrc" <<EOF
{resolv_conf, ""}.
{hosts_file, "$WORK/hosts"}.
{lookup, ["file"]}.
{nameserver, {127,0,0,1}}.
EOF
	rm -f "$d/ejabberd.pid"
	chown -R ejabberd:ejabberd "$d"
	chmod 600 "$d/$DOMAIN.pem"
	port_free "$ip" $C2S_PORT
	# ejabberdctl run as root switches to user ejabberd with su, whose pam_limits puts the soft
	# file-descriptor limit back to 1024 (ejabberd then stops accepting at ~1000 sessions). So
	# run it as user ejabberd already (setpriv: no PAM), keeping this shell's limit; inside the
	# mount namespace of hostsjail.sh, which needs root.
	local ejhome
	ejhome=$(getent passwd ejabberd | cut -d: -f6)
	EJCTL=("$JAIL" "$WORK/hosts" "$WORK/resolv.conf" setpriv --reuid=ejabberd --regid=ejabberd --init-groups
		env HOME="$ejhome" ejabberdctl --config-dir "$d" --logs "$d/logs" --spool "$d/db")
	CUR=ejabberd CUR_PID="" CUR_STOP="$(printf '%q ' "${EJCTL[@]}") stop"
	"${EJCTL[@]}" start >"$d/start.log" 2>&1 || { cat "$d/start.log"; die "ejabberdctl start failed"; }
	# Up when it has written its pid file (ejabberd_app, at the end of the start) and listens.
	local i=0
	until [ -s "$d/ejabberd.pid" ] && (exec 3<>"/dev/tcp/$ip/$C2S_PORT") 2>/dev/null; do
		if [ -s "$d/ejabberd.pid" ] && ! pid_alive "$(cat "$d/ejabberd.pid")"; then
			tail -30 "$d/logs/ejabberd.log" "$d/logs/error.log" 2>/dev/null || true
			die "ejabberd died while starting"
		fi
		[ $i -lt 900 ] || { tail -30 "$d/logs/ejabberd.log" 2>/dev/null || true; die "ejabberd did not start within 90 s"; }
		sleep 0.1
		i=$((i + 1))
	done
	CUR_PID=$(cat "$d/ejabberd.pid")
	local lim
	lim=$(awk '/Max open files/{print $4}' "/proc/$CUR_PID/limits")
	[ "$lim" -ge $((IDLE + 1000)) ] || die "ejabberd's file-descriptor limit is $lim, too low for $IDLE sessions"
	wait_tcp "$ip" $C2S_PORT 30
	wait_tcp "$ip" $EJ_API_PORT 30
	USERS_ARGS=(--server ejabberd --api "http://$ip:$EJ_API_PORT/api")
}

# --- scenarios -------------------------------------------------------------------------------------
PROGRESS=--progress=false
[ -t 2 ] && PROGRESS=--progress=true
XMPPD_HALF_TOTAL="" # total msg/s: half of xmppd's chat-max peak

figure() { # json key
	/usr/bin/python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["figures"][sys.argv[2]]["value"])' "$1" "$2" 2>/dev/null || echo 0
}

bench() { # server name scenario args...  → $RES/server-name.json
	local s=$1 name=$2 sc=$3
	shift 3
	local out=$RES/$s-$name.json rc=0 t0=$SECONDS
	"$XB" "$sc" --addr "${IP[$s]}:$C2S_PORT" --domain "$DOMAIN" --password "$PASSWORD" \
		--server-pid "$CUR_PID" --scram-cache "$WORK/$s.scram-cache" --json $PROGRESS "$@" >"$out" || rc=$?
	/usr/bin/python3 "$ROOT/bench/report.py" --brief "$out" "$name" "$rc" "$((SECONDS - t0))"
	if [ $rc = 2 ]; then echo "  ($name could not run: see above)"; fi
}

run_server() {
	local s=$1 t0=$SECONDS
	log "$s: start on ${IP[$s]}:$C2S_PORT, create $ACCOUNTS + $PRES_USERS accounts"
	"start_$s" new
	"$XB" users "${USERS_ARGS[@]}" --domain "$DOMAIN" --password "$PASSWORD" --prefix u --count $ACCOUNTS --parallel 8 | sed 's/^/  users: /'
	"$XB" users "${USERS_ARGS[@]}" --domain "$DOMAIN" --password "$PASSWORD" --prefix p --count $PRES_USERS --parallel 8 | sed 's/^/  users: /'
	# Restart, so that the scenarios (idle first) meet a fresh process that has done nothing yet.
	stop_current
	"start_$s"
	sleep 2
	echo "  $s restarted, pid $CUR_PID, RSS $(awk '/VmRSS/{print $2" "$3}' /proc/$CUR_PID/status)"

	log "$s: idle, $IDLE sessions held $IDLE_HOLD"
	bench "$s" idle idle --prefix u --users $ACCOUNTS --n $IDLE --hold $IDLE_HOLD --concurrency $CONCURRENCY
	log "$s: login storm, $LOGINS logins, $CONCURRENCY in flight"
	bench "$s" login login --prefix u --users $ACCOUNTS --n $LOGINS --concurrency $CONCURRENCY
	# Logins against this server's own raw TLS handshake rate, back to back, all over Direct TLS
	# (no plaintext round trip): the TLS handshakes alone, then RFC 6120 logins, then SASL2 +
	# Bind 2 logins where the server offers them (the others fall back to RFC 6120).
	# The machine's speed drifts by tens of percent within minutes (a shared VM), so the trio runs
	# RATIO_ROUNDS times in turn and each round's logins are divided by that round's handshakes:
	# the table shows the median of those ratios and their range. Round k > 1 writes NAME.k.json.
	log "$s: TLS handshakes and logins over Direct TLS ($TLS_PORT), $LOGINS each, $RATIO_ROUNDS rounds"
	local k sfx
	for k in $(seq 1 "$RATIO_ROUNDS"); do
		sfx=""
		[ "$k" = 1 ] || sfx=".$k"
		bench "$s" "tls$sfx" tls --addr "${IP[$s]}:$TLS_PORT" --direct-tls --n $LOGINS --concurrency $CONCURRENCY
		bench "$s" "login-dtls$sfx" login --addr "${IP[$s]}:$TLS_PORT" --direct-tls --prefix u --users $ACCOUNTS --n $LOGINS --concurrency $CONCURRENCY
		bench "$s" "login-sasl2$sfx" login --addr "${IP[$s]}:$TLS_PORT" --direct-tls --sasl2 --prefix u --users $ACCOUNTS --n $LOGINS --concurrency $CONCURRENCY
		# Returning clients: a FAST token (XEP-0484) instead of the password, one round trip
		# fewer (xmppbench gets each account a token first, not measured). Servers without
		# FAST log in as in login-sasl2.
		bench "$s" "login-fast$sfx" login --addr "${IP[$s]}:$TLS_PORT" --direct-tls --sasl2 --fast --prefix u --users $ACCOUNTS --n $LOGINS --concurrency $CONCURRENCY
	done
	log "$s: chat, $PAIRS pairs for $CHAT_SECS, as fast as possible"
	bench "$s" chat-max chat --prefix u --pairs $PAIRS --duration $CHAT_SECS --concurrency $CONCURRENCY
	local peak
	peak=$(figure "$RES/$s-chat-max.json" messages_per_s)
	if [ "$s" = xmppd ]; then
		XMPPD_HALF_TOTAL=$(/usr/bin/python3 -c "print(round($peak / 2))")
	fi
	if [ -n "$XMPPD_HALF_TOTAL" ] && [ "$XMPPD_HALF_TOTAL" != 0 ]; then
		local r
		r=$(/usr/bin/python3 -c "print(round($XMPPD_HALF_TOTAL / (2 * $PAIRS), 3))")
		if [ "$s" != xmppd ] && /usr/bin/python3 -c "import sys; sys.exit(0 if $peak < $XMPPD_HALF_TOTAL else 1)"; then
			# A server offered more than its peak only queues: the latency grows with the run
			# (minutes of backlog). Not run; the table says "saturated".
			log "$s: chat at $XMPPD_HALF_TOTAL msg/s in all (half of xmppd's peak): not run, above its own peak ($peak msg/s)"
			echo "{\"saturated\": true, \"peak\": $peak, \"offered\": $XMPPD_HALF_TOTAL}" >"$RES/$s-chat-half.skipped"
		else
			log "$s: chat at $XMPPD_HALF_TOTAL msg/s in all (half of xmppd's peak; $r/s per sender)"
			bench "$s" chat-half chat --prefix u --pairs $PAIRS --duration $CHAT_SECS --rate "$r" --concurrency $CONCURRENCY
		fi
	fi
	if [ "$s" != xmppd ] && [ "$peak" != 0 ]; then
		local own r2
		own=$(/usr/bin/python3 -c "print(round($peak / 2))")
		r2=$(/usr/bin/python3 -c "print(round($peak / 2 / (2 * $PAIRS), 3))")
		log "$s: chat at $own msg/s in all (half of its own peak; $r2/s per sender)"
		bench "$s" chat-own chat --prefix u --pairs $PAIRS --duration $CHAT_SECS --rate "$r2" --concurrency $CONCURRENCY
	fi
	log "$s: presence storm, $PRES_USERS users × $PRES_CONTACTS contacts"
	# The setup (every user subscribes to its contacts) has its own limit, --setup (2 minutes by
	# default): Prosody rewrites a roster file per change and needs about a minute here.
	bench "$s" presence presence --prefix p --n $PRES_USERS --contacts $PRES_CONTACTS --update-rounds $UPDATE_ROUNDS --concurrency $CONCURRENCY
	if pid_alive "$CUR_PID"; then
		echo "  $s: RSS at the end $(awk '/VmRSS/{print $2" "$3}' /proc/$CUR_PID/status), CPU total $(awk '{printf "%.1f s", ($14+$15)/100}' /proc/$CUR_PID/stat)"
	else
		echo "  $s: NOT RUNNING any more (pid $CUR_PID): see its log in $WORK/$s"
	fi
	stop_current
	echo "  $s done in $((SECONDS - t0)) s"
}

# --modern (issue 13): the servers with archive, carbons and SM on; the classic scenarios are not run.
run_server_modern() {
	local s=$1 t0=$SECONDS
	log "$s (modern): start on ${IP[$s]}:$C2S_PORT, create $ACCOUNTS accounts"
	"start_$s" new
	"$XB" users "${USERS_ARGS[@]}" --domain "$DOMAIN" --password "$PASSWORD" --prefix u --count $ACCOUNTS --parallel 8 | sed 's/^/  users: /'
	stop_current
	"start_$s"
	sleep 2
	echo "  $s restarted, pid $CUR_PID, RSS $(awk '/VmRSS/{print $2" "$3}' /proc/$CUR_PID/status)"
	log "$s: chat with the archive on, $PAIRS pairs for $CHAT_SECS, as fast as possible"
	bench "$s" chat-archive chat --prefix u --pairs $PAIRS --duration $CHAT_SECS --concurrency $CONCURRENCY
	local peak own r
	peak=$(figure "$RES/$s-chat-archive.json" messages_per_s)
	if [ "$peak" != 0 ]; then
		own=$(/usr/bin/python3 -c "print(round($peak / 2))")
		r=$(/usr/bin/python3 -c "print(round($peak / 2 / (2 * $PAIRS), 3))")
		if [ "$s" != xmppd ]; then
			log "$s: chat with the archive on at $own msg/s in all (half of its own peak; $r/s per sender)"
			bench "$s" chat-archive-own chat --prefix u --pairs $PAIRS --duration $CHAT_SECS --rate "$r" --concurrency $CONCURRENCY
		fi
		log "$s: chat at $own msg/s without and with stream management (server CPU per message)"
		bench "$s" chat-plain-own chat --prefix u --pairs $PAIRS --duration $CHAT_SECS --rate "$r" --concurrency $CONCURRENCY
		bench "$s" chat-sm-own chat --sm --prefix u --pairs $PAIRS --duration $CHAT_SECS --rate "$r" --concurrency $CONCURRENCY
	fi
	log "$s: resume, $RES_N sessions cut silently and resumed"
	bench "$s" resume resume --prefix u --users $ACCOUNTS --n $RES_N --senders 10 --cut silent --concurrency $CONCURRENCY
	# As Conversations and Monal resume: inside SASL2's <authenticate/> where offered (one round trip, no
	# stream restart); the peers here have no SASL2 and resume as above.
	bench "$s" resume-sasl2 resume --sasl2 --prefix u --users $ACCOUNTS --n $RES_N --senders 10 --cut silent --concurrency $CONCURRENCY
	log "$s: hibernate, $HIB_N sessions held $HIB_HOLD"
	bench "$s" hibernate hibernate --prefix u --users $ACCOUNTS --n $HIB_N --senders 10 --hold $HIB_HOLD --concurrency $CONCURRENCY
	log "$s: archive, $ARCH_FILL messages (at most $ARCH_FILL_TIME), then $ARCH_QUERIES queries of each kind"
	# The last two accounts: their archives hold nothing of the chat runs above.
	local dd
	case $s in xmppd) dd=$WORK/xmppd/data ;; prosody) dd=$WORK/prosody/data ;; ejabberd) dd=$WORK/ejabberd/db ;; esac
	bench "$s" archive archive --prefix u --first $((ACCOUNTS - 1)) --fill $ARCH_FILL --fill-time $ARCH_FILL_TIME --queries $ARCH_QUERIES \
		--data-dir "$dd"
	if pid_alive "$CUR_PID"; then
		echo "  $s: RSS at the end $(awk '/VmRSS/{print $2" "$3}' /proc/$CUR_PID/status), CPU total $(awk '{printf "%.1f s", ($14+$15)/100}' /proc/$CUR_PID/stat)"
		[ "$s" != xmppd ] || echo "  xmppd: data folder $(du -sh "$WORK/xmppd/data" | cut -f1)"
	else
		echo "  $s: NOT RUNNING any more (pid $CUR_PID): see its log in $WORK/$s"
	fi
	stop_current
	echo "  $s done in $((SECONDS - t0)) s"
}

T0=$SECONDS
cat >"$RES/meta.json" <<EOF
{"date": "$(date -u +%FT%TZ)", "large": $LARGE, "modern": $MODERN, "domain": "$DOMAIN", "cert": "ECDSA P-256 self-signed",
 "servers": "$SERVERS", "idle": $IDLE, "idle_hold": "$IDLE_HOLD", "accounts": $ACCOUNTS, "logins": $LOGINS, "ratio_rounds": $RATIO_ROUNDS,
 "concurrency": $CONCURRENCY, "pairs": $PAIRS, "chat_duration": "$CHAT_SECS",
 "presence_users": $PRES_USERS, "presence_contacts": $PRES_CONTACTS, "update_rounds": $UPDATE_ROUNDS,
 "resume_n": $RES_N, "hibernate_n": $HIB_N, "hibernate_hold": "$HIB_HOLD", "archive_fill": $ARCH_FILL, "archive_queries": $ARCH_QUERIES,
 "nproc": $(nproc), "kernel": "$(uname -r)", "go": "$(go version | cut -d' ' -f3)",
 "xmppd_commit": "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')",
 "prosody": "$(dpkg-query -W -f '${Version}' prosody 2>/dev/null)", "ejabberd": "$(dpkg-query -W -f '${Version}' ejabberd 2>/dev/null)"}
EOF
for s in $SERVERS; do
	if [ "$MODERN" = 1 ]; then run_server_modern "$s"; else run_server "$s"; fi
done

# xmppd once more, at half of the best peer's chat peak: the load at which that peer's own
# half-peak latency was measured, so the two latencies compare at one offered load that both carry.
peer_half() { # [prefix: "chat" or "chat-archive"]
	local pre=${1:-chat} best="" bpeak=0 p pk
	for p in $SERVERS; do
		[ "$p" != xmppd ] || continue
		pk=$(figure "$RES/$p-$pre-max.json" messages_per_s)
		[ "$pre" = chat ] || pk=$(figure "$RES/$p-$pre.json" messages_per_s)
		if /usr/bin/python3 -c "import sys; sys.exit(0 if $pk > $bpeak else 1)"; then best=$p bpeak=$pk; fi
	done
	[ -n "$best" ] || return 0
	local load r
	load=$(/usr/bin/python3 -c "print(round($bpeak / 2))")
	r=$(/usr/bin/python3 -c "print(round($bpeak / 2 / (2 * $PAIRS), 3))")
	log "xmppd: chat at $load msg/s in all (half of $best's peak, the best peer's; $r/s per sender)"
	start_xmppd
	sleep 2
	bench xmppd "$pre-peerhalf" chat --prefix u --pairs $PAIRS --duration $CHAT_SECS --rate "$r" --concurrency $CONCURRENCY
	echo "{\"peer\": \"$best\", \"peak\": $bpeak, \"offered\": $load}" >"$RES/$([ "$pre" = chat ] && echo peerhalf || echo "$pre-peerhalf").json"
	stop_current
}
if [ "$MODERN" = 1 ]; then
	case " $SERVERS " in *" xmppd "*) peer_half chat-archive ;; esac
else
	case " $SERVERS " in *" xmppd "*) peer_half ;; esac
fi
log "all done in $((SECONDS - T0)) s; results in $RES"
/usr/bin/python3 "$ROOT/bench/report.py" --table "$RES" | tee "$WORK/table.txt"
/usr/bin/python3 "$ROOT/bench/report.py" --markdown "$RES" >"$WORK/table.md"
echo "(markdown: $WORK/table.md)"
