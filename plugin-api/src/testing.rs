//! Stand-ins for the agent, for a plugin's unit tests.
//!
//! The agent implements [`FfiHost`] (what `init` receives) and [`FfiCall`]
//! (one request's context). A plugin's tests need the same two things
//! without an agent: [`TestHost`] gives `init`, or a command that keeps a
//! [`Host`], a root and an `apply` flag; [`TestCall`] gives a command a
//! channel name and metadata keys.
//!
//! ```
//! use nova_agent_plugin_api::testing::{TestCall, TestHost};
//! use nova_agent_plugin_api::{Call, Command, Host, PluginError, Reply};
//!
//! struct Hostname {
//!     host: Host,
//! }
//!
//! impl Command for Hostname {
//!     fn run(&self, call: &Call<'_>) -> Result<Reply, PluginError> {
//!         let name = call.metadata_read("vm-data/hostname")?.unwrap_or_default();
//!         let root = self.host.root();
//!         Ok(Reply::ok(format!("{name} under {}", root.display())))
//!     }
//! }
//!
//! let command = Hostname {
//!     host: TestHost::new("/tmp/guest").host(),
//! };
//! let context = TestCall::new().with_metadata("vm-data/hostname", "web-01");
//! let reply = command.run(&Call::new(&context, "\"\""))?;
//! assert_eq!(reply, Reply::ok("web-01 under /tmp/guest"));
//! # Ok::<(), PluginError>(())
//! ```
//!
//! Logging: inside a unit test a plugin's `tracing` events go straight to the
//! test's own subscriber, as in any crate; the host's log callback is reached
//! only once an `init` went through the exported root module, which installs
//! the log bridge for the whole test binary. [`TestHost`] drops those events
//! (`log_enabled` is `false`).

use std::collections::{BTreeMap, BTreeSet};

use abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{ROption, RResult, RStr, RString, RVec},
    RRef,
};

use crate::author::Host;
use crate::ffi::{FfiCall, FfiCall_TO, FfiHost, FfiHost_TO, HostBox};
use crate::types::{LogLevel, PluginError};

/// The agent's services as a test sets them: a root, `apply` (`false`
/// unless set), the command names a request may call (none unless set) and
/// the agent version `"test"`. Log events are dropped.
///
/// ```
/// use nova_agent_plugin_api::testing::TestHost;
///
/// let host = TestHost::new("/tmp/guest")
///     .with_apply(true)
///     .with_command_names(["version", "password"])
///     .host();
/// assert_eq!(host.root(), std::path::Path::new("/tmp/guest"));
/// assert!(host.apply());
/// assert_eq!(host.command_names(), ["version", "password"]);
/// assert_eq!(host.agent_version(), "test");
/// ```
#[derive(Clone, Debug)]
pub struct TestHost {
    root: String,
    apply: bool,
    command_names: Vec<String>,
    agent_version: String,
}

impl TestHost {
    /// A host whose commands act under `root`, with `apply = false`.
    pub fn new(root: impl Into<String>) -> Self {
        TestHost {
            root: root.into(),
            apply: false,
            command_names: Vec::new(),
            agent_version: "test".to_owned(),
        }
    }

    /// Whether system actions may run (`apply` in the agent's config).
    pub fn with_apply(mut self, apply: bool) -> Self {
        self.apply = apply;
        self
    }

    /// The command names a request may call.
    pub fn with_command_names<I>(mut self, names: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.command_names = names.into_iter().map(Into::into).collect();
        self
    }

    /// The agent version the host reports, instead of `"test"`.
    pub fn with_agent_version(mut self, version: impl Into<String>) -> Self {
        self.agent_version = version.into();
        self
    }

    /// The [`Host`] a plugin's `init` receives from the agent.
    pub fn host(&self) -> Host {
        Host::new(self.to_ffi())
    }

    /// The raw host, for calling a plugin's exported `init` through its
    /// root module (`PluginRootRef::init`) as the agent does.
    pub fn to_ffi(&self) -> HostBox {
        FfiHost_TO::from_value(self.clone(), TD_Opaque)
    }
}

impl FfiHost for TestHost {
    fn log_enabled(&self, _level: LogLevel, _target: RStr<'_>) -> bool {
        false
    }

