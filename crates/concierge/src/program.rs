//! Loading what calls run: the configuration, the prompt catalogue, the flows and the demo
//! directory's file. `run`, `check` and `simulate` all load through here, so `check` says
//! ok exactly when `run` would start, and warns about what `run` would only warn about.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use concierge_b2bua::Program;
use concierge_flow::{
    parse_flow, unset_env, Diagnostic, Environment, Flow, FlowFiles, Node, Severity,
    URL_BASE_VARIABLE,
};
use concierge_prompts::Catalogue;

use crate::cli::ConfigArgs;
use crate::config::{Config, ConfigError};
use crate::demo::{directory::Directory, embedded};

/// Where the files a config names are read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Files {
    /// The disk; a config's relative paths are from its own directory.
    Disk,
    /// The demo compiled into the binary ([`embedded`]).
    BuiltIn,
}

impl Files {
    pub(crate) fn read_to_string(self, path: &Path) -> std::io::Result<String> {
        match self {
            Self::Disk => std::fs::read_to_string(path),
            Self::BuiltIn => embedded::file(path)
                .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
                .ok_or_else(|| {
                    std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "not one of the built-in demo files",
                    )
                }),
        }
    }
}

/// The flow crate validates through these (`concierge check`'s directory walk,
/// `concierge diagram`); it reads no file itself.
impl FlowFiles for Files {
    fn read(&self, path: &Path) -> std::io::Result<String> {
        self.read_to_string(path)
    }

    fn list(&self, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
        match self {
            Self::Disk => std::fs::read_dir(dir)?
                .map(|entry| entry.map(|e| e.path()))
                .collect(),
            Self::BuiltIn => Ok(embedded::files_in(dir).map(Path::to_path_buf).collect()),
        }
    }
}

/// What `${NAME}` in a flow resolves to: this process's environment, read when the flow
/// renders the value (the flow crate reads no environment itself). `run` hands it to the
/// switch with the program; `simulate` to its one run.
pub(crate) fn process_env() -> Environment {
    Environment::from_fn(|name| std::env::var(name).ok())
}

/// The configuration a command runs with: `--config`, else `config/concierge.toml` when it
/// exists here, else the built-in demo; the command line's overrides applied.
pub(crate) fn configure(args: &ConfigArgs) -> Result<(Config, Files), ConfigError> {
    let default_file = Path::new(embedded::CONFIG);
    let file = args
        .config
        .as_deref()
        .or_else(|| default_file.exists().then_some(default_file));
    let (mut cfg, files) = match file {
        Some(path) => (Config::load(Some(path))?, Files::Disk),
        None => (built_in_config()?, Files::BuiltIn),
    };
    cfg.apply(&args.overrides())?;
    Ok((cfg, files))
}

fn built_in_config() -> Result<Config, ConfigError> {
    let path = Path::new(embedded::CONFIG);
    let text = Files::BuiltIn
        .read_to_string(path)
        .expect("the built-in demo has its config");
    Config::parse(path, &text)
}

/// What `load` made of a configuration.
pub(crate) struct Loaded {
    pub(crate) program: Program,
    /// One line each, without a level: `run` logs them at WARN, `check` prints them.
    pub(crate) warnings: Vec<String>,
    /// `(route, file)`: `""` for the default flow, then the routes by Request-URI user.
    pub(crate) flows: Vec<(String, PathBuf)>,
}

/// Loads prompts and flows. Errors are returned, one line each.
pub(crate) fn load(cfg: &Config, files: Files) -> Result<Loaded, Vec<String>> {
    let prompts = prompts(cfg, files)?;
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let mut flows = Vec::new();
    let mut load_one = |route: &str, path: &Path| -> Option<Arc<Flow>> {
        flows.push((route.to_owned(), path.to_path_buf()));
        match load_flow(cfg, files, &prompts, path) {
            Ok((flow, w)) => {
                warnings.extend(w);
                Some(flow)
            }
            Err(e) => {
                errors.extend(e);
                None
            }
        }
    };
    let default_flow = cfg.flows.default.as_deref().and_then(|p| load_one("", p));
    let mut routes = std::collections::HashMap::new();
    for (user, path) in &cfg.flows.routes {
        if let Some(flow) = load_one(user, path) {
            routes.insert(user.clone(), flow);
        }
    }
    let trunks = cfg.trunk_registrations().unwrap_or_else(|e| {
        errors.push(e);
        Vec::new()
    });
    if errors.is_empty() {
        Ok(Loaded {
            program: Program {
                default_flow,
                routes,
                prompts,
                env: process_env(),
                trunks,
            },
            warnings,
            flows,
        })
    } else {
        Err(errors)
    }
}

/// The prompt catalogue the config names.
pub(crate) fn prompts(cfg: &Config, files: Files) -> Result<Catalogue, Vec<String>> {
    let wants_flows = cfg.flows.default.is_some() || !cfg.flows.routes.is_empty();
    if files == Files::BuiltIn {
        Catalogue::from_wavs(&cfg.prompts.dir, embedded::wavs(&cfg.prompts.dir))
            .map_err(|e| vec![e.to_string()])
    } else if cfg.prompts.dir.is_dir() {
        Catalogue::load_dir(&cfg.prompts.dir).map_err(|e| vec![e.to_string()])
    } else if wants_flows {
        Err(vec![format!(
            "{}: prompt directory not found (prompts.dir{})",
            cfg.prompts.dir.display(),
            cfg.source
                .as_ref()
                .map(|f| format!(" in {}", f.display()))
                .unwrap_or_default()
        )])
    } else {
        Ok(Catalogue::default())
    }
}

