//! The container's own files as the stubs see them when the Sentry reaches
//! them through the gofer (`--directfs=false`).
//!
//! A FUSE mount whose every name, attribute, directory listing, symlink
//! target and extended attribute comes from the container's gofer over 9P:
//! the host kernel still walks paths (symlinks, `..`, mounts stacked on
//! top), and checks permissions from the attributes we give
//! (`default_permissions`), but what exists is what the gofer says.
//!
//! An opened regular file is the gofer's own: the fd it donates with
//! Rlopen is registered as the FUSE file's backing file
//! (FUSE_DEV_IOC_BACKING_OPEN, Linux 6.9 and later, the Sentry's
//! CAP_SYS_ADMIN), so reads and mmap, exec's included, run in the host
//! kernel at native speed and never reach us. Where the kernel refuses
//! that (no passthrough, a backing file stacked too deep) the file is read
//! through the gofer, one Tread per FUSE read.
//!
//! Read-only: the Sentry makes every change in the real tree itself, and
//! tells the view what it changed ([`Cache`]). So the kernel may keep what
//! we answered (names, missing names, attributes) for [`KEEP`] seconds, as
//! runsc's `--file-access=exclusive`, except:
//! - below a mount of the spec (a bind mount's files may change on the
//!   host), or everywhere with `--file-access=shared`: nothing is kept,
//!   every call asks the gofer, and a change made on the host shows at once;
//! - a file the Sentry opened for writing: its attributes are asked for
//!   every time (a stub writes through the real file it holds).
//!
//! Node ids are ours, one per file the kernel holds (found again by the
//! qid's path, so hard links and repeated lookups share one; its inode
//! number cannot pass to another file meanwhile, as the gofer's fid holds
//! the file); each holds a fid, clunked when the kernel forgets the node.
//! A file shows its own inode number (two files on different mounts may
//! show the same one); the device is the FUSE mount's, for every file.

use std::collections::{HashMap, HashSet};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard};

use moat_gofer::client::{ClientError, Fid};
use moat_gofer::server::ino_of;
use moat_p9::consts::{GETATTR_ALL, QTDIR};
use moat_p9::Attr;
use nix::errno::Errno;

use super::fuse::{
    agreed_minor, forgotten, init_out, read_request, send, statfs_out, Got, In, Out, BATCH_FORGET, BUFFER, DESTROY,
    FLUSH, FOPEN_NOFLUSH, FORGET, GETATTR, INIT, INTERRUPT, IN_HEADER, LOOKUP, OPEN, OPENDIR, READ, READDIR, READLINK,
    RELEASE, RELEASEDIR, ROOT_ID, STATFS, WRITES,
};

const GETXATTR: u32 = 22;
const LISTXATTR: u32 = 23;
/// the protocol version we speak: 7.40 has passthrough
const MINOR: u32 = 40;
/// fuse_init flags: flags2 is meaningful
const INIT_EXT: u64 = 1 << 30;
/// fuse_init flags: readlink results may be kept (a symlink's target never changes)
const CACHE_SYMLINKS: u64 = 1 << 23;
/// fuse_init flags: files may be backed by a file of ours
const PASSTHROUGH: u64 = 1 << 37;
/// what a backing file may stack on: 2 lets an overlayfs rootfs back files
/// (a FUSE mount with passthrough can itself be stacked on by nothing)
const MAX_STACK_DEPTH: u32 = 2;
/// fuse_open_out: the file's I/O goes to its backing file
const FOPEN_PASSTHROUGH: u32 = 1 << 7;
/// fuse_open_out: reads come to us whatever the cached size
const FOPEN_DIRECT_IO: u32 = 1;
/// FUSE_DEV_IOC_BACKING_OPEN: _IOW(229, 1, struct fuse_backing_map)
const IOC_BACKING_OPEN: u64 = 0x4010_e501;
/// FUSE_DEV_IOC_BACKING_CLOSE: _IOW(229, 2, uint32_t)
const IOC_BACKING_CLOSE: u64 = 0x4004_e502;
/// FUSE_DEV_IOC_BACKING_OPEN wants it (of the initial user namespace),
/// raised for the call alone
const CAP_SYS_ADMIN: u64 = 1 << 21;
/// at most this many open files and directories per mount
const MAX_HANDLES: usize = 4096;
/// how long (seconds) the kernel keeps what we answered for a file nothing
/// but the Sentry changes (it tells us when it does)
pub const KEEP: u64 = 3600;
/// at most this many backing files are kept for files no longer open
const MAX_IDLE: usize = 1024;
/// at most this many files written beside us are watched through an fd
const MAX_WATCHED: usize = 256;
/// notification: forget a node's attributes (and cached pages)
const NOTIFY_INVAL_INODE: u32 = 2;
/// notification: forget a name in a directory
const NOTIFY_INVAL_ENTRY: u32 = 3;
/// the mounts stacked on the view's root (jail::replica): their names are
/// never dropped, which would unmount them
const STACKED: &[&[u8]] = &[b"dev", b"proc", b"sys"];

