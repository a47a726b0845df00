//! A bounded, seeded fuzz run of the request validators RunPodSandbox goes through (CI runs
//! it; no nightly needed): pod sysctls, the hostname, the DNS config, the pod cgroup parent,
//! and crustd's TOML config. Arbitrary strings and maps never panic, and what a validator
//! accepts is safe to use as it is:
//! - a sysctl is one of the namespaced ones, in a namespace the pod owns, its /proc/sys path
//!   has no `..`, and its value is one line with no second `key=value` in it (CVE-2022-0811);
//!   the dot and the slash form of a key get the same answer, and the monitor (which applies
//!   it) agrees;
//! - a hostname is RFC 1123 and fits the kernel's UTS name;
//! - DNS entries add no line to resolv.conf;
//! - a cgroup parent has no `.`/`..` component or NUL and stays under the hierarchy root;
//! - a config that loads serialises back to TOML that loads to the same config.
//!
//! `CRUST_FUZZ_CASES=100000 cargo test -p crust-server --test fuzz_validation` runs longer;
//! `CRUST_FUZZ_SEED=<n>` picks another seed (the seed in use is printed on failure).

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use crust_monitor::server::sysctl as monitor_sysctl;
use crust_server::config::CgroupDriver;
use crust_server::sandbox::cgroup::{controller_dir, pod_cgroup_path, Layout};
use crust_server::sandbox::files::{hosts, resolv_conf, validate_dns, validate_hostname};
use crust_server::sandbox::sysctl::{validate, SysctlError};
use crust_server::Config;
use crust_sys::Namespace;
use k8s_cri::v1::DnsConfig;
use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};

/// Runs `check` over `strategy`; returns how many cases it counted as accepted.
fn run<S: Strategy>(
    cases: u32,
    strategy: S,
    check: impl Fn(S::Value) -> Result<bool, TestCaseError>,
) -> usize {
    let mut runner = TestRunner::new(crust_fuzzing::config(cases));
    let accepted = std::cell::Cell::new(0usize);
    runner
        .run(&strategy, |v| {
            if check(v)? {
                accepted.set(accepted.get() + 1);
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    accepted.get()
}

// ---------------------------------------------------------------------------------------
// Sysctls

/// Components of sysctl names: the namespaced prefixes, node-wide names, and hostile bits.
fn sysctl_component() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "net", "ipv4", "ipv6", "conf", "all", "eth0", "ip_forward", "ping_group_range",
            "kernel", "shmmax", "shm_rmid_forced", "msgmax", "sem", "sem_next_id", "fs",
            "mqueue", "msg_max", "core_pattern", "hostname", "modprobe", "vm", "overcommit_memory",
            "file-max", "pid_max", "shmfoo", "semx",
        ])
        .prop_map(String::from),
        1 => prop::sample::select(vec!["..", ".", "", "eth0.100", "a b", "a=b", "x\n", "\0", "é"])
            .prop_map(String::from),
        1 => "[a-z0-9_.-]{1,6}",
        1 => ".{0,4}",
    ]
}

fn sysctl_key() -> impl Strategy<Value = String> {
    prop_oneof![
        // Namespaced-looking names, in either form, sometimes with a bad last component.
        4 => (
            prop::sample::select(vec![
                "net.ipv4", "net.ipv6.conf.all", "net", "kernel", "fs.mqueue", "fs", "vm",
            ]),
            sysctl_component(),
            any::<bool>(),
        )
            .prop_map(|(prefix, last, slash)| {
                let key = format!("{prefix}.{last}");
                if slash {
                    format!("{}/{last}", prefix.replace('.', "/"))
                } else {
                    key
                }
            }),
        4 => (
            prop::collection::vec(sysctl_component(), 1..6),
            prop_oneof![3 => Just('.'), 2 => Just('/')],
        )
            .prop_map(|(parts, sep)| parts.join(&sep.to_string())),
        // Long names, near and past the monitor's 256-byte limit.
        1 => "net\\.ipv4\\.[a-z_]{240,260}",
        1 => ".{0,20}",
    ]
}

/// Values: numbers and ranges as pods set them, and attempts to add a second setting.
fn sysctl_value() -> impl Strategy<Value = String> {
    prop_oneof![
        16 => "[0-9]{1,6}( [0-9]{1,6}){0,3}",
        1 => Just("1\nkernel.core_pattern=|/evil".to_string()),
        1 => Just("1+kernel.core_pattern=|/evil".to_string()),
        1 => Just("1 kernel.core_pattern=|/evil".to_string()),
        1 => Just("1\0".to_string()),
        1 => Just("1\r".to_string()),
        1 => "[0-9 \t=+\n\r\0a-z.|/]{0,12}",
        1 => ".{0,16}",
        1 => "[0-9]{4090,4100}",
    ]
}

