//! `smtp-load`: smtp-bench's load generator alone, against an SMTP server that is already running. C
//! connections, each EHLO once and then MAIL / RCPT / DATA in lock-step, until M messages got `250`;
//! prints the rate and the final 250's latency. For profiling one side under the load the side-by-side
//! runs use (`perf record -a` while it runs), not a benchmark of its own.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use mailbus_bench::smtp_load::{Load, Shape};

#[derive(Parser, Debug)]
#[command(about = "Sends SMTP load to a running server, as smtp-bench does, and prints the rate")]
struct Args {
    /// The server, e.g. 127.0.0.1:2525.
    server: SocketAddr,
    #[command(flatten)]
    load: Shape,
    #[arg(long, default_value = "bench@bench.test")]
    from: String,
    /// Recipients; message i goes to the (i mod count)th.
    #[arg(long, default_value = "sink@bench.test", value_delimiter = ',')]
    to: Vec<String>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    if args.load.messages == 0 || args.load.connections == 0 || args.to.is_empty() {
        eprintln!("smtp-load: --messages, --connections and --to must not be zero or empty");
        return ExitCode::from(2);
    }
    let header = format!("From: <{}>\r\nTo: <{}>\r\nSubject: smtp-load\r\n\r\n", args.from, args.to[0]);
    let load = Load {
        messages: args.load.messages,
        connections: args.load.connections,
        message: Arc::from(mailbus_bench::message_of_size(&header, args.load.size.max(header.len() + 2))),
        sender: args.from,
        recipients: Arc::from(args.to),
    };
    let report = load.run(args.server).await;
    report.print_line("smtp-load");
    if report.accepted < args.load.messages { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}
