//! The encrypted envelope: a `.env` file sealed into an ASCII-armored age file.
//!
//! The plaintext inside the age file is one binding line followed by the env file byte for
//! byte:
//!
//! ```text
//! # envsync project=<id> branch=<name> version=<n>
//! <the .env file, verbatim>
//! ```
//!
//! In team-key mode a second comment line follows the binding line, the meta line:
//!
//! ```text
//! # envsync-meta signer=ed25519:<public key> sig=<signature>
//! ```
//!
//! The Ed25519 signature covers a fixed context string, the binding line, the meta line
//! up to (not including) ` sig=`, and the env file (see [`signed_message`]), so a version
//! can be neither relabelled nor altered without the signer's key; fields added to the
//! meta line later (before `sig=`) are covered too. Files without a meta line (passphrase
//! mode, and team files from before signatures) open as before, with no signer.
//!
//! The lines are comments, so `age -d` still yields a valid `.env`. After opening, the
//! client compares the binding with what it asked for, which is how a server that swaps
//! blobs between projects or branches, or serves an old version, is caught.
//!
//! Passphrase mode uses age's scrypt recipient with an explicit work factor (never the
//! crate's per-process calibration, which picks factors too slow for a git hook), and
//! opening caps the factor it accepts so a hostile file cannot make us burn minutes and
//! gigabytes. Team mode encrypts to age X25519 recipients.

use crate::fingerprint::FingerprintKey;
use crate::secret::{ExposeSecret, SecretBytes, SecretString};
use crate::signing::{self, SignerKey, SigningKey};
use age::armor::{ArmoredReader, ArmoredWriter, Format};
use age::{DecryptError, Decryptor, Encryptor};
use std::fmt;
use std::io::{Read, Write};
use thiserror::Error;

/// scrypt work factor (log2 N) for new passphrase-mode files: the reference age
/// implementation's default, about 0.7 s on a 2-core machine.
pub const DEFAULT_WORK_FACTOR: u8 = 18;
/// The lowest work factor a caller may choose for new files.
pub const MIN_WORK_FACTOR: u8 = 10;
/// The highest scrypt work factor [`open`] accepts by default. scrypt with r = 8 needs
/// 1 KiB × 2^N of memory: 4 GiB (and about 11 s on a 2-core machine) at 22, the most a
/// hostile file can make a client spend.
pub const DEFAULT_MAX_WORK_FACTOR: u8 = 22;
/// The marker every armored age file starts with.
pub const ARMOR_BEGIN: &str = "-----BEGIN AGE ENCRYPTED FILE-----";

const BINDING_PREFIX: &str = "# envsync ";
const META_PREFIX: &str = "# envsync-meta ";
/// Domain separation: an envsync version signature can never be mistaken for a signature
/// over anything else made with the same key.
const SIGNATURE_CONTEXT: &[u8] = b"envsync-signature-v1\n";

/// What a sealed file is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub project: String,
    pub branch: String,
    pub version: u64,
}

impl Binding {
    pub fn new(project: impl Into<String>, branch: impl Into<String>, version: u64) -> Self {
        Binding {
            project: project.into(),
            branch: branch.into(),
            version,
        }
    }

    /// The binding line, with its `\n`.
    pub fn line(&self) -> String {
        format!(
            "{BINDING_PREFIX}project={} branch={} version={}\n",
            self.project, self.branch, self.version
        )
    }

    /// Splits a decrypted plaintext into its binding and the env file that follows.
    pub fn split(plaintext: &[u8]) -> Result<(Binding, &[u8]), EnvelopeError> {
        let end = plaintext
            .iter()
            .position(|&b| b == b'\n')
            .ok_or(EnvelopeError::MissingBinding)?;
        let line =
            std::str::from_utf8(&plaintext[..end]).map_err(|_| EnvelopeError::MissingBinding)?;
        let binding = Binding::parse(line)?;
        Ok((binding, &plaintext[end + 1..]))
    }

    /// Parses a binding line (without its `\n`). Project ids and branch names never
    /// contain spaces, so the three fields are split on single spaces.
    pub fn parse(line: &str) -> Result<Binding, EnvelopeError> {
        let rest = line
            .strip_prefix(BINDING_PREFIX)
            .ok_or(EnvelopeError::MissingBinding)?;
        let mut fields = rest.split(' ');
        let mut field = |name: &str| {
            fields
                .next()
                .and_then(|f| f.strip_prefix(name))
                .and_then(|f| f.strip_prefix('='))
                .ok_or(EnvelopeError::MissingBinding)
        };
        let project = field("project")?.to_owned();
        let branch = field("branch")?.to_owned();
        // Decimal digits with no sign and no leading zero: one version has one spelling,
        // so a binding line reads back exactly as `line()` wrote it.
        let version = canonical_number(field("version")?).ok_or(EnvelopeError::MissingBinding)?;
        if fields.next().is_some() {
            return Err(EnvelopeError::MissingBinding);
        }
        Ok(Binding {
            project,
            branch,
            version,
        })
    }

