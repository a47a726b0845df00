//! Devices, cgroup resources, OOM score and the cgroups path.

use std::path::{Path, PathBuf};

use k8s_cri::v1::LinuxContainerResources;
use oci_spec::runtime::{
    LinuxCpu, LinuxDevice, LinuxDeviceCgroup, LinuxDeviceType, LinuxHugepageLimit, LinuxMemory,
    LinuxResources,
};

use crate::{CgroupDriver, DeviceKind, Host, HostDevice, Input, SpecError};

/// What [`build`] adds to the spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resources {
    pub resources: LinuxResources,
    /// `spec.linux.devices`: the nodes the runtime creates in the container's /dev.
    pub devices: Vec<LinuxDevice>,
    /// `process.oomScoreAdj`.
    pub oom_score_adj: Option<i32>,
}

fn kind(k: DeviceKind) -> LinuxDeviceType {
    match k {
        DeviceKind::Char => LinuxDeviceType::C,
        DeviceKind::Block => LinuxDeviceType::B,
    }
}

fn oci_device(d: &HostDevice, container_path: &Path) -> LinuxDevice {
    let mut o = LinuxDevice::default();
    o.set_path(container_path.to_path_buf());
    o.set_typ(kind(d.kind));
    o.set_major(d.major);
    o.set_minor(d.minor);
    o.set_file_mode(Some(d.file_mode));
    o.set_uid(Some(d.uid));
    o.set_gid(Some(d.gid));
    o
}

fn rule(
    allow: bool,
    typ: LinuxDeviceType,
    major: Option<i64>,
    minor: Option<i64>,
    access: &str,
) -> LinuxDeviceCgroup {
    let mut r = LinuxDeviceCgroup::default();
    r.set_allow(allow);
    r.set_typ(Some(typ));
    r.set_major(major);
    r.set_minor(minor);
    r.set_access(Some(access.to_string()));
    r
}

fn non_negative(field: &'static str, value: i64) -> Result<i64, SpecError> {
    if value < 0 {
        Err(SpecError::NegativeResource { field, value })
    } else {
        Ok(value)
    }
}

fn valid_cpuset(field: &'static str, value: &str) -> Result<Option<String>, SpecError> {
    if value.is_empty() {
        return Ok(None);
    }
    let ok = value.split(',').all(|part| {
        let mut ends = part.splitn(2, '-');
        ends.all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    });
    if ok {
        Ok(Some(value.to_string()))
    } else {
        Err(SpecError::InvalidResource {
            field,
            value: value.to_string(),
        })
    }
}

fn valid_page_size(size: &str) -> bool {
    let digits = size.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &size[digits.len()..];
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && matches!(unit, "kB" | "KB" | "MB" | "GB" | "TB" | "PB")
}

/// Devices (requested ones, and for privileged containers every host device), the device
/// cgroup rules, and the request's `linux.resources`.
pub fn build(input: &Input, privileged: bool) -> Result<Resources, SpecError> {
    let mut devices = Vec::new();
    let mut rules = Vec::new();
    if privileged {
        rules.push(rule(true, LinuxDeviceType::A, None, None, "rwm"));
        for d in &input.host.devices {
            devices.push(oci_device(d, &d.path));
        }
    } else {
        rules.push(rule(false, LinuxDeviceType::A, None, None, "rwm"));
    }
    for req in &input.config.devices {
        let perms = req.permissions.as_str();
        if perms.is_empty() || !perms.chars().all(|c| "rwm".contains(c)) {
            return Err(SpecError::DevicePermissions {
                path: req.host_path.clone(),
                permissions: perms.to_string(),
            });
        }
        let host_path = crate::mounts::clean_absolute("device host_path", &req.host_path)?;
        let container_path = if req.container_path.is_empty() {
            host_path.clone()
        } else {
            crate::mounts::clean_absolute("device container_path", &req.container_path)?
        };
        let d = input
            .host
            .devices
            .iter()
            .find(|d| d.path == host_path)
            .ok_or_else(|| SpecError::UnknownDevice(req.host_path.clone()))?;
        devices.retain(|o: &LinuxDevice| o.path() != &container_path);
        devices.push(oci_device(d, &container_path));
        if !privileged {
            rules.push(rule(
                true,
                kind(d.kind),
                Some(d.major),
                Some(d.minor),
                perms,
            ));
        }
    }

    let mut resources = LinuxResources::default();
    resources.set_devices(Some(rules));
    let mut oom_score_adj = None;
    if let Some(r) = input
        .config
        .linux
        .as_ref()
        .and_then(|l| l.resources.as_ref())
    {
        apply(&mut resources, r, &input.host)?;
        if !(-1000..=1000).contains(&r.oom_score_adj) {
            return Err(SpecError::OomScoreAdj(r.oom_score_adj));
        }
        // Without CAP_SYS_RESOURCE the runtime cannot lower the score below crustd's own.
        oom_score_adj = Some((r.oom_score_adj as i32).max(input.host.oom_score_adj));
    }
    Ok(Resources {
        resources,
        devices,
        oom_score_adj,
    })
}

