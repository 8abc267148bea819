//! `sluice._sluice`: the extension module behind the `sluice` Python package.
//!
//! Messages come in as lists of dicts in the wire shape and results go out as
//! the objects the `sluice` command prints; errors are raised as the exception
//! classes of `sluice.errors`, carrying the API codes. Counting, trimming and
//! routing run with the GIL released.

mod arrow;
mod errors;
mod messages;

use std::path::PathBuf;
use std::sync::{Arc, LazyLock};

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use sluice_core::{CacheScope, Message, Profiles};
use sluice_pipeline::{COUNTS_PER_THREAD, LineError};
use sluice_router::{RouteRequest, RouterStore};

use crate::errors::IntoPyResult as _;

/// The built-in profiles, with one count cache per thread (as the command line
/// keeps them), shared by every model named without files.
static BUILTIN: LazyLock<Arc<Profiles>> = LazyLock::new(|| Arc::new(profiles(COUNTS_PER_THREAD)));

/// The built-in profiles with a per-thread cache of `capacity` messages (`0`: no
/// cache).
fn profiles(capacity: usize) -> Profiles {
    let scope = if capacity == 0 {
        CacheScope::Off
    } else {
        CacheScope::PerThread { capacity }
    };
    Profiles::builtin().with_cache_scope(scope)
}

/// A model profile ready to count and trim: its tokenizer, context limit, largest
/// ``maxTokens`` and chat template.
///
/// ``Model("HCX-003")`` uses a built-in profile (HCX-003, HCX-DASH-001, HCX-005,
/// HCX-DASH-002, HCX-007, cl100k, o200k). ``profiles`` is a TOML file that adds or
/// overrides profiles, ``tokenizer`` a Hugging Face ``tokenizer.json`` to count
/// with instead of the profile's, and ``cache`` the messages whose counts each
/// thread remembers (``0`` turns the cache off).
#[pyclass(frozen, module = "sluice")]
struct Model {
    inner: sluice_core::Model,
    /// Where names in an Arrow batch's ``model`` column are looked up.
    profiles: Arc<Profiles>,
    /// The arguments it was made with, to pickle it (Ray sends models to workers).
    files: (Option<PathBuf>, Option<PathBuf>, usize),
}

#[pymethods]
impl Model {
    #[new]
    #[pyo3(signature = (name = "HCX-003", *, profiles = None, tokenizer = None, cache = COUNTS_PER_THREAD))]
    fn new(
        py: Python<'_>,
        name: &str,
        profiles: Option<PathBuf>,
        tokenizer: Option<PathBuf>,
        cache: usize,
    ) -> PyResult<Self> {
        let files = (profiles, tokenizer, cache);
        let profiles = if files == (None, None, COUNTS_PER_THREAD) {
            Arc::clone(&BUILTIN)
        } else {
            let mut own = crate::profiles(cache);
            if let Some(path) = &files.0 {
                own.load_file(path).or_raise(py)?;
            }
            if let Some(path) = &files.1 {
                if !path.is_file() {
                    let message = format!("cannot read tokenizer file {}", path.display());
                    return Err(errors::to_py(py, LineError::new("50000", message)));
                }
                own.set_tokenizer_file(path);
            }
            Arc::new(own)
        };
        let inner = py.detach(|| profiles.model(name)).or_raise(py)?;
        Ok(Self {
            inner,
            profiles,
            files,
        })
    }

    /// The profile's name.
    #[getter]
    fn name(&self) -> &str {
        &self.inner.profile().name
    }

    /// The context limit in tokens (prompt plus ``maxTokens``).
    #[getter]
    fn context_limit(&self) -> u32 {
        self.inner.profile().context_limit
    }

    /// The largest ``maxTokens`` a request may ask for.
    #[getter]
    fn max_output(&self) -> u32 {
        self.inner.profile().max_output
    }

    /// Tokens of a plain text (no chat template).
    fn count_text(&self, py: Python<'_>, text: &str) -> usize {
        py.detach(|| self.inner.tokenizer().count(text))
    }

