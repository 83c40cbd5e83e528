//! Where keys come from and which envelope mode a project uses.
//!
//! Passphrase mode (default): the passphrase comes, in this order, from `ENVSYNC_PASS`
//! (read once with the other variables of keys, into [`KeyEnv`], when the
//! [`Context`](crate::context::Context) is resolved),
//! from the agent (`git envsync unlock`, see [`crate::agent`]), or from a no-echo prompt
//! when the command runs in a terminal (never in a hook); never from a flag. The
//! variable comes first because whoever sets it for one command means it for that
//! command; the agent before the prompt because that is what unlocking is for. Team-key mode: `.envsync.toml` lists age X25519
//! recipients and each member decrypts with `$XDG_CONFIG_HOME/envsync/identity.txt`.
//! Team members also sign what they push with `signing.key` (Ed25519, beside the
//! identity), and a read accepts a team-mode version only when a member of the trusted
//! config signed it ([`Keyring::verify_signer`]). Every machine also has `local.key`, an
//! X25519 identity that seals the local copies in `.git/envsync/` so switching branches
//! need not pay scrypt again.

use crate::agent;
use crate::config::{self, ProjectConfig};
use crate::error::{CliError, Result};
use crate::fsutil;
use crate::prompt;
use age::x25519;
use envsync_common::envelope::{
    self, Binding, DEFAULT_MAX_WORK_FACTOR, DEFAULT_WORK_FACTOR, EnvelopeError, MIN_WORK_FACTOR,
    Meta, Open, Opened, Seal,
};
use envsync_common::secret::{ExposeSecret, SecretString, ct_eq};
use envsync_common::signing::SigningKey;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::str::FromStr;

/// Shortest passphrase accepted for new files.
pub const MIN_PASSPHRASE_LEN: usize = 10;

/// What the environment says about keys: read once, when the
/// [`Context`](crate::context::Context) is resolved (or by `doctor`, which runs without
/// one), and handed to the [`Keyring`] and the functions below. Passphrases are kept
/// redacted.
#[derive(Debug, Clone, Default)]
pub struct KeyEnv {
    /// `ENVSYNC_PASS`, when not empty: the passphrase's first source.
    pub pass: Option<SecretString>,
    /// `ENVSYNC_NEW_PASS`, when not empty: `rotate`'s new passphrase.
    pub new_pass: Option<SecretString>,
    /// `ENVSYNC_ALLOW_WEAK_PASS` is set (to anything): short passphrases are allowed.
    pub allow_weak_pass: bool,
    /// `ENVSYNC_INSECURE_WORK_FACTOR` as set (checked where it is used, so that commands
    /// that seal nothing do not fail on it): the work factor of new files, for tests and
    /// benchmarks.
    pub insecure_work_factor: Option<String>,
}

impl KeyEnv {
    /// Reads the variables from the process environment.
    pub fn from_env() -> KeyEnv {
        let secret = |name: &str| {
            std::env::var(name)
                .ok()
                .filter(|p| !p.is_empty())
                .map(SecretString::from)
        };
        KeyEnv {
            pass: secret("ENVSYNC_PASS"),
            new_pass: secret("ENVSYNC_NEW_PASS"),
            allow_weak_pass: std::env::var_os("ENVSYNC_ALLOW_WEAK_PASS").is_some(),
            insecure_work_factor: std::env::var("ENVSYNC_INSECURE_WORK_FACTOR").ok(),
        }
    }
}

/// The key material of one command run, fetched lazily: `diff` and `status` never need it.
pub struct Keyring {
    mode: Mode,
    /// The environment's say (`ENVSYNC_PASS`, `ENVSYNC_ALLOW_WEAK_PASS`).
    env: KeyEnv,
    interactive: bool,
    /// The highest scrypt work factor a file may ask for before it is refused unopened.
    max_work_factor: u8,
    passphrase: Option<SecretString>,
    /// Where `passphrase` came from: the hints of a failure name it.
    source: Option<PassSource>,
    /// The passphrase was typed twice ([`Keyring::confirm_new_passphrase`]).
    confirmed: bool,
    /// The project whose passphrase the agent is asked for.
    project: String,
    identities: Option<Vec<x25519::Identity>>,
    /// The members of the trusted config who may sign (team mode): label and key.
    signers: Vec<(String, envsync_common::signing::SignerKey)>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keyring({:?}, [redacted])", self.mode)
    }
}

