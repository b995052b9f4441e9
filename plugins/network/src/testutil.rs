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

impl Recorder {
    /// A recorder under which `set_hostname` fails with "Operation not
    /// permitted".
    pub fn refusing_hostname() -> Self {
        Recorder {
            hostname_error: Some("Operation not permitted".to_owned()),
            ..Recorder::default()
        }
    }

    /// A recorder under which `write` fails with `error`.
    pub fn failing_write(error: &str) -> Self {
        Recorder {
            write_error: Some(error.to_owned()),
            ..Recorder::default()
        }
    }

    /// A recorder under which `program` cannot be started.
    pub fn without_program(program: &str) -> Self {
        Recorder {
            missing: vec![program.to_owned()],
            ..Recorder::default()
        }
    }

    /// A recorder under which each command line or program of `codes` exits
    /// with its code.
    pub fn exiting(codes: &[(&str, i32)]) -> Self {
        Recorder {
            exit_codes: codes
                .iter()
                .map(|&(c, code)| (c.to_owned(), code))
                .collect(),
            ..Recorder::default()
        }
    }
}

/// Runs `apply` with `recorder`, checks that it returns `expected`, and
/// returns what the recorder logged.
pub fn apply_expecting(
    mut recorder: Recorder,
    expected: Result<(), &str>,
    apply: impl FnOnce(&mut dyn crate::backend::Actions) -> Result<(), String>,
) -> Vec<String> {
    assert_eq!(apply(&mut recorder), expected.map_err(str::to_owned));
    recorder.log
}

/// Checks that `apply`, with sethostname refused, fails with the seed's
/// message after logging `log`.
pub fn assert_refused_hostname_stops(
    apply: impl FnOnce(&mut dyn crate::backend::Actions) -> Result<(), String>,
    log: &[&str],
) {
    let logged = apply_expecting(
        Recorder::refusing_hostname(),
        Err("Couldn't set hostname: Operation not permitted"),
        apply,
    );
    assert_eq!(logged, log);
}

/// Checks that `apply`, with writing failing with `error`, fails with it
/// after logging `log`.
pub fn assert_failed_write_stops(
    apply: impl FnOnce(&mut dyn crate::backend::Actions) -> Result<(), String>,
    error: &str,
    log: &[&str],
) {
    let logged = apply_expecting(Recorder::failing_write(error), Err(error), apply);
    assert_eq!(logged, log);
}

/// Runs `apply` with `program` missing, checks that it fails as it cannot
/// run it, and returns the log.
pub fn apply_without(
    program: &str,
    apply: impl FnOnce(&mut dyn crate::backend::Actions) -> Result<(), String>,
) -> Vec<String> {
    let error = format!("cannot run {program}: No such file or directory");
    apply_expecting(Recorder::without_program(program), Err(&error), apply)
}

/// Runs `apply` with `command` (a command line or a program) exiting with
/// `code`, checks that it fails with `error`, and returns the log.
pub fn apply_failing(
    command: &str,
    code: i32,
    error: &str,
    apply: impl FnOnce(&mut dyn crate::backend::Actions) -> Result<(), String>,
) -> Vec<String> {
    apply_expecting(Recorder::exiting(&[(command, code)]), Err(error), apply)
}

/// Renders `network` with `backend` on a temporary root holding `files`,
/// then applies the plan with `actions`.
pub fn apply_on(
    backend: &dyn crate::backend::Backend,
    network: &Network,
    files: &[(&str, &str)],
    actions: &mut dyn crate::backend::Actions,
) -> Result<(), String> {
    let root = root_with(files);
    let system = crate::backend::System::new(root.path());
    let plan = backend.render(network, &system).unwrap();
    backend.apply(network, &system, &plan, actions)
}

/// `backend`'s plan for `network` on a temporary root holding `files`.
pub fn render(
    backend: &dyn crate::backend::Backend,
    files: &[(&str, &str)],
    network: &Network,
) -> Result<crate::backend::Plan, String> {
    let root = root_with(files);
    render_in(backend, &root, network)
}

/// `backend`'s plan for `network` on `root`.
pub fn render_in(
    backend: &dyn crate::backend::Backend,
    root: &tempfile::TempDir,
    network: &Network,
) -> Result<crate::backend::Plan, String> {
    backend.render(network, &crate::backend::System::new(root.path()))
}

