#!/usr/bin/env bash
# bench/compare.sh: crustd against Debian's containerd (CRI plugin) on every crustctl bench
# workload, on this machine, in one run: one table, one JSON results file, one SVG chart.
#
# What it measures
#   The release binaries are built once and the local registry (crust-testenv serve, with the
#   busybox test image, containerd's pause image and a big image of incompressible layers as
#   bench/pull.sh uses) is started once. Then, for R rounds (default 3), interleaved (crustd,
#   containerd, crustd, containerd…), each daemon is started fresh on an empty temporary root
#   and, in this order:
#     idle memory   VmRSS and PSS (smaps_rollup) of the daemon right after start-up
#     pods          crustctl bench pods --count 50 (one after another)
#     containers    crustctl bench containers --count 50 --image busybox
#     pods-parallel crustctl bench pods --parallel 10 --with-container --count 110: kubelet's
#                   "110 pods from empty to all running" (all_running_seconds)
#     stats         crustctl bench stats --count 110 --calls 20 (a container per pod, every
#                   pod with a cgroup parent of its own below /crust-bench-compare)
#     pull          crustctl bench pull of the big image, 3 times (RemoveImage in between)
#     loaded memory 100 pods with a `sleep` container each (crustctl run, 8 at a time): the
#                   daemon's VmRSS and PSS, and the VmRSS and PSS of the per-pod helper
#                   processes (crust-monitor for crustd, containerd-shim-runc-v2 for
#                   containerd; its pause processes are not counted): the mean per process
#                   and their sum over the pods
#   Every bench checks its own work (pods READY, containers RUNNING, images there, nothing left)
#   and after each daemon's run the script looks for leaks as bench/stats.sh does. Both daemons
#   get the CNI network of bench/lib.sh, runc, cgroupfs; see bench/stats.sh for the details.
#
#   The table: per workload and RPC the median of the samples of all rounds pooled, crustd's
#   and containerd's, and the ratio crustd/containerd (below 1: crustd is faster); for
#   all_running, MB/s and memory the median of the rounds' figures. Everything measured is in
#   $OUT/results.json; $OUT/bench-latency.svg is drawn from it by `crustctl bench chart`.
#
# Reproduce (as root, Debian 12 with containerd, runc, containernetworking-plugins and
# docker-registry installed, e.g. by scripts/install-deps.sh):
#   bench/compare.sh                       # 3 rounds at full size (long: about an hour)
#   bench/compare.sh --quick               # small sizes, 1 round: a smoke run
#   bench/compare.sh --rounds 5 --out /tmp/cmp
#
# Flags: --rounds R (3; 1 with --quick unless given), --quick, --out DIR (target/bench-compare).
# Environment: TIMEOUT (per-RPC deadline, 60s), CONTAINERD, SKIP_BUILD, BIN_DIR, TMPDIR,
# RUST_LOG (crustd's), as in bench/lib.sh.
# Everything the script starts (registry, daemons, shims, monitors, containers, network
# namespaces, the crbench0 bridge, cgroups, mounts and temp dirs) is cleaned up on exit, also
# on failure or Ctrl-C.
set -euo pipefail

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit "${1:-0}"
}

ROUNDS=""
QUICK=0
OUT=""
while [ $# -gt 0 ]; do
    case $1 in
    --rounds) ROUNDS=${2:-}; shift 2 ;;
    --rounds=*) ROUNDS=${1#*=}; shift ;;
    --quick) QUICK=1; shift ;;
    --out) OUT=${2:-}; shift 2 ;;
    --out=*) OUT=${1#*=}; shift ;;
    -h | --help) usage 0 ;;
    *) echo "compare.sh: unknown argument $1" >&2; usage 2 >&2 ;;
    esac
done

BENCH=compare.sh
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

if [ "$QUICK" = 1 ]; then
    ROUNDS=${ROUNDS:-1}
    PODS_N=5 CONTAINERS_N=5 PARALLEL_N=12 PARALLEL_P=4 STATS_N=10 CALLS=5 PULLS=2
    HOLD_N=10 LAYERS=3 BYTES_PER_LAYER=$((4 << 20))
else
    ROUNDS=${ROUNDS:-3}
    PODS_N=50 CONTAINERS_N=50 PARALLEL_N=110 PARALLEL_P=10 STATS_N=110 CALLS=20 PULLS=3
    HOLD_N=100 LAYERS=12 BYTES_PER_LAYER=$((20 << 20))
fi
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "--rounds must be a positive integer, got '$ROUNDS'"
DAEMONS=(crustd containerd)
WORKLOADS=(pods containers pods-parallel stats pull)
CGROUP_PARENT=/crust-bench-compare
PULL_TIMEOUT=900s

