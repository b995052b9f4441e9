//! The arguments of a command line, and the command line as logs and errors
//! show it: secrets masked, arguments shell-quoted where needed, so that a
//! line can be read back unambiguously.

use std::ffi::OsStr;
use std::fmt;

/// What a secret argument is shown as.
const MASK: &str = "<secret>";

/// One argument of a command line; `Secret` ones are shown as `<secret>` in
/// every log line and error message, and by `Debug`.
#[derive(Clone)]
pub enum Arg {
    Plain(String),
    Secret(String),
}

impl Arg {
    /// An argument that must never be logged (a password, an activation key).
    pub fn secret(value: impl Into<String>) -> Arg {
        Arg::Secret(value.into())
    }

    /// The value passed to the program.
    pub(crate) fn value(&self) -> &OsStr {
        match self {
            Arg::Plain(value) | Arg::Secret(value) => OsStr::new(value),
        }
    }

    /// The argument as logs show it.
    fn shown(&self) -> String {
        match self {
            Arg::Plain(value) => quote(value),
            Arg::Secret(_) => MASK.to_owned(),
        }
    }
}

impl From<&str> for Arg {
    fn from(value: &str) -> Arg {
        Arg::Plain(value.to_owned())
    }
}

impl From<String> for Arg {
    fn from(value: String) -> Arg {
        Arg::Plain(value)
    }
}

impl fmt::Debug for Arg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Arg::Plain(value) => f.debug_tuple("Plain").field(value).finish(),
            Arg::Secret(_) => f
                .debug_tuple("Secret")
                .field(&format_args!("{MASK}"))
                .finish(),
        }
    }
}

/// `program` and `args` as one line for logs and errors, secrets masked.
pub(crate) fn command_line(program: &str, args: &[Arg]) -> String {
    let mut line = quote(program);
    for arg in args {
        line.push(' ');
        line.push_str(&arg.shown());
    }
    line
}

/// `word` as a shell would need it: as is when it holds only characters no
/// shell treats specially, else in single quotes (a `'` inside becoming `'\''`).
fn quote(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        return word.to_owned();
    }
    format!("'{}'", word.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_words_are_shown_as_they_are() {
        let args = ["-a".into(), "/etc/shadow".into(), "key=value,x@y:1%".into()];
        assert_eq!(
            command_line("usermod", &args),
            "usermod -a /etc/shadow key=value,x@y:1%"
        );
    }

    #[test]
    fn spaces_quotes_and_empty_words_are_quoted() {
        let args = [
            "two words".into(),
            "it's".into(),
            "".into(),
            "a\"b".into(),
            "$HOME".into(),
        ];
        assert_eq!(
            command_line("echo", &args),
            r#"echo 'two words' 'it'\''s' '' 'a"b' '$HOME'"#
        );
    }

    #[test]
    fn secrets_are_masked_in_the_line_and_in_debug() {
        let args = ["--activationkey".into(), Arg::secret("hunter2 with space")];
        let line = command_line("rhnreg_ks", &args);
        assert_eq!(line, "rhnreg_ks --activationkey <secret>");
        let debug = format!("{args:?}");
        assert_eq!(debug, r#"[Plain("--activationkey"), Secret(<secret>)]"#);
        assert_eq!(args[1].value(), "hunter2 with space");
    }
}
