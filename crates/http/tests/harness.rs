//! The one practice server of the tests and benches: the scripted fake
//! upstream (`crates/practice/tests/support.rs`, included as `crate::fake`),
//! a store seeded with a teacher, students and one class that allows every
//! model, sluice on `127.0.0.1:0` and a `reqwest` client for it.
//!
//! ```ignore
//! let env = PracticeServer::builder()
//!     .script(Script::new().on("alpha", Behavior::reply("hi")))
//!     .configure(|_, config| config.timeout_ms = 500)
//!     .start()
//!     .await;
//! ```
//!
//! What differs between suites is an option of [`Builder`]; every default is
//! documented on its setter. The server is bound to 127.0.0.1, and it stops
//! (the accept loop and every connection task are aborted) when the
//! [`PracticeServer`] is dropped; the fake upstream stops with it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use reqwest::Method;
use serde_json::Value;
use sluice_core::Profiles;
use sluice_http::{AppState, StateBuilder, app};
use sluice_practice::provider::{ModelConfig, Provider, ProviderKind, http_client};
use sluice_practice::{ClassRole, Practice, Store};
use tokio::sync::oneshot;

use crate::fake::{FakeUpstream, Script};

/// Where the practice data lives.
pub enum StoreKind {
    /// In-memory SQLite.
    Memory,
    /// An SQLite file (WAL mode, as a real deployment) in a temporary
    /// directory removed when the server is dropped.
    File,
    /// A store the test opened itself (an SQLite file it locks, PostgreSQL).
    Given(Store),
}

type Configure = Box<dyn Fn(&str, &mut ModelConfig)>;
type WithState = Box<dyn FnOnce(StateBuilder) -> StateBuilder>;
type WithPractice = Box<dyn FnOnce(Practice) -> Practice>;

/// The options of a [`PracticeServer`].
pub struct Builder {
    script: Script,
    fake_connections: Option<usize>,
    models: Vec<(&'static str, ProviderKind)>,
    configure: Configure,
    store: StoreKind,
    sample_router: bool,
    state: WithState,
    practice: WithPractice,
    teacher: String,
    students: Vec<String>,
    class: String,
    client: reqwest::ClientBuilder,
    runtime: Option<tokio::runtime::Handle>,
    warm_up: bool,
}

impl Builder {
    /// What the fake upstream answers. Default: nothing scripted (every model
    /// echoes the prompt).
    pub fn script(self, script: Script) -> Self {
        Self { script, ..self }
    }

    /// How many connections the fake serves at once. Default: the fake's
    /// `DEFAULT_MAX_CONNECTIONS`.
    pub fn fake_connections(self, n: usize) -> Self {
        Self {
            fake_connections: Some(n),
            ..self
        }
    }

