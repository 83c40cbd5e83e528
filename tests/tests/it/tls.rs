//! HTTPS end to end: the real server with `--tls-cert`/`--tls-key` and certificates made
//! here (rcgen: a CA, and server certificates for 127.0.0.1 and localhost), the real CLI
//! trusting that CA through `ENVSYNC_CA_FILE`, `ca_file` or `login --ca-file`, and a rustls
//! client that shows which certificate the server serves before and after SIGHUP.

#![allow(clippy::unwrap_used)]

use envsync_tests::{Dev, Server, TempDir, http};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SerialNumber,
};
use rustls::pki_types::{CertificateDer, ServerName};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A test CA in a temp dir: its certificate in `ca.pem`, and the server certificates it
/// signs.
struct Pki {
    dir: TempDir,
    ca: CertifiedIssuer<'static, KeyPair>,
}

/// One server certificate, its key, and where they were written.
struct Leaf {
    der: CertificateDer<'static>,
    cert_pem: String,
    key_pem: String,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        Pki { dir, ca }
    }

    fn ca_pem(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A server certificate for `names` with this common name and serial, on a new key.
    fn leaf(&self, names: &[&str], common_name: &str, serial: u64) -> Leaf {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.serial_number = Some(SerialNumber::from(serial));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        Leaf {
            der: cert.der().clone(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// A certificate for 127.0.0.1 and localhost.
    fn local(&self, common_name: &str, serial: u64) -> Leaf {
        self.leaf(&["127.0.0.1", "localhost"], common_name, serial)
    }

    /// Writes the leaf to `<name>.pem` and `<name>.key` (replacing them) and returns the
    /// two paths.
    fn install(&self, leaf: &Leaf, name: &str) -> (PathBuf, PathBuf) {
        let cert = self.dir.path().join(format!("{name}.pem"));
        let key = self.dir.path().join(format!("{name}.key"));
        std::fs::write(&key, &leaf.key_pem).unwrap();
        std::fs::write(&cert, &leaf.cert_pem).unwrap();
        (cert, key)
    }
}

/// `host:port` of an `https://` URL.
fn authority(url: &str) -> &str {
    url.trim_start_matches("https://")
}

/// A kept-alive HTTPS connection from a rustls client that trusts `ca` alone.
struct Conn {
    tls: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
}

impl Conn {
    fn open(url: &str, ca: &Path) -> Conn {
        let mut roots = rustls::RootCertStore::empty();
        let pem = std::fs::read(ca).unwrap();
        for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(&pem) {
            roots.add(cert.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = ServerName::try_from("127.0.0.1").unwrap();
        let client = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        let tcp = TcpStream::connect(authority(url)).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut tls = rustls::StreamOwned::new(client, tcp);
        while tls.conn.is_handshaking() {
            tls.conn.complete_io(&mut tls.sock).unwrap();
        }
        Conn { tls }
    }

    /// The certificate the server presented on this connection.
    fn served(&self) -> CertificateDer<'static> {
        self.tls.conn.peer_certificates().unwrap()[0]
            .clone()
            .into_owned()
    }

    /// `GET /health` on this connection, kept alive: the status code.
    fn health(&mut self) -> u16 {
        self.tls
            .write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .unwrap();
        http::read_response(&mut self.tls).status
    }
}

/// Waits until the server's log holds `needle` `times` times.
fn wait_for_log(server: &Server, needle: &str, times: usize) -> String {
    let start = Instant::now();
    loop {
        let log = server.log();
        if log.matches(needle).count() >= times {
            return log;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no {needle:?} ×{times} in the log:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn write_user_config(dev: &Dev, text: &str) {
    let dir = dev.home.join(".config/envsync");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.toml"), text).unwrap();
}

#[test]
fn https_push_and_pull_trust_the_ca_from_the_variable_the_config_and_login() {
    let pki = Pki::new("envsync test CA");
    let (cert, key) = pki.install(&pki.local("envsync test server", 1), "server");
    let server = Server::start_tls(&cert, &key, &[]);
    let ca = pki.ca_pem().to_str().unwrap().to_owned();

    // ENVSYNC_CA_FILE.
    let mut alice = Dev::new(&server, "tls");
    alice.env.push(("ENVSYNC_CA_FILE".into(), ca.clone()));
    alice.write_env("DATABASE_URL=postgres://db/app\nAPI_KEY=s3cr3t\n");
    alice.envsync(&["push"]).clean().ok();

    // `ca_file` at the top of the user configuration.
    let bob = Dev::clone_of(&alice, &server, "bob@example.com");
    write_user_config(&bob, &format!("ca_file = \"{ca}\"\n"));
    bob.envsync(&["pull"]).clean().ok();
    assert_eq!(bob.read_env().unwrap(), alice.read_env().unwrap());

    // `login --ca-file`, recorded in the server's own section; later commands use the
    // stored login alone.
    let mut carol = Dev::clone_of(&alice, &server, "carol@example.com");
    carol.env_credentials = false;
    carol
        .envsync_stdin(
            &[
                "login",
                "--server",
                &server.url,
                "--token-stdin",
                "--ca-file",
                &ca,
            ],
            format!("{}\n", carol.token),
        )
        .ok();
    let config = std::fs::read_to_string(carol.home.join(".config/envsync/config.toml")).unwrap();
    assert!(
        config.contains(&format!("[servers.\"{}\"]", server.url)),
        "{config}"
    );
    assert!(config.contains(&format!("ca_file = \"{ca}\"")), "{config}");
    carol.envsync(&["pull"]).clean().ok();
    assert_eq!(carol.read_env().unwrap(), alice.read_env().unwrap());
    carol.write_env("DATABASE_URL=postgres://db/app\nAPI_KEY=rotated\n");
    carol.envsync(&["push"]).clean().ok();
    alice.envsync(&["pull"]).clean().ok();
    assert_eq!(alice.read_env().unwrap(), carol.read_env().unwrap());

    // doctor names the CA file, and says when it cannot be used.
    let run = carol.envsync(&["doctor"]);
    let line = run
        .stdout
        .lines()
        .find(|l| l.contains(" ca "))
        .unwrap_or_else(|| panic!("no ca line: {run:#?}"));
    assert!(line.starts_with("ok"), "{line}");
    assert!(
        line.contains(&ca) && line.contains("1 certificate(s)"),
        "{line}"
    );
    let broken = pki.dir.path().join("broken.pem");
    std::fs::write(&broken, "not a certificate\n").unwrap();
    let run = carol
        .envsync_cmd(&["doctor"])
        .env("ENVSYNC_CA_FILE", &broken)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert_eq!(run.status.code(), Some(1), "{stdout}");
    let line = stdout.lines().find(|l| l.contains(" ca ")).unwrap();
    assert!(
        line.starts_with("FAIL") && line.contains("holds no PEM certificate"),
        "{line}"
    );
}

#[test]
fn a_certificate_the_client_cannot_trust_is_one_line_and_exit_3() {
    let pki = Pki::new("envsync test CA");
    let (cert, key) = pki.install(&pki.local("envsync test server", 1), "server");
    let server = Server::start_tls(&cert, &key, &[]);
    let other = Pki::new("some other CA");
    let mut dev = Dev::new(&server, "tls");
    dev.write_env("A=1\n");
    let token = dev.token.clone();
    let no_token = |run: &envsync_tests::Run| {
        assert!(!run.stderr.contains(&token), "{run:#?}");
        assert!(!run.stdout.contains(&token), "{run:#?}");
    };

    // No CA configured: the system's roots do not know the test CA.
    let run = dev.envsync(&["push"]).code(3).refused();
    no_token(&run);
    assert!(
        run.stderr.starts_with(&format!(
            "error: TLS handshake with {} failed: the server's certificate is not signed by a CA this machine trusts\n",
            server.url
        )),
        "{run:#?}"
    );
    assert!(run.stderr.contains("--ca-file"), "{run:#?}");

    // Another CA: the same refusal, and the hint names the file that did not do it.
    let wrong = other.ca_pem().to_str().unwrap().to_owned();
    dev.env.push(("ENVSYNC_CA_FILE".into(), wrong.clone()));
    for args in [&["push"][..], &["pull"]] {
        let run = dev.envsync(args).code(3).refused();
        no_token(&run);
        assert!(
            run.stderr
                .contains("the server's certificate is not signed by a CA this machine trusts"),
            "{args:?}: {run:#?}"
        );
        assert!(run.stderr.contains(&wrong), "{run:#?}");
    }
    assert!(dev.read_env().unwrap() == b"A=1\n");

    // The right CA, but a certificate for another name.
    let (cert, key) = pki.install(&pki.leaf(&["envsync.example"], "elsewhere", 2), "elsewhere");
    let elsewhere = Server::start_tls(&cert, &key, &[]);
    dev.env = vec![(
        "ENVSYNC_CA_FILE".into(),
        pki.ca_pem().to_str().unwrap().into(),
    )];
    dev.server_url = elsewhere.url.clone();
    let run = dev.envsync(&["push"]).code(3).refused();
    no_token(&run);
    assert!(
        run.stderr
            .contains("the server's certificate is not for this host name"),
        "{run:#?}"
    );

    // https:// to a server that speaks plain HTTP.
    let plain = Server::start();
    dev.server_url = plain.url.replace("http://", "https://");
    let run = dev.envsync(&["push"]).code(3).refused();
    no_token(&run);
    assert!(run.stderr.contains("did not answer in TLS"), "{run:#?}");

    // A CA file that cannot be used is the user's configuration: exit 2, before any
    // request.
    dev.server_url = server.url.clone();
    let broken = pki.dir.path().join("broken.pem");
    std::fs::write(
        &broken,
        "-----BEGIN CERTIFICATE-----\nMAMCAQA=\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    dev.env = vec![("ENVSYNC_CA_FILE".into(), broken.to_str().unwrap().into())];
    let run = dev.envsync(&["push"]).code(2).refused();
    assert!(
        run.stderr
            .starts_with("error: certificate 1 of the CA file"),
        "{run:#?}"
    );
    assert!(
        run.stderr.contains("hint: fix or unset ENVSYNC_CA_FILE"),
        "{run:#?}"
    );
}

#[test]
fn sighup_serves_a_new_certificate_to_new_connections_and_keeps_open_ones() {
    let pki = Pki::new("envsync test CA");
    let first = pki.local("envsync server one", 1);
    let (cert, key) = pki.install(&first, "server");
    let server = Server::start_tls(&cert, &key, &[]);

    let mut open = Conn::open(&server.url, &pki.ca_pem());
    assert_eq!(open.served(), first.der);
    assert_eq!(open.health(), 200);

    // A new certificate and key from the same CA: new handshakes get it, the open
    // connection goes on with the one it has.
    let second = pki.local("envsync server two", 2);
    assert_ne!(second.der, first.der);
    pki.install(&second, "server");
    server.signal("HUP");
    wait_for_log(&server, "TLS certificate reloaded", 1);
    let mut fresh = Conn::open(&server.url, &pki.ca_pem());
    assert_eq!(fresh.served(), second.der);
    assert_eq!(fresh.health(), 200);
    assert_eq!(open.health(), 200);
    assert_eq!(open.served(), first.der);

    // Files that cannot be used: one error line each, and the certificate in use stays.
    let third = pki.local("envsync server three", 3);
    let bad: [(&str, String, String); 3] = [
        (
            "garbage",
            "not a certificate\n".into(),
            third.key_pem.clone(),
        ),
        // The third certificate with the second's key.
        ("mismatch", third.cert_pem.clone(), second.key_pem.clone()),
        ("no key", third.cert_pem.clone(), String::new()),
    ];
    for (n, (case, cert_text, key_text)) in bad.into_iter().enumerate() {
        std::fs::write(&key, key_text).unwrap();
        std::fs::write(&cert, cert_text).unwrap();
        server.signal("HUP");
        let log = wait_for_log(&server, "TLS certificate not reloaded", n + 1);
        let line = log
            .lines()
            .filter(|l| l.contains("TLS certificate not reloaded"))
            .nth(n)
            .unwrap();
        assert!(line.contains("ERROR"), "{case}: {line}");
        assert!(
            line.contains(&*cert.to_string_lossy()) || line.contains(&*key.to_string_lossy()),
            "{case}: {line}"
        );
        let mut after = Conn::open(&server.url, &pki.ca_pem());
        assert_eq!(after.served(), second.der, "{case}");
        assert_eq!(after.health(), 200, "{case}");
    }
    assert_eq!(open.health(), 200);
    assert_eq!(fresh.health(), 200);
    let log = server.log();
    assert_eq!(log.matches("TLS certificate reloaded").count(), 1, "{log}");
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn stalled_handshakes_time_out_and_are_shed_when_the_server_is_full() {
    let pki = Pki::new("envsync test CA");
    let (cert, key) = pki.install(&pki.local("envsync test server", 1), "server");

    // Full of connections that never start their handshake: the one silent for longest is
    // closed to make room, well before its header timeout.
    let full = Server::start_tls(
        &cert,
        &key,
        &["--max-connections", "2", "--header-timeout", "60s"],
    );
    let mut silent: Vec<TcpStream> = (0..2)
        .map(|_| {
            // Apart in time, so which one has been silent for longest is not a tie.
            std::thread::sleep(Duration::from_millis(50));
            TcpStream::connect(authority(&full.url)).unwrap()
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    let mut conn = Conn::open(&full.url, &pki.ca_pem());
    assert_eq!(conn.health(), 200);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "answered only after {:?}",
        started.elapsed()
    );
    silent[0]
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(silent[0].read(&mut buf).unwrap(), 0, "the oldest was shed");

    // A handshake that stalls halfway is closed by the header timeout.
    let quick = Server::start_tls(&cert, &key, &["--header-timeout", "1s"]);
    let mut stalled = TcpStream::connect(authority(&quick.url)).unwrap();
    // The first bytes of a TLS record header (a handshake record), then nothing.
    stalled.write_all(&[0x16, 0x03, 0x01]).unwrap();
    stalled
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let started = Instant::now();
    let read = stalled.read(&mut buf);
    assert!(
        matches!(read, Ok(0))
            || read.is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "still open"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    drop(silent.pop());
}

#[test]
fn unusable_certificate_files_refuse_to_start_with_one_line_and_leave_nothing_behind() {
    let pki = Pki::new("envsync test CA");
    let good = pki.local("envsync test server", 1);
    let other = pki.local("another server", 2);
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let cert = write("cert.pem", &good.cert_pem);
    let key = write("key.pem", &good.key_pem);
    let other_key = write("other.key", &other.key_pem);
    let garbage = write("garbage.pem", "-----BEGIN CERTIFICATE-----\nnot base64!\n");
    let missing = dir.path().join("missing.pem");
    let cases: [(&str, &Path, &Path, &str); 5] = [
        (
            "missing certificate",
            &missing,
            &key,
            "error: cannot read the TLS certificate",
        ),
        (
            "missing key",
            &cert,
            &missing,
            "error: cannot read the TLS key",
        ),
        ("not PEM", &garbage, &key, "is not valid PEM"),
        (
            "key for another certificate",
            &cert,
            &other_key,
            "is not the key of the certificate",
        ),
        (
            "certificate as key",
            &cert,
            &cert,
            "holds no PEM private key",
        ),
    ];
    for (case, cert, key, expected) in cases {
        // A first start without ENVSYNC_JWT_SECRET: the refusal comes before the secret
        // and the database are created, so a later start still prints the owner token.
        let db = dir.path().join(format!("{}.db", case.replace(' ', "-")));
        let out = std::process::Command::new(envsync_tests::binary("envsync-server"))
            .env_remove("ENVSYNC_JWT_SECRET")
            .args(["--addr", "127.0.0.1:0", "--db"])
            .arg(&db)
            .arg("--tls-cert")
            .arg(cert)
            .arg("--tls-key")
            .arg(key)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{case}: {stderr}");
        assert!(stderr.contains(expected), "{case}: {stderr}");
        assert!(stderr.starts_with("error: "), "{case}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{case}: {stderr}");
        assert!(!stderr.contains("PRIVATE KEY"), "{case}: {stderr}");
        assert!(out.stdout.is_empty(), "{case}");
        assert!(!db.exists(), "{case}: the database was created");
        let secret = PathBuf::from(format!("{}.jwt.secret", db.display()));
        assert!(!secret.exists(), "{case}: the secret was written");
    }
}
