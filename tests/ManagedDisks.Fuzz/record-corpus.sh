#!/usr/bin/env bash
# Records the bytes real NBD clients send to the real daemon and turns them into fuzz seeds
# (corpus/handshake, corpus/request, corpus/connection). Each client talks through a socat proxy
# that copies what the client sends into a file (socat -r); split_session.py cuts it up.
# Usage: tests/ManagedDisks.Fuzz/record-corpus.sh   (needs libnbd-bin python3-libnbd qemu-utils nbd-client socat)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
corpus="$here/corpus"

dotnet build "$root/src/ManagedDisks.Daemon" -c Release -v q -nologo >/dev/null
work="$(mktemp -d /tmp/md-record.XXXXXX)"
daemon_pid=""
cleanup() {
  [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

cat > "$work/disks.toml" <<TOML
[daemon]
state_dir = "$work/state"
listen = ["unix:$work/state/nbd.sock"]
admin_socket = "$work/state/admin.sock"

[[disk]]
name = "disk0"
size = "64M"
description = "the first disk"

[[disk]]
name = "ro"
size = "4M"
read_only = true
TOML
dotnet "$root/src/ManagedDisks.Daemon/bin/Release/net10.0/managed-disks.dll" serve --config "$work/disks.toml" >"$work/daemon.log" 2>&1 &
daemon_pid=$!
until grep -q "ManagedDisks ready" "$work/daemon.log"; do
  kill -0 "$daemon_pid" || { cat "$work/daemon.log"; exit 1; }
  sleep 0.2
done

proxy="$work/proxy.sock"
uri="nbd+unix:///disk0?socket=$proxy"
export PATH="/usr/bin:/usr/sbin:/bin:/sbin:$PATH"   # nbdsh needs Debian's python3

# record NAME COMMAND...: runs one client through the proxy and splits what it sent.
record() {
  local name="$1"; shift
  rm -f "$proxy" "$work/$name.c2s"
  socat -r "$work/$name.c2s" "UNIX-LISTEN:$proxy" "UNIX-CONNECT:$work/state/nbd.sock" &
  local socat_pid=$!
  until [ -S "$proxy" ]; do sleep 0.05; done
  "$@" >/dev/null 2>&1 || echo "note: $name exited $? (its bytes are still a seed)"
  wait "$socat_pid" || true
  python3 "$here/split_session.py" "$work/$name.c2s" "$name" "$corpus"
}

head -c 65536 /dev/urandom > "$work/64k.bin"
record nbdinfo nbdinfo "$uri"
record nbdinfo-list nbdinfo --list "$uri"
record nbdinfo-map nbdinfo --map "$uri"
record nbdinfo-content nbdinfo --content "$uri"
record nbdinfo-json-ro nbdinfo --json "nbd+unix:///ro?socket=$proxy"
record nbdsh-io nbdsh -c 'h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)' -c "h.connect_uri('$uri')" -c '
h.pwrite(b"\xab" * 4096, 8192)
h.pwrite(b"\xcd" * 512, 0, nbd.CMD_FLAG_FUA)
assert h.pread(4096, 8192) == b"\xab" * 4096
h.flush()
h.trim(4096, 8192)
h.zero(4096, 16384)
h.zero(4096, 16384, nbd.CMD_FLAG_NO_HOLE)
h.cache(65536, 0)
h.block_status(1 << 20, 0, lambda *a: 0)
h.block_status(1 << 20, 0, lambda *a: 0, nbd.CMD_FLAG_REQ_ONE)
'
record nbdsh-simple-replies nbdsh -c 'h.set_request_structured_replies(False)' -c "h.connect_uri('$uri')" -c '
h.pwrite(b"\x11" * 4096, 0)
assert h.pread(4096, 0) == b"\x11" * 4096
h.flush()
'
record nbdsh-optmode nbdsh --opt-mode -u "$uri" -c '
h.opt_list(lambda name, description: 0)
h.opt_info()
h.opt_list_meta_context(lambda name: 0)
h.set_export_name("ro")
h.opt_info()
h.set_export_name("disk0")
h.opt_go()
h.pread(4096, 0)
'
record nbdsh-unknown-export nbdsh --opt-mode -c 'h.set_export_name("missing")' -c "h.connect_uri('$uri')" -c '
try:
    h.opt_info()
except nbd.Error:
    pass
h.opt_abort()
'
record nbdsh-export-name nbdsh -c 'h.set_handshake_flags(nbd.HANDSHAKE_FLAG_NO_ZEROES)' -c "h.connect_uri('$uri')" -c 'h.pread(4096, 0)'
record nbdsh-starttls-refused nbdsh -c 'h.set_tls(nbd.TLS_ALLOW)' -c "h.connect_uri('$uri')" -c 'h.pread(512, 0)'
record qemu-img-info qemu-img info -f raw "$uri"
record qemu-img-map qemu-img map -f raw "$uri"
record qemu-io qemu-io -f raw -c 'write -P 0xab 0 64k' -c 'read -P 0xab 0 64k' -c 'write -z 64k 64k' -c 'discard 128k 64k' -c 'flush' "$uri"
record nbdcopy-in nbdcopy --connections=1 "$work/64k.bin" "$uri"
record nbdcopy-out nbdcopy --connections=1 "nbd+unix:///ro?socket=$proxy" "$work/out.bin"
record nbd-client-list nbd-client -l -u "$proxy"
kill "$daemon_pid"; wait "$daemon_pid" 2>/dev/null || true; daemon_pid=""
echo "seeds: $(find "$corpus" -type f | wc -l) files, $(du -sb "$corpus" | cut -f1) bytes"
