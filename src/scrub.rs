//! Removes what could be a secret from what is sent to Sentry: events and breadcrumbs.
//!
//! Policy: the server logs no secret on purpose, so this is the second wall, for the
//! secret nobody expected (an error quoting a URL, a header, a service's answer). It
//! errs on the side of removing: a stray `[Filtered]` costs a little context, a leaked
//! token costs a rotation. What goes:
//! - an event's request, user and HTTP response data, whole;
//! - in every text (messages, exception values, breadcrumbs, tags, extra and context
//!   values): `Bearer`/`Basic` credentials, the values of secret-named keys (`password`,
//!   `secret`, `token`, `authorization`, `api_key`, `client_secret`, `cookie`, ... in
//!   `k=v`, `k: v`, `"k": "v"` and query-string form), URL userinfo
//!   (`scheme://user:pass@host`), JWTs, our own API and refresh tokens (`aos_`, `aosr_`),
//!   webhook keys in `/hooks/<key>` paths, well-known third-party token shapes (`sk-`,
//!   `ghp_`, `xoxb-`, `AKIA`, ...), and any long run of base64url characters that mixes
//!   upper case, lower case and digits, as random secrets do (UUIDs and hex digests stay:
//!   they identify, they do not authorize);
//! - in structured data (extra, contexts, breadcrumb data), the whole value of any
//!   secret-named key, whatever its type.
//!
//! Pure functions, no I/O, so every shape is unit-tested.

use std::borrow::Cow;

use sentry::protocol::{Breadcrumb, Context, Event, Frame, Map, Stacktrace, Value};

/// What a removed secret is replaced with (Sentry's own marker).
pub const FILTERED: &str = "[Filtered]";

/// Random secrets are at least this long (a 192-bit value in base64url is 32 characters).
const MIN_RANDOM_SECRET: usize = 32;
/// A known prefix plus at least this much is a token of that kind.
const MIN_PREFIXED_TAIL: usize = 16;

/// Token prefixes of well-known services: what follows them is a secret.
const SECRET_PREFIXES: [&str; 17] = [
    "aosr_",
    "aos_",
    "whk_",
    "sk-",
    "sk_live_",
    "sk_test_",
    "rk_live_",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "glpat-",
    "xoxb-",
    "xoxp-",
    "AKIA",
];

/// HTTP authentication schemes whose next word is a credential.
const AUTH_SCHEMES: [&str; 5] = ["bearer", "basic", "digest", "token", "negotiate"];

/// Removes secrets from an event before it is sent.
pub fn event(event: &mut Event<'_>) {
    event.request = None;
    event.user = None;
    event
        .contexts
        .retain(|_, context| !matches!(context, Context::Response(_)));
    for context in event.contexts.values_mut() {
        if let Context::Other(map) = context {
            map_values(map);
        }
    }
    optional_text(&mut event.message);
    optional_text(&mut event.culprit);
    optional_text(&mut event.transaction);
    if let Some(entry) = &mut event.logentry {
        string(&mut entry.message);
        entry.params.iter_mut().for_each(value);
    }
    for exception in &mut event.exception.values {
        optional_text(&mut exception.value);
        if let Some(stacktrace) = &mut exception.stacktrace {
            frames(stacktrace);
        }
    }
    if let Some(stacktrace) = &mut event.stacktrace {
        frames(stacktrace);
    }
    for thread in &mut event.threads.values {
        if let Some(stacktrace) = &mut thread.stacktrace {
            frames(stacktrace);
        }
    }
    event.breadcrumbs.values.iter_mut().for_each(breadcrumb);
    tags(&mut event.tags);
    map_values(&mut event.extra);
}

/// Removes secrets from a breadcrumb before it is recorded.
pub fn breadcrumb(breadcrumb: &mut Breadcrumb) {
    optional_text(&mut breadcrumb.message);
    map_values(&mut breadcrumb.data);
}

