#!/usr/bin/env bash
# A local Redis Cluster of three masters (127.0.0.1:7101-7103, no replicas) for the tests.
#
#   scripts/redis-cluster.sh ensure   start it unless it already runs and is healthy
#   scripts/redis-cluster.sh stop     shut its nodes down and forget it
#
# Nothing is persisted but the cluster's own node tables (nodes.conf), which let a stopped node
# rejoin with its slots when started again; they live under /tmp/ignis-redis-cluster.
#
# IGNIS_REDIS_CLUSTER_PORT=7111 makes another cluster on 7111-7113 (under
# /tmp/ignis-redis-cluster-7111): the tests that kill nodes use one of their own.
set -euo pipefail

BASE=${IGNIS_REDIS_CLUSTER_PORT:-7101}
PORTS=("$BASE" "$((BASE + 1))" "$((BASE + 2))")
HOST=127.0.0.1
if [ "$BASE" = 7101 ]; then
  DIR=/tmp/ignis-redis-cluster
else
  DIR=/tmp/ignis-redis-cluster-$BASE
fi

cli() { redis-cli -h "$HOST" -p "$1" "${@:2}"; }

# Every node answers, knows three masters, and says the cluster is ok.
healthy() {
  local port
  for port in "${PORTS[@]}"; do
    cli "$port" cluster info 2>/dev/null | grep -q '^cluster_state:ok' || return 1
    [ "$(cli "$port" cluster info 2>/dev/null | tr -d '\r' | sed -n 's/^cluster_size://p')" = 3 ] || return 1
  done
}

# Every node's table names all three: a cluster that was made before.
knows_all() {
  local port
  for port in "${PORTS[@]}"; do
    [ "$(cli "$port" cluster info 2>/dev/null | tr -d '\r' | sed -n 's/^cluster_known_nodes://p')" = 3 ] || return 1
  done
}

start_node() {
  local port=$1
  mkdir -p "$DIR/$port"
  if cli "$port" ping >/dev/null 2>&1; then
    return
  fi
  redis-server --daemonize yes --bind "$HOST" --port "$port" \
    --cluster-enabled yes --cluster-config-file "$DIR/$port/nodes.conf" \
    --cluster-node-timeout 2000 \
    --save "" --appendonly no --dir "$DIR/$port" \
    --pidfile "$DIR/$port/redis.pid" --logfile "$DIR/$port/redis.log" 9>&-
}

wait_for() {
  local what=$1 tries=$2
  shift 2
  for _ in $(seq 1 "$tries"); do
    "$@" && return 0
    sleep 0.1
  done
  echo "redis-cluster.sh: $what" >&2
  return 1
}

ensure() {
  command -v redis-server >/dev/null || { echo "redis-cluster.sh: redis-server is not installed" >&2; exit 1; }
  if healthy; then
    echo "Redis Cluster on $HOST:${PORTS[0]}-${PORTS[-1]} is up"
    return
  fi
  local port
  for port in "${PORTS[@]}"; do start_node "$port"; done
  for port in "${PORTS[@]}"; do
    wait_for "node $port does not answer" 100 cli "$port" ping >/dev/null
  done
  # Started nodes that kept their node tables form the cluster again by themselves; fresh ones
  # (or a half-made cluster) are reset and joined anew.
  if ! { knows_all && wait_for "the old cluster did not come back; creating it anew" 100 healthy; }; then
    for port in "${PORTS[@]}"; do
      cli "$port" flushall >/dev/null 2>&1 || true
      cli "$port" cluster reset hard >/dev/null
    done
    local nodes=()
    for port in "${PORTS[@]}"; do nodes+=("$HOST:$port"); done
    redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes >/dev/null
    wait_for "the cluster did not reach cluster_state:ok" 300 healthy
  fi
  echo "Redis Cluster on $HOST:${PORTS[0]}-${PORTS[-1]} is up"
}

stop() {
  local port
  for port in "${PORTS[@]}"; do
    cli "$port" shutdown nosave >/dev/null 2>&1 || true
  done
  rm -rf "$DIR"
}

# One caller at a time: tests of several binaries may ask at once.
mkdir -p "$DIR"
exec 9>"$DIR.lock"
flock 9

case "${1:-}" in
  ensure) ensure ;;
  stop) stop ;;
  *)
    echo "usage: $0 ensure|stop" >&2
    exit 2
    ;;
esac
