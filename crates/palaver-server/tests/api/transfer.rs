//! `palaver migrate`, `palaver export` and `palaver import`: a populated SQLite install
//! moves to PostgreSQL row for row, and the server then runs on it with the same
//! accounts, sessions and history.

use std::collections::BTreeMap;
use std::path::Path;

use palaver_protocol::rest::SendMessageRequest;
use palaver_protocol::Visibility;
use palaver_server::config::Secret;
use palaver_server::store::transfer::{self, EPHEMERAL_TABLES};
use sqlx::{Column as _, Connection as _, TypeInfo as _, ValueRef as _};

use crate::binary::{assert_command_ok, palaver};
use crate::helpers::{drop_test_database, scratch_postgres_database, unique_name, TestServer};

const PASSWORD: &str = "vivid-otter-42";

/// One stored value, whatever the backend.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Cell {
    Null,
    Integer(i64),
    Text(String),
    Bytes(Vec<u8>),
}

/// Every table but `_sqlx_migrations`: its column names (sorted) and its rows (each in
/// that column order; the rows sorted).
type Dump = BTreeMap<String, (Vec<String>, Vec<Vec<Cell>>)>;

/// Reads `row`'s columns as cells, by the type each value is stored with.
fn cells<R>(row: &R) -> Vec<Cell>
where
    R: sqlx::Row,
    usize: sqlx::ColumnIndex<R>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Vec<u8>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    (0..row.columns().len())
        .map(|i| {
            let raw = row.try_get_raw(i).expect("a column");
            if raw.is_null() {
                return Cell::Null;
            }
            let name = raw.type_info().name().to_owned();
            match name.as_str() {
                "INTEGER" | "INT8" => Cell::Integer(row.get(i)),
                "TEXT" => Cell::Text(row.get(i)),
                "BLOB" | "BYTEA" => Cell::Bytes(row.get(i)),
                other => panic!("column {} holds a {other}", row.columns()[i].name()),
            }
        })
        .collect()
}

/// Every row of the SQLite database at `path`.
async fn dump_sqlite(path: &Path) -> Dump {
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .read_only(true);
    let mut conn = sqlx::SqliteConnection::connect_with(&options)
        .await
        .expect("open the SQLite file");
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' \
         AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let mut dump = Dump::new();
    // The search index is derived from the messages, not transferred (it is rebuilt).
    for table in tables
        .into_iter()
        .filter(|t| !transfer::is_derived_table(t))
    {
        let columns: Vec<String> =
            sqlx::query_scalar("SELECT name FROM pragma_table_info(?) ORDER BY name")
                .bind(&table)
                .fetch_all(&mut conn)
                .await
                .unwrap();
        let sql = format!("SELECT {} FROM {table}", columns.join(", "));
        let rows = sqlx::query(&sql).fetch_all(&mut conn).await.unwrap();
        let mut rows: Vec<Vec<Cell>> = rows.iter().map(cells).collect();
        rows.sort();
        dump.insert(table, (columns, rows));
    }
    conn.close().await.unwrap();
    dump
}

/// Every row of the PostgreSQL database at `url`.
async fn dump_postgres(url: &str) -> Dump {
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .expect("connect to PostgreSQL");
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' \
         AND table_type = 'BASE TABLE' AND table_name <> '_sqlx_migrations'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let mut dump = Dump::new();
    // The search index is derived from the messages, not transferred (it is rebuilt).
    for table in tables
        .into_iter()
        .filter(|t| !transfer::is_derived_table(t))
    {
        let columns: Vec<String> = sqlx::query_scalar(
            "SELECT column_name::text FROM information_schema.columns \
             WHERE table_schema = 'public' AND table_name = $1 ORDER BY column_name COLLATE \"C\"",
        )
        .bind(&table)
        .fetch_all(&mut conn)
        .await
        .unwrap();
        let sql = format!("SELECT {} FROM {table}", columns.join(", "));
        let rows = sqlx::query(&sql).fetch_all(&mut conn).await.unwrap();
        let mut rows: Vec<Vec<Cell>> = rows.iter().map(cells).collect();
        rows.sort();
        dump.insert(table, (columns, rows));
    }
    conn.close().await.unwrap();
    dump
}

