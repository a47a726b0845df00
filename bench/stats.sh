#!/usr/bin/env bash
# bench/stats.sh: ListPodSandboxStats and ListContainerStats latency of crustd against Debian's
# containerd (CRI plugin) on a node with N pods, on this machine, in one run.
#
# What it measures
#   For each daemon in turn, started fresh on an empty temporary root, `crustctl bench stats`
#   runs N pods (default 110, kubelet's default pod limit), each with one container running
#   `sleep 3600` in the standard busybox test image (crust-testenv serve; CONTAINERS=0: pods
#   only), all with the run's label. Then, after one untimed call of each, it calls
#   ListPodSandboxStats and ListContainerStats CALLS times (default 20) in turn, filtered by
#   the run's label, each timed on the client; every reply must hold N entries. Every pod has a
#   cgroup parent of its own below /crust-bench-stats (cgroupfs), as kubelet gives each pod one
#   (containerd 1.6 fails ListPodSandboxStats for a pod without). The script
#   prints median, p99 and mean per RPC for both daemons and the containerd/crustd ratio of
#   the medians. An RPC a daemon answers with Unimplemented is reported as unsupported.
#
#   Both daemons get the CNI network of bench/pods.sh (bridge crbench0, host-local
#   10.88.200.0/24, portmap), runc, cgroupfs. containerd: CRI plugin, runc shim v2, overlayfs
#   snapshotter, restrict_oom_score_adj = true, a pause container per pod from the local
#   registry (crust-testenv push-pause). crustd runs no pause container (see
#   docs/ARCHITECTURE.md). After each daemon's run the script looks for leaks as
#   bench/containers.sh does.
#
# Reproduce (as root, Debian 12 with containerd, runc, containernetworking-plugins and
# docker-registry installed, e.g. by scripts/install-deps.sh):
#   bench/stats.sh                 # build, 110 pods with a container each, 20 calls
#   bench/stats.sh 50              # N pods
#   bench/stats.sh -o json 110     # or JSON=1: also print a JSON summary at the end
#   DAEMONS=crustd CALLS=50 bench/stats.sh
#
# Environment: DAEMONS ("crustd containerd"), CALLS (20), CONTAINERS (1), JSON (0), TIMEOUT
# (per-RPC deadline, 60s), CONTAINERD (containerd from PATH), SKIP_BUILD (0: `cargo build
# --release` the binaries first), BIN_DIR (take crustd, crust-monitor, crustctl and
# crust-testenv from there, unbuilt; default target/release), TMPDIR (where the work
# directory is made; /tmp), RUST_LOG (crustd's).
# The set-up it shares with bench/pods.sh and bench/containers.sh is in bench/lib.sh.
# Everything the script starts (registry, daemons, shims, monitors, containers, network
# namespaces, the crbench0 bridge, mounts and temp dirs) is cleaned up on exit, also on failure
# or Ctrl-C.
set -euo pipefail

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit "${1:-0}"
}

JSON=${JSON:-0}
COUNT=110
while [ $# -gt 0 ]; do
    case $1 in
    -o | --output)
        [ "${2:-}" = json ] || { echo "stats.sh: -o takes json" >&2; exit 2; }
        JSON=1
        shift 2
        ;;
    -o=json | --output=json) JSON=1; shift ;;
    -h | --help) usage 0 ;;
    [0-9]*) COUNT=$1; shift ;;
    *) echo "stats.sh: unknown argument $1" >&2; usage 2 >&2 ;;
    esac
done

DAEMONS=${DAEMONS:-crustd containerd}
CALLS=${CALLS:-20}
CONTAINERS=${CONTAINERS:-1}
BENCH=stats.sh
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

[[ $COUNT =~ ^[1-9][0-9]*$ ]] || die "N must be a positive integer, got '$COUNT'"
[ "$COUNT" -le 250 ] || die "N is at most 250 (the pods share one /24)"
[[ $CALLS =~ ^[1-9][0-9]*$ ]] || die "CALLS must be a positive integer, got '$CALLS'"
case $CONTAINERS in 0 | 1) ;; *) die "CONTAINERS is 0 or 1" ;; esac
for dmn in $DAEMONS; do
    case $dmn in crustd | containerd) ;; *) die "DAEMONS: unknown daemon '$dmn'" ;; esac
done
want_containerd=0
[[ " $DAEMONS " == *" containerd "* ]] && want_containerd=1
bench_preflight "$want_containerd"

cd "$(dirname "$0")/.."
need=(crustctl crust-testenv crustd crust-monitor)
bench_build -p crustctl -p crust-testenv -p crustd -p crust-monitor

bench_init stats
write_conflist
start_registry
image=""
image_args=()
if [ "$CONTAINERS" = 1 ]; then
    image=$(grep -m1 '/crust/busybox:latest$' "$work/registry.out") ||
        die "crust-testenv serve pushed no crust/busybox:latest"
    image_args=(--image "$image")
    log "container image $image"
fi

RPCS=(ListPodSandboxStats ListContainerStats)
CGROUP_PARENT=/crust-bench-stats
[ -z "$(parent_dirs)" ] || die "$CGROUP_PARENT exists in the cgroup hierarchies already (another run, or a leftover)"
# lib.sh's cleanup stops the daemons and ends with `exit`: run it in a subshell, then remove
# the parents it has emptied.
trap 'rc=$?; trap - ERR; set +e; (exit $rc); (cleanup); clean_parents; exit $rc' EXIT