    fn log(&self, _level: LogLevel, _target: RStr<'_>, _message: RStr<'_>) {}

    fn agent_version(&self) -> RString {
        self.agent_version.as_str().into()
    }

    fn command_names(&self) -> RVec<RString> {
        self.command_names
            .iter()
            .map(|name| RString::from(name.as_str()))
            .collect()
    }

    fn root(&self) -> RString {
        self.root.as_str().into()
    }

    fn apply(&self) -> bool {
        self.apply
    }
}

/// One request's context as a test sets it: the channel it arrived on
/// (`"test"` unless set) and the metadata its exchange holds, key by key
/// (none unless set).
///
/// Metadata reads as a XenStore-like tree: a key such as
/// `vm-data/networking/eth0` makes `vm-data/networking` a directory, whose
/// [listing](FfiCall::metadata_list) is the sorted names directly under it
/// (`eth0`); a directory that holds nothing lists as empty.
///
/// ```
/// use nova_agent_plugin_api::testing::TestCall;
/// use nova_agent_plugin_api::Call;
///
/// let context = TestCall::new()
///     .with_channel("xenstore+json")
///     .with_metadata("vm-data/networking/b", "{}")
///     .with_metadata("vm-data/networking/a", "{}");
/// let call = Call::new(&context, "{}");
/// assert_eq!(call.channel(), "xenstore+json");
/// assert_eq!(call.metadata_list("vm-data/networking").unwrap(), ["a", "b"]);
/// assert_eq!(call.metadata_read("vm-data/networking/a").unwrap().as_deref(), Some("{}"));
/// assert_eq!(call.metadata_read("vm-data/hostname").unwrap(), None);
/// ```
#[derive(Clone, Debug)]
pub struct TestCall {
    channel: String,
    metadata: BTreeMap<String, String>,
}

impl Default for TestCall {
    fn default() -> Self {
        TestCall {
            channel: "test".to_owned(),
            metadata: BTreeMap::new(),
        }
    }
}

impl TestCall {
    /// A request on channel `"test"` with no metadata.
    pub fn new() -> Self {
        TestCall::default()
    }

    /// The name of the channel the request arrived on.
    pub fn with_channel(mut self, channel: impl Into<String>) -> Self {
        self.channel = channel.into();
        self
    }

    /// A metadata key (e.g. `vm-data/hostname`) and its value.
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// The raw context, for running a command taken from a plugin's
    /// `Instance` (`command.run(context.as_ffi(), value_json)`) as the agent
    /// does. A [`Command`](crate::Command) of one's own takes
    /// [`Call::new(&context, value_json)`](crate::Call::new) instead.
    pub fn as_ffi(&self) -> FfiCall_TO<'_, RRef<'_, ()>> {
        FfiCall_TO::from_ptr(self, TD_Opaque)
    }
}

impl FfiCall for TestCall {
    fn channel(&self) -> RString {
        self.channel.as_str().into()
    }

    fn metadata_read(&self, key: RStr<'_>) -> RResult<ROption<RString>, PluginError> {
        let value = self.metadata.get(key.as_str());
        RResult::ROk(value.map(|v| RString::from(v.as_str())).into())
    }

