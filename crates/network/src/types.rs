//! What the runtime passes to a CNI call and what it gets back.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::CniError;
use crate::quantity;

/// The pod annotation holding the ingress bandwidth limit (a Kubernetes quantity, bits/s).
pub const INGRESS_BANDWIDTH_ANNOTATION: &str = "kubernetes.io/ingress-bandwidth";
/// The pod annotation holding the egress bandwidth limit (a Kubernetes quantity, bits/s).
pub const EGRESS_BANDWIDTH_ANNOTATION: &str = "kubernetes.io/egress-bandwidth";

/// One pod's attachment to a network: the arguments of a CNI call besides the configuration.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Attachment {
    /// CNI_CONTAINERID: the pod sandbox ID.
    pub container_id: String,
    /// CNI_NETNS: the pinned network namespace path. On DEL it may no longer exist.
    pub netns: PathBuf,
    /// CNI_IFNAME for the list (normally `eth0`); loopback always gets `lo`.
    pub ifname: String,
    /// CNI_ARGS as `k=v` pairs, in order (see [`k8s_pod_args`]).
    pub args: Vec<(String, String)>,
    /// The `portMappings` capability argument.
    pub port_mappings: Vec<PortMapping>,
    /// The `bandwidth` capability argument.
    pub bandwidth: Option<Bandwidth>,
    /// The `ipRanges` capability argument: range sets to allocate from, one address per set
    /// (host-local puts them before its own `ranges`). Empty: not passed, the config's own
    /// ranges serve.
    pub ip_ranges: Vec<Vec<IpRange>>,
    /// Further capability arguments by name (e.g. `io.kubernetes.cri.pod-annotations`), given to
    /// plugins that declare them, as libcni does with `CapabilityArgs`.
    pub extra_capabilities: Map<String, Value>,
}

/// CNI_ARGS as containerd passes them for a pod: `IgnoreUnknown=1` first (so plugins that do not
/// know the K8S_ keys accept them), then the pod's namespace, name, sandbox ID and UID.
pub fn k8s_pod_args(
    namespace: &str,
    name: &str,
    sandbox_id: &str,
    uid: &str,
) -> Vec<(String, String)> {
    [
        ("IgnoreUnknown", "1"),
        ("K8S_POD_NAMESPACE", namespace),
        ("K8S_POD_NAME", name),
        ("K8S_POD_INFRA_CONTAINER_ID", sandbox_id),
        ("K8S_POD_UID", uid),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// A transport protocol of a port mapping, serialized lower-case as the portmap plugin expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

/// One entry of the `portMappings` capability (the portmap plugin's runtimeConfig).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortMapping {
    #[serde(rename = "hostPort")]
    pub host_port: i32,
    #[serde(rename = "containerPort")]
    pub container_port: i32,
    pub protocol: Protocol,
    /// Host address to bind; empty means all addresses (and is then left out).
    #[serde(rename = "hostIP", skip_serializing_if = "String::is_empty")]
    pub host_ip: String,
}

/// The `bandwidth` capability (the bandwidth plugin's runtimeConfig): rates in bits per second,
/// bursts in bits. A direction left at 0/0 is not shaped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Bandwidth {
    pub ingress_rate: u64,
    pub ingress_burst: u64,
    pub egress_rate: u64,
    pub egress_burst: u64,
}

impl Bandwidth {
    /// The burst containerd (and kubelet's dockershim before it) sets with any rate: u32::MAX bits.
    pub const DEFAULT_BURST: u64 = u32::MAX as u64;