/// `dump` without the ephemeral tables (which the export leaves out).
fn durable(dump: Dump) -> Dump {
    dump.into_iter()
        .filter(|(table, _)| !EPHEMERAL_TABLES.contains(&table.as_str()))
        .collect()
}

/// The lines of an export file after its header (the header names the source backend and
/// the time).
fn row_lines(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).expect("read the export");
    text.lines().skip(1).map(str::to_owned).collect()
}

/// `(id, seq, content)` of a room's history as `client` reads it.
async fn history(client: &palaver_client::Client, room: &str) -> Vec<(String, i64, String)> {
    let page = client.history(room, None, None, Some(100)).await.unwrap();
    page.messages
        .into_iter()
        .map(|m| (m.id, m.seq, m.content))
        .collect()
}

fn send(content: &str, reply_to: Option<&str>, attachment_id: Option<&str>) -> SendMessageRequest {
    SendMessageRequest {
        content: content.to_owned(),
        client_id: None,
        reply_to: reply_to.map(str::to_owned),
        attachment_id: attachment_id.map(str::to_owned),
    }
}

#[tokio::test]
async fn a_populated_sqlite_install_moves_to_postgres_row_for_row_and_serves_from_there() {
    // A SQLite install with a bit of everything.
    let server = TestServer::spawn_with(tempfile::tempdir().unwrap(), |c| {
        c.database_url = None;
    })
    .await;
    let alice_name = unique_name("alice");
    let mut alice = server.client();
    let first = alice
        .register(&alice_name, &format!("{alice_name}@example.com"), PASSWORD)
        .await
        .unwrap();
    // A refresh spends the first refresh token.
    let rotated = alice.refresh(&first.refresh_token).await.unwrap();
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let dave = server.user("dave").await;
    let bob_id = bob.me().await.unwrap().id;
    let carol_id = carol.me().await.unwrap().id;
    let dave_id = dave.me().await.unwrap().id;
    alice.create_api_key("backup job", None).await.unwrap();
    alice.block(&dave_id).await.unwrap();

    let channel = alice
        .create_room("general", Visibility::Public, Some("all things"))
        .await
        .unwrap();
    bob.join_room(&channel.id).await.unwrap();
    carol.join_room(&channel.id).await.unwrap();
    alice.ban(&channel.id, &carol_id).await.unwrap();
    let private = alice
        .create_room("secret", Visibility::Private, None)
        .await
        .unwrap();
    let accepted = alice.invite(&private.id, &bob_id).await.unwrap();
    bob.accept_invitation(&accepted.id).await.unwrap();
    alice.invite(&private.id, &carol_id).await.unwrap();
    let dm = bob.open_dm(&carol_id).await.unwrap();

    let hello = alice
        .send_message(&channel.id, "hello", Some("client-1"))
        .await
        .unwrap();
    let reply = bob
        .send_message_with(&channel.id, &send("hi back", Some(&hello.id), None))
        .await
        .unwrap();
    alice
        .edit_message(&channel.id, &hello.id, "hello, everyone")
        .await
        .unwrap();
    bob.react(&channel.id, &hello.id, "👍").await.unwrap();
    alice.react(&channel.id, &reply.id, "🎉").await.unwrap();
    let oops = alice.send_message(&channel.id, "oops", None).await.unwrap();
    alice.delete_message(&channel.id, &oops.id).await.unwrap();
    let upload = alice
        .upload("photo.png", &crate::conversations::png(300))
        .await
        .unwrap();
    alice
        .send_message_with(&channel.id, &send("look", None, Some(&upload.id)))
        .await
        .unwrap();
    // A mention (messages.mentions, table message_mentions) in a room where only admins
    // may use @room (rooms.room_mentions).
    bob.send_message(&private.id, &format!("just us, @{alice_name}"), None)
        .await
        .unwrap();
    let (status, _) = alice
        .raw(
            "PATCH",
            &format!("/api/v1/rooms/{}", private.id),
            Some(br#"{"room_mentions":"admins"}"#.to_vec()),
        )
        .await
        .unwrap();
    assert_eq!(status, 200);
    bob.send_message(&dm.id, "psst", None).await.unwrap();
    carol.send_message(&dm.id, "yes?", None).await.unwrap();
    bob.mark_read(&channel.id, reply.seq).await.unwrap();
    crate::room_rules::report(&bob, &channel.id, &hello.id, "rude")
        .await
        .unwrap();
    // Bob's socket closing stores his last seen time.
    bob.connect().await.unwrap().close().await.unwrap();
    // Two-factor codes (tables two_factor and recovery_codes).
    crate::two_factor::enable(&server, dave.token.as_deref().unwrap()).await;
    // A user of seed 003's protocol gets a number (table numeric_ids).
    let seed_user = reqwest::Client::new()
        .post(format!("{}/compat/signaling/register", server.base))
        .json(&serde_json::json!({"Username": unique_name("sandy"), "Password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(seed_user.status().as_u16(), 201);
    // Notification settings and a push subscription (the server made its VAPID key pair
    // when it started: table vapid_keys).
    let _: serde_json::Value = bob
        .put(
            &format!("/api/v1/rooms/{}/notifications", channel.id),
            Some(&serde_json::json!({"level": "mentions", "muted_until": "2031-01-01T00:00:00Z"})),
        )
        .await
        .unwrap();
    let browser = {
        use p256::elliptic_curve::sec1::ToEncodedPoint as _;
        let secret = p256::SecretKey::random(&mut rand_core::OsRng);
        let point = secret.public_key().to_encoded_point(false);
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        serde_json::json!({
            "endpoint": "https://push.example.test/wpush/v2/bob",
            "keys": {"p256dh": b64.encode(point.as_bytes()), "auth": b64.encode([3u8; 16])},
        })
    };
    let _: serde_json::Value = bob
        .post("/api/v1/push/subscriptions", &browser)
        .await
        .unwrap();
    let before = history(&alice, &channel.id).await;
    let data_dir = server.stop().await;
    let data = data_dir.path().to_str().unwrap().to_owned();
    // A SignalR resume ticket, as a closing connection leaves one: ephemeral, not exported;
    // likewise an e-mail token.
    {
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(data_dir.path().join("palaver.db"))
            .foreign_keys(true);
        let mut conn = sqlx::SqliteConnection::connect_with(&options)
            .await
            .expect("open the SQLite file");
        sqlx::query(
            "INSERT INTO resume_tickets (ticket_hash, user_id, hub, positions, expires_at)
             VALUES (?1, ?2, 'chat', '{}', '2999-01-01T00:00:00.000Z')",
        )
        .bind(vec![7u8; 32])
        .bind(&bob_id)
        .execute(&mut conn)
        .await
        .expect("store a resume ticket");
        // A mailed link's token (ephemeral, not exported) and a verified address (kept).
        sqlx::query(
            "INSERT INTO email_tokens (token_hash, user_id, purpose, address, created_at,
                                       expires_at)
             VALUES (?1, ?2, 'reset', 'bob@example.com', '2026-01-01T00:00:00.000Z',
                     '2999-01-01T00:00:00.000Z')",
        )
        .bind(vec![8u8; 32])
        .bind(&bob_id)
        .execute(&mut conn)
        .await
        .expect("store an e-mail token");
        sqlx::query(
            "UPDATE users SET email_verified_at = '2026-01-01T00:00:00.000Z' WHERE id = ?1",
        )
        .bind(&bob_id)
        .execute(&mut conn)
        .await
        .expect("verify an address");
        // A sign-in identity (durable) and a sign-in flow in progress (ephemeral), as an
        // OpenID Connect sign-in leaves them (oidc-tests/ drives the real flow).
        sqlx::query(
            "INSERT INTO identities (id, user_id, provider, subject, email, created_at)
             VALUES ('identity-1', ?1, 'keycloak', 'subject-1', 'bob@example.com',
                     '2026-01-01T00:00:00.000Z')",
        )
        .bind(&bob_id)
        .execute(&mut conn)
        .await
        .expect("store an identity");
        sqlx::query(
            "INSERT INTO oidc_tickets (ticket_hash, kind, payload, expires_at)
             VALUES (?1, 'flow', '{}', '2999-01-01T00:00:00.000Z')",
        )
        .bind(vec![8u8; 32])
        .execute(&mut conn)
        .await
        .expect("store a sign-in flow");
        conn.close().await.unwrap();
    }

    // Export the SQLite install: a private file.
    let work = tempfile::tempdir().unwrap();
    let sqlite_export = work.path().join("sqlite.jsonl");
    let out = palaver(
        &["export", "--data-dir", &data, "--out", "sqlite.jsonl"],
        work.path(),
        None,
    );
    assert_command_ok(&out);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&sqlite_export)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the export holds hashes: owner only");
    }
    // It never overwrites a file.
    let again = palaver(
        &["export", "--data-dir", &data, "--out", "sqlite.jsonl"],
        work.path(),
        None,
    );
    assert!(!again.status.success(), "export refused an existing file");

    // A new PostgreSQL database: migrate, then import.
    let pg = scratch_postgres_database();
    let out = palaver(&["migrate", "--database-url", &pg.url], work.path(), None);
    assert_command_ok(&out);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("applied migration 1 (init)"), "{said}");
    let out = palaver(&["migrate", "--database-url", &pg.url], work.path(), None);
    assert_command_ok(&out);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("up to date"), "{said}");
    let out = palaver(
        &["import", "--database-url", &pg.url, "--in", "sqlite.jsonl"],
        work.path(),
        None,
    );
    assert_command_ok(&out);

    // Every row of every table is the same in both databases, but for the ephemeral
    // tables, which the export leaves out: empty in the target.
    let source = dump_sqlite(&data_dir.path().join("palaver.db")).await;
    let target = dump_postgres(&pg.url).await;
    assert_eq!(source.len(), 25, "tables: {:?}", source.keys());
    for (table, (_, rows)) in &source {
        assert!(!rows.is_empty(), "the test populates {table}");
    }
    for table in EPHEMERAL_TABLES {
        let (columns, rows) = &target[*table];
        assert_eq!(columns, &source[*table].0, "{table}'s columns");
        assert!(rows.is_empty(), "{table} is not exported");
    }
    let (source, target) = (durable(source), durable(target));
    let (columns, users) = &source["users"];
    let last_seen = columns.iter().position(|c| c == "last_seen_at").unwrap();
    assert!(
        users.iter().any(|u| matches!(u[last_seen], Cell::Text(_))),
        "the test populates users.last_seen_at"
    );
    let verified = columns
        .iter()
        .position(|c| c == "email_verified_at")
        .unwrap();
    assert!(
        users.iter().any(|u| matches!(u[verified], Cell::Text(_))),
        "the test populates users.email_verified_at"
    );
    assert_eq!(
        source.keys().collect::<Vec<_>>(),
        target.keys().collect::<Vec<_>>()
    );
    for (table, rows) in &source {
        assert_eq!(Some(rows), target.get(table), "table {table}");
    }

    // An export of the imported database has the same row lines.
    let out = palaver(
        &["export", "--database-url", &pg.url, "--out", "pg.jsonl"],
        work.path(),
        None,
    );
    assert_command_ok(&out);
    let sqlite_lines = row_lines(&sqlite_export);
    assert!(sqlite_lines.len() > 30, "{} lines", sqlite_lines.len());
    assert!(
        !sqlite_lines
            .iter()
            .any(|l| l.contains("resume_tickets") || l.contains("email_tokens")),
        "resume tickets are not exported (rows nor trailer)"
    );
    assert_eq!(sqlite_lines, row_lines(&work.path().join("pg.jsonl")));

    // A second import into the now non-empty database is refused and changes nothing.
    let out = palaver(
        &["import", "--database-url", &pg.url, "--in", "sqlite.jsonl"],
        work.path(),
        None,
    );
    assert!(!out.status.success(), "import into a non-empty database");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("not empty"), "{said}");
    assert_eq!(durable(dump_postgres(&pg.url).await), target);

    // The server runs on the imported database (and the same data directory, for the
    // signing key and the attachment files): logins, sessions and history carry over.
    let url = pg.url.clone();
    let server = TestServer::spawn_with(data_dir, move |c| {
        c.database_url = Some(Secret::new(url));
    })
    .await;
    let mut alice = server.client();
    alice.login(&alice_name, PASSWORD).await.unwrap();
    assert_eq!(history(&alice, &channel.id).await, before);
    // The search index, not transferred, was rebuilt from the imported messages.
    let found = alice.search_messages(&[("q", "everyone")]).await.unwrap();
    assert_eq!(
        found
            .results
            .iter()
            .map(|r| r.message.content.as_str())
            .collect::<Vec<_>>(),
        ["hello, everyone"]
    );
    // Two-factor codes came along: Dave's password alone is not enough.
    let refused = server
        .client()
        .login(&dave.user.as_ref().unwrap().username, PASSWORD)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some("two_factor_required"), "{refused:?}");
    let mut resumed = server.client();
    resumed
        .refresh(&rotated.refresh_token)
        .await
        .expect("the session's current refresh token still works");
    let mut replayed = server.client();
    assert!(
        replayed.refresh(&first.refresh_token).await.is_err(),
        "a spent refresh token stays spent"
    );
    let last_seq = before.last().map(|(_, seq, _)| *seq).unwrap();
    let next = alice
        .send_message(&channel.id, "moved", None)
        .await
        .unwrap();
    assert!(
        next.seq > last_seq,
        "the room's seq counter carried over: {} after {last_seq}",
        next.seq
    );
    let (_, _, content) = &before[0];
    assert_eq!(content, "hello, everyone");
    let edits = alice.message_edits(&channel.id, &hello.id).await.unwrap();
    assert_eq!(edits.len(), 1, "{edits:?}");
    let data_dir = server.stop().await;
    // With PALAVER_TEST_BACKEND=postgres the harness made a database for this data
    // directory, which neither server used.
    drop_test_database(data_dir.path());
}

