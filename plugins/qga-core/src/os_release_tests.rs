//! The os-release reader against what qemu-ga 7.2 reported for the same
//! files (run with `QGA_OS_RELEASE=<file>`).

use std::collections::HashMap;

use super::{parse, read, unquote};

fn unquoted(text: &str) -> HashMap<String, String> {
    parse(text)
        .unwrap()
        .into_iter()
        .map(|(key, value)| (key, unquote(&value)))
        .collect()
}

#[test]
fn values_are_unquoted_as_qemu_ga_does_it() {
    let file = concat!(
        "# comment\n",
        "\n",
        "  ID=deb ian;x\n",
        "NAME=\"Foo \\\"Bar\\\" \\$x \\\\ \\a `q` end\" trailing\n",
        "PRETTY_NAME='single quoted value'\n",
        "VERSION =  \"12 (x)\"\n",
        "VERSION_ID=\n",
        "VARIANT=\"unterminated value\n",
        "VARIANT_ID=a;b c\n",
        "NAME[de]=x\n",
    );
    let keys = unquoted(file);
    let expected = [
        ("ID", "deb"),
        ("NAME", "Foo \"Bar\" $x \\ \\a `q` end"),
        // Only double quotes are quotes to qemu-ga.
        ("PRETTY_NAME", "'single"),
        ("VERSION", "12 (x)"),
        ("VERSION_ID", ""),
        ("VARIANT", "unterminated valuee"),
        ("VARIANT_ID", "a"),
        ("NAME[de]", "x"),
    ];
    for (key, value) in expected {
        assert_eq!(keys.get(key).map(String::as_str), Some(value), "{key}");
    }
    assert_eq!(keys.len(), expected.len(), "{keys:?}");
}

#[test]
fn an_unterminated_value_keeps_as_many_original_bytes_as_it_dropped() {
    // Two escapes dropped two backslashes, plus the opening quote: three
    // bytes of the original stay behind the text.
    assert_eq!(unquote(r#""a\"b\"c"#), r#"a"b"c\"c"#);
    assert_eq!(unquote(r#""a\"b"#), r#"a"b"b"#);
    assert_eq!(unquote(r#""abc\"#), r"abc\\");
    assert_eq!(unquote(r#""\\\\""#), r"\\");
    assert_eq!(
        unquote("\"\u{e9}"),
        "\u{e9}\u{fffd}",
        "half a character stays behind"
    );
    assert_eq!(unquote(r"x\ y"), r"x\");
    assert_eq!(unquote(r#""a"b" c"#), "a");
}

#[test]
fn lines_that_glib_refuses_fail_the_whole_file() {
    for bad in [
        "ID=a\nbogus line\n",
        "ID=a\n=z\n",
        "ID=a\nKEY ]=x\n",
        "ID=a\nKEY[de=x\n",
        "ID=a\n[]\n",
        "ID=a\nNAME [de]=x\n",
        "Encoding=latin1\n",
    ] {
        assert!(parse(bad).is_err(), "{bad:?}");
    }
    assert!(parse("Encoding=utf-8\nID=a\n").is_ok());
}

#[test]
fn carriage_returns_groups_and_repeats_are_read_as_glib_reads_them() {
    let keys = unquoted("ID=a\r\nNAME=\"x y\"\r\n");
    assert_eq!(keys["ID"], "a");
    assert_eq!(keys["NAME"], "x y");

    let keys = unquoted("ID=a\n[Other]\nNAME=n\n[os-release]  \nVERSION=v\n");
    assert_eq!(keys.get("NAME"), None, "keys of another group are not read");
    assert_eq!(keys["VERSION"], "v");

    let keys = unquoted("ID=a\n ID=b\n");
    assert_eq!(keys["ID"], "b", "the last one wins");

    let keys = unquoted("ID=a\0\nbogus line\n");
    assert_eq!(keys["ID"], "a", "nothing after a NUL is read");

    // GLib's whitespace has no vertical tab: it stays in keys and values.
    let keys = unquoted("\x0bID=a\nVERSION\x0b=y\nVARIANT=\t x\tz\nVARIANT_ID=\x0bz\n");
    assert_eq!(keys.get("ID"), None);
    assert_eq!(keys.get("VERSION"), None);
    assert_eq!(keys["VARIANT"], "x\tz");
    assert_eq!(keys["VARIANT_ID"], "\x0bz");
}

#[test]
fn etc_is_read_first_and_usr_lib_when_etc_is_missing_or_unparsable() {
    let root = tempfile::tempdir().unwrap();
    let etc = root.path().join("etc/os-release");
    let usr = root.path().join("usr/lib/os-release");
    std::fs::create_dir_all(etc.parent().unwrap()).unwrap();
    std::fs::create_dir_all(usr.parent().unwrap()).unwrap();

    assert_eq!(read(root.path()), None);
    std::fs::write(&usr, "ID=usr\n").unwrap();
    assert_eq!(read(root.path()).unwrap()["ID"], "usr");
    std::fs::write(&etc, "ID=etc\n").unwrap();
    assert_eq!(read(root.path()).unwrap()["ID"], "etc");
    std::fs::write(&etc, "not a key file\n").unwrap();
    assert_eq!(read(root.path()).unwrap()["ID"], "usr");
    std::fs::write(&etc, b"ID=\xff\n").unwrap();
    assert_eq!(read(root.path()).unwrap()["ID"], "usr", "not UTF-8");
}
