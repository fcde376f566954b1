//! The Python binding of modelkin-core: converts arguments, releases the GIL around every long
//! call, maps errors to the `modelkin.errors` hierarchy. No statistics live here.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use modelkin_core::engine::{Job, Summary};
use modelkin_core::format::gguf::{Array, Value};
use modelkin_core::stats::Moments;
use modelkin_core::stats::{PairStats, ValueStats};
use modelkin_core::tensor::Source;
use modelkin_core::{Checkpoint, DType, Error, Options, PairSpec, Progress};
use modelkin_core::{Mismatch, PairRecord, TensorRecord};
use numpy::{PyArray1, PyArrayMethods, PyReadonlyArray1};
use pyo3::exceptions::{PyFileNotFoundError, PyKeyboardInterrupt, PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

/// Builds the Python exception for a core error: a class of `modelkin.errors`, or a built-in one
/// where Python has a fitting one (`FileNotFoundError`, `ValueError`).
fn to_pyerr(py: Python<'_>, e: Error) -> PyErr {
    let msg = e.to_string();
    let class = match &e {
        Error::NotFound { path } => {
            return PyFileNotFoundError::new_err((
                2,
                "No such file or directory",
                path.display().to_string(),
            ))
        }
        Error::Io { .. } => return PyOSError::new_err(msg),
        Error::InvalidArgument(_) => return PyValueError::new_err(msg),
        Error::Cancelled => return PyKeyboardInterrupt::new_err(msg),
        Error::UnsupportedFormat { .. } => "UnsupportedFormatError",
        Error::InvalidHeader { .. } | Error::InvalidFile { .. } | Error::InvalidTensor { .. } => {
            "InvalidCheckpointError"
        }
        Error::UnknownDtype { .. } => "UnknownDtypeError",
        Error::InvalidIndex { .. } => "InvalidIndexError",
        Error::MissingShard { .. } => "MissingShardError",
        Error::Changed { .. } => "CheckpointChangedError",
    };
    let class = py.import("modelkin.errors").and_then(|m| m.getattr(class));
    let made = match &e {
        // Also a FileNotFoundError: give it the errno and file name OSError carries.
        Error::MissingShard { path, .. } => {
            class.and_then(|c| c.call1((2, msg, path.display().to_string())))
        }
        _ => class.and_then(|c| c.call1((msg,))),
    };
    match made {
        Ok(exc) => PyErr::from_value(exc),
        Err(err) => err,
    }
}

fn internal_error(py: Python<'_>, payload: Box<dyn std::any::Any + Send>) -> PyErr {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    let msg = format!("internal error in modelkin (please report it): {what}");
    match py
        .import("modelkin.errors")
        .and_then(|m| m.getattr("ModelkinError"))
        .and_then(|c| c.call1((msg,)))
    {
        Ok(exc) => PyErr::from_value(exc),
        Err(err) => err,
    }
}

/// Runs `work` on a worker thread with the GIL released. Meanwhile this thread wakes every 100 ms
/// to let Python handle Ctrl-C and to call `progress(done_bytes, total_bytes)`; either one failing
/// cancels the run. A panic in the core becomes a `ModelkinError`, never a crash.
fn enter<T: Send>(
    py: Python<'_>,
    progress: Option<&Bound<'_, PyAny>>,
    work: impl FnOnce(&Progress) -> modelkin_core::Result<T> + Send,
) -> PyResult<T> {
    let state = Progress::default();
    let finished = AtomicBool::new(false);
    let mut interrupt: Option<PyErr> = None;
    let caller = std::thread::current();
    let outcome = std::thread::scope(|s| {
        let handle = s.spawn(|| {
            let r = catch_unwind(AssertUnwindSafe(|| work(&state)));
            finished.store(true, Ordering::Release);
            caller.unpark();
            r
        });
        let report = |interrupt: &mut Option<PyErr>| {
            if let Some(cb) = progress {
                let done = state.done.load(Ordering::Relaxed);
                let total = state.total.load(Ordering::Relaxed);
                if let Err(e) = cb.call1((done, total)) {
                    state.cancel.store(true, Ordering::Relaxed);
                    interrupt.get_or_insert(e);
                }
            }
        };
        while !finished.load(Ordering::Acquire) {
            py.detach(|| {
                if !finished.load(Ordering::Acquire) {
                    std::thread::park_timeout(Duration::from_millis(100));
                }
            });
            if let Err(e) = py.check_signals() {
                state.cancel.store(true, Ordering::Relaxed);
                interrupt.get_or_insert(e);
            }
            if !finished.load(Ordering::Acquire) {
                report(&mut interrupt);
            }
        }
        let joined = handle.join();
        if interrupt.is_none() {
            report(&mut interrupt);
        }
        joined
    });
    match outcome {
        Ok(Ok(Ok(value))) => match interrupt {
            Some(e) => Err(e),
            None => Ok(value),
        },
        Ok(Ok(Err(Error::Cancelled))) => {
            Err(interrupt.unwrap_or_else(|| PyKeyboardInterrupt::new_err("cancelled")))
        }
        Ok(Ok(Err(e))) => Err(to_pyerr(py, e)),
        Ok(Err(panic)) | Err(panic) => Err(internal_error(py, panic)),
    }
}

fn options(threads: Option<usize>, sample_size: usize) -> Options {
    Options {
        threads,
        sample_size,
        ..Options::default()
    }
}

fn open_ck(path: &str) -> modelkin_core::Result<Checkpoint> {
    Checkpoint::open(path)
}

fn moments_dict<'py>(py: Python<'py>, m: &Moments) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("n", m.n)?;
    d.set_item("mean", m.mean)?;
    d.set_item("m2", m.m2)?;
    d.set_item("m3", m.m3)?;
    d.set_item("m4", m.m4)?;
    Ok(d)
}

