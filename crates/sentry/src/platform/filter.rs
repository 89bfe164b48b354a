//! The stubs' seccomp filter, compiled from the syscall table: served and
//! interim calls notify the Sentry, passthrough calls are allowed when their
//! argument rule holds. Denied calls notify the Sentry too, which answers
//! with their errno and logs each name once per sandbox (so a user sees why
//! a program fails); those denied with ENOSYS (obsolete, or clone3 whose
//! fallback libc expects) fail in the filter itself, quietly. Anything the
//! table does not know (newer syscalls) also goes to the Sentry, which
//! answers ENOSYS and logs it once. A foreign architecture (32-bit entry
//! points) kills the process.

use libseccomp::{ScmpAction, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall};

use crate::syscalls::{table::TABLE, Class, Rule};

/// A filter compilation error (names the syscall).
#[derive(Debug, thiserror::Error)]
#[error("sentry filter: {what}: {msg}")]
pub struct FilterError {
    what: String,
    msg: String,
}

fn err(what: impl Into<String>, e: impl std::fmt::Display) -> FilterError {
    FilterError { what: what.into(), msg: e.to_string() }
}

/// The flags moat's own sendmsg and recvmsg carry on its channels
/// (MSG_CONFIRM, which unix sockets ignore, marks them): with a netstack,
/// only such a call on one of the `own` fds passes the filter unserved.
/// An fd number alone would not do: once the program has exec'd, its own
/// sockets take those numbers (a UDP socket's recvmsg would go unserved,
/// without its sender).
pub const OWN_SEND_FLAGS: u64 = (libc::MSG_NOSIGNAL | libc::MSG_CONFIRM) as u64;
/// See [`OWN_SEND_FLAGS`].
pub const OWN_RECV_FLAGS: u64 = (libc::MSG_CMSG_CLOEXEC | libc::MSG_CONFIRM) as u64;

/// Compiles the table, for a sandbox with a netstack or without; `own`:
/// fds whose sendmsg and recvmsg with moat's flags ([`OWN_SEND_FLAGS`])
/// pass all the same (the caller's own channels, used before the Sentry
/// has the notify fd).
pub fn compile(netstack: bool, own: &[u64]) -> Result<ScmpFilterContext, FilterError> {
    let mut ctx = ScmpFilterContext::new(ScmpAction::Notify).map_err(|e| err("init", e))?;
    for e in TABLE {
        let Ok(sc) = ScmpSyscall::from_name(e.name) else {
            // unknown to this libseccomp: the default (ENOSYS) covers it
            continue;
        };
        let add = |ctx: &mut ScmpFilterContext, act: ScmpAction, conds: &[ScmpArgCompare]| {
            if conds.is_empty() {
                ctx.add_rule(act, sc).map(drop)
            } else {
                ctx.add_rule_conditional(act, sc, conds).map(drop)
            }
        };
        let r = match e.class {
            Class::Denied(libc::ENOSYS) => add(&mut ctx, ScmpAction::Errno(libc::ENOSYS), &[]),
            // the default action already notifies (libseccomp refuses a duplicate)
            Class::Served(_) | Class::Interim(_) | Class::Denied(_) => Ok(()),
            Class::Net(_) if netstack => {
                let flags = match e.name {
                    "sendmsg" => Some(OWN_SEND_FLAGS),
                    "recvmsg" => Some(OWN_RECV_FLAGS),
                    _ => None,
                };
                match flags {
                    Some(f) => own.iter().try_for_each(|fd| {
                        let conds = [
                            ScmpArgCompare::new(0, ScmpCompareOp::Equal, *fd),
                            ScmpArgCompare::new(2, ScmpCompareOp::Equal, f),
                        ];
                        add(&mut ctx, ScmpAction::Allow, &conds)
                    }),
                    None => Ok(()),
                }
            }
            Class::Net(_) => add(&mut ctx, ScmpAction::Allow, &[]),
            // when the rule does not hold, the default applies: the Sentry
            // answers EPERM and logs it (a checked call: serves it)
            Class::Passthrough(rule) | Class::Checked(rule, _) => match rule {
                Rule::Any => add(&mut ctx, ScmpAction::Allow, &[]),
                Rule::ArgMaskedZero(i, mask) => {
                    add(&mut ctx, ScmpAction::Allow, &[ScmpArgCompare::new(i, ScmpCompareOp::MaskedEqual(mask), 0)])
                }
                Rule::OneOf(i, values) => values.iter().try_for_each(|v| {
                    add(&mut ctx, ScmpAction::Allow, &[ScmpArgCompare::new(i, ScmpCompareOp::Equal, *v)])
                }),
            },
        };
        r.map_err(|x| err(e.name, x))?;
    }
    Ok(ctx)
}
