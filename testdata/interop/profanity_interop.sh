#!/bin/bash
# Two profanity instances, each in its own window of a private tmux server:
# A logs in, B logs in, A -> B message, B -> A reply; the screens are checked.
# usage: profanity_interop.sh WORKDIR HOST PORT DOMAIN USER_A PASS_A USER_B PASS_B TOKEN
# Exit 0 on success. Each profanity gets its own HOME/XDG dirs under WORKDIR;
# "tls trust" makes it accept the self-signed certificate.
set -u
W=$1 H=$2 PORT=$3 D=$4 UA=$5 PA=$6 UB=$7 PB=$8 TOK=$9
mkdir -p "$W"
SOCK=$W/tmux.sock
tm() { tmux -S "$SOCK" "$@"; }
trap 'tm kill-server 2>/dev/null' EXIT

screen() { tm capture-pane -p -t "$1" -S -300; }

# waitfor WINDOW REGEX SECONDS
waitfor() {
	local i
	for ((i = 0; i < $3 * 10; i++)); do
		screen "$1" | grep -q -E "$2" && return 0
		sleep 0.1
	done
	echo "profanity: TIMEOUT waiting for /$2/ in $1; screen:"
	screen "$1" | grep -v '^\s*$' | tail -20
	return 1
}

launch() { # NAME USER PASS
	local home=$W/$1
	mkdir -p "$home"
	local cmd="env HOME=$home XDG_CONFIG_HOME=$home/.config XDG_DATA_HOME=$home/.local/share TERM=xterm profanity"
	if [ "$1" = a ]; then
		tm new-session -d -s prof -n a -x 200 -y 50 "$cmd"
	else
		tm new-window -d -t prof -n b "$cmd"
	fi
	# profanity draws its title bar once it is ready for commands.
	waitfor "prof:$1" "Profanity|profanity" 15 || return 1
	tm send-keys -t "prof:$1" "/connect $2@$D server $H port $PORT tls trust" Enter
	waitfor "prof:$1" "[Pp]assword" 10 || return 1
	tm send-keys -t "prof:$1" "$3" Enter
	waitfor "prof:$1" "$2@$D.*(logged in|connected)" 15
}

t0=${EPOCHREALTIME/./}
elapsed() { local us=$((${EPOCHREALTIME/./} - t0)); printf '%d.%03ds' $((us / 1000000)) $((us / 1000 % 1000)); }
launch a "$UA" "$PA" || exit 1
launch b "$UB" "$PB" || exit 1
echo "profanity: both logged in after $(elapsed)"

# A new chat opens in window 2 with a notice in the current one: show it.
showchat() { # WINDOW FROM TEXT
	waitfor "$1" "$3|chat message: $2" 15 || return 1
	screen "$1" | grep -q "$3" || tm send-keys -t "$1" "/win 2" Enter
	waitfor "$1" "$3" 10
}

tm send-keys -t prof:a "/msg $UB@$D ping $TOK" Enter
showchat prof:b "$UA@$D" "ping $TOK" || exit 1
echo "profanity: B shows: $(screen prof:b | grep -m1 -o ".*ping $TOK.*" | sed 's/  */ /g')"
tm send-keys -t prof:b "/msg $UA@$D pong $TOK" Enter
showchat prof:a "$UB@$D" "pong $TOK" || exit 1
echo "profanity: A shows: $(screen prof:a | grep -m1 -o ".*pong $TOK.*" | sed 's/  */ /g')"

for w in a b; do tm send-keys -t "prof:$w" "/quit" Enter; done
sleep 0.5
echo "profanity: OK in $(elapsed)"
