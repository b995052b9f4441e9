//! XenStore framing: a 16-byte header (`type, req_id, tx_id, len`, native
//! byte order) followed by `len` payload bytes.

use std::io::{self, Read};

pub const HEADER_LEN: usize = 16;
/// XENSTORE_PAYLOAD_MAX: a longer message is corrupt.
pub const PAYLOAD_MAX: usize = 4096;

pub const DIRECTORY: u32 = 1;
pub const READ: u32 = 2;
pub const GET_PERMS: u32 = 3;
pub const WATCH: u32 = 4;
pub const UNWATCH: u32 = 5;
pub const TRANSACTION_START: u32 = 6;
pub const TRANSACTION_END: u32 = 7;
pub const GET_DOMAIN_PATH: u32 = 10;
pub const WRITE: u32 = 11;
pub const MKDIR: u32 = 12;
pub const RM: u32 = 13;
pub const SET_PERMS: u32 = 14;
pub const WATCH_EVENT: u32 = 15;
pub const ERROR: u32 = 16;
pub const RESET_WATCHES: u32 = 21;
pub const DIRECTORY_PART: u32 = 22;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub ty: u32,
    pub req_id: u32,
    pub tx_id: u32,
    pub len: u32,
}

impl Header {
    pub fn parse(bytes: &[u8; HEADER_LEN]) -> Header {
        let word = |i: usize| u32::from_ne_bytes(bytes[i * 4..i * 4 + 4].try_into().unwrap());
        Header {
            ty: word(0),
            req_id: word(1),
            tx_id: word(2),
            len: word(3),
        }
    }
}

/// A whole message (header and payload) in one buffer, so that one
/// `write_all` sends it.
pub fn message(ty: u32, req_id: u32, tx_id: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    for word in [ty, req_id, tx_id, payload.len() as u32] {
        out.extend_from_slice(&word.to_ne_bytes());
    }
    out.extend_from_slice(payload);
    out
}

/// An ERROR reply, e.g. `error(h, "ENOENT")`.
pub fn error(request: &Header, errno: &str) -> Vec<u8> {
    let mut payload = errno.as_bytes().to_vec();
    payload.push(0);
    message(ERROR, request.req_id, request.tx_id, &payload)
}

/// What came off the socket: a request, or a reason to drop the connection.
pub enum Incoming {
    Request(Header, Vec<u8>),
    /// EOF or an I/O error.
    Closed,
    /// A header announcing more than PAYLOAD_MAX.
    Corrupt,
}

pub fn read_message(reader: &mut impl Read) -> Incoming {
    let mut header = [0; HEADER_LEN];
    if reader.read_exact(&mut header).is_err() {
        return Incoming::Closed;
    }
    let header = Header::parse(&header);
    if header.len as usize > PAYLOAD_MAX {
        return Incoming::Corrupt;
    }
    let mut payload = vec![0; header.len as usize];
    match reader.read_exact(&mut payload) {
        Ok(()) => Incoming::Request(header, payload),
        Err(_) => Incoming::Closed,
    }
}

/// Splits a payload of NUL-terminated strings. `None` when the last one is
/// not terminated (the request is malformed: EINVAL).
pub fn strings(payload: &[u8]) -> Option<Vec<&[u8]>> {
    if payload.is_empty() {
        return Some(Vec::new());
    }
    let (last, body) = payload.split_last()?;
    if *last != 0 {
        return None;
    }
    Some(body.split(|&b| b == 0).collect())
}

/// `strings` with an exact count, as UTF-8 (paths and tokens are ASCII).
pub fn str_args(payload: &[u8], count: usize) -> Option<Vec<&str>> {
    let args = strings(payload)?;
    if args.len() != count {
        return None;
    }
    args.into_iter()
        .map(|a| std::str::from_utf8(a).ok())
        .collect()
}

/// Reads one message, for tests and clients written against this module.
pub fn read_reply(reader: &mut impl Read) -> io::Result<(Header, Vec<u8>)> {
    match read_message(reader) {
        Incoming::Request(header, payload) => Ok((header, payload)),
        Incoming::Closed => Err(io::ErrorKind::UnexpectedEof.into()),
        Incoming::Corrupt => Err(io::ErrorKind::InvalidData.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_split_and_reject_unterminated() {
        assert_eq!(strings(b"a\0bc\0").unwrap(), [&b"a"[..], b"bc"]);
        assert_eq!(strings(b"\0").unwrap(), [&b""[..]]);
        assert!(strings(b"").unwrap().is_empty());
        assert!(strings(b"a").is_none());
        assert!(str_args(b"a\0b\0", 1).is_none());
    }

    #[test]
    fn message_round_trips() {
        let bytes = message(READ, 7, 3, b"x\0");
        let (header, payload) = read_reply(&mut &bytes[..]).unwrap();
        assert_eq!(
            header,
            Header {
                ty: READ,
                req_id: 7,
                tx_id: 3,
                len: 2
            }
        );
        assert_eq!(payload, b"x\0");
    }
}
