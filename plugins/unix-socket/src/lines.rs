//! Splitting a connection's bytes into request lines, with a bound on what a
//! line may hold: a line longer than `MAX_LINE` is read and thrown away as it
//! arrives, never buffered whole.
//!
//! The source is a non-blocking socket: a read that would block ends `next`
//! with `Line::Pending`, and the next call resumes where it stopped. One read
//! takes whatever the socket holds, so the buffer may keep bytes of the lines
//! after the one returned; `ready` tells whether the next call can answer
//! without reading.

use std::io::{self, Read};
use std::mem;

/// The longest request line, without its newline.
pub(crate) const MAX_LINE: usize = 1_048_576;
const INITIAL_BUFFER: usize = 8 * 1024;

/// What `LineReader::next` found.
pub(crate) enum Line<'a> {
    /// A line without its "\n" (and without a "\r" before it).
    Data(&'a [u8]),
    /// A line longer than `MAX_LINE`, read and thrown away.
    TooLong,
    /// The client sent everything it will send (and all of it was returned).
    Eof,
    /// No complete line yet: the source has nothing more to read for now.
    Pending,
}

/// Splits a stream into lines, holding at most `MAX_LINE` + 2 bytes: a longer
/// line is discarded as it arrives.
pub(crate) struct LineReader {
    buf: Vec<u8>,
    /// Unconsumed bytes are `buf[start..end]`; `buf[start..scanned]` holds no
    /// newline.
    start: usize,
    end: usize,
    scanned: usize,
    /// Inside an overlong line: skip to its newline.
    discarding: bool,
    eof: bool,
}

impl LineReader {
    pub(crate) fn new() -> Self {
        LineReader {
            buf: vec![0; INITIAL_BUFFER],
            start: 0,
            end: 0,
            scanned: 0,
            discarding: false,
            eof: false,
        }
    }

    /// The next line; `Pending` when `src` would block before one is complete.
    pub(crate) fn next(&mut self, mut src: impl Read) -> io::Result<Line<'_>> {
        loop {
            let unscanned = &self.buf[self.scanned..self.end];
            if let Some(at) = unscanned.iter().position(|&b| b == b'\n') {
                let newline = self.scanned + at;
                let start = mem::replace(&mut self.start, newline + 1);
                self.scanned = self.start;
                if mem::take(&mut self.discarding) {
                    return Ok(Line::TooLong);
                }
                return Ok(line(&self.buf[start..newline]));
            }
            self.scanned = self.end;
            if self.eof {
                if mem::take(&mut self.discarding) {
                    return Ok(Line::TooLong);
                }
                if self.start < self.end {
                    // A last line without its newline is a request too.
                    let start = mem::replace(&mut self.start, self.end);
                    return Ok(line(&self.buf[start..self.end]));
                }
                return Ok(Line::Eof);
            }
            self.make_room();
            let n = loop {
                match src.read(&mut self.buf[self.end..]) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Line::Pending),
                    Err(e) => return Err(e),
                }
            };
            if n == 0 {
                self.eof = true;
            } else {
                self.end += n;
            }
        }
    }

    /// `next` has something to return without reading: a complete line, or
    /// the end of the stream (maybe after a last line without its newline).
    pub(crate) fn ready(&self) -> bool {
        self.eof || self.buf[self.scanned..self.end].contains(&b'\n')
    }

    /// The stream has ended and every line of it was returned.
    pub(crate) fn finished(&self) -> bool {
        self.eof && !self.discarding && self.start == self.end
    }

    /// Makes `buf[end..]` non-empty, dropping an overlong line's bytes.
    fn make_room(&mut self) {
        // Content plus "\r" may take MAX_LINE + 1 bytes before the newline.
        if self.discarding || self.end - self.start > MAX_LINE + 1 {
            self.discarding = true;
            self.start = self.end;
        }
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            self.scanned = 0;
            if self.buf.len() > 8 * INITIAL_BUFFER {
                self.buf = vec![0; INITIAL_BUFFER];
            }
            return;
        }
        if self.end < self.buf.len() {
            return;
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.scanned -= self.start;
            self.start = 0;
            return;
        }
        // Full with one partial line of at most MAX_LINE + 1 bytes: grow.
        let len = (self.buf.len() * 2).min(MAX_LINE + 2);
        debug_assert!(len > self.buf.len());
        self.buf.resize(len, 0);
    }
}

