#!/usr/bin/env bash
# bench/runc-sealed.sh: would running runc from a sealed memfd make a container start faster?
#
# What it measures
#   runc 1.1 guards against CVE-2019-5736 in every `runc init`: unless /proc/self/exe is
#   already a fully sealed memfd, it makes a read-only bind mount of itself (Debian's 1.1.5:
#   no copy) and re-execs through it, one more Go start-up per container start. This script
#   times `runc run` of a container running busybox `true` (create, start, wait, delete) N
#   times (default 150) each way, interleaved: runc by its path, and runc from one sealed
#   memfd copy of it (F_SEAL_SEAL|SHRINK|GROW|WRITE, which runc accepts as its own clone and
#   so skips the re-exec). It prints the median and p10 of each and checks with strace, once,
#   that the sealed one really skips the re-exec (no execveat). Needs root, runc, python3,
#   strace and busybox-static; touches only a temporary directory it removes.
#
# Usage: bench/runc-sealed.sh [N]
set -euo pipefail
N="${1:-150}"
RUNC="$(command -v runc)"
BUSYBOX="$(command -v busybox || true)"
[ -n "$BUSYBOX" ] || { echo "busybox-static is needed" >&2; exit 1; }
work="$(mktemp -d /tmp/crust-runc-sealed.XXXXXX)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/bundle/rootfs/bin" "$work/root"
cp "$BUSYBOX" "$work/bundle/rootfs/bin/busybox"
(cd "$work/bundle" && "$RUNC" spec)
python3 - "$work" "$RUNC" "$N" <<'EOF'
import fcntl, json, os, statistics, subprocess, sys, time

work, runc, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
bundle, root = f"{work}/bundle", f"{work}/root"
config = json.load(open(f"{bundle}/config.json"))
config["process"]["terminal"] = False
config["process"]["args"] = ["/bin/busybox", "true"]
json.dump(config, open(f"{bundle}/config.json", "w"))

fd = os.memfd_create("runc", os.MFD_ALLOW_SEALING | os.MFD_CLOEXEC)
with open(runc, "rb") as f:
    os.write(fd, f.read())
fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK
            | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE)
sealed = f"/proc/{os.getpid()}/fd/{fd}"

def run(binary, name, prefix=()):
    subprocess.run([*prefix, binary, "--root", root, "run", "-b", bundle, name],
                   check=True, stdin=subprocess.DEVNULL)

for binary, label in ((runc, "path"), (sealed, "sealed")):
    trace = f"{work}/strace-{label}"
    run(binary, f"trace-{label}", ("strace", "-f", "-qq", "-e", "trace=execveat", "-o", trace))
    reexec = "execveat(" in open(trace).read()
    print(f"{label}: runc init re-execs itself: {'yes' if reexec else 'no'}")

times = {"path": [], "sealed": []}
for i in range(n):
    for binary, label in ((runc, "path"), (sealed, "sealed")):
        start = time.perf_counter()
        run(binary, f"{label}-{i}")
        times[label].append((time.perf_counter() - start) * 1000)
for label, samples in times.items():
    samples.sort()
    print(f"{label:>6}: median {statistics.median(samples):6.2f} ms  "
          f"p10 {samples[len(samples) // 10]:6.2f} ms  ({n} runs)")
path, sealed_ = statistics.median(times["path"]), statistics.median(times["sealed"])
print(f"sealed/path median ratio {sealed_ / path:.3f}")
EOF
