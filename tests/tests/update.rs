//! agentupdate end to end: the agent binary with the update plugin, a real
//! package (a gzip'd tar built here) served over 127.0.0.1 by the loopback
//! HTTP server, and a sandbox root holding an old install. The sandbox runs
//! with `apply = false`, so a good package is downloaded and verified and its
//! install and restart only logged; every refusal answers "500" with its
//! reason and leaves the old install byte-identical. (The install itself,
//! with `apply` on, is tested in the plugin's unit tests.)

use std::path::Path;
use std::time::{Duration, Instant};

use md5::{Digest, Md5};
use nova_agent_tests::http::{Route, Server};
use nova_agent_tests::{nova, plugin, Agent, Sandbox};
use sha2::Sha256;

const OLD_BINARY: &[u8] = b"#!/bin/sh\necho old agent 2.0.0\n";
const OLD_PLUGIN: &[u8] = b"\x7fELF old plugin x";
const NEW_BINARY: &[u8] = b"#!/bin/sh\necho new agent 2.1.0\n";
const NEW_PLUGIN: &[u8] = b"\x7fELF new plugin";

const PACKAGE_PATH: &str = "/nova-agent-2.1.0.tar.gz";

/// One member of a test tarball.
enum Member<'a> {
    File(&'a str, &'a [u8]),
    Dir(&'a str),
    Symlink(&'a str, &'a str),
}

/// A gzip'd tar of `members`; names go into the header as raw bytes, so
/// malicious ones (`..`, absolute) are possible.
fn tarball(members: &[Member<'_>]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for member in members {
        let (name, kind, data, link): (&str, tar::EntryType, &[u8], &str) = match member {
            Member::File(name, data) => (name, tar::EntryType::Regular, data, ""),
            Member::Dir(name) => (name, tar::EntryType::Directory, b"", ""),
            Member::Symlink(name, to) => (name, tar::EntryType::Symlink, b"", to),
        };
        let mut header = tar::Header::new_gnu();
        header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        header.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        header.set_entry_type(kind);
        header.set_size(data.len() as u64);
        header.set_mode(0o755);
        header.set_cksum();
        builder.append(&header, data).unwrap();
    }
    let tar = builder.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &tar).unwrap();
    gz.finish().unwrap()
}

/// The package `packaging/make-update-tarball.sh` makes, with fake contents.
fn good_package() -> Vec<u8> {
    tarball(&[
        Member::Dir("nova-agent-2.1.0/"),
        Member::Dir("nova-agent-2.1.0/bin/"),
        Member::File("nova-agent-2.1.0/bin/nova-agent", NEW_BINARY),
        Member::Dir("nova-agent-2.1.0/plugins/"),
        Member::File("nova-agent-2.1.0/plugins/x.so", NEW_PLUGIN),
        Member::File("nova-agent-2.1.0/VERSION", b"2.1.0\n"),
    ])
}

