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

/// How long a one-shot `palaver` command (e.g. `admin create-user`) may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `palaver <args>` to completion in `cwd` (so no stray `palaver.toml` is read),
/// writing `stdin` to its standard input; panics if it takes longer than
/// [`COMMAND_TIMEOUT`]. Returns its exit status, stdout and stderr.
pub(crate) fn palaver(
    args: &[&str],
    cwd: &std::path::Path,
    stdin: Option<&str>,
) -> std::process::Output {
    use std::io::{Read as _, Write as _};
    let mut command = Command::new(env!("CARGO_BIN_EXE_palaver"));
    // `palaver admin` on the data directory of an in-process test server (one that exists
    // and holds no SQLite file of a `palaver serve` child) acts on that server's database.
    if args.first() == Some(&"admin") {
        let data_dir = args
            .windows(2)
            .find(|w| w[0] == "--data-dir")
            .map(|w| cwd.join(w[1]))
            .filter(|d| d.is_dir() && !d.join("palaver.db").exists());
        if let Some((url, _)) = data_dir.and_then(|d| crate::helpers::test_database_url(&d)) {
            command.env("PALAVER_DATABASE_URL", url);
        }
    }
    let mut child = command
        .args(args)
        .current_dir(cwd)
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn palaver");
    {
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).expect("write stdin");
        }
        // Dropping `input` closes standard input.
    }
    // Drain the pipes on threads so a chatty child cannot block on a full pipe.
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("palaver {args:?} did not finish within {COMMAND_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    std::process::Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// Asserts a `palaver` command succeeded, showing its output if not.
#[track_caller]
pub(crate) fn assert_command_ok(output: &std::process::Output) {
    assert!(
        output.status.success(),
        "palaver failed with {:?}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn admin_create_user_reads_the_password_from_stdin_and_set_role_changes_a_role() {
    let cwd = tempfile::tempdir().unwrap();
    let data = cwd.path().join("state");
    let data = data.to_str().unwrap();

    // No --password: the password is one line on standard input.
    let created = palaver(
        &[
            "admin",
            "--data-dir",
            data,
            "create-user",
            "--username",
            "root",
            "--email",
            "root@example.com",
            "--admin",
        ],
        cwd.path(),
        Some("stdin-osprey-77\n"),
    );
    assert_command_ok(&created);
    let stdout = String::from_utf8_lossy(&created.stdout);
    assert!(
        stdout.contains("created root") && stdout.contains("admin"),
        "{stdout}"
    );

    // A server on the same data directory knows the admin, with that password.
    let (child, url) = start(&["serve", "--port", "0", "--data-dir", data], cwd.path());
    let mut admin = palaver_client::Client::new(url.clone());
    let auth = admin
        .login("root", "stdin-osprey-77")
        .await
        .expect("the admin logs in with the password read from stdin");
    assert_eq!(auth.user.role, palaver_protocol::Role::Admin);
    let listed = admin
        .admin_users("")
        .await
        .expect("the admin may list /api/v1/admin/users");
    let root = listed
        .users
        .iter()
        .find(|u| u.user.username == "root")
        .expect("root is listed");
    assert_eq!(root.user.role, palaver_protocol::Role::Admin);
    assert_eq!(root.disabled_at, None);

    // `admin set-role` works on an existing account, also while the server runs.
    let mut dora = palaver_client::Client::new(url);
    dora.register("dora", "dora@example.com", "vivid-otter-42")
        .await
        .unwrap();
    assert_eq!(dora.me().await.unwrap().role, palaver_protocol::Role::User);
    let set = palaver(
        &["admin", "--data-dir", data, "set-role", "dora", "moderator"],
        cwd.path(),
        None,
    );
    assert_command_ok(&set);
    assert_eq!(
        dora.me().await.unwrap().role,
        palaver_protocol::Role::Moderator,
        "the role set on the command line applies"
    );
    let listed = admin.admin_users("dora").await.unwrap();
    assert_eq!(listed.users.len(), 1);
    assert_eq!(listed.users[0].user.role, palaver_protocol::Role::Moderator);

    // An unknown account is an error, not a silent success.
    let unknown = palaver(
        &["admin", "--data-dir", data, "set-role", "nobody", "admin"],
        cwd.path(),
        None,
    );
    assert!(
        !unknown.status.success(),
        "set-role of an unknown user must fail"
    );
    assert!(terminate_and_wait(child).success());
}
