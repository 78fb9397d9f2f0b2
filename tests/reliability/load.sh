#!/usr/bin/env bash
# load.sh: many clients on many disks for a long time, watching the daemon's memory and
# descriptors.
#
# One daemon serves DISKS encrypted disks; one fio runs DISKS x JOBS_PER_DISK jobs through its
# nbd engine (one NBD connection each), each on its own region of its disk, randrw with mixed
# block sizes and verify=crc32c (verify_backlog: what a job wrote is read back and checked
# while it runs; verify_fatal). Every SAMPLE seconds the daemon's VmRSS, open descriptors and
# sockets (from /proc/PID) are recorded. After fio exits, the descriptors and sockets must
# return to the baseline taken before the load, and the daemon must report no connection left.
#
# Environment (defaults in brackets):
#   DISKS          disks [16]
#   JOBS_PER_DISK  fio jobs (connections) per disk [4]
#   RUNTIME        seconds of load [180]
#   DISK_SIZE      size of each disk [128M]; each job gets DISK_SIZE / JOBS_PER_DISK
#   IODEPTH        requests in flight per connection [8]
#   SAMPLE         seconds between samples [5]
#   RSS_LIMIT_MIB  the daemon's VmRSS must stay below this [2048]
#   DAEMON         managed-disks.dll or its folder [$MANAGED_DISKS_DLL, or the Release build in the tree]
#   WORK           scratch folder [mktemp -d; kept, it holds the log, samples and fio JSON]
#
# Output: the samples as they come, then summary lines starting with "load:", the last one
# "load: PASS" or "load: FAIL <reasons>" (exit status 0 or 1).
set -euo pipefail

DISKS=${DISKS:-16}
JOBS_PER_DISK=${JOBS_PER_DISK:-4}
RUNTIME=${RUNTIME:-180}
DISK_SIZE=${DISK_SIZE:-128M}
IODEPTH=${IODEPTH:-8}
SAMPLE=${SAMPLE:-5}
RSS_LIMIT_MIB=${RSS_LIMIT_MIB:-2048}
PYTHON=/usr/bin/python3 # Debian's, for the nbd module and JSON
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

log() { printf '%s\n' "$*"; }
die() { log "load: FAIL $*"; exit 1; }

for tool in fio dotnet ss; do command -v "$tool" >/dev/null || die "$tool not found"; done

# shellcheck source=daemon.sh
. "$SCRIPT_DIR/daemon.sh"
DAEMON_DLL=$(daemon_dll) || die "no daemon to run"

WORK=${WORK:-$(mktemp -d /tmp/md-load.XXXXXX)}
mkdir -p "$WORK/state"
chmod 700 "$WORK/state"
STATE=$WORK/state
DAEMON_PID=""
SAMPLER_PID=""
cleanup() {
  [[ -n $SAMPLER_PID ]] && kill "$SAMPLER_PID" 2>/dev/null || true
  if [[ -n $DAEMON_PID ]]; then
    kill -TERM "$DAEMON_PID" 2>/dev/null || true
    wait "$DAEMON_PID" 2>/dev/null || true
  fi
}
trap cleanup EXIT

# ---------------------------------------------------------------- the daemon and its disks

{
  printf '[daemon]\nstate_dir = "%s"\nlisten = ["unix:%s/nbd.sock"]\nadmin_socket = "%s/admin.sock"\n\n' "$STATE" "$STATE" "$STATE"
  for ((d = 0; d < DISKS; d++)); do printf '[[disk]]\nname = "load%02d"\nsize = "%s"\n\n' "$d" "$DISK_SIZE"; done
} >"$WORK/disks.toml"

start_daemon "$DAEMON_DLL" "$WORK/disks.toml" "$WORK/daemon.log" || die "the daemon did not start"

uri() { printf 'nbd+unix:///load%02d?socket=%s/nbd.sock' "$1" "$STATE"; }
admin() { dotnet "$DAEMON_DLL" "$@" --config "$WORK/disks.toml"; }

