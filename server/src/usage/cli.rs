//! `hearth analyze` and `hearth usage`.
//!
//! - `hearth analyze --grafana-dashboards DIR --rules FILE... [--usage-dir DIR]` reads the
//!   dashboards and rule files ([`super::analyze`]), prints per file the metrics referenced and
//!   the parse problems, and writes the result to `<usage-dir>/static_refs.json` (replacing the
//!   previous run's), which a running server reads on its next report. Progress goes to stderr
//!   (`[n/N]`, rewritten in place on a terminal).
//! - `hearth usage --url http://127.0.0.1:9201 [--window 30d] [--sort series] [--limit 50]
//!   [--unused] [--format table|csv]` asks a running server's API and prints a table (or CSV).
//!   It reads through the API rather than the data directory because the database's directory
//!   lock belongs to the running server, and the report needs the head, which lives in its
//!   memory. Only plain `http://` URLs are supported (the client is a small HTTP/1.1 GET over
//!   `std::net`; the server crate has no HTTP client dependency yet).

use std::io::{IsTerminal, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;

use super::analyze::{self, FileRefs, StaticRefs};

/// The `hearth analyze` / `hearth usage` command lines.
#[derive(Debug, clap::Parser)]
#[command(name = "hearth", about = "Hearth usage analytics")]
pub struct UsageCli {
    /// The subcommand.
    #[command(subcommand)]
    pub command: UsageCommand,
}

/// `analyze` or `usage`.
#[derive(Debug, clap::Subcommand)]
pub enum UsageCommand {
    /// Find the metrics Grafana dashboards and rule files reference; write static_refs.json.
    Analyze(AnalyzeArgs),
    /// Print the metric usage (or unused-metrics) report of a running server.
    Usage(UsageArgs),
}

/// Runs `hearth analyze ...` or `hearth usage ...` when `args` (the process arguments, program
/// name first) name one of them; `None` otherwise, so `main` goes on to run the server.
pub fn run_subcommand(args: &[std::ffi::OsString]) -> Option<ExitCode> {
    let first = args.get(1)?.to_str()?;
    if first != "analyze" && first != "usage" {
        return None;
    }
    let cli = match <UsageCli as clap::Parser>::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return Some(if e.use_stderr() { ExitCode::from(2) } else { ExitCode::SUCCESS });
        }
    };
    Some(match &cli.command {
        UsageCommand::Analyze(a) => run_analyze(a),
        UsageCommand::Usage(u) => run_usage(u),
    })
}

/// `hearth analyze` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct AnalyzeArgs {
    /// Directory of Grafana dashboard JSON files (searched recursively). Repeatable.
    #[arg(long = "grafana-dashboards")]
    pub grafana_dashboards: Vec<PathBuf>,
    /// Prometheus rule files. Repeatable, or several after one flag.
    #[arg(long = "rules", num_args = 1..)]
    pub rules: Vec<PathBuf>,
    /// Where to write `static_refs.json`: the server's usage directory.
    #[arg(long = "usage-dir", default_value = "data/usage")]
    pub usage_dir: PathBuf,
    /// Only print; do not write `static_refs.json`.
    #[arg(long = "dry-run")]
    pub dry_run: bool,
}

/// `hearth usage` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct UsageArgs {
    /// The server's base URL (`http://host:port`).
    #[arg(long, default_value = "http://127.0.0.1:9201")]
    pub url: String,
    /// Report window (`1d`, `30d`).
    #[arg(long, default_value = "30d")]
    pub window: String,
    /// Sort key: series, bytes, queries, name, last_queried.
    #[arg(long, default_value = "series")]
    pub sort: String,
    /// Rows to show (0: all).
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// Show the unused-metrics report instead.
    #[arg(long)]
    pub unused: bool,
    /// `table` or `csv`.
    #[arg(long, default_value = "table")]
    pub format: String,
}

/// Analyses every input, reporting progress on stderr.
pub fn analyze_all(args: &AnalyzeArgs) -> Result<StaticRefs, super::UsageError> {
    let mut dashboards = Vec::new();
    for d in &args.grafana_dashboards {
        dashboards.extend(analyze::dashboard_files(d)?);
    }
    let total = dashboards.len() + args.rules.len();
    let mut err = std::io::stderr();
    let tty = err.is_terminal();
    let mut refs = StaticRefs { generated_t_ms: super::now_ms(), files: Vec::with_capacity(total) };
    for (i, p) in dashboards.iter().map(|p| (true, p)).chain(args.rules.iter().map(|p| (false, p))).enumerate() {
        let (is_dash, path) = p;
        if tty {
            let _ = write!(err, "\r[{}/{total}] {}\x1b[K", i + 1, path.display());
        } else if total >= 20 && (i + 1) % 20 == 0 {
            let _ = writeln!(err, "[{}/{total}] analysed", i + 1);
        }
        refs.files.push(if is_dash { analyze::analyze_dashboard_file(path) } else { analyze::analyze_rule_file(path) });
    }
    if tty && total > 0 {
        let _ = writeln!(err);
    }
    Ok(refs)
}

