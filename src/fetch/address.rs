//! Which IP addresses the guarded fetcher may connect to (docs/spec.md §8, docs/security.md
//! K6): only public unicast addresses, and loopback when `--client-metadata-allow-loopback`
//! is set. IPv6 forms that carry an IPv4 address (IPv4-mapped `::ffff:0:0/96`,
//! IPv4-compatible `::/96`, NAT64 `64:ff9b::/96` of RFC 6052, 6to4 `2002::/16` of RFC 3056)
//! are judged by the IPv4 address they carry.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What an address is, for the fetcher's decision. Every class but [`Class::Public`] and
/// (with the loopback flag) [`Class::Loopback`] is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// A global unicast address.
    Public,
    /// `127.0.0.0/8`, `::1` (RFC 1122 §3.2.1.3, RFC 4291 §2.5.3).
    Loopback,
    /// RFC 1918 `10/8`, `172.16/12`, `192.168/16`; RFC 6598 shared `100.64/10`; RFC 4193
    /// unique-local `fc00::/7`; deprecated site-local `fec0::/10`; RFC 8215 local NAT64
    /// `64:ff9b:1::/48`.
    Private,
    /// `169.254/16` (RFC 3927), `fe80::/10` (RFC 4291 §2.5.6).
    LinkLocal,
    /// `0.0.0.0/8` ("this network", RFC 1122), `::` (RFC 4291 §2.5.2).
    Unspecified,
    /// `224/4`, `ff00::/8`.
    Multicast,
    /// `255.255.255.255`.
    Broadcast,
    /// RFC 5737 `192.0.2/24`, `198.51.100/24`, `203.0.113/24`; RFC 3849 `2001:db8::/32`;
    /// RFC 9637 `3fff::/20`.
    Documentation,
    /// Anything else not routed on the Internet: `192.0.0/24` (RFC 6890), `198.18/15`
    /// (RFC 2544), `240/4` (RFC 1112), Teredo `2001::/32` (RFC 4380, it hides an IPv4
    /// address), discard `100::/64` (RFC 6666).
    Reserved,
}

impl Class {
    /// Whether the fetcher may connect to an address of this class.
    pub fn allowed(self, allow_loopback: bool) -> bool {
        match self {
            Self::Public => true,
            Self::Loopback => allow_loopback,
            _ => false,
        }
    }
}

/// The class of `ip`, IPv6 forms carrying an IPv4 address judged by that address.
pub fn classify(ip: IpAddr) -> Class {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Class {
    let [a, b, c, _] = ip.octets();
    match (a, b, c) {
        (0, _, _) => Class::Unspecified,
        (127, _, _) => Class::Loopback,
        (10, _, _) | (192, 168, _) => Class::Private,
        (172, 16..=31, _) => Class::Private,
        (100, 64..=127, _) => Class::Private,
        (169, 254, _) => Class::LinkLocal,
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => Class::Documentation,
        (192, 0, 0) | (198, 18..=19, _) => Class::Reserved,
        (224..=239, _, _) => Class::Multicast,
        _ if ip == Ipv4Addr::BROADCAST => Class::Broadcast,
        (240..=255, _, _) => Class::Reserved,
        _ => Class::Public,
    }
}

/// The IPv4 address at the end of an IPv6 address (its last 32 bits).
fn tail_v4(s: &[u16; 8]) -> Ipv4Addr {
    let [.., hi, lo] = *s;
    Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo))
}