/// The namespace a /proc/sys path (components) lives in, per the kernel, for the names the
/// server may pass: `None` for node-wide ones.
fn kernel_namespace(parts: &[&str]) -> Option<&'static str> {
    match parts {
        ["net", _, ..] => Some("network"),
        // The kernel's ipc/ipc_sysctl.c table, written out here rather than taken from the
        // code under test.
        ["kernel", "shmmax" | "shmall" | "shmmni" | "shm_rmid_forced" | "msgmax" | "msgmni" | "msgmnb"
        | "sem" | "auto_msgmni" | "sem_next_id" | "msg_next_id" | "shm_next_id"] => Some("ipc"),
        ["fs", "mqueue", _] => Some("ipc"),
        _ => None,
    }
}

fn variant(r: &Result<String, SysctlError>) -> &'static str {
    match r {
        Ok(_) => "Ok",
        Err(SysctlError::BadName { .. }) => "BadName",
        Err(SysctlError::BadValue { .. }) => "BadValue",
        Err(SysctlError::NotNamespaced { .. }) => "NotNamespaced",
        Err(SysctlError::HostNamespace { .. }) => "HostNamespace",
    }
}

/// The same key in the other form, when it has one: a dotted key's components joined with
/// slashes, a slash key's with dots (only when no component holds a dot).
fn other_form(key: &str) -> Option<String> {
    if key.contains('/') {
        (!key.contains('.')).then(|| key.replace('/', "."))
    } else {
        Some(key.replace('.', "/"))
    }
}

fn check_sysctl(
    key: &str,
    value: &str,
    host_net: bool,
    host_ipc: bool,
) -> Result<bool, TestCaseError> {
    let result = validate(key, value, host_net, host_ipc);
    if let Some(other) = other_form(key) {
        let again = validate(&other, value, host_net, host_ipc);
        prop_assert_eq!(
            variant(&result),
            variant(&again),
            "{:?} and {:?} answered differently: {:?} / {:?}",
            key,
            other,
            result,
            again
        );
    }
    let accepted = match result {
        Err(e) => {
            // Every refusal names the field and the key.
            let msg = e.to_string();
            prop_assert!(msg.starts_with("config.linux.sysctls "), "{}", msg);
            prop_assert!(msg.contains(&format!("{key:?}")), "{}", msg);
            return Ok(false);
        }
        Ok(k) => k,
    };
    prop_assert_eq!(&accepted, key);
    // The value is one printable line holding no second setting.
    prop_assert!(!value.is_empty() && value.len() <= 4096, "{:?}", value);
    prop_assert!(
        !value.contains(['\n', '\r', '\0', '=', '+']),
        "{:?}={:?} accepted",
        key,
        value
    );
    prop_assert!(
        !value.chars().any(|c| c.is_control() && c != '\t'),
        "{:?}",
        value
    );
    // The name is a clean relative path under /proc/sys in a namespace the pod owns.
    let sep = if key.contains('/') { '/' } else { '.' };
    let parts: Vec<&str> = key.split(sep).collect();
    prop_assert!(!key.contains(['=', '\0', ' ', '\n']), "{:?}", key);
    for p in &parts {
        prop_assert!(
            !p.is_empty() && *p != "." && *p != "..",
            "component {:?} in {:?}",
            p,
            key
        );
        prop_assert!(
            p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')),
            "component {:?} in {:?}",
            p,
            key
        );
    }
    let path = Path::new("/proc/sys").join(parts.join("/"));
    prop_assert!(
        path.components()
            .skip(1)
            .all(|c| matches!(c, Component::Normal(_))),
        "{:?}",
        path
    );
    let namespace = kernel_namespace(&parts);
    prop_assert!(namespace.is_some(), "node-wide sysctl {:?} accepted", key);
    match namespace {
        Some("network") => prop_assert!(!host_net, "{:?} accepted on the node's network", key),
        _ => prop_assert!(!host_ipc, "{:?} accepted on the node's IPC namespace", key),
    }
    Ok(true)
}

