//! `nova-agent call`: one request through the agent's unix socket.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::cli::args::CallArgs;
use crate::config::Config;
use crate::daemon::control;

/// The unix-socket plugin's default `path`.
const DEFAULT_SOCKET: &str = "/run/nova-agent/agent.sock";

/// Sends the request, prints the response line; `Ok(true)` when the return
/// code is "0" or "D0".
pub(crate) fn call(args: &CallArgs, config: Option<&Config>) -> Result<bool> {
    let socket = match (&args.socket, config) {
        (Some(path), _) => path.clone(),
        (None, Some(config)) => socket_path(config)?,
        (None, None) => PathBuf::from(DEFAULT_SOCKET),
    };
    let value = match (&args.value, args.json) {
        (None, _) => serde_json::Value::String(String::new()),
        (Some(text), false) => serde_json::Value::String(text.clone()),
        (Some(text), true) => serde_json::from_str(text)
            .with_context(|| format!("VALUE is not valid JSON: {text}"))?,
    };
    let request = serde_json::json!({ "name": args.name, "value": value }).to_string();
    let run_dir = config.map(|c| c.run_dir.as_path());
    // 0 waits for as long as the command runs.
    let timeout = (args.timeout > 0).then(|| Duration::from_secs(args.timeout));
    let started = Instant::now();
    let response = loop {
        let stream = connect(&socket, run_dir)?;
        match exchange(stream, &socket, &request, timeout)? {
            Exchanged::Answer(response) => break response,
            // The unix-socket exchange closes a connection without an answer
            // only if it never handed its request out (it drains the others),
            // so sending it again cannot run it twice.
            Exchanged::Unanswered(_)
                if agent_running(run_dir) && started.elapsed() < RESTART_WAIT =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            Exchanged::Unanswered(why) => bail!("{why}"),
        }
    };
    println!("{response}");
    let parsed: serde_json::Value = serde_json::from_str(&response)
        .with_context(|| "the agent's response is not JSON".to_owned())?;
    Ok(matches!(parsed["returncode"].as_str(), Some("0" | "D0")))
}

fn socket_path(config: &Config) -> Result<PathBuf> {
    let table: serde_json::Value = serde_json::from_str(config.plugin_json("unix-socket"))?;
    Ok(table["path"]
        .as_str()
        .map_or_else(|| PathBuf::from(DEFAULT_SOCKET), PathBuf::from))
}

/// How long `call` waits for the socket of a running agent to come back (its
/// channel restarts when the unix-socket plugin is swapped).
const RESTART_WAIT: Duration = Duration::from_secs(5);

/// Connects to `socket`. When nothing listens there but the agent whose
/// `run_dir` is given is running (its control socket answers), the channel
/// is restarting: wait for it.
fn connect(socket: &Path, run_dir: Option<&Path>) -> Result<UnixStream> {
    let started = Instant::now();
    loop {
        let error = match UnixStream::connect(socket) {
            Ok(stream) => return Ok(stream),
            Err(e) => e,
        };
        let restarting = matches!(
            error.kind(),
            std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
        ) && agent_running(run_dir);
        if !restarting || started.elapsed() > RESTART_WAIT {
            bail!(
                "cannot connect to {}: {error} (is the agent running? start it with `nova-agent run`)",
                socket.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether the agent whose `run_dir` is given runs (its control socket
/// answers).
fn agent_running(run_dir: Option<&Path>) -> bool {
    run_dir.is_some_and(|dir| UnixStream::connect(control::socket_path(dir)).is_ok())
}

enum Exchanged {
    Answer(String),
    /// The connection ended before an answer came: why, for the error.
    Unanswered(String),
}

fn exchange(
    mut stream: UnixStream,
    socket: &Path,
    request: &str,
    timeout: Option<Duration>,
) -> Result<Exchanged> {
    stream.set_read_timeout(timeout)?;
    if let Err(e) = stream.write_all(format!("{request}\n").as_bytes()) {
        return Ok(Exchanged::Unanswered(format!(
            "sending the request to {}: {e}",
            socket.display()
        )));
    }
    let mut line = String::new();
    let read = BufReader::new(&stream).read_line(&mut line);
    match read {
        Ok(0) => Ok(Exchanged::Unanswered(
            "the agent closed the connection without answering".to_owned(),
        )),
        Ok(_) => Ok(Exchanged::Answer(line.trim_end().to_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
            Ok(Exchanged::Unanswered(format!("reading the response: {e}")))
        }
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            bail!(
                "no response within {} s (--timeout; 0 waits without limit)",
                timeout.map_or(0, |t| t.as_secs())
            )
        }
        Err(e) => Err(e).context("reading the response"),
    }
}
