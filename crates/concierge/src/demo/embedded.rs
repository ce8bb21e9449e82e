//! The demo compiled into the binary. `concierge run` started where there is no
//! `config/concierge.toml` (an installed binary, a container without the repository) still
//! runs the whole demo: the shipped config, flows, customer directory and prompts — the
//! repository's own files, read from here instead of from the disk. A test keeps this list
//! and the repository's files the same.

use std::path::Path;

/// `(path from the repository root, contents)` of a shipped file.
macro_rules! shipped {
    ($path:literal) => {
        (
            $path,
            include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../", $path)) as &[u8],
        )
    };
}

/// The config that names the files below, as `run` finds it in the repository.
pub(crate) const CONFIG: &str = "config/concierge.toml";

static FILES: &[(&str, &[u8])] = &[
    shipped!("config/concierge.toml"),
    shipped!("config/customers.csv"),
    shipped!("config/flows/echo.toml"),
    shipped!("config/flows/service-desk.toml"),
    shipped!("config/flows/vip-by-customer-id.toml"),
    shipped!("config/flows/vip-desk.toml"),
    shipped!("config/flows/vip-redirect.toml"),
    shipped!("config/flows/vip.toml"),
    shipped!("prompts/code_locked.wav"),
    shipped!("prompts/digit_0.wav"),
    shipped!("prompts/digit_1.wav"),
    shipped!("prompts/digit_2.wav"),
    shipped!("prompts/digit_3.wav"),
    shipped!("prompts/digit_4.wav"),
    shipped!("prompts/digit_5.wav"),
    shipped!("prompts/digit_6.wav"),
    shipped!("prompts/digit_7.wav"),
    shipped!("prompts/digit_8.wav"),
    shipped!("prompts/digit_9.wav"),
    shipped!("prompts/digit_a.wav"),
    shipped!("prompts/digit_b.wav"),
    shipped!("prompts/digit_c.wav"),
    shipped!("prompts/digit_d.wav"),
    shipped!("prompts/digit_pound.wav"),
    shipped!("prompts/digit_star.wav"),
    shipped!("prompts/echo_intro.wav"),
    shipped!("prompts/enter_code.wav"),
    shipped!("prompts/goodbye.wav"),
    shipped!("prompts/hold_music.wav"),
    shipped!("prompts/invalid_code.wav"),
    shipped!("prompts/one_moment.wav"),
    shipped!("prompts/please_hold.wav"),
    shipped!("prompts/service_desk.wav"),
    shipped!("prompts/transfer_service.wav"),
    shipped!("prompts/transfer_vip.wav"),
    shipped!("prompts/vip_greeting.wav"),
    shipped!("prompts/vip_desk.wav"),
    shipped!("prompts/welcome.wav"),
    shipped!("prompts/you_entered.wav"),
];

/// The built-in copy of `path` (relative, as the shipped config writes it).
pub(crate) fn file(path: &Path) -> Option<&'static [u8]> {
    let path = path.strip_prefix("./").unwrap_or(path);
    FILES
        .iter()
        .find(|(p, _)| Path::new(p) == path)
        .map(|(_, bytes)| *bytes)
}

/// The paths of the built-in files directly in `dir`.
pub(crate) fn files_in(dir: &Path) -> impl Iterator<Item = &'static Path> + '_ {
    let dir = dir.strip_prefix("./").unwrap_or(dir);
    FILES
        .iter()
        .map(|(p, _)| Path::new(*p))
        .filter(move |p| p.parent() == Some(dir))
}

/// The built-in WAV files directly in `dir`, as `(prompt name, bytes)`.
pub(crate) fn wavs(dir: &Path) -> impl Iterator<Item = (&'static str, &'static [u8])> + '_ {
    let dir = dir.strip_prefix("./").unwrap_or(dir);
    FILES.iter().filter_map(move |(p, bytes)| {
        let p = Path::new(p);
        if p.parent() != Some(dir) || p.extension().and_then(|e| e.to_str()) != Some("wav") {
            return None;
        }
        Some((p.file_stem()?.to_str()?, *bytes))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn repo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    /// Every file the demo reads from the repository, and nothing else.
    fn repository_files() -> Vec<String> {
        let mut out = vec![CONFIG.to_owned(), "config/customers.csv".to_owned()];
        for (dir, ext) in [("config/flows", "toml"), ("prompts", "wav")] {
            for entry in std::fs::read_dir(repo().join(dir)).unwrap() {
                let name = entry.unwrap().file_name().into_string().unwrap();
                if name.ends_with(&format!(".{ext}")) {
                    out.push(format!("{dir}/{name}"));
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn the_built_in_demo_is_the_repository_s_demo() {
        let mut built_in: Vec<String> = FILES.iter().map(|(p, _)| (*p).to_owned()).collect();
        built_in.sort();
        assert_eq!(
            built_in,
            repository_files(),
            "FILES lists the shipped demo files"
        );
        for (path, bytes) in FILES {
            assert_eq!(std::fs::read(repo().join(path)).unwrap(), *bytes, "{path}");
        }
    }

    #[test]
    fn paths_are_found_as_the_shipped_config_writes_them() {
        assert!(file(Path::new("config/flows/vip.toml")).is_some());
        assert!(file(Path::new("./config/customers.csv")).is_some());
        assert!(file(Path::new("/etc/passwd")).is_none());
        assert_eq!(wavs(Path::new("prompts")).count(), 31);
        assert!(wavs(Path::new("prompts")).any(|(name, _)| name == "welcome"));
        assert_eq!(wavs(Path::new("config")).count(), 0);
    }
}
