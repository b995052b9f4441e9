use serde_json::{json, Value};

use super::*;
use crate::{Parser, Provides, StreamDecoder};

struct Echo {
    host: Host,
}

impl Command for Echo {
    fn run(&self, call: &Call<'_>) -> Result<Value, CommandError> {
        let hostname = call.metadata_read("vm-data/hostname")?.unwrap_or_default();
        Ok(json!([
            call.channel(),
            self.host.root(),
            self.host.apply(),
            hostname,
            call.arguments()
        ]))
    }
}

struct Panics;

impl Command for Panics {
    fn run(&self, _call: &Call<'_>) -> Result<Value, CommandError> {
        panic!("secret-in-panic")
    }
}

struct Freeze {
    host: Host,
}

impl Command for Freeze {
    fn run(&self, call: &Call<'_>) -> Result<Value, CommandError> {
        let closed: bool = call.parse_arguments()?;
        self.host.set_gate("frozen", closed)?;
        Ok(Value::Null)
    }
}

struct Quiet;

impl Command for Quiet {
    fn run(&self, _call: &Call<'_>) -> Result<Value, CommandError> {
        Ok(json!({}))
    }

    fn success_response(&self) -> bool {
        false
    }
}

/// A toy protocol: a request is `name arguments-json`, a response is
/// `ok <value>` or `err <kind> <message>`, one per line. As a stream,
/// requests end at `;`.
struct Lines;

fn parse(text: &[u8]) -> Decoded {
    let text = String::from_utf8_lossy(text);
    let (command, arguments) = text.split_once(' ').unwrap_or((&text, "null"));
    if command.is_empty() {
        return Decoded::Answer(b"err empty request\n".to_vec());
    }
    Decoded::Call(ParsedCall {
        command: command.to_owned(),
        arguments: arguments.to_owned(),
        context: "ctx".to_owned(),
    })
}

impl Parser for Lines {
    fn decode(&self, request: Result<&[u8], &str>) -> Decoded {
        match request {
            Ok(bytes) => parse(bytes),
            Err(reason) => Decoded::Answer(format!("err {reason}\n").into_bytes()),
        }
    }

    fn encode(&self, _command: &str, context: &str, outcome: &Outcome) -> Option<Vec<u8>> {
        assert_eq!(context, "ctx");
        let text = match &outcome.result {
            Ok(_) if !outcome.success_response => return None,
            Ok(value) => format!("ok {value}\n"),
            Err(e) => format!("err {:?} {}\n", e.kind, e.message),
        };
        Some(text.into_bytes())
    }

    fn stream_decoder(&self) -> Option<Box<dyn StreamDecoder>> {
        Some(Box::new(Pending(Vec::new())))
    }
}

struct Pending(Vec<u8>);

impl StreamDecoder for Pending {
    fn feed(&mut self, bytes: &[u8]) -> Vec<Decoded> {
        let mut out = Vec::new();
        for &byte in bytes {
            if byte == b';' {
                out.push(parse(&std::mem::take(&mut self.0)));
            } else {
                self.0.push(byte);
            }
        }
        out
    }
}

fn init(host: Host, config: Value) -> Result<Provides, PluginError> {
    if config.get("fail").is_some() {
        return Err(PluginError::failed("told to fail"));
    }
    Ok(Provides::new()
        .parser("lines", Lines)
        .command("echo", Echo { host: host.clone() })
        .command("panics", Panics)
        .command("quiet", Quiet)
        .command("freeze", Freeze { host })
        .gate(
            Gate::new("frozen")
                .reason("the agent is in frozen state")
                .allow(["freeze", "echo"]),
        ))
}

fn agent() -> TestAgent {
    TestAgent::new(TestHost::new("/guest").with_deny(["quiet"]))
        .with_plugin(init, json!({}))
        .unwrap()
}

#[test]
fn host_values_reach_the_host_handle() {
    let host = TestHost::new("/guest").host();
    assert_eq!(host.root(), std::path::Path::new("/guest"));
    assert!(!host.apply());
    assert!(host.commands().is_empty());
    assert_eq!(host.agent_version(), "test");
    assert!(host.set_gate("nope", true).is_err());

    let host = TestHost::new(String::from("/other"))
        .with_apply(true)
        .with_commands(vec![String::from("version"), String::from("features")])
        .with_deny(["version"])
        .with_agent_version("2.0.0")
        .host();
    assert_eq!(host.root(), std::path::Path::new("/other"));
    assert!(host.apply());
    assert_eq!(host.enabled_commands(), ["features"]);
    assert_eq!(host.commands()[1].name, "version");
    assert!(!host.commands()[1].enabled);
    assert_eq!(host.agent_version(), "2.0.0");
}

