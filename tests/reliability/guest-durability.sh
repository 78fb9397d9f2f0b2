#!/usr/bin/env bash
# guest-durability.sh [TRIALS] [WORK]: the Linux kernel's nbd driver and ext4 on a daemon that
# crashes. Needs root (see tests/ManagedDisks.IntegrationTests/scripts/guest/README.md).
#
# Per trial, on one disk kept from trial to trial:
#   1. a qemu (TCG) guest attaches the disk with nbd-client (mkfs.ext4 on trial 1), writes
#      files, records their sha256, runs `sync`, then keeps writing (fsynced files and churn);
#   2. a random 0.5-6 s after the guest's "synced", the host SIGKILLs the daemon; the guest's
#      I/O fails and it powers off without syncing (guest/durability-init);
#   3. the daemon is started again on the same configuration, and a fresh guest boot mounts
#      the file system (the ext4 journal is replayed), checks the sha256 of every trial's
#      synced and fsynced files, unmounts and runs `e2fsck -fn`, which must be clean.
# Prints one line per trial and "guest-durability: N/N trials passed, fsck clean in N"; exit 0
# when every trial passed, 1 otherwise, 77 when the guest cannot run here.
#
# Environment: DAEMON or MANAGED_DISKS_DLL (managed-disks.dll), SEED (for the kill delays).
set -euo pipefail

TRIALS=${1:-5}
WORK=${2:-$(mktemp -d /tmp/md-guest-durability.XXXXXX)}
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/../.." && pwd)
KERNEL_ATTACH=$REPO/tests/ManagedDisks.IntegrationTests/scripts/guest/kernel-attach.sh
export KERNEL_ATTACH_INIT=$SCRIPT_DIR/guest/durability-init
RANDOM=${SEED:-$$}

# shellcheck source=daemon.sh
. "$SCRIPT_DIR/daemon.sh"
DAEMON_DLL=$(daemon_dll)
mkdir -p "$WORK/state" "$WORK/guest"
chmod 700 "$WORK/state"
cat >"$WORK/disks.toml" <<TOML
[daemon]
state_dir = "$WORK/state"
listen = ["unix:$WORK/state/nbd.sock"]
admin_socket = "$WORK/state/admin.sock"

[[disk]]
name = "guest"
size = "1G"
TOML
SOCKET=$WORK/state/nbd.sock
DAEMON_PID="" GUEST_PID=""
cleanup() {
  [[ -n $GUEST_PID ]] && kill -KILL -- "-$GUEST_PID" 2>/dev/null || true
  if [[ -n $DAEMON_PID ]]; then kill -TERM "$DAEMON_PID" 2>/dev/null || true; wait "$DAEMON_PID" 2>/dev/null || true; fi
}
trap cleanup EXIT

# kernel-attach.sh MODE TRIAL: one guest boot; its console ends up in $WORK/trial-N-MODE.log.
boot() {
  KERNEL_ATTACH_APPEND="gd.mode=$1 gd.trial=$2" bash "$KERNEL_ATTACH" "$SOCKET" guest "$WORK/guest"
}

echo "guest-durability: $TRIALS trials, work $WORK"
passed=0
start_daemon "$DAEMON_DLL" "$WORK/disks.toml" "$WORK/daemon.log"
for ((trial = 1; trial <= TRIALS; trial++)); do
  t0=$(date +%s)
  # setsid: the boot is its own process group, so it can be ended as one if the guest hangs.
  setsid bash -c "$(declare -f boot); KERNEL_ATTACH=$KERNEL_ATTACH SOCKET=$SOCKET WORK=$WORK boot write $trial" \
    >"$WORK/trial-$trial-write.out" 2>&1 &
  GUEST_PID=$!
  while ! grep -qa 'GUEST-RESULT: synced' "$WORK/guest/console.log" 2>/dev/null; do
    if ! kill -0 "$GUEST_PID" 2>/dev/null; then
      if grep -q 'SKIP' "$WORK/trial-$trial-write.out"; then cat "$WORK/trial-$trial-write.out"; exit 77; fi
      echo "trial $trial: FAIL the write boot ended before its sync:"; tail -n 30 "$WORK/trial-$trial-write.out"; exit 1
    fi
    sleep 0.2
  done
  delay=$((500 + RANDOM % 5500))
  sleep "$((delay / 1000)).$(printf '%03d' $((delay % 1000)))" # the random moment of the crash
  if ! kill -KILL "$DAEMON_PID" 2>/dev/null; then
    echo "trial $trial: INVALID the daemon was gone before the kill; see $WORK/daemon.log"
    exit 1
  fi
  wait "$DAEMON_PID" 2>/dev/null || true
  DAEMON_PID=""
  # The guest notices the dead connection and powers off; a hang is cut short after 120 s.
  for ((i = 0; i < 600 && $(kill -0 "$GUEST_PID" 2>/dev/null && echo 1 || echo 0); i++)); do sleep 0.2; done
  kill -KILL -- "-$GUEST_PID" 2>/dev/null || true
  wait "$GUEST_PID" 2>/dev/null || true
  GUEST_PID=""
  cp "$WORK/guest/console.log" "$WORK/trial-$trial-write.log"
  written=$(grep -ao 'GUEST-RESULT: io failed after [0-9]* fsynced files' "$WORK/trial-$trial-write.log" | grep -o '[0-9]*' || echo "?")

  start_daemon "$DAEMON_DLL" "$WORK/disks.toml" "$WORK/daemon.log"
  status=0
  boot verify "$trial" >"$WORK/trial-$trial-verify.out" 2>&1 || status=$?
  cp "$WORK/guest/console.log" "$WORK/trial-$trial-verify.log"
  verified=$(grep -ao 'GUEST-RESULT: verified.*' "$WORK/trial-$trial-verify.log" | tr -d '\r' | sed 's/GUEST-RESULT: //' || true)
  fsck=$(grep -aq 'GUEST-RESULT: fsck clean' "$WORK/trial-$trial-verify.log" && echo "fsck clean" || echo "fsck NOT clean")
  if ((status == 0)); then
    passed=$((passed + 1))
    echo "trial $trial: PASS killed ${delay} ms after sync, $written files fsynced before the I/O failed; ${verified:-?}; $fsck ($(($(date +%s) - t0)) s)"
  else
    echo "trial $trial: FAIL killed ${delay} ms after sync; ${verified:-nothing verified}; $fsck"
    grep -a 'GUEST-RESULT' "$WORK/trial-$trial-verify.log" | tr -d '\r' | sed 's/^/  /'
  fi
done
echo "guest-durability: $passed/$TRIALS trials passed, fsck clean in $(grep -la 'GUEST-RESULT: fsck clean' "$WORK"/trial-*-verify.log | wc -l)"
((passed == TRIALS))
