# Sourced by the benchmark scripts: starting and stopping `loadgen serve`
# processes. Needs LOADGEN (the binary) and KEYS (the keys folder).

server_pid=""
pids=()

# start_server LOG ADDR FLAGS...: starts a server on ADDR with FLAGS, its
# output in LOG.out and LOG.err, and waits until it is ready; server_pid
# is its process id.
start_server() {
	local log=$1 addr=$2
	shift 2
	"$LOADGEN" serve --keys "$KEYS" --grpc-addr "$addr" --http-addr "" "$@" >"$log.out" 2>"$log.err" &
	local pid=$!
	pids+=("$pid")
	for _ in $(seq 1 1800); do
		grep -q '^ready$' "$log.out" && { server_pid=$pid; return 0; }
		kill -0 "$pid" 2>/dev/null || { cat "$log.err" >&2; return 1; }
		sleep 0.2
	done
	echo "server not ready: $log" >&2
	return 1
}

# stop_servers stops every server started, and waits for them.
stop_servers() {
	for p in ${pids[@]+"${pids[@]}"}; do kill -TERM "$p" 2>/dev/null || true; done
	for p in ${pids[@]+"${pids[@]}"}; do wait "$p" 2>/dev/null || true; done
	pids=()
}
trap stop_servers EXIT
