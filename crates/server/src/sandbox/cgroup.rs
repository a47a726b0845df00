//! The pod cgroup: named by kubelet (`cgroup_parent`), created here when it does not exist yet
//! (crictl or a test without kubelet), limited by the pod's resources and overhead only when
//! crustd created it (kubelet manages the ones it makes), and removed with the pod.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use crate::config::CgroupDriver;

/// Controllers crustd creates pod cgroups in on a cgroup v1 (or hybrid) node.
const V1_CONTROLLERS: &[&str] = &[
    "cpu", "cpuacct", "cpuset", "memory", "pids", "blkio", "devices", "freezer", "hugetlb",
];

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cgroup_parent {parent:?}: {reason}")]
    BadParent { parent: String, reason: String },
    #[error("cgroup {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> CgroupError + '_ {
    move |source| CgroupError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Where the node's cgroup hierarchies are mounted.
/// The key of a hybrid host's cgroup2 mount among the v1 hierarchies of [`Layout::V1`].
pub const UNIFIED: &str = "unified";

#[derive(Debug, Clone)]
pub enum Layout {
    /// cgroup v1 or hybrid: one mount per controller (mount point by controller name), plus
    /// named hierarchies (`name=systemd`) and, on a hybrid host, the cgroup2 mount
    /// ([`UNIFIED`]): every hierarchy runc puts a container in.
    V1(BTreeMap<String, PathBuf>),
    /// cgroup v2 only.
    V2(PathBuf),
}

impl Layout {
    /// Reads /proc/self/mountinfo.
    pub fn detect() -> io::Result<Layout> {
        let info = std::fs::read_to_string("/proc/self/mountinfo")?;
        Ok(Self::parse(&info))
    }

    fn parse(mountinfo: &str) -> Layout {
        let mut v1 = BTreeMap::new();
        let mut v2 = None;
        for line in mountinfo.lines() {
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            let mount_point = left.split(' ').nth(4).unwrap_or_default();
            let mut r = right.split(' ');
            let fstype = r.next().unwrap_or_default();
            let _source = r.next();
            let options = r.next().unwrap_or_default();
            match fstype {
                "cgroup2" => v2 = Some(PathBuf::from(mount_point)),
                "cgroup" => {
                    for opt in options.split(',') {
                        // Named hierarchies (name=systemd) hold no controller, but runc puts
                        // every container there too, under the pod's path.
                        if V1_CONTROLLERS.contains(&opt) || opt.starts_with("name=") {
                            v1.insert(opt.to_string(), PathBuf::from(mount_point));
                        }
                    }
                }
                _ => {}
            }
        }
        match (v1.is_empty(), v2) {
            (true, v2) => Layout::V2(v2.unwrap_or_else(|| "/sys/fs/cgroup".into())),
            // Hybrid: the controllers are v1, and runc also places containers in the
            // unified hierarchy; the pod's directory there is ours to make and remove.
            (false, Some(unified)) => {
                v1.insert(UNIFIED.to_string(), unified);
                Layout::V1(v1)
            }
            (false, None) => Layout::V1(v1),
        }
    }

    /// The directories of the cgroup `path` (cgroupfs form) in every hierarchy.
    fn dirs(&self, path: &str) -> Vec<(Option<&str>, PathBuf)> {
        let rel = path.trim_start_matches('/');
        match self {
            Layout::V1(mounts) => {
                // Co-mounted controllers (cpu,cpuacct) share one directory: visit it once.
                let mut seen = Vec::new();
                let mut out = Vec::new();
                for (controller, mount) in mounts {
                    if !seen.contains(mount) {
                        seen.push(mount.clone());
                        out.push((Some(controller.as_str()), mount.join(rel)));
                    }
                }
                out
            }
            Layout::V2(root) => vec![(None, root.join(rel))],
        }
    }
}

/// The directory of the cgroup `path` (cgroupfs form) for `controller` on a v1 node, or its
/// unified directory on a v2 node.
pub fn controller_dir(layout: &Layout, controller: &str, path: &str) -> Option<PathBuf> {
    let rel = path.trim_start_matches('/');
    match layout {
        Layout::V1(mounts) => mounts.get(controller).map(|m| m.join(rel)),
        Layout::V2(root) => Some(root.join(rel)),
    }
}

