#!/usr/bin/env bash
# The end-to-end bulk load of bench/SCALE.md ("Embedded"): a real
# `jwtguard serve --dev --data-dir D --decision-log off` started on a fresh
# data dir, then the clock runs around `jwtguard revoke --from-file F
# --server …` alone, F holding N token records (random jti, one a line).
# After it returns, `jwtguard status` must show filter entries = records = N.
# Each binary given runs ROUNDS times, the binaries alternating.
#
#   bench/cmd/loadgen/bulkimport.sh BIN...            # N=1000000 ROUNDS=2
#   N=200000 ROUNDS=1 bench/cmd/loadgen/bulkimport.sh ./jwtguard
#
# One line per run: binary, wall seconds, records/s, server CPU seconds
# during the import (utime+stime from /proc), the server's CPU until its
# follower reached the last position, the CLI's peak RSS, the load average
# before and after, and status's filter entries, records and position.
set -euo pipefail

N=${N:-1000000}
ROUNDS=${ROUNDS:-2}
WORK=${WORK:-$(mktemp -d)}
[ $# -gt 0 ] || { echo "usage: $0 BIN..." >&2; exit 2; }
mkdir -p "$WORK"
echo "working in $WORK" >&2

F="$WORK/records.ndjson"
if [ ! -s "$F" ] || [ "$(wc -l <"$F")" -ne "$N" ]; then
	od -An -tx8 -w16 -v -N $((N * 16)) /dev/urandom |
		awk '{printf "{\"kind\":\"token\",\"issuer\":\"https://jwtguard.dev\",\"value\":\"%s%s\"}\n", $1, $2}' >"$F"
fi

cpu() { # PID: utime+stime in seconds
	awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"
}

pid=""
stop() { [ -z "$pid" ] || { kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; pid=""; }; }
trap stop EXIT

echo "bin wall_s records_per_s server_cpu_s server_cpu_caught_up_s cli_rss_kb load_before load_after entries records position"
for r in $(seq 1 "$ROUNDS"); do
	i=0
	for bin in "$@"; do
		i=$((i + 1))
		d="$WORK/data-$r-$i" log="$WORK/serve-$r-$i"
		rm -rf "$d"
		"$bin" serve --dev --data-dir "$d" --decision-log off \
			--grpc-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 --admin-addr 127.0.0.1:0 >"$log.out" 2>"$log.err" &
		pid=$!
		for _ in $(seq 1 300); do grep -q 'status=SERVING' "$log.err" && break; sleep 0.1; done
		admin=$(sed -n 's/.*jwtguard listening.* admin=\([^ ]*\).*/\1/p' "$log.err" | head -1)
		[ -n "$admin" ] || { cat "$log.err" >&2; exit 1; }
		load0=$(cut -d' ' -f1 /proc/loadavg)
		c0=$(cpu "$pid")
		t0=$(date +%s.%N)
		/usr/bin/time -f '%M' -o "$WORK/time-$r-$i" "$bin" revoke --from-file "$F" --server "http://$admin" \
			--reason "bulk load" --timeout 10m >"$WORK/revoke-$r-$i.out" 2>/dev/null
		t1=$(date +%s.%N)
		c1=$(cpu "$pid")
		load1=$(cut -d' ' -f1 /proc/loadavg)
		st=$("$bin" status --server "http://$admin" -o json)
		entries=$(echo "$st" | grep -o '"entries": *[0-9]*' | head -1 | grep -o '[0-9]*$')
		records=$(echo "$st" | grep -o '"records": *[0-9]*' | head -1 | grep -o '[0-9]*$')
		# The server's CPU until its own follower has read the feed to the end.
		for _ in $(seq 1 600); do
			position=$("$bin" status --server "http://$admin" -o json | grep -o '"node_position": *[0-9]*' | grep -o '[0-9]*$')
			[ "$position" -lt "$N" ] || break
			sleep 0.1
		done
		c2=$(cpu "$pid")
		stop
		awk -v b="$bin" -v t0="$t0" -v t1="$t1" -v c0="$c0" -v c1="$c1" -v c2="$c2" -v n="$N" -v rss="$(cat "$WORK/time-$r-$i")" \
			-v l0="$load0" -v l1="$load1" -v e="$entries" -v rc="$records" -v p="$position" \
			'BEGIN {w = t1 - t0; printf "%s %.2f %.0f %.2f %.2f %s %s %s %s %s %s\n", b, w, n / w, c1 - c0, c2 - c0, rss, l0, l1, e, rc, p}'
		rm -rf "$d"
	done
done
