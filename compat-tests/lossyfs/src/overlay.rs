//! The page cache of one file: bytes written but not yet made durable.
//!
//! An [`Overlay`] sits over a backing file and holds every page written since the last
//! [`Overlay::flush`], plus the file's logical size. Reads see the overlay over the
//! backing bytes; the backing file changes only on `flush` (what `fsync`, the memory cap
//! and the expiry of old dirty pages call). Killing the process that holds it is a power
//! cut: the backing file is what a disk would still hold.
//!
//! Invariants: every page in `pages` is `PAGE` bytes, keyed by its index; bytes of a page
//! at or past `size` are zero; `size` is `Some` exactly when there is something to flush.
//! Pure apart from the [`Backing`] calls; owned by the filesystem's one session thread.

use std::collections::BTreeMap;
use std::io;

/// Page size of the overlay; Linux's page cache works in the same unit.
pub const PAGE: u64 = 4096;

/// What the overlay needs of the file under it.
pub trait Backing {
    /// Reads at `offset`, returning how many bytes were read (0 at the end).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// Writes all of `buf` at `offset`.
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Sets the length, cutting or zero-filling.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// The current length.
    fn len(&self) -> io::Result<u64>;
}

impl Backing for std::fs::File {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        std::os::unix::fs::FileExt::read_at(self, buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        std::os::unix::fs::FileExt::write_all_at(self, buf, offset)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        std::fs::File::set_len(self, len)
    }
    fn len(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }
}

/// Dirty pages and logical size of one file (see the module doc).
#[derive(Default)]
pub struct Overlay {
    pages: BTreeMap<u64, Box<[u8]>>,
    size: Option<u64>,
}

impl Overlay {
    /// True when nothing is waiting to be flushed.
    pub fn is_clean(&self) -> bool {
        self.size.is_none()
    }

    /// Bytes held in dirty pages.
    pub fn dirty_bytes(&self) -> u64 {
        self.pages.len() as u64 * PAGE
    }

    /// The logical size: the overlay's when dirty, else the backing file's.
    pub fn size(&self, backing: &impl Backing) -> io::Result<u64> {
        match self.size {
            Some(size) => Ok(size),
            None => backing.len(),
        }
    }

    /// Reads up to `len` bytes at `offset` as the file now stands.
    pub fn read(&self, backing: &impl Backing, offset: u64, len: u64) -> io::Result<Vec<u8>> {
        let size = self.size(backing)?;
        let end = size.min(offset.saturating_add(len));
        let mut out = vec![0u8; end.saturating_sub(offset) as usize];
        let mut pos = offset;
        while pos < end {
            let index = pos / PAGE;
            let page_end = ((index + 1) * PAGE).min(end);
            let dst = &mut out[(pos - offset) as usize..(page_end - offset) as usize];
            match self.pages.get(&index) {
                Some(page) => {
                    let from = (pos - index * PAGE) as usize;
                    dst.copy_from_slice(&page[from..from + dst.len()]);
                }
                // Bytes past the backing file's end but inside the logical size stay zero.
                None => read_fully(backing, dst, pos)?,
            }
            pos = page_end;
        }
        Ok(out)
    }

    /// Writes `data` at `offset` into the overlay only.
    pub fn write(&mut self, backing: &impl Backing, offset: u64, data: &[u8]) -> io::Result<()> {
        let size = self.size(backing)?;
        let end = offset + data.len() as u64;
        let mut pos = offset;
        while pos < end {
            let index = pos / PAGE;
            let page_end = ((index + 1) * PAGE).min(end);
            let page = match self.pages.entry(index) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(e) => {
                    let mut page = vec![0u8; PAGE as usize].into_boxed_slice();
                    let start = index * PAGE;
                    if start < size {
                        let valid = (size - start).min(PAGE) as usize;
                        read_fully(backing, &mut page[..valid], start)?;
                    }
                    e.insert(page)
                }
            };
            let from = (pos - index * PAGE) as usize;
            let src = &data[(pos - offset) as usize..(page_end - offset) as usize];
            page[from..from + src.len()].copy_from_slice(src);
            pos = page_end;
        }
        self.size = Some(size.max(end));
        Ok(())
    }

    /// Sets the file's length: a metadata change, so it reaches the backing file at once
    /// (the bytes it cuts away are gone, the bytes written before it stay dirty).
    pub fn truncate(&mut self, backing: &impl Backing, len: u64) -> io::Result<()> {
        backing.set_len(len)?;
        let first_gone = len.div_ceil(PAGE);
        self.pages.split_off(&first_gone);
        if let Some(page) = self.pages.get_mut(&(len / PAGE)) {
            page[(len % PAGE) as usize..].fill(0);
        }
        if self.size.is_some() {
            self.size = Some(len);
        }
        Ok(())
    }

    /// Writes every dirty page to the backing file and forgets them: after this the
    /// backing file holds exactly what reads return.
    pub fn flush(&mut self, backing: &impl Backing) -> io::Result<()> {
        let Some(size) = self.size else {
            return Ok(());
        };
        for (index, page) in &self.pages {
            let start = index * PAGE;
            if start < size {
                let valid = (size - start).min(PAGE) as usize;
                backing.write_all_at(&page[..valid], start)?;
            }
        }
        if backing.len()? != size {
            backing.set_len(size)?;
        }
        self.pages.clear();
        self.size = None;
        Ok(())
    }
}

