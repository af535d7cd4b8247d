//! Migrations are safe to run while the previous version serves. Each migration is applied to
//! a database populated at the version before it while a workload of that version (reads and
//! writes on the old tables) keeps running: nothing it wrote is lost, none of its statements
//! fails, and none stalls behind the migration for long. And new migrations are checked for
//! DDL that rewrites or long-locks a table outside the expand/contract pattern.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails by panicking; expect says what it needed"
)]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aisocial::database;

const PG_BASE: &str = "postgres://postgres@127.0.0.1:5432";

/// Migrations applied before this rule existed; their risky statements are accepted as they are
/// (changing an applied migration would break every database that has it).
const GRANDFATHERED: &[i32] = &[1, 2, 3];

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// Rows of the tables the first schema already has, as the previous version would write them.
const POPULATE: &str = "
INSERT INTO users (handle, display_name) SELECT 'user_' || g, 'User ' || g FROM generate_series(1, 2000) g;
INSERT INTO posts (author_id, body) SELECT 1 + (g % 2000), 'post ' || g FROM generate_series(1, 20000) g;
INSERT INTO follows (follower_id, followee_id) SELECT 1 + (g % 2000), 1 + ((g * 7 + 1) % 2000)
    FROM generate_series(1, 10000) g ON CONFLICT DO NOTHING;
INSERT INTO likes (user_id, post_id) SELECT 1 + (g % 2000), g FROM generate_series(1, 10000) g;
INSERT INTO refresh_tokens (family_id, user_id, token_hash, expires_at)
    SELECT g, 1 + (g % 2000), sha256(g::text::bytea), now() + interval '30 days'
    FROM generate_series(1, 5000) g;
";

const COUNTS: &str = "SELECT (SELECT count(*) FROM users WHERE handle LIKE 'user_%'), \
     (SELECT count(*) FROM posts), (SELECT count(*) FROM follows), (SELECT count(*) FROM likes), \
     (SELECT count(*) FROM refresh_tokens)";

async fn counts(db: &tokio_postgres::Client) -> Vec<i64> {
    let row = db.query_one(COUNTS, &[]).await.unwrap();
    (0..5).map(|i| row.get::<_, i64>(i)).collect()
}

