//! Integer conversions at the boundary. The exported API uses only signed integers (`i32`,
//! `i64`): Java has no unsigned types, so Kotlin's `UInt`/`ULong` would be unusable from Java
//! callers. Inputs are checked here (a negative count, size, interval or length is
//! `InvalidArgument` naming the field, never a panic); outputs saturate at the signed maximum,
//! which no real count reaches.

use crate::error::SmolVlmError;

/// `value` as a `u32`, or `InvalidArgument` naming `field` when it is negative.
pub(crate) fn non_negative(value: i32, field: &str) -> Result<u32, SmolVlmError> {
    u32::try_from(value).map_err(|_| negative(field, value.into()))
}

/// `value` as a `u64`, or `InvalidArgument` naming `field` when it is negative.
pub(crate) fn non_negative_64(value: i64, field: &str) -> Result<u64, SmolVlmError> {
    u64::try_from(value).map_err(|_| negative(field, value))
}

/// [`non_negative`] for an optional field (`None` stays `None`).
pub(crate) fn non_negative_opt(value: Option<i32>, field: &str) -> Result<Option<u32>, SmolVlmError> {
    value.map(|v| non_negative(v, field)).transpose()
}

fn negative(field: &str, value: i64) -> SmolVlmError {
    SmolVlmError::invalid_argument(format!("{field} must not be negative, got {value}"))
}

/// An unsigned count as an `i32`, `i32::MAX` if it does not fit.
pub(crate) fn saturating_i32(value: impl TryInto<i32>) -> i32 {
    value.try_into().unwrap_or(i32::MAX)
}

/// An unsigned count as an `i64`, `i64::MAX` if it does not fit.
pub(crate) fn saturating_i64(value: impl TryInto<i64>) -> i64 {
    value.try_into().unwrap_or(i64::MAX)
}
