//! The batch functions over Arrow record batches: a binding over
//! [`sluice_pipeline::arrow`], which trims, counts and routes every row on all
//! cores, in row order (a bad row gets an `error` entry while the others go
//! on).
//!
//! Batches cross from and to pyarrow through the Arrow C data interface,
//! without copies, and the work runs with the GIL released.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arrow_array::RecordBatch;
use arrow_pyarrow::PyArrowType;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use sluice_pipeline::arrow::BatchError;
use sluice_pipeline::route::RouteJob;
use sluice_pipeline::{Job, JobKind};

/// Registers the batch functions on the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(trim_batch, m)?)?;
    m.add_function(wrap_pyfunction!(count_batch, m)?)?;
    m.add_function(wrap_pyfunction!(route_batch, m)?)?;
    Ok(())
}

fn value_error(message: impl Into<String>) -> PyErr {
    PyValueError::new_err(message.into())
}

/// Runs `work` on a pool of `threads` threads (kept for later calls), or on the
/// global pool (one thread per core) for `None`.
fn on_threads<T: Send>(threads: Option<usize>, work: impl FnOnce() -> T + Send) -> PyResult<T> {
    static POOLS: Mutex<Option<HashMap<usize, Arc<rayon::ThreadPool>>>> = Mutex::new(None);
    let Some(n) = threads else {
        return Ok(work());
    };
    if n == 0 {
        return Err(value_error("threads must be at least 1"));
    }
    let pool = {
        let mut pools = POOLS.lock().unwrap_or_else(|e| e.into_inner());
        let pools = pools.get_or_insert_with(HashMap::new);
        match pools.get(&n) {
            Some(pool) => Arc::clone(pool),
            None => {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(n)
                    .build()
                    .map_err(|e| value_error(format!("cannot start {n} threads: {e}")))?;
                let pool = Arc::new(pool);
                pools.insert(n, Arc::clone(&pool));
                pool
            }
        }
    };
    Ok(pool.install(work))
}

/// Runs `work` with the GIL released, on `threads`, a batch error as
/// `ValueError`.
fn run(
    py: Python<'_>,
    threads: Option<usize>,
    work: impl FnOnce() -> Result<RecordBatch, BatchError> + Send,
) -> PyResult<PyArrowType<RecordBatch>> {
    py.detach(|| on_threads(threads, work))?
        .map(PyArrowType)
        .map_err(|e| value_error(e.to_string()))
}

/// Trims every row of an Arrow batch (see ``sluice.trim_arrow``).
#[pyfunction]
#[pyo3(signature = (batch, max_tokens, model, full_report, threads))]
fn trim_batch(
    py: Python<'_>,
    batch: PyArrowType<RecordBatch>,
    max_tokens: i64,
    model: &Bound<'_, PyAny>,
    full_report: bool,
    threads: Option<usize>,
) -> PyResult<PyArrowType<RecordBatch>> {
    let (default, profiles) = crate::resolve_with_profiles(model)?;
    let kind = JobKind::Trim {
        max_tokens,
        full_report,
    };
    let job = Job::with_model(&profiles, default, kind);
    run(py, threads, || job.run_batch(&batch.0))
}

/// Counts every row of an Arrow batch (see ``sluice.count_arrow``).
#[pyfunction]
#[pyo3(signature = (batch, model, threads))]
fn count_batch(
    py: Python<'_>,
    batch: PyArrowType<RecordBatch>,
    model: &Bound<'_, PyAny>,
    threads: Option<usize>,
) -> PyResult<PyArrowType<RecordBatch>> {
    let (default, profiles) = crate::resolve_with_profiles(model)?;
    let job = Job::with_model(&profiles, default, JobKind::Count);
    run(py, threads, || job.run_batch(&batch.0))
}

/// Routes every row of an Arrow batch (see ``sluice.route_arrow``).
#[pyfunction]
#[pyo3(signature = (batch, router, threads))]
fn route_batch(
    py: Python<'_>,
    batch: PyArrowType<RecordBatch>,
    router: &Bound<'_, crate::Router>,
    threads: Option<usize>,
) -> PyResult<PyArrowType<RecordBatch>> {
    let router = router.get().router();
    let job = RouteJob::new(router, false);
    run(py, threads, || job.run_batch(&batch.0))
}