    /// Reads `kubernetes.io/ingress-bandwidth` and `kubernetes.io/egress-bandwidth` as
    /// containerd does (kubelet's `ExtractPodBandwidthResources`): Kubernetes quantities, each
    /// between 1k and 1P bits per second; the burst of a limited direction is
    /// [`Bandwidth::DEFAULT_BURST`]. `None` when neither annotation is present.
    pub fn from_annotations(a: &HashMap<String, String>) -> Result<Option<Bandwidth>, CniError> {
        let ingress = annotation_rate(a, INGRESS_BANDWIDTH_ANNOTATION)?;
        let egress = annotation_rate(a, EGRESS_BANDWIDTH_ANNOTATION)?;
        if ingress.is_none() && egress.is_none() {
            return Ok(None);
        }
        let mut bw = Bandwidth::default();
        if let Some(rate) = ingress {
            bw.ingress_rate = rate;
            bw.ingress_burst = Bandwidth::DEFAULT_BURST;
        }
        if let Some(rate) = egress {
            bw.egress_rate = rate;
            bw.egress_burst = Bandwidth::DEFAULT_BURST;
        }
        Ok(Some(bw))
    }
}

fn annotation_rate(a: &HashMap<String, String>, key: &str) -> Result<Option<u64>, CniError> {
    let Some(value) = a.get(key) else {
        return Ok(None);
    };
    let invalid = |reason: String| CniError::InvalidBandwidth {
        annotation: key.to_string(),
        value: value.clone(),
        reason,
    };
    let v = quantity::parse_value(value.trim()).map_err(invalid)?;
    const MIN: i128 = 1_000;
    const MAX: i128 = 1_000_000_000_000_000;
    if v < MIN {
        return Err(invalid(
            "bandwidth is unreasonably small (< 1kbit)".to_string(),
        ));
    }
    if v > MAX {
        return Err(invalid(
            "bandwidth is unreasonably large (> 1Pbit)".to_string(),
        ));
    }
    u64::try_from(v)
        .map(Some)
        .map_err(|_| invalid("out of range".to_string()))
}

/// One entry of the `ipRanges` capability (host-local's `runtimeConfig.ipRanges`): a subnet
/// in canonical form (`10.1.2.0/24`, host bits clear) to allocate pod addresses from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IpRange {
    pub subnet: String,
}

impl IpRange {
    /// Parses `ADDRESS/PREFIX`, as Go's `net.ParseCIDR` (which kubelet and containerd use):
    /// host bits are cleared (`10.1.2.3/24` is `10.1.2.0/24`), anything else is refused naming
    /// the text.
    pub fn parse(cidr: &str) -> Result<IpRange, String> {
        let (ip, prefix) = parse_cidr(cidr.trim()).map_err(|_| format!("invalid CIDR {cidr:?}"))?;
        let network = match ip {
            IpAddr::V4(v4) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
                IpAddr::V4((u32::from(v4) & mask).into())
            }
            IpAddr::V6(v6) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
                IpAddr::V6((u128::from(v6) & mask).into())
            }
        };
        Ok(IpRange {
            subnet: format!("{network}/{prefix}"),
        })
    }

    /// The `ipRanges` argument for a node's pod CIDRs (kubelet's comma-separated
    /// `pod_cidr`, one CIDR per family when dual-stack): each CIDR its own range set, so the
    /// pod gets one address from each, as host-local allocates one per set.
    pub fn sets_for(cidrs: &[String]) -> Result<Vec<Vec<IpRange>>, String> {
        cidrs
            .iter()
            .map(|c| IpRange::parse(c).map(|r| vec![r]))
            .collect()
    }
}

/// The outcome of an ADD.
#[derive(Debug, Clone, PartialEq)]
pub struct AddResult {
    /// The last plugin's result as printed (the final CNI result): keep it for DEL and CHECK.
    pub raw: Value,
    /// The pod's addresses on the attachment's interface: IPv4 first, then IPv6, each family
    /// in result order. Addresses bound to another named interface (e.g. the host side of a
    /// veth) are left out, as containerd does.
    pub ips: Vec<IpAddr>,
    /// Every address of the result in result order.
    pub ip_configs: Vec<IpConfig>,
    /// Interfaces of the result in result order.
    pub interfaces: Vec<Interface>,
}

/// One `ips` entry of a result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpConfig {
    pub address: IpAddr,
    pub prefix_len: u8,
    pub gateway: Option<IpAddr>,
    /// Index into `interfaces`, when the plugin named one.
    pub interface: Option<usize>,
}

