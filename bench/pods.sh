#!/usr/bin/env bash
# bench/pods.sh: pod sandbox start/stop/remove latency of crustd against Debian's containerd (CRI
# plugin), on this machine, in one run.
#
# What it measures
#   For each daemon in turn, started fresh on an empty temporary root, `crustctl bench pods` runs
#   N pods (default 50) one after another through CRI (each with its own name and uid), checks
#   that all N are listed READY, then stops and removes each, oldest first. Every RunPodSandbox,
#   StopPodSandbox and RemovePodSandbox is timed on the client; the script prints median, p99 and
#   mean per RPC for both daemons and the ratio of the RunPodSandbox medians.
#
#   Both daemons get the same CNI network: a conflist this script writes into its own temporary
#   conf dir (bridge crbench0, host-local 10.88.200.0/24 with its dataDir in the temp dir,
#   portmap, ipMasq false), plugins from /usr/lib/cni. The bridge is deleted between the two
#   daemons so each one's first pod creates it.
#
#   containerd runs a pause container per pod: its sandbox_image is a busybox image running
#   `sleep infinity` (crust-testenv push-pause) on a local docker-registry (127.0.0.1 only),
#   pulled before the timing starts (a node has its pause image already). runc runtime,
#   cgroupfs (SystemdCgroup = false), overlayfs snapshotter, restrict_oom_score_adj = true
#   (this VM lacks CAP_SYS_RESOURCE). crustd runs no pause image: its per-pod monitor holds the
#   pod's namespaces (see docs/ARCHITECTURE.md).
#
#   After each daemon's run the script looks for leaks: pods still listed, IP reservations
#   left in the host-local dataDir, network namespaces left in /var/run/netns, veths left on
#   crbench0 (and for containerd, pod cgroups under k8s.io). Any leak is reported.
#
# Reproduce (as root, Debian 12 with containerd, runc, containernetworking-plugins and
# docker-registry installed, e.g. by scripts/install-deps.sh):
#   bench/pods.sh                 # build, 50 pods per daemon, print both tables and the ratio
#   bench/pods.sh 200             # N pods
#   bench/pods.sh -o json 50      # or JSON=1: also print a JSON summary at the end
#   DAEMONS=containerd bench/pods.sh   # only one of them (crustd, containerd)
#
# Environment: DAEMONS ("crustd containerd"), JSON (0), TIMEOUT (per-RPC deadline, 60s),
# CONTAINERD (containerd from PATH), SKIP_BUILD (0: `cargo build --release` the binaries first),
# BIN_DIR (take crustd, crust-monitor, crustctl and crust-testenv from there, unbuilt; default
# target/release), TMPDIR (where the work directory is made; /tmp).
# The set-up it shares with bench/containers.sh is in bench/lib.sh.
# Everything the script starts (registry, daemons, shims, pause containers, network
# namespaces, the crbench0 bridge, mounts and temp dirs) is cleaned up on exit, also on failure
# or Ctrl-C.
set -euo pipefail

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit "${1:-0}"
}

JSON=${JSON:-0}
COUNT=50
while [ $# -gt 0 ]; do
    case $1 in
    -o | --output)
        [ "${2:-}" = json ] || { echo "pods.sh: -o takes json" >&2; exit 2; }
        JSON=1
        shift 2
        ;;
    -o=json | --output=json) JSON=1; shift ;;
    -h | --help) usage 0 ;;
    [0-9]*) COUNT=$1; shift ;;
    *) echo "pods.sh: unknown argument $1" >&2; usage 2 >&2 ;;
    esac
done

DAEMONS=${DAEMONS:-crustd containerd}
BENCH=pods.sh
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

[[ $COUNT =~ ^[1-9][0-9]*$ ]] || die "N must be a positive integer, got '$COUNT'"
for dmn in $DAEMONS; do
    case $dmn in crustd | containerd) ;; *) die "DAEMONS: unknown daemon '$dmn'" ;; esac
done
want_containerd=0
[[ " $DAEMONS " == *" containerd "* ]] && want_containerd=1
bench_preflight "$want_containerd"

cd "$(dirname "$0")/.."
packages=(-p crustctl -p crust-testenv)
need=(crustctl crust-testenv)
if [[ " $DAEMONS " == *" crustd "* ]]; then
    packages+=(-p crustd -p crust-monitor)
    need+=(crustd crust-monitor)
fi
bench_build "${packages[@]}"

bench_init pods

# ---------------------------------------------------------------------------------------------
# The network both daemons use, and the pod they run N times
write_conflist
cat >"$work/pod.json" <<EOF
{
  "metadata": {"name": "bench", "namespace": "crust-bench"},
  "linux": {}
}
EOF

# Registry with the pause image (containerd only)
if [ "$want_containerd" = 1 ]; then
    start_registry
