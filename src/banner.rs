//! The start-up banner `tessera serve` prints on stdout for a person (docs/spec.md §1): where
//! it listens and, depending on whether any account exists yet, how to create the first one
//! or where to sign in.

/// The banner's text. `url` is where this instance listens (`http://127.0.0.1:8080`),
/// `issuer` the configured issuer, `accounts` the number of user accounts in the database
/// (`None` when it could not be counted: the banner then says nothing about accounts).
pub fn text(url: &str, issuer: &str, accounts: Option<i64>) -> String {
    let mut out = format!(
        "tessera is listening on {url} (issuer {issuer})\n  metadata: {issuer}/.well-known/oauth-authorization-server\n"
    );
    match accounts {
        Some(0) => out.push_str(
            "  no account yet; create the first one (it becomes its organization's admin):\n    \
             echo 'a-long-password' | tessera user create --email you@example.com --password-stdin\n    \
             (with cargo: cargo run --release -- user create --email you@example.com --password-stdin)\n",
        ),
        Some(n) => {
            let accounts = if n == 1 { "1 account" } else { &format!("{n} accounts") };
            out.push_str(&format!("  {accounts}; sign in at {issuer}/login\n"));
        }
        None => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::text;

    #[test]
    fn the_banner_offers_the_first_account_only_when_there_is_none() {
        let empty = text("http://127.0.0.1:8080", "http://127.0.0.1:8080", Some(0));
        assert!(
            empty.contains("no account yet") && empty.contains("user create"),
            "{empty}"
        );
        let one = text("http://127.0.0.1:8080", "https://auth.example", Some(1));
        assert!(
            !one.contains("user create") && !one.contains("first"),
            "{one}"
        );
        assert!(
            one.contains("1 account; sign in at https://auth.example/login"),
            "{one}"
        );
        let many = text("http://127.0.0.1:8080", "https://auth.example", Some(3));
        assert!(many.contains("3 accounts;"), "{many}");
        let unknown = text("http://127.0.0.1:8080", "https://auth.example", None);
        assert!(!unknown.contains("account"), "{unknown}");
    }
}
