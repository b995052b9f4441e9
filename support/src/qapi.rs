//! Strict checking of a QGA command's `arguments`, worded as QEMU's QAPI
//! input visitor words it, so that a bad request gets qemu-ga's answer.
//!
//! A command takes its members in its schema's order, then calls
//! [`Args::finish`]: the first problem in that order is reported, and a
//! member nobody took is "unexpected" only after every declared one passed.
//! `null` is a value, not an absence: an optional member given as `null` is a
//! type error, as in QEMU.

use nova_agent_plugin_api::CommandError;
use serde_json::{Map, Value};

/// The members of one QAPI object, being taken one by one.
#[derive(Debug)]
pub struct Args {
    members: Map<String, Value>,
    /// How a member's name is shown: `""` at the top, `vcpus[0].` inside.
    prefix: String,
}

impl Args {
    /// The `arguments` object a parser handed over as JSON text.
    pub fn parse(arguments: &str) -> Result<Args, CommandError> {
        match serde_json::from_str::<Value>(arguments) {
            Ok(Value::Object(members)) => Ok(Args {
                members,
                prefix: String::new(),
            }),
            Ok(_) | Err(_) => Err(CommandError::bad_arguments(
                "QMP input member 'arguments' must be an object",
            )),
        }
    }

    pub fn int(&mut self, name: &str) -> Result<i64, CommandError> {
        self.required(name, Self::opt_int)
    }

    /// A QAPI `int`: any JSON integer that fits an `i64`.
    pub fn opt_int(&mut self, name: &str) -> Result<Option<i64>, CommandError> {
        self.take(name, "integer", |v| v.as_i64())
    }

    pub fn str(&mut self, name: &str) -> Result<String, CommandError> {
        self.required(name, Self::opt_str)
    }

    pub fn opt_str(&mut self, name: &str) -> Result<Option<String>, CommandError> {
        self.take(name, "string", |v| match v {
            Value::String(s) => Some(s),
            _ => None,
        })
    }

    pub fn bool(&mut self, name: &str) -> Result<bool, CommandError> {
        self.required(name, Self::opt_bool)
    }

    pub fn opt_bool(&mut self, name: &str) -> Result<Option<bool>, CommandError> {
        self.take(name, "boolean", |v| v.as_bool())
    }

    pub fn number(&mut self, name: &str) -> Result<f64, CommandError> {
        self.required(name, Self::opt_number)
    }

    /// A QAPI `number`: any JSON number, integers included.
    pub fn opt_number(&mut self, name: &str) -> Result<Option<f64>, CommandError> {
        self.take(name, "number", |v| v.as_f64())
    }

    pub fn str_list(&mut self, name: &str) -> Result<Vec<String>, CommandError> {
        self.required(name, Self::opt_str_list)
    }

    /// A `['str']`; an item of another type is named `keys[2]`.
    pub fn opt_str_list(&mut self, name: &str) -> Result<Option<Vec<String>>, CommandError> {
        let Some(items) = self.opt_list(name)? else {
            return Ok(None);
        };
        let mut strings = Vec::with_capacity(items.len());
        for (index, item) in items.into_iter().enumerate() {
            match item {
                Value::String(s) => strings.push(s),
                _ => return Err(self.type_error(&format!("{name}[{index}]"), "string")),
            }
        }
        Ok(Some(strings))
    }

    pub fn object_list(&mut self, name: &str) -> Result<Vec<Args>, CommandError> {
        self.required(name, Self::opt_object_list)
    }

    /// A list of structs, each to be taken member by member and finished;
    /// their members are named `vcpus[0].logical-id`.
    pub fn opt_object_list(&mut self, name: &str) -> Result<Option<Vec<Args>>, CommandError> {
        let Some(items) = self.opt_list(name)? else {
            return Ok(None);
        };
        let mut objects = Vec::with_capacity(items.len());
        for (index, item) in items.into_iter().enumerate() {
            let path = format!("{name}[{index}]");
            match item {
                Value::Object(members) => objects.push(Args {
                    members,
                    prefix: format!("{}{path}.", self.prefix),
                }),
                _ => return Err(self.type_error(&path, "object")),
            }
        }
        Ok(Some(objects))
    }

    /// A member taken as it is, for QAPI alternates (`int` or an enum name).
    pub fn opt_raw(&mut self, name: &str) -> Result<Option<Value>, CommandError> {
        Ok(self.members.remove(name))
    }

    /// Fails on the first member no getter took.
    pub fn finish(self) -> Result<(), CommandError> {
        match self.members.keys().next() {
            // The name is the request's, of any size.
            Some(extra) => Err(CommandError::bad_arguments(format!(
                "Parameter '{}{}' is unexpected",
                self.prefix,
                crate::echo::echoed(extra)
            ))),
            None => Ok(()),
        }
    }

    /// The error QEMU gives for a member of the wrong type, e.g. for an enum
    /// member whose string is not one of its values.
    pub fn type_error(&self, name: &str, expected: &str) -> CommandError {
        CommandError::bad_arguments(format!(
            "Invalid parameter type for '{}{name}', expected: {expected}",
            self.prefix
        ))
    }

    fn opt_list(&mut self, name: &str) -> Result<Option<Vec<Value>>, CommandError> {
        self.take(name, "array", |v| match v {
            Value::Array(items) => Some(items),
            _ => None,
        })
    }

