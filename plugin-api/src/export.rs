//! `export_plugin!` and the hidden items its expansion names.

use abi_stable::{prefix_type::PrefixTypeTrait, std_types::RStr};

use crate::ffi::{InitFn, PluginRoot, PluginRootRef};

/// The symbol abi_stable looks up in every library it loads. Spelled out here
/// (a test checks it against abi_stable's constant) so that plugin crates need
/// no direct dependency on abi_stable.
#[doc(hidden)]
#[macro_export]
macro_rules! __root_module_symbol {
    () => {
        "_1as_0lib_1header_0root_bmodule_bloader"
    };
}

/// Exports a plugin: who it is, what it provides, and its `init` function.
///
/// ```
/// # use nova_agent_plugin_api::{Host, PluginError, Provides};
/// # fn init(_: Host, _: serde_json::Value) -> Result<Provides, PluginError> { Ok(Provides::new()) }
/// nova_agent_plugin_api::export_plugin! {
///     name: "hello",
///     description: "says hello",
///     // Optional; each list optional, in this order.
///     provides: { exchanges: [], parsers: [], commands: ["hello"], gates: [] },
///     init: init,   // fn(Host, serde_json::Value) -> Result<Provides, PluginError>
/// }
/// # let manifest = nova_agent_plugin_api::manifest::parse(&__NOVA_AGENT_MANIFEST).unwrap();
/// # assert_eq!(manifest.provides.unwrap().commands, ["hello"]);
/// ```
///
/// The version is the plugin crate's `CARGO_PKG_VERSION`. `init` receives the
/// plugin's `[plugins.<name>]` table as a JSON object (empty when absent) and
/// returns what the plugin provides, each object named once. It runs under
/// the panic guard, after the log bridge is installed; it must not open a
/// transport or touch the system.
///
/// `provides` names every object `init` returns, by kind. The macro writes
/// them, with the name, version and description, into the file's manifest
/// section ([`manifest`](crate::manifest)), which the agent reads without
/// running the plugin's code: it loads a plugin only when one of its objects
/// is first needed, and refuses a plugin whose `init` provides other names
/// than it declared. Without `provides` (plugins written for plugin-api
/// 0.2.1 and older) the agent has to load the plugin to know them:
///
/// ```
/// # use nova_agent_plugin_api::{Host, PluginError, Provides};
/// # fn init(_: Host, _: serde_json::Value) -> Result<Provides, PluginError> { Ok(Provides::new()) }
/// nova_agent_plugin_api::export_plugin! { name: "hello", description: "says hello", init: init }
/// # let manifest = nova_agent_plugin_api::manifest::parse(&__NOVA_AGENT_MANIFEST).unwrap();
/// # assert_eq!((manifest.name.as_str(), manifest.provides), ("hello", None));
/// ```
#[macro_export]
macro_rules! export_plugin {
    (
        name: $name:expr,
        description: $description:expr,
        $(provides: { $($provides:tt)* },)?
        init: $init:path $(,)?
    ) => {
        $crate::__manifest_section! {
            api: $crate::manifest::API,
            name: $name,
            version: env!("CARGO_PKG_VERSION"),
            description: $description
            $(, provides: { $($provides)* })?
        }

        #[doc(hidden)]
        #[export_name = $crate::__root_module_symbol!()]
        pub static __NOVA_AGENT_PLUGIN_HEADER: $crate::__private::LibHeader = {
            extern "C" fn __nova_agent_plugin_init(
                host: $crate::ffi::HostBox,
                config_json: $crate::__private::RStr<'_>,
            ) -> $crate::ffi::FfiResult<$crate::ffi::Instance> {
                $crate::__private::run_init(host, config_json, $init)
            }
            fn __nova_agent_plugin_root() -> $crate::ffi::PluginRootRef {
                // Live code naming the manifest keeps its section through
                // LTO and the linker's --gc-sections.
                ::core::hint::black_box(&__NOVA_AGENT_MANIFEST);
                $crate::__private::root_module(
                    $crate::__private::Manifest {
                        name: $name,
                        version: env!("CARGO_PKG_VERSION"),
                        description: $description,
                    },
                    __nova_agent_plugin_init,
                )
            }
            extern "C" fn __nova_agent_plugin_loader() -> $crate::__private::RootModuleResult {
                $crate::__private::__call_root_module_loader(__nova_agent_plugin_root)
            }
            // SAFETY: `__nova_agent_plugin_loader` returns the root module of type
            // `PluginRootRef`, the type named here.
            unsafe {
                $crate::__private::LibHeader::from_constructor::<$crate::ffi::PluginRootRef>(
                    __nova_agent_plugin_loader,
                    $crate::__private::CheckTypeLayout::Yes,
                )
            }
        };
    };
}

#[doc(hidden)]
pub struct Manifest {
    pub name: &'static str,
    pub version: &'static str,
    pub description: &'static str,
}

#[doc(hidden)]
pub fn root_module(manifest: Manifest, init: InitFn) -> PluginRootRef {
    PluginRoot {
        name: RStr::from_str(manifest.name),
        version: RStr::from_str(manifest.version),
        description: RStr::from_str(manifest.description),
        init,
    }
    .leak_into_prefix()
}

#[cfg(test)]
mod tests {
    #[test]
    fn root_module_symbol_is_abi_stables() {
        assert_eq!(
            crate::__root_module_symbol!(),
            abi_stable::library::ROOT_MODULE_LOADER_NAME
        );
    }
}
