//! Log files rotated by size, the older ones gzip-compressed on a thread of their own.
//!
//! Why not file-rotate (used before): it compresses a rotated file inside the `write` that
//! rotates, on the one thread that writes the log. A 100 MB file takes seconds to gzip, and
//! meanwhile no line reaches the disk: at 36,000 calls a second (the server-bound bench,
//! one info line a call) the log writer's 32 MB of pending lines overflowed during each
//! rotation and 23,361 of 387,528 lines were dropped. Here the writing thread only renames
//! (microseconds) and the compression runs beside it, so rotation never holds up a line.
//!
//! Compression is at gzip's fast level: JSON log lines still shrink about ten times, for a
//! fraction of the default level's CPU, which on a busy server is taken from the calls (in
//! the preset bench, at the default level the compressing thread took a quarter of the
//! server's one core during each rotation).
//!
//! The names are file-rotate's `AppendCount` scheme, so existing directories carry on:
//! `name` is written, `name.1` is the newest rotated file, `name.2.gz` the next, and so on;
//! at most `max_files` rotated files are kept, the oldest deleted. With compression on,
//! every rotated file but the newest is compressed (`name.2.gz` onwards). A file is
//! compressed into a hidden temporary and renamed over once complete, so a crash leaves
//! either the plain file or the compressed one, never half of one; leftovers are cleaned up
//! at the next start.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

/// One rotated file, newest first in [`Archive::entries`]: position `i` is `name.{i+1}`.
struct Entry {
    id: u64,
    compressed: bool,
    queued: bool,
}

/// The rotated files. The writing thread shifts them (under the lock) when it rotates; the
/// compressing thread looks an entry's position up by id, so a rename in between does not
/// lose track of it.
struct Archive {
    base: PathBuf,
    entries: VecDeque<Entry>,
    max_files: usize,
    next_id: u64,
}

/// `base.{number}`, with `.gz` when compressed.
fn numbered(base: &Path, number: u64, compressed: bool) -> PathBuf {
    let mut name = base.as_os_str().to_owned();
    name.push(format!(".{number}"));
    if compressed {
        name.push(".gz");
    }
    PathBuf::from(name)
}

impl Archive {
    fn path(&self, position: usize, compressed: bool) -> PathBuf {
        numbered(&self.base, position as u64 + 1, compressed)
    }

    fn position(&self, id: u64) -> Option<usize> {
        self.entries.iter().position(|entry| entry.id == id)
    }

    fn temporary(&self, id: u64) -> PathBuf {
        let name = self
            .base
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.base.with_file_name(format!(".{name}.{id}.gz.tmp"))
    }

    fn entry(&mut self, compressed: bool) -> Entry {
        let id = self.next_id;
        self.next_id += 1;
        Entry {
            id,
            compressed,
            queued: false,
        }
    }

    /// A file just rotated: the newest.
    fn push(&mut self) {
        let entry = self.entry(false);
        self.entries.push_front(entry);
    }

    /// Ids of the files to compress now: every rotated file but the newest.
    fn due(&mut self) -> Vec<u64> {
        self.entries
            .iter_mut()
            .skip(1)
            .filter(|entry| !entry.compressed && !entry.queued)
            .map(|entry| {
                entry.queued = true;
                entry.id
            })
            .collect()
    }
}

fn lock(archive: &Mutex<Archive>) -> MutexGuard<'_, Archive> {
    // Every mutation leaves the list matching the files; a poisoned lock is still usable.
    archive.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The sink: the current file, rotated once it passes `max_bytes`.
pub(crate) struct RotatingFile {
    base: PathBuf,
    file: Option<File>,
    written: u64,
    max_bytes: u64,
    archive: Arc<Mutex<Archive>>,
    compress: Option<Sender<u64>>,
    compressor: Option<JoinHandle<()>>,
}