    /// Checks that `self` (read from a file) is what the caller expected; the first field
    /// that differs is named in the error.
    pub fn verify(&self, expected: &Binding) -> Result<(), EnvelopeError> {
        let mismatch = |field, found: String, expected: String| {
            Err(EnvelopeError::BindingMismatch {
                field,
                found,
                expected,
            })
        };
        if self.project != expected.project {
            return mismatch("project", self.project.clone(), expected.project.clone());
        }
        if self.branch != expected.branch {
            return mismatch("branch", self.branch.clone(), expected.branch.clone());
        }
        if self.version != expected.version {
            return mismatch(
                "version",
                self.version.to_string(),
                expected.version.to_string(),
            );
        }
        Ok(())
    }
}

/// Whom a file is sealed for.
pub enum Seal<'a> {
    /// Anyone with the passphrase; `work_factor` is scrypt's log2 N.
    Passphrase {
        passphrase: &'a SecretString,
        work_factor: u8,
    },
    /// Each of these age X25519 recipients.
    Recipients(&'a [age::x25519::Recipient]),
}

/// What a file is opened with.
pub enum Open<'a> {
    /// A passphrase; files needing more than `max_work_factor` are refused before any
    /// scrypt work is done.
    Passphrase {
        passphrase: &'a SecretString,
        max_work_factor: u8,
    },
    /// Any of these identities.
    Identities(&'a [age::x25519::Identity]),
}

impl fmt::Debug for Seal<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Seal::Passphrase { work_factor, .. } => {
                write!(f, "Seal::Passphrase([redacted], work_factor={work_factor})")
            }
            Seal::Recipients(r) => write!(f, "Seal::Recipients({r:?})"),
        }
    }
}

impl fmt::Debug for Open<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Open::Passphrase {
                max_work_factor, ..
            } => write!(
                f,
                "Open::Passphrase([redacted], max_work_factor={max_work_factor})"
            ),
            Open::Identities(ids) => write!(f, "Open::Identities([redacted; {}])", ids.len()),
        }
    }
}

/// Everything that can go wrong sealing or opening. Messages never include plaintext.
#[derive(Debug, Error)]
pub enum EnvelopeError {
    #[error("not an armored age file")]
    NotArmored,
    #[error("the age file is damaged or not an age file ({0})")]
    Malformed(String),
    #[error("the age file needs scrypt work factor {required}, above the accepted maximum {max}")]
    ExcessiveWork { required: u8, max: u8 },
    #[error("the file is encrypted with a passphrase, but no passphrase was given")]
    NeedsPassphrase,
    #[error("the file is encrypted to age recipients, but a passphrase was given")]
    NeedsIdentity,
    #[error("wrong passphrase, or the file was tampered with")]
    WrongPassphrase,
    #[error("none of the given identities can decrypt this file")]
    NoMatchingIdentity,
    #[error("the file failed its integrity check (tampered or truncated)")]
    Tampered,
    #[error("the decrypted file has no envsync binding line")]
    MissingBinding,
    #[error("the file is bound to {field} '{found}' but '{expected}' was asked for")]
    BindingMismatch {
        field: &'static str,
        found: String,
        expected: String,
    },
    #[error("the file's signature is malformed or does not verify (altered, or forged)")]
    BadSignature,
    #[error(
        "scrypt work factor {0} is out of range ({MIN_WORK_FACTOR}..={DEFAULT_MAX_WORK_FACTOR})"
    )]
    BadWorkFactor(u8),
    #[error("no recipients to encrypt to")]
    NoRecipients,
    #[error("encryption failed: {0}")]
    Encrypt(String),
}

/// Seals `env` (the file's bytes) bound to `binding`, returning an armored age file.
pub fn seal(binding: &Binding, env: &[u8], to: &Seal<'_>) -> Result<String, EnvelopeError> {
    seal_with(binding, env, to, &Meta::default())
}

/// Seals `env` bound to `binding` and signed with `signer` (team-key mode).
pub fn seal_signed(
    binding: &Binding,
    env: &[u8],
    to: &Seal<'_>,
    signer: &SigningKey,
) -> Result<String, EnvelopeError> {
    seal_with(
        binding,
        env,
        to,
        &Meta {
            signer: Some(signer),
            ..Meta::default()
        },
    )
}

