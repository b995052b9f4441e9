//! What a plugin's `init` returns: its objects, each wrapped in its panic
//! guard as it is added (so a plugin carries only the adapters it uses);
//! and the body of the `init` the export macro writes.

use std::sync::{Arc, Mutex};

use abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{RStr, RString, Tuple2},
};

use crate::author::{Command, Exchange, Host, Parser};
use crate::ffi::{
    ExchangeBox, FfiCommandEntry, FfiLifecycle_TO, FfiResult, HostBox, Instance, ParserBox,
};
use crate::guard::{self, guard, GuardedLifecycle};
use crate::types::{Gate, PluginError};

/// What a plugin's `init` returns: its objects, each named once, here.
#[derive(Default)]
pub struct Provides {
    pub(crate) exchanges: Vec<Tuple2<RString, ExchangeBox>>,
    pub(crate) parsers: Vec<Tuple2<RString, ParserBox>>,
    pub(crate) commands: Vec<FfiCommandEntry>,
    pub(crate) gates: Vec<Gate>,
    pub(crate) on_shutdown: Option<Box<dyn FnOnce() + Send>>,
}

impl Provides {
    pub fn new() -> Self {
        Provides::default()
    }

    pub fn exchange(mut self, name: &str, exchange: impl Exchange) -> Self {
        self.exchanges
            .push(Tuple2(name.into(), guard::exchange(exchange)));
        self
    }

    pub fn parser(mut self, name: &str, parser: impl Parser) -> Self {
        self.parsers
            .push(Tuple2(name.into(), guard::parser(parser)));
        self
    }

    pub fn command(mut self, name: &str, command: impl Command) -> Self {
        self.commands.push(guard::command(name, command));
        self
    }

    /// Declares a gate the plugin's commands close and open with
    /// [`Host::set_gate`](crate::Host::set_gate).
    pub fn gate(mut self, gate: Gate) -> Self {
        self.gates.push(gate);
        self
    }

    /// Runs when the agent retires this instance (exit or hot swap), once
    /// no request is inside its code any more. Stop every thread the plugin
    /// started here: the code of a replaced build stays mapped, and a thread
    /// left running keeps running the old code.
    pub fn on_shutdown(mut self, hook: impl FnOnce() + Send + 'static) -> Self {
        self.on_shutdown = Some(Box::new(hook));
        self
    }
}

/// What `init` hands the agent.
fn instance(provides: Provides) -> Instance {
    Instance {
        exchanges: provides.exchanges.into(),
        parsers: provides.parsers.into(),
        commands: provides.commands.into(),
        gates: provides.gates.into_iter().map(Into::into).collect(),
        lifecycle: FfiLifecycle_TO::from_value(
            GuardedLifecycle(Mutex::new(provides.on_shutdown)),
            TD_Opaque,
        ),
    }
}

/// The author's `init`: the host and the plugin's config table.
pub type AuthorInit = fn(Host, serde_json::Value) -> Result<Provides, PluginError>;

/// The body of every plugin's `extern "C" fn init`, which `export_plugin!`
/// writes: installs the log bridge and panic hook, then runs the author's
/// `init` under the guard.
pub fn run_init(host: HostBox, config_json: RStr<'_>, init: AuthorInit) -> FfiResult<Instance> {
    guard(|| {
        let host = Arc::new(host);
        crate::log::install(&host);
        let config = parse_config(config_json.as_str())?;
        Ok(instance(init(Host::new(host), config)?))
    })
}

fn parse_config(json: &str) -> Result<serde_json::Value, PluginError> {
    // The usual case, without running (and so paging in) the JSON parser.
    if json == "{}" {
        return Ok(serde_json::Value::Object(serde_json::Map::new()));
    }
    match serde_json::from_str(json) {
        Ok(value @ serde_json::Value::Object(_)) => Ok(value),
        _ => Err(PluginError::failed(
            "the agent passed a config table that is not a JSON object",
        )),
    }
}
