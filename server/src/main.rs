//! `hearth`: parse flags, set up logging, run the server until SIGTERM/SIGINT; or run the
//! `hearth analyze` / `hearth usage` subcommands (usage analytics tools).

use clap::Parser;
use server::config::{Config, Flags};

/// jemalloc instead of glibc's malloc. A query allocates many small, short-lived objects (label
/// strings of every selected series, promql-parser's per-parse tables, point buffers): with glibc
/// 25-35% of a small query's server CPU was `malloc`/`free`, much of it `malloc_consolidate`
/// triggered by the parser's large per-parse allocation. A/B figures: BENCHMARKS.md, "Remote-write
/// ingest at 20k, 100k and 1M series" (memory).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's start-up options (its `malloc_conf` symbol; the `_RJEM_MALLOC_CONF` environment
/// variable still overrides them). With the defaults, freed pages stay with the process for 10 s
/// (`dirty_decay_ms`), so a few large queries in a row held their memory: 20k series x 3 h, the
/// 24 dashboard queries x 3 after ingest, peak RSS 272 MiB with glibc, 442 MiB with jemalloc's
/// defaults. Purging dirty pages after 1 s and muzzy ones at once, from jemalloc's background
/// threads rather than on the allocating thread: 240 MiB, with query CPU as with the defaults
/// (decay 0 on the allocating thread gave 208 MiB but cost 1.15-1.85x CPU per query).
#[cfg(not(target_env = "msvc"))]
#[export_name = "_rjem_malloc_conf"]
pub static MALLOC_CONF: MallocConf = MallocConf(c"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0".as_ptr());

/// A pointer to a static C string, as jemalloc reads `malloc_conf`.
#[repr(transparent)]
pub struct MallocConf(*const std::ffi::c_char);

// SAFETY: the pointer is to an immutable `'static` C string literal; nothing writes through it.
unsafe impl Sync for MallocConf {}

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
    let result = rt.block_on(server::server::run(config, Box::new(server::backend_db::open)));
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
