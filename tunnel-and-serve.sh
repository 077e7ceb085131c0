#!/usr/bin/env bash
# The Procfile's entry point: opens the SSH tunnel to the database cluster (when tunnel
# settings are present), waits until it accepts connections, then runs the server.
#
#   tunnel-and-serve.sh              run the web server (SERVER_CMD, default node --max-semi-space-size=64 dist/src/server.js)
#   tunnel-and-serve.sh CMD [ARG…]   run CMD instead, e.g. the release phase's `npm run schema`
#
# SIGTERM and SIGINT are forwarded to the server, which shuts down gracefully; the script
# then exits with the server's status. If the tunnel or the server dies on its own, the
# script stops the other and exits non-zero, so that the platform restarts the dyno.
# The settings are described in docs/deploy.md; the tunnel itself is src/tunnel/.
set -euo pipefail
cd "$(dirname "$0")"

log() { printf 'tunnel-and-serve: %s\n' "$*" >&2; }

alive() { [[ -n $1 ]] && kill -0 "$1" 2>/dev/null; }

# Sends SIGTERM, waits at most $2 seconds for the process to go, then SIGKILLs it.
stop() {
  local pid=$1 seconds=$2 i
  alive "$pid" || return 0
  kill -s TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < seconds * 10; i++)); do
    alive "$pid" || return 0
    sleep 0.1
  done
  kill -s KILL "$pid" 2>/dev/null || true
}

# Traps are set before anything is started, so no signal can fall between two children.
tunnel_pid=""
server_pid=""
signal=""
# Forwarded to the server once it runs; before that, the wait for the tunnel notices $signal.
trap 'signal=TERM; kill -s TERM "$server_pid" 2>/dev/null || true' TERM
trap 'signal=INT; kill -s INT "$server_pid" 2>/dev/null || true' INT
# Whatever the way out, nothing is left behind. The tunnel, stopped last, still carries the
# server's last queries; it exits as soon as their connections are closed.
trap 'stop "$server_pid" 10; stop "$tunnel_pid" 5' EXIT

if (($# > 0)); then
  command=("$@")
  one_shot=1
elif [[ -n ${SERVER_CMD:-} ]]; then
  command=(sh -c "exec $SERVER_CMD")
  one_shot=""
else
  # A 64 MiB young generation: see "Memory and garbage collection" in the README.
  command=(node --max-semi-space-size=64 dist/src/server.js)
  one_shot=""
fi

if [[ -z "${TUNNEL_SSH_HOST:-}${COMPOSE_SSH_PUBLIC_HOSTNAME:-}" ]]; then
  trap - TERM INT EXIT
  exec "${command[@]}"
fi

if [[ -n ${TUNNEL_CMD:-} ]]; then
  read -r -a tunnel_cmd <<<"$TUNNEL_CMD"
elif [[ -f dist/src/tunnel/main.js ]]; then
  tunnel_cmd=(node dist/src/tunnel/main.js)
else
  tunnel_cmd=(node --import tsx src/tunnel/main.ts)
fi

local_port=${TUNNEL_LOCAL_PORT:-28015}
# The app reaches the database through the tunnel unless told otherwise.
export RETHINKDB_URL=${RETHINKDB_URL:-rethinkdb://127.0.0.1:$local_port}

# Background children of a script start with SIGINT ignored; give them the default back so
# that a forwarded SIGINT reaches them.
(trap - INT QUIT && exec "${tunnel_cmd[@]}") &
tunnel_pid=$!
log "tunnel started (pid $tunnel_pid), waiting for 127.0.0.1:$local_port"

# Bounded wait: TUNNEL_READY_TIMEOUT seconds (default 60), polled every 0.2 s.
ready=""
for ((i = 0; i < ${TUNNEL_READY_TIMEOUT:-60} * 5; i++)); do
  if [[ -n $signal ]] || ! alive "$tunnel_pid"; then
    break
  fi
  if (exec 3<>"/dev/tcp/127.0.0.1/$local_port") 2>/dev/null; then
    ready=1
    break
  fi
  sleep 0.2
done
if [[ -n $signal ]]; then
  log "got SIG$signal before the tunnel was up"
  exit $((128 + $(kill -l "$signal")))
fi
if [[ -z $ready ]] || ! alive "$tunnel_pid"; then
  log "the tunnel did not come up"
  exit 1
fi

# The server does not need the SSH key: keep it out of its environment.
(trap - INT QUIT && exec env -u TUNNEL_SSH_KEY -u COMPOSE_SSH_KEY -u TUNNEL_SSH_KEY_PASSPHRASE "${command[@]}") &
server_pid=$!
log "tunnel up; started ${command[*]} (pid $server_pid)"

status=0
finished=""
# Returns when either child exits, or when a trapped signal interrupts it ($finished unset).
wait -n -p finished "$tunnel_pid" "$server_pid" || status=$?

if [[ -n $signal ]]; then
  # Asked to stop: the server got the signal and shuts down gracefully, still through the
  # tunnel; its status becomes ours. A repeated signal interrupts `wait`, hence the loop.
  if [[ ${finished:-} != "$server_pid" ]]; then
    for _ in 1 2 3 4 5 6 7 8 9 10; do
      status=0
      wait "$server_pid" || status=$?
      alive "$server_pid" || break
    done
  fi
  log "the server exited with status $status after SIG$signal"
  exit "$status"
fi

if [[ ${finished:-} == "$tunnel_pid" ]]; then
  log "the tunnel exited (status $status); stopping the server"
  stop "$server_pid" 10
  exit 1
fi

if [[ -n $one_shot ]]; then
  exit "$status"
fi
log "the server exited on its own (status $status)"
exit $((status == 0 ? 1 : status))
