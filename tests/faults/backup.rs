//! Backups that are restored: a populated database dumped with `scripts/backup.sh`, restored
//! with `scripts/restore.sh` into a fresh PostgreSQL cluster, and served again: users, posts,
//! follows, likes and the event log are all there, and clients resume with `since`.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use crate::helpers::{spawn_app_with, unique_name};
use crate::private_postgres::{PrivatePostgres, cluster_folder};

fn script(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(name)
        .display()
        .to_string()
}

fn run(command: &mut Command) -> String {
    let output = command.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{command:?}: {text}");
    text
}

const COUNTS: &str = "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM posts), \
     (SELECT count(*) FROM follows), (SELECT count(*) FROM likes), (SELECT count(*) FROM events), \
     (SELECT coalesce(max(id), 0) FROM events)";

async fn counts(pg: &PrivatePostgres, database: &str) -> Vec<i64> {
    let row = pg
        .client(database)
        .await
        .query_one(COUNTS, &[])
        .await
        .unwrap();
    (0..6).map(|i| row.get::<_, i64>(i)).collect()
}

#[actix_web::test]
async fn a_backup_restored_into_a_fresh_cluster_serves_everything_and_clients_resume() {
    let source = PrivatePostgres::start().await;
    let url = format!("--database-url={}/aisocial_source", source.base_url());
    let app = spawn_app_with(&[url.as_str(), "--rate-limit-user-per-min=100000"]).await;
    let author = app.sign_in("author").await;
    let mut readers = Vec::new();
    for n in 0..10 {
        let reader = app.sign_in(&format!("reader_{n}")).await;
        app.follow(&reader, "author").await;
        readers.push(reader);
    }
    let mut posts = Vec::new();
    for n in 0..100 {
        posts.push(app.create_post(&author, &format!("post {n}")).await["id"].as_i64());
    }
    for (reader, post) in readers.iter().zip(&posts) {
        let like = app
            .http
            .put(app.url(&format!("/api/v1/posts/{}/like", post.unwrap_or_default())))
            .bearer_auth(&reader.token)
            .send()
            .await
            .unwrap();
        assert_eq!(like.status(), 204);
    }
    let (_, hello) = app.ws(&readers[0], Some(0)).await;
    let events_for_reader = hello["data"]["resume"]["replayed"].as_u64().unwrap_or(0);
    assert!(events_for_reader >= 100, "{hello}");
    let before = counts(&source, "aisocial_source").await;
    drop(app);

    // Back up…
    let backups = std::env::temp_dir().join(format!("aisocial-backups-{}", unique_name()));
    let backed_up = run(Command::new("bash")
        .arg(script("backup.sh"))
        .env(
            "DATABASE_URL",
            format!("{}/aisocial_source", source.base_url()),
        )
        .env("BACKUP_DIR", &backups));
    let dump = std::fs::read_dir(&backups)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "dump"))
        .unwrap_or_else(|| panic!("no dump: {backed_up}"));
    let dump_bytes = std::fs::metadata(&dump).map(|m| m.len()).unwrap_or(0);

    // …restore into a fresh cluster…
    let target = PrivatePostgres::start().await;
    let started = Instant::now();
    run(Command::new("bash")
        .arg(script("restore.sh"))
        .arg(&dump)
        .env(
            "TARGET_URL",
            format!("{}/aisocial_restored", target.base_url()),
        ));
    let restore_time = started.elapsed();
    assert_eq!(
        counts(&target, "aisocial_restored").await,
        before,
        "everything came back"
    );
    // Restoring over data is refused.
    let refused = Command::new("bash")
        .arg(script("restore.sh"))
        .arg(&dump)
        .env(
            "TARGET_URL",
            format!("{}/aisocial_restored", target.base_url()),
        )
        .output()
        .unwrap();
    assert!(
        !refused.status.success(),
        "a restore over live data was refused"
    );

    // …and serve it: the same users, their timelines, and resume from the event log.
    let url = format!("--database-url={}/aisocial_restored", target.base_url());
    let restored = spawn_app_with(&[url.as_str()]).await;
    let reader = restored.sign_in("reader_0").await;
    assert_eq!(reader.id, readers[0].id, "the same account");
    let (status, timeline) = restored
        .get_json(&reader, "/api/v1/timeline?limit=100")
        .await;
    assert_eq!(status, 200);
    assert_eq!(timeline["items"].as_array().map(Vec::len), Some(100));
    assert_eq!(
        timeline["items"][99]["liked_by_me"], true,
        "reader_0 liked the first post"
    );
    let (mut ws, hello) = restored.ws(&reader, Some(0)).await;
    assert_eq!(hello["data"]["resume"]["status"], "resumed", "{hello}");
    assert_eq!(
        hello["data"]["resume"]["replayed"].as_u64(),
        Some(events_for_reader),
        "every event the reader had is replayed from the restored log"
    );
    drop(ws.stream.close(None).await);
    // New events continue after the restored ones, in order.
    let (mut live, _) = restored.ws(&reader, Some(before[5])).await;
    let fresh = restored
        .create_post(&author_on(&restored).await, "after the restore")
        .await;
    let frame = live.next_json_skipping_presence().await;
    assert_eq!(frame["type"], "post.created");
    assert_eq!(frame["data"]["id"], fresh["id"]);
    assert!(frame["id"].as_i64() > Some(before[5]), "{frame}");
    println!(
        "backup and restore: {} users, {} posts, {} follows, {} likes, {} events; dump {} KiB; \
         restored into a fresh cluster in {restore_time:?}; clients resume",
        before[0],
        before[1],
        before[2],
        before[3],
        before[4],
        dump_bytes / 1024
    );
    let _ = std::fs::remove_dir_all(&backups);
}

