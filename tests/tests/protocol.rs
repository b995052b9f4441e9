//! The Nova protocol over the unix socket, through the built binary and the
//! built-in plugins: version, features, unknown commands and every malformed
//! request of seed-agent.md §2.5.

use nova_agent_tests::{nova, Sandbox};

#[test]
fn version_answers_the_agent_version() {
    let sandbox = Sandbox::with_builtins();
    let agent = sandbox.start();
    assert_eq!(
        agent.request(r#"{"name": "version", "value": "agent"}"#),
        nova("0", "2.0.0")
    );
}

#[test]
fn features_lists_every_command_without_spaces() {
    let sandbox = Sandbox::with_builtins();
    let agent = sandbox.start();
    assert_eq!(
        agent.request(r#"{"name": "features", "value": ""}"#),
        nova("0", "features,version")
    );
}

#[test]
fn unknown_command_is_404_with_the_original_message() {
    let sandbox = Sandbox::with_builtins();
    let agent = sandbox.start();
    assert_eq!(
        agent.request(r#"{"name": "x", "value": ""}"#),
        nova("404", "No such agent command 'x'")
    );
    assert_eq!(
        agent.request(r#"{"name": "<unknown_command>", "value": ""}"#),
        nova("404", "No such agent command '<unknown_command>'")
    );
}

#[test]
fn every_malformed_request_gets_an_answer_and_the_agent_keeps_serving() {
    let sandbox = Sandbox::with_builtins();
    let agent = sandbox.start();
    let mut client = agent.connect();
    let malformed = nova("500", "Request is malformed");
    for (request, expected) in [
        ("abc", malformed.clone()),
        ("{\"name\": \"version\"", malformed.clone()),
        (
            r#"{"value":""}"#,
            nova("500", "Request is missing 'name' key"),
        ),
        // Valid JSON that is not an object: the original never answered these
        // and re-read them forever (B-CORE-1).
        (r#""str""#, malformed.clone()),
        ("[1,2]", malformed.clone()),
        ("42", malformed.clone()),
        ("null", malformed.clone()),
        (
            r#"{"name": "version", "value": ""} trailing"#,
            malformed.clone(),
        ),
    ] {
        assert_eq!(client.request(request), expected, "request {request:?}");
    }
    // Not UTF-8.
    client.send(b"{\"name\": \"\xff\xfe\"}\n");
    assert_eq!(client.read_line(), malformed);
    // Still serving, on the same connection.
    assert_eq!(client.request(r#"{"name": "version"}"#), nova("0", "2.0.0"));
}

#[test]
fn several_requests_per_connection_answer_in_order_and_blank_lines_are_ignored() {
    let sandbox = Sandbox::with_builtins();
    let agent = sandbox.start();
    let mut client = agent.connect();
    client.send(
        b"{\"name\": \"version\"}\n\n   \n{\"name\": \"nope\"}\r\n{\"name\": \"features\"}\n",
    );
    assert_eq!(client.read_line(), nova("0", "2.0.0"));
    assert_eq!(
        client.read_line(),
        nova("404", "No such agent command 'nope'")
    );
    assert_eq!(client.read_line(), nova("0", "features,version"));
}

#[test]
fn a_line_over_one_mebibyte_is_answered_500_and_the_connection_goes_on() {
    let sandbox = Sandbox::with_builtins();
    let agent = sandbox.start();
    let mut client = agent.connect();
    let mut huge = br#"{"name": "version", "value": ""#.to_vec();
    huge.resize(1024 * 1024 + 100, b'a');
    huge.extend_from_slice(b"\"}\n");
    client.send(&huge);
    let answer: serde_json::Value = serde_json::from_str(&client.read_line()).unwrap();
    assert_eq!(answer["returncode"], "500");
    assert!(
        answer["message"].as_str().unwrap().contains("1048576"),
        "{answer}"
    );
    assert_eq!(client.request(r#"{"name": "version"}"#), nova("0", "2.0.0"));
}

#[test]
fn concurrent_clients_are_all_served() {
    let sandbox = Sandbox::with_builtins();
    let agent = sandbox.start();
    std::thread::scope(|scope| {
        for _ in 0..16 {
            scope.spawn(|| {
                let mut client = agent.connect();
                for _ in 0..50 {
                    assert_eq!(client.request(r#"{"name": "version"}"#), nova("0", "2.0.0"));
                }
            });
        }
    });
}

#[test]
fn denied_commands_read_as_unknown_and_leave_features() {
    let sandbox = Sandbox::with_builtins();
    sandbox.write_config("[commands]\ndeny = [\"version\"]\n");
    let agent = sandbox.start();
    assert_eq!(
        agent.call("version"),
        nova("404", "No such agent command 'version'")
    );
    assert_eq!(agent.call("features"), nova("0", "features"));
}

#[test]
fn call_prints_the_response_and_exits_by_return_code() {
    let sandbox = Sandbox::with_builtins();
    let _agent = sandbox.start();
    let ok = sandbox.cli(&["call", "version"]);
    assert_eq!(
        String::from_utf8_lossy(&ok.stdout),
        format!("{}\n", nova("0", "2.0.0"))
    );
    assert_eq!(ok.status.code(), Some(0));

    let unknown = sandbox.cli(&["call", "nope", "x"]);
    assert_eq!(
        String::from_utf8_lossy(&unknown.stdout),
        format!("{}\n", nova("404", "No such agent command 'nope'"))
    );
    assert_eq!(unknown.status.code(), Some(1));

    let bad_json = sandbox.cli(&["call", "version", "{", "--json"]);
    assert_eq!(bad_json.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad_json.stderr).contains("VALUE is not valid JSON"));
}
