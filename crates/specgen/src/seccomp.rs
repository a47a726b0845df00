//! Seccomp: the runtime default profile (the allow-list of containerd's and moby's default,
//! as Rust data), Localhost profiles (docker/containerd profile JSON or OCI `LinuxSeccomp`
//! JSON), and the choice between them.
//!
//! The default denies with EPERM, allows the common syscalls, allows more per capability in
//! the bounding set (CAP_SYS_ADMIN: mount, unshare, setns, clone without restriction...), and
//! without CAP_SYS_ADMIN allows `clone` only without namespace flags and answers `clone3` with
//! ENOSYS so libcs fall back to `clone` (moby#42681). `ptrace` is in the base list: containerd
//! adds it on kernels >= 4.8, which every supported kernel is.

use std::path::PathBuf;

use k8s_cri::v1::{ContainerConfig, LinuxContainerSecurityContext};
use oci_spec::runtime::{
    Arch as OciArch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompArgBuilder,
    LinuxSeccompOperator, LinuxSyscall,
};
use serde::Deserialize;

use crate::security::{profile, CapSet, Profile};
use crate::SpecError;

/// The architecture a default profile is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    X86_64,
    Aarch64,
}

impl Arch {
    /// The architecture crustd was built for (x86_64 for anything not aarch64).
    pub fn native() -> Self {
        if cfg!(target_arch = "aarch64") {
            Arch::Aarch64
        } else {
            Arch::X86_64
        }
    }

    /// The seccomp architectures a filter for this machine covers (native and compat). x32
    /// only where the kernel serves x32 syscalls (`x32`): elsewhere they fail with ENOSYS
    /// whatever the filter says, and covering x32 costs runc and crun (libseccomp) about 9 ms
    /// of every container start (bench/spec-costs.sh); without it the filter refuses them
    /// itself.
    pub fn seccomp_arches(self, x32: bool) -> Vec<OciArch> {
        match self {
            Arch::X86_64 if x32 => vec![
                OciArch::ScmpArchX86_64,
                OciArch::ScmpArchX86,
                OciArch::ScmpArchX32,
            ],
            Arch::X86_64 => vec![OciArch::ScmpArchX86_64, OciArch::ScmpArchX86],
            Arch::Aarch64 => vec![OciArch::ScmpArchArm, OciArch::ScmpArchAarch64],
        }
    }

    fn scmp_name(self) -> &'static str {
        match self {
            Arch::X86_64 => "SCMP_ARCH_X86_64",
            Arch::Aarch64 => "SCMP_ARCH_AARCH64",
        }
    }

    fn go_name(self) -> &'static str {
        match self {
            Arch::X86_64 => "amd64",
            Arch::Aarch64 => "arm64",
        }
    }
}

const EPERM: u32 = 1;
const ENOSYS: u32 = 38;

const CLONE_NEWNS: u64 = 0x0002_0000;
const CLONE_NEWCGROUP: u64 = 0x0200_0000;
const CLONE_NEWUTS: u64 = 0x0400_0000;
const CLONE_NEWIPC: u64 = 0x0800_0000;
const CLONE_NEWUSER: u64 = 0x1000_0000;
const CLONE_NEWPID: u64 = 0x2000_0000;
const CLONE_NEWNET: u64 = 0x4000_0000;
const CLONE_NAMESPACES: u64 = CLONE_NEWNS
    | CLONE_NEWUTS
    | CLONE_NEWIPC
    | CLONE_NEWUSER
    | CLONE_NEWPID
    | CLONE_NEWNET
    | CLONE_NEWCGROUP;

