//! A tiny XML writer for AWS responses: elements with escaped text, nested nodes, and the
//! EC2 list shape `<nameSet><item>…</item></nameSet>`. Responses are small and built in
//! one pass, so a `String` with closures beats a DOM.

pub mod read;

use std::fmt::{Display, Write};

#[derive(Default, Debug)]
pub struct Xml {
    buf: String,
}

/// Escapes text for element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters other than tab/newline/return are not allowed in XML 1.0.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

impl Xml {
    pub fn new() -> Xml {
        Xml::default()
    }

    /// `<name>value</name>`, value escaped.
    pub fn leaf(&mut self, name: &str, value: impl Display) -> &mut Self {
        let v = value.to_string();
        let _ = write!(self.buf, "<{name}>{}</{name}>", escape(&v));
        self
    }

    /// `leaf` only when the value is present.
    pub fn opt<V: Display>(&mut self, name: &str, value: Option<V>) -> &mut Self {
        if let Some(v) = value {
            self.leaf(name, v);
        }
        self
    }

    /// `<name>…</name>` with children written by `f`.
    pub fn node(&mut self, name: &str, f: impl FnOnce(&mut Xml)) -> &mut Self {
        let _ = write!(self.buf, "<{name}>");
        f(self);
        let _ = write!(self.buf, "</{name}>");
        self
    }

    /// `<name><item>…</item>…</name>`, the EC2 list shape (written even when empty:
    /// AWS sends empty sets for lists the caller asked about).
    pub fn set<I: IntoIterator>(
        &mut self,
        name: &str,
        items: I,
        mut f: impl FnMut(&mut Xml, I::Item),
    ) -> &mut Self {
        let _ = write!(self.buf, "<{name}>");
        for item in items {
            self.buf.push_str("<item>");
            f(self, item);
            self.buf.push_str("</item>");
        }
        let _ = write!(self.buf, "</{name}>");
        self
    }

    /// Raw, already well-formed XML.
    pub fn raw(&mut self, xml: &str) -> &mut Self {
        self.buf.push_str(xml);
        self
    }

    pub fn finish(self) -> String {
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_so_tag_values_cannot_break_the_document() {
        let mut x = Xml::new();
        x.leaf("value", "<a & 'b'>");
        assert_eq!(x.finish(), "<value>&lt;a &amp; &apos;b&apos;&gt;</value>");
    }

    #[test]
    fn sets_wrap_each_entry_in_item() {
        let mut x = Xml::new();
        x.set("vpcSet", ["a", "b"], |x, v| {
            x.leaf("vpcId", v);
        });
        assert_eq!(
            x.finish(),
            "<vpcSet><item><vpcId>a</vpcId></item><item><vpcId>b</vpcId></item></vpcSet>"
        );
    }
}
