//! Privilege: capabilities, masked and read-only paths, AppArmor.

use std::collections::BTreeSet;

use k8s_cri::v1::{
    security_profile::ProfileType, ContainerConfig, LinuxContainerSecurityContext, PodSandboxConfig,
};
use oci_spec::runtime::{Capabilities, Capability, LinuxCapabilities};

use crate::{Host, SpecError};

pub(crate) fn context(config: &ContainerConfig) -> Option<&LinuxContainerSecurityContext> {
    config
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
}

pub(crate) fn sandbox_privileged(config: &PodSandboxConfig) -> bool {
    config
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
        .is_some_and(|s| s.privileged)
}

/// Every capability the kernel knows, in kernel number order (0 = CAP_CHOWN ..
/// 40 = CAP_CHECKPOINT_RESTORE).
pub const ALL_CAPABILITIES: &[(&str, Capability)] = &[
    ("CAP_CHOWN", Capability::Chown),
    ("CAP_DAC_OVERRIDE", Capability::DacOverride),
    ("CAP_DAC_READ_SEARCH", Capability::DacReadSearch),
    ("CAP_FOWNER", Capability::Fowner),
    ("CAP_FSETID", Capability::Fsetid),
    ("CAP_KILL", Capability::Kill),
    ("CAP_SETGID", Capability::Setgid),
    ("CAP_SETUID", Capability::Setuid),
    ("CAP_SETPCAP", Capability::Setpcap),
    ("CAP_LINUX_IMMUTABLE", Capability::LinuxImmutable),
    ("CAP_NET_BIND_SERVICE", Capability::NetBindService),
    ("CAP_NET_BROADCAST", Capability::NetBroadcast),
    ("CAP_NET_ADMIN", Capability::NetAdmin),
    ("CAP_NET_RAW", Capability::NetRaw),
    ("CAP_IPC_LOCK", Capability::IpcLock),
    ("CAP_IPC_OWNER", Capability::IpcOwner),
    ("CAP_SYS_MODULE", Capability::SysModule),
    ("CAP_SYS_RAWIO", Capability::SysRawio),
    ("CAP_SYS_CHROOT", Capability::SysChroot),
    ("CAP_SYS_PTRACE", Capability::SysPtrace),
    ("CAP_SYS_PACCT", Capability::SysPacct),
    ("CAP_SYS_ADMIN", Capability::SysAdmin),
    ("CAP_SYS_BOOT", Capability::SysBoot),
    ("CAP_SYS_NICE", Capability::SysNice),
    ("CAP_SYS_RESOURCE", Capability::SysResource),
    ("CAP_SYS_TIME", Capability::SysTime),
    ("CAP_SYS_TTY_CONFIG", Capability::SysTtyConfig),
    ("CAP_MKNOD", Capability::Mknod),
    ("CAP_LEASE", Capability::Lease),
    ("CAP_AUDIT_WRITE", Capability::AuditWrite),
    ("CAP_AUDIT_CONTROL", Capability::AuditControl),
    ("CAP_SETFCAP", Capability::Setfcap),
    ("CAP_MAC_OVERRIDE", Capability::MacOverride),
    ("CAP_MAC_ADMIN", Capability::MacAdmin),
    ("CAP_SYSLOG", Capability::Syslog),
    ("CAP_WAKE_ALARM", Capability::WakeAlarm),
    ("CAP_BLOCK_SUSPEND", Capability::BlockSuspend),
    ("CAP_AUDIT_READ", Capability::AuditRead),
    ("CAP_PERFMON", Capability::Perfmon),
    ("CAP_BPF", Capability::Bpf),
    ("CAP_CHECKPOINT_RESTORE", Capability::CheckpointRestore),
];

/// containerd's default capabilities for non-privileged containers.
pub const DEFAULT_CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// containerd's default masked paths.
pub const DEFAULT_MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// containerd's default read-only paths.
pub const DEFAULT_READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The AppArmor profile used for RuntimeDefault on hosts with AppArmor.
pub const DEFAULT_APPARMOR_PROFILE: &str = "crust-default";

