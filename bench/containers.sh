#!/usr/bin/env bash
# bench/containers.sh: container create/start/exec/stop/remove latency of crustd against
# Debian's containerd (CRI plugin), with runc and with crun, on this machine, in one run.
#
# What it measures
#   For each OCI runtime in RUNTIMES and each of ROUNDS rounds, crustd and then containerd
#   (interleaved: crustd, containerd, crustd, containerd…), each started fresh on an empty
#   temporary root with that runtime as its only/default one, run `crustctl bench containers`:
#   one pod (untimed), then N containers (default 50) one after another in it, each
#   CreateContainer + StartContainer ("create+start", and each alone), one ExecSync `true`,
#   StopContainer with timeout 0 and RemoveContainer, every RPC timed on the client. The
#   container runs `sleep 3600` in the standard busybox test image (crust-testenv serve,
#   pulled before the timing). crustctl checks that each container is RUNNING after its start
#   and EXITED after its stop and that the exec exits 0. The script pools the samples of all
#   rounds and prints, per operation and runtime, both daemons' median and p99 and the
#   crustd/containerd ratio of the medians.
#
#   crustd: `[runtimes.RT] path = <RT from PATH>`, `[runtime] default_handler = "RT"`.
#   containerd: CRI plugin, runtime `runc` of type io.containerd.runc.v2 with, for crun,
#   `BinaryName = "/usr/bin/crun"`; cgroupfs (SystemdCgroup = false), overlayfs snapshotter,
#   restrict_oom_score_adj = true, its sandbox_image (busybox running `sleep infinity`,
#   crust-testenv push-pause) from the local registry. If containerd with crun fails, the
#   script says why and goes on without it.
#   Both daemons get the same CNI network as in bench/pods.sh (bridge crbench0, host-local
#   10.88.200.0/24, portmap). crun 1.8 needs scripts/node-setup.sh first (hugetlb cgroup v1
#   mount on a hybrid host); the script runs it.
#
#   After each daemon's run the script looks for leaks: containers or pods still listed,
#   mounts left under the daemon's directory, containers the OCI runtime still has state of,
#   IP reservations, network namespaces, veths (and containerd's pod cgroups).
#
# Reproduce (as root, Debian 12 with containerd, runc, crun, containernetworking-plugins and
# docker-registry installed, e.g. by scripts/install-deps.sh):
#   bench/containers.sh              # build, 50 containers per daemon and round, 2 rounds
#   bench/containers.sh 200          # N containers
#   bench/containers.sh -o json 50   # or JSON=1: also print a JSON summary at the end
#   RUNTIMES=crun ROUNDS=3 bench/containers.sh
#
# Environment: RUNTIMES ("runc crun"), ROUNDS (2), JSON (0), TIMEOUT (per-RPC deadline, 60s),
# SECCOMP (unconfined: the profile type kubelet sends for a pod that names none; or
# runtime-default, what kubelet --seccomp-default sends; both daemons get the same),
# CONTAINERD (containerd from PATH), SKIP_BUILD (0: `cargo build --release` the binaries first),
# BIN_DIR (take crustd, crust-monitor, crustctl and crust-testenv from there, unbuilt; default
# target/release), TMPDIR (where the work directory is made; /tmp), RUST_LOG (crustd's).
# The set-up it shares with bench/pods.sh is in bench/lib.sh. Everything the script starts
# (registry, daemons, shims, monitors, containers, network namespaces, the crbench0 bridge,
# mounts and temp dirs) is cleaned up on exit, also on failure or Ctrl-C.
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
        [ "${2:-}" = json ] || { echo "containers.sh: -o takes json" >&2; exit 2; }
        JSON=1
        shift 2
        ;;
    -o=json | --output=json) JSON=1; shift ;;
    -h | --help) usage 0 ;;
    [0-9]*) COUNT=$1; shift ;;
    *) echo "containers.sh: unknown argument $1" >&2; usage 2 >&2 ;;
    esac
