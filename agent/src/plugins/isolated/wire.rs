//! The messages between the agent and a plugin's child process, and their
//! framing on the socketpair: a 4-byte little-endian length, then that many
//! bytes of JSON. Both ends are this binary, so the format needs no
//! versioning; the agent still reads the child's frames as untrusted input
//! (bounded size, strict JSON), since the child runs a vendor's code.

use std::io::{self, Read, Write};

use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// The largest frame either end accepts: a command's arguments or answer
/// (QGA's `guest-file-read` answers up to 48 MiB of data as base64).
pub(crate) const MAX_FRAME: usize = 80 << 20;

/// What the agent sends the child.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub(crate) enum ToChild {
    /// The first message: what `init` needs, and what the host answers
    /// without asking the agent.
    Start(Start),
    /// Run `command`; the child answers [`FromChild::Done`] with the same id.
    Run {
        id: u64,
        command: String,
        arguments: String,
        channel: String,
    },
    /// The answer to a request's [`FromChild::MetadataRead`].
    MetadataRead {
        id: u64,
        result: Result<Option<String>, String>,
    },
    /// The answer to a request's [`FromChild::MetadataList`].
    MetadataList {
        id: u64,
        result: Result<Vec<String>, String>,
    },
    /// The answer to a [`FromChild::Host`] question.
    Host { call: u64, answer: HostAnswer },
    /// Run the plugin's shutdown hook and exit.
    Stop,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Start {
    pub(crate) plugin: String,
    /// The plugin's path, for messages.
    pub(crate) file: String,
    pub(crate) config_json: String,
    pub(crate) agent_version: String,
    pub(crate) root: String,
    pub(crate) state_dir: String,
    pub(crate) apply: bool,
    /// The most verbose level the agent records (a plugin-api log level).
    pub(crate) max_log_level: u8,
}

/// What the child sends the agent.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub(crate) enum FromChild {
    /// `init` succeeded: what the plugin provides.
    Ready(Provided),
    /// The library could not be loaded, or `init` failed.
    Failed {
        reason: String,
    },
    Log {
        level: u8,
        target: String,
        message: String,
    },
    /// A request's command reads metadata through its exchange.
    MetadataRead {
        id: u64,
        key: String,
    },
    MetadataList {
        id: u64,
        dir: String,
    },
    /// A question to the agent, from any thread of the plugin.
    Host {
        call: u64,
        ask: HostAsk,
    },
    /// A request's outcome (a plugin-api outcome: kind 0 is success).
    Done {
        id: u64,
        kind: u8,
        text: String,
        success_response: bool,
    },
}

/// What an isolated plugin's `init` returned, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Provided {
    /// Name, and whether a success is answered.
    pub(crate) commands: Vec<(String, bool)>,
    pub(crate) gates: Vec<WireGate>,
    pub(crate) exchanges: Vec<String>,
    pub(crate) parsers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct WireGate {
    pub(crate) name: String,
    pub(crate) reason: String,
    pub(crate) allow: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub(crate) enum HostAsk {
    Commands,
    SetGate { gate: String, closed: bool },
    GateClosed { gate: String },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub(crate) enum HostAnswer {
    /// Name, enabled, success answered.
    Commands {
        list: Vec<(String, bool, bool)>,
    },
    SetGate {
        result: Result<(), String>,
    },
    GateClosed {
        closed: bool,
    },
}

/// Writes one frame. The caller holds the writer's lock, so frames never
/// interleave.
pub(crate) fn write(out: &mut impl Write, message: &impl Serialize) -> io::Result<()> {
    let body = serde_json::to_vec(message).map_err(io::Error::other)?;
    if body.len() > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "a message of {} bytes exceeds the {MAX_FRAME}-byte limit",
                body.len()
            ),
        ));
    }
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_le_bytes());
    frame.extend_from_slice(&body);
    out.write_all(&frame)
}

/// Reads one frame; `Ok(None)` at a clean end of stream (before a frame
/// started). A frame too large, cut short or not the expected JSON is an
/// error.
pub(crate) fn read<T: DeserializeOwned>(input: &mut impl Read) -> io::Result<Option<T>> {
    let mut length = [0u8; 4];
    loop {
        match input.read(&mut length[..1]) {
            Ok(0) => return Ok(None),
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    input.read_exact(&mut length[1..])?;
    let length = u32::from_le_bytes(length) as usize;
    if length > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a frame of {length} bytes exceeds the {MAX_FRAME}-byte limit"),
        ));
    }
    let mut body = vec![0u8; length];
    input.read_exact(&mut body)?;
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_end_cleanly() {
        let mut bytes = Vec::new();
        write(
            &mut bytes,
            &FromChild::Done {
                id: 7,
                kind: 0,
                text: "\"fine\"".into(),
                success_response: true,
            },
        )
        .unwrap();
        write(&mut bytes, &FromChild::Failed { reason: "x".into() }).unwrap();
        let mut input = bytes.as_slice();
        let first: FromChild = read(&mut input).unwrap().unwrap();
        assert!(matches!(first, FromChild::Done { id: 7, kind: 0, .. }));
        let second: FromChild = read(&mut input).unwrap().unwrap();
        assert!(matches!(second, FromChild::Failed { reason } if reason == "x"));
        assert!(read::<FromChild>(&mut input).unwrap().is_none());
    }

    #[test]
    fn oversized_cut_short_and_malformed_frames_are_errors() {
        let huge = ((MAX_FRAME + 1) as u32).to_le_bytes();
        assert!(read::<FromChild>(&mut huge.as_slice()).is_err());
        let mut cut = 10u32.to_le_bytes().to_vec();
        cut.extend_from_slice(b"{\"t\"");
        assert!(read::<FromChild>(&mut cut.as_slice()).is_err());
        let mut junk = 4u32.to_le_bytes().to_vec();
        junk.extend_from_slice(b"junk");
        assert!(read::<FromChild>(&mut junk.as_slice()).is_err());
        assert!(read::<FromChild>(&mut [1u8, 0].as_slice()).is_err());
    }
}