/// A file the kernel holds a node of.
struct Node {
    fid: Fid,
    /// the kernel's lookup count
    lookups: u64,
    /// the backing file registered for it (one per inode: the kernel
    /// refuses a second), with its open count; kept when that drops to 0
    /// (up to [`MAX_IDLE`] of them), so the next open needs no 9P
    backing: Option<(u32, u32)>,
    /// a file the Sentry opened for writing: the gofer's read-only fd of it,
    /// whose fstat answers GETATTR (up to [`MAX_WATCHED`] of them)
    watched: Option<OwnedFd>,
    /// it (or a directory above it) may change beside the Sentry: nothing
    /// about it is kept
    shared: bool,
}

enum Handle {
    /// an open regular file of node `.0`: its I/O passes through to the backing file
    Backed(u64),
    /// an open regular file without a backing file: read through the gofer
    Read(Fid),
    /// an open directory
    Dir(Fid),
}

/// Counts of what the session served (tests check that reads pass through).
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    /// opens answered with a backing file
    pub passthrough_opens: u64,
    /// FUSE reads served through the gofer
    pub reads: u64,
    /// GETATTRs answered by a 9P call (not from a watched fd)
    pub getattrs: u64,
}

/// What may change beside the Sentry, and so is never kept.
#[derive(Debug, Default, Clone)]
pub struct Sharing {
    /// everything (`--file-access=shared`)
    pub all: bool,
    /// the qid paths of directories whose whole subtree is (the roots of
    /// the spec's mounts)
    pub roots: HashSet<u64>,
}

/// The view's side the Sentry tells of every change it makes in the real
/// tree, by the changed file's qid path ([`moat_gofer::server::path_of`]);
/// any thread may. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Cache {
    inner: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    /// the connection (to send notifications on)
    dev: OwnedFd,
    index: Mutex<Index>,
}

#[derive(Debug, Default)]
struct Index {
    /// node ids by qid path
    by_qid: HashMap<u64, u64>,
    /// qid paths of files the Sentry opened for writing
    written: HashSet<u64>,
}

impl Cache {
    fn index(&self) -> MutexGuard<'_, Index> {
        self.inner.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn node(&self, qid: u64) -> Option<u64> {
        self.index().by_qid.get(&qid).copied()
    }

    /// The name `name` in directory `dir` changed (made, removed, renamed,
    /// replaced): the kernel forgets it, and the directory's attributes.
    pub fn name_changed(&self, dir: u64, name: &[u8]) {
        let Some(node) = self.node(dir) else { return };
        if !(node == ROOT_ID && STACKED.contains(&name)) {
            // fuse_notify_inval_entry_out, then the name with its NUL
            let mut payload = Out::default().u64(node).u32(name.len() as u32).u32(0).0;
            payload.extend_from_slice(name);
            payload.push(0);
            self.send(NOTIFY_INVAL_ENTRY, &payload);
        }
        self.inode_changed(dir);
    }

    /// The attributes of the file whose qid path is `qid` changed.
    pub fn inode_changed(&self, qid: u64) {
        if let Some(node) = self.node(qid) {
            self.send(NOTIFY_INVAL_INODE, &Out::default().u64(node).u64(0).u64(0).0);
        }
    }

    /// The file whose qid path is `qid` was opened for writing: a stub may
    /// change it through the real file, unseen, from now on.
    pub fn opened_for_writing(&self, qid: u64) {
        self.index().written.insert(qid);
        self.inode_changed(qid);
    }

