//! Scope parsing (RFC 6749 §3.3): a scope string parses into tokens that print back to
//! a string that parses to the same set.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera::scope::ScopeSet;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(set) = ScopeSet::parse(s) {
        let printed = set.to_vec().join(" ");
        let again = ScopeSet::parse(&printed).expect("printed scopes parse");
        assert!(set.is_subset(&again) && again.is_subset(&set));
        let catalogue = tessera::scope::Catalogue::default();
        let _ = catalogue.check(&set);
    }
});
