#!/usr/bin/env bash
# Node setup the container tests need, idempotent, as root:
# - crun 1.8 refuses to run on a hybrid cgroup host while the cgroup2 hierarchy holds the
#   hugetlb controller ("cgroups in hybrid mode not supported"); mounting hugetlb as a v1
#   hierarchy of its own moves it out of cgroup2 (runc works either way).
set -euo pipefail
if [ -f /sys/fs/cgroup/unified/cgroup.controllers ] \
  && grep -qw hugetlb /sys/fs/cgroup/unified/cgroup.controllers \
  && ! grep -q ' /sys/fs/cgroup/hugetlb ' /proc/self/mountinfo; then
  mkdir -p /sys/fs/cgroup/hugetlb
  mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb
  echo "node setup: mounted the hugetlb cgroup v1 hierarchy (for crun on a hybrid host)"
fi
