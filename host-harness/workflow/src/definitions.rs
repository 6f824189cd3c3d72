//! Workflow definitions by name and version, for the workflows a definition starts: its
//! `failureWorkflow` and the `SUB_WORKFLOW`s it runs by name. `--definitions
//! DIR` holds them as Conductor names them, one per file: `NAME.json` or
//! `NAME_vVERSION.json`.

use crate::definition::WorkflowDef;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Definitions by name, each by version (a definition without `version` is version 1,
/// as Conductor stores it).
#[derive(Debug, Clone, Default)]
pub struct Definitions {
    by_name: BTreeMap<String, BTreeMap<u32, Arc<WorkflowDef>>>,
    /// The definitions as written (the Temporal workflow carries them so).
    written: Vec<Value>,
}

/// Why `--definitions` could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DefinitionsError {
    /// The directory or a file could not be read.
    #[error("{path}: {message}")]
    Read {
        /// The directory or file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A file does not hold a workflow definition.
    #[error("{path}: not a workflow definition: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parse error.
        message: String,
    },
    /// A file's name says another name or version than the definition it holds.
    #[error(
        "{path}: the file name says {expected}, the definition is {found}: name files NAME.json or NAME_vVERSION.json after the definition they hold"
    )]
    Misnamed {
        /// The file.
        path: PathBuf,
        /// What the file name says.
        expected: String,
        /// What the definition says.
        found: String,
    },
    /// Two definitions of one name and version.
    #[error("{name} version {version} is defined twice")]
    Duplicate {
        /// The name.
        name: String,
        /// The version.
        version: u32,
    },
}

impl Definitions {
    /// Read every `*.json` file of `dir`.
    pub fn load_dir(dir: &Path) -> Result<Definitions, DefinitionsError> {
        let read_error = |path: &Path, e: std::io::Error| DefinitionsError::Read {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| read_error(dir, e))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        let mut definitions = Definitions::default();
        for path in files {
            let text = std::fs::read_to_string(&path).map_err(|e| read_error(&path, e))?;
            let value: Value =
                serde_json::from_str(&text).map_err(|e| DefinitionsError::Parse {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
            let def: WorkflowDef =
                serde_json::from_value(value.clone()).map_err(|e| DefinitionsError::Parse {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let version = def.version.unwrap_or(1);
            let (name_in_file, version_in_file) = match stem.rsplit_once("_v") {
                Some((name, v)) if v.parse::<u32>().is_ok() => (name, v.parse::<u32>().ok()),
                _ => (stem.as_str(), None),
            };
            if name_in_file != def.name || version_in_file.is_some_and(|v| v != version) {
                return Err(DefinitionsError::Misnamed {
                    path,
                    expected: match version_in_file {
                        Some(v) => format!("{name_in_file} version {v}"),
                        None => name_in_file.to_string(),
                    },
                    found: format!("{} version {version}", def.name),
                });
            }
            definitions.add(def, value)?;
        }
        Ok(definitions)
    }

    /// Definitions as written (JSON), e.g. carried by a Temporal workflow input.
    pub fn from_values(values: &[Value]) -> Result<Definitions, DefinitionsError> {
        let mut definitions = Definitions::default();
        for value in values {
            let def: WorkflowDef =
                serde_json::from_value(value.clone()).map_err(|e| DefinitionsError::Parse {
                    path: PathBuf::from("definitions"),
                    message: e.to_string(),
                })?;
            definitions.add(def, value.clone())?;
        }
        Ok(definitions)
    }

    fn add(&mut self, def: WorkflowDef, value: Value) -> Result<(), DefinitionsError> {
        let version = def.version.unwrap_or(1);
        let versions = self.by_name.entry(def.name.clone()).or_default();
        if versions.contains_key(&version) {
            return Err(DefinitionsError::Duplicate {
                name: def.name,
                version,
            });
        }
        versions.insert(version, Arc::new(def));
        self.written.push(value);
        Ok(())
    }

    /// The definition `name` at `version`, or its latest version when `version` is
    /// `None` (as Conductor starts a workflow without a version).
    pub fn get(&self, name: &str, version: Option<u32>) -> Option<Arc<WorkflowDef>> {
        let versions = self.by_name.get(name)?;
        match version {
            Some(v) => versions.get(&v).cloned(),
            None => versions.values().next_back().cloned(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// The names held, for messages.
    pub fn names(&self) -> Vec<&str> {
        self.by_name.keys().map(String::as_str).collect()
    }

    /// The definitions as written.
    pub fn values(&self) -> &[Value] {
        &self.written
    }
}