/// The process's capability sets by canonical name (`CAP_...`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CapSet {
    /// Bounding = effective = permitted.
    pub set: BTreeSet<&'static str>,
    /// Ambient (and so inheritable, which ambient needs; otherwise inheritable stays empty,
    /// CVE-2022-24769).
    pub ambient: BTreeSet<&'static str>,
}

impl CapSet {
    pub fn has(&self, name: &str) -> bool {
        self.set.contains(name)
    }

    pub(crate) fn to_oci(&self) -> LinuxCapabilities {
        let conv = |names: &BTreeSet<&'static str>| -> Capabilities {
            names
                .iter()
                .filter_map(|n| {
                    ALL_CAPABILITIES
                        .iter()
                        .find(|(c, _)| c == n)
                        .map(|(_, c)| *c)
                })
                .collect()
        };
        let set = conv(&self.set);
        let ambient = conv(&self.ambient);
        let mut c = LinuxCapabilities::default();
        c.set_bounding(Some(set.clone()));
        c.set_effective(Some(set.clone()));
        c.set_permitted(Some(set));
        c.set_inheritable(Some(ambient.clone()));
        c.set_ambient(Some(ambient));
        c
    }
}

fn canonical(name: &str) -> Result<&'static str, SpecError> {
    let upper = name.trim().to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    ALL_CAPABILITIES
        .iter()
        .find(|(c, _)| *c == full)
        .map(|(c, _)| *c)
        .ok_or_else(|| SpecError::UnknownCapability(name.to_string()))
}

/// The capability names of a `/proc/<pid>/status` mask (`CapBnd:` hex): bit N is the Nth
/// entry of [`ALL_CAPABILITIES`], which is listed in kernel order.
pub fn names_of_mask(mask: u64) -> Vec<String> {
    ALL_CAPABILITIES
        .iter()
        .enumerate()
        .filter(|(bit, _)| *bit < 64 && mask & (1u64 << bit) != 0)
        .map(|(_, (name, _))| name.to_string())
        .collect()
}

fn is_all(name: &str) -> bool {
    name.trim().eq_ignore_ascii_case("ALL")
}

/// The capability sets, as containerd computes them: privileged gets every capability crustd
/// itself holds (`current`, its bounding set; containerd's WithAllCurrentCapabilities: a
/// capability the node withholds from crustd cannot be granted, and asking for it makes the
/// runtime's capset fail); `None` means every capability the kernel knows;
/// otherwise start from the defaults, then `add ALL` (everything), `drop ALL` (nothing), the
/// individual adds, the individual drops (so a capability both added and dropped is dropped),
/// and finally the ambient ones (added to every set).
pub fn capabilities(
    sc: Option<&LinuxContainerSecurityContext>,
    privileged: bool,
    current: Option<&[String]>,
) -> Result<CapSet, SpecError> {
    let all: BTreeSet<&'static str> = ALL_CAPABILITIES
        .iter()
        .map(|(c, _)| *c)
        .filter(|c| current.is_none_or(|cur| cur.iter().any(|x| x == c)))
        .collect();
    let mut out = CapSet::default();
    if privileged {
        out.set = all;
        return Ok(out);
    }
    out.set = DEFAULT_CAPABILITIES.iter().copied().collect();
    let Some(caps) = sc.and_then(|s| s.capabilities.as_ref()) else {
        return Ok(out);
    };
    // Validate every name first so an unknown one is reported whatever else is asked.
    for n in caps
        .add_capabilities
        .iter()
        .chain(&caps.drop_capabilities)
        .chain(&caps.add_ambient_capabilities)
    {
        if !is_all(n) {
            canonical(n)?;
        }
    }
    if caps.add_capabilities.iter().any(|c| is_all(c)) {
        out.set = all.clone();
    }
    if caps.drop_capabilities.iter().any(|c| is_all(c)) {
        out.set.clear();
    }
    for n in caps.add_capabilities.iter().filter(|c| !is_all(c)) {
        out.set.insert(canonical(n)?);
    }
    for n in caps.drop_capabilities.iter().filter(|c| !is_all(c)) {
        out.set.remove(canonical(n)?);
    }
    for n in &caps.add_ambient_capabilities {
        if is_all(n) {
            out.ambient.extend(all.iter().copied());
        } else {
            out.ambient.insert(canonical(n)?);
        }
    }
    out.set.extend(out.ambient.iter().copied());
    Ok(out)
}

