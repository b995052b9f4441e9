//! The TOML configuration (ARCHITECTURE.md §5), parsed and validated.
//!
//! Every error names the file, line and column. Unknown keys are errors,
//! except inside `[plugins.<name>]` tables, which belong to the plugins.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::trusted;

pub(crate) const DEFAULT_PATH: &str = "/etc/nova-agent/agent.toml";

/// `Config::source` of the embedded default.
const EMBEDDED_SOURCE: &str = "<embedded default>";

/// The development default: everything under `target/`, nothing on the machine
/// changed. `@DIR@` is the directory of the running executable.
const EMBEDDED_DEFAULT: &str = include_str!("embedded-default.toml");

#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// Where it came from, for messages.
    pub(crate) source: String,
    pub(crate) plugin_dirs: Vec<PathBuf>,
    pub(crate) root: PathBuf,
    pub(crate) apply: bool,
    pub(crate) state_dir: PathBuf,
    pub(crate) run_dir: PathBuf,
    pub(crate) channels: Vec<ChannelConfig>,
    /// `[plugins.<name>]` tables, keyed by plugin name.
    pub(crate) plugins: BTreeMap<String, PluginTable>,
    pub(crate) deny: BTreeSet<String>,
    /// Command name -> plugin that wins a conflict.
    pub(crate) prefer: BTreeMap<String, String>,
    pub(crate) log_level: String,
    /// `[log] file`: also log there (mode 0600, appended).
    pub(crate) log_file: Option<PathBuf>,
    /// `[reload] warn_superseded_mib`: the agent warns each time the code of
    /// replaced plugin generations, still mapped, grows past a multiple of it.
    pub(crate) warn_superseded_bytes: u64,
    pub(crate) isolation: Isolation,
}

/// `[isolation]`: which plugins run their commands in a child process of
/// their own, and the limits those children run under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Isolation {
    /// Manifest names.
    pub(crate) process: BTreeSet<String>,
    /// How long a command (or `init`) may run before its child is killed.
    pub(crate) timeout: Duration,
    /// `RLIMIT_DATA` of each child: heap and private anonymous memory.
    pub(crate) memory_bytes: u64,
    /// Run the children as this user; `None` (or `root`) keeps root.
    pub(crate) user: Option<String>,
    pub(crate) no_new_privs: bool,
    /// The wait before the second restart in a row of a failing child; it
    /// doubles with each further failure, up to `restart_delay_max`.
    pub(crate) restart_delay: Duration,
    pub(crate) restart_delay_max: Duration,
}

impl Default for Isolation {
    fn default() -> Self {
        Isolation {
            process: BTreeSet::new(),
            timeout: Duration::from_secs(60),
            memory_bytes: 256 << 20,
            user: None,
            no_new_privs: false,
            restart_delay: Duration::from_secs(1),
            restart_delay_max: Duration::from_secs(60),
        }
    }
}

impl Isolation {
    /// The settings for plugin `name`, when it runs isolated.
    pub(crate) fn of(&self, name: &str) -> Option<&Isolation> {
        self.process.contains(name).then_some(self)
    }
}

/// The default of `[reload] warn_superseded_mib`.
pub(crate) const WARN_SUPERSEDED_MIB: u64 = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChannelConfig {
    pub(crate) exchange: String,
    pub(crate) parser: String,
}

