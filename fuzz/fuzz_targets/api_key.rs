//! The API-key format and checksum (docs/spec.md §5): any string parses or is refused; a
//! key that parses has a valid checksum over everything before it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera::api_keys::format::{check, checksum, parse};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok((_, key)) = parse(s, "tsr") {
        let k = key.expose();
        let (body, sum) = k.split_at(k.len() - 6);
        assert_eq!(checksum(body), sum);
        assert!(check(s, "tsr"));
    }
});
