//! The actions of an apply sequence on the real system: files written
//! atomically under the root with a bounded number of backups, symlinks made
//! under the root, programs run through the runner (only logged when
//! `apply = false`), sethostname(2).
//! And DNS, where the back-end leaves it to `/etc/resolv.conf`: through
//! systemd-resolved or resolvconf where they manage it, as a plain file
//! otherwise, never renaming or deleting it (the original's resolvconf path
//! destroyed it, bug B-NET-1).

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use nova_agent_support::files::{replace_file, under_root};
use nova_agent_support::runner::{Arg, Outcome, Runner};

use crate::backend::{Actions, Plan, System};
use crate::hosts;
use crate::model::{Hostname, Network};

/// Backups kept per file (`<file>.<unix time>.bak~`); older ones are deleted.
pub const BACKUPS_KEPT: usize = 3;

pub struct SystemActions<'a> {
    root: &'a Path,
    runner: &'a Runner,
}

impl<'a> SystemActions<'a> {
    pub fn new(root: &'a Path, runner: &'a Runner) -> SystemActions<'a> {
        SystemActions { root, runner }
    }

    fn real(&self, path: &str) -> Result<PathBuf, String> {
        under_root(self.root, path).map_err(|e| e.to_string())
    }
}

impl Actions for SystemActions<'_> {
    fn write(&mut self, plan: &Plan) -> Result<(), String> {
        for file in &plan.files {
            let real = self.real(&file.path)?;
            if std::fs::read(&real).is_ok_and(|old| old == file.content) {
                tracing::debug!("{}: unchanged", file.path);
                continue;
            }
            if let Some(parent) = real.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| format!("cannot create the directory of {}: {e}", file.path))?;
            }
            if real.exists() {
                back_up(&real, false).map_err(|e| format!("cannot back up {}: {e}", file.path))?;
            }
            replace_file(&real, file.mode, |f| {
                std::io::Write::write_all(f, &file.content)
            })
            .map_err(|e| format!("cannot write {}: {e}", file.path))?;
            tracing::info!("wrote {}", file.path);
        }
        for path in &plan.remove {
            let real = self.real(path)?;
            if std::fs::symlink_metadata(&real).is_ok() {
                back_up(&real, true).map_err(|e| format!("cannot move {path} aside: {e}"))?;
                tracing::info!("moved {path} aside");
            }
        }
        Ok(())
    }

    fn symlink(&mut self, target: &str, link: &str) -> Result<(), String> {
        let real = self.real(link)?;
        if std::fs::symlink_metadata(&real).is_ok() {
            tracing::debug!("{link}: exists, not linked");
            return Ok(());
        }
        if let Some(parent) = real.parent() {
            std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
        }
        std::os::unix::fs::symlink(target, &real).map_err(|e| e.to_string())?;
        tracing::info!("linked {link} -> {target}");
        Ok(())
    }

    fn run(&mut self, program: &str, args: &[&str]) -> Result<i32, String> {
        let args: Vec<Arg> = args.iter().map(|a| Arg::from(*a)).collect();
        match self.runner.run(program, &args) {
            Ok(Outcome::Skipped) => Ok(0),
            Ok(Outcome::Finished(finished)) => {
                if !finished.success() {
                    let stderr = finished.stderr.trim();
                    tracing::warn!(
                        "{program} failed: {}",
                        if stderr.is_empty() {
                            "no output"
                        } else {
                            stderr
                        }
                    );
                }
                Ok(finished.code.unwrap_or(128 + finished.signal.unwrap_or(0)))
            }
            Err(e) => Err(e.to_string()),
        }
    }

    fn set_hostname(&mut self, hostname: &Hostname) -> Result<(), String> {
        if !self.runner.apply() {
            tracing::info!("not setting the hostname to {hostname} (apply = false)");
            return Ok(());
        }
        match nix::unistd::sethostname(hostname.as_str()) {
            Ok(()) => {
                tracing::info!("hostname set to {hostname}");
                Ok(())
            }
            // As std words it: "Operation not permitted (os error 1)".
            Err(errno) => Err(std::io::Error::from(errno).to_string()),
        }
    }
}

