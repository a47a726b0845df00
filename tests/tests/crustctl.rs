//! crustctl against a real crustd and a real registry: crictl's verbs, flags and output.

use crust_testenv::{push_standard_images, Registry};
use crust_tests::Crustd;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(crustd: &Crustd, args: &[&str]) -> Run {
    let out = crustd.crustctl(args);
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn ok(crustd: &Crustd, args: &[&str]) -> String {
    let r = run(crustd, args);
    assert_eq!(r.code, 0, "crustctl {args:?}: {}", r.stderr);
    r.stdout
}

fn json(crustd: &Crustd, args: &[&str]) -> serde_json::Value {
    let out = ok(crustd, args);
    serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("crustctl {args:?} printed no JSON ({e}): {out}"))
}

#[tokio::test]
async fn version_and_info() {
    let crustd = Crustd::start_local("").await.unwrap();
    let out = ok(&crustd, &["version"]);
    assert!(out.contains("RuntimeName:  crust"), "{out}");
    assert!(out.contains("RuntimeApiVersion:  v1"), "{out}");
    let info = json(&crustd, &["info"]);
    let conditions = info["status"]["conditions"].as_array().unwrap();
    assert_eq!(conditions[0]["type"], "RuntimeReady");
    assert_eq!(conditions[1]["type"], "NetworkReady");
    assert_eq!(info["config"]["root"], crustd.root.to_str().unwrap());
}