#[test]
fn sysctls_outside_the_namespaced_list_or_smuggling_a_setting_are_refused() {
    let strategy = (
        prop::collection::btree_map(sysctl_key(), sysctl_value(), 1..5),
        any::<bool>(),
        any::<bool>(),
    );
    let cases = crust_fuzzing::config(3000).cases as usize;
    let accepted = run(3000, strategy, |(sysctls, host_net, host_ipc)| {
        let mut any = false;
        for (key, value) in &sysctls {
            any |= check_sysctl(key, value, host_net, host_ipc)?;
        }
        Ok(any)
    });
    eprintln!("{accepted} of {cases} cases had an accepted sysctl");
    assert!(
        accepted * 10 >= cases,
        "only {accepted} of {cases} cases reached an accepted sysctl"
    );
}

/// Every sysctl RunPodSandbox accepts is one the pod's monitor applies, at the same path: a
/// refusal there comes after the pod was half made, with a vaguer error.
#[test]
fn the_monitor_applies_every_sysctl_the_server_accepts() {
    let strategy = (sysctl_key(), sysctl_value(), any::<bool>(), any::<bool>());
    run(3000, strategy, |(key, value, host_net, host_ipc)| {
        if validate(&key, &value, host_net, host_ipc).is_err() {
            return Ok(false);
        }
        let mut own = vec![Namespace::Uts];
        if !host_net {
            own.push(Namespace::Net);
        }
        if !host_ipc {
            own.push(Namespace::Ipc);
        }
        let applied = monitor_sysctl::check(&key, &value, &own);
        prop_assert!(
            applied.is_ok(),
            "server accepts {:?}={:?}, monitor: {:?}",
            key,
            value,
            applied
        );
        let applied = applied.unwrap();
        let sep = if key.contains('/') { '/' } else { '.' };
        prop_assert_eq!(
            applied.path,
            Path::new("/proc/sys").join(key.split(sep).collect::<Vec<_>>().join("/"))
        );
        Ok(true)
    });
}

// ---------------------------------------------------------------------------------------
// Hostname and DNS

fn label() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?",
        1 => "[A-Za-z0-9-]{0,4}",
        1 => "[a-z]{60,66}",
        1 => "[a-z0-9_ .\n\0é-]{0,4}",
    ]
}

fn hostname() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => prop::collection::vec(label(), 1..5).prop_map(|l| l.join(".")),
        1 => ".{0,70}",
        1 => Just(String::new()),
        1 => Just("a.".to_string()),
        1 => "[a-z]{1,10}\n[a-z]{1,10}",
    ]
}

/// RFC 1123 host name, checked byte by byte, that also fits the kernel's 64-byte UTS name.
fn rfc1123(name: &str) -> bool {
    let b = name.as_bytes();
    if b.is_empty() || b.len() > 64 {
        return false;
    }
    let mut label_len = 0;
    for (i, &c) in b.iter().enumerate() {
        match c {
            b'.' => {
                if label_len == 0 || b[i - 1] == b'-' {
                    return false;
                }
                label_len = 0;
            }
            b'-' if label_len == 0 => return false,
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' => {
                label_len += 1;
                if label_len > 63 {
                    return false;
                }
            }
            _ => return false,
        }
    }
    label_len > 0 && b[b.len() - 1] != b'-'
}

#[test]
fn accepted_hostnames_are_rfc1123_and_valid_ones_are_accepted() {
    let cases = crust_fuzzing::config(4000).cases as usize;
    let accepted = run(4000, hostname(), |name| {
        let ok = validate_hostname(&name).is_ok();
        prop_assert_eq!(ok, rfc1123(&name), "{:?}", name);
        if ok {
            // The hosts file gets one line per IP, none more.
            let ips = ["10.88.0.2".to_string(), "fd00::2".to_string()];
            let h = hosts(&name, &ips);
            prop_assert_eq!(h.lines().count(), 7 + ips.len());
            let last = format!("fd00::2\t{name}\n");
            prop_assert!(h.ends_with(&last), "{:?}", h);
        } else {
            let e = validate_hostname(&name).unwrap_err();
            prop_assert!(e.contains("hostname"), "{}", e);
        }
        Ok(ok)
    });
    eprintln!("{accepted} of {cases} hostnames accepted");
    assert!(accepted * 5 >= cases, "only {accepted} of {cases} accepted");
}

fn dns_entry() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z0-9.:-]{1,15}",
        2 => prop::sample::select(vec![
            "ndots:5", "edns0", "timeout:2", "10.96.0.10", "fd00::10", "svc.cluster.local",
        ])
        .prop_map(String::from),
        1 => prop::sample::select(vec![
            "ndots:5\nnameserver 6.6.6.6", "edns0 rotate", "a\rb", "x\0", "", "\u{2028}",
            "a\u{85}b", "tab\there",
        ])
        .prop_map(String::from),
        1 => ".{0,10}",
    ]
}

