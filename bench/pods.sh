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
TIMEOUT=${TIMEOUT:-60s}
CONTAINERD=${CONTAINERD:-$(command -v containerd || true)}
SKIP_BUILD=${SKIP_BUILD:-0}
CNI_BIN=/usr/lib/cni
BRIDGE=crbench0
SUBNET=10.88.200.0/24
NETNS_DIR=/var/run/netns

log() { echo "pods.sh: $*" >&2; }
die() { log "$*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (pods need network namespaces, mounts and cgroups)"
[[ $COUNT =~ ^[1-9][0-9]*$ ]] || die "N must be a positive integer, got '$COUNT'"
for dmn in $DAEMONS; do
    case $dmn in crustd | containerd) ;; *) die "DAEMONS: unknown daemon '$dmn'" ;; esac
done
for plugin in bridge host-local portmap loopback; do
    [ -x "$CNI_BIN/$plugin" ] || die "$CNI_BIN/$plugin missing (apt-get install containernetworking-plugins)"
done
if [[ " $DAEMONS " == *" containerd "* ]]; then
    [ -n "$CONTAINERD" ] && [ -x "$CONTAINERD" ] || die "containerd not found (apt-get install containerd)"
    command -v runc >/dev/null || die "runc not found (apt-get install runc)"
fi
! ip link show "$BRIDGE" >/dev/null 2>&1 ||
    die "$BRIDGE exists already: another bench/pods.sh is running, or a leftover (ip link del $BRIDGE)"
[ -z "$(ip route show "$SUBNET")" ] || die "$SUBNET is routed already on this machine"

cd "$(dirname "$0")/.."
if [ -n "${BIN_DIR:-}" ]; then
    SKIP_BUILD=1
fi
if [ "$SKIP_BUILD" != 1 ]; then
    packages=(-p crustctl -p crust-testenv)
    if [[ " $DAEMONS " == *" crustd "* ]]; then packages+=(-p crustd -p crust-monitor); fi
    log "building release binaries (${packages[*]})"
    cargo build --release "${packages[@]}" >&2
fi
bin=$(realpath "${BIN_DIR:-$PWD/target/release}")
need=(crustctl crust-testenv)
if [[ " $DAEMONS " == *" crustd "* ]]; then need+=(crustd crust-monitor); fi
for b in "${need[@]}"; do
    [ -x "$bin/$b" ] || die "$bin/$b missing: run cargo build --release"
done