/// The text a plan writes to `path` (panics if it writes none).
pub fn text<'a>(plan: &'a crate::backend::Plan, path: &str) -> &'a str {
    std::str::from_utf8(
        plan.content(path)
            .unwrap_or_else(|| panic!("{path} not planned")),
    )
    .unwrap()
}

/// The paths a plan writes, in order.
pub fn planned_paths(plan: &crate::backend::Plan) -> Vec<&str> {
    plan.files.iter().map(|f| f.path.as_str()).collect()
}

/// The network of a seed vector's input.
pub fn vector_network(id: &str) -> Network {
    network_from(&vector(id)["input"])
}

/// A network of one interface, `eth0`, from its seed-normalized form.
pub fn one_interface(interface: Value) -> Network {
    network_from(&serde_json::json!({ "interfaces": { "eth0": interface } }))
}

/// The `/etc/hosts` the realistic payload adds to an empty one.
pub const REALISTIC_HOSTS: &str =
    "198.51.100.10\tweb-1\n2001:db8:0:1::10\tweb-1\n10.208.227.239\tweb-1\n";

/// Checks that `plan` is exactly `files` (path, content, mode), in order,
/// with `remove` moved aside and `resolv_conf` as given.
pub fn assert_whole_plan(
    plan: &crate::backend::Plan,
    files: &[(&str, &str, u32)],
    remove: &[&str],
    resolv_conf: bool,
) {
    let expected = crate::backend::Plan {
        files: files
            .iter()
            .map(|&(path, content, mode)| crate::backend::FileChange {
                path: path.to_owned(),
                content: content.as_bytes().to_vec(),
                mode,
            })
            .collect(),
        remove: remove.iter().map(|r| r.to_string()).collect(),
        resolv_conf,
    };
    assert_eq!(*plan, expected);
}

/// Checks that rendering the realistic payload twice on the same root, and
/// again on a root holding its own output, gives the same plan.
pub fn assert_rendering_is_deterministic(backend: &dyn crate::backend::Backend) {
    let root = root_with(&[("/etc/hosts", "127.0.0.1\tlocalhost\n")]);
    let first = render_in(backend, &root, &realistic()).unwrap();
    assert_eq!(first, render_in(backend, &root, &realistic()).unwrap());
    // Once written, the files render to the same bytes again.
    let written: Vec<(&str, &str)> = first
        .files
        .iter()
        .map(|f| (f.path.as_str(), text(&first, &f.path)))
        .collect();
    let root = root_with(&written);
    assert_eq!(render_in(backend, &root, &realistic()).unwrap(), first);
}

/// The seed's `/etc/hosts` vectors.
pub const ETC_HOSTS_VECTORS: [&str; 6] = [
    "etchosts-empty",
    "etchosts-add",
    "etchosts-update-one-hostname",
    "etchosts-update-two-hostnames",
    "etchosts-update-two-entries",
    "etchosts-update-comment",
];

/// Checks `backend`'s `/etc/hosts` against every seed vector of it.
pub fn check_etc_hosts_vectors(backend: &dyn crate::backend::Backend) {
    for id in ETC_HOSTS_VECTORS {
        let v = vector(id);
        assert_eq!(v["match"], "exact");
        let files = [("/etc/hosts", v["input"]["etc_hosts"].as_str().unwrap())];
        let plan = render(backend, &files, &network_from(&v["input"])).unwrap();
        assert_eq!(
            text(&plan, "/etc/hosts"),
            v["expected"]["/etc/hosts"],
            "{id}"
        );
    }
}

/// Checks the file `backend` renders at `path` for the interfaces vector
/// `id` against the vector's `key`, right-stripped and whole; returns the
/// plan.
pub fn check_interfaces_vector(
    backend: &dyn crate::backend::Backend,
    id: &str,
    path: &str,
    key: &str,
) -> crate::backend::Plan {
    let v = vector(id);
    assert_eq!(v["match"], "rstrip_lines");
    let plan = render(backend, &[], &network_from(&v["input"])).unwrap();
    let file = text(&plan, path);
    assert_eq!(rstrip_lines(file), v["expected"][key], "{id}");
    assert_eq!(file, v["full_output"][key], "{id}");
    plan
}

/// Checks the hostname file `backend` renders at `path` against the seed's
/// hostname vector `id`.
pub fn check_hostname_vector(backend: &dyn crate::backend::Backend, id: &str, path: &str) {
    let v = vector(id);
    let plan = render(backend, &[], &network_from(&v["input"])).unwrap();
    assert_eq!(text(&plan, path), v["expected"][path]);
}
