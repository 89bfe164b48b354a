//! [`Fid`]: a typed handle for one file on the server, clunked when dropped.

use std::os::fd::OwnedFd;

use moat_p9::consts::{LOCK_TYPE_UNLCK, QTDIR};
use moat_p9::{Attr, Data, Datasync, DirEntry, Msg, MsgType, Qid, SetAttr, StatFs, Str, WalkNames, MAX_WELEM, NOFID};
use nix::errno::Errno;

use super::{Client, ClientError, Response};

/// A fid: names one file on the server. Dropping it sends Tclunk (errors ignored); use
/// [`Fid::clunk`] to see them.
#[derive(Debug)]
pub struct Fid {
    client: Client,
    id: u32,
    qid: Qid,
    live: bool,
}

/// The result of opening a fid.
#[derive(Debug)]
pub struct Opened {
    /// The file's qid.
    pub qid: Qid,
    /// Largest read or write the server will do at once (0: use msize − 24).
    pub iounit: u32,
    /// The host fd, when the server donated one (Unix socket, donation negotiated, regular file).
    pub fd: Option<OwnedFd>,
}

/// A directory entry, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntryOwned {
    /// The entry's qid.
    pub qid: Qid,
    /// Cookie to continue reading after this entry.
    pub offset: u64,
    /// Linux `DT_*` type.
    pub ty: u8,
    /// The name.
    pub name: Vec<u8>,
}

macro_rules! expect {
    ($resp:expr, $pat:pat => $val:expr) => {{
        let resp: Response = $resp;
        match resp.msg()? {
            $pat => $val,
            m => return Err(ClientError::Unexpected(m.msg_type())),
        }
    }};
}

impl Client {
    /// Attaches to the server's tree `aname` as user `uname` / `n_uname`, without authentication.
    pub fn attach(&self, uname: &str, aname: &str, n_uname: u32) -> Result<Fid, ClientError> {
        let id = self.alloc_fid()?;
        let res = self.call(Msg::Tattach { fid: id, afid: NOFID, uname: uname.into(), aname: aname.into(), n_uname });
        match res.and_then(|r| expect!(r, Msg::Rattach { qid } => Ok(qid))) {
            Ok(qid) => Ok(Fid { client: self.clone(), id, qid, live: true }),
            Err(e) => {
                self.free_fid(id);
                Err(e)
            }
        }
    }
}

impl Fid {
    /// The fid number on the wire.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The file's qid, as of the walk, attach or create that made this fid.
    pub fn qid(&self) -> Qid {
        self.qid
    }

    /// Whether the qid says directory.
    pub fn is_dir(&self) -> bool {
        self.qid.ty & QTDIR != 0
    }

    /// The client this fid belongs to.
    pub fn client(&self) -> &Client {
        &self.client
    }

    fn call(&self, msg: Msg<'_>) -> Result<Response, ClientError> {
        self.client.call(msg)
    }

    /// Walks `names` (any number; sent 16 per Twalk) to a new fid. A name that does not exist
    /// anywhere along the way is `ENOENT`.
    pub fn walk(&self, names: &[&[u8]]) -> Result<Fid, ClientError> {
        let mut chunks = names.chunks(MAX_WELEM);
        let first = chunks.next().unwrap_or(&[]);
        let mut cur = self.walk16(first)?;
        for chunk in chunks {
            cur = cur.walk16(chunk)?;
        }
        Ok(cur)
    }

    /// A second fid for the same file.
    pub fn clone_fid(&self) -> Result<Fid, ClientError> {
        self.walk16(&[])
    }

    fn walk16(&self, names: &[&[u8]]) -> Result<Fid, ClientError> {
        let wnames = WalkNames::new(&names.iter().map(|n| Str(n)).collect::<Vec<_>>()).map_err(ClientError::Encode)?;
        let newfid = self.client.alloc_fid()?;
        let res = self.call(Msg::Twalk { fid: self.id, newfid, wnames });
        let qids = match res.and_then(|r| expect!(r, Msg::Rwalk { wqids } => Ok(wqids))) {
            Ok(q) if q.len() == names.len() => q,
            Ok(_) => {
                // A short walk leaves newfid unset (walk(5)).
                self.client.free_fid(newfid);
                return Err(ClientError::Remote(Errno::ENOENT));
            }
            Err(e) => {
                self.client.free_fid(newfid);
                return Err(e);
            }
        };
        let qid = qids.as_slice().last().copied().unwrap_or(self.qid);
        Ok(Fid { client: self.client.clone(), id: newfid, qid, live: true })
    }

