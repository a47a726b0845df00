//! Start-up: pods from the store are reattached to their monitors; what a crashed
//! RunPodSandbox left behind (a pod directory without a record) is undone.

use std::path::PathBuf;
use std::sync::Arc;

use crust_network::NetworkList;
use crust_store::{PodRecord, PodState};

use super::{NameSlot, Pod, Pods};

impl Pods {
    pub(super) async fn recover(self: &Arc<Self>) -> anyhow::Result<()> {
        if self.config.network.default_conflist {
            match self.cni.write_default_if_missing() {
                Ok(Some(path)) => {
                    tracing::info!(file = %path.display(), "wrote the default CNI config")
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "writing the default CNI config"),
            }
        }
        let records = self.store.list_pods()?;
        let known: std::collections::HashSet<String> =
            records.iter().map(|r| r.id.clone()).collect();
        for record in records {
            let alive = crust_monitor::is_alive(&PathBuf::from(&record.run_dir)).await;
            let pod = Arc::new(Pod {
                record: std::sync::Mutex::new(record.clone()),
                op: tokio::sync::Mutex::new(()),
            });
            {
                let mut index = self.index();
                index.names.insert(
                    record.name_key(),
                    NameSlot::Created {
                        id: record.id.clone(),
                        claimed: true,
                    },
                );
                index.pods.insert(record.id.clone(), pod.clone());
            }
            if alive {
                self.watch(pod);
            } else if record.state == PodState::Ready {
                self.mark_not_ready(&pod, "its monitor did not survive the restart");
            }
            tracing::info!(pod = %record.id, alive, "pod sandbox recovered");
        }
        // Pod directories without a record: a RunPodSandbox that crashed midway.
        if let Ok(entries) = std::fs::read_dir(self.runroot.join("pods")) {
            for entry in entries.flatten() {
                let id = entry.file_name().to_string_lossy().to_string();
                if known.contains(&id) {
                    continue;
                }
                tracing::warn!(pod = %id, "undoing a pod sandbox whose creation was interrupted");
                self.undo_interrupted(&id, entry.path()).await;
            }
        }
        if let Ok(entries) = std::fs::read_dir(self.root.join("pods")) {
            for entry in entries.flatten() {
                let id = entry.file_name().to_string_lossy().to_string();
                if !known.contains(&id) {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        Ok(())
    }

    async fn undo_interrupted(&self, id: &str, run_dir: PathBuf) {
        // CNI DEL first, while the netns pin still exists.
        if let Ok(text) = std::fs::read_to_string(run_dir.join("cni-intent.json")) {
            // The intent is written before the first plugin runs. Plugins of an ADD the crash
            // interrupted go on without crustd; one finishing after the DEL below would leave
            // its veth or address behind.
            let pod = id.to_string();
            let killed =
                tokio::task::spawn_blocking(move || crust_network::kill_orphaned_plugins(&pod))
                    .await
                    .unwrap_or_default();
            if !killed.is_empty() {
                tracing::warn!(pod = %id, pids = ?killed, "killed CNI plugins still running from before the restart");
            }
            if let Ok(intent) = serde_json::from_str::<serde_json::Value>(&text) {
                let file = PathBuf::from(intent["file"].as_str().unwrap_or_default());
                if let Ok(list) = NetworkList::from_raw(intent["conflist"].clone(), file) {
                    let mut attachment = super::run::attachment_for(
                        id,
                        &run_dir.join("ns/net"),
                        "",
                        "",
                        "",
                        &Default::default(),
                        None,
                    );
                    let pod_cidrs: Vec<String> =
                        serde_json::from_value(intent["pod_cidrs"].clone()).unwrap_or_default();
                    attachment.ip_ranges = super::pod_cidr::ip_ranges(&pod_cidrs);
                    if let Err(e) = self.cni.del(&list, &attachment, None).await {
                        tracing::warn!(pod = %id, error = %e, "CNI DEL of an interrupted pod");
                    }
                }
            }
        }
        let record = PodRecord {
            id: id.to_string(),
            name: String::new(),
            namespace: String::new(),
            uid: String::new(),
            attempt: 0,
            state: PodState::NotReady,
            created_at: 0,
            runtime_handler: String::new(),
            labels: Default::default(),
            annotations: Default::default(),
            config: serde_json::Value::Null,
            namespaces: Default::default(),
            monitor_pid: 0,
            run_dir: run_dir.display().to_string(),
            state_dir: self.root.join("pods").join(id).display().to_string(),
            shm_path: run_dir.join("shm").display().to_string(),
            cgroups_created: std::fs::read_to_string(run_dir.join(super::run::CGROUPS_CREATED))
                .ok()
                .and_then(|text| serde_json::from_str(&text).ok())
                .unwrap_or_default(),
            cgroup_parent: String::new(),
            network: None,
        };
        super::stop::release(&record).await;
    }
}
