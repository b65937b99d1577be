//! The floor: the bench contract (bench/CONTRACT.md) over WebSocket on one raw epoll loop,
//! so every other peer's figures can be read as a ratio to what the kernel costs.
//!
//! `bench-floor PORT [SOCKET_PATH]`. REST: `POST /broadcast` and `POST /room/{room}/send`
//! with `{"topic": "...", "data": ...}` on the same port.
//!
//! It does only what the contract needs: no heartbeat, no polling, no binary, no fragmented
//! frames. A broadcast frame is built once and appended to every recipient's output; outputs
//! are written once per epoll round, so broadcasts that arrive together leave in one write
//! per socket (as any server that batches writes can do).

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use sha1::{Digest, Sha1};

const MAX_HEAD: usize = 8192;
const MAX_BODY: usize = 1 << 20;
const MAX_FRAME: usize = 1 << 20;
/// Unsent bytes beyond this: the client is too slow and is disconnected.
const MAX_PENDING: usize = 4 << 20;
const LISTENER: u64 = u64::MAX;

#[derive(PartialEq)]
enum Kind {
    Http,
    Ws,
}

struct Conn {
    fd: i32,
    kind: Kind,
    id: u64,
    authed: bool,
    rooms: Vec<String>,
    input: Vec<u8>,
    output: Vec<u8>,
}

struct Server {
    epfd: i32,
    path: String,
    conns: Vec<Option<Conn>>,
    rooms: HashMap<String, Vec<i32>>,
    next_id: u64,
    scratch: Vec<u8>,
    /// Sockets with broadcast output to write at the end of this epoll round.
    dirty: Vec<i32>,
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 10);
    out.push(0x81);
    if payload.len() < 126 {
        out.push(payload.len() as u8);
    } else if payload.len() <= 0xffff {
        out.push(126);
        out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(payload.len() as u64).to_be_bytes());
    }
    out.extend_from_slice(payload);
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Write as much as the socket takes now; keep the rest.
fn send(conn: &mut Conn, bytes: &[u8]) -> bool {
    if conn.output.is_empty() {
        // SAFETY: fd is open; bytes is a valid buffer.
        let n = unsafe { libc::write(conn.fd, bytes.as_ptr().cast(), bytes.len()) };
        if n >= 0 {
            let n = n as usize;
            if n < bytes.len() {
                conn.output.extend_from_slice(&bytes[n..]);
            }
            return true;
        }
        let err = std::io::Error::last_os_error().raw_os_error();
        if err != Some(libc::EAGAIN) {
            return false;
        }
    }
    conn.output.extend_from_slice(bytes);
    conn.output.len() <= MAX_PENDING
}

