//! Loads the Leptos site settings from Leptos.toml, or from the copy built into the binary.

use std::io::ErrorKind;
use std::path::Path;

use leptos::config::{get_config_from_str, LeptosOptions};

use super::error::StartError;

/// Leptos.toml as it was when the binary was built.
pub const EMBEDDED: &str = include_str!("../../Leptos.toml");

/// Reads `path` if it exists, else the embedded defaults; `LEPTOS_*` variables override keys.
pub fn load(path: &Path) -> Result<LeptosOptions, StartError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == ErrorKind::NotFound => EMBEDDED.to_string(),
        Err(source) => {
            return Err(StartError::ReadSiteSettings {
                path: path.to_owned(),
                source,
            })
        }
    };
    // leptos_config reads the same keys from a Cargo.toml section; give it that header.
    let mut options =
        get_config_from_str(&format!("[package.metadata.leptos]\n{text}")).map_err(|error| {
            StartError::InvalidSiteSettings {
                path: path.to_owned(),
                message: error.to_string(),
            }
        })?;
    // cargo-leptos writes the hashes beside the binary it builds; a binary built otherwise
    // (cargo build, a test) has none, and Leptos would panic looking for them.
    if options.hash_files && !hash_file(&options).is_some_and(|file| file.exists()) {
        tracing::info!(
            "no {} beside the binary: serving the site's files by their plain names",
            options.hash_file
        );
        options.hash_files = false;
    }
    Ok(options)
}

/// Where Leptos looks for the site's file hashes: beside the running binary.
fn hash_file(options: &LeptosOptions) -> Option<std::path::PathBuf> {
    let binary = std::env::current_exe().ok()?;
    Some(binary.parent()?.join(options.hash_file.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cargo_metadata(key: &str) -> String {
        let cargo = include_str!("../../Cargo.toml");
        let section = cargo
            .split("[package.metadata.leptos]")
            .nth(1)
            .expect("Cargo.toml has a [package.metadata.leptos] section");
        section
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{key} = ")))
            .unwrap_or_else(|| panic!("{key} missing from Cargo.toml"))
            .trim_matches('"')
            .to_string()
    }

    #[test]
    fn embedded_settings_load_and_agree_with_cargo_leptos() {
        let options = load(Path::new("/nonexistent/Leptos.toml")).unwrap();
        assert_eq!(&*options.output_name, cargo_metadata("output-name"));
        assert_eq!(&*options.site_root, cargo_metadata("site-root"));
        assert_eq!(&*options.site_pkg_dir, cargo_metadata("site-pkg-dir"));
        assert_eq!(options.site_addr.to_string(), cargo_metadata("site-addr"));
        // Hashed names are on in both, though a test binary has no hashes beside it and so
        // serves plain names.
        assert_eq!(cargo_metadata("hash-files"), "true");
        assert!(EMBEDDED.contains("hash-files = true"));
        assert!(!options.hash_files);
    }

    #[test]
    fn a_file_beside_the_binary_wins_over_the_embedded_copy() {
        let dir = std::env::temp_dir().join(format!("room-site-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("Leptos.toml");
        std::fs::write(&path, "output-name = \"room\"\nsite-root = \"/srv/room\"\n").unwrap();
        let options = load(&path).unwrap();
        assert_eq!(&*options.site_root, "/srv/room");
        std::fs::write(&path, "site-root = 5 5").unwrap();
        assert!(load(&path).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
