//! The batching non-blocking log writer.
//!
//! Why not tracing-appender's `non_blocking`: its worker thread sleeps on a channel and is
//! woken for every line, so under load each log line costs the logging thread a futex wake
//! and the machine a context switch, and the sink a write call per line. In the preset bench
//! (2 cores, 32 calls in flight, one line per call) that was the largest single cost of
//! logging. Here a line is appended to a shared buffer under a short lock; the worker is
//! woken only when it went to sleep on an empty buffer (once per burst) or when the buffer
//! passes a high-water mark, and otherwise collects lines for [`LINGER`] before writing them
//! in newline-aligned chunks.
//!
//! Lines are never interleaved or split. When the sink falls so far behind that
//! [`MAX_PENDING`] bytes wait, new lines are dropped rather than stalling an RPC; the drops
//! are counted ([`TelemetryGuard::dropped_lines`](super::TelemetryGuard::dropped_lines)) and
//! reported in the log itself once the writer catches up.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{JoinHandle, Thread};
use std::time::Duration;

/// How long the worker collects lines before writing a batch, while lines keep coming.
pub(crate) const LINGER: Duration = Duration::from_millis(1);
/// Pending bytes that wake the worker early.
const HIGH_WATER: usize = 256 * 1024;
/// Pending bytes beyond which new lines are dropped.
pub(crate) const MAX_PENDING: usize = 32 * 1024 * 1024;

/// How a dropped-lines notice is written.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Notice {
    Json,
    Text,
}

impl Notice {
    fn line(self, dropped: u64) -> String {
        match self {
            Self::Json => format!(
                "{{\"level\":\"WARN\",\"message\":\"{dropped} log lines dropped: the log sink fell behind\",\"target\":\"tonic_blueprint::telemetry\"}}\n"
            ),
            Self::Text => format!(
                " WARN tonic_blueprint::telemetry: {dropped} log lines dropped: the log sink fell behind\n"
            ),
        }
    }
}

struct Shared {
    pending: Mutex<Vec<u8>>,
    /// The worker is parked on an empty buffer and must be woken for the next line.
    sleeping: AtomicBool,
    closed: AtomicBool,
    dropped: AtomicU64,
    dropped_total: AtomicU64,
    worker: Thread,
}

impl Shared {
    fn pending(&self) -> MutexGuard<'_, Vec<u8>> {
        // A panic while holding this lock cannot leave the buffer half-written (extend is
        // the only mutation), so a poisoned lock is still usable.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The [`MakeWriter`](tracing_subscriber::fmt::MakeWriter) handed to the subscriber.
#[derive(Clone)]
pub(crate) struct BatchWriter {
    shared: Arc<Shared>,
}

/// Stops the worker when dropped, after it wrote every line already accepted.
pub(crate) struct Worker {
    shared: Arc<Shared>,
    handle: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("dropped_lines", &self.dropped_lines())
            .finish_non_exhaustive()
    }
}

impl Worker {
    pub(crate) fn dropped_lines(&self) -> u64 {
        self.shared.dropped_total.load(Ordering::Relaxed)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        self.shared.worker.unpark();
        if let Some(handle) = self.handle.take() {
            // The worker does not panic on a failing sink; if it did, there is nothing
            // left to flush.
            let _ = handle.join();
        }
    }
}

/// Starts the worker writing to `sink` in newline-aligned chunks of at most `chunk` bytes
/// (a longer line is written whole).
pub(crate) fn spawn(
    sink: Box<dyn Write + Send>,
    chunk: usize,
    notice: Notice,
) -> std::io::Result<(BatchWriter, Worker)> {
    let (tx, rx) = std::sync::mpsc::channel::<Arc<Shared>>();
    let handle = std::thread::Builder::new()
        .name("blueprint-log-writer".to_owned())
        .spawn(move || {
            if let Ok(shared) = rx.recv() {
                run(&shared, sink, chunk.max(1), notice);
            }
        })?;
    let shared = Arc::new(Shared {
        pending: Mutex::new(Vec::with_capacity(64 * 1024)),
        sleeping: AtomicBool::new(false),
        closed: AtomicBool::new(false),
        dropped: AtomicU64::new(0),
        dropped_total: AtomicU64::new(0),
        worker: handle.thread().clone(),
    });
    // The receiver lives until the worker got it, so this send cannot fail.
    let _ = tx.send(shared.clone());
    Ok((
        BatchWriter {
            shared: shared.clone(),
        },
        Worker {
            shared,
            handle: Some(handle),
        },
    ))
}

fn run(shared: &Shared, mut sink: Box<dyn Write + Send>, chunk: usize, notice: Notice) {
    let mut batch: Vec<u8> = Vec::with_capacity(64 * 1024);
    loop {
        {
            let mut pending = shared.pending();
            std::mem::swap(&mut *pending, &mut batch);
        }
        let dropped = shared.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            batch.extend_from_slice(notice.line(dropped).as_bytes());
        }
        if !batch.is_empty() {
            write_chunks(&mut *sink, &batch, chunk);
            batch.clear();
            if batch.capacity() > 4 * HIGH_WATER {
                batch.shrink_to(64 * 1024);
            }
            // Collect the next batch; a full buffer or shutdown wakes us early.
            std::thread::park_timeout(LINGER);
            continue;
        }
        if shared.closed.load(Ordering::SeqCst) {
            let _ = sink.flush();
            return;
        }
        shared.sleeping.store(true, Ordering::SeqCst);
        // A line appended before `sleeping` was set saw it unset and did not wake us.
        if !shared.pending().is_empty() || shared.closed.load(Ordering::SeqCst) {
            shared.sleeping.store(false, Ordering::SeqCst);
            continue;
        }
        std::thread::park();
        shared.sleeping.store(false, Ordering::SeqCst);
    }
}

