//! `nova-agent`: the binary. It parses the command line and hands over to
//! the library; see `lib.rs` for the map.

use std::process::ExitCode;

use clap::Parser;
use nova_agent::cli::{self, Cli};

fn main() -> ExitCode {
    cli::execute(Cli::parse())
}
