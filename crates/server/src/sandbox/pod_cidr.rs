//! The node's pod CIDRs, as kubelet hands them to UpdateRuntimeConfig: kept in
//! `<root>/pod-cidrs.json` (written atomically, so a restart or a crash finds the last value)
//! and given to pods created afterwards as the CNI `ipRanges` capability.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crust_network::IpRange;
use serde::{Deserialize, Serialize};

use super::Pods;

const FILE_NAME: &str = "pod-cidrs.json";

#[derive(Debug, Default, Serialize, Deserialize)]
struct Recorded {
    /// Canonical CIDRs in kubelet's order (IPv4 first when it sends both).
    pod_cidrs: Vec<String>,
}

pub(super) fn path(root: &Path) -> PathBuf {
    root.join(FILE_NAME)
}

/// The recorded CIDRs; none when nothing was recorded. A file that cannot be read or holds
/// anything but valid CIDRs stops the start: pods would silently get addresses elsewhere.
pub(super) fn load(root: &Path) -> anyhow::Result<Vec<String>> {
    use anyhow::Context;
    let path = path(root);
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let recorded: Recorded = serde_json::from_slice(&text)
        .with_context(|| format!("pod CIDRs in {}", path.display()))?;
    IpRange::sets_for(&recorded.pod_cidrs)
        .map_err(|e| anyhow::anyhow!("pod CIDRs in {}: {e}", path.display()))?;
    Ok(recorded.pod_cidrs)
}

/// Writes the CIDRs: a temporary file, fsync, rename, fsync of the directory.
fn save(root: &Path, pod_cidrs: &[String]) -> std::io::Result<()> {
    let path = path(root);
    let tmp = root.join(format!(".{FILE_NAME}.tmp"));
    let mut bytes = serde_json::to_vec_pretty(&Recorded {
        pod_cidrs: pod_cidrs.to_vec(),
    })?;
    bytes.push(b'\n');
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(root)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// The `ipRanges` capability argument for `pod_cidrs` (validated when recorded).
pub(super) fn ip_ranges(pod_cidrs: &[String]) -> Vec<Vec<IpRange>> {
    IpRange::sets_for(pod_cidrs).unwrap_or_default()
}

impl Pods {
    /// The pod CIDRs new pods get addresses from (empty: the CNI config's own ranges).
    pub fn pod_cidrs(&self) -> Vec<String> {
        self.pod_cidrs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Records new pod CIDRs (canonical, already validated) for pods created from now on:
    /// on disk first, then in memory, so what pods get is always what a restart finds.
    pub fn set_pod_cidrs(&self, pod_cidrs: Vec<String>) -> std::io::Result<()> {
        // Held across the small write so that concurrent updates land in one order on disk
        // and in memory.
        let mut current = self.pod_cidrs.lock().unwrap_or_else(|e| e.into_inner());
        if *current == pod_cidrs {
            return Ok(());
        }
        save(&self.root, &pod_cidrs)?;
        tracing::info!(pod_cidrs = ?pod_cidrs, "pod CIDRs updated");
        *current = pod_cidrs;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_cidrs_load_back_and_bad_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).unwrap().is_empty());
        let cidrs = vec!["10.1.2.0/24".to_string(), "fd00::/64".to_string()];
        save(dir.path(), &cidrs).unwrap();
        assert_eq!(load(dir.path()).unwrap(), cidrs);
        // No temporary file is left.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [FILE_NAME]);
        save(dir.path(), &["10.9.0.0/16".to_string()]).unwrap();
        assert_eq!(load(dir.path()).unwrap(), ["10.9.0.0/16"]);

        std::fs::write(path(dir.path()), r#"{"pod_cidrs": ["10.1.2.0/99"]}"#).unwrap();
        let err = format!("{:#}", load(dir.path()).unwrap_err());
        assert!(
            err.contains("invalid CIDR") && err.contains(FILE_NAME),
            "{err}"
        );
        std::fs::write(path(dir.path()), "{").unwrap();
        assert!(load(dir.path()).is_err());
    }
}
