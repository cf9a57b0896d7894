//! The store conformance suite: one set of tests, each an `async fn(Store)` that knows
//! nothing of the database under it, run against every implementation by
//! [`conformance!`]: `store::conformance::on_sqlite::<test>` and
//! `store::conformance::on_postgres::<test>`.
//!
//! - SQLite: a fresh file in a temporary directory per test.
//! - PostgreSQL: a fresh database per test, `palaver_test_<UUIDv7>`, created through
//!   `PALAVER_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`; its
//!   role must be allowed to create databases). After the test, passed or failed (a
//!   panic is caught, the database dropped, and the panic resumed), it is dropped with
//!   `DROP DATABASE ... WITH (FORCE)`. A run killed half-way may leave one behind; the
//!   random names keep such leftovers harmless (`palaver_test_%` finds them). Without a
//!   server the tests fail, saying so: they are never skipped.
//!
//! Times are RFC 3339 strings from [`at`]; what the tests assert is what the trait docs in
//! `store/mod.rs` promise, which both backends must keep alike.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures_util::FutureExt as _;
use palaver_protocol::{
    CallKind, CallLog, CallLogEvent, MessageType, Role, RoomKind, RoomMentions, Visibility,
};

use super::Unlink;
use super::{
    ApiKeyRow, AttachmentRow, EmailPurpose, EmailToken, MemberRole, MessageRow, NewMessage,
    NewReport, NewRoom, NewSession, PageQuery, PendingMessage, Profile, ResumeTicket, Rotation,
    Store, StoreError, StoreResult, TakenEmailToken, UserRow,
};
use super::{NotificationLevel, NotificationSettingsRow, PushSubscriptionRow, VapidKeyRow};

/// How long one test may take before it fails.
const TEST_TIMEOUT: Duration = Duration::from_secs(120);

/// The server the PostgreSQL variants use, unless `PALAVER_TEST_POSTGRES_URL` names one.
const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A store under test and what to clean up after it.
pub(super) struct Backend {
    store: Store,
    cleanup: Cleanup,
}

enum Cleanup {
    /// The SQLite file's directory, removed when dropped.
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    /// The test's database, dropped through `admin_url`.
    Postgres { admin_url: String, database: String },
}

/// A fresh SQLite store.
async fn sqlite() -> Backend {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let db = super::sqlite::SqliteStore::open(&dir.path().join("palaver.db"))
        .await
        .expect("the SQLite store opens");
    Backend {
        store: db.store(),
        cleanup: Cleanup::Sqlite(dir),
    }
}

/// `url` with its password, if any, masked, for messages.
fn masked(url: &url::Url) -> String {
    let mut url = url.clone();
    if url.password().is_some() {
        let _ = url.set_password(Some("***"));
    }
    url.to_string()
}

/// A fresh PostgreSQL store, on a database of its own.
pub(super) async fn postgres() -> Backend {
    use sqlx::Connection as _;
    let admin_url = std::env::var("PALAVER_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned());
    let parsed = url::Url::parse(&admin_url).expect("PALAVER_TEST_POSTGRES_URL is a URL");
    let mut admin = sqlx::PgConnection::connect(&admin_url)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "the PostgreSQL conformance tests need a PostgreSQL server at {} (set \
                 PALAVER_TEST_POSTGRES_URL to one whose role may create databases): {e}",
                masked(&parsed)
            )
        });
    let database = format!("palaver_test_{}", uuid::Uuid::now_v7().simple());
    sqlx::query(&format!("CREATE DATABASE {database}"))
        .execute(&mut admin)
        .await
        .unwrap_or_else(|e| panic!("creating the test database {database}: {e}"));
    let _ = admin.close().await;
    let mut url = parsed;
    url.set_path(&format!("/{database}"));
    let db = super::postgres::PostgresStore::connect(url.as_str())
        .await
        .unwrap_or_else(|e| panic!("the PostgreSQL store opens on {database}: {e:#}"));
    Backend {
        store: db.store(),
        cleanup: Cleanup::Postgres {
            admin_url,
            database,
        },
    }
}

/// Runs `test` on `backend`, then closes the store and removes its data, whether the test
/// passed or not; a failure is then re-raised.
pub(super) async fn run<F, Fut>(backend: Backend, test: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = ()>,
{
    let outcome = AssertUnwindSafe(tokio::time::timeout(
        TEST_TIMEOUT,
        test(backend.store.clone()),
    ))
    .catch_unwind()
    .await;
    backend.store.database.close().await;
    if let Cleanup::Postgres {
        admin_url,
        database,
    } = &backend.cleanup
    {
        use sqlx::Connection as _;
        let dropped = async {
            let mut admin = sqlx::PgConnection::connect(admin_url).await?;
            sqlx::query(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
                .execute(&mut admin)
                .await?;
            admin.close().await
        }
        .await;
        if let Err(e) = dropped {
            eprintln!("could not drop the test database {database}: {e}");
        }
    }
    drop(backend);
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(_)) => panic!("the test took longer than {TEST_TIMEOUT:?}"),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Declares each test once per backend.
macro_rules! conformance {
    ($($test:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::run(super::sqlite().await, super::$test).await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::run(super::postgres().await, super::$test).await;
                }
            )*
        }
    };
}

conformance!(
    the_database_answers_a_ping,
    usernames_and_emails_are_unique_and_logins_find_live_accounts,
    search_pages_by_username_and_hides_deleted_and_disabled_accounts,
    profiles_roles_and_passwords_change_only_live_accounts,
    deleting_an_account_scrubs_it_and_ends_its_sessions_keys_memberships_and_blocks,
    last_seen_only_moves_forward_and_goes_with_the_account,
    sessions_list_newest_first_and_end_by_revocation_expiry_or_disabling,
    refresh_rotation_tells_a_concurrent_refresh_from_a_replay,
    concurrent_refreshes_with_one_token_rotate_once,
    resume_tickets_are_taken_once_and_replaced_by_saving_again,
    concurrent_takes_of_one_resume_ticket_take_it_once,
    expired_resume_tickets_are_refused_deleted_and_purged,
    deleting_an_account_removes_its_resume_tickets,
    email_tokens_are_taken_once_by_their_purpose_until_they_expire,
    concurrent_takes_of_one_email_token_take_it_once,
    verifying_an_address_needs_the_address_the_account_still_has,
    changing_an_address_keeps_it_unique_and_spending_tokens_kills_the_links,
    numbers_are_given_once_per_id_in_order_for_users_and_as_asked_for_rooms,
    concurrent_numbering_gives_every_id_one_distinct_number,
    two_factor_is_enabled_once_with_its_secret_and_steps_and_codes_are_used_once,
    concurrent_uses_of_one_step_or_recovery_code_succeed_once,
    deleting_an_account_removes_its_two_factor_secret_and_codes,
    api_keys_authenticate_until_revoked_or_expired,
    blocks_are_idempotent_and_listed_most_recent_first,
    a_room_starts_with_its_creator_as_owner_and_lists_for_its_members,
    last_seqs_reads_many_rooms_at_once,
    opening_a_dm_twice_returns_the_same_room,
    leaving_hands_ownership_over_and_revokes_the_leavers_invitations,
    roles_change_and_ownership_transfers_only_between_members,
    invitations_are_pending_once_and_die_with_their_inviter,
    the_public_directory_pages_newest_first_and_filters_by_name,
    deleting_a_room_removes_everything_in_it,
    read_markers_move_forward_only_and_count_unread_messages_of_others,
    a_batch_keeps_queue_order_per_room_and_fails_only_the_bad_message,
    member_only_messages_of_non_members_fail_alone_and_leave_no_seq_gap,
    a_retried_client_id_returns_the_first_message,
    messages_with_an_unknown_sender_or_attachment_fail_alone,
    edits_keep_earlier_versions_and_take_the_next_seq,
    a_message_is_located_by_its_id_alone_at_its_creation_seq,
    deleting_a_message_leaves_a_tombstone_without_reactions_or_edits,
    reactions_take_a_seq_only_when_they_change_something,
    history_pages_in_both_directions,
    changes_replay_in_seq_order_from_one_snapshot,
    concurrent_changes_to_one_room_take_distinct_gap_free_seqs,
    closing_commits_what_is_queued_then_refuses,
    reports_are_one_per_reporter_and_resolved_once,
    attachments_download_for_uploader_and_members_of_rooms_where_posted,
    identities_are_unique_per_provider_subject_and_go_with_the_account,
    unlinking_never_removes_the_last_way_to_sign_in,
    sign_in_tickets_are_taken_once_by_kind_until_they_expire,
    search_finds_only_messages_of_rooms_the_user_is_a_member_of_now,
    search_matches_prefixes_phrases_case_and_accents,
    edits_reindex_and_deletes_unindex_messages,
    search_filters_and_pages,
    mentions_are_stored_counted_until_read_and_replaced_by_edits,
    a_room_keeps_who_may_mention_everyone,
    notification_settings_are_a_members_and_go_with_the_membership,
    push_subscriptions_are_one_per_endpoint_and_only_the_newest_are_kept,
    push_targets_leave_out_subscriptions_of_ended_sessions,
    deleting_an_account_removes_its_push_subscriptions_and_settings,
    the_vapid_key_pair_is_created_once_for_every_caller,
);

mod mentions;
use mentions::{
    a_room_keeps_who_may_mention_everyone,
    mentions_are_stored_counted_until_read_and_replaced_by_edits,
};
mod search;
use search::{
    edits_reindex_and_deletes_unindex_messages, search_filters_and_pages,
    search_finds_only_messages_of_rooms_the_user_is_a_member_of_now,
    search_matches_prefixes_phrases_case_and_accents,
};

// ---------------------------------------------------------------------------------------
// Helpers

