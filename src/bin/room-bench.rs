//! `room-bench`: load for a Room server on loopback, or the minimal reference server that
//! calibrates the tool. See docs/BENCHMARKS.md for the scenarios.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use room::loadgen::{self, LoadConfig};

#[derive(Parser)]
#[command(name = "room-bench", about = "Load generator for Room (loopback only)")]
struct Cli {
    /// Worker threads of the tool's runtime. The server and the tool share the machine's
    /// cores; more threads than cores only adds scheduling delay to the measured latency.
    #[arg(long, global = true, default_value_t = 2)]
    threads: usize,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Connect clients, have some of them chat, and report delivery, rate, latency and memory.
    Load {
        /// Server address (loopback only).
        #[arg(long, default_value = "127.0.0.1:3000")]
        addr: SocketAddr,
        #[arg(long, default_value_t = 100)]
        clients: usize,
        #[arg(long, default_value_t = 1)]
        rooms: usize,
        #[arg(long, default_value_t = 10)]
        senders: usize,
        /// Chat messages per second per sender.
        #[arg(long, default_value_t = 10)]
        rate: u32,
        /// Seconds of sending (or, with --idle, of holding the connections).
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Characters per chat message.
        #[arg(long, default_value_t = 64)]
        message_chars: usize,
        #[arg(long, default_value_t = 64)]
        connect_concurrency: usize,
        /// Only hold the connections open (memory per idle connection).
        #[arg(long)]
        idle: bool,
        /// The server's pid, to report its resident memory per connection.
        #[arg(long)]
        server_pid: Option<u32>,
    },
    /// Run the minimal reference fan-out server, to measure the tool's own ceiling.
    Reference {
        #[arg(long, default_value = "127.0.0.1:3100")]
        addr: SocketAddr,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.threads.max(1))
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Command::Load {
            addr,
            clients,
            rooms,
            senders,
            rate,
            duration,
            message_chars,
            connect_concurrency,
            idle,
            server_pid,
        } => {
            let config = LoadConfig {
                addr,
                clients,
                rooms,
                senders,
                rate,
                duration: Duration::from_secs_f64(duration),
                message_chars,
                connect_concurrency,
                idle,
                server_pid,
                ..LoadConfig::default()
            };
            match runtime.block_on(loadgen::run(config)) {
                Ok(report) => {
                    println!("{}", report.render());
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("room-bench: {error}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Reference { addr } => {
            println!("reference fan-out server on ws://{addr}/ws");
            match runtime.block_on(loadgen::reference::serve_on(addr)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("room-bench reference: {error}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
