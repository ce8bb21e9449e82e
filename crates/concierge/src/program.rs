//! Loading what calls run: the prompt catalogue and the flows, validated together so a
//! flow that names a missing prompt stops start-up with a message saying where.

use std::path::Path;
use std::sync::Arc;

use concierge_b2bua::Program;
use concierge_flow::{load_flow, Diagnostic, Severity};
use concierge_prompts::Catalogue;
use tracing::warn;

use crate::config::Config;

/// Loads prompts and flows. Warnings are logged; errors are returned, one line each.
pub(crate) fn load(cfg: &Config) -> Result<Program, Vec<String>> {
    let wants_flows = cfg.flows.default.is_some() || !cfg.flows.routes.is_empty();
    let prompts = if cfg.prompts.dir.is_dir() {
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
        match load_flow(path, &|p| prompts.contains(p)) {
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
