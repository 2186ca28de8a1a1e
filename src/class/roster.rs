//! The roster file a course starts from: CSV, one learner a line, `learner[,name]`.
//! A first line whose first field is `learner` (or `id`, `username`) is a header. Blank
//! lines and lines starting with `#` are skipped. Every error names the file and line.

use std::path::Path;

use anyhow::Context;

/// One line of the roster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The learner id (their `VPCLAB_LEARNER`, console user name).
    pub name: String,
    /// How the dashboard shows them (defaults to the id).
    pub display: String,
}

pub fn parse_csv_file(path: &Path) -> anyhow::Result<Vec<Entry>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse_csv(&text).map_err(|(line, m)| anyhow::anyhow!("{}:{line}: {m}", path.display()))
}

/// Parses roster text; an error is (line number, message).
pub fn parse_csv(text: &str) -> Result<Vec<Entry>, (usize, String)> {
    let mut out: Vec<Entry> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if out.is_empty()
            && matches!(
                fields[0].to_ascii_lowercase().as_str(),
                "learner" | "id" | "username"
            )
        {
            continue;
        }
        if fields.len() > 2 {
            return Err((
                n,
                format!(
                    "{} fields; expected `learner` or `learner,name` (no commas inside a name)",
                    fields.len()
                ),
            ));
        }
        let name = fields[0].trim_matches('"');
        if !crate::lab::progress::valid_learner(name) {
            return Err((
                n,
                format!("column `learner`: {name:?}: expected letters, digits, '.', '_' or '-'"),
            ));
        }
        if let Some(first) = out.iter().position(|e| e.name == name) {
            let first_line = text
                .lines()
                .enumerate()
                .filter(|(_, l)| l.trim().split(',').next().map(str::trim) == Some(name))
                .map(|(i, _)| i + 1)
                .next()
                .unwrap_or(first + 1);
            return Err((
                n,
                format!("column `learner`: {name:?} is already on line {first_line}"),
            ));
        }
        let display = fields
            .get(1)
            .map(|d| d.trim_matches('"').to_string())
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| name.to_string());
        out.push(Entry {
            name: name.to_string(),
            display,
        });
    }
    if out.is_empty() {
        return Err((1, "the roster names no learner".into()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_comments_and_names_are_read() {
        let r = parse_csv("learner,name\n# a comment\nann,Ann Lee\n\nbob\n").expect("valid");
        assert_eq!(
            r,
            vec![
                Entry {
                    name: "ann".into(),
                    display: "Ann Lee".into()
                },
                Entry {
                    name: "bob".into(),
                    display: "bob".into()
                },
            ]
        );
    }

    #[test]
    fn errors_name_the_line_and_column() {
        let e = parse_csv("learner\nann\nb b\n").expect_err("space");
        assert_eq!(e.0, 3);
        assert!(e.1.contains("column `learner`"), "{}", e.1);
        let e = parse_csv("ann\nbob\nann\n").expect_err("duplicate");
        assert_eq!(e.0, 3);
        assert!(e.1.contains("already on line 1"), "{}", e.1);
        let e = parse_csv("ann,Ann,extra\n").expect_err("fields");
        assert_eq!(e.0, 1);
    }
}