bench_preflight 1
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/target/bench-compare}
mkdir -p "$OUT/raw"
OUT=$(realpath "$OUT")
rm -f "$OUT"/raw/*.json
need=(crustctl crust-testenv crustd crust-monitor)
bench_build -p crustctl -p crust-testenv -p crustd -p crust-monitor

[ -z "$(parent_dirs)" ] || die "$CGROUP_PARENT exists in the cgroup hierarchies already (another run, or a leftover)"

bench_init compare
# lib.sh's cleanup ends with `exit`: run it in a subshell, then remove the parents it emptied.
trap 'rc=$?; trap - ERR; set +e; (exit $rc); (cleanup); clean_parents; exit $rc' EXIT
write_conflist
start_registry
image=$(grep -m1 '/crust/busybox:latest$' "$work/registry.out") ||
    die "crust-testenv serve pushed no crust/busybox:latest"
"$bin/crust-testenv" push-big --registry "$registry" --name bench/big:latest \
    --layers "$LAYERS" --bytes-per-layer "$BYTES_PER_LAYER" >"$work/push.out" 2>"$work/push.err" ||
    { cat "$work/push.out" "$work/push.err" >&2; die "push-big failed"; }
big_image=$registry/bench/big:latest
log "images: $image, $big_image ($(sed -n 's/^size: //p' "$work/push.out") bytes compressed)"

# ---------------------------------------------------------------------------------------------
# Memory, in kB: field $2 of /proc/$1/$3 (status: VmRSS; smaps_rollup: Pss).
proc_kb() {
    awk -v k="$2:" '$1 == k { print $2; exit }' "/proc/$1/$3" 2>/dev/null || true
}
# PIDs of this run's processes running binary $1 (their command line names the work dir).
helper_pids() {
    local p exe
    for p in /proc/[0-9]*; do
        exe=$(readlink "$p/exe" 2>/dev/null) || continue
        [ "$(basename "$exe")" = "$1" ] || continue
        [[ $(tr '\0' ' ' 2>/dev/null <"$p/cmdline") == *"$work"* ]] && echo "${p#/proc/}"
    done
    return 0
}
# "count mean_rss_kb mean_pss_kb sum_rss_kb sum_pss_kb" of the processes $@.
mean_memory() {
    local pid
    for pid in "$@"; do
        echo "$(proc_kb "$pid" VmRSS status) $(proc_kb "$pid" Pss smaps_rollup)"
    done | awk 'NF == 2 { n++; r += $1; p += $2 }
        END { if (n) printf "%d %.0f %.0f %d %d\n", n, r / n, p / n, r, p; else print "0 null null 0 0" }'
}

# HOLD_N pods with a sleep container each, made by `crustctl run` 8 at a time.
hold_pods() {
    local d=$1 i
    for ((i = 0; i < HOLD_N; i++)); do
        cat >"$d/hold-pod-$i.json" <<EOF
{"metadata": {"name": "hold-$i", "namespace": "crust-bench", "uid": "hold-$i-$RANDOM$RANDOM"},
 "linux": {"cgroup_parent": "$CGROUP_PARENT/hold-$i"}}
EOF
        cat >"$d/hold-ctr-$i.json" <<EOF
{"metadata": {"name": "sleep"}, "image": {"image": "$image"}, "command": ["sleep", "3600"],
 "linux": {}}
EOF
        echo "$i"
    done | xargs -P 8 -I{} "$bin/crustctl" -r "unix://$SOCK" --timeout "$TIMEOUT" run \
        "$d/hold-ctr-{}.json" "$d/hold-pod-{}.json" >"$d/hold.out" 2>"$d/hold.err" ||
        { cat "$d/hold.err" >&2; die "$daemon_name: crustctl run of the $HOLD_N pods failed"; }
    local n
    n=$("$bin/crustctl" -r "unix://$SOCK" --timeout 30s ps -q --state running | wc -l)
    [ "$n" = "$HOLD_N" ] || die "$daemon_name: $n of $HOLD_N held containers are running"
}

# One JSON object of memory figures for daemon $1 in round $2 (idle figures in $3 $4).
memory_json() {
    local dmn=$1 round=$2 idle_rss=$3 idle_pss=$4 helper n rss pss sum_rss sum_pss
    case $dmn in
    crustd) helper=crust-monitor ;;
    containerd) helper=containerd-shim-runc-v2 ;;
    esac
    read -r n rss pss sum_rss sum_pss <<<"$(mean_memory $(helper_pids "$helper"))"
    printf '{"round": %d, "daemon": "%s", "idle_rss_kb": %s, "idle_pss_kb": %s, "pods": %d, "loaded_rss_kb": %s, "loaded_pss_kb": %s, "helper": "%s", "helpers": %d, "helper_rss_kb_mean": %s, "helper_pss_kb_mean": %s, "helper_rss_kb_per_pod": %d, "helper_pss_kb_per_pod": %d}' \
        "$round" "$dmn" "${idle_rss:-null}" "${idle_pss:-null}" "$HOLD_N" \
        "$(proc_kb "$daemon_pid" VmRSS status)" "$(proc_kb "$daemon_pid" Pss smaps_rollup)" \
        "$helper" "$n" "$rss" "$pss" "$((sum_rss / HOLD_N))" "$((sum_pss / HOLD_N))"
}

# crustctl bench $2… against the current daemon, its JSON into file $1, in the background so
# that a signal to this script is handled at once.
bench() {
    local out=$1
    shift
    "$bin/crustctl" -r "unix://$SOCK" --timeout "$TIMEOUT" bench "$@" -o json \
        >"$out" 2>"$daemon_dir/bench.err" &
    bench_pid=$!
    if ! wait "$bench_pid"; then
        bench_pid=""
        cat "$daemon_dir/bench.err" >&2
        die "$daemon_name: crustctl bench $1 failed"
    fi
    bench_pid=""
}

declare -A leaks
: >"$work/memory.jsonl"
measure() {
    local dmn=$1 round=$2 d=$work/$1-$2 raw=$OUT/raw/r$2-$1 problems=() n idle_rss idle_pss
    daemon_name="$dmn (round $round)"
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
    sleep 1
    idle_rss=$(proc_kb "$daemon_pid" VmRSS status)
    idle_pss=$(proc_kb "$daemon_pid" Pss smaps_rollup)

    log "$daemon_name: pods"
    bench "$raw-pods.json" pods --count "$PODS_N"
    log "$daemon_name: containers"
    bench "$raw-containers.json" containers --count "$CONTAINERS_N" --image "$image"
    log "$daemon_name: pods-parallel"
    bench "$raw-pods-parallel.json" pods --count "$PARALLEL_N" --parallel "$PARALLEL_P" \
        --with-container --image "$image"
    log "$daemon_name: stats"
    bench "$raw-stats.json" stats --count "$STATS_N" --calls "$CALLS" \
        --cgroup-parent "$CGROUP_PARENT" --image "$image"
    log "$daemon_name: pull"
    bench "$raw-pull.json" pull --image "$big_image" --count "$PULLS" --pull-timeout "$PULL_TIMEOUT"
    log "$daemon_name: memory with $HOLD_N pods"
    hold_pods "$d"
    memory_json "$dmn" "$round" "$idle_rss" "$idle_pss" >>"$work/memory.jsonl"
    echo >>"$work/memory.jsonl"
    "$bin/crustctl" -r "unix://$SOCK" --timeout "$TIMEOUT" rmp -fa >/dev/null ||
        die "$daemon_name: rmp -fa of the held pods failed"

    # Leaks: containers, pods, mounts, OCI runtime state, network, cgroups.
    cri_leaks "$d" "$dmn"
    clean_parents
    if [ ${#problems[@]} = 0 ]; then
        leaks[$dmn-$round]=none
    else
        leaks[$dmn-$round]=$(IFS=';'; echo "${problems[*]}")
        log "$daemon_name leaked: ${leaks[$dmn-$round]}"
    fi
    stop_daemon
    clean_network
    clean_k8s_cgroups
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date +%s)
for ((round = 1; round <= ROUNDS; round++)); do
    for dmn in "${DAEMONS[@]}"; do
        measure "$dmn" "$round"
    done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
minutes=$((($(date +%s) - started + 59) / 60))

# ---------------------------------------------------------------------------------------------
# results.json: the machine, the command, every bench report, the memory figures, the leaks.
json_str() { printf '"%s"' "$(printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g')"; }
results=$OUT/results.json
{
    echo "{"
    echo "  \"command\": $(json_str "bench/compare.sh --rounds $ROUNDS$([ "$QUICK" = 1 ] && echo " --quick")"),"
    echo "  \"quick\": $([ "$QUICK" = 1 ] && echo true || echo false), \"rounds\": $ROUNDS,"
    echo "  \"machine\": {\"nproc\": $(nproc), \"mem_kb\": $(awk '/MemTotal/ { print $2 }' /proc/meminfo), \"kernel\": $(json_str "$(uname -r)"), \"loadavg_before\": $(json_str "$load_before"), \"loadavg_after\": $(json_str "$load_after"), \"minutes\": $minutes},"
    echo "  \"crustd\": $(json_str "$("$bin/crustd" --version)"),"
    echo "  \"containerd\": $(json_str "$("$CONTAINERD" --version), runc $(runc --version | sed -n '1s/runc version //p')"),"
    echo "  \"runs\": ["
    sep=""
    for ((round = 1; round <= ROUNDS; round++)); do
        for dmn in "${DAEMONS[@]}"; do
            for w in "${WORKLOADS[@]}"; do
                printf '%s    {"round": %d, "daemon": "%s", "workload": "%s", "report": %s}' \
                    "$sep" "$round" "$dmn" "$w" "$(sed '2,$s/^/    /' "$OUT/raw/r$round-$dmn-$w.json")"
                sep=$',\n'
            done
        done
    done
    echo
    echo "  ],"
    echo "  \"memory\": ["
    sed '/^$/d; s/^/    /; $!s/$/,/' "$work/memory.jsonl"
    echo "  ],"
    echo "  \"leaks\": {"
    sep=""
    for key in "${!leaks[@]}"; do
        printf '%s    "%s": %s' "$sep" "$key" "$(json_str "${leaks[$key]}")"
        sep=$',\n'
    done
    echo
    echo "  }"
    echo "}"
} >"$results"

# ---------------------------------------------------------------------------------------------
# The table.
# Median of the numbers on stdin ("-" when none).
median() { median_p99 | cut -d' ' -f1; }
# Field $1 (a top-level number) of the JSON files $2….
top_field() {
    local f=$1
    shift
    sed -n "s/^  \"$f\": \([-0-9.e+]*\).*/\1/p" "$@"
}
row() { printf '%-34s %14s %14s %8s\n' "$1" "$2" "$3" "$(ratio "$2" "$3")"; }
files() { ls "$OUT"/raw/r*-"$1"-"$2".json; }
mem() {
    sed -n "s/.*\"daemon\": \"$1\".*\"$2\": \([0-9.]*\).*/\1/p" "$work/memory.jsonl" | median |
        awk '{ print ($1 == "-") ? "-" : sprintf("%.0f", $1) }'
}