/// Where the cgroup `path` (cgroupfs form) is, for the stats readers: its directory in each
/// v1 controller's hierarchy, or in the unified one.
pub fn stats_cgroup(layout: &Layout, path: &str) -> crust_stats::Cgroup {
    match layout {
        Layout::V1(_) => crust_stats::Cgroup::V1(crust_stats::V1Dirs {
            cpu: controller_dir(layout, "cpu", path),
            cpuacct: controller_dir(layout, "cpuacct", path),
            memory: controller_dir(layout, "memory", path),
            pids: controller_dir(layout, "pids", path),
        }),
        Layout::V2(root) => crust_stats::Cgroup::V2(root.join(path.trim_start_matches('/'))),
    }
}

/// The pod cgroup in cgroupfs path form. With the systemd driver kubelet names a slice
/// (`kubepods-burstable-pod123.slice`), which lives at
/// `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod123.slice`.
pub fn pod_cgroup_path(parent: &str, driver: CgroupDriver) -> Result<String, CgroupError> {
    let bad = |reason: &str| CgroupError::BadParent {
        parent: parent.to_string(),
        reason: reason.to_string(),
    };
    match driver {
        CgroupDriver::Cgroupfs => {
            if !parent.starts_with('/') {
                return Err(bad(
                    "must be an absolute cgroupfs path with the cgroupfs driver",
                ));
            }
            if parent
                .split('/')
                .any(|c| c == ".." || c == "." || c.contains('\0'))
            {
                return Err(bad("must not contain . or .. components"));
            }
            Ok(parent.trim_end_matches('/').to_string())
        }
        CgroupDriver::Systemd => {
            let Some(stem) = parent.strip_suffix(".slice") else {
                return Err(bad(
                    "must be a systemd slice name (NAME.slice) with the systemd driver",
                ));
            };
            if stem.is_empty()
                || stem.contains('/')
                || stem.starts_with('-')
                || stem.ends_with('-')
                || stem.contains("--")
                // systemd's unit name characters: no NUL, space or newline in a cgroup name.
                || !stem.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b':' | b'_' | b'.' | b'\\' | b'-')
                })
            {
                return Err(bad("is not a valid systemd slice name"));
            }
            if stem == "-" {
                return Ok("/".into());
            }
            let mut path = String::new();
            let mut prefix = String::new();
            for part in stem.split('-') {
                if !prefix.is_empty() {
                    prefix.push('-');
                }
                prefix.push_str(part);
                path.push('/');
                path.push_str(&prefix);
                path.push_str(".slice");
            }
            Ok(path)
        }
    }
}

/// A container's cgroup in cgroupfs path form, from the `cgroupsPath` of its OCI spec: as it
/// is with the cgroupfs driver; with the systemd driver `slice:prefix:name` names the unit
/// `prefix-name.scope` in the slice (the slice itself when `name` is one), where runc and
/// crun put it. `None` for a path of neither form.
pub fn container_cgroup_path(cgroups_path: &str, driver: CgroupDriver) -> Option<String> {
    match driver {
        CgroupDriver::Cgroupfs => cgroups_path
            .starts_with('/')
            .then(|| cgroups_path.trim_end_matches('/').to_string()),
        CgroupDriver::Systemd => {
            let mut parts = cgroups_path.splitn(3, ':');
            let (slice, prefix, name) = (parts.next()?, parts.next()?, parts.next()?);
            let slice = if slice.is_empty() {
                "system.slice"
            } else {
                slice
            };
            let unit = if name.ends_with(".slice") {
                name.to_string()
            } else if prefix.is_empty() {
                format!("{name}.scope")
            } else {
                format!("{prefix}-{name}.scope")
            };
            if unit.contains('/') {
                return None;
            }
            let parent = pod_cgroup_path(slice, CgroupDriver::Systemd).ok()?;
            Some(format!("{}/{unit}", parent.trim_end_matches('/')))
        }
    }
}

/// Limits applied to a pod cgroup crustd created.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Limits {
    pub memory_bytes: Option<i64>,
    pub cpu_period: Option<i64>,
    pub cpu_quota: Option<i64>,
    pub cpu_shares: Option<i64>,
}

