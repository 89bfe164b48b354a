//! Serving a Sentry filesystem to the stubs through the host's FUSE driver.
//!
//! While path walks still run in the host kernel (the interim classes of
//! the syscall table), the Sentry's own filesystems — /proc first — are
//! mounted in the stubs' view as FUSE mounts whose every lookup, attribute,
//! link and byte comes from the Sentry. The host kernel does the walking
//! (symlinks, `..`, cwd and dirfds behave as on Linux); what exists and what
//! it contains is the Sentry's answer.
//!
//! Read-only, uncached (entry and attribute timeouts of zero: a /proc entry
//! can vanish at any time), direct I/O. A file's contents are generated
//! when its attributes are asked for (the size must be right: sendfile and
//! splice read through the page cache up to it) and kept briefly for the
//! open that usually follows, so size and contents agree. Every write-type
//! operation fails with EROFS, but writes to the few files a filesystem
//! says take them (each write whole, as procfs files do). Node ids map to paths; a node is dropped
//! when the kernel forgets its last lookup.

use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;

/// What a filesystem answers, by path relative to its root ("" is the root,
/// components joined with '/').
pub trait Filesystem {
    /// The attributes of `path`.
    fn getattr(&self, path: &str, ctx: &Ctx) -> Result<Attr, Errno>;
    /// The target of the symlink at `path`.
    fn readlink(&self, path: &str, ctx: &Ctx) -> Result<Vec<u8>, Errno>;
    /// The contents of the file at `path`, generated at open.
    fn read_all(&self, path: &str, ctx: &Ctx) -> Result<Vec<u8>, Errno>;
    /// The entries of the directory at `path` (without "." and "..").
    fn readdir(&self, path: &str, ctx: &Ctx) -> Result<Vec<DirEntry>, Errno>;
    /// Whether the top-level entry `name`, which the kernel may still hold,
    /// is gone for good (a process that ended): the kernel is then told to
    /// drop it, so its nodes are forgotten and memory stays bounded.
    fn gone(&self, _name: &str) -> bool {
        false
    }
    /// Whether the file at `path` takes writes (each one whole, as procfs
    /// files do); everything else is read-only.
    fn writable(&self, _path: &str) -> bool {
        false
    }
    /// Writes `data` to the file at `path`.
    fn write(&self, _path: &str, _data: &[u8], _ctx: &Ctx) -> Result<(), Errno> {
        Err(Errno::EROFS)
    }
}

impl<T: Filesystem + ?Sized> Filesystem for Box<T> {
    fn getattr(&self, path: &str, ctx: &Ctx) -> Result<Attr, Errno> {
        (**self).getattr(path, ctx)
    }
    fn readlink(&self, path: &str, ctx: &Ctx) -> Result<Vec<u8>, Errno> {
        (**self).readlink(path, ctx)
    }
    fn read_all(&self, path: &str, ctx: &Ctx) -> Result<Vec<u8>, Errno> {
        (**self).read_all(path, ctx)
    }
    fn readdir(&self, path: &str, ctx: &Ctx) -> Result<Vec<DirEntry>, Errno> {
        (**self).readdir(path, ctx)
    }
    fn gone(&self, name: &str) -> bool {
        (**self).gone(name)
    }
    fn writable(&self, path: &str) -> bool {
        (**self).writable(path)
    }
    fn write(&self, path: &str, data: &[u8], ctx: &Ctx) -> Result<(), Errno> {
        (**self).write(path, data, ctx)
    }
}

/// Who asks (from the request header; `pid` is a host tid).
#[derive(Debug, Clone, Copy)]
pub struct Ctx {
    /// the calling thread, as the mounter's pid namespace numbers it (0: outside it)
    pub pid: u32,
    /// its fsuid
    pub uid: u32,
    /// its fsgid
    pub gid: u32,
}

/// A node's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// a directory
    Dir,
    /// a regular file
    File,
    /// a symbolic link
    Symlink,
}

impl Kind {
    fn mode_bits(self) -> u32 {
        match self {
            Kind::Dir => libc::S_IFDIR,
            Kind::File => libc::S_IFREG,
            Kind::Symlink => libc::S_IFLNK,
        }
    }
}

