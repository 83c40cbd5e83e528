//! Nothing in a value is ever expanded or executed (docs/testing.md H3): not by pull, which
//! writes the pushed bytes whatever the puller's environment, and not by run, which sets
//! each variable to its literal value.

#![allow(clippy::unwrap_used)]

use envsync_tests::{Dev, Run, Server};
use std::path::Path;

const ENV: &str = "A=$(touch pwned-a)\n\
B=`touch pwned-b`\n\
C=\"${HOME}/$(touch pwned-c)\"\n\
D='$USER $PATH'\n\
E=\"\\$HOME\"\n\
F=${A:-$(touch pwned-f)}\n\
G=\"`touch pwned-g`\"\n";

fn pwned(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("pwned") {
            found.push(name);
        }
    }
    found
}

#[test]
fn values_are_never_expanded_or_executed() {
    let server = Server::start();
    let alice = Dev::new(&server, "literal");
    alice.write_env(ENV);
    alice.envsync(&["push"]).clean().ok();

    // A machine whose environment holds every name the values mention.
    let bob = Dev::clone_of(&alice, &server, "bob@example.com");
    let mut cmd = bob.envsync_cmd(&["pull"]);
    cmd.env("USER", "mallory")
        .env("A", "from-env")
        .env("HOME", "/nonexistent");
    let out = Run::from(cmd.output().unwrap());
    assert_eq!(out.code, 0, "{out:#?}");
    assert_eq!(bob.read_env().unwrap(), ENV.as_bytes());

    let out = bob
        .envsync(&[
            "run",
            "--",
            "sh",
            "-c",
            "printf '%s|%s|%s|%s|%s|%s|%s' \"$A\" \"$B\" \"$C\" \"$D\" \"$E\" \"$F\" \"$G\"",
        ])
        .ok();
    assert_eq!(
        out.stdout,
        // (Backticks around a whole value are quotes in dotenv files, as in B.)
        "$(touch pwned-a)|touch pwned-b|${HOME}/$(touch pwned-c)|$USER $PATH|$HOME|${A:-$(touch pwned-f)}|`touch pwned-g`"
    );
    for dir in [&alice.repo, &bob.repo, &bob.home, &alice.home] {
        assert_eq!(pwned(dir), Vec::<String>::new(), "{}", dir.display());
    }
}
