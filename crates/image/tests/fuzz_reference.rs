//! A bounded, seeded fuzz run of the image reference parser (CI runs it; no nightly needed):
//! arbitrary strings and reference-shaped strings never panic; what parses renders to a
//! string that parses back to the same reference (so normalizing is idempotent), and the
//! rendered form obeys the rules the parser enforces.
//!
//! `CRUST_FUZZ_CASES=100000 cargo test -p crust-image --test fuzz_reference` runs longer;
//! `CRUST_FUZZ_SEED=<n>` picks another seed (the seed in use is printed on failure).

use crust_image::reference::{looks_like_id, validate_digest, Reference, DEFAULT_DOMAIN};
use proptest::prelude::*;

/// A path component, mostly valid, sometimes not (upper case, bad separators, empty).
fn component() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "[a-z0-9]{1,12}([._-][a-z0-9]{1,8}){0,2}",
        1 => "[a-z0-9]{1,4}(__|--|---)[a-z0-9]{1,4}",
        1 => "[A-Za-z0-9._:@/-]{0,10}",
        // Long components: repository names near and past the 255 character limit.
        1 => "[a-z]{60,130}",
        1 => "[a-z]{225,250}",
    ]
}

fn domain() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("docker.io/".to_string()),
        Just("index.docker.io/".to_string()),
        Just("localhost/".to_string()),
        Just("localhost:5000/".to_string()),
        Just("[::1]:5000/".to_string()),
        Just("127.0.0.1:5000/".to_string()),
        "[a-z0-9-]{1,10}\\.[a-z]{2,5}(:[0-9]{1,5})?/",
        "[a-zA-Z0-9.:\\[\\]-]{0,12}/",
    ]
}

fn tag() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}".prop_map(|t| format!(":{t}")),
        "[A-Za-z0-9_][A-Za-z0-9_.-]{126,128}".prop_map(|t| format!(":{t}")),
        "[^@/]{0,6}".prop_map(|t| format!(":{t}")),
    ]
}

fn digest() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[0-9a-f]{64}".prop_map(|h| format!("@sha256:{h}")),
        "[0-9a-f]{128}".prop_map(|h| format!("@sha512:{h}")),
        "[0-9a-fA-F]{60,66}".prop_map(|h| format!("@sha256:{h}")),
        "[a-z0-9]{0,8}:[0-9a-f]{0,70}".prop_map(|d| format!("@{d}")),
    ]
}

fn reference_like() -> impl Strategy<Value = String> {
    (
        domain(),
        prop::collection::vec(component(), 1..4),
        tag(),
        digest(),
    )
        .prop_map(|(d, path, t, g)| format!("{d}{}{t}{g}", path.join("/")))
}

/// What every parsed reference must look like.
fn check_shape(r: &Reference) {
    assert!(!r.domain.is_empty() && !r.domain.contains('/'), "{r:?}");
    assert_ne!(r.domain, "index.docker.io", "{r:?}: legacy domain kept");
    if r.domain == DEFAULT_DOMAIN {
        assert!(
            r.path.contains('/'),
            "{r:?}: docker.io path without library/"
        );
    }
    assert!(
        r.path
            .split('/')
            .all(|c| !c.is_empty() && c.bytes().all(|b| !b.is_ascii_uppercase())),
        "{r:?}"
    );
    assert!(
        r.tag.is_some() || r.digest.is_some(),
        "{r:?}: neither tag nor digest"
    );
    if let Some(d) = &r.digest {
        assert_eq!(validate_digest(d), Ok(()), "{r:?}");
        assert_eq!(r.object(), d);
    }
    assert!(r.repository().len() <= 255, "{r:?}: repository too long");
}

fn round_trip(s: &str) {
    let Ok(r) = Reference::parse(s) else { return };
    check_shape(&r);
    let rendered = r.to_string();
    let again = Reference::parse(&rendered)
        .unwrap_or_else(|e| panic!("{s:?} parsed to {r:?}, but its rendering fails: {e}"));
    assert_eq!(again, r, "{s:?} -> {rendered:?} re-parses differently");
    assert_eq!(again.to_string(), rendered, "normalization not idempotent");
    // The other renderings parse back to the same repository.
    if let Some(t) = r.tagged() {
        assert_eq!(Reference::parse(&t).unwrap().repository(), r.repository());
    }
    if let Some(d) = &r.digest {
        let by_digest = Reference::parse(&r.with_digest(d)).unwrap();
        assert_eq!(by_digest.repository(), r.repository());
        assert_eq!(by_digest.digest.as_deref(), Some(d.as_str()));
    }
}

proptest! {
    #![proptest_config(crust_fuzzing::config(3000))]

    #[test]
    fn arbitrary_strings_never_panic(s in ".{0,80}") {
        round_trip(&s);
        let _ = looks_like_id(&s);
        let _ = validate_digest(&s);
    }

    #[test]
    fn reference_shaped_strings_round_trip(s in reference_like()) {
        round_trip(&s);
    }

    #[test]
    fn digests_are_checked_exactly(alg in "sha256|sha512|md5|SHA256|", hex in "[0-9a-fA-Fg]{0,130}") {
        let d = format!("{alg}:{hex}");
        let want = match alg.as_str() {
            "sha256" => 64,
            "sha512" => 128,
            _ => usize::MAX,
        };
        let valid = hex.len() == want && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        prop_assert_eq!(validate_digest(&d).is_ok(), valid, "{}", d);
        prop_assert_eq!(Reference::parse(&format!("busybox@{d}")).is_ok(), valid);
    }
}

#[test]
fn long_docker_hub_names_stay_parseable_when_rendered() {
    // 250 characters given, 268 once normalized to docker.io/library/...: the limit applies
    // to the normalized name (as in distribution/reference), or the rendering would not
    // parse back.
    let name = "a".repeat(250);
    if let Ok(r) = Reference::parse(&name) {
        round_trip(&r.to_string());
        round_trip(&name);
    }
}