/// `2026-11-21T10:00:00.000Z` plus `secs` seconds.
pub(super) fn at(secs: u32) -> String {
    format!(
        "2026-11-21T{:02}:{:02}:{:02}.000Z",
        10 + secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

fn user_row(id: &str, username: &str) -> UserRow {
    UserRow {
        id: id.into(),
        username: username.into(),
        email: format!("{username}@example.com"),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        role: Role::User,
        profile: Profile::default(),
        settings: "{}".into(),
        created_at: at(0),
        disabled_at: None,
        deleted_at: None,
        email_verified_at: None,
    }
}

pub(super) async fn add_user(store: &Store, id: &str, username: &str) -> UserRow {
    let user = user_row(id, username);
    store.users.create_user(&user).await.expect("create_user");
    user
}

fn new_room(id: &str, created_by: &str, visibility: Visibility, created_at: &str) -> NewRoom {
    NewRoom {
        id: id.into(),
        name: format!("room {id}"),
        topic: None,
        visibility,
        kind: RoomKind::Channel,
        created_by: created_by.into(),
        created_at: created_at.into(),
    }
}

pub(super) async fn add_room(store: &Store, id: &str, created_by: &str) {
    store
        .rooms
        .create_room(&new_room(id, created_by, Visibility::Public, &at(0)))
        .await
        .expect("create_room");
}

pub(super) async fn join(store: &Store, room: &str, user: &str, secs: u32) {
    assert!(store
        .rooms
        .add_member(room, user, MemberRole::Member, &at(secs))
        .await
        .expect("add_member"));
}

pub(super) fn message(
    room_id: &str,
    sender_id: &str,
    content: &str,
    client_id: Option<&str>,
) -> NewMessage {
    NewMessage {
        id: uuid::Uuid::now_v7().to_string(),
        room_id: room_id.into(),
        sender_id: sender_id.into(),
        content: content.into(),
        client_id: client_id.map(str::to_owned),
        created_at: at(1),
        message_type: MessageType::Text,
        reply_to: None,
        attachment_id: None,
        call: None,
        member_only: false,
        mentions: Default::default(),
        mentioned: Vec::new(),
    }
}

/// Queues `m` and waits for its commit.
pub(super) async fn send(store: &Store, m: NewMessage) -> StoreResult<(MessageRow, bool)> {
    store.messages.queue_message(m).await?.committed().await
}

/// Sends a text message that must be stored; returns it.
pub(super) async fn post(store: &Store, room: &str, sender: &str, content: &str) -> MessageRow {
    let (row, created) = send(store, message(room, sender, content, None))
        .await
        .expect("the message is stored");
    assert!(created);
    row
}

pub(super) async fn last_seq(store: &Store, room: &str) -> i64 {
    store
        .rooms
        .room_by_id(room)
        .await
        .unwrap()
        .expect("the room exists")
        .last_seq
}

fn session(id: &str, user_id: &str, hash: &[u8], created_at: &str, ip: &str) -> NewSession {
    NewSession {
        id: id.into(),
        user_id: user_id.into(),
        refresh_token_hash: hash.to_vec(),
        device_name: Some("laptop".into()),
        ip: Some(ip.into()),
        created_at: created_at.into(),
        expires_at: "2026-12-21T10:00:00.000Z".into(),
    }
}

// ---------------------------------------------------------------------------------------
// Database

async fn the_database_answers_a_ping(store: Store) {
    assert!(store.database.ping().await);
}

// ---------------------------------------------------------------------------------------
// Users

async fn usernames_and_emails_are_unique_and_logins_find_live_accounts(store: Store) {
    let alice = add_user(&store, "u1", "alice").await;
    let mut again = user_row("u2", "alice");
    again.email = "other@example.com".into();
    assert!(matches!(
        store.users.create_user(&again).await,
        Err(StoreError::Conflict("username"))
    ));
    let same_email = user_row("u2", "alice2");
    let same_email = UserRow {
        email: alice.email.clone(),
        ..same_email
    };
    assert!(matches!(
        store.users.create_user(&same_email).await,
        Err(StoreError::Conflict("email"))
    ));
    assert_eq!(
        store.users.user_by_id("u1").await.unwrap(),
        Some(alice.clone())
    );
    assert_eq!(store.users.user_by_id("u2").await.unwrap(), None);
    for login in ["alice", "alice@example.com"] {
        let found = store.users.user_by_login(login).await.unwrap();
        assert_eq!(found.map(|u| u.id), Some("u1".into()), "{login}");
    }
    // Logins are lower-cased by the caller; the store compares exactly.
    assert_eq!(store.users.user_by_login("Alice").await.unwrap(), None);
    assert_eq!(store.users.user_by_login("nobody").await.unwrap(), None);
    // A disabled account still logs in as far as the store knows (the service refuses).
    assert!(store.users.set_disabled("u1", Some(&at(5))).await.unwrap());
    let disabled = store.users.user_by_login("alice").await.unwrap().unwrap();
    assert_eq!(disabled.disabled_at, Some(at(5)));
    assert!(store.users.set_disabled("u1", None).await.unwrap());
    assert!(!store.users.set_disabled("nobody", None).await.unwrap());
}

async fn search_pages_by_username_and_hides_deleted_and_disabled_accounts(store: Store) {
    for (i, name) in ["bob", "bea", "al", "beth", "ben", "b.x", "b_y", "bz"]
        .into_iter()
        .enumerate()
    {
        add_user(&store, &format!("u{i}"), name).await;
    }
    let names = |rows: Vec<UserRow>| rows.into_iter().map(|u| u.username).collect::<Vec<_>>();
    // Byte order: '.' < '_' < letters.
    let page = store.users.search_users("b", None, 4, false).await.unwrap();
    assert_eq!(names(page), ["b.x", "b_y", "bea", "ben"]);
    let page = store
        .users
        .search_users("b", Some("ben"), 4, false)
        .await
        .unwrap();
    assert_eq!(names(page), ["beth", "bob", "bz"]);
    let page = store
        .users
        .search_users("be", None, 10, false)
        .await
        .unwrap();
    assert_eq!(names(page), ["bea", "ben", "beth"]);
    assert!(store
        .users
        .search_users("c", None, 10, false)
        .await
        .unwrap()
        .is_empty());
    // u4 = ben disabled, u3 = beth deleted.
    store.users.set_disabled("u4", Some(&at(1))).await.unwrap();
    store
        .users
        .delete_user("u3", "deleted-u3", &at(2))
        .await
        .unwrap();
    let page = store
        .users
        .search_users("be", None, 10, false)
        .await
        .unwrap();
    assert_eq!(names(page), ["bea"]);
    let page = store
        .users
        .search_users("be", None, 10, true)
        .await
        .unwrap();
    assert_eq!(
        names(page),
        ["bea", "ben"],
        "disabled listed on request, deleted never"
    );
    let page = store.users.search_users("", None, 3, true).await.unwrap();
    assert_eq!(names(page), ["al", "b.x", "b_y"]);
}

async fn profiles_roles_and_passwords_change_only_live_accounts(store: Store) {
    add_user(&store, "u1", "alice").await;
    let profile = Profile {
        display_name: Some("Alice A.".into()),
        first_name: Some("Alice".into()),
        last_name: None,
        bio: Some("Über café ☕".into()),
        location: Some("Paris".into()),
        website: Some("https://example.com".into()),
        avatar_url: None,
    };
    let updated = store
        .users
        .update_profile("u1", &profile, r#"{"theme":"dark"}"#, &at(3))
        .await
        .unwrap();
    assert_eq!(updated.profile, profile);
    assert_eq!(updated.settings, r#"{"theme":"dark"}"#);
    assert_eq!(
        store.users.user_by_id("u1").await.unwrap().unwrap(),
        updated
    );
    assert!(matches!(
        store
            .users
            .update_profile("nobody", &profile, "{}", &at(3))
            .await,
        Err(StoreError::NotFound)
    ));
    store
        .users
        .update_password("u1", "new-hash", &at(4))
        .await
        .unwrap();
    assert_eq!(
        store
            .users
            .user_by_id("u1")
            .await
            .unwrap()
            .unwrap()
            .password_hash,
        "new-hash"
    );
    assert!(store.users.set_role("u1", Role::Moderator).await.unwrap());
    assert_eq!(
        store.users.user_by_id("u1").await.unwrap().unwrap().role,
        Role::Moderator
    );
    assert!(!store.users.set_role("nobody", Role::Admin).await.unwrap());
    store
        .users
        .delete_user("u1", "deleted-1", &at(5))
        .await
        .unwrap();
    assert!(!store.users.set_role("u1", Role::Admin).await.unwrap());
    assert!(!store.users.set_disabled("u1", Some(&at(6))).await.unwrap());
    assert!(matches!(
        store
            .users
            .update_profile("u1", &profile, "{}", &at(6))
            .await,
        Err(StoreError::NotFound)
    ));
}

async fn deleting_an_account_scrubs_it_and_ends_its_sessions_keys_memberships_and_blocks(
    store: Store,
) {
    add_user(&store, "u1", "alice").await;
    add_user(&store, "u2", "bob").await;
    add_room(&store, "r1", "u2").await;
    join(&store, "r1", "u1", 1).await;
    let kept = post(&store, "r1", "u1", "hello").await;
    store
        .sessions
        .create_session(&session("s1", "u1", b"h1", &at(1), "192.0.2.1"))
        .await
        .unwrap();
    store
        .api_keys
        .create_api_key(&api_key("k1", "u1", &at(1), None))
        .await
        .unwrap();
    store.blocks.block("u1", "u2", &at(1)).await.unwrap();
    store.blocks.block("u2", "u1", &at(1)).await.unwrap();
    let profile = Profile {
        bio: Some("secret".into()),
        ..Profile::default()
    };
    store
        .users
        .update_profile("u1", &profile, r#"{"a":1}"#, &at(2))
        .await
        .unwrap();

    store
        .users
        .delete_user("u1", "deleted-u1", &at(9))
        .await
        .unwrap();
    let scrubbed = store.users.user_by_id("u1").await.unwrap().unwrap();
    assert_eq!(scrubbed.username, "deleted-u1");
    assert_eq!(scrubbed.email, "u1@deleted.invalid");
    assert_eq!(scrubbed.password_hash, "");
    assert_eq!(scrubbed.profile, Profile::default());
    assert_eq!(scrubbed.settings, "{}");
    assert_eq!(scrubbed.deleted_at, Some(at(9)));
    assert_eq!(store.users.user_by_login("alice").await.unwrap(), None);
    assert_eq!(store.users.user_by_login("deleted-u1").await.unwrap(), None);
    let state = store
        .sessions
        .session_state("s1", &at(10))
        .await
        .unwrap()
        .unwrap();
    assert!(!state.active);
    assert!(store
        .sessions
        .sessions_for_user("u1", &at(10))
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .api_keys
        .api_keys_for_user("u1")
        .await
        .unwrap()
        .is_empty());
    assert!(!store.rooms.is_member("r1", "u1").await.unwrap());
    assert!(!store.blocks.is_blocked("u1", "u2").await.unwrap());
    assert!(!store.blocks.is_blocked("u2", "u1").await.unwrap());
    // The messages stay, attributed to the scrubbed name.
    let still = store
        .messages
        .message("r1", &kept.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(still.sender_username, "deleted-u1");
    assert_eq!(still.content, "hello");
}

async fn last_seen_only_moves_forward_and_goes_with_the_account(store: Store) {
    add_user(&store, "u1", "alice").await;
    add_user(&store, "u2", "bob").await;
    assert_eq!(
        store.users.last_seen("u1").await.unwrap(),
        None,
        "never seen"
    );
    store.users.set_last_seen("u1", &at(5)).await.unwrap();
    assert_eq!(store.users.last_seen("u1").await.unwrap(), Some(at(5)));
    // Nodes may report out of order: an earlier time does not move it back.
    store.users.set_last_seen("u1", &at(3)).await.unwrap();
    assert_eq!(store.users.last_seen("u1").await.unwrap(), Some(at(5)));
    store.users.set_last_seen("u1", &at(7)).await.unwrap();
    assert_eq!(store.users.last_seen("u1").await.unwrap(), Some(at(7)));
    assert_eq!(store.users.last_seen("u2").await.unwrap(), None, "per user");
    // Unknown users: nothing, no error.
    store.users.set_last_seen("nobody", &at(7)).await.unwrap();
    assert_eq!(store.users.last_seen("nobody").await.unwrap(), None);
    // Deletion forgets it, and a deleted account is never seen again.
    store
        .users
        .delete_user("u1", "deleted-u1", &at(9))
        .await
        .unwrap();
    assert_eq!(store.users.last_seen("u1").await.unwrap(), None);
    store.users.set_last_seen("u1", &at(10)).await.unwrap();
    assert_eq!(store.users.last_seen("u1").await.unwrap(), None);
}

// ---------------------------------------------------------------------------------------
// Sessions

async fn sessions_list_newest_first_and_end_by_revocation_expiry_or_disabling(store: Store) {
    add_user(&store, "u1", "alice").await;
    add_user(&store, "u2", "bob").await;
    for (id, hash, secs, ip) in [
        ("s1", b"h1", 1, "192.0.2.1"),
        ("s2", b"h2", 2, "192.0.2.2"),
        ("s3", b"h3", 3, "192.0.2.1"),
    ] {
        store
            .sessions
            .create_session(&session(id, "u1", hash, &at(secs), ip))
            .await
            .unwrap();
    }
    let mut short = session("s4", "u1", b"h4", &at(4), "192.0.2.4");
    short.expires_at = at(100);
    store.sessions.create_session(&short).await.unwrap();
    let ids = |rows: Vec<super::SessionRow>| rows.into_iter().map(|s| s.id).collect::<Vec<_>>();
    let live = store
        .sessions
        .sessions_for_user("u1", &at(50))
        .await
        .unwrap();
    assert_eq!(
        live[0].last_used_at,
        at(4),
        "last_used_at starts at created_at"
    );
    assert_eq!(ids(live), ["s4", "s3", "s2", "s1"]);
    let live = store
        .sessions
        .sessions_for_user("u1", &at(200))
        .await
        .unwrap();
    assert_eq!(ids(live), ["s3", "s2", "s1"], "s4 expired");
    let state = store
        .sessions
        .session_state("s4", &at(200))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((state.user_id.as_str(), state.active), ("u1", false));
    let state = store
        .sessions
        .session_state("s1", &at(50))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((state.role, state.active), (Role::User, true));
    assert_eq!(
        store.sessions.session_state("nope", &at(50)).await.unwrap(),
        None
    );

    let ips = store.sessions.session_ips("u1", 10).await.unwrap();
    assert_eq!(ips, ["192.0.2.4", "192.0.2.1", "192.0.2.2"]);
    assert_eq!(
        store.sessions.session_ips("u1", 1).await.unwrap(),
        ["192.0.2.4"]
    );
    assert!(store
        .sessions
        .session_ips("u2", 10)
        .await
        .unwrap()
        .is_empty());

    assert!(!store
        .sessions
        .revoke_session("u2", "s1", "logout", &at(60))
        .await
        .unwrap());
    assert!(store
        .sessions
        .revoke_session("u1", "s1", "logout", &at(60))
        .await
        .unwrap());
    assert!(!store
        .sessions
        .revoke_session("u1", "s1", "logout", &at(61))
        .await
        .unwrap());
    let mut revoked = store
        .sessions
        .revoke_sessions("u1", Some("s3"), "logout_others", &at(62))
        .await
        .unwrap();
    revoked.sort();
    assert_eq!(revoked, ["s2", "s4"]);
    assert_eq!(
        ids(store
            .sessions
            .sessions_for_user("u1", &at(63))
            .await
            .unwrap()),
        ["s3"]
    );
    // Disabling revokes the rest.
    store.users.set_disabled("u1", Some(&at(64))).await.unwrap();
    assert!(store
        .sessions
        .sessions_for_user("u1", &at(65))
        .await
        .unwrap()
        .is_empty());
    store.users.set_disabled("u1", None).await.unwrap();
    let state = store
        .sessions
        .session_state("s3", &at(66))
        .await
        .unwrap()
        .unwrap();
    assert!(!state.active, "re-enabling does not bring sessions back");
    let none = store
        .sessions
        .revoke_sessions("u1", None, "logout_all", &at(67))
        .await
        .unwrap();
    assert!(none.is_empty());
}

async fn refresh_rotation_tells_a_concurrent_refresh_from_a_replay(store: Store) {
    add_user(&store, "u1", "alice").await;
    store
        .sessions
        .create_session(&session("s1", "u1", b"t1", &at(0), "192.0.2.1"))
        .await
        .unwrap();
    let expires = "2026-12-30T00:00:00.000Z";
    let rotate = |old: &'static [u8], new: &'static [u8], now: u32, grace_cutoff: u32| {
        let store = store.clone();
        async move {
            store
                .sessions
                .rotate_refresh(old, new, &at(now), expires, &at(grace_cutoff), &at(0))
                .await
                .unwrap()
        }
    };
    let rotated = Rotation::Rotated {
        session_id: "s1".into(),
        user_id: "u1".into(),
    };
    assert_eq!(rotate(b"t1", b"t2", 10, 0).await, rotated);
    let row = &store
        .sessions
        .sessions_for_user("u1", &at(11))
        .await
        .unwrap()[0];
    assert_eq!(
        (row.last_used_at.as_str(), row.expires_at.as_str()),
        (at(10).as_str(), expires)
    );
    // t1 again, 5 s later, inside a 10 s grace window: a concurrent refresh.
    assert_eq!(rotate(b"t1", b"t9", 15, 5).await, Rotation::WithinGrace);
    assert_eq!(rotate(b"t2", b"t3", 20, 10).await, rotated);
    // t1 is spent but not by the latest rotation: reuse, whatever the window.
    assert_eq!(
        rotate(b"t1", b"t9", 21, 0).await,
        Rotation::Reused {
            session_id: "s1".into(),
            user_id: "u1".into()
        }
    );
    let state = store
        .sessions
        .session_state("s1", &at(22))
        .await
        .unwrap()
        .unwrap();
    assert!(!state.active, "reuse revokes the session");
    // The current token of a revoked session, and a token never seen, are unknown.
    assert_eq!(rotate(b"t3", b"t4", 23, 0).await, Rotation::Unknown);
    assert_eq!(rotate(b"zz", b"t4", 23, 0).await, Rotation::Unknown);

    // A second session: the latest rotation's token outside the window is reuse too.
    store
        .sessions
        .create_session(&session("s2", "u1", b"a1", &at(30), "192.0.2.1"))
        .await
        .unwrap();
    assert!(matches!(
        rotate(b"a1", b"a2", 40, 0).await,
        Rotation::Rotated { .. }
    ));
    assert!(matches!(
        rotate(b"a1", b"a3", 60, 50).await,
        Rotation::Reused { .. }
    ));
    // A disabled account's session does not rotate.
    store
        .sessions
        .create_session(&session("s3", "u1", b"b1", &at(70), "192.0.2.1"))
        .await
        .unwrap();
    store.users.set_disabled("u1", Some(&at(71))).await.unwrap();
    assert_eq!(rotate(b"b1", b"b2", 72, 0).await, Rotation::Unknown);
}

async fn concurrent_refreshes_with_one_token_rotate_once(store: Store) {
    add_user(&store, "u1", "alice").await;
    for round in 0..5u8 {
        let id = format!("s{round}");
        let old = vec![b'o', round];
        store
            .sessions
            .create_session(&session(&id, "u1", &old, &at(0), "192.0.2.1"))
            .await
            .unwrap();
        let tasks: Vec<_> = (0..4u8)
            .map(|n| {
                let store = store.clone();
                let old = old.clone();
                tokio::spawn(async move {
                    store
                        .sessions
                        .rotate_refresh(
                            &old,
                            &[b'n', round, n],
                            &at(10),
                            "2026-12-30T00:00:00.000Z",
                            &at(0),
                            &at(0),
                        )
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut outcomes = Vec::new();
        for task in tasks {
            outcomes.push(task.await.unwrap());
        }
        let rotated = outcomes
            .iter()
            .filter(|o| matches!(o, Rotation::Rotated { .. }))
            .count();
        assert_eq!(rotated, 1, "{outcomes:?}");
        assert!(
            outcomes
                .iter()
                .all(|o| matches!(o, Rotation::Rotated { .. } | Rotation::WithinGrace)),
            "{outcomes:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Resume tickets

/// A ticket hash: SHA-256 sized, every byte `n`.
fn ticket_hash(n: u8) -> [u8; 32] {
    [n; 32]
}

fn ticket(user_id: &str, hub: &str, positions: &str, expires_at: &str) -> ResumeTicket {
    ResumeTicket {
        user_id: user_id.into(),
        hub: hub.into(),
        positions: positions.into(),
        expires_at: expires_at.into(),
    }
}

async fn resume_tickets_are_taken_once_and_replaced_by_saving_again(store: Store) {
    add_user(&store, "u1", "alice").await;
    add_user(&store, "u2", "bob").await;
    let sessions = &store.sessions;
    let first = ticket("u1", "chat", r#"{"r1":3,"r2":17}"#, &at(100));
    sessions
        .save_resume_ticket(&ticket_hash(1), &first)
        .await
        .unwrap();
    let other = ticket("u2", "webrtc", "{}", &at(100));
    sessions
        .save_resume_ticket(&ticket_hash(2), &other)
        .await
        .unwrap();
    assert_eq!(
        sessions
            .take_resume_ticket(&ticket_hash(9), &at(10))
            .await
            .unwrap(),
        None,
        "unknown ticket"
    );
    assert_eq!(
        sessions
            .take_resume_ticket(&ticket_hash(1), &at(10))
            .await
            .unwrap(),
        Some(first),
        "stored as saved"
    );
    assert_eq!(
        sessions
            .take_resume_ticket(&ticket_hash(1), &at(11))
            .await
            .unwrap(),
        None,
        "single use"
    );

    // Saving again under the same hash replaces every field.
    let replaced = ticket("u1", "webrtc", r#"{"r3":5}"#, &at(200));
    sessions
        .save_resume_ticket(&ticket_hash(2), &replaced)
        .await
        .unwrap();
    assert_eq!(
        sessions
            .take_resume_ticket(&ticket_hash(2), &at(150))
            .await
            .unwrap(),
        Some(replaced),
        "the later save wins, and moved the expiry"
    );
    assert_eq!(
        sessions
            .take_resume_ticket(&ticket_hash(2), &at(150))
            .await
            .unwrap(),
        None
    );

    // A ticket for an unknown user is refused.
    assert!(matches!(
        sessions
            .save_resume_ticket(&ticket_hash(3), &ticket("nobody", "chat", "{}", &at(100)))
            .await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(
        sessions
            .take_resume_ticket(&ticket_hash(3), &at(10))
            .await
            .unwrap(),
        None
    );
}

async fn numbers_are_given_once_per_id_in_order_for_users_and_as_asked_for_rooms(store: Store) {
    use super::NumericKind::{Room, User};
    let users = &store.users;
    assert_eq!(users.numeric_id(User, "u1").await.unwrap(), None);
    assert_eq!(
        users.assign_number(User, "u1", None).await.unwrap(),
        Some(1)
    );
    assert_eq!(
        users.assign_number(User, "u2", None).await.unwrap(),
        Some(2)
    );
    assert_eq!(
        users.assign_number(User, "u1", None).await.unwrap(),
        Some(1),
        "an id keeps its number"
    );
    assert_eq!(users.numeric_id(User, "u2").await.unwrap(), Some(2));
    assert_eq!(
        users.id_of_number(User, 2).await.unwrap().as_deref(),
        Some("u2")
    );
    assert_eq!(users.id_of_number(User, 3).await.unwrap(), None);
    // Rooms: the number asked for, unless it is taken; kinds do not share numbers.
    let big = (1i64 << 53) - 1;
    assert_eq!(
        users.assign_number(Room, "r1", Some(big)).await.unwrap(),
        Some(big)
    );
    assert_eq!(
        users.assign_number(Room, "r2", Some(big)).await.unwrap(),
        None
    );
    assert_eq!(users.numeric_id(Room, "r2").await.unwrap(), None);
    assert_eq!(
        users.assign_number(Room, "r2", Some(1)).await.unwrap(),
        Some(1)
    );
    assert_eq!(
        users.assign_number(Room, "r1", Some(5)).await.unwrap(),
        Some(big),
        "an id keeps its number"
    );
    assert_eq!(
        users.id_of_number(Room, 1).await.unwrap().as_deref(),
        Some("r2")
    );
    assert_eq!(
        users.id_of_number(User, 1).await.unwrap().as_deref(),
        Some("u1")
    );
    assert_eq!(
        users.id_of_number(Room, big).await.unwrap().as_deref(),
        Some("r1")
    );
}

async fn two_factor_is_enabled_once_with_its_secret_and_steps_and_codes_are_used_once(
    store: Store,
) {
    add_user(&store, "u1", "alice").await;
    let users = &store.users;
    assert_eq!(users.two_factor("u1").await.unwrap(), None);
    assert!(
        !users.use_two_factor_step("u1", 5).await.unwrap(),
        "not enabled"
    );
    assert!(users
        .begin_two_factor("u1", b"first", &at(1))
        .await
        .unwrap());
    // Begun again: the new secret replaces the first, which no longer enables.
    assert!(users
        .begin_two_factor("u1", b"second", &at(2))
        .await
        .unwrap());
    let codes = [vec![1u8; 32], vec![2u8; 32]];
    assert!(!users
        .enable_two_factor("u1", b"first", 100, &codes, &at(3))
        .await
        .unwrap());
    assert!(
        !users.use_two_factor_step("u1", 101).await.unwrap(),
        "pending"
    );
    assert!(users
        .enable_two_factor("u1", b"second", 100, &codes, &at(3))
        .await
        .unwrap());
    assert!(
        !users
            .enable_two_factor("u1", b"second", 100, &codes, &at(3))
            .await
            .unwrap(),
        "enabled once"
    );
    let row = users.two_factor("u1").await.unwrap().unwrap();
    assert_eq!(row.secret, b"second");
    assert_eq!(row.enabled_at.as_deref(), Some(at(3).as_str()));
    assert_eq!(row.last_step, 100);
    assert!(
        !users
            .begin_two_factor("u1", b"third", &at(4))
            .await
            .unwrap(),
        "enabled: kept"
    );
    // A step is used once, and never one at or before the last.
    assert!(!users.use_two_factor_step("u1", 100).await.unwrap());
    assert!(!users.use_two_factor_step("u1", 99).await.unwrap());
    assert!(users.use_two_factor_step("u1", 101).await.unwrap());
    assert!(!users.use_two_factor_step("u1", 101).await.unwrap());
    assert_eq!(users.recovery_codes_left("u1").await.unwrap(), 2);
    assert!(users
        .use_recovery_code("u1", &codes[0], &at(5))
        .await
        .unwrap());
    assert!(!users
        .use_recovery_code("u1", &codes[0], &at(6))
        .await
        .unwrap());
    assert!(!users
        .use_recovery_code("u1", &[9u8; 32], &at(6))
        .await
        .unwrap());
    assert_eq!(users.recovery_codes_left("u1").await.unwrap(), 1);
    assert!(users.disable_two_factor("u1").await.unwrap());
    assert_eq!(users.two_factor("u1").await.unwrap(), None);
    assert_eq!(users.recovery_codes_left("u1").await.unwrap(), 0);
    assert!(!users.disable_two_factor("u1").await.unwrap());
    // A begun setup is not "enabled" when removed.
    assert!(users
        .begin_two_factor("u1", b"again", &at(7))
        .await
        .unwrap());
    assert!(!users.disable_two_factor("u1").await.unwrap());
    assert!(matches!(
        users.begin_two_factor("nobody", b"x", &at(8)).await,
        Err(StoreError::NotFound)
    ));
}

async fn concurrent_uses_of_one_step_or_recovery_code_succeed_once(store: Store) {
    add_user(&store, "u1", "alice").await;
    let code = vec![7u8; 32];
    store
        .users
        .begin_two_factor("u1", b"s", &at(1))
        .await
        .unwrap();
    store
        .users
        .enable_two_factor("u1", b"s", 10, std::slice::from_ref(&code), &at(2))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let (store, code) = (store.clone(), code.clone());
            tokio::spawn(async move {
                if i % 2 == 0 {
                    (
                        true,
                        store.users.use_two_factor_step("u1", 11).await.unwrap(),
                    )
                } else {
                    (
                        false,
                        store
                            .users
                            .use_recovery_code("u1", &code, &at(3))
                            .await
                            .unwrap(),
                    )
                }
            })
        })
        .collect();
    let (mut steps, mut codes) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            (true, true) => steps += 1,
            (false, true) => codes += 1,
            _ => {}
        }
    }
    assert_eq!((steps, codes), (1, 1));
}

async fn deleting_an_account_removes_its_two_factor_secret_and_codes(store: Store) {
    add_user(&store, "u1", "alice").await;
    store
        .users
        .begin_two_factor("u1", b"s", &at(1))
        .await
        .unwrap();
    store
        .users
        .enable_two_factor("u1", b"s", 1, &[vec![1u8; 32]], &at(2))
        .await
        .unwrap();
    store
        .users
        .delete_user("u1", "deleted-u1", &at(3))
        .await
        .unwrap();
    assert_eq!(store.users.two_factor("u1").await.unwrap(), None);
    assert_eq!(store.users.recovery_codes_left("u1").await.unwrap(), 0);
}

async fn concurrent_numbering_gives_every_id_one_distinct_number(store: Store) {
    use super::NumericKind::User;
    // 8 ids, each asked for by 3 tasks at once.
    let tasks: Vec<_> = (0..24)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let id = format!("u{}", i % 8);
                let n = store.users.assign_number(User, &id, None).await.unwrap();
                (id, n.expect("a number"))
            })
        })
        .collect();
    let mut by_id = std::collections::BTreeMap::new();
    for task in tasks {
        let (id, n) = task.await.unwrap();
        assert_eq!(
            *by_id.entry(id.clone()).or_insert(n),
            n,
            "{id} got two numbers"
        );
    }
    let mut numbers: Vec<i64> = by_id.values().copied().collect();
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=8).collect::<Vec<i64>>());
}

async fn concurrent_takes_of_one_resume_ticket_take_it_once(store: Store) {
    add_user(&store, "u1", "alice").await;
    for round in 0..5u8 {
        let saved = ticket("u1", "chat", &format!(r#"{{"r1":{round}}}"#), &at(100));
        store
            .sessions
            .save_resume_ticket(&ticket_hash(round), &saved)
            .await
            .unwrap();
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move {
                    store
                        .sessions
                        .take_resume_ticket(&ticket_hash(round), &at(10))
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut taken = Vec::new();
        for task in tasks {
            taken.extend(task.await.unwrap());
        }
        assert_eq!(taken, [saved], "round {round}");
    }
}

async fn expired_resume_tickets_are_refused_deleted_and_purged(store: Store) {
    add_user(&store, "u1", "alice").await;
    let sessions = &store.sessions;
    let save = |n: u8, expires: u32| async move {
        sessions
            .save_resume_ticket(&ticket_hash(n), &ticket("u1", "chat", "{}", &at(expires)))
            .await
            .unwrap();
    };
    // Valid until just before expires_at.
    save(1, 100).await;
    let taken = sessions
        .take_resume_ticket(&ticket_hash(1), &at(99))
        .await
        .unwrap();
    assert_eq!(taken.map(|t| t.expires_at), Some(at(100)));
    save(1, 100).await;
    assert_eq!(
        sessions
            .take_resume_ticket(&ticket_hash(1), &at(100))
            .await
            .unwrap(),
        None,
        "expired at expires_at"
    );
    // The expired one was deleted: nothing is left to purge, and a later take (even at
    // an earlier `now`) finds nothing.
    assert_eq!(
        sessions
            .take_resume_ticket(&ticket_hash(1), &at(50))
            .await
            .unwrap(),
        None
    );
    assert_eq!(sessions.purge_resume_tickets(&at(1000)).await.unwrap(), 0);

    // Purging deletes exactly the expired ones.
    save(1, 10).await;
    save(2, 20).await;
    save(3, 30).await;
    save(4, 40).await;
    assert_eq!(sessions.purge_resume_tickets(&at(5)).await.unwrap(), 0);
    assert_eq!(sessions.purge_resume_tickets(&at(20)).await.unwrap(), 2);
    assert_eq!(sessions.purge_resume_tickets(&at(20)).await.unwrap(), 0);
    for (n, left) in [(1, false), (2, false), (3, true)] {
        let taken = sessions
            .take_resume_ticket(&ticket_hash(n), &at(5))
            .await
            .unwrap();
        assert_eq!(taken.is_some(), left, "ticket {n}");
    }
    assert_eq!(
        sessions.purge_resume_tickets(&at(40)).await.unwrap(),
        1,
        "ticket 4 (3 was taken)"
    );
    assert_eq!(sessions.purge_resume_tickets(&at(1000)).await.unwrap(), 0);
}

async fn deleting_an_account_removes_its_resume_tickets(store: Store) {
    add_user(&store, "u1", "alice").await;
    add_user(&store, "u2", "bob").await;
    for (n, user) in [(1, "u1"), (2, "u1"), (3, "u2")] {
        store
            .sessions
            .save_resume_ticket(&ticket_hash(n), &ticket(user, "chat", "{}", &at(100)))
            .await
            .unwrap();
    }
    store
        .users
        .delete_user("u1", "deleted-u1", &at(9))
        .await
        .unwrap();
    for (n, left) in [(1, false), (2, false), (3, true)] {
        let taken = store
            .sessions
            .take_resume_ticket(&ticket_hash(n), &at(10))
            .await
            .unwrap();
        assert_eq!(taken.is_some(), left, "ticket {n}");
    }
}

// ---------------------------------------------------------------------------------------
// API keys and blocks

fn api_key(id: &str, user_id: &str, created_at: &str, expires_at: Option<&str>) -> ApiKeyRow {
    ApiKeyRow {
        id: id.into(),
        user_id: user_id.into(),
        name: format!("key {id}"),
        secret_hash: vec![1, 2, 3, id.len() as u8],
        created_at: created_at.into(),
        expires_at: expires_at.map(str::to_owned),
        last_used_at: None,
        revoked_at: None,
    }
}

async fn api_keys_authenticate_until_revoked_or_expired(store: Store) {
    add_user(&store, "u1", "alice").await;
    add_user(&store, "u2", "bob").await;
    let k1 = api_key("k1", "u1", &at(1), None);
    let k2 = api_key("k2", "u1", &at(2), Some(&at(100)));
    let k3 = api_key("k3", "u1", &at(3), None);
    for k in [&k1, &k2, &k3] {
        store.api_keys.create_api_key(k).await.unwrap();
    }
    let listed = store.api_keys.api_keys_for_user("u1").await.unwrap();
    assert_eq!(listed, [k3.clone(), k2.clone(), k1.clone()]);
    let (row, state) = store
        .api_keys
        .api_key_state("k2", &at(50))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row, k2);
    assert_eq!(
        (state.user_id.as_str(), state.role, state.active),
        ("u1", Role::User, true)
    );
    let (_, state) = store
        .api_keys
        .api_key_state("k2", &at(150))
        .await
        .unwrap()
        .unwrap();
    assert!(!state.active, "expired");
    assert_eq!(
        store.api_keys.api_key_state("k9", &at(1)).await.unwrap(),
        None
    );

    store
        .api_keys
        .touch_api_key("k1", &at(10), &at(5))
        .await
        .unwrap();
    // Used again before it went stale: not recorded.
    store
        .api_keys
        .touch_api_key("k1", &at(20), &at(8))
        .await
        .unwrap();
    let (row, _) = store
        .api_keys
        .api_key_state("k1", &at(21))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.last_used_at, Some(at(10)));
    store
        .api_keys
        .touch_api_key("k1", &at(80), &at(70))
        .await
        .unwrap();
    let (row, _) = store
        .api_keys
        .api_key_state("k1", &at(81))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.last_used_at, Some(at(80)));

    assert!(!store
        .api_keys
        .revoke_api_key("u2", "k1", &at(90))
        .await
        .unwrap());
    assert!(store
        .api_keys
        .revoke_api_key("u1", "k1", &at(90))
        .await
        .unwrap());
    assert!(!store
        .api_keys
        .revoke_api_key("u1", "k1", &at(91))
        .await
        .unwrap());
    let (row, state) = store
        .api_keys
        .api_key_state("k1", &at(92))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((row.revoked_at, state.active), (Some(at(90)), false));
    let mut rest = store.api_keys.revoke_api_keys("u1", &at(93)).await.unwrap();
    rest.sort();
    assert_eq!(rest, ["k2", "k3"]);
    assert!(store
        .api_keys
        .api_keys_for_user("u1")
        .await
        .unwrap()
        .is_empty());
    // The account's state counts too.
    store
        .api_keys
        .create_api_key(&api_key("k4", "u2", &at(1), None))
        .await
        .unwrap();
    store.users.set_disabled("u2", Some(&at(2))).await.unwrap();
    let (_, state) = store
        .api_keys
        .api_key_state("k4", &at(3))
        .await
        .unwrap()
        .unwrap();
    assert!(!state.active, "disabled account");
}

async fn blocks_are_idempotent_and_listed_most_recent_first(store: Store) {
    add_user(&store, "u1", "alice").await;
    add_user(&store, "u2", "bob").await;
    add_user(&store, "u3", "carol").await;
    assert!(store.blocks.block("u1", "u2", &at(1)).await.unwrap());
    assert!(!store.blocks.block("u1", "u2", &at(2)).await.unwrap());
    assert!(store.blocks.block("u1", "u3", &at(3)).await.unwrap());
    assert!(matches!(
        store.blocks.block("u1", "nobody", &at(4)).await,
        Err(StoreError::NotFound)
    ));
    let blocked: Vec<String> = store
        .blocks
        .blocked_by("u1")
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.username)
        .collect();
    assert_eq!(blocked, ["carol", "bob"]);
    assert!(store.blocks.is_blocked("u1", "u2").await.unwrap());
    assert!(
        !store.blocks.is_blocked("u2", "u1").await.unwrap(),
        "one way"
    );
    assert!(store.blocks.unblock("u1", "u2").await.unwrap());
    assert!(!store.blocks.unblock("u1", "u2").await.unwrap());
    assert!(!store.blocks.is_blocked("u1", "u2").await.unwrap());
}

// ---------------------------------------------------------------------------------------
// Rooms

async fn last_seqs_reads_many_rooms_at_once(store: Store) {
    add_user(&store, "u1", "alice").await;
    for id in ["r1", "r2"] {
        let new = new_room(id, "u1", Visibility::Public, &at(1));
        store.rooms.create_room(&new).await.unwrap();
    }
    post(&store, "r1", "u1", "one").await;
    post(&store, "r1", "u1", "two").await;
    post(&store, "r2", "u1", "three").await;
    let ids = ["r1", "r2", "nope"].map(String::from);
    let mut seqs = store.rooms.last_seqs(&ids).await.unwrap();
    seqs.sort();
    assert_eq!(seqs, [("r1".to_owned(), 2), ("r2".to_owned(), 1)]);
    assert!(store.rooms.last_seqs(&[]).await.unwrap().is_empty());
}

async fn a_room_starts_with_its_creator_as_owner_and_lists_for_its_members(store: Store) {
    add_user(&store, "u1", "alice").await;
    add_user(&store, "u2", "bob").await;
    add_user(&store, "u3", "carol").await;
    let mut new = new_room("r1", "u1", Visibility::Private, &at(1));
    new.topic = Some("plans".into());
    let created = store.rooms.create_room(&new).await.unwrap();
    assert_eq!(
        (
            created.member_count,
            created.last_seq,
            created.kind,
            created.dm_key.clone()
        ),
        (1, 0, RoomKind::Channel, None)
    );
    assert_eq!(
        store.rooms.room_by_id("r1").await.unwrap(),
        Some(created.clone())
    );
    assert_eq!(store.rooms.room_by_id("nope").await.unwrap(), None);
    let owner = store.rooms.member("r1", "u1").await.unwrap().unwrap();
    assert_eq!(
        (owner.role, owner.username.as_str()),
        (MemberRole::Owner, "alice")
    );

    assert!(store
        .rooms
        .add_member("r1", "u2", MemberRole::Member, &at(2))
        .await
        .unwrap());
    assert!(!store
        .rooms
        .add_member("r1", "u2", MemberRole::Admin, &at(3))
        .await
        .unwrap());
    assert!(matches!(
        store
            .rooms
            .add_member("nope", "u2", MemberRole::Member, &at(3))
            .await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store
            .rooms
            .add_member("r1", "nobody", MemberRole::Member, &at(3))
            .await,
        Err(StoreError::NotFound)
    ));
    assert!(store
        .rooms
        .add_member("r1", "u3", MemberRole::Admin, &at(4))
        .await
        .unwrap());
    let members: Vec<(String, MemberRole)> = store
        .rooms
        .members("r1")
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.user_id, m.role))
        .collect();
    assert_eq!(
        members,
        [
            ("u1".into(), MemberRole::Owner),
            ("u3".into(), MemberRole::Admin),
            ("u2".into(), MemberRole::Member)
        ]
    );
    let bob = store.rooms.member("r1", "u2").await.unwrap().unwrap();
    assert_eq!(
        (bob.joined_at.as_str(), bob.last_read_seq),
        (at(2).as_str(), 0)
    );
    assert!(store.rooms.is_member("r1", "u2").await.unwrap());
    assert!(!store.rooms.is_member("r1", "nobody").await.unwrap());

    let (room, member) = store
        .rooms
        .room_and_member("r1", "u2")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((room.member_count, member), (3, Some(bob.clone())));
    let (_, member) = store
        .rooms
        .room_and_member("r1", "nobody")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(member, None);
    assert_eq!(
        store.rooms.room_and_member("nope", "u2").await.unwrap(),
        None
    );

    let updated = store
        .rooms
        .update_room("r1", "renamed", None, RoomMentions::Members, &at(5))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (updated.name.as_str(), updated.topic.clone()),
        ("renamed", None)
    );
    assert_eq!(
        store
            .rooms
            .update_room("nope", "x", None, RoomMentions::Members, &at(5))
            .await
            .unwrap(),
        None
    );

    // Bob's rooms, paged by (joined_at, room id).
    for (id, secs) in [("r2", 10), ("r3", 10), ("r4", 12)] {
        add_room(&store, id, "u1").await;
        join(&store, id, "u2", secs).await;
    }
    let rooms = store.rooms.rooms_for_user("u2").await.unwrap();
    let ids: Vec<&str> = rooms.iter().map(|r| r.room.id.as_str()).collect();
    assert_eq!(ids, ["r1", "r2", "r3", "r4"]);
    assert_eq!(
        (rooms[0].role, rooms[0].joined_at.as_str()),
        (MemberRole::Member, at(2).as_str())
    );
    let page = store
        .rooms
        .rooms_for_user_page("u2", Some((&at(10), "r2")), 1)
        .await
        .unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].room.id, "r3");
    let page = store
        .rooms
        .rooms_for_user_page("u2", None, 2)
        .await
        .unwrap();
    assert_eq!(
        page.iter().map(|r| r.room.id.as_str()).collect::<Vec<_>>(),
        ["r1", "r2"]
    );
    assert_eq!(
        store
            .rooms
            .member_room("r3", "u2")
            .await
            .unwrap()
            .map(|r| r.room.id),
        Some("r3".into())
    );
    assert_eq!(store.rooms.member_room("r3", "u3").await.unwrap(), None);

    let mut co = store.rooms.co_members("u2").await.unwrap();
    co.sort();
    assert_eq!(co, ["u1", "u3"]);
    assert!(store.rooms.share_a_room("u2", "u3").await.unwrap());
    add_user(&store, "u4", "dave").await;
    assert!(!store.rooms.share_a_room("u2", "u4").await.unwrap());
    assert!(store.rooms.co_members("u4").await.unwrap().is_empty());
}

async fn opening_a_dm_twice_returns_the_same_room(store: Store) {
    add_user(&store, "u1", "alice").await;
    add_user(&store, "u2", "bob").await;
    let dm = |id: &str, by: &str| NewRoom {
        kind: RoomKind::Dm,
        ..new_room(id, by, Visibility::Private, &at(1))
    };
    let (room, created) = store
        .rooms
        .open_dm(&dm("d1", "u1"), "u2", "u1:u2")
        .await
        .unwrap();
    assert!(created);
    assert_eq!(
        (room.id.as_str(), room.kind, room.member_count),
        ("d1", RoomKind::Dm, 2)
    );
    assert_eq!(room.dm_pair(), Some(("u1", "u2")));
    let (again, created) = store
        .rooms
        .open_dm(&dm("d2", "u2"), "u1", "u1:u2")
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(again, room);
    assert_eq!(store.rooms.room_by_id("d2").await.unwrap(), None);
    for user in ["u1", "u2"] {
        let m = store.rooms.member("d1", user).await.unwrap().unwrap();
        assert_eq!(m.role, MemberRole::Owner);
    }
    // With someone who does not exist: nothing is created.
    assert!(matches!(
        store
            .rooms
            .open_dm(&dm("d3", "u1"), "nobody", "nobody:u1")
            .await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.rooms.room_by_id("d3").await.unwrap(), None);
    // Opened from both sides at once: one room.
    add_user(&store, "u3", "carol").await;
    let (d4, d5) = (dm("d4", "u1"), dm("d5", "u3"));
    let (a, b) = tokio::join!(
        store.rooms.open_dm(&d4, "u3", "u1:u3"),
        store.rooms.open_dm(&d5, "u1", "u1:u3"),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.0.id, b.0.id);
    assert!(a.1 ^ b.1, "exactly one created it: {} {}", a.1, b.1);
    // DMs are not in the directory.
    assert!(store
        .rooms
        .public_rooms(None, None, 10)
        .await
        .unwrap()
        .is_empty());
}

async fn leaving_hands_ownership_over_and_revokes_the_leavers_invitations(store: Store) {
    for (id, name) in [
        ("u1", "alice"),
        ("u2", "bob"),
        ("u3", "carol"),
        ("u4", "dave"),
    ] {
        add_user(&store, id, name).await;
    }
    add_room(&store, "r1", "u1").await;
    join(&store, "r1", "u2", 1).await;
    join(&store, "r1", "u3", 2).await;
    store
        .rooms
        .set_member_role("r1", "u3", MemberRole::Admin)
        .await
        .unwrap();
    store
        .rooms
        .create_invitation("i1", "r1", "u1", "u4", &at(3))
        .await
        .unwrap();
    let gone = store.rooms.leave("r1", "u1", None, &at(4)).await.unwrap();
    assert!(gone.removed);
    assert_eq!(
        gone.new_owner,
        Some("u3".into()),
        "the admin, though bob joined first"
    );
    assert_eq!(gone.revoked_invitations, [("i1".into(), "u4".into())]);
    assert_eq!(
        store.rooms.invitation("i1").await.unwrap().unwrap().status,
        "revoked"
    );
    assert!(!store.rooms.is_banned("r1", "u1").await.unwrap());
    // No admin left: the longest-standing member.
    join(&store, "r1", "u4", 5).await;
    let gone = store.rooms.leave("r1", "u3", None, &at(6)).await.unwrap();
    assert_eq!(gone.new_owner, Some("u2".into()));
    // A non-owner leaving changes no owner; a ban comes with the removal.
    let gone = store
        .rooms
        .leave("r1", "u4", Some("u2"), &at(7))
        .await
        .unwrap();
    assert_eq!(
        gone,
        super::Departure {
            removed: true,
            new_owner: None,
            revoked_invitations: Vec::new()
        }
    );
    assert!(store.rooms.is_banned("r1", "u4").await.unwrap());
    assert!(!store.rooms.is_member("r1", "u4").await.unwrap());
    // Leaving again: not a member; a ban of a non-member still lands.
    let gone = store
        .rooms
        .leave("r1", "u3", Some("u2"), &at(8))
        .await
        .unwrap();
    assert!(!gone.removed);
    assert!(store.rooms.is_banned("r1", "u3").await.unwrap());
    assert!(store.rooms.unban("r1", "u4").await.unwrap());
    assert!(!store.rooms.unban("r1", "u4").await.unwrap());
    assert!(!store.rooms.is_banned("r1", "u4").await.unwrap());
    // The last member leaves: nobody to hand over to.
    let gone = store.rooms.leave("r1", "u2", None, &at(9)).await.unwrap();
    assert_eq!((gone.removed, gone.new_owner), (true, None));
    assert_eq!(
        store
            .rooms
            .room_by_id("r1")
            .await
            .unwrap()
            .unwrap()
            .member_count,
        0
    );
}

async fn roles_change_and_ownership_transfers_only_between_members(store: Store) {
    add_user(&store, "u1", "alice").await;
    add_user(&store, "u2", "bob").await;
    add_user(&store, "u3", "carol").await;
    add_room(&store, "r1", "u1").await;
    join(&store, "r1", "u2", 1).await;
    assert!(store
        .rooms
        .set_member_role("r1", "u2", MemberRole::Admin)
        .await
        .unwrap());
    assert_eq!(
        store.rooms.member("r1", "u2").await.unwrap().unwrap().role,
        MemberRole::Admin
    );
    assert!(!store
        .rooms
        .set_member_role("r1", "u3", MemberRole::Admin)
        .await
        .unwrap());
    assert!(!store
        .rooms
        .transfer_ownership("r1", "u1", "u3")
        .await
        .unwrap());
    assert_eq!(
        store.rooms.member("r1", "u1").await.unwrap().unwrap().role,
        MemberRole::Owner,
        "a refused transfer changes nothing"
    );
    assert!(store
        .rooms
        .transfer_ownership("r1", "u1", "u2")
        .await
        .unwrap());
    let roles: Vec<(String, MemberRole)> = store
        .rooms
        .members("r1")
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.user_id, m.role))
        .collect();
    assert_eq!(
        roles,
        [
            ("u2".into(), MemberRole::Owner),
            ("u1".into(), MemberRole::Admin)
        ]
    );
}