fn md5_hex(bytes: &[u8]) -> String {
    Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A sandbox with the update plugin, `config` as its `[plugins.update]`
/// table, an old install under its root, and systemd (unless `systemd` is
/// false).
fn sandbox(config: &str, systemd: bool) -> Sandbox {
    let sandbox = Sandbox::with_builtins();
    sandbox.add_plugin(&plugin("update"));
    sandbox.write_config(&format!("\n[plugins.update]\n{config}"));
    let root = &sandbox.root;
    std::fs::create_dir_all(root.join("usr/sbin")).unwrap();
    std::fs::create_dir_all(root.join("usr/lib/nova-agent/plugins")).unwrap();
    std::fs::write(root.join("usr/sbin/nova-agent"), OLD_BINARY).unwrap();
    std::fs::write(root.join("usr/lib/nova-agent/plugins/x.so"), OLD_PLUGIN).unwrap();
    if systemd {
        std::fs::create_dir_all(root.join("run/systemd/system")).unwrap();
    }
    sandbox
}

/// The old install is there, byte for byte, with nothing beside it, and no
/// staging directory was left.
fn assert_old_install_untouched(root: &Path) {
    assert_eq!(
        std::fs::read(root.join("usr/sbin/nova-agent")).unwrap(),
        OLD_BINARY
    );
    assert_eq!(
        std::fs::read(root.join("usr/lib/nova-agent/plugins/x.so")).unwrap(),
        OLD_PLUGIN
    );
    assert_eq!(names(&root.join("usr/sbin")), ["nova-agent"]);
    assert_eq!(names(&root.join("usr/lib/nova-agent/plugins")), ["x.so"]);
    let staging = root.join("var/lib/nova-agent/update");
    if staging.exists() {
        assert_eq!(names(&staging), Vec::<String>::new(), "staging left behind");
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// `agentupdate` with the value `"<url>,<md5>"`; the response line.
fn update(agent: &Agent, url: &str, md5: &str) -> String {
    let value = serde_json::to_string(&format!("{url},{md5}")).unwrap();
    agent.request(&format!(r#"{{"name": "agentupdate", "value": {value}}}"#))
}

/// `agentupdate` with `value_json` as the value.
fn update_value(agent: &Agent, value_json: &str) -> String {
    agent.request(&format!(
        r#"{{"name": "agentupdate", "value": {value_json}}}"#
    ))
}

/// A server of `routes`, and a sandbox made by `sandbox(config, systemd)`
/// with its agent started.
fn serve<'a>(
    routes: impl IntoIterator<Item = (&'a str, Route)>,
    config: &str,
    systemd: bool,
) -> (Server, Sandbox, Agent) {
    let server = Server::start(routes);
    let sandbox = sandbox(config, systemd);
    let agent = sandbox.start();
    (server, sandbox, agent)
}

/// A server of `package` at `PACKAGE_PATH`, and a started sandbox as in
/// `serve`.
fn serve_package(package: &[u8], config: &str, systemd: bool) -> (Server, Sandbox, Agent) {
    serve([(PACKAGE_PATH, Route::body(package))], config, systemd)
}

/// `agentupdate` of `url` with `md5` answers `code` with `message`, and the
/// old install under `root` is left untouched.
fn assert_update_refused(
    agent: &Agent,
    root: &Path,
    url: &str,
    md5: &str,
    code: &str,
    message: &str,
) {
    assert_eq!(update(agent, url, md5), nova(code, message), "{url}");
    assert_old_install_untouched(root);
}

#[test]
fn a_verified_package_answers_0_and_with_apply_false_only_logs_the_install_and_restart() {
    let package = good_package();
    let (server, sandbox, agent) = serve_package(&package, "", true);
    // With a userinfo, which is sent as Basic authorization and never logged.
    let url = server
        .url(PACKAGE_PATH)
        .replace("http://", "http://updater:s3cret-pw@");

    assert_eq!(update(&agent, &url, &md5_hex(&package)), nova("0", ""));

    assert_old_install_untouched(&sandbox.root);
    agent.wait_for_log(&format!("downloading {}", server.url(PACKAGE_PATH)));
    agent.wait_for_log(
        "would install plugins/x.so of nova-agent-2.1.0 to /usr/lib/nova-agent/plugins/x.so",
    );
    agent.wait_for_log("would install bin/nova-agent of nova-agent-2.1.0 to /usr/sbin/nova-agent");
    agent.wait_for_log("not running (apply = false): systemctl --no-block restart nova-agent");
    assert!(!agent.log().contains("s3cret"), "{}", agent.log());
    let requests = server.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert!(requests[0].starts_with(&format!("GET {PACKAGE_PATH} HTTP/1.1\r\n")));
    assert!(
        requests[0]
            .to_ascii_lowercase()
            .contains("\r\nauthorization: basic dxbkyxrlcjpzm2nyzxqtchc="),
        "{requests:?}"
    );
}

#[test]
fn the_old_dictionary_value_and_a_redirect_work_too() {
    let package = good_package();
    let (server, sandbox, agent) = serve(
        [
            (PACKAGE_PATH, Route::body(package.clone())),
            ("/latest", Route::Redirect(PACKAGE_PATH.to_owned())),
        ],
        "",
        true,
    );
    let value = format!(
        r#"{{"url": "{}", "md5sum": "{}"}}"#,
        server.url("/latest"),
        md5_hex(&package).to_uppercase()
    );

    assert_eq!(update_value(&agent, &value), nova("0", ""));
    assert_old_install_untouched(&sandbox.root);
    assert_eq!(server.requests().len(), 2);
}

#[test]
fn a_wrong_md5_answers_the_seeds_message_and_touches_nothing() {
    let package = good_package();
    let (server, sandbox, agent) = serve_package(&package, "", true);

    assert_update_refused(
        &agent,
        &sandbox.root,
        &server.url(PACKAGE_PATH),
        "bogus",
        "500",
        &format!("MD5 sums do not match (bogus != {})", md5_hex(&package)),
    );
}

#[test]
fn a_truncated_download_answers_500_and_touches_nothing() {
    let package = good_package();
    let sent = package[..package.len() / 2].to_vec();
    let length = package.len() as u64;
    let route = Route::Truncated {
        body: sent.clone(),
        length,
    };
    let (server, sandbox, agent) = serve([(PACKAGE_PATH, route)], "", true);

    assert_update_refused(
        &agent,
        &sandbox.root,
        &server.url(PACKAGE_PATH),
        &md5_hex(&package),
        "500",
        &format!(
            "download failed: the connection closed after {} of {length} bytes",
            sent.len()
        ),
    );
}

#[test]
fn a_stalled_download_answers_500_after_the_timeout() {
    let package = good_package();
    let sent = package[..package.len() / 2].to_vec();
    let length = package.len() as u64;
    let route = Route::Stalled {
        body: sent.clone(),
        length,
        pause: Duration::from_secs(5),
    };
    let (server, sandbox, agent) = serve([(PACKAGE_PATH, route)], "timeout = 1\n", true);

    let started = Instant::now();
    assert_update_refused(
        &agent,
        &sandbox.root,
        &server.url(PACKAGE_PATH),
        &md5_hex(&package),
        "500",
        &format!(
            "download failed: it took longer than the timeout (1 s); {} of {length} bytes received",
            sent.len()
        ),
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn an_oversize_download_answers_500_with_or_without_a_length() {
    let package = good_package();
    let (server, sandbox, agent) = serve(
        [
            (PACKAGE_PATH, Route::body(package.clone())),
            ("/unsized", Route::Unsized(package.clone())),
        ],
        "max_size = 100\n",
        true,
    );
    assert!(package.len() > 100);

    for path in [PACKAGE_PATH, "/unsized"] {
        assert_update_refused(
            &agent,
            &sandbox.root,
            &server.url(path),
            &md5_hex(&package),
            "500",
            "the package is larger than max_size (100 bytes)",
        );
    }
}

#[test]
fn a_package_with_traversal_members_answers_500_and_touches_nothing() {
    let dot_dot = tarball(&[
        Member::File("nova-agent-2.1.0/bin/nova-agent", NEW_BINARY),
        Member::File("nova-agent-2.1.0/../../../../usr/sbin/nova-agent", b"evil"),
    ]);
    let absolute = tarball(&[
        Member::File("nova-agent-2.1.0/bin/nova-agent", NEW_BINARY),
        Member::File("/usr/lib/nova-agent/plugins/x.so", b"evil"),
    ]);
    let symlink = tarball(&[
        Member::Symlink(
            "nova-agent-2.1.0/plugins",
            "../../../../usr/lib/nova-agent/plugins",
        ),
        Member::File("nova-agent-2.1.0/plugins/x.so", b"evil"),
        Member::File("nova-agent-2.1.0/bin/nova-agent", NEW_BINARY),
    ]);
    let (server, sandbox, agent) = serve(
        [
            ("/dot-dot.tar.gz", Route::body(dot_dot.clone())),
            ("/absolute.tar.gz", Route::body(absolute.clone())),
            ("/symlink.tar.gz", Route::body(symlink.clone())),
        ],
        "",
        true,
    );

    for (path, package, message) in [
        (
            "/dot-dot.tar.gz",
            &dot_dot,
            "refusing package member 'nova-agent-2.1.0/../../../../usr/sbin/nova-agent': \
             it has a '..' component",
        ),
        (
            "/absolute.tar.gz",
            &absolute,
            "refusing package member '/usr/lib/nova-agent/plugins/x.so': it is an absolute path",
        ),
        (
            "/symlink.tar.gz",
            &symlink,
            "refusing package member 'nova-agent-2.1.0/plugins': it is a symbolic link",
        ),
    ] {
        assert_update_refused(
            &agent,
            &sandbox.root,
            &server.url(path),
            &md5_hex(package),
            "500",
            message,
        );
    }
}

#[test]
fn an_http_url_is_refused_when_require_https_is_set() {
    let package = good_package();
    let (server, sandbox, agent) = serve_package(&package, "require_https = true\n", true);

    assert_update_refused(
        &agent,
        &sandbox.root,
        &server.url(PACKAGE_PATH),
        &md5_hex(&package),
        "500",
        "refusing an http URL: [plugins.update] require_https is set",
    );
    assert!(server.requests().is_empty());
}

#[test]
fn a_sha256_pin_mismatch_answers_500_and_a_match_answers_0() {
    let package = good_package();
    let other = sha256_hex(b"another package");
    let server = Server::start([(PACKAGE_PATH, Route::body(package.clone()))]);

    let pinned_elsewhere = sandbox(&format!("sha256 = \"{other}\"\n"), true);
    let agent = pinned_elsewhere.start();
    assert_update_refused(
        &agent,
        &pinned_elsewhere.root,
        &server.url(PACKAGE_PATH),
        &md5_hex(&package),
        "500",
        &format!(
            "SHA-256 does not match the pinned sha256 ({other} != {})",
            sha256_hex(&package)
        ),
    );

    let pinned = sandbox(&format!("sha256 = \"{}\"\n", sha256_hex(&package)), true);
    let agent = pinned.start();
    assert_eq!(
        update(&agent, &server.url(PACKAGE_PATH), &md5_hex(&package)),
        nova("0", "")
    );
}

#[test]
fn without_systemd_or_an_init_script_a_dry_run_answers_0_and_says_it_would_be_404() {
    let package = good_package();
    let (server, sandbox, agent) = serve_package(&package, "", false);

    // apply = false: the package verified, so "0"; what apply = true would
    // answer (404, nothing installed; see the plugin's unit tests) is logged.
    assert_eq!(
        update(&agent, &server.url(PACKAGE_PATH), &md5_hex(&package)),
        nova("0", "")
    );
    agent
        .wait_for_log("with apply = true the answer would be 404: No init script found to restart");
    assert_old_install_untouched(&sandbox.root);

    // The seed's init script is used when there is one.
    std::fs::create_dir_all(sandbox.root.join("etc/init.d")).unwrap();
    std::fs::write(sandbox.root.join("etc/init.d/nova-agent"), "#!/bin/sh\n").unwrap();
    assert_eq!(
        update(&agent, &server.url(PACKAGE_PATH), &md5_hex(&package)),
        nova("0", "")
    );
    agent.wait_for_log(&format!(
        "not running (apply = false): sh {}/etc/init.d/nova-agent restart",
        sandbox.root.display()
    ));
}

#[test]
fn bad_values_and_http_errors_answer_500_with_clear_messages() {
    let package = good_package();
    let (server, sandbox, agent) = serve(
        [
            ("/missing", Route::Status(404)),
            (
                "/ftp",
                Route::Redirect("ftp://127.0.0.1/p.tar.gz".to_owned()),
            ),
            ("/loop", Route::Redirect("/loop".to_owned())),
            (
                "/not-a-package",
                Route::body(b"<html>hello</html>".to_vec()),
            ),
        ],
        "",
        true,
    );
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let md5 = md5_hex(&package);

    for (value, message) in [
        (
            r#""http://127.0.0.1/p.tar.gz""#,
            "Invalid arguments: the value must be '<url>,<md5sum>'",
        ),
        (
            r#"{"url": "http://127.0.0.1/p.tar.gz"}"#,
            "Missing URL or MD5 sum in dictionary arguments",
        ),
        ("[1, 2]", "Invalid arguments"),
        (
            r#""file:///etc/shadow,ff""#,
            "unsupported URL scheme 'file': only http and https are supported",
        ),
    ] {
        assert_eq!(update_value(&agent, value), nova("500", message), "{value}");
    }
    for (url, message) in [
        (
            server.url("/missing"),
            "download failed: the server answered HTTP 404 Not Found".to_owned(),
        ),
        (
            server.url("/ftp"),
            "download failed: the server redirected to a URL that is not http or https".to_owned(),
        ),
        (
            server.url("/loop"),
            "download failed: more than 5 redirects".to_owned(),
        ),
        (
            format!("http://{closed}/p.tar.gz"),
            "download failed: connection refused".to_owned(),
        ),
        (
            server.url("/missing").replace("http:", "https:"),
            "download failed: TLS error: received corrupt message of type InvalidContentType"
                .to_owned(),
        ),
    ] {
        assert_eq!(update(&agent, &url, &md5), nova("500", &message), "{url}");
    }
    let not_a_package = b"<html>hello</html>";
    let response = update(
        &agent,
        &server.url("/not-a-package"),
        &md5_hex(not_a_package),
    );
    assert!(
        response.starts_with(r#"{"message": "invalid package: it is not a readable gzip'd tar"#),
        "{response}"
    );
    assert_old_install_untouched(&sandbox.root);
}
