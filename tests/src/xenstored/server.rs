//! The socket side: an accept loop, and per connection a reader thread that
//! answers requests and a writer thread that alone writes to the socket, so
//! replies and watch events never interleave and a client that stops reading
//! stalls nobody else.

use std::collections::HashSet;
use std::fs;
use std::io::{self, Write};
use std::net::Shutdown;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::io::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use super::state::{watch_event, ConnHandle, Event, Shared, State, Watch};
use super::store::{canonical, Errno};
use super::wire::{self, Header, Incoming, PAYLOAD_MAX};

/// Messages queued for a client before it counts as not reading and is
/// dropped.
const QUEUE: usize = 1024;

pub struct Listener {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Listener {
    pub fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.thread.join();
    }
}

/// Binds `socket` (replacing a stale socket file) and accepts on a thread.
pub fn listen(shared: Arc<Shared>, socket: &Path) -> io::Result<Listener> {
    if let Ok(meta) = fs::symlink_metadata(socket) {
        if !meta.file_type().is_socket() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket", socket.display()),
            ));
        }
        if UnixStream::connect(socket).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("a server already listens on {}", socket.display()),
            ));
        }
        fs::remove_file(socket)?;
    }
    let listener = UnixListener::bind(socket)?;
    listener.set_nonblocking(true)?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread = thread::Builder::new()
        .name("xenstored-accept".into())
        .spawn(move || accept_loop(&shared, &listener, &flag))?;
    Ok(Listener { stop, thread })
}

