//! Test harness: runs the real `hearth` binary on a free loopback port (`127.0.0.1:0`, the
//! bound address is read from the "listening" log line) with a temporary data directory, and
//! talks HTTP to it.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ingest::remote_write::encode::{encode_v1, encode_v2};
use ingest::remote_write::{WriteRequestData, CONTENT_TYPE_V1, CONTENT_TYPE_V2};

/// How long a server may take to print its address or become ready.
pub const STARTUP: Duration = Duration::from_secs(30);

/// A running `hearth` process. Killed on drop.
pub struct Hearth {
    pub child: Option<Child>,
    pub addr: String,
    pub data_dir: PathBuf,
    /// Every stderr line so far.
    pub log: Arc<Mutex<Vec<String>>>,
    pub scheme: &'static str,
    exited: mpsc::Receiver<()>,
}

impl Hearth {
    /// Starts `hearth` on `data_dir` with extra flags, waits until it listens.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Hearth {
        Self::start_scheme(data_dir, extra, "http")
    }

    /// As [`Hearth::start`], for a TLS server (`scheme = "https"`).
    pub fn start_scheme(data_dir: &Path, extra: &[&str], scheme: &'static str) -> Hearth {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hearth"));
        cmd.arg("--web.listen-address=127.0.0.1:0")
            .arg(format!("--storage.tsdb.path={}", data_dir.display()))
            .arg("--log.level=debug")
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn hearth");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = mpsc::channel();
        let (exit_tx, exit_rx) = mpsc::channel();
        {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if line.contains("msg=listening") {
                        if let Some(a) = line.split_whitespace().find_map(|w| w.strip_prefix("address=")) {
                            let _ = addr_tx.send(a.to_string());
                        }
                    }
                    eprintln!("[hearth] {line}");
                    log.lock().unwrap().push(line);
                }
                let _ = exit_tx.send(());
            });
        }
        let addr = match addr_rx.recv_timeout(STARTUP) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                panic!("hearth did not start listening; log:\n{}", log.lock().unwrap().join("\n"));
            }
        };
        Hearth { child: Some(child), addr, data_dir: data_dir.to_path_buf(), log, scheme, exited: exit_rx }
    }

    /// `scheme://addr/path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{}", self.scheme, self.addr, path)
    }

    /// Polls `/-/ready` until 200 (bounded by [`STARTUP`]).
    pub fn wait_ready(&self, client: &reqwest::blocking::Client) {
        let deadline = Instant::now() + STARTUP;
        loop {
            if let Ok(r) = client.get(self.url("/-/ready")).send() {
                if r.status() == 200 {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "hearth not ready in time");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM and waits for a clean exit; returns the exit status code.
    pub fn terminate(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        let ok = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().expect("kill");
        assert!(ok.success());
        let _ = self.exited.recv_timeout(STARTUP);
        let status = child.wait().expect("wait");
        status.code()
    }

    /// True if some log line contains `needle`.
    pub fn logged(&self, needle: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(needle))
    }
}

impl Drop for Hearth {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Installs rustls' ring provider as the process default (reqwest is built without one).
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A plain HTTP client with a bounded timeout.
pub fn client() -> reqwest::blocking::Client {
    install_crypto();
    reqwest::blocking::Client::builder().timeout(Duration::from_secs(30)).build().expect("client")
}

/// Remote-write protocol version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rw {
    V1,
    V2,
}

/// Posts an encoded remote-write request.
pub fn write(c: &reqwest::blocking::Client, h: &Hearth, v: Rw, req: &WriteRequestData) -> reqwest::blocking::Response {
    let (body, ct) = match v {
        Rw::V1 => (encode_v1(req), CONTENT_TYPE_V1),
        Rw::V2 => (encode_v2(req), CONTENT_TYPE_V2),
    };
    post_raw(c, h, ct, body)
}

/// Posts `body` to `/api/v1/write` with a content type and snappy encoding.
pub fn post_raw(c: &reqwest::blocking::Client, h: &Hearth, content_type: &str, body: Vec<u8>) -> reqwest::blocking::Response {
    c.post(h.url("/api/v1/write"))
        .header("Content-Type", content_type)
        .header("Content-Encoding", "snappy")
        .header("X-Prometheus-Remote-Write-Version", "2.0.0")
        .body(body)
        .send()
        .expect("write request")
}

/// GETs a query-API path and returns status and JSON.
pub fn get_json(c: &reqwest::blocking::Client, h: &Hearth, path_and_query: &str) -> (u16, serde_json::Value) {
    let r = c.get(h.url(path_and_query)).send().expect("GET");
    let status = r.status().as_u16();
    let v = r.json().unwrap_or(serde_json::Value::Null);
    (status, v)
}

/// Range-query `q` over `[start_s, end_s]` with `step_s`, returns the result array.
pub fn query_range(c: &reqwest::blocking::Client, h: &Hearth, q: &str, start_s: f64, end_s: f64, step_s: f64) -> serde_json::Value {
    let r = c
        .post(h.url("/api/v1/query_range"))
        .form(&[("query", q.to_string()), ("start", start_s.to_string()), ("end", end_s.to_string()), ("step", step_s.to_string())])
        .send()
        .expect("query_range");
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().expect("json");
    assert_eq!(v["status"], "success", "{v}");
    v["data"]["result"].clone()
}

/// The raw samples of `selector` in `[start_ms, end_ms]` per series, via an instant query of a
/// range selector at `end_ms` (so every stored timestamp comes back unchanged).
pub fn raw_samples(c: &reqwest::blocking::Client, h: &Hearth, selector: &str, start_ms: i64, end_ms: i64) -> Vec<(serde_json::Value, Vec<(i64, String)>)> {
    let range_ms = end_ms - start_ms + 1;
    let q = format!("{selector}[{range_ms}ms]");
    let r = c
        .post(h.url("/api/v1/query"))
        .form(&[("query", q), ("time", format!("{}.{:03}", end_ms / 1000, end_ms % 1000))])
        .send()
        .expect("query");
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().expect("json");
    assert_eq!(v["status"], "success", "{v}");
    let mut out = Vec::new();
    for s in v["data"]["result"].as_array().cloned().unwrap_or_default() {
        let pts = s["values"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|p| ((p[0].as_f64().unwrap() * 1000.0).round() as i64, p[1].as_str().unwrap().to_string()))
            .collect();
        out.push((s["metric"].clone(), pts));
    }
    out
}