async fn invitations_are_pending_once_and_die_with_their_inviter(store: Store) {
    for (id, name) in [
        ("u1", "alice"),
        ("u2", "bob"),
        ("u3", "carol"),
        ("u4", "dave"),
    ] {
        add_user(&store, id, name).await;
    }
    store
        .rooms
        .create_room(&new_room("r1", "u1", Visibility::Private, &at(0)))
        .await
        .unwrap();
    join(&store, "r1", "u2", 1).await;
    let first = store
        .rooms
        .create_invitation("i1", "r1", "u1", "u3", &at(2))
        .await
        .unwrap();
    assert_eq!(
        (
            first.room_name.as_str(),
            first.inviter_username.as_str(),
            first.status.as_str()
        ),
        ("room r1", "alice", "pending")
    );
    // Invited again, by someone else: the pending one is returned.
    let again = store
        .rooms
        .create_invitation("i2", "r1", "u2", "u3", &at(3))
        .await
        .unwrap();
    assert_eq!(again, first);
    assert_eq!(store.rooms.invitation("i2").await.unwrap(), None);
    let i3 = store
        .rooms
        .create_invitation("i3", "r1", "u2", "u4", &at(4))
        .await
        .unwrap();
    let ids = |rows: Vec<super::InvitationRow>| rows.into_iter().map(|i| i.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.rooms.pending_invitations("u3").await.unwrap()),
        ["i1"]
    );
    assert_eq!(
        ids(store.rooms.room_invitations("r1", None).await.unwrap()),
        ["i3", "i1"]
    );
    assert_eq!(
        ids(store
            .rooms
            .room_invitations("r1", Some("u2"))
            .await
            .unwrap()),
        ["i3"]
    );
    // Accepting joins the room; answering twice does nothing.
    assert_eq!(
        store
            .rooms
            .respond_invitation("i1", true, &at(5))
            .await
            .unwrap(),
        Some("accepted".into())
    );
    assert!(store.rooms.is_member("r1", "u3").await.unwrap());
    assert_eq!(
        store
            .rooms
            .respond_invitation("i1", false, &at(6))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .rooms
            .respond_invitation("nope", true, &at(6))
            .await
            .unwrap(),
        None
    );
    assert!(store
        .rooms
        .pending_invitations("u3")
        .await
        .unwrap()
        .is_empty());
    // An inviter whose account is disabled: hidden, and accepting it revokes it.
    store.users.set_disabled("u2", Some(&at(7))).await.unwrap();
    assert!(store
        .rooms
        .pending_invitations("u4")
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store.rooms.invitation("i3").await.unwrap().unwrap().status,
        "pending",
        "still pending until someone acts on it"
    );
    assert_eq!(
        store
            .rooms
            .respond_invitation("i3", true, &at(8))
            .await
            .unwrap(),
        Some("revoked".into())
    );
    assert!(!store.rooms.is_member("r1", "u4").await.unwrap());
    // A new invitation where the pending one's inviter left: that one is revoked first.
    store.users.set_disabled("u2", None).await.unwrap();
    store
        .rooms
        .create_invitation("i4", "r1", "u2", "u4", &at(9))
        .await
        .unwrap();
    store.rooms.leave("r1", "u2", None, &at(10)).await.unwrap();
    assert_eq!(
        store.rooms.invitation("i4").await.unwrap().unwrap().status,
        "revoked",
        "revoked by the inviter's departure"
    );
    let i5 = store
        .rooms
        .create_invitation("i5", "r1", "u1", "u4", &at(11))
        .await
        .unwrap();
    assert_eq!((i5.id.as_str(), i5.status.as_str()), ("i5", "pending"));
    // Declining, and revoking.
    assert_eq!(
        store
            .rooms
            .respond_invitation("i5", false, &at(12))
            .await
            .unwrap(),
        Some("declined".into())
    );
    store
        .rooms
        .create_invitation("i6", "r1", "u1", "u4", &at(13))
        .await
        .unwrap();
    assert!(store.rooms.revoke_invitation("i6", &at(14)).await.unwrap());
    assert!(!store.rooms.revoke_invitation("i6", &at(15)).await.unwrap());
    assert_eq!(i3.invitee_id, "u4");
}

