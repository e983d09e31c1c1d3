#!/usr/bin/env bash
# bench/run.sh: run every benchmark scenario against the Node baseline,
# tradewire and the minimal epoll reference server (bench/minimal), then write
# the comparison (ratios tradewire/Node and tradewire/minimal per figure, the
# machine and the versions) to docs/BENCHMARKS.md.
#
#   bench/run.sh                         # all three servers, full size (10k connections)
#   SCALE=small bench/run.sh             # 1k connections, shorter steps (a few minutes)
#   SERVERS=node bench/run.sh            # only the baseline (tradewire not built yet)
#   SCENARIOS="idle storm" bench/run.sh  # a subset
#   TRADEWIRE_CMD=/path/to/tradewire bench/run.sh
#
# Scenarios: idle fanout fanout-emitter user-events user-events-batch storm
# cluster polling.
# The minimal server runs idle, fanout, user-events and storm only (no Redis
# adapter, no long-polling); it is skipped in the other scenarios.
# The doc never shows absolute paths: binaries and results are named relative
# to the repository. A hand-written part of the doc below the line
# "<!-- kept by bench/run.sh -->" is carried over to the new doc.
# Every server is started fresh for each scenario (clean RSS baseline) on a
# free loopback port, with a private redis-server started for the whole run.
# Results (one JSON line per run) and logs go to $RESULTS (bench/results/<time>).
# Everything is bounded: each loadgen run has -timeout, each server is killed
# by its pid when its scenario ends.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

SCALE=${SCALE:-full}
SERVERS=${SERVERS:-"node tradewire minimal"}
SCENARIOS=${SCENARIOS:-"idle fanout fanout-emitter user-events storm cluster polling"}
OUT=${OUT:-docs/BENCHMARKS.md}
RESULTS=${RESULTS:-bench/results/$(date -u +%Y%m%dT%H%M%SZ)}
RESULTS=$(mkdir -p "$RESULTS" && cd "$RESULTS" && pwd)   # absolute: redis-server chdirs to --dir before opening its log
SRC=${SRC:-127.0.0.2-127.0.0.9}        # loopback source addresses for the clients
PROCS=${PROCS:-1}                      # loadgen worker processes (each < ulimit -n connections)
SECRET=${SECRET:-bench-secret}
API_KEY=${API_KEY:-bench-api-key-0123456789}   # tradewire wants 16+ characters outside dev mode
P99=${P99:-50ms}
CLUSTER_SERVERS=${CLUSTER_SERVERS:-3}
NODE_RATE_LIMIT=${NODE_RATE_LIMIT:-}   # empty: in-memory on one node, redis-backed in the cluster (as tradewire)
TRADEWIRE_CLUSTER_ENV=${TRADEWIRE_CLUSTER_ENV:-}        # extra env for cluster nodes (the Redis adapter is on whenever TRADEWIRE_REDIS_URL is set)
TRADEWIRE_DEBUG_PATH=${TRADEWIRE_DEBUG_PATH:-/metrics}   # Prometheus text: go_goroutines, go_memstats_heap_*, process_resident_memory_bytes
RUN_TIMEOUT=${RUN_TIMEOUT:-15m}

if [[ $SCALE == small ]]; then
  IDLE_CONNS=${IDLE_CONNS:-1000}; FANOUT_CONNS=${FANOUT_CONNS:-1000}; EVENTS_CONNS=${EVENTS_CONNS:-1000}
  STORM_CONNS=${STORM_CONNS:-500}; CLUSTER_CONNS=${CLUSTER_CONNS:-1000}; POLLING_CONNS=${POLLING_CONNS:-200}
  STEP=${STEP:-3s}; RAMP=${RAMP:-500}
else
  IDLE_CONNS=${IDLE_CONNS:-10000}; FANOUT_CONNS=${FANOUT_CONNS:-10000}; EVENTS_CONNS=${EVENTS_CONNS:-10000}
  STORM_CONNS=${STORM_CONNS:-5000}; CLUSTER_CONNS=${CLUSTER_CONNS:-10000}; POLLING_CONNS=${POLLING_CONNS:-1000}
  STEP=${STEP:-5s}; RAMP=${RAMP:-500}
fi

mkdir -p "$RESULTS/bin" "$RESULTS/logs"
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"

