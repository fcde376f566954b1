//! The functions of `modelkin._modelkin`, each in four steps: extract the Python arguments,
//! [`enter`] the core (GIL released), call one analysis of [`modelkin_core::ops`], convert its
//! result ([`convert`]).

use modelkin_core::ops::{self, Options, PairSpec};
use modelkin_core::{Checkpoint, DType, Error};
use numpy::PyReadonlyArray1;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::convert;
use crate::enter::enter;
use crate::errors::to_pyerr;

// The defaults of the signatures below are written as literals, which is what Python's
// `inspect.signature` (and stubtest) read; these keep them equal to the core's.
const _: () = assert!(ops::DEFAULT_QUANTILES == 128);
const _: () = assert!(ops::DEFAULT_SAMPLE == 4096);

/// A thread count from Python. An `int` too large for `usize` is read as the largest `usize`
/// and a negative one as 0, so that the core refuses it with its range ("threads must be at most
/// …") like any other out-of-range count, instead of PyO3 raising `OverflowError`.
pub(crate) struct Count(usize);

impl<'a, 'py> FromPyObject<'a, 'py> for Count {
    type Error = PyErr;

    fn extract(ob: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        match ob.extract::<usize>() {
            Ok(n) => Ok(Count(n)),
            Err(e) if e.is_instance_of::<pyo3::exceptions::PyOverflowError>(ob.py()) => {
                Ok(Count(if ob.lt(0)? { 0 } else { usize::MAX }))
            }
            Err(e) => Err(e),
        }
    }
}

fn options(threads: Option<Count>, sample_size: usize) -> Options {
    Options {
        threads: threads.map(|t| t.0),
        sample_size,
        ..Options::default()
    }
}

fn open_ck(path: &str) -> Result<Checkpoint, Error> {
    Checkpoint::open(path)
}

fn dtype(name: &str) -> PyResult<DType> {
    DType::parse(name).ok_or_else(|| PyValueError::new_err(format!("unknown dtype '{name}'")))
}

/// Opens and validates a checkpoint (safetensors, PyTorch zip, .npy/.npz, index or folder); returns
/// its format, files and tensor table (no tensor data is read, no pickle is executed).
#[pyfunction]
pub(crate) fn open_checkpoint<'py>(py: Python<'py>, path: &str) -> PyResult<Bound<'py, PyDict>> {
    let ck = enter(py, None, |_| open_ck(path))?;
    convert::checkpoint(py, &ck)
}

/// The key/value metadata of a GGUF checkpoint (a `.gguf` file or a folder holding one), with
/// Python types: int, float, bool, str, and lists for arrays (nested where they nest). `None` when
/// the checkpoint is not a GGUF file.
#[pyfunction]
pub(crate) fn gguf_metadata<'py>(
    py: Python<'py>,
    path: &str,
) -> PyResult<Option<Bound<'py, PyDict>>> {
    let kv = enter(py, None, |_| open_ck(path)?.gguf_metadata())?;
    kv.map(|kv| convert::gguf_metadata(py, &kv)).transpose()
}

/// Streams one checkpoint; returns its summary and per-tensor statistics and sampled values.
#[pyfunction]
#[pyo3(signature = (path, threads=None, progress=None, sample_size=0))]
pub(crate) fn inspect<'py>(
    py: Python<'py>,
    path: &str,
    threads: Option<Count>,
    progress: Option<&Bound<'py, PyAny>>,
    sample_size: usize,
) -> PyResult<Bound<'py, PyDict>> {
    let opts = options(threads, sample_size);
    let (ck, records) = enter(py, progress, |p| {
        let ck = open_ck(path)?;
        let records = ops::inspect(&ck, &opts, p)?;
        Ok((ck, records))
    })?;
    convert::tensors(py, &ck, &records)
}

/// Streams two checkpoints once and compares same-named tensors.
#[pyfunction]
#[pyo3(signature = (a, b, threads=None, progress=None, sample_size=4096))]
pub(crate) fn diff<'py>(
    py: Python<'py>,
    a: &str,
    b: &str,
    threads: Option<Count>,
    progress: Option<&Bound<'py, PyAny>>,
    sample_size: usize,
) -> PyResult<Bound<'py, PyDict>> {
    let opts = options(threads, sample_size);
    let (ca, cb, report) = enter(py, progress, |p| {
        let ca = open_ck(a)?;
        let cb = open_ck(b)?;
        let report = ops::diff(&ca, &cb, &opts, p)?;
        Ok((ca, cb, report))
    })?;
    convert::diff_report(py, &ca, &cb, report)
}

