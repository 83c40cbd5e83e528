//! A malicious server: a proxy in front of the real server that swaps blobs between
//! branches and projects, rolls versions back, lies about key names, damages ciphertexts
//! and serves hostile age headers. Each lie must be caught by the real CLI with one clear
//! error line and a non-zero exit, leaving the env file byte-identical (or absent) and no
//! temp file behind. docs/testing.md A1–A3, A5–A7, A9.

#![allow(clippy::unwrap_used)]

use envsync_common::envelope;
use envsync_tests::armor::{armor, dearmor};
use envsync_tests::proxy::{Proxy, Request, Upstream};
use envsync_tests::{Dev, Response, Run, Server};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// What a developer's work tree looked like before a lie: the env file and the names in
/// the repository root.
struct Snapshot {
    env: Option<Vec<u8>>,
    names: Vec<PathBuf>,
}

fn root_names(dev: &Dev) -> Vec<PathBuf> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dev.repo)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    names
}

fn snapshot(dev: &Dev) -> Snapshot {
    Snapshot {
        env: dev.read_env(),
        names: root_names(dev),
    }
}

#[track_caller]
fn assert_untouched(dev: &Dev, before: &Snapshot, run: &Run) {
    // Shown with --nocapture: the exact lines a user would read.
    eprint!("{}", run.stderr);
    assert!(
        dev.read_env() == before.env,
        "the env file changed: {run:#?}"
    );
    assert_eq!(root_names(dev), before.names, "files appeared: {run:#?}");
    assert_eq!(dev.temp_files(), Vec::<PathBuf>::new(), "{run:#?}");
}

/// Which lie the proxy tells; 0 means none.
#[derive(Clone, Default)]
struct Lie(Arc<AtomicUsize>);

