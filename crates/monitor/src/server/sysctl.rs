//! Sysctls in the pod's namespaces: which ones a monitor will apply, and applying them.
//!
//! A sysctl written through `/proc/sys` applies to the writer's namespace for the namespaced
//! ones (network, ipc, uts) and to the whole host for all others. So the monitor refuses any
//! sysctl that is not namespaced by a namespace the pod has of its own: a pod must never change
//! the host. The value must be one line, so it cannot smuggle in a second setting.

use std::{io::Write, path::PathBuf};

use crust_sys::Namespace;

/// A sysctl checked for the pod's namespaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sysctl {
    /// As given (`net.ipv4.ip_forward` or `net/ipv4/ip_forward`).
    pub key: String,
    pub value: String,
    /// Under `/proc/sys`.
    pub path: PathBuf,
}

/// IPC sysctls under `kernel.` (see ipc/ipc_sysctl.c).
const IPC_KERNEL: &[&str] = &[
    "shmmax",
    "shmall",
    "shmmni",
    "shm_rmid_forced",
    "msgmax",
    "msgmni",
    "msgmnb",
    "sem",
    "auto_msgmni",
    "sem_next_id",
    "msg_next_id",
    "shm_next_id",
];

/// The namespace that scopes a sysctl, given its path components; `None` for host-wide ones.
/// crustd's request validation asks the same, so what it accepts the monitor applies.
pub fn namespace_of(parts: &[&str]) -> Option<Namespace> {
    match parts {
        ["net", _, ..] => Some(Namespace::Net),
        ["kernel", name] if IPC_KERNEL.contains(name) => Some(Namespace::Ipc),
        ["fs", "mqueue", _] => Some(Namespace::Ipc),
        ["kernel", "hostname" | "domainname"] => Some(Namespace::Uts),
        _ => None,
    }
}

/// The longest sysctl name accepted (crustd's request validation uses the same limit).
pub const MAX_NAME: usize = 256;

/// Checks `key=value` against the namespaces the pod has of its own (`own`).
pub fn check(key: &str, value: &str, own: &[Namespace]) -> Result<Sysctl, String> {
    let bad = |why: &str| format!("sysctl {key:?}: {why}");
    if key.is_empty() || key.len() > MAX_NAME {
        return Err(bad("the name must be 1 to 256 bytes long"));
    }
    if !key
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/'))
    {
        return Err(bad(
            "the name may hold only letters, digits, '_', '-', '.' and '/'",
        ));
    }
    // The slash form keeps dots in components (an interface name such as eth0.100).
    let separator = if key.contains('/') { '/' } else { '.' };
    let parts: Vec<&str> = key.split(separator).collect();
    if parts
        .iter()
        .any(|p| p.is_empty() || *p == "." || *p == "..")
    {
        return Err(bad("empty or relative component in the name"));
    }
    if value.contains(['\n', '\r', '\0']) {
        return Err(bad("the value must be a single line"));
    }
    if value.len() > 4096 {
        return Err(bad("the value is longer than 4096 bytes"));
    }
    let ns = namespace_of(&parts).ok_or_else(|| bad("not namespaced: it would change the host"))?;
    if !own.contains(&ns) {
        return Err(bad(&format!(
            "applies to the {ns} namespace, which the pod shares with the host"
        )));
    }
    Ok(Sysctl {
        key: key.to_string(),
        value: value.to_string(),
        path: PathBuf::from("/proc/sys").join(parts.join("/")),
    })
}

/// Writes the value, for the caller's current namespaces.
pub fn apply(sysctl: &Sysctl) -> Result<(), String> {
    let fail = |e: std::io::Error| format!("applying sysctl {}={}: {e}", sysctl.key, sysctl.value);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(&sysctl.path)
        .map_err(fail)?;
    file.write_all(sysctl.value.as_bytes()).map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: &[Namespace] = &[Namespace::Net, Namespace::Ipc, Namespace::Uts];

    #[test]
    fn namespaced_sysctls_map_to_proc_paths() {
        let s = check("net.ipv4.ip_unprivileged_port_start", "80", ALL).unwrap();
        assert_eq!(
            s.path,
            PathBuf::from("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        );
        let s = check("net/ipv4/conf/eth0.100/rp_filter", "1", ALL).unwrap();
        assert_eq!(
            s.path,
            PathBuf::from("/proc/sys/net/ipv4/conf/eth0.100/rp_filter")
        );
        assert!(check("kernel.shmmni", "8192", ALL).is_ok());
        assert!(check("kernel.sem", "250 32000 32 128", ALL).is_ok());
        assert!(check("fs.mqueue.msg_max", "20", ALL).is_ok());
        assert!(check("kernel.domainname", "example", ALL).is_ok());
    }

    #[test]
    fn host_wide_or_uncovered_sysctls_are_refused() {
        let err = check("kernel.panic", "1", ALL).unwrap_err();
        assert!(err.contains("not namespaced"), "{err}");
        let err = check("vm.overcommit_memory", "1", ALL).unwrap_err();
        assert!(err.contains("not namespaced"), "{err}");
        let err = check("net.ipv4.ip_forward", "1", &[Namespace::Ipc]).unwrap_err();
        assert!(err.contains("applies to the net namespace"), "{err}");
        let err = check("kernel.shmmax", "1", &[Namespace::Net]).unwrap_err();
        assert!(err.contains("applies to the ipc namespace"), "{err}");
    }

    #[test]
    fn injection_and_traversal_are_refused() {
        assert!(check("net.ipv4.ip_forward", "1\nkernel.panic=1", ALL).is_err());
        assert!(check("net.ipv4.ip_forward", "1\0", ALL).is_err());
        assert!(check("net/../kernel/panic", "1", ALL).is_err());
        assert!(check("net..ipv4", "1", ALL).is_err());
        assert!(check("net.ipv4 ip_forward", "1", ALL).is_err());
        assert!(check("", "1", ALL).is_err());
        assert!(check("net", "1", ALL).is_err());
    }
}
