#!/usr/bin/env bash
# Installs every package labctl needs to build, run its example lab and pass its tests.
# Idempotent: safe to run again; does nothing but a quick check when all is present.
set -euo pipefail

BUILD_PKGS=(
  build-essential cmake ninja-build pkg-config git clang-format clang-19 libclang-rt-19-dev llvm-19
  libyaml-cpp-dev libcurl4-openssl-dev libssl-dev libfreeipmi-dev libvirt-dev libsqlite3-dev
  libarchive-dev libpugixml-dev nlohmann-json3-dev libcli11-dev libspdlog-dev libfmt-dev
  libsgutils2-dev
  libgtest-dev libgmock-dev libbenchmark-dev libcpp-httplib-dev
)
# Real peers and tools the tests and benchmarks run against.
TEST_PKGS=(
  python3 python3-jsonschema python3-yaml python3-croniter python3-cryptography openssl util-linux openipmi ipmitool freeipmi-tools libvirt-clients curl tftp-hpa atftp tftpd-hpa
  dnsmasq-base busybox isc-dhcp-client dhcpcd5 iproute2 kea-admin kea-dhcp4-server isc-dhcp-server sip-tester tshark
  prometheus systemd sqlite3 sg3-utils cron
  golang-go golang-github-vmware-govmomi-dev
)

want=("${BUILD_PKGS[@]}")
if [[ "${1:-}" != "--build-only" ]]; then want+=("${TEST_PKGS[@]}"); fi

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#want[@]} packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# The peers are programs the tests start themselves: their packaged daemons (tftpd-hpa on 69,
# isc-dhcp-server and kea-dhcp4-server on 67, prometheus ...) must not start on install and take
# the ports. policy-rc.d (exit 101: "action forbidden") is Debian's switch for that; one already
# present is left alone.
POLICY=/usr/sbin/policy-rc.d
added_policy=0
if [[ ! -e $POLICY ]]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee $POLICY >/dev/null
  $SUDO chmod 755 $POLICY
  added_policy=1
fi
rc=0
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" || rc=$?
if ((added_policy)); then $SUDO rm -f $POLICY; fi
exit $rc
