use std::net::SocketAddr;
use std::str::FromStr;

use reqwest::dns::{Name, Resolve};
use url::Url;

use crate::http::AddressClass;
use crate::http::guard::{Guard, Refusal};
use crate::http::resolver::GuardedResolver;

fn parse(url: &str) -> Url {
    Url::parse(url).expect("a test URL parses")
}

fn refused(host: &str, class: AddressClass) -> Result<(), Refusal> {
    Err(Refusal::Address {
        host: host.to_owned(),
        class,
    })
}

/// The `url` crate normalizes every IPv4 spelling of an http(s) URL to dotted decimal,
/// so the guard sees the address the connector will dial.
#[test]
fn odd_ipv4_spellings_are_normalized_before_the_guard_sees_them() {
    let spellings = [
        "http://127.1/",
        "http://2130706433/",
        "http://0x7f000001/",
        "http://0x7f.0.0.1/",
        "http://017700000001/",
        "http://0177.0.0.1/",
        "http://127.0.0.1./",
        "http://127.000.000.001/",
    ];
    for spelling in spellings {
        assert_eq!(parse(spelling).host_str(), Some("127.0.0.1"), "{spelling}");
    }
}

#[test]
fn check_url_refuses_non_public_literals_and_foreign_schemes() {
    let strict = Guard::new(false, Vec::new());
    let cases: &[(&str, Result<(), Refusal>)] = &[
        (
            "http://127.0.0.1/",
            refused("127.0.0.1", AddressClass::Loopback),
        ),
        (
            "http://127.1/",
            refused("127.0.0.1", AddressClass::Loopback),
        ),
        (
            "http://0x7f000001/",
            refused("127.0.0.1", AddressClass::Loopback),
        ),
        (
            "http://0.0.0.0/",
            refused("0.0.0.0", AddressClass::Unspecified),
        ),
        ("http://[::1]/", refused("[::1]", AddressClass::Loopback)),
        (
            "http://[::ffff:127.0.0.1]/",
            refused("[::ffff:7f00:1]", AddressClass::Loopback),
        ),
        (
            "http://[fe80::1]/",
            refused("[fe80::1]", AddressClass::LinkLocal),
        ),
        (
            "https://169.254.169.254/latest/meta-data",
            refused("169.254.169.254", AddressClass::LinkLocal),
        ),
        (
            "http://10.0.0.1:8080/",
            refused("10.0.0.1", AddressClass::Private),
        ),
        ("http://8.8.8.8/", Ok(())),
        ("https://[2606:4700:4700::1111]/", Ok(())),
        // Names are judged by the resolver, on what they resolve to.
        ("https://example.com/", Ok(())),
        ("http://localhost/", Ok(())),
        (
            "file:///etc/passwd",
            Err(Refusal::Scheme {
                scheme: "file".to_owned(),
            }),
        ),
        (
            "ftp://x/",
            Err(Refusal::Scheme {
                scheme: "ftp".to_owned(),
            }),
        ),
        (
            "gopher://example.com/",
            Err(Refusal::Scheme {
                scheme: "gopher".to_owned(),
            }),
        ),
        (
            "data:text/plain,hi",
            Err(Refusal::Scheme {
                scheme: "data".to_owned(),
            }),
        ),
    ];
    for (url, expected) in cases {
        assert_eq!(&strict.check_url(&parse(url)), expected, "{url}");
    }
}

#[test]
fn allow_private_opens_addresses_but_not_schemes() {
    let permissive = Guard::new(true, Vec::new());
    assert_eq!(permissive.check_url(&parse("http://127.0.0.1/")), Ok(()));
    assert_eq!(permissive.check_url(&parse("http://[fe80::1]/")), Ok(()));
    assert_eq!(
        permissive.check_url(&parse("file:///etc/passwd")),
        Err(Refusal::Scheme {
            scheme: "file".to_owned()
        })
    );
}

#[test]
fn also_allow_matches_the_exact_literal_socket_address_only() {
    let trusted: SocketAddr = "10.0.0.5:8080".parse().expect("a socket address");
    let guard = Guard::new(false, vec![trusted]);
    assert_eq!(guard.check_url(&parse("http://10.0.0.5:8080/x")), Ok(()));
    assert_eq!(
        guard.check_url(&parse("http://10.0.0.5:8081/x")),
        refused("10.0.0.5", AddressClass::Private)
    );
    assert_eq!(
        guard.check_url(&parse("http://10.0.0.5/x")),
        refused("10.0.0.5", AddressClass::Private)
    );
    // A name resolving to the trusted address is not trusted: the port is unknown there.
    assert_eq!(
        guard.check_resolved("internal.example", &[trusted]),
        refused("internal.example", AddressClass::Private)
    );
}

#[test]
fn one_non_public_resolved_address_refuses_the_name() {
    let strict = Guard::new(false, Vec::new());
    let public: SocketAddr = "93.184.215.14:0".parse().expect("a socket address");
    let metadata: SocketAddr = "169.254.169.254:0".parse().expect("a socket address");
    assert_eq!(strict.check_resolved("example.com", &[public]), Ok(()));
    assert_eq!(
        strict.check_resolved("rebind.example", &[public, metadata]),
        refused("rebind.example", AddressClass::LinkLocal)
    );
    assert_eq!(
        Guard::new(true, Vec::new()).check_resolved("rebind.example", &[public, metadata]),
        Ok(())
    );
}

#[tokio::test]
async fn resolver_refuses_a_name_that_resolves_to_loopback() {
    let resolver = GuardedResolver::new(Guard::new(false, Vec::new()));
    let name = Name::from_str("localhost").expect("a valid name");
    let error = match resolver.resolve(name).await {
        Ok(addrs) => panic!("localhost resolved to {:?}", addrs.collect::<Vec<_>>()),
        Err(error) => error,
    };
    assert_eq!(
        error.downcast_ref::<Refusal>(),
        Some(&Refusal::Address {
            host: "localhost".to_owned(),
            class: AddressClass::Loopback
        })
    );
}

#[tokio::test]
async fn permissive_resolver_returns_the_addresses() {
    let resolver = GuardedResolver::new(Guard::new(true, Vec::new()));
    let name = Name::from_str("localhost").expect("a valid name");
    let addrs: Vec<SocketAddr> = resolver
        .resolve(name)
        .await
        .expect("localhost resolves")
        .collect();
    assert!(
        addrs.iter().all(|addr| addr.ip().is_loopback()),
        "{addrs:?}"
    );
    assert!(!addrs.is_empty());
}
