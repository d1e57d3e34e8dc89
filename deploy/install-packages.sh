#!/usr/bin/env bash
# Install the Debian packages crib needs, skipping what is installed already.
#   install-packages.sh run    what `crib` needs to run pods
#   install-packages.sh test   the above plus what the test suite needs
#   install-packages.sh bench  the above plus the peers the benchmarks compare against
set -euo pipefail

RUN_PKGS=(
  python3 python3-venv          # the virtualenv crib is installed into
  conmon                        # per-container monitor
  catatonit                     # the pod's pause process
  containernetworking-plugins   # bridge, host-local, portmap, loopback (/usr/lib/cni)
  iptables                      # portmap and bridge ipMasq
  iproute2                      # ip, for operators and tests
  runc crun                     # optional runtime handlers, and the oracle of differential tests
  libseccomp2                   # seccomp filters
  ca-certificates               # HTTPS to registries
)
TEST_PKGS=(
  docker-registry               # the registry the tests push their images to (127.0.0.1)
  skopeo                        # copies OCI layouts into it
  busybox-static                # the root filesystem of test images
  procps psmisc                 # ps/pgrep/fuser for leak checks
  gcc libc6-dev                 # the static probe the crib-runtime kernel tests run inside containers
)
BENCH_PKGS=(
  containerd                    # the peer runtime the benchmarks compare against
)

case "${1:-run}" in
  run) pkgs=("${RUN_PKGS[@]}") ;;
  test) pkgs=("${RUN_PKGS[@]}" "${TEST_PKGS[@]}") ;;
  bench) pkgs=("${RUN_PKGS[@]}" "${TEST_PKGS[@]}" "${BENCH_PKGS[@]}") ;;
  *) echo "usage: $0 run|test|bench" >&2; exit 2 ;;
esac

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "install-packages.sh: apt-get not found; install these by hand: ${missing[*]}" >&2
  exit 1
fi
SUDO=()
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { echo "install-packages.sh: run as root (need: ${missing[*]})" >&2; exit 1; }
  SUDO=(sudo)
fi
echo "install-packages.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -q
"${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
