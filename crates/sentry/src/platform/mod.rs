//! The platform: how stubs reach the Sentry. [`filter`] compiles the
//! syscall table into the stubs' seccomp filter; [`notify`] is the
//! user-notification loop; [`mem`] reads and writes a stub's memory;
//! [`fds`] takes a stub's fds and installs new ones; [`workers`] run the
//! served calls that may block; [`tasks`] remembers the stubs' threads'
//! credentials between calls; [`guest`] forwards a pod's other
//! sandboxes' network calls to the Sentry whose netstack has the pod's
//! interface.

pub mod fds;
pub mod filter;
pub mod guest;
pub mod mem;
pub mod notify;
pub mod tasks;
pub mod workers;
