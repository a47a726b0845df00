//! Namespaces: a new mount namespace always; the pod's network, IPC and UTS namespaces joined
//! by the paths of their pins (absent pin = the node's); the pid namespace per the request's
//! mode; a new cgroup namespace on cgroup v2 hosts (as containerd does there).

use k8s_cri::v1::NamespaceMode;
use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType};

use crate::{Input, SpecError};

fn ns(typ: LinuxNamespaceType, path: Option<&std::path::Path>) -> LinuxNamespace {
    let mut n = LinuxNamespace::default();
    n.set_typ(typ);
    n.set_path(path.map(|p| p.to_path_buf()));
    n
}

/// The `spec.linux.namespaces` list. A kind left out is shared with the host.
pub fn build(input: &Input) -> Result<Vec<LinuxNamespace>, SpecError> {
    let pins = &input.sandbox.namespaces;
    let mut out = vec![ns(LinuxNamespaceType::Mount, None)];
    for (key, typ) in [
        ("net", LinuxNamespaceType::Network),
        ("ipc", LinuxNamespaceType::Ipc),
        ("uts", LinuxNamespaceType::Uts),
    ] {
        if let Some(path) = pins.get(key) {
            out.push(ns(typ, Some(path)));
        }
    }

    let options = crate::security::context(input.config).and_then(|s| s.namespace_options.as_ref());
    let mode = options.map_or(NamespaceMode::Pod as i32, |o| o.pid);
    match NamespaceMode::try_from(mode) {
        Ok(NamespaceMode::Pod) => match pins.get("pid") {
            Some(path) => out.push(ns(LinuxNamespaceType::Pid, Some(path))),
            None => out.push(ns(LinuxNamespaceType::Pid, None)),
        },
        Ok(NamespaceMode::Container) => out.push(ns(LinuxNamespaceType::Pid, None)),
        Ok(NamespaceMode::Node) => {}
        Ok(NamespaceMode::Target) => {
            let target = options.map(|o| o.target_id.clone()).unwrap_or_default();
            let path = input
                .target_pid_ns
                .as_deref()
                .ok_or(SpecError::TargetPidNamespaceMissing(target))?;
            out.push(ns(LinuxNamespaceType::Pid, Some(path)));
        }
        Err(_) => return Err(SpecError::UnknownNamespaceMode(mode)),
    }
    if input.host.cgroup_v2 {
        out.push(ns(LinuxNamespaceType::Cgroup, None));
    }
    Ok(out)
}
