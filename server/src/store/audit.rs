//! What an audit row records, typed: the action a request took and how it ended. The
//! stored and served form of each is its lower-case name (`push`, `token.mint`, `ok`,
//! `conflict`, …), the same on every backend, so the hash chain is too.

use std::fmt;
use std::str::FromStr;

/// What was attempted. Refusals (403) are recorded under the action of the route refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Push,
    Pull,
    Keys,
    Versions,
    Branches,
    Audit,
    AuditVerify,
    Matrix,
    TokenMint,
    TokenList,
    TokenRevoke,
}

impl Action {
    pub const ALL: [Action; 11] = [
        Action::Push,
        Action::Pull,
        Action::Keys,
        Action::Versions,
        Action::Branches,
        Action::Audit,
        Action::AuditVerify,
        Action::Matrix,
        Action::TokenMint,
        Action::TokenList,
        Action::TokenRevoke,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Push => "push",
            Action::Pull => "pull",
            Action::Keys => "keys",
            Action::Versions => "versions",
            Action::Branches => "branches",
            Action::Audit => "audit",
            Action::AuditVerify => "audit.verify",
            Action::Matrix => "matrix",
            Action::TokenMint => "token.mint",
            Action::TokenList => "token.list",
            Action::TokenRevoke => "token.revoke",
        }
    }
}

/// How an audited request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Ok,
    Conflict,
    NotFound,
    Forbidden,
}

impl Outcome {
    pub const ALL: [Outcome; 4] = [
        Outcome::Ok,
        Outcome::Conflict,
        Outcome::NotFound,
        Outcome::Forbidden,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Conflict => "conflict",
            Outcome::NotFound => "not_found",
            Outcome::Forbidden => "forbidden",
        }
    }
}

/// A stored name that is not one of ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unknown(pub String);

impl FromStr for Action {
    type Err = Unknown;
    fn from_str(s: &str) -> Result<Action, Unknown> {
        Action::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| Unknown(s.to_owned()))
    }
}

impl FromStr for Outcome {
    type Err = Unknown;
    fn from_str(s: &str) -> Result<Outcome, Unknown> {
        Outcome::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| Unknown(s.to_owned()))
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for a in Action::ALL {
            assert_eq!(a.as_str().parse::<Action>(), Ok(a));
        }
        for o in Outcome::ALL {
            assert_eq!(o.as_str().parse::<Outcome>(), Ok(o));
        }
        assert!("probe".parse::<Action>().is_err());
    }
}
