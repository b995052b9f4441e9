//! Test fixture: a plugin whose manifest section lies. The section, written
//! by plugin-api's own macro, says the plugin was built against the current
//! plugin-api and provides the command `lie`; the root module is the one a
//! plugin built against plugin-api 0.1 exports (see the old-api fixture).
//! Reading the section, the agent installs it; loading it at the first call
//! of `lie`, abi_stable's version check refuses it with "plugin-api 0.2
//! expected, plugin built against 0.1; ...".

#![allow(non_local_definitions)] // emitted by abi_stable's derives

use abi_stable::{
    declare_root_module_statics, export_root_module, library::RootModule,
    prefix_type::PrefixTypeTrait, sabi_types::VersionStrings, std_types::RStr, StableAbi,
};

nova_agent_plugin_api::__manifest_section! {
    api: nova_agent_plugin_api::manifest::API,
    name: "lying-fixture",
    version: env!("CARGO_PKG_VERSION"),
    description: "test fixture: a manifest section that lies about its ABI",
    provides: { commands: ["lie"] },
}

#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = OldRootRef)))]
pub struct OldRoot {
    pub name: RStr<'static>,
    pub version: RStr<'static>,
    #[sabi(last_prefix_field)]
    pub description: RStr<'static>,
}

impl RootModule for OldRootRef {
    declare_root_module_statics! {OldRootRef}
    const BASE_NAME: &'static str = "nova_agent_plugin";
    const NAME: &'static str = "nova-agent plugin";
    const VERSION_STRINGS: VersionStrings = VersionStrings::new("0.1.0");
}

#[export_root_module]
pub fn root() -> OldRootRef {
    // Live code naming the section keeps it through the linker's
    // --gc-sections.
    core::hint::black_box(&__NOVA_AGENT_MANIFEST);
    OldRoot {
        name: RStr::from_str("lying-fixture"),
        version: RStr::from_str(env!("CARGO_PKG_VERSION")),
        description: RStr::from_str("test fixture: a manifest section that lies about its ABI"),
    }
    .leak_into_prefix()
}