fn values_dict<'py>(py: Python<'py>, v: &ValueStats) -> PyResult<Bound<'py, PyDict>> {
    let d = moments_dict(py, &v.moments)?;
    d.set_item("count", v.count)?;
    d.set_item("min", v.min)?;
    d.set_item("max", v.max)?;
    d.set_item("nan", v.nan)?;
    d.set_item("pos_inf", v.pos_inf)?;
    d.set_item("neg_inf", v.neg_inf)?;
    Ok(d)
}

fn pair_dict<'py>(
    py: Python<'py>,
    p: &PairStats,
    sample_a: Vec<f64>,
    sample_b: Vec<f64>,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("a", values_dict(py, &p.a)?)?;
    d.set_item("b", values_dict(py, &p.b)?)?;
    d.set_item("d", moments_dict(py, &p.d)?)?;
    d.set_item("a_on_pair", moments_dict(py, &p.a_on_pair)?)?;
    d.set_item("b_on_pair", moments_dict(py, &p.b_on_pair)?)?;
    d.set_item("c_da", p.da.c)?;
    d.set_item("c_ab", p.ab.c)?;
    d.set_item("d_min", p.d_min)?;
    d.set_item("d_max", p.d_max)?;
    d.set_item("max_abs_d", p.max_abs_d())?;
    d.set_item("equal", p.equal)?;
    d.set_item("sample_a", PyArray1::from_vec(py, sample_a))?;
    d.set_item("sample_b", PyArray1::from_vec(py, sample_b))?;
    Ok(d)
}

fn record_dict<'py>(py: Python<'py>, r: &TensorRecord) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("name", &r.name)?;
    d.set_item("dtype", r.dtype.name())?;
    d.set_item("shape", r.shape.clone())?;
    d.set_item("stats", values_dict(py, &r.stats)?)?;
    d.set_item("sample", PyArray1::from_slice(py, &r.sample))?;
    Ok(d)
}

