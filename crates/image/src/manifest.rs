//! The parts of OCI and Docker v2 manifests, indexes and image configs that a pull needs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// Largest manifest or index accepted (containerd uses the same bound).
pub const MAX_MANIFEST_BYTES: u64 = 4 << 20;
/// Largest image config accepted; an image config is a few KiB in practice.
pub const MAX_CONFIG_BYTES: u64 = 8 << 20;
/// Most `Env` entries an image config may set. The kernel refuses an exec whose environment
/// passes ARG_MAX (2 MiB with the default stack limit), so an image with many more could
/// never start a container, and every CreateContainer would copy them into the spec.
pub const MAX_CONFIG_ENV: usize = 65_536;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    #[serde(default)]
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// A manifest or an index: which one is told by the media type or by which list is present.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestDoc {
    #[serde(default)]
    pub schema_version: u32,
    #[serde(default)]
    pub media_type: String,
    pub config: Option<Descriptor>,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    pub manifests: Option<Vec<Descriptor>>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

impl ManifestDoc {
    /// The effective media type: the response's Content-Type, else the document's own field,
    /// else what its shape says.
    pub fn kind(&self, content_type: &str) -> String {
        let ct = content_type.split(';').next().unwrap_or("").trim();
        if [
            OCI_INDEX,
            OCI_MANIFEST,
            DOCKER_LIST,
            DOCKER_MANIFEST,
            DOCKER_SCHEMA1,
        ]
        .contains(&ct)
        {
            return ct.to_string();
        }
        if !self.media_type.is_empty() {
            return self.media_type.clone();
        }
        if self.manifests.is_some() {
            OCI_INDEX.into()
        } else if self.schema_version == 1 {
            DOCKER_SCHEMA1.into()
        } else {
            OCI_MANIFEST.into()
        }
    }
}

pub fn is_index(kind: &str) -> bool {
    kind == OCI_INDEX || kind == DOCKER_LIST
}

/// Checks a fetched manifest or index (of effective media type `kind`) before anything it
/// names is fetched: the kind is one of the known ones, and every digest is a valid
/// `sha256:`/`sha512:` digest (they become registry URLs and file names). The reason names
/// the field at fault.
pub fn check(doc: &ManifestDoc, kind: &str) -> Result<(), String> {
    if ![
        OCI_INDEX,
        OCI_MANIFEST,
        DOCKER_LIST,
        DOCKER_MANIFEST,
        DOCKER_SCHEMA1,
    ]
    .contains(&kind)
    {
        return Err(format!("unsupported media type {kind:?}"));
    }
    let digest = |field: String, d: &Descriptor| {
        crate::reference::validate_digest(&d.digest)
            .map_err(|r| format!("{field} digest {:?}: {r}", d.digest))
    };
    if let Some(c) = &doc.config {
        digest("config".into(), c)?;
    }
    for (i, l) in doc.layers.iter().enumerate() {
        digest(format!("layers[{i}]"), l)?;
    }
    for (i, m) in doc.manifests.iter().flatten().enumerate() {
        digest(format!("manifests[{i}]"), m)?;
    }
    Ok(())
}

/// The image config: what a container needs, plus the layers' diff IDs.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ImageConfig {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub config: Option<ContainerConfig>,
    pub rootfs: Option<RootFs>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ContainerConfig {
    #[serde(rename = "User", default)]
    pub user: Option<String>,
    #[serde(rename = "Labels", default)]
    pub labels: Option<BTreeMap<String, String>>,
    /// How many `Env` entries the config has (counted, not kept: a hostile config may have a
    /// million).
    #[serde(rename = "Env", default, deserialize_with = "count_entries")]
    pub env_entries: usize,
}

/// The length of a JSON array (null: 0), without keeping its elements.
fn count_entries<'de, D: serde::Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    struct Count;
    impl<'de> serde::de::Visitor<'de> for Count {
        type Value = usize;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an array or null")
        }
        fn visit_unit<E>(self) -> Result<usize, E> {
            Ok(0)
        }
        fn visit_none<E>(self) -> Result<usize, E> {
            Ok(0)
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
            let mut n = 0;
            while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
                n += 1;
            }
            Ok(n)
        }
    }
    d.deserialize_any(Count)
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

