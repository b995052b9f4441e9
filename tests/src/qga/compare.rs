//! The structural comparison of two agents' replies (issue 14, ARCHITECTURE
//! §5.1): the same members and JSON types recursively, the same `id` and
//! error class, never key order or whitespace; values too where both agents
//! must say the same thing.

use serde_json::Value;

use super::Reply;

/// How two replies are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compare {
    /// Equal JSON (key order and whitespace aside), same 0xFF prefix.
    Exact,
    /// Same 0xFF prefix, same `id`, same error class; `desc` a string on
    /// both sides; `return` of the same shape (see [`shape_diff`]).
    Shape,
}

/// Empty when `ours` matches `theirs` under `mode`, else what differs.
pub fn reply_diff(ours: &Reply, theirs: &Reply, mode: Compare) -> Vec<String> {
    let mut diffs = Vec::new();
    if ours.delimited != theirs.delimited {
        diffs.push(format!(
            "0xFF prefix: ours {}, theirs {}",
            ours.delimited, theirs.delimited
        ));
    }
    if mode == Compare::Exact {
        if ours.json != theirs.json {
            diffs.push("not equal".to_owned());
        }
        return diffs;
    }
    let keys = |v: &Value| -> Vec<String> { v.as_object().unwrap().keys().cloned().collect() };
    if keys(&ours.json) != keys(&theirs.json) {
        diffs.push(format!(
            "envelope keys: ours {:?}, theirs {:?}",
            keys(&ours.json),
            keys(&theirs.json)
        ));
        return diffs;
    }
    if ours.id() != theirs.id() {
        diffs.push(format!(
            "id: ours {:?}, theirs {:?}",
            ours.id(),
            theirs.id()
        ));
    }
    if theirs.json.get("error").is_some() {
        if ours.error_class() != theirs.error_class() || theirs.error_class().is_none() {
            diffs.push(format!(
                "error class: ours {:?}, theirs {:?}",
                ours.error_class(),
                theirs.error_class()
            ));
        }
        if ours.desc().is_none() {
            diffs.push("error without a desc string".to_owned());
        }
        if keys(&ours.json["error"]) != keys(&theirs.json["error"]) {
            diffs.push("error members differ".to_owned());
        }
    }
    if let (Some(a), Some(b)) = (ours.json.get("return"), theirs.json.get("return")) {
        diffs.extend(shape_diff(a, b, "return"));
    }
    diffs
}

/// Panics with both replies when they differ under `mode`.
pub fn assert_same(what: &str, ours: &Reply, theirs: &Reply, mode: Compare) {
    let diffs = reply_diff(ours, theirs, mode);
    assert!(
        diffs.is_empty(),
        "{what}: {mode:?} comparison failed: {}\n  ours:   {}\n  theirs: {}",
        diffs.join("; "),
        ours.text(),
        theirs.text()
    );
}

/// Members whose values identify an element of an array of objects, tried in
/// this order: arrays of such objects are paired by it, not by position.
const IDENTITY: [&str; 7] = [
    "name",
    "logical-id",
    "phys-index",
    "cpu",
    "ip-address",
    "path",
    "mountpoint",
];

/// QAPI `number` members: QEMU prints a double without a fraction as an
/// integer, so either JSON form is that type.
const DOUBLES: [&str; 4] = ["login-time", "load1m", "load5m", "load15m"];

/// The JSON type of `value` for a shape comparison: integers and numbers with
/// a fraction or exponent are told apart (a QAPI `int` must never come back
/// as `1.0`), except for the members in [`DOUBLES`].
fn kind(value: &Value, member: &str) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) if DOUBLES.contains(&member) => "number",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Where `ours` and `theirs` differ in shape: the same members recursively
/// (never their order), the same JSON types; arrays of objects paired by an
/// [`IDENTITY`] member (the same identities on both sides), other arrays of
/// the same length with each element matching some element of the other side.
/// Values themselves are not compared.
pub fn shape_diff(ours: &Value, theirs: &Value, path: &str) -> Vec<String> {
    let member = path.rsplit('.').next().unwrap_or(path);
    let (a, b) = (kind(ours, member), kind(theirs, member));
    if a != b {
        return vec![format!("{path}: ours {a}, theirs {b}")];
    }
    match (ours, theirs) {
        (Value::Object(x), Value::Object(y)) => {
            let mut diffs = Vec::new();
            for key in x.keys().filter(|k| !y.contains_key(*k)) {
                diffs.push(format!("{path}.{key}: only in ours"));
            }
            for key in y.keys().filter(|k| !x.contains_key(*k)) {
                diffs.push(format!("{path}.{key}: only in theirs"));
            }
            for (key, value) in x {
                if let Some(other) = y.get(key) {
                    diffs.extend(shape_diff(value, other, &format!("{path}.{key}")));
                }
            }
            diffs
        }
        (Value::Array(x), Value::Array(y)) => array_diff(x, y, path),
        _ => Vec::new(),
    }
}