fn apply(
    out: &mut LinuxResources,
    r: &LinuxContainerResources,
    host: &Host,
) -> Result<(), SpecError> {
    let period = non_negative("cpu_period", r.cpu_period)?;
    let quota = non_negative("cpu_quota", r.cpu_quota)?;
    let shares = non_negative("cpu_shares", r.cpu_shares)?;
    let memory = non_negative("memory_limit_in_bytes", r.memory_limit_in_bytes)?;
    let swap = non_negative("memory_swap_limit_in_bytes", r.memory_swap_limit_in_bytes)?;

    let mut cpu = LinuxCpu::default();
    if period > 0 {
        cpu.set_period(Some(period as u64));
    }
    if quota > 0 {
        cpu.set_quota(Some(quota));
    }
    if shares > 0 {
        cpu.set_shares(Some(shares as u64));
    }
    cpu.set_cpus(valid_cpuset("cpuset_cpus", &r.cpuset_cpus)?);
    cpu.set_mems(valid_cpuset("cpuset_mems", &r.cpuset_mems)?);
    if cpu != LinuxCpu::default() {
        out.set_cpu(Some(cpu));
    }

    let mut mem = LinuxMemory::default();
    if memory > 0 {
        mem.set_limit(Some(memory));
    }
    if swap > 0 {
        if memory > 0 && swap < memory {
            return Err(SpecError::SwapBelowMemory { swap, memory });
        }
        mem.set_swap(Some(swap));
    } else if memory > 0 && host.swap_accounting {
        // No swap on top of the memory limit, as kubelet expects by default.
        mem.set_swap(Some(memory));
    }
    if mem != LinuxMemory::default() {
        out.set_memory(Some(mem));
    }

    let mut pages = Vec::new();
    for h in &r.hugepage_limits {
        if !valid_page_size(&h.page_size) {
            return Err(SpecError::InvalidResource {
                field: "hugepage_limits.page_size",
                value: h.page_size.clone(),
            });
        }
        let limit = i64::try_from(h.limit).map_err(|_| SpecError::InvalidResource {
            field: "hugepage_limits.limit",
            value: h.limit.to_string(),
        })?;
        let mut p = LinuxHugepageLimit::default();
        p.set_page_size(h.page_size.clone());
        p.set_limit(limit);
        pages.push(p);
    }
    if !pages.is_empty() {
        out.set_hugepage_limits(Some(pages));
    }

    if !r.unified.is_empty() {
        if !host.cgroup_v2 {
            let mut keys: Vec<&String> = r.unified.keys().collect();
            keys.sort();
            return Err(SpecError::UnifiedOnV1(keys[0].clone()));
        }
        out.set_unified(Some(r.unified.clone()));
    }
    Ok(())
}

/// The cgroups path: `<parent or /crust>/crust-<id>` for cgroupfs, and
/// `<parent slice or system.slice>:crust:<id>` for systemd (a cgroupfs-form parent such as
/// `/kubepods/burstable/pod1` becomes the slice `kubepods-burstable-pod1.slice`, as kubelet
/// names it).
pub fn cgroups_path(host: &Host, parent: &str, container_id: &str) -> Result<PathBuf, SpecError> {
    match host.cgroup_driver {
        CgroupDriver::Cgroupfs => {
            let parent = if parent.is_empty() { "/crust" } else { parent };
            if !parent.starts_with('/') {
                return Err(SpecError::InvalidCgroupParent(parent.to_string()));
            }
            Ok(Path::new(parent).join(format!("crust-{container_id}")))
        }
        CgroupDriver::Systemd => {
            let slice = systemd_slice(parent)?;
            Ok(PathBuf::from(format!("{slice}:crust:{container_id}")))
        }
    }
}

fn systemd_slice(parent: &str) -> Result<String, SpecError> {
    let trimmed = parent.trim_matches('/');
    if trimmed.is_empty() {
        return Ok("system.slice".to_string());
    }
    let last = trimmed.rsplit('/').next().unwrap_or(trimmed);
    if last.ends_with(".slice") {
        return Ok(last.to_string());
    }
    let parts: Vec<String> = trimmed.split('/').map(|p| p.replace('-', "_")).collect();
    if parts.iter().any(|p| p.is_empty() || p == "." || p == "..") {
        return Err(SpecError::InvalidCgroupParent(parent.to_string()));
    }
    Ok(format!("{}.slice", parts.join("-")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_paths() {
        let mut host = Host::default();
        assert_eq!(
            cgroups_path(&host, "", "abc").unwrap(),
            PathBuf::from("/crust/crust-abc")
        );
        assert_eq!(
            cgroups_path(&host, "/kubepods/pod1", "abc").unwrap(),
            PathBuf::from("/kubepods/pod1/crust-abc")
        );
        assert!(cgroups_path(&host, "kubepods", "abc").is_err());
        host.cgroup_driver = CgroupDriver::Systemd;
        assert_eq!(
            cgroups_path(&host, "", "abc").unwrap(),
            PathBuf::from("system.slice:crust:abc")
        );
        assert_eq!(
            cgroups_path(&host, "/kubepods/burstable/pod-1", "abc").unwrap(),
            PathBuf::from("kubepods-burstable-pod_1.slice:crust:abc")
        );
        assert_eq!(
            cgroups_path(&host, "kubepods-besteffort-pod2.slice", "abc").unwrap(),
            PathBuf::from("kubepods-besteffort-pod2.slice:crust:abc")
        );
    }

    #[test]
    fn page_sizes_and_cpusets() {
        assert!(valid_page_size("2MB"));
        assert!(valid_page_size("1GB"));
        assert!(!valid_page_size("2M"));
        assert!(!valid_page_size("MB"));
        assert_eq!(
            valid_cpuset("cpuset_cpus", "0-3,5").unwrap().as_deref(),
            Some("0-3,5")
        );
        assert!(valid_cpuset("cpuset_cpus", "0-").is_err());
        assert!(valid_cpuset("cpuset_cpus", "a").is_err());
    }
}