/// The platform this machine runs, in OCI terms.
pub fn host_platform() -> Platform {
    let architecture = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    };
    Platform {
        architecture: architecture.into(),
        os: "linux".into(),
        variant: None,
    }
}

/// The index entry for `want`: same os and architecture; for arm64 a `v8` or absent
/// variant; among several, the first (indexes list preferred entries first).
pub fn select_platform<'a>(entries: &'a [Descriptor], want: &Platform) -> Option<&'a Descriptor> {
    entries.iter().find(|d| {
        let Some(p) = &d.platform else { return false };
        p.os == want.os
            && p.architecture == want.architecture
            && match (&want.variant, &p.variant) {
                (Some(w), Some(v)) => w == v,
                (Some(_), None) | (None, None) => true,
                (None, Some(v)) => want.architecture != "arm64" || v == "v8",
            }
    })
}

/// uid or user name from the config's USER (`uid`, `uid:gid`, `name`, `name:group`).
pub fn image_user(config: &ImageConfig) -> (Option<i64>, String) {
    let user = config
        .config
        .as_ref()
        .and_then(|c| c.user.clone())
        .unwrap_or_default();
    let user = user.split(':').next().unwrap_or("").to_string();
    if user.is_empty() {
        return (None, String::new());
    }
    match user.parse::<i64>() {
        Ok(uid) => (Some(uid), String::new()),
        Err(_) => (None, user),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(arch: &str, variant: Option<&str>) -> Descriptor {
        Descriptor {
            media_type: OCI_MANIFEST.into(),
            digest: format!("sha256:{arch}{}", variant.unwrap_or("")),
            size: 1,
            platform: Some(Platform {
                architecture: arch.into(),
                os: "linux".into(),
                variant: variant.map(Into::into),
            }),
            annotations: BTreeMap::new(),
            urls: vec![],
        }
    }

    #[test]
    fn platform_selection() {
        let entries = vec![
            desc("arm", Some("v7")),
            desc("arm64", Some("v8")),
            desc("amd64", None),
        ];
        let amd64 = Platform {
            architecture: "amd64".into(),
            os: "linux".into(),
            variant: None,
        };
        assert_eq!(
            select_platform(&entries, &amd64).unwrap().digest,
            "sha256:amd64"
        );
        let arm64 = Platform {
            architecture: "arm64".into(),
            os: "linux".into(),
            variant: None,
        };
        assert_eq!(
            select_platform(&entries, &arm64).unwrap().digest,
            "sha256:arm64v8"
        );
        let s390 = Platform {
            architecture: "s390x".into(),
            os: "linux".into(),
            variant: None,
        };
        assert!(select_platform(&entries, &s390).is_none());
    }

    #[test]
    fn users() {
        let cfg = |u: &str| ImageConfig {
            config: Some(ContainerConfig {
                user: Some(u.into()),
                labels: None,
                env_entries: 0,
            }),
            ..Default::default()
        };
        assert_eq!(image_user(&cfg("1000:1000")), (Some(1000), String::new()));
        assert_eq!(image_user(&cfg("app:app")), (None, "app".to_string()));
        assert_eq!(image_user(&cfg("")), (None, String::new()));
        assert_eq!(image_user(&ImageConfig::default()), (None, String::new()));
    }

    #[test]
    fn kinds() {
        let doc: ManifestDoc =
            serde_json::from_str(r#"{"schemaVersion":2,"manifests":[]}"#).unwrap();
        assert_eq!(doc.kind(""), OCI_INDEX);
        assert_eq!(
            doc.kind("application/vnd.docker.distribution.manifest.list.v2+json; charset=utf-8"),
            DOCKER_LIST
        );
        assert!(is_index(&doc.kind("")));
    }
}