/// Syscalls every container may make.
pub const DEFAULT_ALLOWED: &[&str] = &[
    "accept",
    "accept4",
    "access",
    "adjtimex",
    "alarm",
    "bind",
    "brk",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "chown32",
    "clock_adjtime",
    "clock_adjtime64",
    "clock_getres",
    "clock_getres_time64",
    "clock_gettime",
    "clock_gettime64",
    "clock_nanosleep",
    "clock_nanosleep_time64",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "epoll_wait_old",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fadvise64_64",
    "fallocate",
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "fchown",
    "fchown32",
    "fchownat",
    "fcntl",
    "fcntl64",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fork",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstat64",
    "fstatat64",
    "fstatfs",
    "fstatfs64",
    "fsync",
    "ftruncate",
    "ftruncate64",
    "futex",
    "futex_requeue",
    "futex_time64",
    "futex_wait",
    "futex_waitv",
    "futex_wake",
    "futimesat",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "getegid32",
    "geteuid",
    "geteuid32",
    "getgid",
    "getgid32",
    "getgroups",
    "getgroups32",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresgid32",
    "getresuid",
    "getresuid32",
    "getrlimit",
    "get_robust_list",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "get_thread_area",
    "gettid",
    "gettimeofday",
    "getuid",
    "getuid32",
    "getxattr",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "ioctl",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "io_pgetevents_time64",
    "ioprio_get",
    "ioprio_set",
    "io_setup",
    "io_submit",
    "io_uring_enter",
    "io_uring_register",
    "io_uring_setup",
    "ipc",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "lchown",
    "lchown32",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "listxattr",
    "llistxattr",
    "_llseek",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "lstat64",
    "madvise",
    "map_shadow_stack",
    "membarrier",
    "memfd_create",
    "memfd_secret",
    "mincore",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mmap2",
    "mprotect",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedreceive_time64",
    "mq_timedsend",
    "mq_timedsend_time64",
    "mq_unlink",
    "mremap",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "nanosleep",
    "newfstatat",
    "_newselect",
    "open",
    "openat",
    "openat2",
    "pause",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "poll",
    "ppoll",
    "ppoll_time64",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "process_mrelease",
    "pselect6",
    "pselect6_time64",
    "ptrace",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "recv",
    "recvfrom",
    "recvmmsg",
    "recvmmsg_time64",
    "recvmsg",
    "remap_file_pages",
    "removexattr",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_rr_get_interval_time64",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "semtimedop_time64",
    "send",
    "sendfile",
    "sendfile64",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "setfsgid",
    "setfsgid32",
    "setfsuid",
    "setfsuid32",
    "setgid",
    "setgid32",
    "setgroups",
    "setgroups32",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setregid32",
    "setresgid",
    "setresgid32",
    "setresuid",
    "setresuid32",
    "setreuid",
    "setreuid32",
    "setrlimit",
    "set_robust_list",
    "setsid",
    "setsockopt",
    "set_thread_area",
    "set_tid_address",
    "setuid",
    "setuid32",
    "setxattr",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "sigprocmask",
    "sigreturn",
    "socket",
    "socketcall",
    "socketpair",
    "splice",
    "stat",
    "stat64",
    "statfs",
    "statfs64",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "sysinfo",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_gettime64",
    "timer_settime",
    "timer_settime64",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_gettime64",
    "timerfd_settime",
    "timerfd_settime64",
    "times",
    "tkill",
    "truncate",
    "truncate64",
    "ugetrlimit",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "utime",
    "utimensat",
    "utimensat_time64",
    "utimes",
    "vfork",
    "vmsplice",
    "wait4",
    "waitid",
    "waitpid",
    "write",
    "writev",
];

/// `personality(2)` personas allowed: PER_LINUX, UNAME26, PER_LINUX32, UNAME26|PER_LINUX32,
/// and the query value 0xffffffff.
pub const ALLOWED_PERSONALITIES: &[u64] = &[0x0, 0x0008, 0x20000, 0x20008, 0xffff_ffff];

/// Extra syscalls per architecture.
pub fn arch_allowed(arch: Arch) -> &'static [&'static str] {
    match arch {
        Arch::X86_64 => &["arch_prctl", "modify_ldt"],
        Arch::Aarch64 => &[
            "arm_fadvise64_64",
            "arm_sync_file_range",
            "sync_file_range2",
            "breakpoint",
            "cacheflush",
            "set_tls",
        ],
    }
}

