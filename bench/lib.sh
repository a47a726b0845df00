# bench/lib.sh: what the side-by-side CRI benchmarks (bench/pods.sh, bench/containers.sh)
# share: preflight checks, the release build, the work directory and its cleanup traps, the
# CNI conflist both daemons use, the local registry (crust-testenv serve, pause image), starting
# and stopping crustd and containerd on temporary roots, leak checks, and reading crustctl
# bench's JSON. Sourced, not run; the sourcing script sets BENCH (its name, for messages)
# first and `set -euo pipefail` itself.
#
# State the functions share (globals): bin (where the binaries are), work (the work dir),
# registry/pause_image, daemon_pid/daemon_name/daemon_dir/SOCK (the daemon being measured),
# daemon_oci (the OCI runtime binary name containerd was given, for its leftover state),
# bench_pid (a crustctl bench in the background), registry_pid.

CNI_BIN=/usr/lib/cni
BRIDGE=crbench0
SUBNET=10.88.200.0/24
NETNS_DIR=/var/run/netns
TIMEOUT=${TIMEOUT:-60s}
CONTAINERD=${CONTAINERD:-$(command -v containerd || true)}
SKIP_BUILD=${SKIP_BUILD:-0}

log() { echo "$BENCH: $*" >&2; }
die() { log "$*"; exit 1; }

# Root, the CNI plugins, and a free bridge name and subnet. With $1 = 1, containerd and runc.
bench_preflight() {
    local want_containerd=${1:-0} plugin
    [ "$(id -u)" = 0 ] || die "run as root (pods need network namespaces, mounts and cgroups)"
    for plugin in bridge host-local portmap loopback; do
        [ -x "$CNI_BIN/$plugin" ] || die "$CNI_BIN/$plugin missing (apt-get install containernetworking-plugins)"
    done
    if [ "$want_containerd" = 1 ]; then
        [ -n "$CONTAINERD" ] && [ -x "$CONTAINERD" ] || die "containerd not found (apt-get install containerd)"
        command -v runc >/dev/null || die "runc not found (apt-get install runc)"
    fi
    ! ip link show "$BRIDGE" >/dev/null 2>&1 ||
        die "$BRIDGE exists already: another bench script is running, or a leftover (ip link del $BRIDGE)"
    [ -z "$(ip route show "$SUBNET")" ] || die "$SUBNET is routed already on this machine"
}

# Builds the release binaries of the packages named (crustctl, crust-testenv, …) unless
# SKIP_BUILD=1 or BIN_DIR is set, and sets `bin`; then checks that each binary in $need is there.
# Call from the repository root.
bench_build() {
    local b
    if [ -n "${BIN_DIR:-}" ]; then
        SKIP_BUILD=1
    fi
    if [ "$SKIP_BUILD" != 1 ]; then
        log "building release binaries ($*)"
        cargo build --release "$@" >&2
    fi
    bin=$(realpath "${BIN_DIR:-$PWD/target/release}")
    for b in "${need[@]}"; do
        [ -x "$bin/$b" ] || die "$bin/$b missing: run cargo build --release"
    done
}

# ---------------------------------------------------------------------------------------------
# Cleanup: everything started is recorded in the globals and undone on any exit.

