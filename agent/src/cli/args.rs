//! The command line (ARCHITECTURE.md §5, "CLI").

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// The OpenStack guest agent for Nova hosts: answers the host's requests
/// (version, password, network, files, updates) through plugins loaded from
/// the plugin directory.
///
/// Without --config it reads /etc/nova-agent/agent.toml, or, when that file
/// does not exist, an embedded development default that keeps everything
/// under the executable's directory and changes nothing on the machine.
#[derive(Parser, Debug)]
#[command(
    name = "nova-agent",
    version,
    propagate_version = true,
    after_help = "Examples:\n  \
      nova-agent run                      serve (Ctrl-C or SIGTERM stops it)\n  \
      nova-agent call version             ask the running agent its version\n  \
      nova-agent call resetnetwork        run a command, as the host would\n  \
      nova-agent plugins list --json      what is installed, and why a plugin is not loaded\n  \
      nova-agent plugins reload           load upgraded plugins into the running agent\n  \
      nova-agent config check -c FILE     check a config before installing it\n  \
      nova-agent resetnetwork             configure the network from the host's metadata, once"
)]
pub struct Cli {
    /// Configuration file (TOML)
    #[arg(long, short = 'c', global = true, value_name = "PATH")]
    pub(crate) config: Option<PathBuf>,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Serve requests until SIGTERM or SIGINT (SIGHUP reloads the plugins)
    ///
    /// In the foreground by default (systemd: Type=notify). Under systemd it
    /// logs to the journal, elsewhere to stderr, and also to `[log] file`.
    Run(RunArgs),
    /// Inspect the plugins in the plugin directories
    #[command(subcommand)]
    Plugins(PluginsCommand),
    /// Send one request through the agent's unix socket and print the response
    ///
    /// Exits 0 when the return code is "0" or "D0", 1 otherwise.
    Call(CallArgs),
    /// Check the configuration and the plugins it names
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Configure the network once, now, from the host's metadata (for boot)
    ///
    /// Runs the resetnetwork command in this process with the metadata of
    /// the first configured channel that has vm-data/networking entries;
    /// prints the response and exits 0 when its return code is "0".
    Resetnetwork,
    /// The process an isolated plugin's commands run in; started by the
    /// agent only, with its socket and the plugin's library as fd 3 and 4
    #[command(hide = true)]
    PluginHost {
        /// The plugin's manifest name
        plugin: String,
    },
}

#[derive(Args, Debug, Default)]
pub(crate) struct RunArgs {
    /// Fork into the background once serving (sysvinit, OpenRC); logs go to
    /// `[log] file`, by default /var/log/nova-agent.log
    #[arg(long, short = 'd')]
    pub(crate) daemonize: bool,
    /// Write the agent's pid to FILE (locked while it runs, removed at exit)
    #[arg(long, short = 'p', value_name = "FILE")]
    pub(crate) pidfile: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub(crate) enum PluginsCommand {
    /// List every plugin file: its state, version and what it provides
    ///
    /// With an agent running, this is its live view (generations, requests
    /// served, superseded code); otherwise the files are loaded and
    /// initialised here, without opening any transport. The first line
    /// (stderr with --json, offline only) says which. Exits 0 when every
    /// file is loaded or disabled, 1 when one is refused or in error (or a
    /// newer build of a loaded one failed) or a plugin directory is refused.
    List {
        /// Print a JSON array instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Ask the running agent to load new, changed and removed plugin files now
    ///
    /// Exits 0 when every file loaded, 1 when one failed (its previous
    /// generation keeps serving) or no agent answered.
    Reload {
        /// Print the report as JSON
        #[arg(long)]
        json: bool,
        /// Exit 0 quietly when no agent is running (for package triggers)
        #[arg(long)]
        if_running: bool,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum ConfigCommand {
    /// Parse the configuration, load and initialise every plugin with its
    /// table, and report every problem; exits 1 if there is any
    Check,
}

#[derive(Args, Debug)]
pub(crate) struct CallArgs {
    /// Command name, e.g. version, features, resetnetwork
    pub(crate) name: String,
    /// The request's value, sent as a JSON string ("" when absent)
    pub(crate) value: Option<String>,
    /// Parse VALUE as JSON instead of sending it as a string
    #[arg(long)]
    pub(crate) json: bool,
    /// The agent's socket (default: [plugins.unix-socket] path from the config)
    #[arg(long, value_name = "PATH")]
    pub(crate) socket: Option<PathBuf>,
    /// Seconds to wait for the response; 0 waits without limit
    #[arg(long, default_value_t = 120, value_name = "SECS")]
    pub(crate) timeout: u64,
}
