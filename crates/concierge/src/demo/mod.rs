pub(crate) mod directory;
