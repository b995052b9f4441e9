//! The `qga-exec` plugin: QGA's `guest-exec` and `guest-exec-status`, as
//! qemu-ga 7.2 answers them on Linux.
//!
//! `guest-exec {path, *arg, *env, *input-data, *capture-output}` starts a
//! program and answers `{"pid": N}` at once; `guest-exec-status {pid}`
//! answers `{"exited": false}` while it runs, then, once, `{"exited": true,
//! "exitcode" | "signal", "out-data", "out-truncated", "err-data",
//! "err-truncated"}` (the outputs base64, present only when captured and
//! not empty, each kept up to 16 MiB), and after that "Invalid parameter
//! 'pid'", as for any pid it did not start. In 7.2 `capture-output` is a
//! boolean (QEMU 8.0 added the `stdout`/`stderr`/`all` enum).
//!
//! The host asks for the program by name, so it runs even with
//! `apply = false`; it runs outside the agent's root, with the agent's
//! rights, `path` looked up on `PATH` as qemu-ga's GLib does (see `spawn`).
//! The log says which program ran and with how many arguments, never the
//! arguments, the environment or the input: they may carry secrets.
//!
//! When the plugin stops (agent exit or hot swap), programs still running
//! are killed and reaped, and its threads end (see `children`).
//!
//! What it is not: the runner of the agent's own system commands (that is
//! `nova_agent_support::runner`, which honours `apply`), nor a shell. It
//! takes no config keys.

use std::sync::Arc;

use nova_agent_plugin_api::{
    export_plugin, Call, Command, CommandError, Host, PluginError, Provides,
};
use nova_agent_support::config::no_keys;
use nova_agent_support::qapi::Args;
use serde_json::{json, Value};

use nova_agent_support::glib_base64 as base64;
mod children;
mod pump;
mod spawn;

use children::Children;
use spawn::Request;

/// `guest-exec`.
struct Exec {
    children: Arc<Children>,
}

/// `guest-exec-status`.
struct ExecStatus {
    children: Arc<Children>,
}

impl Command for Exec {
    fn run(&self, call: &Call<'_>) -> Result<Value, CommandError> {
        let mut args = Args::parse(call.arguments())?;
        let path = args.str("path")?;
        let arg = args.opt_str_list("arg")?.unwrap_or_default();
        let env = args.opt_str_list("env")?;
        let input_data = args.opt_str("input-data")?;
        let capture = args.opt_bool("capture-output")?.unwrap_or(false);
        args.finish()?;

        let input = input_data
            .map(|text| base64::decode(&text).map_err(CommandError::failed))
            .transpose()?;
        tracing::info!("guest-exec: running {path:?} ({} arguments)", arg.len());
        let request = Request {
            path,
            args: arg,
            env,
            stdin: input.is_some(),
            capture,
        };
        let pid = self.children.start(&request, input)?;
        Ok(json!({ "pid": pid }))
    }
}

impl Command for ExecStatus {
    fn run(&self, call: &Call<'_>) -> Result<Value, CommandError> {
        let mut args = Args::parse(call.arguments())?;
        let pid = args.int("pid")?;
        args.finish()?;
        self.children.status(pid)
    }
}

fn init(_host: Host, config: Value) -> Result<Provides, PluginError> {
    no_keys("qga-exec", &config)?;
    let children = Arc::new(Children::new().map_err(|e| {
        PluginError::failed(format!(
            "qga-exec: cannot create its wake-up socket pair: {e}"
        ))
    })?);
    let stopping = Arc::clone(&children);
    Ok(Provides::new()
        .command(
            "guest-exec",
            Exec {
                children: Arc::clone(&children),
            },
        )
        .command("guest-exec-status", ExecStatus { children })
        .on_shutdown(move || stopping.stop()))
}

export_plugin! {
    name: "qga-exec",
    description: "QGA guest-exec and guest-exec-status: run a program the host asks for",
    provides: { commands: ["guest-exec", "guest-exec-status"] },
    init: init,
}

#[cfg(test)]
mod tests;
