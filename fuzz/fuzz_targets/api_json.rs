//! The JSON bodies of `/api/v1` and `/oauth/register` (docs/spec.md §5, RFC 7591 §2): any
//! bytes deserialize or are refused, and what deserializes validates without a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let catalogue = tessera::scope::Catalogue::default();
    if let Ok(body) = serde_json::from_slice::<tessera::api_keys::ops::CreateKey>(data) {
        let _ = body.scopes.parse();
    }
    if let Ok(body) = serde_json::from_slice::<tessera::clients::ops::ClientInput>(data) {
        let _ = tessera::clients::ops::parse_grant_list(body.grant_types.as_deref().unwrap_or_default());
        if let Ok(new) = body.to_new(&tessera::orgs::Actor::cli("org_fuzz")) {
            let _ = new.validate(&catalogue);
        }
    }
    let _ = serde_json::from_slice::<tessera::clients::registration::Metadata>(data);
    let _ = serde_json::from_slice::<tessera::http::api::verify::VerifyBody>(data);
    let _ = serde_json::from_slice::<tessera::http::api::members::ChangeRole>(data);
    let _ = serde_json::from_slice::<tessera::http::api::Overlap>(data);
});
