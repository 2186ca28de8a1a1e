//! `{{name}}` placeholders in lab text (step pages, messages, check arguments).

use std::collections::BTreeMap;

/// The names used in `text`, in order of appearance.
pub fn names(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("{{") {
        let after = &rest[i + 2..];
        let Some(j) = after.find("}}") else { break };
        out.push(after[..j].trim().to_string());
        rest = &after[j + 2..];
    }
    out
}

/// `text` with every known `{{name}}` replaced; unknown names stay as written (lint
/// reports them).
pub fn render(text: &str, params: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let Some(j) = after.find("}}") else {
            out.push_str(&rest[i..]);
            return out;
        };
        match params.get(after[..j].trim()) {
            Some(v) => out.push_str(v),
            None => out.push_str(&rest[i..i + 2 + j + 2]),
        }
        rest = &after[j + 2..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_known_names_and_keeps_unknown_ones() {
        let p = BTreeMap::from([("a".to_string(), "1".to_string())]);
        assert_eq!(render("x{{a}}y{{ b }}z", &p), "x1y{{ b }}z");
        assert_eq!(names("{{a}} {{ b }}"), vec!["a", "b"]);
    }
}
