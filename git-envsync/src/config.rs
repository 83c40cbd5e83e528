//! Configuration files: the project's `.envsync.toml` (committed, nothing secret), the older
//! `.envsync.json`, and the user's `$XDG_CONFIG_HOME/envsync/config.toml` (0600: one token
//! per server origin, written by `login`, and the CA files of [`crate::ca`]).
//!
//! `.envsync.toml` comes from whoever last changed it on the branch checked out, so its
//! settings take effect only once this clone has trusted them ([`crate::trust`]), and a
//! token is only ever sent to the origin it was stored for ([`UserConfig::login_for`]).
//! The resolution itself happens once, in [`crate::context`].

use crate::error::{CliError, Result};
use crate::fsutil;
use crate::worktree::TreeFile;
use anyhow::Context as _;
use envsync_common::envelope::{DEFAULT_MAX_WORK_FACTOR, DEFAULT_WORK_FACTOR};
use envsync_common::names::{validate_branch, validate_project};
use envsync_common::signing::SignerKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

pub const PROJECT_FILE: &str = ".envsync.toml";
pub const LEGACY_PROJECT_FILE: &str = ".envsync.json";

/// `.envsync.toml`: every setting decides where secrets go or come from, so the whole of
/// it is what a clone trusts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectConfig {
    pub project: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    #[serde(default = "default_env_file")]
    pub env_file: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_branch: Option<String>,
    /// Team-key mode: the members, each an age X25519 public key and (to have their pushes
    /// accepted) an Ed25519 signing key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<RecipientEntry>,
    /// scrypt work factor for new passphrase-mode files: 18 to 22.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work_factor: Option<u8>,
    /// Value fingerprints (on by default): each push sends, per key, an HMAC of its value
    /// under the project's fingerprint key, so `diff`, `status`, `log` and the hooks can
    /// tell changed values without decrypting. `false`: the server learns no equality.
    #[serde(default = "yes", skip_serializing_if = "is_yes")]
    pub fingerprints: bool,
}

fn yes() -> bool {
    true
}

fn is_yes(value: &bool) -> bool {
    *value
}

fn default_env_file() -> String {
    ".env".to_owned()
}

/// A member as written in `.envsync.toml`: `"age1…"` (a bare key, which can read but whose
/// pushes nobody accepts) or `{ name = "alice@example.com", key = "age1…",
/// signer = "ed25519:…" }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RecipientEntry {
    Key(String),
    Named {
        name: String,
        key: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signer: Option<String>,
        /// The email the server knows the member by (their token's), when the name is
        /// not it: what `rotate` looks for in the audit log after a removal.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        email: Option<String>,
    },
}

impl RecipientEntry {
    pub fn key(&self) -> &str {
        match self {
            RecipientEntry::Key(k) | RecipientEntry::Named { key: k, .. } => k,
        }
    }

    pub fn name(&self) -> Option<&str> {
        match self {
            RecipientEntry::Key(_) => None,
            RecipientEntry::Named { name, .. } => Some(name),
        }
    }

    pub fn signer(&self) -> Option<&str> {
        match self {
            RecipientEntry::Key(_) => None,
            RecipientEntry::Named { signer, .. } => signer.as_deref(),
        }
    }

    /// The identity the server knows the member by: their email, else their name.
    pub fn server_identity(&self) -> &str {
        match self {
            RecipientEntry::Named {
                email: Some(email), ..
            } => email,
            _ => self.label(),
        }
    }

    /// The name to show: the member's name, else the key.
    pub fn label(&self) -> &str {
        self.name().unwrap_or(self.key())
    }
}

#[derive(Deserialize)]
struct LegacyConfig {
    project_id: String,
}

impl ProjectConfig {
    pub fn new(project: String) -> Self {
        ProjectConfig {
            project,
            server: None,
            env_file: default_env_file(),
            default_branch: None,
            recipients: Vec::new(),
            work_factor: None,
            fingerprints: true,
        }
    }