#[test]
fn a_command_runs_in_a_test_call() {
    let command = Echo {
        host: TestHost::new("/guest").with_apply(true).host(),
    };
    let context = TestCall::new()
        .with_channel("unix-socket+json")
        .with_metadata("vm-data/hostname", "web-01");
    assert_eq!(
        context.run(&command, "\"x\""),
        Ok(json!([
            "unix-socket+json",
            "/guest",
            true,
            "web-01",
            "\"x\""
        ]))
    );
}

#[test]
fn metadata_lists_the_names_directly_under_a_directory() {
    let context = TestCall::new()
        .with_metadata("vm-data/networking/b", "{}")
        .with_metadata("vm-data/networking/a", "{}")
        .with_metadata("vm-data/networking/a-b/deep", "1")
        .with_metadata("vm-data/networking-other/c", "2")
        .with_metadata("vm-data/hostname", "web-01");
    // A name with only deeper keys is a directory and listed once;
    // `networking-other` is not under `networking`.
    assert_eq!(context.list("vm-data/networking"), ["a", "a-b", "b"]);
    assert_eq!(context.list("vm-data/networking/"), ["a", "a-b", "b"]);
    assert_eq!(
        context.list("vm-data"),
        ["hostname", "networking", "networking-other"]
    );
    assert_eq!(context.list(""), ["vm-data"]);
    assert!(context.list("vm-data/hostname").is_empty());
    assert!(context.list("vm").is_empty());
}

#[test]
fn the_agent_runs_commands_through_the_guard() {
    let agent = agent().with_call(TestCall::new().with_metadata("vm-data/hostname", "h"));
    assert_eq!(
        agent.run("echo", "1").parsed_value(),
        Some(json!(["test", "/guest", false, "h", "1"]))
    );
    let panicked = agent.run("panics", "null").result.unwrap_err();
    assert_eq!(panicked.kind, ErrorKind::Panicked);
    assert!(!panicked.message.contains("secret"), "{panicked:?}");
    assert_eq!(
        agent.run("nope", "null").result.unwrap_err().kind,
        ErrorKind::UnknownCommand
    );
    let denied = agent.run("quiet", "null").result.unwrap_err();
    assert_eq!(
        (denied.kind, denied.message.as_str()),
        (ErrorKind::Disabled, "")
    );
    let bad = agent.run("freeze", "\"yes\"").result.unwrap_err();
    assert_eq!(bad.kind, ErrorKind::BadArguments);
}

#[test]
fn a_closed_gate_lets_only_its_allowed_commands_run() {
    let agent = agent();
    assert!(!agent.host().gate_closed("frozen"));
    assert_eq!(agent.run("freeze", "true").result, Ok("null".to_owned()));
    assert!(agent.host().gate_closed("frozen"));
    let refused = agent.run("panics", "null").result.unwrap_err();
    assert_eq!(refused.kind, ErrorKind::Disabled);
    assert_eq!(refused.message, "the agent is in frozen state");
    assert!(agent.run("echo", "1").result.is_ok());
    let enabled = agent.host().enabled_commands();
    assert_eq!(enabled, ["echo", "freeze"]);
    agent.run("freeze", "false").result.unwrap();
    assert_eq!(
        agent.host().enabled_commands(),
        ["echo", "freeze", "panics"]
    );
}

#[test]
fn commands_are_listed_with_their_success_response() {
    let agent = agent();
    let quiet = agent
        .host()
        .commands()
        .into_iter()
        .find(|c| c.name == "quiet")
        .unwrap();
    assert!(!quiet.success_response);
    assert!(!quiet.enabled);
}

#[test]
fn a_parser_is_driven_end_to_end() {
    let agent = agent();
    assert_eq!(agent.request("lines", b"echo 7")[..3], *b"ok ");
    assert_eq!(
        agent.request("lines", b"nope"),
        b"err UnknownCommand \n".to_vec()
    );
    assert_eq!(agent.request("lines", b""), b"err empty request\n".to_vec());
    assert_eq!(
        agent.unreadable("lines", "too large"),
        b"err too large\n".to_vec()
    );
}

#[test]
fn a_stream_keeps_its_half_read_input_between_chunks() {
    let agent = agent();
    assert!(agent.feed("lines", b"freeze tr").is_empty());
    assert_eq!(
        agent.feed("lines", b"ue;freeze false;"),
        b"ok null\nok null\n"
    );
    // An answer that is not sent: quiet's success (were it not denied).
    let agent = TestAgent::new(TestHost::new("/"))
        .with_plugin(init, json!({}))
        .unwrap();
    assert!(agent.feed("lines", b"quiet;").is_empty());
}

#[test]
fn a_failing_init_is_an_error() {
    let Err(e) = TestAgent::new(TestHost::new("/")).with_plugin(init, json!({"fail": 1})) else {
        panic!("init accepted")
    };
    assert_eq!(e, PluginError::failed("told to fail"));
}
