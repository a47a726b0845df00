#!/usr/bin/env bash
# bench/pull.sh: image pull-and-unpack speed of crustd against Debian's containerd (CRI plugin),
# on this machine, in one run.
#
# What it measures
#   A local docker-registry (crust-testenv serve, 127.0.0.1 only) gets one big image of
#   incompressible gzip layers (crust-testenv push-big; default 12 layers x 20 MiB). Then, for
#   RUNS rounds, each daemon is started FRESH on an empty temporary root (nothing cached), the
#   image is pulled through CRI with `crustctl pull` (crictl-compatible; it talks CRI to
#   containerd as well), and the wall-clock time of that one pull command is recorded. Both
#   daemons download, verify and unpack every layer before PullImage returns: crustd streams
#   each layer straight into its unpacked directory; containerd's CRI plugin writes the
#   compressed blob to its content store, then unpacks it into the overlayfs snapshotter.
#   Rounds alternate which daemon goes first. After each pull the image must be listed by
#   `crustctl images`, so a failed pull is never timed as a fast one. The daemon is then
#   stopped, whatever is mounted under its root is unmounted and the root deleted.
#
#   Secondary figure "pull+sync": the pull time plus a `sync(1)` right after it, so that data
#   a daemon left in the page cache (crustd does not fsync; containerd fsyncs content blobs)
#   is counted too. sync flushes the whole machine, so this one is noisier.
#
# Reproduce (as root, Debian 12 with containerd, runc and docker-registry installed, e.g. by
# scripts/install-deps.sh):
#   bench/pull.sh                      # build, run 5 rounds of 12 x 20 MiB, print a table
#   RUNS=9 LAYERS=16 BYTES_PER_LAYER=$((32<<20)) bench/pull.sh
#   bench/pull.sh -o json              # or JSON=1: also print a JSON summary at the end
#
# Environment: RUNS (5), LAYERS (12), BYTES_PER_LAYER (20971520), JSON (0), CONTAINERD
# (containerd from PATH), SKIP_BUILD (0: run `cargo build --release --bins` first),
# TMPDIR (where the work directory is made; /tmp).
# Everything the script starts (registry, daemons, temp dirs, mounts under them) is cleaned up
# on exit, also on failure or Ctrl-C.
set -euo pipefail

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit "${1:-0}"
}

JSON=${JSON:-0}
while [ $# -gt 0 ]; do
    case $1 in
    -o | --output)
        [ "${2:-}" = json ] || { echo "pull.sh: -o takes json" >&2; exit 2; }
        JSON=1
        shift 2
        ;;
    -o=json | --output=json) JSON=1; shift ;;
    -h | --help) usage 0 ;;
    *) echo "pull.sh: unknown argument $1" >&2; usage 2 >&2 ;;
    esac
done

RUNS=${RUNS:-5}
LAYERS=${LAYERS:-12}
BYTES_PER_LAYER=${BYTES_PER_LAYER:-$((20 * 1024 * 1024))}
CONTAINERD=${CONTAINERD:-$(command -v containerd || true)}
SKIP_BUILD=${SKIP_BUILD:-0}
IMAGE_NAME=bench/big
PULL_TIMEOUT=900s

