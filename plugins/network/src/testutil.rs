//! Test helpers: the seed's own test vectors (copied into `testdata/`), a
//! network model built from a vector's normalized input, and a sandbox root.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde_json::Value;

use crate::model::{prefix_of, Hostname, Interface, Ip4, Ip6, Label, Network, Route};

/// The seed's vector `id` (panics if there is none).
pub fn vector(id: &str) -> Value {
    let all: Vec<Value> =
        serde_json::from_str(include_str!("../testdata/seed-test-vectors.json")).unwrap();
    all.into_iter()
        .find(|v| v["id"] == id)
        .unwrap_or_else(|| panic!("no vector {id}"))
}

/// A network from a vector's `input.interfaces` (the seed's normalized
/// form: `ip4s[].address/netmask`, `ip6s[].address/prefixlen`, `gateway4`,
/// `gateway6`, `routes[].network/netmask/gateway`, `dns`, `label`, `mac`)
/// and `input.hostname` (default `example`). Interfaces sorted by name.
pub fn network_from(input: &Value) -> Network {
    let hostname = input["hostname"].as_str().unwrap_or("example");
    let mut interfaces: Vec<Interface> = input["interfaces"]
        .as_object()
        .map(|map| map.iter().map(|(name, v)| interface(name, v)).collect())
        .unwrap_or_default();
    interfaces.sort_by(|a, b| a.name.cmp(&b.name));
    Network {
        hostname: Hostname::new(hostname).unwrap(),
        interfaces,
    }
}

fn interface(name: &str, v: &Value) -> Interface {
    let list = |key: &str| v[key].as_array().cloned().unwrap_or_default();
    let v4 = |x: &Value| x.as_str().map(|s| s.parse::<Ipv4Addr>().unwrap());
    Interface {
        name: name.to_owned(),
        mac: v["mac"]
            .as_str()
            .unwrap_or("00:11:22:33:44:55")
            .to_lowercase(),
        label: v["label"].as_str().map(|l| Label::new(l).unwrap()),
        up: true,
        ip4s: list("ip4s")
            .iter()
            .map(|ip| {
                let netmask = v4(&ip["netmask"]).unwrap_or(Ipv4Addr::new(255, 255, 255, 0));
                Ip4 {
                    address: v4(&ip["address"]).unwrap(),
                    netmask,
                    prefixlen: prefix_of(netmask).unwrap(),
                }
            })
            .collect(),
        ip6s: list("ip6s")
            .iter()
            .map(|ip| Ip6 {
                address: ip["address"].as_str().unwrap().parse::<Ipv6Addr>().unwrap(),
                prefixlen: match &ip["prefixlen"] {
                    Value::String(s) => s.parse().unwrap(),
                    n => n.as_u64().unwrap_or(64) as u8,
                },
            })
            .collect(),
        gateway4: v4(&v["gateway4"]),
        gateway6: v["gateway6"].as_str().map(|s| s.parse().unwrap()),
        routes: list("routes")
            .iter()
            .map(|r| {
                let netmask = v4(&r["netmask"]).unwrap();
                Route {
                    network: v4(&r["network"]).unwrap(),
                    netmask,
                    prefixlen: prefix_of(netmask).unwrap(),
                    gateway: v4(&r["gateway"]).unwrap(),
                }
            })
            .collect(),
        dns: list("dns")
            .iter()
            .map(|d| d.as_str().unwrap().parse::<IpAddr>().unwrap())
            .collect(),
    }
}

/// A temporary root with `files` (guest path → content) written under it.
pub fn root_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, content) in files {
        let real = dir.path().join(path.trim_start_matches('/'));
        std::fs::create_dir_all(real.parent().unwrap()).unwrap();
        std::fs::write(real, content).unwrap();
    }
    dir
}

/// The seed vectors' comparison `rstrip_lines`: every line right-trimmed,
/// trailing empty lines dropped.
pub fn rstrip_lines(text: &str) -> String {
    let lines: Vec<&str> = text.lines().map(str::trim_end).collect();
    let mut joined = lines.join("\n");
    while joined.ends_with('\n') {
        joined.pop();
    }
    joined
}

/// The realistic Nova payload: a public interface with two IPv4 and two
/// IPv6 addresses and DNS, a private one with routes and a null gateway.
pub fn realistic() -> Network {
    network_from(&serde_json::json!({
        "hostname": "web-1",
        "interfaces": {
            "eth0": {
                "label": "public", "mac": "bc:76:4e:20:6c:5a",
                "ip4s": [{"address": "198.51.100.10", "netmask": "255.255.255.0"},
                         {"address": "198.51.100.11", "netmask": "255.255.255.0"}],
                "ip6s": [{"address": "2001:db8:0:1::10", "prefixlen": 64},
                         {"address": "2001:db8:0:1::11", "prefixlen": 64}],
                "gateway4": "198.51.100.1", "gateway6": "fe80::def",
                "dns": ["69.20.0.164", "69.20.0.196"], "routes": []
            },
            "eth1": {
                "label": "private", "mac": "bc:76:4e:20:6c:5b",
                "ip4s": [{"address": "10.208.227.239", "netmask": "255.255.224.0"}],
                "ip6s": [],
                "routes": [{"network": "10.208.0.0", "netmask": "255.240.0.0", "gateway": "10.208.224.1"},
                           {"network": "10.176.0.0", "netmask": "255.240.0.0", "gateway": "10.208.224.1"}]
            }
        }
    }))
}

/// Actions that record what an apply sequence did, in order, as lines:
/// `write <paths...>`, `symlink <link> -> <target>`, `run <program>
/// <args...>`, `sethostname <name>`. Programs exit with the code set for
/// their whole command line, else for the program name, else 0; `missing`
/// programs cannot be started. `write`, `symlink` and `set_hostname` log
/// their line, then fail with `write_error`, `symlink_error` and
/// `hostname_error` when those are set.
#[derive(Default)]
pub struct Recorder {
    pub log: Vec<String>,
    pub exit_codes: std::collections::HashMap<String, i32>,
    pub missing: Vec<String>,
    pub write_error: Option<String>,
    pub symlink_error: Option<String>,
    pub hostname_error: Option<String>,
}

/// `Err(error)` when an error is set.
fn fail_with(error: &Option<String>) -> Result<(), String> {
    error.clone().map_or(Ok(()), Err)
}

impl crate::backend::Actions for Recorder {
    fn write(&mut self, plan: &crate::backend::Plan) -> Result<(), String> {
        let paths: Vec<&str> = plan.files.iter().map(|f| f.path.as_str()).collect();
        self.log.push(format!("write {}", paths.join(" ")));
        fail_with(&self.write_error)
    }

    fn symlink(&mut self, target: &str, link: &str) -> Result<(), String> {
        self.log.push(format!("symlink {link} -> {target}"));
        fail_with(&self.symlink_error)
    }

    fn run(&mut self, program: &str, args: &[&str]) -> Result<i32, String> {
        let line = std::iter::once(program)
            .chain(args.iter().copied())
            .collect::<Vec<_>>()
            .join(" ");
        self.log.push(format!("run {line}"));
        if self.missing.iter().any(|m| m == program) {
            return Err(format!("cannot run {program}: No such file or directory"));
        }
        Ok(*self
            .exit_codes
            .get(&line)
            .or_else(|| self.exit_codes.get(program))
            .unwrap_or(&0))
    }

    fn set_hostname(&mut self, hostname: &Hostname) -> Result<(), String> {
        self.log.push(format!("sethostname {hostname}"));
        fail_with(&self.hostname_error)
    }
}