log() { printf '[run.sh %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# rel prints a path the way the doc may show it: relative to the repository,
# never absolute.
rel() {
  case $1 in
    "$ROOT"/*) printf '%s' "${1#"$ROOT"/}" ;;
    /*) printf '%s (outside the repository)' "$(basename "$1")" ;;
    *) printf '%s' "$1" ;;
  esac
}

need() { command -v "$1" >/dev/null || { log "missing $1 ($2)"; exit 1; }; }
need go "Go toolchain"; need node "Node 20"; need npm "npm"; need redis-server "apt-get install -y redis-server"; need curl "apt-get install -y curl"

freeport() {
  node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"
}

PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

stop_pid() {
  local p=$1
  kill "$p" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
}

wait_http() { # url, pid
  for _ in $(seq 150); do
    if curl -fsS -o /dev/null --max-time 1 "$1" 2>/dev/null; then return 0; fi
    kill -0 "$2" 2>/dev/null || { log "server $2 exited"; return 1; }
    sleep 0.1
  done
  log "server at $1 not ready"; return 1
}

# ---- build ------------------------------------------------------------------
log "building loadgen"
go build -o "$RESULTS/bin/loadgen" ./bench/cmd/loadgen
LOADGEN=$RESULTS/bin/loadgen
if [[ ! -d bench/baseline-node/node_modules/socket.io ]]; then
  log "installing the Node baseline's pinned dependencies (npm ci)"
  (cd bench/baseline-node && npm ci --no-audit --no-fund >&2)
fi
if [[ " $SERVERS " == *" tradewire "* && -z ${TRADEWIRE_CMD:-} ]]; then
  if [[ -d cmd/tradewire ]]; then
    log "building tradewire"
    go build -o "$RESULTS/bin/tradewire" ./cmd/tradewire
    TRADEWIRE_CMD=$RESULTS/bin/tradewire
  else
    log "cmd/tradewire does not exist yet: running the Node baseline only"
    SERVERS=${SERVERS//tradewire/}
  fi
fi
if [[ " $SERVERS " == *" minimal "* && -z ${MINIMAL_CMD:-} ]]; then
  log "building the minimal reference server"
  go build -o "$RESULTS/bin/minimal" ./bench/minimal
  MINIMAL_CMD=$RESULTS/bin/minimal
fi

# ---- redis ------------------------------------------------------------------
REDIS_PORT=$(freeport)
mkdir -p "$RESULTS/redis"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$RESULTS/redis" \
  --logfile "$RESULTS/logs/redis.log" --maxclients 20000 &
REDIS_PID=$!; PIDS+=("$REDIS_PID")
for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
REDIS_URL=redis://127.0.0.1:$REDIS_PORT
log "redis on $REDIS_URL"

# ---- servers ----------------------------------------------------------------
# start_server <node|tradewire|minimal> <adapter memory|redis> <logname>: sets SRV_PID SRV_URL
start_server() {
  local kind=$1 adapter=$2 name=$3 port ready_path="/socket.io/?EIO=4&transport=polling"
  port=$(freeport)
  if [[ $kind == minimal ]]; then
    # sessions read from the same Redis (passport.user); one process, no adapter
    "$MINIMAL_CMD" -addr "127.0.0.1:$port" -redis "$REDIS_URL" -api-key "$API_KEY" 2>"$RESULTS/logs/$name.log" &
    SRV_PID=$!
    SRV_DEBUG=http://127.0.0.1:$port/debug/vars
    ready_path=/health
  elif [[ $kind == node ]]; then
    local limit=${NODE_RATE_LIMIT:-memory}
    [[ -z $NODE_RATE_LIMIT && $adapter == redis ]] && limit=redis
    PORT=$port HOST=127.0.0.1 REDIS_URL=$REDIS_URL SESSION_SECRETS=$SECRET API_KEYS=$API_KEY ADAPTER=$adapter \
      RATE_LIMIT=$limit RATE_CONNECTIONS_PER_MINUTE=60000000 RATE_EVENTS_PER_MINUTE=60000000 \
      node bench/baseline-node/server.js 2>"$RESULTS/logs/$name.log" &
    SRV_PID=$!
    SRV_DEBUG=http://127.0.0.1:$port/debug/vars
  else
    local extra=()
    # One node: sessions in Redis, in-memory adapter and limits (as the Node
    # baseline). Cluster: the Redis adapter, limits and recovery streams.
    local redis_env=TRADEWIRE_SESSION_REDIS_URL=$REDIS_URL
    [[ $adapter == redis ]] && redis_env=TRADEWIRE_REDIS_URL=$REDIS_URL && read -r -a extra <<<"$TRADEWIRE_CLUSTER_ENV"
    env TRADEWIRE_ADDR=127.0.0.1:$port TRADEWIRE_SESSION_STORE=redis "$redis_env" \
      TRADEWIRE_SESSION_SECRETS=$SECRET TRADEWIRE_API_KEYS=$API_KEY \
      TRADEWIRE_RATE_CONNECTIONS_PER_MINUTE=60000000 TRADEWIRE_RATE_EVENTS_PER_MINUTE=60000000 \
      "${extra[@]}" bash -c "exec $TRADEWIRE_CMD" 2>"$RESULTS/logs/$name.log" &
    SRV_PID=$!
    SRV_DEBUG=http://127.0.0.1:$port$TRADEWIRE_DEBUG_PATH
  fi
  PIDS+=("$SRV_PID")
  SRV_URL=http://127.0.0.1:$port
  wait_http "$SRV_URL$ready_path" "$SRV_PID"
}

COMMANDS=()
# run_loadgen <server kind> <label file> args...: appends the JSON line to $RESULTS/<kind>.jsonl
run_loadgen() {
  local kind=$1; shift
  local args=(-label "$kind" -redis "$REDIS_URL" -secret "$SECRET" -api-key "$API_KEY" -src "$SRC" -procs "$PROCS"
    -ramp "$RAMP" -p99 "$P99" -step "$STEP" -timeout "$RUN_TIMEOUT" "$@")
  COMMANDS+=("loadgen ${args[*]}")
  log "$kind: loadgen ${args[*]}"
  if ! "$LOADGEN" "${args[@]}" >>"$RESULTS/$kind.jsonl" 2>>"$RESULTS/logs/loadgen-$kind.log"; then
    log "$kind: loadgen failed (see $RESULTS/logs/loadgen-$kind.log)"
  fi
  tail -n 3 "$RESULTS/logs/loadgen-$kind.log" >&2 || true
}

run_scenario() { # kind scenario
  local kind=$1 sc=$2
  case $sc in
    idle)
      start_server "$kind" memory "$kind-idle"
      run_loadgen "$kind" -scenario idle -conns "$IDLE_CONNS" -url "$SRV_URL" -server-pid "$SRV_PID" -debug-url "$SRV_DEBUG" -hold 5s
      stop_pid "$SRV_PID" ;;
    fanout)
      start_server "$kind" memory "$kind-fanout"
      run_loadgen "$kind" -scenario fanout -conns "$FANOUT_CONNS" -url "$SRV_URL" -server-pid "$SRV_PID" \
        -rate-start "${FANOUT_RATE_START:-50}" -rate-factor 1.25 -max-steps 24
      stop_pid "$SRV_PID" ;;
    fanout-emitter)
      start_server "$kind" redis "$kind-fanout-emitter"
      run_loadgen "$kind" -scenario fanout -publish emitter -conns "$FANOUT_CONNS" -url "$SRV_URL" -server-pid "$SRV_PID" \
        -rate-start "${FANOUT_RATE_START:-50}" -rate-factor 1.25 -max-steps 24
      stop_pid "$SRV_PID" ;;
    user-events)
      start_server "$kind" memory "$kind-user-events"
      run_loadgen "$kind" -scenario user-events -conns "$EVENTS_CONNS" -url "$SRV_URL" -server-pid "$SRV_PID" \
        -rate-start "${EVENTS_RATE_START:-200}" -rate-factor 1.5 -max-steps 12 -pub-conc 8
      stop_pid "$SRV_PID" ;;
    user-events-batch)
      # Issue 12's form: events posted as arrays (one request per pacing
      # tick), judged at p99 <= 10 ms.
      start_server "$kind" memory "$kind-user-events-batch"
      run_loadgen "$kind" -scenario user-events -events-batch -p99 "${EVENTS_BATCH_P99:-10ms}" -conns "$EVENTS_CONNS" -url "$SRV_URL" \
        -server-pid "$SRV_PID" -rate-start "${EVENTS_RATE_START:-200}" -rate-factor 1.5 -max-steps 12 -pub-conc 8
      stop_pid "$SRV_PID" ;;
    storm)
      start_server "$kind" memory "$kind-storm"
      run_loadgen "$kind" -scenario storm -conns "$STORM_CONNS" -url "$SRV_URL" -server-pid "$SRV_PID" -storm-timeout 120s
      stop_pid "$SRV_PID" ;;
    cluster)
      local urls=() pids=() i
      for i in $(seq "$CLUSTER_SERVERS"); do
        start_server "$kind" redis "$kind-cluster-$i"
        urls+=("$SRV_URL"); pids+=("$SRV_PID")
      done
      run_loadgen "$kind" -scenario cluster -conns "$CLUSTER_CONNS" -url "$(IFS=,; echo "${urls[*]}")" \
        -server-pid "$(IFS=,; echo "${pids[*]}")" -rate-start "${FANOUT_RATE_START:-50}" -rate-factor 1.25 -max-steps 24
      for i in "${pids[@]}"; do stop_pid "$i"; done ;;
    polling)
      start_server "$kind" memory "$kind-polling"
      run_loadgen "$kind" -scenario fanout -transport polling -conns "$POLLING_CONNS" -url "$SRV_URL" -server-pid "$SRV_PID" \
        -rate-start 20 -rate-factor 1.5 -max-steps 10
      stop_pid "$SRV_PID" ;;
    *) log "unknown scenario $sc"; exit 2 ;;
  esac
}

for sc in $SCENARIOS; do
  for kind in $SERVERS; do
    if [[ $kind == minimal && " idle fanout user-events user-events-batch storm " != *" $sc "* ]]; then
      log "minimal: skipping $sc (the reference server has no Redis adapter and no long-polling)"
      continue
    fi
    run_scenario "$kind" "$sc"
  done
done

# ---- report -----------------------------------------------------------------
SIO_VERSION=$(node -p "require('./bench/baseline-node/node_modules/socket.io/package.json').version")
ADAPTER_VERSION=$(node -p "require('./bench/baseline-node/node_modules/@socket.io/redis-adapter/package.json').version")
meta_args=(
  "machine" "$(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs), $(free -g | awk '/Mem:/{print $2}') GiB RAM"
  "kernel" "$(uname -srm)"
  "load average before the run" "$(cut -d' ' -f1-3 /proc/loadavg) (other work on the box inflates latencies; see machine_cpu_cores per step in the JSON)"
  "Go" "$(go version | cut -d' ' -f3-)"
  "Node" "$(node --version), socket.io $SIO_VERSION, @socket.io/redis-adapter $ADAPTER_VERSION, rate limits in memory on one node and in Redis in the cluster (as tradewire)"
  "Redis" "$(redis-server --version | cut -d' ' -f3,4)"
  "tradewire" "$(git rev-parse --short HEAD) $(if [[ -n ${TRADEWIRE_CMD:-} ]]; then rel "$TRADEWIRE_CMD"; else echo '(not run)'; fi)"
  "minimal reference" "$(if [[ -n ${MINIMAL_CMD:-} ]]; then echo "bench/minimal ($(rel "$MINIMAL_CMD"))"; else echo '(not run)'; fi)"
  "scale" "$SCALE: idle $IDLE_CONNS, fanout $FANOUT_CONNS, user-events $EVENTS_CONNS, storm $STORM_CONNS, cluster $CLUSTER_CONNS on $CLUSTER_SERVERS servers, polling $POLLING_CONNS; p99 line $P99; loadgen in $PROCS process(es) on the same machine"
  "raw results" "$(rel "$RESULTS")"
)
for c in "${COMMANDS[@]}"; do meta_args+=("command" "\`$c\`"); done
node -e 'const a=process.argv.slice(1);const out=[];for(let i=0;i<a.length;i+=2)out.push([a[i],a[i+1]]);console.log(JSON.stringify(out))' \
  "${meta_args[@]}" >"$RESULTS/meta.json"
touch "$RESULTS/node.jsonl" "$RESULTS/tradewire.jsonl" "$RESULTS/minimal.jsonl"
KEEP_MARK='<!-- kept by bench/run.sh -->'
kept=""
if [[ -f $OUT ]] && grep -qF "$KEEP_MARK" "$OUT"; then
  kept=$(awk -v m="$KEEP_MARK" 'f || $0 == m { f = 1; print }' "$OUT")
fi
mkdir -p "$(dirname "$OUT")"
"$LOADGEN" report -node "$RESULTS/node.jsonl" -tradewire "$RESULTS/tradewire.jsonl" -minimal "$RESULTS/minimal.jsonl" \
  -meta "$RESULTS/meta.json" -o "$OUT"
[[ -n $kept ]] && printf '%s\n' "$kept" >>"$OUT"
# the doc must not name paths of this machine
sed -i "s#$ROOT/##g" "$OUT"
if grep -nE "$ROOT|(^|[^[:alnum:]._-])/tmp/" "$OUT" >&2; then
  log "$OUT names an absolute path (above): fix the meta or the kept part"; exit 1
fi
log "wrote $OUT (raw results in $RESULTS)"