fi

RPCS=(RunPodSandbox StopPodSandbox RemovePodSandbox)

print_table() {
    local dmn=$1 f=$2 rpc
    echo "$dmn: $COUNT pods, $(sed -n 's/.*"wall_seconds": \([0-9.]*\).*/\1/p' "$f") s in all"
    printf '  %-18s %10s %10s %10s %10s %10s\n' RPC "median ms" "p99 ms" "mean ms" "min ms" "max ms"
    for rpc in "${RPCS[@]}"; do
        printf '  %-18s %10.3f %10.3f %10.3f %10.3f %10.3f\n' "$rpc" \
            "$(field "$rpc" median_ms "$f")" "$(field "$rpc" p99_ms "$f")" "$(field "$rpc" mean_ms "$f")" \
            "$(field "$rpc" min_ms "$f")" "$(field "$rpc" max_ms "$f")"
    done
}

declare -A leaks
measure() {
    local dmn=$1 d=$work/$1 out=$work/$1.json problems=() n
    daemon_name=$dmn
    daemon_dir=$d
    mkdir -p "$d"
    "start_$dmn" "$d"
    log "$dmn: running $COUNT pods"
    # In the background, so that a signal to this script is handled at once, not after the bench.
    "$bin/crustctl" -r "unix://$SOCK" --timeout "$TIMEOUT" bench pods --count "$COUNT" \
        --config "$work/pod.json" -o json >"$out" &
    bench_pid=$!
    wait "$bench_pid" || die "$dmn: crustctl bench pods failed"
    bench_pid=""

    # Leaks: pods, IP reservations, namespaces, veths (and containerd's pod cgroups).
    n=$("$bin/crustctl" -r "unix://$SOCK" --timeout 10s pods -q | wc -l)
    [ "$n" = 0 ] || problems+=("$n pods still listed")
    network_leaks
    if [ "$dmn" = containerd ]; then
        k8s_cgroup_leaks
    fi
    if [ ${#problems[@]} = 0 ]; then
        leaks[$dmn]=none
    else
        leaks[$dmn]=$(IFS=';'; echo "${problems[*]}")
        log "$dmn leaked: ${leaks[$dmn]}"
    fi

    stop_daemon
    clean_network # the next daemon starts without bridge, namespaces or reservations
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for dmn in $DAEMONS; do
    measure "$dmn"
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------------------------------------
# Figures
kernel=$(uname -r)
ncpu=$(nproc)
echo
echo "Pod sandboxes through CRI: RunPodSandbox, then StopPodSandbox and RemovePodSandbox of each"
echo "  machine:    $ncpu CPUs, $(awk '/MemTotal/ { printf "%.1f GiB RAM", $2 / 1048576 }' /proc/meminfo), kernel $kernel"
[[ " $DAEMONS " == *" containerd "* ]] && echo "  containerd: $("$CONTAINERD" --version) (CRI plugin, runc $(runc --version | sed -n '1s/runc version //p'), pause image $pause_image)"
[[ " $DAEMONS " == *" crustd "* ]] && echo "  crustd:     $("$bin/crustd" --version)"
echo "  network:    CNI bridge $BRIDGE, host-local $SUBNET, portmap (plugins from $CNI_BIN)"
echo "  load avg:   $load_before before, $load_after after"
echo
for dmn in $DAEMONS; do
    print_table "$dmn" "$work/$dmn.json"
    echo "  leaks after the run: ${leaks[$dmn]}"
    echo
done
ratio=""
if [ -f "$work/crustd.json" ] && [ -f "$work/containerd.json" ]; then
    c_med=$(field RunPodSandbox median_ms "$work/crustd.json")
    k_med=$(field RunPodSandbox median_ms "$work/containerd.json")
    ratio=$(awk -v a="$k_med" -v b="$c_med" 'BEGIN { printf "%.2f", a / b }')
    echo "RunPodSandbox median: crustd ${c_med} ms, containerd ${k_med} ms:" \
        "crustd is ${ratio}x containerd's speed (containerd median / crustd median)"
fi

if [ "$JSON" = 1 ]; then
    echo "{"
    echo "  \"machine\": {\"nproc\": $ncpu, \"kernel\": \"$kernel\", \"loadavg_before\": \"$load_before\", \"loadavg_after\": \"$load_after\"},"
    echo "  \"count\": $COUNT,"
    for dmn in $DAEMONS; do
        echo "  \"$dmn\": $(sed '2,$s/^/  /' "$work/$dmn.json"),"
        echo "  \"${dmn}_leaks\": \"${leaks[$dmn]}\","
    done
    echo "  \"ratio_run_median_containerd_over_crustd\": ${ratio:-null}"
    echo "}"
fi
