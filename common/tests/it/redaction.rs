//! Every type of `envsync-common` that holds a secret prints a redaction marker, and never
//! the secret, under `{:?}` and `{:#?}` (docs/testing.md J2). age's own identity types have no
//! `Debug` at all, so nothing that holds one can print it by accident either.

#![allow(clippy::unwrap_used)]

use envsync_common::api::TokenResponse;
use envsync_common::envelope::{self, Binding, EnvelopeError, Open, Seal};
use envsync_common::secret::{SecretBytes, SecretString, Token};
use envsync_common::{envdoc, envfile};
use envsync_tests::redaction::{SENTINEL, assert_redacted as redacted};

#[test]
fn secret_holders_print_redacted() {
    let pass = SecretString::from(SENTINEL.to_owned());
    redacted("SecretString", &pass);
    redacted("Token", &Token::new(SENTINEL).unwrap());
    redacted(
        "SecretBytes",
        &SecretBytes::new(SENTINEL.as_bytes().to_vec()),
    );
    redacted(
        "Seal::Passphrase",
        &Seal::Passphrase {
            passphrase: &pass,
            work_factor: 10,
        },
    );
    redacted(
        "Open::Passphrase",
        &Open::Passphrase {
            passphrase: &pass,
            max_work_factor: 10,
        },
    );
    let identity = age::x25519::Identity::generate();
    redacted(
        "Open::Identities",
        &Open::Identities(std::slice::from_ref(&identity)),
    );

    let file = format!("KEY={SENTINEL}\nexport OTHER=\"{SENTINEL}\"\n");
    let entries = envfile::entries(file.as_bytes()).unwrap();
    redacted("Entry", &entries[0]);
    redacted("Vec<Entry>", &entries);
    let mut doc = envdoc::Document::parse(
        format!("# OLD={SENTINEL}\n{file}B='{SENTINEL}\n{SENTINEL}'\n").as_bytes(),
    )
    .unwrap();
    redacted("Document", &doc);
    doc.set("KEY", format!("{SENTINEL} it's").as_bytes())
        .unwrap();
    doc.insert("NEW", SENTINEL.as_bytes(), envdoc::Anchor::After("KEY"))
        .unwrap();
    redacted("Document after edits", &doc);
    redacted("Document::template", &doc.template());
    redacted("Document::variables", &doc.variables());
    let listed = format!("{:?}", doc.entries());
    assert!(!listed.contains(SENTINEL), "{listed}");

    let armored = envelope::seal(
        &Binding::new("p", "main", 1),
        file.as_bytes(),
        &Seal::Passphrase {
            passphrase: &pass,
            work_factor: 10,
        },
    )
    .unwrap();
    let opened = envelope::open(
        &armored,
        &Open::Passphrase {
            passphrase: &pass,
            max_work_factor: 10,
        },
    )
    .unwrap();
    redacted("Opened", &opened);

    redacted(
        "TokenResponse",
        &TokenResponse {
            token: SENTINEL.to_owned(),
            jti: "jti-1".into(),
            expires_at: "2030-01-01T00:00:00Z".into(),
        },
    );
}

#[test]
fn errors_never_hold_the_secret() {
    let pass = SecretString::from(SENTINEL.to_owned());
    let armored = envelope::seal(
        &Binding::new("p", "main", 1),
        format!("A={SENTINEL}\n").as_bytes(),
        &Seal::Passphrase {
            passphrase: &pass,
            work_factor: 10,
        },
    )
    .unwrap();
    let wrong = SecretString::from(format!("{SENTINEL}-wrong"));
    let err: EnvelopeError = envelope::open(
        &armored,
        &Open::Passphrase {
            passphrase: &wrong,
            max_work_factor: 10,
        },
    )
    .unwrap_err();
    for shown in [err.to_string(), format!("{err:?}"), format!("{err:#?}")] {
        assert!(!shown.contains(SENTINEL), "{shown}");
    }
    let err = envfile::keys(format!("A=\"{SENTINEL}\nB={SENTINEL}").as_bytes()).unwrap_err();
    for shown in [err.to_string(), format!("{err:?}"), format!("{err:#?}")] {
        assert!(!shown.contains(SENTINEL), "{shown}");
    }
    // An edit refused, including a value typed where a key name goes.
    let mut doc = envdoc::Document::parse(format!("A={SENTINEL}\n").as_bytes()).unwrap();
    let errors = [
        doc.set(&format!("{SENTINEL} x"), b"v").unwrap_err(),
        doc.insert("A", SENTINEL.as_bytes(), envdoc::Anchor::End)
            .unwrap_err(),
        doc.insert("B", SENTINEL.as_bytes(), envdoc::Anchor::After("NONE"))
            .unwrap_err(),
    ];
    for err in errors {
        for shown in [err.to_string(), format!("{err:?}"), format!("{err:#?}")] {
            assert!(!shown.contains(SENTINEL), "{shown}");
        }
    }
}
