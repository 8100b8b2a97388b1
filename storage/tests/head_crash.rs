//! Crash test: a child process (this test binary re-executed with an environment variable)
//! appends to a head and prints each acknowledged commit; the parent SIGKILLs it at seeded
//! random points, reopens the head, and checks that every acknowledged sample is there with
//! its exact value (stale markers bit-exact), that commits are all-or-nothing, and that nothing
//! else appeared. One round runs a truncation, so a kill may land inside a checkpoint.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use rand::{Rng, SeedableRng};
use storage::head::{Head, HeadOptions};
use storage::wal::{FsyncPolicy, WalOptions};
use storage::{Appender, Labels, Matcher, Querier, ValueType};

const DIR_ENV: &str = "HEARTH_HEAD_CRASH_DIR";
const START_ENV: &str = "HEARTH_HEAD_CRASH_START";
/// Set while the truncation has not been seen to complete: the child truncates at
/// `max(TRUNCATE_AT, start)`.
const TRUNCATE_ENV: &str = "HEARTH_HEAD_CRASH_TRUNCATE";
const SERIES: usize = 20;
const T0: i64 = 1_000_000;
/// The commit at which the child truncates the head, and the commits it drops.
const TRUNCATE_AT: u64 = 150;
const TRUNCATE_BELOW: u64 = 50;

fn t_of(i: u64) -> i64 {
    T0 + i as i64 * 10
}

fn value(i: u64, k: usize) -> f64 {
    if i % 7 == 3 {
        storage::stale_nan()
    } else {
        (i * 1000 + k as u64) as f64
    }
}

fn options(fsync: FsyncPolicy) -> HeadOptions {
    HeadOptions {
        samples_per_chunk: 16,
        chunk_range_ms: 2_000,
        wal: WalOptions { fsync, segment_bytes: 64 << 10 },
        ..HeadOptions::default()
    }
}

fn series_labels(k: usize) -> Labels {
    Labels::from_pairs([("__name__", "crash".to_string()), ("k", k.to_string())])
}

fn extra_labels(i: u64) -> Labels {
    Labels::from_pairs([("__name__", "crash_extra".to_string()), ("i", i.to_string())])
}

/// The child: append commit after commit until killed, printing `ACK i` after each returns.
fn child(dir: &Path, start: u64, truncate: bool) {
    let fsync = if start.is_multiple_of(2) { FsyncPolicy::Never } else { FsyncPolicy::Always };
    let head = Head::open(dir, options(fsync)).expect("child open");
    let out = std::io::stdout();
    for i in start.. {
        let mut app = head.appender();
        for k in 0..SERIES {
            let r = app.series_ref(&series_labels(k)).unwrap();
            app.append(r, t_of(i), value(i, k)).unwrap();
        }
        if i.is_multiple_of(10) {
            let r = app.series_ref(&extra_labels(i)).unwrap();
            app.append(r, t_of(i), 1.0).unwrap();
        }
        app.commit().expect("commit");
        {
            use std::io::Write;
            let mut o = out.lock();
            writeln!(o, "ACK {i}").unwrap();
            o.flush().unwrap();
        }
        if truncate && i == TRUNCATE_AT.max(start) {
            head.truncate(t_of(TRUNCATE_BELOW)).expect("truncate");
            use std::io::Write;
            let mut o = out.lock();
            writeln!(o, "TRUNC").unwrap();
            o.flush().unwrap();
        }
    }
}

#[test]
fn crash_child() {
    // Only does something when re-executed by `acknowledged_commits_survive_sigkill`.
    if let (Ok(dir), Ok(start)) = (std::env::var(DIR_ENV), std::env::var(START_ENV)) {
        child(Path::new(&dir), start.parse().unwrap(), std::env::var(TRUNCATE_ENV).is_ok());
    }
}

/// What the reopened head holds: per commit index, per series, the value bits.
struct Seen {
    main: BTreeMap<usize, Vec<(i64, u64)>>,
    extra: Vec<i64>,
}