    /// Per-message token counts, as ``sluice count`` prints them:
    /// ``{"messages": [...], "reply": n, "total": n}``, each message a copy of the
    /// caller's dict with its ``"count"`` added.
    fn count<'py>(&self, messages: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyDict>> {
        count_with(&self.inner, messages)
    }

    /// Trims ``messages`` oldest turn first so that their tokens plus
    /// ``max_tokens`` fit the context, as ``sluice trim`` does:
    /// ``{"messages": [...], "report": {...}}``. The kept messages are the very
    /// objects given. ``full_report`` also counts the dropped messages, so that
    /// ``report["tokensBefore"]`` is never ``None``.
    #[pyo3(signature = (messages, max_tokens = 100, *, full_report = false))]
    fn trim<'py>(
        &self,
        messages: &Bound<'py, PyAny>,
        max_tokens: i64,
        full_report: bool,
    ) -> PyResult<Bound<'py, PyDict>> {
        trim_with(&self.inner, messages, max_tokens, full_report)
    }

    fn __repr__(&self) -> String {
        format!("Model({:?})", self.inner.profile().name)
    }

    /// Pickling: a model is remade from its name and files (which the unpickling
    /// process must be able to read).
    fn __getnewargs_ex__<'py>(&self, py: Python<'py>) -> PyResult<((String,), Bound<'py, PyDict>)> {
        let (profiles, tokenizer, cache) = &self.files;
        let kwargs = PyDict::new(py);
        kwargs.set_item("profiles", profiles)?;
        kwargs.set_item("tokenizer", tokenizer)?;
        kwargs.set_item("cache", cache)?;
        Ok(((self.inner.profile().name.clone(),), kwargs))
    }
}

/// ``model`` given as a name or a :class:`Model`.
fn resolve(model: &Bound<'_, PyAny>) -> PyResult<sluice_core::Model> {
    resolve_with_profiles(model).map(|(model, _)| model)
}

/// ``model`` given as a name or a :class:`Model`, and the profiles that other
/// model names are looked up in (the built-in ones for a name).
fn resolve_with_profiles(
    model: &Bound<'_, PyAny>,
) -> PyResult<(sluice_core::Model, Arc<Profiles>)> {
    if let Ok(m) = model.cast::<Model>() {
        let m = m.get();
        return Ok((m.inner.clone(), Arc::clone(&m.profiles)));
    }
    let py = model.py();
    let name: String = model.extract()?;
    let model = py.detach(|| BUILTIN.model(&name)).or_raise(py)?;
    Ok((model, Arc::clone(&BUILTIN)))
}

fn count_with<'py>(
    model: &sluice_core::Model,
    messages: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyDict>> {
    let py = messages.py();
    let items = messages::items(messages).or_raise(py)?;
    let list = messages::messages(&items).or_raise(py)?;
    let counts = py.detach(|| model.count(&list));
    messages::counted(py, &items, &counts)
}

fn trim_with<'py>(
    model: &sluice_core::Model,
    messages: &Bound<'py, PyAny>,
    max_tokens: i64,
    full_report: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let py = messages.py();
    let items = messages::items(messages).or_raise(py)?;
    let list = messages::messages(&items).or_raise(py)?;
    let trim = py
        .detach(|| {
            model
                .window()
                .full_report(full_report)
                .trim(&list, max_tokens)
        })
        .or_raise(py)?;
    messages::trimmed(py, &items, &trim)
}

/// Per-message token counts of ``messages`` (a list of dicts with ``role`` and
/// ``content``) under ``model`` (a name or a :class:`Model`), as ``sluice count``
/// prints them.
#[pyfunction]
#[pyo3(signature = (messages, model = None))]
fn count<'py>(
    messages: &Bound<'py, PyAny>,
    model: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let model = model_or_default(messages.py(), model)?;
    count_with(&model, messages)
}

/// Trims ``messages`` for ``model`` so that their tokens plus ``max_tokens`` fit
/// its context, as ``sluice trim`` does: ``{"messages": [...], "report": {...}}``,
/// the kept messages being the caller's own objects.
#[pyfunction]
#[pyo3(signature = (messages, max_tokens = 100, model = None, *, full_report = false))]
fn trim<'py>(
    messages: &Bound<'py, PyAny>,
    max_tokens: i64,
    model: Option<&Bound<'py, PyAny>>,
    full_report: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let model = model_or_default(messages.py(), model)?;
    trim_with(&model, messages, max_tokens, full_report)
}

