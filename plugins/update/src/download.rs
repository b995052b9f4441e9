//! The download: one GET through ureq (rustls, no async runtime), streamed to
//! a file in the staging directory while its MD5 and SHA-256 are computed,
//! with a size cap, a connect timeout and an overall one, and redirects
//! followed only to http(s) (ureq fetches nothing else).

use std::fs::OpenOptions;
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

use md5::{Digest, Md5};
use nix::fcntl::OFlag;
use sha2::Sha256;

use crate::config::CONNECT_TIMEOUT;
use crate::location::{Location, Scheme};

/// Redirects followed before giving up.
pub const MAX_REDIRECTS: u32 = 5;

pub struct Limits {
    pub max_size: u64,
    pub timeout: Duration,
    pub https_only: bool,
}

/// What was written to the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downloaded {
    pub size: u64,
    /// Lowercase hex.
    pub md5: String,
    /// Lowercase hex.
    pub sha256: String,
}

/// The message for a package over the cap.
pub fn too_large(max_size: u64) -> String {
    format!("the package is larger than max_size ({max_size} bytes)")
}

/// Fetches `location` into `dest` (created, mode 0600); the error is the
/// answer's message. `dest` may be left partly written: the caller owns the
/// directory and removes it.
pub fn fetch(
    location: &Location,
    dest: &Path,
    limits: &Limits,
    user_agent: &str,
) -> Result<Downloaded, String> {
    let failed = |why: String| format!("download failed: {why}");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .https_only(limits.https_only)
        .http_status_as_error(false)
        .max_redirects(MAX_REDIRECTS)
        .timeout_global(Some(limits.timeout))
        .timeout_connect(Some(limits.timeout.min(CONNECT_TIMEOUT)))
        .user_agent(user_agent)
        .build()
        .into();
    let response = agent
        .get(location.raw())
        .call()
        .map_err(|e| failed(describe(&e, location, limits)))?;
    let status = response.status();
    if !status.is_success() {
        return Err(failed(
            format!(
                "the server answered HTTP {} {}",
                status.as_u16(),
                status.canonical_reason().unwrap_or("")
            )
            .trim_end()
            .to_owned(),
        ));
    }
    let announced = response.body().content_length();
    if announced.is_some_and(|length| length > limits.max_size) {
        return Err(too_large(limits.max_size));
    }

    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC).bits())
        .open(dest)
        .map_err(|e| format!("cannot create {}: {}", dest.display(), plain(&e)))?;
    // One byte over the cap is enough to know.
    let mut body = response
        .into_body()
        .into_reader()
        .take(limits.max_size.saturating_add(1));
    let (mut md5, mut sha256) = (Md5::new(), Sha256::new());
    let mut size: u64 = 0;
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = match body.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(failed(match (announced, closed_early(&e)) {
                    (Some(length), true) => {
                        format!("the connection closed after {size} of {length} bytes")
                    }
                    (Some(length), false) => format!(
                        "{}; {size} of {length} bytes received",
                        describe_io(&e, location, limits)
                    ),
                    (None, _) => format!(
                        "{}; {size} bytes received",
                        describe_io(&e, location, limits)
                    ),
                }))
            }
        };
        size += n as u64;
        if size > limits.max_size {
            return Err(too_large(limits.max_size));
        }
        md5.update(&buffer[..n]);
        sha256.update(&buffer[..n]);
        file.write_all(&buffer[..n])
            .map_err(|e| format!("cannot write {}: {}", dest.display(), plain(&e)))?;
    }
    if let Some(length) = announced.filter(|&length| size < length) {
        return Err(failed(format!(
            "the connection closed after {size} of {length} bytes"
        )));
    }
    Ok(Downloaded {
        size,
        md5: hex(&md5.finalize()),
        sha256: hex(&sha256.finalize()),
    })
}

/// A client error as a sentence, never quoting the URL's userinfo.
fn describe(e: &ureq::Error, location: &Location, limits: &Limits) -> String {
    use ureq::Error;
    match e {
        Error::StatusCode(code) => format!("the server answered HTTP {code}"),
        Error::Timeout(ureq::Timeout::Connect) => format!(
            "connecting took longer than {} s",
            limits.timeout.min(CONNECT_TIMEOUT).as_secs()
        ),
        Error::Timeout(_) => format!(
            "it took longer than the timeout ({} s)",
            limits.timeout.as_secs()
        ),
        Error::HostNotFound => "the host was not found".to_owned(),
        Error::Io(io) => describe_io(io, location, limits),
        Error::TooManyRedirects => format!("more than {MAX_REDIRECTS} redirects"),
        Error::RequireHttpsOnly(_) => {
            "the server redirected to a URL that is not https, and require_https is set".to_owned()
        }
        Error::BadUri(text) if text.contains("unknown scheme") => {
            "the server redirected to a URL that is not http or https".to_owned()
        }
        Error::BadUri(_) => "the server redirected to an invalid URL".to_owned(),
        Error::Protocol(p) => format!("HTTP protocol error: {p}"),
        Error::Tls(t) => format!("TLS error: {t}"),
        Error::Rustls(r) => format!("TLS error: {r}"),
        Error::ConnectionFailed => "the connection failed".to_owned(),
        Error::LargeResponseHeader(..) => "the server's response header is too large".to_owned(),
        other => location.scrub(&other.to_string()),
    }
}

fn describe_io(e: &io::Error, location: &Location, limits: &Limits) -> String {
    if let Some(inner) = e.get_ref().and_then(|i| i.downcast_ref::<ureq::Error>()) {
        return describe(inner, location, limits);
    }
    match e.kind() {
        // rustls reports its errors so; a plain-http stream has none.
        io::ErrorKind::InvalidData if location.scheme() == Scheme::Https => {
            format!("TLS error: {}", location.scrub(&plain(e)))
        }
        io::ErrorKind::UnexpectedEof => "the connection closed early".to_owned(),
        io::ErrorKind::TimedOut => format!(
            "it took longer than the timeout ({} s)",
            limits.timeout.as_secs()
        ),
        _ => location.scrub(&plain(e)),
    }
}

/// Whether the body ended before its `Content-Length`.
fn closed_early(e: &io::Error) -> bool {
    match e.get_ref().and_then(|i| i.downcast_ref::<ureq::Error>()) {
        Some(ureq::Error::Io(inner)) => inner.kind() == io::ErrorKind::UnexpectedEof,
        Some(_) => false,
        None => e.kind() == io::ErrorKind::UnexpectedEof,
    }
}

/// `e` without the " (os error 111)" std appends.
fn plain(e: &io::Error) -> String {
    let text = e.to_string();
    match e.raw_os_error() {
        Some(code) => text
            .strip_suffix(&format!(" (os error {code})"))
            .map_or(text.clone(), str::to_owned)
            .to_lowercase(),
        None => text,
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
