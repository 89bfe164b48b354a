//! docs/syscalls.md and the `moat syscalls` listing, generated from the table.

use super::{table::TABLE, Class};

/// Counts per class: (served, interim, passthrough, denied).
pub fn counts() -> (usize, usize, usize, usize) {
    let mut c = (0, 0, 0, 0);
    for e in TABLE {
        match e.class {
            Class::Served(_) => c.0 += 1,
            Class::Interim(_) => c.1 += 1,
            Class::Passthrough(_) | Class::Checked(..) | Class::Net(_) => c.2 += 1,
            Class::Denied(_) => c.3 += 1,
        }
    }
    c
}

fn errno_name(e: i32) -> String {
    nix::errno::Errno::from_raw(e).to_string().split(':').next().unwrap_or("").to_string()
}

/// The Markdown document.
pub fn markdown() -> String {
    let (s, i, p, d) = counts();
    let mut out = String::from(
        "# System calls under the Sentry\n\n\
         Generated from `crates/sentry/src/syscalls/table.rs` by `moat syscalls --markdown`;\n\
         a test fails when this file is stale.\n\n",
    );
    out.push_str(&format!(
        "| class | count | what happens |\n|---|---:|---|\n\
         | served | {s} | the Sentry answers it |\n\
         | served (interim: host) | {i} | notified to the Sentry, which for now lets the host kernel run it (its subsystem is not built yet) |\n\
         | passthrough | {p} | the host kernel runs it, with the argument rule checked in BPF |\n\
         | denied | {d} | fails with the errno shown; the Sentry logs each name once per sandbox (ENOSYS ones fail quietly in the filter) |\n\n\
         Syscalls newer than the table go to the Sentry, which answers ENOSYS and logs them once; \
         32-bit entry points kill the process. A passthrough call whose argument rule fails is \
         answered EPERM by the Sentry, logged once.\n\n\
         Paths: the stubs live in a read-only replica of the container's mounts. Calls that change \
         the file tree are made by the Sentry in the real tree, as the caller; calls that only read \
         it are made by the host in the replica. In a sandbox with a user namespace of its own, the \
         changes are made inside that namespace, by the Sentry's replayer.\n\n\
         | syscall | class | notes |\n|---|---|---|\n"
    ));
    for e in TABLE {
        let class = match e.class {
            Class::Denied(errno) => format!("denied ({})", errno_name(errno)),
            c => c.label().to_string(),
        };
        out.push_str(&format!("| {} | {} | {} |\n", e.name, class, e.note));
    }
    out
}
