//! Test fixture: what a plugin built against an older plugin-api (0.0.x)
//! looks like to the agent. abi_stable compares the root module's version
//! strings before anything else, so this root module carries plugin-api's
//! name and the version "0.0.9"; its layout is never reached.

#![allow(non_local_definitions)] // emitted by abi_stable's derives

use abi_stable::{
    declare_root_module_statics, export_root_module, library::RootModule,
    prefix_type::PrefixTypeTrait, sabi_types::VersionStrings, std_types::RStr, StableAbi,
};

#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = OldRootRef)))]
pub struct OldRoot {
    #[sabi(last_prefix_field)]
    pub name: RStr<'static>,
}

impl RootModule for OldRootRef {
    declare_root_module_statics! {OldRootRef}
    const BASE_NAME: &'static str = "nova_agent_plugin";
    const NAME: &'static str = "nova-agent plugin";
    const VERSION_STRINGS: VersionStrings = VersionStrings::new("0.0.9");
}

#[export_root_module]
pub fn root() -> OldRootRef {
    OldRoot {
        name: RStr::from_str("old-api"),
    }
    .leak_into_prefix()
}
