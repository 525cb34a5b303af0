//! The invariants of ARCHITECTURE.md that can be read off the source tree. They are cheap
//! to break by accident (one `use` in the wrong crate) and expensive to notice later.

use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Crates that would give the domain I/O, a wire format or an ORM.
const FORBIDDEN_IN_DOMAIN: &[&str] = &[
    "axum",
    "async-graphql",
    "async-graphql-axum",
    "sea-orm",
    "sea-query",
    "sqlx",
    "tokio",
    "redis",
    "reqwest",
    "hyper",
    "tower",
];

#[test]
fn the_domain_depends_on_no_web_orm_or_runtime_crate() {
    let manifest = read(&Path::new(ROOT).join("domain/Cargo.toml"));
    let dependencies = dependency_names(&manifest, "[dependencies]");
    assert!(
        !dependencies.is_empty(),
        "no [dependencies] found in domain/Cargo.toml"
    );
    for name in &dependencies {
        assert!(
            !FORBIDDEN_IN_DOMAIN.contains(&name.as_str()),
            "domain depends on `{name}`"
        );
    }
}

#[test]
fn the_domain_source_names_no_web_orm_or_runtime_crate() {
    for file in rust_files(&Path::new(ROOT).join("domain/src")) {
        let source = read(&file);
        for name in FORBIDDEN_IN_DOMAIN {
            let path = format!("{}::", name.replace('-', "_"));
            assert!(
                !source.contains(&path),
                "{} mentions `{path}`",
                file.display()
            );
        }
    }
}

/// Workspace scopes are minted in one place, after the membership or token check, so a
/// resolver cannot forge access to a workspace by calling `authorize` with a made-up role.
#[test]
fn only_the_authorization_module_creates_workspace_scopes() {
    let allowed = Path::new(ROOT).join("api/src/authz.rs");
    let mut callers = Vec::new();
    for dir in ["api/src", "src", "persistence/src"] {
        for file in rust_files(&Path::new(ROOT).join(dir)) {
            if file != allowed && read(&file).contains("authorize(") {
                callers.push(file.display().to_string());
            }
        }
    }
    assert!(
        callers.is_empty(),
        "authorize() called outside api/src/authz.rs: {callers:?}"
    );
    assert!(read(&allowed).contains("authorize("));
}

fn dependency_names(manifest: &str, section: &str) -> Vec<String> {
    manifest
        .lines()
        .skip_while(|line| line.trim() != section)
        .skip(1)
        .take_while(|line| !line.trim_start().starts_with('['))
        .filter_map(|line| {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                return None;
            }
            let name = line.split(['=', '.']).next()?.trim();
            Some(name.trim_matches('"').to_owned())
        })
        .collect()
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|error| panic!("read {}: {error}", dir.display()));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                files.push(path);
            }
        }
    }
    assert!(!files.is_empty(), "no Rust files under {}", dir.display());
    files
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|error| panic!("read {}: {error}", path.display()))
}