fn pair_record_dict<'py>(
    py: Python<'py>,
    r: PairRecord,
    sample_size: usize,
) -> PyResult<Bound<'py, PyDict>> {
    let numel: u64 = r.shape.iter().product();
    let positions = modelkin_core::stats::sample::sample_positions(numel, sample_size);
    let aligned = positions.len() == r.sample_a.len();
    let d = pair_dict(py, &r.stats, r.sample_a, r.sample_b)?;
    d.set_item("name", &r.name)?;
    d.set_item("name_b", &r.name_b)?;
    if aligned {
        d.set_item("positions", PyArray1::from_vec(py, positions))?;
    }
    if let Some(m) = r.margins {
        let md = PyDict::new(py);
        md.set_item("rows_a", PyArray1::from_vec(py, m.rows_a))?;
        md.set_item("rows_b", PyArray1::from_vec(py, m.rows_b))?;
        md.set_item("cols_a", PyArray1::from_vec(py, m.cols_a))?;
        md.set_item("cols_b", PyArray1::from_vec(py, m.cols_b))?;
        d.set_item("margins", md)?;
    }
    d.set_item("shape", r.shape)?;
    d.set_item("dtype_a", r.dtype_a.name())?;
    d.set_item("dtype_b", r.dtype_b.name())?;
    Ok(d)
}

fn checkpoint_dict<'py>(py: Python<'py>, ck: &Checkpoint) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("path", ck.path.display().to_string())?;
    d.set_item("format", ck.format)?;
    let files = PyList::empty(py);
    for f in &ck.files {
        let fd = PyDict::new(py);
        fd.set_item("path", f.path.display().to_string())?;
        fd.set_item("size", f.size)?;
        fd.set_item("n_tensors", f.n_tensors)?;
        fd.set_item("metadata", f.metadata.clone())?;
        files.append(fd)?;
    }
    d.set_item("files", files)?;
    let tensors = PyList::empty(py);
    for t in &ck.tensors {
        let td = PyDict::new(py);
        td.set_item("name", &t.info.name)?;
        td.set_item("dtype", t.info.dtype.name())?;
        td.set_item("shape", t.info.shape.clone())?;
        td.set_item("file", t.file)?;
        td.set_item("offset", t.info.offset)?;
        td.set_item("nbytes", t.info.nbytes)?;
        tensors.append(td)?;
    }
    d.set_item("tensors", tensors)?;
    Ok(d)
}

/// A checkpoint's description and one record per tensor.
fn tensors_dict<'py>(
    py: Python<'py>,
    ck: &Checkpoint,
    records: &[TensorRecord],
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("checkpoint", checkpoint_dict(py, ck)?)?;
    let list = PyList::empty(py);
    for r in records {
        list.append(record_dict(py, r)?)?;
    }
    d.set_item("tensors", list)?;
    Ok(d)
}

/// Opens and validates a checkpoint (safetensors, PyTorch zip, .npy/.npz, index or folder); returns
/// its format, files and tensor table (no tensor data is read, no pickle is executed).
#[pyfunction]
fn open_checkpoint<'py>(py: Python<'py>, path: &str) -> PyResult<Bound<'py, PyDict>> {
    let ck = enter(py, None, |_| open_ck(path))?;
    checkpoint_dict(py, &ck)
}

fn gguf_value<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::U8(x) => x.into_pyobject(py)?.into_any(),
        Value::I8(x) => x.into_pyobject(py)?.into_any(),
        Value::U16(x) => x.into_pyobject(py)?.into_any(),
        Value::I16(x) => x.into_pyobject(py)?.into_any(),
        Value::U32(x) => x.into_pyobject(py)?.into_any(),
        Value::I32(x) => x.into_pyobject(py)?.into_any(),
        Value::U64(x) => x.into_pyobject(py)?.into_any(),
        Value::I64(x) => x.into_pyobject(py)?.into_any(),
        Value::F32(x) => x.into_pyobject(py)?.into_any(),
        Value::F64(x) => x.into_pyobject(py)?.into_any(),
        Value::Bool(x) => x.into_pyobject(py)?.to_owned().into_any(),
        Value::Str(x) => x.into_pyobject(py)?.into_any(),
        Value::Array(a) => gguf_array(py, a)?.into_any(),
    })
}

