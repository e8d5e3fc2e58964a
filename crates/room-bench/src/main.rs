//! `room-bench`: load for a Room server on loopback, or the minimal reference server that
//! calibrates the tool. See docs/BENCHMARKS.md for the scenarios.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use room_bench::media::{run_media, MediaConfig};
use room_bench::turn::{run_turn, TurnConfig};
use room_bench::{reference, run, LoadConfig};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    Load(LoadConfig),
    /// Publish and receive synthetic media through the server's forwarding unit, and report
    /// throughput, loss, delay, and the server's CPU per forwarded datagram.
    Media(MediaConfig),
    /// Relay paced datagrams both ways through a TURN server (Room's or coturn with the same
    /// secret), and report loss, delay and the server's CPU per relayed Mbit/s.
    Turn(TurnConfig),
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
        Command::Load(config) => finish(runtime.block_on(run(config)).map(|r| r.render())),
        Command::Media(config) => finish(runtime.block_on(run_media(config)).map(|r| r.render())),
        Command::Turn(config) => finish(runtime.block_on(run_turn(config))),
        Command::Reference { addr } => {
            println!("reference fan-out server on ws://{addr}/ws");
            match runtime.block_on(reference::serve_on(addr)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("room-bench reference: {error}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Prints a run's report, or why it could not run.
fn finish(report: Result<String, String>) -> ExitCode {
    match report {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("room-bench: {error}");
            ExitCode::FAILURE
        }
    }
}