    /// Loads `.envsync.toml`, or `.envsync.json` when there is no TOML file. The file is
    /// read like the env file: never through a link, never a pipe.
    pub fn load(root: &Path) -> Result<ProjectConfig> {
        let config = if let Some(bytes) = read_setting_file(root, PROJECT_FILE)? {
            let text = String::from_utf8(bytes)
                .map_err(|_| CliError::usage(format!("{PROJECT_FILE} is not UTF-8")))?;
            toml::from_str::<ProjectConfig>(&text).map_err(|e| {
                CliError::usage(format!(
                    "{PROJECT_FILE}: {}",
                    e.message().lines().next().unwrap_or("invalid")
                ))
            })?
        } else if let Some(bytes) = read_setting_file(root, LEGACY_PROJECT_FILE)? {
            let legacy: LegacyConfig = serde_json::from_slice(&bytes)
                .map_err(|e| CliError::usage(format!("{LEGACY_PROJECT_FILE}: {e}")))?;
            ProjectConfig::new(legacy.project_id)
        } else {
            return Err(
                CliError::usage(format!("no {PROJECT_FILE} in {}", root.display()))
                    .hint("run git envsync init --project <ID> to set this repository up"),
            );
        };
        config.check()?;
        Ok(config)
    }

    /// Whether the work tree has a settings file at all (a sparse checkout may leave it
    /// out; a repository may not use envsync).
    pub fn exists(root: &Path) -> bool {
        [PROJECT_FILE, LEGACY_PROJECT_FILE].iter().any(|name| {
            TreeFile::new(root, name)
                .and_then(|f| f.exists())
                .unwrap_or(false)
        })
    }

    /// Every setting is checked when the file is read, so a bad one fails with one line
    /// before anything is done (a work factor of 30 would otherwise ask for 1 TiB).
    fn check(&self) -> Result<()> {
        let bad = |what: String| CliError::usage(format!("{PROJECT_FILE}: {what}"));
        validate_project(&self.project).map_err(|e| bad(e.to_string()))?;
        TreeFile::new(Path::new("/"), &self.env_file)?;
        if let Some(wf) = self.work_factor
            && !(DEFAULT_WORK_FACTOR..=DEFAULT_MAX_WORK_FACTOR).contains(&wf)
        {
            return Err(bad(format!(
                "work_factor {wf} is outside {DEFAULT_WORK_FACTOR}..={DEFAULT_MAX_WORK_FACTOR} (scrypt above 22 needs over 4 GiB, and nobody could open the files)"
            )));
        }
        if let Some(branch) = &self.default_branch {
            validate_branch(branch).map_err(|e| bad(format!("default_branch: {e}")))?;
        }
        if let Some(server) = &self.server {
            origin(server).map_err(|e| bad(format!("server: {}", e.message())))?;
        }
        let mut seen = std::collections::BTreeSet::new();
        for member in &self.recipients {
            age::x25519::Recipient::from_str(member.key()).map_err(|_| {
                bad(format!(
                    "member '{}': key is not an age X25519 public key",
                    member.label()
                ))
            })?;
            if let Some(signer) = member.signer() {
                SignerKey::from_str(signer)
                    .map_err(|e| bad(format!("member '{}': signer: {e}", member.label())))?;
            }
            if !seen.insert(member.label().to_owned()) {
                return Err(bad(format!("member '{}' is listed twice", member.label())));
            }
        }
        Ok(())
    }

    /// Team-key mode: the project lists recipients.
    pub fn team_mode(&self) -> bool {
        !self.recipients.is_empty()
    }

