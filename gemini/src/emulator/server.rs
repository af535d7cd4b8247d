//! Starting the emulator in-process, and the handles to control and stop it.

use std::io;
use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::Arc;

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpServer, web};
use tokio::task::JoinHandle;

use super::config::{ConfigError, ConfigUpdate, EmulatorConfig};
use super::script::{ScriptError, ScriptedResponse};
use super::state::Shared;
use super::stats::EmulatorStats;
use super::{api, control};

/// Largest request body accepted (Google's inline limit is 20 MB).
pub const MAX_BODY_BYTES: usize = 20 * 1024 * 1024;

/// Binds `bind` (port 0 picks a free port) and serves the emulator on the current runtime
/// (an actix `System` or a tokio runtime), with one worker thread.
pub async fn start(config: EmulatorConfig, bind: SocketAddr) -> io::Result<RunningEmulator> {
    config
        .validate()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let shared = Arc::new(Shared::new(config));
    let data = web::Data::from(Arc::clone(&shared));
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
            .configure(api::routes)
            .configure(control::routes)
            .default_service(web::to(api::unknown_path))
    })
    .workers(1)
    // A client that closes its side is gone: stalled streams end instead of lingering.
    .h1_allow_half_closed(false)
    .disable_signals()
    .shutdown_timeout(1)
    .bind(bind)?;
    let addr =
        server.addrs().first().copied().ok_or_else(|| {
            io::Error::new(io::ErrorKind::AddrNotAvailable, "bound to no address")
        })?;
    let server = server.run();
    let handle = server.handle();
    let task = tokio::spawn(server);
    tracing::debug!(%addr, "gemini emulator started");
    Ok(RunningEmulator {
        addr,
        handle,
        task: Some(task),
        control: EmulatorControl { shared },
    })
}

/// Reads and changes a running emulator; cheap to clone, usable from any thread.
#[derive(Clone)]
pub struct EmulatorControl {
    shared: Arc<Shared>,
}

impl EmulatorControl {
    /// Counters and the log of recent requests.
    pub fn stats(&self) -> EmulatorStats {
        self.shared.stats()
    }

    /// Appends scripted next responses (all or none); returns how many are queued.
    pub fn script(
        &self,
        responses: impl IntoIterator<Item = ScriptedResponse>,
    ) -> Result<usize, ScriptError> {
        self.shared.push_script(responses.into_iter().collect())
    }

    /// The scripted responses not played yet.
    pub fn pending_script(&self) -> Vec<ScriptedResponse> {
        self.shared.script()
    }

    pub fn clear_script(&self) {
        self.shared.clear_script();
    }

    pub fn config(&self) -> EmulatorConfig {
        self.shared.config()
    }

    /// Replaces the whole configuration (quota usage is kept).
    pub fn set_config(&self, config: EmulatorConfig) -> Result<(), ConfigError> {
        self.shared.set_config(config)
    }

    /// Changes some settings; returns the configuration now in force.
    pub fn update_config(&self, update: &ConfigUpdate) -> Result<EmulatorConfig, ConfigError> {
        self.shared.update_config(update)
    }

    /// Changes the configuration with a closure; returns the configuration now in force.
    pub fn edit_config(
        &self,
        edit: impl FnOnce(&mut EmulatorConfig),
    ) -> Result<EmulatorConfig, ConfigError> {
        let mut config = self.config();
        edit(&mut config);
        self.set_config(config.clone())?;
        Ok(config)
    }

    /// Forgets quota usage, the script and the counters; the configuration stays.
    pub fn reset(&self) {
        self.shared.reset();
    }
}

/// A running emulator. Dereferences to its [`EmulatorControl`]. Dropping it stops the server
/// without waiting; [`RunningEmulator::stop`] waits.
pub struct RunningEmulator {
    addr: SocketAddr,
    handle: ServerHandle,
    task: Option<JoinHandle<io::Result<()>>>,
    control: EmulatorControl,
}

impl RunningEmulator {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, what a client takes as its base URL.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A control handle that outlives this one's borrow.
    pub fn control(&self) -> EmulatorControl {
        self.control.clone()
    }

    /// Stops serving (open streams are cut) and waits for the server to end.
    pub async fn stop(mut self) {
        self.handle.stop(false).await;
        if let Some(task) = self.task.take() {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "gemini emulator ended with an error"),
                Err(e) => tracing::warn!(error = %e, "gemini emulator task failed"),
            }
        }
    }
}

impl Deref for RunningEmulator {
    type Target = EmulatorControl;

    fn deref(&self) -> &EmulatorControl {
        &self.control
    }
}

impl Drop for RunningEmulator {
    fn drop(&mut self) {
        if self.task.is_some() {
            // The command is sent at once; nobody waits for it.
            drop(self.handle.stop(false));
        }
    }
}
