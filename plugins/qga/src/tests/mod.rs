//! The parser end to end through the API's `TestAgent` (bytes in, bytes
//! out, with the agent's dispatch rules: unknown, denied and gated
//! commands), beside small QGA commands of the tests' own, checked against
//! what the real qemu-ga 7.2 sent for the same bytes.

use nova_agent_plugin_api::testing::{TestAgent, TestHost};
use nova_agent_plugin_api::{
    Call, Command, CommandError, Decoded, Gate, Host, ParsedCall, Parser, PluginError, Provides,
};
use nova_agent_support::qapi::Args;
use serde_json::{json, Value};

/// A request line: the text, then `\n`.
macro_rules! nl {
    ($text:literal) => {
        concat!($text, "\n").as_bytes()
    };
}

mod framed;
mod limits;
mod probes;
mod reference;
mod stream;

/// Name, bytes sent, lines answered (each then followed by `\n`).
type Cases = &'static [(&'static str, &'static [u8], &'static [&'static [u8]])];

/// What the commands the frozen state leaves running (reference §0 rule 12).
const FROZEN_ALLOW: [&str; 6] = [
    "guest-ping",
    "guest-info",
    "guest-sync",
    "guest-sync-delimited",
    "guest-fsfreeze-status",
    "guest-fsfreeze-thaw",
];

/// A command answering through a plain function of its arguments' text.
struct Fixed(fn(&str) -> Result<Value, CommandError>);

impl Command for Fixed {
    fn run(&self, call: &Call<'_>) -> Result<Value, CommandError> {
        (self.0)(call.arguments())
    }
}

/// `guest-shutdown`: checks its mode, answers nothing on success.
struct Shutdown;

impl Command for Shutdown {
    fn run(&self, call: &Call<'_>) -> Result<Value, CommandError> {
        let mut args = Args::parse(call.arguments())?;
        let mode = args.opt_str("mode")?;
        args.finish()?;
        match mode.as_deref() {
            None | Some("powerdown" | "reboot" | "halt") => Ok(json!({})),
            Some(mode) => Err(CommandError::bad_arguments(format!(
                "Parameter 'mode' does not accept value '{mode}'"
            ))),
        }
    }

    fn success_response(&self) -> bool {
        false
    }
}

/// `guest-fsfreeze-freeze` and `-thaw`: close and open the frozen gate.
struct Freeze(Host, bool);

impl Command for Freeze {
    fn run(&self, _call: &Call<'_>) -> Result<Value, CommandError> {
        self.0.set_gate("frozen", self.1)?;
        Ok(json!(1))
    }
}

fn no_arguments(arguments: &str) -> Result<Args, CommandError> {
    let args = Args::parse(arguments)?;
    Ok(args)
}

fn sync(arguments: &str) -> Result<Value, CommandError> {
    let mut args = Args::parse(arguments)?;
    let id = args.int("id")?;
    args.finish()?;
    Ok(json!(id))
}

/// The QGA commands the transcripts use, small but argument-strict, plus
/// `echo` (answers its arguments) and `nasty` (fails with a message full of
/// characters that must be escaped).
fn test_commands(host: Host, _config: Value) -> Result<Provides, PluginError> {
    let frozen = Gate::new("frozen")
        .reason("the agent is in frozen state")
        .allow(FROZEN_ALLOW);
    Ok(Provides::new()
        .command(
            "guest-ping",
            Fixed(|a| no_arguments(a)?.finish().map(|()| json!({}))),
        )
        .command("guest-sync", Fixed(sync))
        .command("guest-sync-delimited", Fixed(sync))
        .command(
            "guest-get-fsinfo",
            Fixed(|a| no_arguments(a)?.finish().map(|()| json!([]))),
        )
        .command(
            "guest-get-time",
            Fixed(|a| {
                no_arguments(a)?
                    .finish()
                    .map(|()| json!(1_796_578_365_179_938_000_i64))
            }),
        )
        .command(
            "guest-info",
            Fixed(|_| {
                Ok(json!({"version": "7.2.22", "supported_commands": [
                    {"name": "guest-ping", "enabled": true, "success-response": true},
                    {"name": "guest-shutdown", "enabled": true, "success-response": false},
                ]}))
            }),
        )
        .command("guest-shutdown", Shutdown)
        .command("guest-fsfreeze-freeze", Freeze(host.clone(), true))
        .command("guest-fsfreeze-thaw", Freeze(host, false))
        .command(
            "echo",
            Fixed(|a| serde_json::from_str(a).map_err(|e| CommandError::failed(e.to_string()))),
        )
        .command(
            "nasty",
            Fixed(|_| {
                Err(CommandError::failed(
                    "q\" b\\ n\n t\t \u{e9}\u{1F600} \u{7f}",
                ))
            }),
        )
        .gate(frozen))
}

/// The `qga` parser and the test commands, `guest-get-time` denied.
fn agent() -> TestAgent {
    TestAgent::new(TestHost::new("/nonexistent").with_deny(["guest-get-time"]))
        .with_plugin(super::init, json!({}))
        .unwrap()
        .with_plugin(test_commands, json!({}))
        .unwrap()
}

/// The lines, each followed by `\n`.
fn joined(lines: &[&[u8]]) -> Vec<u8> {
    lines
        .iter()
        .flat_map(|line| [*line, b"\n"])
        .flatten()
        .copied()
        .collect()
}

/// What a fresh stream decoder answers to `chunks`, fed one after another.
fn stream(chunks: &[&[u8]]) -> Vec<u8> {
    let agent = agent();
    chunks
        .iter()
        .flat_map(|chunk| agent.feed("qga", chunk))
        .collect()
}

/// Bytes for a failure message: printable where they can be.
fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Every case of `cases` fed in one chunk to a fresh stream.
fn check_whole(cases: Cases) {
    for (name, input, lines) in cases {
        let got = stream(&[input]);
        assert_eq!(show(&got), show(&joined(lines)), "case {name}");
        assert_eq!(got, joined(lines), "case {name} (bytes)");
    }
}

/// Every case of `cases` split in two at every byte, then byte by byte.
fn check_splits(cases: Cases) {
    for (name, input, lines) in cases {
        let expected = joined(lines);
        for at in 1..input.len() {
            let (head, tail) = input.split_at(at);
            assert_eq!(stream(&[head, tail]), expected, "case {name} split at {at}");
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(stream(&bytes), expected, "case {name} byte by byte");
    }
}

#[test]
fn reference_transcripts_byte_for_byte() {
    check_whole(reference::CASES);
}

#[test]
fn reference_transcripts_split_at_every_byte() {
    check_splits(reference::CASES);
}

#[test]
fn probes_byte_for_byte() {
    check_whole(probes::CASES);
}

#[test]
fn probes_split_at_every_byte() {
    check_splits(probes::CASES);
}

#[test]
fn all_transcripts_in_one_chunk_answer_in_order() {
    let cases = reference::CASES.iter().chain(probes::CASES);
    let (input, expected): (Vec<u8>, Vec<u8>) = cases.fold(
        (Vec::new(), Vec::new()),
        |(mut input, mut expected), (_, bytes, lines)| {
            input.extend_from_slice(bytes);
            expected.extend(joined(lines));
            (input, expected)
        },
    );
    assert_eq!(show(&stream(&[&input])), show(&expected));
}

/// The call a stream decoder finds in `input`, fed to the parser directly.
fn call_of(input: &[u8]) -> ParsedCall {
    let parser = super::QgaParser;
    let mut decoder = parser.stream_decoder().unwrap();
    match decoder.feed(input).as_slice() {
        [Decoded::Call(call)] => call.clone(),
        other => panic!("not one call: {other:?}"),
    }
}

#[test]
fn a_call_carries_its_command_its_arguments_as_json_and_its_id() {
    let call = call_of(br#"{"execute":"guest-sync","arguments":{"id":5}}"#);
    assert_eq!(
        (
            call.command.as_str(),
            call.arguments.as_str(),
            call.context.as_str()
        ),
        ("guest-sync", r#"{"id":5}"#, "")
    );
    let call = call_of(br#"{"id":{"b":1,"a":2},"execute":"guest-ping"}"#);
    assert_eq!(call.arguments, "{}");
    assert_eq!(call.context, r#"{"a": 2, "b": 1}"#);
    // QEMU's string forms become standard JSON; doubles stay doubles.
    let call = call_of(
        br#"{'execute':'x','arguments':{'b':[1,2e0,'\u00e9\'"',-0.0],'a':{'q':null,'n':18446744073709551615}}}"#,
    );
    assert_eq!(
        call.arguments,
        r#"{"b":[1,2.0,"é'\"",-0.0],"a":{"q":null,"n":18446744073709551615}}"#
    );
}

#[test]
fn values_and_errors_are_written_as_qemu_ga_writes_them() {
    let agent = agent();
    assert_eq!(
        show(&agent.feed("qga", br#"{"execute":"guest-info"}"#)),
        concat!(
            r#"{"return": {"version": "7.2.22", "supported_commands": ["#,
            r#"{"enabled": true, "name": "guest-ping", "success-response": true}, "#,
            r#"{"enabled": true, "name": "guest-shutdown", "success-response": false}]}}"#,
            "\n"
        )
    );
    assert_eq!(
        show(&agent.feed("qga", br#"{"execute":"guest-get-fsinfo","id":"f"}"#)),
        "{\"return\": [], \"id\": \"f\"}\n"
    );
    assert_eq!(
        show(&agent.feed("qga", br#"{"execute":"nasty","id":1}"#)),
        concat!(
            r#"{"id": 1, "error": {"class": "GenericError", "desc": "#,
            r#""q\" b\\ n\n t\t \u00E9\uD83D\uDE00 \u007F"}}"#,
            "\n"
        )
    );
    assert_eq!(
        show(&agent.feed(
            "qga",
            br#"{"execute":"echo","arguments":{"s":"\u00e9","n":1.5}}"#
        )),
        "{\"return\": {\"n\": 1.5, \"s\": \"\\u00E9\"}}\n"
    );
}

#[test]
fn an_infinite_id_is_echoed_as_valid_json() {
    // qemu-ga writes `"id": inf`, which is not JSON; this parser writes a
    // number that reads back as the same infinity.
    let got = stream(&[br#"{"execute":"guest-ping","id":[1e999,-1e999]}"#]);
    assert_eq!(show(&got), "{\"return\": {}, \"id\": [1e999, -1e999]}\n");
}

#[test]
fn shutdown_answers_nothing_on_success_but_answers_its_errors() {
    let agent = agent();
    let request = br#"{"execute":"guest-shutdown","arguments":{"mode":"powerdown"},"id":1}"#;
    assert_eq!(agent.feed("qga", request), b"");
    assert_eq!(
        show(&agent.feed("qga", br#"{"execute":"guest-shutdown","arguments":{"mode":"x"}}"#)),
        "{\"error\": {\"class\": \"GenericError\", \"desc\": \"Parameter 'mode' does not accept value 'x'\"}}\n"
    );
    // Nothing was left behind: the next request is answered as usual.
    assert_eq!(
        show(&agent.feed("qga", br#"{"execute":"guest-ping"}"#)),
        "{\"return\": {}}\n"
    );
}

#[test]
fn frozen_state_disables_all_but_six_commands_with_qemu_s_reason() {
    let agent = agent();
    assert_eq!(
        show(&agent.feed("qga", br#"{"execute":"guest-fsfreeze-freeze"}"#)),
        "{\"return\": 1}\n"
    );
    assert_eq!(
        show(&agent.feed("qga", br#"{"execute":"guest-get-fsinfo","id":3}"#)),
        concat!(
            r#"{"id": 3, "error": {"class": "CommandNotFound", "desc": "#,
            r#""Command guest-get-fsinfo has been disabled: the agent is in frozen state"}}"#,
            "\n"
        )
    );
    assert_eq!(
        show(&agent.feed("qga", br#"{"execute":"guest-shutdown"}"#)),
        concat!(
            r#"{"error": {"class": "CommandNotFound", "desc": "#,
            r#""Command guest-shutdown has been disabled: the agent is in frozen state"}}"#,
            "\n"
        )
    );
    // A denied command keeps its own wording, without a reason.
    assert_eq!(
        show(&agent.feed("qga", br#"{"execute":"guest-get-time"}"#)),
        concat!(
            r#"{"error": {"class": "CommandNotFound", "desc": "#,
            r#""Command guest-get-time has been disabled"}}"#,
            "\n"
        )
    );
    assert_eq!(
        show(&agent.feed("qga", br#"{"execute":"guest-ping","id":"p"}"#)),
        "{\"return\": {}, \"id\": \"p\"}\n"
    );
    assert_eq!(
        show(&agent.feed("qga", br#"{"execute":"guest-fsfreeze-thaw"}"#)),
        "{\"return\": 1}\n"
    );
    assert_eq!(
        show(&agent.feed("qga", br#"{"execute":"guest-get-fsinfo"}"#)),
        "{\"return\": []}\n"
    );
}

#[test]
fn the_plugin_takes_no_config_keys() {
    let refused = TestAgent::new(TestHost::new("/")).with_plugin(super::init, json!({"x": 1}));
    let message = refused.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        message.contains("[plugins.qga]") && message.contains("'x'"),
        "{message}"
    );
}
