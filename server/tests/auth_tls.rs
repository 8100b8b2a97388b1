//! Authentication (basic auth with bcrypt hashes, bearer tokens, separate write and read
//! credentials) and TLS with a self-signed certificate generated in the test.

mod common;

use std::sync::Arc;

use common::{client, install_crypto, Hearth};
use ingest::remote_write::encode::encode_v1;
use ingest::remote_write::{SeriesData, WriteRequestData, CONTENT_TYPE_V1};

fn body() -> Vec<u8> {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64 / 1000 * 1000;
    encode_v1(&WriteRequestData {
        series: vec![SeriesData::new([("__name__", "auth_test"), ("job", "a")]).sample(t - 60_000, 1.0)],
        metadata: Vec::new(),
    })
}

fn write_req(c: &reqwest::blocking::Client, h: &Hearth) -> reqwest::blocking::RequestBuilder {
    c.post(h.url("/api/v1/write"))
        .header("Content-Type", CONTENT_TYPE_V1)
        .header("Content-Encoding", "snappy")
        .body(body())
}

#[test]
fn write_and_read_credentials_are_separate() {
    let dir = tempfile::tempdir().unwrap();
    let hash = |p: &str| bcrypt::hash(p, 4).unwrap();
    let web = dir.path().join("web.yml");
    std::fs::write(
        &web,
        format!(
            "basic_auth_users:\n  admin: '{}'\nwrite_basic_auth_users:\n  prom: '{}'\nread_basic_auth_users:\n  grafana: '{}'\nread_bearer_tokens: [read-token]\nwrite_bearer_tokens: [write-token]\n",
            hash("admin-pw"),
            hash("prom-pw"),
            hash("grafana-pw")
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let h = Hearth::start(&data, &[&format!("--web.config.file={}", web.display())]);
    let c = client();
    // Probes stay open.
    h.wait_ready(&c);
    assert_eq!(c.get(h.url("/-/healthy")).send().unwrap().status(), 200);

    // Without credentials: 401 with a Basic challenge, everywhere else.
    let r = write_req(&c, &h).send().unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Basic");
    assert_eq!(c.get(h.url("/api/v1/labels")).send().unwrap().status(), 401);
    assert_eq!(c.get(h.url("/metrics")).send().unwrap().status(), 401);
    // Wrong password.
    assert_eq!(write_req(&c, &h).basic_auth("prom", Some("nope")).send().unwrap().status(), 401);
    assert_eq!(write_req(&c, &h).basic_auth("nobody", Some("prom-pw")).send().unwrap().status(), 401);

    // Write credentials write but do not read; read credentials the reverse.
    assert_eq!(write_req(&c, &h).basic_auth("prom", Some("prom-pw")).send().unwrap().status(), 204);
    assert_eq!(write_req(&c, &h).bearer_auth("write-token").send().unwrap().status(), 204);
    let q = |b: reqwest::blocking::RequestBuilder| b.send().unwrap().status().as_u16();
    assert_eq!(q(c.get(h.url("/api/v1/series?match[]=auth_test")).basic_auth("prom", Some("prom-pw"))), 403);
    assert_eq!(q(write_req(&c, &h).basic_auth("grafana", Some("grafana-pw"))), 403);
    assert_eq!(q(write_req(&c, &h).bearer_auth("read-token")), 403);
    let r = c.get(h.url("/api/v1/series?match[]=auth_test")).basic_auth("grafana", Some("grafana-pw")).send().unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().unwrap();
    assert_eq!(v["data"][0]["job"], "a");
    assert_eq!(q(c.get(h.url("/api/v1/labels")).bearer_auth("read-token")), 200);
    assert_eq!(q(c.get(h.url("/metrics")).bearer_auth("read-token")), 200);
    // The shared user does both.
    assert_eq!(q(write_req(&c, &h).basic_auth("admin", Some("admin-pw"))), 204);
    assert_eq!(q(c.get(h.url("/api/v1/labels")).basic_auth("admin", Some("admin-pw"))), 200);
}

#[test]
fn tls_with_a_self_signed_certificate() {
    install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    std::fs::write(dir.path().join("server.crt"), ck.cert.pem()).unwrap();
    std::fs::write(dir.path().join("server.key"), ck.key_pair.serialize_pem()).unwrap();
    let web = dir.path().join("web.yml");
    // Relative paths: resolved against the web config's directory, as Prometheus does.
    std::fs::write(&web, "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n").unwrap();
    let h = Hearth::start_scheme(&dir.path().join("data"), &[&format!("--web.config.file={}", web.display())], "https");

    let mut roots = rustls::RootCertStore::empty();
    roots.add(ck.cert.der().clone()).unwrap();
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let c = reqwest::blocking::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .unwrap();
    h.wait_ready(&c);
    let r = write_req(&c, &h).send().unwrap();
    assert_eq!(r.status(), 204);
    let r = c.get(h.url("/api/v1/label/job/values")).send().unwrap();
    let v: serde_json::Value = r.json().unwrap();
    assert_eq!(v["data"], serde_json::json!(["a"]));

    // Plain HTTP to the TLS port does not get an answer as HTTP.
    let plain = client();
    let r = plain.get(format!("http://{}/-/healthy", h.addr)).send();
    assert!(r.map(|r| r.status() != 200).unwrap_or(true));
    // A client that does not trust the certificate is refused.
    let untrusting = reqwest::blocking::Client::builder()
        .use_preconfigured_tls(
            rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth(),
        )
        .build()
        .unwrap();
    assert!(untrusting.get(h.url("/-/healthy")).send().is_err());
}