# Makes the work directory (crust-bench-$1.XXXXXX) and installs the traps.
bench_init() {
    work=$(mktemp -d "${TMPDIR:-/tmp}/crust-bench-$1.XXXXXX")
    chmod 755 "$work"
    registry_pid=""
    registry=""
    pause_image=""
    bench_pid=""
    daemon_pid=""
    daemon_name=""
    daemon_dir=""
    daemon_oci=runc
    SOCK=""
    netns_before=$(ls -1 "$NETNS_DIR" 2>/dev/null | sort || true)
    # containerd 1.6 puts its shims' sockets under /run/containerd/s whatever its config says.
    run_containerd_existed=0
    [ -e /run/containerd ] && run_containerd_existed=1
    # containerd's CRI plugin puts pods in a cgroup k8s.io (cgroupfs driver) and leaves it behind.
    k8s_cgroups_before=$(ls -d /sys/fs/cgroup/k8s.io /sys/fs/cgroup/*/k8s.io 2>/dev/null || true)
    trap cleanup EXIT
    set -o errtrace
    trap 'log "command failed (line $LINENO): $BASH_COMMAND"' ERR
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# Mount points at or below $1, deepest first.
mounts_under() {
    findmnt -rn -o TARGET | awk -v d="$1" '$0 == d || index($0, d "/") == 1' | sort -r
}

# Unmount everything mounted at or below $1, deepest first.
umount_under() {
    local dir=$1 m
    [ -d "$dir" ] || return 0
    mounts_under "$dir" |
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

# The OCI runtime state directories of the current daemon, each as "BINARY DIR": containerd's
# (its runc options' Root, namespace k8s.io; run by $daemon_oci) and crustd's (one per handler
# under its runroot, named after the handler, which the scripts name after the binary).
oci_state_dirs() {
    local dir
    [ -n "$daemon_dir" ] || return 0
    [ -d "$daemon_dir/runc/k8s.io" ] && echo "$daemon_oci $daemon_dir/runc/k8s.io"
    for dir in "$daemon_dir"/run/runtime/*; do
        [ -d "$dir" ] && echo "$(basename "$dir") $dir"
    done
    return 0
}

# Containers the OCI runtimes still know of, one "BINARY DIR ID" a line.
oci_leftovers() {
    local oci dir c
    oci_state_dirs | while read -r oci dir; do
        for c in $("$oci" --root "$dir" list -q 2>/dev/null); do
            echo "$oci $dir $c"
        done
    done
}

stop_daemon() {
    local oci dir c
    if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null && [ -n "$SOCK" ]; then
        # Containers and pods a failed run left behind: remove them through CRI while it still
        # answers (rmp -f stops and removes a pod's containers too).
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
        # containerd's pause containers outlive it and their shims; the runtimes' state is
        # under the daemon's directory.
        oci_leftovers | while read -r oci dir c; do
            log "deleting leftover $oci container $c"
            "$oci" --root "$dir" delete --force "$c" 2>/dev/null || true
        done
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

# ---------------------------------------------------------------------------------------------
# The network both daemons use: bridge $BRIDGE, host-local $SUBNET (dataDir in the work dir),
# portmap, in $work/cni.
write_conflist() {
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
}

# Network leaks after a daemon's run, appended to the caller's `problems` array: IP
# reservations, namespaces, veths.
network_leaks() {
    local n
    n=$( (find "$work/cni-ipam" -type f ! -name 'last_reserved_ip*' ! -name lock 2>/dev/null || true) | wc -l)
    [ "$n" = 0 ] || problems+=("$n IP reservations left in the host-local dataDir")
    n=$(new_netns | wc -l)
    [ "$n" = 0 ] || problems+=("$n network namespaces left in $NETNS_DIR")
    n=$( (ip -o link show master "$BRIDGE" 2>/dev/null || true) | wc -l)
    [ "$n" = 0 ] || problems+=("$n veths left on $BRIDGE")
    return 0
}

# containerd's pod cgroups left under k8s.io, appended to `problems`.
k8s_cgroup_leaks() {
    local n
    n=$( (find /sys/fs/cgroup/k8s.io /sys/fs/cgroup/*/k8s.io -mindepth 1 -type d 2>/dev/null || true) | wc -l)
    [ "$n" = 0 ] || problems+=("$n pod cgroups left under k8s.io")
    return 0
}

# Every leak a run can leave, appended to `problems`: containers and pods still listed, mounts
# under the daemon's directory $1, OCI runtime state ($3, runc by default, names the runtime),
# network, and pod cgroups: containerd's under k8s.io when $2 is containerd, else crustd's
# under $CGROUP_PARENT when the script sets one.
cri_leaks() {
    local dir=$1 daemon=$2 rt=${3:-runc} n
    n=$("$bin/crustctl" -r "unix://$SOCK" --timeout 10s ps -aq | wc -l)
    [ "$n" = 0 ] || problems+=("$n containers still listed")
    n=$("$bin/crustctl" -r "unix://$SOCK" --timeout 10s pods -q | wc -l)
    [ "$n" = 0 ] || problems+=("$n pods still listed")
    n=$(mounts_under "$dir" | wc -l)
    [ "$n" = 0 ] || problems+=("$n mounts left under the daemon's directory")
    n=$(oci_leftovers | wc -l)
    [ "$n" = 0 ] || problems+=("$n containers left in $rt's state")
    network_leaks
    if [ "$daemon" = containerd ]; then
        k8s_cgroup_leaks
    elif [ -n "${CGROUP_PARENT:-}" ]; then
        n=$( (find $(parent_dirs) -mindepth 1 -type d 2>/dev/null || true) | wc -l)
        [ "$n" = 0 ] || problems+=("$n pod cgroups left under $CGROUP_PARENT")
    fi
    return 0
}

