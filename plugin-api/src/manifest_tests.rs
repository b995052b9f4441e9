use super::*;

fn encoded<const N: usize>(records: &[(&str, &str)]) -> Vec<u8> {
    encode::<N>(records).to_vec()
}

fn section(records: &[(&str, &str)]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    for (key, value) in records {
        out.extend_from_slice(format!("{key}={value}\0").as_bytes());
    }
    out
}

const BASIC: &[(&str, &str)] = &[
    ("format", "1"),
    ("api", "0.2.2"),
    ("name", "hello"),
    ("version", "1.0.0"),
    ("description", "says a=b, and hello"),
];

#[test]
fn a_manifest_without_provides_round_trips() {
    let bytes = encoded::<{ encoded_len(BASIC) }>(BASIC);
    assert_eq!(bytes, section(BASIC));
    assert_eq!(
        parse(&bytes).unwrap(),
        FileManifest {
            api: "0.2.2".into(),
            name: "hello".into(),
            version: "1.0.0".into(),
            description: "says a=b, and hello".into(),
            provides: None,
        }
    );
}

const DECLARED: &[(&str, &str)] = &[
    ("format", "1"),
    ("api", "0.2.2"),
    ("name", "qga-fs"),
    ("version", "2.0.0"),
    ("description", ""),
    ("provides", "declared"),
    ("exchange", "serial"),
    ("parser", "qga"),
    ("command", "guest-fsfreeze-freeze"),
    ("command", "guest-fsfreeze-thaw"),
    ("gate", "frozen"),
];

#[test]
fn a_manifest_with_provides_round_trips() {
    let bytes = encoded::<{ encoded_len(DECLARED) }>(DECLARED);
    let manifest = parse(&bytes).unwrap();
    assert_eq!(manifest.name, "qga-fs");
    assert_eq!(manifest.description, "");
    assert_eq!(
        manifest.provides,
        Some(Declared {
            exchanges: vec!["serial".into()],
            parsers: vec!["qga".into()],
            commands: vec!["guest-fsfreeze-freeze".into(), "guest-fsfreeze-thaw".into()],
            gates: vec!["frozen".into()],
        })
    );
}

#[test]
fn declared_with_nothing_is_not_undeclared() {
    let bytes = section(&[
        ("format", "1"),
        ("api", "0.2.2"),
        ("name", "n"),
        ("version", "1"),
        ("provides", "declared"),
    ]);
    assert_eq!(parse(&bytes).unwrap().provides, Some(Declared::default()));
}

#[test]
fn unknown_keys_and_trailing_padding_are_ignored() {
    let mut bytes = section(&[
        ("format", "1"),
        ("future-key", "whatever=it is"),
        ("api", "0.2.2"),
        ("name", "n"),
        ("version", "1"),
    ]);
    bytes.extend_from_slice(&[0; 7]);
    let manifest = parse(&bytes).unwrap();
    assert_eq!((manifest.name.as_str(), manifest.provides), ("n", None));
}

#[test]
fn malformed_sections_are_refused_with_a_reason() {
    let base = [
        ("format", "1"),
        ("api", "0.2.2"),
        ("name", "n"),
        ("version", "1"),
    ];
    let without = |key: &str| {
        let records: Vec<_> = base.iter().copied().filter(|(k, _)| *k != key).collect();
        section(&records)
    };
    let with = |extra: &[(&str, &str)]| {
        let mut records = base.to_vec();
        records.extend_from_slice(extra);
        section(&records)
    };
    let mut bad_magic = section(&base);
    bad_magic[0] = b'X';
    let mut no_equals = section(&base);
    no_equals.extend_from_slice(b"junk\0");
    let mut unterminated = section(&base);
    unterminated.pop();
    let mut not_utf8 = section(&base);
    not_utf8.extend_from_slice(b"description=\xff\0");
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (Vec::new(), "it does not start with the manifest magic"),
        (bad_magic, "it does not start with the manifest magic"),
        (no_equals, "record 5 has no '='"),
        (unterminated, "its last record is not terminated by a NUL"),
        (not_utf8, "record 5 is not UTF-8"),
        (without("format"), "it has no format= record"),
        (without("api"), "it has no api= record"),
        (without("name"), "it has no name= record"),
        (without("version"), "it has no version= record"),
        (with(&[("format", "1")]), "it has two format= records"),
        (
            with(&[("command", "a")]),
            "a command= record comes before provides=declared",
        ),
        (
            with(&[("provides", "declared"), ("gate", "g"), ("gate", "g")]),
            "gate g is declared twice",
        ),
        (
            with(&[("provides", "maybe")]),
            "provides=maybe is not understood",
        ),
        (
            section(&[
                ("format", "2"),
                ("api", "0.2.2"),
                ("name", "n"),
                ("version", "1"),
            ]),
            "its format 2 is not supported (this reader knows format 1)",
        ),
    ];
    for (bytes, reason) in cases {
        assert_eq!(parse(&bytes), Err(reason.to_owned()));
    }
}

mod by_hand {
    crate::__manifest_section! {
        api: "0.2.2",
        name: "x",
        version: "1",
        description: "d",
        commands: ["a", "b"],
        gates: ["g"],
    }
}

mod export {
    fn init(
        _host: crate::Host,
        _config: serde_json::Value,
    ) -> Result<crate::Provides, crate::PluginError> {
        Ok(crate::Provides::new())
    }

    crate::export_plugin! {
        name: "sample",
        description: "a sample, with = and \"quotes\"",
        provides: {
            exchanges: ["unix-socket"],
            parsers: ["json", "qga",],
            commands: [concat!("guest-", "ping")],
        },
        init: init,
    }

    pub(super) fn section() -> &'static [u8] {
        &__NOVA_AGENT_MANIFEST
    }
}

mod by_hand_undeclared {
    crate::__manifest_section! { api: "0.1.0", name: "y", version: "2", description: "" }
}

#[test]
fn the_hand_written_section_parses_back() {
    let manifest = parse(&by_hand::__NOVA_AGENT_MANIFEST).unwrap();
    assert_eq!(
        (
            manifest.api.as_str(),
            manifest.name.as_str(),
            manifest.version.as_str()
        ),
        ("0.2.2", "x", "1")
    );
    let declared = manifest.provides.unwrap();
    assert_eq!(declared.commands, ["a", "b"]);
    assert_eq!(declared.gates, ["g"]);
    assert!(declared.exchanges.is_empty() && declared.parsers.is_empty());
}

#[test]
fn export_plugin_writes_what_was_declared() {
    assert_eq!(
        parse(export::section()).unwrap(),
        FileManifest {
            api: env!("CARGO_PKG_VERSION").into(),
            name: "sample".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "a sample, with = and \"quotes\"".into(),
            provides: Some(Declared {
                exchanges: vec!["unix-socket".into()],
                parsers: vec!["json".into(), "qga".into()],
                commands: vec!["guest-ping".into()],
                gates: vec![],
            }),
        }
    );
}

#[test]
fn a_section_without_provides_says_so() {
    let manifest = parse(&by_hand_undeclared::__NOVA_AGENT_MANIFEST).unwrap();
    assert_eq!(
        (manifest.api.as_str(), manifest.name.as_str()),
        ("0.1.0", "y")
    );
    assert_eq!(manifest.provides, None);
}