    /// The models, in order (the first is the class's default). Default:
    /// [`THREE`], `alpha` and `beta` OpenAI-compatible, `gamma` CLOVA v3.
    pub fn models(self, models: &[(&'static str, ProviderKind)]) -> Self {
        Self {
            models: models.to_vec(),
            ..self
        }
    }

    /// Changes each model's configuration (called with the model's name).
    /// Before it runs, every model has `ModelConfig::new`'s defaults, the
    /// fake's base URL for its wire format, the HCX-003 profile and
    /// `max_retries = 0` (a failed call shows as an error, not a hidden retry).
    pub fn configure(self, configure: impl Fn(&str, &mut ModelConfig) + 'static) -> Self {
        Self {
            configure: Box::new(configure),
            ..self
        }
    }

    /// The store. Default: [`StoreKind::Memory`].
    pub fn store(self, store: StoreKind) -> Self {
        Self { store, ..self }
    }

    /// Gives practice the embedded `sample` router (version 1). Default: no
    /// router.
    pub fn sample_router(self) -> Self {
        Self {
            sample_router: true,
            ..self
        }
    }

    /// Adds to the state (keys, limits, token lifetime…). Default: the
    /// builder's defaults and practice.
    pub fn state(self, state: impl FnOnce(StateBuilder) -> StateBuilder + 'static) -> Self {
        Self {
            state: Box::new(state),
            ..self
        }
    }

    /// Changes practice before it goes into the state (a clock…). Default:
    /// unchanged.
    pub fn practice(self, practice: impl FnOnce(Practice) -> Practice + 'static) -> Self {
        Self {
            practice: Box::new(practice),
            ..self
        }
    }

    /// The teacher's user name. Default: `teacher`.
    pub fn teacher(self, name: &str) -> Self {
        Self {
            teacher: name.to_string(),
            ..self
        }
    }

    /// The students' user names, all members of the class. Default: one,
    /// `student`.
    pub fn students<S: ToString>(self, names: impl IntoIterator<Item = S>) -> Self {
        Self {
            students: names.into_iter().map(|n| n.to_string()).collect(),
            ..self
        }
    }

    /// The class's name. Default: `practice`.
    pub fn class(self, name: &str) -> Self {
        Self {
            class: name.to_string(),
            ..self
        }
    }

    /// Changes the client. Default: no proxy, a 20 s timeout.
    pub fn client(
        self,
        client: impl FnOnce(reqwest::ClientBuilder) -> reqwest::ClientBuilder,
    ) -> Self {
        Self {
            client: client(self.client),
            ..self
        }
    }

    /// Serves on `runtime` instead of the caller's (so that the server's CPU
    /// time can be told apart). Default: the caller's runtime.
    pub fn runtime(self, runtime: tokio::runtime::Handle) -> Self {
        Self {
            runtime: Some(runtime),
            ..self
        }
    }

    /// Warms the state up (tokenizers, router) before serving. Default: off.
    pub fn warm_up(self) -> Self {
        Self {
            warm_up: true,
            ..self
        }
    }

    /// Starts the fake, seeds the store and serves.
    pub async fn start(self) -> PracticeServer {
        let fake = match self.fake_connections {
            Some(n) => FakeUpstream::start_with_limit(self.script, n).await,
            None => FakeUpstream::start(self.script).await,
        };
        let (store, dir) = match self.store {
            StoreKind::Memory => (Store::in_memory().await.unwrap(), None),
            StoreKind::File => {
                let dir = TempDir::new("server");
                let store = Store::open_file(dir.path().join("practice.db"))
                    .await
                    .unwrap();
                (store, Some(dir))
            }
            StoreKind::Given(store) => (store, None),
        };
        let (teacher, teacher_key) = store.create_user(&self.teacher).await.unwrap();
        let names: Vec<String> = self.models.iter().map(|(m, _)| m.to_string()).collect();
        let class = store
            .create_class(&self.class, teacher.id, &names, &names[0])
            .await
            .unwrap();
        let mut students = Vec::new();
        for name in &self.students {
            let (user, key) = store.create_user(name).await.unwrap();
            store
                .add_member(class.id, user.id, ClassRole::Student)
                .await
                .unwrap();
            students.push((user.id, key.key));
        }
        let providers = self
            .models
            .iter()
            .map(|&(name, kind)| {
                let mut config = ModelConfig::new(kind, fake.base_url(kind));
                config.profile = Some("HCX-003".into());
                config.max_retries = 0;
                (self.configure)(name, &mut config);
                Provider::with_api_key(name, config, http_client(), None).unwrap()
            })
            .collect();
        let models = Practice::models_from(providers, &Profiles::builtin()).unwrap();
        let router = self.sample_router.then(|| {
            sluice_router::RouterStore::embedded_sample()
                .get("sample", 1)
                .unwrap()
        });
        let practice = (self.practice)(Practice::new(store.clone(), models, router));
        let state = (self.state)(AppState::builder().practice(practice)).build();
        if self.warm_up {
            let _ = state.warm_up();
        }
        let app = app(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let served = app.clone();
        let task = match self.runtime {
            // A listener is bound to the runtime that made it: move it over.
            Some(runtime) => {
                let listener = listener.into_std().unwrap();
                runtime.spawn(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)?;
                    sluice_http::serve(listener, served, async move {
                        let _ = stopped.await;
                    })
                    .await
                })
            }
            None => tokio::spawn(sluice_http::serve(listener, served, async move {
                let _ = stopped.await;
            })),
        };
        let (user_id, key) = students.first().cloned().unwrap_or_default();
        PracticeServer {
            http: self.client.build().unwrap(),
            fake,
            store,
            app,
            addr,
            class_id: class.id,
            teacher_id: teacher.id,
            teacher_key: teacher_key.key,
            user_id,
            key,
            students,
            _dir: dir,
            _stop: stop,
            task,
        }
    }
}

/// The usual three models: `alpha` and `beta` OpenAI-compatible, `gamma` CLOVA v3.
pub const THREE: [(&str, ProviderKind); 3] = [
    ("alpha", ProviderKind::Openai),
    ("beta", ProviderKind::Openai),
    ("gamma", ProviderKind::Clova),
];

/// A running server, its fake upstream and what was seeded.
pub struct PracticeServer {
    pub fake: FakeUpstream,
    pub store: Store,
    /// The app the server serves, for in-process (`oneshot`) calls.
    pub app: Router,
    pub addr: SocketAddr,
    /// A client for `addr` (see [`Builder::client`]).
    pub http: reqwest::Client,
    /// The one class, which allows every model.
    pub class_id: i64,
    pub teacher_id: i64,
    pub teacher_key: String,
    /// The first student's id and key.
    pub user_id: i64,
    pub key: String,
    /// Every student's id and key, in the order named.
    pub students: Vec<(i64, String)>,
    _dir: Option<TempDir>,
    _stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl PracticeServer {
    /// The defaults: see each [`Builder`] setter.
    pub fn builder() -> Builder {
        Builder {
            script: Script::new(),
            fake_connections: None,
            models: THREE.to_vec(),
            configure: Box::new(|_, _| {}),
            store: StoreKind::Memory,
            sample_router: false,
            state: Box::new(|state| state),
            practice: Box::new(|practice| practice),
            teacher: "teacher".into(),
            students: vec!["student".into()],
            class: "practice".into(),
            client: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(20)),
            runtime: None,
            warm_up: false,
        }
    }

