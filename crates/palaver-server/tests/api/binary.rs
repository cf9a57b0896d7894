//! The `palaver` binary as an operator runs it.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `palaver <args>` in `cwd`, returns the child and the URL it printed.
fn start(args: &[&str], cwd: &std::path::Path) -> (std::process::Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_palaver"))
        .args(args)
        .current_dir(cwd)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn palaver");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("palaver printed its address");
    let url = line
        .trim()
        .strip_prefix("palaver listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    (child, url)
}

fn terminate_and_wait(mut child: std::process::Child) -> std::process::ExitStatus {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("palaver did not exit within 15 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn serve_on_port_zero_prints_the_bound_address_and_exits_cleanly_on_sigterm() {
    let cwd = tempfile::tempdir().unwrap();
    let (child, url) = start(&["serve", "--port", "0", "--data-dir", "state"], cwd.path());
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    assert!(!url.ends_with(":0"), "{url}");
    let health = reqwest::get(format!("{url}/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);

    let mut client = palaver_client::Client::new(url.clone());
    client
        .register("dora", "dora@example.com", "vivid-otter-42")
        .await
        .unwrap();
    let status = terminate_and_wait(child);
    assert!(status.success(), "exit status {status:?}");
    assert!(
        cwd.path().join("state/palaver.db").exists(),
        "--data-dir is used"
    );
    assert!(cwd.path().join("state/jwt.key").exists());
    assert!(
        !cwd.path().join("data").exists(),
        "default ./data is not created"
    );
}

#[tokio::test]
async fn no_subcommand_means_serve_and_reads_palaver_toml() {
    let cwd = tempfile::tempdir().unwrap();
    std::fs::write(
        cwd.path().join("palaver.toml"),
        "port = 0\n[limits]\nmessage_max_chars = 5\n",
    )
    .unwrap();
    let (child, url) = start(&[], cwd.path());
    let mut client = palaver_client::Client::new(url);
    client
        .register("erin", "erin@example.com", "vivid-otter-42")
        .await
        .unwrap();
    let room = client
        .create_room("r", palaver_protocol::Visibility::Public, None)
        .await
        .unwrap();
    let err = client
        .send_message(&room.id, "too long", None)
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Some("validation_failed"),
        "limit from palaver.toml applies"
    );
    client.send_message(&room.id, "short", None).await.unwrap();
    assert!(
        cwd.path().join("data/palaver.db").exists(),
        "default data dir ./data"
    );
    assert!(terminate_and_wait(child).success());
}
