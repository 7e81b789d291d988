//! The checks file's `status_pages:` section, and the body of the API's
//! `PUT /api/v1/status-pages/{slug}` (validated as the entry
//! `status_pages[0]`, so both report the same problems): each page's
//! slug, title, description, logo, visibility and groups of checks, by
//! name or by label selector. Check names are resolved against the files
//! and the database with the other references (`load::unresolved`); a
//! selector that selects no stored check is refused at apply (`apply.rs`).

use std::collections::BTreeMap;

use super::alerts::Fields;
use super::diagnostic::{join_index, join_key, Pos};
use super::names::{valid_name, Ref};
use super::reader::{item_path, quoted, Ctx, Slot};
use super::schema;
use super::yaml::{Kind, Node};
use crate::status_pages::{GroupSpec, PageSpec};

/// Longest title or group name, in characters.
pub const MAX_TITLE: usize = 200;
/// Longest description.
pub const MAX_DESCRIPTION: usize = 2000;
/// Longest logo URL (a small `data:` image fits).
pub const MAX_LOGO: usize = 64 * 1024;
/// Most groups on one page, and names in one group.
pub const MAX_GROUPS: usize = 100;

/// A label selector of a group, and where it is written.
#[derive(Debug, Clone, PartialEq)]
pub struct Selector {
    pub labels: BTreeMap<String, String>,
    pub file: String,
    pub pos: Pos,
    pub path: String,
}

/// One valid page, ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct DeclaredPage {
    pub slug: String,
    pub spec: PageSpec,
    pub file: String,
    /// Where its slug is written.
    pub pos: Pos,
    pub path: String,
    /// Checks its groups name (they must be declared).
    pub check_refs: Vec<Ref>,
    /// Its groups' label selectors (each must select some check).
    pub selectors: Vec<Selector>,
}

/// Why a logo URL is refused, if it is.
fn logo_problem(url: &str) -> Option<String> {
    let lower = url.trim().to_ascii_lowercase();
    if url.len() > MAX_LOGO {
        return Some(format!("the logo URL is {} bytes long: at most {MAX_LOGO}", url.len()));
    }
    let same_origin = lower.starts_with('/') && !lower.starts_with("//");
    let data_image = lower.starts_with("data:image/");
    if same_origin || data_image {
        None
    } else {
        Some(format!(
            "logo {}: the pages' Content-Security-Policy loads images only from the web role itself (pages work in air-gapped clusters): use a path such as \"/logo.svg\" served on the same host, or a data:image/… URL",
            quoted(url)
        ))
    }
}

