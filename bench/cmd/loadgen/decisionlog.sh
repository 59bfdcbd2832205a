#!/usr/bin/env bash
# The decision log's cost end to end: the repeated-token scenario against a
# jwtguard node with the log off, at its defaults (a file, allows sampled
# out) and logging every allow, each mode its own fresh server process,
# driven back to back by the same client settings, in rotating order.
#
#   bench/cmd/loadgen/decisionlog.sh          # from the repository root
#   ROUNDS=3 DURATION=10s OUT=/tmp/dl bench/cmd/loadgen/decisionlog.sh
set -euo pipefail

# Results go to $OUT, a fresh temporary folder unless named: never the
# repository.
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/jwtguard-decisionlog.XXXXXX")}
echo "results in $OUT"
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-4}
STREAMS=${STREAMS:-64}
GRPC=${GRPC:-127.0.0.1:19300}
MIX=${MIX:-repeated=100}

mkdir -p "$OUT/logs"
LOADGEN="$OUT/loadgen"
go build -o "$LOADGEN" ./bench/cmd/loadgen
KEYS="$OUT/keys"

# shellcheck source=servers.sh
source "$(dirname "$0")/servers.sh"

modes=(off defaults every_allow)
for round in $(seq 1 "$ROUNDS"); do
	echo "load average before round $round: $(cut -d' ' -f1-3 /proc/loadavg)"
	for i in 0 1 2; do
		mode=${modes[$(((i + round - 1) % 3))]}
		name="$mode-$round"
		rm -f "$OUT/$name.jsonl"
		case $mode in
		off) flags=() ;;
		defaults) flags=(--decision-log "$OUT/$name.jsonl") ;;
		every_allow) flags=(--decision-log "$OUT/$name.jsonl" --decision-log-allow-sample 1) ;;
		esac
		start_server "$OUT/logs/$name" "$GRPC" --log-level warn --mode jwtguard --revoke-mix ${flags[@]+"${flags[@]}"}
		"$LOADGEN" run --target "$GRPC" --keys "$KEYS" --conns "$CONNS" --streams "$STREAMS" \
			--duration "$DURATION" --mix "$MIX" --expect=true \
			--server-pid "$server_pid" --label "$name" --json "$OUT/$name.json" >"$OUT/$name.txt" 2>"$OUT/logs/$name.progress" || true
		stop_servers
		lines=0
		[ -e "$OUT/$name.jsonl" ] && lines=$(wc -l <"$OUT/$name.jsonl")
		echo "$name: decision log lines $lines"
		sed -n '1,/wrong decisions/p' "$OUT/$name.txt"
	done
	"$LOADGEN" compare "$OUT/off-$round.json" "$OUT/defaults-$round.json"
	"$LOADGEN" compare "$OUT/off-$round.json" "$OUT/every_allow-$round.json"
done
