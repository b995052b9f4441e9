//! Test fixture: a root module that claims the current plugin-api version
//! (0.2) but whose types are not plugin-api's (as if built from a forked or
//! miscompiled copy). The version check passes; the agent's layout check
//! must refuse it with a one-line reason. Keep the version below in step
//! with plugin-api's.

#![allow(non_local_definitions)] // emitted by abi_stable's derives

use abi_stable::{
    declare_root_module_statics, export_root_module, library::RootModule,
    prefix_type::PrefixTypeTrait, sabi_types::VersionStrings, std_types::RStr, StableAbi,
};

#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginRootRef)))]
pub struct PluginRoot {
    pub name: RStr<'static>,
    #[sabi(last_prefix_field)]
    pub version: u32,
}

impl RootModule for PluginRootRef {
    declare_root_module_statics! {PluginRootRef}
    const BASE_NAME: &'static str = "nova_agent_plugin";
    const NAME: &'static str = "nova-agent plugin";
    const VERSION_STRINGS: VersionStrings = VersionStrings::new("0.2.0");
}

#[export_root_module]
pub fn root() -> PluginRootRef {
    PluginRoot {
        name: RStr::from_str("skewed-abi"),
        version: 1,
    }
    .leak_into_prefix()
}
