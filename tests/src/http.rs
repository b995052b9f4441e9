//! A loopback HTTP/1.1 server for tests, std only: it listens on
//! 127.0.0.1 (a port the system picks), serves fixed routes from a thread, one
//! short-lived thread per connection, and answers every request with
//! `Connection: close`. Routes can misbehave on purpose: a body cut short of
//! its `Content-Length`, a body without a length, one that stalls, a status,
//! a redirect.
//! Request heads are recorded (see [`Server::requests`]). The server stops
//! when dropped.
//!
//! ```no_run
//! use nova_agent_tests::http::{Route, Server};
//! let server = Server::start([("/pkg.tar.gz", Route::body(b"bytes".to_vec()))]);
//! let url = server.url("/pkg.tar.gz"); // http://127.0.0.1:<port>/pkg.tar.gz
//! ```

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// What a path answers.
#[derive(Debug, Clone)]
pub enum Route {
    /// 200 with this body and its `Content-Length`.
    Body(Vec<u8>),
    /// 200 announcing `length` bytes (more than the body), sending the body,
    /// then closing: a truncated download.
    Truncated { body: Vec<u8>, length: u64 },
    /// 200 with no `Content-Length`: the body ends when the connection closes.
    Unsized(Vec<u8>),
    /// This status (e.g. 404) with a short text body.
    Status(u16),
    /// 302 to this location (absolute, or a path on this server).
    Redirect(String),
    /// 200 announcing `length` bytes, sending the body, then sending nothing
    /// more for `pause` (at most 30 s) before closing: a stalled download.
    Stalled {
        body: Vec<u8>,
        length: u64,
        pause: Duration,
    },
}

impl Route {
    pub fn body(bytes: impl Into<Vec<u8>>) -> Route {
        Route::Body(bytes.into())
    }
}

/// The running server; stops when dropped.
pub struct Server {
    addr: SocketAddr,
    routes: Arc<Mutex<HashMap<String, Route>>>,
    requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// A request head larger than this is answered 431 and closed.
const MAX_HEAD: usize = 16 * 1024;
/// How long a connection may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

impl Server {
    /// Serves `routes` (path → route; an unknown path answers 404).
    pub fn start<'a>(routes: impl IntoIterator<Item = (&'a str, Route)>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        let routes: HashMap<String, Route> = routes
            .into_iter()
            .map(|(path, route)| (path.to_owned(), route))
            .collect();
        let routes = Arc::new(Mutex::new(routes));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (routes, requests, stop) = (
                Arc::clone(&routes),
                Arc::clone(&requests),
                Arc::clone(&stop),
            );
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let (routes, requests) = (Arc::clone(&routes), Arc::clone(&requests));
                    std::thread::spawn(move || serve(stream, &routes, &requests));
                }
            })
        };
        Server {
            addr,
            routes,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Adds or replaces a route.
    pub fn route(&self, path: &str, route: Route) {
        self.routes.lock().unwrap().insert(path.to_owned(), route);
    }

    /// The heads (request line and headers) of the requests served so far.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One connection: one request, one response, close. Write errors (the
/// client gave up) are ignored.
fn serve(
    mut stream: TcpStream,
    routes: &Mutex<HashMap<String, Route>>,
    requests: &Mutex<Vec<String>>,
) {
    let _ = stream.set_read_timeout(Some(READ_TIMEOUT));
    let head = match read_head(&mut stream) {
        Head::Request(head) => head,
        Head::TooLarge => {
            let _ = stream.write_all(
                b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
            return;
        }
        // A TLS ClientHello, say: answered at once, in plain HTTP.
        Head::NotHttp => {
            let _ = stream.write_all(
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
            return;
        }
        Head::Closed => return,
    };
    requests.lock().unwrap().push(head.clone());
    let path = head
        .lines()
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .unwrap_or("/")
        .to_owned();
    let route = routes.lock().unwrap().get(&path).cloned();
    let (status, headers, body): (u16, Vec<String>, &[u8]) = match &route {
        None | Some(Route::Status(404)) => (404, length(9), b"not found"),
        Some(Route::Status(code)) => (*code, length(5), b"error"),
        Some(Route::Body(body)) => (200, length(body.len() as u64), body),
        Some(Route::Truncated { body, length: n }) => (200, length(*n), body),
        Some(Route::Unsized(body)) => (200, Vec::new(), body),
        Some(Route::Redirect(to)) => (
            302,
            vec![format!("Location: {to}"), "Content-Length: 0".to_owned()],
            b"",
        ),
        Some(Route::Stalled {
            body, length: n, ..
        }) => (200, length(*n), body),
    };
    let mut response = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for header in headers {
        response.push_str(&header);
        response.push_str("\r\n");
    }
    response.push_str("Content-Type: application/octet-stream\r\nConnection: close\r\n\r\n");
    if stream.write_all(response.as_bytes()).is_ok() {
        let _ = stream.write_all(body);
        let _ = stream.flush();
        if let Some(Route::Stalled { pause, .. }) = &route {
            std::thread::sleep((*pause).min(Duration::from_secs(30)));
        }
    }
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

fn length(n: u64) -> Vec<String> {
    vec![format!("Content-Length: {n}")]
}

enum Head {
    Request(String),
    TooLarge,
    NotHttp,
    Closed,
}

/// The request head up to the blank line.
fn read_head(stream: &mut TcpStream) -> Head {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= MAX_HEAD {
            return Head::TooLarge;
        }
        match stream.read(&mut byte) {
            Ok(1) => {}
            _ => return Head::Closed,
        }
        if head.is_empty() && !byte[0].is_ascii_uppercase() {
            return Head::NotHttp;
        }
        head.push(byte[0]);
    }
    Head::Request(String::from_utf8_lossy(&head[..head.len() - 4]).into_owned())
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        302 => "Found",
        403 => "Forbidden",
        404 => "Not Found",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        _ => "Status",
    }
}
