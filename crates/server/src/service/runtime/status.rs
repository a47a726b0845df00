use std::collections::HashMap;
use std::path::{Path, PathBuf};

use k8s_cri::v1::{
    RuntimeCondition, RuntimeHandler, RuntimeHandlerFeatures, RuntimeStatus, StatusRequest,
    StatusResponse,
};
use tonic::Status;

use crate::service::State;

/// Status: RuntimeReady, and NetworkReady while a valid CNI config exists. Verbose info holds
/// the effective config (under "config"), the CNI load result and the recorded pod CIDRs.
pub(super) async fn status(state: &State, req: StatusRequest) -> Result<StatusResponse, Status> {
    let conf_dir = state.config.network.conf_dir.clone();
    let bin_dirs = state.config.network.bin_dirs.clone();
    let cni = tokio::task::spawn_blocking(move || find_cni_config(&conf_dir, &bin_dirs))
        .await
        .map_err(|e| Status::internal(format!("Status: {e}")))?;
    let runtime_ready = RuntimeCondition {
        r#type: "RuntimeReady".into(),
        status: true,
        reason: String::new(),
        message: String::new(),
    };
    let network_ready = match &cni {
        Ok(_) => RuntimeCondition {
            r#type: "NetworkReady".into(),
            status: true,
            reason: String::new(),
            message: String::new(),
        },
        Err(why) => RuntimeCondition {
            r#type: "NetworkReady".into(),
            status: false,
            reason: "NetworkPluginNotReady".into(),
            message: format!("Network plugin returns error: cni plugin not initialized: {why}"),
        },
    };
    let mut info = HashMap::new();
    if req.verbose {
        let config = serde_json::json!({
            "config": state.config,
            "configFile": state.config_path,
            "root": state.root,
            "runroot": state.runroot,
        });
        info.insert("config".to_string(), config.to_string());
        let cni_status = match &cni {
            Ok(path) => serde_json::json!({"status": "OK", "file": path}),
            Err(why) => serde_json::json!({"status": "error", "error": why}),
        };
        info.insert("lastCNILoadStatus".to_string(), cni_status.to_string());
        // The pod CIDRs of the last UpdateRuntimeConfig, given to new pods as ipRanges.
        info.insert(
            "podCIDRs".to_string(),
            serde_json::json!(state.pods.pod_cidrs()).to_string(),
        );
    }
    let runtime_handlers = state
        .config
        .runtimes
        .keys()
        .map(|name| RuntimeHandler {
            name: name.clone(),
            features: Some(RuntimeHandlerFeatures {
                recursive_read_only_mounts: false,
                user_namespaces: false,
            }),
        })
        .collect();
    Ok(StatusResponse {
        status: Some(RuntimeStatus {
            conditions: vec![runtime_ready, network_ready],
        }),
        info,
        runtime_handlers,
        features: None,
    })
}

/// The CNI config pods would get: the first valid one in `conf_dir` (libcni's order), whose
/// plugins (and loopback) are all found in `bin_dirs`; the error says why none serves.
pub(crate) fn find_cni_config(conf_dir: &Path, bin_dirs: &[PathBuf]) -> Result<String, String> {
    let cni = crust_network::Cni::new(conf_dir.to_path_buf(), bin_dirs.to_vec());
    let list = cni.load().map_err(|e| e.to_string())?;
    cni.validate(&list).map_err(|e| e.to_string())?;
    Ok(list.file.display().to_string())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn cni_config_detection() {
        let dir = tempfile::tempdir().unwrap();
        let bin = tempfile::tempdir().unwrap();
        let bins = [bin.path().to_path_buf()];
        assert!(find_cni_config(dir.path(), &bins).is_err());
        std::fs::write(dir.path().join("05-bad.conflist"), "{").unwrap();
        let err = find_cni_config(dir.path(), &bins).unwrap_err();
        assert!(err.contains("05-bad.conflist"), "{err}");
        std::fs::write(
            dir.path().join("10-good.conflist"),
            r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"bridge"}]}"#,
        )
        .unwrap();
        // Valid, but its plugins are not installed: not ready, naming the plugin.
        let err = find_cni_config(dir.path(), &bins).unwrap_err();
        assert!(err.contains("bridge") || err.contains("loopback"), "{err}");
        for plugin in ["bridge", "loopback"] {
            let path = bin.path().join(plugin);
            std::fs::write(&path, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        assert!(find_cni_config(dir.path(), &bins)
            .unwrap()
            .ends_with("10-good.conflist"));
        assert!(find_cni_config(Path::new("/nonexistent"), &bins).is_err());
    }
}
