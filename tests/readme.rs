//! The README is the front door on a code host and on crates.io, where
//! rustdoc's conventions do not apply: it stays short, shows every line of
//! its examples, and links only where a link resolves outside the
//! repository. The manual is `occ::guide`.

const README: &str = include_str!("../README.md");

#[test]
fn the_readme_is_at_most_250_lines() {
    let lines = README.lines().count();
    assert!(
        lines <= 250,
        "README.md has {lines} lines: move the detail into a guide under src/guide"
    );
}

#[test]
fn the_readme_has_no_hidden_doctest_lines() {
    // Inside a code block: whether it is Rust (a doctest), else `None`.
    let mut block: Option<bool> = None;
    let mut in_rust = false;
    for (number, line) in README.lines().enumerate() {
        if let Some(fence) = line.strip_prefix("```") {
            block = match block {
                Some(_) => None,
                None => Some(fence.is_empty() || fence.starts_with("rust")),
            };
            in_rust = block == Some(true);
            continue;
        }
        let hidden = line == "#" || line.starts_with("# ");
        assert!(
            !(in_rust && hidden),
            "README.md:{}: `{line}` is hidden by rustdoc but shown on a code host; \
             write the example whole",
            number + 1
        );
    }
}

#[test]
fn every_readme_link_is_absolute() {
    for (number, line) in README.lines().enumerate() {
        let targets = line
            .split("](")
            .skip(1)
            .map(|rest| rest.split(')').next().unwrap_or(""))
            .chain(
                line.strip_prefix('[')
                    .and_then(|l| l.split_once("]: "))
                    .map(|(_, t)| t),
            );
        for target in targets {
            assert!(
                target.starts_with("https://"),
                "README.md:{}: the link `{target}` does not resolve on crates.io; \
                 link to docs.rs or another absolute address",
                number + 1
            );
        }
    }
}
