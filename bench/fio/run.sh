#!/usr/bin/env bash
# fio through its nbd engine against the ManagedDisks daemon and peer NBD servers, in one run.
#
# Prints a markdown report on stdout (progress goes to stderr):
#   bench/fio/run.sh > report.md
#
# Why this shape: the machine has two shared, noisy cores used by client, server and other
# tenants, so absolute numbers mean little. Every server is measured in the same run, workload by
# workload, alternating servers (order reversed every other round so drift does not favour one),
# REPEAT times; we report medians and the ratio of medians ours/peer.
#
# Environment (defaults in brackets):
#   RUNTIME        seconds measured per fio run [15]
#   RAMP           seconds of warm-up per fio run, not measured (JIT, connection setup) [2]
#   SIZE           disk size, K/M/G/T (powers of 1024) [1G]
#   REPEAT         runs per workload per server [3]
#   OURS           the peer measured as "ours" [managed_disks]
#   PEERS          space-separated peers compared with ours [nbdkit_file nbdkit_luks qemu_nbd_luks]
#                  nbdkit_file is the plaintext reference; the two LUKS peers encrypt like ours
#   ONLY           space-separated workload names to run [all]
#   DAEMON         managed-disks.dll, or the folder holding it [built from $REPO into $WORK]
#   WORK           scratch folder for backing files, sockets, logs [mktemp -d; deleted at exit]
#   KEEP_WORK      1 keeps the scratch folder (logs, fio JSON) [0]
#   READY_TIMEOUT  seconds a server may take to answer nbdinfo [120]
#   TARGET         the ratio ours/peer we aim for [0.9]
#   VERIFY         1 runs a short fio --verify=crc32c check through every server first [1]
#   LUKS_ITER_TIME PBKDF2 time in ms for the LUKS images' key slot [100]; only the key-slot
#                  unlock at each connection pays it, never the data path
#
# Self-test of the harness without the daemon (the ratio should come out ~1.0):
#   OURS=nbdkit_file PEERS=nbdkit_file bench/fio/run.sh
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=${REPO:-$(cd "$SCRIPT_DIR/../.." && pwd)}
RUNTIME=${RUNTIME:-15}
RAMP=${RAMP:-2}
SIZE=${SIZE:-1G}
REPEAT=${REPEAT:-3}
OURS=${OURS:-managed_disks}
PEERS=${PEERS:-nbdkit_file nbdkit_luks qemu_nbd_luks}
ONLY=${ONLY:-}
DAEMON=${DAEMON:-}
KEEP_WORK=${KEEP_WORK:-0}
READY_TIMEOUT=${READY_TIMEOUT:-120}
TARGET=${TARGET:-0.9}
VERIFY=${VERIFY:-1}
LUKS_ITER_TIME=${LUKS_ITER_TIME:-100}
# nbdsh/nbd bindings and our parsing want Debian's python; a pyenv python3 may shadow it on PATH.
PYTHON=${PYTHON:-/usr/bin/python3}
[[ -x $PYTHON ]] || PYTHON=python3

# name, fio --rw, --bs, --iodepth. Reads run after the disk is filled (see prefill), so they
# read written data, not holes that a server could answer without touching the file.
WORKLOADS=(
  "seq-write-1M write 1M 16"
  "seq-read-1M read 1M 16"
  "rand-read-4k randread 4k 32"
  "rand-write-4k randwrite 4k 32"
)

log() { printf '%s\n' "$*" >&2; }
die() { log "run.sh: $*"; exit 1; }

# --- scratch folder and cleanup ----------------------------------------------------------------

if [[ -n ${WORK:-} ]]; then
  mkdir -p "$WORK"
  OWN_WORK=0 # never delete a folder the caller chose
else
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/fio-nbd.XXXXXX")
  OWN_WORK=1
fi
WORK=$(cd "$WORK" && pwd)

PIDS=() # every server we started; killed on exit