    fn send(&self, code: u32, payload: &[u8]) {
        // (the index is not locked: the kernel may wait on a request of a
        // stub's that we are answering meanwhile)
        match super::fuse::notify(&self.inner.dev, code, payload) {
            Ok(()) | Err(Errno::ENOENT) => {}
            Err(e) => tracing::debug!(error = %e, code, "notifying the gofer's view"),
        }
    }
}

/// One FUSE connection over one gofer tree.
pub struct Session {
    dev: OwnedFd,
    nodes: HashMap<u64, Node>,
    cache: Cache,
    sharing: Sharing,
    handles: HashMap<u64, Handle>,
    next_node: u64,
    next_fh: u64,
    buf: Vec<u8>,
    /// whether the kernel agreed to passthrough
    passthrough: bool,
    /// nodes whose backing file is kept though no file is open
    idle: usize,
    /// nodes with a watched fd
    watched: usize,
    stats: Stats,
}

impl Session {
    /// A session on `dev` (an fd of /dev/fuse a mount was made with) whose
    /// root is `root`, a fid of the tree's root; `sharing`: what may change
    /// beside the Sentry.
    pub fn new(dev: OwnedFd, root: Fid, sharing: Sharing) -> std::io::Result<Session> {
        let mut nodes = HashMap::new();
        let mut index = Index::default();
        index.by_qid.insert(root.qid().path, ROOT_ID);
        let shared = sharing.all || sharing.roots.contains(&root.qid().path);
        nodes.insert(ROOT_ID, Node { fid: root, lookups: 1, backing: None, watched: None, shared });
        let cache = Cache { inner: Arc::new(Shared { dev: dev.try_clone()?, index: Mutex::new(index) }) };
        Ok(Session {
            dev,
            nodes,
            cache,
            sharing,
            handles: HashMap::new(),
            next_node: ROOT_ID + 1,
            next_fh: 1,
            buf: vec![0; BUFFER],
            passthrough: false,
            idle: 0,
            watched: 0,
            stats: Stats::default(),
        })
    }

    /// Where the Sentry tells the view of its changes.
    pub fn cache(&self) -> Cache {
        self.cache.clone()
    }

    /// What we answered about `node` may be kept this long (seconds): its
    /// name, and its attributes.
    fn keep(&self, node: u64) -> (u64, u64) {
        match self.nodes.get(&node) {
            Some(n) if !n.shared => {
                let written = self.cache.index().written.contains(&n.fid.qid().path);
                (KEEP, if written { 0 } else { KEEP })
            }
            _ => (0, 0),
        }
    }

    /// What it served so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Serves requests until the mount is gone.
    pub fn run(&mut self) -> std::io::Result<()> {
        while self.handle_one()? {}
        Ok(())
    }

    /// Reads and answers one request. `Ok(false)` once the mount is gone.
    pub fn handle_one(&mut self) -> std::io::Result<bool> {
        let n = match read_request(&self.dev, &mut self.buf)? {
            Got::Request(n) => n,
            Got::Nothing => return Ok(true),
            Got::Gone => return Ok(false),
        };
        let req = self.buf[..n].to_vec();
        let h = In(&req[..IN_HEADER]);
        let (opcode, unique, node) = (h.u32(4), h.u64(8), h.u64(16));
        let body = In(&req[IN_HEADER..]);
        match opcode {
            DESTROY => Ok(false),
            FORGET | BATCH_FORGET => {
                for (id, n) in forgotten(opcode, node, &body) {
                    self.forget(id, n);
                }
                Ok(true)
            }
            INTERRUPT => Ok(true),
            INIT => {
                let reply = self.init(&body);
                send(&self.dev, unique, Ok(reply))
            }
            _ if WRITES.contains(&opcode) => send(&self.dev, unique, Err(Errno::EROFS)),
            _ => {
                let answer = self.answer(opcode, node, &body);
                send(&self.dev, unique, answer)
            }
        }
    }

    fn init(&mut self, body: &In<'_>) -> Vec<u8> {
        let minor = agreed_minor(body, MINOR);
        let offered = u64::from(body.u32(12)) | (u64::from(body.u32(16)) << 32);
        let mut flags = offered & CACHE_SYMLINKS;
        // flags2 is only read from kernels that set INIT_EXT themselves
        if minor >= MINOR && offered & INIT_EXT != 0 && offered & PASSTHROUGH != 0 {
            flags |= INIT_EXT | PASSTHROUGH;
            self.passthrough = true;
        }
        let depth = if self.passthrough { MAX_STACK_DEPTH } else { 0 };
        init_out(minor, body.u32(8), flags, depth)
    }