    /// Opens this fid (Linux open `flags`). With fd donation the host fd comes along.
    pub fn open(&self, flags: u32) -> Result<Opened, ClientError> {
        let mut r = self.call(Msg::Tlopen { fid: self.id, flags })?;
        let (qid, iounit) = expect!(Response { buf: std::mem::take(&mut r.buf), fds: Vec::new(), msize: r.msize },
            Msg::Rlopen { qid, iounit } => (qid, iounit));
        Ok(Opened { qid, iounit, fd: r.fds.pop() })
    }

    /// Creates and opens `name` in this directory; returns a new fid for the file (this one stays
    /// the directory).
    pub fn create(&self, name: &[u8], flags: u32, mode: u32, gid: u32) -> Result<(Fid, Opened), ClientError> {
        let mut f = self.clone_fid()?;
        let mut r = f.call(Msg::Tlcreate { fid: f.id, name: Str(name), flags, mode, gid })?;
        let (qid, iounit) = expect!(Response { buf: std::mem::take(&mut r.buf), fds: Vec::new(), msize: r.msize },
            Msg::Rlcreate { qid, iounit } => (qid, iounit));
        f.qid = qid;
        Ok((f, Opened { qid, iounit, fd: r.fds.pop() }))
    }

    /// Reads into `buf` at `offset` (several Treads if `buf` exceeds the iounit); returns the bytes
    /// read, short only at end of file.
    pub fn read(&self, offset: u64, buf: &mut [u8]) -> Result<usize, ClientError> {
        let mut done = 0;
        while done < buf.len() {
            let want = (buf.len() - done).min(self.client.iounit() as usize);
            let count = u32::try_from(want).unwrap_or(u32::MAX);
            let r = self.call(Msg::Tread { fid: self.id, offset: offset + done as u64, count })?;
            let n = expect!(r, Msg::Rread { data } => {
                let n = data.0.len().min(want);
                buf[done..done + n].copy_from_slice(&data.0[..n]);
                n
            });
            done += n;
            if n < want {
                break;
            }
        }
        Ok(done)
    }

    /// Writes `data` at `offset` (several Twrites if needed); returns the bytes written.
    pub fn write(&self, offset: u64, data: &[u8]) -> Result<usize, ClientError> {
        let mut done = 0;
        while done < data.len() {
            let chunk = &data[done..data.len().min(done + self.client.iounit() as usize)];
            let r = self.call(Msg::Twrite { fid: self.id, offset: offset + done as u64, data: Data(chunk) })?;
            let n = expect!(r, Msg::Rwrite { count } => count as usize);
            done += n.min(chunk.len());
            if n < chunk.len() {
                break;
            }
        }
        Ok(done)
    }

    /// One Treaddir from cookie `offset` (0 to start); an empty result is the end.
    pub fn readdir(&self, offset: u64, count: u32) -> Result<Vec<DirEntryOwned>, ClientError> {
        let r = self.call(Msg::Treaddir { fid: self.id, offset, count: count.min(self.client.iounit()) })?;
        expect!(r, Msg::Rreaddir { data } => DirEntry::iter(data.0)
            .map(|e| e.map(|e| DirEntryOwned { qid: e.qid, offset: e.offset, ty: e.ty, name: e.name.0.to_vec() }))
            .collect::<Result<Vec<_>, _>>()
            .map_err(ClientError::Decode))
    }

    /// Every entry of this (open) directory.
    pub fn readdir_all(&self) -> Result<Vec<DirEntryOwned>, ClientError> {
        let mut all = Vec::new();
        let mut off = 0;
        loop {
            let batch = self.readdir(off, self.client.iounit())?;
            let Some(last) = batch.last() else { return Ok(all) };
            off = last.offset;
            all.extend(batch);
        }
    }