/// Makes sure `path` exists in every hierarchy; returns the directories it created (deepest
/// last), which are the ones to remove with the pod. `record` is given the directories missing
/// now before the first is made, so that a crash midway leaves them known (a retry would find
/// them made and not own them); it may name one another start made meanwhile, which is why
/// the caller records the returned list again.
pub fn ensure(
    layout: &Layout,
    path: &str,
    record: impl FnOnce(&[PathBuf]) -> Result<(), CgroupError>,
) -> Result<Vec<PathBuf>, CgroupError> {
    let mut missing = Vec::new();
    for (controller, dir) in layout.dirs(path) {
        let mut chain = Vec::new();
        let mut cur = dir.as_path();
        while !cur.exists() {
            chain.push(cur.to_path_buf());
            match cur.parent() {
                Some(p) => cur = p,
                None => break,
            }
        }
        missing.extend(chain.into_iter().rev().map(|d| (controller, d)));
    }
    if missing.is_empty() {
        return Ok(Vec::new());
    }
    let dirs: Vec<PathBuf> = missing.iter().map(|(_, d)| d.clone()).collect();
    record(&dirs)?;
    let mut created = Vec::new();
    for (controller, d) in missing {
        match std::fs::create_dir(&d) {
            Ok(()) => {
                if controller == Some("cpuset") {
                    inherit_cpuset(&d)?;
                }
                created.push(d);
            }
            // Made by another pod's start a moment ago (its cpuset is filled, if still
            // empty, when a child is made under it: see inherit_cpuset).
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                remove(&created);
                return Err(CgroupError::Io { path: d, source: e });
            }
        }
    }
    Ok(created)
}

/// A new v1 cpuset cgroup starts with no CPUs or memory nodes: copy the parent's. A parent
/// another pod's start made a moment ago may not be filled yet (a child made under an empty
/// one could never hold a task: ENOSPC), so an empty parent is filled first, the same way.
fn inherit_cpuset(dir: &Path) -> Result<(), CgroupError> {
    let Some(parent) = dir.parent() else {
        return Ok(());
    };
    for file in ["cpuset.cpus", "cpuset.mems"] {
        let read = || {
            std::fs::read_to_string(parent.join(file))
                .map(|v| v.trim().to_string())
                .map_err(io_err(parent))
        };
        let mut value = read()?;
        if value.is_empty() {
            inherit_cpuset(parent)?;
            value = read()?;
        }
        std::fs::write(dir.join(file), value).map_err(io_err(dir))?;
    }
    Ok(())
}

/// Writes the limits into the pod cgroup.
pub fn apply(layout: &Layout, path: &str, limits: &Limits) -> Result<(), CgroupError> {
    let rel = path.trim_start_matches('/');
    let write = |file: PathBuf, value: String| -> Result<(), CgroupError> {
        std::fs::write(&file, value).map_err(|source| CgroupError::Io { path: file, source })
    };
    match layout {
        Layout::V1(mounts) => {
            if let (Some(mem), Some(mount)) = (limits.memory_bytes, mounts.get("memory")) {
                write(
                    mount.join(rel).join("memory.limit_in_bytes"),
                    mem.to_string(),
                )?;
            }
            if let Some(mount) = mounts.get("cpu") {
                let dir = mount.join(rel);
                if let Some(period) = limits.cpu_period {
                    write(dir.join("cpu.cfs_period_us"), period.to_string())?;
                }
                if let Some(quota) = limits.cpu_quota {
                    write(dir.join("cpu.cfs_quota_us"), quota.to_string())?;
                }
                if let Some(shares) = limits.cpu_shares {
                    write(dir.join("cpu.shares"), shares.to_string())?;
                }
            }
        }
        Layout::V2(root) => {
            let dir = root.join(rel);
            if let Some(mem) = limits.memory_bytes {
                write(dir.join("memory.max"), mem.to_string())?;
            }
            if limits.cpu_quota.is_some() || limits.cpu_period.is_some() {
                let quota = match limits.cpu_quota {
                    Some(q) if q > 0 => q.to_string(),
                    _ => "max".into(),
                };
                let period = limits.cpu_period.unwrap_or(100_000);
                write(dir.join("cpu.max"), format!("{quota} {period}"))?;
            }
            if let Some(shares) = limits.cpu_shares {
                // The conversion runc and kubelet use from shares (2..262144) to weight (1..10000).
                let weight = 1 + ((shares.clamp(2, 262_144) - 2) * 9999) / 262_142;
                write(dir.join("cpu.weight"), weight.to_string())?;
            }
        }
    }
    Ok(())
}

/// Moves `pid` into the pod cgroup in every hierarchy.
pub fn add_process(layout: &Layout, path: &str, pid: i32) -> Result<(), CgroupError> {
    for (_, dir) in layout.dirs(path) {
        let procs = dir.join("cgroup.procs");
        std::fs::write(&procs, pid.to_string()).map_err(|source| CgroupError::Io {
            path: procs,
            source,
        })?;
    }
    Ok(())
}