    /// What a clone trusts: a hash of the settings as read (defaults filled in), so a
    /// comment or a reformatting needs no new consent, and any change of meaning does.
    pub fn digest(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(b"envsync-config-v1\n");
        // Serialising a struct of strings, options and vectors cannot fail.
        hasher.update(serde_json::to_vec(self).unwrap_or_default());
        hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    #[cfg(test)]
    pub fn to_toml(&self) -> anyhow::Result<String> {
        toml::to_string(self).context("cannot write the project configuration")
    }

    /// Writes `.envsync.toml` under `root` as an edit of what is there: the settings that
    /// changed are changed in place, and every comment, blank line, the order of the
    /// settings and the layout of the members that stay are kept.
    pub fn save(&self, root: &Path) -> Result<()> {
        let old_text = read_setting_file(root, PROJECT_FILE)?
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let text = self.edit_of(&old_text)?;
        TreeFile::new(root, PROJECT_FILE)?.write(text.as_bytes(), 0o644)
    }

    /// `old` (the file's text, possibly empty) edited to say `self`.
    fn edit_of(&self, old: &str) -> Result<String> {
        use toml_edit::{Array, DocumentMut, Item, Value};
        let mut doc: DocumentMut = if old.trim().is_empty() {
            "# envsync project settings: committed, holds nothing secret.\n"
                .parse()
                .unwrap_or_default()
        } else {
            old.parse().map_err(|e: toml_edit::TomlError| {
                CliError::usage(format!(
                    "{PROJECT_FILE}: {}",
                    e.message().lines().next().unwrap_or("invalid")
                ))
            })?
        };
        let previous: Option<ProjectConfig> = toml::from_str(old).ok();
        // A setting changed in place keeps the comment after it on its line.
        let mut set = |key: &str, value: Option<Value>| match value {
            None => {
                doc.remove(key);
            }
            Some(mut value) => match doc.get_mut(key).and_then(Item::as_value_mut) {
                Some(current) if current.to_string().trim() == value.to_string().trim() => {}
                Some(current) => {
                    *value.decor_mut() = current.decor().clone();
                    *current = value;
                }
                None => {
                    doc[key] = Item::Value(value);
                }
            },
        };
        set("project", Some(self.project.as_str().into()));
        set("server", self.server.as_deref().map(Value::from));
        let env_file = (self.env_file != default_env_file()
            || previous
                .as_ref()
                .is_some_and(|p| p.env_file != default_env_file()))
        .then(|| Value::from(self.env_file.as_str()));
        set("env_file", env_file);
        set(
            "default_branch",
            self.default_branch.as_deref().map(Value::from),
        );
        set(
            "work_factor",
            self.work_factor.map(|w| Value::from(i64::from(w))),
        );
        set(
            "fingerprints",
            (!self.fingerprints).then(|| Value::from(false)),
        );
        if self.recipients.is_empty() {
            doc.remove("recipients");
        } else if previous.as_ref().map(|p| &p.recipients) != Some(&self.recipients) {
            // Members that stay keep their own layout (and any comment beside them).
            let old_items: Vec<(RecipientEntry, Value)> = match (
                previous.as_ref(),
                doc.get("recipients").and_then(Item::as_array),
            ) {
                (Some(p), Some(array)) if p.recipients.len() == array.len() => p
                    .recipients
                    .iter()
                    .cloned()
                    .zip(array.iter().cloned())
                    .collect(),
                _ => Vec::new(),
            };
            let mut array = Array::new();
            for member in &self.recipients {
                let mut value = match old_items.iter().find(|(m, _)| m == member) {
                    Some((_, value)) => value.clone(),
                    None => member_value(member),
                };
                if !value
                    .decor()
                    .prefix()
                    .is_some_and(|p| p.as_str().is_some_and(|p| p.contains('\n')))
                {
                    value.decor_mut().set_prefix("\n    ");
                }
                array.push_formatted(value);
            }
            array.set_trailing("\n");
            array.set_trailing_comma(true);
            match doc.get_mut("recipients").and_then(Item::as_value_mut) {
                Some(current) => {
                    let decor = current.decor().clone();
                    *current = Value::Array(array);
                    *current.decor_mut() = decor;
                }
                None => doc["recipients"] = Item::Value(Value::Array(array)),
            }
        }
        let text = doc.to_string();
        // What was written must read back as exactly these settings.
        let back: ProjectConfig = toml::from_str(&text).map_err(|e| {
            CliError::refused(format!("cannot write {PROJECT_FILE}: {}", e.message()))
        })?;
        if back != *self {
            return Err(CliError::refused(format!(
                "cannot write {PROJECT_FILE}: the edited file would not say what was asked"
            )));
        }
        Ok(text)
    }

    /// The settings that differ from `old`, one line each, for `trust` and its refusals.
    pub fn changes_from(&self, old: &ProjectConfig) -> Vec<String> {
        let mut lines = Vec::new();
        let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "(unset)".to_owned());
        let mut field = |name: &str, before: String, after: String| {
            if before != after {
                lines.push(format!("{name}: {before} -> {after}"));
            }
        };
        field("project", old.project.clone(), self.project.clone());
        field("server", show(&old.server), show(&self.server));
        field("env_file", old.env_file.clone(), self.env_file.clone());
        field(
            "default_branch",
            show(&old.default_branch),
            show(&self.default_branch),
        );
        field(
            "work_factor",
            show(&old.work_factor.map(|w| w.to_string())),
            show(&self.work_factor.map(|w| w.to_string())),
        );
        for member in &self.recipients {
            if !old.recipients.contains(member) {
                lines.push(format!("member added: {}", describe_member(member)));
            }
        }
        for member in &old.recipients {
            if !self.recipients.contains(member) {
                lines.push(format!("member removed: {}", describe_member(member)));
            }
        }
        lines
    }

