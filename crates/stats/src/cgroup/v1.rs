//! cgroup v1: the files of one cgroup in the cpu, cpuacct, memory and pids hierarchies.
//!
//! Each parser takes a lookup of file texts by name (`None`: the file is not there; v1 file
//! names are unique across controllers) and returns `None` when the controller's files are
//! missing altogether.

use std::path::Path;

use super::{
    flat, parse_u64, pids, read_files, working_set_and_available, CgroupStats, CpuStats, Detail,
    Files, MemoryStats, SwapStats, Throttling, V1Dirs,
};
use crate::error::{Error, ParseError};

/// What the cpuacct controller's files are read for.
pub const CPUACCT_FILES: &[&str] = &[
    "cpuacct.usage",
    "cpuacct.usage_user",
    "cpuacct.usage_sys",
    "cpuacct.stat",
];
/// The cpu controller's throttling counters.
pub const CPU_FILES: &[&str] = &["cpu.stat"];
/// The memory controller's files read.
pub const MEMORY_FILES: &[&str] = &[
    "memory.usage_in_bytes",
    "memory.limit_in_bytes",
    "memory.max_usage_in_bytes",
    "memory.failcnt",
    "memory.stat",
    "memory.oom_control",
    "memory.memsw.usage_in_bytes",
    "memory.memsw.limit_in_bytes",
];
/// The pids controller's files.
pub const PIDS_FILES: &[&str] = &["pids.current", "pids.max"];

/// Limits above this are the kernel's "unlimited" (PAGE_COUNTER_MAX pages, rounded), as
/// containerd and cAdvisor read them.
const UNLIMITED: u64 = 1 << 62;

/// `cpuacct.stat` counts in USER_HZ ticks, which is 100 on every architecture Linux runs
/// containers on (it is fixed for user space, unlike CONFIG_HZ).
const NS_PER_USER_HZ_TICK: u64 = 10_000_000;

/// What [`Detail::Cri`] reads of each controller: half the files.
const CRI_CPUACCT_FILES: &[&str] = &["cpuacct.usage"];
const CRI_MEMORY_FILES: &[&str] = &[
    "memory.usage_in_bytes",
    "memory.limit_in_bytes",
    "memory.stat",
    "memory.memsw.usage_in_bytes",
    "memory.memsw.limit_in_bytes",
];
const CRI_PIDS_FILES: &[&str] = &["pids.current"];

pub(crate) fn read(dirs: &V1Dirs, detail: Detail) -> Result<CgroupStats, Error> {
    let mut files = Files::new();
    let lists = match detail {
        Detail::Full => [CPUACCT_FILES, CPU_FILES, MEMORY_FILES, PIDS_FILES],
        Detail::Cri => [CRI_CPUACCT_FILES, &[], CRI_MEMORY_FILES, CRI_PIDS_FILES],
    };
    for (dir, names) in [&dirs.cpuacct, &dirs.cpu, &dirs.memory, &dirs.pids]
        .into_iter()
        .zip(lists)
    {
        if let Some(dir) = dir {
            read_files(dir, names, &mut files)?;
        }
    }
    let file = |name: &str| files.get(name).map(String::as_str);
    parse(file).map_err(|e| {
        let dir = [&dirs.memory, &dirs.cpuacct, &dirs.pids, &dirs.cpu]
            .into_iter()
            .flatten()
            .next()
            .map_or(Path::new(""), |d| d.as_path());
        Error::parse(dir, e)
    })
}

/// The whole reading from the files' texts.
pub fn parse<'a>(file: impl Fn(&str) -> Option<&'a str> + Copy) -> Result<CgroupStats, ParseError> {
    let memory = memory(file)?;
    Ok(CgroupStats {
        cpu: cpu(file)?,
        swap: swap(file, memory.as_ref())?,
        memory,
        pids: pids(file)?,
    })
}