    /// Attributes (`mask` of `GETATTR_*`).
    pub fn getattr(&self, mask: u64) -> Result<Attr, ClientError> {
        expect!(self.call(Msg::Tgetattr { fid: self.id, request_mask: mask })?, Msg::Rgetattr { attr } => Ok(attr))
    }

    /// Changes attributes.
    pub fn setattr(&self, attr: &SetAttr) -> Result<(), ClientError> {
        expect!(self.call(Msg::Tsetattr { fid: self.id, attr: *attr })?, Msg::Rsetattr {} => Ok(()))
    }

    /// Filesystem statistics.
    pub fn statfs(&self) -> Result<StatFs, ClientError> {
        expect!(self.call(Msg::Tstatfs { fid: self.id })?, Msg::Rstatfs { stat } => Ok(stat))
    }

    /// Makes directory `name` in this directory.
    pub fn mkdir(&self, name: &[u8], mode: u32, gid: u32) -> Result<Qid, ClientError> {
        expect!(self.call(Msg::Tmkdir { dfid: self.id, name: Str(name), mode, gid })?, Msg::Rmkdir { qid } => Ok(qid))
    }

    /// Makes symlink `name` → `target` in this directory.
    pub fn symlink(&self, name: &[u8], target: &[u8], gid: u32) -> Result<Qid, ClientError> {
        let msg = Msg::Tsymlink { fid: self.id, name: Str(name), symtgt: Str(target), gid };
        expect!(self.call(msg)?, Msg::Rsymlink { qid } => Ok(qid))
    }

    /// Makes a special file `name` in this directory.
    pub fn mknod(&self, name: &[u8], mode: u32, major: u32, minor: u32, gid: u32) -> Result<Qid, ClientError> {
        let msg = Msg::Tmknod { dfid: self.id, name: Str(name), mode, major, minor, gid };
        expect!(self.call(msg)?, Msg::Rmknod { qid } => Ok(qid))
    }

    /// Hard-links `target` as `name` in this directory.
    pub fn link(&self, target: &Fid, name: &[u8]) -> Result<(), ClientError> {
        expect!(self.call(Msg::Tlink { dfid: self.id, fid: target.id, name: Str(name) })?, Msg::Rlink {} => Ok(()))
    }

    /// Moves this file to `name` in directory `dir` (Trename).
    pub fn rename(&self, dir: &Fid, name: &[u8]) -> Result<(), ClientError> {
        expect!(self.call(Msg::Trename { fid: self.id, dfid: dir.id, name: Str(name) })?, Msg::Rrename {} => Ok(()))
    }

    /// Renames `oldname` in this directory to `newname` in `newdir`.
    pub fn renameat(&self, oldname: &[u8], newdir: &Fid, newname: &[u8]) -> Result<(), ClientError> {
        let msg =
            Msg::Trenameat { olddirfid: self.id, oldname: Str(oldname), newdirfid: newdir.id, newname: Str(newname) };
        expect!(self.call(msg)?, Msg::Rrenameat {} => Ok(()))
    }

    /// Removes `name` from this directory (`flags`: `AT_REMOVEDIR` for a directory).
    pub fn unlinkat(&self, name: &[u8], flags: u32) -> Result<(), ClientError> {
        expect!(self.call(Msg::Tunlinkat { dirfid: self.id, name: Str(name), flags })?, Msg::Runlinkat {} => Ok(()))
    }

    /// The target of this symlink.
    pub fn readlink(&self) -> Result<Vec<u8>, ClientError> {
        expect!(self.call(Msg::Treadlink { fid: self.id })?, Msg::Rreadlink { target } => Ok(target.0.to_vec()))
    }

    /// Flushes this open file to storage.
    pub fn fsync(&self, datasync: bool) -> Result<(), ClientError> {
        let msg = Msg::Tfsync { fid: self.id, datasync: Datasync(u32::from(datasync)) };
        expect!(self.call(msg)?, Msg::Rfsync {} => Ok(()))
    }

    /// Takes (or with `LOCK_TYPE_UNLCK` releases) a record lock; returns the `LOCK_*` status.
    pub fn lock(&self, ty: u8, start: u64, length: u64, proc_id: u32, client_id: &str) -> Result<u8, ClientError> {
        let msg = Msg::Tlock { fid: self.id, ty, flags: 0, start, length, proc_id, client_id: client_id.into() };
        expect!(self.call(msg)?, Msg::Rlock { status } => Ok(status))
    }

