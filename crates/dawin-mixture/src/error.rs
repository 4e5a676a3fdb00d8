//! The crate's error type.

use thiserror::Error;

/// Everything that can go wrong when fitting or evaluating a mixture.
///
/// Every variant names the argument (or the index of the offending value) so that a message
/// printed by the CLI points at the problem.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum MixtureError {
    /// `k = 0` was requested.
    #[error("k = 0: at least one component is required")]
    ZeroComponents,
    /// The input has no samples.
    #[error("{what} is empty: at least one sample is required")]
    Empty {
        /// Which argument was empty (`"values"`, `"rows"`, `"data"`).
        what: &'static str,
    },
    /// Fewer samples than components.
    #[error("n = {n} samples is smaller than k = {k} components")]
    TooFewSamples {
        /// Number of samples.
        n: usize,
        /// Number of components requested.
        k: usize,
    },
    /// A value is NaN or infinite.
    #[error("value at index {index} is {value}")]
    NonFinite {
        /// Index of the value in the input slice (for row-major data: the flat index).
        index: usize,
        /// The value.
        value: f64,
    },
    /// A coefficient lies outside `[0, 1]`.
    #[error("value at index {index} is {value}, outside [0, 1]")]
    OutOfRange {
        /// Index of the value in the input slice (for row-major data: the flat index).
        index: usize,
        /// The value.
        value: f64,
    },
    /// A row of a Dirichlet input does not sum to 1.
    #[error("row {row} sums to {sum}, not 1 (tolerance {tol})")]
    RowSum {
        /// Row index.
        row: usize,
        /// Sum of the row.
        sum: f64,
        /// Tolerance that was exceeded.
        tol: f64,
    },
    /// Row-major data whose length is not a multiple of the row width.
    #[error("{what} has length {len}, not a multiple of the row width {dim}")]
    Shape {
        /// Which argument.
        what: &'static str,
        /// Length of the flat slice.
        len: usize,
        /// Row width (dimension, number of models).
        dim: usize,
    },
    /// Two arguments that must have the same length do not.
    #[error("{what} has length {len}, expected {expected}")]
    Length {
        /// Which argument.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The expected length.
        expected: usize,
    },
    /// A label given to `fit_from_labels` is not below `k`.
    #[error("label at index {index} is {label}, not below k = {k}")]
    Label {
        /// Index of the label.
        index: usize,
        /// The label.
        label: usize,
        /// Number of components.
        k: usize,
    },
    /// A configuration field or a parameter has an invalid value.
    #[error("{name} = {value}: {reason}")]
    Invalid {
        /// Name of the field or argument, e.g. `"tol"` or `"a[2]"`.
        name: String,
        /// The offending value, formatted.
        value: String,
        /// What is required.
        reason: &'static str,
    },
}

/// Shorthand for `Result<T, MixtureError>`.
pub type Result<T> = std::result::Result<T, MixtureError>;

pub(crate) fn invalid(
    name: impl Into<String>,
    value: impl ToString,
    reason: &'static str,
) -> MixtureError {
    MixtureError::Invalid {
        name: name.into(),
        value: value.to_string(),
        reason,
    }
}
