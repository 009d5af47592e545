//! The checklist of docs/security.md against the tests (its "How a row counts as covered"):
//!
//! 1. Every row ID (`A1` … `L8`, `R1` … `R12`) is named by a test function of `src/` or
//!    `tests/` — a function marked `#[test]`, `#[actix_web::test]` or `#[tokio::test]`, or
//!    listed in an `on_both_backends!(...)` — whose name starts with the lowercased ID as a
//!    segment: `r8_…` names R8, `a4_j1_j4_…` names A4, J1 and J4 (the leading run of ID
//!    segments).
//! 2. Unless the row's "Proving test(s)" cell says **not yet covered** followed by a reason
//!    (` — why`); such a row must then have no test naming it (or the cell is stale), and the
//!    coverage summary's "Not yet covered (n): …" must list exactly those rows, with the
//!    "Rows" and "Covered" counts right.
//! 3. The summary's "Covered, with a part of the row not yet proven (…) (n): …" lists
//!    exactly the rows whose "Proving test(s)" cell says `Gap:`, and n is their number.
//! 4. Every test the document cites (`` `src/<file>.rs::tests::<fn>` ``,
//!    `` `tests/<dir>/<file>.rs::<fn>` ``) exists: that file defines a function of that name.
//!
//! The rules run on the real files in `every_row_of_docs_security_md_is_named_by_a_test`, and
//! on small made-up documents in the others, which show each rule failing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One row of the checklist: its ID and its "Proving test(s)" cell.
#[derive(Debug)]
struct Row {
    id: String,
    proving: String,
}

/// `A1` … `L99`, `R1` … : a letter of A–L or R, then digits.
fn is_id(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some('A'..='L' | 'R'))
        && !chars.as_str().is_empty()
        && chars.all(|c| c.is_ascii_digit())
}

/// The rows of the document's tables: lines `| ID | … | proving |` (the ID may be bold).
fn rows(doc: &str) -> Vec<Row> {
    doc.lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.strip_prefix('|')?.split(" | ").collect();
            let id = cells.first()?.trim().trim_matches('*').to_string();
            let proving = cells
                .last()?
                .trim()
                .trim_end_matches('|')
                .trim()
                .to_string();
            (is_id(&id) && cells.len() >= 3).then_some(Row { id, proving })
        })
        .collect()
}

/// The IDs a test function's name names: its leading segments that are IDs.
fn ids_named_by(function: &str) -> Vec<String> {
    function
        .split('_')
        .map(str::to_ascii_uppercase)
        .take_while(|s| is_id(s))
        .collect()
}

/// The names of the test functions in one Rust source file.
fn test_functions(source: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut marked = false;
    for line in source.lines() {
        let s = line.trim();
        if s.starts_with("#[test]")
            || s.starts_with("#[actix_web::test")
            || s.starts_with("#[tokio::test")
        {
            marked = true;
            continue;
        }
        if s.is_empty() || s.starts_with("#[") || s.starts_with("//") {
            continue;
        }
        if marked && let Some(name) = fn_name(s) {
            out.push(name);
        }
        marked = false;
    }
    // The functions listed in `on_both_backends!(...)`.
    let mut rest = source;
    while let Some(at) = rest.find("on_both_backends!(") {
        let after = &rest[at + "on_both_backends!(".len()..];
        let list = after.split(')').next().unwrap_or("");
        out.extend(
            list.split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(str::to_string),
        );
        rest = after;
    }
    out
}

/// The function a line declares (`fn name(`, `pub async fn name<…>(`), if any.
fn fn_name(line: &str) -> Option<String> {
    let after = line.split("fn ").nth(1)?;
    let before = line.split("fn ").next()?;
    if !before
        .split_whitespace()
        .all(|w| matches!(w, "pub" | "async" | "pub(crate)" | "unsafe" | "const"))
    {
        return None;
    }
    let name: String = after
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty()).then_some(name)
}

/// Every function declared in a file, tests or not (for rule 3).
fn all_functions(source: &str) -> BTreeSet<String> {
    source.lines().filter_map(|l| fn_name(l.trim())).collect()
}

/// The cited tests: `(file, function)` for every `` `src/….rs::…::fn` `` and
/// `` `tests/….rs::fn` `` in the document.
fn cited_tests(doc: &str) -> Vec<(String, String)> {
    doc.split('`')
        .skip(1)
        .step_by(2)
        .filter(|s| s.starts_with("src/") || s.starts_with("tests/"))
        .filter_map(|s| {
            let (file, path) = s.split_once(".rs::")?;
            let function = path.rsplit("::").next()?;
            let clean = function
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
            clean.then(|| (format!("{file}.rs"), function.to_string()))
        })
        .collect()
}

