#!/usr/bin/env bash
# Many SIGKILLs in the middle of online re-keys: runs the integration test
# RekeyTests.SigkillAtRandomMomentsOfARekeyNeverLosesAByte (the same code CI runs with 5 kills)
# with more kills and a bigger disk, then prints the figures for docs/RELIABILITY.md (Online re-key).
#
#   tests/ManagedDisks.IntegrationTests/scripts/rekey-crash-trials.sh [KILLS] [DISK_SIZE]
#   e.g. ... 100 256M
#
# Each trial: a random moment of a running re-key (after a random tenth of it), SIGKILL, restart;
# the daemon resumes the re-key from its header. A kill that lands after the end is followed by
# a full read-back and a new re-key. At the end every byte is read back with qemu-io patterns.
set -euo pipefail
cd "$(dirname "$0")/../../.."
kills="${1:-100}"
size="${2:-256M}"
log="$(mktemp /tmp/rekey-trials.XXXXXX.log)"
started=$(date +%s)
REKEY_KILLS="$kills" REKEY_DISK_SIZE="$size" dotnet test tests/ManagedDisks.IntegrationTests -c Release \
  --filter "FullyQualifiedName~RekeyTests.SigkillAtRandomMomentsOfARekeyNeverLosesAByte" \
  --logger "console;verbosity=detailed" >"$log" 2>&1 || { tail -50 "$log"; echo "FAILED; full log in $log"; exit 1; }
elapsed=$(( $(date +%s) - started ))
figures=$(grep -m1 -o 'REKEY-FIGURES.*' "$log")
echo "date:    $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "machine: $(nproc) cores, kernel $(uname -r), $(. /etc/os-release && echo "$PRETTY_NAME")"
echo "command: $0 $kills $size"
echo "result:  passed in ${elapsed}s; ${figures#REKEY-FIGURES }"
rm -f "$log"