/// Masked and read-only paths: none for privileged containers, else the request's lists when
/// given, else containerd's defaults.
pub fn masked_and_readonly_paths(
    sc: Option<&LinuxContainerSecurityContext>,
    privileged: bool,
) -> (Option<Vec<String>>, Option<Vec<String>>) {
    if privileged {
        return (None, None);
    }
    let pick = |given: Option<&Vec<String>>, default: &[&str]| -> Option<Vec<String>> {
        match given {
            Some(v) if !v.is_empty() => Some(v.clone()),
            _ => Some(default.iter().map(|s| s.to_string()).collect()),
        }
    };
    (
        pick(sc.map(|s| &s.masked_paths), DEFAULT_MASKED_PATHS),
        pick(sc.map(|s| &s.readonly_paths), DEFAULT_READONLY_PATHS),
    )
}

/// A security profile request from the `SecurityProfile` field or, when that is absent, the
/// deprecated string field (`runtime/default`, `docker/default`, `unconfined`,
/// `localhost/<ref>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Profile {
    Unset,
    RuntimeDefault,
    Unconfined,
    Localhost(String),
}

pub(crate) fn profile(
    field: &'static str,
    sp: Option<&k8s_cri::v1::SecurityProfile>,
    legacy: &str,
) -> Result<Profile, SpecError> {
    if let Some(sp) = sp {
        return match ProfileType::try_from(sp.profile_type) {
            Ok(ProfileType::RuntimeDefault) => Ok(Profile::RuntimeDefault),
            Ok(ProfileType::Unconfined) => Ok(Profile::Unconfined),
            Ok(ProfileType::Localhost) => {
                let r = sp.localhost_ref.trim_start_matches("localhost/");
                if r.is_empty() {
                    return Err(SpecError::UnknownProfile {
                        field,
                        value: sp.localhost_ref.clone(),
                    });
                }
                Ok(Profile::Localhost(r.to_string()))
            }
            Err(_) => Err(SpecError::UnknownProfileType {
                field,
                value: sp.profile_type,
            }),
        };
    }
    match legacy {
        "" => Ok(Profile::Unset),
        "runtime/default" | "docker/default" => Ok(Profile::RuntimeDefault),
        "unconfined" => Ok(Profile::Unconfined),
        other => match other.strip_prefix("localhost/") {
            Some(r) if !r.is_empty() => Ok(Profile::Localhost(r.to_string())),
            _ => Err(SpecError::UnknownProfile {
                field,
                value: other.to_string(),
            }),
        },
    }
}

/// `process.apparmorProfile`. Unset means RuntimeDefault (as containerd does); privileged
/// containers are unconfined. On a host without AppArmor nothing is set, with a warning when
/// a profile was explicitly asked for.
#[allow(deprecated)]
pub fn apparmor(
    sc: Option<&LinuxContainerSecurityContext>,
    privileged: bool,
    host: &Host,
    warnings: &mut Vec<String>,
) -> Result<Option<String>, SpecError> {
    let p = profile(
        "apparmor",
        sc.and_then(|s| s.apparmor.as_ref()),
        sc.map_or("", |s| s.apparmor_profile.as_str()),
    )?;
    if privileged || p == Profile::Unconfined {
        return Ok(None);
    }
    if !host.apparmor {
        if p != Profile::Unset {
            warnings.push(format!(
                "apparmor profile {p:?} requested but the host has no apparmor; running without"
            ));
        }
        return Ok(None);
    }
    Ok(Some(match p {
        Profile::Localhost(name) => name,
        _ => DEFAULT_APPARMOR_PROFILE.to_string(),
    }))
}

#[cfg(test)]
mod tests {
    use k8s_cri::v1::Capability as CriCaps;

