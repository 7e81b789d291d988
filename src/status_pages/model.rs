//! A status page as declared (in a checks file's `status_pages:` or
//! through `PUT /api/v1/status-pages/{slug}`) and stored in
//! `status_pages.spec`. Validation lives with the checks file
//! (`checks_file/status_pages.rs`), which both ways of declaring share.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One page. Its slug is the key it is stored under, not part of the spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PageSpec {
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A same-origin path (`/logo.svg`) or a `data:image/…` URL: the pages'
    /// Content-Security-Policy loads images from nowhere else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logo_url: Option<String>,
    /// Readable without a token. A private page answers 404 to anonymous callers.
    #[serde(default)]
    pub public: bool,
    /// Draw each check's response-time chart (p50 and p95).
    #[serde(default)]
    pub show_response_times: bool,
    /// May be framed by other sites (`frame-ancestors *`).
    #[serde(default)]
    pub embeddable: bool,
    pub groups: Vec<GroupSpec>,
}

/// A group of checks on a page: those named, then those whose labels
/// contain every label of `labels` (each check once, by name).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GroupSpec {
    pub name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl GroupSpec {
    /// Whether the check `name` with `labels` belongs to the group.
    pub fn selects(&self, name: &str, labels: &BTreeMap<String, String>) -> bool {
        self.checks.iter().any(|c| c == name)
            || (!self.labels.is_empty() && self.labels.iter().all(|(k, v)| labels.get(k) == Some(v)))
    }
}

/// Who owns a stored page: a checks file (`checks apply`) or the API.
/// Neither changes nor prunes the other's (as for checks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageOwner {
    File,
    Api,
}

impl PageOwner {
    pub fn as_str(self) -> &'static str {
        match self {
            PageOwner::File => "file",
            PageOwner::Api => "api",
        }
    }

    /// The stored text (the column's CHECK allows only these two).
    pub fn from_stored(text: &str) -> PageOwner {
        if text == "api" {
            PageOwner::Api
        } else {
            PageOwner::File
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_select_by_name_or_by_every_label() {
        let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        let g = GroupSpec {
            name: "Web".into(),
            checks: vec!["api".into()],
            labels: labels(&[("team", "web"), ("env", "prod")]),
        };
        assert!(g.selects("api", &labels(&[])));
        assert!(g.selects("shop", &labels(&[("team", "web"), ("env", "prod"), ("x", "y")])));
        assert!(!g.selects("shop", &labels(&[("team", "web")])));
        let by_name = GroupSpec { name: "A".into(), checks: vec!["a".into()], labels: BTreeMap::new() };
        assert!(!by_name.selects("b", &labels(&[("team", "web")])), "no selector selects nothing more");
    }

    #[test]
    fn a_spec_round_trips_and_defaults_to_private() {
        let spec: PageSpec =
            serde_json::from_str(r#"{"title":"T","groups":[{"name":"G","checks":["a"]}]}"#).unwrap();
        assert!(!spec.public && !spec.show_response_times && !spec.embeddable);
        let back: PageSpec = serde_json::from_value(serde_json::to_value(&spec).unwrap()).unwrap();
        assert_eq!(back, spec);
        assert_eq!(PageOwner::from_stored("api"), PageOwner::Api);
        assert_eq!(PageOwner::from_stored("file").as_str(), "file");
    }
}