    fn answer(&mut self, opcode: u32, node: u64, body: &In<'_>) -> Result<Vec<u8>, Errno> {
        match opcode {
            LOOKUP => self.lookup(node, body),
            GETATTR => {
                let (_, keep) = self.keep(node);
                let attr = match self.watch(node, keep) {
                    Some(fd) => attr_of(&nix::sys::stat::fstat(fd.as_fd())?),
                    None => {
                        self.stats.getattrs += 1;
                        self.fid(node)?.getattr(GETATTR_ALL).map_err(errno)?
                    }
                };
                Ok(attr_out(Out::default().u64(keep).u32(0).u32(0), &attr).0)
            }
            READLINK => self.fid(node)?.readlink().map_err(errno),
            OPEN => self.open(node, body.u32(0)),
            READ => {
                let (fh, off, size) = (body.u64(0), body.u64(8), body.u32(16) as usize);
                let Some(Handle::Read(fid)) = self.handles.get(&fh) else { return Err(Errno::EBADF) };
                let mut data = vec![0; size];
                let n = fid.read(off, &mut data).map_err(errno)?;
                data.truncate(n);
                self.stats.reads += 1;
                Ok(data)
            }
            RELEASE | RELEASEDIR => {
                self.release(body.u64(0));
                Ok(Vec::new())
            }
            OPENDIR => {
                let fid = self.fid(node)?.clone_fid().map_err(errno)?;
                fid.open(libc::O_RDONLY as u32).map_err(errno)?;
                let fh = self.add(Handle::Dir(fid))?;
                Ok(Out::default().u64(fh).u32(0).u32(0).0)
            }
            READDIR => {
                let (fh, off, size) = (body.u64(0), body.u64(8), body.u32(16) as usize);
                let Some(Handle::Dir(fid)) = self.handles.get(&fh) else { return Err(Errno::EBADF) };
                let count = u32::try_from(size).unwrap_or(u32::MAX);
                let mut out = Vec::new();
                for e in fid.readdir(off, count).map_err(errno)? {
                    if !super::fuse::push_dirent(&mut out, size, ino_of(e.qid.path), e.offset, u32::from(e.ty), &e.name)
                    {
                        break;
                    }
                }
                Ok(out)
            }
            // ENOSYS: the kernel stops sending FLUSH for this connection
            FLUSH => Err(Errno::ENOSYS),
            STATFS => Ok(statfs_out(&self.fid(ROOT_ID)?.statfs().map_err(errno)?)),
            GETXATTR | LISTXATTR => {
                let size = body.u32(0) as usize;
                let fid = self.fid(node)?;
                let value = if opcode == GETXATTR {
                    // fuse_getxattr_in: size, padding; then the name
                    let name = body.0.get(8..).and_then(cstr).ok_or(Errno::EINVAL)?;
                    fid.xattr_get(name).map_err(errno)?
                } else {
                    fid.xattr_list().map_err(errno)?
                };
                match size {
                    0 => Ok(Out::default().u32(value.len() as u32).u32(0).0),
                    _ if value.len() > size => Err(Errno::ERANGE),
                    _ => Ok(value),
                }
            }
            _ => Err(Errno::ENOSYS),
        }
    }

    fn fid(&self, node: u64) -> Result<&Fid, Errno> {
        self.nodes.get(&node).map(|n| &n.fid).ok_or(Errno::ESTALE)
    }

