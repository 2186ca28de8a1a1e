//! The instance shell's parser (what a learner types over SSH, and user data).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(src) = std::str::from_utf8(data) {
        let _ = vpclab::instance::shell::parse::parse(src);
    }
});
