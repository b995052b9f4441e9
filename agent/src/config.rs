//! The TOML configuration (ARCHITECTURE.md §5), parsed and validated.
//!
//! Every error names the file, line and column. Unknown keys are errors,
//! except inside `[plugins.<name>]` tables, which belong to the plugins.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

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

    pub(crate) fn read(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read config {}: {e}", path.display())))?;
        Config::parse(&text, &path.display().to_string())
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

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "[[channel]]\nexchange = \"unix-socket\"\nparser = \"json\"\n";

    #[test]
    fn defaults_follow_the_contract() {
        let c = Config::parse(MINIMAL, "t.toml").unwrap();
        assert_eq!(
            c.plugin_dirs,
            vec![PathBuf::from("/usr/lib/nova-agent/plugins")]
        );
        assert_eq!(c.root, PathBuf::from("/"));
        assert!(c.apply);
        assert_eq!(c.state_dir, PathBuf::from("/var/lib/nova-agent"));
        assert_eq!(c.run_dir, PathBuf::from("/run/nova-agent"));
        assert_eq!(c.log_level, "info");
        assert_eq!(c.channels[0].name(), "unix-socket+json");
        assert_eq!(c.plugin_json("anything"), "{}");
    }

    #[test]
    fn the_superseded_warning_threshold_is_in_mib_and_bounded() {
        let c = Config::parse(MINIMAL, "t.toml").unwrap();
        assert_eq!(c.warn_superseded_bytes, 64 << 20);
        let c = Config::parse(
            &format!("{MINIMAL}[reload]\nwarn_superseded_mib = 8\n"),
            "t.toml",
        )
        .unwrap();
        assert_eq!(c.warn_superseded_bytes, 8 << 20);
        for bad in ["0", "-1", "2000000"] {
            let text = format!("{MINIMAL}[reload]\nwarn_superseded_mib = {bad}\n");
            let e = Config::parse(&text, "t.toml").unwrap_err().to_string();
            assert!(
                e.contains("warn_superseded_mib must be between 1 and 1048576"),
                "{e}"
            );
        }
    }

    #[test]
    fn unknown_key_names_file_line_and_column() {
        let text = format!("root = \"/\"\nplugin_dirr = \"/x\"\n{MINIMAL}");
        let e = Config::parse(&text, "/etc/a.toml").unwrap_err().to_string();
        assert!(
            e.starts_with("/etc/a.toml:2:1: unknown field `plugin_dirr`"),
            "{e}"
        );
    }

    #[test]
    fn bad_toml_names_its_place() {
        let e = Config::parse("root = \n", "a.toml")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("a.toml:1:"), "{e}");
    }

    #[test]
    fn unknown_key_in_a_channel_is_an_error() {
        let text = "[[channel]]\nexchange = \"a\"\nparser = \"b\"\nparsr = \"c\"\n";
        let e = Config::parse(text, "a.toml").unwrap_err().to_string();
        assert!(e.starts_with("a.toml:4:1: unknown field `parsr`"), "{e}");
    }

    #[test]
    fn plugin_tables_are_passed_as_json_without_enabled() {
        let text = format!(
            "{MINIMAL}[plugins.unix-socket]\npath = \"/run/x.sock\"\n[plugins.kms]\nenabled = false\n"
        );
        let c = Config::parse(&text, "a.toml").unwrap();
        assert_eq!(c.plugin_json("unix-socket"), r#"{"path":"/run/x.sock"}"#);
        assert_eq!(c.plugin_json("kms"), "{}");
        assert!(!c.plugin_enabled("kms"));
        assert!(c.plugin_enabled("unix-socket"));
    }

    #[test]
    fn plugin_dir_may_be_a_list_and_root_must_be_absolute() {
        let text = format!("plugin_dir = [\"/a\", \"/b\"]\n{MINIMAL}");
        let c = Config::parse(&text, "a.toml").unwrap();
        assert_eq!(
            c.plugin_dirs,
            vec![PathBuf::from("/a"), PathBuf::from("/b")]
        );
        let e = Config::parse(
            &format!("plugin_dir = [\"/a\", \"b\"]\n{MINIMAL}"),
            "a.toml",
        )
        .unwrap_err()
        .to_string();
        assert_eq!(e, "a.toml:1:14: plugin_dir must be absolute paths");
        let e = Config::parse(&format!("root = \"sandbox\"\n{MINIMAL}"), "a.toml")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "a.toml:1:8: root must be an absolute path");
    }

    #[test]
    fn channels_are_required_and_an_exchange_serves_one() {
        let e = Config::parse("apply = false\n", "a.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no [[channel]]"), "{e}");
        let e = Config::parse(&format!("{MINIMAL}{MINIMAL}"), "a.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("used by two channels"), "{e}");
    }

    #[test]
    fn the_log_file_must_be_absolute() {
        let text = format!("{MINIMAL}[log]\nfile = \"agent.log\"\n");
        let e = Config::parse(&text, "a.toml").unwrap_err().to_string();
        assert!(e.contains("[log] file must be an absolute path"), "{e}");
        let text = format!("{MINIMAL}[log]\nfile = \"/var/log/x.log\"\n");
        let c = Config::parse(&text, "a.toml").unwrap();
        assert_eq!(c.log_file, Some(PathBuf::from("/var/log/x.log")));
        assert_eq!(c.daemon_log_file(), PathBuf::from("/var/log/x.log"));
        let c = Config::parse(MINIMAL, "a.toml").unwrap();
        assert_eq!(
            c.daemon_log_file(),
            PathBuf::from("/var/log/nova-agent.log")
        );
    }

    #[test]
    fn log_level_is_checked_and_commands_parsed() {
        let text = format!("{MINIMAL}[log]\nlevel = \"loud\"\n");
        let e = Config::parse(&text, "a.toml").unwrap_err().to_string();
        assert!(e.starts_with("a.toml:5:9: log level 'loud'"), "{e}");
        let text = format!(
            "{MINIMAL}[commands]\ndeny = [\"kmsactivate\"]\nprefer = {{ resetnetwork = \"vendor-net\" }}\n"
        );
        let c = Config::parse(&text, "a.toml").unwrap();
        assert!(c.deny.contains("kmsactivate"));
        assert_eq!(c.prefer["resetnetwork"], "vendor-net");
    }

    #[test]
    fn the_packaged_default_config_parses() {
        let c = Config::parse(include_str!("../../packaging/agent.toml"), "agent.toml").unwrap();
        assert!(c.apply);
        assert_eq!(c.root, PathBuf::from("/"));
        let channels: Vec<String> = c.channels.iter().map(ChannelConfig::name).collect();
        assert_eq!(
            channels,
            ["xenstore+json", "virtio-serial+qga", "unix-socket+json"]
        );
        assert_eq!(
            c.plugin_json("virtio-serial"),
            r#"{"method":"virtio-serial","path":"/dev/virtio-ports/org.qemu.guest_agent.0"}"#
        );
        assert_eq!(
            c.plugin_json("xenstore"),
            r#"{"request_path":"data/host","response_path":"data/guest"}"#
        );
        assert_eq!(
            c.plugin_json("unix-socket"),
            r#"{"path":"/run/nova-agent/agent.sock"}"#
        );
    }

    #[test]
    fn embedded_default_lives_under_the_given_directory() {
        let c = Config::embedded_default_in(Path::new("/work/x \"q\"/target/release")).unwrap();
        assert!(!c.apply);
        assert_eq!(
            c.plugin_dirs,
            vec![PathBuf::from("/work/x \"q\"/target/release")]
        );
        assert!(c.root.starts_with("/work/x \"q\"/target/release"));
        let channels: Vec<String> = c.channels.iter().map(ChannelConfig::name).collect();
        assert_eq!(channels, ["unix-socket+json", "virtio-serial+qga"]);
        assert!(c.plugin_json("unix-socket").contains("target/release"));
        assert!(c.plugin_json("virtio-serial").contains("target/release"));
    }
}