    fn lookup(&mut self, parent: u64, body: &In<'_>) -> Result<Vec<u8>, Errno> {
        let name = cstr(body.0).ok_or(Errno::ENOENT)?;
        // the kernel walks "." and ".." itself and never sends a "/"
        if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') {
            return Err(Errno::ENOENT);
        }
        let under_shared = self.nodes.get(&parent).ok_or(Errno::ESTALE)?.shared;
        let child = match self.fid(parent)?.walk(&[name]) {
            Ok(c) => c,
            // a name that is missing stays missing until the Sentry makes it
            Err(e) if e.errno() == Errno::ENOENT && !under_shared => {
                let o = Out::default().u64(0).u64(0).u64(KEEP).u64(0).u32(0).u32(0);
                return Ok(attr_out(o, &Attr::default()).0);
            }
            Err(e) => return Err(errno(e)),
        };
        let attr = child.getattr(GETATTR_ALL).map_err(errno)?;
        let key = attr.qid.path;
        let known = self.cache.node(key).filter(|id| self.nodes.contains_key(id));
        let id = match known {
            Some(id) => {
                if let Some(n) = self.nodes.get_mut(&id) {
                    n.lookups += 1;
                    // a file reached below a shared mount too is shared
                    n.shared |= under_shared;
                }
                id
            }
            None => {
                let id = self.next_node;
                self.next_node += 1;
                let shared = under_shared || self.sharing.all || self.sharing.roots.contains(&key);
                self.nodes.insert(id, Node { fid: child, lookups: 1, backing: None, watched: None, shared });
                self.cache.index().by_qid.insert(key, id);
                id
            }
        };
        let (entry, attrs) = self.keep(id);
        // nodeid, generation, entry and attr timeouts
        Ok(attr_out(Out::default().u64(id).u64(0).u64(entry).u64(attrs).u32(0).u32(0), &attr).0)
    }

    fn forget(&mut self, id: u64, n: u64) {
        if id == ROOT_ID {
            return;
        }
        if let Some(node) = self.nodes.get_mut(&id) {
            node.lookups = node.lookups.saturating_sub(n);
        }
        self.drop_if_unused(id);
    }

    /// Drops a node the kernel neither holds nor has open (clunking its fid,
    /// closing a backing file kept for it).
    fn drop_if_unused(&mut self, id: u64) {
        let unused = self.nodes.get(&id).is_some_and(|n| n.lookups == 0 && n.backing.is_none_or(|(_, o)| o == 0));
        if !unused {
            return;
        }
        let Some(node) = self.nodes.remove(&id) else { return };
        if let Some((backing, _)) = node.backing {
            self.idle -= 1;
            self.close_backing(backing);
        }
        if node.watched.is_some() {
            self.watched -= 1;
        }
        let key = node.fid.qid().path;
        let mut index = self.cache.index();
        if index.by_qid.get(&key) == Some(&id) {
            index.by_qid.remove(&key);
        }
    }

    fn close_backing(&self, id: u32) {
        if let Err(e) = backing_close(&self.dev, id) {
            tracing::debug!(error = %e, "closing a backing file");
        }
    }

    /// The gofer's read-only fd of `node`, a file the Sentry opened for
    /// writing, whose attributes are not kept (`keep` 0): kept open, so each
    /// GETATTR is an fstat of ours, not a 9P call. None for other files, or
    /// past [`MAX_WATCHED`].
    fn watch(&mut self, node: u64, keep: u64) -> Option<&OwnedFd> {
        let n = self.nodes.get(&node)?;
        if keep != 0 || n.shared || n.fid.qid().ty & QTDIR != 0 {
            return None;
        }
        if n.watched.is_none() {
            if self.watched >= MAX_WATCHED {
                return None;
            }
            let fd = self.donated(node).ok()??;
            self.watched += 1;
            self.nodes.get_mut(&node)?.watched = Some(fd);
        }
        self.nodes.get(&node)?.watched.as_ref()
    }

    /// The gofer's own read-only fd of `node`, if it donates one.
    fn donated(&self, node: u64) -> Result<Option<OwnedFd>, Errno> {
        let fid = self.fid(node)?.clone_fid().map_err(errno)?;
        Ok(fid.open(libc::O_RDONLY as u32).map_err(errno)?.fd)
    }

    fn open(&mut self, node: u64, flags: u32) -> Result<Vec<u8>, Errno> {
        if flags & libc::O_ACCMODE as u32 != libc::O_RDONLY as u32 {
            return Err(Errno::EROFS);
        }
        // (so that add() below cannot fail once a backing file is counted)
        if self.handles.len() >= MAX_HANDLES {
            return Err(Errno::ENFILE);
        }
        // an inode opened before has its backing file: no 9P at all
        let held = self.nodes.get(&node).ok_or(Errno::ESTALE)?.backing;
        let id = match held {
            Some((id, opens)) => {
                if opens == 0 {
                    self.idle -= 1;
                }
                Some(id)
            }
            None if self.passthrough => {
                let watched = self.nodes.get(&node).and_then(|n| n.watched.as_ref()).and_then(|f| f.try_clone().ok());
                match watched.map_or_else(|| self.donated(node), |f| Ok(Some(f)))? {
                    Some(fd) => {
                        match crate::vfs::creds::raised(CAP_SYS_ADMIN, || backing_open(&self.dev, &fd)).and_then(|r| r)
                        {
                            Ok(id) => Some(id),
                            Err(e) => {
                                tracing::debug!(error = %e, "no backing file for a gofer file; read through 9P");
                                None
                            }
                        }
                    }
                    None => None,
                }
            }
            None => None,
        };
        match id {
            Some(id) => {
                if let Some(n) = self.nodes.get_mut(&node) {
                    let opens = n.backing.map_or(0, |(_, c)| c);
                    n.backing = Some((id, opens + 1));
                }
                self.stats.passthrough_opens += 1;
                let fh = self.add(Handle::Backed(node))?;
                Ok(Out::default().u64(fh).u32(FOPEN_PASSTHROUGH | FOPEN_NOFLUSH).u32(id).0)
            }
            None => {
                let fid = self.fid(node)?.clone_fid().map_err(errno)?;
                fid.open(libc::O_RDONLY as u32).map_err(errno)?;
                let fh = self.add(Handle::Read(fid))?;
                Ok(Out::default().u64(fh).u32(FOPEN_DIRECT_IO | FOPEN_NOFLUSH).u32(0).0)
            }
        }
    }

    fn release(&mut self, fh: u64) {
        let Some(Handle::Backed(node)) = self.handles.remove(&fh) else { return };
        let Some(n) = self.nodes.get_mut(&node) else { return };
        if let Some((id, opens)) = n.backing {
            if opens > 1 {
                n.backing = Some((id, opens - 1));
            } else if self.idle < MAX_IDLE {
                // kept for the next open
                n.backing = Some((id, 0));
                self.idle += 1;
            } else {
                n.backing = None;
                self.close_backing(id);
            }
        }
        self.drop_if_unused(node);
    }

    fn add(&mut self, h: Handle) -> Result<u64, Errno> {
        if self.handles.len() >= MAX_HANDLES {
            return Err(Errno::ENFILE);
        }
        let fh = self.next_fh;
        self.next_fh += 1;
        self.handles.insert(fh, h);
        Ok(fh)
    }
}

