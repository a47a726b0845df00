//! ADD, CHECK and DEL with the real CNI plugins (bridge, host-local, portmap, loopback) in a
//! network namespace of our own. Needs root; skipped (with a note) otherwise.

use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use crust_network::{k8s_pod_args, AddResult, Attachment, Cni, CniError, NetworkList};
use serde_json::json;

const BIN_DIRS: [&str; 2] = ["/opt/cni/bin", "/usr/lib/cni"];
const SUBNET_PREFIX: &str = "10.88.250.";

/// Removes the namespace and the bridge whatever happens to the test.
struct Cleanup {
    netns: String,
    bridge: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .output();
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .output();
    }
}

fn run(cmd: &str, args: &[&str]) -> std::process::Output {
    Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd} {args:?}: {e}"))
}

fn link_exists(name: &str) -> bool {
    run("ip", &["link", "show", name]).status.success()
}

fn ping(ip: IpAddr) -> bool {
    let ip = ip.to_string();
    let out = if Path::new("/usr/bin/ping").exists() || Path::new("/bin/ping").exists() {
        run("ping", &["-c1", "-W2", &ip])
    } else {
        // Debian's minimal images have no iputils-ping; busybox-static is a test dependency.
        run("busybox", &["ping", "-c1", "-W2", &ip])
    };
    if !out.status.success() {
        eprintln!(
            "ping {ip} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out.status.success()
}

/// The host side of the veth: an interface of the result outside any sandbox, not the bridge.
fn host_veth(res: &AddResult, bridge: &str) -> String {
    res.interfaces
        .iter()
        .find(|i| i.sandbox.is_empty() && i.name != bridge)
        .map(|i| i.name.clone())
        .unwrap_or_else(|| panic!("no host veth in {}", res.raw))
}

fn the_ipv4(res: &AddResult) -> IpAddr {
    let ip = *res
        .ips
        .first()
        .unwrap_or_else(|| panic!("no ip in {}", res.raw));
    assert!(ip.is_ipv4(), "{ip}");
    assert!(
        ip.to_string().starts_with(SUBNET_PREFIX),
        "{ip} outside 10.88.250.0/24"
    );
    ip
}

#[tokio::test]
async fn real_bridge_add_check_del() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipping real_bridge_add_check_del: needs root for network namespaces");
        return;
    }
    let suffix = format!("{:04x}", rand::random::<u16>());
    let netns = format!("crust-nettest-{suffix}");
    let bridge = format!("crtest{suffix}");
    let network = format!("crtest-{suffix}");
    let _cleanup = Cleanup {
        netns: netns.clone(),
        bridge: bridge.clone(),
    };
    let out = run("ip", &["netns", "add", &netns]);
    assert!(
        out.status.success(),
        "ip netns add: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let netns_path = PathBuf::from(format!("/run/netns/{netns}"));

    let tmp = tempfile::tempdir().expect("tempdir");
    let conf_dir = tmp.path().join("net.d");
    let data_dir = tmp.path().join("ipam");
    fs::create_dir_all(&conf_dir).expect("mkdir");
    let conflist = json!({
        "cniVersion": "1.0.0",
        "name": network,
        "plugins": [
            {
                "type": "bridge",
                "bridge": bridge,
                "isGateway": true,
                "ipMasq": false,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "dataDir": data_dir,
                    "ranges": [[{ "subnet": "10.88.250.0/24" }]],
                    "routes": [{ "dst": "0.0.0.0/0" }]
                }
            },
            { "type": "portmap", "capabilities": { "portMappings": true } }
        ]
    });
    fs::write(conf_dir.join("10-test.conflist"), conflist.to_string()).expect("write conflist");

    let cni = Cni::new(
        conf_dir.clone(),
        BIN_DIRS.iter().map(PathBuf::from).collect(),
    );
    let net = cni.load().expect("load conflist");
    assert_eq!(net.name, network);
    cni.validate(&net).expect("all plugins installed");

    let attachment = |id: &str| Attachment {
        container_id: id.to_string(),
        netns: netns_path.clone(),
        ifname: "eth0".to_string(),
        args: k8s_pod_args("default", "nettest", id, "uid-nettest"),
        ..Default::default()
    };
    let alloc_file = |ip: IpAddr| data_dir.join(&network).join(ip.to_string());

    // ADD: an address in the subnet, reachable from the host, loopback up in the pod.
    let att_a = attachment(&format!("crtest-a-{suffix}"));
    let res = cni.add(&net, &att_a).await.expect("add");
    let ip = the_ipv4(&res);
    assert!(alloc_file(ip).exists(), "no host-local allocation for {ip}");
    let veth = host_veth(&res, &bridge);
    assert!(link_exists(&veth), "veth {veth} missing after ADD");
    let lo = run(
        "ip",
        &["netns", "exec", &netns, "ip", "-o", "link", "show", "lo"],
    );
    assert!(
        String::from_utf8_lossy(&lo.stdout).contains(",UP"),
        "lo not up in the pod: {}",
        String::from_utf8_lossy(&lo.stdout)
    );
    assert!(ping(ip), "host cannot reach the pod at {ip}");

    // CHECK against the ADD result passes.
    cni.check(&net, &att_a, &res.raw).await.expect("check");

    // DEL: the allocation and the veth are gone; a second DEL is fine.
    cni.del(&net, &att_a, Some(&res.raw)).await.expect("del");
    assert!(
        !alloc_file(ip).exists(),
        "allocation for {ip} left after DEL"
    );
    assert!(!link_exists(&veth), "veth {veth} left after DEL");
    cni.del(&net, &att_a, Some(&res.raw))
        .await
        .expect("second del");

    // DEL after the namespace is gone still releases the address (configuration from the
    // stored raw form, as crustd does).
    let att_b = attachment(&format!("crtest-b-{suffix}"));
    let res_b = cni.add(&net, &att_b).await.expect("add again");
    let ip_b = the_ipv4(&res_b);
    assert!(alloc_file(ip_b).exists());
    let out = run("ip", &["netns", "del", &netns]);
    assert!(
        out.status.success(),
        "ip netns del: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stored = NetworkList::from_raw(net.raw.clone(), net.file.clone()).expect("stored list");
    cni.del(&stored, &att_b, Some(&res_b.raw))
        .await
        .expect("del without netns");
    assert!(
        !alloc_file(ip_b).exists(),
        "allocation for {ip_b} left after DEL without netns"
    );

    // A list naming a plugin that is not installed fails before running anything.
    let mut broken = conflist.clone();
    broken["plugins"][1]["type"] = json!("crust-no-such-plugin");
    let broken = NetworkList::from_raw(broken, PathBuf::from("broken.conflist")).expect("parse");
    let out = run("ip", &["netns", "add", &netns]);
    assert!(
        out.status.success(),
        "ip netns add: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = cni
        .add(&broken, &attachment(&format!("crtest-c-{suffix}")))
        .await
        .expect_err("missing plugin");
    assert!(
        matches!(&err, CniError::PluginNotFound { plugin, .. } if plugin == "crust-no-such-plugin"),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("\"crust-no-such-plugin\" not found in /opt/cni/bin:/usr/lib/cni"),
        "{err}"
    );
    let leftovers: Vec<_> = fs::read_dir(data_dir.join(&network))
        .expect("ipam dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(SUBNET_PREFIX))
        .collect();
    assert!(leftovers.is_empty(), "allocations left: {leftovers:?}");
}