/// `input` with every part that looks like a secret replaced by [`FILTERED`].
pub fn text(input: &str) -> Cow<'_, str> {
    let mut scrubbed = Cow::Borrowed(input);
    for pass in [userinfo, key_values, auth_schemes, tokens] {
        if let Some(changed) = pass(&scrubbed) {
            scrubbed = Cow::Owned(changed);
        }
    }
    scrubbed
}

/// Scrubs a JSON value in place: strings as text, secret-named keys' values whole.
pub fn value(value: &mut Value) {
    match value {
        Value::String(text) => string(text),
        Value::Array(items) => items.iter_mut().for_each(self::value),
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                if is_secret_key(key) && !item.is_null() {
                    *item = Value::String(FILTERED.to_owned());
                } else {
                    self::value(item);
                }
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// Whether a field, header or parameter of this name holds a secret.
pub fn is_secret_key(key: &str) -> bool {
    let normalized: String = key
        .chars()
        .filter(|c| !matches!(c, '-' | '_' | '.' | ' '))
        .flat_map(char::to_lowercase)
        .collect();
    const CONTAINED: [&str; 12] = [
        "password",
        "passwd",
        "passphrase",
        "secret",
        "token",
        "authorization",
        "apikey",
        "privatekey",
        "credential",
        "cookie",
        "signature",
        "sessionid",
    ];
    // Not `key`: prose says "a master key: back it up", and a key worth hiding is
    // random-looking anyway, which `tokens` catches.
    const EXACT: [&str; 5] = ["pwd", "pass", "auth", "sig", "jwt"];
    CONTAINED.iter().any(|word| normalized.contains(word)) || EXACT.contains(&normalized.as_str())
}

fn string(text: &mut String) {
    if let Cow::Owned(changed) = self::text(text) {
        *text = changed;
    }
}

fn optional_text(text: &mut Option<String>) {
    if let Some(text) = text {
        string(text);
    }
}

fn map_values(map: &mut Map<String, Value>) {
    for (key, item) in map.iter_mut() {
        if is_secret_key(key) && !item.is_null() {
            *item = Value::String(FILTERED.to_owned());
        } else {
            value(item);
        }
    }
}

fn tags(tags: &mut Map<String, String>) {
    for (key, tag) in tags.iter_mut() {
        if is_secret_key(key) {
            FILTERED.clone_into(tag);
        } else {
            string(tag);
        }
    }
}

/// Local variables are the one part of a frame that holds data rather than code.
fn frames(stacktrace: &mut Stacktrace) {
    for frame in &mut stacktrace.frames {
        let Frame { vars, .. } = frame;
        vars.clear();
    }
}

/// The spans one pass found to filter, applied at once (in any order, overlaps merged);
/// `None` when it found none.
struct Rewrite<'a> {
    input: &'a str,
    spans: Vec<(usize, usize)>,
}

impl<'a> Rewrite<'a> {
    fn new(input: &'a str) -> Self {
        Self {
            input,
            spans: Vec::new(),
        }
    }

    /// Filters `input[start..end]`; both on ASCII boundaries.
    fn filter(&mut self, start: usize, end: usize) {
        if start < end {
            self.spans.push((start, end));
        }
    }

    fn finish(mut self) -> Option<String> {
        if self.spans.is_empty() {
            return None;
        }
        self.spans.sort_unstable();
        let mut output = String::with_capacity(self.input.len());
        let mut copied_to = 0;
        for (start, end) in self.spans {
            if end <= copied_to {
                continue;
            }
            if start >= copied_to {
                output.push_str(&self.input[copied_to..start]);
                output.push_str(FILTERED);
            }
            copied_to = end;
        }
        output.push_str(&self.input[copied_to..]);
        Some(output)
    }
}

/// `scheme://user:password@host` keeps the scheme and host only.
fn userinfo(input: &str) -> Option<String> {
    let bytes = input.as_bytes();
    let mut rewrite = Rewrite::new(input);
    let mut from = 0;
    while let Some(found) = input[from..].find("://") {
        let start = from + found + 3;
        let end = bytes[start..]
            .iter()
            .position(|&b| {
                matches!(b, b'/' | b'?' | b'#' | b'"' | b'\'' | b'<' | b'>' | b'`')
                    || b.is_ascii_whitespace()
            })
            .map_or(bytes.len(), |offset| start + offset);
        if let Some(at) = input[start..end].rfind('@') {
            rewrite.filter(start, start + at);
        }
        from = end.max(start);
    }
    rewrite.finish()
}

fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')
}