    /// `http://<addr><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The path of the SQLite file of a [`StoreKind::File`] store.
    pub fn db_path(&self) -> PathBuf {
        self._dir
            .as_ref()
            .expect("a StoreKind::File store")
            .path()
            .join("practice.db")
    }
}

impl PracticeServer {
    /// One request with `key` as the bearer (none when `None`) and `body` as
    /// JSON: the status and the body as JSON (`null` when empty).
    pub async fn send_json(
        &self,
        key: Option<&str>,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut request = self.http.request(method, self.url(path));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let bytes = response.bytes().await.unwrap();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                panic!(
                    "{path}: not JSON ({e}): {}",
                    String::from_utf8_lossy(&bytes)
                )
            })
        };
        (status, value)
    }

    /// Sends each case in order and checks its status; a failure names the
    /// case. Returns the bodies, in order.
    pub async fn expect_statuses(&self, cases: Vec<StatusCase<'_>>) -> Vec<Value> {
        let mut bodies = Vec::new();
        for (case, key, method, path, body, expected) in cases {
            let (status, body) = self
                .send_json(Some(key), method, &path, body.as_ref())
                .await;
            assert_eq!(status, expected, "{case}: {path}: {body}");
            bodies.push(body);
        }
        bodies
    }
}

/// One row of a status table: the case's name, the key that sends it, the
/// method, the path, the JSON body, and the status it must get.
pub type StatusCase<'a> = (&'a str, &'a str, Method, String, Option<Value>, u16);

/// `struct $name(PracticeServer)`, dereferencing to it, for a suite's own
/// request helpers.
// The benches use no suite helpers.
#[allow(unused_macros)]
macro_rules! suite_server {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        struct $name(crate::harness::PracticeServer);

        impl std::ops::Deref for $name {
            type Target = crate::harness::PracticeServer;

            fn deref(&self) -> &crate::harness::PracticeServer {
                &self.0
            }
        }
    };
}
#[allow(unused_imports)]
pub(crate) use suite_server;

impl Drop for PracticeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A fresh temporary directory, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "sluice-test-{tag}-{}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos())
        ));
        std::fs::create_dir_all(&dir).expect("create a temporary directory");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