/// Fills `buf` from `offset`, leaving zeros past the end of the backing file.
fn read_fully(backing: &impl Backing, buf: &mut [u8], offset: u64) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        match backing.read_at(&mut buf[done..], offset + done as u64)? {
            0 => break,
            n => done += n,
        }
    }
    buf[done..].fill(0);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    /// A backing file in memory.
    #[derive(Default)]
    struct Mem(RefCell<Vec<u8>>);

    impl Backing for Mem {
        fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
            let data = self.0.borrow();
            let start = (offset as usize).min(data.len());
            let n = buf.len().min(data.len() - start);
            buf[..n].copy_from_slice(&data[start..start + n]);
            Ok(n)
        }
        fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
            let mut data = self.0.borrow_mut();
            let end = offset as usize + buf.len();
            if data.len() < end {
                data.resize(end, 0);
            }
            data[offset as usize..end].copy_from_slice(buf);
            Ok(())
        }
        fn set_len(&self, len: u64) -> io::Result<()> {
            self.0.borrow_mut().resize(len as usize, 0);
            Ok(())
        }
        fn len(&self) -> io::Result<u64> {
            Ok(self.0.borrow().len() as u64)
        }
    }

    fn bytes(n: usize, seed: u8) -> Vec<u8> {
        (0..n)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    #[test]
    fn writes_stay_in_memory_until_flushed() -> io::Result<()> {
        let disk = Mem::default();
        let mut o = Overlay::default();
        let data = bytes(10_000, 1);
        o.write(&disk, 0, &data)?;
        assert_eq!(disk.len()?, 0, "nothing reaches the disk before a flush");
        assert_eq!(o.read(&disk, 0, 20_000)?, data);
        assert_eq!(o.dirty_bytes(), 3 * PAGE);
        o.flush(&disk)?;
        assert!(o.is_clean());
        assert_eq!(*disk.0.borrow(), data);
        assert_eq!(o.read(&disk, 100, 50)?, data[100..150]);
        Ok(())
    }

    #[test]
    fn a_partial_page_write_keeps_the_bytes_around_it() -> io::Result<()> {
        let disk = Mem::default();
        let old = bytes(9000, 2);
        disk.write_all_at(&old, 0)?;
        let mut o = Overlay::default();
        o.write(&disk, 4090, b"0123456789ab")?;
        let mut want = old.clone();
        want[4090..4102].copy_from_slice(b"0123456789ab");
        assert_eq!(o.read(&disk, 0, 9000)?, want);
        assert_eq!(*disk.0.borrow(), old, "the disk is untouched");
        o.flush(&disk)?;
        assert_eq!(*disk.0.borrow(), want);
        Ok(())
    }

    #[test]
    fn a_write_past_the_end_leaves_a_zero_hole() -> io::Result<()> {
        let disk = Mem::default();
        disk.write_all_at(b"abc", 0)?;
        let mut o = Overlay::default();
        o.write(&disk, 10_000, b"xyz")?;
        assert_eq!(o.size(&disk)?, 10_003);
        let read = o.read(&disk, 0, 20_000)?;
        assert_eq!(read.len(), 10_003);
        assert_eq!(&read[..3], b"abc");
        assert!(read[3..10_000].iter().all(|&b| b == 0));
        assert_eq!(&read[10_000..], b"xyz");
        o.flush(&disk)?;
        assert_eq!(*disk.0.borrow(), read);
        Ok(())
    }

    #[test]
    fn truncate_reaches_the_disk_but_unflushed_bytes_below_it_do_not() -> io::Result<()> {
        let disk = Mem::default();
        disk.write_all_at(&bytes(8192, 3), 0)?;
        let mut o = Overlay::default();
        o.write(&disk, 0, &bytes(8192, 4))?;
        o.truncate(&disk, 5000)?;
        assert_eq!(disk.len()?, 5000, "the length change is on disk at once");
        assert_eq!(
            *disk.0.borrow(),
            bytes(8192, 3)[..5000],
            "the old bytes are"
        );
        assert_eq!(o.read(&disk, 0, 9000)?, bytes(8192, 4)[..5000]);
        // Growing again shows zeros, not the cut bytes.
        o.truncate(&disk, 6000)?;
        let read = o.read(&disk, 0, 9000)?;
        assert_eq!(read.len(), 6000);
        assert!(read[5000..].iter().all(|&b| b == 0));
        o.flush(&disk)?;
        assert_eq!(*disk.0.borrow(), read);
        Ok(())
    }

    #[test]
    fn truncate_of_a_clean_file_keeps_it_clean() -> io::Result<()> {
        let disk = Mem::default();
        disk.write_all_at(&bytes(100, 5), 0)?;
        let mut o = Overlay::default();
        o.truncate(&disk, 10 * 1024 * 1024)?;
        assert!(o.is_clean());
        assert_eq!(o.size(&disk)?, 10 * 1024 * 1024);
        Ok(())
    }

    #[test]
    fn dropping_the_overlay_is_the_power_cut() -> io::Result<()> {
        let disk = Mem::default();
        let mut o = Overlay::default();
        o.write(&disk, 0, b"durable")?;
        o.flush(&disk)?;
        o.write(&disk, 7, b" and lost")?;
        drop(o);
        assert_eq!(*disk.0.borrow(), b"durable");
        Ok(())
    }
}