/// Where a bare (unquoted) value ends.
fn is_value_end(b: u8) -> bool {
    b.is_ascii_whitespace()
        || matches!(
            b,
            b'&' | b',' | b';' | b')' | b']' | b'}' | b'"' | b'\'' | b'<' | b'>' | b'\\'
        )
}

/// The values of secret-named keys: `password=x`, `token: x`, `"secret": "x"`,
/// `?access_token=x&...`, `Authorization: Bearer x`, `api_key => x`, `pwd: Some("x")`.
fn key_values(input: &str) -> Option<String> {
    let bytes = input.as_bytes();
    let mut rewrite = Rewrite::new(input);
    let mut i = 0;
    while i < bytes.len() {
        if !is_key_byte(bytes[i]) || (i > 0 && is_key_byte(bytes[i - 1])) {
            i += 1;
            continue;
        }
        let key_start = i;
        while i < bytes.len() && is_key_byte(bytes[i]) {
            i += 1;
        }
        let key = &input[key_start..i];
        let Some(value_start) = value_after_key(bytes, i) else {
            continue;
        };
        if !is_secret_key(key) {
            continue;
        }
        if let Some((start, end)) = value_span(input, value_start) {
            rewrite.filter(start, end);
            i = end.max(i);
        }
    }
    rewrite.finish()
}

/// Where the value begins if a separator (`=`, `:`, `=>`) follows the key ending at
/// `at`, after the key's closing quote (plain or escaped) and blanks.
fn value_after_key(bytes: &[u8], mut at: usize) -> Option<usize> {
    if bytes.get(at) == Some(&b'\\') && matches!(bytes.get(at + 1), Some(b'"' | b'\'')) {
        at += 2;
    } else if matches!(bytes.get(at), Some(b'"' | b'\'')) {
        at += 1;
    }
    while matches!(bytes.get(at), Some(b' ' | b'\t')) {
        at += 1;
    }
    match (bytes.get(at), bytes.get(at + 1)) {
        (Some(b'='), Some(b'>')) => at += 2,
        (Some(b'='), Some(b'=')) => return None,
        (Some(b'='), _) => at += 1,
        // A path (`::`) or a URL's scheme (`://`), not a key and its value.
        (Some(b':'), Some(b':' | b'/')) => return None,
        (Some(b':'), _) => at += 1,
        _ => return None,
    }
    while matches!(bytes.get(at), Some(b' ' | b'\t')) {
        at += 1;
    }
    (at < bytes.len()).then_some(at)
}

/// The secret part of the value starting at `start`: inside its quotes if quoted, else
/// up to the next delimiter (with the credential after an authentication scheme).
fn value_span(input: &str, mut start: usize) -> Option<(usize, usize)> {
    let bytes = input.as_bytes();
    // Debug output of an `Option<String>`.
    if input[start..].starts_with("Some(") {
        start += "Some(".len();
    }
    match bytes.get(start)? {
        b'\\' if matches!(bytes.get(start + 1), Some(b'"' | b'\'')) => {
            let quote = &input[start..start + 2];
            let inner = start + 2;
            let end = input[inner..]
                .find(quote)
                .map_or(bytes.len(), |offset| inner + offset);
            Some((inner, end))
        }
        &quote @ (b'"' | b'\'') => {
            let inner = start + 1;
            let mut at = inner;
            while at < bytes.len() && bytes[at] != quote {
                // An escaped character, the quote included, is part of the value.
                at += if bytes[at] == b'\\' { 2 } else { 1 };
            }
            Some((inner, at.min(bytes.len())))
        }
        // A structure (`Secret { .. }`, `[..]`) or an already filtered value.
        b'{' | b'[' | b'(' | b'<' => None,
        _ => {
            let word_end = bare_end(bytes, start);
            let word = &input[start..word_end];
            if AUTH_SCHEMES.iter().any(|s| word.eq_ignore_ascii_case(s)) {
                let mut credential = word_end;
                while matches!(bytes.get(credential), Some(b' ' | b'\t')) {
                    credential += 1;
                }
                let end = bare_end(bytes, credential);
                return (end > credential).then_some((credential, end));
            }
            (word_end > start).then_some((start, word_end))
        }
    }
}

