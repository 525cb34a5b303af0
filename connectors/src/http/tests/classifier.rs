use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::http::AddressClass::{self, *};
use crate::http::address::classify;

const IPV4_TABLE: &[(&str, AddressClass)] = &[
    ("0.0.0.0", Unspecified),
    ("0.1.2.3", Reserved),
    ("10.0.0.1", Private),
    ("10.255.255.255", Private),
    ("100.63.255.255", Public),
    ("100.64.0.1", SharedAddressSpace),
    ("100.127.255.255", SharedAddressSpace),
    ("100.128.0.0", Public),
    ("127.0.0.1", Loopback),
    ("127.255.255.254", Loopback),
    ("169.254.169.254", LinkLocal),
    ("169.254.0.1", LinkLocal),
    ("172.15.255.255", Public),
    ("172.16.0.1", Private),
    ("172.31.255.255", Private),
    ("172.32.0.0", Public),
    ("192.0.0.8", Reserved),
    ("192.0.2.1", Documentation),
    ("192.88.99.1", Reserved),
    ("192.168.1.1", Private),
    ("198.18.0.1", Reserved),
    ("198.19.255.255", Reserved),
    ("198.20.0.0", Public),
    ("198.51.100.7", Documentation),
    ("203.0.113.9", Documentation),
    ("224.0.0.1", Multicast),
    ("239.255.255.250", Multicast),
    ("240.0.0.1", Reserved),
    ("255.255.255.254", Reserved),
    ("255.255.255.255", Broadcast),
    ("1.1.1.1", Public),
    ("8.8.8.8", Public),
    ("93.184.215.14", Public),
    ("223.255.255.255", Public),
];

const IPV6_TABLE: &[(&str, AddressClass)] = &[
    ("::", Unspecified),
    ("::1", Loopback),
    ("::ffff:127.0.0.1", Loopback),
    ("::ffff:7f00:1", Loopback),
    ("::ffff:169.254.169.254", LinkLocal),
    ("::ffff:10.1.2.3", Private),
    ("::ffff:8.8.8.8", Public),
    ("::127.0.0.1", Loopback),
    ("::8.8.8.8", Reserved),
    ("::ffff:0:127.0.0.1", Loopback),
    ("::ffff:0:8.8.8.8", Reserved),
    ("64:ff9b::127.0.0.1", Loopback),
    ("64:ff9b::a9fe:a9fe", LinkLocal),
    ("64:ff9b::8.8.8.8", Public),
    ("64:ff9b:1::1", Reserved),
    ("2002:7f00:1::", Loopback),
    ("2002:c0a8:101::1", Private),
    ("2002:808:808::1", Public),
    ("fc00::1", Private),
    ("fd12:3456:789a::1", Private),
    ("fe80::1", LinkLocal),
    ("febf:ffff::1", LinkLocal),
    ("fec0::1", Private),
    ("ff02::1", Multicast),
    ("ff05::2", Multicast),
    ("2001:db8::1", Documentation),
    ("3fff::1", Documentation),
    ("2001::1", Reserved),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", Reserved),
    ("2001:1ff::1", Reserved),
    ("100::1", Reserved),
    ("4000::1", Reserved),
    ("2001:4860:4860::8888", Public),
    ("2606:4700:4700::1111", Public),
    ("2a00:1450:4001::1", Public),
];

#[test]
fn classifies_ipv4_ranges() {
    for &(ip, expected) in IPV4_TABLE {
        let ip: IpAddr = ip.parse().expect("a table entry is an IP address");
        assert_eq!(classify(ip), expected, "{ip}");
    }
}

#[test]
fn classifies_ipv6_ranges_and_embedded_ipv4() {
    for &(ip, expected) in IPV6_TABLE {
        let ip: IpAddr = ip.parse().expect("a table entry is an IP address");
        assert_eq!(classify(ip), expected, "{ip}");
    }
}

/// Every routed IPv6 form of an IPv4 address leads to that address, so it must be judged
/// exactly like it, whatever the range.
#[test]
fn routed_ipv6_embeddings_are_judged_by_the_embedded_ipv4() {
    for &(ip, expected) in IPV4_TABLE {
        let v4: Ipv4Addr = ip.parse().expect("a table entry is an IPv4 address");
        let [a, b, c, d] = v4.octets();
        let high = u16::from_be_bytes([a, b]);
        let low = u16::from_be_bytes([c, d]);
        let forms = [
            ("mapped", v4.to_ipv6_mapped()),
            ("NAT64", Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, high, low)),
            ("6to4", Ipv6Addr::new(0x2002, high, low, 0, 0, 0, 0, 1)),
        ];
        for (form, v6) in forms {
            assert_eq!(
                classify(IpAddr::V6(v6)),
                expected,
                "{form} form {v6} of {v4}"
            );
        }
    }
}

#[test]
fn deprecated_ipv6_embeddings_are_never_public() {
    for &(ip, _) in IPV4_TABLE {
        let v4: Ipv4Addr = ip.parse().expect("a table entry is an IPv4 address");
        let compatible = v4.to_ipv6_compatible();
        if compatible.is_unspecified() || compatible.is_loopback() {
            continue;
        }
        assert!(
            !classify(IpAddr::V6(compatible)).is_public(),
            "{compatible}"
        );
    }
}
