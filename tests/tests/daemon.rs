//! crustd as a process: socket handling, signals, configuration errors, and the runtime RPCs
//! that exist before pods do (Version, Status, RuntimeConfig).

use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;

use crust_tests::{binary, Crustd};
use k8s_cri::v1::*;
use tonic::Code;

const NO_CNI: &str =
    "[network]\nconf_dir = \"/nonexistent/crust-test-net.d\"\ndefault_conflist = false\n";

#[tokio::test]
async fn version_status_and_runtime_config() {
    let crustd = Crustd::start(NO_CNI).await.unwrap();
    let mut rt = crustd.runtime().await.unwrap();
    let v = rt
        .version(VersionRequest {
            version: "0.1.0".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(v.runtime_name, "crust");
    assert_eq!(v.runtime_api_version, "v1");
    assert_eq!(v.version, "0.1.0");
    assert!(!v.runtime_version.is_empty());

    let s = rt
        .status(StatusRequest { verbose: true })
        .await
        .unwrap()
        .into_inner();
    let conditions = s.status.unwrap().conditions;
    let runtime = conditions
        .iter()
        .find(|c| c.r#type == "RuntimeReady")
        .unwrap();
    assert!(runtime.status);
    let network = conditions
        .iter()
        .find(|c| c.r#type == "NetworkReady")
        .unwrap();
    assert!(!network.status);
    assert_eq!(network.reason, "NetworkPluginNotReady");
    assert!(
        network.message.contains("/nonexistent/crust-test-net.d"),
        "{}",
        network.message
    );
    let info: serde_json::Value = serde_json::from_str(&s.info["config"]).unwrap();
    assert_eq!(
        info["config"]["network"]["conf_dir"],
        "/nonexistent/crust-test-net.d"
    );
    assert_eq!(
        info["config"]["registry"]["image_pull_progress_timeout"],
        "5m"
    );
    assert!(
        !s.runtime_handlers.is_empty(),
        "runc/crun handlers reported"
    );

    let c = rt
        .runtime_config(RuntimeConfigRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        c.linux.unwrap().cgroup_driver,
        CgroupDriver::Cgroupfs as i32
    );

    // Not verbose: no info.
    let s = rt
        .status(StatusRequest { verbose: false })
        .await
        .unwrap()
        .into_inner();
    assert!(s.info.is_empty());
}

#[tokio::test]
async fn network_ready_follows_the_cni_config_dir() {
    let net = tempfile::tempdir().unwrap();
    let config = format!(
        "[network]\nconf_dir = {:?}\ndefault_conflist = false\n[runtime]\ncgroup_driver = \"systemd\"\n",
        net.path().display().to_string()
    );
    let crustd = Crustd::start(&config).await.unwrap();
    let mut rt = crustd.runtime().await.unwrap();
    let ready = |s: StatusResponse| {
        s.status
            .unwrap()
            .conditions
            .into_iter()
            .find(|c| c.r#type == "NetworkReady")
            .unwrap()
    };
    assert!(
        !ready(
            rt.status(StatusRequest::default())
                .await
                .unwrap()
                .into_inner()
        )
        .status
    );
    std::fs::write(
        net.path().join("10-test.conflist"),
        r#"{"cniVersion":"1.0.0","name":"test","plugins":[{"type":"bridge","ipMasq":false},{"type":"portmap","capabilities":{"portMappings":true}}]}"#,
    )
    .unwrap();
    let cond = ready(
        rt.status(StatusRequest::default())
            .await
            .unwrap()
            .into_inner(),
    );
    assert!(cond.status, "{cond:?}");
    let c = rt
        .runtime_config(RuntimeConfigRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(c.linux.unwrap().cgroup_driver, CgroupDriver::Systemd as i32);
}

#[tokio::test]
async fn every_runtime_rpc_answers_for_real() {
    // The RPCs built last: none answers Unimplemented any more; bad input is refused with
    // the code the CRI comments ask for, and the list RPCs answer on an empty node.
    let crustd = Crustd::start(NO_CNI).await.unwrap();
    let mut rt = crustd.runtime().await.unwrap();
    let code = |r: Result<(), tonic::Status>| r.err().map(|e| e.code()).unwrap_or(Code::Ok);
    let answers = [
        (
            "ContainerStats",
            code(
                rt.container_stats(ContainerStatsRequest::default())
                    .await
                    .map(drop),
            ),
            Code::InvalidArgument,
        ),
        (
            "ListContainerStats",
            code(
                rt.list_container_stats(ListContainerStatsRequest::default())
                    .await
                    .map(drop),
            ),
            Code::Ok,
        ),
        (
            "PodSandboxStats",
            code(
                rt.pod_sandbox_stats(PodSandboxStatsRequest::default())
                    .await
                    .map(drop),
            ),
            Code::InvalidArgument,
        ),
        (
            "ListPodSandboxStats",
            code(
                rt.list_pod_sandbox_stats(ListPodSandboxStatsRequest::default())
                    .await
                    .map(drop),
            ),
            Code::Ok,
        ),
        (
            "CheckpointContainer",
            code(
                rt.checkpoint_container(CheckpointContainerRequest::default())
                    .await
                    .map(drop),
            ),
            Code::InvalidArgument,
        ),
        (
            "UpdateRuntimeConfig",
            code(
                rt.update_runtime_config(UpdateRuntimeConfigRequest::default())
                    .await
                    .map(drop),
            ),
            Code::Ok,
        ),
        (
            "ListMetricDescriptors",
            code(
                rt.list_metric_descriptors(ListMetricDescriptorsRequest::default())
                    .await
                    .map(drop),
            ),
            Code::Ok,
        ),
        (
            "ListPodSandboxMetrics",
            code(
                rt.list_pod_sandbox_metrics(ListPodSandboxMetricsRequest::default())
                    .await
                    .map(drop),
            ),
            Code::Ok,
        ),
        (
            "GetContainerEvents",
            code(
                rt.get_container_events(GetEventsRequest::default())
                    .await
                    .map(drop),
            ),
            Code::Ok,
        ),
    ];
    for (rpc, got, want) in answers {
        assert_eq!(got, want, "{rpc}");
    }
    let descriptors = rt
        .list_metric_descriptors(ListMetricDescriptorsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .descriptors;
    assert!(
        descriptors
            .iter()
            .any(|d| d.name == "container_cpu_usage_seconds_total"),
        "{descriptors:?}"
    );
}

#[tokio::test]
async fn socket_mode_stale_socket_second_daemon_and_sigterm() {
    let mut crustd = Crustd::start(NO_CNI).await.unwrap();
    let mode = std::fs::metadata(&crustd.socket)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o660);

    // A second crustd on the live socket refuses, and the first keeps serving.
    let out = crustd.command().stdout(Stdio::null()).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("another process") && stderr.contains(crustd.socket.to_str().unwrap()),
        "{stderr}"
    );
    crustd
        .runtime()
        .await
        .unwrap()
        .version(VersionRequest::default())
        .await
        .unwrap();

    // A crash leaves a stale socket file; the next start replaces it.
    crustd.kill();
    assert!(crustd.socket.exists());
    crustd.spawn().await.unwrap();
    crustd
        .runtime()
        .await
        .unwrap()
        .version(VersionRequest::default())
        .await
        .unwrap();

    // SIGTERM: a clean exit that removes the socket.
    let status = crustd.terminate().unwrap();
    assert!(status.success(), "{status}");
    assert!(!crustd.socket.exists());
    assert!(crustd.logs().contains("SIGTERM"));
}

#[tokio::test]
async fn bad_config_stops_the_start_naming_key_and_file() {
    let dir = tempfile::tempdir().unwrap();
    for (text, key) in [
        ("[registry]\nbogus_key = 1\n", "bogus_key"),
        (
            "[registry]\nimage_pull_progress_timeout = \"whenever\"\n",
            "whenever",
        ),
        ("[runtime]\ncgroup_driver = \"upstart\"\n", "upstart"),
    ] {
        let path = dir.path().join("config.toml");
        std::fs::write(&path, text).unwrap();
        let out = std::process::Command::new(binary("crustd"))
            .arg("--config")
            .arg(&path)
            .arg("--listen")
            .arg(dir.path().join("s.sock"))
            .arg("--root")
            .arg(dir.path().join("root"))
            .arg("--runroot")
            .arg(dir.path().join("run"))
            .output()
            .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(key) && stderr.contains(path.to_str().unwrap()),
            "{text:?}: {stderr}"
        );
        assert!(!dir.path().join("s.sock").exists(), "nothing served");
    }
    // An explicit --config that does not exist is an error too.
    let out = std::process::Command::new(binary("crustd"))
        .arg("--config")
        .arg(dir.path().join("missing.toml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.toml"));
}

#[tokio::test]
async fn help_lists_the_documented_flags() {
    let out = std::process::Command::new(binary("crustd"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in ["--listen", "--root", "--runroot", "--config", "--log-level"] {
        assert!(help.contains(flag), "{flag} in --help");
    }
}

#[tokio::test]
async fn default_conflist_is_written_only_into_an_empty_conf_dir() {
    let net = tempfile::tempdir().unwrap();
    let config = format!(
        "[network]\nconf_dir = {:?}\n",
        net.path().display().to_string()
    );
    let crustd = Crustd::start(&config).await.unwrap();
    let written = net.path().join("10-crust.conflist");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&written).unwrap()).unwrap();
    assert_eq!(doc["plugins"][0]["bridge"], "crust0", "{doc}");
    let mut rt = crustd.runtime().await.unwrap();
    let status = rt
        .status(StatusRequest::default())
        .await
        .unwrap()
        .into_inner();
    let net_ready = status
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.r#type == "NetworkReady")
        .unwrap();
    assert!(net_ready.status, "{net_ready:?}");
    drop(crustd);
    // A conf dir that already holds a valid config is left as it is.
    std::fs::remove_file(&written).unwrap();
    std::fs::write(
        net.path().join("20-own.conflist"),
        r#"{"cniVersion":"1.0.0","name":"own","plugins":[{"type":"bridge","bridge":"own0"}]}"#,
    )
    .unwrap();
    let _crustd = Crustd::start(&config).await.unwrap();
    assert!(!written.exists());
}