/// A node's attributes.
#[derive(Debug, Clone, Copy)]
pub struct Attr {
    /// kind
    pub kind: Kind,
    /// permission bits
    pub perm: u32,
    /// owner
    pub uid: u32,
    /// group
    pub gid: u32,
    /// modification time, seconds since the epoch
    pub mtime: u64,
}

impl Attr {
    /// Root-owned, with these permission bits.
    pub fn root(kind: Kind, perm: u32) -> Attr {
        Attr { kind, perm, uid: 0, gid: 0, mtime: 0 }
    }
}

/// One directory entry.
#[derive(Debug, Clone)]
pub struct DirEntry {
    /// its name
    pub name: String,
    /// its kind
    pub kind: Kind,
}

// opcodes (include/uapi/linux/fuse.h)
pub(crate) const LOOKUP: u32 = 1;
pub(crate) const SETATTR: u32 = 4;
pub(crate) const WRITE: u32 = 16;
pub(crate) const FORGET: u32 = 2;
pub(crate) const GETATTR: u32 = 3;
pub(crate) const READLINK: u32 = 5;
pub(crate) const OPEN: u32 = 14;
pub(crate) const READ: u32 = 15;
pub(crate) const STATFS: u32 = 17;
pub(crate) const RELEASE: u32 = 18;
pub(crate) const FLUSH: u32 = 25;
pub(crate) const INIT: u32 = 26;
pub(crate) const OPENDIR: u32 = 27;
pub(crate) const READDIR: u32 = 28;
pub(crate) const RELEASEDIR: u32 = 29;
pub(crate) const INTERRUPT: u32 = 36;
pub(crate) const DESTROY: u32 = 38;
pub(crate) const BATCH_FORGET: u32 = 42;
/// operations that would change something: the mount is read-only
pub(crate) const WRITES: &[u32] = &[6, 8, 9, 10, 11, 12, 13, 21, 24, 35, 43, 45, 47, 51];

pub(crate) const IN_HEADER: usize = 40;
pub(crate) const OUT_HEADER: usize = 16;
pub(crate) const ROOT_ID: u64 = 1;
/// the protocol version we speak (7.31: Linux 5.10 and later)
const MINOR: u32 = 31;
/// direct I/O: reads go to the server whatever the file's size (0)
const FOPEN_DIRECT_IO: u32 = 1;
/// no FLUSH on close: a close never waits on us (not even while we exit)
pub(crate) const FOPEN_NOFLUSH: u32 = 1 << 5;
/// at most this many open files and directories per mount
const MAX_HANDLES: usize = 4096;
/// and at most this many bytes of generated contents held for them
const MAX_HELD: usize = 128 << 20;
/// the kernel needs at least this much room per read of /dev/fuse
pub const BUFFER: usize = 64 * 1024 + 4096;
/// every this many requests, entries gone for good are dropped
const SWEEP_EVERY: u64 = 1024;
/// FUSE_NOTIFY_INVAL_ENTRY
pub(crate) const NOTIFY_INVAL_ENTRY: i32 = 3;
/// contents generated for a size are used by an open this soon after
const FRESH: std::time::Duration = std::time::Duration::from_secs(1);
/// at most this many generated contents wait for their open
const MAX_PENDING: usize = 256;

/// One FUSE connection.
pub struct Session<F> {
    dev: OwnedFd,
    fs: F,
    nodes: Nodes,
    handles: HashMap<u64, Handle>,
    next_fh: u64,
    buf: Vec<u8>,
    /// contents generated with a file's size, by caller and path, for its open
    pending: HashMap<String, (std::time::Instant, Vec<u8>)>,
    /// requests answered, for the sweep
    served: u64,
    /// the thread that tells the kernel to drop entries
    janitor: Option<std::sync::mpsc::Sender<String>>,
}

enum Handle {
    File(Vec<u8>),
    /// a file open for writing: its path
    Writer(String),
    Dir(Vec<(u64, DirEntry)>),
}

/// Node ids and the paths they stand for, with the kernel's lookup counts.
#[derive(Default)]
struct Nodes {
    by_id: HashMap<u64, (String, u64)>,
    by_path: HashMap<String, u64>,
    next: u64,
}

impl Nodes {
    fn new() -> Nodes {
        let mut n = Nodes { next: ROOT_ID + 1, ..Default::default() };
        n.by_id.insert(ROOT_ID, (String::new(), 1));
        n.by_path.insert(String::new(), ROOT_ID);
        n
    }