fn array_diff(ours: &[Value], theirs: &[Value], path: &str) -> Vec<String> {
    let identity = IDENTITY
        .into_iter()
        .find(|key| !theirs.is_empty() && ours.iter().chain(theirs).all(|v| v.get(*key).is_some()));
    if let Some(key) = identity {
        let label = |v: &Value| v[key].to_string();
        let mut diffs = Vec::new();
        for item in ours {
            match theirs.iter().find(|t| t[key] == item[key]) {
                Some(other) => diffs.extend(shape_diff(
                    item,
                    other,
                    &format!("{path}[{key}={}]", label(item)),
                )),
                None => diffs.push(format!("{path}[{key}={}]: only in ours", label(item))),
            }
        }
        for item in theirs
            .iter()
            .filter(|t| !ours.iter().any(|o| o[key] == t[key]))
        {
            diffs.push(format!("{path}[{key}={}]: only in theirs", label(item)));
        }
        return diffs;
    }
    if ours.len() != theirs.len() {
        return vec![format!(
            "{path}: ours has {} elements, theirs {}",
            ours.len(),
            theirs.len()
        )];
    }
    let element = format!("{path}[]");
    let unmatched = |xs: &[Value], ys: &[Value]| {
        xs.iter()
            .position(|x| !ys.iter().any(|y| shape_diff(x, y, &element).is_empty()))
    };
    if let Some(i) = unmatched(ours, theirs) {
        let mut diffs = vec![format!("{path}[{i}] of ours matches none of theirs")];
        diffs.extend(shape_diff(&ours[i], &theirs[0], &format!("{path}[{i}]")));
        return diffs;
    }
    if let Some(i) = unmatched(theirs, ours) {
        return vec![format!("{path}[{i}] of theirs matches none of ours")];
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reply(line: &[u8]) -> Reply {
        Reply::from_line(line).unwrap()
    }

    #[test]
    fn the_wire_rules_reject_what_libvirt_would_choke_on() {
        for bad in [
            &b"{\"return\": {}}"[..],
            b"{\"return\": {}}\r\n",
            b"{\"return\": \"\xc3\xa9\"}\n",
            b"{\"return\": \"\x01\"}\n",
            b"[1]\n",
            b"\n",
            b"{\"return\": {}\n",
        ] {
            assert!(Reply::from_line(bad).is_err(), "{bad:?}");
        }
        let delimited = reply(b"\xff{\"return\": 42}\n");
        assert!(delimited.delimited);
        assert_eq!(delimited.json, json!({"return": 42}));
        assert_eq!(delimited.text(), "\\xff{\"return\": 42}");
    }

    #[test]
    fn exact_ignores_key_order_and_whitespace_only() {
        let a = reply(b"{\"return\": {}, \"id\": 1}\n");
        let b = reply(b"{\"id\":1,\"return\":{}}\n");
        assert!(reply_diff(&a, &b, Compare::Exact).is_empty());
        for other in [
            &b"{\"return\": {}, \"id\": 1.0}\n"[..],
            b"{\"return\": {}, \"id\": \"1\"}\n",
            b"{\"return\": {}}\n",
            b"\xff{\"return\": {}, \"id\": 1}\n",
        ] {
            assert!(
                !reply_diff(&reply(other), &b, Compare::Exact).is_empty(),
                "{other:?}"
            );
        }
    }

    #[test]
    fn shape_compares_members_types_id_and_class_but_not_values() {
        let theirs = reply(b"{\"return\": {\"host-name\": \"vm\"}, \"id\": \"x\"}\n");
        let same = reply(b"{\"id\": \"x\", \"return\": {\"host-name\": \"other\"}}\n");
        assert!(reply_diff(&same, &theirs, Compare::Shape).is_empty());
        for (ours, why) in [
            (
                &b"{\"return\": {\"host-name\": 1}, \"id\": \"x\"}\n"[..],
                "type",
            ),
            (
                b"{\"return\": {\"hostname\": \"vm\"}, \"id\": \"x\"}\n",
                "member",
            ),
            (
                b"{\"return\": {\"host-name\": \"vm\"}, \"id\": \"y\"}\n",
                "id",
            ),
            (b"{\"return\": {\"host-name\": \"vm\"}}\n", "no id"),
        ] {
            assert!(
                !reply_diff(&reply(ours), &theirs, Compare::Shape).is_empty(),
                "{why}"
            );
        }
        let error = |class: &str| {
            reply(
                format!("{{\"error\": {{\"class\": \"{class}\", \"desc\": \"d\"}}}}\n").as_bytes(),
            )
        };
        assert!(reply_diff(
            &error("GenericError"),
            &error("GenericError"),
            Compare::Shape
        )
        .is_empty());
        assert!(!reply_diff(
            &error("CommandNotFound"),
            &error("GenericError"),
            Compare::Shape
        )
        .is_empty());
    }

    #[test]
    fn integers_and_doubles_differ_except_for_qapi_numbers() {
        assert!(!shape_diff(&json!({"prefix": 24.0}), &json!({"prefix": 24}), "r").is_empty());
        assert!(shape_diff(&json!({"login-time": 1.5}), &json!({"login-time": 2}), "r").is_empty());
        assert!(shape_diff(&json!(-3), &json!(18446744073709551615u64), "r").is_empty());
    }

    #[test]
    fn arrays_pair_by_identity_and_otherwise_by_shape() {
        let theirs = json!([{"name": "lo", "statistics": {"rx-bytes": 1}}, {"name": "eth0"}]);
        let reordered = json!([{"name": "eth0"}, {"name": "lo", "statistics": {"rx-bytes": 9}}]);
        assert!(shape_diff(&reordered, &theirs, "r").is_empty());
        let missing = json!([{"name": "lo", "statistics": {"rx-bytes": 1}}]);
        assert_eq!(
            shape_diff(&missing, &theirs, "r"),
            ["r[name=\"eth0\"]: only in theirs"]
        );
        let swapped = json!([{"name": "lo"}, {"name": "eth0", "statistics": {"rx-bytes": 1}}]);
        assert_eq!(shape_diff(&swapped, &theirs, "r").len(), 2);
        assert!(shape_diff(&json!([1, 2]), &json!([3, 4]), "r").is_empty());
        assert!(!shape_diff(&json!([1]), &json!([3, 4]), "r").is_empty());
        assert!(!shape_diff(&json!([1, "a"]), &json!([3, 4]), "r").is_empty());
    }
}