table=$OUT/table.txt
{
    echo "crustd vs containerd: $ROUNDS round(s)$([ "$QUICK" = 1 ] && echo ", --quick (smoke run: small N)"), $(nproc) CPUs, kernel $(uname -r), load $load_before before, $load_after after"
    printf '%-34s %14s %14s %8s\n' "WORKLOAD/RPC (median)" crustd containerd ratio
    for w in "${WORKLOADS[@]}"; do
        for rpc in $(sed -n 's/.*"rpc": "\([^"]*\)".*/\1/p' "$(files crustd "$w" | head -n 1)"); do
            row "$w/$rpc ms" "$(samples "$rpc" $(files crustd "$w") | median)" \
                "$(samples "$rpc" $(files containerd "$w") | median)"
        done
        case $w in
        pods-parallel)
            row "$w/all_running s" "$(top_field all_running_seconds $(files crustd "$w") | median)" \
                "$(top_field all_running_seconds $(files containerd "$w") | median)"
            ;;
        pull)
            row "$w/MB/s" "$(top_field mb_per_s_median $(files crustd "$w") | median)" \
                "$(top_field mb_per_s_median $(files containerd "$w") | median)"
            ;;
        esac
    done
    row "memory/daemon idle RSS kB" "$(mem crustd idle_rss_kb)" "$(mem containerd idle_rss_kb)"
    row "memory/daemon idle PSS kB" "$(mem crustd idle_pss_kb)" "$(mem containerd idle_pss_kb)"
    row "memory/daemon $HOLD_N pods RSS kB" "$(mem crustd loaded_rss_kb)" "$(mem containerd loaded_rss_kb)"
    row "memory/daemon $HOLD_N pods PSS kB" "$(mem crustd loaded_pss_kb)" "$(mem containerd loaded_pss_kb)"
    row "memory/helper process RSS kB" "$(mem crustd helper_rss_kb_mean)" "$(mem containerd helper_rss_kb_mean)"
    row "memory/helper process PSS kB" "$(mem crustd helper_pss_kb_mean)" "$(mem containerd helper_pss_kb_mean)"
    row "memory/helpers per pod RSS kB" "$(mem crustd helper_rss_kb_per_pod)" "$(mem containerd helper_rss_kb_per_pod)"
    row "memory/helpers per pod PSS kB" "$(mem crustd helper_pss_kb_per_pod)" "$(mem containerd helper_pss_kb_per_pod)"
    echo "(helpers: crust-monitor processes vs containerd-shim-runc-v2, mean per process and their sum over the pods;"
    echo " containerd's pause processes not counted; ratio crustd/containerd: below 1 is less time or memory, above 1 for MB/s is faster)"
    for key in $(printf '%s\n' "${!leaks[@]}" | sort); do
        echo "leaks after $key: ${leaks[$key]}"
    done
} | tee "$table"

"$bin/crustctl" bench chart --input "$results" --output "$OUT/bench-latency.svg" ||
    die "crustctl bench chart failed"
log "results in $results, table in $table, chart in $OUT/bench-latency.svg"
