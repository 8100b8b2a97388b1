//! Shared pieces of the eBPF ingestion tests: a recording appender, real HTTP servers on
//! loopback (Python, nginx, and a Rust one run as a child of the test binary), and a raw
//! HTTP/1.1 client that measures latency.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use storage::{AppendError, Appender, CommitStats, Exemplar, FloatHistogram, Labels, Metadata, SeriesRef};

/// Committed samples: labels → (t_ms, value) in commit order.
#[derive(Default, Debug)]
pub struct Recorded {
    pub samples: Vec<(Labels, i64, f64)>,
    pub commits: u64,
    pub metadata: HashMap<String, Metadata>,
}

/// An `Appender` that records what a transaction commits (nothing before commit).
pub struct RecordingAppender {
    shared: Arc<Mutex<Recorded>>,
    series: Arc<Mutex<Vec<Labels>>>,
    pending: Vec<(SeriesRef, i64, f64)>,
    meta: Vec<(String, Metadata)>,
}

/// A source of recording appenders writing into one shared record.
#[derive(Clone, Default)]
pub struct Recorder {
    pub shared: Arc<Mutex<Recorded>>,
    series: Arc<Mutex<Vec<Labels>>>,
}

impl Recorder {
    pub fn appender(&self) -> RecordingAppender {
        RecordingAppender {
            shared: Arc::clone(&self.shared),
            series: Arc::clone(&self.series),
            pending: Vec::new(),
            meta: Vec::new(),
        }
    }

    /// The newest value of every series.
    pub fn latest(&self) -> HashMap<Labels, f64> {
        let r = self.shared.lock().expect("lock");
        let mut out = HashMap::new();
        for (l, _, v) in &r.samples {
            out.insert(l.clone(), *v);
        }
        out
    }

    pub fn commits(&self) -> u64 {
        self.shared.lock().expect("lock").commits
    }
}

impl Appender for RecordingAppender {
    fn series_ref(&mut self, labels: &Labels) -> Result<SeriesRef, AppendError> {
        let mut s = self.series.lock().expect("lock");
        if let Some(i) = s.iter().position(|l| l == labels) {
            return Ok(SeriesRef(i as u64));
        }
        s.push(labels.clone());
        Ok(SeriesRef(s.len() as u64 - 1))
    }
    fn append(&mut self, series: SeriesRef, t_ms: i64, v: f64) -> Result<(), AppendError> {
        if series.0 as usize >= self.series.lock().expect("lock").len() {
            return Err(AppendError::UnknownSeriesRef(series));
        }
        self.pending.push((series, t_ms, v));
        Ok(())
    }
    fn append_histogram(&mut self, series: SeriesRef, _t_ms: i64, _h: &FloatHistogram) -> Result<(), AppendError> {
        Err(AppendError::UnknownSeriesRef(series))
    }
    fn append_exemplar(&mut self, series: SeriesRef, _e: &Exemplar) -> Result<(), AppendError> {
        Err(AppendError::UnknownSeriesRef(series))
    }
    fn update_metadata(&mut self, metric: &str, metadata: &Metadata) {
        self.meta.push((metric.to_string(), metadata.clone()));
    }
    fn commit(self) -> storage::Result<CommitStats> {
        let series = self.series.lock().expect("lock");
        let mut r = self.shared.lock().expect("lock");
        let n = self.pending.len() as u64;
        for (s, t, v) in self.pending {
            r.samples.push((series[s.0 as usize].clone(), t, v));
        }
        for (m, md) in self.meta {
            r.metadata.insert(m, md);
        }
        r.commits += 1;
        Ok(CommitStats { samples: n, ..Default::default() })
    }
    fn rollback(self) {}
}