async fn the_public_directory_pages_newest_first_and_filters_by_name(store: Store) {
    add_user(&store, "u1", "alice").await;
    for (id, name, visibility, secs) in [
        ("r1", "General", Visibility::Public, 1),
        ("r2", "random", Visibility::Public, 2),
        ("r3", "secret general", Visibility::Private, 3),
        ("r4", "general-2", Visibility::Public, 4),
        ("r5", "CAFÉ", Visibility::Public, 4),
    ] {
        let room = NewRoom {
            name: name.into(),
            ..new_room(id, "u1", visibility, &at(secs))
        };
        store.rooms.create_room(&room).await.unwrap();
    }
    let ids = |rows: Vec<super::RoomRow>| rows.into_iter().map(|r| r.id).collect::<Vec<_>>();
    let page = store.rooms.public_rooms(None, None, 3).await.unwrap();
    assert_eq!(ids(page), ["r5", "r4", "r2"]);
    let page = store
        .rooms
        .public_rooms(None, Some((&at(4), "r4")), 3)
        .await
        .unwrap();
    assert_eq!(ids(page), ["r2", "r1"]);
    let page = store
        .rooms
        .public_rooms(Some("GENERAL"), None, 10)
        .await
        .unwrap();
    assert_eq!(
        ids(page),
        ["r4", "r1"],
        "ASCII case-insensitive, private rooms unlisted"
    );
    let page = store
        .rooms
        .public_rooms(Some("café"), None, 10)
        .await
        .unwrap();
    assert!(page.is_empty(), "only ASCII letters fold: É is not é");
    let page = store
        .rooms
        .public_rooms(Some("CAF"), None, 10)
        .await
        .unwrap();
    assert_eq!(ids(page), ["r5"]);
}

