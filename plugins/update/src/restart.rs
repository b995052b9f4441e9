//! Restarting the agent after an install, through the runner.
//!
//! With systemd (decided from files: `<root>/run/systemd/system` is a
//! directory, as `sd_booted()` decides) it runs `systemctl --no-block restart
//! <service>`: the job is queued and the command returns at once, so this
//! request is answered before systemd stops the agent, and the agent's
//! graceful stop (it serves no new request, and exits within 5 s) lets the
//! response out. Otherwise it runs `sh <script> restart` with the first of the
//! seed's init scripts that exists, and waits, as the seed did (B-UPD-4: the
//! script stops the agent that is waiting for it, so the response may be
//! lost). With neither, nothing is installed and the answer is `404`.

use std::path::{Path, PathBuf};

use nova_agent_support::runner::{Arg, Outcome, Runner};

/// The seed's init scripts, in the order it tried them.
pub const INIT_SCRIPTS: [&str; 3] = [
    "/etc/init.d/nova-agent",
    "/etc/rc.d/nova-agent",
    "/etc/nova-agent.init",
];

pub const NO_INIT_SCRIPT: &str = "No init script found to restart";

/// How the agent is restarted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    Systemd {
        service: String,
    },
    /// The script under the root; `guest` is its path as the seed named it.
    Script {
        guest: &'static str,
        path: PathBuf,
    },
}

/// The programs restarts run (tests point them at stubs).
#[derive(Debug, Clone)]
pub struct Programs {
    pub systemctl: String,
    pub sh: String,
}

impl Default for Programs {
    fn default() -> Programs {
        Programs {
            systemctl: "systemctl".to_owned(),
            sh: "sh".to_owned(),
        }
    }
}

/// How the system under `root` restarts a service; `None` when it cannot.
pub fn detect(root: &Path, service: &str) -> Option<Method> {
    if root.join("run/systemd/system").is_dir() {
        return Some(Method::Systemd {
            service: service.to_owned(),
        });
    }
    INIT_SCRIPTS.iter().find_map(|guest| {
        let path = root.join(guest.trim_start_matches('/'));
        path.is_file().then_some(Method::Script { guest, path })
    })
}

impl Method {
    /// Runs the restart (only logged when the runner does not apply); the
    /// error is the answer's message.
    pub fn run(&self, runner: &Runner, programs: &Programs) -> Result<(), String> {
        let outcome = match self {
            Method::Systemd { service } => runner.run(
                &programs.systemctl,
                &[
                    Arg::from("--no-block"),
                    Arg::from("restart"),
                    Arg::from(service.as_str()),
                ],
            ),
            Method::Script { path, .. } => runner.run(
                &programs.sh,
                &[Arg::from(path.display().to_string()), Arg::from("restart")],
            ),
        };
        match outcome {
            Ok(Outcome::Skipped) => Ok(()),
            Ok(Outcome::Finished(finished)) if finished.success() => Ok(()),
            Ok(Outcome::Finished(finished)) => {
                let stderr = finished.stderr.trim();
                if !stderr.is_empty() {
                    tracing::warn!("agentupdate: the restart failed: {stderr}");
                }
                Err(match (finished.code, finished.signal) {
                    (Some(code), _) => format!("Couldn't restart the agent: {code}"),
                    (None, Some(signal)) => {
                        format!("Couldn't restart the agent: killed by signal {signal}")
                    }
                    (None, None) => "Couldn't restart the agent".to_owned(),
                })
            }
            Err(e) => Err(format!("Couldn't restart the agent: {e}")),
        }
    }
}
