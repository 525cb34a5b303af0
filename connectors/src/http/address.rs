//! Which IP addresses a workflow may reach.
//!
//! Policy: an address is `Public` only if it is ordinary global unicast. IPv6 is judged by
//! allow-list (only 2000::/3 can be public), so a range we forgot is refused rather than
//! reached. IPv6 forms that carry an IPv4 address (mapped, compatible, NAT64, 6to4) are
//! judged by the IPv4 address they carry, because that is where the packets end up.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why an address is or is not reachable; everything but `Public` is refused unless the
/// operator allowed private addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressClass {
    Public,
    Loopback,
    /// RFC 1918, IPv6 unique-local and the deprecated IPv6 site-local range.
    Private,
    /// 169.254/16 (where cloud metadata services live) and fe80::/10.
    LinkLocal,
    /// 100.64/10, carrier-grade NAT: routable only inside a provider's network.
    SharedAddressSpace,
    Multicast,
    Unspecified,
    Broadcast,
    Documentation,
    /// Benchmarking, IETF protocol assignments, future use, and IPv6 outside 2000::/3.
    Reserved,
}

impl AddressClass {
    pub fn is_public(self) -> bool {
        self == AddressClass::Public
    }
}

impl fmt::Display for AddressClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddressClass::Public => "public",
            AddressClass::Loopback => "loopback",
            AddressClass::Private => "private",
            AddressClass::LinkLocal => "link-local",
            AddressClass::SharedAddressSpace => "shared (carrier-grade NAT)",
            AddressClass::Multicast => "multicast",
            AddressClass::Unspecified => "unspecified",
            AddressClass::Broadcast => "broadcast",
            AddressClass::Documentation => "documentation",
            AddressClass::Reserved => "reserved",
        })
    }
}

pub(crate) fn classify(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    if ip.is_unspecified() {
        return AddressClass::Unspecified;
    }
    if ip.is_broadcast() {
        return AddressClass::Broadcast;
    }
    match ip.octets() {
        // "This network": connecting to 0.x.x.x reaches the local host on Linux.
        [0, ..] => AddressClass::Reserved,
        [10, ..] => AddressClass::Private,
        [100, 64..=127, ..] => AddressClass::SharedAddressSpace,
        [127, ..] => AddressClass::Loopback,
        [169, 254, ..] => AddressClass::LinkLocal,
        [172, 16..=31, ..] => AddressClass::Private,
        [192, 0, 0, _] => AddressClass::Reserved,
        [192, 0, 2, _] => AddressClass::Documentation,
        // The deprecated 6to4 relay anycast range.
        [192, 88, 99, _] => AddressClass::Reserved,
        [192, 168, ..] => AddressClass::Private,
        [198, 18..=19, ..] => AddressClass::Reserved,
        [198, 51, 100, _] => AddressClass::Documentation,
        [203, 0, 113, _] => AddressClass::Documentation,
        [224..=239, ..] => AddressClass::Multicast,
        [240..=255, ..] => AddressClass::Reserved,
        _ => AddressClass::Public,
    }
}

fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    if ip.is_unspecified() {
        return AddressClass::Unspecified;
    }
    if ip.is_loopback() {
        return AddressClass::Loopback;
    }
    if let Some((v4, embedding)) = embedded_ipv4(ip) {
        return match (classify_v4(v4), embedding) {
            // Deprecated forms have no legitimate public use; refuse them, but keep the
            // embedded address's class when it explains the refusal better.
            (AddressClass::Public, Embedding::Deprecated) => AddressClass::Reserved,
            (class, _) => class,
        };
    }
    let [first, second, ..] = ip.segments();
    match first {
        0xff00..=0xffff => AddressClass::Multicast,
        0xfe80..=0xfebf => AddressClass::LinkLocal,
        0xfec0..=0xfeff | 0xfc00..=0xfdff => AddressClass::Private,
        0x2001 if second == 0x0db8 => AddressClass::Documentation,
        // 2001::/23: IETF protocol assignments, Teredo included (its embedded client
        // address is obfuscated and it is all but unused).
        0x2001 if second < 0x0200 => AddressClass::Reserved,
        0x3fff if second < 0x1000 => AddressClass::Documentation,
        0x2000..=0x3fff => AddressClass::Public,
        _ => AddressClass::Reserved,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Embedding {
    /// The packets go to the embedded IPv4 host: a public one is fine.
    Routed,
    /// IPv4-compatible and IPv4-translated forms, deprecated for decades.
    Deprecated,
}

fn embedded_ipv4(ip: Ipv6Addr) -> Option<(Ipv4Addr, Embedding)> {
    let s = ip.segments();
    let low_v4 = || Ipv4Addr::from((u32::from(s[6]) << 16) | u32::from(s[7]));
    match s {
        // ::ffff:a.b.c.d, IPv4-mapped.
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some((low_v4(), Embedding::Routed)),
        // 64:ff9b::a.b.c.d, the well-known NAT64 prefix (what DNS64 hands out).
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some((low_v4(), Embedding::Routed)),
        // 2002:AABB:CCDD::/48, 6to4.
        [0x2002, high, low, ..] => Some((
            Ipv4Addr::from((u32::from(high) << 16) | u32::from(low)),
            Embedding::Routed,
        )),
        // ::a.b.c.d, IPv4-compatible (:: and ::1 are handled before this).
        [0, 0, 0, 0, 0, 0, _, _] => Some((low_v4(), Embedding::Deprecated)),
        // ::ffff:0:a.b.c.d, IPv4-translated.
        [0, 0, 0, 0, 0xffff, 0, _, _] => Some((low_v4(), Embedding::Deprecated)),
        _ => None,
    }
}
