//! [`FileFlash`]: a flash area on a regular file or a block device.
//!
//! A file forgives what raw flash does not: any byte can be rewritten at any time, so it
//! overwrites in place ([`Flash::overwrites_in_place`]) and the ring programs over stale bytes
//! instead of erasing a slot before it reuses it. The rest of the flash semantics hold through
//! the checks here: programs are aligned to the program unit, erases cover whole blocks, and
//! nothing is durable before [`Flash::sync`] returns `Ok`.
//!
//! Invariants of an open `FileFlash`:
//! - a regular backing file is exactly `capacity_bytes` long (a block device may be longer; only
//!   its first `capacity_bytes` are ever touched), so every in-bounds access hits real bytes;
//! - the value holds an advisory lock on the file for its whole life: exclusive when writable,
//!   shared when read-only. Two brokers on one ring would corrupt it, and fsck reading a ring
//!   that a broker is writing would report damage that is not there.

use std::fmt;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{ERASED_BYTE, Flash, FlashError, Geometry, check_aligned, check_bounds};

/// The largest single write issued while creating or erasing, so memory use stays bounded
/// whatever the capacity or the erase block size.
const CHUNK_BYTES: u64 = 1 << 20;

/// A flash area backed by a file (see the module docs for its invariants).
pub struct FileFlash {
    file: File,
    geometry: Geometry,
    /// `min(erase_block, 1 MiB)` bytes of [`ERASED_BYTE`], allocated once at open so `erase`
    /// never allocates; empty when read-only.
    erased: Box<[u8]>,
    read_only: bool,
    /// This handle created the file (every byte erased and synced before it was renamed into
    /// place) and has not told a ring yet: see [`Flash::take_created_erased`].
    created: AtomicBool,
}

impl FileFlash {
    /// Opens the ring file at `path` for reading and writing, creating it if it does not exist,
    /// and locks it exclusively. Returns `true` alongside when the file was created.
    ///
    /// A new file is built as `<name>.tmp` in the same directory, filled with [`ERASED_BYTE`],
    /// synced, renamed to `path`, and the directory is synced: a crash during creation leaves
    /// either no ring file or a complete, fully erased one, never a short one.
    pub fn open_or_create(
        path: &Path,
        geometry: Geometry,
    ) -> Result<(FileFlash, bool), FlashError> {
        match OpenOptions::new().read(true).write(true).open(path) {
            Ok(file) => Ok((FileFlash::adopt(file, path, geometry, false)?, false)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => create(path, geometry),
            Err(e) => Err(path_err("open", path, e)),
        }
    }

    /// Opens an existing ring file without creating it, for inspection (fsck). It takes a shared
    /// lock, so it fails with [`FlashError::Locked`] while a broker holds the ring; `program`
    /// and `erase` fail with [`FlashError::ReadOnly`].
    pub fn open_read_only(path: &Path, geometry: Geometry) -> Result<FileFlash, FlashError> {
        let file = File::open(path).map_err(|e| path_err("open", path, e))?;
        FileFlash::adopt(file, path, geometry, true)
    }

    /// Locks an opened existing file and checks its size.
    fn adopt(
        file: File,
        path: &Path,
        geometry: Geometry,
        read_only: bool,
    ) -> Result<FileFlash, FlashError> {
        lock(&file, path, read_only)?;
        let expected_bytes = geometry.capacity_bytes();
        let meta = file.metadata().map_err(|e| path_err("stat", path, e))?;
        if meta.file_type().is_file() {
            if meta.len() != expected_bytes {
                return Err(FlashError::SizeMismatch {
                    path: path.display().to_string(),
                    expected_bytes,
                    found_bytes: meta.len(),
                });
            }
        } else if meta.file_type().is_block_device() {
            let found_bytes = (&file)
                .seek(SeekFrom::End(0))
                .map_err(|e| path_err("seek", path, e))?;
            if found_bytes < expected_bytes {
                return Err(FlashError::DeviceTooSmall {
                    path: path.display().to_string(),
                    needed_bytes: expected_bytes,
                    found_bytes,
                });
            }
        } else {
            let e = io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file or a block device",
            );
            return Err(path_err("open", path, e));
        }
        Ok(FileFlash::new(file, geometry, read_only))
    }