    /// Tests for a conflicting lock; returns its type (`LOCK_TYPE_UNLCK` if none), start and length.
    pub fn getlock(&self, ty: u8, start: u64, length: u64, proc_id: u32) -> Result<(u8, u64, u64), ClientError> {
        let msg = Msg::Tgetlock { fid: self.id, ty, start, length, proc_id, client_id: "moat".into() };
        expect!(self.call(msg)?, Msg::Rgetlock { ty, start, length, .. } => Ok((ty, start, length)))
    }

    fn xattr_read(&self, name: &[u8]) -> Result<Vec<u8>, ClientError> {
        let newfid = self.client.alloc_fid()?;
        let r = self.call(Msg::Txattrwalk { fid: self.id, newfid, name: Str(name) });
        let size = match r.and_then(|r| expect!(r, Msg::Rxattrwalk { size } => Ok(size))) {
            Ok(s) => s,
            Err(e) => {
                self.client.free_fid(newfid);
                return Err(e);
            }
        };
        let f = Fid { client: self.client.clone(), id: newfid, qid: self.qid, live: true };
        let mut buf = vec![0u8; usize::try_from(size.min(moat_p9::consts::XATTR_SIZE_MAX)).unwrap_or(0)];
        let n = f.read(0, &mut buf)?;
        buf.truncate(n);
        f.clunk()?;
        Ok(buf)
    }

    /// The value of extended attribute `name`.
    pub fn xattr_get(&self, name: &[u8]) -> Result<Vec<u8>, ClientError> {
        if name.is_empty() {
            return Err(ClientError::Remote(Errno::EINVAL));
        }
        self.xattr_read(name)
    }

    /// The names of the extended attributes, NUL-separated as listxattr(2) gives them.
    pub fn xattr_list(&self) -> Result<Vec<u8>, ClientError> {
        self.xattr_read(b"")
    }

    /// Sets extended attribute `name` (`flags`: `XATTR_CREATE`/`XATTR_REPLACE`).
    pub fn xattr_set(&self, name: &[u8], value: &[u8], flags: u32) -> Result<(), ClientError> {
        let f = self.clone_fid()?;
        let msg = Msg::Txattrcreate { fid: f.id, name: Str(name), attr_size: value.len() as u64, flags };
        expect!(f.call(msg)?, Msg::Rxattrcreate {} => ());
        if !value.is_empty() {
            f.write(0, value)?;
        }
        f.clunk()
    }

    /// Removes extended attribute `name` (as Linux v9fs does: an empty replace).
    pub fn xattr_remove(&self, name: &[u8]) -> Result<(), ClientError> {
        self.xattr_set(name, &[], moat_p9::consts::XATTR_REPLACE)
    }

    /// Forgets this fid, reporting the server's answer (an xattr write is committed here).
    pub fn clunk(mut self) -> Result<(), ClientError> {
        self.live = false;
        let res = self.call(Msg::Tclunk { fid: self.id });
        self.client.free_fid(self.id);
        expect!(res?, Msg::Rclunk {} => Ok(()))
    }

    /// Removes the file and forgets this fid (the fid is gone even if the removal fails).
    pub fn remove(mut self) -> Result<(), ClientError> {
        self.live = false;
        let res = self.call(Msg::Tremove { fid: self.id });
        self.client.free_fid(self.id);
        expect!(res?, Msg::Rremove {} => Ok(()))
    }

    /// Unlocks everything this fid locked over `[start, start+length)`.
    pub fn unlock(&self, start: u64, length: u64, proc_id: u32) -> Result<u8, ClientError> {
        self.lock(LOCK_TYPE_UNLCK, start, length, proc_id, "moat")
    }
}

impl Drop for Fid {
    fn drop(&mut self) {
        if self.live {
            let res = self.client.call(Msg::Tclunk { fid: self.id });
            if !matches!(res.as_ref().map(|r| r.msg().map(|m| m.msg_type())), Ok(Ok(MsgType::Rclunk))) {
                tracing::debug!(fid = self.id, "clunk on drop failed");
            }
            self.client.free_fid(self.id);
        }
    }
}
