//! `kiln`: the workspace server (`kiln up`) and the client commands that talk to it.

mod assets;
mod bench;
mod bundle;
mod cli;
mod endpoints;
mod jobs;
mod output;
mod schedules;
mod up;
mod upload;

use clap::Parser;

// The server allocates and frees many small objects per request (JSON values, rows, strings);
// glibc's allocator spends a fifth of a search request in malloc/free, mimalloc far less.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let args = cli::Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            output::print_error(&e);
            std::process::ExitCode::FAILURE
        }
    }
}