log() { echo "pull.sh: $*" >&2; }
die() { log "$*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (containerd and its overlayfs snapshotter need it)"
[ -n "$CONTAINERD" ] && [ -x "$CONTAINERD" ] || die "containerd not found (apt-get install containerd)"
for v in RUNS LAYERS BYTES_PER_LAYER; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer, got '${!v}'"
done
if [ "$LAYERS" -lt 10 ] || [ $((LAYERS * BYTES_PER_LAYER)) -lt $((200 * 1000 * 1000)) ]; then
    log "warning: image smaller than the benchmark's standard (>= 10 layers, >= 200 MB)"
fi

cd "$(dirname "$0")/.."
if [ "$SKIP_BUILD" != 1 ]; then
    log "building release binaries"
    cargo build --release --bins >&2
fi
bin=$PWD/target/release
for b in crustd crustctl crust-testenv; do
    [ -x "$bin/$b" ] || die "$bin/$b missing: run cargo build --release --bins"
done

# ---------------------------------------------------------------------------------------------
# Cleanup: everything started is recorded here and undone on any exit.
work=$(mktemp -d "${TMPDIR:-/tmp}/crust-bench-pull.XXXXXX")
registry_pid=""
daemon_pid=""
daemon_name=""
daemon_dir=""

# Unmount everything mounted at or below $1, deepest first.
umount_under() {
    local dir=$1 m
    [ -d "$dir" ] || return 0
    findmnt -rn -o TARGET | awk -v d="$dir" '$0 == d || index($0, d "/") == 1' | sort -r |
        while read -r m; do
            log "unmounting leftover mount $m"
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

stop_daemon() {
    if [ -n "$daemon_pid" ]; then
        stop_pid "$daemon_pid" 30
        daemon_pid=""
    fi
    if [ -n "$daemon_dir" ]; then
        umount_under "$daemon_dir"
        rm -rf "$daemon_dir"
        daemon_dir=""
    fi
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    if [ "$rc" != 0 ] && [ "$rc" != 130 ] && [ "$rc" != 143 ] && [ -n "$daemon_dir" ] && [ -f "$daemon_dir/daemon.log" ]; then
        log "failed during a $daemon_name run; last lines of its log:"
        tail -n 30 "$daemon_dir/daemon.log" >&2
    fi
    stop_daemon
    if [ -n "$registry_pid" ]; then
        stop_pid "$registry_pid" 30
    fi
    umount_under "$work"
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

now() { date +%s.%N; }
# seconds between two `date +%s.%N` stamps, 3 decimals
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

# ---------------------------------------------------------------------------------------------
# Registry and the big image
log "starting crust-testenv serve"
"$bin/crust-testenv" serve >"$work/registry.out" 2>"$work/registry.err" &
registry_pid=$!
registry=""
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
log "registry on $registry; pushing $LAYERS layers x $BYTES_PER_LAYER bytes"

"$bin/crust-testenv" push-big --registry "$registry" --name "$IMAGE_NAME:latest" \
    --layers "$LAYERS" --bytes-per-layer "$BYTES_PER_LAYER" >"$work/push.out" 2>"$work/push.err" ||
    { cat "$work/push.out" "$work/push.err" >&2; die "push-big failed"; }
image="$registry/$IMAGE_NAME:latest"
image_size=$(sed -n 's/^size: //p' "$work/push.out")
[ -n "$image_size" ] || { cat "$work/push.out" >&2; die "push-big printed no size"; }
log "pushed $image ($image_size bytes compressed; $(cat "$work/push.err"))"

# ---------------------------------------------------------------------------------------------
# Daemons. Each start_* leaves daemon_pid/daemon_dir set and prints the CRI socket path.

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
EOF
    "$bin/crustd" --listen "$d/crust.sock" --root "$d/root" --runroot "$d/run" \
        --config "$d/config.toml" >"$d/daemon.log" 2>&1 &
    daemon_pid=$!
    wait_cri "$d/crust.sock"
    SOCK=$d/crust.sock
}

start_containerd() {
    local d=$1
    mkdir -p "$d/certs.d/$registry" "$d/cni/conf" "$d/cni/bin" "$d/tmp"
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

[plugins."io.containerd.grpc.v1.cri".containerd]
  snapshotter = "overlayfs"

[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = "$d/cni/bin"
  conf_dir = "$d/cni/conf"

[plugins."io.containerd.grpc.v1.cri".registry]
  config_path = "$d/certs.d"
EOF
    # TMPDIR/XDG_RUNTIME_DIR: containerd's temporary mounts (used to apply a layer onto a
    # bind-mounted snapshot) land under $d, where the cleanup looks for leftovers.
    TMPDIR=$d/tmp XDG_RUNTIME_DIR=$d/tmp "$CONTAINERD" --config "$d/config.toml" >"$d/daemon.log" 2>&1 &
    daemon_pid=$!
    wait_cri "$d/containerd.sock"
    SOCK=$d/containerd.sock
}

# CPU seconds (user + system, threads included) the daemon has used since it started.
cpu_seconds() {
    awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / hz }' "/proc/$1/stat"
}

# One measured pull. Sets PULL_S, PULL_SYNC_S, CPU_S, DISK_B.
measure() {
    local daemon=$1 round=$2 t0 t1 t2
    daemon_name=$daemon
    daemon_dir=$work/$daemon-$round
    mkdir -p "$daemon_dir"
    sync # do not let the previous run's writeback land in this one
    "start_$daemon" "$daemon_dir"

    t0=$(now)
    "$bin/crustctl" -r "unix://$SOCK" --timeout "$PULL_TIMEOUT" pull "$image" >"$daemon_dir/pull.out" 2>&1 ||
        { cat "$daemon_dir/pull.out" >&2; die "$daemon: pull of $image failed"; }
    t1=$(now)
    CPU_S=$(cpu_seconds "$daemon_pid")
    sync
    t2=$(now)

    "$bin/crustctl" -r "unix://$SOCK" --timeout 30s images -o json >"$daemon_dir/images.json" ||
        die "$daemon: crustctl images failed"
    grep -q "\"$image\"" "$daemon_dir/images.json" ||
        { cat "$daemon_dir/images.json" >&2; die "$daemon: $image not listed after the pull"; }

    PULL_S=$(elapsed "$t0" "$t1")
    PULL_SYNC_S=$(elapsed "$t0" "$t2")
    DISK_B=$(du -sbx "$daemon_dir/root" | cut -f1)
    log "round $round $daemon: pull ${PULL_S}s, pull+sync ${PULL_SYNC_S}s, daemon CPU ${CPU_S}s, root $((DISK_B / 1000000)) MB on disk"
    if grep -qiE 'level=(error|fatal)' "$daemon_dir/daemon.log" 2>/dev/null &&
        [ "$daemon" = containerd ]; then
        grep -iE 'level=(error|fatal)' "$daemon_dir/daemon.log" | grep -v 'failed to load cni' | sed 's/^/  containerd log: /' >&2 || true
    fi
    stop_daemon
}

# ---------------------------------------------------------------------------------------------
# Rounds, alternating which daemon goes first
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
declare -A pull sync_t cpu disk
for ((r = 1; r <= RUNS; r++)); do
    if ((r % 2)); then order=(crustd containerd); else order=(containerd crustd); fi
    for dmn in "${order[@]}"; do
        measure "$dmn" "$r"
        pull[$dmn,$r]=$PULL_S
        sync_t[$dmn,$r]=$PULL_SYNC_S
        cpu[$dmn,$r]=$CPU_S
        disk[$dmn,$r]=$DISK_B
    done
done

# ---------------------------------------------------------------------------------------------
# Figures
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) printf "%.3f", v[(NR + 1) / 2]; else printf "%.3f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
series() { local k=$1 d=$2 r; for ((r = 1; r <= RUNS; r++)); do eval "echo \${$k[\$d,\$r]}"; done; }
div() { awk -v a="$1" -v b="$2" -v f="${3:-%.2f}" 'BEGIN { printf f, a / b }'; }
mbps() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.1f", n / s / 1e6 }'; } # bytes, seconds -> MB/s

c_med=$(median $(series pull crustd))
k_med=$(median $(series pull containerd))
c_smed=$(median $(series sync_t crustd))
k_smed=$(median $(series sync_t containerd))
c_cpu=$(median $(series cpu crustd))
k_cpu=$(median $(series cpu containerd))
c_disk=${disk[crustd,1]}
k_disk=${disk[containerd,1]}
ratio=$(div "$k_med" "$c_med")
sratio=$(div "$k_smed" "$c_smed")
c_mbs=$(mbps "$image_size" "$c_med")
k_mbs=$(mbps "$image_size" "$k_med")
unpacked=$((LAYERS * BYTES_PER_LAYER))
ctd_version=$("$CONTAINERD" --version)
crustd_version=$("$bin/crustd" --version)
kernel=$(uname -r)
ncpu=$(nproc)
fs=$(findmnt -n -o FSTYPE -T "$work")
# containerd 1.6 gunzips with unpigz when it is on PATH, else with Go's compress/gzip
if unpigz=$(command -v unpigz); then gunzip_by="unpigz ($unpigz)"; else gunzip_by="Go compress/gzip (no unpigz on PATH)"; fi

echo
echo "Image pull and unpack through CRI: crustd vs containerd"
echo "  machine:    $ncpu CPUs, $(awk '/MemTotal/ { printf "%.1f GiB RAM", $2 / 1048576 }' /proc/meminfo), kernel $kernel, roots on $fs"
echo "  containerd: $ctd_version (CRI plugin, overlayfs snapshotter)"
echo "              gunzip: $gunzip_by"
echo "  crustd:     $crustd_version"
echo "  image:      $image, $LAYERS layers x $BYTES_PER_LAYER bytes (incompressible, gzip)"
echo "              $image_size bytes compressed ($(div "$image_size" 1000000 %.1f) MB), $unpacked bytes unpacked"
echo "  runs:       $RUNS rounds, a fresh daemon on an empty root for every pull, alternating which goes first"
echo "  load avg:   $load_before before the rounds, $load_after after (other work on the machine adds noise)"
echo
printf '%-8s %12s %12s %17s %17s\n' run "crustd s" "containerd s" "crustd+sync s" "containerd+sync s"
for ((r = 1; r <= RUNS; r++)); do
    printf '%-8s %12s %12s %17s %17s\n' "$r" "${pull[crustd,$r]}" "${pull[containerd,$r]}" \
        "${sync_t[crustd,$r]}" "${sync_t[containerd,$r]}"
done
printf '%-8s %12s %12s %17s %17s\n' median "$c_med" "$k_med" "$c_smed" "$k_smed"
echo
echo "  throughput (compressed MB/s at the median): crustd $c_mbs MB/s, containerd $k_mbs MB/s"
echo "  daemon CPU time per pull (median, user+sys): crustd ${c_cpu}s, containerd ${k_cpu}s"
echo "  disk used after the pull: crustd $((c_disk / 1000000)) MB, containerd $((k_disk / 1000000)) MB"
echo "  crustd is ${ratio}x containerd's speed (containerd median / crustd median)"
echo "  with sync: crustd is ${sratio}x containerd's speed"

if [ "$JSON" = 1 ]; then
    js_list() { local IFS=,; echo "[$*]"; }
    cat <<EOF
{
  "machine": {"nproc": $ncpu, "kernel": "$kernel", "filesystem": "$fs",
              "loadavg_before": "$load_before", "loadavg_after": "$load_after"},
  "containerd_version": "$ctd_version",
  "containerd_gunzip": "$gunzip_by",
  "crustd_version": "$crustd_version",
  "image": {"reference": "$image", "layers": $LAYERS, "bytes_per_layer": $BYTES_PER_LAYER,
            "compressed_bytes": $image_size, "unpacked_bytes": $unpacked},
  "runs": $RUNS,
  "crustd": {"pull_seconds": $(js_list $(series pull crustd)), "median": $c_med,
             "pull_sync_seconds": $(js_list $(series sync_t crustd)), "median_with_sync": $c_smed,
             "mb_per_s": $c_mbs, "cpu_seconds_median": $c_cpu, "disk_bytes": $c_disk},
  "containerd": {"pull_seconds": $(js_list $(series pull containerd)), "median": $k_med,
                 "pull_sync_seconds": $(js_list $(series sync_t containerd)), "median_with_sync": $k_smed,
                 "mb_per_s": $k_mbs, "cpu_seconds_median": $k_cpu, "disk_bytes": $k_disk},
  "ratio_containerd_over_crustd": $ratio,
  "ratio_with_sync": $sratio
}
EOF
fi
