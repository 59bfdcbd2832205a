#!/usr/bin/env bash
# Interleaved comparisons: for each comparison, two servers run side by
# side and `loadgen ab` sends them the same load in alternating slices
# (A B, B A, ...), so that what else the machine does weighs on both
# alike; the figure is the median of the per-pair ratios.
#
#   bench/cmd/loadgen/ab.sh                      # from the repository root
#   PAIRS=30 SLICE=2s COMPARISONS="revoked10 detectors" bench/cmd/loadgen/ab.sh
#
# Comparisons (A, the reference, then B):
#   repeated   the no-op baseline, jwtguard; mix repeated=100
#   revoked10  the no-op baseline, jwtguard; mix repeated=90,revoked=10
#   warm       repeated, after each server verified 100k fresh tokens (a
#              long-lived server: its verified-token cache full)
#   detectors  jwtguard, jwtguard with every detector on
#              (bench/detectors/all-observe.yaml); mix repeated=100
#   verified   jwtguard, jwtguard; mix repeated=100 for A, verified=100
#              for B (revocation-only: jwt_authn's payload in the check's
#              metadata) against the cached path
#   verifiedonly   the same with verified-only=100 for B: jwt_authn's
#              default (forward: false) strips the token, and with a jti and
#              the header in the metadata jwtguard needs none
#   forged50block  the no-op baseline, jwtguard with the bad-signature
#              detector blocking (bench/detectors/block-forgeries.yaml);
#              mix repeated=50,forged=50 (every forged token distinct, from
#              one flood address); compares the valid (repeated) requests
# Results: $OUT (default: a new temporary folder)/<comparison>.json and .txt.
set -euo pipefail

OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/jwtguard-ab.XXXXXX")}
echo "results in $OUT"
PAIRS=${PAIRS:-15}
SLICE=${SLICE:-2s}
CONNS=${CONNS:-4}
STREAMS=${STREAMS:-16}
BALLAST_MB=${BALLAST_MB:-4}
GRPC_A=${GRPC_A:-127.0.0.1:9310}
GRPC_B=${GRPC_B:-127.0.0.1:9311}
COMPARISONS=${COMPARISONS:-"repeated revoked10 warm detectors forged50block"}

mkdir -p "$OUT/logs"
LOADGEN="$OUT/loadgen"
go build -o "$LOADGEN" ./bench/cmd/loadgen
KEYS="$OUT/keys"

# shellcheck source=servers.sh
source "$(dirname "$0")/servers.sh"

# The keys: the first server creates them; start one alone so that the
# two of a pair never race to create them.
if [ ! -e "$KEYS" ]; then
	start_server "$OUT/logs/keys" "$GRPC_A" --mode baseline
	stop_servers
fi

for c in $COMPARISONS; do
	mix=repeated=100 a=(--mode baseline --ballast-mb "$BALLAST_MB") b=(--mode jwtguard --revoke-mix) expect_a=false category="" run=() mixb=()
	case $c in
	repeated) ;;
	revoked10) mix=repeated=90,revoked=10 ;;
	warm) run=(--warm-fresh 100000) ;;
	verified) a=(--mode jwtguard --revoke-mix) expect_a=true mixb=(--mix-b verified=100) ;;
	verifiedonly) a=(--mode jwtguard --revoke-mix) expect_a=true mixb=(--mix-b verified-only=100) ;;
	detectors) a=(--mode jwtguard --revoke-mix) b=(--mode jwtguard --revoke-mix --detectors bench/detectors/all-observe.yaml) expect_a=true ;;
	forged50block) mix=repeated=50,forged=50 b=(--mode jwtguard --revoke-mix --detectors bench/detectors/block-forgeries.yaml) category=repeated ;;
	*) echo "unknown comparison $c" >&2; exit 2 ;;
	esac
	echo "load average before $c: $(cut -d' ' -f1-3 /proc/loadavg)"
	start_server "$OUT/logs/$c-a" "$GRPC_A" "${a[@]}"
	pid_a=$server_pid
	start_server "$OUT/logs/$c-b" "$GRPC_B" "${b[@]}"
	pid_b=$server_pid
	label_a=${a[1]} label_b=${b[1]}
	[ "$c" = detectors ] && label_a=jwtguard label_b=jwtguard+detectors
	[ "$c" = verified ] && label_a=cached label_b=revocation-only
	[ "$c" = verifiedonly ] && label_a=cached label_b=revocation-only-without-token
	"$LOADGEN" ab --a "$GRPC_A" --b "$GRPC_B" --label-a "$label_a" --label-b "$label_b" \
		--expect-a="$expect_a" --expect-b=true --pid-a "$pid_a" --pid-b "$pid_b" --keys "$KEYS" \
		--conns "$CONNS" --streams "$STREAMS" --pairs "$PAIRS" --slice "$SLICE" --mix "$mix" \
		--category "$category" ${run[@]+"${run[@]}"} ${mixb[@]+"${mixb[@]}"} --json "$OUT/$c.json" >"$OUT/$c.txt" 2>"$OUT/logs/$c.progress" || true
	stop_servers
	cat "$OUT/$c.txt"
	echo "load average after $c: $(cut -d' ' -f1-3 /proc/loadavg)"
done
