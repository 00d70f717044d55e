//! The derive finds the runtime crate from the user's `Cargo.toml`: a package that depends
//! only on the `flamingo` facade (under its own name or renamed) compiles, with the generated
//! code going through `flamingo::session`.
//!
//! This builds a small workspace of two packages with cargo (`cargo check`, in its own target
//! folder under `target/tmp`), since the manifest lookup only happens in a real package.

use std::{fs, path::Path, process::Command};

const TYPES: &str = r#"
//! Session values of an application that depends only on the facade.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use flamingo::session::{registry::Registry, SessionValue};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, SessionValue)]
#[session_value(name = "facade.Cart")]
/// A cart.
pub struct Cart {
    /// Its items.
    pub items: Vec<String>,
}

#[derive(Serialize, Deserialize, SessionValue)]
/// Where the buyer is.
pub enum Step {
    /// Looking around.
    Browse,
    /// Paying.
    Pay {
        /// How much.
        cents: u64,
    },
}

#[derive(Serialize, Deserialize, SessionValue)]
/// One page of things.
pub struct Page<T>(pub Vec<T>);

/// The registered names, and a generic one.
pub fn names() -> Vec<String> {
    let registered = Registry::global().types().into_iter().map(|t| t.name);
    registered.chain([<Page<Cart>>::session_type_name().into_owned()]).collect()
}
"#;

fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().expect("a file in a folder")).expect("create fixture folder");
    fs::write(path, text).expect("write fixture file");
}

#[test]
fn a_package_depending_only_on_the_facade_compiles() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root");
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("facade-only");
    let facade = workspace.display().to_string().replace('\\', "/");

    write(
        &root.join("Cargo.toml"),
        "[workspace]\nmembers = [\"plain\", \"renamed\"]\n",
    );
    write(
        &root.join("plain/Cargo.toml"),
        &format!(
            "[package]\nname = \"plain\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n\
             [dependencies]\n\
             flamingo = {{ path = \"{facade}\", default-features = false, features = [\"session\"] }}\n\
             serde = {{ version = \"1\", features = [\"derive\"] }}\n"
        ),
    );
    write(&root.join("plain/src/lib.rs"), TYPES);
    write(
        &root.join("renamed/Cargo.toml"),
        &format!(
            "[package]\nname = \"renamed\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n\
             [dependencies]\n\
             web = {{ package = \"flamingo\", path = \"{facade}\", default-features = false, \
             features = [\"session\"] }}\n\
             serde = {{ version = \"1\", features = [\"derive\"] }}\n"
        ),
    );
    write(
        &root.join("renamed/src/lib.rs"),
        &TYPES.replace("use flamingo::", "use web::"),
    );
    // The workspace's lock file, so that the fixture uses the versions already downloaded.
    fs::copy(workspace.join("Cargo.lock"), root.join("Cargo.lock")).expect("copy Cargo.lock");

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .args(["check", "--workspace", "--message-format=short"])
        .current_dir(&root)
        .env("CARGO_TARGET_DIR", root.join("target"))
        .output()
        .expect("run cargo check on the facade-only fixture");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the facade-only packages do not compile:\n{stderr}"
    );
    let warnings: Vec<_> = stderr
        .lines()
        .filter(|line| {
            ["plain/", "renamed/"]
                .iter()
                .any(|member| line.starts_with(member))
                && line.contains("warning")
        })
        .collect();
    assert!(
        warnings.is_empty(),
        "the generated code warns in a user's package: {warnings:#?}"
    );
}
