#!/usr/bin/env bash
# Builds the managed-disks Debian package:
#   packaging/build-deb.sh [OUTPUT_DIR]        (default: artifacts/ in the repository)
# publishes the daemon self-contained for linux-x64 (no .NET runtime package needed on the
# target), lays out the package tree, and runs dpkg-deb. Prints the .deb's path last.
#
# Environment: VERSION (default: from git describe, e.g. 1.2.0+git3.gabcdef0, or
# 0.1.0+gitYYYYMMDD.HASH before the first v* tag), MAINTAINER, BUILD_DIR (scratch space,
# default: a fresh temporary folder, removed at exit), DEB_COMPRESSION (dpkg-deb -Z: xz,
# the default, or gzip/zstd/none for faster test builds).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
output_dir="${1:-$repo/artifacts}"
mkdir -p "$output_dir"
output_dir="$(cd "$output_dir" && pwd)"

for tool in dotnet dpkg-deb; do
    command -v "$tool" >/dev/null || { echo "build-deb.sh: $tool is required" >&2; exit 1; }
done

if [ -z "${VERSION:-}" ]; then
    if described="$(git -C "$repo" describe --tags --match 'v[0-9]*' 2>/dev/null)"; then
        # v1.2.0 -> 1.2.0; v1.2.0-3-gabcdef0 -> 1.2.0+git3.gabcdef0
        VERSION="$(sed -E 's/^v//; s/-([0-9]+)-(g[0-9a-f]+)$/+git\1.\2/' <<<"$described")"
    elif commit="$(git -C "$repo" log -1 --format='%cd.%h' --date=format:%Y%m%d 2>/dev/null)"; then
        VERSION="0.1.0+git$commit"
    else
        VERSION="0.1.0"
    fi
fi
if ! [[ "$VERSION" =~ ^[0-9][A-Za-z0-9.+~-]*$ ]]; then
    echo "build-deb.sh: VERSION '$VERSION' is not a Debian version (it must start with a digit)" >&2
    exit 1
fi
MAINTAINER="${MAINTAINER:-ManagedDisks maintainers <managed-disks@localhost>}"
ARCH=amd64
RID=linux-x64

cleanup=""
if [ -z "${BUILD_DIR:-}" ]; then
    BUILD_DIR="$(mktemp -d "${TMPDIR:-/tmp}/managed-disks-deb.XXXXXX")"
    cleanup="$BUILD_DIR"
fi
trap '[ -z "$cleanup" ] || rm -rf "$cleanup"' EXIT

root="$BUILD_DIR/root"
publish="$BUILD_DIR/publish"
rm -rf "$root" "$publish"
umask 022

# Self-contained: the package carries its own .NET runtime (and ASP.NET Core for the admin
# API), so it needs no Microsoft apt repository. --artifacts-path keeps this build's bin/ and
# obj/ out of the source tree, so it never disturbs a concurrent `dotnet build` or test run.
echo "Publishing managed-disks $VERSION ($RID, self-contained)..." >&2
dotnet publish "$repo/src/ManagedDisks.Daemon/ManagedDisks.Daemon.csproj" \
    -c Release -r "$RID" --self-contained true \
    --artifacts-path "$BUILD_DIR/dotnet" -o "$publish" \
    -p:DebugType=none -p:DebugSymbols=false -nologo -v:q >&2
# LTTng tracing support links against liblttng-ust, which Debian does not install by default.
rm -f "$publish/libcoreclrtraceptprovider.so"

install -d "$root/usr/lib/managed-disks" "$root/usr/bin" "$root/lib/systemd/system" \
    "$root/usr/lib/tmpfiles.d" "$root/etc/managed-disks" "$root/usr/share/doc/managed-disks" "$root/DEBIAN"
cp -R "$publish/." "$root/usr/lib/managed-disks/"
chmod -R u=rwX,go=rX "$root/usr/lib/managed-disks"
chmod 0755 "$root/usr/lib/managed-disks/managed-disks"
install -m 0755 "$here/managed-disks.wrapper" "$root/usr/bin/managed-disks"
install -m 0644 "$here/managed-disks.service" "$root/lib/systemd/system/managed-disks.service"
install -m 0644 "$here/managed-disks.tmpfiles" "$root/usr/lib/tmpfiles.d/managed-disks.conf"
install -m 0644 "$here/disks.toml" "$root/etc/managed-disks/disks.toml"
install -m 0644 "$repo/README.md" "$repo/disks.toml.example" -t "$root/usr/share/doc/managed-disks/"
install -m 0644 "$here/README.md" "$root/usr/share/doc/managed-disks/PACKAGING.md"
install -m 0644 "$repo/LICENSE" "$root/usr/share/doc/managed-disks/copyright"
for doc in "$repo"/docs/*.md; do install -m 0644 "$doc" "$root/usr/share/doc/managed-disks/"; done
for script in postinst prerm postrm; do
    install -m 0755 "$here/debian/$script" "$root/DEBIAN/$script"
done
echo /etc/managed-disks/disks.toml > "$root/DEBIAN/conffiles"

installed_size="$(du -sk --exclude=DEBIAN "$root" | cut -f1)"
cat > "$root/DEBIAN/control" <<CONTROL
Package: managed-disks
Version: $VERSION
Architecture: $ARCH
Maintainer: $MAINTAINER
Installed-Size: $installed_size
Depends: adduser, libc6 (>= 2.27), libgcc-s1, libstdc++6, libssl3 | libssl3t64 | libssl1.1
Recommends: systemd
Suggests: nbd-client, libnbd-bin
Section: admin
Priority: optional
Description: encrypted virtual disks served over NBD
 ManagedDisks is self-hosted block storage in the spirit of cloud managed disks:
 one daemon serves sparse, AES-256-XTS encrypted virtual disks over the NBD
 protocol, with platform-managed or customer-managed (vault) keys, and any
 Linux host attaches them with nbd-client.
 .
 This package ships a self-contained build (its own .NET runtime), a hardened
 systemd unit, managed-disks.service, and /etc/managed-disks/disks.toml.
 Removing or purging the package keeps /var/lib/managed-disks (disks, keys).
CONTROL

deb="$output_dir/managed-disks_${VERSION}_${ARCH}.deb"
dpkg-deb --root-owner-group -Z"${DEB_COMPRESSION:-xz}" --build "$root" "$deb" >&2
echo "$deb"
