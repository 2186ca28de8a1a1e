//! The XML reader behind every Route 53 request body; and what it reads, written back
//! with the XML writer, must read again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vpclab::api::xml::{escape, read};

fuzz_target!(|data: &[u8]| {
    if let Ok(root) = read::parse(data) {
        let again = format!("<{n}>{}</{n}>", escape(&root.text), n = "a");
        let back = read::parse(again.as_bytes()).expect("written text reads back");
        assert_eq!(back.text, root.text);
    }
});
