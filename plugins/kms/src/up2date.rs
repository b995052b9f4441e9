//! RHN's files: `/etc/sysconfig/rhn/up2date`, the seed's template byte for
//! byte (vector `kms-redhat-up2date`), and the old registration
//! `/etc/sysconfig/rhn/systemid`, removed before registering again.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nova_agent_support::files::{under_root, write_file};

use crate::value::Domain;

pub const UP2DATE: &str = "/etc/sysconfig/rhn/up2date";
pub const BACKUP: &str = "/etc/sysconfig/rhn/up2date.bak";
pub const SYSTEMID: &str = "/etc/sysconfig/rhn/systemid";

/// The up2date file for these servers: each domain's `/XMLRPC` over https
/// (`serverURL`) and http (`noSSLServerURL`), each followed by `;`.
pub fn render(domains: &[Domain]) -> String {
    let urls = |scheme: &str| -> String {
        domains
            .iter()
            .map(|d| format!("{scheme}://{}/XMLRPC;", d.as_str()))
            .collect()
    };
    let (https, http) = (urls("https"), urls("http"));
    format!(
        "# Automatically generated Red Hat Update Agent config file, do not edit.
# Format: 1.0
versionOverride[comment]=Override the automatically determined system version
versionOverride=

enableProxyAuth[comment]=To use an authenticated proxy or not
enableProxyAuth=0

networkRetries[comment]=Number of attempts to make at network connections before giving up
networkRetries=5

hostedWhitelist[comment]=None
hostedWhitelist=

enableProxy[comment]=Use a HTTP Proxy
enableProxy=0

serverURL[comment]=Remote server URL
serverURL={https}

proxyPassword[comment]=The password to use for an authenticated proxy
proxyPassword=

noSSLServerURL[comment]=None
noSSLServerURL={http}

proxyUser[comment]=The username for an authenticated proxy
proxyUser=

disallowConfChanges[comment]=Config options that can not be overwritten by a config update action
disallowConfChanges=noReboot;sslCACert;useNoSSLForPackages;noSSLServerURL;serverURL;disallowConfChanges;

sslCACert[comment]=The CA cert used to verify the ssl server
sslCACert=/usr/share/rhn/RHN-ORG-TRUSTED-SSL-CERT

debug[comment]=Whether or not debugging is enabled
debug=0

httpProxy[comment]=HTTP proxy in host:port format, e.g. squid.redhat.com:3128
httpProxy=

systemIdPath[comment]=Location of system id
systemIdPath=/etc/sysconfig/rhn/systemid

noReboot[comment]=Disable the reboot action
noReboot=0
"
    )
}

/// Writes `<root>/etc/sysconfig/rhn/up2date` atomically (mode 0644 when
/// new; an existing file keeps its mode, owner and label), the previous
/// file copied to `up2date.bak` first. An unchanged file is not touched, so
/// the backup keeps the last different version. The error is the answer's
/// message.
pub fn write(root: &Path, domains: &[Domain]) -> Result<(), String> {
    let failed = |e: io::Error| format!("Couldn't write {UP2DATE}: {e}");
    let path = under_root(root, UP2DATE).map_err(failed)?;
    let text = render(domains);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(failed)?;
    }
    // Only a regular file is backed up; replacing anything else (a symlink)
    // is refused by write_file below.
    match std::fs::symlink_metadata(&path) {
        Ok(old) if old.is_file() => {
            let content = std::fs::read(&path).map_err(failed)?;
            if content == text.as_bytes() {
                tracing::debug!("{UP2DATE} is unchanged");
                return Ok(());
            }
            let backup = under_root(root, BACKUP).map_err(failed)?;
            write_file(&backup, old.mode() & 0o7777, &content)
                .map_err(|e| format!("Couldn't back up {UP2DATE} to {BACKUP}: {e}"))?;
            tracing::debug!("copied {UP2DATE} to {BACKUP}");
        }
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(failed(e)),
    }
    write_file(&path, 0o644, text.as_bytes()).map_err(failed)?;
    tracing::info!(
        "wrote {UP2DATE} for {} server{}",
        domains.len(),
        if domains.len() == 1 { "" } else { "s" }
    );
    Ok(())
}

/// Removes `<root>/etc/sysconfig/rhn/systemid` if it exists.
pub fn remove_systemid(root: &Path) -> Result<(), String> {
    let failed = |e: io::Error| format!("Couldn't remove {SYSTEMID}: {e}");
    let path = under_root(root, SYSTEMID).map_err(failed)?;
    match std::fs::remove_file(&path) {
        Ok(()) => {
            tracing::info!("removed {SYSTEMID}");
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(failed(e)),
    }
}