/// What the coverage summary says.
struct Summary {
    /// The "Not yet covered (n): X, Y." list.
    uncovered: BTreeSet<String>,
    /// The "Covered, with a part of the row not yet proven (…) (n): X, Y." list and its n.
    gaps: (BTreeSet<String>, Option<usize>),
    /// "Rows: n".
    total: Option<usize>,
    /// "Covered: **n of m**".
    covered: Option<(usize, usize)>,
}

/// The IDs listed after the `(n):` of a summary line, and that n.
fn listed_ids(rest: &str) -> (BTreeSet<String>, Option<usize>) {
    let Some((head, list)) = rest.rsplit_once("):") else {
        return (BTreeSet::new(), None);
    };
    let n = head.rsplit_once('(').and_then(|(_, n)| n.parse().ok());
    let ids = list
        .split([',', '.', ' '])
        .filter(|s| is_id(s))
        .map(str::to_string)
        .collect();
    (ids, n)
}

fn summary(doc: &str) -> Summary {
    let mut uncovered = BTreeSet::new();
    let mut gaps = (BTreeSet::new(), None);
    let mut total = None;
    let mut covered = None;
    for line in doc.lines() {
        let line = line.trim_start_matches("- ");
        if let Some(rest) = line.strip_prefix("Not yet covered (") {
            uncovered = listed_ids(&format!("({rest}")).0;
        }
        if let Some(rest) = line.strip_prefix("Covered, with a part of the row not yet proven") {
            gaps = listed_ids(rest);
        }
        if let Some(rest) = line.strip_prefix("Rows: ") {
            total = rest.split_whitespace().next().and_then(|n| n.parse().ok());
        }
        if let Some(rest) = line.strip_prefix("Covered: **") {
            let mut words = rest
                .split(|c: char| !c.is_ascii_digit())
                .filter(|w| !w.is_empty());
            let n = words.next().and_then(|n| n.parse().ok());
            let m = words.next().and_then(|n| n.parse().ok());
            covered = n.zip(m);
        }
    }
    Summary {
        uncovered,
        gaps,
        total,
        covered,
    }
}

