//! `lossyfs`: a FUSE filesystem that passes through to a backing directory but keeps
//! every written byte in its own memory until the file is fsynced — a page cache that
//! dies with the process. `kill -9` of this process is a power cut: what the backing
//! directory holds is what a disk would still hold, so a broker's unsynced writes are
//! gone after the filesystem is mounted again.
//!
//! The model (what it forgets and what it keeps):
//! - File data written with `write` (or through a shared mapping) lives in an
//!   [`overlay::Overlay`] until `fsync`/`fdatasync` of that file, until it has been dirty
//!   for `--expire-ms` (Linux's `vm.dirty_expire_centisecs`, 30 s by default), or until
//!   the dirty total passes `--max-dirty-bytes` (then the oldest files are written back,
//!   as the kernel's flusher would). Writing to the backing file is "on the disk": the
//!   machine under the backing directory does not lose power.
//! - Metadata (create, mkdir, rename, unlink, truncate, chmod, times) reaches the backing
//!   directory at once, as a journaling filesystem that commits metadata before the data
//!   it describes. That is kinder than a real disk, never harsher.
//! - A clean unmount writes everything back.
//!
//! Every method runs on fuser's one session thread, which owns [`LossyFs`].

mod overlay;

use std::collections::{HashMap, VecDeque};
use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use fuser::{
    FileAttr, FileType, Filesystem, MountOption, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow,
};
use overlay::Overlay;

#[derive(Parser)]
#[command(about = "FUSE pass-through that loses unsynced writes when killed (a power cut)")]
struct Args {
    /// Directory that holds what is "on disk".
    #[arg(long)]
    backing: PathBuf,
    /// Where to mount.
    #[arg(long)]
    mount: PathBuf,
    /// Dirty bytes held before the oldest dirty files are written back.
    #[arg(long, default_value_t = 1 << 30)]
    max_dirty_bytes: u64,
    /// A file dirty for this long is written back (Linux: vm.dirty_expire_centisecs).
    #[arg(long, default_value_t = 30_000)]
    expire_ms: u64,
}

/// How long the kernel may cache names and attributes; every change passes through here.
const TTL: Duration = Duration::from_secs(1);
const ROOT: u64 = 1;

/// One file or directory the kernel knows by number.
struct Node {
    /// Path below the backing directory; `None` once unlinked (open handles still work).
    path: Option<PathBuf>,
    /// Backing file, opened on first use of a regular file's data.
    file: Option<File>,
    /// Open handles from the kernel.
    opens: u32,
    /// Lookups the kernel holds (it forgets them with `forget`).
    lookups: u64,
    /// Data written but not yet on the backing file.
    dirty: Overlay,
    /// When `dirty` last went from clean to dirty.
    dirty_since: Option<Instant>,
}

/// The filesystem (see the module doc).
struct LossyFs {
    backing: PathBuf,
    nodes: HashMap<u64, Node>,
    by_path: HashMap<PathBuf, u64>,
    next_ino: u64,
    /// Files in the order they became dirty; entries whose `dirty_since` no longer
    /// matches are stale and skipped.
    dirty_order: VecDeque<(Instant, u64)>,
    dirty_bytes: u64,
    max_dirty_bytes: u64,
    expire: Duration,
}

fn errno(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

fn to_time(secs: i64, nsecs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::new(secs as u64, nsecs as u32)
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    }
}

fn kind_of(ft: fs::FileType) -> FileType {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_dir() {
        FileType::Directory
    } else if ft.is_symlink() {
        FileType::Symlink
    } else if ft.is_fifo() {
        FileType::NamedPipe
    } else if ft.is_socket() {
        FileType::Socket
    } else if ft.is_char_device() {
        FileType::CharDevice
    } else if ft.is_block_device() {
        FileType::BlockDevice
    } else {
        FileType::RegularFile
    }
}

impl LossyFs {
    fn new(backing: PathBuf, max_dirty_bytes: u64, expire: Duration) -> Self {
        let mut fs = LossyFs {
            backing,
            nodes: HashMap::new(),
            by_path: HashMap::new(),
            next_ino: ROOT + 1,
            dirty_order: VecDeque::new(),
            dirty_bytes: 0,
            max_dirty_bytes,
            expire,
        };
        fs.nodes.insert(ROOT, Node::new(PathBuf::new()));
        fs.by_path.insert(PathBuf::new(), ROOT);
        fs
    }