fn classify_v6(ip: Ipv6Addr) -> Class {
    let s = ip.segments();
    if ip.is_unspecified() {
        return Class::Unspecified;
    }
    if ip.is_loopback() {
        return Class::Loopback;
    }
    match s {
        // IPv4-mapped (RFC 4291 §2.5.5.2) and IPv4-compatible (§2.5.5.1, deprecated).
        [0, 0, 0, 0, 0, 0xffff, _, _] | [0, 0, 0, 0, 0, 0, _, _] => classify_v4(tail_v4(&s)),
        // NAT64 well-known prefix (RFC 6052 §2.1).
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => classify_v4(tail_v4(&s)),
        // Local-use NAT64 (RFC 8215): translates to whatever the operator chose.
        [0x64, 0xff9b, 1, ..] => Class::Private,
        // 6to4 (RFC 3056): the IPv4 address is in bits 16..48.
        [0x2002, hi, lo, ..] => classify_v4(Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo))),
        // Teredo (RFC 4380).
        [0x2001, 0, ..] => Class::Reserved,
        [0x2001, 0xdb8, ..] => Class::Documentation,
        [first, ..] if first & 0xfff0 == 0x3ff0 => Class::Documentation,
        [0x100, 0, 0, 0, ..] => Class::Reserved,
        [first, ..] if first & 0xfe00 == 0xfc00 => Class::Private,
        [first, ..] if first & 0xffc0 == 0xfe80 => Class::LinkLocal,
        [first, ..] if first & 0xffc0 == 0xfec0 => Class::Private,
        [first, ..] if first & 0xff00 == 0xff00 => Class::Multicast,
        _ => Class::Public,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn k6_every_non_public_address_form_is_classified_as_refused() {
        use Class::*;
        let table: &[(&str, Class)] = &[
            // IPv4
            ("93.184.215.14", Public),
            ("8.8.8.8", Public),
            ("1.1.1.1", Public),
            ("0.0.0.0", Unspecified),
            ("0.1.2.3", Unspecified),
            ("127.0.0.1", Loopback),
            ("127.255.255.254", Loopback),
            ("10.0.0.1", Private),
            ("172.16.0.1", Private),
            ("172.31.255.255", Private),
            ("172.32.0.1", Public),
            ("172.15.255.255", Public),
            ("192.168.1.1", Private),
            ("100.64.0.1", Private),
            ("100.127.255.255", Private),
            ("100.128.0.1", Public),
            ("169.254.169.254", LinkLocal),
            ("192.0.2.1", Documentation),
            ("198.51.100.7", Documentation),
            ("203.0.113.9", Documentation),
            ("192.0.0.8", Reserved),
            ("198.18.0.1", Reserved),
            ("224.0.0.1", Multicast),
            ("239.255.255.250", Multicast),
            ("240.0.0.1", Reserved),
            ("255.255.255.255", Broadcast),
            // IPv6
            ("2606:4700:4700::1111", Public),
            ("::", Unspecified),
            ("::1", Loopback),
            ("fc00::1", Private),
            ("fd12:3456::1", Private),
            ("fe80::1", LinkLocal),
            ("febf::1", LinkLocal),
            ("fec0::1", Private),
            ("ff02::1", Multicast),
            ("2001:db8::1", Documentation),
            ("3fff::1", Documentation),
            ("2001::1", Reserved),
            ("100::1", Reserved),
            // IPv4-mapped
            ("::ffff:127.0.0.1", Loopback),
            ("::ffff:10.1.2.3", Private),
            ("::ffff:169.254.169.254", LinkLocal),
            ("::ffff:100.64.0.1", Private),
            ("::ffff:0.0.0.0", Unspecified),
            ("::ffff:224.0.0.1", Multicast),
            ("::ffff:8.8.8.8", Public),
            // IPv4-compatible (deprecated)
            ("::127.0.0.1", Loopback),
            ("::192.168.0.1", Private),
            ("::8.8.8.8", Public),
            // NAT64 well-known prefix
            ("64:ff9b::7f00:1", Loopback),
            ("64:ff9b::a9fe:a9fe", LinkLocal),
            ("64:ff9b::10.0.0.1", Private),
            ("64:ff9b::8.8.8.8", Public),
            ("64:ff9b:1::1", Private),
            // 6to4
            ("2002:7f00:1::", Loopback),
            ("2002:c0a8:101::1", Private),
            ("2002:808:808::1", Public),
        ];
        for (text, want) in table {
            let ip: IpAddr = text.parse().expect(text);
            assert_eq!(classify(ip), *want, "{text}");
        }
    }

    #[test]
    fn k6_only_public_addresses_and_loopback_with_the_flag_are_allowed() {
        for class in [
            Class::Private,
            Class::LinkLocal,
            Class::Unspecified,
            Class::Multicast,
            Class::Broadcast,
            Class::Documentation,
            Class::Reserved,
        ] {
            assert!(!class.allowed(false), "{class:?}");
            assert!(!class.allowed(true), "{class:?} with the loopback flag");
        }
        assert!(Class::Public.allowed(false));
        assert!(!Class::Loopback.allowed(false));
        assert!(Class::Loopback.allowed(true));
    }
}
