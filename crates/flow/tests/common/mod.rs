//! What the binary supplies to the flow crate, as the tests supply it: the repository's
//! files on disk.

use std::path::{Path, PathBuf};

use concierge_flow::FlowFiles;

/// The disk, as `concierge check` reads it (the crate itself reads no file).
pub(crate) struct Disk;

#[allow(
    clippy::disallowed_methods,
    reason = "tests read the repository's flows and their own scratch files from disk"
)]
impl FlowFiles for Disk {
    fn read(&self, path: &Path) -> std::io::Result<String> {
        std::fs::read_to_string(path)
    }

    fn list(&self, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
        std::fs::read_dir(dir)?
            .map(|e| e.map(|e| e.path()))
            .collect()
    }
}