async fn deleting_a_room_removes_everything_in_it(store: Store) {
    add_user(&store, "u1", "alice").await;
    add_user(&store, "u2", "bob").await;
    add_room(&store, "r1", "u1").await;
    join(&store, "r1", "u2", 1).await;
    let m = post(&store, "r1", "u2", "hi").await;
    store
        .messages
        .add_reaction("r1", &m.id, "u1", "👍", &at(2))
        .await
        .unwrap();
    store
        .rooms
        .create_invitation("i1", "r1", "u1", "u2", &at(2))
        .await
        .unwrap();
    store
        .rooms
        .leave("r1", "u2", Some("u1"), &at(3))
        .await
        .unwrap();
    assert!(store.rooms.delete_room("r1").await.unwrap());
    assert!(!store.rooms.delete_room("r1").await.unwrap());
    assert_eq!(store.rooms.room_by_id("r1").await.unwrap(), None);
    assert!(store.rooms.members("r1").await.unwrap().is_empty());
    assert_eq!(store.messages.message("r1", &m.id).await.unwrap(), None);
    assert!(store.messages.reactions(&[m.id]).await.unwrap().is_empty());
    assert_eq!(store.rooms.invitation("i1").await.unwrap(), None);
    assert!(!store.rooms.is_banned("r1", "u2").await.unwrap());
    assert!(store.rooms.rooms_for_user("u1").await.unwrap().is_empty());
    // A message to the deleted room fails alone.
    assert!(matches!(
        send(&store, message("r1", "u1", "late", None)).await,
        Err(StoreError::NotFound)
    ));
}

async fn read_markers_move_forward_only_and_count_unread_messages_of_others(store: Store) {
    add_user(&store, "u1", "alice").await;
    add_user(&store, "u2", "bob").await;
    add_room(&store, "r1", "u1").await;
    join(&store, "r1", "u2", 1).await;
    let mut ids = Vec::new();
    for (sender, text) in [
        ("u1", "a"),
        ("u2", "b"),
        ("u1", "c"),
        ("u1", "d"),
        ("u1", "e"),
    ] {
        ids.push(post(&store, "r1", sender, text).await.id);
    }
    let unread = |store: Store| async move {
        store
            .rooms
            .member_room("r1", "u2")
            .await
            .unwrap()
            .unwrap()
            .unread_count
    };
    assert_eq!(
        unread(store.clone()).await,
        4,
        "bob's own message is not unread"
    );
    assert_eq!(
        store.rooms.mark_read("r1", "u2", 3).await.unwrap(),
        Some((3, 2, 0))
    );
    assert_eq!(
        store.rooms.mark_read("r1", "u2", 1).await.unwrap(),
        Some((3, 2, 0)),
        "never backwards"
    );
    store
        .messages
        .delete_message("r1", &ids[4], &at(9))
        .await
        .unwrap();
    assert_eq!(
        unread(store.clone()).await,
        1,
        "deleted messages are not unread"
    );
    // Capped at the room's last seq (the deletion took seq 6).
    assert_eq!(
        store.rooms.mark_read("r1", "u2", 99).await.unwrap(),
        Some((6, 0, 0))
    );
    let me = store.rooms.member_room("r1", "u2").await.unwrap().unwrap();
    assert_eq!((me.last_read_seq, me.unread_count), (6, 0));
    assert_eq!(
        store.rooms.mark_read("r1", "nobody", 1).await.unwrap(),
        None
    );
    assert_eq!(store.rooms.mark_read("nope", "u2", 1).await.unwrap(), None);
}

// ---------------------------------------------------------------------------------------
// Messages

/// Many messages queued at once land in few transactions, yet each room's seqs are
/// gap-free in queue order, a retried `client_id` resolves to the first message, and a
/// message to a missing room fails alone without taking its batch down.
async fn a_batch_keeps_queue_order_per_room_and_fails_only_the_bad_message(store: Store) {
    add_user(&store, "u1", "alice").await;
    for room in ["r1", "r2"] {
        add_room(&store, room, "u1").await;
    }
    let mut pending: Vec<(&str, usize, PendingMessage)> = Vec::new();
    for n in 0..300 {
        let room = if n % 3 == 0 { "r2" } else { "r1" };
        let m = message(room, "u1", &format!("message {n}"), Some(&format!("c{n}")));
        pending.push((room, n, store.messages.queue_message(m).await.unwrap()));
        if n == 150 {
            let bad = message("no-such-room", "u1", "lost", None);
            pending.push(("none", n, store.messages.queue_message(bad).await.unwrap()));
            let retry = message("r1", "u1", "message 10 again", Some("c10"));
            pending.push((
                "retry",
                10,
                store.messages.queue_message(retry).await.unwrap(),
            ));
        }
    }
    let mut next_seq = std::collections::HashMap::from([("r1", 1), ("r2", 1)]);
    let mut first_of_10 = None;
    for (room, n, p) in pending {
        let result = p.committed().await;
        match room {
            "none" => assert!(
                matches!(result, Err(StoreError::NotFound)),
                "a message to a missing room: {result:?}"
            ),
            "retry" => {
                let (row, created) = result.unwrap();
                assert!(!created, "a retried client_id stored a second message");
                assert_eq!(Some(&row.id), first_of_10.as_ref(), "the retry's answer");
                assert_eq!(row.content, "message 10");
            }
            room => {
                let (row, created) = result.unwrap();
                assert!(created);
                assert_eq!(row.content, format!("message {n}"));
                assert_eq!(row.sender_username, "alice");
                let expected = next_seq.get_mut(room).unwrap();
                assert_eq!(
                    (row.seq, row.updated_seq),
                    (*expected, *expected),
                    "message {n}"
                );
                *expected += 1;
                if n == 10 {
                    first_of_10 = Some(row.id.clone());
                }
            }
        }
    }
    assert_eq!(last_seq(&store, "r1").await, 200);
    assert_eq!(last_seq(&store, "r2").await, 100);
    // What was answered is what is stored.
    let (page, _) = store
        .messages
        .messages_page(
            "r2",
            PageQuery {
                before: None,
                after: Some(0),
                limit: 3,
            },
        )
        .await
        .unwrap();
    let contents: Vec<&str> = page.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(contents, ["message 0", "message 3", "message 6"]);
}

/// The send fast path's authorization inside the insert: in one batch, a member's
/// messages are stored, a non-member's and those to a DM fail alone with `NotFound` and
/// store nothing, and the member's seqs have no gap where the refused ones were.
async fn member_only_messages_of_non_members_fail_alone_and_leave_no_seq_gap(store: Store) {
    add_user(&store, "u1", "alice").await;
    add_user(&store, "u2", "bob").await;
    add_room(&store, "r1", "u1").await;
    let dm = NewRoom {
        kind: RoomKind::Dm,
        ..new_room("dm", "u1", Visibility::Private, &at(0))
    };
    store.rooms.open_dm(&dm, "u2", "u1:u2").await.unwrap();
    let mut pending = Vec::new();
    for n in 0..40 {
        let (room, sender) = match n % 4 {
            1 => ("r1", "u2"),
            3 if n % 8 == 3 => ("dm", "u1"),
            _ => ("r1", "u1"),
        };
        let mut m = message(room, sender, &format!("m{n}"), Some(&format!("c{n}")));
        m.member_only = true;
        pending.push((room, sender, store.messages.queue_message(m).await.unwrap()));
    }
    let mut next_seq = 1;
    for (room, sender, p) in pending {
        let result = p.committed().await;
        if room == "r1" && sender == "u1" {
            let (row, created) = result.unwrap();
            assert!(created);
            assert_eq!(row.seq, next_seq, "a member's message after refused ones");
            next_seq += 1;
        } else {
            assert!(
                matches!(result, Err(StoreError::NotFound)),
                "{sender} in {room}: {result:?}"
            );
        }
    }
    assert_eq!(last_seq(&store, "r1").await, next_seq - 1);
    assert_eq!(
        last_seq(&store, "dm").await,
        0,
        "nothing was stored in the DM"
    );
    // Without `member_only` the caller has checked: the DM message is stored.
    let (row, _) = send(&store, message("dm", "u1", "hi", None)).await.unwrap();
    assert_eq!(row.seq, 1);
    // Bob joins: his member_only messages go through.
    join(&store, "r1", "u2", 5).await;
    let mut m = message("r1", "u2", "now a member", None);
    m.member_only = true;
    let (row, _) = send(&store, m).await.unwrap();
    assert_eq!(row.seq, next_seq);
}

async fn a_retried_client_id_returns_the_first_message(store: Store) {
    add_user(&store, "u1", "alice").await;
    add_user(&store, "u2", "bob").await;
    add_room(&store, "r1", "u1").await;
    add_room(&store, "r2", "u1").await;
    join(&store, "r1", "u2", 1).await;
    let (first, created) = send(&store, message("r1", "u1", "once", Some("c1")))
        .await
        .unwrap();
    assert!(created);
    let (again, created) = send(&store, message("r1", "u1", "twice", Some("c1")))
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(again, first);
    // The key is (room, sender, client_id).
    let (other_sender, created) = send(&store, message("r1", "u2", "b", Some("c1")))
        .await
        .unwrap();
    assert!(created);
    assert_eq!(other_sender.seq, 2);
    let (other_room, created) = send(&store, message("r2", "u1", "c", Some("c1")))
        .await
        .unwrap();
    assert!(created);
    assert_eq!(other_room.seq, 1);
    // With member_only, a repeat fails rather than answer with the first message.
    let mut m = message("r1", "u1", "thrice", Some("c1"));
    m.member_only = true;
    assert!(matches!(send(&store, m).await, Err(StoreError::NotFound)));
    // Repeats inside one batch: the first is stored, the rest answered with it.
    let mut pending = Vec::new();
    for n in 0..5 {
        let m = message("r1", "u2", &format!("try {n}"), Some("c2"));
        pending.push(store.messages.queue_message(m).await.unwrap());
    }
    let mut answers = Vec::new();
    for p in pending {
        answers.push(p.committed().await.unwrap());
    }
    assert!(answers[0].1);
    assert!(answers[1..]
        .iter()
        .all(|(row, created)| !created && *row == answers[0].0));
    assert_eq!(answers[0].0.content, "try 0");
    assert_eq!(last_seq(&store, "r1").await, 3, "stored once");
}