fn read_back(dir: &Path) -> Seen {
    let head = Head::open(dir, options(FsyncPolicy::Never)).expect("reopen");
    let q = head.querier();
    let mut main = BTreeMap::new();
    for s in q.select(&[Matcher::equal("__name__", "crash")], i64::MIN, i64::MAX).unwrap() {
        let k: usize = s.labels.get("k").unwrap().parse().unwrap();
        let mut it = s.iter();
        let mut v = Vec::new();
        while it.next() == ValueType::Float {
            let (t, x) = it.at();
            v.push((t, x.to_bits()));
        }
        main.insert(k, v);
    }
    let mut extra = Vec::new();
    for s in q.select(&[Matcher::equal("__name__", "crash_extra")], i64::MIN, i64::MAX).unwrap() {
        let mut it = s.iter();
        while it.next() == ValueType::Float {
            extra.push(it.at().0);
        }
    }
    extra.sort_unstable();
    Seen { main, extra }
}

#[test]
fn acknowledged_commits_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed_c0de);
    let mut next: u64 = 0;
    let mut last_ack: Option<u64> = None;
    let mut truncated = false;
    for round in 0..6 {
        let kill_after: u64 = rng.random_range(20..120);
        let mut cmd = Command::new(&exe);
        if !truncated {
            cmd.env(TRUNCATE_ENV, "1");
        }
        let mut child = cmd
            .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
            .env(DIR_ENV, dir.path())
            .env(START_ENV, next.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut acks = 0;
        // Read acknowledgements until the kill point (bounded: the child never stops alone).
        while let Some(Ok(line)) = lines.next() {
            if let Some(i) = line.strip_prefix("ACK ") {
                last_ack = Some(i.parse().unwrap());
                acks += 1;
                if acks >= kill_after {
                    break;
                }
            } else if line == "TRUNC" {
                truncated = true;
            }
        }
        child.kill().unwrap(); // SIGKILL on Unix
        // Acknowledgements already in the pipe were printed after their commit returned.
        for line in lines.map_while(Result::ok) {
            if let Some(i) = line.strip_prefix("ACK ") {
                last_ack = Some(i.parse().unwrap());
            } else if line == "TRUNC" {
                truncated = true;
            }
        }
        child.wait().unwrap();
        let last = last_ack.expect("the child acknowledged commits");

        let seen = read_back(dir.path());
        assert_eq!(seen.main.len(), SERIES, "round {round}: every series is there");
        let mut hi_all = None;
        for (k, samples) in &seen.main {
            // Present commits form one contiguous range [lo, hi] with exact values.
            let first = (samples[0].0 - T0) / 10;
            let lo = first as u64;
            assert!(lo == 0 || lo == TRUNCATE_BELOW, "round {round}: series {k} starts at commit {lo}");
            if truncated {
                assert_eq!(lo, TRUNCATE_BELOW, "round {round}: an acknowledged truncation is durable");
            }
            for (n, (t, bits)) in samples.iter().enumerate() {
                let i = lo + n as u64;
                assert_eq!(*t, t_of(i), "round {round}: series {k} has a gap or a stranger at {t}");
                assert_eq!(*bits, value(i, *k).to_bits(), "round {round}: series {k} commit {i} value");
            }
            let hi = lo + samples.len() as u64 - 1;
            assert!(hi >= last, "round {round}: acknowledged commit {last} lost (series {k} ends at {hi})");
            assert!(hi <= last + 1, "round {round}: series {k} has commit {hi} beyond the one in flight");
            match hi_all {
                None => hi_all = Some((lo, hi)),
                Some(x) => assert_eq!(x, (lo, hi), "round {round}: commits are all-or-nothing across series"),
            }
        }
        let (lo, hi) = hi_all.unwrap();
        eprintln!("round {round}: acknowledged up to {last}, head holds commits {lo}..={hi}");
        let want_extra: Vec<i64> = (lo..=hi).filter(|i| i % 10 == 0).map(t_of).collect();
        assert_eq!(seen.extra, want_extra, "round {round}: series created by commits");
        next = hi + 1;
        truncated |= lo == TRUNCATE_BELOW;
    }
    assert!(truncated, "the seeded kill points let the child reach the truncation");
}