    fn new(file: File, geometry: Geometry, read_only: bool) -> FileFlash {
        let len = if read_only {
            0
        } else {
            geometry.erase_block_bytes().min(CHUNK_BYTES) as usize
        };
        FileFlash {
            file,
            geometry,
            erased: vec![ERASED_BYTE; len].into_boxed_slice(),
            read_only,
            created: AtomicBool::new(false),
        }
    }

    fn writable(&self) -> Result<(), FlashError> {
        if self.read_only {
            return Err(FlashError::ReadOnly);
        }
        Ok(())
    }
}

/// Creates the ring file (see [`FileFlash::open_or_create`]).
fn create(path: &Path, geometry: Geometry) -> Result<(FileFlash, bool), FlashError> {
    let Some(name) = path.file_name() else {
        let e = io::Error::new(io::ErrorKind::InvalidInput, "does not name a file");
        return Err(path_err("create", path, e));
    };
    let mut tmp_name = name.to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    // Not truncated at open: a concurrent creator may be filling it. Once we hold its lock it is
    // ours (a leftover of a crashed creation, or new), and the length is reset below.
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&tmp)
        .map_err(|e| path_err("create", &tmp, e))?;
    lock(&file, &tmp, false)?;
    // A concurrent creator may have renamed its file into place before we opened `tmp`; renaming
    // ours over it would pull the ring from under that process. Open theirs instead (which fails
    // with `Locked` while it runs). The stale `tmp` is left for the next creation to reuse.
    if path.try_exists().map_err(|e| path_err("stat", path, e))? {
        drop(file);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| path_err("open", path, e))?;
        return Ok((FileFlash::adopt(file, path, geometry, false)?, false));
    }
    file.set_len(0).map_err(|e| path_err("create", &tmp, e))?;
    let capacity = geometry.capacity_bytes();
    let chunk = vec![ERASED_BYTE; capacity.min(CHUNK_BYTES) as usize];
    let mut at = 0;
    while at < capacity {
        let n = (capacity - at).min(CHUNK_BYTES) as usize;
        file.write_all_at(&chunk[..n], at)
            .map_err(|e| io_err("create", at, e))?;
        at += n as u64;
    }
    file.sync_data().map_err(|e| path_err("sync", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| path_err("rename", &tmp, e))?;
    // The rename is durable only once the directory entry is.
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| path_err("sync directory", dir, e))?;
    // The lock taken on `tmp` moved with the file: it now guards `path`.
    let flash = FileFlash::new(file, geometry, false);
    flash.created.store(true, Ordering::Relaxed);
    Ok((flash, true))
}

/// Takes the advisory lock (shared or exclusive) without waiting.
fn lock(file: &File, path: &Path, shared: bool) -> Result<(), FlashError> {
    let locked = if shared {
        file.try_lock_shared()
    } else {
        file.try_lock()
    };
    match locked {
        Ok(()) => Ok(()),
        Err(TryLockError::WouldBlock) => Err(FlashError::Locked {
            path: path.display().to_string(),
        }),
        Err(TryLockError::Error(e)) => Err(path_err("lock", path, e)),
    }
}

fn io_err(op: &'static str, offset: u64, source: io::Error) -> FlashError {
    FlashError::Io { op, offset, source }
}

/// An open-time error: the path goes into the message (the kind is kept) so it is not lost.
fn path_err(op: &'static str, path: &Path, e: io::Error) -> FlashError {
    let source = io::Error::new(e.kind(), format!("{}: {e}", path.display()));
    io_err(op, 0, source)
}

