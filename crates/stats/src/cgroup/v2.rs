//! cgroup v2: the files of one cgroup directory in the unified hierarchy.
//!
//! Each parser takes a lookup of file texts by name (`None`: the file is not there) and returns
//! `None` when the controller's files are missing altogether.

use std::path::Path;

use super::{
    flat, parse_max, parse_u64, pids, read_files, working_set_and_available, CgroupStats, CpuStats,
    Detail, Files, MemoryStats, SwapStats, Throttling,
};
use crate::error::{Error, ParseError};

/// Every file the v2 reader looks at.
pub const FILES: &[&str] = &[
    "cpu.stat",
    "memory.current",
    "memory.max",
    "memory.stat",
    "memory.events",
    "memory.peak",
    "memory.swap.current",
    "memory.swap.max",
    "pids.current",
    "pids.max",
];

/// The files [`Detail::Cri`] needs.
pub const CRI_FILES: &[&str] = &[
    "cpu.stat",
    "memory.current",
    "memory.max",
    "memory.stat",
    "memory.swap.current",
    "memory.swap.max",
    "pids.current",
];

pub(crate) fn read(dir: &Path, detail: Detail) -> Result<CgroupStats, Error> {
    let mut files = Files::new();
    let names = match detail {
        Detail::Full => FILES,
        Detail::Cri => CRI_FILES,
    };
    read_files(dir, names, &mut files)?;
    let file = |name: &str| files.get(name).map(String::as_str);
    parse(file).map_err(|e| Error::parse(dir, e))
}

/// The whole reading from the files' texts.
pub fn parse<'a>(file: impl Fn(&str) -> Option<&'a str> + Copy) -> Result<CgroupStats, ParseError> {
    Ok(CgroupStats {
        cpu: cpu(file)?,
        memory: memory(file)?,
        swap: swap(file)?,
        pids: pids(file)?,
    })
}

/// `cpu.stat`: usage_usec, user_usec, system_usec, and with the cpu controller enabled
/// nr_periods, nr_throttled, throttled_usec.
pub fn cpu<'a>(file: impl Fn(&str) -> Option<&'a str>) -> Result<Option<CpuStats>, ParseError> {
    let Some(text) = file("cpu.stat") else {
        return Ok(None);
    };
    let stat = flat(text);
    let Some(usage_usec) = stat.get("usage_usec") else {
        return Err(ParseError("cpu.stat: no usage_usec".into()));
    };
    let ns = |key: &str| stat.get(key).map(|us| us.saturating_mul(1000));
    Ok(Some(CpuStats {
        usage_ns: usage_usec.saturating_mul(1000),
        user_ns: ns("user_usec"),
        system_ns: ns("system_usec"),
        throttling: stat.get("nr_periods").map(|&periods| Throttling {
            periods,
            throttled_periods: stat.get("nr_throttled").copied().unwrap_or(0),
            throttled_ns: ns("throttled_usec").unwrap_or(0),
        }),
    }))
}

/// `memory.current`, `memory.stat`, `memory.max`, `memory.events`, `memory.peak`.
pub fn memory<'a>(
    file: impl Fn(&str) -> Option<&'a str>,
) -> Result<Option<MemoryStats>, ParseError> {
    let Some(current) = file("memory.current") else {
        return Ok(None);
    };
    let usage = parse_u64("memory.current", current)?;
    let stat = flat(file("memory.stat").unwrap_or_default());
    let get = |key: &str| stat.get(key).copied().unwrap_or(0);
    let limit = match file("memory.max") {
        Some(text) => parse_max("memory.max", text)?,
        None => None,
    };
    let events = file("memory.events").map(flat);
    let inactive_file = get("inactive_file");
    let (working_set, available) = working_set_and_available(usage, inactive_file, limit);
    Ok(Some(MemoryStats {
        usage_bytes: usage,
        working_set_bytes: working_set,
        rss_bytes: get("anon"),
        cache_bytes: get("file"),
        mapped_file_bytes: get("file_mapped"),
        inactive_file_bytes: inactive_file,
        page_faults: get("pgfault"),
        major_page_faults: get("pgmajfault"),
        limit_bytes: limit,
        available_bytes: available,
        max_usage_bytes: file("memory.peak")
            .map(|t| parse_u64("memory.peak", t))
            .transpose()?,
        failcnt: events.as_ref().map(|e| e.get("max").copied().unwrap_or(0)),
        oom_kills: events.as_ref().and_then(|e| e.get("oom_kill").copied()),
    }))
}

