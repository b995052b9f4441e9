//! keyinit and password end to end: the agent binary with the password
//! plugin and a sandbox root, the host's side done as Nova does it (its own
//! Diffie-Hellman key, the real `openssl enc` command line with `-md md5` and
//! `-md sha256`), the result checked with the system's crypt.

use nova_agent_tests::dom0::Dom0;
use nova_agent_tests::password_host::{crypt_verifies, openssl_encrypt, HostKey};
use nova_agent_tests::xenstored::FakeXenstored;
use nova_agent_tests::{nova, plugin, Agent, Sandbox};

const OTHER_LINES: &str = "daemon:*:19000:0:99999:7:::\n\
    bin:*:19000:0:99999:7:::\n\
    user:$y$j9T$abcdefghijklmnopqrstu.$ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefg:19000:0:99999:7:::\n";

fn sandbox_with_shadow(sandbox: Sandbox, root_entry: &str) -> Sandbox {
    sandbox.add_plugin(&plugin("password"));
    let etc = sandbox.root.join("etc");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::write(etc.join("shadow"), format!("{root_entry}\n{OTHER_LINES}")).unwrap();
    sandbox
}

fn message(response: &str) -> String {
    let json: serde_json::Value = serde_json::from_str(response).unwrap();
    json["message"].as_str().unwrap().to_owned()
}

fn code(response: &str) -> String {
    let json: serde_json::Value = serde_json::from_str(response).unwrap();
    json["returncode"].as_str().unwrap().to_owned()
}

fn request(name: &str, value_json: &str) -> String {
    format!("{{\"name\": \"{name}\", \"value\": {value_json}}}")
}

/// keyinit then password over the unix socket; the password response.
fn set_password(agent: &Agent, host: &HostKey, password: &str, md: &str) -> String {
    let mut client = agent.connect();
    let keyinit = client.request(&request("keyinit", &host.keyinit_value()));
    assert_eq!(code(&keyinit), "D0", "{keyinit}");
    let secret = host.shared_secret(&message(&keyinit));
    let value = openssl_encrypt(password, &secret, md);
    client.request(&request("password", &format!("\"{value}\"")))
}

fn shadow(sandbox: &Sandbox) -> String {
    std::fs::read_to_string(sandbox.root.join("etc/shadow")).unwrap()
}

fn root_hash(sandbox: &Sandbox) -> String {
    let text = shadow(sandbox);
    text.lines()
        .find_map(|l| l.strip_prefix("root:"))
        .and_then(|rest| rest.split(':').next())
        .unwrap()
        .to_owned()
}

#[test]
fn passwords_encrypted_by_openssl_with_md5_or_sha256_are_set_and_verify() {
    for (md, entry, scheme) in [
        ("md5", "root:$y$j9T$F5Jx5fExrKuPp53xLKQ..1$X3DX6M94c7o.9agCG9G317fhZg9SqC.5i5rd.RhAtQ7:19000:0:99999:7:::", "$y$j9T$"),
        ("sha256", "root:$6$rounds=8000$oldsalt$oldhash:19000:0:99999:7:::", "$6$rounds=8000$"),
        ("sha256", "root:$1$abcdefgh$hhhhhhhhhhhhhhhhhhhhhh:19000:0:99999:7:::", "$1$"),
        ("md5", "root:!:19000:0:99999:7:::", "$6$"),
        ("md5", "root::19000:0:99999:7:::", "$6$"),
    ] {
        let sandbox = sandbox_with_shadow(Sandbox::with_builtins(), entry);
        let agent = sandbox.start();
        let password = format!("Nova-{md}-pässword 42");
        let response = set_password(&agent, &HostKey::new(7), &password, md);
        assert_eq!(response, nova("0", ""), "{md} {entry}");

        let hash = root_hash(&sandbox);
        assert!(hash.starts_with(scheme), "{entry} -> {hash}");
        assert!(crypt_verifies(&password, &hash), "{hash}");
        assert!(!crypt_verifies("wrong", &hash));
        let rest = &entry[entry.find(":19000").unwrap()..];
        assert_eq!(shadow(&sandbox), format!("root:{hash}{rest}\n{OTHER_LINES}"));
    }
}