impl Flash for FileFlash {
    fn geometry(&self) -> Geometry {
        self.geometry
    }

    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), FlashError> {
        check_bounds(offset, buf.len() as u64, self.geometry.capacity_bytes())?;
        self.file
            .read_exact_at(buf, offset)
            .map_err(|e| io_err("read", offset, e))
    }

    fn program(&self, offset: u64, data: &[u8]) -> Result<(), FlashError> {
        self.writable()?;
        let len = data.len() as u64;
        check_bounds(offset, len, self.geometry.capacity_bytes())?;
        check_aligned("program", offset, len, self.geometry.program_unit_bytes())?;
        self.file
            .write_all_at(data, offset)
            .map_err(|e| io_err("program", offset, e))
    }

    fn erase(&self, block_offset: u64) -> Result<(), FlashError> {
        self.writable()?;
        let block = self.geometry.erase_block_bytes();
        check_bounds(block_offset, block, self.geometry.capacity_bytes())?;
        check_aligned("erase", block_offset, block, block)?;
        let end = block_offset + block;
        let mut at = block_offset;
        while at < end {
            let n = (end - at).min(self.erased.len() as u64) as usize;
            self.file
                .write_all_at(&self.erased[..n], at)
                .map_err(|e| io_err("erase", at, e))?;
            at += n as u64;
        }
        Ok(())
    }

    fn take_created_erased(&self) -> bool {
        self.created.swap(false, Ordering::Relaxed)
    }

    /// A file or a block device (behind its FTL) overwrites in place.
    fn overwrites_in_place(&self) -> bool {
        true
    }

    fn sync(&self) -> Result<(), FlashError> {
        if self.read_only {
            return Ok(()); // Nothing was written through this handle.
        }
        self.file.sync_data().map_err(|e| io_err("sync", 0, e))
    }
}