/// `cpuacct.usage` (ns), user and system time from `cpuacct.usage_user`/`usage_sys` (ns) or
/// else `cpuacct.stat` (ticks), throttling from the cpu controller's `cpu.stat`.
pub fn cpu<'a>(file: impl Fn(&str) -> Option<&'a str>) -> Result<Option<CpuStats>, ParseError> {
    let Some(usage) = file("cpuacct.usage") else {
        return Ok(None);
    };
    let usage_ns = parse_u64("cpuacct.usage", usage)?;
    let (mut user_ns, mut system_ns) = (None, None);
    if let (Some(user), Some(sys)) = (file("cpuacct.usage_user"), file("cpuacct.usage_sys")) {
        user_ns = Some(parse_u64("cpuacct.usage_user", user)?);
        system_ns = Some(parse_u64("cpuacct.usage_sys", sys)?);
    } else if let Some(stat) = file("cpuacct.stat") {
        let stat = flat(stat);
        let ticks = |key: &str| stat.get(key).map(|t| t.saturating_mul(NS_PER_USER_HZ_TICK));
        user_ns = ticks("user");
        system_ns = ticks("system");
    }
    let throttling = file("cpu.stat").map(flat).map(|stat| Throttling {
        periods: stat.get("nr_periods").copied().unwrap_or(0),
        throttled_periods: stat.get("nr_throttled").copied().unwrap_or(0),
        throttled_ns: stat.get("throttled_time").copied().unwrap_or(0),
    });
    Ok(Some(CpuStats {
        usage_ns,
        user_ns,
        system_ns,
        throttling,
    }))
}

/// A v1 limit: `None` when it is the kernel's "unlimited".
fn limit(file: &str, text: Option<&str>) -> Result<Option<u64>, ParseError> {
    match text {
        Some(text) => Ok(Some(parse_u64(file, text)?).filter(|&l| l < UNLIMITED)),
        None => Ok(None),
    }
}

/// `memory.usage_in_bytes`, `memory.stat` (the hierarchical `total_*` counters), the limit,
/// max usage, failcnt and `memory.oom_control`'s oom_kill.
pub fn memory<'a>(
    file: impl Fn(&str) -> Option<&'a str>,
) -> Result<Option<MemoryStats>, ParseError> {
    let Some(usage) = file("memory.usage_in_bytes") else {
        return Ok(None);
    };
    let usage = parse_u64("memory.usage_in_bytes", usage)?;
    let stat = flat(file("memory.stat").unwrap_or_default());
    let get = |key: &str| stat.get(key).copied().unwrap_or(0);
    let limit = limit("memory.limit_in_bytes", file("memory.limit_in_bytes"))?;
    let inactive_file = get("total_inactive_file");
    let (working_set, available) = working_set_and_available(usage, inactive_file, limit);
    let optional = |name: &str| file(name).map(|t| parse_u64(name, t)).transpose();
    Ok(Some(MemoryStats {
        usage_bytes: usage,
        working_set_bytes: working_set,
        rss_bytes: get("total_rss"),
        cache_bytes: get("total_cache"),
        mapped_file_bytes: get("total_mapped_file"),
        inactive_file_bytes: inactive_file,
        page_faults: get("total_pgfault"),
        major_page_faults: get("total_pgmajfault"),
        limit_bytes: limit,
        available_bytes: available,
        max_usage_bytes: optional("memory.max_usage_in_bytes")?,
        failcnt: optional("memory.failcnt")?,
        oom_kills: file("memory.oom_control").and_then(|t| flat(t).get("oom_kill").copied()),
    }))
}