# The pods' cgroup parent $CGROUP_PARENT in every hierarchy (v1 controllers, named, unified).
parent_dirs() {
    ls -d "/sys/fs/cgroup$CGROUP_PARENT" /sys/fs/cgroup/*"$CGROUP_PARENT" 2>/dev/null || true
}

# Removes the parents' tree, deepest first. crustd removes the pod cgroups it made; kubelet,
# not containerd, would remove containerd's.
clean_parents() {
    local d
    for d in $(parent_dirs); do
        find "$d" -mindepth 1 -depth -type d -exec rmdir {} \; 2>/dev/null
        rmdir "$d" 2>/dev/null || log "could not remove cgroup $d"
    done
}

# a / b to two decimals, or "-" when either is missing or b is 0.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.2f", a / b }'; }

# ---------------------------------------------------------------------------------------------
# The local registry (crust-testenv serve: docker-registry on 127.0.0.1 with the standard test
# images) and containerd's pause image in it. Sets registry, pause_image; the standard images'
# references are the lines of $work/registry.out.
start_registry() {
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
}

# ---------------------------------------------------------------------------------------------
# Daemons. Each start_* leaves daemon_pid/SOCK set (the caller sets daemon_name/daemon_dir).

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

# crustd on $1 (root, runroot, socket and log in it); $2, optional, is more TOML for its
# config (e.g. [runtimes.X]). RUST_LOG, when set, reaches it.
start_crustd() {
    local d=$1 extra=${2:-}
    mkdir -p "$d/certs.d"
    cat >"$d/config.toml" <<EOF
[registry]
config_path = "$d/certs.d"

[network]
conf_dir = "$work/cni"
bin_dirs = ["$CNI_BIN"]
default_conflist = false
$extra
EOF
    NO_COLOR=1 "$bin/crustd" --listen "$d/crust.sock" --root "$d/root" --runroot "$d/run" \
        --config "$d/config.toml" >"$d/daemon.log" 2>&1 &
    daemon_pid=$!
    SOCK=$d/crust.sock
    wait_cri "$SOCK"
}

# containerd on $1 (root, state, socket, runtime state and log in it), CRI plugin, runc
# shim v2 with the OCI runtime binary $2 (default: runc from PATH), the local registry over
# plain HTTP, its pause image pulled before returning.
start_containerd() {
    local d=$1 binary=${2:-} binary_line=""
    [ -n "$binary" ] && binary_line="BinaryName = \"$binary\""
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
  $binary_line

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

# ---------------------------------------------------------------------------------------------
# crustctl bench's JSON

# A number from crustctl bench's JSON: field $2 of RPC $1's summary in file $3.
field() {
    sed -n "/\"rpc\": \"$1\"/,/\"samples_ms\"/ s/.*\"$2\": \([-0-9.e+]*\).*/\1/p" "$3" | head -n 1
}

# The samples (ms) of RPC $1 in the JSON files $2…, one a line.
samples() {
    local rpc=$1
    shift
    awk -v rpc="\"rpc\": \"$rpc\"" '
        index($0, rpc) { inside = 1 }
        inside && /"samples_ms"/ { taking = 1; sub(/.*\[/, "") }
        taking {
            done = index($0, "]")
            gsub(/[],[[:space:]]/, " ")
            n = split($0, v, " ")
            for (i = 1; i <= n; i++) print v[i]
            if (done) { taking = 0; inside = 0 }
        }' "$@"
}

# "median p99" (nearest rank; the median of an even count is the mean of the middle two) of
# the numbers on stdin, or "- -" when there are none.
median_p99() {
    sort -g | awk '
        { v[NR] = $1 }
        END {
            if (NR == 0) { print "- -"; exit }
            med = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
            r = int((99 * NR + 99) / 100)
            printf "%.3f %.3f\n", med, v[r]
        }'
}
