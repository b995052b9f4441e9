//! From a parsed message to a call, as QEMU's `qmp_dispatch` checks it
//! (`qapi/qmp-dispatch.c`, `allow_oob` off as in qemu-ga), and the context a
//! call carries to its encoding.
//!
//! The checks, in order: the message must be an object; its members, taken
//! in QDict order, must be `execute` (a string), `arguments` (an object) or
//! `id` (anything); `execute` must be there. Every error after the first
//! check echoes the `id`.

use nova_agent_plugin_api::{Decoded, ParsedCall};

use crate::echo::echoed;
use crate::encode::{error_line, parse_error_line, ErrorClass};
use crate::lexer::Message;
use crate::value::{qdict_order, QValue};

/// The arguments of a request that gave none.
const NO_ARGUMENTS: &str = "{}";

/// Separates the parts of a context that carries more than an id.
const SEPARATOR: char = '\u{1F}';

/// What the encoding of a call's outcome needs, packed into
/// [`ParsedCall::context`]:
///
/// - `id`: the request's `id` as qemu-ga writes it back, `None` without one;
/// - `before` and `after`: answers to other input of the same framed
///   request, sent before and after the call's own answer (see
///   the `framed` module).
///
/// Packed as the id's text alone (empty: no id; a JSON text is never
/// empty), or, with answers, as `id \x1F before \x1F after`. Neither the id
/// text nor an answer can hold `\x1F`: everything this parser writes escapes
/// control characters, and an answer's only raw one is its final `\n`.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Context<'a> {
    pub(crate) id: Option<&'a str>,
    pub(crate) before: &'a str,
    pub(crate) after: &'a str,
}

impl<'a> Context<'a> {
    pub(crate) fn unpack(context: &'a str) -> Context<'a> {
        let (id, extras) = match context.split_once(SEPARATOR) {
            Some((id, extras)) => (id, Some(extras)),
            None => (context, None),
        };
        let (before, after) = extras
            .and_then(|extras| extras.split_once(SEPARATOR))
            .unwrap_or(("", ""));
        Context {
            id: (!id.is_empty()).then_some(id),
            before,
            after,
        }
    }

    pub(crate) fn pack(&self) -> String {
        let id = self.id.unwrap_or("");
        if self.before.is_empty() && self.after.is_empty() {
            return id.to_owned();
        }
        [id, self.before, self.after].join(&SEPARATOR.to_string())
    }
}

/// The answer to a message the streamer emitted: a call, or an error line.
pub(crate) fn decoded(message: Message) -> Decoded {
    match message {
        Ok(QValue::Dict(members)) => request(members),
        Ok(_) => Decoded::Answer(error_line(
            None,
            ErrorClass::GenericError,
            "QMP input must be a JSON object",
        )),
        Err(desc) => Decoded::Answer(parse_error_line(&desc)),
    }
}

/// An object's members checked as a request.
fn request(members: Vec<(String, QValue)>) -> Decoded {
    let id = members.iter().find(|(k, _)| k == "id").map(|(_, id)| {
        let mut text = Vec::new();
        id.write_qemu(&mut text);
        // Written ASCII only.
        String::from_utf8(text).unwrap_or_default()
    });
    if let Some(problem) = first_problem(&members) {
        return Decoded::Answer(error_line(
            id.as_deref(),
            ErrorClass::GenericError,
            &problem,
        ));
    }
    let mut command = String::new();
    let mut arguments = None;
    for (key, value) in members {
        match (key.as_str(), value) {
            ("execute", QValue::Str(name)) => command = name,
            ("arguments", args) => {
                let mut text = String::new();
                args.write_compact(&mut text);
                arguments = Some(text);
            }
            _ => {}
        }
    }
    Decoded::Call(ParsedCall {
        command,
        arguments: arguments.unwrap_or_else(|| NO_ARGUMENTS.to_owned()),
        context: id.unwrap_or_default(),
    })
}

/// The first member check a request fails (`qmp_dispatch_check_obj`).
fn first_problem(members: &[(String, QValue)]) -> Option<String> {
    let problem = |(key, value): &(String, QValue)| match (key.as_str(), value) {
        ("execute", QValue::Str(_)) | ("arguments", QValue::Dict(_)) | ("id", _) => None,
        ("execute", _) => Some("QMP input member 'execute' must be a string".to_owned()),
        ("arguments", _) => Some("QMP input member 'arguments' must be an object".to_owned()),
        (other, _) => Some(format!(
            "QMP input member '{}' is unexpected",
            echoed(other)
        )),
    };
    // Which problem is reported depends on QEMU's hash order, worked out
    // only when there is one.
    if members.iter().any(|member| problem(member).is_some()) {
        let order = qdict_order(members.iter().map(|(k, _)| k.as_str()));
        return order.into_iter().find_map(|i| problem(&members[i]));
    }
    if !members.iter().any(|(key, _)| key == "execute") {
        return Some("QMP input lacks member 'execute'".to_owned());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_packs_and_unpacks() {
        let cases = [
            Context::default(),
            Context {
                id: Some("\"a\""),
                ..Context::default()
            },
            Context {
                id: None,
                before: "{\"error\": 1}\n",
                after: "",
            },
            Context {
                id: Some("[1, 2]"),
                before: "x\n",
                after: "y\nz\n",
            },
        ];
        for context in cases {
            let packed = context.pack();
            assert_eq!(Context::unpack(&packed), context, "{packed:?}");
        }
        assert_eq!(Context::default().pack(), "");
        assert_eq!(Context::unpack("42").id, Some("42"));
    }
}
