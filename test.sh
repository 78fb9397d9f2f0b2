#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine for the test suite and runs all of it:
# installs the real NBD clients, peers and the guest kernel the tests drive, restores NuGet
# packages, runs every test, and ends with one line "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")"

# What the tests run: libnbd's nbdinfo/nbdsh/nbdcopy, qemu-img/qemu-io, fio's nbd engine,
# nbd-client, nbdkit as a peer, and a qemu guest (kernel, busybox, socat) for the kernel path;
# ss (iproute2) for the load test's socket count. The fault tests compile small C helpers (a
# fault-injecting FUSE file system, a hanging PKCS#11 module), take core dumps with gdb's gcore
# and search them with numpy.
PACKAGES=(libnbd-bin python3-libnbd qemu-utils fio nbd-client nbdkit fuse3
          qemu-system-x86 linux-image-amd64 busybox-static socat e2fsprogs kmod cpio
          python3-cryptography openssl softhsm2 opensc iproute2
          gcc libc6-dev pkg-config libfuse3-dev libp11-kit-dev gdb python3-numpy)

missing=()
for package in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "Installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

results="$PWD/TestResults"
rm -rf "$results"
status=0
dotnet test ManagedDisks.sln -c Release --logger "trx" --logger "console;verbosity=normal" --results-directory "$results" "$@" || status=$?

# One summary line over every test project, from the TRX files (what CI reports).
python3 - "$results" <<'PY'
import glob, sys, xml.etree.ElementTree as ET
passed = failed = 0
for path in glob.glob(sys.argv[1] + "/**/*.trx", recursive=True):
    counters = ET.parse(path).getroot().find(".//{*}Counters")
    passed += int(counters.get("passed", 0))
    failed += int(counters.get("failed", 0)) + int(counters.get("error", 0)) + int(counters.get("timeout", 0))
print(f"{passed} passed, {failed} failed")
PY
exit "$status"