done

RUNTIMES=${RUNTIMES:-runc crun}
ROUNDS=${ROUNDS:-2}
SECCOMP=${SECCOMP:-unconfined}
case $SECCOMP in unconfined | runtime-default) ;; *) echo "containers.sh: SECCOMP is unconfined or runtime-default" >&2; exit 2 ;; esac
BENCH=containers.sh
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

[[ $COUNT =~ ^[1-9][0-9]*$ ]] || die "N must be a positive integer, got '$COUNT'"
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer, got '$ROUNDS'"
declare -A oci_path
for rt in $RUNTIMES; do
    case $rt in runc | crun) ;; *) die "RUNTIMES: unknown OCI runtime '$rt' (runc, crun)" ;; esac
    oci_path[$rt]=$(command -v "$rt") || die "$rt not found (apt-get install $rt)"
done
bench_preflight 1

cd "$(dirname "$0")/.."
need=(crustctl crust-testenv crustd crust-monitor)
bench_build -p crustctl -p crust-testenv -p crustd -p crust-monitor
if [[ " $RUNTIMES " == *" crun "* ]]; then
    bash scripts/node-setup.sh >&2
fi

bench_init containers
write_conflist
start_registry
image=$(grep -m1 '/crust/busybox:latest$' "$work/registry.out") ||
    die "crust-testenv serve pushed no crust/busybox:latest"
log "container image $image"

OPS=(create+start CreateContainer StartContainer ExecSync StopContainer RemoveContainer)

declare -A leaks skipped
# One run: daemon $1 (crustd, containerd) with OCI runtime $2, round $3. Returns 1 when
# containerd with crun fails (recorded in skipped[crun]); any other failure ends the script.
measure() {
    local dmn=$1 rt=$2 round=$3 key=$1-$2-$3 d=$work/$1-$2-$3 problems=() n why
    local out=$work/$key.json
    daemon_name="$dmn ($rt)"
    daemon_dir=$d
    daemon_oci=$rt
    mkdir -p "$d"
    case $dmn in
    crustd)
        start_crustd "$d" "
[runtimes.$rt]
path = \"${oci_path[$rt]}\"

