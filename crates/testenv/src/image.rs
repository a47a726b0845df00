//! Image configs, manifests and indexes built from layers.

use anyhow::Result;
use serde_json::{json, Value};

use crate::layer::{Blob, Flavor, Layer, CREATED};
use crate::media_types;

/// An OS/architecture pair.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Platform {
    pub architecture: &'static str,
    pub variant: Option<&'static str>,
}

impl Platform {
    pub(crate) const AMD64: Platform = Platform {
        architecture: "amd64",
        variant: None,
    };
    pub(crate) const ARM64: Platform = Platform {
        architecture: "arm64",
        variant: Some("v8"),
    };

    fn json(self) -> Value {
        let mut v = json!({ "architecture": self.architecture, "os": "linux" });
        if let Some(variant) = self.variant {
            v["variant"] = json!(variant);
        }
        v
    }
}

/// A single-platform image: manifest, config and layers, ready to push.
#[derive(Clone, Debug)]
pub(crate) struct BuiltImage {
    pub manifest: Blob,
    pub config: Blob,
    pub layers: Vec<Layer>,
}

impl BuiltImage {
    /// `container_config` is the `config` object of the image config (Env, Cmd, User, Labels…);
    /// `history` has one `created_by` line per layer.
    pub(crate) fn new(
        flavor: Flavor,
        platform: Platform,
        container_config: Value,
        layers: Vec<Layer>,
        history: &[&str],
    ) -> Result<BuiltImage> {
        let mut config = platform.json();
        config["created"] = json!(CREATED);
        config["author"] = json!("crust-testenv");
        config["config"] = container_config;
        config["rootfs"] = json!({
            "type": "layers",
            "diff_ids": layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>(),
        });
        config["history"] = Value::Array(
            (0..layers.len())
                .map(|i| {
                    json!({
                        "created": CREATED,
                        "created_by": history.get(i).copied().unwrap_or("crust-testenv"),
                    })
                })
                .collect(),
        );
        let config = Blob::new(flavor.config_type(), serde_json::to_vec(&config)?);
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": flavor.manifest_type(),
            "config": config.descriptor(),
            "layers": layers.iter().map(|l| l.blob.descriptor()).collect::<Vec<_>>(),
        });
        let manifest = Blob::new(flavor.manifest_type(), serde_json::to_vec(&manifest)?);
        Ok(BuiltImage {
            manifest,
            config,
            layers,
        })
    }

    /// Compressed layers plus config, the way containerd sizes an image.
    pub(crate) fn size(&self) -> u64 {
        self.config.size() + self.layers.iter().map(|l| l.blob.size()).sum::<u64>()
    }
}

/// An OCI image index over single-platform images.
pub(crate) fn index(children: &[(&BuiltImage, Platform)]) -> Result<Blob> {
    let manifests: Vec<Value> = children
        .iter()
        .map(|(img, platform)| {
            let mut d = img.manifest.descriptor();
            d["platform"] = platform.json();
            d
        })
        .collect();
    let index = json!({
        "schemaVersion": 2,
        "mediaType": media_types::OCI_INDEX,
        "manifests": manifests,
    });
    Ok(Blob::new(
        media_types::OCI_INDEX,
        serde_json::to_vec(&index)?,
    ))
}