    fn metadata_list(&self, dir: RStr<'_>) -> RResult<RVec<RString>, PluginError> {
        let dir = dir.as_str().trim_end_matches('/');
        let children: BTreeSet<&str> = self
            .metadata
            .keys()
            .filter_map(|key| {
                let below = if dir.is_empty() {
                    key.as_str()
                } else {
                    key.strip_prefix(dir)?.strip_prefix('/')?
                };
                below.split('/').next().filter(|name| !name.is_empty())
            })
            .collect();
        RResult::ROk(children.into_iter().map(RString::from).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Call, Command, Provides, Reply};

    #[test]
    fn host_values_reach_the_host_handle() {
        let host = TestHost::new("/guest").host();
        assert_eq!(host.root(), std::path::Path::new("/guest"));
        assert!(!host.apply());
        assert!(host.command_names().is_empty());
        assert_eq!(host.agent_version(), "test");

        let host = TestHost::new(String::from("/other"))
            .with_apply(true)
            .with_command_names(vec![String::from("version"), String::from("features")])
            .with_agent_version("2.0.0")
            .host();
        assert_eq!(host.root(), std::path::Path::new("/other"));
        assert!(host.apply());
        assert_eq!(host.command_names(), ["version", "features"]);
        assert_eq!(host.agent_version(), "2.0.0");
    }

    #[test]
    fn the_raw_host_logs_nothing() {
        let ffi = TestHost::new("/").to_ffi();
        for level in [LogLevel::ERROR, LogLevel::TRACE] {
            assert!(!ffi.log_enabled(level, RStr::from_str("plugin")));
        }
        ffi.log(
            LogLevel::ERROR,
            RStr::from_str("plugin"),
            RStr::from_str("x"),
        );
        assert_eq!(ffi.root().as_str(), "/");
    }

    #[test]
    fn a_call_has_channel_test_and_no_metadata_by_default() {
        let context = TestCall::new();
        let call = Call::new(&context, "42");
        assert_eq!(call.value_json(), "42");
        assert_eq!(call.channel(), "test");
        assert_eq!(call.metadata_read("vm-data/hostname").unwrap(), None);
        assert!(call.metadata_list("vm-data").unwrap().is_empty());
        assert!(call.metadata_list("").unwrap().is_empty());
    }

    #[test]
    fn metadata_lists_the_names_directly_under_a_directory() {
        let context = TestCall::new()
            .with_metadata("vm-data/networking/b", "{\"label\": \"b\"}")
            .with_metadata("vm-data/networking/a", "{\"label\": \"a\"}")
            .with_metadata("vm-data/networking/a-b/deep", "1")
            .with_metadata("vm-data/networking-other/c", "2")
            .with_metadata("vm-data/hostname", "web-01");
        let call = Call::new(&context, "");
        let list = |dir| call.metadata_list(dir).unwrap();
        // A name with only deeper keys is a directory and listed once;
        // `networking-other` is not under `networking`.
        assert_eq!(list("vm-data/networking"), ["a", "a-b", "b"]);
        assert_eq!(list("vm-data/networking/"), ["a", "a-b", "b"]);
        assert_eq!(
            list("vm-data"),
            ["hostname", "networking", "networking-other"]
        );
        assert_eq!(list(""), ["vm-data"]);
        assert_eq!(list("vm-data/networking/a-b"), ["deep"]);
        assert!(list("vm-data/hostname").is_empty());
        assert!(list("vm-data/missing").is_empty());
        assert!(list("vm").is_empty());

        let read = |key| call.metadata_read(key).unwrap();
        assert_eq!(read("vm-data/hostname").as_deref(), Some("web-01"));
        assert_eq!(
            read("vm-data/networking/a").as_deref(),
            Some("{\"label\": \"a\"}")
        );
        // A directory holds no value of its own.
        assert_eq!(read("vm-data/networking"), None);
    }

    struct Echo {
        host: Host,
    }

    impl Command for Echo {
        fn run(&self, call: &Call<'_>) -> Result<Reply, PluginError> {
            let hostname = call.metadata_read("vm-data/hostname")?.unwrap_or_default();
            Ok(Reply::ok(format!(
                "{} {} {} {hostname} {}",
                call.channel(),
                self.host.root().display(),
                self.host.apply(),
                call.value_json(),
            )))
        }
    }

    #[test]
    fn a_command_runs_with_a_test_host_and_a_test_call() {
        let command = Echo {
            host: TestHost::new("/guest").with_apply(true).host(),
        };
        let context = TestCall::new()
            .with_channel("unix-socket+json")
            .with_metadata("vm-data/hostname", "web-01");
        let reply = command.run(&Call::new(&context, "\"x\"")).unwrap();
        assert_eq!(
            reply,
            Reply::ok("unix-socket+json /guest true web-01 \"x\"")
        );

        // The raw path: a command as `init` hands it to the agent.
        let provides = Provides::new().command("echo", command);
        let (name, raw) = &provides.commands[0];
        assert_eq!(name, "echo");
        let reply = raw.run(context.as_ffi(), RStr::from_str("1")).unwrap();
        assert_eq!(reply, Reply::ok("unix-socket+json /guest true web-01 1"));
    }
}