/// What the meta line carries besides the binding: the project's fingerprint key (with
/// its generation) and a signature.
#[derive(Debug, Default, Clone, Copy)]
pub struct Meta<'a> {
    pub signer: Option<&'a SigningKey>,
    pub fingerprint_key: Option<&'a FingerprintKey>,
    /// The fingerprint key's generation: 0 for a project's first key, one more with each
    /// `rotate`, so that a reader can tell a newer key from an older one. Written only
    /// with a key, and only when not 0.
    pub fingerprint_generation: u64,
}

/// Seals `env` bound to `binding` with a meta line saying `meta` (none when it is
/// empty): `# envsync-meta [fpk=<key> [fpg=<generation>]] [signer=<public key>
/// sig=<signature>]`.
pub fn seal_with(
    binding: &Binding,
    env: &[u8],
    to: &Seal<'_>,
    meta: &Meta<'_>,
) -> Result<String, EnvelopeError> {
    let line = binding.line();
    if meta.signer.is_none() && meta.fingerprint_key.is_none() {
        // An env file whose first line reads like a meta line gets an empty one before
        // it, so that a reader takes that line for the file's own.
        let empty_meta = if starts_with_meta(env) {
            format!("{}\n", META_PREFIX.trim_end())
        } else {
            String::new()
        };
        return seal_plaintext(&[line.as_bytes(), empty_meta.as_bytes(), env], to);
    }
    let mut unsigned = zeroize::Zeroizing::new(META_PREFIX.trim_end().to_owned());
    if let Some(key) = meta.fingerprint_key {
        unsigned.push_str(" fpk=");
        unsigned.push_str(&key.encode());
        if meta.fingerprint_generation > 0 {
            unsigned.push_str(&format!(" fpg={}", meta.fingerprint_generation));
        }
    }
    let mut text = zeroize::Zeroizing::new(String::new());
    match meta.signer {
        Some(signer) => {
            unsigned.push_str(&format!(" signer={}", signer.public()));
            let signature = signer.sign(&signed_message(&line, &unsigned, env));
            text.push_str(&format!(
                "{} sig={}\n",
                *unsigned,
                signing::encode_signature(&signature)
            ));
        }
        None => {
            text.push_str(&unsigned);
            text.push('\n');
        }
    }
    seal_plaintext(&[line.as_bytes(), text.as_bytes(), env], to)
}

/// What a version signature covers: the context string, the binding line (with its
/// `\n`), the meta line up to ` sig=` followed by `\n`, and the env file.
pub fn signed_message(binding_line: &str, unsigned_meta: &str, env: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(
        SIGNATURE_CONTEXT.len() + binding_line.len() + unsigned_meta.len() + 1 + env.len(),
    );
    message.extend_from_slice(SIGNATURE_CONTEXT);
    message.extend_from_slice(binding_line.as_bytes());
    message.extend_from_slice(unsigned_meta.as_bytes());
    message.push(b'\n');
    message.extend_from_slice(env);
    message
}

fn seal_plaintext(parts: &[&[u8]], to: &Seal<'_>) -> Result<String, EnvelopeError> {
    let encryptor = match to {
        Seal::Passphrase {
            passphrase,
            work_factor,
        } => {
            // Above the cap nobody could open the file (and scrypt would need 2^N KiB).
            if !(MIN_WORK_FACTOR..=DEFAULT_MAX_WORK_FACTOR).contains(work_factor) {
                return Err(EnvelopeError::BadWorkFactor(*work_factor));
            }
            let mut recipient =
                age::scrypt::Recipient::new(SecretString::from(passphrase.expose_secret()));
            recipient.set_work_factor(*work_factor);
            Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
        }
        Seal::Recipients(recipients) => {
            if recipients.is_empty() {
                return Err(EnvelopeError::NoRecipients);
            }
            Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
        }
    }
    .map_err(|e| EnvelopeError::Encrypt(e.to_string()))?;

    let io = |e: std::io::Error| EnvelopeError::Encrypt(e.to_string());
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut out = Vec::with_capacity(len * 4 / 3 + 512);
    let armored = ArmoredWriter::wrap_output(&mut out, Format::AsciiArmor).map_err(io)?;
    let mut writer = encryptor.wrap_output(armored).map_err(io)?;
    for part in parts {
        writer.write_all(part).map_err(io)?;
    }
    writer
        .finish()
        .and_then(|armor| armor.finish())
        .map_err(io)?;
    String::from_utf8(out).map_err(|_| EnvelopeError::Encrypt("armor is not UTF-8".into()))
}