/// One flow file, validated against the prompts; its warnings include environment
/// variables that are not set and lookups aimed at a local port nothing here serves.
pub(crate) fn load_flow(
    cfg: &Config,
    files: Files,
    prompts: &Catalogue,
    path: &Path,
) -> Result<(Arc<Flow>, Vec<String>), Vec<String>> {
    let text = files
        .read_to_string(path)
        .map_err(|e| vec![format!("{}: cannot read: {e}", path.display())])?;
    let loaded = parse_flow(path, &text, &|p| prompts.contains(p)).map_err(|diags| {
        diags
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .map(Diagnostic::to_string)
            .collect::<Vec<_>>()
    })?;
    let mut warnings: Vec<String> = loaded
        .warnings
        .iter()
        .chain(&unset_env(path, &text, &loaded.flow, &|name| {
            std::env::var_os(name).is_some()
        }))
        .map(without_level)
        .collect();
    warnings.extend(unserved_local_urls(cfg, path, &loaded.flow));
    let unknown = unknown_trunks(cfg, path, &loaded.flow);
    if !unknown.is_empty() {
        return Err(unknown);
    }
    Ok((loaded.flow, warnings))
}

fn without_level(d: &Diagnostic) -> String {
    let text = d.to_string();
    text.strip_prefix("warning: ").unwrap_or(&text).to_owned()
}

/// Transfer nodes naming a trunk the config does not define (`[[trunks]]`).
fn unknown_trunks(cfg: &Config, path: &Path, flow: &Flow) -> Vec<String> {
    flow.nodes
        .iter()
        .filter_map(|(id, node)| match node {
            Node::Transfer {
                trunk: Some(name), ..
            } if !cfg.trunks.iter().any(|t| &t.name == name) => Some(format!(
                "{}: node \"{id}\", field \"trunk\": no [[trunks]] named {name:?} in the config",
                path.display()
            )),
            _ => None,
        })
        .collect()
}

/// HTTP nodes whose URL is on this machine at a port the config does not serve: the
/// shipped flows moved to a config whose directory listens elsewhere, say.
fn unserved_local_urls(cfg: &Config, path: &Path, flow: &Flow) -> Vec<String> {
    let served: BTreeSet<u16> = cfg
        .demo
        .directory
        .then_some(cfg.demo.directory_listen.port())
        .into_iter()
        .collect();
    let vars = [(URL_BASE_VARIABLE.to_owned(), cfg.directory_url())]
        .into_iter()
        .collect();
    let mut out = Vec::new();
    for (id, node) in &flow.nodes {
        let Node::Http { url, .. } = node else {
            continue;
        };
        if url.variables().next() == Some(URL_BASE_VARIABLE) && !cfg.demo.directory {
            out.push(format!(
                "{}: node \"{id}\", field \"url\": {{{URL_BASE_VARIABLE}}} is the demo directory, which this config does not serve ([demo] directory = false)",
                path.display()
            ));
            continue;
        }
        let rendered = url.render(&vars, &|_| Some("x".into()), concierge_flow::Escape::Url);
        let Ok(parsed) = reqwest::Url::parse(&rendered) else {
            continue;
        };
        let host = parsed.host_str().unwrap_or_default();
        let local = host.eq_ignore_ascii_case("localhost")
            || host
                .trim_matches(|c| c == '[' || c == ']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        let Some(port) = parsed.port_or_known_default() else {
            continue;
        };
        if local && !served.contains(&port) {
            let what = if cfg.demo.directory {
                format!(
                    "the demo directory is on {} (use {{{URL_BASE_VARIABLE}}})",
                    cfg.demo.directory_listen
                )
            } else {
                "the demo directory is off".to_owned()
            };
            out.push(format!(
                "{}: node \"{id}\", field \"url\": {} points at local port {port}, which nothing in this config serves; {what}",
                path.display(),
                url.source()
            ));
        }
    }
    out
}

/// The demo directory's customers, when the config serves it.
pub(crate) fn directory(cfg: &Config, files: Files) -> Result<Option<Directory>, String> {
    if !cfg.demo.directory {
        return Ok(None);
    }
    let path = &cfg.demo.customers;
    let text = files
        .read_to_string(path)
        .map_err(|e| format!("{}: cannot read (demo.customers): {e}", path.display()))?;
    Directory::parse(path, &text)
        .map(Some)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_demo_s_flows_are_listed_and_read_through_files() {
        let cfg = built_in_config().unwrap();
        let prompts = prompts(&cfg, Files::BuiltIn).unwrap();
        let dir = Path::new("config");
        let clean = concierge_flow::check_dir(&Files::BuiltIn, dir, &|p| prompts.contains(p));
        assert!(clean.is_empty(), "{clean:#?}");
        // With no prompt known every flow fails, so the walk above did see each of them
        // (and skipped the server config, which is no flow).
        let files: BTreeSet<PathBuf> = concierge_flow::check_dir(&Files::BuiltIn, dir, &|_| false)
            .into_iter()
            .map(|d| d.file)
            .collect();
        let flows: BTreeSet<PathBuf> = Files::BuiltIn
            .list(Path::new("config/flows"))
            .unwrap()
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect();
        assert!(flows.len() >= 5, "{flows:?}");
        assert_eq!(files, flows);
    }
}