    /// Every setting, one line each, for a first `trust`.
    pub fn describe(&self) -> Vec<String> {
        let mut lines = vec![
            format!("project: {}", self.project),
            format!(
                "server: {}",
                self.server.as_deref().unwrap_or("(unset: your login's)")
            ),
            format!("env_file: {}", self.env_file),
            format!(
                "default_branch: {}",
                self.default_branch.as_deref().unwrap_or("(unset)")
            ),
        ];
        if let Some(wf) = self.work_factor {
            lines.push(format!("work_factor: {wf}"));
        }
        if self.recipients.is_empty() {
            lines.push("mode: passphrase".to_owned());
        }
        for member in &self.recipients {
            lines.push(format!("member: {}", describe_member(member)));
        }
        lines
    }
}

fn describe_member(member: &RecipientEntry) -> String {
    format!(
        "{} (key {}, {})",
        member.label(),
        member.key(),
        member
            .signer()
            .map_or_else(|| "no signing key".to_owned(), |s| format!("signer {s}"))
    )
}

/// A member as `.envsync.toml` writes it: the bare key, or an inline table.
fn member_value(member: &RecipientEntry) -> toml_edit::Value {
    match member {
        RecipientEntry::Key(key) => key.as_str().into(),
        RecipientEntry::Named {
            name,
            key,
            signer,
            email,
        } => {
            let mut table = toml_edit::InlineTable::new();
            table.insert("name", name.as_str().into());
            if let Some(email) = email {
                table.insert("email", email.as_str().into());
            }
            table.insert("key", key.as_str().into());
            if let Some(signer) = signer {
                table.insert("signer", signer.as_str().into());
            }
            toml_edit::Value::InlineTable(table)
        }
    }
}

/// Reads a settings file at the work tree root: never through a link, never a pipe.
fn read_setting_file(root: &Path, name: &str) -> Result<Option<Vec<u8>>> {
    let file = TreeFile::new(root, name)?;
    Ok(file.read()?.map(|b| b.expose().to_vec()))
}

pub use envsync_common::secret::Token;

/// A server URL's origin (`scheme://host[:port]`), the unit a token is bound to.
pub fn origin(url: &str) -> Result<String> {
    let parsed = reqwest::Url::parse(url.trim())
        .map_err(|e| CliError::usage(format!("server URL '{url}' is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(CliError::usage(format!(
            "server URL '{url}' must start with http:// or https://"
        )));
    }
    if parsed.host().is_none() || !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(CliError::usage(format!(
            "server URL '{url}' must name a host and no user"
        )));
    }
    Ok(parsed.origin().ascii_serialization())
}

/// Whether a URL's host is this machine (plain HTTP is fine there).
pub fn is_loopback(url: &str) -> bool {
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return false;
    };
    let Some(host) = parsed.host_str() else {
        return false;
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

/// What `login` stored for one server origin.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ServerLogin {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<Token>,
    /// The user's explicit choice (`login --insecure-http`) to send this token over plain
    /// HTTP to a host that is not this machine.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure_http: bool,
    /// A PEM file of the CA that signed this server's certificate, trusted beside the
    /// system's roots (`login --ca-file`; see [`crate::ca`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
}

/// `$XDG_CONFIG_HOME/envsync/config.toml`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UserConfig {
    /// The server used when neither a flag, `ENVSYNC_API` nor the project names one: the
    /// last one logged in to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// The token of the single-server format of earlier versions; read once, moved to
    /// `servers` under `server`'s origin.
    #[serde(default, skip_serializing)]
    token: Option<Token>,
    /// A PEM file of a CA trusted beside the system's roots for every server without a
    /// `ca_file` of its own (see [`crate::ca`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Per server origin, its token.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub servers: BTreeMap<String, ServerLogin>,
}

