//! Loading what calls run: the prompt catalogue and the flows, validated together so a
//! flow that names a missing prompt stops start-up with a message saying where.

use std::path::Path;
use std::sync::Arc;

use concierge_b2bua::Program;
use concierge_flow::{parse_flow, Diagnostic, Severity};
use concierge_prompts::Catalogue;
use tracing::warn;

use crate::config::Config;
use crate::demo::embedded;

/// Where the files a config names are read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Files {
    /// The disk, relative paths from the working directory.
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

/// Loads prompts and flows. Warnings are logged; errors are returned, one line each.
pub(crate) fn load(cfg: &Config, files: Files) -> Result<Program, Vec<String>> {
    let wants_flows = cfg.flows.default.is_some() || !cfg.flows.routes.is_empty();
    let prompts = if files == Files::BuiltIn {
        Catalogue::from_wavs(&cfg.prompts.dir, embedded::wavs(&cfg.prompts.dir))
            .map_err(|e| vec![e.to_string()])?
    } else if cfg.prompts.dir.is_dir() {
        Catalogue::load_dir(&cfg.prompts.dir).map_err(|e| vec![e.to_string()])?
    } else if wants_flows {
        return Err(vec![format!(
            "{}: prompt directory not found (prompts.dir)",
            cfg.prompts.dir.display()
        )]);
    } else {
        Catalogue::default()
    };
    let mut errors = Vec::new();
    let mut load_one = |path: &Path| -> Option<Arc<concierge_flow::Flow>> {
        let text = match files.read_to_string(path) {
            Ok(text) => text,
            Err(e) => {
                errors.push(format!("{}: cannot read: {e}", path.display()));
                return None;
            }
        };
        match parse_flow(path, &text, &|p| prompts.contains(p)) {
            Ok(loaded) => {
                for w in loaded.warnings {
                    warn!("{w}");
                }
                Some(loaded.flow)
            }
            Err(diags) => {
                errors.extend(
                    diags
                        .iter()
                        .filter(|d| d.severity == Severity::Error)
                        .map(Diagnostic::to_string),
                );
                None
            }
        }
    };
    let default_flow = cfg.flows.default.as_deref().and_then(&mut load_one);
    let mut routes = std::collections::HashMap::new();
    for (user, path) in &cfg.flows.routes {
        if let Some(flow) = load_one(path) {
            routes.insert(user.clone(), flow);
        }
    }
    if errors.is_empty() {
        Ok(Program {
            default_flow,
            routes,
            prompts,
        })
    } else {
        Err(errors)
    }
}