/// Applies rules 1–3; every violation, one line each.
fn violations(
    doc: &str,
    tests: &[String],
    functions_of: &dyn Fn(&str) -> Option<BTreeSet<String>>,
) -> Vec<String> {
    let mut named: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for t in tests {
        for id in ids_named_by(t) {
            named.entry(id).or_default().push(t);
        }
    }
    let rows = rows(doc);
    let mut out = Vec::new();
    let mut uncovered = BTreeSet::new();
    for row in &rows {
        let declared = row.proving.contains("**not yet covered**");
        match (named.get(&row.id), declared) {
            (None, false) => out.push(format!(
                "{}: no test names it (a test function `{}_…`), and the row does not say **not yet covered** with a reason",
                row.id,
                row.id.to_ascii_lowercase()
            )),
            (None, true) => {
                let reason = row
                    .proving
                    .split_once("**not yet covered**")
                    .map_or("", |(_, r)| r)
                    .trim_start_matches([' ', '—', '-', ':'])
                    .trim();
                if reason.is_empty() {
                    out.push(format!("{}: **not yet covered** without a reason", row.id));
                }
                uncovered.insert(row.id.clone());
            }
            (Some(tests), true) => out.push(format!(
                "{}: says **not yet covered** but {tests:?} name it",
                row.id
            )),
            (Some(_), false) => {}
        }
    }
    let Summary {
        uncovered: listed,
        gaps,
        total,
        covered,
    } = summary(doc);
    let with_gap: BTreeSet<String> = rows
        .iter()
        .filter(|r| r.proving.contains("Gap:"))
        .map(|r| r.id.clone())
        .collect();
    if gaps.0 != with_gap || gaps.1 != Some(with_gap.len()) {
        out.push(format!(
            "the summary lists {:?} ({:?}) as covered with a gap; the rows that say `Gap:` are {with_gap:?}",
            gaps.0, gaps.1
        ));
    }
    if listed != uncovered {
        out.push(format!(
            "the summary lists {listed:?} as not yet covered; the rows say {uncovered:?}"
        ));
    }
    if total != Some(rows.len()) {
        out.push(format!(
            "the summary says {total:?} rows; there are {}",
            rows.len()
        ));
    }
    let expect = (rows.len() - uncovered.len(), rows.len());
    if covered != Some(expect) {
        out.push(format!(
            "the summary says covered {covered:?}; it is {} of {}",
            expect.0, expect.1
        ));
    }
    for (file, function) in cited_tests(doc) {
        match functions_of(&file) {
            None => out.push(format!("cites {file}::{function}: no such file")),
            Some(fns) if !fns.contains(&function) => {
                out.push(format!("cites {file}::{function}: no such function there"))
            }
            Some(_) => {}
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_row_of_docs_security_md_is_named_by_a_test() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/security.md")).expect("docs/security.md");
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    rust_files(&root.join("tests"), &mut files);
    let tests: Vec<String> = files
        .iter()
        .flat_map(|f| test_functions(&std::fs::read_to_string(f).expect("source")))
        .collect();
    assert!(tests.len() > 200, "found {} test functions", tests.len());
    assert_eq!(rows(&doc).len(), 115, "the checklist's rows");
    let functions_of = |file: &str| {
        std::fs::read_to_string(root.join(file))
            .ok()
            .map(|s| all_functions(&s))
    };
    let found = violations(&doc, &tests, &functions_of);
    assert!(
        found.is_empty(),
        "docs/security.md and the tests disagree:\n{}",
        found.join("\n")
    );
}

const DOC: &str = "\
- Rows: 3 (…).
- Covered: **2 of 3** (…).
- Not yet covered (1): B2.
- Covered, with a part of the row not yet proven (see \"Gap\" in the row) (1): R3.

| ID | Requirement | How | Expected | Proving test(s) |
|---|---|---|---|---|
| **A. Group** |||||
| A1 | r | h | e | `tests/api/x.rs::a1_works` |
| B2 | r | h | e | **not yet covered** — needs a browser. |
| R3 | r | h | e | `src/y.rs::tests::r3_holds`. Gap: not under load. |
";

fn files(file: &str) -> Option<BTreeSet<String>> {
    match file {
        "tests/api/x.rs" => Some(["a1_works".to_string()].into()),
        "src/y.rs" => Some(["r3_holds".to_string()].into()),
        _ => None,
    }
}

#[test]
fn the_checklist_rules_pass_a_consistent_document_and_catch_each_fault() {
    let tests = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        violations(DOC, &tests(&["a1_works", "r3_holds"]), &files),
        Vec::<String>::new()
    );
    // Rule 1: a row without a test.
    let v = violations(DOC, &tests(&["a1_works"]), &files);
    assert!(
        v.len() == 1 && v[0].starts_with("R3: no test names it"),
        "{v:?}"
    );
    // A name only counts as a leading segment: `x_r3_…` does not name R3.
    assert!(!violations(DOC, &tests(&["a1_works", "x_r3_holds"]), &files).is_empty());
    assert_eq!(ids_named_by("a4_j1_j4_every_fault"), ["A4", "J1", "J4"]);
    assert_eq!(ids_named_by("r10_c2_exactly_once"), ["R10", "C2"]);
    assert!(ids_named_by("serve_exits_0").is_empty());
    // Rule 2: a stale "not yet covered", one without a reason, a wrong summary.
    let v = violations(DOC, &tests(&["a1_works", "r3_holds", "b2_now"]), &files);
    assert!(
        v.iter()
            .any(|l| l.starts_with("B2: says **not yet covered**")),
        "{v:?}"
    );
    let bare = DOC.replace(" — needs a browser.", "");
    let v = violations(&bare, &tests(&["a1_works", "r3_holds"]), &files);
    assert_eq!(v, ["B2: **not yet covered** without a reason"]);
    let wrong = DOC.replace("(1): B2.", "(1): A1.");
    assert!(!violations(&wrong, &tests(&["a1_works", "r3_holds"]), &files).is_empty());
    let miscounted = DOC.replace("**2 of 3**", "**3 of 3**");
    assert!(!violations(&miscounted, &tests(&["a1_works", "r3_holds"]), &files).is_empty());
    // Rule 3: a gap the summary does not list, or a stale one it does.
    let unlisted = DOC.replace("(1): R3.", "(0): .");
    assert!(!violations(&unlisted, &tests(&["a1_works", "r3_holds"]), &files).is_empty());
    let stale_gap = DOC.replace(". Gap: not under load.", ".");
    let v = violations(&stale_gap, &tests(&["a1_works", "r3_holds"]), &files);
    assert!(
        v.len() == 1 && v[0].contains("as covered with a gap"),
        "{v:?}"
    );
    // Rule 4: a cited test that does not exist.
    let stale = DOC.replace("a1_works`", "a1_gone`");
    let v = violations(&stale, &tests(&["a1_works", "r3_holds"]), &files);
    assert_eq!(v, ["cites tests/api/x.rs::a1_gone: no such function there"]);
}

#[test]
fn test_functions_are_found_by_attribute_and_in_on_both_backends() {
    let source = r#"
crate::on_both_backends!(
    a1_first,
    b2_second,
);
#[test]
fn c3_unit() {}
#[actix_web::test]
#[ignore]
async fn d4_async() {}
fn e5_helper_not_a_test() {}
proptest! {
    #[test]
    fn f6_property(x in 0..1) {}
}
"#;
    assert_eq!(
        test_functions(source),
        [
            "c3_unit",
            "d4_async",
            "f6_property",
            "a1_first",
            "b2_second"
        ]
    );
}
