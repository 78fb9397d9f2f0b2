# Sourced by the reliability scripts: find the daemon, start it on a configuration and wait
# until it says it is ready (nbdcheck/daemon.py does the same for the Python checker).

# managed-disks.dll: $DAEMON or $MANAGED_DISKS_DLL (the file or its folder), else the Release
# build in this tree, built if missing. Prints the path.
daemon_dll() {
  local repo dll=${DAEMON:-${MANAGED_DISKS_DLL:-}}
  repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  if [[ -z $dll ]]; then
    dll=$(ls "$repo"/src/ManagedDisks.Daemon/bin/Release/net*/managed-disks.dll 2>/dev/null | tail -n 1 || true)
    if [[ -z $dll ]]; then
      dotnet build -c Release "$repo/src/ManagedDisks.Daemon" >&2 || return 1
      dll=$(ls "$repo"/src/ManagedDisks.Daemon/bin/Release/net*/managed-disks.dll | tail -n 1)
    fi
  fi
  [[ -d $dll ]] && dll=$dll/managed-disks.dll
  [[ -f $dll ]] || { echo "no managed-disks.dll at $dll" >&2; return 1; }
  echo "$dll"
}

# start_daemon DLL CONFIG LOG: starts `serve` in the background, appending to LOG, sets
# DAEMON_PID and returns once this start has logged "ManagedDisks ready" (120 s at most).
start_daemon() {
  local dll=$1 config=$2 log=$3 from i
  touch "$log"
  from=$(($(stat -c %s "$log") + 1))
  Logging__LogLevel__Default=Information Logging__LogLevel__Microsoft=Warning \
    dotnet "$dll" serve --config "$config" >>"$log" 2>&1 </dev/null &
  DAEMON_PID=$!
  for ((i = 0; i < 1200; i++)); do
    tail -c "+$from" "$log" | grep -q "ManagedDisks ready" && return 0
    kill -0 "$DAEMON_PID" 2>/dev/null || { echo "the daemon exited at start; see $log" >&2; return 1; }
    sleep 0.1
  done
  echo "the daemon was not ready in 120 s; see $log" >&2
  return 1
}
