//! `concierge diagram FLOW [--format mermaid|dot]`: prints a drawing of a flow.

use std::path::Path;
use std::process::ExitCode;

use concierge_flow::{diagram, load_flow};

use crate::cli::DiagramFormat;
use crate::program::Files;

pub(crate) fn run(path: &Path, format: DiagramFormat) -> ExitCode {
    // A drawing needs the graph, not the audio: any prompt name is accepted here
    // (`concierge check` is what catches a missing prompt).
    match load_flow(&Files::Disk, path, &|_| true) {
        Ok(loaded) => {
            let text = match format {
                DiagramFormat::Mermaid => diagram::mermaid(&loaded.flow),
                DiagramFormat::Dot => diagram::dot(&loaded.flow),
            };
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(problems) => {
            for p in problems {
                eprintln!("{p}");
            }
            ExitCode::from(2)
        }
    }
}