fn accept_loop(shared: &Arc<Shared>, listener: &UnixListener, stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        let mut fd = libc::pollfd {
            fd: listener.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd; the timeout bounds how long `stop` waits.
        if unsafe { libc::poll(&mut fd, 1, 20) } <= 0 {
            continue;
        }
        match listener.accept() {
            Ok((stream, _)) => {
                if let Err(e) = connect(shared, stream) {
                    eprintln!("fake-xenstored: cannot serve a connection: {e}");
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => thread::sleep(Duration::from_millis(20)),
        }
    }
}

fn connect(shared: &Arc<Shared>, stream: UnixStream) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    let id = shared.next_conn.fetch_add(1, Ordering::SeqCst);
    let (out, queue) = mpsc::sync_channel(QUEUE);
    let handle = ConnHandle {
        stream: stream.try_clone()?,
        out,
    };
    let writer_stream = stream.try_clone()?;
    // Registered before its threads run, so that `stop` (which joins this
    // loop first) sees every connection.
    shared.update(|state| state.conns.insert(id, handle));
    let reader_shared = shared.clone();
    let spawned = thread::Builder::new()
        .name(format!("xenstored-conn-{id}"))
        .spawn(move || serve(&reader_shared, id, stream))
        .and_then(|reader| {
            let writer = thread::Builder::new()
                .name(format!("xenstored-out-{id}"))
                .spawn(move || write_loop(writer_stream, queue))?;
            Ok([reader, writer])
        });
    let threads = match spawned {
        Ok(threads) => threads,
        Err(e) => {
            shared.update(|state| {
                if let Some(handle) = state.conns.get(&id) {
                    let _ = handle.stream.shutdown(Shutdown::Both);
                }
                state.disconnect(id);
            });
            return Err(e);
        }
    };
    let mut all = shared.threads.lock().unwrap_or_else(|e| e.into_inner());
    all.retain(|t| !t.is_finished());
    all.extend(threads);
    Ok(())
}

fn write_loop(mut stream: UnixStream, queue: Receiver<Vec<u8>>) {
    for message in queue {
        if stream.write_all(&message).is_err() {
            let _ = stream.shutdown(Shutdown::Both);
            return;
        }
    }
}

/// The reader side of a connection: its open transactions.
struct Conn {
    id: u64,
    next_tx: u32,
    transactions: HashSet<u32>,
}

fn serve(shared: &Shared, id: u64, mut stream: UnixStream) {
    let mut conn = Conn {
        id,
        next_tx: 1,
        transactions: HashSet::new(),
    };
    loop {
        match wire::read_message(&mut stream) {
            Incoming::Request(header, payload) => {
                shared.update(|state| handle(state, &mut conn, &header, &payload));
            }
            // The writer still sends what is queued, then closes.
            Incoming::Closed => break,
            // Like the C xenstored: a corrupt stream is closed at once.
            Incoming::Corrupt => {
                let _ = stream.shutdown(Shutdown::Both);
                break;
            }
        }
    }
    shared.update(|state| state.disconnect(id));
}

/// Answers one request: the reply first, then the events it caused.
fn handle(state: &mut State, conn: &mut Conn, header: &Header, payload: &[u8]) {
    let (reply, events) = match request(state, conn, header, payload) {
        Ok(Reply { ty, body, events }) => (
            wire::message(ty, header.req_id, header.tx_id, &body),
            events,
        ),
        Err(errno) => (wire::error(header, errno), Vec::new()),
    };
    state.send(conn.id, reply);
    state.deliver(events);
}

struct Reply {
    ty: u32,
    body: Vec<u8>,
    events: Vec<Event>,
}

fn ok(ty: u32, events: Vec<Event>) -> Result<Reply, Errno> {
    Ok(Reply {
        ty,
        body: b"OK\0".to_vec(),
        events,
    })
}

fn body(ty: u32, body: Vec<u8>) -> Result<Reply, Errno> {
    if body.len() > PAYLOAD_MAX {
        return Err("E2BIG");
    }
    Ok(Reply {
        ty,
        body,
        events: Vec::new(),
    })
}

fn args(payload: &[u8], count: usize) -> Result<Vec<&str>, Errno> {
    wire::str_args(payload, count).ok_or("EINVAL")
}

fn path_arg(payload: &[u8]) -> Result<String, Errno> {
    canonical(args(payload, 1)?[0])
}

fn request(
    state: &mut State,
    conn: &mut Conn,
    header: &Header,
    payload: &[u8],
) -> Result<Reply, Errno> {
    // Requests inside a transaction apply at once; only the id is checked.
    if header.tx_id != 0
        && header.ty != wire::TRANSACTION_START
        && !conn.transactions.contains(&header.tx_id)
    {
        return Err("ENOENT");
    }
    let id = conn.id;
    match header.ty {
        wire::DIRECTORY => {
            let path = path_arg(payload)?;
            let children = state.store.children(&path).ok_or("ENOENT")?;
            body(wire::DIRECTORY, nul_list(children))
        }
        wire::DIRECTORY_PART => directory_part(state, payload),
        wire::READ => {
            let value = state.store.read(&path_arg(payload)?).ok_or("ENOENT")?;
            body(wire::READ, value.to_vec())
        }
        wire::GET_PERMS => {
            let path = path_arg(payload)?;
            state.store.read(&path).ok_or("ENOENT")?;
            body(wire::GET_PERMS, b"n0\0".to_vec())
        }
        wire::WRITE => {
            let nul = payload.iter().position(|&b| b == 0).ok_or("EINVAL")?;
            let path = std::str::from_utf8(&payload[..nul]).map_err(|_| "EINVAL")?;
            let path = canonical(path)?;
            ok(wire::WRITE, state.write(id, &path, &payload[nul + 1..]))
        }
        wire::MKDIR => {
            let path = path_arg(payload)?;
            ok(wire::MKDIR, state.mkdir(id, &path))
        }
        wire::RM => {
            let path = path_arg(payload)?;
            ok(wire::RM, state.remove(id, &path)?)
        }
        wire::SET_PERMS => {
            let strings = wire::strings(payload).ok_or("EINVAL")?;
            let path = strings.first().ok_or("EINVAL")?;
            let path = canonical(std::str::from_utf8(path).map_err(|_| "EINVAL")?)?;
            ok(wire::SET_PERMS, state.set_perms(id, &path)?)
        }
        wire::WATCH => {
            let [given, token] = args(payload, 2)?[..] else {
                unreachable!()
            };
            let abs = watch_path(given)?;
            if !state.conns.contains_key(&id) {
                // Forgotten by `stop` while this request was in flight.
                return Err("EIO");
            }
            if (state.watches.iter()).any(|w| w.conn == id && w.abs == abs && w.token == token) {
                return Err("EEXIST");
            }
            state.watches.push(Watch {
                conn: id,
                given: given.to_owned(),
                abs,
                token: token.to_owned(),
            });
            ok(wire::WATCH, vec![(id, watch_event(given, token))])
        }
        wire::UNWATCH => {
            let [given, token] = args(payload, 2)?[..] else {
                unreachable!()
            };
            let abs = watch_path(given)?;
            let before = state.watches.len();
            state
                .watches
                .retain(|w| !(w.conn == id && w.abs == abs && w.token == token));
            if state.watches.len() == before {
                return Err("ENOENT");
            }
            ok(wire::UNWATCH, Vec::new())
        }
        wire::TRANSACTION_START => {
            let tx = conn.next_tx;
            conn.next_tx = conn.next_tx.checked_add(1).unwrap_or(1);
            conn.transactions.insert(tx);
            body(wire::TRANSACTION_START, format!("{tx}\0").into_bytes())
        }
        wire::TRANSACTION_END => {
            if !matches!(args(payload, 1)?[..], ["T"] | ["F"]) {
                return Err("EINVAL");
            }
            if !conn.transactions.remove(&header.tx_id) {
                return Err("ENOENT");
            }
            ok(wire::TRANSACTION_END, Vec::new())
        }
        wire::GET_DOMAIN_PATH => {
            let domid: u32 = args(payload, 1)?[0].parse().map_err(|_| "EINVAL")?;
            body(
                wire::GET_DOMAIN_PATH,
                format!("/local/domain/{domid}\0").into_bytes(),
            )
        }
        wire::RESET_WATCHES => {
            state.watches.retain(|w| w.conn != id);
            conn.transactions.clear();
            ok(wire::RESET_WATCHES, Vec::new())
        }
        _ => Err("ENOSYS"),
    }
}

/// The absolute path a watch is on; special paths (`@...`) stay as they are.
fn watch_path(given: &str) -> Result<String, Errno> {
    if given.starts_with('@') {
        return Ok(given.to_owned());
    }
    canonical(given)
}

fn nul_list(names: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    for name in names {
        out.extend_from_slice(name.as_bytes());
        out.push(0);
    }
    out
}

/// `path\0offset\0` -> `generation\0` then the children list from byte
/// `offset`, cut after whole names; a chunk that reaches the end carries an
/// extra `\0`, which is how libxenstore knows it is done.
fn directory_part(state: &State, payload: &[u8]) -> Result<Reply, Errno> {
    let [path, offset] = args(payload, 2)?[..] else {
        unreachable!()
    };
    let path = canonical(path)?;
    let offset: usize = offset.parse().map_err(|_| "EINVAL")?;
    let children = state.store.children(&path).ok_or("ENOENT")?;
    let generation = state.store.generation(&path).ok_or("ENOENT")?;
    let list = nul_list(children);
    let mut out = format!("{generation}\0").into_bytes();
    let rest = list.get(offset..).unwrap_or_default();
    let room = PAYLOAD_MAX - out.len() - 1;
    if rest.len() <= room {
        out.extend_from_slice(rest);
        out.push(0);
    } else {
        let cut = rest[..room].iter().rposition(|&b| b == 0).ok_or("E2BIG")?;
        out.extend_from_slice(&rest[..=cut]);
    }
    body(wire::DIRECTORY_PART, out)
}
