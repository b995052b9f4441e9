//! Process isolation (`[isolation] process`): an isolated plugin's commands
//! run in a child process of their own, so a segfault, an abort, an `exit`,
//! a runaway allocation or an endless loop in it costs the requests it was
//! running, not the agent.
//!
//! The child is this binary in its hidden `plugin-host` mode ([`child`]).
//! It gets the library the agent checked and opened (its descriptor, fd 4),
//! loads it with the same loader and ABI check, runs `init`, and serves
//! commands over a socketpair (fd 3; what the plugin's own threads send
//! goes over a second one, fd 5; frames in [`wire`]). The plugin sees the same
//! `Host` and `Call`: its log, metadata reads, command list and gates travel
//! to the agent. The agent side ([`supervisor`], [`link`], [`end`]) gives the
//! registry ordinary command objects, so the dispatcher, gates, deny,
//! counters and hot swap do not know the difference.
//!
//! What it is not: exchanges and parsers never run isolated (a plugin that
//! provides one is refused when listed), and nothing but the child's own
//! process is contained: it runs as root unless `[isolation] user` says
//! otherwise, under a memory limit (`RLIMIT_DATA`), with no core dumps.
//!
//! Architecture invariants: a request to an isolated plugin always gets an
//! outcome (the child's, or a failure naming why there is none) within the
//! timeout plus the time to reap the child; no child outlives its
//! generation's retirement, and none is left a zombie; the agent reads the
//! child's messages as untrusted input.

pub(crate) mod cause;
pub(crate) mod child;
mod end;
mod link;
mod spawn;
mod supervisor;
mod wire;

use std::sync::Arc;
use std::time::Duration;

use nova_agent_plugin_api::ffi::abi_stable::sabi_trait::TD_Opaque;
use nova_agent_plugin_api::ffi::abi_stable::std_types::{RString, RVec, Tuple2};
use nova_agent_plugin_api::ffi::{
    FfiCommandEntry, FfiCommand_TO, FfiGate, FfiLifecycle_TO, HostBox, Instance,
};
use nova_agent_plugin_api::LogLevel;

pub(crate) use supervisor::Supervisor;

pub(crate) use crate::config::Isolation as Settings;
use supervisor::{RemoteCommand, RemoteLifecycle};
use wire::Start;

/// The wait before the next start after `failures` failures in a row:
/// none after the first, then `restart_delay`, doubled each time, capped at
/// `restart_delay_max`.
pub(crate) fn restart_delay(settings: &Settings, failures: u32) -> Duration {
    if failures <= 1 {
        return Duration::ZERO;
    }
    let doublings = (failures - 2).min(31);
    settings
        .restart_delay
        .saturating_mul(1 << doublings)
        .min(settings.restart_delay_max)
}

/// Starts plugin `name`'s child on the library `library` (a descriptor this
/// process holds) and runs its `init` there. Returns what the registry
/// takes from an in-process `init`, with commands that run in the child,
/// and the supervisor, for `plugins list`. The error is one line.
pub(crate) fn start(
    name: &str,
    file: &std::path::Path,
    library: i32,
    config_json: &str,
    settings: &Settings,
    host: HostBox,
) -> Result<(Instance, Arc<Supervisor>), String> {
    let start = Start {
        plugin: name.to_owned(),
        file: file.display().to_string(),
        config_json: config_json.to_owned(),
        agent_version: host.agent_version().into(),
        root: host.root().into(),
        state_dir: host.state_dir().into(),
        apply: host.apply(),
        max_log_level: max_log_level(),
    };
    let (supervisor, provided) = Supervisor::start(start, library, settings.clone(), host)?;
    let refused = (provided.exchanges.iter().map(|n| ("exchange", n)))
        .chain(provided.parsers.iter().map(|n| ("parser", n)))
        .next();
    let lifecycle =
        FfiLifecycle_TO::from_value(RemoteLifecycle(Arc::clone(&supervisor)), TD_Opaque);
    if let Some((kind, object)) = refused {
        lifecycle.shutdown();
        return Err(not_isolable(name, kind, object));
    }
    let commands: RVec<FfiCommandEntry> = provided
        .commands
        .into_iter()
        .map(|(command, success_response)| FfiCommandEntry {
            name: command.as_str().into(),
            success_response,
            object: FfiCommand_TO::from_value(
                RemoteCommand {
                    supervisor: Arc::clone(&supervisor),
                    name: command,
                },
                TD_Opaque,
            ),
        })
        .collect();
    let gates: RVec<FfiGate> = provided
        .gates
        .into_iter()
        .map(|g| FfiGate {
            name: g.name.into(),
            reason: g.reason.into(),
            allow: g.allow.into_iter().map(RString::from).collect(),
        })
        .collect();
    let instance = Instance {
        exchanges: RVec::<Tuple2<RString, _>>::new(),
        parsers: RVec::new(),
        commands,
        gates,
        lifecycle,
    };
    Ok((instance, supervisor))
}

/// The most verbose level the agent records, as plugins count levels.
fn max_log_level() -> u8 {
    use tracing::level_filters::LevelFilter;
    match LevelFilter::current().into_level() {
        None => 0,
        Some(level) => LogLevel::from_tracing(level).0,
    }
}

/// Why plugin `name`, listed in `[isolation] process`, is refused: it
/// provides an exchange or a parser (`kind`), which cannot run isolated.
pub(crate) fn not_isolable(name: &str, kind: &str, object: &str) -> String {
    format!(
        "provides {kind} '{object}', and only commands can run isolated; \
         remove '{name}' from [isolation] process"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_wait_longer_while_failures_go_on() {
        let settings = Settings {
            restart_delay: Duration::from_secs(1),
            restart_delay_max: Duration::from_secs(10),
            ..Settings::default()
        };
        let waits: Vec<u64> = (1..=7)
            .map(|n| restart_delay(&settings, n).as_secs())
            .collect();
        assert_eq!(waits, [0, 1, 2, 4, 8, 10, 10]);
        assert_eq!(restart_delay(&settings, u32::MAX), Duration::from_secs(10));
    }
}