async fn messages_with_an_unknown_sender_or_attachment_fail_alone(store: Store) {
    add_user(&store, "u1", "alice").await;
    add_room(&store, "r1", "u1").await;
    let attachment = AttachmentRow {
        id: "a1".into(),
        uploader_id: "u1".into(),
        filename: "cat.png".into(),
        content_type: "image/png".into(),
        size: 1234,
        storage_key: "k-a1".into(),
        created_at: at(1),
    };
    store
        .attachments
        .create_attachment(&attachment)
        .await
        .unwrap();
    let with_file = |id: &str| NewMessage {
        message_type: MessageType::Attachment,
        attachment_id: Some(id.into()),
        ..message("r1", "u1", "a file", None)
    };
    let call = NewMessage {
        message_type: MessageType::Call,
        call: Some(CallLog {
            call_id: "call-1".into(),
            kind: CallKind::Video,
            event: CallLogEvent::Ended,
            duration_secs: Some(42),
        }),
        reply_to: Some("whatever".into()),
        ..message("r1", "u1", "Call ended", None)
    };
    let queued = [
        message("r1", "nobody", "who?", None),
        with_file("a1"),
        with_file("a9"),
        call.clone(),
    ];
    let mut pending = Vec::new();
    for m in queued {
        pending.push(store.messages.queue_message(m).await.unwrap());
    }
    let mut results = Vec::new();
    for p in pending {
        results.push(p.committed().await);
    }
    assert!(
        matches!(results[0], Err(StoreError::NotFound)),
        "{:?}",
        results[0]
    );
    assert!(
        matches!(results[2], Err(StoreError::NotFound)),
        "{:?}",
        results[2]
    );
    let (file, _) = results[1].as_ref().unwrap();
    let (logged, _) = results[3].as_ref().unwrap();
    assert_eq!((file.seq, logged.seq), (1, 2));
    let stored = store
        .messages
        .message("r1", &file.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&stored, file);
    assert_eq!(
        (stored.message_type, stored.attachment_id.as_deref()),
        (MessageType::Attachment, Some("a1"))
    );
    let stored = store
        .messages
        .message("r1", &logged.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&stored, logged);
    assert_eq!((stored.call, stored.reply_to), (call.call, call.reply_to));
    assert_eq!(last_seq(&store, "r1").await, 2);
}

async fn edits_keep_earlier_versions_and_take_the_next_seq(store: Store) {
    add_user(&store, "u1", "alice").await;
    add_room(&store, "r1", "u1").await;
    add_room(&store, "r2", "u1").await;
    let m = post(&store, "r1", "u1", "v1").await;
    post(&store, "r1", "u1", "other").await;
    let edited = store
        .messages
        .edit_message("r1", &m.id, "v2", &Default::default(), &[], &at(10))
        .await
        .unwrap();
    assert_eq!(
        (
            edited.content.as_str(),
            edited.edited_at.clone(),
            edited.seq,
            edited.updated_seq
        ),
        ("v2", Some(at(10)), 1, 3)
    );
    let edited = store
        .messages
        .edit_message("r1", &m.id, "v3", &Default::default(), &[], &at(20))
        .await
        .unwrap();
    assert_eq!(edited.updated_seq, 4);
    let versions: Vec<(i64, String, String)> = store
        .messages
        .edits(&m.id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.version, e.content, e.written_at))
        .collect();
    assert_eq!(
        versions,
        [(1, "v1".into(), at(1)), (2, "v2".into(), at(10))]
    );
    assert_eq!(last_seq(&store, "r1").await, 4);
    assert!(matches!(
        store
            .messages
            .edit_message("r2", &m.id, "x", &Default::default(), &[], &at(30))
            .await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store
            .messages
            .edit_message("r1", "nope", "x", &Default::default(), &[], &at(30))
            .await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(last_seq(&store, "r1").await, 4, "failed edits take no seq");
    assert_eq!(store.messages.message("r2", &m.id).await.unwrap(), None);
    assert!(store.messages.edits("nope").await.unwrap().is_empty());
}

async fn a_message_is_located_by_its_id_alone_at_its_creation_seq(store: Store) {
    add_user(&store, "u1", "alice").await;
    add_room(&store, "r1", "u1").await;
    add_room(&store, "r2", "u1").await;
    let first = post(&store, "r1", "u1", "one").await;
    let elsewhere = post(&store, "r2", "u1", "there").await;
    let second = post(&store, "r1", "u1", "two").await;
    let position = |id: String| {
        let store = store.clone();
        async move { store.messages.message_position(&id).await.unwrap() }
    };
    assert_eq!(position(first.id.clone()).await, Some(("r1".into(), 1)));
    assert_eq!(position(elsewhere.id.clone()).await, Some(("r2".into(), 1)));
    assert_eq!(position(second.id.clone()).await, Some(("r1".into(), 2)));
    // Changes take later seqs; the position stays the creation's, tombstones included.
    store
        .messages
        .edit_message("r1", &first.id, "one!", &Default::default(), &[], &at(2))
        .await
        .unwrap();
    store
        .messages
        .delete_message("r1", &second.id, &at(3))
        .await
        .unwrap();
    assert_eq!(last_seq(&store, "r1").await, 4);
    assert_eq!(position(first.id.clone()).await, Some(("r1".into(), 1)));
    assert_eq!(position(second.id.clone()).await, Some(("r1".into(), 2)));
    assert_eq!(position("nope".into()).await, None);
    assert_eq!(position(String::new()).await, None);
    assert_eq!(position("a\0b".into()).await, None, "a NUL matches nothing");
}

async fn deleting_a_message_leaves_a_tombstone_without_reactions_or_edits(store: Store) {
    add_user(&store, "u1", "alice").await;
    add_room(&store, "r1", "u1").await;
    let m = post(&store, "r1", "u1", "oops").await;
    store
        .messages
        .edit_message("r1", &m.id, "oops!", &Default::default(), &[], &at(2))
        .await
        .unwrap();
    store
        .messages
        .add_reaction("r1", &m.id, "u1", "😀", &at(3))
        .await
        .unwrap();
    let tombstone = store
        .messages
        .delete_message("r1", &m.id, &at(4))
        .await
        .unwrap();
    assert_eq!(
        (
            tombstone.content.as_str(),
            tombstone.deleted_at.clone(),
            tombstone.updated_seq
        ),
        ("", Some(at(4)), 4)
    );
    assert!(store.messages.edits(&m.id).await.unwrap().is_empty());
    assert!(store
        .messages
        .reactions(std::slice::from_ref(&m.id))
        .await
        .unwrap()
        .is_empty());
    // Deleting again keeps the first deletion time but is a change (next seq).
    let again = store
        .messages
        .delete_message("r1", &m.id, &at(5))
        .await
        .unwrap();
    assert_eq!((again.deleted_at, again.updated_seq), (Some(at(4)), 5));
    assert!(matches!(
        store.messages.delete_message("r1", "nope", &at(6)).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(last_seq(&store, "r1").await, 5);
}

async fn reactions_take_a_seq_only_when_they_change_something(store: Store) {
    add_user(&store, "u1", "alice").await;
    add_user(&store, "u2", "bob").await;
    add_room(&store, "r1", "u1").await;
    let m1 = post(&store, "r1", "u1", "one").await;
    let m2 = post(&store, "r1", "u1", "two").await;
    let r = &store.messages;
    assert_eq!(
        r.add_reaction("r1", &m1.id, "u2", "👍", &at(3))
            .await
            .unwrap(),
        Some(3)
    );
    assert_eq!(
        r.add_reaction("r1", &m1.id, "u2", "👍", &at(4))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        r.add_reaction("r1", &m1.id, "u1", "👍", &at(5))
            .await
            .unwrap(),
        Some(4)
    );
    assert_eq!(
        r.add_reaction("r1", &m2.id, "u2", "❤️", &at(6))
            .await
            .unwrap(),
        Some(5)
    );
    assert_eq!(
        r.add_reaction("r1", &m1.id, "u2", "🎉", &at(7))
            .await
            .unwrap(),
        Some(6)
    );
    assert_eq!(
        r.message("r1", &m1.id).await.unwrap().unwrap().updated_seq,
        6
    );
    let list: Vec<(String, String, String)> = r
        .reactions(&[m1.id.clone(), m2.id.clone()])
        .await
        .unwrap()
        .into_iter()
        .map(|x| (x.message_id, x.emoji, x.user_id))
        .collect();
    assert_eq!(
        list,
        [
            (m1.id.clone(), "👍".into(), "u2".into()),
            (m1.id.clone(), "👍".into(), "u1".into()),
            (m2.id.clone(), "❤️".into(), "u2".into()),
            (m1.id.clone(), "🎉".into(), "u2".into()),
        ],
        "oldest first"
    );
    assert!(r.reactions(&[]).await.unwrap().is_empty());
    assert_eq!(
        r.remove_reaction("r1", &m1.id, "u2", "👍").await.unwrap(),
        Some(7)
    );
    assert_eq!(
        r.remove_reaction("r1", &m1.id, "u2", "👍").await.unwrap(),
        None
    );
    assert_eq!(last_seq(&store, "r1").await, 7);
    assert_eq!(
        r.reactions(std::slice::from_ref(&m1.id))
            .await
            .unwrap()
            .len(),
        2
    );
}

async fn history_pages_in_both_directions(store: Store) {
    add_user(&store, "u1", "alice").await;
    add_room(&store, "r1", "u1").await;
    for n in 1..=7 {
        post(&store, "r1", "u1", &format!("m{n}")).await;
    }
    let page = |before: Option<i64>, after: Option<i64>, limit: i64| {
        let store = store.clone();
        async move {
            let (rows, more) = store
                .messages
                .messages_page(
                    "r1",
                    PageQuery {
                        before,
                        after,
                        limit,
                    },
                )
                .await
                .unwrap();
            (rows.into_iter().map(|m| m.seq).collect::<Vec<_>>(), more)
        }
    };
    assert_eq!(page(None, None, 3).await, (vec![5, 6, 7], true));
    assert_eq!(page(Some(5), None, 3).await, (vec![2, 3, 4], true));
    assert_eq!(page(Some(2), None, 3).await, (vec![1], false));
    assert_eq!(page(None, Some(0), 3).await, (vec![1, 2, 3], true));
    assert_eq!(page(None, Some(4), 3).await, (vec![5, 6, 7], false));
    assert_eq!(page(None, Some(7), 3).await, (vec![], false));
    // Both bounds: a window, paged backwards.
    assert_eq!(page(Some(7), Some(2), 2).await, (vec![5, 6], true));
    assert_eq!(
        page(None, None, 100).await,
        (vec![1, 2, 3, 4, 5, 6, 7], false)
    );
}

async fn changes_replay_in_seq_order_from_one_snapshot(store: Store) {
    add_user(&store, "u1", "alice").await;
    add_room(&store, "r1", "u1").await;
    let a = post(&store, "r1", "u1", "a").await; // 1
    let b = post(&store, "r1", "u1", "b").await; // 2
    let c = post(&store, "r1", "u1", "c").await; // 3
    store
        .messages
        .edit_message("r1", &a.id, "a2", &Default::default(), &[], &at(5))
        .await
        .unwrap(); // 4
    store
        .messages
        .add_reaction("r1", &b.id, "u1", "👍", &at(6))
        .await
        .unwrap(); // 5
    let changes = |since: i64, limit: i64| {
        let store = store.clone();
        async move {
            let (rows, last) = store
                .messages
                .changes_since("r1", since, limit)
                .await
                .unwrap();
            let rows: Vec<(String, i64)> =
                rows.into_iter().map(|m| (m.id, m.updated_seq)).collect();
            (rows, last)
        }
    };
    assert_eq!(
        changes(0, 100).await,
        (
            vec![(c.id.clone(), 3), (a.id.clone(), 4), (b.id.clone(), 5)],
            5
        )
    );
    assert_eq!(
        changes(3, 100).await,
        (vec![(a.id.clone(), 4), (b.id.clone(), 5)], 5)
    );
    assert_eq!(changes(0, 1).await, (vec![(c.id.clone(), 3)], 5));
    assert_eq!(changes(5, 100).await, (vec![], 5));
    assert!(matches!(
        store.messages.changes_since("nope", 0, 10).await,
        Err(StoreError::NotFound)
    ));
}

/// Messages, edits and reactions racing in one room: every change gets its own seq, the
/// seqs have no gap, and the room's counter ends at the number of changes.
async fn concurrent_changes_to_one_room_take_distinct_gap_free_seqs(store: Store) {
    add_user(&store, "u1", "alice").await;
    add_room(&store, "r1", "u1").await;
    let target = post(&store, "r1", "u1", "react to me").await;
    let emojis = ["👍", "❤️", "🎉", "😀", "🚀", "👀", "🔥", "✅"];
    let mut tasks = tokio::task::JoinSet::new();
    for (n, emoji) in emojis.into_iter().enumerate() {
        let store = store.clone();
        let id = target.id.clone();
        tasks.spawn(async move {
            let seq = store
                .messages
                .add_reaction("r1", &id, "u1", emoji, &at(n as u32))
                .await
                .unwrap()
                .expect("a new reaction");
            vec![seq]
        });
    }
    for round in 0..4 {
        let store = store.clone();
        let id = target.id.clone();
        tasks.spawn(async move {
            let row = store
                .messages
                .edit_message(
                    "r1",
                    &id,
                    &format!("edit {round}"),
                    &Default::default(),
                    &[],
                    &at(round),
                )
                .await
                .unwrap();
            vec![row.updated_seq]
        });
    }
    for task in 0..4 {
        let store = store.clone();
        tasks.spawn(async move {
            let mut seqs = Vec::new();
            for n in 0..10 {
                let m = message("r1", "u1", &format!("{task}.{n}"), None);
                seqs.push(send(&store, m).await.unwrap().0.seq);
            }
            seqs
        });
    }
    let mut seqs = vec![target.seq];
    while let Some(done) = tasks.join_next().await {
        seqs.extend(done.unwrap());
    }
    seqs.sort_unstable();
    let expected: Vec<i64> = (1..=1 + 8 + 4 + 40).collect();
    assert_eq!(seqs, expected);
    assert_eq!(last_seq(&store, "r1").await, 53);
    let versions = store.messages.edits(&target.id).await.unwrap();
    assert_eq!(
        versions.iter().map(|e| e.version).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
}

async fn closing_commits_what_is_queued_then_refuses(store: Store) {
    add_user(&store, "u1", "alice").await;
    add_room(&store, "r1", "u1").await;
    let slot = store.messages.reserve_message().await.unwrap();
    let mut pending = vec![slot.queue(message("r1", "u1", "reserved", None))];
    for n in 0..20 {
        let m = message("r1", "u1", &format!("m{n}"), None);
        pending.push(store.messages.queue_message(m).await.unwrap());
    }
    let closing = store.clone();
    let close = tokio::spawn(async move { closing.database.close().await });
    let mut seqs = Vec::new();
    for p in pending {
        seqs.push(p.committed().await.unwrap().0.seq);
    }
    assert_eq!(
        seqs,
        (1..=21).collect::<Vec<i64>>(),
        "all committed, in queue order"
    );
    close.await.unwrap();
    let late = store
        .messages
        .queue_message(message("r1", "u1", "late", None))
        .await;
    assert!(matches!(late, Err(StoreError::Unavailable(_))), "{late:?}");
    assert!(matches!(
        store.messages.reserve_message().await,
        Err(StoreError::Unavailable(_))
    ));
}

// ---------------------------------------------------------------------------------------
// Reports and attachments

async fn reports_are_one_per_reporter_and_resolved_once(store: Store) {
    add_user(&store, "u1", "alice").await;
    add_user(&store, "u2", "bob").await;
    add_user(&store, "u3", "mod").await;
    add_room(&store, "pub", "u1").await;
    store
        .rooms
        .create_room(&new_room("priv", "u1", Visibility::Private, &at(0)))
        .await
        .unwrap();
    let m1 = post(&store, "pub", "u1", "rude").await;
    let m2 = post(&store, "priv", "u1", "ruder").await;
    let report = |id: &str, room: &str, message: &str| NewReport {
        id: id.into(),
        room_id: room.into(),
        message_id: message.into(),
        reporter_id: "u2".into(),
        reason: "spam".into(),
        content: "as reported".into(),
        created_at: at(5),
    };
    let p1 = store
        .reports
        .create_report(&report("p1", "pub", &m1.id))
        .await
        .unwrap();
    assert_eq!(
        (
            p1.room_name.as_str(),
            p1.public_channel,
            p1.author_id.as_str(),
            p1.author_username.as_str(),
            p1.reporter_username.as_str(),
            p1.content.as_str(),
            p1.status.as_str(),
            p1.resolved_by.clone()
        ),
        (
            "room pub",
            true,
            "u1",
            "alice",
            "bob",
            "as reported",
            "open",
            None
        )
    );
    assert!(matches!(
        store
            .reports
            .create_report(&report("p9", "pub", &m1.id))
            .await,
        Err(StoreError::Conflict("report"))
    ));
    assert!(matches!(
        store
            .reports
            .create_report(&report("p9", "pub", "nope"))
            .await,
        Err(StoreError::NotFound)
    ));
    let p2 = store
        .reports
        .create_report(&report("p2", "priv", &m2.id))
        .await
        .unwrap();
    assert!(!p2.public_channel);
    let ids = |rows: Vec<super::ReportRow>| rows.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.reports.reports(None, false, None, 10).await.unwrap()),
        ["p1", "p2"]
    );
    assert_eq!(
        ids(store.reports.reports(None, true, None, 10).await.unwrap()),
        ["p1"]
    );
    assert_eq!(
        ids(store
            .reports
            .reports(None, false, Some("p1"), 10)
            .await
            .unwrap()),
        ["p2"]
    );
    assert_eq!(
        ids(store.reports.reports(None, false, None, 1).await.unwrap()),
        ["p1"]
    );
    assert!(store
        .reports
        .resolve_report("p1", "u3", &at(9))
        .await
        .unwrap());
    assert!(!store
        .reports
        .resolve_report("p1", "u3", &at(10))
        .await
        .unwrap());
    assert!(!store
        .reports
        .resolve_report("nope", "u3", &at(10))
        .await
        .unwrap());
    let resolved = store.reports.report("p1").await.unwrap().unwrap();
    assert_eq!(
        (
            resolved.status.as_str(),
            resolved.resolved_by,
            resolved.resolved_at
        ),
        ("resolved", Some("u3".into()), Some(at(9)))
    );
    assert_eq!(
        ids(store
            .reports
            .reports(Some("open"), false, None, 10)
            .await
            .unwrap()),
        ["p2"]
    );
    assert_eq!(
        ids(store
            .reports
            .reports(Some("resolved"), false, None, 10)
            .await
            .unwrap()),
        ["p1"]
    );
    assert_eq!(store.reports.report("nope").await.unwrap(), None);
}

async fn attachments_download_for_uploader_and_members_of_rooms_where_posted(store: Store) {
    add_user(&store, "u1", "alice").await;
    add_user(&store, "u2", "bob").await;
    add_user(&store, "u3", "carol").await;
    add_room(&store, "r1", "u1").await;
    join(&store, "r1", "u2", 1).await;
    let file = AttachmentRow {
        id: "a1".into(),
        uploader_id: "u1".into(),
        filename: "notes.txt".into(),
        content_type: "text/plain".into(),
        size: 5_000_000_000,
        storage_key: "k-a1".into(),
        created_at: at(2),
    };
    store.attachments.create_attachment(&file).await.unwrap();
    assert_eq!(
        store.attachments.attachment("a1").await.unwrap(),
        Some(file)
    );
    assert_eq!(store.attachments.attachment("a9").await.unwrap(), None);
    assert!(
        store.attachments.may_download("a1", "u1").await.unwrap(),
        "uploader"
    );
    assert!(
        !store.attachments.may_download("a1", "u2").await.unwrap(),
        "not posted yet"
    );
    let posted = NewMessage {
        message_type: MessageType::Attachment,
        attachment_id: Some("a1".into()),
        ..message("r1", "u1", "", None)
    };
    let (row, _) = send(&store, posted).await.unwrap();
    assert!(
        store.attachments.may_download("a1", "u2").await.unwrap(),
        "a member"
    );
    assert!(
        !store.attachments.may_download("a1", "u3").await.unwrap(),
        "not a member"
    );
    assert!(!store.attachments.may_download("a9", "u1").await.unwrap());
    store
        .messages
        .delete_message("r1", &row.id, &at(3))
        .await
        .unwrap();
    assert!(
        !store.attachments.may_download("a1", "u2").await.unwrap(),
        "deleted message"
    );
    assert!(
        store.attachments.may_download("a1", "u1").await.unwrap(),
        "still the uploader"
    );
}

// ---------------------------------------------------------------------------------------
// Sign-in identities and tickets

fn identity(id: &str, user_id: &str, provider: &str, subject: &str) -> super::IdentityRow {
    super::IdentityRow {
        id: id.into(),
        user_id: user_id.into(),
        provider: provider.into(),
        subject: subject.into(),
        email: Some(format!("{subject}@example.net")),
        created_at: at(id.len() as u32),
    }
}

async fn identities_are_unique_per_provider_subject_and_go_with_the_account(store: Store) {
    let ids = &store.identities;
    let mut alice = user_row("u1", "alice");
    alice.password_hash = String::new();
    ids.create_user_with_identity(&alice, &identity("i1", "u1", "google", "s1"))
        .await
        .unwrap();
    assert_eq!(
        store
            .users
            .user_by_id("u1")
            .await
            .unwrap()
            .unwrap()
            .password_hash,
        "",
        "created without a password"
    );
    // The same subject again, for a new user: nothing is stored.
    let bob = user_row("u2", "bob");
    let e = ids
        .create_user_with_identity(&bob, &identity("i2", "u2", "google", "s1"))
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Conflict("identity")), "{e:?}");
    assert!(
        store.users.user_by_id("u2").await.unwrap().is_none(),
        "atomic"
    );
    // A taken username: nothing is stored either.
    let e = ids
        .create_user_with_identity(
            &UserRow {
                email: "another@example.com".into(),
                ..user_row("u3", "alice")
            },
            &identity("i3", "u3", "google", "s3"),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Conflict("username")), "{e:?}");
    assert!(ids.identity("google", "s3").await.unwrap().is_none());

    add_user(&store, "u2", "bob").await;
    ids.create_identity(&identity("i4", "u2", "github", "s1"))
        .await
        .expect("the same subject at another provider");
    let e = ids
        .create_identity(&identity("i5", "u2", "google", "s1"))
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Conflict("identity")), "{e:?}");
    let e = ids
        .create_identity(&identity("i6", "nobody", "google", "s6"))
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::NotFound), "{e:?}");
    ids.create_identity(&identity("i77", "u2", "google", "s2"))
        .await
        .unwrap();

    assert_eq!(
        ids.identity("google", "s1").await.unwrap().unwrap(),
        identity("i1", "u1", "google", "s1")
    );
    let listed: Vec<String> = ids
        .identities_for_user("u2")
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(listed, ["i4", "i77"], "oldest first");
    store
        .users
        .delete_user("u2", "deleted-u2", &at(50))
        .await
        .unwrap();
    assert!(ids.identities_for_user("u2").await.unwrap().is_empty());
    assert!(ids.identity("github", "s1").await.unwrap().is_none());
    assert_eq!(ids.identities_for_user("u1").await.unwrap().len(), 1);
}

