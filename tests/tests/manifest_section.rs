//! Every built-in plugin's file carries its manifest section, which the
//! agent reads (who the plugin is, what it provides) without running any of
//! the plugin's code. That `init` provides exactly what is declared is
//! checked by the agent when it loads the plugin.

use std::path::Path;

use nova_agent_plugin_api::manifest;
use object::{Object, ObjectSection};

/// The built-in plugins, by directory (= crate suffix = plugin name).
fn builtin_plugins() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.join("Cargo.toml").is_file())
        .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(names.len() > 3, "only {names:?} under {}", dir.display());
    names
}

#[test]
fn every_builtin_plugin_file_declares_its_manifest_and_what_it_provides() {
    for name in builtin_plugins() {
        let so = nova_agent_tests::plugin(&name);
        let bytes = std::fs::read(&so).unwrap_or_else(|e| panic!("{}: {e}", so.display()));
        let elf = object::File::parse(&*bytes).unwrap();
        let section = elf
            .section_by_name(manifest::SECTION)
            .unwrap_or_else(|| panic!("{} has no {} section", so.display(), manifest::SECTION));
        let found = manifest::parse(section.data().unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", so.display()));
        assert_eq!(found.api, manifest::API, "{name}");
        assert_eq!(found.name, name);
        assert_eq!(found.version, env!("CARGO_PKG_VERSION"), "{name}");
        assert!(!found.description.is_empty(), "{name}");
        let declared = found
            .provides
            .unwrap_or_else(|| panic!("{name} does not declare what it provides"));
        let count = declared.exchanges.len()
            + declared.parsers.len()
            + declared.commands.len()
            + declared.gates.len();
        assert!(count > 0, "{name} declares that it provides nothing");
    }
}
