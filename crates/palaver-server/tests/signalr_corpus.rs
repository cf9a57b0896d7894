//! The SignalR fuzz corpus (`fuzz/corpus/`, issue 17) as a stable regression test: every
//! committed input goes through the same calls and invariants as the cargo-fuzz targets
//! `signalr_records` and `signalr_hub`, whose checks this includes from
//! `fuzz/src/lib.rs`, so CI keeps checking them without nightly or libFuzzer.

#[path = "../../../fuzz/src/lib.rs"]
mod checks;

use std::path::{Path, PathBuf};

/// The files of `fuzz/corpus/<target>`.
fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a corpus entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

/// Runs `check` on every file of `target`'s corpus, naming the file if it panics.
fn run(target: &str, check: fn(&[u8])) -> usize {
    let files = corpus(target);
    for file in &files {
        let data = std::fs::read(file).expect("a readable corpus file");
        if std::panic::catch_unwind(|| check(&data)).is_err() {
            panic!("{target} fails on {}", file.display());
        }
    }
    files.len()
}

#[test]
fn the_record_splitter_and_parsers_hold_on_the_records_corpus() {
    let files = run("signalr_records", checks::records);
    assert!(
        files >= 10,
        "only {files} files in fuzz/corpus/signalr_records"
    );
}

#[test]
fn the_hub_method_parsers_hold_on_the_hub_corpus() {
    let files = run("signalr_hub", checks::hub);
    assert!(files >= 10, "only {files} files in fuzz/corpus/signalr_hub");
}

/// Each target's checks on the other's corpus too: the records corpus holds hub
/// invocations split across frames, the hub corpus records of every kind.
#[test]
fn each_target_holds_on_the_other_corpus() {
    assert!(run("signalr_hub", checks::records) >= 10);
    assert!(run("signalr_records", checks::hub) >= 10);
}

/// The frames of a records input are its 0x00-separated pieces; a record over the small
/// limit goes through the splitter's refusal path (checked by `records`) whatever the
/// corpus holds.
#[test]
fn frames_are_cut_at_nul_and_an_oversized_record_is_refused() {
    assert_eq!(checks::frames(b"a\0b\x1e\0"), ["a", "b\u{1e}", ""]);
    assert_eq!(checks::FRAME_SEPARATOR, 0);
    let limit = checks::MAX_RECORDS[1];
    let big = format!("{}\u{1e}", "x".repeat(limit + 1));
    checks::records(big.as_bytes());
    checks::hub(big.as_bytes());
}