cleanup() {
  local pid i
  for pid in "${PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  # Give servers a moment to shut down cleanly (the daemon may flush metadata), then insist.
  for pid in "${PIDS[@]}"; do
    for ((i = 0; i < 50; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [[ $OWN_WORK == 1 && $KEEP_WORK != 1 ]]; then
    rm -rf "$WORK"
  elif [[ $KEEP_WORK == 1 ]]; then
    log "run.sh: kept $WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for tool in fio nbdinfo numfmt; do
  command -v "$tool" >/dev/null || die "$tool not found (Debian: fio, libnbd-bin, coreutils)"
done
fio --enghelp=nbd >/dev/null 2>&1 || die "this fio has no nbd engine (Debian's fio has one)"

SIZE_BYTES=$(numfmt --from=iec "$SIZE") || die "SIZE=$SIZE: use a number with K/M/G/T"

# --- peers -------------------------------------------------------------------------------------
# Contract: peer_NAME DIR starts one server in the background, with its backing store created
# fresh (sparse) in DIR, exporting SIZE_BYTES bytes, and sets PEER_PID, PEER_URI, PEER_LOG and
# PEER_DESC (one line for the report: what the server is and how it stores data). It does not
# wait for readiness: start_server polls with nbdinfo. All DIRs are under $WORK, so every
# backing file lives on the same file system. Every server goes through the host page cache
# (no O_DIRECT), as the daemon does.

peer_nbdkit_file() {
  local dir=$1
  truncate -s "$SIZE_BYTES" "$dir/disk.img" # sparse, as the daemon creates its own
  nbdkit -f -U "$dir/nbd.sock" file "$dir/disk.img" >"$dir/server.log" 2>&1 &
  PEER_PID=$!
  PEER_URI="nbd+unix:///?socket=$dir/nbd.sock"
  PEER_LOG="$dir/server.log"
  PEER_DESC="\`nbdkit file\`, plaintext: the reference without encryption"
}

# The LUKS peers (TESTING.md, "Real NBD clients") open the same kind of image: LUKS1 made by
# qemu-img, aes-xts-plain64 with a 512-bit key (2 x AES-256) like ours; but LUKS1 encrypts
# 512-byte sectors where ours encrypts 4096-byte ones (8 tweaks per 4 KiB instead of 1). The
# payload is exactly SIZE_BYTES; the ~2 MiB LUKS header comes on top. The passphrase is in a
# 0600 file, never on a command line.
LUKS_PASSPHRASE_FILE=""

luks_passphrase() {
  if [[ -z $LUKS_PASSPHRASE_FILE ]]; then
    LUKS_PASSPHRASE_FILE="$WORK/luks-passphrase"
    (umask 077 && head -c 24 /dev/urandom | base64 | tr -d '\n' >"$LUKS_PASSPHRASE_FILE")
  fi
}

# create_luks_image FILE: a fresh, sparse LUKS1 image whose payload is SIZE_BYTES bytes.
create_luks_image() {
  local file=$1 attempt
  command -v qemu-img >/dev/null || die "qemu-img not found (Debian: qemu-utils)"
  luks_passphrase
  # qemu-img times PBKDF2 with the thread's CPU clock to pick the iteration count; on a busy
  # shared machine that clock can read 0 ms for a timing round and qemu-img gives up with
  # "Unable to get accurate CPU usage" (seen here under load). A retry gets through.
  for attempt in 1 2 3 4 5; do
    rm -f "$file"
    qemu-img create -q -f luks --object "secret,id=sec0,file=$LUKS_PASSPHRASE_FILE" \
      -o "key-secret=sec0,cipher-alg=aes-256,cipher-mode=xts,ivgen-alg=plain64" \
      -o "hash-alg=sha256,iter-time=$LUKS_ITER_TIME,preallocation=off" \
      "$file" "$SIZE_BYTES" >&2 && return
    log "qemu-img create failed (attempt $attempt of 5); retrying"
    sleep 1
  done
  die "qemu-img could not create the LUKS image $file"
}

# What the LUKS1 header itself says (not the options we asked for), for the report.
luks_header() {
  "$PYTHON" - "$1" <<'EOF'
import struct, sys
h = open(sys.argv[1], "rb").read(112)
if h[:6] != b"LUKS\xba\xbe":
    sys.exit(f"{sys.argv[1]}: no LUKS header")
version, = struct.unpack(">H", h[6:8])
name = lambda b: b.rstrip(b"\0").decode()
offset, key_bytes = struct.unpack(">II", h[104:112])
print(f"LUKS{version} {name(h[8:40])}-{name(h[40:72])}, {key_bytes * 8}-bit key, "
      f"512-byte sectors, payload at byte {offset * 512}")
EOF
}

peer_nbdkit_luks() {
  local dir=$1
  create_luks_image "$dir/disk.luks"
  nbdkit -f -U "$dir/nbd.sock" --filter=luks file "$dir/disk.luks" \
    passphrase="+$LUKS_PASSPHRASE_FILE" >"$dir/server.log" 2>&1 &
  PEER_PID=$!
  PEER_URI="nbd+unix:///?socket=$dir/nbd.sock"
  PEER_LOG="$dir/server.log"
  PEER_DESC="\`nbdkit file --filter=luks\`: $(luks_header "$dir/disk.luks")"
}

# qemu-nbd's defaults, made explicit: --cache=writeback is the host page cache with flushes
# honoured (not -n/--nocache, which is O_DIRECT); --aio=threads is qemu's thread pool for I/O.
QEMU_NBD_CACHE=writeback
QEMU_NBD_AIO=threads

peer_qemu_nbd_luks() {
  local dir=$1
  command -v qemu-nbd >/dev/null || die "qemu-nbd not found (Debian: qemu-utils)"
  create_luks_image "$dir/disk.luks"
  # -t: keep serving after a client disconnects (the readiness probe, then each fio run).
  qemu-nbd -t -k "$dir/nbd.sock" -x bench --cache="$QEMU_NBD_CACHE" --aio="$QEMU_NBD_AIO" \
    --object "secret,id=sec0,file=$LUKS_PASSPHRASE_FILE" \
    --image-opts "driver=luks,key-secret=sec0,file.filename=$dir/disk.luks" \
    >"$dir/server.log" 2>&1 &
  PEER_PID=$!
  PEER_URI="nbd+unix:///bench?socket=$dir/nbd.sock"
  PEER_LOG="$dir/server.log"
  PEER_DESC="\`qemu-nbd --image-opts driver=luks --cache=$QEMU_NBD_CACHE --aio=$QEMU_NBD_AIO\`:"
  PEER_DESC+=" $(luks_header "$dir/disk.luks")"
}

DAEMON_DLL=""
MD_CONFIG="" # the daemon's disks.toml, for `disk show` in the report

# Build once, on first use, unless DAEMON points at a build.
resolve_daemon() {
  [[ -n $DAEMON_DLL ]] && return
  if [[ -n $DAEMON ]]; then
    DAEMON_DLL=$DAEMON
    [[ -d $DAEMON ]] && DAEMON_DLL="$DAEMON/managed-disks.dll"
    [[ -f $DAEMON_DLL ]] || die "DAEMON=$DAEMON: no managed-disks.dll there"
    return
  fi
  log "building the daemon (Release) into $WORK/daemon ..."
  if ! dotnet build -c Release "$REPO/src/ManagedDisks.Daemon" -o "$WORK/daemon" \
    >"$WORK/build.log" 2>&1; then
    tail -n 30 "$WORK/build.log" >&2
    die "the daemon does not build; full log above (set KEEP_WORK=1 to keep $WORK/build.log)"
  fi
  DAEMON_DLL="$WORK/daemon/managed-disks.dll"
}

peer_managed_disks() {
  local dir=$1
  resolve_daemon
  mkdir -m 700 "$dir/state"
  # No encryption_set: the disk uses the platform-managed key (ARCHITECTURE.md).
  cat >"$dir/disks.toml" <<EOF
[daemon]
state_dir = "$dir/state"
listen = ["unix:$dir/state/nbd.sock"]
admin_socket = "$dir/state/admin.sock"

[[disk]]
name = "bench"
size = "$SIZE"
sector_size = 4096
EOF
  MD_CONFIG="$dir/disks.toml"
  dotnet "$DAEMON_DLL" serve --config "$dir/disks.toml" >"$dir/server.log" 2>&1 &
  PEER_PID=$!
  PEER_URI="nbd+unix:///bench?socket=$dir/state/nbd.sock"
  PEER_LOG="$dir/server.log"
  PEER_DESC="" # filled in by the report from \`disk show\`, once the disk exists
}

# --- servers -----------------------------------------------------------------------------------

LABELS=() # per server: "ours: NAME" or NAME
URIS=()
NAMES=()
DESCS=()

start_server() {
  local name=$1 label=$2 dir size waited=0
  declare -F "peer_$name" >/dev/null ||
    die "unknown peer '$name'; known: $(declare -F | sed -n 's/^declare -f peer_//p' | tr '\n' ' ')"
  dir="$WORK/s${#LABELS[@]}-$name"
  mkdir -p "$dir"
  PEER_PID="" PEER_URI="" PEER_LOG="" PEER_DESC=""
  "peer_$name" "$dir"
  PIDS+=("$PEER_PID")
  # sun_path is 108 bytes; a long WORK would fail inside the server with an obscure error.
  local sock=${PEER_URI#*socket=}
  ((${#sock} < 108)) || die "socket path too long (${#sock} bytes): use a shorter WORK"
  log "starting $label: $PEER_URI"
  # Poll instead of sleeping: ready means a real client completes the handshake.
  until size=$(nbdinfo --size "$PEER_URI" 2>/dev/null); do
    kill -0 "$PEER_PID" 2>/dev/null || {
      tail -n 30 "$PEER_LOG" >&2
      die "$label exited before serving (log above)"
    }
    ((waited++ < READY_TIMEOUT * 5)) || {
      tail -n 30 "$PEER_LOG" >&2
      die "$label not ready after ${READY_TIMEOUT}s (log above)"
    }
    sleep 0.2
  done
  [[ $size == "$SIZE_BYTES" ]] ||
    die "$label exports $size bytes, expected $SIZE_BYTES: the comparison would be unfair"
  LABELS+=("$label")
  URIS+=("$PEER_URI")
  NAMES+=("$name")
  DESCS+=("$PEER_DESC")
}

# --- fio ---------------------------------------------------------------------------------------

RESULTS="$WORK/results.tsv" # workload, server index, round, iops, bytes/s
: >"$RESULTS"
mkdir -p "$WORK/json"

# Prints "IOPS BYTES_PER_S" of one direction from fio's JSON. fio may print warnings before the
# JSON document, so parse from the first brace.
fio_figures() {
  "$PYTHON" - "$1" "$2" <<'EOF'
import json, sys
path, direction = sys.argv[1], sys.argv[2]
text = open(path).read()
job = json.loads(text[text.index("{"):])["jobs"][0]
if job.get("error"):
    sys.exit(f"fio reported error {job['error']} in {path}")
d = job[direction]
if d["total_ios"] == 0:
    sys.exit(f"fio did no {direction} I/O in {path}")
print(f"{d['iops']:.1f} {d['bw_bytes']}")
EOF
}

# Before measuring, check that data survives a round trip through each server: fio writes with
# crc32c checksums and reads everything back (--verify_fatal stops at the first mismatch). The
# regions: 4 KiB random writes at the start and at the very end of the disk (a wrong size or
# header offset shows up there), 1 MiB sequential writes, and 512-byte random writes (below our
# 4096-byte sector: our read-modify-write path; the LUKS peers' native unit).
verify_server() {
  local i=$1 json region
  json="$WORK/json/verify-$i.json"
  region=$(((SIZE_BYTES / 4) / 1048576 * 1048576))
  ((region > 16 * 1048576)) && region=$((16 * 1048576))
  ((region >= 1048576)) || die "SIZE=$SIZE is too small for the verify step (VERIFY=0 skips it)"
  log "verifying ${LABELS[$i]} (fio --verify=crc32c)"
  if ! fio --ioengine=nbd --uri="${URIS[$i]}" --iodepth=16 --verify=crc32c --verify_fatal=1 \
    --output-format=json --output="$json" \
    --name=verify-4k-first --rw=randwrite --bs=4k --offset=0 --size="$region" \
    --name=verify-4k-last --stonewall --rw=randwrite --bs=4k --offset=$((SIZE_BYTES - region)) \
    --size="$region" \
    --name=verify-1M --stonewall --rw=write --bs=1M --offset="$region" --size="$region" \
    --name=verify-512 --stonewall --rw=randwrite --bs=512 --offset=$((2 * region)) \
    --size=1M >&2; then
    die "${LABELS[$i]} failed fio's verify (see $json; set KEEP_WORK=1 to keep it)"
  fi
  "$PYTHON" - "$json" <<'EOF' || die "${LABELS[$i]} failed fio's verify"
import json, sys
text = open(sys.argv[1]).read()
for job in json.loads(text[text.index("{"):])["jobs"]:
    w, r = job["write"]["io_bytes"], job["read"]["io_bytes"]
    if job.get("error") or w == 0 or r < w:
        sys.exit(f"{job['jobname']}: error {job.get('error')}, wrote {w} bytes, read back {r}")
EOF
}

# Fill the whole disk once, so reads hit written data and every server starts from the same
# allocated state. Also warms up the write path.
prefill() {
  local i=$1
  log "prefilling ${LABELS[$i]} ($SIZE)"
  fio --name=prefill --ioengine=nbd --uri="${URIS[$i]}" --rw=write --bs=1M --iodepth=16 \
    --size="$SIZE_BYTES" --output-format=json --output="$WORK/json/prefill-$i.json" >&2
  fio_figures "$WORK/json/prefill-$i.json" write >/dev/null
}

run_one() {
  local i=$1 round=$2 name=$3 rw=$4 bs=$5 depth=$6 json direction figures
  json="$WORK/json/$name-$i-$round.json"
  direction="write"
  [[ $rw == *read* ]] && direction="read"
  # --norandommap: the client shares two cores with the server; fio's random map costs CPU and
  # is pointless once a time-based run wraps. The default fixed random seed gives every server
  # the same offsets.
  # Start every run with no dirty pages left by the previous one, so no server pays for
  # another's writeback (it made 4k random writes swing 30% in trials).
  sync -f "$WORK"
  fio --name="$name" --ioengine=nbd --uri="${URIS[$i]}" --rw="$rw" --bs="$bs" \
    --iodepth="$depth" --size="$SIZE_BYTES" --time_based --runtime="$RUNTIME" \
    --ramp_time="$RAMP" --norandommap --output-format=json --output="$json" >&2
  figures=$(fio_figures "$json" "$direction")
  printf '%s\t%s\t%s\t%s\n' "$name" "$i" "$round" "${figures/ /$'\t'}" >>"$RESULTS"
  log "  [$name $round/$REPEAT] ${LABELS[$i]}: ${figures%% *} IOPS"
}

# --- report ------------------------------------------------------------------------------------

report() {
  local cpu kernel fs ram_gib load_end cmd i desc labels_file="$WORK/labels.txt"
  local workloads_file="$WORK/workloads.txt"
  load_end=$(cut -d' ' -f1-3 /proc/loadavg)
  printf '%s\n' "${LABELS[@]}" >"$labels_file"
  printf '%s\n' "${WORKLOADS[@]}" >"$workloads_file"
  cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1)
  kernel=$(uname -r)
  fs=$(df -PT "$WORK" | awk 'NR == 2 { print $2 }')
  ram_gib=$(awk '/^MemTotal:/ { printf "%.0f", $2 / 1048576 }' /proc/meminfo)
  cmd="RUNTIME=$RUNTIME RAMP=$RAMP SIZE=$SIZE REPEAT=$REPEAT OURS=$OURS PEERS=\"$PEERS\""
  [[ -n $ONLY ]] && cmd+=" ONLY=\"$ONLY\""
  [[ -n $DAEMON ]] && cmd+=" DAEMON=$DAEMON"
  [[ $VERIFY != 1 ]] && cmd+=" VERIFY=$VERIFY"
  [[ $LUKS_ITER_TIME != 100 ]] && cmd+=" LUKS_ITER_TIME=$LUKS_ITER_TIME"
  cmd+=" $0"

  echo "# fio (nbd engine): ${LABELS[0]} vs peers"
  echo
  echo "- Date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "- CPU: ${cpu:-unknown}, $(nproc) cores (shared by fio, the servers and other tenants)"
  echo "- Kernel: $kernel"
  echo "- fio: $(fio --version)"
  command -v nbdkit >/dev/null && echo "- nbdkit: $(nbdkit --version | head -n 1)"
  command -v qemu-nbd >/dev/null && echo "- qemu: $(qemu-nbd --version | head -n 1)"
  echo "- libnbd: $(nbdinfo --version | sed -n 's/^libnbd //p')"
  if [[ " ${NAMES[*]} " == *" managed_disks "* ]]; then
    echo "- .NET SDK: $(dotnet --version); daemon: $DAEMON_DLL"
  fi
  echo "- Servers:"
  for ((i = 0; i < ${#LABELS[@]}; i++)); do
    desc=${DESCS[$i]}
    [[ ${NAMES[$i]} == managed_disks ]] && desc="ManagedDisks daemon: $(daemon_encryption)"
    echo "  - ${LABELS[$i]}: ${desc:-(no description)}"
  done
  echo "- Disk: $SIZE ($SIZE_BYTES bytes) exported by every server (checked with nbdinfo), fresh" \
    "sparse backing files on $fs ($WORK), filled once with 1M sequential writes before" \
    "measuring. RAM ${ram_gib} GiB: the files stay in the page cache, so this measures the" \
    "servers (protocol and crypto), not the storage."
  if [[ $VERIFY == 1 ]]; then
    echo "- Before measuring, fio --verify=crc32c passed through every server (4 KiB random" \
      "writes at the first and last 16 MiB, 1 MiB sequential, 512-byte random)."
  fi
  echo "- Each run: ${RUNTIME}s measured after ${RAMP}s warm-up, one NBD connection; $REPEAT" \
    "runs per workload per server, servers alternating; medians shown."
  echo "- Load average (1/5/15 min) at start: $LOAD_START; at end: $load_end. Above ~2 on" \
    "two cores, other tenants compete for the CPU and the figures are noisier."
  echo "- Target: ours >= ${TARGET}x each peer (ratio of medians). \"paired\" is the median of" \
    "per-round ratios (each round runs the servers back to back), which cancels slow drift."
  echo "- Command: \`$cmd\`"
  echo
  "$PYTHON" - "$RESULTS" "$labels_file" "$workloads_file" "$TARGET" <<'EOF'
import statistics, sys
from collections import defaultdict

results, labels_path, workloads_path, target = sys.argv[1:4] + [float(sys.argv[4])]
labels = open(labels_path).read().splitlines()
block_size = {}  # workload -> bytes per I/O
for line in open(workloads_path):
    name, _rw, bs, _depth = line.split()
    block_size[name] = int(bs[:-1]) * {"k": 1024, "M": 2**20}[bs[-1]] if bs[-1] in "kM" else int(bs)
runs = defaultdict(list)  # (workload, server) -> [(iops, bytes/s)] in run order
order = []
for line in open(results):
    name, i, _round, iops, bw = line.rstrip("\n").split("\t")
    if name not in order:
        order.append(name)
    runs[name, int(i)].append((float(iops), float(bw)))

# Large blocks read best as MiB/s, small ones as IOPS; within a workload the ratio is the same.
def unit(name):
    return "MiB/s" if block_size.get(name, 0) >= 65536 else "IOPS"

def figure(name, value):
    return value / 2**20 if unit(name) == "MiB/s" else value

def med(name, i):
    k = 1 if unit(name) == "MiB/s" else 0
    return statistics.median(figure(name, r[k]) for r in runs[name, i])

def table(head, rows, numbers_from):  # numeric columns are right-aligned
    print("| " + " | ".join(head) + " |")
    print("|" + "".join("---|" if c < numbers_from else "--:|" for c in range(len(head))))
    for row in rows:
        print("| " + " | ".join(row) + " |")

peers = range(1, len(labels))
print("Medians (higher is better):")
print()
table(["Workload", "Unit"] + labels,
      [[name, unit(name)] + [f"{med(name, i):,.0f}" for i in range(len(labels))] for name in order], 2)
print()
print(f"Ratios ours/peer (ratio of medians; ok means >= {target}; paired in parentheses):")
print()
below, rows = [], []
for name in order:
    row = [name]
    for p in peers:
        ratio = med(name, 0) / med(name, p)
        paired = statistics.median(a[0] / b[0] for a, b in zip(runs[name, 0], runs[name, p]))
        ok = ratio >= target
        if not ok:
            below.append(f"{name} vs {labels[p]}")
        row.append(f"{ratio:.2f} {'ok' if ok else 'BELOW'} ({paired:.2f})")
    rows.append(row)
table(["Workload"] + [f"ours/{labels[p]}" for p in peers], rows, 1)
print()
print("Every run, in run order (spread = (max - min) / median):")
print()
rows = []
for name in order:
    for i, label in enumerate(labels):
        k = 1 if unit(name) == "MiB/s" else 0
        values = [figure(name, r[k]) for r in runs[name, i]]
        spread = (max(values) - min(values)) / statistics.median(values)
        rows.append([name, label, unit(name), ", ".join(f"{v:,.0f}" for v in values), f"{spread:.0%}"])
table(["Workload", "Server", "Unit", "Runs", "Spread"], rows, 3)
print()
if below:
    print(f"Below target ({target}x): " + "; ".join(below) + ".")
else:
    print(f"All ratios meet the target ({target}x).")
EOF
}

# What the daemon says about its disk's encryption. `disk show` works whether or not the daemon
# runs (ARCHITECTURE.md); a build without it cannot tell us, so say so rather than guess.
daemon_encryption() {
  local json
  if json=$(timeout 30 dotnet "$DAEMON_DLL" disk show bench --config "$MD_CONFIG" --json \
    2>/dev/null) && [[ -n $json ]]; then
    "$PYTHON" - "$json" <<'EOF' 2>/dev/null || echo "\`disk show\` output unreadable"
import json, sys
d = json.loads(sys.argv[1])
print(f"{d.get('cipher') or 'no cipher reported'}, {d.get('key_bits', '?')}-bit key, "
      f"{d.get('sector_size', '?')}-byte sectors, payload at byte {d.get('payload_offset', '?')}, "
      f"{len(d.get('key_slots') or [])} key slot(s) (from `disk show`)")
EOF
  else
    echo "encryption unknown (this build has no working \`disk show\`; it may serve plaintext)"
  fi
}

# --- main --------------------------------------------------------------------------------------

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
start_server "$OURS" "ours: $OURS"
for peer in $PEERS; do
  start_server "$peer" "$peer"
done

for ((i = 0; i < ${#LABELS[@]}; i++)); do
  [[ $VERIFY == 1 ]] && verify_server "$i"
  prefill "$i"
done

for spec in "${WORKLOADS[@]}"; do
  read -r name rw bs depth <<<"$spec"
  [[ -z $ONLY || " $ONLY " == *" $name "* ]] || continue
  log "$name (rw=$rw bs=$bs iodepth=$depth)"
  for ((round = 1; round <= REPEAT; round++)); do
    # Reverse the order every other round so slow drift (other tenants, page cache, thermal)
    # does not systematically favour whichever server goes first.
    servers=()
    for ((i = 0; i < ${#LABELS[@]}; i++)); do
      if ((round % 2)); then servers+=("$i"); else servers=("$i" "${servers[@]}"); fi
    done
    for i in "${servers[@]}"; do
      run_one "$i" "$round" "$name" "$rw" "$bs" "$depth"
    done
  done
done

[[ -s $RESULTS ]] || die "no workload matched ONLY=\"$ONLY\""
report