fn gguf_array<'py>(py: Python<'py>, a: &Array) -> PyResult<Bound<'py, PyList>> {
    match a {
        Array::U8(v) => PyList::new(py, v),
        Array::I8(v) => PyList::new(py, v),
        Array::U16(v) => PyList::new(py, v),
        Array::I16(v) => PyList::new(py, v),
        Array::U32(v) => PyList::new(py, v),
        Array::I32(v) => PyList::new(py, v),
        Array::U64(v) => PyList::new(py, v),
        Array::I64(v) => PyList::new(py, v),
        Array::F32(v) => PyList::new(py, v),
        Array::F64(v) => PyList::new(py, v),
        Array::Bool(v) => PyList::new(py, v),
        Array::Str(v) => PyList::new(py, v),
        Array::Array(v) => {
            let l = PyList::empty(py);
            for x in v {
                l.append(gguf_array(py, x)?)?;
            }
            Ok(l)
        }
        // `gguf_metadata` reads with every array kept; nothing is skipped there.
        Array::Skipped { .. } => Ok(PyList::empty(py)),
    }
}

/// The key/value metadata of a GGUF checkpoint (a `.gguf` file or a folder holding one), with
/// Python types: int, float, bool, str, and lists for arrays (nested where they nest). `None` when
/// the checkpoint is not a GGUF file.
#[pyfunction]
fn gguf_metadata<'py>(py: Python<'py>, path: &str) -> PyResult<Option<Bound<'py, PyDict>>> {
    let kv = enter(py, None, |_| open_ck(path)?.gguf_metadata())?;
    let Some(kv) = kv else {
        return Ok(None);
    };
    let d = PyDict::new(py);
    for (k, v) in &kv {
        d.set_item(k, gguf_value(py, v)?)?;
    }
    Ok(Some(d))
}

/// Streams one checkpoint; returns its summary and per-tensor statistics and sampled values.
#[pyfunction]
#[pyo3(signature = (path, threads=None, progress=None, sample_size=0))]
fn inspect<'py>(
    py: Python<'py>,
    path: &str,
    threads: Option<usize>,
    progress: Option<&Bound<'py, PyAny>>,
    sample_size: usize,
) -> PyResult<Bound<'py, PyDict>> {
    let opts = options(threads, sample_size);
    let (ck, records) = enter(py, progress, |p| {
        let ck = open_ck(path)?;
        let records = modelkin_core::inspect(&ck, &opts, p)?;
        Ok((ck, records))
    })?;
    tensors_dict(py, &ck, &records)
}

