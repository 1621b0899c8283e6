# shellcheck shell=bash
# Shared by scripts/test and scripts/demo: logging, timed steps, tool checks, and a Cassandra
# node that is stopped at exit only if this script started it.

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CASSANDRA_TOOL="$REPO/tools/cassandra/cassandra"
# tools/cassandra/cassandra puts node 1 on BUSDRAIN_CASSANDRA_FIRST_IP (default 127.0.0.1).
readonly DEFAULT_CASSANDRA_ADDRESS="${BUSDRAIN_CASSANDRA_FIRST_IP:-127.0.0.1}:9042"

log() { printf '[%s] %s\n' "${SCRIPT_NAME:-busdrain}" "$*" >&2; }
fail() {
  log "ERROR: $*"
  exit 1
}

# --- timed steps -----------------------------------------------------------------------------
# run_step NAME CMD...: runs CMD, records "NAME  PASS/FAIL  seconds" for the summary.
STEP_NAMES=()
STEP_RESULTS=()
STEP_SECONDS=()
STEPS_FAILED=0

run_step() {
  local name="$1" started rc=0
  shift
  log "=== $name"
  started=$SECONDS
  "$@" || rc=$?
  STEP_NAMES+=("$name")
  STEP_SECONDS+=("$((SECONDS - started))")
  if ((rc == 0)); then
    STEP_RESULTS+=("PASS")
  else
    STEP_RESULTS+=("FAIL (exit $rc)")
    STEPS_FAILED=$((STEPS_FAILED + 1))
    log "step '$name' failed (exit $rc)"
  fi
  return "$rc"
}

# Like run_step, but the script cannot go on without this step.
require_step() {
  run_step "$@" || {
    print_summary
    fail "step '$1' failed; nothing after it can run"
  }
}

print_summary() {
  local i passed=0
  echo
  echo "summary (${SCRIPT_NAME:-busdrain}, total $((SECONDS - ${SCRIPT_STARTED:-0}))s):"
  for i in "${!STEP_NAMES[@]}"; do
    printf '  %-28s %-16s %5ss\n' "${STEP_NAMES[i]}" "${STEP_RESULTS[i]}" "${STEP_SECONDS[i]}"
    [[ "${STEP_RESULTS[i]}" == PASS ]] && passed=$((passed + 1))
  done
  echo "steps: $passed passed, $STEPS_FAILED failed"
}

# --- tools -----------------------------------------------------------------------------------

need_command() {
  local cmd="$1" hint="$2"
  command -v "$cmd" >/dev/null 2>&1 || fail "'$cmd' not found: $hint"
}

check_java() {
  # tools/cassandra/cassandra picks a JDK 17/11 itself (JAVA_HOME, PATH, /usr/lib/jvm); this
  # only turns "no usable JDK" into an early, clear failure.
  local java major found=""
  for java in ${JAVA_HOME:+"$JAVA_HOME/bin/java"} "$(command -v java || true)" /usr/lib/jvm/*17*/bin/java /usr/lib/jvm/*11*/bin/java; do
    [[ -n "$java" && -x "$java" ]] || continue
    major="$("$java" -version 2>&1 | sed -n 's/.* version "\([0-9]*\).*/\1/p' | head -n 1)"
    if [[ "$major" == 17 || "$major" == 11 ]]; then
      found="$java"
      break
    fi
  done
  [[ -n "$found" ]] ||
    fail "no Java 17 (or 11) JDK found; Cassandra 5.0 runs only on those. Install one (Debian: apt-get install openjdk-17-jdk-headless) or set JAVA_HOME."
  log "java: $found (Java $major)"
}

# --- Cassandra ---------------------------------------------------------------------------------
CASSANDRA_STARTED_HERE=false

tcp_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# Uses a node that already answers on $BUSDRAIN_CASSANDRA (default 127.0.0.1:9042), else
# starts the project's own node (jars fetched before), remembering to stop it at exit. Exports
# BUSDRAIN_CASSANDRA so the tests (busdrain-testsupport) reach the same node.
ensure_cassandra() {
  local address="${BUSDRAIN_CASSANDRA:-$DEFAULT_CASSANDRA_ADDRESS}"
  local host="${address%:*}" port="${address##*:}"
  export BUSDRAIN_CASSANDRA="$address"
  if tcp_open "$host" "$port"; then
    log "Cassandra already answers on $address: using it, and leaving it running"
    return 0
  fi
  if [[ "$address" != "$DEFAULT_CASSANDRA_ADDRESS" ]]; then
    fail "BUSDRAIN_CASSANDRA=$address does not answer; start that node or unset BUSDRAIN_CASSANDRA to use the local one"
  fi
  # Set first: if start fails half-way, the exit trap still stops whatever did come up.
  CASSANDRA_STARTED_HERE=true
  "$CASSANDRA_TOOL" start
}

stop_cassandra_if_started_here() {
  if [[ "$CASSANDRA_STARTED_HERE" == true ]]; then
    log "stopping the Cassandra node this script started"
    "$CASSANDRA_TOOL" stop || log "WARNING: 'tools/cassandra/cassandra stop' failed"
    CASSANDRA_STARTED_HERE=false
  fi
}
