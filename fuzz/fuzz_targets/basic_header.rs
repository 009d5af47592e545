//! Client authentication from an `Authorization` header (RFC 6749 §2.3.1, RFC 7617): any
//! header value is either a Basic credential or refused, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera::oauth::client_auth::{Presented, presented};
use tessera::oauth::form::StrictForm;

fuzz_target!(|data: &[u8]| {
    let Ok(header) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(empty) = StrictForm::parse(b"") else {
        return;
    };
    if let Ok(Presented::Basic { client_id, .. }) = presented(Some(header), &empty) {
        assert!(!client_id.is_empty());
    }
    if let Ok(body) = StrictForm::parse(format!("client_id={header}").as_bytes()) {
        let _ = presented(Some(header), &body);
        let _ = presented(None, &body);
    }
});
