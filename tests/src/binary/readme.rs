//! The README as data: the commands of its ```bash blocks and its settings table, so that
//! the tests run the commands the README shows (not copies of them) and fail when the two
//! drift apart.

use std::path::PathBuf;

/// The repository's root (the workspace).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits in the workspace")
        .to_path_buf()
}

/// The README's text.
pub fn text() -> String {
    std::fs::read_to_string(root().join("README.md")).expect("read README.md")
}

/// Every command of the README's ```bash blocks, in order: lines continued with `\` joined
/// into one, comments (`# ...` outside quotes) and blank lines dropped.
pub fn commands() -> Vec<String> {
    let text = text();
    let mut out = Vec::new();
    let mut in_bash = false;
    let mut pending = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if !in_bash {
            in_bash = trimmed == "```bash";
            continue;
        }
        if trimmed.starts_with("```") {
            in_bash = false;
            continue;
        }
        let code = strip_comment(trimmed);
        let code = code.trim_end();
        if let Some(head) = code.strip_suffix('\\') {
            pending.push_str(head.trim());
            pending.push(' ');
            continue;
        }
        pending.push_str(code.trim());
        let command = std::mem::take(&mut pending).trim().to_owned();
        if !command.is_empty() {
            out.push(command);
        }
    }
    out
}

/// The one README command equal to `command`, or starting with it when it ends in `...`;
/// panics when there is none (the README changed: update the test that runs it).
pub fn command(command: &str) -> String {
    let found: Vec<String> = match command.strip_suffix("...") {
        Some(prefix) => commands()
            .into_iter()
            .filter(|c| c.starts_with(prefix))
            .collect(),
        None => commands().into_iter().filter(|c| c == command).collect(),
    };
    assert_eq!(
        found.len(),
        1,
        "the README should show exactly one command `{command}`, found {found:?}"
    );
    found.into_iter().next().unwrap_or_default()
}

/// The README's `curl` commands, in order.
pub fn curls() -> Vec<String> {
    commands()
        .into_iter()
        .filter(|c| c.starts_with("curl "))
        .collect()
}

/// A line without its shell comment: from a `#` that starts a word outside quotes.
fn strip_comment(line: &str) -> &str {
    let (mut single, mut double) = (false, false);
    let mut previous = ' ';
    for (i, c) in line.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '#' if !single && !double && previous.is_whitespace() => return &line[..i],
            _ => {}
        }
        previous = c;
    }
    line
}

/// One row of the README's settings table.
#[derive(Debug)]
pub struct Setting {
    /// The environment variable.
    pub variable: String,
    /// The SAM parameter that sets it, `None` for the runner's own settings.
    pub sam_parameter: Option<String>,
    /// The first `code` span of the default column (`None`: "unset", "system roots", ...).
    pub default: Option<String>,
}

/// The rows of the table under "## Settings" (a row naming two variables gives two).
pub fn settings() -> Vec<Setting> {
    let text = text();
    let section = text
        .split("\n## Settings\n")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("a ## Settings section in README.md");
    let mut out = Vec::new();
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let names = backticked(cells[0]);
        let parameters = backticked(cells[cells.len() - 1]);
        let default = backticked(cells[1]).into_iter().next();
        for (i, variable) in names.into_iter().enumerate() {
            out.push(Setting {
                variable,
                sam_parameter: parameters.get(i).cloned(),
                default: default.clone(),
            });
        }
    }
    out
}

/// The `code` spans of a table cell.
fn backticked(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_outside_quotes_are_dropped() {
        assert_eq!(strip_comment("a b   # c"), "a b   ");
        assert_eq!(strip_comment("echo '# kept' # gone"), "echo '# kept' ");
        assert_eq!(strip_comment("curl x#y"), "curl x#y");
    }
}