    fn take<T>(
        &mut self,
        name: &str,
        expected: &str,
        convert: impl FnOnce(Value) -> Option<T>,
    ) -> Result<Option<T>, CommandError> {
        match self.members.remove(name) {
            None => Ok(None),
            Some(value) => convert(value)
                .map(Some)
                .ok_or_else(|| self.type_error(name, expected)),
        }
    }

    fn required<T>(
        &mut self,
        name: &str,
        optional: impl FnOnce(&mut Self, &str) -> Result<Option<T>, CommandError>,
    ) -> Result<T, CommandError> {
        optional(self, name)?.ok_or_else(|| {
            CommandError::bad_arguments(format!("Parameter '{}{name}' is missing", self.prefix))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Args;
    use nova_agent_plugin_api::ErrorKind;

    fn message<T: std::fmt::Debug>(
        result: Result<T, nova_agent_plugin_api::CommandError>,
    ) -> String {
        let error = result.unwrap_err();
        assert_eq!(error.kind, ErrorKind::BadArguments);
        error.message
    }

    #[test]
    fn an_int_must_be_present_and_fit_an_i64() {
        assert_eq!(Args::parse(r#"{"id":-5}"#).unwrap().int("id").unwrap(), -5);
        let max = Args::parse(r#"{"id":9223372036854775807}"#)
            .unwrap()
            .int("id");
        assert_eq!(max.unwrap(), i64::MAX);
        for bad in [
            r#"{"id":18446744073709551615}"#,
            r#"{"id":1.5}"#,
            r#"{"id":"x"}"#,
            r#"{"id":null}"#,
        ] {
            assert_eq!(
                message(Args::parse(bad).unwrap().int("id")),
                "Invalid parameter type for 'id', expected: integer",
                "{bad}"
            );
        }
        assert_eq!(
            message(Args::parse("{}").unwrap().int("id")),
            "Parameter 'id' is missing"
        );
    }

    #[test]
    fn an_optional_member_may_be_absent_but_not_null() {
        let mut args = Args::parse("{}").unwrap();
        assert_eq!(args.opt_int("time").unwrap(), None);
        assert_eq!(args.opt_str("mode").unwrap(), None);
        assert_eq!(
            message(Args::parse(r#"{"time":null}"#).unwrap().opt_int("time")),
            "Invalid parameter type for 'time', expected: integer"
        );
    }

    #[test]
    fn each_type_names_itself_in_qemus_words() {
        let mut args = Args::parse(r#"{"a":1,"b":1,"c":1,"d":1,"e":"x"}"#).unwrap();
        assert!(message(args.str("a")).ends_with("expected: string"));
        assert!(message(args.bool("b")).ends_with("expected: boolean"));
        assert!(message(args.str_list("c")).ends_with("expected: array"));
        assert!(message(args.object_list("d")).ends_with("expected: array"));
        assert!(message(args.number("e")).ends_with("expected: number"));
        assert_eq!(Args::parse(r#"{"n":2}"#).unwrap().number("n").unwrap(), 2.0);
    }

    #[test]
    fn a_member_nobody_took_is_unexpected_only_at_the_end() {
        let mut args = Args::parse(r#"{"id":"x","foo":1}"#).unwrap();
        assert!(message(args.int("id")).starts_with("Invalid parameter type"));
        let mut args = Args::parse(r#"{"id":1,"foo":1}"#).unwrap();
        assert_eq!(args.int("id").unwrap(), 1);
        assert_eq!(message(args.finish()), "Parameter 'foo' is unexpected");
        let mut args = Args::parse(r#"{"id":1}"#).unwrap();
        args.int("id").unwrap();
        args.finish().unwrap();
        let long = format!(r#"{{"{}":1}}"#, "x".repeat(1 << 20));
        let message = message(Args::parse(&long).unwrap().finish());
        assert_eq!(
            message,
            format!("Parameter '{}...' is unexpected", "x".repeat(64))
        );
    }

    #[test]
    fn list_items_and_nested_members_are_named_by_their_path() {
        let mut args = Args::parse(r#"{"keys":["a",2]}"#).unwrap();
        assert_eq!(
            message(args.str_list("keys")),
            "Invalid parameter type for 'keys[1]', expected: string"
        );
        let text = r#"{"vcpus":[{"logical-id":0,"online":true},{"online":"no","x":1}]}"#;
        let mut items = Args::parse(text).unwrap().object_list("vcpus").unwrap();
        assert_eq!(items[0].int("logical-id").unwrap(), 0);
        assert!(items[0].bool("online").unwrap());
        assert_eq!(
            message(items[1].int("logical-id")),
            "Parameter 'vcpus[1].logical-id' is missing"
        );
        assert_eq!(
            message(items[1].bool("online")),
            "Invalid parameter type for 'vcpus[1].online', expected: boolean"
        );
        items[1].members.remove("online");
        let last = items.pop().unwrap();
        assert_eq!(
            message(last.finish()),
            "Parameter 'vcpus[1].x' is unexpected"
        );
        let bad = Args::parse(r#"{"vcpus":[1]}"#)
            .unwrap()
            .object_list("vcpus");
        assert_eq!(
            message(bad),
            "Invalid parameter type for 'vcpus[0]', expected: object"
        );
    }

    #[test]
    fn arguments_that_are_not_an_object_are_refused() {
        for text in ["[]", "null", "", "1"] {
            assert!(Args::parse(text).is_err(), "{text}");
        }
    }
}