/// Streams two checkpoints once and compares same-named tensors.
#[pyfunction]
#[pyo3(signature = (a, b, threads=None, progress=None, sample_size=4096))]
fn diff<'py>(
    py: Python<'py>,
    a: &str,
    b: &str,
    threads: Option<usize>,
    progress: Option<&Bound<'py, PyAny>>,
    sample_size: usize,
) -> PyResult<Bound<'py, PyDict>> {
    let opts = options(threads, sample_size);
    let (ca, cb, report) = enter(py, progress, |p| {
        let ca = open_ck(a)?;
        let cb = open_ck(b)?;
        let report = modelkin_core::diff(&ca, &cb, &opts, p)?;
        Ok((ca, cb, report))
    })?;
    let d = PyDict::new(py);
    d.set_item("a", checkpoint_dict(py, &ca)?)?;
    d.set_item("b", checkpoint_dict(py, &cb)?)?;
    let pairs = PyList::empty(py);
    for r in report.pairs {
        pairs.append(pair_record_dict(py, r, sample_size)?)?;
    }
    d.set_item("pairs", pairs)?;
    d.set_item(
        "total",
        pair_dict(py, &report.total, Vec::new(), Vec::new())?,
    )?;
    let records = |rs: &[TensorRecord]| -> PyResult<Bound<'py, PyList>> {
        let l = PyList::empty(py);
        for r in rs {
            l.append(record_dict(py, r)?)?;
        }
        Ok(l)
    };
    d.set_item("only_a", records(&report.only_a)?)?;
    d.set_item("only_b", records(&report.only_b)?)?;
    let mism = PyList::empty(py);
    for Mismatch { a, b } in &report.shape_mismatch {
        let m = PyDict::new(py);
        m.set_item("a", record_dict(py, a)?)?;
        m.set_item("b", record_dict(py, b)?)?;
        mism.append(m)?;
    }
    d.set_item("shape_mismatch", mism)?;
    Ok(d)
}

fn dtype(name: &str) -> PyResult<DType> {
    DType::parse(name).ok_or_else(|| PyValueError::new_err(format!("unknown dtype '{name}'")))
}

/// Pair statistics of two equal-length byte buffers holding `a_dtype` and `b_dtype` elements.
#[pyfunction]
#[pyo3(signature = (a, a_dtype, b, b_dtype, threads=None, sample_size=4096))]
fn pair_stats<'py>(
    py: Python<'py>,
    a: PyReadonlyArray1<'py, u8>,
    a_dtype: &str,
    b: PyReadonlyArray1<'py, u8>,
    b_dtype: &str,
    threads: Option<usize>,
    sample_size: usize,
) -> PyResult<Bound<'py, PyDict>> {
    let (da, db) = (dtype(a_dtype)?, dtype(b_dtype)?);
    let (xa, xb) = (a.as_slice()?, b.as_slice()?);
    for (x, d) in [(xa, da), (xb, db)] {
        if x.len() % d.size() != 0 {
            return Err(PyValueError::new_err(format!(
                "{} bytes is not a whole number of {d} elements",
                x.len()
            )));
        }
    }
    if xa.len() / da.size() != xb.len() / db.size() {
        return Err(PyValueError::new_err(format!(
            "the arrays hold {} and {} elements",
            xa.len() / da.size(),
            xb.len() / db.size()
        )));
    }
    let opts = options(threads, sample_size);
    let job = Job::Pair(Source::plain(xa, da), Source::plain(xb, db));
    let out = enter(py, None, |p| modelkin_core::engine::run(&[job], &opts, p))?;
    match out.into_iter().next() {
        Some(Summary::Pair {
            stats,
            sample_a,
            sample_b,
            ..
        }) => pair_dict(py, &stats, sample_a, sample_b),
        _ => Err(PyValueError::new_err("no result")),
    }
}