impl fmt::Debug for FileFlash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileFlash")
            .field("file", &self.file)
            .field("geometry", &self.geometry)
            .field("read_only", &self.read_only)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            static NEXT: AtomicU32 = AtomicU32::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir().join(format!(
                "outpost-fileflash-{}-{tag}-{n}",
                std::process::id()
            ));
            fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        fn ring(&self) -> PathBuf {
            self.0.join("ring.bin")
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn small() -> Geometry {
        Geometry::new(4096, 16, 4 * 4096).unwrap()
    }

    /// Blocks of 1.5 MiB over 3 blocks: creation and erase both need several (and partial)
    /// chunks.
    fn large() -> Geometry {
        Geometry::new(3 << 19, 16, 3 * (3 << 19)).unwrap()
    }

    #[test]
    fn create_fills_with_erased_bytes() {
        let dir = TempDir::new("create");
        let (flash, created) = FileFlash::open_or_create(&dir.ring(), large()).unwrap();
        assert!(created);
        assert!(flash.take_created_erased());
        assert!(!flash.take_created_erased(), "told once only");
        let bytes = fs::read(dir.ring()).unwrap();
        assert_eq!(bytes.len() as u64, large().capacity_bytes());
        assert!(bytes.iter().all(|&b| b == ERASED_BYTE));
        assert!(!dir.0.join("ring.bin.tmp").exists());
        let mut buf = [0; 64];
        flash.read(large().capacity_bytes() - 64, &mut buf).unwrap();
        assert_eq!(buf, [ERASED_BYTE; 64]);
    }

    #[test]
    fn reopen_keeps_contents() {
        let dir = TempDir::new("reopen");
        let (flash, _) = FileFlash::open_or_create(&dir.ring(), small()).unwrap();
        flash.program(4096, &[7; 32]).unwrap();
        flash.sync().unwrap();
        drop(flash);
        let (flash, created) = FileFlash::open_or_create(&dir.ring(), small()).unwrap();
        assert!(!created);
        assert!(
            !flash.take_created_erased(),
            "a reopened file is not known erased"
        );
        let mut buf = [0; 48];
        flash.read(4096, &mut buf).unwrap();
        assert_eq!(buf[..32], [7; 32]);
        assert_eq!(buf[32..], [ERASED_BYTE; 16]);
    }

    #[test]
    fn size_mismatch_is_refused() {
        let dir = TempDir::new("size");
        fs::write(dir.ring(), [0; 100]).unwrap();
        let err = FileFlash::open_or_create(&dir.ring(), small()).unwrap_err();
        assert!(matches!(
            err,
            FlashError::SizeMismatch {
                expected_bytes: 16384,
                found_bytes: 100,
                ..
            }
        ));
        let msg = err.to_string();
        assert!(msg.contains("100") && msg.contains("16384"), "{msg}");
        let err = FileFlash::open_read_only(&dir.ring(), small()).unwrap_err();
        assert!(matches!(err, FlashError::SizeMismatch { .. }));
    }

    #[test]
    fn locked_file_is_refused() {
        let dir = TempDir::new("lock");
        let (flash, _) = FileFlash::open_or_create(&dir.ring(), small()).unwrap();
        let err = FileFlash::open_or_create(&dir.ring(), small()).unwrap_err();
        assert!(matches!(err, FlashError::Locked { .. }));
        assert!(
            err.to_string()
                .contains("in use by another outpost process")
        );
        let err = FileFlash::open_read_only(&dir.ring(), small()).unwrap_err();
        assert!(matches!(err, FlashError::Locked { .. }));
        drop(flash);
        // Readers share; a writer is refused while any reader holds the file.
        let reader = FileFlash::open_read_only(&dir.ring(), small()).unwrap();
        let _second_reader = FileFlash::open_read_only(&dir.ring(), small()).unwrap();
        let err = FileFlash::open_or_create(&dir.ring(), small()).unwrap_err();
        assert!(matches!(err, FlashError::Locked { .. }));
        drop(reader);
    }

    #[test]
    fn unaligned_access_is_refused() {
        let dir = TempDir::new("align");
        let (flash, _) = FileFlash::open_or_create(&dir.ring(), small()).unwrap();
        let err = flash.program(8, &[0; 16]).unwrap_err();
        assert!(matches!(
            err,
            FlashError::Unaligned {
                op: "program",
                offset: 8,
                ..
            }
        ));
        let err = flash.program(16, &[0; 17]).unwrap_err();
        assert!(matches!(err, FlashError::Unaligned { len: 17, .. }));
        let err = flash.erase(16).unwrap_err();
        assert!(matches!(err, FlashError::Unaligned { op: "erase", .. }));
    }

    #[test]
    fn out_of_bounds_is_refused() {
        let dir = TempDir::new("bounds");
        let (flash, _) = FileFlash::open_or_create(&dir.ring(), small()).unwrap();
        let end = small().capacity_bytes();
        let oob = |r: Result<(), FlashError>| matches!(r, Err(FlashError::OutOfBounds { .. }));
        assert!(oob(flash.read(end - 1, &mut [0; 2])));
        assert!(oob(flash.read(u64::MAX, &mut [0; 2])));
        assert!(oob(flash.program(end, &[0; 16])));
        assert!(oob(flash.erase(end)));
    }

    #[test]
    fn program_read_round_trip() {
        let dir = TempDir::new("roundtrip");
        let (flash, _) = FileFlash::open_or_create(&dir.ring(), small()).unwrap();
        let data: Vec<u8> = (0..=255).collect();
        flash.program(8192 + 32, &data).unwrap();
        let mut buf = vec![0; 255];
        flash.read(8192 + 33, &mut buf).unwrap(); // reads need no alignment
        assert_eq!(buf, data[1..]);
    }

    #[test]
    fn erase_restores_erased_bytes() {
        let dir = TempDir::new("erase");
        let g = large();
        let block = g.erase_block_bytes();
        let (flash, _) = FileFlash::open_or_create(&dir.ring(), g).unwrap();
        flash.program(0, &vec![1; (2 * block) as usize]).unwrap();
        flash.erase(block).unwrap();
        let mut buf = vec![0; (2 * block) as usize];
        flash.read(0, &mut buf).unwrap();
        let (first, second) = buf.split_at(block as usize);
        assert!(first.iter().all(|&b| b == 1));
        assert!(second.iter().all(|&b| b == ERASED_BYTE));
    }

    #[test]
    fn read_only_refuses_writes() {
        let dir = TempDir::new("readonly");
        let missing = FileFlash::open_read_only(&dir.ring(), small()).unwrap_err();
        assert!(matches!(missing, FlashError::Io { op: "open", .. }));
        assert!(!dir.ring().exists());
        drop(FileFlash::open_or_create(&dir.ring(), small()).unwrap());
        let flash = FileFlash::open_read_only(&dir.ring(), small()).unwrap();
        assert!(matches!(
            flash.program(0, &[0; 16]),
            Err(FlashError::ReadOnly)
        ));
        assert!(matches!(flash.erase(0), Err(FlashError::ReadOnly)));
        let mut buf = [0; 16];
        flash.read(0, &mut buf).unwrap();
        assert_eq!(buf, [ERASED_BYTE; 16]);
        flash.sync().unwrap();
    }
}