/// An opened file: its binding, who signed it, and the env file's bytes.
#[derive(Debug)]
pub struct Opened {
    pub binding: Binding,
    /// The key whose signature over this file verified; `None` for an unsigned file.
    /// Whether that key belongs to a member is the caller's question.
    pub signer: Option<SignerKey>,
    /// Sealed with a passphrase (scrypt), rather than to recipients.
    pub passphrase: bool,
    /// The project's fingerprint key, when the file carries one.
    pub fingerprint_key: Option<FingerprintKey>,
    /// That key's generation (0 when the file names none).
    pub fingerprint_generation: u64,
    pub env: SecretBytes,
}

/// Opens an armored age file and splits off its binding. Check the binding with
/// [`Binding::verify`] before using the contents.
pub fn open(armored: &str, with: &Open<'_>) -> Result<Opened, EnvelopeError> {
    let decryptor = decryptor(armored)?;
    let is_scrypt = decryptor.is_scrypt();
    let reader = match with {
        Open::Passphrase {
            passphrase,
            max_work_factor,
        } => {
            if !is_scrypt {
                return Err(EnvelopeError::NeedsIdentity);
            }
            let mut identity =
                age::scrypt::Identity::new(SecretString::from(passphrase.expose_secret()));
            identity.set_max_work_factor(*max_work_factor);
            decryptor
                .decrypt(std::iter::once(&identity as &dyn age::Identity))
                .map_err(|e| map_decrypt(e, true, *max_work_factor))?
        }
        Open::Identities(identities) => {
            if is_scrypt {
                return Err(EnvelopeError::NeedsPassphrase);
            }
            decryptor
                .decrypt(identities.iter().map(|i| i as &dyn age::Identity))
                .map_err(|e| map_decrypt(e, false, 0))?
        }
    };
    let plaintext = read_all(reader)?;
    let (binding, rest) = Binding::split(plaintext.expose())?;
    let (meta, env) = split_meta(&binding, rest)?;
    Ok(Opened {
        binding,
        signer: meta.signer,
        passphrase: is_scrypt,
        fingerprint_key: meta.fingerprint_key,
        fingerprint_generation: meta.fingerprint_generation,
        env: SecretBytes::new(env.to_vec()),
    })
}

/// A number in its one spelling: decimal digits, no sign, no leading zero, within u64.
fn canonical_number(text: &str) -> Option<u64> {
    if text.is_empty()
        || !text.bytes().all(|b| b.is_ascii_digit())
        || (text.len() > 1 && text.starts_with('0'))
    {
        return None;
    }
    text.parse().ok()
}

/// What a meta line said, checked.
#[derive(Default)]
struct ReadMeta {
    signer: Option<SignerKey>,
    fingerprint_key: Option<FingerprintKey>,
    fingerprint_generation: u64,
}

/// Whether `text` begins with what a reader takes for a meta line.
fn starts_with_meta(text: &[u8]) -> bool {
    let prefix = META_PREFIX.trim_end().as_bytes();
    text.starts_with(prefix) && matches!(text.get(prefix.len()), Some(b' ') | Some(b'\n'))
}

