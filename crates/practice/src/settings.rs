//! The practice service's settings — where its store lives, which models it
//! may call, which router checks prompts — and the one function that turns
//! them into a running [`Practice`].
//!
//! In a configuration file these are top-level keys beside the server's own
//! (`database`, `data_dir`, `practice_router`, `[models.NAME]`): the server's
//! configuration embeds [`Settings`], and an in-process run reads the same
//! file with [`SettingsFile`].

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use sluice_core::Profiles;
use sluice_router::{Router, RouterStore};

use crate::error::PracticeError;
use crate::provider::{self, ModelConfig, Provider};
use crate::run::Practice;
use crate::store::{Store, redact_url};

/// The router that checks practice prompts when the settings name none.
pub const DEFAULT_ROUTER: &str = "sample/1";

/// What the practice service is set up from. Every field may be left out.
///
/// ```
/// let mut settings = sluice_practice::Settings::default();
/// settings.data_dir = Some("/var/lib/sluice".into());
/// assert_eq!(settings.database_url(), "sqlite:/var/lib/sluice/sluice.db");
/// settings.apply_vars(|name| (name == "SLUICE_DATABASE_URL").then(|| "sqlite::memory:".into()));
/// assert_eq!(settings.database_url(), "sqlite::memory:");
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settings {
    /// The store: `sqlite:PATH`, `sqlite::memory:` or `postgres://...`
    /// (`database`, `SLUICE_DATABASE_URL`). Default: `sluice.db` in
    /// [`Settings::data_dir`].
    pub database: Option<String>,
    /// Where the default SQLite file lives (`data_dir`, `SLUICE_DATA_DIR`).
    /// Default: [`default_data_dir`].
    pub data_dir: Option<PathBuf>,
    /// The router (`id/version`) that checks every prompt; `none` turns the
    /// check off (`practice_router`). Default: [`DEFAULT_ROUTER`].
    pub router: Option<String>,
    /// The models sessions may call, by logical name (`[models.NAME]`).
    pub models: BTreeMap<String, ModelConfig>,
}

/// A practice service set up from [`Settings`].
#[derive(Debug)]
pub struct Opened {
    /// The service.
    pub practice: Practice,
    /// The configured models that could not be set up, one line each saying
    /// why (an `api_key_env` variable that is not set): the service starts
    /// without them rather than not at all.
    pub unavailable: Vec<String>,
}

impl Settings {
    /// Applies `SLUICE_DATABASE_URL` and `SLUICE_DATA_DIR`, looked up with `var`.
    pub fn apply_vars(&mut self, var: impl Fn(&str) -> Option<String>) {
        if let Some(v) = var("SLUICE_DATABASE_URL") {
            self.database = Some(v.trim().to_string());
        }
        if let Some(v) = var("SLUICE_DATA_DIR") {
            self.data_dir = Some(v.into());
        }
    }

    /// Makes the relative paths (the data directory, local models' files)
    /// relative to `base`, the directory of the file they were read from.
    pub fn resolve_paths(&mut self, base: &Path) {
        let model_files = self.models.values_mut().map(|m| &mut m.path);
        resolve_relative(
            base,
            std::iter::once(&mut self.data_dir)
                .chain(model_files)
                .flatten(),
        );
    }

    /// The store's URL: [`Settings::database`], or `sluice.db` in the data
    /// directory.
    pub fn database_url(&self) -> String {
        if let Some(url) = &self.database {
            return url.clone();
        }
        let dir = self.data_dir.clone().unwrap_or_else(default_data_dir);
        format!("sqlite:{}", dir.join("sluice.db").display())
    }

    /// The router that checks prompts as `(id, version)`, or `None` when the
    /// check is off.
    pub fn router_id(&self) -> Result<Option<(&str, u32)>, SettingsError> {
        let spec = self.router.as_deref().unwrap_or(DEFAULT_ROUTER);
        if spec == "none" {
            return Ok(None);
        }
        spec.rsplit_once('/')
            .and_then(|(id, v)| Some((id, v.parse::<u32>().ok()?)))
            .map(Some)
            .ok_or_else(|| SettingsError::RouterId(spec.to_string()))
    }

    /// Opens (and migrates) the store at [`Settings::database_url`], first
    /// creating the folder of a SQLite file.
    pub async fn open_store(&self) -> Result<Store, SettingsError> {
        let url = self.database_url();
        if let Some(path) = url.strip_prefix("sqlite:").filter(|p| !p.starts_with(':')) {
            if let Some(dir) = Path::new(path)
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
            {
                std::fs::create_dir_all(dir).map_err(|error| SettingsError::DataDir {
                    dir: dir.to_path_buf(),
                    error,
                })?;
            }
        }
        Store::connect(&url)
            .await
            .map_err(|error| SettingsError::Database {
                url: redact_url(&url),
                error,
            })
    }

