//! Property tests: the envelope round-trips any bytes, the key extractor never panics and
//! finds the names of generated files in every quoting style, and any change to the
//! binding fails verification.

#![allow(clippy::unwrap_used)]

use envsync_common::envelope::{self, Binding, Open, Seal};
use envsync_common::envfile;
use envsync_common::secret::SecretString;
use proptest::prelude::*;

fn config() -> ProptestConfig {
    // Each case of the envelope properties pays an scrypt at work factor 10; keep CI lean.
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(64);
    ProptestConfig::with_cases(cases)
}

fn key_name() -> impl Strategy<Value = String> {
    "[A-Za-z_][A-Za-z0-9_.-]{0,20}"
}

/// A value and how to write it so a dotenv parser reads it back.
fn rendered() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9_./:@+-]{0,20}".prop_map(|v| v),
        "[A-Za-z0-9 #$=]{0,20}".prop_map(|v| format!("'{v}'")),
        "[A-Za-z0-9 #$='\n]{0,20}".prop_map(|v| format!("\"{v}\"")),
        "[A-Za-z0-9 #$='\"]{0,20}".prop_map(|v| format!("`{v}`")),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn open_seal_round_trips_any_bytes(env in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let pass = SecretString::from("pw".to_owned());
        let binding = Binding::new("p", "feature/x", 1);
        let armored = envelope::seal(&binding, &env, &Seal::Passphrase { passphrase: &pass, work_factor: 10 }).unwrap();
        let opened = envelope::open(&armored, &Open::Passphrase { passphrase: &pass, max_work_factor: 22 }).unwrap();
        prop_assert_eq!(opened.binding, binding);
        prop_assert_eq!(opened.env.expose(), &env[..]);
    }

    #[test]
    fn any_binding_change_fails_verification(
        project in "[a-z0-9]{1,8}", branch in "[a-z0-9/]{1,8}", version in 1u64..1000,
        which in 0usize..3,
    ) {
        let b = Binding::new(project.clone(), branch.clone(), version);
        let other = match which {
            0 => Binding::new(format!("{project}x"), branch, version),
            1 => Binding::new(project, format!("{branch}x"), version),
            _ => Binding::new(project, branch, version + 1),
        };
        prop_assert!(b.verify(&other).is_err());
        prop_assert_eq!(Binding::parse(b.line().trim_end()).unwrap(), b);
    }

    #[test]
    fn extractor_never_panics(src in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(keys) = envfile::keys(&src) {
            // Every name is a substring of the input.
            for k in keys.names {
                prop_assert!(src.windows(k.len()).any(|w| w == k.as_bytes()));
            }
        }
    }

    #[test]
    fn generated_files_give_back_their_names(
        lines in proptest::collection::vec((key_name(), rendered(), any::<bool>(), 0usize..3), 0..30),
    ) {
        let eols = ["\n", "\r\n", "\n# comment\n"];
        let mut src = String::new();
        let mut expected: Vec<String> = Vec::new();
        for (key, value, export, eol) in &lines {
            if *export { src.push_str("export "); }
            src.push_str(&format!("{key}={value}{}", eols[*eol]));
            if !expected.contains(key) { expected.push(key.clone()); }
        }
        let got = envfile::keys(src.as_bytes()).unwrap();
        prop_assert_eq!(got.names, expected);
    }
}