    use super::*;

    fn with(add: &[&str], drop: &[&str], ambient: &[&str]) -> LinuxContainerSecurityContext {
        let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect();
        LinuxContainerSecurityContext {
            capabilities: Some(CriCaps {
                add_capabilities: v(add),
                drop_capabilities: v(drop),
                add_ambient_capabilities: v(ambient),
            }),
            ..Default::default()
        }
    }

    fn names(c: &CapSet) -> Vec<&'static str> {
        c.set.iter().copied().collect()
    }

    #[test]
    fn capability_arithmetic() {
        let c = capabilities(None, false, None).unwrap();
        assert_eq!(c.set.len(), DEFAULT_CAPABILITIES.len());
        let c = capabilities(Some(&with(&["ALL"], &[], &[])), false, None).unwrap();
        assert_eq!(c.set.len(), 41);
        let c = capabilities(Some(&with(&["net_admin"], &["ALL"], &[])), false, None).unwrap();
        assert_eq!(names(&c), ["CAP_NET_ADMIN"]);
        let c = capabilities(Some(&with(&["all"], &["CAP_CHOWN"], &[])), false, None).unwrap();
        assert_eq!(c.set.len(), 40);
        assert!(!c.has("CAP_CHOWN"));
        let c = capabilities(
            Some(&with(&["SYS_ADMIN"], &["SYS_ADMIN", "kill"], &[])),
            false,
            None,
        )
        .unwrap();
        assert!(!c.has("CAP_SYS_ADMIN") && !c.has("CAP_KILL"));
        let c = capabilities(
            Some(&with(&[], &["ALL"], &["NET_BIND_SERVICE"])),
            false,
            None,
        )
        .unwrap();
        assert_eq!(names(&c), ["CAP_NET_BIND_SERVICE"]);
        assert_eq!(c.ambient.len(), 1);
        let c = capabilities(Some(&with(&[], &["ALL"], &[])), true, None).unwrap();
        // Privileged and ALL get only what crustd holds (no CAP_SYS_RESOURCE here).
        let current = names_of_mask(!(1u64 << 24) & ((1u64 << 41) - 1));
        assert!(current.contains(&"CAP_CHOWN".to_string()));
        assert!(!current.contains(&"CAP_SYS_RESOURCE".to_string()));
        let p = capabilities(None, true, Some(&current)).unwrap();
        assert!(p.has("CAP_SYS_ADMIN") && !p.has("CAP_SYS_RESOURCE"));
        let a = capabilities(Some(&with(&["ALL"], &[], &[])), false, Some(&current)).unwrap();
        assert!(!a.has("CAP_SYS_RESOURCE") && a.set.len() == 40);
        assert_eq!(c.set.len(), 41);
    }

    #[test]
    fn unknown_capability() {
        for sc in [
            with(&["CAP_FLY"], &[], &[]),
            with(&[], &["fly"], &[]),
            with(&[], &[], &["x"]),
        ] {
            assert!(matches!(
                capabilities(Some(&sc), false, None),
                Err(SpecError::UnknownCapability(_))
            ));
        }
    }

    #[test]
    fn apparmor_choices() {
        let mut w = Vec::new();
        let mut host = Host::default();
        assert_eq!(apparmor(None, false, &host, &mut w).unwrap(), None);
        assert!(w.is_empty());
        #[allow(deprecated)]
        let sc = LinuxContainerSecurityContext {
            apparmor_profile: "localhost/mine".into(),
            ..Default::default()
        };
        assert_eq!(apparmor(Some(&sc), false, &host, &mut w).unwrap(), None);
        assert_eq!(w.len(), 1);
        host.apparmor = true;
        assert_eq!(
            apparmor(Some(&sc), false, &host, &mut w)
                .unwrap()
                .as_deref(),
            Some("mine")
        );
        assert_eq!(
            apparmor(None, false, &host, &mut w).unwrap().as_deref(),
            Some(DEFAULT_APPARMOR_PROFILE)
        );
        assert_eq!(apparmor(None, true, &host, &mut w).unwrap(), None);
    }
}
