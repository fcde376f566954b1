//! Core results as Python values: one function per result type, each building the dict (or list)
//! whose keys `modelkin/_modelkin.pyi` describes. No computation beyond formatting lives here.

use modelkin_core::format::gguf::{Array, Value};
use modelkin_core::{
    BufferPair, Checkpoint, Columns, DiffReport, Heads, Mismatch, Moments, PairRecord, PairStats,
    PairsReport, PrintRecord, TensorRecord, ValueStats,
};
use numpy::{PyArray1, PyArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

/// [`Moments`]: n, mean and the central moment sums.
fn moments<'py>(py: Python<'py>, m: &Moments) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("n", m.n)?;
    d.set_item("mean", m.mean)?;
    d.set_item("m2", m.m2)?;
    d.set_item("m3", m.m3)?;
    d.set_item("m4", m.m4)?;
    Ok(d)
}

/// [`ValueStats`]: the moments, count, extremes and non-finite counts.
fn values<'py>(py: Python<'py>, v: &ValueStats) -> PyResult<Bound<'py, PyDict>> {
    let d = moments(py, &v.moments)?;
    d.set_item("count", v.count)?;
    d.set_item("min", v.min)?;
    d.set_item("max", v.max)?;
    d.set_item("nan", v.nan)?;
    d.set_item("pos_inf", v.pos_inf)?;
    d.set_item("neg_inf", v.neg_inf)?;
    Ok(d)
}

/// [`PairStats`] and the samples of both sides.
fn pair_dict<'py>(
    py: Python<'py>,
    p: &PairStats,
    sample_a: Vec<f64>,
    sample_b: Vec<f64>,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("a", values(py, &p.a)?)?;
    d.set_item("b", values(py, &p.b)?)?;
    d.set_item("d", moments(py, &p.d)?)?;
    d.set_item("a_on_pair", moments(py, &p.a_on_pair)?)?;
    d.set_item("b_on_pair", moments(py, &p.b_on_pair)?)?;
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

/// A [`TensorRecord`].
pub(crate) fn record<'py>(py: Python<'py>, r: &TensorRecord) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("name", &r.name)?;
    d.set_item("dtype", r.dtype.name())?;
    d.set_item("shape", r.shape.clone())?;
    d.set_item("stats", values(py, &r.stats)?)?;
    d.set_item("sample", PyArray1::from_slice(py, &r.sample))?;
    Ok(d)
}

/// A [`PairRecord`]: its pair statistics and samples, names, sample positions (when the samples
/// are at the positions of its shape), margins, shape and dtypes.
pub(crate) fn pair_record<'py>(py: Python<'py>, r: PairRecord) -> PyResult<Bound<'py, PyDict>> {
    let d = pair_dict(py, &r.stats, r.sample_a, r.sample_b)?;
    d.set_item("name", &r.name)?;
    d.set_item("name_b", &r.name_b)?;
    if let Some(positions) = r.positions {
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

/// A [`Checkpoint`]'s description: path, format, files and tensor table.
pub(crate) fn checkpoint<'py>(py: Python<'py>, ck: &Checkpoint) -> PyResult<Bound<'py, PyDict>> {
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
pub(crate) fn tensors<'py>(
    py: Python<'py>,
    ck: &Checkpoint,
    records: &[TensorRecord],
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("checkpoint", checkpoint(py, ck)?)?;
    let list = PyList::empty(py);
    for r in records {
        list.append(record(py, r)?)?;
    }
    d.set_item("tensors", list)?;
    Ok(d)
}

/// One GGUF metadata value as int, float, bool, str or (nested) list.
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

/// A GGUF metadata array as a Python list.
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

/// The GGUF key/value metadata as a dict, in file order.
pub(crate) fn gguf_metadata<'py>(
    py: Python<'py>,
    kv: &[(String, Value)],
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (k, v) in kv {
        d.set_item(k, gguf_value(py, v)?)?;
    }
    Ok(d)
}

/// A list of [`TensorRecord`]s.
fn records<'py>(py: Python<'py>, rs: &[TensorRecord]) -> PyResult<Bound<'py, PyList>> {
    let l = PyList::empty(py);
    for r in rs {
        l.append(record(py, r)?)?;
    }
    Ok(l)
}

/// A [`DiffReport`] of checkpoints `a` and `b`.
pub(crate) fn diff_report<'py>(
    py: Python<'py>,
    a: &Checkpoint,
    b: &Checkpoint,
    report: DiffReport,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("a", checkpoint(py, a)?)?;
    d.set_item("b", checkpoint(py, b)?)?;
    let pairs = PyList::empty(py);
    for r in report.pairs {
        pairs.append(pair_record(py, r)?)?;
    }
    d.set_item("pairs", pairs)?;
    d.set_item(
        "total",
        pair_dict(py, &report.total, Vec::new(), Vec::new())?,
    )?;
    d.set_item("only_a", records(py, &report.only_a)?)?;
    d.set_item("only_b", records(py, &report.only_b)?)?;
    let mism = PyList::empty(py);
    for Mismatch { a, b } in &report.shape_mismatch {
        let m = PyDict::new(py);
        m.set_item("a", record(py, a)?)?;
        m.set_item("b", record(py, b)?)?;
        mism.append(m)?;
    }
    d.set_item("shape_mismatch", mism)?;
    Ok(d)
}

/// A [`PairsReport`] of checkpoints `a` and `b`.
pub(crate) fn pairs_report<'py>(
    py: Python<'py>,
    a: &Checkpoint,
    b: &Checkpoint,
    report: PairsReport,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("a", checkpoint(py, a)?)?;
    d.set_item("b", checkpoint(py, b)?)?;
    d.set_item(
        "total",
        pair_dict(py, &report.total, Vec::new(), Vec::new())?,
    )?;
    let list = PyList::empty(py);
    for r in report.pairs {
        list.append(pair_record(py, r)?)?;
    }
    d.set_item("pairs", list)?;
    d.set_item("singles_a", records(py, &report.singles_a)?)?;
    d.set_item("singles_b", records(py, &report.singles_b)?)?;
    Ok(d)
}

/// A [`BufferPair`]: its pair statistics and samples.
pub(crate) fn buffer_pair<'py>(py: Python<'py>, p: BufferPair) -> PyResult<Bound<'py, PyDict>> {
    pair_dict(py, &p.stats, p.sample_a, p.sample_b)
}

/// A checkpoint's description and a [`PrintRecord`] per tensor, digests in hex.
pub(crate) fn fingerprint<'py>(
    py: Python<'py>,
    ck: &Checkpoint,
    records: Vec<PrintRecord>,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("checkpoint", checkpoint(py, ck)?)?;
    let list = PyList::empty(py);
    for r in records {
        let td = PyDict::new(py);
        td.set_item("name", &r.name)?;
        td.set_item("dtype", r.dtype.name())?;
        td.set_item("shape", r.shape.clone())?;
        td.set_item("stats", values(py, &r.stats)?)?;
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

/// [`Columns`] by tensor name: rows × `n_cols` arrays.
pub(crate) fn columns<'py>(
    py: Python<'py>,
    found: Vec<Columns>,
    n_cols: usize,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for c in found {
        let values = PyArray1::from_vec(py, c.values).reshape([c.rows as usize, n_cols])?;
        d.set_item(c.name, values)?;
    }
    Ok(d)
}

/// [`Heads`] by tensor name: (rows × k, k × columns) array pairs.
pub(crate) fn heads<'py>(py: Python<'py>, found: Vec<Heads>) -> PyResult<Bound<'py, PyDict>> {
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
