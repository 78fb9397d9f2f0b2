#!/usr/bin/env bash
# The long run of the fault and secrets tests (issue #8): the same tests CI runs, scaled up
# through their environment variables, printing the figures recorded in
# docs/RELIABILITY.md (Faults, Secrets). Needs root (tmpfs mount, FUSE, gdb)
# and the packages test.sh installs. Override any scale from the environment, e.g.
#   FAULTS_EIO_TRIALS=500 tests/reliability/faults.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

export FAULTS_ENOSPC_CYCLES="${FAULTS_ENOSPC_CYCLES:-50}"          # fill the file system, verify, TRIM, again
export FAULTS_EIO_TRIALS="${FAULTS_EIO_TRIALS:-100}"               # random bad ranges for reads, then writes
export FAULTS_EIO_SEED="${FAULTS_EIO_SEED:-8}"
export FAULTS_HSM_HANG_SECONDS="${FAULTS_HSM_HANG_SECONDS:-90}"    # at most 90: the admin client waits 2 minutes
export FAULTS_HSM_STATUS_CALLERS="${FAULTS_HSM_STATUS_CALLERS:-16}"
export FAULTS_SECRETS_SERVED_GCORE=1                               # also search a gcore of the serving daemon

echo "date: $(date -u)"
echo "machine: $(nproc) cores, kernel $(uname -r), $(. /etc/os-release && echo "$PRETTY_NAME")"
echo "scale: ENOSPC cycles $FAULTS_ENOSPC_CYCLES, EIO trials $FAULTS_EIO_TRIALS (seed $FAULTS_EIO_SEED), HSM hang ${FAULTS_HSM_HANG_SECONDS}s with $FAULTS_HSM_STATUS_CALLERS status callers"
log="$(mktemp /tmp/faults-run.XXXXXX.log)"
status=0
dotnet test tests/ManagedDisks.IntegrationTests -c Release \
  --filter "FullyQualifiedName~ManagedDisks.IntegrationTests.Faults|FullyQualifiedName~ManagedDisks.IntegrationTests.Secrets" \
  --logger "console;verbosity=normal" >"$log" 2>&1 || status=$?
grep -E "FIGURES:|^\s+(Passed|Failed|Skipped) " "$log" | sed 's/^ *//'
echo "full log: $log"
exit "$status"
