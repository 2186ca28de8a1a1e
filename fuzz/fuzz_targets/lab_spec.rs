//! A lab file as an author writes it (`lab.toml`): parsed, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = vpclab::lab::spec::parse(std::path::Path::new("lab.toml"), text);
    }
});
