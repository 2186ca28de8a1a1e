//! The EC2 Query parameter parser: any form body, then every accessor a handler uses.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vpclab::api::query::Params;

fuzz_target!(|data: &[u8]| {
    let p = Params::parse(data);
    let _ = p.filters();
    let _ = p.tag_specs();
    let _ = p.tags("Tag");
    let _ = p.tag_keys("Tag");
    let _ = p.list("InstanceId");
    let _ = p.structs("IpPermissions");
    let _ = p.int("MaxResults");
    let _ = p.bool("DryRun");
    let _ = p.check_xml_text();
});