/// Streams the listed pairs — (name in A, name in B, rows or None, first row of A, first row of
/// B, B transposed) — and the listed single tensors of each side in one pass.
#[pyfunction]
#[pyo3(signature = (a, b, pairs, singles_a=Vec::new(), singles_b=Vec::new(), threads=None, progress=None, sample_size=4096))]
#[allow(clippy::too_many_arguments)]
fn diff_pairs<'py>(
    py: Python<'py>,
    a: &str,
    b: &str,
    pairs: Vec<(String, String, Option<u64>, u64, u64, bool)>,
    singles_a: Vec<String>,
    singles_b: Vec<String>,
    threads: Option<usize>,
    progress: Option<&Bound<'py, PyAny>>,
    sample_size: usize,
) -> PyResult<Bound<'py, PyDict>> {
    let opts = Options {
        margins: true,
        ..options(threads, sample_size)
    };
    let specs: Vec<PairSpec> = pairs
        .into_iter()
        .map(|(a, b, rows, first_a, first_b, transpose_b)| PairSpec {
            a,
            b,
            rows,
            first_a,
            first_b,
            transpose_b,
        })
        .collect();
    let (ca, cb, report) = enter(py, progress, |p| {
        let ca = open_ck(a)?;
        let cb = open_ck(b)?;
        let report = modelkin_core::diff_pairs(&ca, &cb, &specs, &singles_a, &singles_b, &opts, p)?;
        Ok((ca, cb, report))
    })?;
    let d = PyDict::new(py);
    d.set_item("a", checkpoint_dict(py, &ca)?)?;
    d.set_item("b", checkpoint_dict(py, &cb)?)?;
    d.set_item(
        "total",
        pair_dict(py, &report.total, Vec::new(), Vec::new())?,
    )?;
    let list = PyList::empty(py);
    for r in report.pairs {
        list.append(pair_record_dict(py, r, sample_size)?)?;
    }
    d.set_item("pairs", list)?;
    for (key, records) in [
        ("singles_a", &report.singles_a),
        ("singles_b", &report.singles_b),
    ] {
        let l = PyList::empty(py);
        for r in records {
            l.append(record_dict(py, r)?)?;
        }
        d.set_item(key, l)?;
    }
    Ok(d)
}

/// Reads only the values at the sample positions of every tensor: a cheap sketch for alignment.
#[pyfunction]
#[pyo3(signature = (path, threads=None, sample_size=4096))]
fn sample_values<'py>(
    py: Python<'py>,
    path: &str,
    threads: Option<usize>,
    sample_size: usize,
) -> PyResult<Bound<'py, PyDict>> {
    let opts = options(threads, sample_size);
    let (ck, records) = enter(py, None, |p| {
        let ck = open_ck(path)?;
        let records = modelkin_core::sample_values(&ck, &opts, p)?;
        Ok((ck, records))
    })?;
    tensors_dict(py, &ck, &records)
}

/// Streams one checkpoint once and returns what a fingerprint keeps of every tensor: statistics,
/// sampled values, content digest (hex) and, for matrices, the row and column means at the sampled
/// positions and the sorted row and column L2 norms at `quantiles` levels.
#[pyfunction]
#[pyo3(signature = (path, threads=None, progress=None, sample_size=2048, quantiles=128))]
fn fingerprint<'py>(
    py: Python<'py>,
    path: &str,
    threads: Option<usize>,
    progress: Option<&Bound<'py, PyAny>>,
    sample_size: usize,
    quantiles: usize,
) -> PyResult<Bound<'py, PyDict>> {
    let opts = options(threads, sample_size);
    let (ck, records) = enter(py, progress, |p| {
        let ck = open_ck(path)?;
        let records = modelkin_core::fingerprint(&ck, &opts, p, quantiles)?;
        Ok((ck, records))
    })?;
    let d = PyDict::new(py);
    d.set_item("checkpoint", checkpoint_dict(py, &ck)?)?;
    let list = PyList::empty(py);
    for r in records {
        let td = PyDict::new(py);
        td.set_item("name", &r.name)?;
        td.set_item("dtype", r.dtype.name())?;
        td.set_item("shape", r.shape.clone())?;
        td.set_item("stats", values_dict(py, &r.stats)?)?;
        td.set_item("sample", PyArray1::from_vec(py, r.sample))?;
        let hex: String = r.digest.iter().map(|b| format!("{b:02x}")).collect();
        td.set_item("digest", hex)?;
        if let Some(m) = r.matrix {
            td.set_item("row_mean", PyArray1::from_vec(py, m.row_mean))?;
            td.set_item("col_mean", PyArray1::from_vec(py, m.col_mean))?;
            td.set_item("row_norms", PyArray1::from_vec(py, m.row_norms))?;
            td.set_item("col_norms", PyArray1::from_vec(py, m.col_norms))?;
        }
        list.append(td)?;
    }
    d.set_item("tensors", list)?;
    Ok(d)
}