    fn real(&self, rel: &Path) -> PathBuf {
        self.backing.join(rel)
    }

    fn rel_path(&self, ino: u64) -> Result<PathBuf, i32> {
        self.nodes
            .get(&ino)
            .and_then(|n| n.path.clone())
            .ok_or(libc::ENOENT)
    }

    fn child(&self, parent: u64, name: &OsStr) -> Result<PathBuf, i32> {
        Ok(self.rel_path(parent)?.join(name))
    }

    /// The number for `rel`, registering it if new.
    fn ino_for(&mut self, rel: &Path) -> u64 {
        if let Some(&ino) = self.by_path.get(rel) {
            return ino;
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        self.nodes.insert(ino, Node::new(rel.to_path_buf()));
        self.by_path.insert(rel.to_path_buf(), ino);
        ino
    }

    fn attr(&mut self, ino: u64) -> Result<FileAttr, i32> {
        let node = self.nodes.get(&ino).ok_or(libc::ENOENT)?;
        let meta = match (&node.file, &node.path) {
            (Some(f), _) => f.metadata(),
            (None, Some(p)) => fs::symlink_metadata(self.backing.join(p)),
            (None, None) => return Err(libc::ENOENT),
        }
        .map_err(|e| errno(&e))?;
        let size = match &node.file {
            Some(f) => node.dirty.size(f).map_err(|e| errno(&e))?,
            None => meta.len(),
        };
        Ok(FileAttr {
            ino,
            size,
            blocks: size.div_ceil(512),
            atime: to_time(meta.atime(), meta.atime_nsec()),
            mtime: to_time(meta.mtime(), meta.mtime_nsec()),
            ctime: to_time(meta.ctime(), meta.ctime_nsec()),
            crtime: UNIX_EPOCH,
            kind: kind_of(meta.file_type()),
            perm: (meta.mode() & 0o7777) as u16,
            nlink: meta.nlink() as u32,
            uid: meta.uid(),
            gid: meta.gid(),
            rdev: meta.rdev() as u32,
            blksize: overlay::PAGE as u32,
            flags: 0,
        })
    }

    /// Opens the backing file of a regular file if it is not open yet.
    fn ensure_file(&mut self, ino: u64) -> Result<(), i32> {
        let backing = self.backing.clone();
        let node = self.nodes.get_mut(&ino).ok_or(libc::ENOENT)?;
        if node.file.is_none() {
            let path = node.path.as_ref().ok_or(libc::ENOENT)?;
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .open(backing.join(path))
                .map_err(|e| errno(&e))?;
            node.file = Some(f);
        }
        Ok(())
    }

    /// Writes one file's dirty pages to its backing file.
    fn write_back(&mut self, ino: u64) -> Result<(), i32> {
        let Some(node) = self.nodes.get_mut(&ino) else {
            return Ok(());
        };
        let (Some(file), false) = (&node.file, node.dirty.is_clean()) else {
            return Ok(());
        };
        let held = node.dirty.dirty_bytes();
        node.dirty.flush(file).map_err(|e| errno(&e))?;
        node.dirty_since = None;
        self.dirty_bytes -= held;
        Ok(())
    }

    /// Writes back files dirty longer than the expiry, then the oldest while over the cap.
    fn age_and_cap(&mut self) {
        let now = Instant::now();
        while let Some(&(since, ino)) = self.dirty_order.front() {
            let current = self.nodes.get(&ino).and_then(|n| n.dirty_since) == Some(since);
            if current
                && now.duration_since(since) < self.expire
                && self.dirty_bytes <= self.max_dirty_bytes
            {
                break;
            }
            self.dirty_order.pop_front();
            if current {
                // An error here surfaces again on the file's own fsync.
                let _ = self.write_back(ino);
            }
        }
    }

    /// Drops a node nobody can reach any more.
    fn maybe_drop(&mut self, ino: u64) {
        if let Some(node) = self.nodes.get(&ino) {
            if node.path.is_none() && node.opens == 0 && node.lookups == 0 {
                let held = node.dirty.dirty_bytes();
                self.dirty_bytes -= held;
                self.nodes.remove(&ino);
            }
        }
    }

    /// Forgets the path of whatever node is at `rel` (it was unlinked or replaced).
    fn detach(&mut self, rel: &Path) {
        if let Some(ino) = self.by_path.remove(rel) {
            if let Some(node) = self.nodes.get_mut(&ino) {
                node.path = None;
            }
            self.maybe_drop(ino);
        }
    }

    fn entry(&mut self, rel: &Path, reply: ReplyEntry) {
        let ino = self.ino_for(rel);
        match self.attr(ino) {
            Ok(attr) => {
                if let Some(n) = self.nodes.get_mut(&ino) {
                    n.lookups += 1;
                }
                reply.entry(&TTL, &attr, 0)
            }
            Err(e) => reply.error(e),
        }
    }

    /// Sets mode, owner and times on the backing path (metadata: on the disk at once).
    fn set_meta(
        &self,
        ino: u64,
        mode: Option<u32>,
        owner: (Option<u32>, Option<u32>),
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
    ) -> Result<(), i32> {
        let real = self.real(&self.rel_path(ino)?);
        let io_err = |e: io::Error| errno(&e);
        if let Some(mode) = mode {
            fs::set_permissions(&real, fs::Permissions::from_mode(mode & 0o7777))
                .map_err(io_err)?;
        }
        if owner != (None, None) {
            std::os::unix::fs::chown(&real, owner.0, owner.1).map_err(io_err)?;
        }
        if atime.is_some() || mtime.is_some() {
            let resolve = |t: TimeOrNow| match t {
                TimeOrNow::SpecificTime(t) => t,
                TimeOrNow::Now => SystemTime::now(),
            };
            let mut times = fs::FileTimes::new();
            if let Some(t) = atime {
                times = times.set_accessed(resolve(t));
            }
            if let Some(t) = mtime {
                times = times.set_modified(resolve(t));
            }
            File::open(&real)
                .and_then(|f| f.set_times(times))
                .map_err(io_err)?;
        }
        Ok(())
    }

    /// Runs `change` on a regular file's overlay and keeps `dirty_bytes` in step.
    fn change_data(
        &mut self,
        ino: u64,
        change: impl FnOnce(&mut Overlay, &File) -> io::Result<()>,
    ) -> Result<(), i32> {
        self.ensure_file(ino)?;
        let node = self.nodes.get_mut(&ino).ok_or(libc::ENOENT)?;
        let file = node.file.as_ref().ok_or(libc::EBADF)?;
        let before = node.dirty.dirty_bytes();
        let done = change(&mut node.dirty, file);
        let after = node.dirty.dirty_bytes();
        if node.dirty_since.is_none() && !node.dirty.is_clean() {
            let now = Instant::now();
            node.dirty_since = Some(now);
            self.dirty_order.push_back((now, ino));
        }
        self.dirty_bytes = self.dirty_bytes - before + after;
        done.map_err(|e| errno(&e))
    }

    /// Removes the backing entry at `parent/name` with `remove` and forgets its path.
    fn remove(
        &mut self,
        parent: u64,
        name: &OsStr,
        remove: fn(&Path) -> io::Result<()>,
    ) -> Result<(), i32> {
        let rel = self.child(parent, name)?;
        remove(&self.real(&rel)).map_err(|e| errno(&e))?;
        self.detach(&rel);
        Ok(())
    }
}

impl Node {
    fn new(path: PathBuf) -> Self {
        Node {
            path: Some(path),
            file: None,
            opens: 0,
            lookups: 0,
            dirty: Overlay::default(),
            dirty_since: None,
        }
    }
}

impl Filesystem for LossyFs {
    fn destroy(&mut self) {
        // A clean unmount: everything written reaches the disk.
        let inos: Vec<u64> = self.nodes.keys().copied().collect();
        for ino in inos {
            let _ = self.write_back(ino);
        }
    }