#[test]
fn accepted_dns_config_adds_no_line_to_resolv_conf() {
    let entries = || prop::collection::vec(dns_entry(), 0..4);
    let strategy =
        (entries(), entries(), entries()).prop_map(|(servers, searches, options)| DnsConfig {
            servers,
            searches,
            options,
        });
    let cases = crust_fuzzing::config(3000).cases as usize;
    let accepted = run(3000, strategy, |dns| {
        if let Err(e) = validate_dns(&dns) {
            prop_assert!(e.starts_with("dns_config: "), "{}", e);
            return Ok(false);
        }
        for item in dns.servers.iter().chain(&dns.searches).chain(&dns.options) {
            prop_assert!(!item.is_empty());
            prop_assert!(
                !item.chars().any(|c| c.is_whitespace() || c.is_control()),
                "{:?} accepted",
                item
            );
        }
        let Some(text) = resolv_conf(&dns) else {
            prop_assert!(dns.servers.is_empty() && dns.searches.is_empty());
            prop_assert!(dns.options.is_empty());
            return Ok(true);
        };
        // One line per nameserver, one for the searches and one for the options: no more,
        // whatever a resolver takes for a line break.
        let expected = dns.servers.len()
            + usize::from(!dns.searches.is_empty())
            + usize::from(!dns.options.is_empty());
        let breaks = text
            .chars()
            .filter(|c| matches!(c, '\n' | '\r' | '\u{b}' | '\u{c}' | '\u{85}' | '\u{2028}'))
            .count();
        prop_assert_eq!(breaks, expected, "{:?}", text);
        let servers: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("nameserver "))
            .collect();
        prop_assert_eq!(
            servers,
            dns.servers.iter().map(String::as_str).collect::<Vec<_>>()
        );
        Ok(true)
    });
    eprintln!("{accepted} of {cases} DNS configs accepted");
    assert!(accepted * 5 >= cases, "only {accepted} of {cases} accepted");
}

// ---------------------------------------------------------------------------------------
// Cgroup parents

fn cgroup_parent() -> impl Strategy<Value = String> {
    let part = prop_oneof![
        6 => "[a-z0-9_]{1,8}",
        1 => prop::sample::select(vec!["..", ".", "", "...", "..a", "\0", "a\nb", "é"])
            .prop_map(String::from),
        1 => ".{0,4}",
    ];
    let slice_part = prop_oneof![
        6 => "[a-z0-9_]{1,8}",
        1 => prop::sample::select(vec!["", "..", ".", "a/b", "\0", "a b", "a\nb", "/..", "é"])
            .prop_map(String::from),
        1 => ".{0,4}",
    ];
    prop_oneof![
        3 => prop::collection::vec(part, 0..5).prop_map(|p| format!("/{}", p.join("/"))),
        1 => prop::collection::vec("[a-z0-9./_]{0,8}", 0..4).prop_map(|p| p.join("/")),
        3 => prop::collection::vec(slice_part, 1..4).prop_map(|p| format!("{}.slice", p.join("-"))),
        1 => prop::sample::select(vec![
            "/", "//", "-.slice", ".slice", "..slice", "...slice", "/kubepods/../..", "kubepods.slice/../x.slice",
        ])
        .prop_map(String::from),
        1 => ".{0,16}",
    ]
}