fn model_or_default(
    py: Python<'_>,
    model: Option<&Bound<'_, PyAny>>,
) -> PyResult<sluice_core::Model> {
    match model {
        Some(m) => resolve(m),
        None => py.detach(|| BUILTIN.model("HCX-003")).or_raise(py),
    }
}

/// A chat history that grows and is re-trimmed after every turn: it remembers
/// every count it made, so a re-trim tokenizes only the new messages. Its
/// result is always exactly :func:`trim` on the same messages.
#[pyclass(module = "sluice")]
struct Conversation {
    inner: sluice_core::Conversation,
    /// The caller's message objects, parallel to `inner.messages()`.
    items: Vec<Py<PyAny>>,
}

#[pymethods]
impl Conversation {
    #[new]
    #[pyo3(signature = (messages = None, model = None, *, full_report = false))]
    fn new(
        py: Python<'_>,
        messages: Option<&Bound<'_, PyAny>>,
        model: Option<&Bound<'_, PyAny>>,
        full_report: bool,
    ) -> PyResult<Self> {
        let model = model_or_default(py, model)?;
        let mut this = Self {
            inner: model.conversation().full_report(full_report),
            items: Vec::new(),
        };
        if let Some(messages) = messages {
            this.extend(messages)?;
        }
        Ok(this)
    }

    /// Appends one message (a dict with ``role`` and ``content``).
    fn append(&mut self, message: &Bound<'_, PyAny>) -> PyResult<()> {
        let parsed = messages::message(message, self.items.len()).or_raise(message.py())?;
        self.inner.push(parsed);
        self.items.push(message.clone().unbind());
        Ok(())
    }

    /// Appends every message of ``messages``; none is added if one is invalid.
    fn extend(&mut self, messages: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = messages.py();
        let items = messages::items(messages).or_raise(py)?;
        let parsed: Vec<Message> = items
            .iter()
            .enumerate()
            .map(|(i, item)| messages::message(item, self.items.len() + i))
            .collect::<Result<_, _>>()
            .or_raise(py)?;
        self.inner.extend(parsed);
        self.items.extend(items.into_iter().map(Bound::unbind));
        Ok(())
    }

    /// Removes the newest message and returns it.
    fn pop(&mut self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.inner.pop();
        self.items
            .pop()
            .ok_or_else(|| {
                pyo3::exceptions::PyIndexError::new_err("pop from an empty conversation")
            })
            .map(|item| item.clone_ref(py))
    }

    /// The messages held, as given.
    #[getter]
    fn messages<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, self.items.iter().map(|i| i.bind(py)))
    }

    fn __len__(&self) -> usize {
        self.items.len()
    }

    /// Trims the conversation for ``max_tokens``, as :func:`trim` does on the
    /// same messages. With ``forget_dropped``, the messages it drops are
    /// forgotten afterwards, so a long conversation holds only what it sends.
    #[pyo3(signature = (max_tokens = 100, *, forget_dropped = false))]
    fn trim<'py>(
        &mut self,
        py: Python<'py>,
        max_tokens: i64,
        forget_dropped: bool,
    ) -> PyResult<Bound<'py, PyDict>> {
        let inner = &mut self.inner;
        let trim = py.detach(|| inner.trim(max_tokens)).or_raise(py)?;
        let items: Vec<Bound<'py, PyAny>> = self.items.iter().map(|i| i.bind(py).clone()).collect();
        let out = messages::trimmed(py, &items, &trim)?;
        if forget_dropped {
            let mut i = 0;
            let held = self.inner.messages();
            self.items.retain(|_| {
                i += 1;
                trim.is_kept(i - 1, held)
            });
            self.inner.forget_dropped(&trim);
        }
        Ok(out)
    }
}

