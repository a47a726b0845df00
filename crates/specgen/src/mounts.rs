//! Mounts: the defaults every container gets, the pod's shared files, and the request's mounts
//! (binds and image volumes), ordered and optioned as containerd does.

use std::path::{Component, Path, PathBuf};

use k8s_cri::v1::Mount as CriMount;
use oci_spec::runtime::Mount;

use crate::{Input, SpecError};

/// How mount events propagate between the host and the container (CRI `MountPropagation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountPropagation {
    /// `rprivate`: nothing propagates.
    Private,
    /// `rslave`: host mounts appear in the container.
    HostToContainer,
    /// `rshared`: both ways.
    Bidirectional,
}

impl MountPropagation {
    /// From the CRI enum value.
    pub fn from_cri(value: i32, path: &str) -> Result<Self, SpecError> {
        match value {
            0 => Ok(Self::Private),
            1 => Ok(Self::HostToContainer),
            2 => Ok(Self::Bidirectional),
            _ => Err(SpecError::UnknownPropagation {
                path: path.to_string(),
                value,
            }),
        }
    }

    fn option(self) -> &'static str {
        match self {
            Self::Private => "rprivate",
            Self::HostToContainer => "rslave",
            Self::Bidirectional => "rshared",
        }
    }
}

/// The mounts of a spec and the rootfs propagation they need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mounts {
    pub mounts: Vec<Mount>,
    /// `rshared` when a mount is bidirectional, else `rslave` when one is host-to-container.
    pub rootfs_propagation: Option<String>,
}

const ETC_HOSTNAME: &str = "/etc/hostname";
const ETC_HOSTS: &str = "/etc/hosts";
const ETC_RESOLV: &str = "/etc/resolv.conf";
const DEV_SHM: &str = "/dev/shm";

fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> Mount {
    let mut m = Mount::default();
    m.set_destination(PathBuf::from(dest));
    m.set_typ(Some(typ.to_string()));
    m.set_source(Some(PathBuf::from(source)));
    m.set_options(Some(options.iter().map(|s| s.to_string()).collect()));
    m
}

/// The mounts every container gets (containerd's defaults); `/sys` and the cgroup fs are
/// writable only for privileged containers.
pub fn defaults(privileged: bool) -> Vec<Mount> {
    let ro: &[&str] = if privileged { &[] } else { &["ro"] };
    let sys: Vec<&str> = ["nosuid", "noexec", "nodev"]
        .iter()
        .chain(ro)
        .copied()
        .collect();
    let cgroup: Vec<&str> = ["nosuid", "noexec", "nodev", "relatime"]
        .iter()
        .chain(ro)
        .copied()
        .collect();
    vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        mount("/sys", "sysfs", "sysfs", &sys),
        mount("/sys/fs/cgroup", "cgroup", "cgroup", &cgroup),
    ]
}

/// Checks a path is absolute and has no `..`, and returns it with `.` and repeated or
/// trailing slashes removed.
pub(crate) fn clean_absolute(field: &'static str, path: &str) -> Result<PathBuf, SpecError> {
    let p = Path::new(path);
    if !p.is_absolute() {
        return Err(SpecError::RelativePath {
            field,
            path: path.to_string(),
        });
    }
    if p.components().any(|c| c == Component::ParentDir) {
        return Err(SpecError::DotDotPath {
            field,
            path: path.to_string(),
        });
    }
    Ok(p.components().collect())
}

struct Planned {
    dest: PathBuf,
    source: PathBuf,
    readonly: bool,
    rro: bool,
    propagation: MountPropagation,
}

