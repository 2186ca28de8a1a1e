//! Reading Route 53's XML request bodies into a small element tree (quick-xml does the
//! parsing). Request documents are a few kilobytes of nested elements with text, so a
//! tree is the simplest thing to walk; namespaces are ignored (local names only), as
//! every element lives in Route 53's one namespace.

use quick_xml::Reader;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::Event;

use crate::model::{ApiError, ApiResult};

/// Deepest nesting accepted: Route 53's documents are at most six levels deep, and a
/// bound keeps hostile input from building a tree whose drop would exhaust the stack.
const MAX_DEPTH: usize = 32;

/// One element: its local name, its text (concatenated), its child elements.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Element {
    pub name: String,
    pub text: String,
    pub children: Vec<Element>,
}

impl Element {
    /// The first child named `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Every child named `name`.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The trimmed text of the first child named `name`.
    pub fn text_of(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.trim())
    }
}

fn malformed(detail: impl std::fmt::Display) -> ApiError {
    ApiError::new("InvalidInput", format!("Invalid XML ; {detail}"))
}

/// Parses a whole document and returns its root element.
pub fn parse(body: &[u8]) -> ApiResult<Element> {
    let text = std::str::from_utf8(body).map_err(|_| malformed("the body is not UTF-8"))?;
    let mut reader = Reader::from_str(text);
    // The stack of open elements; the finished root ends up in `root`.
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let event = reader.read_event().map_err(malformed)?;
        match event {
            Event::Start(start) => {
                if root.is_some() {
                    return Err(malformed("content after the root element"));
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(malformed("elements nested too deeply"));
                }
                stack.push(Element {
                    name: start.local_name().as_ref().to_owned(),
                    ..Element::default()
                });
            }
            Event::Empty(start) => {
                let element = Element {
                    name: start.local_name().as_ref().to_owned(),
                    ..Element::default()
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(element),
                    None if root.is_none() => root = Some(element),
                    None => return Err(malformed("content after the root element")),
                }
            }
            Event::End(_) => {
                let element = stack.pop().ok_or_else(|| malformed("unbalanced end tag"))?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(element),
                    None => root = Some(element),
                }
            }
            Event::Text(t) => {
                if let Some(open) = stack.last_mut() {
                    open.text.push_str(&t.xml10_content());
                } else if !t.xml10_content().trim().is_empty() {
                    return Err(malformed("text outside the root element"));
                }
            }
            Event::CData(t) => {
                if let Some(open) = stack.last_mut() {
                    open.text.push_str(&t.xml10_content());
                }
            }
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref().map_err(malformed)? {
                    Some(c) => c.to_string(),
                    None => {
                        let name = r.xml10_content();
                        resolve_predefined_entity(&name)
                            .ok_or_else(|| malformed(format!("unknown entity &{name};")))?
                            .to_owned()
                    }
                };
                if let Some(open) = stack.last_mut() {
                    open.text.push_str(&resolved);
                }
            }
            Event::Eof => break,
            Event::Decl(_) | Event::Comment(_) | Event::PI(_) | Event::DocType(_) => {}
        }
    }
    if !stack.is_empty() {
        return Err(malformed("the document ends inside an element"));
    }
    root.ok_or_else(|| malformed("no root element"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_change_batch() {
        let doc = br#"<?xml version="1.0" encoding="UTF-8"?>
<ChangeResourceRecordSetsRequest xmlns="https://route53.amazonaws.com/doc/2013-04-01/">
  <ChangeBatch><Changes><Change><Action>CREATE</Action>
    <ResourceRecordSet><Name>www.example.com</Name><Type>TXT</Type><TTL>60</TTL>
      <ResourceRecords><ResourceRecord><Value>&quot;a &amp; b&quot;</Value></ResourceRecord></ResourceRecords>
    </ResourceRecordSet></Change></Changes></ChangeBatch>
</ChangeResourceRecordSetsRequest>"#;
        let root = parse(doc).expect("parses");
        assert_eq!(root.name, "ChangeResourceRecordSetsRequest");
        let set = root
            .child("ChangeBatch")
            .and_then(|b| b.child("Changes"))
            .and_then(|c| c.child("Change"))
            .and_then(|c| c.child("ResourceRecordSet"))
            .expect("set");
        let value = set
            .child("ResourceRecords")
            .and_then(|r| r.child("ResourceRecord"))
            .and_then(|r| r.text_of("Value"))
            .expect("value");
        assert_eq!(value, "\"a & b\"");
    }

    #[test]
    fn garbage_is_invalid_input() {
        for doc in [
            &b"<a><b></a>"[..],
            b"",
            b"not xml",
            b"<a></a><b></b>",
            b"\xff\xfe",
            b"<a>&bogus;</a>",
        ] {
            let err = parse(doc).expect_err("malformed");
            assert_eq!(err.code, "InvalidInput");
        }
    }

    #[test]
    fn deep_nesting_is_refused() {
        let doc = "<a>".repeat(10_000);
        assert!(parse(doc.as_bytes()).is_err());
    }
}