/// `$XDG_CONFIG_HOME/envsync`, or `~/.config/envsync`. The contract pins the XDG layout on
/// every platform, so this is read from the environment rather than a platform crate.
pub fn config_dir() -> Result<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => std::env::var_os("HOME")
            .filter(|v| !v.is_empty())
            .map(|home| PathBuf::from(home).join(".config"))
            .ok_or_else(|| CliError::usage("neither XDG_CONFIG_HOME nor HOME is set"))?,
    };
    Ok(base.join("envsync"))
}

impl UserConfig {
    pub fn path() -> Result<PathBuf> {
        Ok(config_dir()?.join("config.toml"))
    }

    pub fn load() -> Result<UserConfig> {
        let path = UserConfig::path()?;
        let Some(bytes) = fsutil::read_optional(&path)? else {
            return Ok(UserConfig::default());
        };
        let text = String::from_utf8_lossy(&bytes);
        let mut user: UserConfig = toml::from_str(&text).map_err(|e| {
            CliError::usage(format!(
                "{}: {}",
                path.display(),
                e.message().lines().next().unwrap_or("invalid")
            ))
            .hint("fix the file or run git envsync login again")
        })?;
        if let (Some(token), Some(server)) = (user.token.take(), &user.server)
            && let Ok(origin) = origin(server)
        {
            let login = user.servers.entry(origin).or_default();
            if login.token.is_none() {
                login.token = Some(token);
            }
        }
        Ok(user)
    }

    /// What was stored for `server`'s origin.
    pub fn login_for(&self, server: &str) -> Option<&ServerLogin> {
        self.servers.get(&origin(server).ok()?)
    }