/// A child server process, killed on drop.
pub struct Server {
    pub child: Child,
    pub port: u16,
    pub name: &'static str,
    _dir: Option<tempfile::TempDir>,
    /// Kept open: a child writing to a closed pipe would die of EPIPE.
    _stdout: Option<BufReader<std::process::ChildStdout>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads stdout of `child` up to the line `PORT n` (the test harness of a re-run test binary
/// prints its own lines first).
fn read_port(child: &mut Child) -> (u16, BufReader<std::process::ChildStdout>) {
    let mut out = BufReader::new(child.stdout.take().expect("piped stdout"));
    for _ in 0..20 {
        let mut line = String::new();
        if out.read_line(&mut line).expect("server stdout") == 0 {
            break;
        }
        if let Some(p) = line.find("PORT ").map(|i| &line[i + 5..]) {
            return (p.trim().parse().unwrap_or_else(|_| panic!("port line {line:?}")), out);
        }
    }
    panic!("the server did not print its port");
}

/// The Python handler: `/status/CODE?delay_ms=N&size=B` answers CODE after N ms with a B-byte
/// body; `/close` closes without answering. HTTP/1.1 keep-alive, one thread per connection. With
/// the argument `defer`, the listening socket has TCP_DEFER_ACCEPT: the handshake completes with
/// the client's first data packet, not its bare ACK.
const PY_SERVER: &str = r#"
import sys, time, socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse, parse_qs

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a):
        pass
    def handle_any(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        u = urlparse(self.path)
        q = parse_qs(u.query)
        if u.path == "/close":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        code = int(u.path.rsplit("/", 1)[1]) if u.path.startswith("/status/") else 200
        time.sleep(int(q.get("delay_ms", ["0"])[0]) / 1000.0)
        body = b"x" * int(q.get("size", ["2"])[0])
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    do_GET = do_POST = do_DELETE = do_PUT = handle_any

s = ThreadingHTTPServer(("127.0.0.1", 0), H)
if "defer" in sys.argv[1:]:
    s.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, 5)
print("PORT", s.server_address[1], flush=True)
s.serve_forever()
"#;

pub fn python_server() -> Server {
    python_server_with(&[])
}

/// [`python_server`] with arguments to the script (`defer`).
pub fn python_server_with(args: &[&str]) -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = dir.path().join("server.py");
    std::fs::write(&script, PY_SERVER).expect("write server.py");
    let mut child = Command::new("python3")
        .arg(&script)
        .args(args)
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .expect("python3 runs");
    let (port, out) = read_port(&mut child);
    Server { child, port, name: "python3", _dir: Some(dir), _stdout: Some(out) }
}

/// nginx from Debian on a free loopback port with `return` locations (no upstream), as one
/// process (`master_process off`), so that killing it leaves no orphaned worker.
pub fn nginx_server() -> Option<Server> {
    let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"].into_iter().find(|p| std::path::Path::new(p).exists())?;
    let port = std::net::TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().display();
    let conf = format!(
        "master_process off; pid {d}/nginx.pid; error_log {d}/error.log; daemon off;\n\
         events {{ worker_connections 64; }}\n\
         http {{ access_log off; client_body_temp_path {d}; proxy_temp_path {d}; fastcgi_temp_path {d};\n\
           uwsgi_temp_path {d}; scgi_temp_path {d}; keepalive_requests 1000;\n\
           server {{ listen 127.0.0.1:{port};\n\
             location /status/200 {{ return 200 \"ok\\n\"; }}\n\
             location /status/404 {{ return 404; }}\n\
             location /status/500 {{ return 500; }}\n\
           }} }}\n"
    );
    std::fs::write(dir.path().join("nginx.conf"), conf).expect("write nginx.conf");
    let child = Command::new(nginx)
        .args(["-c", &format!("{d}/nginx.conf"), "-p", &d.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nginx did not listen on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(Server { child, port, name: "nginx", _dir: Some(dir), _stdout: None })
}

/// The Go handler (net/http): the same routes as the Python one.
const GO_SERVER: &str = r#"
package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

func main() {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	fmt.Printf("PORT %d\n", l.Addr().(*net.TCPAddr).Port)
	http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.URL.Path == "/close" {
			c, _, _ := w.(http.Hijacker).Hijack()
			c.Close()
			return
		}
		code := 200
		if i := strings.LastIndex(r.URL.Path, "/status/"); i >= 0 {
			code, _ = strconv.Atoi(r.URL.Path[i+8:])
		}
		d, _ := strconv.Atoi(r.URL.Query().Get("delay_ms"))
		time.Sleep(time.Duration(d) * time.Millisecond)
		size := 2
		if v := r.URL.Query().Get("size"); v != "" {
			size, _ = strconv.Atoi(v)
		}
		w.Header().Set("Content-Length", strconv.Itoa(size))
		w.WriteHeader(code)
		w.Write([]byte(strings.Repeat("x", size)))
	}))
}
"#;

/// The Go server, built with the `go` tool; `None` when Go is not installed.
pub fn go_server() -> Option<Server> {
    let go = ["/usr/bin/go", "/usr/local/go/bin/go"].into_iter().find(|p| std::path::Path::new(p).exists())?;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("server.go"), GO_SERVER).expect("write server.go");
    let bin = dir.path().join("goserver");
    let built = Command::new(go)
        .current_dir(dir.path())
        .args(["build", "-o"])
        .arg(&bin)
        .arg("server.go")
        .env("GO111MODULE", "off")
        .status()
        .expect("go build runs");
    assert!(built.success(), "go build failed");
    let mut child = Command::new(&bin).stdout(Stdio::piped()).stdin(Stdio::null()).spawn().expect("goserver runs");
    let (port, out) = read_port(&mut child);
    Some(Server { child, port, name: "go", _dir: Some(dir), _stdout: Some(out) })
}

/// The Rust server: this test binary re-run as a child (`EBPF_TEST_RUST_SERVER=<bind address>`), running
/// [`run_rust_server`] from the `rust_server_child` test.
pub fn rust_server() -> Server {
    rust_server_on("127.0.0.1:0")
}