async fn unlinking_never_removes_the_last_way_to_sign_in(store: Store) {
    let ids = &store.identities;
    let mut alice = user_row("u1", "alice");
    alice.password_hash = String::new();
    ids.create_user_with_identity(&alice, &identity("i1", "u1", "google", "s1"))
        .await
        .unwrap();
    ids.create_identity(&identity("i22", "u1", "github", "s2"))
        .await
        .unwrap();
    add_user(&store, "u2", "bob").await;
    ids.create_identity(&identity("i333", "u2", "google", "s3"))
        .await
        .unwrap();

    assert_eq!(
        ids.delete_identity("u2", "i1").await.unwrap(),
        Unlink::NotFound,
        "another user's identity"
    );
    assert_eq!(
        ids.delete_identity("u1", "i1").await.unwrap(),
        Unlink::Removed
    );
    assert_eq!(
        ids.delete_identity("u1", "i22").await.unwrap(),
        Unlink::LastSignIn
    );
    assert_eq!(ids.identities_for_user("u1").await.unwrap().len(), 1);
    assert_eq!(
        ids.delete_identity("u2", "i333").await.unwrap(),
        Unlink::Removed,
        "an account with a password may unlink its last identity"
    );
    assert_eq!(
        ids.delete_identity("u2", "i333").await.unwrap(),
        Unlink::NotFound
    );
}

async fn sign_in_tickets_are_taken_once_by_kind_until_they_expire(store: Store) {
    let ids = &store.identities;
    let h = |n: u8| vec![n; 32];
    ids.save_ticket(&h(1), "flow", "{\"a\":1}", &at(100))
        .await
        .unwrap();
    ids.save_ticket(&h(2), "flow", "{}", &at(10)).await.unwrap();
    ids.save_ticket(&h(3), "link", "{}", &at(100))
        .await
        .unwrap();
    assert_eq!(
        ids.take_ticket(&h(3), "flow", &at(5)).await.unwrap(),
        None,
        "another kind"
    );
    assert_eq!(
        ids.take_ticket(&h(1), "flow", &at(5))
            .await
            .unwrap()
            .as_deref(),
        Some("{\"a\":1}")
    );
    assert_eq!(
        ids.take_ticket(&h(1), "flow", &at(5)).await.unwrap(),
        None,
        "single use"
    );
    assert_eq!(
        ids.take_ticket(&h(2), "flow", &at(10)).await.unwrap(),
        None,
        "expired at its expiry"
    );
    assert_eq!(
        ids.purge_tickets(&at(200)).await.unwrap(),
        1,
        "the link ticket"
    );
    assert_eq!(ids.take_ticket(&h(3), "link", &at(5)).await.unwrap(), None);
}

// ---------------------------------------------------------------------------------------
// E-mail tokens and addresses

fn email_token(user_id: &str, purpose: EmailPurpose, address: &str, expires: u32) -> EmailToken {
    EmailToken {
        user_id: user_id.into(),
        purpose,
        address: address.into(),
        created_at: at(0),
        expires_at: at(expires),
    }
}

async fn email_tokens_are_taken_once_by_their_purpose_until_they_expire(store: Store) {
    use EmailPurpose::{ChangeEmail, Reset, Verify};
    add_user(&store, "u1", "alice").await;
    let users = &store.users;
    let reset = email_token("u1", Reset, "alice@example.com", 100);
    users
        .create_email_token(&ticket_hash(1), &reset)
        .await
        .unwrap();
    // Another purpose does not take it, and does not spend it.
    for purpose in [Verify, ChangeEmail] {
        assert_eq!(
            users
                .take_email_token(&ticket_hash(1), purpose, &at(10))
                .await
                .unwrap(),
            TakenEmailToken::Unknown
        );
    }
    assert_eq!(
        users
            .take_email_token(&ticket_hash(9), Reset, &at(10))
            .await
            .unwrap(),
        TakenEmailToken::Unknown,
        "unknown token"
    );
    // Looking does not spend.
    for _ in 0..2 {
        assert_eq!(
            users
                .email_token(&ticket_hash(1), Reset, &at(99))
                .await
                .unwrap(),
            TakenEmailToken::Taken(reset.clone())
        );
    }
    assert_eq!(
        users
            .email_token(&ticket_hash(1), Reset, &at(100))
            .await
            .unwrap(),
        TakenEmailToken::Expired
    );
    assert_eq!(
        users
            .take_email_token(&ticket_hash(1), Reset, &at(99))
            .await
            .unwrap(),
        TakenEmailToken::Taken(reset),
        "stored as created, live until just before expires_at"
    );
    assert_eq!(
        users
            .email_token(&ticket_hash(1), Reset, &at(10))
            .await
            .unwrap(),
        TakenEmailToken::Unknown,
        "spent"
    );
    assert_eq!(
        users
            .take_email_token(&ticket_hash(1), Reset, &at(10))
            .await
            .unwrap(),
        TakenEmailToken::Unknown,
        "single use"
    );

    // Expired at expires_at: refused as expired (every time: it stays unused).
    let verify = email_token("u1", Verify, "alice@example.com", 100);
    users
        .create_email_token(&ticket_hash(2), &verify)
        .await
        .unwrap();
    for now in [100, 200] {
        assert_eq!(
            users
                .take_email_token(&ticket_hash(2), Verify, &at(now))
                .await
                .unwrap(),
            TakenEmailToken::Expired
        );
    }

    // A token for an unknown user is refused.
    assert!(matches!(
        users
            .create_email_token(
                &ticket_hash(3),
                &email_token("nobody", Verify, "x@y.z", 100)
            )
            .await,
        Err(StoreError::NotFound)
    ));

    // Deleting the account removes its tokens.
    users
        .create_email_token(&ticket_hash(4), &email_token("u1", Verify, "a@b.c", 100))
        .await
        .unwrap();
    users
        .delete_user("u1", "deleted-u1", &at(20))
        .await
        .unwrap();
    assert_eq!(
        users
            .take_email_token(&ticket_hash(4), Verify, &at(30))
            .await
            .unwrap(),
        TakenEmailToken::Unknown
    );
}