/// Serves the stubs' view on FUSE connection `dev` from the gofer at the
/// other end of `sock`, on a thread of its own (a request may wait for the
/// gofer; nothing else must wait for it).
pub fn spawn(sock: OwnedFd, dev: OwnedFd, sharing: Sharing) -> std::io::Result<Cache> {
    let client = moat_gofer::Client::connect(sock, &moat_gofer::ClientOptions::default())
        .map_err(|e| std::io::Error::other(format!("connect to the gofer: {e}")))?;
    let root = client.attach("root", "", 0).map_err(|e| std::io::Error::other(format!("attach to the gofer: {e}")))?;
    let mut session = Session::new(dev, root, sharing)?;
    let cache = session.cache();
    std::thread::Builder::new().spawn(move || {
        if let Err(e) = session.run() {
            tracing::error!("sentry: serving the container's files from the gofer: {e}");
        }
    })?;
    Ok(cache)
}

/// The errno a FUSE caller gets for a 9P failure.
fn errno(e: ClientError) -> Errno {
    e.errno()
}

/// The NUL-terminated name at the start of `b`.
fn cstr(b: &[u8]) -> Option<&[u8]> {
    b.iter().position(|&c| c == 0).map(|end| &b[..end])
}

/// `o` followed by a fuse_attr of `a`: the file's own inode number (as
/// fstat of a file the Sentry opened in the tree gives it; sqlite checks).
fn attr_out(o: Out, a: &Attr) -> Out {
    let u32_of = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
    o.u64(ino_of(a.qid.path))
        .u64(a.size)
        .u64(a.blocks)
        .u64(a.atime_sec)
        .u64(a.mtime_sec)
        .u64(a.ctime_sec)
        .u32(u32_of(a.atime_nsec))
        .u32(u32_of(a.mtime_nsec))
        .u32(u32_of(a.ctime_nsec))
        .u32(a.mode)
        .u32(u32_of(a.nlink))
        .u32(a.uid)
        .u32(a.gid)
        // the low 32 bits of glibc's dev_t are the kernel's new_encode_dev()
        // for every major below 4096
        .u32(a.rdev as u32)
        .u32(u32_of(a.blksize))
        .u32(0)
}