#[test]
fn errors_answer_as_the_seed_and_touch_nothing() {
    let sandbox = sandbox_with_shadow(Sandbox::with_builtins(), "root:$6$s$h:19000:0:99999:7:::");
    let before = shadow(&sandbox);
    let agent = sandbox.start();
    let host = HostKey::new(3);
    let mut client = agent.connect();
    let password = |client: &mut nova_agent_tests::Client, value: &str| {
        client.request(&request("password", &format!("\"{value}\"")))
    };

    let encrypted = openssl_encrypt("pw", "123456789", "md5");
    assert_eq!(
        password(&mut client, &encrypted),
        nova("500", "Password without key exchange")
    );
    assert_eq!(
        password(&mut client, "kjadfkjaf"),
        nova("500", "Couldn't decode base64 data")
    );

    let keyinit = client.request(&request("keyinit", &host.keyinit_value()));
    let secret = host.shared_secret(&message(&keyinit));
    assert_eq!(
        password(&mut client, &encrypted),
        nova("500", "Invalid password data received")
    );
    let good = openssl_encrypt("pw", &secret, "md5");
    assert_eq!(
        password(&mut client, &good[..good.len() - 4]),
        nova("500", "Invalid password data received")
    );
    for bad in [
        "\"0\"",
        "\"1\"",
        "\"162259276829213363391578010288126\"",
        "\"x\"",
    ] {
        let response = client.request(&request("keyinit", bad));
        assert_eq!(code(&response), "500", "{bad}: {response}");
    }
    assert_eq!(shadow(&sandbox), before);

    // A failed keyinit leaves the key; the password goes through once only.
    assert_eq!(password(&mut client, &good), nova("0", ""));
    assert_eq!(
        password(&mut client, &good),
        nova("500", "Password without key exchange")
    );
}

#[test]
fn keyinit_and_password_interleaved_on_two_channels() {
    let sandbox = sandbox_with_shadow(Sandbox::with_xenstore(""), "root:!:19000:0:99999:7:::");
    let xenstored = FakeXenstored::start(sandbox.xenstored_socket()).unwrap();
    let dom0 = Dom0::new(xenstored.socket());
    let agent = sandbox.start();
    agent.wait_for_logged("connected to XenStore", 1);

    let (xen_host, local_host) = (HostKey::new(11), HostKey::new(12));
    let xen_keyinit = dom0.call("keyinit", &xen_host.keyinit_value());
    let mut local = agent.connect();
    let local_keyinit = local.request(&request("keyinit", &local_host.keyinit_value()));
    let xen_secret = xen_host.shared_secret(&message(&xen_keyinit));
    let local_secret = local_host.shared_secret(&message(&local_keyinit));

    let xen_value = openssl_encrypt("from-xen", &xen_secret, "md5");
    assert_eq!(
        dom0.call("password", &format!("\"{xen_value}\"")),
        nova("0", "")
    );
    assert!(crypt_verifies("from-xen", &root_hash(&sandbox)));
    let local_value = openssl_encrypt("from-local", &local_secret, "sha256");
    assert_eq!(
        local.request(&request("password", &format!("\"{local_value}\""))),
        nova("0", "")
    );
    assert!(crypt_verifies("from-local", &root_hash(&sandbox)));
}

#[test]
fn no_secret_reaches_the_log_at_trace_level() {
    let mut sandbox =
        sandbox_with_shadow(Sandbox::with_builtins(), "root:$6$s$h:19000:0:99999:7:::");
    sandbox.rust_log = "trace".to_owned();
    let agent = sandbox.start();
    let host = HostKey::new(99);
    let mut client = agent.connect();
    let keyinit = client.request(&request("keyinit", &host.keyinit_value()));
    let secret = host.shared_secret(&message(&keyinit));
    let password = "Tr4ce-Level-S3cret";
    let value = openssl_encrypt(password, &secret, "sha256");
    let wrong = openssl_encrypt("An0ther-S3cret", "42", "md5");
    assert_eq!(
        code(&client.request(&request("password", &format!("\"{wrong}\"")))),
        "500"
    );
    assert_eq!(
        client.request(&request("password", &format!("\"{value}\""))),
        nova("0", "")
    );

    // The log is read from the agent's stderr by another thread: wait for it.
    agent.wait_for_logged("command \"password\" answered ok", 1);
    let log = agent.log();
    assert!(log.contains("DEBUG"), "{log}");
    for secret in [password, "An0ther-S3cret", &secret, &value, &wrong] {
        assert!(!log.contains(secret), "{secret:?} logged:\n{log}");
    }
}
