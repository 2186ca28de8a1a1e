//! A tiny XML writer for AWS responses: elements with escaped text, nested nodes, and the
//! EC2 list shape `<nameSet><item>…</item></nameSet>`. Responses are small and built in
//! one pass, so a `String` with closures beats a DOM.

pub mod read;

use std::fmt::{Display, Write};

#[derive(Default, Debug)]
pub struct Xml {
    buf: String,
}

/// Whether XML 1.0 can carry `c` at all (its `Char` production: tab, newline, carriage
/// return, U+0020–U+D7FF, U+E000–U+FFFD, U+10000–U+10FFFF). Surrogates cannot occur in a
/// Rust `char`; what is left out is the C0 controls and U+FFFE/U+FFFF. A character
/// reference (`&#xFFFE;`) is no way around it: the referenced character must be a `Char`
/// too.
pub fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{fffd}' | '\u{10000}'..)
}

/// The first character of `s` that XML 1.0 cannot carry, if any.
pub fn first_non_xml_char(s: &str) -> Option<char> {
    s.chars().find(|&c| !is_xml_char(c))
}

/// Escapes text for element content and attribute values. A character XML cannot carry
/// becomes U+FFFD, so a response is always a well-formed document: input is refused
/// before it is stored, and this keeps state written by an older build readable.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    escape_into(&mut out, s);
    out
}

/// Whether byte `b` of UTF-8 text may need rewriting: markup characters, C0 controls, or
/// the lead byte 0xEF that starts U+FFFE and U+FFFF (most text has none, and is copied
/// whole).
fn needs_escape(b: u8) -> bool {
    matches!(b, b'&' | b'<' | b'>' | b'"' | b'\'' | 0xEF) || (b < 0x20 && b != b'\t' && b != b'\n')
}

/// Appends `s` to `out`, escaped as [`escape`] does.
pub fn escape_into(out: &mut String, s: &str) {
    if !s.bytes().any(needs_escape) {
        out.push_str(s);
        return;
    }
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // A parser turns a raw carriage return into a newline (XML 1.0 §2.11); as a
            // reference it survives, so text reads back as it was stored.
            '\r' => out.push_str("&#xD;"),
            c if !is_xml_char(c) => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
}

/// A `fmt::Write` that escapes what is written into the buffer: a value's `Display`
/// output goes into the response without a `String` of its own.
struct Escaping<'a>(&'a mut String);

impl Write for Escaping<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        escape_into(self.0, s);
        Ok(())
    }
}

impl Xml {
    pub fn new() -> Xml {
        Xml::default()
    }

    /// `<name>value</name>`, value escaped.
    pub fn leaf(&mut self, name: &str, value: impl Display) -> &mut Self {
        self.open(name);
        let _ = write!(Escaping(&mut self.buf), "{value}");
        self.close(name);
        self
    }

    fn open(&mut self, name: &str) {
        self.buf.push('<');
        self.buf.push_str(name);
        self.buf.push('>');
    }

    fn close(&mut self, name: &str) {
        self.buf.push_str("</");
        self.buf.push_str(name);
        self.buf.push('>');
    }

    /// Escaped text with no element around it (a list of plain values, such as
    /// `<cidrSet><item>10.0.0.0/16</item></cidrSet>`).
    pub fn text(&mut self, value: impl Display) -> &mut Self {
        let _ = write!(Escaping(&mut self.buf), "{value}");
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
        self.open(name);
        f(self);
        self.close(name);
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
        self.open(name);
        for item in items {
            self.buf.push_str("<item>");
            f(self, item);
            self.buf.push_str("</item>");
        }
        self.close(name);
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

    /// Issue 10: a stored U+FFFE or U+FFFF must not make every later listing unparseable.
    #[test]
    fn issue10_xml_writer_never_emits_characters_xml_cannot_carry() {
        let mut x = Xml::new();
        x.leaf("value", "a\u{fffe}b\u{ffff}c\u{1}d\te\u{10ffff}");
        assert_eq!(
            x.finish(),
            "<value>a\u{fffd}b\u{fffd}c\u{fffd}d\te\u{10ffff}</value>"
        );
        assert!(is_xml_char('\u{fffd}') && is_xml_char('\r') && is_xml_char('\u{e000}'));
        assert!(!is_xml_char('\u{0}') && !is_xml_char('\u{1f}') && !is_xml_char('\u{fffe}'));
        assert_eq!(first_non_xml_char("ok\u{ffff}"), Some('\u{ffff}'));
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

    mod props {
        use proptest::prelude::*;

        use super::super::{escape, is_xml_char, read};

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            /// Whatever text is stored, the element written for it parses, and reads
            /// back as the text with the characters XML cannot carry replaced.
            #[test]
            fn written_text_reads_back(text in any::<String>()) {
                let doc = format!("<a>{}</a>", escape(&text));
                let root = read::parse(doc.as_bytes()).expect("well-formed");
                let expected: String = text
                    .chars()
                    .map(|c| if is_xml_char(c) { c } else { '\u{fffd}' })
                    .collect();
                prop_assert_eq!(root.text, expected);
            }
        }
    }
}
