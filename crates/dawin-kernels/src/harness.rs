//! For GPU test binaries and benches: whether a run without a usable GPU is skipped or fails.
//!
//! Every GPU test harness and bench of the workspace starts its device with [`gpu_or_skip`], so
//! that a GPU session cannot pass without testing anything:
//!
//! * with `DAWIN_REQUIRE_GPU=1` (which `scripts/gpu_session.sh run` sets), a GPU that cannot
//!   start is a failure: the error is printed and the process panics (non-zero exit status);
//! * without it, the run prints a `SKIPPED (cause): …` line that says why the GPU was not used (the
//!   [`StartFailure`]: no driver, no device, driver too old, PTX rejected, other) and what was
//!   not run, and goes on.
//!
//! ```
//! match dawin_kernels::harness::gpu_or_skip("3 GPU tests not run: a, b, c") {
//!     Some(gpu) => println!("testing on {}", gpu.name()),
//!     None => {} // the SKIPPED line is printed; with DAWIN_REQUIRE_GPU=1 this panicked
//! }
//! ```

use crate::device::Gpu;
use crate::error::{Error, StartFailure};

/// The environment variable that makes a GPU mandatory: `1` (or `true`, `yes`) requires it,
/// unset, empty, `0` (or `false`, `no`) does not; any other value is an error (a typo must not
/// silently skip).
pub const REQUIRE_GPU_ENV: &str = "DAWIN_REQUIRE_GPU";

/// What a GPU test or bench does when the GPU does not start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Print a `SKIPPED` line naming the cause and go on.
    Skip,
    /// Fail, printing the error.
    Fail,
}

/// Whether the value of [`REQUIRE_GPU_ENV`] (`None` when unset) requires a GPU.
pub fn gpu_required(value: Option<&str>) -> Result<bool, String> {
    match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        None | Some("" | "0" | "false" | "no") => Ok(false),
        Some("1" | "true" | "yes") => Ok(true),
        Some(other) => Err(format!(
            "{REQUIRE_GPU_ENV}={other:?}: use 1 to require a GPU or 0 (or unset) to allow skipping"
        )),
    }
}

/// The decision for a start-up failure when a GPU is `required` or not: every cause fails when
/// it is required (a broken GPU as much as a missing one), and is skipped otherwise.
pub fn decide(_cause: StartFailure, required: bool) -> Decision {
    if required {
        Decision::Fail
    } else {
        Decision::Skip
    }
}

/// The line printed when a run is skipped: the cause, the error, what was not run, and how to
/// make it a failure.
pub fn skip_line(cause: StartFailure, error: &str, what: &str) -> String {
    let present = if cause.is_gpu_absent() {
        ""
    } else {
        " (a GPU is there: investigate)"
    };
    format!("SKIPPED ({cause}{present}): {error}; {what} [set {REQUIRE_GPU_ENV}=1 to fail instead]")
}

/// The message of a failed run.
pub fn fail_message(cause: StartFailure, error: &str, what: &str) -> String {
    format!("{REQUIRE_GPU_ENV}=1 but the GPU did not start ({cause}): {error}; {what}")
}

/// [`Gpu::new`] for a test harness or bench: the GPU, or `None` after printing the `SKIPPED`
/// line (see the module docs); `what` says what is not run without it. Panics, printing the
/// error, when [`REQUIRE_GPU_ENV`] requires a GPU that does not start, or holds a bad value.
pub fn gpu_or_skip(what: &str) -> Option<Gpu> {
    let result = Gpu::new();
    start_or_skip(result, what)
}

/// [`gpu_or_skip`] for any start-up result (e.g. [`Gpu::with_options`]).
pub fn start_or_skip<T>(result: Result<T, Error>, what: &str) -> Option<T> {
    let required = match gpu_required(std::env::var(REQUIRE_GPU_ENV).ok().as_deref()) {
        Ok(r) => r,
        Err(msg) => panic!("{msg}"),
    };
    match result {
        Ok(g) => Some(g),
        Err(e) => {
            let cause = e.start_failure();
            match decide(cause, required) {
                Decision::Skip => {
                    println!("{}", skip_line(cause, &e.to_string(), what));
                    None
                }
                Decision::Fail => {
                    let msg = fail_message(cause, &e.to_string(), what);
                    println!("FAILED: {msg}");
                    panic!("{msg}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_variable_is_read_strictly() {
        for v in [None, Some(""), Some("0"), Some("false"), Some(" no ")] {
            assert_eq!(gpu_required(v), Ok(false), "{v:?}");
        }
        for v in ["1", "true", "YES"] {
            assert_eq!(gpu_required(Some(v)), Ok(true), "{v}");
        }
        let e = gpu_required(Some("2")).unwrap_err();
        assert!(e.contains(REQUIRE_GPU_ENV) && e.contains("\"2\""), "{e}");
    }

    /// The decision for every cause, with and without the variable: required means fail, for
    /// a missing GPU as much as for a broken one; otherwise skip, with the cause in the line.
    #[test]
    fn required_fails_and_otherwise_the_skip_says_why() {
        use StartFailure::*;
        for cause in [NoDriver, NoDevice, DriverTooOld, PtxRejected, Other] {
            assert_eq!(decide(cause, true), Decision::Fail, "{cause:?}");
            assert_eq!(decide(cause, false), Decision::Skip, "{cause:?}");
            let line = skip_line(cause, "the error text", "3 GPU tests not run: a, b, c");
            assert!(line.starts_with("SKIPPED ("), "{line}");
            for part in [
                cause.describe(),
                "the error text",
                "3 GPU tests not run",
                REQUIRE_GPU_ENV,
            ] {
                assert!(line.contains(part), "{part:?} missing from {line}");
            }
            assert_eq!(line.contains("investigate"), !cause.is_gpu_absent());
            let msg = fail_message(cause, "the error text", "tests");
            assert!(msg.contains("the error text") && msg.contains(cause.describe()));
        }
    }

    /// A real start-up error of this machine goes through the same path: without a GPU (and
    /// without the variable) it is skipped, with the cause named.
    #[test]
    fn no_gpu_here_is_skipped_with_its_cause() {
        let e = Error::NoDevice {
            ordinal: 0,
            reason: "0 CUDA device(s) visible".into(),
        };
        let cause = e.start_failure();
        assert_eq!(decide(cause, false), Decision::Skip);
        let line = skip_line(cause, &e.to_string(), "1 test not run");
        assert!(line.contains("no CUDA device with ordinal 0"), "{line}");
        assert!(!line.contains("investigate"));
    }
}
