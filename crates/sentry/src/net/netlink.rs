//! (netlink route served from the stack: next)