impl Server {
    fn add(&mut self, fd: i32) {
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLET | libc::EPOLLRDHUP) as u32,
            u64: fd as u64,
        };
        // SAFETY: valid epoll fd and event.
        unsafe { libc::epoll_ctl(self.epfd, libc::EPOLL_CTL_ADD, fd, &mut ev) };
        let idx = fd as usize;
        if self.conns.len() <= idx {
            self.conns.resize_with(idx + 1, || None);
        }
        self.next_id += 1;
        self.conns[idx] = Some(Conn {
            fd,
            kind: Kind::Http,
            id: self.next_id,
            authed: false,
            rooms: Vec::new(),
            input: Vec::new(),
            output: Vec::new(),
        });
    }

    fn close(&mut self, fd: i32) {
        if let Some(conn) = self.conns.get_mut(fd as usize).and_then(Option::take) {
            for room in &conn.rooms {
                if let Some(members) = self.rooms.get_mut(room) {
                    members.retain(|m| *m != fd);
                }
            }
            // SAFETY: fd is ours; closing removes it from epoll.
            unsafe { libc::close(fd) };
        }
    }

    fn accept(&mut self, listener: i32) {
        loop {
            // SAFETY: accept4 with null address is allowed.
            let fd = unsafe {
                libc::accept4(
                    listener,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                )
            };
            if fd < 0 {
                return;
            }
            let one: libc::c_int = 1;
            // SAFETY: valid fd and option value.
            unsafe {
                libc::setsockopt(
                    fd,
                    libc::IPPROTO_TCP,
                    libc::TCP_NODELAY,
                    (&one as *const i32).cast(),
                    4,
                )
            };
            self.add(fd);
        }
    }

    fn flush(&mut self, fd: i32) -> bool {
        let Some(conn) = self.conns.get_mut(fd as usize).and_then(Option::as_mut) else {
            return true;
        };
        while !conn.output.is_empty() {
            // SAFETY: valid fd and buffer.
            let n = unsafe { libc::write(fd, conn.output.as_ptr().cast(), conn.output.len()) };
            if n < 0 {
                return std::io::Error::last_os_error().raw_os_error() == Some(libc::EAGAIN);
            }
            conn.output.drain(..n as usize);
        }
        true
    }

    fn readable(&mut self, fd: i32, buf: &mut [u8]) -> bool {
        loop {
            // SAFETY: valid fd and buffer.
            let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
            if n == 0 {
                return false;
            }
            if n < 0 {
                return std::io::Error::last_os_error().raw_os_error() == Some(libc::EAGAIN);
            }
            let n = n as usize;
            let Some(conn) = self.conns.get_mut(fd as usize).and_then(Option::as_mut) else {
                return false;
            };
            let mut input = std::mem::take(&mut conn.input);
            input.extend_from_slice(&buf[..n]);
            let used = match self.process(fd, &input) {
                Some(used) => used,
                None => return false,
            };
            input.drain(..used);
            if input.len() > MAX_FRAME + MAX_HEAD {
                return false;
            }
            match self.conns.get_mut(fd as usize).and_then(Option::as_mut) {
                Some(conn) => conn.input = input,
                None => return false,
            }
            if n < buf.len() {
                return true;
            }
        }
    }

    /// Handles complete requests or frames; returns bytes used, None to close.
    fn process(&mut self, fd: i32, input: &[u8]) -> Option<usize> {
        let mut pos = 0;
        loop {
            let kind_ws = self.conns.get(fd as usize)?.as_ref()?.kind == Kind::Ws;
            let used = if kind_ws {
                self.ws_frame(fd, &input[pos..])?
            } else {
                self.http(fd, &input[pos..])?
            };
            if used == 0 {
                return Some(pos);
            }
            pos += used;
        }
    }

    fn http(&mut self, fd: i32, input: &[u8]) -> Option<usize> {
        let Some(end) = find(input, b"\r\n\r\n") else {
            return (input.len() <= MAX_HEAD).then_some(0);
        };
        let head = std::str::from_utf8(&input[..end]).ok()?;
        let mut request_line = head.lines().next()?.split(' ');
        let (method, target) = (request_line.next()?, request_line.next()?);
        if method == "GET" {
            let path = target.split('?').next()?;
            let key = header(head, "sec-websocket-key")?;
            if path.trim_end_matches('/') != self.path.trim_end_matches('/') {
                return None;
            }
            let mut sha = Sha1::new();
            sha.update(key.as_bytes());
            sha.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
            let accept = base64::engine::general_purpose::STANDARD.encode(sha.finalize());
            let conn = self.conns.get_mut(fd as usize)?.as_mut()?;
            conn.kind = Kind::Ws;
            let mut out = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
            )
            .into_bytes();
            let open = format!(
                r#"0{{"sid":"f{}","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}}"#,
                conn.id
            );
            out.extend(frame(open.as_bytes()));
            return send(conn, &out).then_some(end + 4);
        }
        let length: usize = header(head, "content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if length > MAX_BODY {
            return None;
        }
        let total = end + 4 + length;
        if input.len() < total {
            return Some(0);
        }
        let body = std::str::from_utf8(&input[end + 4..total]).ok()?;
        let ok = match (method, target) {
            ("POST", "/broadcast") => self.publish(None, body),
            ("POST", t) => match t
                .strip_prefix("/room/")
                .and_then(|r| r.strip_suffix("/send"))
            {
                Some(room) => self.publish(Some(room), body),
                None => false,
            },
            _ => false,
        };
        let answer: &[u8] = if ok {
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n{\"success\":true}"
        } else {
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"
        };
        let conn = self.conns.get_mut(fd as usize)?.as_mut()?;
        send(conn, answer).then_some(total)
    }

    /// `{"topic":"t","data":<json>}` to everyone authenticated, or to a room.
    fn publish(&mut self, room: Option<&str>, body: &str) -> bool {
        let Some(topic_at) = body.find(r#""topic":""#) else {
            return false;
        };
        let rest = &body[topic_at + 9..];
        let Some(topic_end) = rest.find('"') else {
            return false;
        };
        let topic = &rest[..topic_end];
        let data = body
            .find(r#""data":"#)
            .and_then(|at| {
                body[at + 7..]
                    .rfind('}')
                    .map(|end| body[at + 7..at + 7 + end].trim())
            })
            .filter(|d| !d.is_empty())
            .unwrap_or("null");
        let bytes = frame(format!(r#"42["{topic}",{data}]"#).as_bytes());
        let targets: Vec<i32> = match room {
            Some(room) => self.rooms.get(room).cloned().unwrap_or_default(),
            None => self
                .conns
                .iter()
                .flatten()
                .filter(|c| c.kind == Kind::Ws && c.authed)
                .map(|c| c.fd)
                .collect(),
        };
        for fd in targets {
            let Some(conn) = self.conns.get_mut(fd as usize).and_then(Option::as_mut) else {
                continue;
            };
            if conn.output.is_empty() {
                self.dirty.push(fd);
            }
            conn.output.extend_from_slice(&bytes);
            if conn.output.len() > MAX_PENDING {
                eprintln!("floor: client {fd} too slow, disconnected");
                self.close(fd);
            }
        }
        true
    }

    fn ws_frame(&mut self, fd: i32, input: &[u8]) -> Option<usize> {
        if input.len() < 2 {
            return Some(0);
        }
        let opcode = input[0] & 0x0f;
        if input[0] & 0x80 == 0 || input[1] & 0x80 == 0 {
            return None; // fragmented or unmasked: not in the contract
        }
        let (len, mut at) = match input[1] & 0x7f {
            126 if input.len() >= 4 => (u16::from_be_bytes([input[2], input[3]]) as usize, 4),
            127 if input.len() >= 10 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&input[2..10]);
                (usize::try_from(u64::from_be_bytes(b)).ok()?, 10)
            }
            126 | 127 => return Some(0),
            n => (n as usize, 2),
        };
        if len > MAX_FRAME {
            return None;
        }
        if input.len() < at + 4 + len {
            return Some(0);
        }
        let mask = [input[at], input[at + 1], input[at + 2], input[at + 3]];
        at += 4;
        let mut payload = std::mem::take(&mut self.scratch);
        payload.clear();
        payload.extend(
            input[at..at + len]
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ mask[i % 4]),
        );
        let ok = match opcode {
            0x1 => self.on_text(fd, &payload),
            0x8 => false,
            0x9 => {
                let mut pong = frame(&payload);
                pong[0] = 0x8a;
                self.conns
                    .get_mut(fd as usize)?
                    .as_mut()
                    .is_some_and(|c| send(c, &pong))
            }
            _ => true,
        };
        self.scratch = payload;
        ok.then_some(at + len)
    }

    fn on_text(&mut self, fd: i32, text: &[u8]) -> bool {
        let Ok(text) = std::str::from_utf8(text) else {
            return false;
        };
        // Engine.IO: only messages matter (pongs and the rest are ignored).
        let Some(packet) = text.strip_prefix('4') else {
            return true;
        };
        let Some(conn) = self.conns.get_mut(fd as usize).and_then(Option::as_mut) else {
            return false;
        };
        if packet.starts_with('0') {
            let answer = frame(format!(r#"40{{"sid":"s{}"}}"#, conn.id).as_bytes());
            return send(conn, &answer);
        }
        let Some(event) = packet.strip_prefix('2') else {
            return true;
        };
        let digits = event.bytes().take_while(u8::is_ascii_digit).count();
        let (ack, body) = event.split_at(digits);
        let Some(body) = body.strip_prefix("[\"") else {
            return true;
        };
        let Some(name_end) = body.find('"') else {
            return true;
        };
        let name = &body[..name_end];
        let args = body[name_end + 1..]
            .strip_suffix(']')
            .unwrap_or("")
            .trim_start_matches(',');
        match name {
            "authenticate" => {
                conn.authed = true;
                let answer =
                    frame(format!(r#"42["authenticated",{{"id":"s{}"}}]"#, conn.id).as_bytes());
                send(conn, &answer)
            }
            "echo" => {
                let original = if args.is_empty() { "null" } else { args };
                let mut out = frame(
                    format!(
                        r#"42["echo:response",{{"original":{original},"timestamp":{}}}]"#,
                        now_ms()
                    )
                    .as_bytes(),
                );
                if !ack.is_empty() {
                    out.extend(frame(format!(r#"43{ack}[{{"ok":true}}]"#).as_bytes()));
                }
                send(conn, &out)
            }
            "join" => {
                let mut joined = Vec::new();
                if let Some(list) = args.find("\"rooms\":[").map(|at| &args[at + 9..]) {
                    let list = &list[..list.find(']').unwrap_or(list.len())];
                    for room in list
                        .split(',')
                        .map(|r| r.trim().trim_matches('"'))
                        .filter(|r| !r.is_empty())
                    {
                        joined.push(room.to_string());
                    }
                }
                let mut quoted = Vec::new();
                for room in &joined {
                    if !conn.rooms.contains(room) {
                        conn.rooms.push(room.clone());
                        self.rooms.entry(room.clone()).or_default().push(fd);
                    }
                    quoted.push(format!("\"{room}\""));
                }
                let Some(conn) = self.conns.get_mut(fd as usize).and_then(Option::as_mut) else {
                    return false;
                };
                if ack.is_empty() {
                    return true;
                }
                send(
                    conn,
                    &frame(format!("43{ack}[[{}]]", quoted.join(",")).as_bytes()),
                )
            }
            _ => true,
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().and_then(|p| p.parse().ok()).unwrap_or(3200);
    let path = args.next().unwrap_or_else(|| "/io/".into());
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid rlimit pointers.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
    }
    // SAFETY: plain socket calls with valid arguments; failures are checked.
    let listener = unsafe {
        let fd = libc::socket(
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        );
        let one: libc::c_int = 1;
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_REUSEADDR,
            (&one as *const i32).cast(),
            4,
        );
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as u16,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from_be_bytes([127, 0, 0, 1]).to_be(),
            },
            sin_zero: [0; 8],
        };
        if libc::bind(
            fd,
            (&addr as *const libc::sockaddr_in).cast(),
            std::mem::size_of_val(&addr) as u32,
        ) != 0
            || libc::listen(fd, 4096) != 0
        {
            eprintln!(
                "floor: cannot listen on 127.0.0.1:{port}: {}",
                std::io::Error::last_os_error()
            );
            std::process::exit(1);
        }
        fd
    };
    // SAFETY: epoll_create1 has no preconditions.
    let epfd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    let mut ev = libc::epoll_event {
        events: (libc::EPOLLIN | libc::EPOLLET) as u32,
        u64: LISTENER,
    };
    // SAFETY: valid fds and event.
    unsafe { libc::epoll_ctl(epfd, libc::EPOLL_CTL_ADD, listener, &mut ev) };
    let mut server = Server {
        epfd,
        path,
        conns: Vec::new(),
        rooms: HashMap::new(),
        next_id: 0,
        scratch: Vec::new(),
        dirty: Vec::new(),
    };
    println!("listening on {port}");
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        // SAFETY: events has room for 1024 entries.
        let n = unsafe { libc::epoll_wait(epfd, events.as_mut_ptr(), 1024, -1) };
        for ev in events.iter().take(n.max(0) as usize) {
            let (token, flags) = (ev.u64, ev.events);
            if token == LISTENER {
                server.accept(listener);
                continue;
            }
            let fd = token as i32;
            let mut alive = flags & (libc::EPOLLERR | libc::EPOLLHUP) as u32 == 0;
            if alive && flags & libc::EPOLLIN as u32 != 0 {
                alive = server.readable(fd, &mut buf);
            }
            if alive && flags & libc::EPOLLOUT as u32 != 0 {
                alive = server.flush(fd);
            }
            if !alive {
                server.close(fd);
            }
        }
        for fd in std::mem::take(&mut server.dirty) {
            if !server.flush(fd) {
                server.close(fd);
            }
        }
    }
}