[runtime]
default_handler = \"$rt\""
        ;;
    containerd)
        if [ "$rt" = runc ]; then start_containerd "$d"; else start_containerd "$d" "${oci_path[$rt]}"; fi
        ;;
    esac
    log "$dmn with $rt, round $round: $COUNT containers"
    # In the background, so that a signal to this script is handled at once, not after the bench.
    "$bin/crustctl" -r "unix://$SOCK" --timeout "$TIMEOUT" bench containers --count "$COUNT" \
        --image "$image" --seccomp "$SECCOMP" -o json >"$out" 2>"$d/bench.err" &
    bench_pid=$!
    if ! wait "$bench_pid"; then
        bench_pid=""
        why=$(tail -n 3 "$d/bench.err" | tr '\n' ' ')
        if [ "$dmn" = containerd ] && [ "$rt" = crun ]; then
            skipped[$rt]="crustctl bench containers failed: $why"
            log "containerd with crun does not work here, going on without it: $why"
            log "last lines of containerd's log:"
            grep -v "^ *\(at \|[0-9]*: \)" "$d/daemon.log" | tail -n 10 >&2
            rm -f "$out"
            stop_daemon
            clean_network
            return 1
        fi
        cat "$d/bench.err" >&2
        die "$dmn with $rt: crustctl bench containers failed"
    fi
    bench_pid=""

    # Leaks: containers, pods, mounts, OCI runtime state, network, cgroups.
    cri_leaks "$d" "$dmn" "$rt"
    if [ ${#problems[@]} = 0 ]; then
        leaks[$key]=none
    else
        leaks[$key]=$(IFS=';'; echo "${problems[*]}")
        log "$dmn with $rt, round $round leaked: ${leaks[$key]}"
    fi

    stop_daemon
    clean_network # the next daemon starts without bridge, namespaces or reservations
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for rt in $RUNTIMES; do
    for ((round = 1; round <= ROUNDS; round++)); do
        measure crustd "$rt" "$round"
        if [ -z "${skipped[$rt]:-}" ]; then
            measure containerd "$rt" "$round" || true
        fi
    done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------------------------------------
# Figures: the samples of all rounds pooled per daemon, runtime and operation.
runs() { ls "$work/$1-$2-"*.json 2>/dev/null || true; }
stat_of() { # daemon runtime op -> "median p99"
    local files
    mapfile -t files < <(runs "$1" "$2")
    if [ ${#files[@]} = 0 ]; then echo "- -"; else samples "$3" "${files[@]}" | median_p99; fi
}

kernel=$(uname -r)
ncpu=$(nproc)
echo
echo "Containers through CRI, one pod, $COUNT containers one after another per run, $ROUNDS rounds:"
echo "  CreateContainer + StartContainer, ExecSync true, StopContainer (timeout 0), RemoveContainer"
echo "  machine:    $ncpu CPUs, $(awk '/MemTotal/ { printf "%.1f GiB RAM", $2 / 1048576 }' /proc/meminfo), kernel $kernel"
echo "  containerd: $("$CONTAINERD" --version) (CRI plugin, runc shim v2, pause image $pause_image)"
echo "  crustd:     $("$bin/crustd" --version)"
echo "  runc:       $(runc --version | sed -n '1s/runc version //p'); crun: $(crun --version | sed -n '1s/crun version //p')"
echo "  image:      $image (command sleep 3600)"
echo "  load avg:   $load_before before, $load_after after"
echo
printf '%-16s %-5s %12s %12s %12s %12s %9s\n' operation OCI "crustd med" "crustd p99" "ctrd med" "ctrd p99" "ratio"
declare -A med
for rt in $RUNTIMES; do
    for op in "${OPS[@]}"; do
        read -r c_med c_p99 <<<"$(stat_of crustd "$rt" "$op")"
        read -r k_med k_p99 <<<"$(stat_of containerd "$rt" "$op")"
        med[crustd-$rt-$op]=$c_med
        med[containerd-$rt-$op]=$k_med
        printf '%-16s %-5s %12s %12s %12s %12s %9s\n' "$op" "$rt" "$c_med" "$c_p99" "$k_med" "$k_p99" \
            "$(ratio "$c_med" "$k_med")"
    done
done
echo "(milliseconds; ratio = crustd median / containerd median, below 1 is crustd faster)"
echo
echo "create+start median per run:"
for rt in $RUNTIMES; do
    for dmn in crustd containerd; do
        line=""
        for f in $(runs "$dmn" "$rt"); do
            line+=" $(field create+start median_ms "$f")"
        done
        echo "  $dmn with $rt:${line:- (none)}"
    done
done
echo
echo "leaks after each run:"
for key in $(printf '%s\n' "${!leaks[@]}" | sort); do
    echo "  $key: ${leaks[$key]}"
done
for rt in "${!skipped[@]}"; do
    echo "containerd with $rt was left out: ${skipped[$rt]}"
done

if [ "$JSON" = 1 ]; then
    echo "{"
    echo "  \"machine\": {\"nproc\": $ncpu, \"kernel\": \"$kernel\", \"loadavg_before\": \"$load_before\", \"loadavg_after\": \"$load_after\"},"
    echo "  \"count\": $COUNT, \"rounds\": $ROUNDS, \"image\": \"$image\","
    echo "  \"medians_ms\": {"
    sep=""
    for key in $(printf '%s\n' "${!med[@]}" | sort); do
        v=${med[$key]}
        [ "$v" = - ] && v=null
        printf '%s    "%s": %s' "$sep" "$key" "$v"
        sep=$',\n'
    done
    echo
    echo "  }"
    echo "}"
fi
