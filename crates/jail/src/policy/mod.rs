//! Seccomp allowlists for moat's own helper processes, as data.
//!
//! A [`Policy`] is a base list of [`Rule`]s for one process kind (the gofer
//! here; the Sentry later), each naming why it is there and, where an
//! argument selects behaviour (fcntl cmd, clone flags, prctl option), which
//! values it may take. [`compile`] turns it into a libseccomp filter whose
//! default action kills the process, so a call outside the list is loud.

pub mod gofer;
pub mod sentry;

use libseccomp::{ScmpAction, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall};

use crate::{Error, Result};

/// Thread-creation flags glibc's pthread_create passes to clone(2).
pub const THREAD_FLAGS: u64 = (libc::CLONE_VM
    | libc::CLONE_FS
    | libc::CLONE_FILES
    | libc::CLONE_SIGHAND
    | libc::CLONE_THREAD
    | libc::CLONE_SYSVSEM
    | libc::CLONE_SETTLS
    | libc::CLONE_PARENT_SETTID
    | libc::CLONE_CHILD_CLEARTID) as u64;

/// A check on one syscall argument.
#[derive(Debug, Clone, Copy)]
pub enum Arg {
    /// argument `idx` equals `value`
    Eq(u32, u64),
    /// argument `idx` masked with `mask` equals `value`
    MaskedEq(u32, u64, u64),
}

/// One allowed syscall, with optional argument checks (all must hold; a
/// syscall may appear in several rules, any of which allows it).
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// syscall name as libseccomp knows it
    pub name: &'static str,
    /// argument checks
    pub args: &'static [Arg],
    /// the code path that needs it
    pub why: &'static str,
    /// answer with this errno instead of allowing (e.g. clone3 → ENOSYS so
    /// glibc falls back to clone, whose flags a filter can check)
    pub errno: Option<i32>,
}

impl Rule {
    /// Allows `name` with any arguments.
    pub const fn any(name: &'static str, why: &'static str) -> Rule {
        Rule { name, args: &[], why, errno: None }
    }
    /// Allows `name` when `args` hold.
    pub const fn with(name: &'static str, args: &'static [Arg], why: &'static str) -> Rule {
        Rule { name, args, why, errno: None }
    }
    /// Fails `name` with `errno`.
    pub const fn fail(name: &'static str, errno: i32, why: &'static str) -> Rule {
        Rule { name, args: &[], why, errno: Some(errno) }
    }
}

/// A named allowlist.
#[derive(Debug, Clone)]
pub struct Policy {
    /// process kind ("gofer")
    pub name: &'static str,
    /// the rules
    pub rules: Vec<Rule>,
}

impl Policy {
    /// The distinct syscalls the policy lets through.
    pub fn allowed_syscalls(&self) -> Vec<&'static str> {
        let mut v: Vec<&str> = self.rules.iter().filter(|r| r.errno.is_none()).map(|r| r.name).collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// A human listing: one line per rule, with its checks and reason.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "# seccomp policy {:?}: {} syscalls allowed, default: kill process\n",
            self.name,
            self.allowed_syscalls().len()
        );
        for r in &self.rules {
            let act = match r.errno {
                Some(e) => format!("errno {e}"),
                None => "allow".into(),
            };
            let args: Vec<String> = r
                .args
                .iter()
                .map(|a| match a {
                    Arg::Eq(i, v) => format!("arg{i} == {v:#x}"),
                    Arg::MaskedEq(i, m, v) => format!("arg{i} & {m:#x} == {v:#x}"),
                })
                .collect();
            let cond = if args.is_empty() { String::new() } else { format!(" if {}", args.join(" && ")) };
            s.push_str(&format!("{:<18} {act}{cond}  # {}\n", r.name, r.why));
        }
        s
    }
}

/// Compiles a policy; calls outside it kill the process.
pub fn compile(p: &Policy) -> Result<ScmpFilterContext> {
    let e =
        |what: &str, err: libseccomp::error::SeccompError| Error::Config(format!("policy {}: {what}: {err}", p.name));
    let mut ctx = ScmpFilterContext::new(ScmpAction::KillProcess).map_err(|x| e("init", x))?;
    for r in &p.rules {
        let sc = ScmpSyscall::from_name(r.name).map_err(|x| e(r.name, x))?;
        let act = match r.errno {
            Some(n) => ScmpAction::Errno(n),
            None => ScmpAction::Allow,
        };
        let conds: Vec<ScmpArgCompare> = r
            .args
            .iter()
            .map(|a| match *a {
                Arg::Eq(i, v) => ScmpArgCompare::new(i, ScmpCompareOp::Equal, v),
                Arg::MaskedEq(i, m, v) => ScmpArgCompare::new(i, ScmpCompareOp::MaskedEqual(m), v),
            })
            .collect();
        if conds.is_empty() {
            ctx.add_rule(act, sc).map_err(|x| e(r.name, x))?;
        } else {
            ctx.add_rule_conditional(act, sc, &conds).map_err(|x| e(r.name, x))?;
        }
    }
    Ok(ctx)
}

