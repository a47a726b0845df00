//! Per-interface network counters, from `/proc/net/dev` (the file shows the reading thread's
//! network namespace).

use std::path::{Path, PathBuf};

use crate::error::{Error, ParseError};

/// The counters of one network interface.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InterfaceStats {
    pub name: String,
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
}

/// Parses `/proc/net/dev`: two header lines, then `name: ` and 16 counters per interface
/// (receive: bytes packets errs drop fifo frame compressed multicast; transmit: bytes packets
/// errs drop fifo colls carrier compressed). Interfaces in file order.
pub fn parse_net_dev(text: &str) -> Result<Vec<InterfaceStats>, ParseError> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.contains('|') || line.trim().is_empty() {
            continue;
        }
        let Some((name, counters)) = line.split_once(':') else {
            return Err(ParseError(format!("net/dev: {line:?} names no interface")));
        };
        let values = counters
            .split_whitespace()
            .map(str::parse::<u64>)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| {
                ParseError(format!(
                    "net/dev: {line:?} has a counter that is not a number"
                ))
            })?;
        if values.len() != 16 {
            return Err(ParseError(format!(
                "net/dev: {line:?} has {} counters, not 16",
                values.len()
            )));
        }
        out.push(InterfaceStats {
            name: name.trim().to_string(),
            rx_bytes: values[0],
            rx_packets: values[1],
            rx_errors: values[2],
            rx_dropped: values[3],
            tx_bytes: values[8],
            tx_packets: values[9],
            tx_errors: values[10],
            tx_dropped: values[11],
        });
    }
    Ok(out)
}

/// Reads a file in `/proc/net/dev` form (`/proc/net/dev` itself is the calling thread's
/// network namespace; `/proc/PID/net/dev` that of the process).
pub fn net_dev(path: &Path) -> Result<Vec<InterfaceStats>, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    parse_net_dev(&text).map_err(|e| Error::parse(path, e))
}

/// The interfaces of each network namespace in `netns` (paths of namespace files: pinned bind
/// mounts, `/proc/PID/ns/net`), one result per path, in order.
///
/// A socket, and `/proc/thread-self/net`, belong to the namespace of the thread, so this runs
/// on a short-lived thread of its own that joins each namespace in turn and then ends: no
/// pooled thread is ever left in a pod's namespace. Blocks until done.
pub fn netns_net_dev(netns: &[PathBuf]) -> Vec<Result<Vec<InterfaceStats>, Error>> {
    if netns.is_empty() {
        return Vec::new();
    }
    let paths = netns.to_vec();
    let spawned = std::thread::Builder::new()
        .name("crust-stats-netns".into())
        .spawn(move || {
            let dev = Path::new("/proc/thread-self/net/dev");
            paths
                .iter()
                .map(|path| {
                    crust_sys::setns_path(path, crust_sys::Namespace::Net)
                        .map_err(|e| Error::io(path, e.into_io_error()))?;
                    net_dev(dev).map_err(|e| match e {
                        Error::Io { source, .. } => Error::io(path, source),
                        Error::Parse { source, .. } => Error::parse(path, source),
                    })
                })
                .collect::<Vec<_>>()
        });
    let failed = |why: String| {
        netns
            .iter()
            .map(|path| Err(Error::io(path, std::io::Error::other(why.clone()))))
            .collect()
    };
    match spawned {
        Ok(handle) => handle
            .join()
            .unwrap_or_else(|_| failed("the namespace reader thread panicked".into())),
        Err(e) => failed(format!("starting a namespace reader thread: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     280       4    0    0    0     0          0         0      280       4    0    0    0     0       0          0
  eth0: 1049736     780    1    2    0     0          0         0    51930     774    3    4    0     0       0          0
bond0:18446744073709551615 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0
";

    #[test]
    fn parses_every_interface() {
        let ifs = parse_net_dev(SAMPLE).unwrap();
        assert_eq!(ifs.len(), 3);
        assert_eq!(ifs[0].name, "lo");
        assert_eq!(
            ifs[1],
            InterfaceStats {
                name: "eth0".into(),
                rx_bytes: 1_049_736,
                rx_packets: 780,
                rx_errors: 1,
                rx_dropped: 2,
                tx_bytes: 51_930,
                tx_packets: 774,
                tx_errors: 3,
                tx_dropped: 4,
            }
        );
        // Old kernels print no space after the colon once the counter is wide.
        assert_eq!(ifs[2].name, "bond0");
        assert_eq!(ifs[2].rx_bytes, u64::MAX);
    }

    #[test]
    fn malformed_lines_are_errors() {
        assert!(parse_net_dev("eth0 1 2 3\n").is_err());
        let short = "eth0: 1 2 3\n";
        assert!(parse_net_dev(short).unwrap_err().0.contains("3 counters"));
        let bad = "eth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 x\n";
        assert!(parse_net_dev(bad).is_err());
        assert_eq!(parse_net_dev("").unwrap(), vec![]);
    }

    #[test]
    fn reads_this_process_namespace() {
        let ifs = net_dev(Path::new("/proc/net/dev")).unwrap();
        assert!(ifs.iter().any(|i| i.name == "lo"), "{ifs:?}");
        let gone = net_dev(Path::new("/nonexistent/net/dev")).unwrap_err();
        assert!(gone.is_not_found());
    }

    #[test]
    fn reads_namespaces_by_path() {
        // The host's own namespace by path (needs the right to setns: root). A path that is
        // not a namespace fails alone.
        let own = PathBuf::from("/proc/self/ns/net");
        let missing = PathBuf::from("/nonexistent/ns/net");
        let results = netns_net_dev(&[own.clone(), missing.clone(), own]);
        assert_eq!(results.len(), 3);
        let err = results[1].as_ref().unwrap_err();
        assert_eq!(err.path(), missing);
        if let Ok(ifs) = &results[0] {
            assert!(ifs.iter().any(|i| i.name == "lo"), "{ifs:?}");
            assert_eq!(
                results[2].as_ref().unwrap().len(),
                ifs.len(),
                "the namespace after a failed one is read again"
            );
        }
        assert!(netns_net_dev(&[]).is_empty());
    }
}