/// Pair statistics of two equal-length byte buffers holding `a_dtype` and `b_dtype` elements.
#[pyfunction]
#[pyo3(signature = (a, a_dtype, b, b_dtype, threads=None, sample_size=4096))]
pub(crate) fn pair_stats<'py>(
    py: Python<'py>,
    a: PyReadonlyArray1<'py, u8>,
    a_dtype: &str,
    b: PyReadonlyArray1<'py, u8>,
    b_dtype: &str,
    threads: Option<Count>,
    sample_size: usize,
) -> PyResult<Bound<'py, PyDict>> {
    let (da, db) = (dtype(a_dtype)?, dtype(b_dtype)?);
    let (xa, xb) = (a.as_slice()?, b.as_slice()?);
    let opts = options(threads, sample_size);
    let pair = enter(py, None, |p| ops::pair_stats(xa, da, xb, db, &opts, p))?;
    convert::buffer_pair(py, pair)
}

/// Streams the listed pairs — (name in A, name in B, rows or None, first row of A, first row of
/// B, B transposed) — and the listed single tensors of each side in one pass.
#[pyfunction]
#[pyo3(signature = (a, b, pairs, singles_a=Vec::new(), singles_b=Vec::new(), threads=None, progress=None, sample_size=4096))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn diff_pairs<'py>(
    py: Python<'py>,
    a: &str,
    b: &str,
    pairs: Vec<(String, String, Option<u64>, u64, u64, bool)>,
    singles_a: Vec<String>,
    singles_b: Vec<String>,
    threads: Option<Count>,
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
        let report = ops::diff_pairs(&ca, &cb, &specs, &singles_a, &singles_b, &opts, p)?;
        Ok((ca, cb, report))
    })?;
    convert::pairs_report(py, &ca, &cb, report)
}

/// Reads only the values at the sample positions of every tensor: a cheap sketch for alignment.
#[pyfunction]
#[pyo3(signature = (path, threads=None, sample_size=4096))]
pub(crate) fn sample_values<'py>(
    py: Python<'py>,
    path: &str,
    threads: Option<Count>,
    sample_size: usize,
) -> PyResult<Bound<'py, PyDict>> {
    let opts = options(threads, sample_size);
    let (ck, records) = enter(py, None, |p| {
        let ck = open_ck(path)?;
        let records = ops::sample_values(&ck, &opts, p)?;
        Ok((ck, records))
    })?;
    convert::tensors(py, &ck, &records)
}

/// Streams one checkpoint once and returns what a fingerprint keeps of every tensor: statistics,
/// sampled values, content digest (hex) and, for matrices, the row and column means at the sampled
/// positions and the sorted row and column L2 norms at `quantiles` levels.
#[pyfunction]
#[pyo3(signature = (path, threads=None, progress=None, sample_size=2048, quantiles=128))]
pub(crate) fn fingerprint<'py>(
    py: Python<'py>,
    path: &str,
    threads: Option<Count>,
    progress: Option<&Bound<'py, PyAny>>,
    sample_size: usize,
    quantiles: usize,
) -> PyResult<Bound<'py, PyDict>> {
    let opts = options(threads, sample_size);
    let (ck, records) = enter(py, progress, |p| {
        let ck = open_ck(path)?;
        let records = ops::fingerprint(&ck, &opts, p, quantiles)?;
        Ok((ck, records))
    })?;
    convert::fingerprint(py, &ck, records)
}

/// The values at columns `cols` of every row of each named matrix (rows × len(cols) arrays).
#[pyfunction]
#[pyo3(signature = (path, names, cols, threads=None))]
pub(crate) fn columns<'py>(
    py: Python<'py>,
    path: &str,
    names: Vec<String>,
    cols: Vec<u64>,
    threads: Option<Count>,
) -> PyResult<Bound<'py, PyDict>> {
    let opts = options(threads, 0);
    let found = enter(py, None, |_| {
        let ck = open_ck(path)?;
        ops::columns(&ck, &names, &cols, &opts)
    })?;
    convert::columns(py, found, cols.len())
}

/// The first `k` columns of every row and the first `k` rows of each named matrix.
#[pyfunction]
#[pyo3(signature = (path, names, k=64, threads=None))]
pub(crate) fn heads<'py>(
    py: Python<'py>,
    path: &str,
    names: Vec<String>,
    k: u64,
    threads: Option<Count>,
) -> PyResult<Bound<'py, PyDict>> {
    let opts = options(threads, 0);
    let found = enter(py, None, |_| {
        let ck = open_ck(path)?;
        ops::heads(&ck, &names, k, &opts)
    })?;
    convert::heads(py, found)
}

/// Reads every tensor byte of two checkpoints through the engine without statistics (a floor
/// for benchmarks); returns a checksum.
#[pyfunction]
#[pyo3(signature = (a, b, threads=None))]
pub(crate) fn read_pair(py: Python<'_>, a: &str, b: &str, threads: Option<Count>) -> PyResult<u64> {
    let opts = options(threads, 0);
    enter(py, None, |p| {
        let ca = open_ck(a)?;
        let cb = open_ck(b)?;
        ops::read_pair(&ca, &cb, &opts, p)
    })
}

/// The thread count a call without `threads` uses (`MODELKIN_NUM_THREADS`, else the cores).
#[pyfunction]
pub(crate) fn default_threads(py: Python<'_>) -> PyResult<usize> {
    ops::default_threads().map_err(|e| to_pyerr(py, e))
}