/// Where a passphrase came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PassSource {
    Env,
    Agent,
    Prompt,
    /// Handed over by the command (the new passphrase of a rotation).
    Given,
}

#[derive(Debug, Clone)]
pub enum Mode {
    Passphrase { work_factor: u8 },
    Team { recipients: Vec<x25519::Recipient> },
}

impl Keyring {
    /// `interactive` allows a passphrase prompt when stdin is a terminal. Hooks are not
    /// interactive, and they also accept no scrypt work factor above the project's own
    /// (+1 of slack): the contract's cap of 22 still lets a hostile file cost ~11 s and
    /// 4 GiB, which must not happen inside `git checkout`.
    pub fn new(config: &ProjectConfig, env: &KeyEnv, interactive: bool) -> Result<Keyring> {
        let max_work_factor = if interactive {
            DEFAULT_MAX_WORK_FACTOR
        } else {
            (work_factor(config, env)? + 1).min(DEFAULT_MAX_WORK_FACTOR)
        };
        let mode = if config.recipients.is_empty() {
            Mode::Passphrase {
                work_factor: work_factor(config, env)?,
            }
        } else {
            let recipients = config
                .recipients
                .iter()
                .map(|r| {
                    x25519::Recipient::from_str(r.key()).map_err(|e| {
                        CliError::usage(format!(
                            "{}: recipient '{}' is not an age X25519 public key ({e})",
                            config::PROJECT_FILE,
                            r.name().unwrap_or(r.key())
                        ))
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            Mode::Team { recipients }
        };
        let signers = config
            .recipients
            .iter()
            .filter_map(|m| {
                let key = m.signer()?.parse().ok()?;
                Some((m.label().to_owned(), key))
            })
            .collect();
        Ok(Keyring {
            mode,
            env: env.clone(),
            interactive,
            max_work_factor,
            passphrase: None,
            source: None,
            confirmed: false,
            project: config.project.clone(),
            identities: None,
            signers,
        })
    }

    /// A keyring that seals with `passphrase` (rotation to a new passphrase).
    pub fn with_passphrase(
        config: &ProjectConfig,
        env: &KeyEnv,
        passphrase: SecretString,
    ) -> Result<Keyring> {
        Ok(Keyring {
            mode: Mode::Passphrase {
                work_factor: work_factor(config, env)?,
            },
            env: env.clone(),
            interactive: false,
            max_work_factor: DEFAULT_MAX_WORK_FACTOR,
            passphrase: Some(passphrase),
            source: Some(PassSource::Given),
            confirmed: true,
            project: config.project.clone(),
            identities: None,
            signers: Vec::new(),
        })
    }

    /// What new files are sealed for, for people: `a passphrase`, or the members' names.
    pub fn describe_target(&self, config: &ProjectConfig) -> String {
        match &self.mode {
            Mode::Passphrase { .. } => "a passphrase".to_owned(),
            Mode::Team { .. } => {
                let names: Vec<&str> = config.recipients.iter().map(|m| m.label()).collect();
                let shown = if names.len() > 4 {
                    format!("{}, and {} more", names[..3].join(", "), names.len() - 3)
                } else {
                    names.join(", ")
                };
                format!(
                    "{} member{} ({shown})",
                    names.len(),
                    if names.len() == 1 { "" } else { "s" }
                )
            }
        }
    }

    /// A short, non-secret description of what new files are sealed for.
    pub fn target(&self) -> String {
        match &self.mode {
            // The passphrase's verifier (keyed by this machine's key): a rotation to
            // another passphrase is another rotation.
            Mode::Passphrase { .. } => {
                format!("passphrase:{}", self.loaded_verifier().unwrap_or_default())
            }
            Mode::Team { recipients } => {
                let mut keys: Vec<String> = recipients.iter().map(|r| r.to_string()).collect();
                keys.sort();
                format!(
                    "recipients:{}",
                    &fsutil::sha256_hex(keys.join(",").as_bytes())[..16]
                )
            }
        }
    }

    /// Whether opening or sealing will need a secret that is not available without a
    /// prompt (hooks skip instead of prompting): in passphrase mode, `ENVSYNC_PASS` or an
    /// unlocked agent (asked with a short timeout) must have it. The passphrase found is
    /// kept, so that the agent is not asked again when it is used.
    pub fn available_without_prompt(&mut self) -> bool {
        match self.mode {
            Mode::Passphrase { .. } => {
                if self.passphrase.is_none()
                    && let Ok((passphrase, source)) =
                        read_passphrase(&self.env, false, &self.project)
                {
                    self.passphrase = Some(passphrase);
                    self.source = Some(source);
                }
                self.passphrase.is_some()
            }
            Mode::Team { .. } => identity_path().is_ok_and(|p| p.exists()),
        }
    }

    /// Seals `env` bound to `binding`, carrying the project's fingerprint key when given
    /// (signed with it in team mode).
    pub fn seal(
        &mut self,
        binding: &Binding,
        env: &[u8],
        fingerprint_key: Option<&crate::fingerprints::Kept>,
    ) -> Result<String> {
        let armored = match self.mode.clone() {
            Mode::Passphrase { work_factor } => {
                let allow_weak = self.env.allow_weak_pass;
                let passphrase = self.passphrase()?;
                check_strength(passphrase, allow_weak)?;
                envelope::seal_with(
                    binding,
                    env,
                    &Seal::Passphrase {
                        passphrase,
                        work_factor,
                    },
                    &Meta {
                        signer: None,
                        fingerprint_key: fingerprint_key.map(|k| &k.key),
                        fingerprint_generation: fingerprint_key.map_or(0, |k| k.generation),
                    },
                )
            }
            Mode::Team { recipients } => {
                let own: Vec<_> = self.identities()?.iter().map(|i| i.to_public()).collect();
                if !recipients.iter().any(|r| own.contains(r)) {
                    return Err(CliError::refused(
                        "your identity is not among the project's recipients: you could not read back what you push",
                    )
                    .hint("ask a member to add your public key (git envsync keygen prints it)"));
                }
                let signing = load_signing_key()?;
                if !self.signers.iter().any(|(_, k)| *k == signing.public()) {
                    return Err(CliError::refused(format!(
                        "your signing key is not a member's in {}: teammates would refuse what you push",
                        config::PROJECT_FILE
                    ))
                    .hint(format!(
                        "ask a member to add you with git envsync members add NAME AGE_KEY {}",
                        signing.public()
                    )));
                }
                envelope::seal_with(
                    binding,
                    env,
                    &Seal::Recipients(&recipients),
                    &Meta {
                        signer: Some(&signing),
                        fingerprint_key: fingerprint_key.map(|k| &k.key),
                        fingerprint_generation: fingerprint_key.map_or(0, |k| k.generation),
                    },
                )
            }
        };
        armored.map_err(|e| CliError::refused(format!("cannot encrypt: {e}")))
    }

    /// Asks for a typed passphrase a second time when nothing on the server can check it
    /// (`why`, shown in the prompt: the project's first version, or `push --force` over a
    /// version this clone cannot verify): a typo must not become the passphrase everyone
    /// else is then told. A mismatch is refused and the passphrase forgotten. A passphrase
    /// from `ENVSYNC_PASS` or the agent is taken as it is (`unlock` asks twice when it
    /// cannot check one), and team keys need nothing. Call it just before sealing.
    pub fn confirm_new_passphrase(&mut self, why: &str) -> Result<()> {
        if !matches!(self.mode, Mode::Passphrase { .. }) || self.confirmed {
            return Ok(());
        }
        let allow_weak = self.env.allow_weak_pass;
        check_strength(self.passphrase()?, allow_weak)?;
        if self.source == Some(PassSource::Prompt) {
            let again = prompt::read_secret(&format!("repeat the passphrase ({why}): "))?;
            let first = self.passphrase()?;
            if !ct_eq(
                first.expose_secret().as_bytes(),
                again.expose_secret().as_bytes(),
            ) {
                self.passphrase = None;
                self.source = None;
                return Err(
                    CliError::usage("the two passphrases differ; nothing was pushed")
                        .hint("run the command again and type the same passphrase twice"),
                );
            }
        }
        self.confirmed = true;
        Ok(())
    }

    /// [`Keyring::confirm_new_passphrase`] where a version in this mode did not open with
    /// the passphrase and nothing else on the server can vouch for it (`push --force` over
    /// a branch's only witness): the version may be forged, or the passphrase may be one a
    /// rotation replaced. A stored passphrase (`ENVSYNC_PASS`, the agent) cannot tell
    /// which, so it is refused; a typed one is asked twice, and the user who types the same
    /// passphrase twice has chosen it.
    pub fn confirm_typed_passphrase(&mut self, what: &str, why: &str) -> Result<()> {
        if matches!(self.mode, Mode::Passphrase { .. })
            && !self.confirmed
            && matches!(self.source, Some(PassSource::Env | PassSource::Agent))
        {
            let from = match self.source {
                Some(PassSource::Env) => "ENVSYNC_PASS",
                _ => "the agent",
            };
            return Err(CliError::refused(format!(
                "the passphrase from {from} does not open {what}, and nothing else on the server vouches for it: it may be one a rotation replaced"
            ))
            .hint("if the version is forged, push --force again with the passphrase typed at the prompt (unset ENVSYNC_PASS, or git envsync lock), which asks for it twice; nothing was sent"));
        }
        self.confirm_new_passphrase(why)
    }

    /// Opens a version read from the server (`what` names it: `version 3 of main`), which
    /// must be sealed the way the trusted config's mode seals: in passphrase mode with a
    /// passphrase (a single scrypt stanza, which age enforces) and nothing else, in team
    /// mode to X25519 recipients and never with a passphrase, except while `rotate` moves
    /// a project from passphrase mode (`migrating`). Anything else is refused before any
    /// decryption: a file sealed to this user's own age key (which anyone can read in any
    /// team-mode project's `.envsync.toml`) would otherwise open in a passphrase-mode
    /// project, where no signature is checked, and a team-mode clone must not be asked
    /// for a passphrase by whoever serves it a file.
    pub fn open(&mut self, armored: &str, what: &str, migrating: bool) -> Result<Opened> {
        let unreadable = |e: EnvelopeError| CliError::refused(format!("cannot decrypt: {e}"));
        let scrypt = envelope::scrypt_work_factor(armored)
            .map_err(unreadable)?
            .is_some();
        // Neither a passphrase nor an X25519 file (a damaged stanza type, say): say so,
        // rather than asking for an identity file that could not help.
        if !scrypt
            && !envelope::recipient_types(armored)
                .map_err(unreadable)?
                .iter()
                .any(|t| t == "X25519")
        {
            return Err(CliError::refused(
                "cannot decrypt: the file is sealed neither with a passphrase nor to an age X25519 key",
            )
            .hint("the server may be serving a damaged or forged file; nothing was written"));
        }
        match (&self.mode, scrypt) {
            (Mode::Passphrase { .. }, false) => {
                return Err(CliError::refused(format!(
                    "refusing {what}: it is sealed to age keys, but the trusted {} is in passphrase mode (anyone with push access or the server could have written it)",
                    config::PROJECT_FILE
                ))
                .hint(format!(
                    "nothing was written; if the team has moved to team keys, git pull, review {} and run git envsync trust",
                    config::PROJECT_FILE
                )));
            }
            (Mode::Team { .. }, true) if !migrating => {
                return Err(CliError::refused(format!(
                    "refusing {what}: it is sealed with a passphrase, but the trusted {} is in team mode, where only a member's signed version counts",
                    config::PROJECT_FILE
                ))
                .hint("nothing was written; versions from before the move to team keys move over with git envsync rotate"));
            }
            _ => {}
        }
        let opened = match scrypt {
            true => {
                let max_work_factor = self.max_work_factor;
                let passphrase = self.passphrase()?;
                envelope::open(
                    armored,
                    &Open::Passphrase {
                        passphrase,
                        max_work_factor,
                    },
                )
            }
            false => {
                let identities = self.identities()?;
                envelope::open(armored, &Open::Identities(identities))
            }
        };
        let source = self.source;
        opened.map_err(|e| {
            let hint = match e {
                EnvelopeError::WrongPassphrase => match source {
                    Some(PassSource::Env) => {
                        "check ENVSYNC_PASS: it must be the passphrase the file was pushed with"
                    }
                    Some(PassSource::Agent) => {
                        "the agent holds another passphrase for this project: git envsync lock, then git envsync unlock with the right one"
                    }
                    _ => "it must be the passphrase the file was pushed with",
                },
                EnvelopeError::NeedsPassphrase => {
                    "this branch was pushed in passphrase mode: run git envsync unlock, or set ENVSYNC_PASS"
                }
                EnvelopeError::NeedsIdentity | EnvelopeError::NoMatchingIdentity => {
                    "ask a member to add your key and run git envsync rotate"
                }
                _ => "the server may be serving a damaged or forged file; nothing was written",
            };
            CliError::refused(format!("cannot decrypt: {e}")).hint(hint)
        })
    }

    /// Whether the project is in team-key mode (versions must be signed by a member).
    pub fn team_mode(&self) -> bool {
        matches!(self.mode, Mode::Team { .. })
    }

    /// The member of the trusted config who signed an opened file. In team-key mode a
    /// version that no member signed is refused, unless it carries no signature at all
    /// and either `allow_unsigned` (`rotate --accept-unsigned`, moving versions from before
    /// signatures) or it is a passphrase file while `rotate` moves the project from
    /// passphrase mode (`passphrase_ok`: whoever pushed it knew the passphrase, which is
    /// that mode's whole authentication). In passphrase mode only a passphrase file is
    /// accepted, and a signature, if any, is only reported.
    pub fn verify_signer(
        &self,
        opened: &Opened,
        allow_unsigned: bool,
        passphrase_ok: bool,
    ) -> Result<Option<String>> {
        let member = opened.signer.as_ref().and_then(|key| {
            self.signers
                .iter()
                .find(|(_, k)| k == key)
                .map(|(label, _)| label.clone())
        });
        if !self.team_mode() {
            // [`Keyring::open`] opens nothing else in passphrase mode; the passphrase is
            // this mode's whole authentication, so a file without one must never pass.
            if !opened.passphrase {
                return Err(CliError::refused(format!(
                    "refusing version {} of {}: it is not sealed with the project's passphrase",
                    opened.binding.version, opened.binding.branch
                ))
                .hint("nothing was written; anyone with push access or the server could have written it"));
            }
            return Ok(member);
        }
        if member.is_some() {
            return Ok(member);
        }
        if opened.signer.is_none() && (allow_unsigned || (passphrase_ok && opened.passphrase)) {
            return Ok(None);
        }
        let why = match &opened.signer {
            None => "it is not signed".to_owned(),
            Some(key) => format!("it is signed by {key}, which is no member's signing key"),
        };
        Err(CliError::refused(format!(
            "refusing version {} of {}: {why} in {} (anyone with push access or the server could have written it)",
            opened.binding.version,
            opened.binding.branch,
            config::PROJECT_FILE
        ))
        .hint(match opened.signer {
            None => "nothing was written; versions from before signatures move over with git envsync rotate --accept-unsigned, after you have checked them",
            Some(_) => "nothing was written; if the signer should be a member, add their signing key with git envsync members add, commit and trust it",
        }))
    }

    /// The mode new files are sealed in: `passphrase` or `team`.
    pub fn mode_name(&self) -> &'static str {
        match self.mode {
            Mode::Passphrase { .. } => "passphrase",
            Mode::Team { .. } => "team",
        }
    }

    /// A verifier of the passphrase, getting it (from the environment or a prompt) if
    /// need be; `None` in team mode.
    pub fn verifier(&mut self) -> Result<Option<String>> {
        if self.team_mode() {
            return Ok(None);
        }
        self.passphrase()?;
        Ok(self.loaded_verifier())
    }

    /// The verifier of the passphrase already in hand, if any (never prompts).
    pub fn loaded_verifier(&self) -> Option<String> {
        let passphrase = self.passphrase.as_ref()?;
        let local = local_identity().ok()?;
        let mut material = b"envsync-passphrase-verifier-v1\0".to_vec();
        material.extend_from_slice(local.to_string().expose_secret().as_bytes());
        material.push(0);
        material.extend_from_slice(passphrase.expose_secret().as_bytes());
        let verifier = fsutil::sha256_hex(&material);
        zeroize::Zeroize::zeroize(&mut material);
        Some(verifier)
    }

    fn passphrase(&mut self) -> Result<&SecretString> {
        if self.passphrase.is_none() {
            let (passphrase, source) = read_passphrase(&self.env, self.interactive, &self.project)?;
            self.passphrase = Some(passphrase);
            self.source = Some(source);
        }
        self.passphrase
            .as_ref()
            .ok_or_else(|| CliError::usage("no passphrase"))
    }

    fn identities(&mut self) -> Result<&[x25519::Identity]> {
        if self.identities.is_none() {
            let path = identity_path()?;
            self.identities = Some(load_identities(&path)?);
        }
        Ok(self.identities.as_deref().unwrap_or_default())
    }
}

/// The new passphrase for a rotation: `ENVSYNC_NEW_PASS`, or typed twice on a terminal.
pub fn new_passphrase(env: &KeyEnv) -> Result<SecretString> {
    if let Some(p) = &env.new_pass {
        return Ok(p.clone());
    }
    if std::io::stdin().is_terminal() {
        let first = prompt::read_secret("new envsync passphrase: ")?;
        if first.expose_secret().is_empty() {
            return Err(CliError::usage("empty passphrase").hint("type the new passphrase"));
        }
        let second = prompt::read_secret("repeat the new passphrase: ")?;
        if !ct_eq(
            first.expose_secret().as_bytes(),
            second.expose_secret().as_bytes(),
        ) {
            return Err(CliError::usage("the two passphrases differ"));
        }
        return Ok(first);
    }
    Err(CliError::usage("no new passphrase available")
        .hint("set ENVSYNC_NEW_PASS, or run rotate in a terminal to be prompted"))
}

/// The passphrase, from the first source that has one (see the module's doc).
fn read_passphrase(
    env: &KeyEnv,
    interactive: bool,
    project: &str,
) -> Result<(SecretString, PassSource)> {
    if let Some(p) = &env.pass {
        return Ok((p.clone(), PassSource::Env));
    }
    if let Some(p) = agent::client::lookup(project) {
        return Ok((p, PassSource::Agent));
    }
    if interactive && std::io::stdin().is_terminal() {
        let typed = prompt::read_secret("envsync passphrase: ")?;
        if typed.expose_secret().is_empty() {
            return Err(CliError::usage("empty passphrase")
                .hint("type the project's passphrase (or run git envsync unlock first)"));
        }
        return Ok((typed, PassSource::Prompt));
    }
    Err(CliError::usage("no passphrase available").hint(
        "run git envsync unlock, set ENVSYNC_PASS, or run the command in a terminal to be prompted",
    ))
}

/// Refuses a passphrase too short for new files, unless `allow_weak`
/// ([`KeyEnv::allow_weak_pass`], `ENVSYNC_ALLOW_WEAK_PASS`).
pub fn check_strength(passphrase: &SecretString, allow_weak: bool) -> Result<()> {
    if passphrase.expose_secret().chars().count() < MIN_PASSPHRASE_LEN && !allow_weak {
        return Err(CliError::usage(format!(
            "the passphrase is shorter than {MIN_PASSPHRASE_LEN} characters"
        ))
        .hint("use a longer passphrase (or set ENVSYNC_ALLOW_WEAK_PASS=1 to accept the risk)"));
    }
    Ok(())
}

/// The scrypt work factor for new files: the project's (18 to 22, checked when the
/// config was read), or `ENVSYNC_INSECURE_WORK_FACTOR` ([`KeyEnv::insecure_work_factor`])
/// for tests and benchmarks that must not pay 0.7 s a file.
fn work_factor(config: &ProjectConfig, env: &KeyEnv) -> Result<u8> {
    if let Some(raw) = &env.insecure_work_factor {
        return raw
            .parse()
            .ok()
            .filter(|wf| (MIN_WORK_FACTOR..=DEFAULT_MAX_WORK_FACTOR).contains(wf))
            .ok_or_else(|| {
                CliError::usage(format!(
                    "ENVSYNC_INSECURE_WORK_FACTOR must be a number from {MIN_WORK_FACTOR} to {DEFAULT_MAX_WORK_FACTOR}"
                ))
            });
    }
    Ok(config.work_factor.unwrap_or(DEFAULT_WORK_FACTOR))
}

pub fn identity_path() -> Result<PathBuf> {
    Ok(config::config_dir()?.join("identity.txt"))
}

pub fn signing_key_path() -> Result<PathBuf> {
    Ok(config::config_dir()?.join("signing.key"))
}

/// Reads the user's signing key, refusing a file others can read.
pub fn load_signing_key() -> Result<SigningKey> {
    let path = signing_key_path()?;
    let Some(bytes) = fsutil::read_optional(&path)? else {
        return Err(
            CliError::usage(format!("no signing key at {}", path.display()))
                .hint("run git envsync keygen to make one, then have a member add its public key"),
        );
    };
    fsutil::check_private(&path).map_err(|e| CliError::refused(format!("{e:#}")))?;
    let text = zeroize::Zeroizing::new(String::from_utf8_lossy(&bytes).into_owned());
    SigningKey::from_file_text(&text)
        .map_err(|e| CliError::usage(format!("{}: {e}", path.display())))
}

/// Reads an age identity file (X25519 keys only), refusing one others can read.
pub fn load_identities(path: &std::path::Path) -> Result<Vec<x25519::Identity>> {
    let Some(bytes) = fsutil::read_optional(path)? else {
        return Err(
            CliError::usage(format!("no identity file at {}", path.display()))
                .hint("run git envsync keygen to make one"),
        );
    };
    fsutil::check_private(path).map_err(|e| CliError::refused(format!("{e:#}")))?;
    let text = String::from_utf8_lossy(&bytes);
    let identities: Vec<_> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| x25519::Identity::from_str(l).ok())
        .collect();
    if identities.is_empty() {
        return Err(CliError::usage(format!(
            "{} holds no age X25519 identity",
            path.display()
        )));
    }
    Ok(identities)
}

/// The machine-local identity that seals the copies in `.git/envsync/`; made on first use.
pub fn local_identity() -> Result<x25519::Identity> {
    let path = config::config_dir()?.join("local.key");
    if !path.exists() {
        let identity = x25519::Identity::generate();
        fsutil::private_dir(&config::config_dir()?)?;
        let text = format!(
            "# envsync machine-local key: seals the copies in .git/envsync/. Not a team key.\n{}\n",
            identity.to_string().expose_secret()
        );
        fsutil::write_atomic(&path, text.as_bytes(), 0o600)?;
        return Ok(identity);
    }
    load_identities(&path)?
        .into_iter()
        .next()
        .ok_or_else(|| CliError::usage("local.key is empty"))
}
