//! UpdateContainerResources: validated first (invalid values change nothing), applied to a
//! running container through the OCI runtime's update, then recorded (ContainerStatus reports
//! the resources in force) and written into the bundle's spec.

use std::path::Path;

use crust_store::ContainerState;
use k8s_cri::v1::LinuxContainerResources;
use oci_spec::runtime::{
    LinuxCpuBuilder, LinuxMemoryBuilder, LinuxResources, LinuxResourcesBuilder,
};
use tonic::Status;

use super::{files, Containers};

fn invalid(msg: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("UpdateContainerResources: {msg}"))
}

impl Containers {
    pub async fn update(
        &self,
        id: &str,
        linux: Option<LinuxContainerResources>,
    ) -> Result<(), Status> {
        let c = self.get("UpdateContainerResources", id)?;
        let Some(linux) = linux else {
            return Ok(());
        };
        let resources = oci_resources(&linux, self.host.cgroup_v2).map_err(invalid)?;
        let _op = c.op.lock().await;
        let record = c.snapshot();
        match record.state {
            ContainerState::Running => {
                let runtime = self.runtime(&record.runtime_handler)?;
                runtime.update(&record.id, &resources).await.map_err(|e| {
                    Status::unknown(format!("UpdateContainerResources of {}: {e:#}", record.id))
                })?;
            }
            ContainerState::Created => {}
            _ => {
                return Err(Status::failed_precondition(format!(
                    "UpdateContainerResources: container {} is not running",
                    record.id
                )))
            }
        }
        // The bundle's spec follows, so a container started later gets the new values too.
        let path = Path::new(&record.bundle_dir).join(files::CONFIG);
        if let Ok(mut spec) = oci_spec::runtime::Spec::load(&path) {
            if let Some(mut l) = spec.linux().clone() {
                l.set_resources(Some(merge(l.resources().clone(), &resources)));
                spec.set_linux(Some(l));
                if let Ok(json) = serde_json::to_vec_pretty(&spec) {
                    let _ = crate::sandbox::files::write_private_file(&path, &json);
                }
            }
        }
        self.save(&c, |r| {
            r.resources = serde_json::to_value(&linux).unwrap_or_default();
        })?;
        Ok(())
    }
}

/// The OCI resources of a CRI update; negative values and cgroup-v2-only keys on v1 refused.
fn oci_resources(r: &LinuxContainerResources, cgroup_v2: bool) -> Result<LinuxResources, String> {
    for (name, v) in [
        ("cpu_period", r.cpu_period),
        ("cpu_quota", r.cpu_quota),
        ("cpu_shares", r.cpu_shares),
        ("memory_limit_in_bytes", r.memory_limit_in_bytes),
        ("memory_swap_limit_in_bytes", r.memory_swap_limit_in_bytes),
    ] {
        if v < 0 {
            return Err(format!("{name} {v} is negative"));
        }
    }
    if r.cpu_shares == 1 {
        return Err("cpu_shares 1 is below the minimum of 2".into());
    }
    for cpus in [&r.cpuset_cpus, &r.cpuset_mems] {
        if !cpus.is_empty()
            && !cpus
                .bytes()
                .all(|b| b.is_ascii_digit() || b == b',' || b == b'-')
        {
            return Err(format!(
                "cpuset {cpus:?} is not a list of numbers and ranges"
            ));
        }
    }
    if !r.unified.is_empty() && !cgroup_v2 {
        return Err(
            "unified resources need cgroup v2, and this node's controllers are on v1".into(),
        );
    }
    for key in r.unified.keys() {
        if key.contains('/') || key.starts_with('.') || key.is_empty() {
            return Err(format!("unified key {key:?} is not a cgroup file name"));
        }
    }
    let mut cpu = LinuxCpuBuilder::default();
    if r.cpu_period > 0 {
        cpu = cpu.period(r.cpu_period as u64);
    }
    if r.cpu_quota > 0 {
        cpu = cpu.quota(r.cpu_quota);
    }
    if r.cpu_shares > 0 {
        cpu = cpu.shares(r.cpu_shares as u64);
    }
    if !r.cpuset_cpus.is_empty() {
        cpu = cpu.cpus(r.cpuset_cpus.clone());
    }
    if !r.cpuset_mems.is_empty() {
        cpu = cpu.mems(r.cpuset_mems.clone());
    }
    let mut memory = LinuxMemoryBuilder::default();
    if r.memory_limit_in_bytes > 0 {
        memory = memory.limit(r.memory_limit_in_bytes);
    }
    if r.memory_swap_limit_in_bytes > 0 {
        memory = memory.swap(r.memory_swap_limit_in_bytes);
    }
    let mut out = LinuxResourcesBuilder::default()
        .cpu(cpu.build().map_err(|e| e.to_string())?)
        .memory(memory.build().map_err(|e| e.to_string())?);
    if !r.unified.is_empty() {
        out = out.unified(
            r.unified
                .clone()
                .into_iter()
                .collect::<std::collections::HashMap<_, _>>(),
        );
    }
    out.build().map_err(|e| e.to_string())
}

/// `new` over `old`: the fields an update sets replace, the others stay.
fn merge(old: Option<LinuxResources>, new: &LinuxResources) -> LinuxResources {
    let mut out = old.unwrap_or_default();
    if let Some(cpu) = new.cpu() {
        out.set_cpu(Some(cpu.clone()));
    }
    if let Some(memory) = new.memory() {
        let mut m = (*out.memory()).unwrap_or_default();
        if memory.limit().is_some() {
            m.set_limit(memory.limit());
        }
        if memory.swap().is_some() {
            m.set_swap(memory.swap());
        }
        out.set_memory(Some(m));
    }
    if let Some(unified) = new.unified() {
        let mut u = out.unified().clone().unwrap_or_default();
        u.extend(unified.clone());
        out.set_unified(Some(u));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_updates_are_refused() {
        let mut r = LinuxContainerResources {
            memory_limit_in_bytes: -1,
            ..Default::default()
        };
        assert!(oci_resources(&r, true)
            .unwrap_err()
            .contains("memory_limit_in_bytes"));
        r.memory_limit_in_bytes = 0;
        r.cpuset_cpus = "0;1".into();
        assert!(oci_resources(&r, true).is_err());
        r.cpuset_cpus = "0-1".into();
        r.unified = [("memory.max".to_string(), "1M".to_string())].into();
        assert!(oci_resources(&r, false).unwrap_err().contains("cgroup v2"));
        assert!(oci_resources(&r, true).is_ok());
    }

    #[test]
    fn values_are_carried() {
        let r = LinuxContainerResources {
            cpu_period: 100000,
            cpu_quota: 50000,
            cpu_shares: 512,
            memory_limit_in_bytes: 64 << 20,
            ..Default::default()
        };
        let o = oci_resources(&r, false).unwrap();
        let cpu = o.cpu().clone().unwrap();
        assert_eq!(
            (cpu.period(), cpu.quota(), cpu.shares()),
            (Some(100000), Some(50000), Some(512))
        );
        assert_eq!(o.memory().unwrap().limit(), Some(64 << 20));
        let merged = merge(None, &o);
        assert_eq!(merged.memory().unwrap().limit(), Some(64 << 20));
    }
}
