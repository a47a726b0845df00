//! The files every container of a pod shares: hostname, hosts and resolv.conf.

use std::path::Path;

use k8s_cri::v1::DnsConfig;

/// resolv.conf from the pod's DNSConfig, as containerd writes it; None means "use the node's".
pub fn resolv_conf(dns: &DnsConfig) -> Option<String> {
    if dns.servers.is_empty() && dns.searches.is_empty() && dns.options.is_empty() {
        return None;
    }
    let mut out = String::new();
    if !dns.searches.is_empty() {
        out.push_str(&format!("search {}\n", dns.searches.join(" ")));
    }
    for server in &dns.servers {
        out.push_str(&format!("nameserver {server}\n"));
    }
    if !dns.options.is_empty() {
        out.push_str(&format!("options {}\n", dns.options.join(" ")));
    }
    Some(out)
}

/// Refuses DNS entries that would smuggle extra lines into resolv.conf.
pub fn validate_dns(dns: &DnsConfig) -> Result<(), String> {
    for item in dns.servers.iter().chain(&dns.searches).chain(&dns.options) {
        if item.is_empty() || item.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("dns_config: invalid entry {item:?}"));
        }
    }
    Ok(())
}

/// A hosts file for a pod on its own network: localhost and the pod's hostname on its IPs.
pub fn hosts(hostname: &str, ips: &[String]) -> String {
    let mut out = String::from(
        "# Kubernetes-managed hosts file (written by crust).\n\
         127.0.0.1\tlocalhost\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\n\
         fe00::0\tip6-mcastprefix\n\
         fe00::1\tip6-allnodes\n\
         fe00::2\tip6-allrouters\n",
    );
    if !hostname.is_empty() {
        for ip in ips {
            out.push_str(&format!("{ip}\t{hostname}\n"));
        }
    }
    out
}

/// A valid RFC 1123 hostname (what the kernel's UTS name will hold).
pub fn validate_hostname(name: &str) -> Result<(), String> {
    let ok = name.len() <= 64
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "hostname {name:?} is not a valid RFC 1123 host name"
        ))
    }
}

/// Writes `contents` to `path` atomically, readable by every container user.
pub fn write_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    write_with_mode(path, contents, 0o644)
}

/// Writes `contents` to `path` atomically, readable by root only (a runtime spec holds the
/// container's environment, secrets included).
pub fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    write_with_mode(path, contents, 0o600)
}

/// Created with `mode` (never readable by others in between), set again past the umask.
fn write_with_mode(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)?;
    file.set_permissions(std::fs::Permissions::from_mode(mode))?;
    file.write_all(contents)?;
    drop(file);
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_from_dns_config() {
        let dns = DnsConfig {
            servers: vec!["10.96.0.10".into(), "fd00::a".into()],
            searches: vec![
                "default.svc.cluster.local".into(),
                "svc.cluster.local".into(),
            ],
            options: vec!["ndots:5".into(), "edns0".into()],
        };
        assert_eq!(
            resolv_conf(&dns).unwrap(),
            "search default.svc.cluster.local svc.cluster.local\n\
             nameserver 10.96.0.10\nnameserver fd00::a\noptions ndots:5 edns0\n"
        );
        assert_eq!(resolv_conf(&DnsConfig::default()), None);
    }

    #[test]
    fn dns_entries_cannot_add_lines() {
        let dns = DnsConfig {
            servers: vec!["1.1.1.1\nnameserver 6.6.6.6".into()],
            ..Default::default()
        };
        assert!(validate_dns(&dns).is_err());
        let ok = DnsConfig {
            servers: vec!["1.1.1.1".into()],
            ..Default::default()
        };
        assert!(validate_dns(&ok).is_ok());
    }

    #[test]
    fn hosts_maps_the_hostname_to_pod_ips() {
        let h = hosts("web-0", &["10.88.0.5".into()]);
        assert!(h.contains("127.0.0.1\tlocalhost\n"));
        assert!(h.ends_with("10.88.0.5\tweb-0\n"));
    }

    #[test]
    fn hostnames() {
        assert!(validate_hostname("web-0").is_ok());
        assert!(validate_hostname("a.b-c.d").is_ok());
        assert!(validate_hostname("-x").is_err());
        assert!(validate_hostname("a b").is_err());
        assert!(validate_hostname(&"a".repeat(65)).is_err());
        assert!(validate_hostname("").is_err());
    }
}