#[tokio::test]
async fn import_refuses_a_file_that_is_not_an_export_or_is_cut_short() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let out = palaver(
        &["export", "--data-dir", "empty", "--out", "x.jsonl"],
        dir,
        None,
    );
    assert!(
        !out.status.success(),
        "nothing to export without a database"
    );

    let source = dir.join("source");
    let out = palaver(&["migrate", "--data-dir", "source"], dir, None);
    assert_command_ok(&out);
    assert!(source.join("palaver.db").exists());
    let out = palaver(
        &["export", "--data-dir", "source", "--out", "e.jsonl"],
        dir,
        None,
    );
    assert_command_ok(&out);
    let text = std::fs::read_to_string(dir.join("e.jsonl")).unwrap();
    let header = text.lines().next().unwrap().to_owned();
    for (name, content, says) in [
        ("cut.jsonl", format!("{header}\n"), "trailer"),
        ("junk.jsonl", "hello\n".to_owned(), "not JSON"),
        (
            "table.jsonl",
            format!("{header}\n{{\"table\":\"secrets\",\"row\":{{}}}}\n"),
            "unknown table \"secrets\"",
        ),
    ] {
        std::fs::write(dir.join(name), content).unwrap();
        let target = format!("target-{name}");
        let out = palaver(&["import", "--data-dir", &target, "--in", name], dir, None);
        assert!(!out.status.success(), "{name} is refused");
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(said.contains(says), "{name}: {said}");
    }
}