impl Lie {
    fn set(&self, n: usize) {
        self.0.store(n, Ordering::SeqCst);
    }
    fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// A proxy in front of `server` whose answers come from `rule(n, request, upstream)`,
/// `n` being the lie set on the returned [`Lie`] at the time of the request.
fn liar(
    server: &Server,
    rule: impl Fn(usize, &Request, &Upstream) -> Response + Send + Sync + 'static,
) -> (Lie, Proxy) {
    let lie = Lie::default();
    let proxy = Proxy::start(&server.url, {
        let lie = lie.clone();
        move |req, up: &Upstream| rule(lie.get(), req, up)
    });
    (lie, proxy)
}

/// A JSON answer rewritten by `f`.
fn rewrite(resp: Response, f: impl FnOnce(&mut serde_json::Value)) -> Response {
    if resp.status != 200 {
        return resp;
    }
    let mut v: serde_json::Value = serde_json::from_str(&resp.body).unwrap();
    f(&mut v);
    Response {
        status: 200,
        body: v.to_string(),
    }
}

fn is_keys(req: &Request) -> bool {
    req.path.split('?').next().unwrap().ends_with("/keys")
}

/// A clone of `alice`'s repository that talks to the server through `proxy`.
fn behind(proxy: &Proxy, alice: &Dev, server: &Server, email: &str) -> Dev {
    let mut dev = Dev::clone_of(alice, server, email);
    dev.server_url = proxy.url.clone();
    dev
}

/// Where the binary age header ends (just after the `--- MAC` line).
fn header_end(binary: &[u8]) -> usize {
    let mac = binary.windows(4).position(|w| w == b"\n---").unwrap() + 1;
    mac + binary[mac..].iter().position(|&b| b == b'\n').unwrap() + 1
}

#[test]
fn blob_of_another_branch_is_refused() {
    let server = Server::start();
    let alice = Dev::new(&server, "swap");
    alice.write_env("A=main1\n");
    alice.envsync(&["push"]).ok();
    alice.write_env("A=main2\n");
    alice.envsync(&["push"]).ok();
    alice.write_env("A=feature\n");
    alice.envsync(&["push", "--branch", "feature/x"]).ok();

    let (lie, proxy) = liar(&server, move |n, req, up| match n {
        0 => up.pass(req),
        _ => up.send(
            &req.method,
            &req.path.replace("/env/swap/feature%2Fx", "/env/swap/main"),
            req,
        ),
    });
    let bob = behind(&proxy, &alice, &server, "bob@example.com");
    bob.git(&["checkout", "-q", "-b", "feature/x"]);
    bob.envsync(&["pull"]).clean().ok();
    assert_eq!(bob.read_env().unwrap(), b"A=feature\n");
    let fresh = behind(&proxy, &alice, &server, "carol@example.com");
    fresh.git(&["checkout", "-q", "-b", "feature/x"]);

    lie.set(1);
    for dev in [&bob, &fresh] {
        let before = snapshot(dev);
        let out = dev.envsync(&["pull"]).refused().code(1);
        assert!(out.stderr.contains("integrity check failed"), "{out:#?}");
        assert!(
            out.stderr
                .contains("bound to branch 'main' but 'feature/x'"),
            "{out:#?}"
        );
        assert_untouched(dev, &before, &out);
        // `run` decrypts the same way when it reads the server (a clone with no file of
        // its own) and must refuse too, before running anything.
        if dev.read_env().is_none() {
            let out = dev.envsync(&["run", "--", "touch", "ran"]).refused();
            assert!(!dev.repo.join("ran").exists(), "{out:#?}");
        }
    }

    // The refusals left no poisoned state: the honest server works again.
    lie.set(0);
    fresh.envsync(&["pull"]).clean().ok();
    assert_eq!(fresh.read_env().unwrap(), b"A=feature\n");
}

#[test]
fn blob_of_another_project_is_refused() {
    let server = Server::start();
    let alice = Dev::new(&server, "alpha");
    alice.write_env("A=alpha\n");
    alice.envsync(&["push"]).ok();
    let other = Dev::new(&server, "beta");
    other.write_env("A=beta1\n");
    other.envsync(&["push"]).ok();
    other.write_env("A=beta2\n");
    other.envsync(&["push"]).ok();

    let (lie, proxy) = liar(&server, move |n, req, up| match n {
        0 => up.pass(req),
        _ => up.send(
            &req.method,
            &req.path.replace("/env/alpha/", "/env/beta/"),
            req,
        ),
    });
    // A token for both projects, so the real server answers the swapped requests.
    let both = server.token("bob@example.com", "developer", &["alpha", "beta"]);
    let mut bob = behind(&proxy, &alice, &server, "bob@example.com");
    bob.token = both.clone();
    bob.envsync(&["pull"]).clean().ok();
    let mut fresh = behind(&proxy, &alice, &server, "carol@example.com");
    fresh.token = both;

    lie.set(1);
    for dev in [&bob, &fresh] {
        let before = snapshot(dev);
        let out = dev.envsync(&["pull"]).refused().code(1);
        assert!(
            out.stderr.contains("bound to project 'beta' but 'alpha'"),
            "{out:#?}"
        );
        assert_untouched(dev, &before, &out);
    }
    assert_eq!(bob.read_env().unwrap(), b"A=alpha\n");
}

/// The lies of a server that rolls `main` of project `rb` back to version 1.
fn rollback_lies(lie: usize, req: &Request, up: &Upstream) -> Response {
    let v1 = "/env/rb/main?version=1";
    let path = req.path.as_str();
    match lie {
        // Version 1 offered as the latest, both in the key list and the blob.
        1 if is_keys(req) => rewrite(up.send("GET", v1, req), |v| {
            v.as_object_mut()
                .unwrap()
                .retain(|k, _| k == "version" || k == "keys");
        }),
        1 if path.starts_with("/env/rb/main") => up.send("GET", v1, req),
        // The key list says 2 (true); the blob served is version 1, labelled as such.
        2 if path.starts_with("/env/rb/main?") => up.send("GET", v1, req),
        // The key list says 2; version 1's blob is served labelled as version 2.
        3 if path.starts_with("/env/rb/main?") => {
            rewrite(up.send("GET", v1, req), |v| v["version"] = 2.into())
        }
        _ => up.pass(req),
    }
}

#[test]
fn rollback_is_refused() {
    let server = Server::start();
    let alice = Dev::new(&server, "rb");
    alice.write_env("A=1\n");
    alice.envsync(&["push"]).ok();
    alice.write_env("A=2\nB=2\n");
    alice.envsync(&["push"]).ok();

    let (lie, proxy) = liar(&server, rollback_lies);
    let bob = behind(&proxy, &alice, &server, "bob@example.com");
    bob.envsync(&["pull"]).clean().ok();
    assert_eq!(bob.read_env().unwrap(), b"A=2\nB=2\n");

    // bob has seen version 2: version 1 offered as the latest is a rollback.
    lie.set(1);
    let before = snapshot(&bob);
    let out = bob.envsync(&["pull"]).refused().code(1);
    assert!(out.stderr.contains("rollback detected"), "{out:#?}");
    assert_untouched(&bob, &before, &out);

    // A clone that never saw version 2 must still not take version 1 when the server's
    // own key list says 2, nor a version other than the one asked for with --version.
    let carol = behind(&proxy, &alice, &server, "carol@example.com");
    for (n, args) in [
        (2, &["pull"][..]),
        (3, &["pull"][..]),
        (2, &["pull", "--version", "2"][..]),
        (3, &["pull", "--version", "2"][..]),
    ] {
        lie.set(n);
        let before = snapshot(&carol);
        let out = carol.envsync(args).refused().code(1);
        let expected = match n {
            2 => "version 1 of main when version 2 was asked for",
            _ => "bound to version '1' but '2'",
        };
        assert!(out.stderr.contains(expected), "lie {n} {args:?}: {out:#?}");
        assert_untouched(&carol, &before, &out);
    }

    lie.set(0);
    carol.envsync(&["pull"]).clean().ok();
    assert_eq!(carol.read_env().unwrap(), b"A=2\nB=2\n");
    // An explicit, honest --version of an older one is allowed.
    carol.envsync(&["pull", "--version", "1"]).clean().ok();
    assert_eq!(carol.read_env().unwrap(), b"A=1\n");
}

#[test]
fn key_list_that_differs_from_the_plaintext_is_an_integrity_error() {
    let server = Server::start();
    let alice = Dev::new(&server, "keys");
    alice.write_env("A=1\nB=2\n");
    alice.envsync(&["push"]).ok();

    let (lie, proxy) = liar(&server, move |n, req, up| {
        let resp = up.pass(req);
        match n {
            // Drop B from every key list.
            1 if req.path.starts_with("/env/keys/") => {
                rewrite(resp, |v| v["keys"] = serde_json::json!(["A"]))
            }
            // Add C to the key list of /keys only.
            2 if is_keys(req) => rewrite(resp, |v| v["keys"] = serde_json::json!(["A", "B", "C"])),
            _ => resp,
        }
    });
    let bob = behind(&proxy, &alice, &server, "bob@example.com");

    // A clone that has never synced: the key list comes with the blob.
    lie.set(1);
    let before = snapshot(&bob);
    let out = bob.envsync(&["pull"]).refused().code(1);
    assert!(out.stderr.contains("integrity check failed"), "{out:#?}");
    assert!(out.stderr.contains("key list"), "{out:#?}");
    assert!(
        !out.stderr.contains("Missing"),
        "not reported as drift: {out:#?}"
    );
    assert_untouched(&bob, &before, &out);
    let out = bob.envsync(&["run", "--", "true"]).refused().code(1);
    assert!(out.stderr.contains("key list"), "{out:#?}");

    // A clone that has synced: the content comes from its local copy, the key list from
    // /keys, and they must still agree.
    lie.set(0);
    bob.envsync(&["pull"]).clean().ok();
    lie.set(2);
    let before = snapshot(&bob);
    let out = bob.envsync(&["pull"]).refused().code(1);
    assert!(out.stderr.contains("key list"), "{out:#?}");
    assert_untouched(&bob, &before, &out);
}

/// Damages to a stored ciphertext, applied to the binary age file.
fn tamper(case: usize, binary: &[u8]) -> Vec<u8> {
    let mut b = binary.to_vec();
    let header = header_end(&b);
    let flip = |b: &mut Vec<u8>, at: usize| b[at] ^= 0x01;
    match case {
        // The scrypt stanza's salt.
        1 => flip(&mut b, "age-encryption.org/v1\n-> scrypt ".len() + 3),
        // The stanza body (the wrapped file key).
        2 => flip(&mut b, header - 60),
        // The header MAC.
        3 => flip(&mut b, header - 5),
        // The payload nonce.
        4 => flip(&mut b, header + 3),
        // The first byte of the (only, hence last) chunk's ciphertext.
        5 => flip(&mut b, header + 16),
        // The last byte of the file: the last chunk's tag.
        6 => {
            let last = b.len() - 1;
            flip(&mut b, last);
        }
        // Truncated by one byte, by a whole tag, and to the header alone.
        7 => b.truncate(b.len() - 1),
        8 => b.truncate(b.len() - 17),
        9 => b.truncate(header + 16),
        // A byte appended.
        10 => b.push(0),
        // The stanza's type: `scrypt` becomes an unknown recipient type.
        11 => flip(&mut b, "age-encryption.org/v1\n-> ".len()),
        _ => unreachable!(),
    }
    b
}

const TAMPER_CASES: usize = 11;

#[test]
fn damaged_or_truncated_ciphertext_is_refused() {
    let server = Server::start();
    let alice = Dev::new(&server, "flip");
    alice.write_env("A=1\n");
    alice.envsync(&["push"]).ok();

    let (lie, proxy) = liar(&server, move |case, req, up| {
        let resp = up.pass(req);
        if case == 0 || is_keys(req) || !req.path.starts_with("/env/flip/main") {
            return resp;
        }
        assert!(!req.path.contains("/versions"), "unexpected {}", req.path);
        rewrite(resp, |v| {
            let binary = dearmor(v["ciphertext"].as_str().unwrap());
            let damaged = match case {
                // Damage to the armor itself: the end marker and a base64 line.
                100 => v["ciphertext"]
                    .as_str()
                    .unwrap()
                    .replace("-----END", "-----BAD"),
                101 => {
                    let armored = v["ciphertext"].as_str().unwrap();
                    let (first, rest) = armored.split_once('\n').unwrap();
                    format!("{first}\n*{}", &rest[1..])
                }
                n => armor(&tamper(n, &binary)),
            };
            v["ciphertext"] = damaged.into();
        })
    });
    let bob = behind(&proxy, &alice, &server, "bob@example.com");
    bob.envsync(&["pull"]).clean().ok();
    alice.write_env("A=2\nSECRET=xyz\n");
    alice.envsync(&["push"]).ok();
    let carol = behind(&proxy, &alice, &server, "carol@example.com");

    for case in (1..=TAMPER_CASES).chain([100, 101]) {
        lie.set(case);
        for dev in [&bob, &carol] {
            let before = snapshot(dev);
            let out = dev.envsync(&["pull"]).refused();
            assert!(
                out.stderr.contains("cannot decrypt"),
                "case {case}: {out:#?}"
            );
            assert_untouched(dev, &before, &out);
        }
    }
    lie.set(0);
    carol.envsync(&["pull"]).clean().ok();
    assert_eq!(carol.read_env().unwrap(), b"A=2\nSECRET=xyz\n");
}

/// Runs `git envsync ARGS` with at most `kib` KiB of address space.
fn envsync_limited(dev: &Dev, kib: u64, args: &[&str]) -> Run {
    let exe = envsync_tests::binary("git-envsync");
    let base = dev.envsync_cmd(&[]);
    let mut cmd = std::process::Command::new("sh");
    cmd.env_clear()
        .envs(base.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))))
        .current_dir(&dev.repo)
        .stdin(std::process::Stdio::null())
        .arg("-c")
        .arg(format!("ulimit -v {kib}; exec \"$0\" \"$@\""))
        .arg(&exe)
        .args(args);
    Run::from(cmd.output().unwrap())
}