fn bare_end(bytes: &[u8], start: usize) -> usize {
    bytes[start..]
        .iter()
        .position(|&b| is_value_end(b))
        .map_or(bytes.len(), |offset| start + offset)
}

fn is_credential_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=')
}

/// `Bearer <credential>` and `Basic <credential>` anywhere, whatever precedes them.
fn auth_schemes(input: &str) -> Option<String> {
    let bytes = input.as_bytes();
    let lower = input.to_ascii_lowercase();
    let mut rewrite = Rewrite::new(input);
    for scheme in ["bearer", "basic"] {
        let mut from = 0;
        while let Some(found) = lower[from..].find(scheme) {
            let start = from + found;
            let after = start + scheme.len();
            from = after;
            if start > 0 && bytes[start - 1].is_ascii_alphanumeric() {
                continue;
            }
            let mut credential = after;
            while matches!(bytes.get(credential), Some(b' ' | b'\t')) {
                credential += 1;
            }
            if credential == after {
                continue;
            }
            let end = bytes[credential..]
                .iter()
                .position(|&b| !is_credential_byte(b))
                .map_or(bytes.len(), |offset| credential + offset);
            // Prose ("a Bearer token was expected") has no credential this long.
            if end - credential >= 8 {
                rewrite.filter(credential, end);
            }
        }
    }
    rewrite.finish()
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')
}

