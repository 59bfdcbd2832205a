#!/usr/bin/env bash
# Runs the end-to-end benchmark scenarios: for each round and scenario, a
# baseline server then a jwtguard server (each its own process, started
# fresh), driven back to back by the same client settings.
#
#   bench/cmd/loadgen/scenarios.sh            # from the repository root
#   ROUNDS=3 STREAMS=16 OUT=/tmp/bench bench/cmd/loadgen/scenarios.sh
#
# Results: $OUT (default: a new temporary folder)/<scenario>-<mode>-<round>.json and .txt, one chart per
# scenario ($OUT/<scenario>.svg), and the jwtguard/baseline ratios on stdout.
# The verified scenario (revocation-only mode: jwt_authn's payload in the
# check's metadata) also prints its ratio to the repeated scenario (the
# verified-token cache) of the round, both on jwtguard.
# The forged50 scenario (half the requests forged tokens, each distinct
# with a bad signature) also prints, for each mode, the throughput the
# valid (repeated) requests keep against the same mode's repeated scenario
# of the round, when that ran before it: at most 0.5, since the generator
# sends one forged request for each valid one. forged50block is forged50
# with the bad-signature detector blocking the flooding address
# (bench/detectors/block-forgeries.yaml); detectors is repeated with every
# detector on (bench/detectors/all-observe.yaml), compared with the
# round's repeated jwtguard run.
set -euo pipefail

# Results go to $OUT, a fresh temporary folder unless named: never the
# repository.
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/jwtguard-bench.XXXXXX")}
echo "results in $OUT"
ROUNDS=${ROUNDS:-2}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-4}
STREAMS=${STREAMS:-64}
GRPC=${GRPC:-127.0.0.1:9300}
SCENARIOS=${SCENARIOS:-"repeated verified fresh revoked10 warm rev10m forged50"}
# The 10M-revocations scenario: records really stored (bbolt fills at about
# 20k records/s here) plus random keys in the filter only, 10M in all.
STORED=${STORED:-1000000}
FILTER_ONLY=${FILTER_ONLY:-9000000}
# MiB the baseline keeps live so that it is paced by the GC like jwtguard
# (0: none; an almost empty heap collects about three times as often).
BALLAST_MB=${BALLAST_MB:-0}

mkdir -p "$OUT/logs"
LOADGEN="$OUT/loadgen"
go build -o "$LOADGEN" ./bench/cmd/loadgen
KEYS="$OUT/keys"

# shellcheck source=servers.sh
source "$(dirname "$0")/servers.sh"

if [[ " $SCENARIOS " == *" rev10m "* && ! -e "$OUT/data-bulk/revocations.db" ]]; then
	echo "storing $STORED revocations in $OUT/data-bulk (once)"
	start_server "$OUT/logs/preload" "$GRPC" --data-dir "$OUT/data-bulk" --revocations "$STORED"
	stop_servers
	cat "$OUT/logs/preload.out"
fi

for round in $(seq 1 "$ROUNDS"); do
	for sc in $SCENARIOS; do
		mix=repeated=100 serve=(--revoke-mix) run=()
		case $sc in
		repeated) ;;
		fresh) mix=fresh=100 ;;
		revoked10) mix=repeated=90,revoked=10 ;;
		warm) run=(--warm-fresh 100000) ;;
		rev10m) serve=(--revoke-mix --data-dir "$OUT/data-bulk" --filter-keys "$FILTER_ONLY") ;;
		forged50) mix=repeated=50,forged=50 ;;
		forged50block) mix=repeated=50,forged=50 serve=(--revoke-mix --detectors bench/detectors/block-forgeries.yaml) ;;
		detectors) serve=(--revoke-mix --detectors bench/detectors/all-observe.yaml) ;;
		verified) mix=verified=100 ;; # revocation-only: jwt_authn's payload in metadata
		*) echo "unknown scenario $sc" >&2; exit 2 ;;
		esac
		# The machine's load before each pair: figures taken on a busy
		# machine are to be read with it.
		echo "load average before $sc round $round: $(cut -d' ' -f1-3 /proc/loadavg)"
		for mode in baseline jwtguard; do
			name="$sc-$mode-$round"
			if [ "$mode" = baseline ]; then
				start_server "$OUT/logs/$name" "$GRPC" --mode baseline --ballast-mb "$BALLAST_MB"
				expect=false
			else
				start_server "$OUT/logs/$name" "$GRPC" --mode jwtguard "${serve[@]}"
				expect=true
			fi
			"$LOADGEN" run --target "$GRPC" --keys "$KEYS" --conns "$CONNS" --streams "$STREAMS" \
				--duration "$DURATION" --mix "$mix" --expect="$expect" ${run[@]+"${run[@]}"} \
				--server-pid "$server_pid" --label "$name" --json "$OUT/$name.json" >"$OUT/$name.txt" 2>"$OUT/logs/$name.progress" || true
			stop_servers
			sed -n '1,/wrong decisions/p' "$OUT/$name.txt"
		done
		"$LOADGEN" compare "$OUT/$sc-baseline-$round.json" "$OUT/$sc-jwtguard-$round.json"
		if [ "$sc" = forged50block ]; then
			# The flood defence: the valid requests against the same mix
			# on the no-op server of this pair.
			"$LOADGEN" compare --category repeated "$OUT/$sc-baseline-$round.json" "$OUT/$sc-jwtguard-$round.json"
		fi
		if [ "$sc" = detectors ] && [ -e "$OUT/repeated-jwtguard-$round.json" ]; then
			# The detectors' cost: every detector on against none, same round.
			"$LOADGEN" compare "$OUT/repeated-jwtguard-$round.json" "$OUT/$sc-jwtguard-$round.json"
		fi
		# Revocation-only against the cached path, both served by jwtguard.
		if [ "$sc" = verified ] && [ -e "$OUT/repeated-jwtguard-$round.json" ]; then
			echo "verified (revocation-only) against repeated (cached path), jwtguard, round $round:"
			"$LOADGEN" compare "$OUT/repeated-jwtguard-$round.json" "$OUT/$sc-jwtguard-$round.json"
		fi
		if [ "$sc" = forged50 ]; then
			for mode in baseline jwtguard; do
				if [ -e "$OUT/repeated-$mode-$round.json" ]; then
					"$LOADGEN" compare --category repeated "$OUT/repeated-$mode-$round.json" "$OUT/$sc-$mode-$round.json"
				fi
			done
		fi
	done
done

for sc in $SCENARIOS; do
	"$LOADGEN" plot -o "$OUT/$sc.svg" "$OUT/$sc"-*.json
done
