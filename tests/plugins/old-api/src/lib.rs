//! Test fixture: what a plugin built against plugin-api 0.1 looks like to an
//! agent built against 0.2. abi_stable compares the root module's version
//! strings before anything else, so this root module carries plugin-api's
//! name and the version "0.1.0", and the agent refuses it with "plugin-api
//! 0.2 expected, plugin built against 0.1; rebuild it against
//! nova-agent-plugin-api 0.2". Its layout (0.1's first fields) is never
//! reached.

#![allow(non_local_definitions)] // emitted by abi_stable's derives

use abi_stable::{
    declare_root_module_statics, export_root_module, library::RootModule,
    prefix_type::PrefixTypeTrait, sabi_types::VersionStrings, std_types::RStr, StableAbi,
};

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
    OldRoot {
        name: RStr::from_str("old-api"),
        version: RStr::from_str("1.0.0"),
        description: RStr::from_str("test fixture: a plugin built against plugin-api 0.1"),
    }
    .leak_into_prefix()
}
