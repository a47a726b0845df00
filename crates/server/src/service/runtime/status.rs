use std::collections::HashMap;
use std::path::Path;

use k8s_cri::v1::{
    RuntimeCondition, RuntimeHandler, RuntimeHandlerFeatures, RuntimeStatus, StatusRequest,
    StatusResponse,
};
use tonic::Status;

use crate::service::State;

/// Status: RuntimeReady, and NetworkReady while a valid CNI config exists. Verbose info holds
/// the effective config (under "config") and the CNI load result.
pub(super) async fn status(state: &State, req: StatusRequest) -> Result<StatusResponse, Status> {
    let conf_dir = state.config.network.conf_dir.clone();
    let cni = tokio::task::spawn_blocking(move || find_cni_config(&conf_dir))
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

/// The first valid CNI config in lexical order (`.conflist`, `.conf`, `.json`), as libcni
/// loads them; the error says why none serves.
pub(crate) fn find_cni_config(dir: &Path) -> Result<String, String> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("no network config found in {}: {e}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("conflist" | "conf" | "json")
            )
        })
        .collect();
    files.sort();
    let mut problems = Vec::new();
    for file in files {
        match validate_cni_file(&file) {
            Ok(()) => return Ok(file.display().to_string()),
            Err(e) => problems.push(format!("{}: {e}", file.display())),
        }
    }
    if problems.is_empty() {
        Err(format!("no network config found in {}", dir.display()))
    } else {
        Err(format!(
            "no valid network config in {} ({})",
            dir.display(),
            problems.join("; ")
        ))
    }
}

fn validate_cni_file(path: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let doc: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("invalid JSON: {e}"))?;
    let name = doc.get("name").and_then(|v| v.as_str()).unwrap_or("");
    if name.is_empty() {
        return Err("missing network name".into());
    }
    let is_list = path.extension().and_then(|e| e.to_str()) == Some("conflist");
    let plugins: Vec<&serde_json::Value> = if is_list {
        doc.get("plugins")
            .and_then(|p| p.as_array())
            .ok_or("missing plugins list")?
            .iter()
            .collect()
    } else {
        vec![&doc]
    };
    if plugins.is_empty() {
        return Err("empty plugins list".into());
    }
    for p in plugins {
        if p.get("type")
            .and_then(|t| t.as_str())
            .unwrap_or("")
            .is_empty()
        {
            return Err("a plugin has no type".into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cni_config_detection() {
        let dir = tempfile::tempdir().unwrap();
        assert!(find_cni_config(dir.path())
            .unwrap_err()
            .contains("no network config"));
        std::fs::write(dir.path().join("05-bad.conflist"), "{").unwrap();
        assert!(find_cni_config(dir.path())
            .unwrap_err()
            .contains("invalid JSON"));
        std::fs::write(
            dir.path().join("10-good.conflist"),
            r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"bridge"}]}"#,
        )
        .unwrap();
        assert!(find_cni_config(dir.path())
            .unwrap()
            .ends_with("10-good.conflist"));
        assert!(find_cni_config(Path::new("/nonexistent")).is_err());
    }
}
