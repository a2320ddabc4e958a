//! The public API of `occ`, as rustdoc lists it (`all.html`), against the
//! checked-in `tests/public-api.txt`: an item added or removed by accident
//! fails here. After a deliberate change, run with `OCC_BLESS=1` to rewrite
//! the listing, and review its diff. Ignored by a plain `cargo test` for
//! its build time; `cargo test -- --include-ignored` runs it.

use std::path::Path;
use std::process::Command;

#[test]
#[ignore = "runs cargo doc in a target directory of its own (about 25 s cold): cargo test -- --include-ignored runs it, as CI does"]
fn public_api_matches_the_listing() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("public-api");
    // Default features, the async API and the HTTP integration: the items do
    // not depend on the backends enabled.
    let status = Command::new(env!("CARGO"))
        .args([
            "doc",
            "--no-deps",
            "--quiet",
            "-p",
            "occ",
            "--features",
            "async,axum",
        ])
        .arg("--target-dir")
        .arg(&target)
        .current_dir(root)
        .status()
        .expect("run cargo doc");
    assert!(status.success(), "cargo doc failed");
    let all = std::fs::read_to_string(target.join("doc/occ/all.html")).expect("rustdoc's all.html");
    let actual = items(&all);
    let listing = root.join("tests/public-api.txt");
    if std::env::var("OCC_BLESS").as_deref() == Ok("1") {
        std::fs::write(&listing, &actual).unwrap();
    }
    let expected = std::fs::read_to_string(&listing).unwrap_or_default();
    assert!(
        actual == expected,
        "the public API changed; if on purpose, run with OCC_BLESS=1 and review the diff\n\
         --- tests/public-api.txt\n{expected}\n+++ rustdoc\n{actual}"
    );
}

/// One line per item, as `kind path`: rustdoc's all.html links each item to a
/// page named `kind.Name.html` under its module's folder.
fn items(all: &str) -> String {
    let mut items: Vec<String> = all
        .split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .filter_map(|href| {
            let href = href.strip_suffix(".html")?;
            let (dir, page) = href.rsplit_once('/').unwrap_or(("", href));
            let (kind, name) = page.split_once('.')?;
            let path = if dir.is_empty() {
                format!("occ::{name}")
            } else {
                format!("occ::{}::{name}", dir.replace('/', "::"))
            };
            Some(format!("{kind} {path}"))
        })
        .collect();
    items.sort();
    items.dedup();
    // The prelude re-exports diesel's: listed are only occ's own items there.
    let own = |line: &String| match line.split_once(" occ::prelude::") {
        Some((kind, name)) => items.contains(&format!("{kind} occ::{name}")),
        None => true,
    };
    let listed: Vec<&String> = items.iter().filter(|line| own(line)).collect();
    listed.iter().map(|line| format!("{line}\n")).collect()
}