/// The attributes fstat gives, as the gofer would.
fn attr_of(st: &libc::stat) -> Attr {
    let u = |v: i64| u64::try_from(v).unwrap_or(0);
    Attr {
        valid: GETATTR_ALL,
        qid: moat_p9::Qid { ty: 0, version: 0, path: moat_gofer::server::path_of(st.st_dev, st.st_ino) },
        mode: st.st_mode,
        uid: st.st_uid,
        gid: st.st_gid,
        nlink: st.st_nlink,
        rdev: st.st_rdev,
        size: u(st.st_size),
        blksize: u(st.st_blksize),
        blocks: u(st.st_blocks),
        atime_sec: u(st.st_atime),
        atime_nsec: u(st.st_atime_nsec),
        mtime_sec: u(st.st_mtime),
        mtime_nsec: u(st.st_mtime_nsec),
        ctime_sec: u(st.st_ctime),
        ctime_nsec: u(st.st_ctime_nsec),
        ..Attr::default()
    }
}

/// struct fuse_backing_map
#[repr(C)]
struct BackingMap {
    fd: i32,
    flags: u32,
    padding: u64,
}

/// Registers `file` as a backing file of the connection; its id.
fn backing_open(dev: &OwnedFd, file: &OwnedFd) -> Result<u32, Errno> {
    let map = BackingMap { fd: file.as_raw_fd(), flags: 0, padding: 0 };
    // SAFETY: the ioctl reads one fuse_backing_map (the size its number
    // encodes) from a live local and keeps no pointer to it.
    let r = unsafe { libc::ioctl(dev.as_raw_fd(), IOC_BACKING_OPEN as libc::Ioctl, &map as *const BackingMap) };
    Errno::result(r).map(|id| id as u32)
}

/// Drops backing file `id` (open files keep theirs).
fn backing_close(dev: &OwnedFd, id: u32) -> Result<(), Errno> {
    // SAFETY: the ioctl reads one u32 from a live local and keeps no pointer to it.
    let r = unsafe { libc::ioctl(dev.as_raw_fd(), IOC_BACKING_CLOSE as libc::Ioctl, &id as *const u32) };
    Errno::result(r).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_asks_for_passthrough_only_where_offered() {
        let (dev, _) = nix::unistd::pipe().unwrap();
        // 7.41 with INIT_EXT and PASSTHROUGH in flags2
        let body = Out::default().u32(7).u32(41).u32(131072).u32((INIT_EXT | CACHE_SYMLINKS) as u32).u32(1 << 5).0;
        let mut s = Session {
            cache: Cache { inner: Arc::new(Shared { dev: dev.try_clone().unwrap(), index: Mutex::default() }) },
            dev,
            nodes: HashMap::new(),
            sharing: Sharing::default(),
            handles: HashMap::new(),
            next_node: 2,
            next_fh: 1,
            buf: Vec::new(),
            passthrough: false,
            idle: 0,
            watched: 0,
            stats: Stats::default(),
        };
        let r = s.init(&In(&body));
        assert_eq!(r.len(), 64);
        assert_eq!(In(&r).u32(4), MINOR);
        assert_eq!(u64::from(In(&r).u32(12)), INIT_EXT | CACHE_SYMLINKS);
        assert_eq!(In(&r).u32(32), 1 << 5, "flags2: passthrough");
        assert_eq!(In(&r).u32(36), MAX_STACK_DEPTH);
        assert!(s.passthrough);
        // an older kernel: no passthrough, no stack depth
        let old = Out::default().u32(7).u32(31).u32(131072).u32(0).0;
        s.passthrough = false;
        let r = s.init(&In(&old));
        assert_eq!(In(&r).u32(4), 31);
        assert_eq!(In(&r).u32(36), 0);
        assert!(!s.passthrough);
    }
}