/// Number of BPF instructions the compiled policy takes (the kernel's limit is 4096).
pub fn instruction_count(p: &Policy) -> Result<usize> {
    let ctx = compile(p)?;
    let fd = nix::sys::memfd::memfd_create("moat-bpf", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
        .map_err(|x| Error::sys("memfd_create", x))?;
    ctx.export_bpf(&fd).map_err(|x| Error::Config(format!("export bpf: {x}")))?;
    let len = std::fs::File::from(fd).metadata().map_err(|x| Error::sys("fstat", x))?.len();
    Ok(usize::try_from(len / 8).unwrap_or(usize::MAX))
}

/// Loads a policy into the calling thread (with no_new_privs).
pub fn load(p: &Policy) -> Result<()> {
    let mut ctx = compile(p)?;
    ctx.set_ctl_nnp(true).map_err(|x| Error::Config(format!("nnp: {x}")))?;
    ctx.load().map_err(|x| Error::sys(format!("load seccomp policy {}", p.name), std::io::Error::other(x.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::wait::{waitpid, WaitStatus};

    #[test]
    fn gofer_policy_compiles_and_fits() {
        let p = gofer::policy();
        let n = instruction_count(&p).unwrap();
        assert!(n > 10 && n < 4096, "{n} instructions");
        assert!(p.describe().lines().count() > p.allowed_syscalls().len());
    }

    #[test]
    fn sentry_policy_compiles_and_allows_no_exec_namespaces_or_network_sockets() {
        let p = sentry::policy();
        assert!(instruction_count(&p).unwrap() < 4096);
        for forbidden in ["execve", "connect", "setns", "ptrace", "process_vm_writev", "mount", "pivot_root"] {
            assert!(!p.allowed_syscalls().contains(&forbidden), "{forbidden}");
        }
        // sockets: unix and internet ones only (pairs: unix only), never raw or packet ones
        let internet = [libc::AF_INET, libc::AF_INET6].map(|f| f as u64);
        let kinds = [libc::SOCK_STREAM, libc::SOCK_DGRAM].map(|k| k as u64);
        for r in p.rules.iter().filter(|r| r.name == "socket") {
            let ok = match r.args {
                [Arg::Eq(0, f)] => *f == libc::AF_UNIX as u64,
                [Arg::Eq(0, f), Arg::MaskedEq(1, 0xf, k)] => internet.contains(f) && kinds.contains(k),
                _ => false,
            };
            assert!(ok, "{r:?}");
        }
        for r in p.rules.iter().filter(|r| r.name == "socketpair") {
            assert!(matches!(r.args, [Arg::Eq(0, f)] if *f == libc::AF_UNIX as u64), "{r:?}");
        }
        // unshare only of the fs_struct (the notify thread's own root), never a namespace
        for r in p.rules.iter().filter(|r| r.name == "unshare") {
            assert!(matches!(r.args, [Arg::Eq(0, f)] if *f == libc::CLONE_FS as u64), "{r:?}");
        }
        // threads only: clone with exactly the thread flags (no namespaces), clone3 refused
        for r in p.rules.iter().filter(|r| r.name == "clone") {
            assert!(matches!(r.args, [Arg::Eq(0, f)] if *f == THREAD_FLAGS), "{r:?}");
        }
        assert!(p.rules.iter().any(|r| r.name == "clone3" && r.errno == Some(libc::ENOSYS)));
    }

    #[test]
    fn a_victim_that_breaks_the_policy_is_killed() {
        // the child loads the gofer policy, then opens a socket: not on the list
        let child = crate::sys::fork_with(|| {
            if load(&gofer::policy()).is_err() {
                return 2;
            }
            // SAFETY: socket(2) takes no pointers.
            let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
            if fd >= 0 {
                3
            } else {
                4
            }
        })
        .unwrap();
        match waitpid(child, None).unwrap() {
            WaitStatus::Signaled(_, sig, _) => assert_eq!(sig, nix::sys::signal::Signal::SIGSYS),
            other => panic!("victim survived: {other:?}"),
        }
    }

    #[test]
    fn allowed_calls_still_work_under_the_policy() {
        let child = crate::sys::fork_with(|| {
            if load(&gofer::policy()).is_err() {
                return 2;
            }
            match std::fs::metadata("/") {
                Ok(_) => 0,
                Err(_) => 5,
            }
        })
        .unwrap();
        assert_eq!(waitpid(child, None).unwrap(), WaitStatus::Exited(child, 0));
    }
}
