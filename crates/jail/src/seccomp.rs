//! The OCI seccomp profile (`linux.seccomp`), compiled with libseccomp.
//!
//! Follows runc where the spec is silent: a rule whose action equals the
//! default action is dropped (libseccomp refuses it), syscalls this
//! libseccomp does not know are skipped with a warning, and conditions on
//! the same argument index are added as separate rules (OR), since one
//! libseccomp rule cannot test one argument twice.

use std::os::fd::OwnedFd;

use libseccomp::{ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall};
use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator};

use crate::{Error, Result};

fn err(what: impl std::fmt::Display, e: impl std::fmt::Display) -> Error {
    Error::Config(format!("linux.seccomp: {what}: {e}"))
}

/// The profile's name for an enum value (e.g. "SCMP_ACT_ERRNO").
fn spec_name<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

fn action(a: LinuxSeccompAction, errno: Option<u32>) -> Result<ScmpAction> {
    let errno = i32::try_from(errno.unwrap_or(libc::EPERM as u32)).map_err(|e| err("errnoRet", e))?;
    let name = spec_name(&a);
    ScmpAction::from_str(&name, Some(errno)).map_err(|e| err(&name, e))
}

fn compare(op: LinuxSeccompOperator, index: usize, value: u64, two: Option<u64>) -> Result<ScmpArgCompare> {
    let idx = u32::try_from(index).map_err(|e| err("args index", e))?;
    if idx > 5 {
        return Err(err("args index", format!("{idx} is above 5")));
    }
    let op = match op {
        LinuxSeccompOperator::ScmpCmpNe => ScmpCompareOp::NotEqual,
        LinuxSeccompOperator::ScmpCmpLt => ScmpCompareOp::Less,
        LinuxSeccompOperator::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
        LinuxSeccompOperator::ScmpCmpEq => ScmpCompareOp::Equal,
        LinuxSeccompOperator::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
        LinuxSeccompOperator::ScmpCmpGt => ScmpCompareOp::Greater,
        // OCI: value is the mask, valueTwo the value to compare with
        LinuxSeccompOperator::ScmpCmpMaskedEq => {
            return Ok(ScmpArgCompare::new(idx, ScmpCompareOp::MaskedEqual(value), two.unwrap_or(0)))
        }
    };
    Ok(ScmpArgCompare::new(idx, op, value))
}

/// Whether the profile sends any call to a user-space listener.
pub fn uses_notify(s: &LinuxSeccomp) -> bool {
    s.default_action() == LinuxSeccompAction::ScmpActNotify
        || s.syscalls().iter().flatten().any(|r| r.action() == LinuxSeccompAction::ScmpActNotify)
}

/// Compiles the profile.
pub fn build(s: &LinuxSeccomp) -> Result<ScmpFilterContext> {
    let default = action(s.default_action(), s.default_errno_ret())?;
    let mut ctx = ScmpFilterContext::new(default).map_err(|e| err("init", e))?;
    for a in s.architectures().iter().flatten() {
        let name = spec_name(a);
        let arch: ScmpArch = name.parse().map_err(|e| err(&name, e))?;
        ctx.add_arch(arch).map_err(|e| err(&name, e))?;
    }
    for f in s.flags().iter().flatten() {
        match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => {
                ctx.set_ctl_log(true).map_err(|e| err("SECCOMP_FILTER_FLAG_LOG", e))?;
            }
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => {
                ctx.set_ctl_ssb(true).map_err(|e| err("SECCOMP_FILTER_FLAG_SPEC_ALLOW", e))?;
            }
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => {
                ctx.set_ctl_waitkill(true).map_err(|e| err("SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV", e))?;
            }
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => {}
        }
    }
    for (i, rule) in s.syscalls().iter().flatten().enumerate() {
        let act = action(rule.action(), rule.errno_ret())?;
        if act == default {
            continue;
        }
        let args = rule.args().as_deref().unwrap_or(&[]);
        let conds: Vec<ScmpArgCompare> =
            args.iter().map(|a| compare(a.op(), a.index(), a.value(), a.value_two())).collect::<Result<_>>()?;
        let mut idx: Vec<usize> = args.iter().map(|a| a.index()).collect();
        idx.sort_unstable();
        let repeated = idx.windows(2).any(|w| w[0] == w[1]);
        for name in rule.names() {
            let sc = match ScmpSyscall::from_name(name) {
                Ok(sc) => sc,
                Err(_) => {
                    tracing::warn!(syscall = %name, "seccomp: syscall unknown to libseccomp; skipped");
                    continue;
                }
            };
            let what = || format!("syscalls[{i}] {name}");
            if conds.is_empty() {
                ctx.add_rule(act, sc).map_err(|e| err(what(), e))?;
            } else if repeated {
                for c in &conds {
                    ctx.add_rule_conditional(act, sc, std::slice::from_ref(c)).map_err(|e| err(what(), e))?;
                }
            } else {
                ctx.add_rule_conditional(act, sc, &conds).map_err(|e| err(what(), e))?;
            }
        }
    }
    Ok(ctx)
}

/// Loads a compiled profile into the calling thread. With `nnp` false the
/// caller must hold CAP_SYS_ADMIN. Returns the notify fd if the profile has one.
pub fn load(mut ctx: ScmpFilterContext, nnp: bool, notify: bool) -> Result<Option<OwnedFd>> {
    ctx.set_ctl_nnp(nnp).map_err(|e| err("no_new_privs", e))?;
    ctx.load().map_err(|e| Error::sys("load seccomp filter", std::io::Error::other(e.to_string())))?;
    if !notify {
        return Ok(None);
    }
    let fd = ctx.get_notify_fd().map_err(|e| err("notify fd", e))?;
    // SAFETY: libseccomp hands us a new fd that nothing else owns; the
    // context keeps a copy of the number but does not close it.
    Ok(Some(unsafe { crate::sys::own_fd(fd) }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_with_args_and_unknown_names_compiles() {
        let s: LinuxSeccomp = serde_json::from_value(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
            "syscalls": [
                {"names": ["getcwd", "no_such_call"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
                {"names": ["personality"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_NE"}, {"index": 0, "value": 0, "op": "SCMP_CMP_NE"}]},
                {"names": ["clone"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
                {"names": ["read"], "action": "SCMP_ACT_ALLOW"}
            ]
        }))
        .unwrap();
        assert!(build(&s).is_ok());
        assert!(!uses_notify(&s));
    }
}