/// Prints what each file references.
pub fn print_refs(out: &mut impl Write, refs: &StaticRefs) -> std::io::Result<()> {
    for f in &refs.files {
        print_file(out, f)?;
    }
    let errors: usize = refs.files.iter().map(|f| f.errors.len()).sum();
    writeln!(
        out,
        "{} files, {} metrics referenced, {} selectors resolved at report time, {} problems",
        refs.files.len(),
        refs.metrics().len(),
        refs.open_selectors().len(),
        errors
    )
}

fn print_file(out: &mut impl Write, f: &FileRefs) -> std::io::Result<()> {
    writeln!(out, "{} ({} {:?}): {} expressions, {} metrics", f.path, f.kind, f.title, f.expressions, f.metrics.len())?;
    for m in &f.metrics {
        writeln!(out, "  {m}")?;
    }
    for s in &f.open_selectors {
        let ms: Vec<String> = s.matchers.iter().map(|(n, op, v)| format!("{n}{op}{v:?}")).collect();
        writeln!(out, "  {{{}}} (resolved against the index)", ms.join(", "))?;
    }
    for e in &f.errors {
        writeln!(out, "  error: {e}")?;
    }
    Ok(())
}

/// Runs `hearth analyze`.
pub fn run_analyze(args: &AnalyzeArgs) -> ExitCode {
    if args.grafana_dashboards.is_empty() && args.rules.is_empty() {
        eprintln!("hearth analyze: give --grafana-dashboards DIR and/or --rules FILE...");
        return ExitCode::from(2);
    }
    let refs = match analyze_all(args) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hearth analyze: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout().lock();
    if print_refs(&mut out, &refs).is_err() {
        return ExitCode::FAILURE;
    }
    if !args.dry_run {
        if let Err(e) = refs.save(&args.usage_dir) {
            eprintln!("hearth analyze: {e}");
            return ExitCode::FAILURE;
        }
        let _ = writeln!(out, "wrote {}", args.usage_dir.join(analyze::STATIC_REFS_FILE).display());
    }
    ExitCode::SUCCESS
}

/// GETs `url` (plain `http://` only), returning the status and body.
///
/// # Errors
/// A message for an unsupported URL, a connection failure or a malformed response.
pub fn http_get(url: &str) -> Result<(u16, Vec<u8>), String> {
    let rest = url.strip_prefix("http://").ok_or_else(|| format!("{url}: only http:// URLs are supported"))?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = if host.contains(':') { host.to_string() } else { format!("{host}:80") };
    let mut s = TcpStream::connect(&addr).map_err(|e| format!("connect {addr}: {e}"))?;
    let t = Some(Duration::from_secs(120));
    s.set_read_timeout(t).map_err(|e| e.to_string())?;
    s.set_write_timeout(t).map_err(|e| e.to_string())?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: hearth-usage\r\nConnection: close\r\n\r\n").map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).map_err(|e| format!("read: {e}"))?;
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").ok_or("malformed response: no header end")?;
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    let status: u16 = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or("malformed status line")?;
    let body = &buf[end + 4..];
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    Ok((status, if chunked { dechunk(body)? } else { body.to_vec() }))
}

fn dechunk(mut b: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let nl = b.windows(2).position(|w| w == b"\r\n").ok_or("malformed chunk size")?;
        let size_text = String::from_utf8_lossy(&b[..nl]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16).map_err(|_| "malformed chunk size")?;
        b = &b[nl + 2..];
        if size == 0 {
            return Ok(out);
        }
        if b.len() < size + 2 {
            return Err("truncated chunk".into());
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

/// Bytes as `12.3 MiB`.
pub fn human_bytes(n: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < units.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", units[i])
    }
}

fn ago(t_ms: Option<i64>, now_ms: i64) -> String {
    let Some(t) = t_ms else { return "never".into() };
    let s = (now_ms - t).max(0) / 1000;
    match s {
        0..60 => format!("{s}s ago"),
        60..3600 => format!("{}m ago", s / 60),
        3600..86_400 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86_400),
    }
}

