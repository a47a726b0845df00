//! Pod sysctls: only those the kernel namespaces, and only for namespaces the pod owns.
//!
//! Kubernetes' "safe" and "unsafe" sysctls are both allowed here as long as they are
//! namespaced (the kubelet's allowlist is the policy; the runtime's job is to refuse what
//! would leak onto the node): the kernel's IPC sysctls (`kernel.shmmax`, `kernel.msgmnb`,
//! `kernel.sem`…, `fs.mqueue.*`) and `net.*`, as the monitor's table that applies them lists
//! them.

/// Why a sysctl was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SysctlError {
    #[error("config.linux.sysctls {key:?}: not a valid sysctl name")]
    BadName { key: String },
    #[error("config.linux.sysctls {key:?}: value {value:?} must be printable, on one line, without '=' or '+'")]
    BadValue { key: String, value: String },
    #[error("config.linux.sysctls {key:?} is not namespaced: it would change the node")]
    NotNamespaced { key: String },
    #[error(
        "config.linux.sysctls {key:?} needs the pod's own {namespace} namespace, but the pod shares the node's"
    )]
    HostNamespace {
        key: String,
        namespace: &'static str,
    },
}

/// Checks one sysctl; returns the key as given (dotted, or slash-separated when a component
/// holds a dot), which the monitor turns into its /proc/sys path. `host_net` / `host_ipc` say whether
/// the pod shares the node's network / IPC namespace.
pub fn validate(
    key: &str,
    value: &str,
    host_net: bool,
    host_ipc: bool,
) -> Result<String, SysctlError> {
    let bad_name = || SysctlError::BadName {
        key: key.to_string(),
    };
    // Kubernetes accepts both `net.ipv4.ip_forward` and `net/ipv4/ip_forward`. In the slash
    // form a dot belongs to a component (an interface name such as eth0.100).
    let parts: Vec<String> = if key.contains('/') {
        key.split('/').map(|s| s.to_string()).collect()
    } else {
        key.split('.').map(|s| s.to_string()).collect()
    };
    if parts.len() < 2
        || key.len() > crust_monitor::server::sysctl::MAX_NAME
        || parts.iter().any(|p| {
            p.is_empty()
                || p == "."
                || p == ".."
                || !p
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        })
    {
        return Err(bad_name());
    }
    // No namespaced sysctl takes '=' or '+': in a value they can only be meant to smuggle in a
    // second `key=value` for a helper that splits on them (CRI-O's pinns, CVE-2022-0811).
    if value.is_empty()
        || value.len() > 4096
        || value
            .chars()
            .any(|c| (c.is_control() && c != '\t') || matches!(c, '=' | '+'))
    {
        return Err(SysctlError::BadValue {
            key: key.to_string(),
            value: value.to_string(),
        });
    }
    // The monitor's own table; UTS ones are refused, the pod's hostname sets them.
    let components: Vec<&str> = parts.iter().map(String::as_str).collect();
    let namespace = match crust_monitor::server::sysctl::namespace_of(&components) {
        Some(crust_sys::Namespace::Net) => "network",
        Some(crust_sys::Namespace::Ipc) => "ipc",
        _ => return Err(SysctlError::NotNamespaced { key: key.into() }),
    };
    let shared = if namespace == "network" {
        host_net
    } else {
        host_ipc
    };
    if shared {
        return Err(SysctlError::HostNamespace {
            key: key.into(),
            namespace,
        });
    }
    Ok(key.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaced_sysctls_pass_in_pod_namespaces() {
        for key in [
            "net.ipv4.ip_forward",
            "net.ipv4.ip_local_port_range",
            "kernel.shmmax",
            "kernel.shm_rmid_forced",
            "kernel.msgmax",
            "kernel.sem",
            "fs.mqueue.msg_max",
        ] {
            assert!(validate(key, "1", false, false).is_ok(), "{key}");
        }
        assert_eq!(
            validate("net/ipv4/conf/eth0.100/forwarding", "1", false, false).unwrap(),
            "net/ipv4/conf/eth0.100/forwarding"
        );
        assert!(validate("kernel.sem", "250 32000 32 128", false, false).is_ok());
    }

    #[test]
    fn node_wide_sysctls_are_refused() {
        for key in [
            "kernel.hostname",
            "vm.overcommit_memory",
            "fs.file-max",
            "kernel.pid_max",
        ] {
            assert!(
                matches!(
                    validate(key, "1", false, false),
                    Err(SysctlError::NotNamespaced { .. })
                ),
                "{key}"
            );
        }
    }

    #[test]
    fn host_namespaces_refuse_their_sysctls() {
        assert!(matches!(
            validate("net.ipv4.ip_forward", "1", true, false),
            Err(SysctlError::HostNamespace {
                namespace: "network",
                ..
            })
        ));
        assert!(matches!(
            validate("kernel.shmmax", "1", false, true),
            Err(SysctlError::HostNamespace {
                namespace: "ipc",
                ..
            })
        ));
        assert!(validate("kernel.shmmax", "1", true, false).is_ok());
    }

    #[test]
    fn values_cannot_inject_a_second_setting_and_names_cannot_escape() {
        assert!(matches!(
            validate("net.ipv4.ip_forward", "1\nkernel.hostname=x", false, false),
            Err(SysctlError::BadValue { .. })
        ));
        for value in [
            "1+kernel.core_pattern=|/evil",
            "1 kernel.core_pattern=|/evil",
            "1+",
        ] {
            assert!(
                matches!(
                    validate("kernel.shm_rmid_forced", value, false, false),
                    Err(SysctlError::BadValue { .. })
                ),
                "{value}"
            );
        }
        assert!(validate("net.ipv4.ip_forward", "", false, false).is_err());
        assert!(validate("net.ipv4.ip_forward", "1\0", false, false).is_err());
        for key in [
            "net/../../etc/passwd",
            "net..x",
            "net",
            "net.ipv4.a b",
            "net.ipv4.a=b",
        ] {
            assert!(
                matches!(
                    validate(key, "1", false, false),
                    Err(SysctlError::BadName { .. })
                ),
                "{key}"
            );
        }
    }
}