/// One `interfaces` entry of a result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub mac: String,
    /// The netns path for interfaces inside the pod; empty for host-side interfaces.
    pub sandbox: String,
}

impl AddResult {
    /// Reads a CNI result: `ips`/`interfaces` (spec 0.3.0 and later) or `ip4`/`ip6` (0.1/0.2).
    pub(crate) fn parse(raw: Value, ifname: &str) -> Result<AddResult, String> {
        let obj = raw
            .as_object()
            .ok_or_else(|| "result is not a json object".to_string())?;

        let mut interfaces = Vec::new();
        if let Some(list) = obj.get("interfaces").filter(|v| !v.is_null()) {
            let list = list
                .as_array()
                .ok_or_else(|| "\"interfaces\" is not an array".to_string())?;
            for item in list {
                let field = |k: &str| item.get(k).and_then(Value::as_str).unwrap_or("");
                interfaces.push(Interface {
                    name: field("name").to_string(),
                    mac: field("mac").to_string(),
                    sandbox: field("sandbox").to_string(),
                });
            }
        }

        let mut ip_configs = Vec::new();
        if let Some(list) = obj.get("ips").filter(|v| !v.is_null()) {
            let list = list
                .as_array()
                .ok_or_else(|| "\"ips\" is not an array".to_string())?;
            for item in list {
                let address = item
                    .get("address")
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("ip entry without \"address\": {item}"))?;
                let (address, prefix_len) = parse_cidr(address)?;
                let interface = match item.get("interface") {
                    None | Some(Value::Null) => None,
                    Some(v) => {
                        let i = v
                            .as_u64()
                            .and_then(|i| usize::try_from(i).ok())
                            .filter(|i| *i < interfaces.len())
                            .ok_or_else(|| format!("ip entry with invalid \"interface\" {v}"))?;
                        Some(i)
                    }
                };
                ip_configs.push(IpConfig {
                    address,
                    prefix_len,
                    gateway: parse_gateway(item)?,
                    interface,
                });
            }
        } else {
            // Spec 0.1.0/0.2.0 results.
            for key in ["ip4", "ip6"] {
                if let Some(item) = obj.get(key).filter(|v| !v.is_null()) {
                    let address = item
                        .get("ip")
                        .and_then(Value::as_str)
                        .ok_or_else(|| format!("\"{key}\" without \"ip\""))?;
                    let (address, prefix_len) = parse_cidr(address)?;
                    ip_configs.push(IpConfig {
                        address,
                        prefix_len,
                        gateway: parse_gateway(item)?,
                        interface: None,
                    });
                }
            }
        }

        let on_attachment = |c: &&IpConfig| match c.interface {
            None => true,
            Some(i) => interfaces[i].name == ifname,
        };
        let mut ips: Vec<IpAddr> = ip_configs
            .iter()
            .filter(on_attachment)
            .map(|c| c.address)
            .collect();
        // Stable: keeps result order within each family.
        ips.sort_by_key(|ip| ip.is_ipv6());

        Ok(AddResult {
            raw,
            ips,
            ip_configs,
            interfaces,
        })
    }
}

fn parse_cidr(s: &str) -> Result<(IpAddr, u8), String> {
    let bad = || format!("invalid address {s:?}");
    let (ip, prefix) = s.split_once('/').ok_or_else(bad)?;
    let ip: IpAddr = ip.parse().map_err(|_| bad())?;
    let prefix: u8 = prefix.parse().map_err(|_| bad())?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    if prefix > max {
        return Err(bad());
    }
    Ok((ip, prefix))
}

fn parse_gateway(item: &Value) -> Result<Option<IpAddr>, String> {
    match item.get("gateway").and_then(Value::as_str) {
        None | Some("") => Ok(None),
        Some(g) => g
            .parse()
            .map(Some)
            .map_err(|_| format!("invalid gateway {g:?}")),
    }
}
