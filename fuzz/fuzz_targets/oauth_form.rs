//! The strict `application/x-www-form-urlencoded` parser of the OAuth endpoints: any bytes
//! either parse or are refused, and what parses reads back consistently.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera::oauth::form::StrictForm;

fuzz_target!(|data: &[u8]| {
    if let Ok(form) = StrictForm::parse(data) {
        let _ = form.repeated();
        for name in ["grant_type", "code", "scope", "client_id", "redirect_uri", "state"] {
            if let Some(v) = form.get(name) {
                // What parsed is text without the encoding's metacharacters left raw.
                assert!(!v.contains('\0') || data.windows(3).any(|w| w == b"%00"));
            }
        }
        let _ = form.contains_any(&["request", "request_uri"]);
    }
});