#[test]
fn accepted_cgroup_parents_stay_under_the_hierarchy_root() {
    let root = PathBuf::from("/sys/fs/cgroup");
    let layout = Layout::V2(root.clone());
    let v1 = Layout::V1(BTreeMap::from([(
        "memory".to_string(),
        PathBuf::from("/sys/fs/cgroup/memory"),
    )]));
    let strategy = (cgroup_parent(), any::<bool>());
    let cases = crust_fuzzing::config(4000).cases as usize;
    let accepted = run(4000, strategy, |(parent, systemd)| {
        let driver = if systemd {
            CgroupDriver::Systemd
        } else {
            CgroupDriver::Cgroupfs
        };
        let path = match pod_cgroup_path(&parent, driver) {
            Err(e) => {
                let msg = e.to_string();
                prop_assert!(msg.starts_with("cgroup_parent "), "{}", msg);
                return Ok(false);
            }
            Ok(path) => path,
        };
        prop_assert!(!path.contains('\0'), "{:?} gave {:?}", parent, path);
        prop_assert!(
            path.is_empty() || path.starts_with('/'),
            "{:?} gave {:?}",
            parent,
            path
        );
        for c in path.split('/').skip(1) {
            prop_assert!(
                c != "." && c != "..",
                "{:?} gave {:?} with a {:?} component",
                parent,
                path,
                c
            );
        }
        if systemd {
            // Each level is a slice whose name systemd takes (its unit name characters).
            for c in path.split('/').skip(1) {
                prop_assert!(
                    c.ends_with(".slice") && c.len() > 6,
                    "{:?} in {:?}",
                    c,
                    path
                );
                prop_assert!(
                    c.bytes().all(|b| b.is_ascii_alphanumeric()
                        || matches!(b, b':' | b'_' | b'.' | b'-' | b'\\')),
                    "{:?} gave {:?}",
                    parent,
                    path
                );
            }
        }
        for (layout, top) in [(&layout, root.clone()), (&v1, root.join("memory"))] {
            let dir = controller_dir(layout, "memory", &path).unwrap();
            prop_assert!(dir.starts_with(&top), "{:?} gave {:?}", parent, dir);
            prop_assert!(
                dir.strip_prefix(&top)
                    .unwrap()
                    .components()
                    .all(|c| matches!(c, Component::Normal(_))),
                "{:?} gave {:?}",
                parent,
                dir
            );
        }
        Ok(true)
    });
    eprintln!("{accepted} of {cases} cgroup parents accepted");
    assert!(accepted * 5 >= cases, "only {accepted} of {cases} accepted");
}

// ---------------------------------------------------------------------------------------
// The TOML config

fn toml_value() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => "[a-z0-9 ._:/-]{0,12}".prop_map(|s| format!("{s:?}")),
        1 => prop::sample::select(vec![
            "\"127.0.0.1:0\"", "\"[::1]:10010\"", "\"5m\"", "\"0s\"", "\"1h 30m\"",
            "\"99999999999999999h\"", "\"584942417355y\"", "\"info\"", "\"crust=debug,warn\"",
            "\"systemd\"", "\"cgroupfs\"", "\"/usr/bin/runc\"", "\"runc\"", "\"\"", "0", "1", "-1",
            "18446744073709551616", "true", "[]", "[\"/opt/cni/bin\"]", "{}", "1.5",
        ])
        .prop_map(String::from),
        1 => any::<i64>().prop_map(|n| n.to_string()),
    ]
}

/// A config file made of known keys (and a few unknown ones) with random values.
fn toml_text() -> impl Strategy<Value = String> {
    let key = prop::sample::select(vec![
        "log_level",
        "registry.config_path",
        "registry.image_pull_progress_timeout",
        "registry.max_concurrent_downloads",
        "network.conf_dir",
        "network.bin_dirs",
        "network.default_conflist",
        "runtime.default_handler",
        "runtime.cgroup_driver",
        "runtime.monitor_path",
        "runtimes.runc.path",
        "runtimes.\"bad name\".path",
        "runtimes.crun.path",
        "streaming.address",
        "streaming.stream_idle_timeout",
        "streaming.tls_cert_file",
        "streaming.tls_key_file",
        "metrics.address",
        "nope",
        "runtime.nope",
    ]);
    prop_oneof![
        6 => prop::collection::btree_map(key, toml_value(), 0..7).prop_map(|m| {
            m.into_iter()
                .map(|(k, v)| format!("{k} = {v}\n"))
                .collect::<String>()
        }),
        1 => ".{0,40}",
        1 => "[\\[\\]a-z=\"\n .]{0,40}",
    ]
}

#[test]
fn configs_that_load_serialise_back_to_the_same_config() {
    let file = Path::new("/etc/crust/fuzz.toml");
    let cases = crust_fuzzing::config(1500).cases as usize;
    let accepted = run(1500, toml_text(), |text| {
        let config = match Config::parse(&text, file) {
            Err(e) => {
                let msg = e.to_string();
                prop_assert!(msg.starts_with("config /etc/crust/fuzz.toml: "), "{}", msg);
                prop_assert!(!msg.contains('\n'), "{:?}", msg);
                return Ok(false);
            }
            Ok(c) => c,
        };
        let again = toml::to_string(&config).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let reloaded = Config::parse(&again, file);
        prop_assert!(
            reloaded.is_ok(),
            "{:?} -> {:?}: {:?}",
            text,
            again,
            reloaded
        );
        prop_assert_eq!(reloaded.unwrap(), config, "{:?} -> {:?}", text, again);
        Ok(true)
    });
    eprintln!("{accepted} of {cases} configs loaded");
    assert!(accepted * 20 >= cases, "only {accepted} of {cases} loaded");
}