/// The values at columns `cols` of every row of each named matrix (rows × len(cols) arrays).
#[pyfunction]
#[pyo3(signature = (path, names, cols, threads=None))]
fn columns<'py>(
    py: Python<'py>,
    path: &str,
    names: Vec<String>,
    cols: Vec<u64>,
    threads: Option<usize>,
) -> PyResult<Bound<'py, PyDict>> {
    let opts = options(threads, 0);
    let found = enter(py, None, |_| {
        let ck = open_ck(path)?;
        modelkin_core::columns(&ck, &names, &cols, &opts)
    })?;
    let d = PyDict::new(py);
    for c in found {
        let values = PyArray1::from_vec(py, c.values).reshape([c.rows as usize, cols.len()])?;
        d.set_item(c.name, values)?;
    }
    Ok(d)
}

/// The first `k` columns of every row and the first `k` rows of each named matrix.
#[pyfunction]
#[pyo3(signature = (path, names, k=64, threads=None))]
fn heads<'py>(
    py: Python<'py>,
    path: &str,
    names: Vec<String>,
    k: u64,
    threads: Option<usize>,
) -> PyResult<Bound<'py, PyDict>> {
    let opts = options(threads, 0);
    let found = enter(py, None, |_| {
        let ck = open_ck(path)?;
        modelkin_core::heads(&ck, &names, k, &opts)
    })?;
    let d = PyDict::new(py);
    for h in found {
        let rows =
            PyArray1::from_vec(py, h.row_heads).reshape([h.rows as usize, h.k_cols as usize])?;
        let cols =
            PyArray1::from_vec(py, h.col_heads).reshape([h.k_rows as usize, h.cols as usize])?;
        d.set_item(h.name, (rows, cols))?;
    }
    Ok(d)
}

/// Reads every tensor byte of two checkpoints through the engine without statistics (a floor
/// for benchmarks); returns a checksum.
#[pyfunction]
#[pyo3(signature = (a, b, threads=None))]
fn read_pair(py: Python<'_>, a: &str, b: &str, threads: Option<usize>) -> PyResult<u64> {
    let opts = options(threads, 0);
    enter(py, None, |p| {
        let ca = open_ck(a)?;
        let cb = open_ck(b)?;
        modelkin_core::read_pair(&ca, &cb, &opts, p)
    })
}

/// The thread count a call without `threads` uses (`MODELKIN_NUM_THREADS`, else the cores).
#[pyfunction]
fn default_threads() -> PyResult<usize> {
    modelkin_core::engine::resolve_threads(None).map_err(|e| PyValueError::new_err(e.to_string()))
}

/// The native part of modelkin.
#[pymodule]
fn _modelkin(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add(
        "DTYPES",
        DType::ALL.iter().map(|d| d.name()).collect::<Vec<_>>(),
    )?;
    m.add_function(wrap_pyfunction!(open_checkpoint, m)?)?;
    m.add_function(wrap_pyfunction!(gguf_metadata, m)?)?;
    m.add_function(wrap_pyfunction!(inspect, m)?)?;
    m.add_function(wrap_pyfunction!(diff, m)?)?;
    m.add_function(wrap_pyfunction!(diff_pairs, m)?)?;
    m.add_function(wrap_pyfunction!(sample_values, m)?)?;
    m.add_function(wrap_pyfunction!(heads, m)?)?;
    m.add_function(wrap_pyfunction!(fingerprint, m)?)?;
    m.add_function(wrap_pyfunction!(columns, m)?)?;
    m.add_function(wrap_pyfunction!(pair_stats, m)?)?;
    m.add_function(wrap_pyfunction!(read_pair, m)?)?;
    m.add_function(wrap_pyfunction!(default_threads, m)?)?;
    Ok(())
}