/// Renders report rows (the JSON of [`super::report::MetricUsageRow`]) as an aligned table.
pub fn render_table(rows: &[Value], now_ms: i64) -> String {
    let header = ["METRIC", "STATUS", "SERIES", "SAMPLES/S", "BYTES", "QUERIES", "LAST QUERIED", "CLIENTS", "UNUSED LABELS"];
    let mut table: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    for r in rows {
        let s = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let u = |k: &str| r.get(k).and_then(Value::as_u64).unwrap_or(0);
        let list = |k: &str| -> String {
            r.get(k).and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(",")).unwrap_or_default()
        };
        let clients = r.get("clients").and_then(Value::as_object).map_or(0, |o| o.len());
        table.push(vec![
            s("metric"),
            s("status"),
            u("series").to_string(),
            format!("{:.2}", r.get("samples_per_second").and_then(Value::as_f64).unwrap_or(0.0)),
            human_bytes(u("bytes")),
            u("queries").to_string(),
            ago(r.get("last_queried_t_ms").and_then(Value::as_i64), now_ms),
            clients.to_string(),
            list("labels_unused"),
        ]);
    }
    let widths: Vec<usize> = (0..header.len()).map(|c| table.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for row in &table {
        let cells: Vec<String> = row.iter().enumerate().map(|(c, v)| format!("{v:<w$}", w = widths[c])).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// Runs `hearth usage`.
pub fn run_usage(args: &UsageArgs) -> ExitCode {
    match usage_text(args) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("hearth usage: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What `hearth usage` prints: the report fetched from `args.url`, as a table or CSV.
///
/// # Errors
/// A message for a bad `--format`, a failed request, a non-200 answer or bad JSON.
pub fn usage_text(args: &UsageArgs) -> Result<String, String> {
    let base = args.url.trim_end_matches('/');
    let csv = match args.format.as_str() {
        "csv" => true,
        "table" => false,
        f => return Err(format!("invalid --format {f:?}: want table or csv")),
    };
    let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let fmt = if csv { "&format=csv" } else { "" };
    let url = if args.unused {
        format!("{base}/api/v1/status/unused_metrics?window={}{fmt}", enc(&args.window))
    } else {
        format!("{base}/api/v1/status/metric_usage?window={}&sort={}&limit={}{fmt}", enc(&args.window), enc(&args.sort), args.limit)
    };
    let (status, body) = http_get(&url)?;
    if status != 200 {
        return Err(format!("{url}: HTTP {status}: {}", String::from_utf8_lossy(&body)));
    }
    if csv {
        return Ok(String::from_utf8_lossy(&body).into_owned());
    }
    let v: Value = serde_json::from_slice(&body).map_err(|e| format!("bad JSON from server: {e}"))?;
    let data = &v["data"];
    let now = super::now_ms();
    let mut out = String::new();
    if args.unused {
        let rows = data["unused"].as_array().cloned().unwrap_or_default();
        out.push_str(&render_table(&rows, now));
        let t = &data["total"];
        out.push_str(&format!(
            "\nunused in {}: {} metrics, {} series, {}, {:.2} samples/s\n",
            args.window,
            t["metrics"],
            t["series"],
            human_bytes(t["bytes"].as_u64().unwrap_or(0)),
            t["samples_per_second"].as_f64().unwrap_or(0.0)
        ));
        for p in data["partially_used"].as_array().into_iter().flatten() {
            out.push_str(&format!("partially used: {} (unused labels: {})\n", p["metric"].as_str().unwrap_or(""), p["unused_labels"]));
        }
        if let Some(s) = data["write_relabel_configs"].as_str().filter(|s| !s.is_empty()) {
            out.push_str(&format!("\nwrite_relabel_configs:\n{s}"));
        }
    } else {
        let rows = data["metrics"].as_array().cloned().unwrap_or_default();
        out.push_str(&render_table(&rows, now));
        out.push_str(&format!("\n{} of {} metrics, window {}\n", rows.len(), data["total"], args.window));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subcommands_are_recognised() {
        let args = |v: &[&str]| v.iter().map(std::ffi::OsString::from).collect::<Vec<_>>();
        assert!(run_subcommand(&args(&["hearth", "--web.listen-address=:9090"])).is_none());
        assert!(run_subcommand(&args(&["hearth"])).is_none());
        let cli = <UsageCli as clap::Parser>::try_parse_from(args(&["hearth", "analyze", "--grafana-dashboards", "d", "--rules", "a.yml", "b.yml"])).unwrap();
        match cli.command {
            UsageCommand::Analyze(a) => {
                assert_eq!(a.rules, vec![PathBuf::from("a.yml"), PathBuf::from("b.yml")]);
                assert_eq!(a.grafana_dashboards, vec![PathBuf::from("d")]);
            }
            UsageCommand::Usage(_) => panic!("parsed as usage"),
        }
    }

    #[test]
    fn dechunks() {
        assert_eq!(dechunk(b"3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n").unwrap(), b"abcde");
        assert!(dechunk(b"5\r\nab").is_err());
    }

    #[test]
    fn table_aligns() {
        let rows = vec![serde_json::json!({"metric":"up","status":"used","series":3,"samples_per_second":0.2,"bytes":2048,"queries":4,"last_queried_t_ms":1000,"clients":{"a":1},"labels_unused":["pod"]})];
        let t = render_table(&rows, 61_000);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("METRIC  STATUS  SERIES"), "{t}");
        assert!(lines[1].starts_with("up      used    3       0.20       2.0 KiB  4        1m ago"), "{t}");
    }
}