    /// The practice service: the store ([`Settings::open_store`]), a provider
    /// per model counted and trimmed with `profiles`, and `router` checking
    /// prompts. A model whose API key variable is not set is left out and
    /// named in [`Opened::unavailable`].
    pub async fn open(
        &self,
        profiles: &Profiles,
        router: Option<Arc<Router>>,
    ) -> Result<Opened, SettingsError> {
        let store = self.open_store().await?;
        let client = provider::http_client();
        let mut providers = Vec::with_capacity(self.models.len());
        let mut unavailable = Vec::new();
        for (name, model) in &self.models {
            match Provider::new(name, model.clone(), client.clone()) {
                Ok(provider) => providers.push(provider),
                // A first run with the README's config and no key in the
                // environment: start, and say which model is missing and why,
                // rather than refuse to start at all.
                Err(e @ provider::ConfigError::MissingApiKey { .. }) => {
                    unavailable.push(format!(
                        "{e}: it is unavailable until the server restarts with it"
                    ));
                }
                Err(e) => return Err(SettingsError::Model(e)),
            }
        }
        let models = Practice::models_from(providers, profiles).map_err(SettingsError::Models)?;
        Ok(Opened {
            practice: Practice::new(store, models, router),
            unavailable,
        })
    }
}

/// The keys of a configuration file that an in-process practice run reads:
/// the [`Settings`], and the model profiles and router directory the service
/// counts and checks prompts with. The server's other keys are left to it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SettingsFile {
    /// A TOML file of model profiles added to the built-in ones (`profiles`,
    /// `SLUICE_PROFILES`).
    pub profiles: Option<PathBuf>,
    /// A directory of router files, `<id>/<version>.toml` (`routers`,
    /// `SLUICE_ROUTERS`). Default: the embedded sample router.
    pub routers: Option<PathBuf>,
    /// The practice settings.
    pub settings: Settings,
}

/// The keys [`SettingsFile`] reads, as they are spelled in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct FileKeys {
    profiles: Option<PathBuf>,
    routers: Option<PathBuf>,
    database: Option<String>,
    data_dir: Option<PathBuf>,
    practice_router: Option<String>,
    models: BTreeMap<String, ModelConfig>,
}

impl SettingsFile {
    /// Reads a TOML configuration file (relative paths in it are taken from
    /// its directory).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, SettingsError> {
        let path = path.as_ref();
        let err = |message: String| SettingsError::File {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let keys: FileKeys =
            toml::from_str(&text).map_err(|e| err(describe_toml_error(&text, &e)))?;
        let mut file = SettingsFile {
            profiles: keys.profiles,
            routers: keys.routers,
            settings: Settings {
                database: keys.database,
                data_dir: keys.data_dir,
                router: keys.practice_router,
                models: keys.models,
            },
        };
        let base = path.parent().unwrap_or(Path::new("."));
        resolve_relative(
            base,
            [&mut file.profiles, &mut file.routers]
                .into_iter()
                .flatten(),
        );
        file.settings.resolve_paths(base);
        Ok(file)
    }

    /// Applies the `SLUICE_*` overrides of these keys from the process
    /// environment.
    pub fn apply_env(&mut self) {
        self.apply_vars(|name| std::env::var(name).ok());
    }

    /// Applies the `SLUICE_*` overrides of these keys looked up with `var`.
    pub fn apply_vars(&mut self, var: impl Fn(&str) -> Option<String>) {
        if let Some(v) = var("SLUICE_PROFILES") {
            self.profiles = Some(v.into());
        }
        if let Some(v) = var("SLUICE_ROUTERS") {
            self.routers = Some(v.into());
        }
        self.settings.apply_vars(var);
    }

    /// The practice service: built-in profiles plus the profile file, the
    /// routers of the directory (or the embedded sample), then
    /// [`Settings::open`].
    pub async fn open(&self) -> Result<Opened, SettingsError> {
        let mut profiles = Profiles::builtin();
        if let Some(path) = &self.profiles {
            profiles
                .load_file(path)
                .map_err(|e| SettingsError::Profiles(e.to_string()))?;
        }
        let routers = match &self.routers {
            Some(dir) => RouterStore::load_dir_with(dir, &profiles)
                .map_err(|e| SettingsError::Routers(e.to_string()))?,
            None => RouterStore::embedded_sample(),
        };
        let router = match self.settings.router_id()? {
            Some((id, version)) => Some(routers.get(id, version).map_err(|e| {
                SettingsError::Router {
                    spec: self
                        .settings
                        .router
                        .as_deref()
                        .unwrap_or(DEFAULT_ROUTER)
                        .into(),
                    error: e.to_string(),
                }
            })?),
            None => None,
        };
        self.settings.open(&profiles, router).await
    }
}

