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
    let leaks = hidden_in_signatures(
        &target.join("doc/occ"),
        &root.join("occ-runtime/src"),
        &actual,
    );
    assert!(
        leaks.is_empty(),
        "rustdoc shows types a user cannot name or read about in these signatures \
         (page: type); keep them inside a `#[doc(hidden)]` impl or a public, documented \
         item:\n{}",
        leaks.join("\n")
    );
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

/// The types occ-runtime declares `pub` but does not show (hidden, or in a
/// private module) that rustdoc prints in a signature on a page of occ's
/// documentation: a declaration, a method's header, an impl's header with its
/// where-clause. Each is a name a user reads there and cannot look up.
fn hidden_in_signatures(doc: &Path, runtime_src: &Path, listing: &str) -> Vec<String> {
    let shown: std::collections::BTreeSet<&str> = listing
        .lines()
        .filter_map(|line| line.rsplit("::").next())
        .collect();
    let mut declared = std::collections::BTreeSet::new();
    for file in files(runtime_src, "rs") {
        let text = std::fs::read_to_string(&file).unwrap();
        for line in text.lines() {
            let line = line.trim_start();
            for kind in [
                "pub struct ",
                "pub enum ",
                "pub trait ",
                "pub type ",
                "pub union ",
            ] {
                if let Some(rest) = line.strip_prefix(kind) {
                    let name: String = rest
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    // A supertrait named `Sealed` is the Rust API
                    // guidelines' sign (C-SEALED) that only occ implements
                    // the trait; the trait's docs say which types do.
                    if !shown.contains(name.as_str()) && name != "Sealed" {
                        declared.insert(name);
                    }
                }
            }
        }
    }
    // The pages of occ's own items: `kind.Name.html` under its module's
    // folder, as `items` lists them (diesel's re-exported items are not occ's).
    let own: std::collections::BTreeSet<String> = listing
        .lines()
        .filter_map(|line| {
            let (kind, path) = line.split_once(" occ::")?;
            let (dir, name) = path.rsplit_once("::").unwrap_or(("", path));
            let dir = dir.replace("::", "/");
            Some(if dir.is_empty() {
                format!("{kind}.{name}.html")
            } else {
                format!("{dir}/{kind}.{name}.html")
            })
        })
        .collect();
    let mut leaks = Vec::new();
    for page in files(doc, "html") {
        let name = page.strip_prefix(doc).unwrap().display().to_string();
        if !own.contains(&name) {
            continue;
        }
        let html = std::fs::read_to_string(&page).unwrap();
        for signature in signatures(&html, &page) {
            for word in signature.split(|c: char| !(c.is_alphanumeric() || c == '_')) {
                if declared.contains(word) {
                    leaks.push(format!("{name}: {word}"));
                }
            }
        }
    }
    leaks.sort();
    leaks.dedup();
    leaks
}

/// The text of each signature on a rustdoc page: the item's declaration
/// (`<pre class="rust item-decl">`) and every code header (methods, impls).
fn signatures(html: &str, page: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for (open, close) in [
        ("<pre class=\"rust item-decl\">", "</pre>"),
        ("class=\"code-header\">", "</h"),
    ] {
        let mut rest = html;
        while let Some(start) = rest.find(open) {
            let body = &rest[start + open.len()..];
            let end = body.find(close).unwrap_or(body.len());
            out.push(text_of(&body[..end], page));
            rest = &body[end..];
        }
    }
    out
}

/// The words of a signature that have no page to read: tags dropped, and
/// the text of each link whose page exists (a link into a hidden module
/// points at a page rustdoc never wrote, and its text stays), the entities
/// rustdoc writes decoded. What remains are keywords, generic parameters and
/// the names a user cannot look up.
fn text_of(html: &str, page: &Path) -> String {
    let mut text = String::new();
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        text.push_str(&rest[..start]);
        let tag = &rest[start..];
        let end = tag.find('>').map_or(tag.len(), |e| e + 1);
        rest = &tag[end..];
        let target = tag
            .strip_prefix("<a ")
            .and_then(|a| a.split("href=\"").nth(1))
            .and_then(|href| href.split(['"', '#']).next());
        // `#associatedtype.Kind` and the like point into the page itself.
        let resolves = target
            .is_some_and(|href| href.is_empty() || page.parent().unwrap().join(href).is_file());
        if resolves {
            let close = rest.find("</a>").map_or(rest.len(), |e| e + "</a>".len());
            text.push(' ');
            rest = &rest[close..];
        }
    }
    text.push_str(rest);
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Every file under `dir` whose name ends in `.ext`.
fn files(dir: &Path, ext: &str) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files(&path, ext));
        } else if path.extension().is_some_and(|e| e == ext) {
            found.push(path);
        }
    }
    found
}