/// A passphrase file whose scrypt stanza claims work factor `wf`, nothing else changed.
fn raise_work_factor(binary: &[u8], wf: usize) -> Vec<u8> {
    let end = header_end(binary);
    let text = String::from_utf8_lossy(&binary[..end]).into_owned();
    let scrypt_line = text.lines().nth(1).unwrap();
    assert!(scrypt_line.starts_with("-> scrypt "), "{text}");
    let (stanza, _) = scrypt_line.rsplit_once(' ').unwrap();
    let mut forged = text
        .replace(scrypt_line, &format!("{stanza} {wf}"))
        .into_bytes();
    forged.extend_from_slice(&binary[end..]);
    forged
}

#[test]
fn hostile_scrypt_headers_are_refused_without_the_work() {
    let server = Server::start();
    let alice = Dev::new(&server, "wf");
    alice.write_env("A=1\n");
    alice.envsync(&["push"]).ok();
    // A team-mode file whose X25519 stanza can be put next to the scrypt one.
    let stranger = age::x25519::Identity::generate();
    let x25519 = dearmor(
        &envelope::seal(
            &envelope::Binding::new("wf", "main", 1),
            b"A=1\n",
            &envelope::Seal::Recipients(&[stranger.to_public()]),
        )
        .unwrap(),
    );
    let x25519_stanza: Vec<u8> = {
        let text = &x25519[..header_end(&x25519)];
        let start = text.windows(3).position(|w| w == b"-> ").unwrap();
        let end = text.windows(4).position(|w| w == b"\n---").unwrap() + 1;
        text[start..end].to_vec()
    };

    let (lie, proxy) = liar(&server, move |case, req, up| {
        let resp = up.pass(req);
        if case == 0 || is_keys(req) {
            return resp;
        }
        rewrite(resp, |v| {
            let binary = dearmor(v["ciphertext"].as_str().unwrap());
            let forged = match case {
                // Only the header's work factor is raised: the cap must stop it
                // before scrypt runs.
                23 | 30 => raise_work_factor(&binary, case),
                // An X25519 stanza before, or after, the scrypt stanza.
                _ => {
                    let end = header_end(&binary);
                    let text = String::from_utf8_lossy(&binary[..end]).into_owned();
                    let stanza = String::from_utf8_lossy(&x25519_stanza);
                    let mut forged = if case == 1 {
                        text.replacen("-> scrypt", &format!("{stanza}-> scrypt"), 1)
                    } else {
                        text.replacen("---", &format!("{stanza}---"), 1)
                    }
                    .into_bytes();
                    forged.extend_from_slice(&binary[end..]);
                    forged
                }
            };
            v["ciphertext"] = armor(&forged).into();
        })
    });
    let bob = behind(&proxy, &alice, &server, "bob@example.com");

    for case in [23, 30, 1, 2] {
        lie.set(case);
        let before = snapshot(&bob);
        let start = Instant::now();
        // 2 GiB of address space: scrypt at 2^23 needs 8 GiB, at 2^30 1 TiB.
        let out = envsync_limited(&bob, 2 << 20, &["pull"]).refused().code(1);
        let took = start.elapsed();
        assert!(took < Duration::from_secs(20), "did not hang: {took:?}");
        let expected = match case {
            23 | 30 => format!("work factor {case}, above the accepted maximum 22"),
            _ => "invalid header".to_owned(),
        };
        assert!(out.stderr.contains(&expected), "case {case}: {out:#?}");
        assert_untouched(&bob, &before, &out);
    }
}