    fn path(&self, id: u64) -> Option<&str> {
        self.by_id.get(&id).map(|(p, _)| p.as_str())
    }

    /// The id of `path`, counting one more lookup.
    fn lookup(&mut self, path: String) -> u64 {
        if let Some(&id) = self.by_path.get(&path) {
            if let Some(e) = self.by_id.get_mut(&id) {
                e.1 += 1;
            }
            return id;
        }
        let id = self.next;
        self.next += 1;
        self.by_path.insert(path.clone(), id);
        self.by_id.insert(id, (path, 1));
        id
    }

    /// The id of `path` if it has one, without counting.
    fn peek(&self, path: &str) -> u64 {
        self.by_path.get(path).copied().unwrap_or(0)
    }

    fn forget(&mut self, id: u64, n: u64) {
        if id == ROOT_ID {
            return;
        }
        let gone = match self.by_id.get_mut(&id) {
            Some(e) => {
                e.1 = e.1.saturating_sub(n);
                e.1 == 0
            }
            None => false,
        };
        if gone {
            if let Some((p, _)) = self.by_id.remove(&id) {
                self.by_path.remove(&p);
            }
        }
    }
}

/// `dir` joined with `name`.
fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

/// Little-endian field readers over a request body.
pub(crate) struct In<'a>(pub(crate) &'a [u8]);

impl In<'_> {
    pub(crate) fn u32(&self, at: usize) -> u32 {
        self.0.get(at..at + 4).map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub(crate) fn u64(&self, at: usize) -> u64 {
        self.0.get(at..at + 8).map_or(0, |b| {
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            u64::from_le_bytes(a)
        })
    }
    /// A NUL-terminated name.
    pub(crate) fn name(&self) -> Option<&str> {
        let end = self.0.iter().position(|&b| b == 0)?;
        std::str::from_utf8(&self.0[..end]).ok()
    }
}

/// A reply body under construction.
#[derive(Default)]
pub(crate) struct Out(pub(crate) Vec<u8>);

