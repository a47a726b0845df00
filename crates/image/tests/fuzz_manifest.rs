//! A bounded, seeded fuzz run of manifest, index and image-config parsing (CI runs it; no
//! nightly needed): arbitrary bytes and mutated valid documents go through the same parsing
//! and checks a pull does (`ManifestDoc`, `kind` and `check`, platform selection, `ImageConfig`
//! and `image_user`). Nothing may panic, and `check` accepts a document only when every digest
//! in it is a valid sha256/sha512 digest and its kind is a known one.
//!
//! `CRUST_FUZZ_CASES=100000 cargo test -p crust-image --test fuzz_manifest` runs longer;
//! `CRUST_FUZZ_SEED=<n>` picks another seed (the seed in use is printed on failure).

use crust_image::manifest::{
    check, host_platform, image_user, is_index, select_platform, Descriptor, ImageConfig,
    ManifestDoc, DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST,
};
use crust_image::reference::validate_digest;
use proptest::prelude::*;

fn hex(c: char, n: usize) -> String {
    std::iter::repeat_n(c, n).collect()
}

fn corpus() -> Vec<Vec<u8>> {
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": format!("sha256:{}", hex('a', 64)), "size": 1234},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
             "digest": format!("sha256:{}", hex('b', 64)), "size": 5678},
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+zstd",
             "digest": format!("sha512:{}", hex('c', 128)), "size": 1,
             "annotations": {"a": "b"}, "urls": ["http://x"]}
        ],
        "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"}
    });
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_LIST,
        "manifests": [
            {"mediaType": DOCKER_MANIFEST, "digest": format!("sha256:{}", hex('d', 64)),
             "size": 528, "platform": {"architecture": "amd64", "os": "linux"}},
            {"mediaType": DOCKER_MANIFEST, "digest": format!("sha256:{}", hex('e', 64)),
             "size": 528, "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}}
        ]
    });
    let image_config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"User": "1000:1000", "Env": ["PATH=/bin"], "Cmd": ["sh"],
                   "Labels": {"k": "v"}, "StopSignal": "SIGTERM"},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{}", hex('f', 64))]}
    });
    [manifest, index, image_config]
        .iter()
        .map(|v| serde_json::to_vec(v).unwrap())
        .collect()
}

/// Byte-level mutations of a valid document: flips, inserts, deletions, splices of JSON
/// punctuation and truncation.
fn mutated() -> impl Strategy<Value = Vec<u8>> {
    let docs = corpus();
    (
        0..docs.len(),
        prop::collection::vec((any::<u16>(), 0u8..5, any::<u8>()), 1..8),
    )
        .prop_map(move |(i, edits)| {
            let mut b = docs[i].clone();
            for (pos, op, byte) in edits {
                let at = pos as usize % (b.len() + 1);
                match op {
                    0 if at < b.len() => b[at] ^= byte,
                    1 => b.insert(at, byte),
                    2 if at < b.len() => {
                        b.remove(at);
                    }
                    3 => {
                        let tok: &[u8] = [
                            &b"{"[..],
                            b"}",
                            b"[",
                            b"]",
                            b"null",
                            b"-1",
                            b"1e400",
                            b"\"\\u0000\"",
                            b"18446744073709551616",
                        ][byte as usize % 9];
                        b.splice(at..at, tok.iter().copied());
                    }
                    _ => b.truncate(at),
                }
            }
            b
        })
}

/// Runs everything a pull does with a document's bytes; returns whether `check` passed.
fn exercise(bytes: &[u8], content_type: &str) {
    if let Ok(doc) = serde_json::from_slice::<ManifestDoc>(bytes) {
        let kind = doc.kind(content_type);
        let _ = is_index(&kind);
        if check(&doc, &kind).is_ok() {
            let all = doc
                .config
                .iter()
                .chain(&doc.layers)
                .chain(doc.manifests.iter().flatten());
            for d in all {
                assert_eq!(validate_digest(&d.digest), Ok(()), "check passed {d:?}");
            }
            assert!(
                [OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST].contains(&kind.as_str())
                    || kind == crust_image::manifest::DOCKER_SCHEMA1,
                "check passed kind {kind:?}"
            );
        }
        let entries: Vec<Descriptor> = doc.manifests.clone().unwrap_or_default();
        let _ = select_platform(&entries, &host_platform());
    }
    if let Ok(cfg) = serde_json::from_slice::<ImageConfig>(bytes) {
        let (uid, name) = image_user(&cfg);
        assert!(uid.is_none() || name.is_empty());
    }
}

fn content_type() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just(OCI_MANIFEST.to_string()),
        Just(format!("{DOCKER_LIST}; charset=utf-8")),
        Just("text/html".to_string()),
        ".{0,20}",
    ]
}

proptest! {
    #![proptest_config(crust_fuzzing::config(3000))]

    #[test]
    fn arbitrary_bytes_never_panic(b in prop::collection::vec(any::<u8>(), 0..256), ct in content_type()) {
        exercise(&b, &ct);
    }

    #[test]
    fn mutated_documents_never_panic(b in mutated(), ct in content_type()) {
        exercise(&b, &ct);
    }

    /// A descriptor digest anywhere in a manifest or index is accepted exactly when it is a
    /// valid digest.
    #[test]
    fn bad_digests_are_rejected(
        d in prop_oneof![
            "sha256:[0-9a-f]{64}",
            "sha512:[0-9a-f]{128}",
            "sha256:[0-9a-fA-F]{62,66}",
            "(sha384|md5|sha256|)(:)?[0-9a-f/.]{0,70}",
            "sha256:\\.\\./\\.\\./[a-z]{1,10}",
        ],
        slot in 0usize..3,
        media_type in prop_oneof![Just(OCI_MANIFEST.to_string()), Just(OCI_INDEX.to_string()), "[a-z/.+]{0,30}"],
    ) {
        let good = format!("sha256:{}", hex('1', 64));
        let desc = |digest: &str| serde_json::json!({"mediaType": "x", "digest": digest, "size": 1});
        let doc = match slot {
            0 => serde_json::json!({"schemaVersion": 2, "mediaType": media_type,
                                    "config": desc(&d), "layers": [desc(&good)]}),
            1 => serde_json::json!({"schemaVersion": 2, "mediaType": media_type,
                                    "config": desc(&good), "layers": [desc(&good), desc(&d)]}),
            _ => serde_json::json!({"schemaVersion": 2, "mediaType": media_type,
                                    "manifests": [desc(&good), desc(&d)]}),
        };
        let doc: ManifestDoc = serde_json::from_value(doc).unwrap();
        let kind = doc.kind("");
        let known = [OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST,
                     crust_image::manifest::DOCKER_SCHEMA1].contains(&kind.as_str());
        let result = check(&doc, &kind);
        prop_assert_eq!(result.is_ok(), known && validate_digest(&d).is_ok(), "{:?} {:?}", d, result);
        if let Err(reason) = result {
            if known {
                prop_assert!(reason.contains("digest") && reason.contains(&format!("{d:?}")), "{}", reason);
            } else {
                prop_assert!(reason.contains("media type"), "{}", reason);
            }
        }
    }
}