fn line(bytes: &[u8]) -> Line<'_> {
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    if bytes.len() > MAX_LINE {
        Line::TooLong
    } else {
        Line::Data(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads every line of `input`, delivered `chunk` bytes per read.
    fn lines(input: &[u8], chunk: usize) -> Vec<Result<Vec<u8>, ()>> {
        struct Chunks<'a>(&'a [u8], usize);
        impl Read for Chunks<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = self.0.len().min(self.1).min(buf.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut src = Chunks(input, chunk);
        let mut reader = LineReader::new();
        let mut out = Vec::new();
        loop {
            match reader.next(&mut src).unwrap() {
                Line::Data(line) => out.push(Ok(line.to_vec())),
                Line::TooLong => out.push(Err(())),
                Line::Eof => return out,
                Line::Pending => panic!("a blocking source never says Pending"),
            }
            assert!(reader.buf.len() <= MAX_LINE + 2);
        }
    }

    #[test]
    fn splits_lines() {
        for chunk in [1, 3, 100_000] {
            assert_eq!(
                lines(b"a\nbc\r\n\n  \r\nlast", chunk),
                [
                    Ok(b"a".to_vec()),
                    Ok(b"bc".to_vec()),
                    Ok(b"".to_vec()),
                    Ok(b"  ".to_vec()),
                    Ok(b"last".to_vec())
                ]
            );
        }
        assert!(lines(b"", 10).is_empty());
    }

    #[test]
    fn lines_at_and_over_the_limit() {
        let mut input = vec![b'x'; MAX_LINE];
        input.extend_from_slice(b"\r\n");
        input.extend(vec![b'y'; MAX_LINE + 1]);
        input.extend_from_slice(b"\nok\n");
        input.extend(vec![b'z'; 3 * MAX_LINE]);
        input.extend_from_slice(b"\r\nok2\n");
        input.extend(vec![b'w'; MAX_LINE + 5]);
        for chunk in [65_536, 1_000_003] {
            let got = lines(&input, chunk);
            assert_eq!(got.len(), 6);
            assert_eq!(got[0].as_ref().unwrap().len(), MAX_LINE);
            assert_eq!(got[1], Err(()));
            assert_eq!(got[2], Ok(b"ok".to_vec()));
            assert_eq!(got[3], Err(()));
            assert_eq!(got[4], Ok(b"ok2".to_vec()));
            assert_eq!(got[5], Err(()), "an overlong last line without newline");
        }
    }

    #[test]
    fn resumes_after_a_read_that_would_block() {
        /// Hands out one chunk per read, and "would block" between chunks.
        struct Trickle(Vec<&'static [u8]>, bool);
        impl Read for &mut Trickle {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                self.1 = !self.1;
                if self.1 {
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                match self.0.first_mut() {
                    None => Ok(0),
                    Some(chunk) => {
                        let n = chunk.len().min(buf.len());
                        buf[..n].copy_from_slice(&chunk[..n]);
                        *chunk = &chunk[n..];
                        if chunk.is_empty() {
                            self.0.remove(0);
                        }
                        Ok(n)
                    }
                }
            }
        }
        let mut src = Trickle(vec![b"ab", b"c\nd\r\n", b"e\n\nf"], false);
        let mut reader = LineReader::new();
        let mut got = Vec::new();
        loop {
            match reader.next(&mut src).unwrap() {
                Line::Data(line) => {
                    let line = String::from_utf8(line.to_vec()).unwrap();
                    // What is buffered after each line: "d\r\n" after "abc",
                    // the blank line after "e", the end of the stream after
                    // "f"; nothing complete otherwise.
                    let ready = matches!(line.as_str(), "abc" | "e" | "f");
                    assert_eq!(reader.ready(), ready, "after {line:?}");
                    got.push(line);
                }
                Line::Pending => got.push("-".to_owned()),
                Line::TooLong => panic!("no long line here"),
                Line::Eof => break,
            }
            assert!(!reader.finished() || got.last().unwrap() == "f");
        }
        assert_eq!(got, ["-", "-", "abc", "d", "-", "e", "", "-", "f"]);
        assert!(reader.ready() && reader.finished());
    }
}