# VmRSS in KiB, open descriptors, sockets among them, threads.
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$DAEMON_PID/status"; }
fd_count() { find "/proc/$DAEMON_PID/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
# Descriptors other than assemblies: the .NET runtime keeps each assembly it loads open for
# the life of the process, and some load on first use (measured: Microsoft.Extensions.
# FileSystemGlobbing.dll during the first load run), which is no per-connection leak.
non_assembly_count() { find "/proc/$DAEMON_PID/fd" -mindepth 1 -maxdepth 1 -printf '%l\n' 2>/dev/null | grep -vc '\.dll$' || true; }
socket_count() { find "/proc/$DAEMON_PID/fd" -mindepth 1 -maxdepth 1 -lname 'socket:*' 2>/dev/null | wc -l; }
# What the descriptors point at, for the report when the counts differ (socket/pipe inode numbers removed).
fd_table() { find "/proc/$DAEMON_PID/fd" -mindepth 1 -maxdepth 1 -printf '%l\n' 2>/dev/null | sed -E 's/\[[0-9]+\]/[]/' | sort | uniq -c; }
threads() { awk '/^Threads:/ { print $2 }' "/proc/$DAEMON_PID/status"; }
# Connected Unix sockets the daemon holds, as ss sees them (a cross-check of socket_count).
ss_connected() { ss -xpH state connected 2>/dev/null | grep -c "pid=$DAEMON_PID," || true; }

# Waits until the descriptor and socket counts stop changing, or match the given values.
settle() {
  local want_fds=${1:-} want_sockets=${2:-} prev="" now i
  for ((i = 0; i < 60; i++)); do
    now="$(non_assembly_count) $(socket_count)"
    if [[ -n $want_fds ]]; then
      [[ $now == "$want_fds $want_sockets" ]] && break
    else
      [[ $now == "$prev" ]] && break
    fi
    prev=$now
    sleep 0.5
  done
}

# Warm-up: one short connection per disk and one admin call, so that what the daemon creates
# once on first use (thread pool, socket engine, Kestrel) is part of the baseline, not a leak.
for ((d = 0; d < DISKS; d++)); do nbdinfo --size "$(uri "$d")" >/dev/null; done
admin status --json >/dev/null
settle
BASE_FDS=$(fd_count)
BASE_OWN=$(non_assembly_count)
BASE_SOCKETS=$(socket_count)
BASE_RSS=$(rss_kib)
fd_table >"$WORK/fds-baseline.txt"
log "load: daemon pid $DAEMON_PID, $DISKS disks of $DISK_SIZE, $((DISKS * JOBS_PER_DISK)) connections, ${RUNTIME}s, work $WORK"
log "load: free space where the disks live: $(df -h --output=avail "$STATE" | tail -n 1 | tr -d ' ')"
log "load: baseline rss ${BASE_RSS} KiB, fds $BASE_FDS ($BASE_OWN not assemblies), sockets $BASE_SOCKETS, threads $(threads)"

# ---------------------------------------------------------------- the load

{
  printf '[global]\nioengine=nbd\nrw=randrw\nrwmixread=50\nbssplit=4k/40:16k/20:64k/20:256k/10:1m/10\n'
  # verify_state_save=0: fio would otherwise leave a *-verify.state file per job in its folder.
  printf 'iodepth=%s\nverify=crc32c\nverify_backlog=256\nverify_fatal=1\nverify_state_save=0\ntime_based=1\nruntime=%s\n' "$IODEPTH" "$RUNTIME"
  region=$(($(numfmt --from=iec "$DISK_SIZE") / JOBS_PER_DISK))
  printf 'size=%s\n\n' "$region"
  for ((d = 0; d < DISKS; d++)); do
    for ((j = 0; j < JOBS_PER_DISK; j++)); do
      printf '[d%02dj%d]\nuri=%s\noffset=%s\n\n' "$d" "$j" "$(uri "$d")" "$((j * region))"
    done
  done
} >"$WORK/load.fio"

echo "seconds,rss_kib,fds,sockets,ss_connected,threads" >"$WORK/samples.csv"
(
  start=$(date +%s)
  while kill -0 "$DAEMON_PID" 2>/dev/null; do
    line="$(($(date +%s) - start)),$(rss_kib),$(fd_count),$(socket_count),$(ss_connected),$(threads)"
    echo "$line" >>"$WORK/samples.csv"
    echo "sample $line"
    sleep "$SAMPLE"
  done
) &
SAMPLER_PID=$!

fio_status=0
(cd "$WORK" && fio --output-format=json --output="$WORK/fio.json" "$WORK/load.fio" >"$WORK/fio.stderr" 2>&1) || fio_status=$?
kill "$SAMPLER_PID" 2>/dev/null || true
wait "$SAMPLER_PID" 2>/dev/null || true
SAMPLER_PID=""

# ---------------------------------------------------------------- after: back to baseline?

kill -0 "$DAEMON_PID" 2>/dev/null || die "the daemon died under load; see $WORK/daemon.log"
settle "$BASE_OWN" "$BASE_SOCKETS"
AFTER_FDS=$(fd_count)
AFTER_OWN=$(non_assembly_count)
AFTER_SOCKETS=$(socket_count)
AFTER_RSS=$(rss_kib)
AFTER_SS=$(ss_connected)
fd_table >"$WORK/fds-after.txt"
diff "$WORK/fds-baseline.txt" "$WORK/fds-after.txt" | sed 's/^/load: fd table changed: /' || true
admin status --json >"$WORK/status.json" || true # judged below

"$PYTHON" - "$WORK" "$fio_status" "$BASE_RSS" "$BASE_FDS" "$BASE_OWN" "$BASE_SOCKETS" "$AFTER_RSS" "$AFTER_FDS" "$AFTER_OWN" \
  "$AFTER_SOCKETS" "$AFTER_SS" "$RSS_LIMIT_MIB" "$((DISKS * JOBS_PER_DISK))" <<'PY'
import csv, json, statistics, sys
work, fio_status = sys.argv[1], int(sys.argv[2])
(base_rss, base_fds, base_own, base_sockets, after_rss, after_fds, after_own, after_sockets, after_ss, limit_mib,
 connections) = map(int, sys.argv[3:])
failures = []

try:
    fio = json.load(open(f"{work}/fio.json"))
    jobs = fio["jobs"]
except (OSError, ValueError, KeyError) as e:
    jobs = []
    failures.append(f"no fio results ({e}); see {work}/fio.stderr")
errors = sum(j["error"] for j in jobs)
failed = [j["jobname"] for j in jobs if j["error"]]
read = sum(j["read"]["io_bytes"] for j in jobs)
written = sum(j["write"]["io_bytes"] for j in jobs)
ios = sum(j["read"]["total_ios"] + j["write"]["total_ios"] for j in jobs)
if fio_status or errors or len(jobs) != connections:
    failures.append(f"fio exit {fio_status}, {len(jobs)}/{connections} jobs reported, jobs with errors: {failed[:5]}")
print(f"load: fio {len(jobs)} jobs, errors {errors}, read {read / 2**30:.2f} GiB, written {written / 2**30:.2f} GiB, "
      f"{ios} requests (verify=crc32c with verify_backlog)")

samples = list(csv.DictReader(open(f"{work}/samples.csv")))
rss = [int(s["rss_kib"]) for s in samples]
fds = [int(s["fds"]) for s in samples]
sockets = [int(s["sockets"]) for s in samples]
half = rss[len(rss) // 2:] or rss
print(f"load: rss KiB baseline {base_rss}, peak {max(rss)}, steady (median of the second half) {int(statistics.median(half))}, "
      f"after {after_rss}; {len(samples)} samples")
print(f"load: fds baseline {base_fds}, peak {max(fds)}, after {after_fds}; not assemblies baseline {base_own}, after {after_own}; "
      f"sockets baseline {base_sockets}, peak {max(sockets)}, after {after_sockets}; connected sockets per ss after {after_ss}")
if max(rss) > limit_mib * 1024:
    failures.append(f"rss peak {max(rss)} KiB over the limit of {limit_mib} MiB")
if after_own != base_own or after_sockets != base_sockets or after_ss:
    failures.append(f"descriptors did not return to the baseline: fds other than assemblies {base_own} -> {after_own}, "
                    f"sockets {base_sockets} -> {after_sockets}, connected per ss {after_ss}")

try:
    status = json.load(open(f"{work}/status.json"))
except ValueError:
    status = {"disks": [{"requests": 0, "errors": -1}], "connections": [None]}
    failures.append("the daemon's admin API did not answer `status`")
disk_errors = sum(d["errors"] for d in status["disks"])
left = len(status["connections"])
print(f"load: daemon status: {sum(d['requests'] for d in status['disks'])} requests, {disk_errors} errors, "
      f"{left} connections left")
if disk_errors or left:
    failures.append(f"the daemon reports {disk_errors} request errors and {left} connections left")
print("load: PASS" if not failures else "load: FAIL " + "; ".join(failures))
sys.exit(1 if failures else 0)
PY