    pub fn save(&self) -> Result<PathBuf> {
        let path = UserConfig::path()?;
        let dir = config_dir()?;
        fsutil::private_dir(&dir)?;
        let text = toml::to_string(self).context("cannot write the user configuration")?;
        fsutil::write_atomic(&path, text.as_bytes(), 0o600)?;
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_prefix_and_debug() {
        assert_eq!(Token::new("Bearer abc").unwrap().expose(), "abc");
        assert_eq!(Token::new(" abc\n").unwrap().expose(), "abc");
        assert!(Token::new("Bearer ").is_none());
        assert_eq!(
            format!("{:?}", Token::new("abc").unwrap()),
            "Token([redacted])"
        );
    }

    const ALICE: &str = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";

    #[test]
    fn project_config_forms() {
        let c: ProjectConfig = toml::from_str(&format!(
            r#"project = "p"
recipients = ["{ALICE}", {{ name = "alice", key = "{ALICE}" }}]"#
        ))
        .unwrap();
        assert_eq!(c.env_file, ".env");
        assert_eq!(c.recipients[0].key(), ALICE);
        assert_eq!(c.recipients[1].name(), Some("alice"));
        assert!(c.check().is_ok());
    }

    #[test]
    fn recipients_serialize_back() {
        let mut c = ProjectConfig::new("p".into());
        c.recipients = vec![
            RecipientEntry::Key("age1abc".into()),
            RecipientEntry::Named {
                name: "alice".into(),
                key: "age1def".into(),
                signer: Some("ed25519:x".into()),
                email: None,
            },
        ];
        let text = c.to_toml().unwrap();
        let back: ProjectConfig = toml::from_str(&text).unwrap();
        assert_eq!(back.recipients, c.recipients);
    }

    #[test]
    fn rewrites_keep_comments_order_and_layout() {
        let old = format!(
            "# Our envsync settings.\n\nproject = \"p\"   # the id on the server\n\n# Where the team's server lives.\nserver = \"http://127.0.0.1:8000\"\n\nrecipients = [\n    # the first member\n    {{ name = \"alice\", key = \"{ALICE}\" }},\n]\n"
        );
        let config: ProjectConfig = toml::from_str(&old).unwrap();
        assert_eq!(
            config.edit_of(&old).unwrap(),
            old,
            "nothing changed, no byte"
        );
        let mut added = config.clone();
        added.recipients.push(RecipientEntry::Named {
            name: "bob".into(),
            key: ALICE.replace("ql3z", "qqqq"),
            signer: None,
            email: None,
        });
        let text = added.edit_of(&old).unwrap();
        for kept in [
            "# Our envsync settings.",
            "project = \"p\"   # the id on the server",
            "# Where the team's server lives.",
            "    # the first member",
        ] {
            assert!(text.contains(kept), "{kept:?} lost:\n{text}");
        }
        assert!(text.contains("name = \"bob\""), "{text}");
        let back: ProjectConfig = toml::from_str(&text).unwrap();
        assert_eq!(back, added);
        // And removing bob again gives the original back.
        assert_eq!(
            config.edit_of(&text).unwrap().replace(",\n]", "\n]"),
            old.replace(",\n]", "\n]")
        );
        let mut moved = config.clone();
        moved.server = Some("https://envsync.example.com".into());
        let text = moved.edit_of(&old).unwrap();
        assert!(
            text.contains("server = \"https://envsync.example.com\""),
            "{text}"
        );
        assert!(text.contains("# Where the team's server lives."), "{text}");
    }

    #[test]
    fn bad_settings_are_refused_when_read() {
        let base = ProjectConfig::new("p".into());
        let mut wf = base.clone();
        for bad in [17, 23, 30, 255] {
            wf.work_factor = Some(bad);
            assert!(wf.check().is_err(), "{bad}");
        }
        wf.work_factor = Some(22);
        assert!(wf.check().is_ok());
        for env_file in ["", "../.env", "/etc/passwd", ".git/config"] {
            let mut c = base.clone();
            c.env_file = env_file.into();
            assert!(c.check().is_err(), "{env_file}");
        }
        let mut c = base.clone();
        c.server = Some("ftp://x".into());
        assert!(c.check().is_err());
        let mut c = base.clone();
        c.recipients = vec![RecipientEntry::Named {
            name: "a".into(),
            key: ALICE.into(),
            signer: Some("ed25519:AAAA".into()),
            email: None,
        }];
        assert!(c.check().is_err());
    }

    #[test]
    fn digest_follows_meaning_not_layout() {
        let a: ProjectConfig = toml::from_str("project = \"p\"\n").unwrap();
        let b: ProjectConfig =
            toml::from_str("# a comment\nproject   =   \"p\"\nenv_file = \".env\"\n").unwrap();
        let c: ProjectConfig =
            toml::from_str("project = \"p\"\nserver = \"http://evil:1\"\n").unwrap();
        assert_eq!(a.digest(), b.digest());
        assert_ne!(a.digest(), c.digest());
        assert_eq!(
            c.changes_from(&a),
            ["server: (unset) -> http://evil:1".to_owned()]
        );
    }

    #[test]
    fn origins_and_loopback() {
        assert_eq!(
            origin("http://127.0.0.1:8000/").unwrap(),
            "http://127.0.0.1:8000"
        );
        assert_eq!(
            origin("HTTPS://Example.COM:443/x").unwrap(),
            "https://example.com"
        );
        assert!(origin("file:///etc").is_err());
        assert!(origin("http://user:pw@host").is_err());
        assert!(is_loopback("http://127.0.0.1:9"));
        assert!(is_loopback("http://[::1]:9"));
        assert!(is_loopback("http://localhost:9"));
        assert!(!is_loopback("http://10.0.0.1:9"));
        assert!(!is_loopback("http://localhost.evil.com"));
    }

    #[test]
    fn the_single_server_format_moves_under_its_origin() {
        let mut user: UserConfig =
            toml::from_str("server = \"http://127.0.0.1:8000\"\ntoken = \"t\"\n").unwrap();
        if let (Some(token), Some(server)) = (user.token.take(), &user.server) {
            user.servers
                .entry(origin(server).unwrap())
                .or_default()
                .token = Some(token);
        }
        assert!(user.login_for("http://127.0.0.1:8000/").is_some());
        assert!(user.login_for("http://127.0.0.1:8001").is_none());
        assert!(!toml::to_string(&user).unwrap().starts_with("token"));
    }
}