impl Out {
    pub(crate) fn u32(mut self, v: u32) -> Out {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub(crate) fn u64(mut self, v: u64) -> Out {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub(crate) fn u16(mut self, v: u16) -> Out {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn attr(self, ino: u64, a: &Attr, size: u64) -> Out {
        let nlink = if a.kind == Kind::Dir { 2 } else { 1 };
        self.u64(ino)
            .u64(size)
            .u64(size.div_ceil(512)) // blocks
            .u64(a.mtime)
            .u64(a.mtime)
            .u64(a.mtime)
            .u32(0)
            .u32(0)
            .u32(0)
            .u32(a.kind.mode_bits() | (a.perm & 0o7777))
            .u32(nlink)
            .u32(a.uid)
            .u32(a.gid)
            .u32(0) // rdev
            .u32(4096) // blksize
            .u32(0) // flags
    }
}

enum Answer {
    Data(Vec<u8>),
    Error(Errno),
    None,
}

impl<F: Filesystem> Session<F> {
    /// A session on `dev` (an fd of /dev/fuse that a mount was made with).
    pub fn new(dev: OwnedFd, fs: F) -> Session<F> {
        Session {
            dev,
            fs,
            nodes: Nodes::new(),
            handles: HashMap::new(),
            next_fh: 1,
            buf: vec![0; BUFFER],
            pending: HashMap::new(),
            served: 0,
            janitor: None,
        }
    }

    /// The /dev/fuse fd, to poll.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.dev.as_fd()
    }

    /// Reads and answers one request. `Ok(false)` once the mount is gone.
    pub fn handle_one(&mut self) -> std::io::Result<bool> {
        let n = match read_request(&self.dev, &mut self.buf)? {
            Got::Request(n) => n,
            Got::Nothing => return Ok(true),
            Got::Gone => return Ok(false),
        };
        self.served += 1;
        if self.served.is_multiple_of(SWEEP_EVERY) {
            self.sweep();
        }
        let req = self.buf[..n].to_vec();
        let h = In(&req[..IN_HEADER]);
        let (opcode, unique, node) = (h.u32(4), h.u64(8), h.u64(16));
        let ctx = Ctx { pid: h.u32(32), uid: h.u32(24), gid: h.u32(28) };
        let body = In(&req[IN_HEADER..]);
        if opcode == DESTROY {
            return Ok(false);
        }
        match self.answer(opcode, node, &body, &ctx) {
            Answer::None => Ok(true),
            Answer::Data(d) => send(&self.dev, unique, Ok(d)),
            Answer::Error(e) => send(&self.dev, unique, Err(e)),
        }
    }

    fn answer(&mut self, opcode: u32, node: u64, body: &In<'_>, ctx: &Ctx) -> Answer {
        match opcode {
            INIT => Answer::Data(init_reply(body)),
            FORGET | BATCH_FORGET => {
                for (id, n) in forgotten(opcode, node, body) {
                    self.nodes.forget(id, n);
                }
                Answer::None
            }
            INTERRUPT => Answer::None,
            _ if WRITES.contains(&opcode) => Answer::Error(Errno::EROFS),
            _ => match self.answer_node(opcode, node, body, ctx) {
                Ok(d) => Answer::Data(d),
                Err(e) => Answer::Error(e),
            },
        }
    }

    fn answer_node(&mut self, opcode: u32, node: u64, body: &In<'_>, ctx: &Ctx) -> Result<Vec<u8>, Errno> {
        let path = self.nodes.path(node).ok_or(Errno::ESTALE)?.to_string();
        match opcode {
            LOOKUP => {
                let name = body.name().ok_or(Errno::ENOENT)?;
                // the kernel walks "." and ".." itself and never sends a "/";
                // paths below are joined from names, so refuse them anyway
                if name.is_empty() || name == "." || name == ".." || name.contains('/') {
                    return Err(Errno::ENOENT);
                }
                let child = join(&path, name);
                let attr = self.fs.getattr(&child, ctx)?;
                let size = self.size(&child, &attr, ctx);
                let id = self.nodes.lookup(child);
                // nodeid, generation, entry and attr timeouts of zero
                Ok(Out::default().u64(id).u64(0).u64(0).u64(0).u32(0).u32(0).attr(id, &attr, size).0)
            }
            GETATTR => {
                let attr = self.fs.getattr(&path, ctx)?;
                let size = self.size(&path, &attr, ctx);
                Ok(Out::default().u64(0).u32(0).u32(0).attr(node, &attr, size).0)
            }
            READLINK => self.fs.readlink(&path, ctx),
            OPEN => {
                let access = body.u32(0) & libc::O_ACCMODE as u32;
                if access == libc::O_WRONLY as u32 && self.fs.writable(&path) {
                    let fh = self.add(Handle::Writer(path))?;
                    return Ok(Out::default().u64(fh).u32(FOPEN_DIRECT_IO | FOPEN_NOFLUSH).u32(0).0);
                }
                if access != libc::O_RDONLY as u32 {
                    return Err(Errno::EROFS);
                }
                let data = match self.pending.remove(&pending_key(ctx, &path)) {
                    Some((at, data)) if at.elapsed() < FRESH => data,
                    _ => self.fs.read_all(&path, ctx)?,
                };
                let fh = self.add(Handle::File(data))?;
                Ok(Out::default().u64(fh).u32(FOPEN_DIRECT_IO | FOPEN_NOFLUSH).u32(0).0)
            }
            OPENDIR => {
                let mut entries = Vec::new();
                for e in self.fs.readdir(&path, ctx)? {
                    let id = self.nodes.peek(&join(&path, &e.name));
                    entries.push((id, e));
                }
                let fh = self.add(Handle::Dir(entries))?;
                Ok(Out::default().u64(fh).u32(0).u32(0).0)
            }
            READ => {
                let (fh, off, size) = (body.u64(0), body.u64(8), body.u32(16) as usize);
                match self.handles.get(&fh) {
                    Some(Handle::File(d)) => {
                        let start = usize::try_from(off).unwrap_or(usize::MAX).min(d.len());
                        Ok(d[start..(start + size).min(d.len())].to_vec())
                    }
                    _ => Err(Errno::EBADF),
                }
            }
            WRITE => {
                // fuse_write_in is 40 bytes; the data follows
                let (fh, size) = (body.u64(0), body.u32(16) as usize);
                let data = body.0.get(40..40 + size).ok_or(Errno::EINVAL)?;
                match self.handles.get(&fh) {
                    Some(Handle::Writer(p)) => {
                        self.fs.write(p, data, ctx)?;
                        Ok(Out::default().u32(size as u32).u32(0).0)
                    }
                    _ => Err(Errno::EBADF),
                }
            }
            SETATTR if self.fs.writable(&path) => {
                // O_TRUNC on a procfs file means nothing: answer with its attributes
                let attr = self.fs.getattr(&path, ctx)?;
                Ok(Out::default().u64(0).u32(0).u32(0).attr(node, &attr, 0).0)
            }
            SETATTR => Err(Errno::EROFS),
            READDIR => {
                let (fh, off, size) = (body.u64(0), body.u64(8), body.u32(16) as usize);
                match self.handles.get(&fh) {
                    Some(Handle::Dir(entries)) => Ok(dirents(node, entries, off, size)),
                    _ => Err(Errno::EBADF),
                }
            }
            RELEASE | RELEASEDIR => {
                self.handles.remove(&body.u64(0));
                Ok(Vec::new())
            }
            // ENOSYS: the kernel stops sending FLUSH for this connection
            FLUSH => Err(Errno::ENOSYS),
            STATFS => Ok(statfs_out(&moat_p9::StatFs { bsize: 4096, namelen: 255, ..Default::default() })),
            _ => Err(Errno::ENOSYS),
        }
    }

    /// Tells the kernel to drop the top-level entries that are gone for good
    /// (it then forgets their nodes). The notice waits for the directory's
    /// lock, which a lookup waiting on us may hold: it goes from a thread of
    /// its own, never from the loop.
    fn sweep(&mut self) {
        let gone: Vec<String> = self
            .nodes
            .by_path
            .keys()
            .filter(|p| !p.is_empty() && !p.contains('/') && self.fs.gone(p))
            .cloned()
            .collect();
        if gone.is_empty() {
            return;
        }
        if self.janitor.is_none() {
            let Ok(dev) = self.dev.try_clone() else { return };
            let (tx, rx) = std::sync::mpsc::channel::<String>();
            let spawned = std::thread::Builder::new().spawn(move || {
                for name in rx {
                    let _ = nix::unistd::write(&dev, &inval_entry(ROOT_ID, &name));
                }
            });
            if spawned.is_err() {
                return;
            }
            self.janitor = Some(tx);
        }
        if let Some(tx) = &self.janitor {
            for name in gone {
                let _ = tx.send(name);
            }
        }
    }

    /// A file's size: its contents, generated now and kept for its open.
    fn size(&mut self, path: &str, attr: &Attr, ctx: &Ctx) -> u64 {
        if attr.kind != Kind::File {
            return 0;
        }
        let Ok(data) = self.fs.read_all(path, ctx) else { return 0 };
        if self.pending.len() >= MAX_PENDING {
            self.pending.retain(|_, (at, _)| at.elapsed() < FRESH);
            if self.pending.len() >= MAX_PENDING {
                self.pending.clear();
            }
        }
        let size = data.len() as u64;
        self.pending.insert(pending_key(ctx, path), (std::time::Instant::now(), data));
        size
    }

    fn add(&mut self, h: Handle) -> Result<u64, Errno> {
        if self.handles.len() >= MAX_HANDLES {
            return Err(Errno::ENFILE);
        }
        let held: usize = self.handles.values().map(|h| if let Handle::File(d) = h { d.len() } else { 0 }).sum();
        if let Handle::File(d) = &h {
            if held + d.len() > MAX_HELD {
                return Err(Errno::ENOMEM);
            }
        }
        let fh = self.next_fh;
        self.next_fh += 1;
        self.handles.insert(fh, h);
        Ok(fh)
    }
}

/// FUSE_SUPER_MAGIC
const FUSE_MAGIC: i64 = 0x6573_5546;

/// Whether `fd` is on a FUSE mount: for a stub, one of the Sentry's.
pub(crate) fn on_fuse(fd: &OwnedFd) -> bool {
    nix::sys::statfs::fstatfs(fd).is_ok_and(|s| s.filesystem_type().0 == FUSE_MAGIC)
}

/// What one read of /dev/fuse brought.
pub(crate) enum Got {
    /// a request of this many bytes (at least a header)
    Request(usize),
    /// nothing to answer (interrupted before we read it, or short)
    Nothing,
    /// the mount is gone
    Gone,
}

/// Reads one request into `buf`.
pub(crate) fn read_request(dev: &OwnedFd, buf: &mut [u8]) -> std::io::Result<Got> {
    match nix::unistd::read(dev, buf) {
        Ok(n) if n >= IN_HEADER => Ok(Got::Request(n)),
        Ok(_) | Err(Errno::ENOENT | Errno::EINTR | Errno::EAGAIN) => Ok(Got::Nothing),
        Err(Errno::ENODEV) => Ok(Got::Gone),
        Err(e) => Err(e.into()),
    }
}

/// Answers request `unique`. `Ok(false)` once the mount is gone.
pub(crate) fn send(dev: &OwnedFd, unique: u64, answer: Result<Vec<u8>, Errno>) -> std::io::Result<bool> {
    let (error, data) = match answer {
        Ok(d) => (0i32, d),
        Err(e) => (-(e as i32), Vec::new()),
    };
    let len = u32::try_from(OUT_HEADER + data.len()).unwrap_or(u32::MAX);
    let mut out = Out::default().u32(len).u32(error as u32).u64(unique).0;
    out.extend_from_slice(&data);
    match nix::unistd::write(dev, &out) {
        // ENOENT: the request was interrupted meanwhile
        Ok(_) | Err(Errno::ENOENT) => Ok(true),
        Err(Errno::ENODEV) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Sends notification `code` with `payload` on connection `dev`, unasked
/// (the kernel answers ENOENT where it holds nothing it names).
pub(crate) fn notify(dev: &OwnedFd, code: u32, payload: &[u8]) -> Result<(), Errno> {
    let len = u32::try_from(OUT_HEADER + payload.len()).map_err(|_| Errno::EINVAL)?;
    let mut out = Out::default().u32(len).u32(code).u64(0).0;
    out.extend_from_slice(payload);
    nix::unistd::write(dev, &out).map(|_| ())
}

/// One fuse_dirent record (aligned to 8 bytes) appended to `out` if it fits in
/// `size` bytes in all; whether it did.
pub(crate) fn push_dirent(out: &mut Vec<u8>, size: usize, ino: u64, off: u64, ty: u32, name: &[u8]) -> bool {
    let rec = (24 + name.len()).div_ceil(8) * 8;
    if out.len() + rec > size {
        return false;
    }
    let start = out.len();
    let o = Out(std::mem::take(out)).u64(ino).u64(off).u32(name.len() as u32).u32(ty);
    *out = o.0;
    out.extend_from_slice(name);
    out.resize(start + rec, 0);
    true
}

/// A FUSE_NOTIFY_INVAL_ENTRY message: drop `name` in directory `parent`.
pub(crate) fn inval_entry(parent: u64, name: &str) -> Vec<u8> {
    let body_len = 16 + name.len() + 1;
    let len = u32::try_from(OUT_HEADER + body_len).unwrap_or(u32::MAX);
    let mut o = Out::default().u32(len).u32(NOTIFY_INVAL_ENTRY as u32).u64(0);
    o = o.u64(parent).u32(name.len() as u32).u32(0);
    o.0.extend_from_slice(name.as_bytes());
    o.0.push(0);
    o.0
}

/// Contents generated for one caller are only ever given to that caller.
fn pending_key(ctx: &Ctx, path: &str) -> String {
    format!("{}:{path}", ctx.pid)
}

fn init_reply(body: &In<'_>) -> Vec<u8> {
    init_out(agreed_minor(body, MINOR), body.u32(8), 0, 0)
}

/// The protocol minor version to answer a FUSE_INIT request `body` with,
/// speaking `ours` at most.
pub(crate) fn agreed_minor(body: &In<'_>, ours: u32) -> u32 {
    let (major, minor) = (body.u32(0), body.u32(4));
    if major > 7 {
        ours
    } else {
        minor.min(ours)
    }
}

/// A fuse_init_out: protocol 7.`minor`, the kernel's `readahead`, `flags`
/// (the high half goes in flags2), and a backing file stack depth.
pub(crate) fn init_out(minor: u32, readahead: u32, flags: u64, max_stack_depth: u32) -> Vec<u8> {
    // major, minor, max_readahead, flags, max_background, congestion_threshold,
    // max_write, time_gran, max_pages, map_alignment, flags2, max_stack_depth, unused[6]
    let mut o = Out::default().u32(7).u32(minor).u32(readahead).u32(flags as u32).u16(16).u16(12).u32(4096).u32(1);
    o = o.u16(0).u16(0).u32((flags >> 32) as u32).u32(max_stack_depth);
    for _ in 0..6 {
        o = o.u32(0);
    }
    o.0
}

/// A fuse_kstatfs of `s` (its block size as the fragment size too).
pub(crate) fn statfs_out(s: &moat_p9::StatFs) -> Vec<u8> {
    // blocks, bfree, bavail, files, ffree; bsize, namelen, frsize, padding, spare[6]
    let mut o = Out::default().u64(s.blocks).u64(s.bfree).u64(s.bavail).u64(s.files).u64(s.ffree);
    o = o.u32(s.bsize).u32(s.namelen).u32(s.bsize).u32(0);
    for _ in 0..6 {
        o = o.u32(0);
    }
    o.0
}

/// The (node id, count) pairs a FORGET or BATCH_FORGET request (`opcode`,
/// on `node`) drops.
pub(crate) fn forgotten(opcode: u32, node: u64, body: &In<'_>) -> Vec<(u64, u64)> {
    if opcode == FORGET {
        return vec![(node, body.u64(0))];
    }
    (0..body.u32(0) as usize).map(|i| 8 + i * 16).map(|at| (body.u64(at), body.u64(at + 8))).collect()
}

/// fuse_dirent records from `off` on, as many as fit in `size` bytes.
/// Entries the kernel has no node for yet carry a placeholder inode.
fn dirents(dir: u64, entries: &[(u64, DirEntry)], off: u64, size: usize) -> Vec<u8> {
    let dots = [(dir, ".", Kind::Dir), (dir, "..", Kind::Dir)];
    let all =
        dots.iter().map(|&(id, n, k)| (id, n, k)).chain(entries.iter().map(|(id, e)| (*id, e.name.as_str(), e.kind)));
    let mut out = Vec::new();
    for (i, (id, name, kind)) in all.enumerate().skip(usize::try_from(off).unwrap_or(usize::MAX)) {
        let ino = if id == 0 { u64::MAX - i as u64 } else { id };
        if !push_dirent(&mut out, size, ino, i as u64 + 1, kind.mode_bits() >> 12, name.as_bytes()) {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_are_dropped_when_forgotten() {
        let mut n = Nodes::new();
        let a = n.lookup("1/status".into());
        assert_eq!(n.lookup("1/status".into()), a);
        n.forget(a, 1);
        assert_eq!(n.path(a), Some("1/status"));
        n.forget(a, 1);
        assert_eq!(n.path(a), None);
        assert_eq!(n.peek("1/status"), 0);
        n.forget(ROOT_ID, 99);
        assert_eq!(n.path(ROOT_ID), Some(""));
    }

    #[test]
    fn dirents_are_aligned_and_resume_at_the_offset() {
        let e = vec![(0, DirEntry { name: "version".into(), kind: Kind::File })];
        let all = dirents(1, &e, 0, 4096);
        // ".", ".." (32 bytes each) and "version" (24 + 7 -> 32)
        assert_eq!(all.len(), 96);
        let rest = dirents(1, &e, 2, 4096);
        assert_eq!(rest.len(), 32);
        assert_eq!(&rest[24..31], b"version");
        assert_eq!(u64::from_le_bytes(rest[8..16].try_into().unwrap()), 3);
        assert!(dirents(1, &e, 0, 40).len() == 32);
    }

    #[test]
    fn an_invalidation_notice_is_laid_out_as_the_kernel_reads_it() {
        let m = inval_entry(1, "42");
        assert_eq!(m.len(), 16 + 16 + 3);
        assert_eq!(In(&m).u32(0) as usize, m.len());
        assert_eq!(In(&m).u32(4), 3);
        assert_eq!(In(&m).u64(8), 0, "a notice, not a reply");
        assert_eq!(In(&m).u64(16), 1);
        assert_eq!(In(&m).u32(24), 2);
        assert_eq!(&m[32..], b"42\0");
    }

    #[test]
    fn init_reply_speaks_7_31_at_most() {
        let body = Out::default().u32(7).u32(41).u32(131072).u32(0).0;
        let r = init_reply(&In(&body));
        assert_eq!(r.len(), 64);
        assert_eq!(In(&r).u32(0), 7);
        assert_eq!(In(&r).u32(4), 31);
        assert_eq!(In(&r).u32(8), 131072);
    }
}