impl ChannelConfig {
    pub(crate) fn name(&self) -> String {
        format!("{}+{}", self.exchange, self.parser)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct PluginTable {
    /// `enabled = false` keeps the plugin from being loaded; the agent takes
    /// this key, the plugin never sees it.
    pub(crate) enabled: bool,
    /// The rest of the table, as the JSON object handed to the plugin's `init`.
    pub(crate) json: String,
}

/// A config error, already carrying its location.
#[derive(Debug)]
pub(crate) struct ConfigError(String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    plugin_dir: Option<Spanned<OneOrMany>>,
    #[serde(default)]
    root: Option<Spanned<PathBuf>>,
    #[serde(default)]
    apply: Option<bool>,
    #[serde(default)]
    state_dir: Option<Spanned<PathBuf>>,
    #[serde(default)]
    run_dir: Option<Spanned<PathBuf>>,
    #[serde(default)]
    channel: Vec<Spanned<RawChannel>>,
    #[serde(default)]
    plugins: BTreeMap<String, Spanned<toml::Table>>,
    #[serde(default)]
    commands: RawCommands,
    #[serde(default)]
    log: RawLog,
    #[serde(default)]
    reload: RawReload,
    #[serde(default)]
    isolation: RawIsolation,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawIsolation {
    #[serde(default)]
    process: Vec<Spanned<String>>,
    #[serde(default)]
    timeout: Option<Spanned<Seconds>>,
    #[serde(default)]
    memory_mib: Option<Spanned<i64>>,
    #[serde(default)]
    user: Option<Spanned<String>>,
    #[serde(default)]
    no_new_privs: Option<bool>,
    #[serde(default)]
    restart_delay: Option<Spanned<Seconds>>,
    #[serde(default)]
    restart_delay_max: Option<Spanned<Seconds>>,
}

/// Seconds, written as an integer or a decimal number.
#[derive(Deserialize, Clone, Copy)]
#[serde(untagged)]
enum Seconds {
    Whole(i64),
    Decimal(f64),
}

impl Seconds {
    fn within(self, range: std::ops::RangeInclusive<f64>) -> Option<Duration> {
        let secs = match self {
            Seconds::Whole(n) => n as f64,
            Seconds::Decimal(x) => x,
        };
        range.contains(&secs).then(|| Duration::from_secs_f64(secs))
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawReload {
    #[serde(default)]
    warn_superseded_mib: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(PathBuf),
    Many(Vec<PathBuf>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChannel {
    exchange: String,
    parser: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCommands {
    #[serde(default)]
    deny: Vec<String>,
    #[serde(default)]
    prefer: BTreeMap<String, String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLog {
    #[serde(default)]
    level: Option<Spanned<String>>,
    #[serde(default)]
    file: Option<Spanned<PathBuf>>,
}

const LOG_LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

impl Config {
    /// Reads `path`, or with none the default path, or, when that file does
    /// not exist either, the embedded development default.
    pub(crate) fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        match path {
            Some(path) => Config::read(path),
            None if Path::new(DEFAULT_PATH).exists() => Config::read(Path::new(DEFAULT_PATH)),
            None => Config::embedded_default(),
        }
    }

    /// Reads the file at `path`; as root, only one nobody else could have
    /// written (sshd's StrictModes: the file and every directory on the
    /// way are root's alone), since it decides what runs as root.
    pub(crate) fn read(path: &Path) -> Result<Config, ConfigError> {
        let cannot_read = |e: &dyn fmt::Display| {
            ConfigError(format!("cannot read config {}: {e}", path.display()))
        };
        let mut file = if trusted::required() {
            trusted::open_file(path, "the config file")
                .map_err(|reason| ConfigError(format!("config {}: {reason}", path.display())))?
        } else {
            std::fs::File::open(path).map_err(|e| cannot_read(&e))?
        };
        let mut text = String::new();
        file.read_to_string(&mut text)
            .map_err(|e| cannot_read(&e))?;
        Config::parse(&text, &path.display().to_string())
    }

    /// As root, the agent refuses to start when `state_dir` or `run_dir` (as
    /// written: every directory on the way, symlinks included) could be
    /// changed by anyone but root: another user could swap what the agent
    /// keeps there. What does not exist yet is created by the agent.
    pub(crate) fn check_private_dirs(&self) -> Result<(), ConfigError> {
        if !trusted::required() {
            return Ok(());
        }
        for (key, dir) in [("state_dir", &self.state_dir), ("run_dir", &self.run_dir)] {
            trusted::directory_or_missing(dir)
                .map_err(|reason| ConfigError(format!("{key} {}: {reason}", dir.display())))?;
        }
        Ok(())
    }

    /// The embedded default, with its paths under the executable's directory.
    pub(crate) fn embedded_default() -> Result<Config, ConfigError> {
        let exe = std::env::current_exe()
            .map_err(|e| ConfigError(format!("cannot locate the executable: {e}")))?;
        let dir = exe.parent().unwrap_or(Path::new("."));
        Config::embedded_default_in(dir)
    }

    pub(crate) fn embedded_default_in(dir: &Path) -> Result<Config, ConfigError> {
        // JSON string escapes are a subset of TOML's basic-string escapes.
        let quoted = serde_json::to_string(&dir.display().to_string())
            .map_err(|e| ConfigError(format!("cannot quote {}: {e}", dir.display())))?;
        let body = &quoted[1..quoted.len() - 1];
        let text = EMBEDDED_DEFAULT.replace("@DIR@", body);
        Config::parse(&text, EMBEDDED_SOURCE)
    }

    pub(crate) fn is_embedded(&self) -> bool {
        self.source == EMBEDDED_SOURCE
    }

    pub(crate) fn parse(text: &str, source: &str) -> Result<Config, ConfigError> {
        let at = |span: Option<std::ops::Range<usize>>, message: &str| {
            let (line, column) = line_column(text, span.map_or(0, |s| s.start));
            // A value quoted from the file may hold a newline: the error
            // stays one line.
            let message: String = message
                .chars()
                .flat_map(|c| match c.is_control() {
                    true => c.escape_default().collect::<Vec<_>>(),
                    false => vec![c],
                })
                .collect();
            ConfigError(format!("{source}:{line}:{column}: {message}"))
        };
        let raw: RawConfig = toml::from_str(text).map_err(|e| at(e.span(), e.message()))?;

        let plugin_dirs = match raw.plugin_dir {
            None => vec![PathBuf::from("/usr/lib/nova-agent/plugins")],
            Some(dirs) => {
                let span = dirs.span();
                let list = match dirs.into_inner() {
                    OneOrMany::One(dir) => vec![dir],
                    OneOrMany::Many(dirs) => dirs,
                };
                if list.is_empty() {
                    return Err(at(
                        Some(span),
                        "plugin_dir must name at least one directory",
                    ));
                }
                if list.iter().any(|d| !d.is_absolute()) {
                    return Err(at(Some(span), "plugin_dir must be absolute paths"));
                }
                list
            }
        };
        let absolute = |value: Option<Spanned<PathBuf>>, key: &str, default: &str| {
            let Some(value) = value else {
                return Ok(PathBuf::from(default));
            };
            if !value.get_ref().is_absolute() {
                return Err(at(
                    Some(value.span()),
                    &format!("{key} must be an absolute path"),
                ));
            }
            Ok(value.into_inner())
        };
        let root = absolute(raw.root, "root", "/")?;
        let state_dir = absolute(raw.state_dir, "state_dir", "/var/lib/nova-agent")?;
        let run_dir = absolute(raw.run_dir, "run_dir", "/run/nova-agent")?;

        if raw.channel.is_empty() {
            return Err(at(
                None,
                "no [[channel]]: at least one exchange/parser pair is needed",
            ));
        }
        let mut channels: Vec<ChannelConfig> = Vec::new();
        for channel in raw.channel {
            let span = channel.span();
            let channel = channel.into_inner();
            if channel.exchange.is_empty() || channel.parser.is_empty() {
                return Err(at(
                    Some(span),
                    "channel exchange and parser must not be empty",
                ));
            }
            if channels.iter().any(|c| c.exchange == channel.exchange) {
                return Err(at(
                    Some(span),
                    &format!(
                        "exchange '{}' is used by two channels; each exchange serves one channel",
                        channel.exchange
                    ),
                ));
            }
            channels.push(ChannelConfig {
                exchange: channel.exchange,
                parser: channel.parser,
            });
        }

        let mut plugins = BTreeMap::new();
        for (name, table) in raw.plugins {
            let span = table.span();
            let mut table = table.into_inner();
            let enabled = match table.remove("enabled") {
                None => true,
                Some(toml::Value::Boolean(b)) => b,
                Some(_) => {
                    return Err(at(
                        Some(span),
                        &format!("[plugins.{name}] enabled must be true or false"),
                    ))
                }
            };
            let json = serde_json::to_string(&table)
                .map_err(|e| at(Some(span), &format!("[plugins.{name}]: {e}")))?;
            plugins.insert(name, PluginTable { enabled, json });
        }

        let log_level = match raw.log.level {
            None => "info".to_owned(),
            Some(level) => {
                let span = level.span();
                let level = level.into_inner().to_ascii_lowercase();
                if !LOG_LEVELS.contains(&level.as_str()) {
                    return Err(at(
                        Some(span),
                        &format!(
                            "log level '{level}' is not one of {}",
                            LOG_LEVELS.join(", ")
                        ),
                    ));
                }
                level
            }
        };

        let log_file = match raw.log.file {
            Some(file) if !file.get_ref().is_absolute() => {
                return Err(at(Some(file.span()), "[log] file must be an absolute path"));
            }
            file => file.map(Spanned::into_inner),
        };
        let warn_superseded_mib = match raw.reload.warn_superseded_mib {
            None => WARN_SUPERSEDED_MIB,
            Some(value) => {
                let span = value.span();
                u64::try_from(value.into_inner())
                    .ok()
                    .filter(|mib| (1..=1 << 20).contains(mib))
                    .ok_or_else(|| {
                        at(
                            Some(span),
                            "[reload] warn_superseded_mib must be between 1 and 1048576",
                        )
                    })?
            }
        };

        let isolation = parse_isolation(raw.isolation, &at)?;

        Ok(Config {
            source: source.to_owned(),
            plugin_dirs,
            root,
            apply: raw.apply.unwrap_or(true),
            state_dir,
            run_dir,
            channels,
            plugins,
            deny: raw.commands.deny.into_iter().collect(),
            prefer: raw.commands.prefer,
            log_level,
            log_file,
            warn_superseded_bytes: warn_superseded_mib << 20,
            isolation,
        })
    }

    /// Where `run --daemonize` logs when `[log] file` names no file: the
    /// original agent's default, or, for the embedded default, a file in its
    /// sandbox.
    pub(crate) fn daemon_log_file(&self) -> PathBuf {
        match &self.log_file {
            Some(file) => file.clone(),
            None if self.is_embedded() => self.state_dir.join("nova-agent.log"),
            None => PathBuf::from("/var/log/nova-agent.log"),
        }
    }

    /// The plugin's table as JSON (`{}` when the config has none).
    pub(crate) fn plugin_json(&self, plugin: &str) -> &str {
        self.plugins.get(plugin).map_or("{}", |t| t.json.as_str())
    }

    pub(crate) fn plugin_enabled(&self, plugin: &str) -> bool {
        self.plugins.get(plugin).is_none_or(|t| t.enabled)
    }
}

/// `[isolation]`, checked; `at` places an error in the file.
fn parse_isolation(
    raw: RawIsolation,
    at: &dyn Fn(Option<std::ops::Range<usize>>, &str) -> ConfigError,
) -> Result<Isolation, ConfigError> {
    let defaults = Isolation::default();
    let mut process = BTreeSet::new();
    for name in raw.process {
        let span = name.span();
        let name = name.into_inner();
        if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(at(
                Some(span),
                &format!("[isolation] process: {name:?} is not a plugin name"),
            ));
        }
        process.insert(name);
    }
    let seconds = |value: Option<Spanned<Seconds>>,
                   key: &str,
                   range: std::ops::RangeInclusive<f64>,
                   default: Duration| {
        let Some(value) = value else {
            return Ok(default);
        };
        let span = value.span();
        value.into_inner().within(range.clone()).ok_or_else(|| {
            at(
                Some(span),
                &format!(
                    "[isolation] {key} must be between {} and {} seconds",
                    range.start(),
                    range.end()
                ),
            )
        })
    };
    let timeout = seconds(raw.timeout, "timeout", 0.01..=86400.0, defaults.timeout)?;
    let restart_delay = seconds(
        raw.restart_delay,
        "restart_delay",
        0.0..=3600.0,
        defaults.restart_delay,
    )?;
    let max_span = raw.restart_delay_max.as_ref().map(|v| v.span());
    let restart_delay_max = seconds(
        raw.restart_delay_max,
        "restart_delay_max",
        0.0..=86400.0,
        defaults.restart_delay_max.max(restart_delay),
    )?;
    if restart_delay_max < restart_delay {
        return Err(at(
            max_span,
            "[isolation] restart_delay_max must not be less than restart_delay",
        ));
    }
    let memory_bytes = match raw.memory_mib {
        None => defaults.memory_bytes,
        Some(value) => {
            let span = value.span();
            u64::try_from(value.into_inner())
                .ok()
                .filter(|mib| (16..=1 << 20).contains(mib))
                .map(|mib| mib << 20)
                .ok_or_else(|| {
                    at(
                        Some(span),
                        "[isolation] memory_mib must be between 16 and 1048576",
                    )
                })?
        }
    };
    let user = match raw.user {
        None => None,
        Some(user) => {
            let span = user.span();
            let user = user.into_inner();
            let valid = !user.is_empty()
                && user
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-$".contains(c));
            if !valid {
                return Err(at(
                    Some(span),
                    &format!("[isolation] user {user:?} is not a user name"),
                ));
            }
            (user != "root").then_some(user)
        }
    };
    Ok(Isolation {
        process,
        timeout,
        memory_bytes,
        user,
        no_new_privs: raw.no_new_privs.unwrap_or(defaults.no_new_privs),
        restart_delay,
        restart_delay_max,
    })
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, column)
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
