//! `ignis-chat`: the chat application's binary. `--help` lists every setting.

use std::process::ExitCode;

use clap::Parser;
use ignis_chat::{Cli, Config, LogFormat};

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let config = match Config::load(Cli::parse()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ignis-chat: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(config.log_format);
    let running = match ignis_chat::start(config).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("cannot start: {e}");
            eprintln!("ignis-chat: {e}");
            return ExitCode::FAILURE;
        }
    };
    let addr = running.local_addr();
    tracing::info!("ignis-chat listening on http://{addr} (REST under /api, Socket.IO on /io)");
    // A line for scripts and tests that start the chat on port 0.
    println!("listening on {}", addr.port());
    running.run_until_signal().await;
    ExitCode::SUCCESS
}
