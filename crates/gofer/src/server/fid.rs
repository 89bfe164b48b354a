//! The fid table of one session: bounded, and each fid behind its own lock.
//!
//! Lock order: the table lock is taken only to look up, insert or remove an entry and is never
//! held while a fid lock is taken, so handlers may lock fids in any order without deadlock
//! (a handler locks at most two fids, and always the lower fid number first).

use std::collections::HashMap;
use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use nix::errno::Errno;

use super::node::Node;

/// What a fid names, and what has been done to it.
#[derive(Debug)]
pub(crate) struct Fid {
    /// The file.
    pub node: Arc<Node>,
    /// The user the fid was attached as (owner of the files created through it).
    pub uid: u32,
    /// Set once Tlopen or Tlcreate opened it.
    pub open: Option<Open>,
    /// Set by Txattrwalk or Txattrcreate.
    pub xattr: Option<Xattr>,
}

/// An opened fid.
#[derive(Debug)]
pub(crate) struct Open {
    /// The host fd (shared with the donated copy's description, if any).
    pub file: Arc<OwnedFd>,
    /// Whether writes are allowed on it.
    pub writable: bool,
    /// Whether reads are allowed on it.
    pub readable: bool,
    /// For directories: the cookie the fd is positioned at, if known.
    pub dir_pos: Option<u64>,
}

/// Most bytes of xattr values one session holds at once (each is at most 64 KiB, but a client
/// could otherwise park one in every fid).
pub(crate) const XATTR_BUDGET: usize = 1 << 20;

/// Bytes charged to a session's xattr budget, given back when dropped.
#[derive(Debug)]
pub(crate) struct Charge {
    budget: Arc<AtomicUsize>,
    bytes: usize,
}

impl Charge {
    /// Charges `bytes`, or fails with `ENOMEM` if the budget would overflow.
    pub fn take(budget: &Arc<AtomicUsize>, bytes: usize) -> Result<Charge, Errno> {
        budget
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(bytes).filter(|&n| n <= XATTR_BUDGET)
            })
            .map_err(|_| Errno::ENOMEM)?;
        Ok(Charge { budget: budget.clone(), bytes })
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// Extended-attribute state of a fid.
#[derive(Debug)]
pub(crate) enum Xattr {
    /// Txattrwalk fetched this value (or name list); Tread returns it.
    Read {
        /// The value.
        value: Vec<u8>,
        /// Held only to give the bytes back when the fid goes.
        _charge: Charge,
    },
    /// Txattrcreate: Twrite fills `data`, Tclunk commits it.
    Write {
        /// Attribute name.
        name: CString,
        /// Announced size.
        size: usize,
        /// `XATTR_CREATE`/`XATTR_REPLACE`.
        flags: u32,
        /// Bytes written so far.
        data: Vec<u8>,
        /// `size` bytes charged to the session's budget, given back when the fid goes.
        _charge: Charge,
    },
}

/// A locked fid.
pub(crate) type FidRef = Arc<Mutex<Fid>>;

/// Locks a fid, recovering from poisoning (a panicking handler leaves a usable fid behind).
pub(crate) fn lock(f: &FidRef) -> MutexGuard<'_, Fid> {
    f.lock().unwrap_or_else(|e| e.into_inner())
}

/// The fids of one session.
#[derive(Debug)]
pub(crate) struct FidTable {
    map: Mutex<HashMap<u32, FidRef>>,
    max: usize,
}

impl FidTable {
    /// A table holding at most `max` fids.
    pub fn new(max: usize) -> Self {
        Self { map: Mutex::new(HashMap::new()), max }
    }

    fn map(&self) -> MutexGuard<'_, HashMap<u32, FidRef>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The fid numbered `id`.
    pub fn get(&self, id: u32) -> Result<FidRef, Errno> {
        self.map().get(&id).cloned().ok_or(Errno::EBADF)
    }

    /// Adds a new fid; `id` must be unused and the table not full.
    pub fn insert(&self, id: u32, fid: Fid) -> Result<(), Errno> {
        let mut map = self.map();
        if map.contains_key(&id) {
            return Err(Errno::EEXIST);
        }
        if map.len() >= self.max {
            return Err(Errno::EMFILE);
        }
        map.insert(id, Arc::new(Mutex::new(fid)));
        Ok(())
    }

    /// Sets fid `id`, replacing one that exists (Twalk with `newfid == fid`).
    pub fn replace(&self, id: u32, fid: Fid) {
        self.map().insert(id, Arc::new(Mutex::new(fid)));
    }

    /// Removes fid `id`.
    pub fn remove(&self, id: u32) -> Result<FidRef, Errno> {
        self.map().remove(&id).ok_or(Errno::EBADF)
    }

    /// Forgets every fid (Tversion starts a new session).
    pub fn clear(&self) {
        self.map().clear();
    }

    /// Fids in use.
    pub fn len(&self) -> usize {
        self.map().len()
    }
}