fn plan(input: &Input, m: &CriMount) -> Result<Planned, SpecError> {
    let dest = clean_absolute("container_path", &m.container_path)?;
    let shown = m.container_path.clone();
    if !m.uid_mappings.is_empty() || !m.gid_mappings.is_empty() {
        return Err(SpecError::IdMappedMount { path: shown });
    }
    let propagation = MountPropagation::from_cri(m.propagation, &shown)?;
    if let Some(image) = m.image.as_ref().filter(|i| !i.image.is_empty()) {
        let source =
            input
                .image_mounts
                .get(&image.image)
                .ok_or_else(|| SpecError::ImageVolumeMissing {
                    image: image.image.clone(),
                })?;
        return Ok(Planned {
            dest,
            source: source.clone(),
            readonly: true,
            rro: false,
            propagation: MountPropagation::Private,
        });
    }
    let source = clean_absolute("host_path", &m.host_path)?;
    if m.recursive_read_only {
        if !m.readonly || propagation != MountPropagation::Private {
            return Err(SpecError::RecursiveReadOnlyInvalid { path: shown });
        }
        if !input.host.recursive_read_only {
            return Err(SpecError::RecursiveReadOnlyUnsupported { path: shown });
        }
    }
    Ok(Planned {
        dest,
        source,
        readonly: m.readonly,
        rro: m.recursive_read_only,
        propagation,
    })
}

/// All mounts of the container, in the order the OCI runtime must mount them.
pub fn build(input: &Input, privileged: bool, readonly_rootfs: bool) -> Result<Mounts, SpecError> {
    let mut planned = Vec::with_capacity(input.config.mounts.len() + 4);
    for m in &input.config.mounts {
        planned.push(plan(input, m)?);
    }
    let targeted = |p: &str| planned.iter().any(|m: &Planned| m.dest == Path::new(p));
    // The pod's shared files, each unless the request mounts something there itself (kubelet
    // manages /etc/hosts for most pods).
    let sb = &input.sandbox;
    let mut extra = Vec::new();
    for (dest, source, readonly) in [
        (ETC_HOSTNAME, &sb.hostname_path, readonly_rootfs),
        (ETC_HOSTS, &sb.hosts_path, readonly_rootfs),
        (ETC_RESOLV, &sb.resolv_path, readonly_rootfs),
        (DEV_SHM, &sb.shm_path, false),
    ] {
        if !targeted(dest) && !source.as_os_str().is_empty() {
            extra.push(Planned {
                dest: PathBuf::from(dest),
                source: source.clone(),
                readonly,
                rro: false,
                propagation: MountPropagation::Private,
            });
        }
    }
    extra.append(&mut planned);
    let mut planned = extra;
    // Parents before children, otherwise stable (containerd's orderedMounts).
    planned.sort_by_key(|m| m.dest.components().count());

    let dev_mounted = planned.iter().any(|m| m.dest == Path::new("/dev"));
    let mut out: Vec<Mount> = defaults(privileged)
        .into_iter()
        .filter(|d| {
            let dest = d.destination();
            let overridden = planned.iter().any(|m| &m.dest == dest);
            let under_dev = dev_mounted && dest.starts_with("/dev/");
            !overridden && !under_dev
        })
        .collect();

    let mut propagation = None::<&str>;
    for m in planned {
        let mode = if m.readonly {
            if m.rro {
                "rro"
            } else {
                "ro"
            }
        } else {
            "rw"
        };
        match m.propagation {
            MountPropagation::Bidirectional => propagation = Some("rshared"),
            MountPropagation::HostToContainer if propagation.is_none() => {
                propagation = Some("rslave")
            }
            _ => {}
        }
        let mut o = Mount::default();
        o.set_destination(m.dest);
        o.set_typ(Some("bind".to_string()));
        o.set_source(Some(m.source));
        o.set_options(Some(vec![
            "rbind".to_string(),
            m.propagation.option().to_string(),
            mode.to_string(),
        ]));
        out.push(o);
    }
    Ok(Mounts {
        mounts: out,
        rootfs_propagation: propagation.map(str::to_string),
    })
}