/// Splits off and checks the meta line, if the file has one: a signature, when there is
/// one, must verify against the key it names, or the whole file is refused; a field that
/// appears twice, or a fingerprint key that does not decode, is refused too.
fn split_meta<'a>(
    binding: &Binding,
    rest: &'a [u8],
) -> Result<(ReadMeta, &'a [u8]), EnvelopeError> {
    let prefix = META_PREFIX.trim_end().as_bytes();
    if !starts_with_meta(rest) {
        return Ok((ReadMeta::default(), rest));
    }
    let end = rest
        .iter()
        .position(|&b| b == b'\n')
        .ok_or(EnvelopeError::BadSignature)?;
    let line = std::str::from_utf8(&rest[..end]).map_err(|_| EnvelopeError::BadSignature)?;
    let env = &rest[end + 1..];
    let (unsigned, sig) = match line.rsplit_once(" sig=") {
        Some((unsigned, sig)) => (unsigned, Some(sig)),
        None => (line, None),
    };
    let fields: Vec<&str> = unsigned[prefix.len()..]
        .split(' ')
        .filter(|f| !f.is_empty())
        .collect();
    let field = |name: &str| -> Result<Option<&str>, EnvelopeError> {
        let mut found = fields.iter().filter_map(|f| f.strip_prefix(name));
        match (found.next(), found.next()) {
            (None, _) => Ok(None),
            (Some(v), None) => Ok(Some(v)),
            (Some(_), Some(_)) => Err(EnvelopeError::BadSignature),
        }
    };
    let fingerprint_key = field("fpk=")?
        .map(|k| FingerprintKey::decode(k).map_err(|_| EnvelopeError::BadSignature))
        .transpose()?;
    let fingerprint_generation = match field("fpg=")? {
        None => 0,
        Some(n) => canonical_number(n).ok_or(EnvelopeError::BadSignature)?,
    };
    let signer = match (field("signer=")?, sig) {
        (None, None) => None,
        (Some(key), Some(sig)) => {
            let signer: SignerKey = key.parse().map_err(|_| EnvelopeError::BadSignature)?;
            let signature = signing::decode_signature(sig).ok_or(EnvelopeError::BadSignature)?;
            if !signer.verifies(&signed_message(&binding.line(), unsigned, env), &signature) {
                return Err(EnvelopeError::BadSignature);
            }
            Some(signer)
        }
        // A signer without a signature, or a signature without a signer.
        _ => return Err(EnvelopeError::BadSignature),
    };
    Ok((
        ReadMeta {
            signer,
            fingerprint_key,
            fingerprint_generation,
        },
        env,
    ))
}

/// Checks that `armored` is an armored age file with a well-formed header, without
/// decrypting anything. This is what the server can know about a blob.
pub fn check_armored(armored: &str) -> Result<(), EnvelopeError> {
    decryptor(armored).map(|_| ())
}

/// The scrypt work factor of a passphrase-mode file, read from its header without doing
/// any scrypt work; `None` for a file sealed to recipients.
pub fn scrypt_work_factor(armored: &str) -> Result<Option<u8>, EnvelopeError> {
    if !decryptor(armored)?.is_scrypt() {
        return Ok(None);
    }
    // The header is plain text inside the armor: `-> scrypt <salt> <log_n>`.
    header_text(armored)?
        .lines()
        .find_map(|l| l.strip_prefix("-> scrypt "))
        .and_then(|args| args.split(' ').nth(1))
        .and_then(|n| n.parse().ok())
        .map(Some)
        .ok_or_else(|| EnvelopeError::Malformed("unreadable scrypt stanza".into()))
}

/// The type of each recipient stanza in a file's header (`scrypt`, `X25519`, …), read
/// without decrypting anything.
pub fn recipient_types(armored: &str) -> Result<Vec<String>, EnvelopeError> {
    decryptor(armored)?;
    Ok(header_text(armored)?
        .lines()
        .filter_map(|l| l.strip_prefix("-> "))
        .map(|args| args.split(' ').next().unwrap_or_default().to_owned())
        .collect())
}

/// The longest header [`header_text`] reads: a few hundred recipients.
const MAX_HEADER: usize = 64 * 1024;

/// The text of an age header, up to and including the `---` line's start. Only called
/// after age itself has parsed the header.
fn header_text(armored: &str) -> Result<String, EnvelopeError> {
    let mut reader = ArmoredReader::new(armored.as_bytes());
    let mut raw = Vec::new();
    let mut buf = [0u8; 1024];
    let mut searched = 0;
    loop {
        if let Some(end) = raw[searched..].windows(4).position(|w| w == b"\n---") {
            raw.truncate(searched + end + 1);
            break;
        }
        searched = raw.len().saturating_sub(3);
        if raw.len() > MAX_HEADER {
            return Err(EnvelopeError::Malformed("header too long".into()));
        }
        let n = reader
            .read(&mut buf)
            .map_err(|e| EnvelopeError::Malformed(e.to_string()))?;
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
    }
    Ok(String::from_utf8_lossy(&raw).into_owned())
}

fn decryptor(
    armored: &str,
) -> Result<Decryptor<ArmoredReader<std::io::BufReader<&[u8]>>>, EnvelopeError> {
    if !armored.trim_start().starts_with(ARMOR_BEGIN) {
        return Err(EnvelopeError::NotArmored);
    }
    // The buffered parser: the unbuffered one re-parses the header as bytes trickle in,
    // which cost ~15 ms of CPU per open for a file sealed to 20 recipients.
    Decryptor::new_buffered(ArmoredReader::new(armored.as_bytes()))
        .map_err(|e| EnvelopeError::Malformed(describe(&e)))
}