async fn author_on(app: &crate::helpers::TestApp) -> crate::helpers::TestUser {
    app.sign_in("author").await
}

async fn post_many(app: &crate::helpers::TestApp, user: &crate::helpers::TestUser, prefix: &str) {
    for n in 0..30 {
        app.create_post(user, &format!("{prefix}-{n}")).await;
    }
}

async fn count_like(pg: &PrivatePostgres, database: &str, prefix: &str) -> i64 {
    pg.client(database)
        .await
        .query_one(
            "SELECT count(*) FROM posts WHERE body LIKE $1",
            &[&format!("{prefix}-%")],
        )
        .await
        .unwrap()
        .get(0)
}

#[actix_web::test]
async fn a_base_backup_and_the_archived_wal_restore_to_a_point_in_time() {
    let archive = cluster_folder();
    let options = format!(
        "-c wal_level=replica -c archive_mode=on -c archive_command='test ! -f {a}/%f && cp %p {a}/%f'",
        a = archive.display()
    );
    let source = PrivatePostgres::start_with(&options).await;
    let url = format!("--database-url={}/aisocial_pitr", source.base_url());
    let app = spawn_app_with(&[url.as_str(), "--rate-limit-user-per-min=100000"]).await;
    let author = app.sign_in("author").await;
    post_many(&app, &author, "before").await;

    let backups = std::env::temp_dir().join(format!("aisocial-base-{}", unique_name()));
    run(Command::new("bash")
        .arg(script("basebackup.sh"))
        .env("PG_URL", format!("{}/postgres", source.base_url()))
        .env("BACKUP_DIR", &backups)
        .env("WAL_ARCHIVE", &archive));
    let base = std::fs::read_dir(&backups)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.is_dir())
        .expect("no base backup");

    post_many(&app, &author, "kept").await;
    // The moment to go back to, by the database's clock; everything after it is to be undone.
    let db = source.client("aisocial_pitr").await;
    let target: String = db
        .query_one("SELECT now()::text", &[])
        .await
        .unwrap()
        .get(0);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    post_many(&app, &author, "lost").await;
    drop(app);
    // Close the current WAL segment and wait until it is archived.
    let segment: String = db
        .query_one("SELECT pg_walfile_name(pg_switch_wal())", &[])
        .await
        .unwrap()
        .get(0);
    let deadline = Instant::now() + std::time::Duration::from_secs(20);
    while !archive.join(&segment).exists() {
        assert!(Instant::now() < deadline, "{segment} was never archived");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    let restored_dir = cluster_folder();
    let started = Instant::now();
    run(Command::new("bash")
        .arg(script("pitr-restore.sh"))
        .arg(&base)
        .env("DATA_DIR", restored_dir.join("data"))
        .env("WAL_ARCHIVE", &archive)
        .env("RECOVERY_TARGET_TIME", &target));
    let restored = PrivatePostgres::adopt(restored_dir).await;
    restored.wait_until_writable().await;
    let recovery = started.elapsed();
    assert_eq!(count_like(&restored, "aisocial_pitr", "before").await, 30);
    assert_eq!(
        count_like(&restored, "aisocial_pitr", "kept").await,
        30,
        "written after the base backup, before the target: replayed from the archive"
    );
    assert_eq!(
        count_like(&restored, "aisocial_pitr", "lost").await,
        0,
        "written after the target: not restored"
    );
    // It serves, as the same accounts.
    let url = format!("--database-url={}/aisocial_pitr", restored.base_url());
    let app = spawn_app_with(&[url.as_str()]).await;
    let again = app.sign_in("author").await;
    assert_eq!(again.id, author.id);
    let (status, posts) = app
        .get_json(&again, "/api/v1/users/author/posts?limit=100")
        .await;
    assert_eq!(status, 200);
    assert_eq!(posts["items"].as_array().map(Vec::len), Some(60));
    println!(
        "point-in-time recovery: base backup + archived WAL back to {target}: 60 posts of 90 \
         restored, the 30 after the target not; prepared and recovered in {recovery:?}"
    );
    let _ = std::fs::remove_dir_all(&backups);
}