#[test]
fn the_same_env_sealed_twice_differs_and_opens_identically() {
    let one = Server::start();
    let two = Server::start();
    let content = b"API_KEY=abc\nexport DEBUG=1\n";
    let mut blobs = Vec::new();
    for server in [&one, &two] {
        let alice = Dev::new(server, "twice");
        alice.write_env(content);
        alice.envsync(&["push"]).ok();
        let r = server.request("GET", "/env/twice/main", &alice.token, None);
        blobs.push(r.json()["ciphertext"].as_str().unwrap().to_owned());
        let bob = Dev::clone_of(&alice, server, "bob@example.com");
        bob.envsync(&["pull"]).clean().ok();
        assert_eq!(bob.read_env().unwrap(), content);
    }
    // Same project, branch, version and bytes: only the randomness differs.
    assert_ne!(blobs[0], blobs[1]);
    assert_ne!(dearmor(&blobs[0]), dearmor(&blobs[1]));
}

/// A server that answers without end (chunked, no length) or announces an answer
/// over the client's bound gets exit 3 and one error line; the client never reads it all.
#[test]
fn an_answer_over_the_client_s_bound_is_refused_with_exit_3() {
    use std::net::TcpListener;
    let server = Server::start();
    let alice = Dev::new(&server, "flood");
    for announced in [false, true] {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let sent = Arc::new(AtomicUsize::new(0));
        let counter = sent.clone();
        let flood = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let head = if announced {
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1073741824\r\n\r\n"
            } else {
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            };
            let _ = stream.write_all(head.as_bytes());
            let chunk = vec![b' '; 1 << 20];
            let framed = [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat();
            // Up to 1 GiB, until the client hangs up.
            for _ in 0..1024 {
                let sent_ok = if announced {
                    stream.write_all(&chunk)
                } else {
                    stream.write_all(&framed)
                };
                if sent_ok.is_err() {
                    break;
                }
                counter.fetch_add(1, Ordering::Relaxed);
            }
        });
        let mut dev = Dev::clone_of(&alice, &server, "bob@example.com");
        dev.server_url = url;
        let out = dev.envsync(&["log"]).refused().code(3);
        assert!(
            out.stderr.contains("sent an answer over 32 MiB"),
            "{out:#?}"
        );
        flood.join().unwrap();
        let mib = sent.load(Ordering::Relaxed);
        assert!(mib < 100, "the client read {mib} MiB before refusing");
    }
}

