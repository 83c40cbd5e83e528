//! Drift: which key names one side has that the other lacks, and (from value
//! fingerprints, when both sides have them under one key) which values differ. Names
//! only, never values.

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
    /// On both, with different values; `None` when values could not be compared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changed: Option<Vec<String>>,
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
            changed: None,
        }
    }

    /// The keys whose values differ (see [`crate::fingerprints::changed`]).
    pub fn with_values(mut self, changed: Option<Vec<String>>) -> Drift {
        self.changed = changed;
        self
    }

    pub fn in_sync(&self) -> bool {
        self.missing.is_empty()
            && self.extra.is_empty()
            && self.changed.as_ref().is_none_or(Vec::is_empty)
    }

    /// The seed-compatible block. Labels: ("Local keys", "Server keys", "locally"). A
    /// "Changed values" line only when values were compared and some differ.
    pub fn render(&self, left: &str, right: &str, side: &str) -> String {
        let changed = match &self.changed {
            Some(changed) if !changed.is_empty() => {
                format!("Changed values: {}\n", list(changed))
            }
            _ => String::new(),
        };
        format!(
            "{left} ({}): {}\n{right} ({}): {}\nMissing {side}: {}\nExtra {side}: {}\n{changed}In sync? {}\n",
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
        lines.extend(
            self.changed
                .iter()
                .flatten()
                .map(|k| format!("~ {k} (value differs from the server)")),
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

    #[test]
    fn changed_values_count_when_compared() {
        let d = Drift::new(v(&["A", "B"]), v(&["A", "B"]));
        assert!(d.in_sync());
        let d = d.with_values(Some(v(&["B"])));
        assert!(!d.in_sync());
        assert_eq!(d.warnings(), ["~ B (value differs from the server)"]);
        assert!(
            d.render("Local keys", "Server keys", "locally")
                .ends_with("Extra locally: None\nChanged values: B\nIn sync? False\n")
        );
        let same = Drift::new(v(&["A"]), v(&["A"])).with_values(Some(vec![]));
        assert!(same.in_sync());
        assert!(!same.render("L", "S", "here").contains("Changed values"));
    }
}