impl RotatingFile {
    /// Writes `base`, keeping `max_files` rotated files, compressed but the newest when
    /// `compress`. Rotated files already there (from an earlier run) are taken over.
    pub(crate) fn new(
        base: PathBuf,
        max_bytes: usize,
        max_files: usize,
        compress: bool,
    ) -> io::Result<Self> {
        let archive = Arc::new(Mutex::new(take_over(&base, max_files.max(1))?));
        let (sender, compressor) = if compress {
            let (tx, rx) = channel::<u64>();
            let shared = Arc::clone(&archive);
            let handle = std::thread::Builder::new()
                .name("blueprint-log-gzip".to_owned())
                .spawn(move || {
                    for id in rx {
                        compress_one(&shared, id);
                    }
                })?;
            for id in lock(&archive).due() {
                let _ = tx.send(id);
            }
            (Some(tx), Some(handle))
        } else {
            (None, None)
        };
        let written = std::fs::metadata(&base).map_or(0, |m| m.len());
        Ok(Self {
            base,
            file: None,
            written,
            max_bytes: max_bytes.max(1) as u64,
            archive,
            compress: sender,
            compressor,
        })
    }

    fn rotate(&mut self) -> io::Result<()> {
        if let Some(mut file) = self.file.take() {
            file.flush()?;
        }
        let mut archive = lock(&self.archive);
        while archive.entries.len() >= archive.max_files {
            if let Some(oldest) = archive.entries.pop_back() {
                let path = archive.path(archive.entries.len(), oldest.compressed);
                remove_if_there(&path)?;
            }
        }
        for position in (0..archive.entries.len()).rev() {
            let compressed = archive.entries[position].compressed;
            std::fs::rename(
                archive.path(position, compressed),
                archive.path(position + 1, compressed),
            )?;
        }
        std::fs::rename(&self.base, archive.path(0, false))?;
        archive.push();
        self.written = 0;
        if let Some(tx) = &self.compress {
            for id in archive.due() {
                let _ = tx.send(id);
            }
        }
        Ok(())
    }
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let file = match &mut self.file {
            Some(file) => file,
            None => self.file.insert(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.base)?,
            ),
        };
        let n = file.write(buf)?;
        self.written += n as u64;
        if self.written >= self.max_bytes {
            self.rotate()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.file {
            Some(file) => file.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for RotatingFile {
    fn drop(&mut self) {
        // The compressions already queued finish before the log is closed.
        self.compress = None;
        if let Some(handle) = self.compressor.take() {
            let _ = handle.join();
        }
    }
}

fn remove_if_there(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The rotated files already in the directory, renumbered from 1 in their order, the
/// oldest beyond `max_files` deleted, half-written compressions removed.
fn take_over(base: &Path, max_files: usize) -> io::Result<Archive> {
    let dir = base
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = base
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut found: Vec<(u64, bool)> = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let file_name = entry?.file_name().to_string_lossy().into_owned();
        if file_name.starts_with(&format!(".{name}.")) && file_name.ends_with(".gz.tmp") {
            remove_if_there(&dir.join(&file_name))?;
            continue;
        }
        let Some(suffix) = file_name
            .strip_prefix(name.as_str())
            .and_then(|s| s.strip_prefix('.'))
        else {
            continue;
        };
        let (number, compressed) = match suffix.strip_suffix(".gz") {
            Some(number) => (number, true),
            None => (suffix, false),
        };
        if let Ok(number) = number.parse::<u64>() {
            found.push((number, compressed));
        }
    }
    found.sort_unstable();
    // A file both plain and compressed: the compression completed, its clean-up did not.
    found.dedup_by(|later, earlier| {
        if later.0 != earlier.0 {
            return false;
        }
        let _ = std::fs::remove_file(numbered(base, earlier.0, false));
        earlier.1 = true;
        true
    });
    let mut archive = Archive {
        base: base.to_owned(),
        entries: VecDeque::new(),
        max_files,
        next_id: 0,
    };
    for (position, (number, compressed)) in found.into_iter().enumerate() {
        let path = numbered(base, number, compressed);
        if position >= max_files {
            remove_if_there(&path)?;
            continue;
        }
        let target = archive.path(position, compressed);
        if path != target {
            std::fs::rename(&path, &target)?;
        }
        let entry = archive.entry(compressed);
        archive.entries.push_back(entry);
    }
    Ok(archive)
}

fn gzip(source: File, target: &Path) -> io::Result<()> {
    let mut encoder =
        flate2::write::GzEncoder::new(File::create(target)?, flate2::Compression::fast());
    io::copy(&mut io::BufReader::new(source), &mut encoder)?;
    encoder.finish()?.sync_all()
}

/// Compresses the rotated file `id` into a temporary, then, under the lock, moves it to the
/// file's current name. A failure leaves the plain file (and nothing half-written).
fn compress_one(archive: &Mutex<Archive>, id: u64) {
    let (source, temporary) = {
        let archive = lock(archive);
        let Some(position) = archive.position(id) else {
            return;
        };
        // Opened under the lock: the descriptor follows the file through later renames.
        match File::open(archive.path(position, false)) {
            Ok(file) => (file, archive.temporary(id)),
            Err(_) => return,
        }
    };
    let done = gzip(source, &temporary);
    let mut archive = lock(archive);
    let position = match (done, archive.position(id)) {
        (Ok(()), Some(position)) => position,
        // Pruned meanwhile, or failed: only the temporary goes.
        _ => {
            let _ = std::fs::remove_file(&temporary);
            if let Some(position) = archive.position(id) {
                archive.entries[position].queued = false;
            }
            return;
        }
    };
    if std::fs::rename(&temporary, archive.path(position, true)).is_ok() {
        let _ = std::fs::remove_file(archive.path(position, false));
        archive.entries[position].compressed = true;
    } else {
        let _ = std::fs::remove_file(&temporary);
        archive.entries[position].queued = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn read_all(path: &Path) -> String {
        let mut text = String::new();
        let file = File::open(path).expect("open");
        if path.extension().is_some_and(|e| e == "gz") {
            flate2::read::GzDecoder::new(file)
                .read_to_string(&mut text)
                .expect("gunzip");
        } else {
            io::BufReader::new(file)
                .read_to_string(&mut text)
                .expect("read");
        }
        text
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("read dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn rotated_files_keep_every_line_in_order_the_older_ones_compressed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let base = dir.path().join("service.log");
        let mut sink = RotatingFile::new(base.clone(), 1000, 3, true).expect("sink");
        for i in 0..200 {
            sink.write_all(format!("line {i:04} padding padding\n").as_bytes())
                .expect("write");
        }
        drop(sink);

        assert_eq!(
            names(dir.path()),
            [
                "service.log",
                "service.log.1",
                "service.log.2.gz",
                "service.log.3.gz"
            ]
        );
        let kept: String = [
            "service.log.3.gz",
            "service.log.2.gz",
            "service.log.1",
            "service.log",
        ]
        .iter()
        .map(|name| read_all(&dir.path().join(name)))
        .collect();
        let numbers: Vec<u32> = kept
            .lines()
            .map(|l| l[5..9].parse().expect("number"))
            .collect();
        assert_eq!(numbers.last(), Some(&199));
        assert!(
            numbers.windows(2).all(|w| w[1] == w[0] + 1),
            "a line missing or out of order"
        );
        assert!(
            numbers.len() > 3 * 1000 / 28,
            "{} lines kept",
            numbers.len()
        );
    }

    #[test]
    fn a_restart_takes_over_the_files_of_the_last_run() {
        let dir = tempfile::tempdir().expect("temp dir");
        let base = dir.path().join("service.log");
        std::fs::write(&base, "current\n").expect("write");
        std::fs::write(dir.path().join("service.log.1"), "one\n").expect("write");
        // A compression cut short by a crash, and a file left plain.
        std::fs::write(dir.path().join(".service.log.7.gz.tmp"), "half").expect("write");
        std::fs::write(dir.path().join("service.log.4"), "four\n").expect("write");

        let mut sink = RotatingFile::new(base.clone(), 1 << 20, 5, true).expect("sink");
        sink.write_all(b"more\n").expect("write");
        drop(sink);

        assert_eq!(
            names(dir.path()),
            ["service.log", "service.log.1", "service.log.2.gz"]
        );
        assert_eq!(read_all(&base), "current\nmore\n");
        assert_eq!(read_all(&dir.path().join("service.log.1")), "one\n");
        assert_eq!(read_all(&dir.path().join("service.log.2.gz")), "four\n");
    }

    #[test]
    fn without_compression_the_oldest_files_are_deleted() {
        let dir = tempfile::tempdir().expect("temp dir");
        let base = dir.path().join("app.log");
        let mut sink = RotatingFile::new(base.clone(), 100, 2, false).expect("sink");
        for i in 0..50 {
            sink.write_all(format!("{i:02} ........\n").as_bytes())
                .expect("write");
        }
        drop(sink);
        assert_eq!(names(dir.path()), ["app.log", "app.log.1", "app.log.2"]);
        assert!(read_all(&dir.path().join("app.log.2")).starts_with("27 "));
    }
}