/// Swap from `memory.memsw.*` (memory + swap) less the memory figures; `None` without swap
/// accounting (no memsw files) or without a memory reading.
pub fn swap<'a>(
    file: impl Fn(&str) -> Option<&'a str>,
    memory: Option<&MemoryStats>,
) -> Result<Option<SwapStats>, ParseError> {
    let (Some(memsw), Some(memory)) = (file("memory.memsw.usage_in_bytes"), memory) else {
        return Ok(None);
    };
    let usage = parse_u64("memory.memsw.usage_in_bytes", memsw)?.saturating_sub(memory.usage_bytes);
    let memsw_limit = limit(
        "memory.memsw.limit_in_bytes",
        file("memory.memsw.limit_in_bytes"),
    )?;
    let limit = memsw_limit.map(|l| l.saturating_sub(memory.limit_bytes.unwrap_or(0)));
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

    /// Files of a v1 container cgroup on a hybrid node (kernel 6.1), trimmed.
    fn sample() -> HashMap<&'static str, &'static str> {
        HashMap::from([
            ("cpuacct.usage", "7123456789\n"),
            ("cpuacct.usage_user", "6000000000\n"),
            ("cpuacct.usage_sys", "1123456789\n"),
            ("cpuacct.stat", "user 600\nsystem 112\n"),
            (
                "cpu.stat",
                "nr_periods 50\nnr_throttled 2\nthrottled_time 12345678\nnr_bursts 0\n\
                 burst_time 0\n",
            ),
            ("memory.usage_in_bytes", "110100480\n"),
            ("memory.limit_in_bytes", "9223372036854771712\n"),
            ("memory.max_usage_in_bytes", "120000000\n"),
            ("memory.failcnt", "0\n"),
            (
                "memory.stat",
                "cache 2097152\nrss 104857600\nrss_huge 0\nshmem 0\nmapped_file 1048576\n\
                 dirty 0\nwriteback 0\nswap 0\npgpgin 30000\npgpgout 3000\npgfault 31000\n\
                 pgmajfault 3\ninactive_anon 104857600\nactive_anon 0\ninactive_file 1048576\n\
                 active_file 1048576\nunevictable 0\n\
                 hierarchical_memory_limit 9223372036854771712\n\
                 hierarchical_memsw_limit 9223372036854771712\ntotal_cache 4194304\n\
                 total_rss 104857600\ntotal_rss_huge 0\ntotal_shmem 0\n\
                 total_mapped_file 2097152\ntotal_dirty 0\ntotal_writeback 0\ntotal_swap 0\n\
                 total_pgpgin 30000\ntotal_pgpgout 3000\ntotal_pgfault 32000\n\
                 total_pgmajfault 4\ntotal_inactive_anon 104857600\ntotal_active_anon 0\n\
                 total_inactive_file 3145728\ntotal_active_file 1048576\n\
                 total_unevictable 0\n",
            ),
            (
                "memory.oom_control",
                "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
            ),
            ("memory.memsw.usage_in_bytes", "111149056\n"),
            ("memory.memsw.limit_in_bytes", "9223372036854771712\n"),
            ("pids.current", "3\n"),
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
                usage_ns: 7_123_456_789,
                user_ns: Some(6_000_000_000),
                system_ns: Some(1_123_456_789),
                throttling: Some(Throttling {
                    periods: 50,
                    throttled_periods: 2,
                    throttled_ns: 12_345_678,
                }),
            }
        );
        let m = s.memory.unwrap();
        assert_eq!(m.usage_bytes, 110_100_480);
        // The hierarchical total_* counters, not the cgroup's own.
        assert_eq!(m.working_set_bytes, 110_100_480 - 3_145_728);
        assert_eq!(m.rss_bytes, 104_857_600);
        assert_eq!(m.cache_bytes, 4_194_304);
        assert_eq!(m.mapped_file_bytes, 2_097_152);
        assert_eq!((m.page_faults, m.major_page_faults), (32000, 4));
        assert_eq!((m.limit_bytes, m.available_bytes), (None, None));
        assert_eq!(m.max_usage_bytes, Some(120_000_000));
        assert_eq!((m.failcnt, m.oom_kills), (Some(0), Some(0)));
        assert_eq!(
            s.swap.unwrap(),
            SwapStats {
                usage_bytes: 111_149_056 - 110_100_480,
                limit_bytes: None,
                available_bytes: None,
            }
        );
        assert_eq!(
            s.pids.unwrap(),
            PidsStats {
                current: 3,
                limit: None,
            }
        );
    }

    #[test]
    fn limits_and_the_cpuacct_stat_fallback() {
        let mut files = sample();
        files.insert("memory.limit_in_bytes", "209715200\n");
        files.insert("memory.memsw.limit_in_bytes", "314572800\n");
        files.insert("pids.max", "64\n");
        files.remove("cpuacct.usage_user");
        files.remove("cpuacct.usage_sys");
        let s = parse_map(&files).unwrap();
        let cpu = s.cpu.unwrap();
        assert_eq!(cpu.user_ns, Some(6_000_000_000));
        assert_eq!(cpu.system_ns, Some(1_120_000_000));
        let m = s.memory.unwrap();
        assert_eq!(m.limit_bytes, Some(209_715_200));
        assert_eq!(
            m.available_bytes,
            Some(209_715_200 - (110_100_480 - 3_145_728))
        );
        let swap = s.swap.unwrap();
        assert_eq!(swap.limit_bytes, Some(104_857_600));
        assert_eq!(swap.available_bytes, Some(104_857_600 - 1_048_576));
        assert_eq!(s.pids.unwrap().limit, Some(64));
    }

    #[test]
    fn controllers_that_are_not_there() {
        let mut files = sample();
        for name in [
            "memory.memsw.usage_in_bytes",
            "memory.memsw.limit_in_bytes",
            "cpu.stat",
        ] {
            files.remove(name);
        }
        let s = parse_map(&files).unwrap();
        assert_eq!(s.swap, None, "no swap accounting");
        assert_eq!(s.cpu.unwrap().throttling, None);
        let only_pids = HashMap::from([("pids.current", "1\n")]);
        let s = parse_map(&only_pids).unwrap();
        assert_eq!((s.cpu, s.memory, s.swap), (None, None, None));
        assert_eq!(s.pids.unwrap().current, 1);
    }

    #[test]
    fn reads_controller_directories() {
        let root = tempfile::tempdir().unwrap();
        let dirs = V1Dirs {
            cpu: Some(root.path().join("cpu/pod")),
            cpuacct: Some(root.path().join("cpuacct/pod")),
            memory: Some(root.path().join("memory/pod")),
            pids: Some(root.path().join("pids/pod")),
        };
        let files = sample();
        for (dir, names) in [
            (&dirs.cpu, CPU_FILES),
            (&dirs.cpuacct, CPUACCT_FILES),
            (&dirs.memory, MEMORY_FILES),
            (&dirs.pids, PIDS_FILES),
        ] {
            let dir = dir.as_ref().unwrap();
            std::fs::create_dir_all(dir).unwrap();
            for name in names {
                std::fs::write(dir.join(name), files[name]).unwrap();
            }
        }
        let s = read(&dirs, Detail::Full).unwrap();
        assert_eq!(s, parse_map(&files).unwrap());
        let cri = read(&dirs, Detail::Cri).unwrap();
        let cpu = cri.cpu.as_ref().unwrap();
        assert_eq!(cpu.usage_ns, 7_123_456_789);
        assert_eq!(
            (cpu.user_ns, cpu.system_ns, &cpu.throttling),
            (None, None, &None)
        );
        let m = cri.memory.as_ref().unwrap();
        assert_eq!(
            m.working_set_bytes,
            s.memory.as_ref().unwrap().working_set_bytes
        );
        assert_eq!(
            (m.failcnt, m.oom_kills, m.max_usage_bytes),
            (None, None, None)
        );
        assert_eq!(cri.swap, s.swap);
        assert_eq!(cri.pids.as_ref().unwrap().limit, None);
        assert!(crate::Cgroup::V1(dirs).exists());
    }
}