/// Extra syscalls allowed when the bounding set holds a capability.
pub const CAPABILITY_ALLOWED: &[(&str, &[&str])] = &[
    ("CAP_DAC_READ_SEARCH", &["open_by_handle_at"]),
    (
        "CAP_SYS_ADMIN",
        &[
            "bpf",
            "clone",
            "clone3",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "mount",
            "mount_setattr",
            "move_mount",
            "open_tree",
            "perf_event_open",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "syslog",
            "umount",
            "umount2",
            "unshare",
        ],
    ),
    ("CAP_SYS_BOOT", &["reboot"]),
    ("CAP_SYS_CHROOT", &["chroot"]),
    (
        "CAP_SYS_MODULE",
        &["delete_module", "init_module", "finit_module"],
    ),
    ("CAP_SYS_PACCT", &["acct"]),
    (
        "CAP_SYS_PTRACE",
        &[
            "kcmp",
            "pidfd_getfd",
            "process_madvise",
            "process_vm_readv",
            "process_vm_writev",
            "ptrace",
        ],
    ),
    ("CAP_SYS_RAWIO", &["iopl", "ioperm"]),
    (
        "CAP_SYS_TIME",
        &["settimeofday", "stime", "clock_settime", "clock_settime64"],
    ),
    ("CAP_SYS_TTY_CONFIG", &["vhangup"]),
    ("CAP_SYSLOG", &["syslog"]),
    ("CAP_BPF", &["bpf"]),
    ("CAP_PERFMON", &["perf_event_open"]),
    (
        "CAP_SYS_NICE",
        &[
            "get_mempolicy",
            "mbind",
            "set_mempolicy",
            "set_mempolicy_home_node",
        ],
    ),
];

fn rule(
    names: &[&str],
    action: LinuxSeccompAction,
    errno: Option<u32>,
    args: Vec<LinuxSeccompArg>,
) -> LinuxSyscall {
    let mut s = LinuxSyscall::default();
    s.set_names(names.iter().map(|n| n.to_string()).collect());
    s.set_action(action);
    s.set_errno_ret(errno);
    s.set_args(if args.is_empty() { None } else { Some(args) });
    s
}

fn arg(
    index: usize,
    value: u64,
    value_two: Option<u64>,
    op: LinuxSeccompOperator,
) -> LinuxSeccompArg {
    let b = LinuxSeccompArgBuilder::default()
        .index(index)
        .value(value)
        .op(op);
    let b = match value_two {
        Some(v) => b.value_two(v),
        None => b,
    };
    b.build().expect("every field of a seccomp arg is set")
}

/// The runtime default profile for a process with these capabilities (`x32`: the kernel
/// serves x32 syscalls, see [`Arch::seccomp_arches`]).
pub fn default_profile(caps: &CapSet, arch: Arch, x32: bool) -> LinuxSeccomp {
    let allow = LinuxSeccompAction::ScmpActAllow;
    let mut syscalls = vec![rule(DEFAULT_ALLOWED, allow, None, vec![])];
    for &p in ALLOWED_PERSONALITIES {
        syscalls.push(rule(
            &["personality"],
            allow,
            None,
            vec![arg(0, p, None, LinuxSeccompOperator::ScmpCmpEq)],
        ));
    }
    syscalls.push(rule(arch_allowed(arch), allow, None, vec![]));
    for (cap, names) in CAPABILITY_ALLOWED {
        if caps.has(cap) {
            syscalls.push(rule(names, allow, None, vec![]));
        }
    }
    if !caps.has("CAP_SYS_ADMIN") {
        // clone's flags are its first argument on x86_64 and aarch64 (the second on s390).
        syscalls.push(rule(
            &["clone"],
            allow,
            None,
            vec![arg(
                0,
                CLONE_NAMESPACES,
                Some(0),
                LinuxSeccompOperator::ScmpCmpMaskedEq,
            )],
        ));
        syscalls.push(rule(
            &["clone3"],
            LinuxSeccompAction::ScmpActErrno,
            Some(ENOSYS),
            vec![],
        ));
    }
    let mut s = LinuxSeccomp::default();
    s.set_default_action(LinuxSeccompAction::ScmpActErrno);
    s.set_default_errno_ret(Some(EPERM));
    s.set_architectures(Some(arch.seccomp_arches(x32)));
    s.set_syscalls(Some(syscalls));
    s
}

#[allow(deprecated)]
fn requested(sc: Option<&LinuxContainerSecurityContext>) -> Result<Profile, SpecError> {
    profile(
        "seccomp",
        sc.and_then(|s| s.seccomp.as_ref()),
        sc.map_or("", |s| s.seccomp_profile_path.as_str()),
    )
}