impl Ctx<'_> {
    /// `status_pages:`: a list of pages.
    pub(super) fn pages(&mut self, node: &Node, path: &str, out: &mut Vec<DeclaredPage>) {
        let Kind::Seq(items) = &node.kind else {
            self.type_error::<()>(node, path, "a list of status pages");
            return;
        };
        for (i, item) in items.iter().enumerate() {
            let page_path = join_index(path, i);
            let before = self.diags.len();
            if let Some(page) = self.page(item, &page_path, None) {
                if self.diags.len() == before {
                    out.push(page);
                }
            }
        }
    }

    /// One page; `slug` is the API path's, used when the entry has none.
    pub(super) fn page(&mut self, node: &Node, path: &str, slug: Option<&str>) -> Option<DeclaredPage> {
        let entries = self.entries(
            node,
            path,
            Some((schema::PAGE, "a status page")),
            "a status page (a mapping with `slug`, `title` and `groups`)",
        )?;
        let mut fields = Fields { entries, path: path.to_string() };
        let slug_path = join_key(path, "slug");
        let slug = match (fields.take("slug"), slug) {
            (Some((n, p)), path_slug) => {
                let written = self.name(n, &p).set().map(|f| (f.v.clone(), f.pos));
                if let (Some((body, pos)), Some(path_slug)) = (&written, path_slug) {
                    if body != path_slug {
                        self.error(
                            *pos,
                            &p,
                            format!(
                                "the body names the page {} but the path names {}: they must be the same (or leave `slug` out)",
                                quoted(body),
                                quoted(path_slug)
                            ),
                        );
                    }
                }
                written
            }
            (None, Some(path_slug)) if valid_name(path_slug) => Some((path_slug.to_string(), node.pos)),
            (None, Some(path_slug)) => {
                self.error(
                    node.pos,
                    &slug_path,
                    format!(
                        "invalid slug {}: use lower-case letters, digits and `-`, starting and ending with a letter or digit, at most {} characters",
                        quoted(path_slug),
                        super::names::MAX_NAME_LEN
                    ),
                );
                None
            }
            (None, None) => {
                self.error(
                    node.pos,
                    &slug_path,
                    "missing: every status page needs a `slug` (its URL: /status/{slug})",
                );
                None
            }
        };
        let title = match fields.take("title") {
            Some((n, p)) => self.bounded_text(n, &p, "the title", MAX_TITLE),
            None => {
                self.error(node.pos, &join_key(path, "title"), "missing: every status page needs a `title`");
                None
            }
        };
        let description = match fields.take("description") {
            Some((n, p)) => self.bounded_text(n, &p, "the description", MAX_DESCRIPTION).map(Some),
            None => Some(None),
        };
        let logo_url = match fields.take("logo_url") {
            Some((n, p)) => match self.text(n, &p, "logo_url") {
                Slot::Set(f) => match logo_problem(&f.v) {
                    None => Some(Some(f.v.trim().to_string())),
                    Some(problem) => {
                        self.error(n.pos, &p, problem);
                        None
                    }
                },
                _ => None,
            },
            None => Some(None),
        };
        let mut flag = |key: &str| match fields.take(key) {
            Some((n, p)) => self.boolean(n, &p).set().map(|f| f.v),
            None => Some(false),
        };
        let public = flag("public");
        let show_response_times = flag("show_response_times");
        let embeddable = flag("embeddable");
        let mut check_refs = Vec::new();
        let mut selectors = Vec::new();
        let groups = match fields.take("groups") {
            Some((n, p)) => self.groups(n, &p, &mut check_refs, &mut selectors),
            None => {
                self.error(
                    node.pos,
                    &join_key(path, "groups"),
                    "missing: a status page needs `groups` (each with a `name` and `checks` or `labels`)",
                );
                None
            }
        };
        let (slug, pos) = slug?;
        Some(DeclaredPage {
            slug,
            spec: PageSpec {
                title: title?,
                description: description?,
                logo_url: logo_url?,
                public: public?,
                show_response_times: show_response_times?,
                embeddable: embeddable?,
                groups: groups?,
            },
            file: self.file.to_string(),
            pos,
            path: path.to_string(),
            check_refs,
            selectors,
        })
    }

    fn bounded_text(&mut self, node: &Node, path: &str, what: &str, max: usize) -> Option<String> {
        let f = self.text(node, path, what).set()?.clone();
        let length = f.v.chars().count();
        if length > max {
            self.error(node.pos, path, format!("{what} is {length} characters long: at most {max}"));
            return None;
        }
        Some(f.v.trim().to_string())
    }

    fn groups(
        &mut self,
        node: &Node,
        path: &str,
        check_refs: &mut Vec<Ref>,
        selectors: &mut Vec<Selector>,
    ) -> Option<Vec<GroupSpec>> {
        let Kind::Seq(items) = &node.kind else {
            self.type_error::<()>(node, path, "a list of groups");
            return None;
        };
        if items.is_empty() {
            self.error(node.pos, path, "the list is empty: a status page needs at least one group");
            return None;
        }
        if items.len() > MAX_GROUPS {
            self.error(node.pos, path, format!("{} groups: at most {MAX_GROUPS}", items.len()));
            return None;
        }
        let mut out = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            match self.group(item, &join_index(path, i), check_refs, selectors) {
                Some(g) => out.push(g),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn group(
        &mut self,
        node: &Node,
        path: &str,
        check_refs: &mut Vec<Ref>,
        selectors: &mut Vec<Selector>,
    ) -> Option<GroupSpec> {
        let entries = self.entries(
            node,
            path,
            Some((schema::PAGE_GROUP, "a group")),
            "a group (a mapping with `name` and `checks` or `labels`)",
        )?;
        let mut fields = Fields { entries, path: path.to_string() };
        let name = match fields.take("name") {
            Some((n, p)) => self.bounded_text(n, &p, "the group name", MAX_TITLE),
            None => {
                self.error(node.pos, &join_key(path, "name"), "missing: every group needs a `name`");
                None
            }
        };
        let checks = match fields.take("checks") {
            Some((n, p)) => match self.string_list(n, &p, "a check name") {
                Slot::Set(f) => {
                    let mut names = Vec::new();
                    let mut ok = true;
                    for (i, item) in f.v.iter().enumerate() {
                        let item_path = item_path(n, &p, i);
                        let name = item.v.trim().to_string();
                        if !valid_name(&name) {
                            self.error(item.pos, &item_path, format!("invalid check name {}", quoted(&name)));
                            ok = false;
                            continue;
                        }
                        if names.contains(&name) {
                            self.error(item.pos, &item_path, format!("check `{name}` is listed twice"));
                            ok = false;
                            continue;
                        }
                        check_refs.push(Ref {
                            name: name.clone(),
                            file: self.file.to_string(),
                            pos: item.pos,
                            path: item_path,
                            inherited: false,
                        });
                        names.push(name);
                    }
                    ok.then_some(names)
                }
                _ => None,
            },
            None => Some(Vec::new()),
        };
        let labels = match fields.take("labels") {
            Some((n, p)) => {
                match self.labels(n, &p) {
                    Slot::Set(f) => {
                        let labels: BTreeMap<String, String> =
                            f.v.iter().map(|(k, v)| (k.v.clone(), v.v.clone())).collect();
                        if labels.is_empty() {
                            self.error(n.pos, &p, "the selector is empty: it would select every check; list the labels to match");
                            None
                        } else {
                            selectors.push(Selector {
                                labels: labels.clone(),
                                file: self.file.to_string(),
                                pos: n.pos,
                                path: p,
                            });
                            Some(labels)
                        }
                    }
                    _ => None,
                }
            }
            None => Some(BTreeMap::new()),
        };
        let (name, checks, labels) = (name?, checks?, labels?);
        if checks.is_empty() && labels.is_empty() {
            self.error(
                node.pos,
                path,
                "the group selects no check: give `checks` (names) and/or `labels` (a selector)",
            );
            return None;
        }
        Some(GroupSpec { name, checks, labels })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks_file::declared::Validator;

    fn none(_: &str) -> Option<String> {
        None
    }

    fn run(source: &str) -> (Vec<DeclaredPage>, Vec<String>) {
        let mut v = Validator::new(&none);
        let (declared, diags) = v.validate("c.yaml", source);
        (declared.pages, diags.iter().map(|d| d.to_string()).collect())
    }

    #[test]
    fn a_page_is_read_with_its_defaults_and_references() {
        let (pages, diags) = run("
checks:
  - name: api
    url: http://x
status_pages:
  - slug: public
    title: Example status
    description: What our customers see
    logo_url: data:image/svg+xml;base64,PHN2Zz48L3N2Zz4=
    public: true
    show_response_times: true
    groups:
      - name: Web
        checks: [api, shop]
      - name: Data
        labels: { team: data }
  - slug: internal
    title: Internal
    groups: [{ name: All, checks: api }]
");
        assert!(diags.is_empty(), "{diags:#?}");
        assert_eq!(pages.len(), 2);
        let p = &pages[0];
        assert_eq!((p.slug.as_str(), p.pos), ("public", Pos { line: 6, col: 11 }));
        assert!(p.spec.public && p.spec.show_response_times && !p.spec.embeddable);
        assert_eq!(p.spec.groups[0].checks, vec!["api", "shop"]);
        assert_eq!(p.spec.groups[1].labels.get("team").map(String::as_str), Some("data"));
        let refs: Vec<(&str, &str)> =
            p.check_refs.iter().map(|r| (r.name.as_str(), r.path.as_str())).collect();
        assert_eq!(
            refs,
            vec![
                ("api", "status_pages[0].groups[0].checks[0]"),
                ("shop", "status_pages[0].groups[0].checks[1]")
            ]
        );
        assert_eq!(p.selectors[0].path, "status_pages[0].groups[1].labels");
        let q = &pages[1];
        assert!(!q.spec.public, "pages are private unless they say otherwise");
        assert_eq!(q.spec.groups[0].checks, vec!["api"]);
        assert_eq!(q.check_refs[0].path, "status_pages[1].groups[0].checks");
    }

    #[test]
    fn every_problem_with_its_place() {
        let (pages, diags) = run("
checks: []
status_pages:
  - slug: Public_Page
    title: \"\"
    logo_url: https://cdn.example.com/logo.png
    public: yes
    colour: blue
    groups:
      - name: Web
      - checks: [api, api, Bad_Name]
        labels: {}
  - title: No slug
    groups: []
  - just text
");
        assert!(pages.is_empty());
        assert_eq!(
            diags,
            vec![
                "c.yaml:4:11: status_pages[0].slug: invalid name \"Public_Page\": use lower-case letters, digits and `-`, starting and ending with a letter or digit, at most 63 characters, e.g. \"public-page\"",
                "c.yaml:5:12: status_pages[0].title: the title must not be empty",
                "c.yaml:6:15: status_pages[0].logo_url: logo \"https://cdn.example.com/logo.png\": the pages' Content-Security-Policy loads images only from the web role itself (pages work in air-gapped clusters): use a path such as \"/logo.svg\" served on the same host, or a data:image/… URL",
                "c.yaml:7:13: status_pages[0].public: expected true or false, found the string \"yes\" (YAML 1.2 booleans are only true and false)",
                "c.yaml:8:5: status_pages[0].colour: unknown field `colour` in a status page (known fields: slug, title, description, logo_url, public, show_response_times, embeddable, groups)",
                "c.yaml:10:9: status_pages[0].groups[0]: the group selects no check: give `checks` (names) and/or `labels` (a selector)",
                "c.yaml:11:9: status_pages[0].groups[1].name: missing: every group needs a `name`",
                "c.yaml:11:23: status_pages[0].groups[1].checks[1]: check `api` is listed twice",
                "c.yaml:11:28: status_pages[0].groups[1].checks[2]: invalid check name \"Bad_Name\"",
                "c.yaml:12:17: status_pages[0].groups[1].labels: the selector is empty: it would select every check; list the labels to match",
                "c.yaml:13:5: status_pages[1].slug: missing: every status page needs a `slug` (its URL: /status/{slug})",
                "c.yaml:14:13: status_pages[1].groups: the list is empty: a status page needs at least one group",
                "c.yaml:15:5: status_pages[2]: expected a status page (a mapping with `slug`, `title` and `groups`), found the string \"just text\"",
            ]
        );
    }

    #[test]
    fn a_body_is_validated_as_the_first_page_of_a_file() {
        let mut v = Validator::new(&none);
        let (page, diags) =
            v.validate_page("body", r#"{"title": "T", "groups": [{"name": "G", "checks": ["a"]}]}"#, "ops");
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(page.unwrap().slug, "ops");
        let (page, diags) =
            v.validate_page("body", "slug: other\ntitle: T\ngroups: [{name: G, checks: [a]}]\n", "ops");
        assert!(page.is_none());
        assert_eq!(diags[0].path, "status_pages[0].slug");
        assert!(diags[0].message.contains("\"other\"") && diags[0].message.contains("\"ops\""));
        let (_, diags) = v.validate_page("body", "title: T\ngroups: [{name: G, labels: {}}]\n", "ops");
        assert_eq!(super::super::diagnostic::pointer(&diags[0].path, "status_pages[0]"), "/groups/0/labels");
        assert_eq!(v.validate_page("body", "", "ops").1.len(), 1);
        assert_eq!(v.validate_page("body", "title: T\n", "Bad").1[0].path, "status_pages[0].slug");
    }

    #[test]
    fn logos_come_from_the_same_origin_or_data() {
        assert_eq!(logo_problem("/logo.svg"), None);
        assert_eq!(logo_problem("data:image/png;base64,AAAA"), None);
        assert!(logo_problem("//cdn.example.com/x.png").is_some());
        assert!(logo_problem("https://example.com/x.png").is_some());
        assert!(logo_problem("javascript:alert(1)").is_some());
        assert!(logo_problem(&format!("data:image/png;base64,{}", "A".repeat(MAX_LOGO))).is_some());
    }
}