/// `rollback` and `rotate` open versions through the same verified read as `pull`: a
/// server that swaps in another branch's blob, or lies about a version's key names,
/// makes them refuse before anything is pushed or written.
#[test]
fn rollback_and_rotate_refuse_what_pull_refuses() {
    let server = Server::start();
    let alice = Dev::new(&server, "rr");
    alice.write_env("A=1\n");
    alice.envsync(&["push"]).ok();
    alice.write_env("A=2\nB=2\n");
    alice.envsync(&["push"]).ok();
    alice.write_env("OTHER=1\n");
    alice.envsync(&["push", "--branch", "other"]).ok();

    let (lie, proxy) = liar(&server, move |n, req, up| {
        let blob = req.method == "GET" && req.path.starts_with("/env/rr/main?") && !is_keys(req);
        match n {
            // Another branch's version 1, for any version of main asked for.
            1 if blob => up.send("GET", "/env/rr/other?version=1", req),
            // The right blob with a key list that is not its own.
            2 if blob => rewrite(up.pass(req), |v| {
                v["keys"] = serde_json::json!(["A", "B", "C"])
            }),
            // Version 1 served when version 2 was asked for.
            3 if blob => up.send("GET", "/env/rr/main?version=1", req),
            // Another branch's blob, relabelled as the version asked for.
            4 if blob => {
                let asked: u64 = req.path.rsplit('=').next().unwrap().parse().unwrap();
                rewrite(up.send("GET", "/env/rr/other?version=1", req), |v| {
                    v["version"] = asked.into()
                })
            }
            _ => up.pass(req),
        }
    });
    let bob = behind(&proxy, &alice, &server, "bob@example.com");
    bob.envsync(&["pull"]).clean().ok();
    let versions = || {
        let r = server.request("GET", "/env/rr/main/versions", &alice.token, None);
        r.json()["versions"].as_array().unwrap().len()
    };
    for (n, expected) in [(1, "bound to branch 'other' but 'main'"), (2, "key list")] {
        lie.set(n);
        let before = snapshot(&bob);
        let out = bob.envsync(&["rollback", "1"]).refused().code(1);
        assert!(out.stderr.contains(expected), "rollback, lie {n}: {out:#?}");
        assert_untouched(&bob, &before, &out);
        assert_eq!(versions(), 2, "rollback pushed after lie {n}");
    }
    for (n, expected) in [
        (1, "when version 2 was asked for"),
        (4, "bound to branch 'other' but 'main'"),
        (2, "key list"),
        (3, "version 1 of main when version 2 was asked for"),
    ] {
        lie.set(n);
        let before = snapshot(&bob);
        let mut cmd = bob.envsync_cmd(&["rotate"]);
        cmd.env("ENVSYNC_NEW_PASS", "a brand new passphrase");
        let out = Run::from(cmd.output().unwrap()).clean();
        assert_eq!(out.code, 1, "rotate, lie {n}: {out:#?}");
        assert!(out.stderr.contains(expected), "rotate, lie {n}: {out:#?}");
        assert_untouched(&bob, &before, &out);
        assert_eq!(versions(), 2, "rotate pushed after lie {n}");
    }
    // Honest again: both work.
    lie.set(0);
    bob.envsync(&["rollback", "1"]).clean().ok();
    assert_eq!(versions(), 3);
}

