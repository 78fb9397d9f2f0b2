#!/usr/bin/env bash
# kernel-attach.sh UNIX_SOCKET EXPORT_NAME [WORKDIR]
#
# Proves that the NBD server listening on UNIX_SOCKET works through the real Linux
# kernel nbd driver: boots the host's Debian kernel under qemu (TCG, no KVM needed)
# with a tiny busybox initramfs whose /init (the `init` file next to this script)
# attaches EXPORT_NAME as /dev/nbd0, runs mkfs.ext4, writes, drops caches, verifies
# checksums and runs e2fsck. The guest's only network path leads to UNIX_SOCKET.
#
# Exit status: 0 PASS, 1 FAIL, 2 usage error, 77 skipped (tools missing).
# Environment: KERNEL_ATTACH_TIMEOUT (seconds for the whole boot, default 300);
# KERNEL_ATTACH_INIT (another guest /init, e.g. tests/reliability/guest/durability-init;
# default: the `init` next to this script); KERNEL_ATTACH_APPEND (more kernel command line
# words for that init, e.g. "gd.mode=verify").
#
# See README.md in this folder.

set -euo pipefail

readonly SKIP=77
readonly GUEST_IP=10.0.2.100
readonly GUEST_PORT=10809

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly here
readonly init_template="${KERNEL_ATTACH_INIT:-$here/init}"

die() {
    echo "kernel-attach: $*" >&2
    exit 2
}

skip() {
    echo "kernel-attach: SKIP: $*" >&2
    exit "$SKIP"
}

