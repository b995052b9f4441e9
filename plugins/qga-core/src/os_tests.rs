//! `guest-get-load` from a crafted /proc/loadavg, and how doubles are
//! written.

use nova_agent_plugin_api::testing::TestCall;
use nova_agent_plugin_api::ErrorKind;
use serde_json::json;

use super::{parse_loadavg, Load};
use crate::number;
use crate::tests::{failure, Sandbox};

#[test]
fn load_comes_from_the_first_three_fields() {
    let sandbox = Sandbox::new();
    std::fs::write(&sandbox.loadavg, "0.42 1.50 2.00 3/456 7890\n").unwrap();
    let load = Load {
        system: sandbox.system(),
    };
    let answer = TestCall::new().run(&load, "{}").unwrap();
    assert_eq!(answer, json!({"load1m": 0.42, "load5m": 1.5, "load15m": 2}));
    assert_eq!(
        answer.to_string(),
        r#"{"load15m":2,"load1m":0.42,"load5m":1.5}"#
    );
}

#[test]
fn an_unreadable_or_garbled_loadavg_is_an_error() {
    let sandbox = Sandbox::new();
    let load = Load {
        system: sandbox.system(),
    };
    let missing = TestCall::new().run(&load, "{}");
    assert_eq!(
        failure(missing, ErrorKind::Failed),
        "cannot query load average: No such file or directory"
    );
    std::fs::write(&sandbox.loadavg, "0.42 x\n").unwrap();
    let garbled = TestCall::new().run(&load, "{}");
    assert_eq!(
        failure(garbled, ErrorKind::Failed),
        "cannot query load average"
    );
}

#[test]
fn loadavg_needs_three_finite_numbers() {
    assert_eq!(parse_loadavg("1 2 3"), Some([1.0, 2.0, 3.0]));
    assert_eq!(parse_loadavg("1 2"), None);
    assert_eq!(parse_loadavg("1 inf 3"), None);
    assert_eq!(parse_loadavg(""), None);
}

#[test]
fn whole_doubles_are_written_without_a_fraction_as_qemu_does() {
    assert_eq!(number(1_700_000_050.0).to_string(), "1700000050");
    assert_eq!(number(-2.0).to_string(), "-2");
    assert_eq!(number(0.0).to_string(), "0");
    assert_eq!(number(1_700_000_000.25).to_string(), "1700000000.25");
    assert_eq!(
        number(1e300).to_string(),
        "1e+300",
        "too large for an integer"
    );
}
