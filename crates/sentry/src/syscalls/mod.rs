//! System calls: the table of classes ([`table`]), and the handlers of
//! served calls, one module per area ([`identity`] so far).

pub mod ctl;
pub mod docs;
pub mod identity;
pub mod net;
pub mod table;

use nix::errno::Errno;

use crate::kernel::Kernel;

/// Reading and writing the calling process's memory (the platform does it).
pub trait Memory {
    /// Copies `data` to `addr` in the caller.
    fn write(&self, addr: u64, data: &[u8]) -> Result<(), Errno>;
    /// Copies from `addr` in the caller into `buf`.
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), Errno>;
}

/// One served call, decoded.
pub struct Call<'a> {
    /// the calling thread (host tid)
    pub pid: u32,
    /// the raw arguments
    pub args: [u64; 6],
    /// the sandbox's kernel state
    pub kernel: &'a Kernel,
    /// the caller's memory
    pub mem: &'a dyn Memory,
}

/// A handler's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// the call returns this value
    Value(i64),
    /// the call fails with this errno
    Error(Errno),
    /// the host kernel performs the call (interim classes only)
    Continue,
}

/// A served call's handler.
pub type Handler = fn(&Call<'_>) -> Reply;

/// Argument rule of a passed-through call, checked in the BPF filter.
#[derive(Debug, Clone, Copy)]
pub enum Rule {
    /// any arguments
    Any,
    /// argument `idx` has none of `mask`'s bits
    ArgMaskedZero(u32, u64),
    /// argument `idx` is one of the values
    OneOf(u32, &'static [u64]),
}

/// How a syscall is handled.
#[derive(Clone, Copy)]
pub enum Class {
    /// the Sentry serves it with this handler
    Served(Handler),
    /// will be served; until its subsystem lands the host performs it
    /// (SECCOMP_USER_NOTIF_FLAG_CONTINUE)
    Interim,
    /// the host kernel runs it directly, if the rule holds (else EPERM)
    Passthrough(Rule),
    /// fails with this errno
    Denied(i32),
}

/// One table line.
#[derive(Clone, Copy)]
pub struct Entry {
    /// syscall name
    pub name: &'static str,
    /// class
    pub class: Class,
    /// why, or how it differs from Linux
    pub note: &'static str,
}

impl Class {
    /// A short label for listings.
    pub fn label(&self) -> &'static str {
        match self {
            Class::Served(_) => "served",
            Class::Interim => "served (interim: host)",
            Class::Passthrough(Rule::Any) => "passthrough",
            Class::Passthrough(_) => "passthrough (checked)",
            Class::Denied(_) => "denied",
        }
    }
}

/// The entry of a syscall by name.
pub fn lookup(name: &str) -> Option<&'static Entry> {
    table::TABLE.iter().find(|e| e.name == name)
}