async fn concurrent_takes_of_one_email_token_take_it_once(store: Store) {
    add_user(&store, "u1", "alice").await;
    for round in 0..5u8 {
        let token = email_token("u1", EmailPurpose::Reset, "alice@example.com", 100);
        store
            .users
            .create_email_token(&ticket_hash(round), &token)
            .await
            .unwrap();
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move {
                    store
                        .users
                        .take_email_token(&ticket_hash(round), EmailPurpose::Reset, &at(10))
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut taken = Vec::new();
        for task in tasks {
            if let TakenEmailToken::Taken(t) = task.await.unwrap() {
                taken.push(t);
            }
        }
        assert_eq!(taken, [token], "round {round}");
    }
}

async fn verifying_an_address_needs_the_address_the_account_still_has(store: Store) {
    let alice = add_user(&store, "u1", "alice").await;
    let users = &store.users;
    assert_eq!(alice.email_verified_at, None, "created unverified");
    assert!(
        !users
            .verify_email("u1", "other@example.com", &at(5))
            .await
            .unwrap(),
        "not the account's address"
    );
    assert!(!users
        .verify_email("u9", &alice.email, &at(5))
        .await
        .unwrap());
    assert_eq!(
        users
            .user_by_id("u1")
            .await
            .unwrap()
            .unwrap()
            .email_verified_at,
        None
    );
    assert!(users
        .verify_email("u1", &alice.email, &at(5))
        .await
        .unwrap());
    // Again: still verified, at the first time.
    assert!(users
        .verify_email("u1", &alice.email, &at(9))
        .await
        .unwrap());
    let row = users.user_by_id("u1").await.unwrap().unwrap();
    assert_eq!(row.email_verified_at, Some(at(5)));
    // A user created verified (by an administrator) stays so.
    let verified = UserRow {
        email_verified_at: Some(at(1)),
        ..user_row("u2", "bob")
    };
    users.create_user(&verified).await.unwrap();
    assert_eq!(users.user_by_id("u2").await.unwrap(), Some(verified));
    // A deleted account cannot be verified.
    users
        .delete_user("u1", "deleted-u1", &at(20))
        .await
        .unwrap();
    let scrubbed = users.user_by_id("u1").await.unwrap().unwrap();
    assert!(!users
        .verify_email("u1", &scrubbed.email, &at(30))
        .await
        .unwrap());
}

async fn changing_an_address_keeps_it_unique_and_spending_tokens_kills_the_links(store: Store) {
    use EmailPurpose::{ChangeEmail, Reset};
    add_user(&store, "u1", "alice").await;
    let bob = add_user(&store, "u2", "bob").await;
    let users = &store.users;
    assert!(matches!(
        users
            .set_email("u1", &bob.email, Some(&at(3)), &at(3))
            .await,
        Err(StoreError::Conflict("email"))
    ));
    assert!(users
        .set_email("u1", "new@example.com", Some(&at(3)), &at(3))
        .await
        .unwrap());
    let row = users.user_by_id("u1").await.unwrap().unwrap();
    assert_eq!(row.email, "new@example.com");
    assert_eq!(row.email_verified_at, Some(at(3)));
    assert_eq!(
        users.user_by_login("new@example.com").await.unwrap(),
        Some(row)
    );
    assert_eq!(
        users.user_by_login("alice@example.com").await.unwrap(),
        None
    );
    assert!(users
        .set_email("u1", "unverified@example.com", None, &at(4))
        .await
        .unwrap());
    assert_eq!(
        users
            .user_by_id("u1")
            .await
            .unwrap()
            .unwrap()
            .email_verified_at,
        None
    );
    assert!(!users
        .set_email("u9", "ghost@example.com", None, &at(4))
        .await
        .unwrap());

    // Spending a purpose's tokens kills only that purpose's, only the account's.
    for (n, user, purpose) in [
        (1, "u1", Reset),
        (2, "u1", Reset),
        (3, "u1", ChangeEmail),
        (4, "u2", Reset),
    ] {
        users
            .create_email_token(&ticket_hash(n), &email_token(user, purpose, "a@b.c", 100))
            .await
            .unwrap();
    }
    assert_eq!(
        users.spend_email_tokens("u1", Reset, &at(5)).await.unwrap(),
        2
    );
    assert_eq!(
        users.spend_email_tokens("u1", Reset, &at(6)).await.unwrap(),
        0
    );
    for n in [1, 2] {
        assert_eq!(
            users
                .take_email_token(&ticket_hash(n), Reset, &at(10))
                .await
                .unwrap(),
            TakenEmailToken::Unknown
        );
    }
    assert!(matches!(
        users
            .take_email_token(&ticket_hash(3), ChangeEmail, &at(10))
            .await
            .unwrap(),
        TakenEmailToken::Taken(_)
    ));
    assert!(matches!(
        users
            .take_email_token(&ticket_hash(4), Reset, &at(10))
            .await
            .unwrap(),
        TakenEmailToken::Taken(_)
    ));
}

// ---------------------------------------------------------------------------------------
// Notifications: settings, push subscriptions, the VAPID key

fn settings(
    room: &str,
    user: &str,
    level: NotificationLevel,
    muted: Option<&str>,
) -> NotificationSettingsRow {
    NotificationSettingsRow {
        room_id: room.into(),
        user_id: user.into(),
        level,
        muted_until: muted.map(str::to_owned),
        updated_at: at(1),
    }
}

fn subscription(
    id: &str,
    user: &str,
    session: Option<&str>,
    endpoint: &str,
    secs: u32,
) -> PushSubscriptionRow {
    PushSubscriptionRow {
        id: id.into(),
        user_id: user.into(),
        session_id: session.map(str::to_owned),
        endpoint: endpoint.into(),
        p256dh: format!("p256dh-{id}"),
        auth: format!("auth-{id}"),
        user_agent: Some("Firefox".into()),
        created_at: at(secs),
    }
}

async fn sorted_settings(
    store: &Store,
    room: &str,
    users: &[&str],
) -> Vec<NotificationSettingsRow> {
    let users: Vec<String> = users.iter().map(|u| (*u).to_owned()).collect();
    let mut rows = store
        .notifications
        .notification_settings_of(room, &users)
        .await
        .unwrap();
    rows.sort_by(|a, b| a.user_id.cmp(&b.user_id));
    rows
}

async fn notification_settings_are_a_members_and_go_with_the_membership(store: Store) {
    let n = &store.notifications;
    add_user(&store, "u1", "alice").await;
    add_user(&store, "u2", "bob").await;
    add_room(&store, "r1", "u1").await;
    assert_eq!(n.notification_settings("r1", "u1").await.unwrap(), None);

    let first = settings(
        "r1",
        "u1",
        NotificationLevel::Mentions,
        Some("2026-11-22T00:00:00.000Z"),
    );
    n.set_notification_settings(&first).await.unwrap();
    assert_eq!(
        n.notification_settings("r1", "u1").await.unwrap(),
        Some(first)
    );
    let replaced = settings("r1", "u1", NotificationLevel::None, None);
    n.set_notification_settings(&replaced).await.unwrap();
    assert_eq!(
        n.notification_settings("r1", "u1").await.unwrap(),
        Some(replaced.clone())
    );

    // Not a member, or no such room: nothing is stored.
    for (room, user) in [("r1", "u2"), ("nowhere", "u1"), ("r1", "nobody")] {
        let e = n
            .set_notification_settings(&settings(room, user, NotificationLevel::All, None))
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::NotFound), "{room} {user}: {e:?}");
    }
    assert_eq!(
        sorted_settings(&store, "r1", &["u1", "u2", "u3"]).await,
        std::slice::from_ref(&replaced)
    );

    join(&store, "r1", "u2", 2).await;
    let bobs = settings(
        "r1",
        "u2",
        NotificationLevel::All,
        Some("2027-01-01T00:00:00.000Z"),
    );
    n.set_notification_settings(&bobs).await.unwrap();
    assert_eq!(
        sorted_settings(&store, "r1", &["u1", "u2"]).await,
        [replaced.clone(), bobs.clone()]
    );
    assert_eq!(sorted_settings(&store, "r1", &["u2"]).await, [bobs]);
    assert!(sorted_settings(&store, "r1", &[]).await.is_empty());

    // Leaving (and being banned) takes them along; so does deleting the room.
    store.rooms.leave("r1", "u2", None, &at(3)).await.unwrap();
    assert_eq!(n.notification_settings("r1", "u2").await.unwrap(), None);
    join(&store, "r1", "u2", 4).await;
    assert_eq!(
        n.notification_settings("r1", "u2").await.unwrap(),
        None,
        "a new membership starts afresh"
    );
    assert!(store.rooms.delete_room("r1").await.unwrap());
    assert_eq!(n.notification_settings("r1", "u1").await.unwrap(), None);
}

async fn push_subscriptions_are_one_per_endpoint_and_only_the_newest_are_kept(store: Store) {
    let n = &store.notifications;
    add_user(&store, "u1", "alice").await;
    add_user(&store, "u2", "bob").await;
    let first = subscription("p1", "u1", None, "https://push.example/1", 1);
    assert_eq!(
        n.save_push_subscription(&first, 10).await.unwrap(),
        (first.clone(), true)
    );

    // The same endpoint again, with new keys: the same subscription, updated.
    let again = PushSubscriptionRow {
        p256dh: "new-p256dh".into(),
        auth: "new-auth".into(),
        user_agent: None,
        ..subscription("p2", "u1", None, "https://push.example/1", 2)
    };
    let (stored, new) = n.save_push_subscription(&again, 10).await.unwrap();
    assert!(!new);
    assert_eq!(
        stored,
        PushSubscriptionRow {
            id: "p1".into(),
            created_at: at(1),
            ..again.clone()
        }
    );
    assert_eq!(
        n.push_subscriptions("u1").await.unwrap(),
        std::slice::from_ref(&stored)
    );

    // Another account subscribes the same browser: it becomes theirs, as given.
    let bobs = subscription("p3", "u2", None, "https://push.example/1", 3);
    assert_eq!(
        n.save_push_subscription(&bobs, 10).await.unwrap(),
        (bobs.clone(), true)
    );
    assert!(n.push_subscriptions("u1").await.unwrap().is_empty());
    assert_eq!(
        n.push_subscriptions("u2").await.unwrap(),
        std::slice::from_ref(&bobs)
    );

    // Only the newest `keep` of an account stay.
    for (id, secs) in [("q1", 10), ("q2", 11), ("q3", 12)] {
        let s = subscription(id, "u1", None, &format!("https://push.example/{id}"), secs);
        n.save_push_subscription(&s, 2).await.unwrap();
    }
    let kept: Vec<String> = n
        .push_subscriptions("u1")
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(kept, ["q2", "q3"]);
    assert_eq!(
        n.push_subscriptions("u2").await.unwrap().len(),
        1,
        "others' untouched"
    );

    // Deleting: only one's own; a gone one only while its endpoint is the same.
    assert!(!n.delete_push_subscription("u2", "q2").await.unwrap());
    assert!(n.delete_push_subscription("u1", "q2").await.unwrap());
    assert!(!n.delete_push_subscription("u1", "q2").await.unwrap());
    assert!(!n
        .delete_gone_subscription("q3", "https://push.example/other")
        .await
        .unwrap());
    assert!(n
        .delete_gone_subscription("q3", "https://push.example/q3")
        .await
        .unwrap());
    assert!(n.push_subscriptions("u1").await.unwrap().is_empty());

    // An unknown account or session: nothing is stored.
    for bad in [
        subscription("x1", "nobody", None, "https://push.example/x1", 20),
        subscription(
            "x2",
            "u1",
            Some("no-session"),
            "https://push.example/x2",
            20,
        ),
    ] {
        let e = n.save_push_subscription(&bad, 10).await.unwrap_err();
        assert!(matches!(e, StoreError::NotFound), "{e:?}");
    }
    assert!(n.push_subscriptions("u1").await.unwrap().is_empty());
}

async fn push_targets_leave_out_subscriptions_of_ended_sessions(store: Store) {
    let n = &store.notifications;
    add_user(&store, "u1", "alice").await;
    add_user(&store, "u2", "bob").await;
    let sessions = &store.sessions;
    sessions
        .create_session(&session("live", "u1", b"h1", &at(0), "10.0.0.1"))
        .await
        .unwrap();
    sessions
        .create_session(&session("revoked", "u1", b"h2", &at(0), "10.0.0.1"))
        .await
        .unwrap();
    sessions
        .create_session(&NewSession {
            expires_at: at(5),
            ..session("expired", "u1", b"h3", &at(0), "10.0.0.1")
        })
        .await
        .unwrap();
    sessions
        .create_session(&session("bobs", "u2", b"h4", &at(0), "10.0.0.2"))
        .await
        .unwrap();
    assert!(sessions
        .revoke_session("u1", "revoked", "logout", &at(1))
        .await
        .unwrap());
    for (id, user, session) in [
        ("s-live", "u1", Some("live")),
        ("s-revoked", "u1", Some("revoked")),
        ("s-expired", "u1", Some("expired")),
        ("s-key", "u1", None),
        ("s-bob", "u2", Some("bobs")),
    ] {
        n.save_push_subscription(
            &subscription(id, user, session, &format!("https://push.example/{id}"), 1),
            10,
        )
        .await
        .unwrap();
    }
    let targets = |users: &'static [&'static str]| {
        let n = n.clone();
        async move {
            let users: Vec<String> = users.iter().map(|u| (*u).to_owned()).collect();
            let mut ids: Vec<String> = n
                .push_targets(&users, &at(10))
                .await
                .unwrap()
                .into_iter()
                .map(|s| s.id)
                .collect();
            ids.sort();
            ids
        }
    };
    assert_eq!(targets(&["u1"]).await, ["s-key", "s-live"]);
    assert_eq!(targets(&["u1", "u2"]).await, ["s-bob", "s-key", "s-live"]);
    assert!(targets(&[]).await.is_empty());
    // Listing shows them all: the user may delete the dead ones.
    assert_eq!(n.push_subscriptions("u1").await.unwrap().len(), 4);
}

async fn deleting_an_account_removes_its_push_subscriptions_and_settings(store: Store) {
    let n = &store.notifications;
    add_user(&store, "u1", "alice").await;
    add_user(&store, "u2", "bob").await;
    add_room(&store, "r1", "u2").await;
    join(&store, "r1", "u1", 1).await;
    n.set_notification_settings(&settings("r1", "u1", NotificationLevel::None, None))
        .await
        .unwrap();
    n.set_notification_settings(&settings("r1", "u2", NotificationLevel::Mentions, None))
        .await
        .unwrap();
    n.save_push_subscription(
        &subscription("p1", "u1", None, "https://push.example/1", 1),
        10,
    )
    .await
    .unwrap();
    n.save_push_subscription(
        &subscription("p2", "u2", None, "https://push.example/2", 1),
        10,
    )
    .await
    .unwrap();
    store
        .users
        .delete_user("u1", "deleted-u1", &at(2))
        .await
        .unwrap();
    assert!(n.push_subscriptions("u1").await.unwrap().is_empty());
    assert_eq!(n.notification_settings("r1", "u1").await.unwrap(), None);
    assert_eq!(
        n.push_subscriptions("u2").await.unwrap().len(),
        1,
        "others' stay"
    );
    assert!(n.notification_settings("r1", "u2").await.unwrap().is_some());
}

async fn the_vapid_key_pair_is_created_once_for_every_caller(store: Store) {
    let n = &store.notifications;
    assert_eq!(n.vapid_key().await.unwrap(), None);
    let key = |b: u8| VapidKeyRow {
        private_key: vec![b; 32],
        public_key: vec![4; 65],
        created_at: at(u32::from(b)),
    };
    // Concurrent first uses (several nodes starting at once) all get one pair.
    let made = futures_util::future::join_all((1..=4).map(|b| {
        let n = n.clone();
        async move { n.create_vapid_key(&key(b)).await.unwrap() }
    }))
    .await;
    assert!(made.iter().all(|k| *k == made[0]), "one key pair");
    assert_eq!(n.vapid_key().await.unwrap().as_ref(), Some(&made[0]));
    assert_eq!(
        n.create_vapid_key(&key(9)).await.unwrap(),
        made[0],
        "never replaced"
    );
}