/// The host file a Localhost seccomp profile names, which the caller reads into
/// `Input::seccomp_localhost`; `None` when the request uses no Localhost profile.
pub fn localhost_seccomp_path(config: &ContainerConfig) -> Option<PathBuf> {
    match requested(crate::security::context(config)) {
        Ok(Profile::Localhost(p)) => Some(PathBuf::from(p)),
        _ => None,
    }
}

/// `spec.linux.seccomp`: none for Unconfined and for privileged containers that set no
/// profile; the runtime default for RuntimeDefault and (non-privileged) unset; the parsed file
/// for Localhost.
pub fn build(
    sc: Option<&LinuxContainerSecurityContext>,
    privileged: bool,
    caps: &CapSet,
    arch: Arch,
    x32: bool,
    localhost: Option<&[u8]>,
) -> Result<Option<LinuxSeccomp>, SpecError> {
    match requested(sc)? {
        Profile::Unconfined => Ok(None),
        Profile::Unset if privileged => Ok(None),
        Profile::Unset | Profile::RuntimeDefault => Ok(Some(default_profile(caps, arch, x32))),
        Profile::Localhost(path) => {
            let bytes = localhost.ok_or_else(|| SpecError::SeccompProfileMissing(path.clone()))?;
            parse_profile(bytes, caps, arch)
                .map(Some)
                .map_err(|reason| SpecError::SeccompProfileInvalid { path, reason })
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FileProfile {
    default_action: serde_json::Value,
    default_errno_ret: Option<u32>,
    #[serde(default)]
    architectures: Vec<String>,
    #[serde(default)]
    arch_map: Vec<ArchMap>,
    #[serde(default)]
    flags: Vec<serde_json::Value>,
    listener_path: Option<String>,
    listener_metadata: Option<String>,
    #[serde(default)]
    syscalls: Vec<FileSyscall>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArchMap {
    architecture: String,
    #[serde(default)]
    sub_architectures: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FileSyscall {
    #[serde(default)]
    name: String,
    #[serde(default)]
    names: Vec<String>,
    action: serde_json::Value,
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Option<Vec<serde_json::Value>>,
    #[serde(default)]
    includes: Filter,
    #[serde(default)]
    excludes: Filter,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Filter {
    #[serde(default)]
    arches: Vec<String>,
    #[serde(default)]
    caps: Vec<String>,
}

/// Parses a profile in docker/containerd form (`archMap`, `syscalls[].name`/`names`,
/// `includes`/`excludes` by arch and capability; `minKernel` is not checked) or OCI form, into
/// the OCI form for this process.
fn parse_profile(bytes: &[u8], caps: &CapSet, arch: Arch) -> Result<LinuxSeccomp, String> {
    let f: FileProfile = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let mut arches = f.architectures.clone();
    if arches.is_empty() {
        if let Some(m) = f
            .arch_map
            .iter()
            .find(|m| m.architecture == arch.scmp_name())
        {
            arches.push(m.architecture.clone());
            arches.extend(m.sub_architectures.iter().cloned());
        }
    }
    let mut syscalls = Vec::new();
    for s in f.syscalls {
        let inc = &s.includes;
        if !inc.arches.is_empty() && !inc.arches.iter().any(|a| a == arch.go_name()) {
            continue;
        }
        if !inc.caps.iter().all(|c| caps.has(c)) {
            continue;
        }
        let exc = &s.excludes;
        if exc.arches.iter().any(|a| a == arch.go_name()) || exc.caps.iter().any(|c| caps.has(c)) {
            continue;
        }
        let mut names = s.names;
        if !s.name.is_empty() {
            names.insert(0, s.name);
        }
        if names.is_empty() {
            return Err("a syscall rule has no names".to_string());
        }
        let mut rule = serde_json::json!({ "names": names, "action": s.action });
        if let Some(e) = s.errno_ret {
            rule["errnoRet"] = e.into();
        }
        if let Some(a) = s.args.filter(|a| !a.is_empty()) {
            rule["args"] = a.into();
        }
        syscalls.push(rule);
    }
    let mut oci = serde_json::json!({
        "defaultAction": f.default_action,
        "syscalls": syscalls,
    });
    if let Some(e) = f.default_errno_ret {
        oci["defaultErrnoRet"] = e.into();
    }
    if !arches.is_empty() {
        oci["architectures"] = arches.into();
    }
    if !f.flags.is_empty() {
        oci["flags"] = f.flags.into();
    }
    if let Some(p) = f.listener_path {
        oci["listenerPath"] = p.into();
    }
    if let Some(m) = f.listener_metadata {
        oci["listenerMetadata"] = m.into();
    }
    serde_json::from_value(oci).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::capabilities;

    #[test]
    fn x32_is_covered_only_where_the_kernel_serves_it() {
        let caps = capabilities(None, false, None).unwrap();
        let arches = |x32| {
            default_profile(&caps, Arch::X86_64, x32)
                .architectures()
                .clone()
                .unwrap()
        };
        use OciArch::*;
        assert_eq!(arches(true), [ScmpArchX86_64, ScmpArchX86, ScmpArchX32]);
        assert_eq!(arches(false), [ScmpArchX86_64, ScmpArchX86]);
        // The syscalls are the same either way.
        assert_eq!(
            default_profile(&caps, Arch::X86_64, true).syscalls(),
            default_profile(&caps, Arch::X86_64, false).syscalls()
        );
    }

    #[test]
    fn default_profile_follows_capabilities() {
        let caps = capabilities(None, false, None).unwrap();
        let p = default_profile(&caps, Arch::X86_64, true);
        let sys = p.syscalls().as_ref().unwrap();
        let all: Vec<&str> = sys
            .iter()
            .flat_map(|s| s.names().iter().map(String::as_str))
            .collect();
        assert!(all.contains(&"read") && all.contains(&"chroot") && !all.contains(&"mount"));
        assert!(all.contains(&"arch_prctl") && !all.contains(&"set_tls"));
        let clone3 = sys.iter().find(|s| s.names() == &["clone3"]).unwrap();
        assert_eq!(clone3.errno_ret(), Some(ENOSYS));
        assert_eq!(p.default_errno_ret(), Some(EPERM));

        let admin = capabilities(None, true, None).unwrap();
        let p = default_profile(&admin, Arch::Aarch64, false);
        let sys = p.syscalls().as_ref().unwrap();
        let all: Vec<&str> = sys
            .iter()
            .flat_map(|s| s.names().iter().map(String::as_str))
            .collect();
        assert!(all.contains(&"mount") && all.contains(&"setns") && all.contains(&"set_tls"));
        assert!(sys.iter().all(|s| s.names() != &["clone3"]));
        assert_eq!(
            p.architectures().as_ref().unwrap(),
            &vec![OciArch::ScmpArchArm, OciArch::ScmpArchAarch64]
        );
    }

    #[test]
    fn docker_and_oci_profiles_parse() {
        let caps = capabilities(None, false, None).unwrap();
        let docker = br#"{
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 1,
            "archMap": [
                {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
                {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}
            ],
            "syscalls": [
                {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW", "comment": "x"},
                {"name": "mount", "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
                {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64"], "minKernel": "4.8"}},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]}
            ]
        }"#;
        let p = parse_profile(docker, &caps, Arch::X86_64).unwrap();
        assert_eq!(p.architectures().as_ref().unwrap().len(), 3);
        let names: Vec<&str> = p
            .syscalls()
            .as_ref()
            .unwrap()
            .iter()
            .flat_map(|s| s.names().iter().map(String::as_str))
            .collect();
        assert_eq!(names, ["read", "write", "arch_prctl", "personality"]);
        let p = parse_profile(docker, &caps, Arch::Aarch64).unwrap();
        assert_eq!(p.syscalls().as_ref().unwrap().len(), 2);

        let oci = br#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": ["kexec_load"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}"#;
        let p = parse_profile(oci, &caps, Arch::X86_64).unwrap();
        assert_eq!(p.default_action(), LinuxSeccompAction::ScmpActAllow);

        assert!(parse_profile(b"{", &caps, Arch::X86_64).is_err());
        assert!(
            parse_profile(br#"{"defaultAction": "SCMP_ACT_FLY"}"#, &caps, Arch::X86_64).is_err()
        );
    }
}