    fn lookup(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEntry) {
        match self.child(parent, name) {
            Ok(rel) if fs::symlink_metadata(self.real(&rel)).is_ok() => self.entry(&rel, reply),
            Ok(_) => reply.error(libc::ENOENT),
            Err(e) => reply.error(e),
        }
    }

    fn forget(&mut self, _req: &Request<'_>, ino: u64, nlookup: u64) {
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.lookups = node.lookups.saturating_sub(nlookup);
        }
        self.maybe_drop(ino);
    }

    fn getattr(&mut self, _req: &Request<'_>, ino: u64, _fh: Option<u64>, reply: ReplyAttr) {
        match self.attr(ino) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<u64>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<u32>,
        reply: ReplyAttr,
    ) {
        let done = self
            .set_meta(ino, mode, (uid, gid), atime, mtime)
            .and_then(|()| match size {
                Some(size) => self.change_data(ino, |dirty, file| dirty.truncate(file, size)),
                None => Ok(()),
            })
            .and_then(|()| self.attr(ino));
        match done {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn mknod(
        &mut self,
        _req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        if mode & libc::S_IFMT != libc::S_IFREG {
            return reply.error(libc::EPERM);
        }
        let rel = match self.child(parent, name) {
            Ok(rel) => rel,
            Err(e) => return reply.error(e),
        };
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode & !umask & 0o7777)
            .open(self.real(&rel))
        {
            Ok(_) => self.entry(&rel, reply),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn mkdir(
        &mut self,
        _req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let rel = match self.child(parent, name) {
            Ok(rel) => rel,
            Err(e) => return reply.error(e),
        };
        let real = self.real(&rel);
        let made = fs::create_dir(&real).and_then(|()| {
            fs::set_permissions(&real, fs::Permissions::from_mode(mode & !umask & 0o7777))
        });
        match made {
            Ok(()) => self.entry(&rel, reply),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn unlink(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEmpty) {
        match self.remove(parent, name, |p| fs::remove_file(p)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rmdir(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEmpty) {
        match self.remove(parent, name, |p| fs::remove_dir(p)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rename(
        &mut self,
        _req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        flags: u32,
        reply: ReplyEmpty,
    ) {
        let (from, to) = match (self.child(parent, name), self.child(newparent, newname)) {
            (Ok(from), Ok(to)) => (from, to),
            (Err(e), _) | (_, Err(e)) => return reply.error(e),
        };
        if flags & !libc::RENAME_NOREPLACE != 0 {
            return reply.error(libc::EINVAL);
        }
        if flags & libc::RENAME_NOREPLACE != 0 && fs::symlink_metadata(self.real(&to)).is_ok() {
            return reply.error(libc::EEXIST);
        }
        if let Err(e) = fs::rename(self.real(&from), self.real(&to)) {
            return reply.error(errno(&e));
        }
        self.detach(&to);
        // The node keeps its number; it and everything below it get the new path.
        let moved: Vec<(PathBuf, u64)> = self
            .by_path
            .iter()
            .filter(|(p, _)| p.starts_with(&from))
            .map(|(p, &ino)| (p.clone(), ino))
            .collect();
        for (old, ino) in moved {
            self.by_path.remove(&old);
            let mut new = to.clone();
            if let Ok(rest) = old.strip_prefix(&from) {
                if !rest.as_os_str().is_empty() {
                    new.push(rest);
                }
            }
            if let Some(node) = self.nodes.get_mut(&ino) {
                node.path = Some(new.clone());
            }
            self.by_path.insert(new, ino);
        }
        reply.ok()
    }

    fn open(&mut self, _req: &Request<'_>, ino: u64, _flags: i32, reply: ReplyOpen) {
        match self.ensure_file(ino) {
            Ok(()) => {
                if let Some(node) = self.nodes.get_mut(&ino) {
                    node.opens += 1;
                }
                reply.opened(0, 0)
            }
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        size: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyData,
    ) {
        let Some(node) = self.nodes.get(&ino) else {
            return reply.error(libc::ENOENT);
        };
        let Some(file) = &node.file else {
            return reply.error(libc::EBADF);
        };
        match node.dirty.read(file, offset.max(0) as u64, u64::from(size)) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn write(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        data: &[u8],
        _write_flags: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyWrite,
    ) {
        let offset = offset.max(0) as u64;
        if let Err(e) = self.change_data(ino, |dirty, file| dirty.write(file, offset, data)) {
            return reply.error(e);
        }
        self.age_and_cap();
        reply.written(data.len() as u32)
    }

    fn flush(&mut self, _req: &Request<'_>, _ino: u64, _fh: u64, _owner: u64, reply: ReplyEmpty) {
        // close() makes nothing durable.
        reply.ok()
    }

    fn release(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        _flags: i32,
        _lock_owner: Option<u64>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        if let Some(node) = self.nodes.get_mut(&ino) {
            node.opens = node.opens.saturating_sub(1);
            if node.opens == 0 && node.dirty.is_clean() {
                node.file = None;
            }
        }
        self.maybe_drop(ino);
        reply.ok()
    }

    fn fsync(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let done = self.write_back(ino);
        self.age_and_cap();
        match done {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn opendir(&mut self, _req: &Request<'_>, ino: u64, _flags: i32, reply: ReplyOpen) {
        match self.rel_path(ino) {
            Ok(_) => reply.opened(0, 0),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        mut reply: ReplyDirectory,
    ) {
        let rel = match self.rel_path(ino) {
            Ok(rel) => rel,
            Err(e) => return reply.error(e),
        };
        let listing = match fs::read_dir(self.real(&rel)) {
            Ok(listing) => listing,
            Err(e) => return reply.error(errno(&e)),
        };
        let mut entries: Vec<(u64, FileType, OsString)> = vec![
            (ino, FileType::Directory, ".".into()),
            (ino, FileType::Directory, "..".into()),
        ];
        for entry in listing.flatten() {
            let kind = entry
                .file_type()
                .map(kind_of)
                .unwrap_or(FileType::RegularFile);
            let child = self.ino_for(&rel.join(entry.file_name()));
            entries.push((child, kind, entry.file_name()));
        }
        for (i, (child, kind, name)) in entries.into_iter().enumerate().skip(offset.max(0) as usize)
        {
            if reply.add(child, i as i64 + 1, kind, name) {
                break;
            }
        }
        reply.ok()
    }

    fn fsyncdir(&mut self, _req: &Request<'_>, _ino: u64, _fh: u64, _ds: bool, reply: ReplyEmpty) {
        // Metadata is on the disk as soon as it changes.
        reply.ok()
    }

    fn statfs(&mut self, _req: &Request<'_>, _ino: u64, reply: ReplyStatfs) {
        match statvfs(&self.backing) {
            Ok(s) => reply.statfs(
                s.f_blocks,
                s.f_bfree,
                s.f_bavail,
                s.f_files,
                s.f_ffree,
                s.f_bsize as u32,
                s.f_namemax as u32,
                s.f_frsize as u32,
            ),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn access(&mut self, _req: &Request<'_>, ino: u64, _mask: i32, reply: ReplyEmpty) {
        match self.rel_path(ino) {
            Ok(_) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &mut self,
        _req: &Request<'_>,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let rel = match self.child(parent, name) {
            Ok(rel) => rel,
            Err(e) => return reply.error(e),
        };
        let mut options = OpenOptions::new();
        options.read(true).write(true).mode(mode & !umask & 0o7777);
        if flags & libc::O_EXCL != 0 {
            options.create_new(true);
        } else {
            options.create(true);
        }
        let file = match options.open(self.real(&rel)) {
            Ok(file) => file,
            Err(e) => return reply.error(errno(&e)),
        };
        let ino = self.ino_for(&rel);
        if let Some(node) = self.nodes.get_mut(&ino) {
            if node.file.is_none() {
                node.file = Some(file);
            }
            node.opens += 1;
            node.lookups += 1;
        }
        match self.attr(ino) {
            Ok(attr) => reply.created(&TTL, &attr, 0, 0, 0),
            Err(e) => reply.error(e),
        }
    }
}

fn statvfs(path: &Path) -> io::Result<libc::statvfs> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())?;
    let mut out = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a valid C string and `out` is a writable statvfs.
    let rc = unsafe { libc::statvfs(c.as_ptr(), out.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it filled `out`.
    Ok(unsafe { out.assume_init() })
}

fn main() -> io::Result<()> {
    let args = Args::parse();
    let backing = fs::canonicalize(&args.backing)?;
    let fs = LossyFs::new(
        backing,
        args.max_dirty_bytes,
        Duration::from_millis(args.expire_ms),
    );
    let options = [
        MountOption::FSName("lossyfs".into()),
        MountOption::Subtype("lossyfs".into()),
        MountOption::RW,
        MountOption::NoAtime,
    ];
    fuser::mount2(fs, &args.mount, &options)
}
