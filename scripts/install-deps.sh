#!/usr/bin/env bash
# Installs what crust builds and tests with on Debian 12: protoc for the CRI bindings, the
# OCI runtimes, CNI plugins, a real OCI registry for tests, containerd as a benchmark peer.
set -euo pipefail
packages=(
  protobuf-compiler     # protoc, needed by the k8s-cri crate's build script
  runc crun             # OCI runtimes
  containernetworking-plugins iproute2 iptables  # CNI plugins (in /usr/lib/cni)
  docker-registry       # a real OCI distribution registry for tests and benchmarks
  busybox-static        # the test images are built from it
  containerd            # the peer benchmarks compare against
  skopeo umoci zstd jq ca-certificates
  openssl               # test certificates for the streaming server's TLS
  bsdutils procps       # script (terminal tests), pkill
  criu                  # CheckpointContainer (runc checkpoint/restore)
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian starts neither service without systemd; stop them if a systemd did, so tests own
# their instances.
command -v cargo >/dev/null || { echo "cargo not found: install the Rust toolchain (rustup) first" >&2; exit 1; }
echo "dependencies installed"
