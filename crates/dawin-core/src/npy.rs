//! `.npy` files (NumPy's array format) through the `npyz` crate, so coefficients and logits move
//! to and from NumPy. C-order little-endian `f32`, `f64`, `i64` (and `i32` on reading) arrays.
//! Writes are atomic (temporary file + rename).

use std::io::BufWriter;
use std::path::Path;

use npyz::WriterBuilder;

use crate::error::{Error, Result};

/// An array read from a `.npy` file: row-major data and shape.
#[derive(Clone, Debug, PartialEq)]
pub struct Array<T> {
    /// Row-major (C-order) data.
    pub data: Vec<T>,
    /// Shape.
    pub shape: Vec<usize>,
}

fn fmt_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::Format {
        path: path.to_path_buf(),
        format: "npy",
        reason: reason.into(),
    }
}

fn open(
    path: &Path,
) -> Result<(
    String,
    Vec<usize>,
    npyz::NpyFile<std::io::BufReader<std::fs::File>>,
)> {
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let npy =
        npyz::NpyFile::new(std::io::BufReader::new(f)).map_err(|e| fmt_err(path, e.to_string()))?;
    if npy.order() != npyz::Order::C {
        return Err(fmt_err(
            path,
            "Fortran-order arrays are not supported; save with np.ascontiguousarray",
        ));
    }
    let descr = match npy.dtype() {
        npyz::DType::Plain(ts) => ts.to_string(),
        other => {
            return Err(fmt_err(
                path,
                format!("structured dtype {} is not supported", other.descr()),
            ))
        }
    };
    let shape = npy.shape().iter().map(|&d| d as usize).collect();
    Ok((descr, shape, npy))
}

fn read<T: npyz::Deserialize>(
    path: &Path,
    npy: npyz::NpyFile<std::io::BufReader<std::fs::File>>,
) -> Result<Vec<T>> {
    npy.into_vec::<T>()
        .map_err(|e| fmt_err(path, e.to_string()))
}

/// Reads a floating-point array as `f32` (`<f4` as is, `<f8` and `<f2` converted).
pub fn read_f32(path: impl AsRef<Path>) -> Result<Array<f32>> {
    let path = path.as_ref();
    let (descr, shape, npy) = open(path)?;
    let data = match descr.as_str() {
        "<f4" => read::<f32>(path, npy)?,
        "<f8" => read::<f64>(path, npy)?
            .into_iter()
            .map(|x| x as f32)
            .collect(),
        d => {
            return Err(fmt_err(
                path,
                format!("expected a float32 or float64 array, found dtype {d}"),
            ))
        }
    };
    Ok(Array { data, shape })
}

/// Reads a floating-point array as `f64` (`<f8` as is, `<f4` widened).
pub fn read_f64(path: impl AsRef<Path>) -> Result<Array<f64>> {
    let path = path.as_ref();
    let (descr, shape, npy) = open(path)?;
    let data = match descr.as_str() {
        "<f8" => read::<f64>(path, npy)?,
        "<f4" => read::<f32>(path, npy)?.into_iter().map(f64::from).collect(),
        d => {
            return Err(fmt_err(
                path,
                format!("expected a float32 or float64 array, found dtype {d}"),
            ))
        }
    };
    Ok(Array { data, shape })
}

/// Reads an integer array as `i64` (`<i8` as is, `<i4` widened).
pub fn read_i64(path: impl AsRef<Path>) -> Result<Array<i64>> {
    let path = path.as_ref();
    let (descr, shape, npy) = open(path)?;
    let data = match descr.as_str() {
        "<i8" => read::<i64>(path, npy)?,
        "<i4" => read::<i32>(path, npy)?.into_iter().map(i64::from).collect(),
        d => {
            return Err(fmt_err(
                path,
                format!("expected an int64 or int32 array, found dtype {d}"),
            ))
        }
    };
    Ok(Array { data, shape })
}

fn write<T: npyz::AutoSerialize + Copy>(path: &Path, data: &[T], shape: &[usize]) -> Result<()> {
    if shape.iter().product::<usize>() != data.len() {
        return Err(Error::arg(
            "shape",
            format!(
                "{shape:?} does not hold {} elements (writing {})",
                data.len(),
                path.display()
            ),
        ));
    }
    let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    crate::atomic_write(path, |tmp| {
        let f = std::fs::File::create(tmp)?;
        let mut w = npyz::WriteOptions::new()
            .default_dtype()
            .shape(&shape)
            .writer(BufWriter::new(f))
            .begin_nd()?;
        w.extend(data.iter().copied())?;
        w.finish()
    })
}

/// Writes `f32` data of the given shape (`<f4`).
pub fn write_f32(path: impl AsRef<Path>, data: &[f32], shape: &[usize]) -> Result<()> {
    write(path.as_ref(), data, shape)
}

/// Writes `f64` data of the given shape (`<f8`).
pub fn write_f64(path: impl AsRef<Path>, data: &[f64], shape: &[usize]) -> Result<()> {
    write(path.as_ref(), data, shape)
}

/// Writes `i64` data of the given shape (`<i8`).
pub fn write_i64(path: impl AsRef<Path>, data: &[i64], shape: &[usize]) -> Result<()> {
    write(path.as_ref(), data, shape)
}
