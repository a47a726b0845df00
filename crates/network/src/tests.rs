//! Tests with fake plugins: small shell scripts that record their environment and stdin and
//! print a canned result or error.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tempfile::TempDir;

use crate::*;

struct Env {
    _tmp: TempDir,
    conf: PathBuf,
    bin1: PathBuf,
    bin2: PathBuf,
    log: PathBuf,
}

impl Env {
    fn new() -> Env {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().to_path_buf();
        let env = Env {
            conf: root.join("net.d"),
            bin1: root.join("bin1"),
            bin2: root.join("bin2"),
            log: root.join("log"),
            _tmp: tmp,
        };
        for d in [&env.conf, &env.bin1, &env.bin2, &env.log] {
            fs::create_dir_all(d).expect("mkdir");
        }
        env
    }

    fn cni(&self) -> Cni {
        Cni::new(
            self.conf.clone(),
            vec![self.bin1.clone(), self.bin2.clone()],
        )
    }

    /// A plugin that records its call, env and stdin, then runs `behaviour` (shell).
    fn plugin_in(&self, dir: &Path, name: &str, behaviour: &str) {
        let log = self.log.display();
        let script = format!(
            "#!/bin/sh\n\
             log='{log}'\n\
             echo \"{name} $CNI_COMMAND $CNI_IFNAME\" >> \"$log/calls\"\n\
             cat > \"$log/{name}.$CNI_COMMAND.$CNI_IFNAME.stdin\"\n\
             env | grep '^CNI_' | sort > \"$log/{name}.$CNI_COMMAND.$CNI_IFNAME.env\"\n\
             {behaviour}\n"
        );
        let path = dir.join(name);
        fs::write(&path, script).expect("write plugin");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");
    }

    fn plugin(&self, name: &str, behaviour: &str) {
        self.plugin_in(&self.bin1, name, behaviour);
    }

    /// A plugin printing `result` on success.
    fn result_plugin(&self, name: &str, result: &Value) {
        self.plugin(name, &print_json(result));
    }

    fn calls(&self) -> Vec<String> {
        match fs::read_to_string(self.log.join("calls")) {
            Ok(s) => s.lines().map(str::to_string).collect(),
            Err(_) => Vec::new(),
        }
    }

    fn stdin(&self, name: &str, command: &str, ifname: &str) -> Value {
        let path = self.log.join(format!("{name}.{command}.{ifname}.stdin"));
        let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}: {text}", path.display()))
    }

    fn env_of(&self, name: &str, command: &str, ifname: &str) -> HashMap<String, String> {
        let path = self.log.join(format!("{name}.{command}.{ifname}.env"));
        fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn write_conf(&self, file: &str, content: &str) -> PathBuf {
        let path = self.conf.join(file);
        fs::write(&path, content).expect("write conf");
        path
    }
}

fn print_json(v: &Value) -> String {
    format!("cat <<'EOF_RESULT'\n{v}\nEOF_RESULT")
}

fn result(ip: &str) -> Value {
    json!({
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "eth0", "mac": "aa:bb:cc:dd:ee:ff", "sandbox": "/run/netns/x"}],
        "ips": [{"address": ip, "gateway": "10.1.0.1", "interface": 0}],
    })
}

fn attachment(netns: &str) -> Attachment {
    Attachment {
        container_id: "abc123".to_string(),
        netns: PathBuf::from(netns),
        ifname: "eth0".to_string(),
        args: k8s_pod_args("default", "web", "abc123", "uid-1"),
        ..Default::default()
    }
}

fn list(version: &str, plugins: Value) -> NetworkList {
    NetworkList::from_raw(
        json!({"cniVersion": version, "name": "testnet", "plugins": plugins}),
        PathBuf::from("test.conflist"),
    )
    .expect("valid list")
}

const VALID_LIST: &str =
    r#"{"cniVersion":"1.0.0","name":"NAME","plugins":[{"type":"bridge","bridge":"b0"}]}"#;

// ---- loading ----