/// Undoes mountinfo's octal escapes (`\040` for a space, ...).
fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Checks the host mount holding `host_path` allows `propagation`: bidirectional needs it
/// shared, host-to-container needs it shared or a slave. `mountinfo` is the text of
/// `/proc/self/mountinfo`; the holding mount is the one with the longest mount point that is
/// a prefix of `host_path` (the last listed when several are stacked there).
pub fn check_propagation(
    mountinfo: &str,
    host_path: &Path,
    propagation: MountPropagation,
) -> Result<(), SpecError> {
    if propagation == MountPropagation::Private {
        return Ok(());
    }
    let mut best: Option<(PathBuf, bool, bool)> = None;
    for line in mountinfo.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        if fields.len() < 7 {
            continue;
        }
        let mount_point = PathBuf::from(unescape(fields[4]));
        if !host_path.starts_with(&mount_point) {
            continue;
        }
        let optional = fields[6..].iter().take_while(|f| **f != "-");
        let (mut shared, mut slave) = (false, false);
        for f in optional {
            shared |= f.starts_with("shared:");
            slave |= f.starts_with("master:");
        }
        let longer = best
            .as_ref()
            .is_none_or(|(p, _, _)| mount_point.components().count() >= p.components().count());
        if longer {
            best = Some((mount_point, shared, slave));
        }
    }
    let Some((mount_point, shared, slave)) = best else {
        return Err(SpecError::NoMountFor(host_path.to_path_buf()));
    };
    let host_path = host_path.to_path_buf();
    match propagation {
        MountPropagation::Bidirectional if !shared => Err(SpecError::PropagationNotShared {
            host_path,
            mount_point,
        }),
        MountPropagation::HostToContainer if !shared && !slave => {
            Err(SpecError::PropagationNotSlave {
                host_path,
                mount_point,
            })
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
23 22 0:5 / /proc rw,nosuid - proc proc rw
30 22 8:2 / /data rw,relatime - ext4 /dev/sda2 rw
31 30 8:3 / /data/slave rw,relatime master:7 - ext4 /dev/sda3 rw
32 22 0:40 / /with\\040space rw shared:9 master:2 - tmpfs tmpfs rw
";

    #[test]
    fn propagation_checks() {
        let p = Path::new;
        use MountPropagation::*;
        assert_eq!(
            check_propagation(MOUNTINFO, p("/var/lib/x"), Bidirectional),
            Ok(())
        );
        assert_eq!(
            check_propagation(MOUNTINFO, p("/data/x"), HostToContainer),
            Err(SpecError::PropagationNotSlave {
                host_path: "/data/x".into(),
                mount_point: "/data".into()
            })
        );
        assert_eq!(check_propagation(MOUNTINFO, p("/data/x"), Private), Ok(()));
        assert_eq!(
            check_propagation(MOUNTINFO, p("/data/slave/y"), HostToContainer),
            Ok(())
        );
        assert!(matches!(
            check_propagation(MOUNTINFO, p("/data/slave/y"), Bidirectional),
            Err(SpecError::PropagationNotShared { .. })
        ));
        // "/datax" is not under "/data": components, not string prefixes.
        assert_eq!(
            check_propagation(MOUNTINFO, p("/datax"), Bidirectional),
            Ok(())
        );
        assert_eq!(
            check_propagation(MOUNTINFO, p("/with space/a"), Bidirectional),
            Ok(())
        );
        assert_eq!(
            check_propagation("", p("/x"), Bidirectional),
            Err(SpecError::NoMountFor("/x".into()))
        );
    }

    #[test]
    fn clean_paths() {
        assert_eq!(
            clean_absolute("container_path", "/a//b/./c/").unwrap(),
            PathBuf::from("/a/b/c")
        );
        assert_eq!(
            clean_absolute("container_path", "a/b"),
            Err(SpecError::RelativePath {
                field: "container_path",
                path: "a/b".into()
            })
        );
        assert_eq!(
            clean_absolute("container_path", "/a/../etc"),
            Err(SpecError::DotDotPath {
                field: "container_path",
                path: "/a/../etc".into()
            })
        );
    }
}