/// A rule-based router version: puts a query into a domain and runs that
/// domain's content filters and the safety filters, answering in the router
/// API's shape.
///
/// ``Router()`` is the sample router built into sluice; ``directory`` is a folder
/// of routers laid out as ``DIR/ROUTER-ID/VERSION.toml``; ``version`` defaults to
/// the highest one.
#[pyclass(frozen, module = "sluice")]
struct Router {
    inner: Arc<sluice_router::Router>,
    /// The folder it was loaded from (`None`: the embedded sample), to pickle it.
    directory: Option<PathBuf>,
}

#[pymethods]
impl Router {
    #[new]
    #[pyo3(signature = (router_id = "sample", version = None, *, directory = None))]
    fn new(
        py: Python<'_>,
        router_id: &str,
        version: Option<u32>,
        directory: Option<PathBuf>,
    ) -> PyResult<Self> {
        let store = match &directory {
            None => RouterStore::embedded_sample(),
            Some(dir) => py
                .detach(|| RouterStore::load_dir(dir))
                .map_err(|e| LineError::new(e.code(), e.to_string()))
                .or_raise(py)?,
        };
        let inner = match version {
            Some(v) => store
                .get(router_id, v)
                .map_err(|e| LineError::new(e.code(), e.to_string())),
            None => store
                .latest(router_id)
                .ok_or_else(|| LineError::new("40400", format!("router not found: {router_id}"))),
        }
        .or_raise(py)?;
        Ok(Self { inner, directory })
    }

    /// The router's id.
    #[getter]
    fn id(&self) -> &str {
        self.inner.id()
    }

    /// The router's version.
    #[getter]
    fn version(&self) -> u32 {
        self.inner.version()
    }

    /// The domain names, in the file's order.
    #[getter]
    fn domains(&self) -> Vec<String> {
        self.inner.domains().map(str::to_string).collect()
    }

    /// Routes ``query`` (with earlier messages ``chat_history``: dicts, or plain
    /// strings for user turns) and returns the router API's ``result`` object;
    /// ``explain`` adds ``explanation`` (per-domain scores, the runner-up, every
    /// rule that fired with its span).
    #[pyo3(signature = (query, chat_history = None, *, explain = false))]
    fn route<'py>(
        &self,
        py: Python<'py>,
        query: String,
        chat_history: Option<&Bound<'py, PyAny>>,
        explain: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let mut request = RouteRequest::new(query);
        if let Some(history) = chat_history {
            let items = messages::items(history).or_raise(py)?;
            for (i, item) in items.iter().enumerate() {
                let message = match item.extract::<String>() {
                    Ok(text) => Message::user(text),
                    Err(_) => messages::message(item, i).or_raise(py)?,
                };
                request.chat_history.push(message);
            }
        }
        let routed = py
            .detach(|| self.inner.route_explained(&request))
            .or_raise(py)?;
        let out = sluice_pipeline::route::Output {
            id: None,
            result: &routed.result,
            explanation: explain.then_some(&routed.explanation),
        };
        pythonize::pythonize(py, &out).map_err(PyErr::from)
    }

    fn __repr__(&self) -> String {
        format!("Router({:?}, {})", self.inner.id(), self.inner.version())
    }

    /// Pickling: a router is reloaded by id and version from where it came from
    /// (which the unpickling process must be able to read).
    fn __getnewargs_ex__<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<((String, u32), Bound<'py, PyDict>)> {
        let kwargs = PyDict::new(py);
        kwargs.set_item("directory", &self.directory)?;
        Ok(((self.inner.id().to_string(), self.inner.version()), kwargs))
    }
}

impl Router {
    /// The compiled router.
    fn router(&self) -> &sluice_router::Router {
        &self.inner
    }
}

/// The extension module.
#[pymodule]
fn _sluice(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Model>()?;
    m.add_class::<Conversation>()?;
    m.add_class::<Router>()?;
    m.add_function(wrap_pyfunction!(count, m)?)?;
    m.add_function(wrap_pyfunction!(trim, m)?)?;
    arrow::register(m)?;
    m.add("COUNTS_PER_THREAD", COUNTS_PER_THREAD)?;
    Ok(())
}
