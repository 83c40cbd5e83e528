//! Drift: which key names one side has that the other lacks. Names only, never values.

use serde::Serialize;

/// The comparison of a "left" key list (usually local) with a "right" one (the server's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Drift {
    pub left: Vec<String>,
    pub right: Vec<String>,
    /// On the right, not on the left.
    pub missing: Vec<String>,
    /// On the left, not on the right.
    pub extra: Vec<String>,
}

impl Drift {
    pub fn new(left: Vec<String>, right: Vec<String>) -> Drift {
        let missing = right
            .iter()
            .filter(|k| !left.contains(k))
            .cloned()
            .collect();
        let extra = left
            .iter()
            .filter(|k| !right.contains(k))
            .cloned()
            .collect();
        Drift {
            left,
            right,
            missing,
            extra,
        }
    }

    pub fn in_sync(&self) -> bool {
        self.missing.is_empty() && self.extra.is_empty()
    }

    /// The seed-compatible block. Labels: ("Local keys", "Server keys", "locally").
    pub fn render(&self, left: &str, right: &str, side: &str) -> String {
        format!(
            "{left} ({}): {}\n{right} ({}): {}\nMissing {side}: {}\nExtra {side}: {}\nIn sync? {}\n",
            self.left.len(),
            list(&self.left),
            self.right.len(),
            list(&self.right),
            list(&self.missing),
            list(&self.extra),
            if self.in_sync() { "True" } else { "False" }
        )
    }

    /// One line per difference, as hooks and the watcher print them.
    pub fn warnings(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .extra
            .iter()
            .map(|k| format!("+ {k} (not on server)"))
            .collect();
        lines.extend(
            self.missing
                .iter()
                .map(|k| format!("- {k} (missing locally)")),
        );
        lines
    }
}

impl Drift {
    /// The differences on one line, as a hook prints them.
    pub fn summary(&self) -> String {
        self.warnings().join(", ")
    }
}

fn list(keys: &[String]) -> String {
    if keys.is_empty() {
        "None".to_owned()
    } else {
        keys.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(keys: &[&str]) -> Vec<String> {
        keys.iter().map(|k| k.to_string()).collect()
    }

    #[test]
    fn seed_format() {
        let d = Drift::new(
            v(&["API_KEY", "DEBUG", "DATABASE_URL"]),
            v(&["API_KEY", "DEBUG", "DATABASE_URL", "STRIPE_SECRET"]),
        );
        assert_eq!(
            d.render("Local keys", "Server keys", "locally"),
            "Local keys (3): API_KEY, DEBUG, DATABASE_URL\n\
             Server keys (4): API_KEY, DEBUG, DATABASE_URL, STRIPE_SECRET\n\
             Missing locally: STRIPE_SECRET\n\
             Extra locally: None\n\
             In sync? False\n"
        );
        assert_eq!(d.warnings(), ["- STRIPE_SECRET (missing locally)"]);
    }
}
