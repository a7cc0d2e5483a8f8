#!/usr/bin/env bash
# Installs the Debian packages the test suite uses as oracles and tools:
#   qemu-system-x86  QEMU, the reference VMM and correctness oracle
#   acpica-tools     iasl/acpiexec, to validate our ACPI tables
#   cpio             GNU cpio, to check our own cpio writer
#   nasm             assembles one of the loader's test kernels
#   debootstrap, e2fsprogs  the Debian root filesystem builder
#   iproute2, iputils-ping  network namespaces and taps; the host pings a guest over virtio-net
#   libc6-dev        libc.a, for the statically linked guest programs (tests/guests/linux-user)
# Everything else the tests need (gcc, binutils, python3, make, g++) is on the machine already.
# Without root or apt it does nothing and says so; the tests that need a missing tool skip with a reason.
set -euo pipefail
packages=(qemu-system-x86 acpica-tools cpio nasm debootstrap e2fsprogs iproute2 iputils-ping libc6-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-test-deps: all test packages present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "install-test-deps: not root or no apt-get; missing ${missing[*]} (tests that need them will skip)"
  exit 0
fi
echo "install-test-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-test-deps: done"
