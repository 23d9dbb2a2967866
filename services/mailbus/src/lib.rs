//! The `mailbus` binary: one executable, many roles (the model of Loki, Mimir and Temporal). It reads
//! and validates the settings, initialises telemetry once, wires the role libraries together, and turns
//! SIGTERM or Ctrl-C into a graceful shutdown. It holds no logic of its own beyond that and the
//! operator's commands.

mod admin;
mod dev;
mod healthcheck;
mod mail;
pub mod roles;
pub mod settings;

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use roles::Role;
use settings::{Settings, VARS};

#[derive(Debug, Parser)]
#[command(name = "mailbus", version, about = "An Internet mail system built as services", long_about = None)]
#[command(after_help = "Settings come from the environment; `mailbus env` lists them.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the SMTP role.
    SmtpIngress,
    /// Run the queue and delivery role.
    Relay,
    /// Run the storage role (the only one that uses PostgreSQL).
    Mailbox,
    /// Run the IMAP and POP3 role.
    Access,
    /// Run the JMAP role (HTTP: API, blobs, push, submission).
    Http,
    /// Run every role in this process.
    All,
    /// Run everything locally, starting a throwaway PostgreSQL and nats-server when DATABASE_URL and
    /// NATS_URL are not set, with a demo account.
    Dev,
    /// Operator commands, against the mailbox role at MAILBUS_MAILBOX_URL.
    #[command(subcommand)]
    Admin(admin::AdminCommand),
    /// Exit 0 if the role's /readyz answers 200 on this host (for container health checks).
    Healthcheck {
        #[arg(value_enum)]
        role: Role,
    },
    /// List the environment variables mailbus reads, with their defaults.
    Env {
        /// A Markdown table instead of one name per line.
        #[arg(long)]
        markdown: bool,
    },
}

/// Entry point of the `mailbus` binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    return_large_allocations();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("mailbus: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if error.is::<admin::AlreadyExists>() => {
            eprintln!("mailbus: {error:#}");
            ExitCode::from(admin::EXIT_EXISTS)
        }
        Err(error) => {
            eprintln!("mailbus: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    // `env` must work whatever the environment holds: it is how one finds out what is allowed there.
    let settings = match command {
        Command::Env { markdown } => {
            print_env(markdown);
            return Ok(());
        }
        _ => Settings::from_env()?,
    };
    let roles: &[Role] = match command {
        Command::Env { .. } => return Ok(()),
        Command::Admin(admin) => return admin::run(admin, &settings).await,
        Command::Healthcheck { role } => return healthcheck::run(role, &settings).await,
        Command::SmtpIngress => &[Role::SmtpIngress],
        Command::Relay => &[Role::Relay],
        Command::Mailbox => &[Role::Mailbox],
        Command::Access => &[Role::Access],
        Command::Http => &[Role::Http],
        Command::All | Command::Dev => &Role::ALL,
    };
    let service_name = match roles {
        [one] => format!("mailbus-{}", one.name()),
        _ => "mailbus".to_owned(),
    };
    let format = settings.get(settings::MAILBUS_LOG_FORMAT)?;
    let telemetry = mailbus_telemetry::init(&service_name, format)?;
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    let result = if matches!(command, Command::Dev) {
        dev::run(settings, shutdown).await
    } else {
        let bound = roles::bind(roles, &settings).await?;
        tracing::info!(roles = ?roles.iter().map(|r| r.name()).collect::<Vec<_>>(), "serving");
        bound.serve(shutdown).await
    };
    tokio::task::spawn_blocking(move || telemetry.shutdown()).await.context("flushing traces")?;
    result
}

/// Makes glibc serve allocations of 1 MiB and more with their own mappings, and give them back on free.
/// By default glibc raises that threshold after the first large free, so each argon2id verification's
/// 19 MiB then came from a malloc arena and stayed there: the POP3 benchmark saw the mailbox role at
/// 2.8 GB after 1,000 logins (388 MB with hashing on two threads, before this).
fn return_large_allocations() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes malloc's tuning; called once at start-up, before any thread exists.
    #[allow(unsafe_code)]
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

/// SIGTERM (what Docker and Kubernetes send) or Ctrl-C start a graceful shutdown.
async fn stop_on_signal(shutdown: CancellationToken) {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
    tracing::info!("shutting down");
    shutdown.cancel();
}

fn print_env(markdown: bool) {
    if markdown {
        print!("{}", settings::markdown_table());
    } else {
        for var in VARS {
            println!("{}", var.name);
        }
    }
}