/// `memory.swap.current` and `memory.swap.max` (absent without swap accounting).
pub fn swap<'a>(file: impl Fn(&str) -> Option<&'a str>) -> Result<Option<SwapStats>, ParseError> {
    let Some(current) = file("memory.swap.current") else {
        return Ok(None);
    };
    let usage = parse_u64("memory.swap.current", current)?;
    let limit = match file("memory.swap.max") {
        Some(text) => parse_max("memory.swap.max", text)?,
        None => None,
    };
    Ok(Some(SwapStats {
        usage_bytes: usage,
        limit_bytes: limit,
        available_bytes: limit.map(|l| l.saturating_sub(usage)),
    }))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::super::PidsStats;
    use super::*;

    /// Files of a real v2 container cgroup (kernel 6.1), trimmed.
    fn sample() -> HashMap<&'static str, &'static str> {
        HashMap::from([
            (
                "cpu.stat",
                "usage_usec 2500123\nuser_usec 2000000\nsystem_usec 500123\n\
                 core_sched.force_idle_usec 0\nnr_periods 120\nnr_throttled 7\n\
                 throttled_usec 35000\nnr_bursts 0\nburst_usec 0\n",
            ),
            ("memory.current", "157286400\n"),
            ("memory.max", "268435456\n"),
            (
                "memory.stat",
                "anon 104857600\nfile 52428800\nkernel 1048576\nkernel_stack 32768\n\
                 pagetables 262144\nsock 0\nshmem 0\nfile_mapped 4194304\nfile_dirty 0\n\
                 file_writeback 0\nswapcached 0\nanon_thp 0\ninactive_anon 104857600\n\
                 active_anon 0\ninactive_file 41943040\nactive_file 10485760\n\
                 unevictable 0\nslab_reclaimable 200000\nslab_unreclaimable 300000\n\
                 slab 500000\npgfault 30215\npgmajfault 12\nworkingset_refault_anon 0\n",
            ),
            (
                "memory.events",
                "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n",
            ),
            ("memory.peak", "200000000\n"),
            ("memory.swap.current", "1048576\n"),
            ("memory.swap.max", "max\n"),
            ("pids.current", "4\n"),
            ("pids.max", "max\n"),
        ])
    }

    fn parse_map(files: &HashMap<&'static str, &'static str>) -> Result<CgroupStats, ParseError> {
        parse(|name| files.get(name).copied())
    }

    #[test]
    fn a_full_reading() {
        let s = parse_map(&sample()).unwrap();
        assert_eq!(
            s.cpu.unwrap(),
            CpuStats {
                usage_ns: 2_500_123_000,
                user_ns: Some(2_000_000_000),
                system_ns: Some(500_123_000),
                throttling: Some(Throttling {
                    periods: 120,
                    throttled_periods: 7,
                    throttled_ns: 35_000_000,
                }),
            }
        );
        let m = s.memory.unwrap();
        assert_eq!(m.usage_bytes, 157_286_400);
        assert_eq!(m.working_set_bytes, 157_286_400 - 41_943_040);
        assert_eq!(m.rss_bytes, 104_857_600);
        assert_eq!(m.cache_bytes, 52_428_800);
        assert_eq!(m.mapped_file_bytes, 4_194_304);
        assert_eq!((m.page_faults, m.major_page_faults), (30215, 12));
        assert_eq!(m.limit_bytes, Some(268_435_456));
        assert_eq!(
            m.available_bytes,
            Some(268_435_456 - (157_286_400 - 41_943_040))
        );
        assert_eq!(m.max_usage_bytes, Some(200_000_000));
        assert_eq!((m.failcnt, m.oom_kills), (Some(3), Some(1)));
        assert_eq!(
            s.swap.unwrap(),
            SwapStats {
                usage_bytes: 1_048_576,
                limit_bytes: None,
                available_bytes: None,
            }
        );
        assert_eq!(
            s.pids.unwrap(),
            PidsStats {
                current: 4,
                limit: None,
            }
        );
    }

    #[test]
    fn no_limit_no_throttling_no_controllers() {
        let mut files = sample();
        files.insert("memory.max", "max\n");
        files.insert("cpu.stat", "usage_usec 10\nuser_usec 6\nsystem_usec 4\n");
        files.insert("pids.max", "100\n");
        files.insert("memory.swap.max", "4096\n");
        files.insert("memory.swap.current", "1024\n");
        let s = parse_map(&files).unwrap();
        let cpu = s.cpu.unwrap();
        assert_eq!(cpu.usage_ns, 10_000);
        assert_eq!(cpu.throttling, None);
        let m = s.memory.unwrap();
        assert_eq!((m.limit_bytes, m.available_bytes), (None, None));
        assert_eq!(s.pids.unwrap().limit, Some(100));
        assert_eq!(s.swap.unwrap().available_bytes, Some(3072));

        // A cgroup where only cpu.stat exists (the memory and pids controllers not enabled).
        let only_cpu = HashMap::from([("cpu.stat", "usage_usec 5\n")]);
        let s = parse_map(&only_cpu).unwrap();
        assert_eq!(s.cpu.unwrap().user_ns, None);
        assert_eq!((s.memory, s.swap, s.pids), (None, None, None));
    }

    #[test]
    fn malformed_files_are_errors_naming_the_file() {
        let mut files = sample();
        files.insert("memory.current", "lots\n");
        let e = parse_map(&files).unwrap_err();
        assert!(e.0.starts_with("memory.current: "), "{e}");
        let mut files = sample();
        files.insert("cpu.stat", "user_usec 1\n");
        assert_eq!(parse_map(&files).unwrap_err().0, "cpu.stat: no usage_usec");
    }

    #[test]
    fn reads_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in sample() {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let s = read(dir.path(), Detail::Full).unwrap();
        assert_eq!(s, parse_map(&sample()).unwrap());
        let cri = read(dir.path(), Detail::Cri).unwrap();
        let m = cri.memory.as_ref().unwrap();
        assert_eq!(
            m.working_set_bytes,
            s.memory.as_ref().unwrap().working_set_bytes
        );
        assert_eq!(
            (m.failcnt, m.oom_kills, m.max_usage_bytes),
            (None, None, None)
        );
        assert_eq!(cri.cpu, s.cpu, "one file holds all of v2's CPU figures");
        assert_eq!(cri.swap, s.swap);
        assert_eq!(cri.pids.unwrap().current, 4);
        std::fs::write(dir.path().join("pids.current"), "x").unwrap();
        let e = read(dir.path(), Detail::Full).unwrap_err();
        assert_eq!(e.path(), dir.path());
        assert!(e.to_string().contains("pids.current: \"x\""), "{e}");
    }
}