/// Why practice cannot be set up. Every variant but [`SettingsError::File`]
/// displays as `invalid configuration: ` and its [reason](SettingsError::reason).
#[derive(Debug)]
#[non_exhaustive]
pub enum SettingsError {
    /// The file cannot be read or parsed.
    File {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The folder of the SQLite file cannot be created.
    DataDir {
        /// The folder.
        dir: PathBuf,
        /// Why not.
        error: std::io::Error,
    },
    /// The store cannot be opened or migrated.
    Database {
        /// Its URL, password redacted.
        url: String,
        /// Why not.
        error: PracticeError,
    },
    /// A `[models.NAME]` table cannot be used.
    Model(provider::ConfigError),
    /// The models cannot be set up with the profiles (an unknown profile).
    Models(String),
    /// The profile file cannot be loaded.
    Profiles(String),
    /// The router directory cannot be loaded.
    Routers(String),
    /// `practice_router` is neither `id/version` nor `none`.
    RouterId(String),
    /// The router `practice_router` names cannot be had.
    Router {
        /// The router, `id/version`.
        spec: String,
        /// Why not.
        error: String,
    },
}

impl SettingsError {
    /// What is wrong, without the `invalid configuration: ` its display starts
    /// with (a [`SettingsError::File`] displays as is).
    pub fn reason(&self) -> String {
        match self {
            Self::File { path, message } => format!("{path}: {message}"),
            Self::DataDir { dir, error } => format!(
                "cannot create the data directory {}: {error}",
                dir.display()
            ),
            Self::Database { url, error } => format!("database {url}: {error}"),
            Self::Model(e) => e.to_string(),
            Self::Models(e) | Self::Profiles(e) => e.clone(),
            Self::Routers(e) => format!("routers: {e}"),
            Self::RouterId(spec) => {
                format!("practice_router: expected id/version or none, got {spec:?}")
            }
            Self::Router { spec, error } => format!("practice_router {spec:?}: {error}"),
        }
    }
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File { .. } => f.write_str(&self.reason()),
            _ => write!(f, "invalid configuration: {}", self.reason()),
        }
    }
}

impl std::error::Error for SettingsError {}

/// The default data directory: `$SLUICE_DATA_DIR`, `$XDG_DATA_HOME/sluice`,
/// `~/.local/share/sluice`, or `./sluice-data` when none is known.
pub fn default_data_dir() -> PathBuf {
    let env = |name| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(dir) = env("SLUICE_DATA_DIR") {
        return dir;
    }
    if let Some(xdg) = env("XDG_DATA_HOME") {
        return xdg.join("sluice");
    }
    match env("HOME") {
        Some(home) => home.join(".local/share/sluice"),
        None => PathBuf::from("sluice-data"),
    }
}

/// Makes each relative path absolute against `base` (a configuration file's
/// directory, so a file's paths mean the same wherever the server starts);
/// absolute paths are left alone.
pub fn resolve_relative<'a>(base: &Path, paths: impl IntoIterator<Item = &'a mut PathBuf>) {
    for path in paths {
        if path.is_relative() {
            *path = base.join(&*path);
        }
    }
}

/// A TOML error as `line L, column C: message`, without the excerpt of the
/// file that its `Display` shows and with every double-quoted value in the
/// message redacted: a configuration file holds secrets (API keys), and a
/// malformed entry must not print them.
pub fn describe_toml_error(text: &str, error: &toml::de::Error) -> String {
    let mut message = String::new();
    let mut rest = error.message().trim();
    while let Some(open) = rest.find('"') {
        let Some(len) = rest[open + 1..].find('"') else {
            break;
        };
        message.push_str(&rest[..open]);
        message.push_str("\"<redacted>\"");
        rest = &rest[open + len + 2..];
    }
    message.push_str(rest);
    match error.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn router_ids_parse_or_say_what_was_expected() {
        let with = |router: Option<&str>| Settings {
            router: router.map(String::from),
            ..Settings::default()
        };
        assert_eq!(with(None).router_id().unwrap(), Some(("sample", 1)));
        assert_eq!(with(Some("none")).router_id().unwrap(), None);
        assert_eq!(with(Some("a/b/7")).router_id().unwrap(), Some(("a/b", 7)));
        let error = with(Some("sample")).router_id().unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid configuration: practice_router: expected id/version or none, got \"sample\""
        );
    }

    #[test]
    fn a_file_keeps_the_practice_keys_and_leaves_the_servers() {
        let dir = std::env::temp_dir().join(format!("sluice-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("sluice.toml");
        std::fs::write(
            &path,
            "addr = \"0.0.0.0:1\"\nrouters = \"r\"\ndata_dir = \"data\"\n\
             [models.m]\nprovider = \"local\"\npath = \"m.gguf\"\n",
        )
        .unwrap();
        let file = SettingsFile::from_file(&path).unwrap();
        assert_eq!(file.routers, Some(dir.join("r")));
        assert_eq!(file.settings.data_dir, Some(dir.join("data")));
        assert_eq!(file.settings.models["m"].path, Some(dir.join("m.gguf")));
        std::fs::write(&path, "[models.m]\nprovider = \"x\"\n").unwrap();
        let error = SettingsFile::from_file(&path).unwrap_err().to_string();
        assert!(
            error.starts_with(&format!("{}: line 2, column 12: ", path.display())),
            "{error}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
