#!/usr/bin/env bash
# The main job on a fresh machine: start a local test registry with crust's test images,
# start crustd on its embedded defaults, pull an image through it and list it, then run a pod
# with a container in it, exec into it, read its log, and remove it all. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bins
bin=target/release
work=$(mktemp -d /tmp/crust-demo.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

"$bin/crust-testenv" serve >"$work/registry.out" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q '^registry: ' "$work/registry.out" && break; sleep 0.2; done
registry=$(sed -n 's/^registry: //p' "$work/registry.out")
[ -n "$registry" ] || { cat "$work/registry.out"; echo "test registry did not start" >&2; exit 1; }
echo "test registry on $registry"

"$bin/crustd" >"$work/crustd.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do "$bin/crustctl" version >/dev/null 2>&1 && break; sleep 0.1; done
"$bin/crustctl" version
"$bin/crustctl" pull "$registry/crust/busybox:latest"
"$bin/crustctl" images

# A pod and a container in crictl's config formats (the default CNI network crust0 serves).
cat >"$work/pod.json" <<JSON
{"metadata": {"name": "demo", "namespace": "default", "uid": "demo-uid-$$"},
 "hostname": "demo", "log_directory": "$work/logs", "linux": {}}
JSON
cat >"$work/container.json" <<JSON
{"metadata": {"name": "hello"}, "image": {"image": "$registry/crust/busybox:latest"},
 "command": ["sh", "-c", "echo hello from crust; sleep 3600"], "log_path": "hello.log",
 "linux": {}}
JSON
ctr=$("$bin/crustctl" run "$work/container.json" "$work/pod.json")
"$bin/crustctl" ps
"$bin/crustctl" exec -s "$ctr" sh -c 'echo "exec in $(hostname) as $(id -un)"'
sleep 0.5
"$bin/crustctl" logs "$ctr"
pod=$("$bin/crustctl" pods -q --name demo)
"$bin/crustctl" stopp "$pod"
"$bin/crustctl" rmp "$pod"
echo "crustd log: $work/crustd.log (state in /var/lib/crust; crustd stops when this script ends)"
