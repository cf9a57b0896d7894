//! What a new operator runs into (issue 13, items 7, 12 and 13): the binary claims to
//! listen only once it serves, refuses configuration it does not understand, and keeps
//! its data directory to itself.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use palaver_client::Client;

use crate::binary::palaver;
use crate::helpers::spawn_palaver;

/// The exit status, stdout and stderr of `palaver serve --port 0 --data-dir <data_dir>`
/// run in `cwd`, which must fail before serving.
fn serve_failing(cwd: &Path, data_dir: &str) -> (bool, String, String) {
    let output = palaver(&["serve", "--port", "0", "--data-dir", data_dir], cwd, None);
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_server_that_cannot_start_never_claims_to_be_listening() {
    // A data directory that is a file.
    let cwd = tempfile::tempdir().unwrap();
    std::fs::write(cwd.path().join("not-a-dir"), "x").unwrap();
    let (ok, stdout, stderr) = serve_failing(cwd.path(), "not-a-dir");
    assert!(!ok, "exits with an error");
    assert!(!stdout.contains("listening"), "stdout: {stdout}");
    assert!(stderr.contains("data directory"), "stderr: {stderr}");

    // A JWT secret that is too short.
    let cwd = tempfile::tempdir().unwrap();
    std::fs::write(
        cwd.path().join("palaver.toml"),
        "[auth]\njwt_secret = \"short\"\n",
    )
    .unwrap();
    let (ok, stdout, stderr) = serve_failing(cwd.path(), "state");
    assert!(!ok, "exits with an error");
    assert!(!stdout.contains("listening"), "stdout: {stdout}");
    assert!(stderr.contains("jwt_secret"), "stderr: {stderr}");
}

#[tokio::test]
async fn an_unknown_config_key_is_refused_with_the_nearest_valid_one() {
    let cwd = tempfile::tempdir().unwrap();
    std::fs::write(cwd.path().join("palaver.toml"), "prot = 9001\n").unwrap();
    let (ok, stdout, stderr) = serve_failing(cwd.path(), "state");
    assert!(!ok, "exits with an error");
    assert!(!stdout.contains("listening"), "stdout: {stdout}");
    assert!(
        stderr.contains("unknown key \"prot\"") && stderr.contains("did you mean \"port\""),
        "stderr: {stderr}"
    );
}

#[tokio::test]
async fn a_config_file_named_on_the_command_line_must_exist() {
    let cwd = tempfile::tempdir().unwrap();
    let output = palaver(
        &["serve", "--port", "0", "--config", "missing.toml"],
        cwd.path(),
        None,
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "exits with an error");
    assert!(
        stderr.contains("missing.toml") && stderr.contains("does not exist"),
        "stderr: {stderr}"
    );
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test]
async fn the_data_directory_and_its_files_are_readable_by_the_owner_only() {
    let cwd = tempfile::tempdir().unwrap();
    let log = cwd.path().join("palaver.log");
    let (mut child, url) = spawn_palaver(cwd.path(), &log);
    // Write a message and an attachment, so every kind of file exists.
    let mut alice = Client::new(url);
    alice
        .register("alice", "alice@example.com", "vivid-otter-42")
        .await
        .expect("register");
    alice
        .upload("note.txt", b"a private note")
        .await
        .expect("upload");
    let state = cwd.path().join("state");
    let result = std::panic::catch_unwind(|| {
        assert_eq!(mode(&state), 0o700, "data directory");
        for file in ["palaver.db", "palaver.db-wal", "palaver.db-shm", "jwt.key"] {
            assert_eq!(mode(&state.join(file)), 0o600, "{file}");
        }
        let attachments = state.join("attachments");
        assert_eq!(mode(&attachments), 0o700, "attachments directory");
        let files: Vec<_> = std::fs::read_dir(&attachments)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert!(!files.is_empty(), "the upload is stored");
        for file in files {
            assert_eq!(mode(&file), 0o600, "{}", file.display());
        }
    });
    let _ = child.kill();
    let _ = child.wait();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}