/// The rest of pull's lies, told to `rollback` and `rotate`: an older version served as
/// the latest to a clone that has seen a newer one, another project's blob, one flipped
/// byte of ciphertext, and a scrypt header claiming a work factor of 30 (run with 2 GiB
/// of address space: scrypt at 2^30 would need 1 TiB). Each is refused with one error
/// line; the work tree is untouched and the server holds the versions it had.
#[test]
fn rollback_and_rotate_refuse_the_rest_of_pulls_lies() {
    let server = Server::start();
    let both = server.token("bob@example.com", "developer", &["rr2", "rr2-other"]);
    let alice = Dev::new(&server, "rr2");
    alice.write_env("A=1\n");
    alice.envsync(&["push"]).ok();
    alice.write_env("A=2\nB=2\n");
    alice.envsync(&["push"]).ok();
    let other = Dev::new(&server, "rr2-other");
    for content in ["A=other1\n", "A=other2\nB=other2\n"] {
        other.write_env(content);
        other.envsync(&["push"]).ok();
    }

    let (lie, proxy) = liar(&server, move |n, req, up| {
        let path = req.path.as_str();
        let blob = req.method == "GET" && path.starts_with("/env/rr2/main?") && !is_keys(req);
        match n {
            // Rolled back to version 1: the key list and the branch listing say so.
            1 if is_keys(req) && path.starts_with("/env/rr2/main/") => {
                rewrite(up.send("GET", "/env/rr2/main?version=1", req), |v| {
                    v.as_object_mut()
                        .unwrap()
                        .retain(|k, _| k == "version" || k == "keys");
                })
            }
            1 if path.starts_with("/env/rr2?") => rewrite(up.pass(req), |v| {
                for b in v["branches"].as_array_mut().unwrap() {
                    if b["branch"] == "main" {
                        b["version"] = 1.into();
                    }
                }
            }),
            // The same version of another project.
            2 if blob => up.send("GET", &path.replace("/env/rr2/", "/env/rr2-other/"), req),
            // One byte of the (only) chunk's ciphertext flipped.
            3 if blob => rewrite(up.pass(req), |v| {
                let binary = dearmor(v["ciphertext"].as_str().unwrap());
                v["ciphertext"] = armor(&tamper(5, &binary)).into();
            }),
            // A header that claims scrypt work factor 30.
            4 if blob => rewrite(up.pass(req), |v| {
                let binary = dearmor(v["ciphertext"].as_str().unwrap());
                v["ciphertext"] = armor(&raise_work_factor(&binary, 30)).into();
            }),
            _ => up.pass(req),
        }
    });
    let mut bob = behind(&proxy, &alice, &server, "bob@example.com");
    bob.token = both;
    bob.env.push((
        "ENVSYNC_NEW_PASS".to_owned(),
        "a brand new passphrase".to_owned(),
    ));
    bob.envsync(&["pull"]).clean().ok();
    let reader = server.token("reader@example.com", "readonly", &["rr2", "rr2-other"]);
    let versions = |project: &str| {
        let path = format!("/env/{project}/main/versions");
        let r = server.request("GET", &path, &reader, None);
        r.json()["versions"].as_array().unwrap().len()
    };
    let lies = [
        (1, "rollback detected"),
        (2, "bound to project 'rr2-other' but 'rr2'"),
        (3, "cannot decrypt"),
        (4, "work factor 30, above the accepted maximum 22"),
    ];
    for args in [&["rollback", "1"][..], &["rotate"][..]] {
        for (n, expected) in lies {
            lie.set(n);
            let before = snapshot(&bob);
            let out = envsync_limited(&bob, 2 << 20, args).refused().code(1);
            assert!(out.stderr.contains(expected), "{args:?}, lie {n}: {out:#?}");
            assert_untouched(&bob, &before, &out);
            assert_eq!(versions("rr2"), 2, "{args:?} pushed after lie {n}");
            assert_eq!(versions("rr2-other"), 2, "{args:?} pushed after lie {n}");
        }
    }
    // Honest again: both work.
    lie.set(0);
    bob.envsync(&["rollback", "1"]).clean().ok();
    assert_eq!(versions("rr2"), 3);
    bob.envsync(&["rotate"]).clean().ok();
    assert_eq!(versions("rr2"), 4);
}