/// The previous version serving: reads and writes on the old tables, each timed.
fn old_workload(
    url: String,
    running: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<(usize, Duration, Vec<String>)> {
    tokio::spawn(async move {
        let db = connect(&url).await;
        let (mut statements, mut worst, mut failures) = (0, Duration::ZERO, Vec::new());
        while running.load(Ordering::Relaxed) {
            for sql in [
                "SELECT p.id, u.handle FROM posts p JOIN users u ON u.id = p.author_id \
                 ORDER BY p.id DESC LIMIT 20",
                "INSERT INTO posts (author_id, body) VALUES (1, 'written during the migration')",
                "UPDATE users SET posts_count = posts_count + 1 WHERE id = 1",
                "SELECT count(*) FROM refresh_tokens WHERE user_id = 7",
            ] {
                let started = Instant::now();
                if let Err(e) = db.execute(sql, &[]).await {
                    failures.push(format!("{sql}: {e}"));
                }
                worst = worst.max(started.elapsed());
                statements += 1;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        (statements, worst, failures)
    })
}

#[tokio::test]
async fn each_migration_applies_to_a_populated_database_while_the_previous_version_serves() {
    let versions = database::migration_versions();
    assert!(versions.len() >= 3, "{versions:?}");
    for pair in versions.windows(2) {
        let (previous, next) = (pair[0], pair[1]);
        let name = format!(
            "aisocial_test_mig_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let admin = connect(&format!("{PG_BASE}/postgres")).await;
        admin
            .execute(&format!("CREATE DATABASE {name}"), &[])
            .await
            .unwrap();
        let url = format!("{PG_BASE}/{name}");
        let config: tokio_postgres::Config = url.parse().unwrap();
        database::migrate_to(&config, previous).await.unwrap();
        let db = connect(&url).await;
        db.batch_execute(POPULATE)
            .await
            .unwrap_or_else(|e| panic!("populating V{previous}: {e}"));
        let before = counts(&db).await;

        let running = Arc::new(AtomicBool::new(true));
        let workload = old_workload(url.clone(), Arc::clone(&running));
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = Instant::now();
        database::migrate_to(&config, next)
            .await
            .unwrap_or_else(|e| panic!("V{next} on a populated V{previous} database: {e:#}"));
        let took = started.elapsed();
        tokio::time::sleep(Duration::from_millis(100)).await;
        running.store(false, Ordering::Relaxed);
        let (statements, worst, failures) = workload.await.unwrap();

        if GRANDFATHERED.contains(&next) {
            // Applied everywhere already and unchangeable: what they do to a running previous
            // version is reported, not enforced. V3 takes users' exclusive lock, then creates a
            // table referencing posts: a write of the previous version that holds posts and
            // waits for users can deadlock with it and fail once (clients retry with their
            // Idempotency-Key). Every later migration must not.
            if !failures.is_empty() {
                println!("V{next} (before the rule) failed a concurrent statement: {failures:?}");
            }
        } else {
            assert!(
                failures.is_empty(),
                "V{next} broke the previous version: {failures:?}"
            );
        }
        assert!(
            worst < Duration::from_secs(2),
            "a statement of the previous version waited {worst:?} behind V{next}"
        );
        let after = counts(&db).await;
        assert_eq!(after[0], before[0], "users survive V{next}");
        assert!(after[1] >= before[1], "posts survive V{next}");
        assert_eq!(
            after[2..],
            before[2..],
            "follows, likes, tokens survive V{next}"
        );
        println!(
            "V{next} on a populated V{previous} database: {took:?}; the previous version ran \
             {statements} statements meanwhile, the slowest {worst:?}, none failed"
        );
        drop(db);
        admin
            .execute(&format!("DROP DATABASE {name} WITH (FORCE)"), &[])
            .await
            .unwrap();
    }
}

/// The statements of one migration that may rewrite or long-lock a table already in use.
fn risky_statements(sql: &str) -> Vec<String> {
    let lower = sql.to_lowercase();
    let created: Vec<String> = lower
        .split("create table")
        .skip(1)
        .filter_map(|rest| rest.split_whitespace().next())
        .map(|t| {
            t.trim_matches(|c: char| !c.is_alphanumeric() && c != '_')
                .to_owned()
        })
        .collect();
    let mut risky = Vec::new();
    let mut previous_line = "";
    for line in lower.lines() {
        let statement = line.trim();
        let justified = previous_line.contains("-- safe:") || statement.contains("-- safe:");
        previous_line = statement;
        if statement.starts_with("--") || justified {
            continue;
        }
        let on_new_table = created.iter().any(|t| {
            statement.contains(&format!(" {t} ")) || statement.contains(&format!(" {t}("))
        });
        let rule = if statement.contains("alter column") && statement.contains(" type ") {
            Some("changing a column's type rewrites the table")
        } else if statement.contains("set not null") {
            Some(
                "SET NOT NULL scans the table under an exclusive lock (add a NOT VALID check, validate it, then set)",
            )
        } else if statement.contains("add constraint")
            && !statement.contains("not valid")
            && !on_new_table
        {
            Some(
                "a new constraint is validated under an exclusive lock (add it NOT VALID, then VALIDATE)",
            )
        } else if statement.contains("create index") || statement.contains("create unique index") {
            (!statement.contains("concurrently") && !on_new_table).then_some(
                "an index on a table in use blocks its writes (CREATE INDEX CONCURRENTLY)",
            )
        } else if statement.contains("vacuum full") || statement.starts_with("cluster") {
            Some("VACUUM FULL and CLUSTER rewrite the table under an exclusive lock")
        } else if statement.contains("drop column") || statement.contains("rename ") {
            Some("dropping or renaming breaks the previous version (contract in a later release)")
        } else {
            None
        };
        if let Some(rule) = rule {
            risky.push(format!("{statement}: {rule}"));
        }
    }
    risky
}

#[test]
fn new_migrations_use_expand_and_contract() {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    for entry in std::fs::read_dir(&folder).unwrap() {
        let path = entry.unwrap().path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        let version: i32 = name
            .trim_start_matches('V')
            .split("__")
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} is not V<n>__<name>.sql"));
        let sql = std::fs::read_to_string(&path).unwrap();
        let risky = risky_statements(&sql);
        if GRANDFATHERED.contains(&version) {
            continue;
        }
        assert!(
            risky.is_empty(),
            "{name}: {risky:#?}\n(mark a statement that is safe anyway with a `-- safe: why` comment)"
        );
    }
    // The rules catch what they claim to.
    assert_eq!(
        risky_statements("ALTER TABLE posts ALTER COLUMN body TYPE varchar(2000);").len(),
        1
    );
    assert_eq!(
        risky_statements("CREATE INDEX posts_x ON posts (body);").len(),
        1
    );
    assert!(risky_statements("CREATE INDEX CONCURRENTLY posts_x ON posts (body);").is_empty());
    assert!(risky_statements("CREATE TABLE t (id int);\nCREATE INDEX t_x ON t (id);").is_empty());
    assert_eq!(
        risky_statements("ALTER TABLE users ADD CONSTRAINT c CHECK (id > 0);").len(),
        1
    );
    assert!(
        risky_statements("ALTER TABLE users ADD CONSTRAINT c CHECK (id > 0) NOT VALID;").is_empty()
    );
    assert!(
        risky_statements("-- safe: tiny table\nALTER TABLE flags ALTER COLUMN x TYPE bigint;")
            .is_empty()
    );
    // What the grandfathered migrations would have been told.
    let v3 = std::fs::read_to_string(folder.join("V3__ai.sql")).unwrap();
    assert!(
        !risky_statements(&v3).is_empty(),
        "V3 validates a CHECK on users under a lock"
    );
}