if [[ $# -lt 2 || $# -gt 3 ]]; then
    echo "usage: $0 UNIX_SOCKET EXPORT_NAME [WORKDIR]" >&2
    exit 2
fi
socket=$1
export_name=$2
workdir=${3:-}
timeout_s=${KERNEL_ATTACH_TIMEOUT:-300}
[[ $timeout_s =~ ^[0-9]+$ && $timeout_s -ge 60 ]] || die "KERNEL_ATTACH_TIMEOUT must be an integer >= 60"

# ---------------------------------------------------------------- prerequisites

# Debian installs several of these in /sbin and /usr/sbin, which a non-login
# root shell may not have on PATH.
PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin

need() {
    command -v "$1" >/dev/null 2>&1 || skip "$1 not found (apt-get install $2)"
}
need qemu-system-x86_64 qemu-system-x86
need busybox busybox-static
need socat socat
need nbd-client nbd-client
need mkfs.ext4 e2fsprogs
need e2fsck e2fsprogs
need modprobe kmod
need cpio cpio
need ldd libc-bin

# The newest installed kernel; its modules must be present too.
kernel=$(find /boot -maxdepth 1 -name 'vmlinuz-*' 2>/dev/null | sort -V | tail -n 1)
[[ -n $kernel ]] || skip "no /boot/vmlinuz-* (apt-get install linux-image-amd64)"
[[ -r $kernel ]] || skip "$kernel is not readable (run as root)"
kver=${kernel#/boot/vmlinuz-}
[[ -d /lib/modules/$kver ]] || skip "/lib/modules/$kver missing for $kernel"

[[ -f $init_template ]] || die "guest init template $init_template missing"
[[ -S $socket ]] || die "$socket is not a Unix socket (is the server running?)"

# The name travels hex-encoded on the kernel command line, which x86 caps at
# 2048 bytes in total.
export_hex=$(printf '%s' "$export_name" | od -An -tx1 -v | tr -d ' \n')
((${#export_hex} <= 1600)) || die "export name too long for the kernel command line (max 800 bytes)"

# ---------------------------------------------------------------- work folder

cleanup_dirs=()
# shellcheck disable=SC2317 # called from the EXIT trap
cleanup() {
    local d
    for d in "${cleanup_dirs[@]}"; do rm -rf -- "$d"; done
}
trap cleanup EXIT

own_workdir=false
if [[ -z $workdir ]]; then
    workdir=$(mktemp -d -t kernel-attach.XXXXXX)
    own_workdir=true
fi
mkdir -p -- "$workdir"
workdir=$(cd -- "$workdir" && pwd)

# qemu splits -netdev at commas, slirp splits the guestfwd command like a shell,
# socat splits addresses at colons and commas, and sun_path holds 108 bytes: a
# short symlink with a plain name sidesteps all four.
linkdir=$(mktemp -d -t ka-sock.XXXXXX)
cleanup_dirs+=("$linkdir")
sock_link=$linkdir/s
ln -s -- "$(realpath -- "$socket")" "$sock_link"
[[ $sock_link =~ ^[A-Za-z0-9._/+-]+$ ]] || die "temporary path $sock_link has unsafe characters (check TMPDIR)"

# ---------------------------------------------------------------- initramfs

# Copy an executable plus every shared object ldd names, at the same paths, so
# the dynamic loader finds them without an ld.so.cache.
copy_binary() {
    local src=$1 dest=$2 root=$3 lib
    install -D -m 0755 "$src" "$root/$dest"
    # ldd fails on static binaries ("not a dynamic executable"); nothing to copy.
    while read -r lib; do
        [[ -e $root/$lib ]] || install -D -m 0755 "$lib" "$root/$lib"
    done < <(ldd "$src" 2>/dev/null | awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^\//) print $i }')
}

build_initramfs() {
    local out=$1 stage root line path name
    stage=$(mktemp -d -p "$workdir" initramfs.XXXXXX)
    cleanup_dirs+=("$stage")
    root=$stage/root
    mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,mnt,run,tmp,etc,lib/modules}

    # Real tools first: busybox also has applets such as mke2fs, and a symlink
    # created first would make a later copy write through it onto busybox.
    copy_binary "$(command -v nbd-client)" usr/sbin/nbd-client "$root"
    copy_binary "$(command -v mkfs.ext4)" usr/sbin/mkfs.ext4 "$root"
    copy_binary "$(command -v e2fsck)" usr/sbin/e2fsck "$root"
    copy_binary "$(readlink -f "$(command -v busybox)")" bin/busybox "$root"
    while read -r path; do
        # --list-full includes bin/busybox itself; never link over a file.
        [[ -n $path && ! -e $root/$path && ! -L $root/$path ]] || continue
        mkdir -p "$root/$(dirname "$path")"
        ln -s /bin/busybox "$root/$path"
    done < <("$root/bin/busybox" --list-full)

    # The guest's mkfs should make the same file system as the host's would.
    if [[ -f /etc/mke2fs.conf ]]; then cp /etc/mke2fs.conf "$root/etc/"; fi
    # e2fsck looks here to learn whether the device is mounted.
    ln -s /proc/mounts "$root/etc/mtab"

    # Modules in load order (softdeps such as crc32c for ext4 included), with any
    # compression undone here: busybox insmod hands the raw bytes to the kernel.
    : >"$root/etc/modules.order"
    while read -r line; do
        [[ $line == insmod\ * ]] || continue # "builtin X" needs nothing
        path=$(awk '{print $2}' <<<"$line")
        name=$(basename "$path")
        name=${name%.xz}
        name=${name%.zst}
        name=${name%.gz}
        grep -qxF "$name" "$root/etc/modules.order" && continue
        case $path in
            *.xz) xz -dc "$path" ;;
            *.zst) zstd -qdc "$path" ;;
            *.gz) gzip -dc "$path" ;;
            *) cat "$path" ;;
        esac >"$root/lib/modules/$name"
        echo "$name" >>"$root/etc/modules.order"
    done < <(modprobe -C /dev/null -S "$kver" -a --show-depends nbd e1000 ext4)
    # -C /dev/null: ignore the host's modprobe.d options (nbd max_part=15 from the
    # nbd-client package) so every host builds the same guest.
    grep -qx 'nbd.ko' "$root/etc/modules.order" || die "nbd.ko not found for kernel $kver"

    install -m 0755 "$init_template" "$root/init"
    # The kernel's built-in initramfs usually provides /dev/console; be sure.
    mknod -m 0600 "$root/dev/console" c 5 1 2>/dev/null || true

    # Uncompressed: unpacking gzip under TCG costs more than loading the bytes.
    (cd "$root" && find . -print0 | LC_ALL=C sort -z |
        cpio --null --create --format=newc --owner=0:0 --quiet) >"$stage/initramfs.cpio"
    mv -f "$stage/initramfs.cpio" "$out"
}

# The cache key covers everything that shapes the image besides the host's
# packages: kernel version, this script and the init template.
key=$(cat "${BASH_SOURCE[0]}" "$init_template" | sha256sum | cut -c1-12)
initrd=$workdir/initramfs-$kver-$key.cpio
t0=$(date +%s.%N)
if [[ ! -s $initrd ]]; then
    echo "kernel-attach: building $initrd"
    build_initramfs "$initrd"
    # Images from older versions of this script are dead weight (15 MB each).
    find "$workdir" -maxdepth 1 -name 'initramfs-*.cpio' ! -name "${initrd##*/}" -delete
fi
t1=$(date +%s.%N)

# ---------------------------------------------------------------- boot

console=$workdir/console.log
guest_timeout=$((timeout_s - 30))
append="console=ttyS0 panic=-1 quiet ka.export=$export_hex ka.timeout=$guest_timeout ${KERNEL_ATTACH_APPEND:-}"

echo "kernel-attach: booting $kernel (export '$export_name' via $socket), timeout ${timeout_s}s"
set +e
# stdin from /dev/null: qemu's stdio console would otherwise put a terminal in
# raw mode, or stop on SIGTTIN when run in the background.
# romfile= : no PXE ROM is needed for -kernel, and Debian's qemu may lack ipxe-qemu.
timeout -k 10 "$timeout_s" qemu-system-x86_64 \
    -accel tcg -cpu max -m 512 -nographic -no-reboot -no-user-config \
    -kernel "$kernel" -initrd "$initrd" -append "$append" \
    -netdev "user,id=n0,restrict=on,guestfwd=tcp:$GUEST_IP:$GUEST_PORT-cmd:socat STDIO UNIX-CONNECT:$sock_link" \
    -device e1000,netdev=n0,romfile= \
    </dev/null 2>&1 | tee "$console"
qemu_rc=${PIPESTATUS[0]}
set -e
t2=$(date +%s.%N)

timing=$(awk -v a="$t0" -v b="$t1" -v c="$t2" 'BEGIN { printf "build %.1fs, boot+test %.1fs", b - a, c - b }')
if grep -qF 'GUEST-RESULT: PASS' "$console"; then
    echo "kernel-attach: PASS ($timing)"
    if $own_workdir; then cleanup_dirs+=("$workdir"); fi
    exit 0
fi

echo
echo "kernel-attach: FAIL (qemu exit $qemu_rc$([[ $qemu_rc == 124 ]] && echo ", timed out after ${timeout_s}s"); $timing)" >&2
echo "---- tail of $console ----" >&2
tail -n 60 "$console" | tr -d '\r' >&2
echo "---- guest results ----" >&2
grep -a 'GUEST-RESULT:' "$console" | tr -d '\r' >&2 || echo "(none: the guest never reached its checks)" >&2
exit 1
