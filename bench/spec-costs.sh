#!/usr/bin/env bash
# bench/spec-costs.sh: which parts of the spec crustd generates make a container start slow?
#
# What it measures
#   `<runtime> run --detach` of crustd's own generated spec (specgen's golden basic.json: the
#   RuntimeDefault seccomp profile, masked and read-only paths, the cgroup mount, new
#   namespaces; the pod-namespace paths and bind sources swapped for temporary ones) and of
#   variants with one part removed each, N times (default 40) interleaved, each container
#   deleted after its run. Prints the median and p90 of each and its difference from the full
#   spec. containerd's runc pays the same for the same parts (its default seccomp profile is
#   the same size), so this says where the runtime's floor is, not what crustd adds.
#   Needs root, runc or crun, python3 and busybox-static; touches only a temporary directory
#   and cgroups under /crust-spec-costs, which it removes.
#
# Usage: bench/spec-costs.sh [runc|crun] [N]
set -euo pipefail
RUNTIME="$(command -v "${1:-runc}")"
N="${2:-40}"
BUSYBOX="$(command -v busybox || true)"
[ -n "$BUSYBOX" ] || { echo "busybox-static is needed" >&2; exit 1; }
GOLDEN="$(cd "$(dirname "$0")/.." && pwd)/crates/specgen/tests/golden/basic.json"
work="$(mktemp -d /tmp/crust-spec-costs.XXXXXX)"
trap 'rm -rf "$work"; for d in /sys/fs/cgroup/*/crust-spec-costs /sys/fs/cgroup/crust-spec-costs; do [ -d "$d" ] && rmdir "$d" 2>/dev/null; done; true' EXIT
mkdir -p "$work/rootfs/bin" "$work/rootfs/etc" "$work/shm"
cp "$BUSYBOX" "$work/rootfs/bin/busybox"
ln "$work/rootfs/bin/busybox" "$work/rootfs/bin/sleep"
touch "$work/hostname" "$work/hosts" "$work/resolv.conf"
python3 - "$work" "$RUNTIME" "$N" "$GOLDEN" <<'PY'
import copy, json, os, statistics, subprocess, sys, time

work, runtime, n, golden = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
base = json.load(open(golden))
base["root"] = {"path": f"{work}/rootfs", "readonly": False}
base["process"]["args"] = ["sleep", "1000"]
base["process"]["terminal"] = False
base["linux"]["namespaces"] = [
    {"type": t} for t in ["mount", "network", "ipc", "uts", "pid", "cgroup"]
]
for m in base["mounts"]:
    name = m["destination"].rsplit("/", 1)[-1]
    if m["destination"] in ("/etc/hostname", "/etc/hosts", "/etc/resolv.conf"):
        m["source"] = f"{work}/{name}"
    if m["destination"] == "/dev/shm":
        m["source"] = f"{work}/shm"

def without(fn):
    spec = copy.deepcopy(base)
    fn(spec)
    return spec

variants = {
    "full spec": base,
    "no seccomp": without(lambda s: s["linux"].pop("seccomp")),
    "seccomp, no x32": without(
        lambda s: s["linux"]["seccomp"].update(architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"])
    ),
    "seccomp, x86_64 only": without(
        lambda s: s["linux"]["seccomp"].update(architectures=["SCMP_ARCH_X86_64"])
    ),
    "no masked/ro paths": without(
        lambda s: s["linux"].update(maskedPaths=[], readonlyPaths=[])
    ),
    "no /sys/fs/cgroup": without(
        lambda s: s.update(mounts=[m for m in s["mounts"] if m["destination"] != "/sys/fs/cgroup"])
    ),
    "host network": without(
        lambda s: s["linux"].update(
            namespaces=[x for x in s["linux"]["namespaces"] if x["type"] != "network"]
        )
    ),
}
times = {k: [] for k in variants}
root = f"{work}/state"
for i in range(n):
    for v, (name, spec) in enumerate(variants.items()):
        bundle = f"{work}/bundle{v}"
        os.makedirs(bundle, exist_ok=True)
        spec["linux"]["cgroupsPath"] = f"/crust-spec-costs/c{v}-{i}"
        with open(f"{bundle}/config.json", "w") as f:
            json.dump(spec, f)
        cid = f"spec-costs-{v}-{i}"
        t = time.monotonic()
        subprocess.run(
            [runtime, "--root", root, "run", "--detach", "--bundle", bundle, cid],
            check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        )
        times[name].append((time.monotonic() - t) * 1000)
        subprocess.run([runtime, "--root", root, "delete", "--force", cid], check=True)
full = statistics.median(times["full spec"])
print(f"{os.path.basename(runtime)} run --detach, {n} runs each, interleaved")
print(f"{'spec':22s} {'median ms':>10s} {'p90 ms':>8s} {'vs full':>8s}")
for name, t in times.items():
    med = statistics.median(t)
    p90 = sorted(t)[int(len(t) * 0.9)]
    print(f"{name:22s} {med:10.1f} {p90:8.1f} {med - full:+8.1f}")
PY