#[test]
fn load_takes_first_valid_file_in_lexical_order() {
    let env = Env::new();
    env.write_conf("00-broken.conflist", "{ not json");
    env.write_conf("05-notype.conf", r#"{"cniVersion":"1.0.0","name":"x"}"#);
    env.write_conf("10-b.conflist", &VALID_LIST.replace("NAME", "b"));
    env.write_conf("20-a.conflist", &VALID_LIST.replace("NAME", "a"));
    env.write_conf("9-z.conflist", &VALID_LIST.replace("NAME", "z"));
    env.write_conf("01-first.txt", &VALID_LIST.replace("NAME", "txt"));
    fs::create_dir(env.conf.join("02-dir.conflist")).expect("mkdir");

    let net = env.cni().load().expect("load");
    assert_eq!(net.name, "b");
    assert_eq!(net.cni_version, "1.0.0");
    assert_eq!(net.file, env.conf.join("10-b.conflist"));
    assert_eq!(net.plugin_types().collect::<Vec<_>>(), ["bridge"]);

    fs::remove_file(env.conf.join("10-b.conflist")).expect("rm");
    assert_eq!(env.cni().load().expect("load").name, "a");
}

#[test]
fn load_error_names_every_rejected_file() {
    let env = Env::new();
    env.write_conf("00-broken.conflist", "{ not json");
    env.write_conf("05-notype.conf", r#"{"cniVersion":"1.0.0","name":"x"}"#);
    env.write_conf(
        "07-empty.conflist",
        r#"{"cniVersion":"1.0.0","name":"x","plugins":[]}"#,
    );
    env.write_conf("08-list-in-conf.json", VALID_LIST);

    let err = env.cni().load().expect_err("nothing valid");
    let CniError::NoConfig { dir, reasons } = &err else {
        panic!("unexpected error {err}");
    };
    assert_eq!(dir, &env.conf);
    let files: Vec<_> = reasons
        .iter()
        .map(|(f, _)| f.file_name().and_then(|n| n.to_str()).unwrap_or(""))
        .collect();
    assert_eq!(
        files,
        [
            "00-broken.conflist",
            "05-notype.conf",
            "07-empty.conflist",
            "08-list-in-conf.json"
        ]
    );
    let msg = err.to_string();
    assert!(msg.starts_with("no valid cni network config in "), "{msg}");
    assert!(msg.contains("00-broken.conflist: invalid json"), "{msg}");
    assert!(msg.contains("05-notype.conf: missing \"type\""), "{msg}");
    assert!(
        msg.contains("07-empty.conflist: no plugins in list"),
        "{msg}"
    );
    assert!(
        msg.contains(
            "08-list-in-conf.json: missing \"type\" (a plugin list must be in a .conflist file)"
        ),
        "{msg}"
    );

    let missing = Cni::new(env.conf.join("nope"), vec![])
        .load()
        .expect_err("no dir");
    assert!(matches!(&missing, CniError::NoConfig { reasons, .. } if reasons.is_empty()));
    assert!(
        missing
            .to_string()
            .contains("no cni network config found in"),
        "{missing}"
    );
}

#[test]
fn single_plugin_conf_is_wrapped_into_a_list() {
    let env = Env::new();
    let conf = json!({
        "cniVersion": "0.4.0",
        "name": "single",
        "type": "bridge",
        "bridge": "cni0",
        "ipam": {"type": "host-local", "subnet": "10.1.0.0/24"}
    });
    env.write_conf("50-single.conf", &conf.to_string());
    let net = env.cni().load().expect("load");
    assert_eq!(net.name, "single");
    assert_eq!(net.cni_version, "0.4.0");
    assert_eq!(
        net.raw,
        json!({"name": "single", "cniVersion": "0.4.0", "plugins": [conf]})
    );
    // The stored raw form rebuilds the same list.
    let again = NetworkList::from_raw(net.raw.clone(), net.file.clone()).expect("from_raw");
    assert_eq!(again, net);

    let env = Env::new();
    env.write_conf("50-single.json", &conf.to_string());
    assert_eq!(env.cni().load().expect("load .json").name, "single");
}

#[test]
fn from_raw_validates_lists() {
    let bad = |v: Value| {
        NetworkList::from_raw(v, PathBuf::from("x.conflist"))
            .expect_err("invalid")
            .to_string()
    };
    let msg = bad(json!({"cniVersion": "1.0.0", "plugins": [{"type": "bridge"}]}));
    assert_eq!(msg, "invalid cni network config x.conflist: no \"name\"");
    assert!(bad(json!({"name": "n", "plugins": [{"bridge": "x"}]}))
        .contains("plugin 0: missing \"type\""));
    assert!(
        bad(json!({"name": "n", "plugins": [{"type": "../evil"}]})).contains("invalid plugin type")
    );
    assert!(bad(
        json!({"name": "n", "plugins": [{"type": "p", "capabilities": {"portMappings": "yes"}}]})
    )
    .contains("capability \"portMappings\" is not a boolean"));
    assert!(bad(json!({"name": "bad name", "plugins": [{"type": "p"}]})).contains("network name"));
    assert!(
        bad(json!({"name": "n", "cniVersion": "one", "plugins": [{"type": "p"}]}))
            .contains("invalid cni version")
    );
    assert!(
        bad(json!({"name": "n", "plugins": {"type": "p"}})).contains("\"plugins\" is not an array")
    );

    // cniVersions: the highest version this implementation knows wins.
    let net = NetworkList::from_raw(
        json!({"name": "n", "cniVersion": "0.4.0", "cniVersions": ["1.0.0", "0.3.1", "9.0.0"],
               "disableCheck": "true", "plugins": [{"type": "p"}]}),
        PathBuf::new(),
    )
    .expect("valid");
    assert_eq!(net.cni_version, "1.0.0");
    assert!(net.disable_check);
}

// ---- default config ----

#[test]
fn default_conflist_is_written_only_without_valid_config() {
    let env = Env::new();
    let cni = Cni::new(env.conf.join("fresh/net.d"), vec![]);
    let path = cni
        .write_default_if_missing()
        .expect("write")
        .expect("written");
    assert_eq!(path, env.conf.join("fresh/net.d/10-crust.conflist"));
    let net = cni.load().expect("load default");
    assert_eq!(net.name, "crust");
    assert_eq!(
        net.plugin_types().collect::<Vec<_>>(),
        ["bridge", "portmap"]
    );
    let bridge = &net.raw["plugins"][0];
    assert_eq!(bridge["bridge"], "crust0");
    assert_eq!(bridge["isGateway"], true);
    assert_eq!(bridge["ipMasq"], false);
    assert_eq!(bridge["hairpinMode"], true);
    assert_eq!(bridge["ipam"]["type"], "host-local");
    assert_eq!(bridge["ipam"]["ranges"][0][0]["subnet"], "10.88.0.0/16");
    assert_eq!(bridge["ipam"]["routes"], json!([{"dst": "0.0.0.0/0"}]));
    assert_eq!(
        net.raw["plugins"][1]["capabilities"],
        json!({"portMappings": true})
    );
    // Now valid config exists: nothing is written again.
    let before = fs::metadata(&path)
        .and_then(|m| m.modified())
        .expect("mtime");
    assert_eq!(cni.write_default_if_missing().expect("second"), None);
    assert_eq!(
        fs::metadata(&path)
            .and_then(|m| m.modified())
            .expect("mtime"),
        before
    );

    // Another valid config: left alone, no default written.
    let env = Env::new();
    env.write_conf("05-other.conflist", &VALID_LIST.replace("NAME", "other"));
    assert_eq!(env.cni().write_default_if_missing().expect("write"), None);
    assert!(!env.conf.join(DEFAULT_CONFLIST_NAME).exists());

    // Only invalid configs: the default is written and wins.
    let env = Env::new();
    env.write_conf("00-broken.conflist", "{");
    assert!(env
        .cni()
        .write_default_if_missing()
        .expect("write")
        .is_some());
    assert_eq!(env.cni().load().expect("load").name, "crust");
    let names: Vec<_> = fs::read_dir(&env.conf)
        .expect("readdir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names.len(), 2, "no temporary file left: {names:?}");
}

// ---- ADD ----

#[tokio::test]
async fn add_runs_loopback_then_plugins_with_env_stdin_and_capabilities() {
    let env = Env::new();
    env.result_plugin(
        "loopback",
        &json!({"cniVersion": "1.0.0", "interfaces": [{"name": "lo"}]}),
    );
    let first = result("10.1.0.5/24");
    env.result_plugin("fakea", &first);
    let second =
        json!({"cniVersion": "1.0.0", "ips": [{"address": "10.1.0.5/24"}], "from": "fakeb"});
    env.result_plugin("fakeb", &second);
    // The same name in the second directory must never run: the first hit wins.
    env.plugin_in(&env.bin2.clone(), "fakea", "exit 3");
    let last = json!({
        "cniVersion": "1.0.0",
        "interfaces": [
            {"name": "veth1234", "mac": "11:22:33:44:55:66"},
            {"name": "eth0", "mac": "aa:bb:cc:dd:ee:ff", "sandbox": "/run/netns/x"}
        ],
        "ips": [
            {"address": "fd00::5/64", "interface": 1},
            {"address": "169.254.1.1/32", "interface": 0},
            {"address": "10.1.0.5/24", "gateway": "10.1.0.1", "interface": 1},
            {"address": "fd00::6/64", "interface": 1}
        ]
    });
    env.plugin_in(&env.bin2.clone(), "fakec", &print_json(&last));

    let net = list(
        "1.0.0",
        json!([
            {"type": "fakea", "bridge": "b0", "runtimeConfig": {"stale": true}},
            {"type": "fakeb", "capabilities": {"portMappings": true, "bandwidth": false}},
            {"type": "fakec", "capabilities": {"bandwidth": true, "io.kubernetes.cri.pod-annotations": true}}
        ]),
    );
    let mut att = attachment("/run/netns/test");
    att.port_mappings = vec![
        PortMapping {
            host_port: 8080,
            container_port: 80,
            protocol: Protocol::Tcp,
            host_ip: String::new(),
        },
        PortMapping {
            host_port: 5353,
            container_port: 53,
            protocol: Protocol::Udp,
            host_ip: "127.0.0.1".to_string(),
        },
    ];
    att.bandwidth = Some(Bandwidth {
        ingress_rate: 1000,
        ingress_burst: 2000,
        egress_rate: 0,
        egress_burst: 0,
    });
    att.extra_capabilities.insert(
        "io.kubernetes.cri.pod-annotations".to_string(),
        json!({"a": "b"}),
    );

    let res = env.cni().add(&net, &att).await.expect("add");

    assert_eq!(
        env.calls(),
        [
            "loopback ADD lo",
            "fakea ADD eth0",
            "fakeb ADD eth0",
            "fakec ADD eth0"
        ]
    );

    let a_env = env.env_of("fakea", "ADD", "eth0");
    assert_eq!(a_env["CNI_COMMAND"], "ADD");
    assert_eq!(a_env["CNI_CONTAINERID"], "abc123");
    assert_eq!(a_env["CNI_NETNS"], "/run/netns/test");
    assert_eq!(a_env["CNI_IFNAME"], "eth0");
    assert_eq!(
        a_env["CNI_ARGS"],
        "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=abc123;K8S_POD_UID=uid-1"
    );
    assert_eq!(
        a_env["CNI_PATH"],
        format!("{}:{}", env.bin1.display(), env.bin2.display())
    );
    let lo_env = env.env_of("loopback", "ADD", "lo");
    assert_eq!(lo_env["CNI_IFNAME"], "lo");
    assert_eq!(lo_env["CNI_NETNS"], "/run/netns/test");
    assert_eq!(lo_env["CNI_CONTAINERID"], "abc123");
    assert_eq!(
        env.stdin("loopback", "ADD", "lo"),
        json!({"cniVersion": "1.0.0", "name": "cni-loopback", "type": "loopback"})
    );

    // First plugin: name and version injected, no prevResult; its own runtimeConfig is kept
    // since it declares no capability.
    assert_eq!(
        env.stdin("fakea", "ADD", "eth0"),
        json!({"type": "fakea", "bridge": "b0", "runtimeConfig": {"stale": true},
               "name": "testnet", "cniVersion": "1.0.0"})
    );
    // Second: the first's result as prevResult, only portMappings in runtimeConfig.
    let b = env.stdin("fakeb", "ADD", "eth0");
    assert_eq!(b["prevResult"], first);
    assert_eq!(
        b["runtimeConfig"],
        json!({"portMappings": [
            {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
            {"hostPort": 5353, "containerPort": 53, "protocol": "udp", "hostIP": "127.0.0.1"}
        ]})
    );
    assert_eq!(b["name"], "testnet");
    // Third: chained prevResult, only bandwidth and the extra capability.
    let c = env.stdin("fakec", "ADD", "eth0");
    assert_eq!(c["prevResult"], second);
    assert_eq!(
        c["runtimeConfig"],
        json!({
            "bandwidth": {"ingressRate": 1000, "ingressBurst": 2000, "egressRate": 0, "egressBurst": 0},
            "io.kubernetes.cri.pod-annotations": {"a": "b"}
        })
    );

    assert_eq!(res.raw, last);
    let ips: Vec<String> = res.ips.iter().map(ToString::to_string).collect();
    assert_eq!(ips, ["10.1.0.5", "fd00::5", "fd00::6"]);
    assert_eq!(res.ip_configs.len(), 4);
    assert_eq!(
        res.ip_configs[2].gateway.map(|g| g.to_string()).as_deref(),
        Some("10.1.0.1")
    );
    assert_eq!(res.ip_configs[2].prefix_len, 24);
    assert_eq!(res.interfaces[1].name, "eth0");
    assert_eq!(res.interfaces[1].sandbox, "/run/netns/x");
}

#[tokio::test]
async fn add_with_missing_plugin_runs_nothing() {
    let env = Env::new();
    env.result_plugin("loopback", &json!({}));
    env.result_plugin("fakea", &result("10.1.0.5/24"));
    let net = list(
        "1.0.0",
        json!([{"type": "fakea"}, {"type": "nosuchplugin"}]),
    );
    let err = env
        .cni()
        .add(&net, &attachment("/x"))
        .await
        .expect_err("missing");
    assert!(
        matches!(&err, CniError::PluginNotFound { plugin, dirs } if plugin == "nosuchplugin" && dirs.len() == 2),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "cni plugin \"nosuchplugin\" not found in {}:{}",
            env.bin1.display(),
            env.bin2.display()
        )
    );
    assert_eq!(err.plugin(), Some("nosuchplugin"));
    assert!(env.calls().is_empty(), "{:?}", env.calls());

    // The loopback plugin is looked up in the same directories.
    let env = Env::new();
    env.result_plugin("fakea", &result("10.1.0.5/24"));
    let net = list("1.0.0", json!([{"type": "fakea"}]));
    let err = env
        .cni()
        .add(&net, &attachment("/x"))
        .await
        .expect_err("no loopback");
    assert!(
        matches!(&err, CniError::PluginNotFound { plugin, .. } if plugin == "loopback"),
        "{err}"
    );
}

#[tokio::test]
async fn plugin_error_json_is_parsed_with_stderr() {
    let env = Env::new();
    env.result_plugin("loopback", &json!({}));
    env.plugin(
        "fakea",
        &format!(
            "{}\necho 'ipam said no' >&2\nexit 1",
            print_json(&json!({"cniVersion": "1.0.0", "code": 11, "msg": "failed to allocate for range 0", "details": "range is full"}))
        ),
    );
    let net = list("1.0.0", json!([{"type": "fakea"}]));
    let err = env
        .cni()
        .add(&net, &attachment("/x"))
        .await
        .expect_err("fails");
    match &err {
        CniError::PluginFailed(f) => assert_eq!(
            **f,
            PluginFailure {
                plugin: "fakea".to_string(),
                command: "ADD".to_string(),
                status: "exit status 1".to_string(),
                code: Some(11),
                msg: "failed to allocate for range 0".to_string(),
                details: "range is full".to_string(),
                stderr: "ipam said no".to_string(),
            }
        ),
        other => panic!("unexpected error {other}"),
    }
    assert_eq!(
        err.to_string(),
        "cni plugin \"fakea\" failed (ADD): exit status 1 (cni error code 11): failed to allocate for range 0: range is full: ipam said no"
    );

    // No JSON at all: the status and stderr still say what happened.
    env.plugin(
        "fakea",
        "echo 'failed to create bridge: permission denied' >&2\nexit 2",
    );
    let err = env
        .cni()
        .add(&net, &attachment("/x"))
        .await
        .expect_err("fails");
    assert_eq!(
        err.to_string(),
        "cni plugin \"fakea\" failed (ADD): exit status 2: failed to create bridge: permission denied"
    );

    // Garbage on stdout is reported as such.
    env.plugin("fakea", "echo 'panic: oops'\nexit 1");
    let err = env
        .cni()
        .add(&net, &attachment("/x"))
        .await
        .expect_err("fails");
    assert!(
        err.to_string()
            .contains("exit status 1: unparseable error output \"panic: oops\""),
        "{err}"
    );

    // Killed by a signal.
    env.plugin("fakea", "kill -9 $$");
    let err = env
        .cni()
        .add(&net, &attachment("/x"))
        .await
        .expect_err("fails");
    assert!(err.to_string().contains("killed by signal 9"), "{err}");
}

#[tokio::test]
async fn add_rejects_an_invalid_result() {
    let env = Env::new();
    env.result_plugin("loopback", &json!({}));
    env.plugin("fakea", "echo 'not json'");
    let net = list("1.0.0", json!([{"type": "fakea"}]));
    let err = env
        .cni()
        .add(&net, &attachment("/x"))
        .await
        .expect_err("invalid");
    assert!(
        matches!(&err, CniError::InvalidResult { plugin, .. } if plugin == "fakea"),
        "{err}"
    );

    env.result_plugin("fakea", &json!({"ips": [{"address": "10.0.0.300/24"}]}));
    let err = env
        .cni()
        .add(&net, &attachment("/x"))
        .await
        .expect_err("invalid");
    assert!(
        err.to_string()
            .contains("invalid address \"10.0.0.300/24\""),
        "{err}"
    );
}

#[tokio::test]
async fn add_validates_the_attachment_first() {
    let env = Env::new();
    env.result_plugin("loopback", &json!({}));
    env.result_plugin("fakea", &result("10.1.0.5/24"));
    let net = list("1.0.0", json!([{"type": "fakea"}]));
    for (id, ifname) in [
        ("", "eth0"),
        ("-bad", "eth0"),
        ("a b", "eth0"),
        ("ok", ""),
        ("ok", "a/b"),
        ("ok", "averyveryverylongname"),
    ] {
        let mut att = attachment("/x");
        att.container_id = id.to_string();
        att.ifname = ifname.to_string();
        let err = env
            .cni()
            .add(&net, &att)
            .await
            .expect_err("invalid attachment");
        assert!(
            matches!(err, CniError::InvalidAttachment { .. }),
            "{id:?} {ifname:?}: {err}"
        );
    }
    assert!(env.calls().is_empty());
}

#[tokio::test]
async fn a_hanging_plugin_is_killed_after_the_timeout() {
    let env = Env::new();
    env.result_plugin("loopback", &json!({}));
    let pid_file = env.log.join("sleep.pid");
    env.plugin(
        "fakea",
        &format!("sleep 30 &\necho $! > '{}'\nwait\n", pid_file.display()),
    );
    let net = list("1.0.0", json!([{"type": "fakea"}]));
    let cni = env.cni().with_exec_timeout(Duration::from_millis(500));
    assert_eq!(cni.exec_timeout(), Duration::from_millis(500));
    let started = Instant::now();
    let err = cni.add(&net, &attachment("/x")).await.expect_err("timeout");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(&err, CniError::Timeout { plugin, command, .. } if plugin == "fakea" && command == "ADD"),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "cni plugin \"fakea\" timed out after 0.5s (ADD) and was killed"
    );

    // The plugin's own child went with it (the whole process group is killed).
    let pid = fs::read_to_string(&pid_file).expect("pid file");
    let pid: u32 = pid.trim().parse().expect("pid");
    let deadline = Instant::now() + Duration::from_secs(5);
    while crate::exec::running(pid) {
        assert!(Instant::now() < deadline, "sleep {pid} still running");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---- DEL ----

#[tokio::test]
async fn del_runs_plugins_in_reverse_with_cached_result_and_no_loopback() {
    let env = Env::new();
    env.result_plugin("loopback", &json!({}));
    for p in ["fakea", "fakeb", "fakec"] {
        env.plugin(p, "exit 0");
    }
    let net = list(
        "1.0.0",
        json!([{"type": "fakea"}, {"type": "fakeb", "capabilities": {"portMappings": true}}, {"type": "fakec"}]),
    );
    let mut att = attachment("/run/netns/gone-already");
    att.port_mappings = vec![PortMapping {
        host_port: 80,
        container_port: 8080,
        protocol: Protocol::Sctp,
        host_ip: String::new(),
    }];
    let prev = result("10.1.0.5/24");
    env.cni().del(&net, &att, Some(&prev)).await.expect("del");
    assert_eq!(
        env.calls(),
        ["fakec DEL eth0", "fakeb DEL eth0", "fakea DEL eth0"]
    );
    for p in ["fakea", "fakeb", "fakec"] {
        let stdin = env.stdin(p, "DEL", "eth0");
        assert_eq!(stdin["prevResult"], prev, "{p}");
        assert_eq!(stdin["name"], "testnet");
        let e = env.env_of(p, "DEL", "eth0");
        assert_eq!(e["CNI_COMMAND"], "DEL");
        assert_eq!(e["CNI_NETNS"], "/run/netns/gone-already");
    }
    assert_eq!(
        env.stdin("fakeb", "DEL", "eth0")["runtimeConfig"],
        json!({"portMappings": [{"hostPort": 80, "containerPort": 8080, "protocol": "sctp"}]})
    );
    assert!(env
        .stdin("fakea", "DEL", "eth0")
        .get("runtimeConfig")
        .is_none());

    // Before 0.4.0 there is no prevResult on DEL (libcni).
    let env = Env::new();
    env.plugin("fakea", "exit 0");
    let old = list("0.3.1", json!([{"type": "fakea"}]));
    env.cni().del(&old, &att, Some(&prev)).await.expect("del");
    assert!(env
        .stdin("fakea", "DEL", "eth0")
        .get("prevResult")
        .is_none());
    // And without a cached result there is none either.
    env.cni()
        .del(&net_of("fakea"), &att, None)
        .await
        .expect("del");
    assert!(env
        .stdin("fakea", "DEL", "eth0")
        .get("prevResult")
        .is_none());
}

fn net_of(plugin: &str) -> NetworkList {
    list("1.0.0", json!([{ "type": plugin }]))
}

#[tokio::test]
async fn del_with_missing_plugin_still_runs_the_others_then_fails() {
    let env = Env::new();
    env.plugin("fakea", "exit 0");
    env.plugin("fakeb", "exit 0");
    let net = list(
        "1.0.0",
        json!([{"type": "fakea"}, {"type": "gone"}, {"type": "fakeb"}]),
    );
    let err = env
        .cni()
        .del(&net, &attachment("/x"), None)
        .await
        .expect_err("missing plugin");
    assert!(
        matches!(&err, CniError::PluginNotFound { plugin, .. } if plugin == "gone"),
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with("cni plugin \"gone\" not found in "),
        "{err}"
    );
    assert_eq!(env.calls(), ["fakeb DEL eth0", "fakea DEL eth0"]);
}

#[tokio::test]
async fn del_stops_at_a_failing_plugin() {
    let env = Env::new();
    env.plugin("fakea", "exit 0");
    env.plugin("fakeb", "echo 'iptables: resource busy' >&2\nexit 1");
    let net = list("1.0.0", json!([{"type": "fakea"}, {"type": "fakeb"}]));
    let err = env
        .cni()
        .del(&net, &attachment("/x"), None)
        .await
        .expect_err("fails");
    assert_eq!(
        err.to_string(),
        "cni plugin \"fakeb\" failed (DEL): exit status 1: iptables: resource busy"
    );
    assert_eq!(env.calls(), ["fakeb DEL eth0"]);
}

// ---- CHECK ----

#[tokio::test]
async fn check_runs_plugins_in_order_with_prev_result() {
    let env = Env::new();
    env.plugin("fakea", "exit 0");
    env.plugin("fakeb", "exit 0");
    let prev = result("10.1.0.5/24");
    let net = list("1.0.0", json!([{"type": "fakea"}, {"type": "fakeb"}]));
    env.cni()
        .check(&net, &attachment("/x"), &prev)
        .await
        .expect("check");
    assert_eq!(env.calls(), ["fakea CHECK eth0", "fakeb CHECK eth0"]);
    assert_eq!(env.stdin("fakeb", "CHECK", "eth0")["prevResult"], prev);

    let old = list("0.3.1", json!([{"type": "fakea"}]));
    let err = env
        .cni()
        .check(&old, &attachment("/x"), &prev)
        .await
        .expect_err("old");
    assert_eq!(
        err.to_string(),
        "cni network \"testnet\" (version 0.3.1) does not support the CHECK command"
    );

    let env = Env::new();
    let disabled = NetworkList::from_raw(
        json!({"cniVersion": "1.0.0", "name": "n", "disableCheck": true, "plugins": [{"type": "fakea"}]}),
        PathBuf::new(),
    )
    .expect("valid");
    env.cni()
        .check(&disabled, &attachment("/x"), &prev)
        .await
        .expect("disabled");
    assert!(env.calls().is_empty());
}

// ---- capability arguments ----

#[test]
fn bandwidth_from_annotations_as_containerd() {
    let ann = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    assert_eq!(
        Bandwidth::from_annotations(&ann(&[("other", "1")])).expect("ok"),
        None
    );

    let bw = Bandwidth::from_annotations(&ann(&[("kubernetes.io/ingress-bandwidth", "10M")]))
        .expect("ok")
        .expect("some");
    assert_eq!(
        bw,
        Bandwidth {
            ingress_rate: 10_000_000,
            ingress_burst: u64::from(u32::MAX),
            egress_rate: 0,
            egress_burst: 0
        }
    );
    assert_eq!(
        serde_json::to_value(bw).expect("json"),
        json!({"ingressRate": 10_000_000, "ingressBurst": 4_294_967_295u64, "egressRate": 0, "egressBurst": 0})
    );

    let bw = Bandwidth::from_annotations(&ann(&[
        ("kubernetes.io/ingress-bandwidth", "1Gi"),
        ("kubernetes.io/egress-bandwidth", "500k"),
    ]))
    .expect("ok")
    .expect("some");
    assert_eq!(bw.ingress_rate, 1 << 30);
    assert_eq!(bw.egress_rate, 500_000);
    assert_eq!(bw.egress_burst, Bandwidth::DEFAULT_BURST);

    for (value, reason) in [
        ("10MB", "not a valid quantity"),
        ("999", "unreasonably small"),
        ("2P", "unreasonably large"),
        ("-5M", "unreasonably small"),
    ] {
        let err = Bandwidth::from_annotations(&ann(&[("kubernetes.io/egress-bandwidth", value)]))
            .expect_err(value);
        let msg = err.to_string();
        assert!(
            msg.starts_with("invalid bandwidth annotation kubernetes.io/egress-bandwidth="),
            "{msg}"
        );
        assert!(msg.contains(reason), "{msg}");
    }
    // The bounds themselves are accepted.
    assert!(Bandwidth::from_annotations(&ann(&[("kubernetes.io/egress-bandwidth", "1k")])).is_ok());
    assert!(Bandwidth::from_annotations(&ann(&[("kubernetes.io/egress-bandwidth", "1P")])).is_ok());
}

#[test]
fn results_of_old_spec_versions_are_read() {
    let raw = json!({
        "cniVersion": "0.2.0",
        "ip6": {"ip": "fd00::2/64"},
        "ip4": {"ip": "10.2.0.2/16", "gateway": "10.2.0.1"}
    });
    let res = AddResult::parse(raw, "eth0").expect("parse");
    let ips: Vec<String> = res.ips.iter().map(ToString::to_string).collect();
    assert_eq!(ips, ["10.2.0.2", "fd00::2"]);
    assert_eq!(res.ip_configs[0].prefix_len, 16);
}

#[test]
fn ip_ranges_parse_as_go_parse_cidr() {
    let subnet = |s: &str| IpRange::parse(s).map(|r| r.subnet);
    assert_eq!(subnet("10.1.2.0/24").as_deref(), Ok("10.1.2.0/24"));
    // Host bits are cleared, surrounding space ignored.
    assert_eq!(subnet(" 10.1.2.77/24 ").as_deref(), Ok("10.1.2.0/24"));
    assert_eq!(subnet("10.1.2.3/32").as_deref(), Ok("10.1.2.3/32"));
    assert_eq!(subnet("10.255.255.255/0").as_deref(), Ok("0.0.0.0/0"));
    assert_eq!(subnet("fd00:1:2::5/64").as_deref(), Ok("fd00:1:2::/64"));
    assert_eq!(subnet("fd00::1/128").as_deref(), Ok("fd00::1/128"));
    for bad in [
        "",
        "10.1.2.0",
        "10.1.2.0/33",
        "fd00::/129",
        "10.1.2/24",
        "10.1.2.0/-1",
        "10.1.2.0/24/1",
        "example.com/24",
    ] {
        let err = IpRange::parse(bad).expect_err(bad);
        assert_eq!(err, format!("invalid CIDR {bad:?}"));
    }
    let sets =
        IpRange::sets_for(&["10.1.2.0/24".to_string(), "fd00::/64".to_string()]).expect("valid");
    assert_eq!(
        serde_json::to_value(&sets).expect("json"),
        json!([[{"subnet": "10.1.2.0/24"}], [{"subnet": "fd00::/64"}]])
    );
    assert!(IpRange::sets_for(&["10.1.2.0/24".to_string(), "nope".to_string()]).is_err());
}

#[tokio::test]
async fn ip_ranges_go_only_to_plugins_that_declare_them_on_add_and_del() {
    let env = Env::new();
    env.result_plugin(
        "loopback",
        &json!({"cniVersion": "1.0.0", "interfaces": [{"name": "lo"}]}),
    );
    env.result_plugin("fakebridge", &result("10.1.2.5/24"));
    env.result_plugin("fakeport", &result("10.1.2.5/24"));
    let net = list(
        "1.0.0",
        json!([
            {"type": "fakebridge", "capabilities": {"ipRanges": true},
             "ipam": {"type": "host-local"}},
            {"type": "fakeport", "capabilities": {"portMappings": true, "ipRanges": false}}
        ]),
    );
    let mut att = attachment("/run/netns/test");
    att.ip_ranges =
        IpRange::sets_for(&["10.1.2.0/24".to_string(), "fd00:1::/64".to_string()]).expect("valid");
    let res = env.cni().add(&net, &att).await.expect("add");
    let expected = json!([[{"subnet": "10.1.2.0/24"}], [{"subnet": "fd00:1::/64"}]]);
    let bridge = env.stdin("fakebridge", "ADD", "eth0");
    assert_eq!(bridge["runtimeConfig"], json!({"ipRanges": expected}));
    // The IPAM section is passed on as written: the plugin hands runtimeConfig to its IPAM.
    assert_eq!(bridge["ipam"], json!({"type": "host-local"}));
    let port = env.stdin("fakeport", "ADD", "eth0");
    assert_eq!(port["runtimeConfig"], json!({"portMappings": []}));

    // DEL passes them too: host-local refuses a DEL without any range.
    env.cni()
        .del(&net, &att, Some(&res.raw))
        .await
        .expect("del");
    let bridge = env.stdin("fakebridge", "DEL", "eth0");
    assert_eq!(bridge["runtimeConfig"], json!({"ipRanges": expected}));

    // No pod CIDR recorded: no ipRanges key at all, so the config's own ranges serve.
    att.ip_ranges.clear();
    env.cni().add(&net, &att).await.expect("add");
    let bridge = env.stdin("fakebridge", "ADD", "eth0");
    assert!(bridge.get("runtimeConfig").is_none(), "{bridge}");
}

// ---- plugins a crashed crustd left running ----

#[test]
fn orphaned_plugins_of_a_container_and_their_children_are_killed_others_are_not() {
    let id = format!("orphan-{}-{:?}", std::process::id(), Instant::now());
    let spawn = |container_id: &str| {
        std::process::Command::new("sh")
            .args(["-c", "sleep 30 & echo $!; wait"])
            .env("CNI_CONTAINERID", container_id)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("sh")
    };
    let mut plugin = spawn(&id);
    let mut other = spawn(&format!("{id}-other"));
    let read_child = |c: &mut std::process::Child| {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(c.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        line.trim().parse::<u32>().unwrap()
    };
    let grandchild = read_child(&mut plugin);
    let others_child = read_child(&mut other);
    let mut killed = kill_orphaned_plugins(&id);
    killed.sort();
    let mut want = vec![plugin.id(), grandchild];
    want.sort();
    assert_eq!(killed, want);
    assert!(plugin.wait().unwrap().signal().is_some());
    let gone = |pid: u32| !crate::exec::running(pid);
    assert!(gone(grandchild));
    assert!(!gone(other.id()) && !gone(others_child));
    assert_eq!(kill_orphaned_plugins(&format!("{id}-other")).len(), 2);
    other.wait().unwrap();
}
