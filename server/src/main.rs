//! `hearth`: parse flags, set up logging, run the server until SIGTERM/SIGINT; or run the
//! `hearth analyze` / `hearth usage` subcommands (usage analytics tools).

use std::sync::Arc;

use clap::Parser;
use server::backend_db::{db_options, DbBackend};
use server::config::{Config, Flags};
use server::server::Opened;
use storage::db::Db;

/// Opens the database as `server::backend_db::open` does (maintenance thread, usage analytics
/// and eBPF sources started when ready) and also hands it to the admin API as its snapshotter.
/// The `Backend` trait has no snapshot method, so the admin API needs the `Db` itself.
fn open(c: &Config) -> Result<Opened, String> {
    let db = Db::open(&c.storage.path, db_options(c)).map_err(|e| e.to_string())?;
    db.start_maintenance();
    let for_sources = db.clone();
    Ok(Opened {
        backend: Arc::new(DbBackend(db)),
        on_ready: Box::new(move |state| {
            state.snapshots.set(Arc::new(for_sources.clone()));
            server::usage::start(&state.usage, for_sources.clone(), &state.config.usage);
            server::ebpf::start(state, for_sources);
        }),
    })
}

fn main() -> std::process::ExitCode {
    // `hearth analyze ...` and `hearth usage ...` are one-shot tools, not the server.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(code) = server::usage::cli::run_subcommand(&args) {
        return code;
    }
    let flags = Flags::parse();
    let config = match Config::load(flags) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hearth: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    server::logging::init(config.log_level, config.log_format);
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("hearth-worker").build() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return std::process::ExitCode::FAILURE;
        }
    };
    tracing::info!(
        version = server::metrics::VERSION,
        revision = server::metrics::REVISION,
        data = %config.storage.path.display(),
        "starting hearth"
    );
    let result = rt.block_on(server::server::run(config, Box::new(open)));
    match result {
        Ok(()) => {
            tracing::info!("see you next time");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = %e, "hearth stopped with an error");
            std::process::ExitCode::FAILURE
        }
    }
}