# ---------------------------------------------------------------------------------------------
# Cleanup: everything started is recorded here and undone on any exit.
work=$(mktemp -d "${TMPDIR:-/tmp}/crust-bench-pods.XXXXXX")
chmod 755 "$work"
registry_pid=""
bench_pid=""
daemon_pid=""
daemon_name=""
daemon_dir=""
SOCK=""
netns_before=$(ls -1 "$NETNS_DIR" 2>/dev/null | sort || true)
# containerd 1.6 puts its shims' sockets under /run/containerd/s whatever its config says.
run_containerd_existed=0
[ -e /run/containerd ] && run_containerd_existed=1
# containerd's CRI plugin puts pods in a cgroup k8s.io (cgroupfs driver) and leaves it behind.
k8s_cgroups_before=$(ls -d /sys/fs/cgroup/k8s.io /sys/fs/cgroup/*/k8s.io 2>/dev/null || true)

# Unmount everything mounted at or below $1, deepest first.
umount_under() {
    local dir=$1 m
    [ -d "$dir" ] || return 0
    findmnt -rn -o TARGET | awk -v d="$dir" '$0 == d || index($0, d "/") == 1' | sort -r |
        while read -r m; do
            umount "$m" 2>/dev/null || umount -l "$m" || log "could not unmount $m"
        done
}

# SIGTERM $1, wait up to $2 seconds, then SIGKILL.
stop_pid() {
    local pid=$1 grace=${2:-30} i
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < grace * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "pid $pid did not stop within ${grace}s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

# SIGKILL, by PID, each process whose command line names the work directory: containerd's
# shims (-address $work/...), crustd's pod monitors. Only this run's daemons start those.
kill_leftovers() {
    local p pid cmd
    for p in /proc/[0-9]*; do
        pid=${p#/proc/}
        [ "$pid" = $$ ] && continue
        cmd=$(tr '\0' ' ' 2>/dev/null <"$p/cmdline") || continue
        if [[ $cmd == *"$work"* ]]; then
            log "killing leftover process $pid: $cmd"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
}

# Network namespaces in /var/run/netns that were not there when the script started (containerd
# pins its pods' namespaces there).
new_netns() {
    comm -13 <(printf '%s\n' "$netns_before") <(ls -1 "$NETNS_DIR" 2>/dev/null | sort) | sed '/^$/d'
}

stop_daemon() {
    local c
    if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null && [ -n "$SOCK" ]; then
        # Pods a failed run left behind: stop and remove them through CRI while it still answers.
        if [ -n "$("$bin/crustctl" -r "unix://$SOCK" --timeout 10s pods -q 2>/dev/null)" ]; then
            log "removing the pods $daemon_name still has"
            "$bin/crustctl" -r "unix://$SOCK" --timeout "$TIMEOUT" rmp -fa >/dev/null 2>&1 ||
                log "rmp -fa on $daemon_name failed"
        fi
    fi
    if [ -n "$daemon_pid" ]; then
        stop_pid "$daemon_pid" 30
        daemon_pid=""
    fi
    if [ -n "$daemon_dir" ]; then
        # containerd's pause containers outlive it and their shims; runc's state is under $d.
        if [ -d "$daemon_dir/runc/k8s.io" ]; then
            for c in $(runc --root "$daemon_dir/runc/k8s.io" list -q 2>/dev/null); do
                log "deleting leftover runc container $c"
                runc --root "$daemon_dir/runc/k8s.io" delete --force "$c" 2>/dev/null || true
            done
        fi
        kill_leftovers
        umount_under "$daemon_dir"
        rm -rf "$daemon_dir"
        daemon_dir=""
    fi
    SOCK=""
}

# Network leftovers: namespaces this run made, the bridge (its veths go with the namespaces).
clean_network() {
    local ns
    for ns in $(new_netns); do
        log "deleting leftover network namespace $ns"
        umount "$NETNS_DIR/$ns" 2>/dev/null || umount -l "$NETNS_DIR/$ns" 2>/dev/null || true
        rm -f "$NETNS_DIR/$ns"
    done
    ip link del "$BRIDGE" 2>/dev/null || true
    rm -rf "$work/cni-ipam"
    if [ "$run_containerd_existed" = 0 ]; then
        rmdir /run/containerd/s /run/containerd 2>/dev/null || true
    fi
}

# containerd's k8s.io cgroups, where this run made them (pods' cgroups below them first).
clean_k8s_cgroups() {
    local d
    for d in /sys/fs/cgroup/k8s.io /sys/fs/cgroup/*/k8s.io; do
        [ -d "$d" ] || continue
        grep -qxF "$d" <<<"$k8s_cgroups_before" && continue
        find "$d" -mindepth 1 -depth -type d -exec rmdir {} \; 2>/dev/null
        rmdir "$d" 2>/dev/null || log "could not remove cgroup $d"
    done
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM ERR
    set +e
    if [ "$rc" != 0 ] && [ "$rc" != 130 ] && [ "$rc" != 143 ] && [ -n "$daemon_dir" ] && [ -f "$daemon_dir/daemon.log" ]; then
        log "failed during the $daemon_name run; last lines of its log:"
        grep -v "^ *\(at \|[0-9]*: \)" "$daemon_dir/daemon.log" | tail -n 30 >&2
    fi
    if [ -n "$bench_pid" ]; then
        stop_pid "$bench_pid" 10
    fi
    stop_daemon
    kill_leftovers
    clean_network
    clean_k8s_cgroups
    if [ -n "$registry_pid" ]; then
        stop_pid "$registry_pid" 30
    fi
    umount_under "$work"
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT
set -o errtrace
trap 'log "command failed (line $LINENO): $BASH_COMMAND"' ERR
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------------
# The network both daemons use, and the pod they run N times
mkdir -p "$work/cni"
cat >"$work/cni/10-crbench.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "crbench",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$SUBNET"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "$work/cni-ipam"
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
cat >"$work/pod.json" <<EOF
{
  "metadata": {"name": "bench", "namespace": "crust-bench"},
  "linux": {}
}
EOF

# ---------------------------------------------------------------------------------------------
# Registry with the pause image (containerd only)
registry=""
pause_image=""
if [[ " $DAEMONS " == *" containerd "* ]]; then
    log "starting crust-testenv serve"
    "$bin/crust-testenv" serve >"$work/registry.out" 2>"$work/registry.err" &
    registry_pid=$!
    for _ in $(seq 600); do
        registry=$(sed -n 's/^registry: //p' "$work/registry.out")
        [ -n "$registry" ] && break
        kill -0 "$registry_pid" 2>/dev/null || break
        sleep 0.1
    done
    if [ -z "$registry" ]; then
        cat "$work/registry.out" "$work/registry.err" >&2
        die "test registry did not start"
    fi
    pause_image=$("$bin/crust-testenv" push-pause --registry "$registry" --name crust/pause:latest) ||
        die "push-pause failed"
    log "registry on $registry, pause image $pause_image"
fi

# ---------------------------------------------------------------------------------------------
# Daemons. Each start_* leaves daemon_pid/daemon_dir/SOCK set.

# Wait until a CRI runtime answers on socket $1.
wait_cri() {
    local sock=$1 i
    for ((i = 0; i < 600; i++)); do
        kill -0 "$daemon_pid" 2>/dev/null || die "$daemon_name exited during start-up"
        if [ -S "$sock" ] && "$bin/crustctl" -r "unix://$sock" --timeout 2s version >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.1
    done
    die "$daemon_name did not answer on $sock within 60s"
}

start_crustd() {
    local d=$1
    mkdir -p "$d/certs.d"
    cat >"$d/config.toml" <<EOF
[registry]
config_path = "$d/certs.d"

[network]
conf_dir = "$work/cni"
bin_dirs = ["$CNI_BIN"]
default_conflist = false
EOF
    NO_COLOR=1 "$bin/crustd" --listen "$d/crust.sock" --root "$d/root" --runroot "$d/run" \
        --config "$d/config.toml" >"$d/daemon.log" 2>&1 &
    daemon_pid=$!
    SOCK=$d/crust.sock
    wait_cri "$SOCK"
}

start_containerd() {
    local d=$1
    mkdir -p "$d/certs.d/$registry" "$d/tmp"
    cat >"$d/certs.d/$registry/hosts.toml" <<EOF
server = "http://$registry"

[host."http://$registry"]
  capabilities = ["pull", "resolve"]
EOF
    cat >"$d/config.toml" <<EOF
version = 2
root = "$d/root"
state = "$d/state"
disabled_plugins = [
  "io.containerd.internal.v1.opt",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs",
]

[grpc]
  address = "$d/containerd.sock"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$pause_image"
  restrict_oom_score_adj = true

[plugins."io.containerd.grpc.v1.cri".containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
  SystemdCgroup = false
  Root = "$d/runc"

[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = "$CNI_BIN"
  conf_dir = "$work/cni"

[plugins."io.containerd.grpc.v1.cri".registry]
  config_path = "$d/certs.d"
EOF
    TMPDIR=$d/tmp XDG_RUNTIME_DIR=$d/tmp "$CONTAINERD" --config "$d/config.toml" >"$d/daemon.log" 2>&1 &
    daemon_pid=$!
    SOCK=$d/containerd.sock
    wait_cri "$SOCK"
    "$bin/crustctl" -r "unix://$SOCK" --timeout 120s pull "$pause_image" >/dev/null ||
        die "containerd could not pull its pause image $pause_image"
}

# A number from crustctl bench's JSON: field $2 of RPC $1's summary in file $3.
field() {
    sed -n "/\"rpc\": \"$1\"/,/\"samples_ms\"/ s/.*\"$2\": \([-0-9.e+]*\).*/\1/p" "$3" | head -n 1
}

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

    # Leaks: pods, IP reservations, namespaces, veths.
    n=$("$bin/crustctl" -r "unix://$SOCK" --timeout 10s pods -q | wc -l)
    [ "$n" = 0 ] || problems+=("$n pods still listed")
    n=$( (find "$work/cni-ipam" -type f ! -name 'last_reserved_ip*' ! -name lock 2>/dev/null || true) | wc -l)
    [ "$n" = 0 ] || problems+=("$n IP reservations left in the host-local dataDir")
    n=$(new_netns | wc -l)
    [ "$n" = 0 ] || problems+=("$n network namespaces left in $NETNS_DIR")
    n=$( (ip -o link show master "$BRIDGE" 2>/dev/null || true) | wc -l)
    [ "$n" = 0 ] || problems+=("$n veths left on $BRIDGE")
    if [ "$dmn" = containerd ]; then
        n=$( (find /sys/fs/cgroup/k8s.io /sys/fs/cgroup/*/k8s.io -mindepth 1 -type d 2>/dev/null || true) | wc -l)
        [ "$n" = 0 ] || problems+=("$n pod cgroups left under k8s.io")
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
