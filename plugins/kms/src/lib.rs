//! The `kms` plugin: command `kmsactivate`, which registers a Red Hat family
//! guest with Red Hat's update service from an activation key the host
//! sends: `{"activation_key": str, "profile": str, "domains": str | [str],
//! "org": str}`.
//!
//! The flow: check the whole value (`value`); refuse a root that is not of
//! the Red Hat family (`distro::detect`: RHEL, CentOS, Fedora, Rocky, Alma,
//! Oracle; the seed accepted "redhat" only, B-NET-16); then, where
//! `rhnreg_ks` is on the agent's PATH, the seed's RHN flow: write
//! `/etc/sysconfig/rhn/up2date` from its template (`up2date`), remove the
//! old `systemid`, run `rhnreg_ks --activationkey KEY --profile PROFILE
//! --force`; else, where `subscription-manager` is (RHEL 7 and later),
//! `subscription-manager register --activationkey KEY --org ORG [--name
//! PROFILE] --force`, with no RHN file touched.
//!
//! What it is not: it never logs or answers the activation key (it reaches
//! the program as a secret argument, which the runner masks), never logs a
//! program's output (it may echo the key), and with `apply = false` runs
//! nothing (files under the root are still written; the command lines are
//! logged).
//!
//! Layout: `value` the request, `up2date` RHN's files.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use nova_agent_plugin_api::{
    export_plugin, Call, Command, CommandError, Host, PluginError, Provides,
};
use nova_agent_support::config::no_keys;
use nova_agent_support::distro::{self, Os};
use nova_agent_support::runner::{Arg, Outcome, Runner};
use nova_agent_support::sync::lock;
use serde_json::{json, Value};

mod up2date;
mod value;

#[cfg(test)]
mod tests;

use value::Request;

pub const NOT_SUPPORTED: &str = "KMS not supported on this OS";
pub const NO_TOOL: &str = "Neither rhnreg_ks nor subscription-manager is installed";
const RHNREG_KS: &str = "rhnreg_ks";
const SUBSCRIPTION_MANAGER: &str = "subscription-manager";

struct KmsActivate {
    root: PathBuf,
    runner: Runner,
    /// Where the programs are looked for: `None` (always, in the agent) the
    /// agent's PATH; a directory of stubs in unit tests.
    tools: Option<PathBuf>,
    /// One registration at a time, whichever channel asks.
    running: Mutex<()>,
}

impl Command for KmsActivate {
    fn run(&self, call: &Call<'_>) -> Result<Value, CommandError> {
        let _one_at_a_time = lock(&self.running);
        match self.activate(call.arguments()) {
            Ok(()) => Ok(json!("")),
            Err(message) => {
                tracing::warn!("kmsactivate failed: {message}");
                Err(CommandError::failed(message))
            }
        }
    }
}

impl KmsActivate {
    /// `arguments` is the request's value as JSON text; the error is the
    /// answer's message.
    fn activate(&self, arguments: &str) -> Result<(), String> {
        // The seed's order: the OS first, then the value.
        if distro::detect(&self.root) != Some(Os::Redhat) {
            return Err(NOT_SUPPORTED.to_owned());
        }
        let request = Request::parse(arguments)?;
        if let Some(rhnreg_ks) = self.find(RHNREG_KS) {
            self.register_with_rhn(&rhnreg_ks, &request)
        } else if let Some(subscription_manager) = self.find(SUBSCRIPTION_MANAGER) {
            self.register_with_subscription_manager(&subscription_manager, &request)
        } else {
            Err(NO_TOOL.to_owned())
        }
    }

    /// The program as the runner is to run it: the absolute path found.
    fn find(&self, name: &str) -> Option<String> {
        let found = match &self.tools {
            None => self.runner.find(name)?,
            Some(dir) => self.runner.find(dir.join(name).to_str()?)?,
        };
        // A path that is not UTF-8 is run by name, from the same PATH.
        Some(found.to_str().unwrap_or(name).to_owned())
    }

    fn register_with_rhn(&self, program: &str, request: &Request) -> Result<(), String> {
        let (profile, domains) = request.for_rhn()?;
        up2date::write(&self.root, domains)?;
        up2date::remove_systemid(&self.root)?;
        let args = [
            Arg::from("--activationkey"),
            Arg::secret(request.key.expose()),
            Arg::from("--profile"),
            Arg::from(profile),
            Arg::from("--force"),
        ];
        self.run_program(program, &args, "Couldn't activate with RHN")
    }

    fn register_with_subscription_manager(
        &self,
        program: &str,
        request: &Request,
    ) -> Result<(), String> {
        let org = request.org_for_subscription_manager()?;
        let mut args = vec![
            Arg::from("register"),
            Arg::from("--activationkey"),
            Arg::secret(request.key.expose()),
            Arg::from("--org"),
            Arg::from(org),
        ];
        if let Some(profile) = &request.profile {
            args.extend([Arg::from("--name"), Arg::from(profile.as_str())]);
        }
        args.push(Arg::from("--force"));
        self.run_program(
            program,
            &args,
            "Couldn't register with subscription-manager",
        )
    }

    /// Runs the program; a failure is `<failed>: <exit code>` (128 + the
    /// signal for a program killed by one, as shells report it), or
    /// `<failed>: <why it did not run>` (secrets masked by the runner). The
    /// program's output is not logged: it may echo the key.
    fn run_program(&self, program: &str, args: &[Arg], failed: &str) -> Result<(), String> {
        match self.runner.run(program, args) {
            Ok(Outcome::Skipped) => Ok(()),
            Ok(Outcome::Finished(finished)) if finished.success() => {
                tracing::info!("{} succeeded", file_name(program));
                Ok(())
            }
            Ok(Outcome::Finished(finished)) => {
                let code = finished.code.unwrap_or(128 + finished.signal.unwrap_or(0));
                Err(format!("{failed}: {code}"))
            }
            Err(e) => Err(format!("{failed}: {e}")),
        }
    }
}

fn file_name(program: &str) -> &str {
    Path::new(program)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(program)
}

fn init(host: Host, config: Value) -> Result<Provides, PluginError> {
    no_keys("kms", &config)?;
    Ok(Provides::new().command(
        "kmsactivate",
        KmsActivate {
            root: host.root(),
            runner: Runner::new(host.apply()),
            tools: None,
            running: Mutex::new(()),
        },
    ))
}

export_plugin! {
    name: "kms",
    description: "registers a Red Hat guest with RHN or subscription-manager from the host's activation key",
    provides: { commands: ["kmsactivate"] },
    init: init,
}