/// [`rust_server`] listening on `bind` (`[::1]:0`: IPv6 loopback).
pub fn rust_server_on(bind: &str) -> Server {
    let exe = std::env::current_exe().expect("test exe");
    let mut child = Command::new(exe)
        .args(["--exact", "rust_server_child", "--nocapture", "--test-threads=1"])
        .env("EBPF_TEST_RUST_SERVER", bind)
        .stdout(Stdio::piped())
        .stdin(Stdio::piped())
        .spawn()
        .expect("rerun test binary");
    let (port, out) = read_port(&mut child);
    Server { child, port, name: "rust", _dir: None, _stdout: Some(out) }
}

/// Serves like the Python handler (same routes) with std::net, a thread per connection,
/// keep-alive; exits when stdin closes. One more parameter: `pause_ms=N` waits N ms after the
/// response before reading the connection's next request.
pub fn run_rust_server(bind: &str) {
    let l = std::net::TcpListener::bind(bind).expect("bind");
    println!("PORT {}", l.local_addr().expect("addr").port());
    std::io::stdout().flush().expect("flush");
    std::thread::spawn(|| {
        let mut buf = [0u8; 1];
        let _ = std::io::stdin().read(&mut buf);
        std::process::exit(0);
    });
    for s in l.incoming().flatten() {
        std::thread::spawn(move || serve_conn(s));
    }
}

pub fn serve_conn(s: TcpStream) {
    let mut w = s.try_clone().expect("clone");
    let mut r = BufReader::new(s);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let target = line.split(' ').nth(1).unwrap_or("/").to_string();
        let mut len = 0usize;
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            if h == "\r\n" {
                break;
            }
            if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0u8; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        if path == "/close" {
            return;
        }
        let q = |k: &str| {
            query.split('&').find_map(|kv| kv.strip_prefix(k).and_then(|v| v.strip_prefix('='))).and_then(|v| v.parse::<u64>().ok())
        };
        let code: u16 = path.rsplit_once("/status/").and_then(|(_, c)| c.parse().ok()).unwrap_or(200);
        std::thread::sleep(Duration::from_millis(q("delay_ms").unwrap_or(0)));
        let size = q("size").unwrap_or(2) as usize;
        let resp = format!("HTTP/1.1 {code} X\r\nContent-Length: {size}\r\n\r\n{}", "x".repeat(size));
        if w.write_all(resp.as_bytes()).is_err() {
            return;
        }
        std::thread::sleep(Duration::from_millis(q("pause_ms").unwrap_or(0)));
    }
}

/// A raw HTTP/1.1 client on one keep-alive connection.
pub struct Client {
    s: BufReader<TcpStream>,
}

/// What one request returned.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body_len: usize,
    /// Request sent → response fully read, seconds.
    pub latency_seconds: f64,
}

impl Client {
    pub fn connect(port: u16) -> Client {
        Client::connect_to(("127.0.0.1", port))
    }

    /// A client of the server at `addr` (`("::1", port)`: IPv6 loopback).
    pub fn connect_to(addr: (&str, u16)) -> Client {
        let s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        s.set_nodelay(true).expect("nodelay");
        Client { s: BufReader::new(s) }
    }

    /// Sends `method target` with `body`, in the given pieces of the serialized request (byte
    /// counts; the rest goes last), and reads the response. `None` if the server closed.
    pub fn request(&mut self, method: &str, target: &str, body: &[u8], pieces: &[usize]) -> Option<Response> {
        let mut req = format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\r\n", body.len())
            .into_bytes();
        req.extend_from_slice(body);
        let t0 = Instant::now();
        let mut off = 0;
        for &p in pieces {
            let end = (off + p).min(req.len());
            self.s.get_mut().write_all(&req[off..end]).ok()?;
            self.s.get_mut().flush().ok()?;
            off = end;
            // Let the server read this piece on its own before the next one arrives.
            std::thread::sleep(Duration::from_millis(20));
        }
        self.s.get_mut().write_all(&req[off..]).ok()?;
        let mut line = String::new();
        if self.s.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let status: u16 = line.split(' ').nth(1)?.parse().ok()?;
        let mut len = 0usize;
        loop {
            let mut h = String::new();
            if self.s.read_line(&mut h).ok()? == 0 {
                return None;
            }
            if h == "\r\n" {
                break;
            }
            if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().ok()?;
            }
        }
        let mut b = vec![0u8; len];
        self.s.read_exact(&mut b).ok()?;
        Some(Response { status, body_len: len, latency_seconds: t0.elapsed().as_secs_f64() })
    }
}

/// Sum of `name` over series whose labels include every `(k, v)` of `want`.
pub fn sum_where(latest: &HashMap<Labels, f64>, name: &str, want: &[(&str, &str)]) -> f64 {
    latest
        .iter()
        .filter(|(l, _)| l.metric_name() == Some(name) && want.iter().all(|(k, v)| l.get(k) == Some(*v)))
        .map(|(_, v)| *v)
        .sum()
}
