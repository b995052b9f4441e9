//! The command line: its definition ([`args`], which the docs generator
//! renders too) and the subcommands other than `run` (which is the daemon's):
//! [`call`], [`check`] (`config check`), [`list`] (`plugins list` and
//! `plugins reload`, rendered by [`render`]) and [`reset`]
//! (`resetnetwork`).

mod args;
mod call;
mod check;
mod list;
mod render;
mod reset;

use std::process::ExitCode;

pub use args::Cli;
use args::{Command, ConfigCommand, PluginsCommand};

use crate::config::Config;
use crate::daemon::{control, run, service};
use crate::logging;

/// Runs what the command line asks; errors are printed, and the exit code
/// says whether it went well.
pub fn execute(cli: Cli) -> ExitCode {
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            // A daemonized agent's stderr is gone: its parent prints it.
            service::failed(&format!("{e:#}"));
            eprintln!("nova-agent: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let load = || Config::load(cli.config.as_deref());
    let success = |ok: bool| {
        if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    };
    match &cli.command {
        Command::Run(args) => {
            let config = load()?;
            // Before any thread exists: fork is only safe then.
            if args.daemonize {
                service::daemonize()?;
            }
            let daemon_log = args.daemonize.then(|| config.daemon_log_file());
            let destination = logging::init_service(&logging::ServiceLog {
                level: &config.log_level,
                file: daemon_log.as_deref().or(config.log_file.as_deref()),
                daemonized: args.daemonize,
            })?;
            tracing::debug!("{destination}");
            run::run(config, args.pidfile.as_deref())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Plugins(PluginsCommand::List { json }) => {
            let config = load()?;
            logging::init("error");
            let (listing, ok) = list::list(&config, *json)?;
            print!("{listing}");
            Ok(success(ok))
        }
        Command::Plugins(PluginsCommand::Reload { json, if_running }) => {
            let config = load()?;
            logging::init("error");
            match list::reload(&config, *json)? {
                Some((report, ok)) => {
                    print!("{report}");
                    Ok(success(ok))
                }
                None if *if_running => Ok(ExitCode::SUCCESS),
                None => anyhow::bail!(
                    "no agent is running (nothing answers on {}); plugins load when it starts",
                    control::socket_path(&config.run_dir).display()
                ),
            }
        }
        Command::Config(ConfigCommand::Check) => {
            let config = load()?;
            logging::init("error");
            let (report, ok) = check::check(&config)?;
            print!("{report}");
            Ok(success(ok))
        }
        Command::Resetnetwork => {
            let config = load()?;
            logging::init(&config.log_level);
            Ok(success(reset::reset_network(&config)?))
        }
        Command::PluginHost { plugin } => Ok(crate::plugins::isolated::child::main(plugin)),
        Command::Call(args) => {
            logging::init("error");
            let config = if args.socket.is_some() {
                None
            } else {
                Some(load()?)
            };
            Ok(success(call::call(args, config.as_ref())?))
        }
    }
}
