//! `nova-agent-gen-docs OUT_DIR`: writes nova-agent's man pages
//! (`OUT_DIR/man/nova-agent.8` and one page per subcommand, e.g.
//! `nova-agent-plugins-reload.8`) and its shell completions
//! (`OUT_DIR/completions/nova-agent.bash`, `_nova-agent`, `nova-agent.fish`),
//! from the same clap definition the binary parses, so they cannot drift.
//!
//! Run at package time (`packaging/build-packages.sh`); it is not a default
//! workspace member and nothing at run time depends on it.

use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;
use nova_agent::cli::Cli;

fn main() -> std::io::Result<()> {
    let Some(out) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: nova-agent-gen-docs OUT_DIR");
        std::process::exit(2);
    };
    let mut command = Cli::command();
    // Propagates the global options (--config) to every subcommand's page.
    command.build();
    let man = out.join("man");
    std::fs::create_dir_all(&man)?;
    write_pages(&command, "nova-agent", "nova-agent", &man)?;
    let completions = out.join("completions");
    std::fs::create_dir_all(&completions)?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let path =
            clap_complete::generate_to(shell, &mut command.clone(), "nova-agent", &completions)?;
        println!("{}", path.display());
    }
    Ok(())
}

/// Sections clap cannot know, appended to nova-agent(8), in roff.
const MAIN_PAGE_EXTRA: &str = r#".SH SIGNALS
.TP
\fBSIGTERM\fR, \fBSIGINT\fR
Stop: the channels stop taking requests, those in flight are answered, and the
agent exits 0 within 5 seconds.
.TP
\fBSIGHUP\fR
Reload the plugins (as \fBnova-agent plugins reload\fR does); the
configuration file is not re-read.
.SH FILES
.TP
\fI/etc/nova-agent/agent.toml\fR
The configuration; check a change with \fBnova-agent config check\fR.
.TP
\fI/usr/lib/nova-agent/plugins/\fR
The plugins (*.so), owned by root and writable by root only. A file renamed
into place is loaded by the running agent.
.TP
\fI/var/lib/nova-agent/\fR
State; \fIplugins/\fR holds the private copies plugins are loaded from.
.TP
\fI/run/nova-agent/control.sock\fR
The control socket \fBplugins list\fR and \fBplugins reload\fR use (root only).
.TP
\fI/run/nova-agent/agent.sock\fR
The unix-socket channel \fBnova-agent call\fR uses (root only).
.SH ENVIRONMENT
.TP
\fBRUST_LOG\fR
Overrides \fB[log] level\fR, e.g. \fIinfo,nova_agent_plugin_xenstore=debug\fR.
.TP
\fBXENSTORED_PATH\fR
The xenstored socket the xenstore plugin connects to.
.TP
\fBNOTIFY_SOCKET\fR, \fBWATCHDOG_USEC\fR, \fBJOURNAL_STREAM\fR
Set by systemd: readiness and status notifications, the watchdog, logging to
the journal.
.SH SEE ALSO
\fBsystemctl\fR(1), \fBjournalctl\fR(1); /usr/share/doc/nova-agent/
"#;

/// The page of `command` (section 8: an administration command), then one
/// per subcommand, named like git's (`nova-agent-plugins-list.8`).
fn write_pages(
    command: &clap::Command,
    name: &str,
    invocation: &str,
    dir: &Path,
) -> std::io::Result<()> {
    // clap names are `'static` without its "string" feature; a few leaked
    // names in a run-once tool are cheaper than the feature.
    let leak = |s: &str| -> &'static str { Box::leak(s.to_owned().into_boxed_str()) };
    let command = command.clone().name(leak(name)).bin_name(leak(invocation));
    let path = dir.join(format!("{name}.8"));
    let mut page = Vec::new();
    clap_mangen::Man::new(command.clone())
        .section("8")
        .manual("nova-agent manual")
        .render(&mut page)?;
    if name == "nova-agent" {
        page.extend_from_slice(MAIN_PAGE_EXTRA.as_bytes());
    }
    std::fs::write(&path, page)?;
    println!("{}", path.display());
    for sub in command
        .get_subcommands()
        .filter(|s| s.get_name() != "help" && !s.is_hide_set())
    {
        let sub_name = sub.get_name();
        write_pages(
            sub,
            &format!("{name}-{sub_name}"),
            &format!("{invocation} {sub_name}"),
            dir,
        )?;
    }
    Ok(())
}
