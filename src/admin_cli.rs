//! `aisocial admin …`: the operator's moderation commands (suspend, unsuspend, grant, revoke)
//! on the command line. Each runs through a DbWriter of its own, the same command the API
//! sends, so it is applied, audited and written to the ordered log exactly the same way; the
//! serving nodes learn of a suspension from the log (their poll finds it even with no Redis).

use std::time::Duration;

use actix::prelude::*;
use aisocial_actors::committed::Committed;
use aisocial_actors::db_writer::{
    DbWriter, DbWriterConfig, Drain, Moderator, SetRole, SetSuspended, WriteError,
};
use aisocial_actors::ids::Handle;
use aisocial_actors::meter::{ActorMeter, MeteredAddr};
use aisocial_actors::metered_handler;
use aisocial_actors::model::Role;

use crate::config::AdminAction;

/// Why an admin command failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminCommandError {
    #[error("{0:?} is not a handle: {1}")]
    Handle(String, String),
    #[error("{0}")]
    Refused(#[from] WriteError),
    #[error("the writer stopped before answering")]
    Mailbox(#[from] MailboxError),
}

/// Where this process's writer sends what it committed: nowhere (it serves no sockets).
struct CommitSink {
    meter: ActorMeter,
}

impl Actor for CommitSink {
    type Context = Context<Self>;
}

impl Handler<Committed> for CommitSink {
    type Result = ();

    fn handle(&mut self, _: Committed, _: &mut Self::Context) {}
}
metered_handler!(CommitSink, Committed);

/// Runs `action` against `database`; answers what to print.
pub async fn run(
    action: AdminAction,
    database: tokio_postgres::Config,
) -> Result<String, AdminCommandError> {
    let meter = || ActorMeter::new("admin_cli_sink");
    let sink = MeteredAddr::new(CommitSink { meter: meter() }.start(), meter());
    let writer = DbWriter::new(DbWriterConfig::new(database), sink.recipient()).start();
    let by = Moderator::CommandLine;
    let said = match action {
        AdminAction::Suspend { handle } => {
            let target = parse(&handle)?;
            writer
                .send(SetSuspended {
                    target,
                    suspended: true,
                    by,
                    reason: None,
                })
                .await??;
            format!("{handle} is suspended: sessions revoked, sockets closing on every node")
        }
        AdminAction::Unsuspend { handle } => {
            let target = parse(&handle)?;
            writer
                .send(SetSuspended {
                    target,
                    suspended: false,
                    by,
                    reason: None,
                })
                .await??;
            format!("{handle} is no longer suspended (they sign in again)")
        }
        AdminAction::Grant { role, handle } => {
            let target = parse(&handle)?;
            let user = writer
                .send(SetRole {
                    target,
                    role: role.into(),
                    by,
                })
                .await??;
            format!("{} is now {}", user.handle, user.role.as_str())
        }
        AdminAction::Revoke { handle } => {
            let target = parse(&handle)?;
            let user = writer
                .send(SetRole {
                    target,
                    role: Role::User,
                    by,
                })
                .await??;
            format!("{} is now {}", user.handle, user.role.as_str())
        }
    };
    writer
        .send(Drain {
            within: Duration::from_secs(5),
        })
        .await?;
    Ok(said)
}

fn parse(raw: &str) -> Result<Handle, AdminCommandError> {
    Handle::parse(raw).map_err(|e| AdminCommandError::Handle(raw.to_owned(), e.to_string()))
}