/// Token-shaped words: JWTs, prefixed tokens, webhook keys and random-looking runs.
fn tokens(input: &str) -> Option<String> {
    let bytes = input.as_bytes();
    let mut rewrite = Rewrite::new(input);
    let mut i = 0;
    while i < bytes.len() {
        if !is_token_byte(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && is_token_byte(bytes[i]) {
            i += 1;
        }
        let word = &input[start..i];
        if is_jwt(word) {
            rewrite.filter(start, i);
            continue;
        }
        let mut piece_start = start;
        for piece in word.split('.') {
            let after_hooks = input[..piece_start].ends_with("/hooks/");
            if (after_hooks && piece.len() >= MIN_PREFIXED_TAIL) || is_token(piece) {
                rewrite.filter(piece_start, piece_start + piece.len());
            }
            piece_start += piece.len() + 1;
        }
    }
    rewrite.finish()
}

/// A JWS (three base64url segments) or JWE (five) whose header is a JSON object.
fn is_jwt(word: &str) -> bool {
    let segments: Vec<&str> = word.split('.').collect();
    matches!(segments.len(), 3 | 5)
        && segments[0].starts_with("eyJ")
        && segments[0].len() >= 10
        && segments[1].len() >= 2
        && segments.iter().all(|segment| {
            segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        })
}

fn is_token(piece: &str) -> bool {
    let has = |test: fn(&u8) -> bool| piece.as_bytes().iter().any(test);
    let mixed = |text: &str| {
        text.bytes().any(|b| b.is_ascii_uppercase()) || text.bytes().any(|b| b.is_ascii_digit())
    };
    if let Some(tail) = SECRET_PREFIXES
        .iter()
        .find_map(|prefix| piece.strip_prefix(prefix))
    {
        // Our metric names start with `aos_` too, but are lower case and shorter.
        let min_tail = if piece.starts_with("aos") {
            MIN_RANDOM_SECRET
        } else {
            MIN_PREFIXED_TAIL
        };
        if tail.len() >= min_tail && mixed(tail) {
            return true;
        }
    }
    let hex_id = piece.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    piece.len() >= MIN_RANDOM_SECRET
        && !hex_id
        && has(u8::is_ascii_uppercase)
        && has(u8::is_ascii_lowercase)
        && has(u8::is_ascii_digit)
}

#[cfg(test)]
mod tests {
    use sentry::protocol::{Exception, Request, ResponseContext, User};
    use serde_json::json;

    use super::*;

    /// 43 characters of base64url, the shape of our 256-bit secrets.
    const RANDOM: &str = "aB3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1eF3hJ5kL7nP9r";
    const JWT: &str = "eyJhbGciOiJIUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiJ1c2VyLTEiLCJleHAiOjE5MDAwMDAwMDB9.Xb3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1eF3hJ5kL7nP9r";

    fn scrubbed(input: &str) -> String {
        text(input).into_owned()
    }

    #[track_caller]
    fn assert_filtered(input: &str, secret: &str) {
        let output = scrubbed(input);
        assert!(
            !output.contains(secret),
            "`{secret}` survived in `{output}` (from `{input}`)"
        );
        assert!(output.contains(FILTERED), "no marker in `{output}`");
    }

    #[track_caller]
    fn assert_kept(input: &str) {
        assert_eq!(scrubbed(input), input, "changed `{input}`");
        assert!(matches!(text(input), Cow::Borrowed(_)), "copied `{input}`");
    }

    #[test]
    fn bearer_and_basic_credentials_go_wherever_they_are() {
        let api_token = format!("aos_{RANDOM}");
        for (input, secret) in [
            (format!("Authorization: Bearer {JWT}"), JWT.to_owned()),
            (
                format!("authorization=bearer {api_token}"),
                api_token.clone(),
            ),
            (
                "sent the header Basic dXNlcjpodW50ZXIy== and got 401".to_owned(),
                "dXNlcjpodW50ZXIy".to_owned(),
            ),
            (
                format!("request failed (headers: {{\"authorization\": \"Bearer {RANDOM}\"}})"),
                RANDOM.to_owned(),
            ),
            ("Authorization: Bearer short".to_owned(), "short".to_owned()),
        ] {
            assert_filtered(&input, &secret);
        }
        assert_eq!(
            scrubbed(&format!("Authorization: Bearer {RANDOM}")),
            "Authorization: Bearer [Filtered]"
        );
    }

    #[test]
    fn our_api_refresh_and_webhook_secrets_go() {
        let api_token = format!("aos_{RANDOM}");
        let refresh_token = format!("aosr_{RANDOM}");
        for (input, secret) in [
            (format!("token {api_token} was revoked"), api_token.clone()),
            (
                format!("refresh with {refresh_token}."),
                refresh_token.clone(),
            ),
            (
                format!("POST /hooks/{RANDOM} answered 500"),
                RANDOM.to_owned(),
            ),
            (
                "POST /hooks/whk_0a1b2c3d4e5f60718293a4b5c6d7e8f9".to_owned(),
                "0a1b2c3d4e5f60718293a4b5c6d7e8f9".to_owned(),
            ),
        ] {
            assert_filtered(&input, &secret);
        }
    }

    #[test]
    fn jwts_go_alone_or_in_text() {
        assert_eq!(scrubbed(JWT), FILTERED);
        assert_filtered(&format!("invalid token ({JWT}): expired"), JWT);
        assert_filtered(&format!("id_token={JWT}&state=s1"), JWT);
        // A JWE has five segments.
        let jwe = format!("{JWT}.bm9uY2U.dGFn");
        assert_filtered(
            &format!("got {jwe}"),
            "eyJzdWIiOiJ1c2VyLTEiLCJleHAiOjE5MDAwMDAwMDB9",
        );
    }

    #[test]
    fn secret_named_keys_lose_their_values_in_every_notation() {
        for (input, secret) in [
            ("password=hunter2", "hunter2"),
            ("login failed: password: hunter2, user: ada", "hunter2"),
            (r#"{"password":"hunter 2","name":"Ada"}"#, "hunter 2"),
            (
                r#"{\"client_secret\":\"s3cr3t\",\"client_id\":\"app\"}"#,
                "s3cr3t",
            ),
            ("client_secret = 'it''s'", "it"),
            (
                "https://api.example.com/cb?state=s1&access_token=ya29.a0Af&x=1",
                "ya29.a0Af",
            ),
            ("?api_key=abc123&page=2", "abc123"),
            ("X-Api-Key: abc123", "abc123"),
            ("apiKey => abc123", "abc123"),
            (
                "Credentials { username: \"ada\", password: \"hunter2\" }",
                "hunter2",
            ),
            ("SmtpConfig { pwd: Some(\"hunter2\") }", "hunter2"),
            ("Cookie: session=abc123; theme=dark", "session=abc123"),
            ("refreshToken: r-123", "r-123"),
            ("webhook.secret=topsecret", "topsecret"),
            ("private_key: \"-----BEGIN KEY-----\\nMII\"", "BEGIN KEY"),
            ("signature=sha256=abc", "sha256=abc"),
        ] {
            assert_filtered(input, secret);
        }
        assert_eq!(
            scrubbed(r#"{"password":"hunter2","name":"Ada"}"#),
            r#"{"password":"[Filtered]","name":"Ada"}"#
        );
        assert_eq!(
            scrubbed("?state=s1&client_secret=abc&page=2"),
            "?state=s1&client_secret=[Filtered]&page=2"
        );
    }

    #[test]
    fn urls_lose_their_userinfo_only() {
        assert_eq!(
            scrubbed("cannot reach postgres://aos:S3cr3t@db.internal:5432/aos?sslmode=require"),
            "cannot reach postgres://[Filtered]@db.internal:5432/aos?sslmode=require"
        );
        assert_filtered("redis://:hunter2@127.0.0.1:6379/0", "hunter2");
        assert_filtered("https://user:pa%40ss@example.com/", "pa%40ss");
        assert_kept("see https://example.com/docs?page=2#metrics, or mailto:ops@example.com");
    }

    #[test]
    fn third_party_and_random_looking_tokens_go() {
        for secret in [
            "sk-proj-AbCdEf1234567890abcdefGH",
            "sk_live_51HxYzAbCdEf1234567890",
            "ghp_1234567890abcdefghijABCDEFGHIJ1234",
            "github_pat_11ABCDEFG0123456789_abcdefghijklmnop",
            "xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOpQrStUvWx",
            "glpat-AbCdEf1234567890xyz",
            "AKIAIOSFODNN7EXAMPLE",
            RANDOM,
        ] {
            assert_filtered(
                &format!("the service answered: bad credential {secret}"),
                secret,
            );
        }
    }

    #[test]
    fn identifiers_and_prose_stay() {
        for input in [
            "run 0192f6a4-7b8e-7c3d-9e1f-123456789abc of workspace 0192F6A4-7B8E-7C3D-9E1F-123456789ABC failed",
            "sha256 3a7bd3e2360a3d29eea436fcfb7e44c735d117c42d1c1835420b6b9942dd4f1b matches",
            "aos_graphql_request_duration_seconds_bucket and aos_step_attempts_total",
            "at aos_engine::worker in engine/src/worker.rs:157",
            "a Bearer token was expected in the Authorization header",
            "the password is wrong; the token expired; no secret was given",
            "GET https://api.example.com/v1/items?page=2&per_page=50 answered HTTP 503",
            "the server answered HTTP 401",
            "connection `crm` needs to be authorized again (invalid_grant)",
            "generated a master key: back it up",
            "master.key holds an invalid key: Invalid symbol 32, offset 3.",
            "",
        ] {
            assert_kept(input);
        }
    }

    #[test]
    fn non_ascii_text_is_kept_and_cut_on_char_boundaries() {
        assert_kept("Grüße, 世界: ok");
        assert_eq!(
            scrubbed("mot de passe password=pâté&ok"),
            "mot de passe password=[Filtered]&ok"
        );
        assert_eq!(scrubbed("password: «secret»"), "password: [Filtered]");
    }

    #[test]
    fn structured_values_lose_secret_keys_whole_and_scrub_strings() {
        let mut data = json!({
            "headers": {"Authorization": "Bearer abc", "Accept": "application/json"},
            "token": {"access": "abc", "expires": 3600},
            "password": null,
            "secrets": ["a", "b"],
            "attempts": 3,
            "error": format!("refused aos_{RANDOM}"),
            "list": [{"api_key": 1}, "ok"]
        });

        value(&mut data);

        assert_eq!(
            data,
            json!({
                "headers": {"Authorization": FILTERED, "Accept": "application/json"},
                "token": FILTERED,
                "password": null,
                "secrets": FILTERED,
                "attempts": 3,
                "error": format!("refused {FILTERED}"),
                "list": [{"api_key": FILTERED}, "ok"]
            })
        );
    }

    #[test]
    fn an_event_loses_request_user_response_and_every_secret() {
        let mut fields = Map::new();
        fields.insert(
            "error".to_owned(),
            json!(format!("bad credential aos_{RANDOM}")),
        );
        fields.insert("client_secret".to_owned(), json!("s3cr3t"));
        fields.insert(
            "run_id".to_owned(),
            json!("0192f6a4-7b8e-7c3d-9e1f-123456789abc"),
        );
        let mut crumb_data = Map::new();
        crumb_data.insert(
            "url".to_owned(),
            json!("https://u:hunter2@example.com/x?token=t0k"),
        );
        let mut extra = Map::new();
        extra.insert("password".to_owned(), json!("hunter2"));
        let mut tags = Map::new();
        tags.insert("api_key".to_owned(), "abc123".to_owned());
        tags.insert("route".to_owned(), format!("/hooks/{RANDOM}"));
        let mut event = Event {
            message: Some(format!("login with password=hunter2 failed for {JWT}")),
            request: Some(Request {
                data: Some("password=hunter2".to_owned()),
                ..Request::default()
            }),
            user: Some(User {
                email: Some("ada@example.com".to_owned()),
                ..User::default()
            }),
            exception: vec![Exception {
                ty: "Error".to_owned(),
                value: Some(format!("Authorization: Bearer {RANDOM}")),
                ..Exception::default()
            }]
            .into(),
            breadcrumbs: vec![Breadcrumb {
                message: Some("POST https://api.example.com/?access_token=t0k".to_owned()),
                data: crumb_data,
                ..Breadcrumb::default()
            }]
            .into(),
            extra,
            tags,
            ..Event::default()
        };
        event
            .contexts
            .insert("Rust Tracing Fields".to_owned(), Context::Other(fields));
        event.contexts.insert(
            "response".to_owned(),
            Context::Response(Box::new(ResponseContext {
                data: Some(json!({"token": "t0k"})),
                ..ResponseContext::default()
            })),
        );

        self::event(&mut event);

        assert_eq!(event.request, None);
        assert_eq!(event.user, None);
        assert!(!event.contexts.contains_key("response"));
        let sent = serde_json::to_string(&event).expect("an event serializes");
        for secret in [
            "hunter2",
            "s3cr3t",
            RANDOM,
            JWT,
            "t0k",
            "abc123",
            "ada@example.com",
        ] {
            assert!(!sent.contains(secret), "`{secret}` is sent in {sent}");
        }
        assert!(
            sent.contains("0192f6a4-7b8e-7c3d-9e1f-123456789abc"),
            "ids stay: {sent}"
        );
        assert_eq!(
            event.message.as_deref(),
            Some("login with password=[Filtered] failed for [Filtered]")
        );
    }

    #[test]
    fn a_breadcrumb_loses_secrets_in_its_message_and_data() {
        let mut data = Map::new();
        data.insert("authorization".to_owned(), json!("Basic dXNlcjpwYXNz"));
        data.insert("status".to_owned(), json!(401));
        let mut crumb = Breadcrumb {
            message: Some("retrying with refresh_token=r-1".to_owned()),
            data,
            ..Breadcrumb::default()
        };

        breadcrumb(&mut crumb);

        assert_eq!(
            crumb.message.as_deref(),
            Some("retrying with refresh_token=[Filtered]")
        );
        assert_eq!(crumb.data.get("authorization"), Some(&json!(FILTERED)));
        assert_eq!(crumb.data.get("status"), Some(&json!(401)));
    }
}
