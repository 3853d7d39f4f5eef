//! The telemetry initialiser writing JSON to rotated, compressed files. Its own test binary:
//! it installs the global subscriber.

use std::io::Read;
use tonic_blueprint::telemetry::{self, FileOutput, LogFormat, TelemetryConfig};

#[test]
fn json_lines_go_to_size_rotated_compressed_files() {
    let dir = tempfile::tempdir().expect("temp dir");
    let guard = telemetry::init(&TelemetryConfig {
        filter: "info".to_owned(),
        format: LogFormat::Json,
        file: Some(FileOutput {
            max_bytes: 4096,
            max_files: 3,
            ..FileOutput::new(dir.path())
        }),
    })
    .expect("init");
    for i in 0..400 {
        tracing::info!(
            line = i,
            padding = "some text to fill the file faster",
            "entry"
        );
    }
    tracing::debug!("filtered out");
    drop(guard); // flushes the non-blocking writer

    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    // The current file and at most three rotated ones, all but the newest compressed.
    assert!(names.contains(&"service.log".to_owned()), "{names:?}");
    assert!(names.len() <= 4, "{names:?}");
    assert!(names.iter().any(|n| n.ends_with(".gz")), "{names:?}");
    assert!(names.contains(&"service.log.1".to_owned()), "{names:?}");

    let mut current = String::new();
    std::fs::File::open(dir.path().join("service.log"))
        .expect("open")
        .read_to_string(&mut current)
        .expect("read");
    assert!(current.len() < 8192);
    let last: serde_json::Value =
        serde_json::from_str(current.lines().last().expect("a line")).expect("JSON");
    assert_eq!(last["line"], 399);
    assert_eq!(last["level"], "INFO");
    assert!(!current.contains("filtered out"));
}