fn read_all(mut reader: impl Read) -> Result<SecretBytes, EnvelopeError> {
    // Read fully before returning anything: a truncated or flipped final chunk must fail
    // the whole file, never yield a prefix. A partial buffer is wiped when dropped.
    let mut plaintext = zeroize::Zeroizing::new(Vec::new());
    reader
        .read_to_end(&mut plaintext)
        .map_err(|_| EnvelopeError::Tampered)?;
    Ok(SecretBytes::from(plaintext))
}

fn map_decrypt(e: DecryptError, passphrase: bool, max: u8) -> EnvelopeError {
    match e {
        DecryptError::ExcessiveWork { required, .. } => {
            EnvelopeError::ExcessiveWork { required, max }
        }
        DecryptError::DecryptionFailed | DecryptError::KeyDecryptionFailed if passphrase => {
            EnvelopeError::WrongPassphrase
        }
        DecryptError::NoMatchingKeys if !passphrase => EnvelopeError::NoMatchingIdentity,
        DecryptError::InvalidMac => EnvelopeError::Tampered,
        other => EnvelopeError::Malformed(describe(&other)),
    }
}

/// age's messages are localised multi-line prose; keep one line.
fn describe(e: &DecryptError) -> String {
    match e {
        DecryptError::InvalidHeader => "invalid header".into(),
        DecryptError::UnknownFormat => "unknown age format".into(),
        DecryptError::InvalidMac => "header MAC mismatch".into(),
        DecryptError::Io(io) => io.to_string(),
        other => other
            .to_string()
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WF: u8 = 10;

    fn pass(p: &str) -> SecretString {
        SecretString::from(p.to_owned())
    }

    fn seal_pw(b: &Binding, env: &[u8], p: &str) -> String {
        seal(
            b,
            env,
            &Seal::Passphrase {
                passphrase: &pass(p),
                work_factor: WF,
            },
        )
        .unwrap()
    }

    fn open_pw(armored: &str, p: &str) -> Result<Opened, EnvelopeError> {
        open(
            armored,
            &Open::Passphrase {
                passphrase: &pass(p),
                max_work_factor: DEFAULT_MAX_WORK_FACTOR,
            },
        )
    }

    #[test]
    fn passphrase_round_trip_is_byte_exact() {
        let b = Binding::new("p", "feature/x", 3);
        let env = b"\xef\xbb\xbfA=1\r\nB='x'\n\0\xff";
        let armored = seal_pw(&b, env, "pw");
        assert!(armored.starts_with(ARMOR_BEGIN));
        check_armored(&armored).unwrap();
        assert_eq!(scrypt_work_factor(&armored).unwrap(), Some(WF));
        assert_eq!(recipient_types(&armored).unwrap(), ["scrypt"]);
        let opened = open_pw(&armored, "pw").unwrap();
        assert_eq!(opened.binding, b);
        assert_eq!(opened.env.expose(), env);
    }

    #[test]
    fn same_input_seals_differently() {
        let b = Binding::new("p", "main", 1);
        let a1 = seal_pw(&b, b"A=1\n", "pw");
        let a2 = seal_pw(&b, b"A=1\n", "pw");
        assert_ne!(a1, a2);
        assert_eq!(
            open_pw(&a1, "pw").unwrap().env,
            open_pw(&a2, "pw").unwrap().env
        );
    }

    #[test]
    fn wrong_passphrase() {
        let armored = seal_pw(&Binding::new("p", "main", 1), b"A=1\n", "right");
        assert!(matches!(
            open_pw(&armored, "wrong"),
            Err(EnvelopeError::WrongPassphrase)
        ));
    }

    #[test]
    fn work_factor_cap_is_enforced_before_work() {
        let armored = seal_pw(&Binding::new("p", "main", 1), b"A=1\n", "pw");
        let err = open(
            &armored,
            &Open::Passphrase {
                passphrase: &pass("pw"),
                max_work_factor: WF - 1,
            },
        )
        .unwrap_err();
        assert!(matches!(
            err,
            EnvelopeError::ExcessiveWork { required: WF, .. }
        ));
    }

    #[test]
    fn recipients_round_trip_and_strangers_fail() {
        let alice = age::x25519::Identity::generate();
        let bob = age::x25519::Identity::generate();
        let eve = age::x25519::Identity::generate();
        let recipients = [alice.to_public(), bob.to_public()];
        let b = Binding::new("p", "main", 7);
        let armored = seal(&b, b"K=v\n", &Seal::Recipients(&recipients)).unwrap();
        assert_eq!(scrypt_work_factor(&armored).unwrap(), None);
        // age adds a random "grease" stanza now and then; the X25519 ones are ours.
        let types = recipient_types(&armored).unwrap();
        assert_eq!(
            types.iter().filter(|t| *t == "X25519").count(),
            2,
            "{types:?}"
        );
        for who in [alice, bob] {
            let opened = open(&armored, &Open::Identities(std::slice::from_ref(&who))).unwrap();
            assert_eq!(opened.env.expose(), b"K=v\n");
        }
        assert!(matches!(
            open(&armored, &Open::Identities(&[eve])),
            Err(EnvelopeError::NoMatchingIdentity)
        ));
        assert!(matches!(
            open_pw(&armored, "pw"),
            Err(EnvelopeError::NeedsIdentity)
        ));
    }

    #[test]
    fn signed_files_name_their_signer_and_refuse_changes() {
        let alice = age::x25519::Identity::generate();
        let recipients = [alice.to_public()];
        let key = SigningKey::generate().unwrap();
        let b = Binding::new("p", "main", 4);
        let armored = seal_signed(&b, b"K=v\n", &Seal::Recipients(&recipients), &key).unwrap();
        let ids = std::slice::from_ref(&alice);
        let opened = open(&armored, &Open::Identities(ids)).unwrap();
        assert_eq!(opened.binding, b);
        assert_eq!(opened.signer, Some(key.public()));
        assert_eq!(opened.env.expose(), b"K=v\n");

        // An unsigned file opens with no signer.
        let plain = seal(&b, b"K=v\n", &Seal::Recipients(&recipients)).unwrap();
        assert_eq!(open(&plain, &Open::Identities(ids)).unwrap().signer, None);

        // Whoever seals for the recipients cannot reuse a signature on other content,
        // another binding, or with another key named.
        let sig_of = |binding: &Binding, env: &[u8]| {
            let unsigned = format!("{META_PREFIX}signer={}", key.public());
            let sig = key.sign(&signed_message(&binding.line(), &unsigned, env));
            format!("{unsigned} sig={}\n", signing::encode_signature(&sig))
        };
        let forge = |binding: &Binding, meta: &str, env: &[u8]| {
            let armored = seal_plaintext(
                &[binding.line().as_bytes(), meta.as_bytes(), env],
                &Seal::Recipients(&recipients),
            )
            .unwrap();
            open(&armored, &Open::Identities(ids))
        };
        let good = sig_of(&b, b"K=v\n");
        assert!(forge(&b, &good, b"K=v\n").is_ok());
        let other_key = SigningKey::generate().unwrap().public().to_string();
        for (binding, meta, env) in [
            (b.clone(), good.clone(), &b"K=evil\n"[..]),
            (Binding::new("p", "main", 5), good.clone(), &b"K=v\n"[..]),
            (Binding::new("p", "dev", 4), good.clone(), &b"K=v\n"[..]),
            (
                b.clone(),
                good.replace(&key.public().to_string(), &other_key),
                &b"K=v\n"[..],
            ),
            (b.clone(), good.replace("sig=", "x=1 sig="), &b"K=v\n"[..]),
            (
                b.clone(),
                format!("{META_PREFIX}signer={other_key}\n"),
                &b"K=v\n"[..],
            ),
            (b.clone(), format!("{META_PREFIX}sig=AAAA\n"), &b"K=v\n"[..]),
            (b.clone(), good.trim_end().to_owned(), &b""[..]),
        ] {
            assert!(
                matches!(
                    forge(&binding, &meta, env),
                    Err(EnvelopeError::BadSignature)
                ),
                "{meta:?}"
            );
        }
    }

    #[test]
    fn an_env_whose_first_line_reads_like_a_meta_line_round_trips() {
        let alice = age::x25519::Identity::generate();
        let recipients = [alice.to_public()];
        let ids = std::slice::from_ref(&alice);
        let b = Binding::new("p", "main", 1);
        for env in [
            &b"# envsync-meta\nA=1\n"[..],
            b"# envsync-meta fpk=AAAA signer=x sig=y\nA=1\n",
            b"# envsync-meta",
            b"# envsync-metadata\n",
        ] {
            let armored = seal(&b, env, &Seal::Recipients(&recipients)).unwrap();
            let opened = open(&armored, &Open::Identities(ids)).unwrap();
            assert_eq!(opened.env.expose(), env);
            assert!(opened.fingerprint_key.is_none());
        }
    }

    #[test]
    fn the_fingerprint_key_travels_inside_and_a_signature_covers_it() {
        let fpk = FingerprintKey::generate().unwrap();
        let b = Binding::new("p", "main", 1);
        let meta = Meta {
            signer: None,
            fingerprint_key: Some(&fpk),
            fingerprint_generation: 7,
        };
        let armored = seal_with(
            &b,
            b"A=1\n",
            &Seal::Passphrase {
                passphrase: &pass("pw"),
                work_factor: WF,
            },
            &meta,
        )
        .unwrap();
        let opened = open_pw(&armored, "pw").unwrap();
        assert_eq!(opened.fingerprint_key, Some(fpk.clone()));
        assert_eq!(opened.fingerprint_generation, 7);
        assert_eq!(opened.signer, None);
        assert_eq!(opened.env.expose(), b"A=1\n");

        // Signed: replacing the key or its generation in the meta line breaks the
        // signature.
        let alice = age::x25519::Identity::generate();
        let recipients = [alice.to_public()];
        let key = SigningKey::generate().unwrap();
        let unsigned = format!(
            "# envsync-meta fpk={} fpg=2 signer={}",
            *fpk.encode(),
            key.public()
        );
        let sig = key.sign(&signed_message(&b.line(), &unsigned, b"A=1\n"));
        let good = format!("{unsigned} sig={}\n", signing::encode_signature(&sig));
        let other = FingerprintKey::generate().unwrap();
        let swapped = good.replace(fpk.encode().as_str(), other.encode().as_str());
        let bumped = good.replace(" fpg=2 ", " fpg=3 ");
        let ids = std::slice::from_ref(&alice);
        let opened = open(
            &seal_plaintext(
                &[b.line().as_bytes(), good.as_bytes(), b"A=1\n"],
                &Seal::Recipients(&recipients),
            )
            .unwrap(),
            &Open::Identities(ids),
        )
        .unwrap();
        assert_eq!(opened.fingerprint_generation, 2);
        // A generation has one spelling and appears once.
        let key_field = format!("# envsync-meta fpk={}", *fpk.encode());
        let malformed = ["fpg=", "fpg=01", "fpg=-1", "fpg=x", "fpg=1 fpg=1"]
            .map(|g| (format!("{key_field} {g}\n"), false));
        for (meta, ok) in [(good.clone(), true), (swapped, false), (bumped, false)]
            .into_iter()
            .chain(malformed)
        {
            let armored = seal_plaintext(
                &[b.line().as_bytes(), meta.as_bytes(), b"A=1\n"],
                &Seal::Recipients(&recipients),
            )
            .unwrap();
            assert_eq!(open(&armored, &Open::Identities(ids)).is_ok(), ok, "{meta}");
        }
    }

    #[test]
    fn work_factor_above_the_cap_is_refused_when_sealing() {
        let err = seal(
            &Binding::new("p", "main", 1),
            b"A=1\n",
            &Seal::Passphrase {
                passphrase: &pass("pw"),
                work_factor: DEFAULT_MAX_WORK_FACTOR + 1,
            },
        )
        .unwrap_err();
        assert!(matches!(err, EnvelopeError::BadWorkFactor(23)), "{err}");
    }

    #[test]
    fn not_armored() {
        assert!(matches!(
            check_armored("hello"),
            Err(EnvelopeError::NotArmored)
        ));
        let fake = format!("{ARMOR_BEGIN}\nAAAA\n-----END AGE ENCRYPTED FILE-----\n");
        assert!(matches!(
            check_armored(&fake),
            Err(EnvelopeError::Malformed(_))
        ));
    }

    #[test]
    fn binding_verify_names_the_field() {
        let b = Binding::new("p", "main", 2);
        assert!(b.verify(&b.clone()).is_ok());
        for (other, field) in [
            (Binding::new("q", "main", 2), "project"),
            (Binding::new("p", "dev", 2), "branch"),
            (Binding::new("p", "main", 3), "version"),
        ] {
            match b.verify(&other) {
                Err(EnvelopeError::BindingMismatch { field: f, .. }) => assert_eq!(f, field),
                r => panic!("{r:?}"),
            }
        }
    }

    #[test]
    fn binding_parse_rejects_junk() {
        for bad in [
            "",
            "# envsync",
            "# envsync project=p branch=b",
            "# envsync project=p branch=b version=x",
            "# envsync project=p branch=b version=09",
            "# envsync project=p branch=b version=+9",
            "# envsync project=p branch=b version=",
            "# envsync project=p branch=b version=18446744073709551616",
            "# envsync project=p branch=b version=1 extra=1",
            "# envsync branch=b project=p version=1",
            "KEY=value",
        ] {
            assert!(Binding::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Binding::parse("# envsync project=p branch=a=b version=9").unwrap(),
            Binding::new("p", "a=b", 9)
        );
    }
}
