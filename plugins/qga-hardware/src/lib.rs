//! The `qga-hardware` plugin: the QGA commands on the guest's hardware,
//! each answering as qemu-ga 7.2 does on Linux.
//!
//! - `guest-network-get-interfaces`: the live interfaces (`getifaddrs`),
//!   with `/proc/net/dev` counters; one difference from qemu-ga, on
//!   purpose: an alias such as `eth0:1` is folded into `eth0` (see
//!   `network`);
//! - `guest-get-vcpus`, `guest-set-vcpus`: `/sys/devices/system/cpu`;
//! - `guest-get-cpustats`: each processor's times from `/proc/stat`, in
//!   milliseconds, the optional counters as the kernel's columns allow;
//! - `guest-get-memory-blocks`, `guest-set-memory-blocks`,
//!   `guest-get-memory-block-info`: `/sys/devices/system/memory`.
//!
//! These read the kernel's live state, as qemu-ga does: `/sys` and `/proc`
//! are not resolved under the agent's `root` (they describe this kernel,
//! not a filesystem tree). Setting a vCPU or a memory block online or
//! offline is a system action: with `apply = false` the write to sysfs is
//! logged and not made, and the answer is the one a successful write gives.
//! The readers take the mount points as paths, so tests run them on
//! crafted trees.
//!
//! What it is not: a network configurator (`resetnetwork` belongs to the
//! `network` plugin), nor a source of anything beyond qemu-ga's answers.
//! It takes no config keys.

use nova_agent_plugin_api::{export_plugin, Host, PluginError, Provides};
use nova_agent_support::config::no_keys;
use serde_json::Value;

mod cpustats;
mod memory;
mod network;
mod sysfs;
mod vcpus;

use cpustats::GetCpuStats;
use memory::{GetMemoryBlockInfo, GetMemoryBlocks, SetMemoryBlocks};
use network::GetInterfaces;
use vcpus::{GetVcpus, SetVcpus};

const SYS: &str = "/sys";
const PROC: &str = "/proc";

fn init(host: Host, config: Value) -> Result<Provides, PluginError> {
    no_keys("qga-hardware", &config)?;
    let sys = || SYS.to_owned();
    let apply = host.apply();
    Ok(Provides::new()
        .command(
            "guest-network-get-interfaces",
            GetInterfaces {
                proc: PROC.to_owned(),
            },
        )
        .command("guest-get-vcpus", GetVcpus { sys: sys() })
        .command(
            "guest-get-cpustats",
            GetCpuStats {
                proc: PROC.to_owned(),
            },
        )
        .command("guest-set-vcpus", SetVcpus { sys: sys(), apply })
        .command("guest-get-memory-blocks", GetMemoryBlocks { sys: sys() })
        .command(
            "guest-set-memory-blocks",
            SetMemoryBlocks { sys: sys(), apply },
        )
        .command(
            "guest-get-memory-block-info",
            GetMemoryBlockInfo { sys: sys() },
        ))
}

export_plugin! {
    name: "qga-hardware",
    description: "QGA commands on network interfaces, vCPUs, CPU times and memory blocks",
    provides: {
        commands: [
            "guest-network-get-interfaces",
            "guest-get-vcpus",
            "guest-get-cpustats",
            "guest-set-vcpus",
            "guest-get-memory-blocks",
            "guest-set-memory-blocks",
            "guest-get-memory-block-info",
        ],
    },
    init: init,
}

#[cfg(test)]
mod tests {
    use nova_agent_plugin_api::testing::{TestAgent, TestHost};
    use serde_json::json;

    #[test]
    fn it_provides_the_seven_commands_and_takes_no_keys() {
        let agent = TestAgent::new(TestHost::new("/"))
            .with_plugin(super::init, json!({}))
            .unwrap();
        let names: Vec<String> = agent
            .host()
            .commands()
            .into_iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(
            names,
            [
                "guest-get-cpustats",
                "guest-get-memory-block-info",
                "guest-get-memory-blocks",
                "guest-get-vcpus",
                "guest-network-get-interfaces",
                "guest-set-memory-blocks",
                "guest-set-vcpus",
            ]
        );
        let outcome = agent.run("guest-get-vcpus", "{}");
        assert!(
            outcome.parsed_value().is_some_and(|v| v.is_array()),
            "{outcome:?}"
        );
        let error = TestAgent::new(TestHost::new("/"))
            .with_plugin(super::init, json!({"sys": "/tmp"}))
            .err()
            .unwrap();
        assert_eq!(
            error.message(),
            "[plugins.qga-hardware] takes no keys; found 'sys'"
        );
    }
}
