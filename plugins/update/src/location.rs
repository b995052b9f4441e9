//! The package URL: checked before anything is fetched, and shown everywhere
//! (logs included) without its userinfo (`user:password@`), which the HTTP
//! client turns into a Basic authorization header.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

/// A URL the client can fetch: http or https, printable ASCII, with a host.
#[derive(Clone, PartialEq, Eq)]
pub struct Location {
    raw: String,
    scheme: Scheme,
    /// `user:password` when the URL has one, for scrubbing the client's
    /// error texts.
    userinfo: Option<String>,
    /// The URL without its userinfo.
    shown: String,
}

impl Location {
    /// Checks `raw`; the error is the answer's message.
    pub fn parse(raw: &str) -> Result<Location, String> {
        if !raw.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(
                "invalid URL: it contains a space or a character that is not printable ASCII"
                    .to_owned(),
            );
        }
        let Some((scheme, rest)) = raw.split_once("://") else {
            return Err("invalid URL: it does not start with http:// or https://".to_owned());
        };
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            _ => {
                let shown: String = scheme.chars().take(16).collect();
                return Err(format!(
                    "unsupported URL scheme '{shown}': only http and https are supported"
                ));
            }
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(end);
        let (userinfo, host) = match authority.rfind('@') {
            Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
            None => (None, authority),
        };
        if host.is_empty() || host.starts_with(':') {
            return Err("invalid URL: it has no host".to_owned());
        }
        let shown = format!("{}://{host}{path}", &raw[..raw.len() - rest.len() - 3]);
        let location = Location {
            raw: raw.to_owned(),
            scheme,
            userinfo: userinfo.map(str::to_owned),
            shown,
        };
        // What the client will parse; its error texts do not quote the URL.
        ureq::http::Uri::try_from(raw).map_err(|e| format!("invalid URL: {e}"))?;
        Ok(location)
    }

    /// The URL to fetch, userinfo included: never log it.
    pub fn raw(&self) -> &str {
        &self.raw
    }

    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// `text` (an error from the client, which may quote a URL) without this
    /// URL's userinfo.
    pub fn scrub(&self, text: &str) -> String {
        match &self.userinfo {
            Some(userinfo) if !userinfo.is_empty() => text.replace(&format!("{userinfo}@"), ""),
            _ => text.to_owned(),
        }
    }
}

/// The URL without its userinfo.
impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Location({:?})", self.shown)
    }
}