#[tokio::test]
async fn pull_images_inspecti_rmi_imagefsinfo() {
    let reg = Registry::start().await.unwrap();
    let images = push_standard_images(&reg, None).await.unwrap();
    let crustd = Crustd::start_local("").await.unwrap();

    let out = ok(&crustd, &["pull", &images.busybox.reference]);
    assert_eq!(
        out,
        format!("Image is up to date for {}\n", images.busybox.config_digest)
    );
    ok(&crustd, &["pull", &images.nonroot.reference]);

    // The table, with crictl's columns; truncated IDs; sizes in decimal units.
    let table = ok(&crustd, &["images"]);
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["IMAGE", "TAG", "IMAGE", "ID", "SIZE"]);
    let repo = images.busybox.reference.rsplit_once(':').unwrap().0;
    let short_id = &images.busybox.config_digest["sha256:".len().."sha256:".len() + 13];
    let row = table
        .lines()
        .find(|l| l.starts_with(&format!("{repo} ")))
        .expect("busybox row");
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols[1], "latest");
    assert_eq!(cols[2], short_id);
    assert!(cols[3].ends_with("MB") || cols[3].ends_with("kB"), "{row}");

    let quiet = ok(&crustd, &["images", "-q"]);
    let mut ids: Vec<&str> = quiet.lines().collect();
    ids.sort();
    let mut want = vec![
        images.busybox.config_digest.as_str(),
        images.nonroot.config_digest.as_str(),
    ];
    want.sort();
    assert_eq!(ids, want);

    let digests = ok(&crustd, &["images", "--digests"]);
    assert!(digests.lines().next().unwrap().contains("DIGEST"));
    let short_digest = &images.busybox.manifest_digest["sha256:".len().."sha256:".len() + 13];
    assert!(digests.contains(short_digest), "{digests}");

    // JSON in protojson form: camelCase keys, 64-bit numbers as strings.
    let listed = json(&crustd, &["images", "-o", "json"]);
    let busybox = listed["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == images.busybox.config_digest.as_str())
        .unwrap();
    assert_eq!(busybox["repoTags"][0], images.busybox.reference.as_str());
    assert_eq!(busybox["size"], images.busybox.size.to_string());
    let yaml = ok(&crustd, &["images", "-o", "yaml"]);
    assert!(yaml.contains("repoTags:"), "{yaml}");

    // inspecti: status plus verbose info; the name resolves like crictl's.
    let inspected = json(&crustd, &["inspecti", &images.nonroot.reference]);
    assert_eq!(
        inspected["status"]["id"],
        images.nonroot.config_digest.as_str()
    );
    assert_eq!(inspected["status"]["username"], "crustuser");
    assert_eq!(
        inspected["info"]["imageSpec"]["config"]["User"],
        "crustuser"
    );
    let r = run(&crustd, &["inspecti", "example.com/missing:1"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("no such image \"example.com/missing:1\" present"),
        "{}",
        r.stderr
    );

    let fs = json(&crustd, &["imagefsinfo"]);
    let used: u64 = fs["status"]["imageFilesystems"][0]["usedBytes"]["value"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(used > 1_000_000, "{fs}");

    // rmi: several at once, one unknown (reported, exit 1, the others still removed).
    let r = run(
        &crustd,
        &["rmi", &images.busybox.reference, "nope/nothing:1"],
    );
    assert_eq!(r.code, 1);
    assert!(
        r.stdout
            .contains(&format!("Deleted: {}", images.busybox.reference)),
        "{}",
        r.stdout
    );
    assert!(r.stderr.contains("nope/nothing:1"), "{}", r.stderr);
    // --prune removes every image no container uses (there are no containers yet).
    let out = ok(&crustd, &["rmi", "--prune"]);
    assert!(
        out.contains(&format!("Deleted: {}", images.nonroot.reference)),
        "{out}"
    );
    assert_eq!(ok(&crustd, &["images", "-q"]), "");
}

#[tokio::test]
async fn pull_with_credentials() {
    let reg = Registry::start_htpasswd("carol", "pa55").await.unwrap();
    let images = push_standard_images(&reg, Some(("carol", "pa55")))
        .await
        .unwrap();
    let crustd = Crustd::start_local("").await.unwrap();
    let r = run(&crustd, &["pull", &images.zstd.reference]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("Unauthenticated"), "{}", r.stderr);
    let r = run(
        &crustd,
        &["pull", "--creds", "carol:wrong", &images.zstd.reference],
    );
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("Unauthenticated"), "{}", r.stderr);
    ok(
        &crustd,
        &["pull", "--creds", "carol:pa55", &images.zstd.reference],
    );
    ok(
        &crustd,
        &[
            "pull",
            "--auth",
            "Y2Fyb2w6cGE1NQ==",
            &images.plain.reference,
        ],
    );
    assert_eq!(ok(&crustd, &["images", "-q"]).lines().count(), 2);
}

#[tokio::test]
async fn errors_name_the_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("absent.sock");
    let out = std::process::Command::new(crust_tests::binary("crustctl"))
        .args(["-r", &format!("unix://{}", sock.display()), "version"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(sock.to_str().unwrap()), "{stderr}");
}

#[tokio::test]
async fn runp_pods_inspectp_stopp_rmp() {
    let dir = tempfile::tempdir().unwrap();
    let net = crust_tests::PodNet::new(dir.path(), 19);
    let network = net.config(&[]);
    let crustd = Crustd::start_with(move |d| {
        format!(
            "[registry]\nconfig_path = {:?}\n{network}",
            d.join("certs.d").display().to_string()
        )
    })
    .await
    .unwrap();
    // crictl's own pod config format, YAML with snake_case keys.
    let config = dir.path().join("pod.yaml");
    std::fs::write(
        &config,
        "metadata:\n  name: ctl-pod\n  namespace: default\n  uid: ctl-pod-uid\n  attempt: 1\n\
         hostname: ctl-pod\nlabels:\n  tier: web\nlog_directory: /tmp/crust-ctl-pod-logs\n\
         linux:\n  security_context:\n    namespace_options:\n      pid: 0\n",
    )
    .unwrap();
    let id = ok(&crustd, &["runp", config.to_str().unwrap()])
        .trim()
        .to_string();
    assert_eq!(id.len(), 64, "{id}");

    let table = ok(&crustd, &["pods"]);
    assert!(table.starts_with("POD ID"), "{table}");
    assert!(table.contains(&id[..13]) && table.contains("Ready") && table.contains("ctl-pod"));
    assert_eq!(ok(&crustd, &["pods", "-q"]).trim(), id);
    assert_eq!(
        ok(&crustd, &["pods", "-q", "--label", "tier=web"]).trim(),
        id
    );
    assert_eq!(
        ok(&crustd, &["pods", "-q", "--label", "tier=db"]).trim(),
        ""
    );
    assert_eq!(ok(&crustd, &["pods", "-q", "--name", "ctl"]).trim(), id);
    let listed = json(&crustd, &["pods", "-o", "json"]);
    assert_eq!(listed["items"][0]["metadata"]["attempt"], 1);

    let inspect = json(&crustd, &["inspectp", &id[..12]]);
    assert_eq!(inspect["status"]["state"], "SANDBOX_READY");
    let ip = inspect["status"]["network"]["ip"].as_str().unwrap();
    assert!(ip.starts_with(&net.subnet_prefix), "{inspect}");
    assert!(inspect["info"]["netNamespacePath"].is_string(), "{inspect}");

    // rmp refuses a ready pod without -f.
    let r = run(&crustd, &["rmp", &id]);
    assert_ne!(r.code, 0);
    ok(&crustd, &["stopp", &id]);
    assert_eq!(
        json(&crustd, &["inspectp", &id])["status"]["state"],
        "SANDBOX_NOTREADY"
    );
    assert_eq!(ok(&crustd, &["pods", "-q", "--state", "ready"]).trim(), "");
    ok(&crustd, &["rmp", &id]);
    assert_eq!(ok(&crustd, &["pods", "-q"]).trim(), "");
    // -a -f: stops and removes everything.
    ok(&crustd, &["runp", config.to_str().unwrap()]);
    ok(&crustd, &["rmp", "-a", "-f"]);
    assert_eq!(ok(&crustd, &["pods", "-q"]).trim(), "");
    assert!(net.allocated_ips().is_empty());
    let _ = std::fs::remove_dir_all("/tmp/crust-ctl-pod-logs");
}