/// Removes cgroup directories crustd created, deepest first; returns those that could not go
/// (a cgroup still holding processes), for the caller to log. A parent crustd made that now
/// holds other pods' cgroups stays, and is not an error: it is left on the node, as runc
/// leaves the parents it makes. Blocks for up to half a second per busy directory.
pub fn remove(created: &[PathBuf]) -> Vec<(PathBuf, io::Error)> {
    let mut failed = Vec::new();
    let mut dirs: Vec<&PathBuf> = created.iter().collect();
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    for d in dirs {
        let mut result = std::fs::remove_dir(d);
        // A cgroup whose last process just died can stay busy for a moment; one that still
        // holds cgroups (another pod's, under a parent both share) stays busy.
        let mut tries = 0;
        let shared = loop {
            match &result {
                Err(e) if e.raw_os_error() == Some(16) => {
                    if has_child_cgroups(d) {
                        break true;
                    }
                    if tries == 50 {
                        break false;
                    }
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                    result = std::fs::remove_dir(d);
                }
                _ => break false,
            }
        };
        match result {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(_) if shared => {}
            Err(e) => failed.push((d.clone(), e)),
        }
    }
    failed
}

fn has_child_cgroups(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.file_type().is_ok_and(|t| t.is_dir()))
    })
}

/// Removes the (empty) cgroup `path` (cgroupfs form) from every hierarchy it is in.
pub fn remove_path(layout: &Layout, path: &str) -> Vec<(PathBuf, io::Error)> {
    let dirs: Vec<PathBuf> = layout
        .dirs(path)
        .into_iter()
        .map(|(_, d)| d)
        .filter(|d| d.exists())
        .collect();
    remove(&dirs)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two v1 hierarchies (no cpuset: it needs the kernel's files) in a temporary directory.
    fn fake_layout(root: &Path) -> Layout {
        let mut mounts = BTreeMap::new();
        for controller in ["memory", "pids"] {
            std::fs::create_dir(root.join(controller)).unwrap();
            mounts.insert(controller.to_string(), root.join(controller));
        }
        Layout::V1(mounts)
    }

    #[test]
    fn what_ensure_makes_is_recorded_before_anything_is_made() {
        let root = tempfile::tempdir().unwrap();
        let layout = fake_layout(root.path());
        std::fs::create_dir(root.path().join("memory/kubepods")).unwrap();
        let mut recorded = Vec::new();
        let created = ensure(&layout, "/kubepods/pod1", |dirs| {
            assert!(dirs.iter().all(|d| !d.exists()), "{dirs:?}");
            recorded = dirs.to_vec();
            Ok(())
        })
        .unwrap();
        let want: Vec<PathBuf> = [
            "memory/kubepods/pod1",
            "pids/kubepods",
            "pids/kubepods/pod1",
        ]
        .iter()
        .map(|d| root.path().join(d))
        .collect();
        assert_eq!(recorded, want);
        assert_eq!(created, want);
        assert!(want.iter().all(|d| d.is_dir()));
        // Nothing missing: nothing to record, nothing made.
        let again = ensure(&layout, "/kubepods/pod1", |_| panic!("nothing to record")).unwrap();
        assert!(again.is_empty());
    }

    #[test]
    fn a_record_that_fails_makes_ensure_make_nothing() {
        let root = tempfile::tempdir().unwrap();
        let layout = fake_layout(root.path());
        let err = ensure(&layout, "/kubepods/pod1", |_| {
            Err(CgroupError::Io {
                path: "record".into(),
                source: io::Error::from_raw_os_error(28),
            })
        })
        .unwrap_err();
        assert!(err.to_string().contains("record"), "{err}");
        assert!(!root.path().join("memory/kubepods").exists());
        assert!(!root.path().join("pids/kubepods").exists());
    }

    #[test]
    fn a_cpuset_made_under_a_parent_not_yet_filled_fills_the_parent_first() {
        // Another pod's start made `parent` and has not copied its cpuset in yet.
        let root = tempfile::tempdir().unwrap();
        let parent = root.path().join("parent");
        let child = parent.join("pod");
        std::fs::create_dir_all(&child).unwrap();
        for (dir, cpus, mems) in [(root.path(), "0-1\n", "0\n"), (&parent, "\n", "")] {
            std::fs::write(dir.join("cpuset.cpus"), cpus).unwrap();
            std::fs::write(dir.join("cpuset.mems"), mems).unwrap();
        }
        inherit_cpuset(&child).unwrap();
        for dir in [&parent, &child] {
            assert_eq!(
                std::fs::read_to_string(dir.join("cpuset.cpus")).unwrap(),
                "0-1"
            );
            assert_eq!(
                std::fs::read_to_string(dir.join("cpuset.mems")).unwrap(),
                "0"
            );
        }
    }

    #[test]
    fn systemd_slices_expand_to_their_path() {
        assert_eq!(
            pod_cgroup_path("kubepods-burstable-pod123.slice", CgroupDriver::Systemd).unwrap(),
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod123.slice"
        );
        assert!(pod_cgroup_path("/kubepods/pod1", CgroupDriver::Systemd).is_err());
        assert!(pod_cgroup_path("a--b.slice", CgroupDriver::Systemd).is_err());
        assert!(pod_cgroup_path("a\0b.slice", CgroupDriver::Systemd).is_err());
        assert!(pod_cgroup_path("a b.slice", CgroupDriver::Systemd).is_err());
    }

    #[test]
    fn container_cgroups_where_the_runtime_puts_them() {
        assert_eq!(
            container_cgroup_path("/kubepods/pod1/crust-abc", CgroupDriver::Cgroupfs).as_deref(),
            Some("/kubepods/pod1/crust-abc")
        );
        assert_eq!(
            container_cgroup_path("kubepods-besteffort-pod2.slice:crust:abc", CgroupDriver::Systemd)
                .as_deref(),
            Some("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod2.slice/crust-abc.scope")
        );
        assert_eq!(
            container_cgroup_path("system.slice:crust:abc", CgroupDriver::Systemd).as_deref(),
            Some("/system.slice/crust-abc.scope")
        );
        assert_eq!(
            container_cgroup_path(":crust:abc", CgroupDriver::Systemd).as_deref(),
            Some("/system.slice/crust-abc.scope")
        );
        assert_eq!(
            container_cgroup_path("relative", CgroupDriver::Cgroupfs),
            None
        );
        assert_eq!(container_cgroup_path("/a/b", CgroupDriver::Systemd), None);
    }

    #[test]
    fn cgroupfs_paths_are_absolute_and_stay_inside() {
        assert_eq!(
            pod_cgroup_path("/kubepods/besteffort/pod1/", CgroupDriver::Cgroupfs).unwrap(),
            "/kubepods/besteffort/pod1"
        );
        assert!(pod_cgroup_path("kubepods", CgroupDriver::Cgroupfs).is_err());
        assert!(pod_cgroup_path("/kubepods/../../x", CgroupDriver::Cgroupfs).is_err());
    }

    #[test]
    fn layouts_from_mountinfo() {
        let hybrid = "30 25 0:26 / /sys/fs/cgroup/unified rw,relatime shared:4 - cgroup2 cgroup2 rw\n\
                      31 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw shared:5 - cgroup cgroup rw,cpu,cpuacct\n\
                      32 25 0:28 / /sys/fs/cgroup/memory rw shared:6 - cgroup cgroup rw,memory\n\
                      33 25 0:29 / /sys/fs/cgroup/systemd rw shared:7 - cgroup cgroup rw,xattr,name=systemd\n";
        let Layout::V1(m) = Layout::parse(hybrid) else {
            panic!("hybrid is v1 for controllers")
        };
        assert_eq!(m["cpu"], PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(m["cpuacct"], PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(m["memory"], PathBuf::from("/sys/fs/cgroup/memory"));
        let l = Layout::parse(hybrid);
        // cpu and cpuacct share one directory, visited once; the named and unified
        // hierarchies, where runc puts containers too, are visited as well.
        assert_eq!(m["name=systemd"], PathBuf::from("/sys/fs/cgroup/systemd"));
        assert_eq!(m[UNIFIED], PathBuf::from("/sys/fs/cgroup/unified"));
        let dirs: Vec<PathBuf> = l.dirs("/a").into_iter().map(|(_, d)| d).collect();
        assert_eq!(
            dirs,
            [
                "/sys/fs/cgroup/cpu,cpuacct/a",
                "/sys/fs/cgroup/memory/a",
                "/sys/fs/cgroup/systemd/a",
                "/sys/fs/cgroup/unified/a"
            ]
            .map(PathBuf::from)
        );
        let v2 = "30 25 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        assert!(matches!(Layout::parse(v2), Layout::V2(p) if p == Path::new("/sys/fs/cgroup")));
    }
}