/// Writes `batch` in chunks of whole lines of at most `chunk` bytes each, so a size-rotated
/// file never overshoots its limit by more than one chunk. A failing sink loses the lines it
/// refused; there is nowhere left to report that.
fn write_chunks(sink: &mut dyn Write, batch: &[u8], chunk: usize) {
    let mut rest = batch;
    while !rest.is_empty() {
        let end = if rest.len() <= chunk {
            rest.len()
        } else {
            match rest[..chunk].iter().rposition(|&b| b == b'\n') {
                Some(newline) => newline + 1,
                // One line longer than a chunk: write it whole.
                None => rest
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(rest.len(), |newline| newline + 1),
            }
        };
        let _ = sink.write_all(&rest[..end]);
        rest = &rest[end..];
    }
    let _ = sink.flush();
}

/// Written through a shared reference: the subscriber writes each line without cloning the
/// writer (an `Arc` count that every core would otherwise bump twice a line).
impl Write for &BatchWriter {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let shared = &*self.shared;
        let len = {
            let mut pending = shared.pending();
            if pending.len() + line.len() > MAX_PENDING {
                drop(pending);
                shared.dropped.fetch_add(1, Ordering::Relaxed);
                shared.dropped_total.fetch_add(1, Ordering::Relaxed);
                return Ok(line.len());
            }
            pending.extend_from_slice(line);
            pending.len()
        };
        if shared.sleeping.load(Ordering::SeqCst) {
            if shared.sleeping.swap(false, Ordering::SeqCst) {
                shared.worker.unpark();
            }
        } else if len >= HIGH_WATER {
            shared.worker.unpark();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl super::json::LineSink for BatchWriter {
    fn write_line(&self, line: &[u8]) {
        // Never fails: a line that does not fit is counted as dropped.
        let _ = (&*self).write(line);
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for BatchWriter {
    type Writer = &'a BatchWriter;

    fn make_writer(&'a self) -> Self::Writer {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink that records each write call.
    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<Vec<u8>>>>);

    impl Write for Recorder {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(buf.to_vec());
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_arrives_whole_and_in_order_from_many_threads() {
        let recorder = Recorder::default();
        let (writer, worker) =
            spawn(Box::new(recorder.clone()), 1024, Notice::Json).expect("worker");
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let writer = writer.clone();
                std::thread::spawn(move || {
                    for i in 0..5_000 {
                        (&writer)
                            .write_all(format!("thread {t} line {i}\n").as_bytes())
                            .expect("write");
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("thread");
        }
        drop(worker);
        let writes = recorder.0.lock().expect("lock").clone();
        assert!(writes.iter().all(|w| w.len() <= 1024 && w.ends_with(b"\n")));
        assert!(
            writes.len() < 20_000,
            "lines were batched: {} writes",
            writes.len()
        );
        let text = String::from_utf8(writes.concat()).expect("utf-8");
        let mut next = [0usize; 4];
        for line in text.lines() {
            let mut words = line.split(' ');
            let t: usize = words.nth(1).and_then(|w| w.parse().ok()).expect("thread");
            let i: usize = words.nth(1).and_then(|w| w.parse().ok()).expect("line");
            assert_eq!(i, next[t], "thread {t} out of order");
            next[t] += 1;
        }
        assert_eq!(next, [5_000; 4]);
    }

    #[test]
    fn a_line_longer_than_a_chunk_is_written_whole() {
        let recorder = Recorder::default();
        let mut sink = recorder.clone();
        write_chunks(&mut sink, b"ab\ncdefgh\nij\n", 4);
        let writes = recorder.0.lock().expect("lock").clone();
        assert_eq!(
            writes,
            [b"ab\n".to_vec(), b"cdefgh\n".to_vec(), b"ij\n".to_vec()]
        );
    }

    #[test]
    fn a_writer_behind_by_the_maximum_drops_and_reports() {
        /// A sink that blocks until released.
        struct Gate(Arc<Mutex<()>>, Recorder);
        impl Write for Gate {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                let _open = self.0.lock().unwrap_or_else(PoisonError::into_inner);
                self.1.write(buf)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let gate = Arc::new(Mutex::new(()));
        let closed = gate.lock().expect("lock");
        let recorder = Recorder::default();
        let (writer, worker) = spawn(
            Box::new(Gate(gate.clone(), recorder.clone())),
            usize::MAX,
            Notice::Json,
        )
        .expect("worker");
        // The first line is taken by the worker, which then blocks in the sink.
        (&writer).write_all(b"first\n").expect("write");
        while !writer.shared.pending().is_empty() {
            std::thread::yield_now();
        }
        let mut line = vec![b'x'; 1024 * 1024 - 1];
        line.push(b'\n');
        for _ in 0..40 {
            (&writer).write_all(&line).expect("write");
        }
        assert!(worker.dropped_lines() > 0);
        let dropped = worker.dropped_lines();
        drop(closed);
        drop(worker);
        let text = String::from_utf8(recorder.0.lock().expect("lock").concat()).expect("utf-8");
        assert!(text.starts_with("first\n"));
        assert!(
            text.contains(&format!("\"{dropped} log lines dropped")),
            "the notice names the count"
        );
    }
}