/// Copies (`moved = false`) or renames `real` to `<real>.<unix time>.bak~`,
/// then deletes all but the newest [`BACKUPS_KEPT`] backups of it.
fn back_up(real: &Path, moved: bool) -> std::io::Result<()> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let name = real
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let backup = real.with_file_name(format!("{name}.{now}.bak~"));
    if moved {
        std::fs::rename(real, &backup)?;
    } else {
        std::fs::copy(real, &backup)?;
    }
    let dir = real.parent().unwrap_or(Path::new("."));
    let mut backups: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let file = entry.file_name().to_string_lossy().into_owned();
            let stamp = file
                .strip_prefix(&format!("{name}."))?
                .strip_suffix(".bak~")?;
            Some((stamp.parse().ok()?, entry.path()))
        })
        .collect();
    backups.sort();
    let excess = backups.len().saturating_sub(BACKUPS_KEPT);
    for (_, old) in backups.into_iter().take(excess) {
        let _ = std::fs::remove_file(old);
    }
    Ok(())
}

/// How `/etc/resolv.conf` is managed on this root.
#[derive(Debug, PartialEq, Eq)]
pub enum ResolvConf {
    /// A link into /run/systemd/resolve: `resolvectl dns <if> <servers>`.
    Resolved,
    /// A link into resolvconf's run directory: its `base` file and
    /// `resolvconf -u`.
    Resolvconf,
    /// A plain file, or none: written.
    Plain,
    /// A link to something else: left alone.
    Foreign(PathBuf),
}

pub fn resolv_conf_kind(system: &System) -> ResolvConf {
    match system.read_link("/etc/resolv.conf") {
        None => ResolvConf::Plain,
        Some(target) => {
            let text = target.to_string_lossy();
            if text.contains("systemd/resolve") {
                ResolvConf::Resolved
            } else if text.contains("resolvconf") {
                ResolvConf::Resolvconf
            } else {
                ResolvConf::Foreign(target)
            }
        }
    }
}

/// Hands the nameservers to whatever manages `/etc/resolv.conf`. Failures
/// are logged, not fatal: the interfaces are up by now.
pub fn apply_dns(
    network: &Network,
    system: &System,
    actions: &mut dyn Actions,
) -> Result<(), String> {
    let Some(content) = hosts::resolv_conf(network) else {
        return Ok(());
    };
    match resolv_conf_kind(system) {
        ResolvConf::Plain => {
            let mut plan = Plan::default();
            plan.write("/etc/resolv.conf", content);
            actions.write(&plan)
        }
        ResolvConf::Resolved => {
            for interface in network.interfaces.iter().filter(|i| !i.dns.is_empty()) {
                let servers: Vec<String> = interface.dns.iter().map(ToString::to_string).collect();
                let mut args = vec!["dns", interface.name.as_str()];
                args.extend(servers.iter().map(String::as_str));
                match actions.run("/usr/bin/resolvectl", &args) {
                    Ok(0) => {}
                    Ok(code) => {
                        tracing::warn!("resolvectl dns {} exited with {code}", interface.name)
                    }
                    Err(e) => tracing::warn!("{e}"),
                }
            }
            Ok(())
        }
        ResolvConf::Resolvconf => {
            let base: String = network
                .all_dns()
                .iter()
                .map(|d| format!("nameserver {d}\n"))
                .collect();
            let mut plan = Plan::default();
            plan.write("/etc/resolvconf/resolv.conf.d/base", base);
            actions.write(&plan)?;
            match actions.run("/sbin/resolvconf", &["-u"]) {
                Ok(0) => {}
                Ok(code) => tracing::warn!("resolvconf -u exited with {code}"),
                Err(e) => tracing::warn!("{e}"),
            }
            Ok(())
        }
        ResolvConf::Foreign(target) => {
            tracing::warn!(
                "/etc/resolv.conf is a link to {}, which nova-agent does not manage; nameservers not written",
                target.display()
            );
            Ok(())
        }
    }
}

#[cfg(test)]
#[path = "apply_tests.rs"]
mod tests;