print_table() {
    local dmn=$1 f=$2 rpc
    echo "$dmn: $COUNT pods, set up in $(sed -n 's/.*"setup_seconds": \([0-9.]*\).*/\1/p' "$f") s"
    printf '  %-20s %10s %10s %10s %10s %10s\n' RPC "median ms" "p99 ms" "mean ms" "min ms" "max ms"
    for rpc in "${RPCS[@]}"; do
        if grep -q "\"rpc\": \"$rpc\"" "$f"; then
            printf '  %-20s %10.3f %10.3f %10.3f %10.3f %10.3f\n' "$rpc" \
                "$(field "$rpc" median_ms "$f")" "$(field "$rpc" p99_ms "$f")" "$(field "$rpc" mean_ms "$f")" \
                "$(field "$rpc" min_ms "$f")" "$(field "$rpc" max_ms "$f")"
        else
            printf '  %-20s %10s\n' "$rpc" "unsupported (Unimplemented)"
        fi
    done
}

declare -A leaks
measure() {
    local dmn=$1 d=$work/$1 out=$work/$1.json problems=() n
    daemon_name=$dmn
    daemon_dir=$d
    daemon_oci=runc
    mkdir -p "$d"
    case $dmn in
    crustd)
        start_crustd "$d" "
[runtimes.runc]
path = \"$(command -v runc)\"

[runtime]
default_handler = \"runc\""
        ;;
    containerd) start_containerd "$d" ;;
    esac
    log "$dmn: $COUNT pods, $CALLS calls of each stats RPC"
    # In the background, so that a signal to this script is handled at once, not after the bench.
    "$bin/crustctl" -r "unix://$SOCK" --timeout "$TIMEOUT" bench stats --count "$COUNT" \
        --calls "$CALLS" --cgroup-parent "$CGROUP_PARENT" "${image_args[@]}" -o json \
        >"$out" 2>"$d/bench.err" &
    bench_pid=$!
    if ! wait "$bench_pid"; then
        bench_pid=""
        cat "$d/bench.err" >&2
        die "$dmn: crustctl bench stats failed"
    fi
    bench_pid=""

    # Leaks: containers, pods, mounts, OCI runtime state, network, cgroups.
    cri_leaks "$d" "$dmn"
    clean_parents
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
what="a container each (busybox, sleep 3600)"
[ "$CONTAINERS" = 1 ] || what="no containers"
echo
echo "Stats through CRI with $COUNT pods ($what): ListPodSandboxStats and ListContainerStats, $CALLS calls each"
echo "  machine:    $ncpu CPUs, $(awk '/MemTotal/ { printf "%.1f GiB RAM", $2 / 1048576 }' /proc/meminfo), kernel $kernel"
[[ " $DAEMONS " == *" containerd "* ]] && echo "  containerd: $("$CONTAINERD" --version) (CRI plugin, runc $(runc --version | sed -n '1s/runc version //p'), pause image $pause_image)"
[[ " $DAEMONS " == *" crustd "* ]] && echo "  crustd:     $("$bin/crustd" --version)"
echo "  cgroups:    $(stat -fc %T /sys/fs/cgroup | sed 's/cgroup2fs/v2 (unified)/; s/tmpfs/v1 (hybrid or legacy)/'), cgroupfs driver"
echo "  load avg:   $load_before before, $load_after after"
echo
for dmn in $DAEMONS; do
    print_table "$dmn" "$work/$dmn.json"
    echo "  leaks after the run: ${leaks[$dmn]}"
    echo
done
declare -A ratios
if [ -f "$work/crustd.json" ] && [ -f "$work/containerd.json" ]; then
    for rpc in "${RPCS[@]}"; do
        c_med=$(field "$rpc" median_ms "$work/crustd.json")
        k_med=$(field "$rpc" median_ms "$work/containerd.json")
        if [ -n "$c_med" ] && [ -n "$k_med" ]; then
            ratios[$rpc]=$(awk -v a="$k_med" -v b="$c_med" 'BEGIN { printf "%.2f", a / b }')
            echo "$rpc median: crustd ${c_med} ms, containerd ${k_med} ms:" \
                "crustd is ${ratios[$rpc]}x containerd's speed (containerd median / crustd median)"
        else
            echo "$rpc median: crustd ${c_med:-unsupported} ms, containerd ${k_med:-unsupported}: no ratio"
        fi
    done
fi

if [ "$JSON" = 1 ]; then
    echo "{"
    echo "  \"machine\": {\"nproc\": $ncpu, \"kernel\": \"$kernel\", \"loadavg_before\": \"$load_before\", \"loadavg_after\": \"$load_after\"},"
    echo "  \"count\": $COUNT, \"calls\": $CALLS, \"containers\": $CONTAINERS,"
    for dmn in $DAEMONS; do
        echo "  \"$dmn\": $(sed '2,$s/^/  /' "$work/$dmn.json"),"
        echo "  \"${dmn}_leaks\": \"${leaks[$dmn]}\","
    done
    echo "  \"ratio_median_containerd_over_crustd\": {\"ListPodSandboxStats\": ${ratios[ListPodSandboxStats]:-null}, \"ListContainerStats\": ${ratios[ListContainerStats]:-null}}"
    echo "}"
fi
