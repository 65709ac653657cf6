//! Integer fields that also accept integral JSON floats (`68.0`): JSON Schema counts `68.0`
//! as an integer, so clients (and generators such as schemathesis) may send it. `68.5` and
//! out-of-range values are still refused.

use serde::{Deserialize, Deserializer, de::Error};

fn whole<'de, D: Deserializer<'de>, T: TryFrom<i128>>(
    n: serde_json::Number,
) -> Result<T, D::Error> {
    let value: i128 = if let Some(i) = n.as_i64() {
        i.into()
    } else if let Some(u) = n.as_u64() {
        u.into()
    } else {
        let f = n.as_f64().unwrap_or(f64::NAN);
        if f.fract() != 0.0 || !f.is_finite() || f.abs() > 9.0e18 {
            return Err(D::Error::custom(format!("must be a whole number, got {n}")));
        }
        f as i128
    };
    // Worded to follow the field's name (`parse_json` puts it first).
    T::try_from(value).map_err(|_| {
        D::Error::custom(if value < 0 {
            format!("must not be negative, got {n}")
        } else {
            format!("is too large, got {n}")
        })
    })
}

/// `u64`, required.
pub(crate) fn u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    whole::<D, u64>(serde_json::Number::deserialize(d)?)
}

/// `Option<u64>`.
pub(crate) fn opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Option::<serde_json::Number>::deserialize(d)?
        .map(whole::<D, u64>)
        .transpose()
}

/// `Option<i64>`.
pub(crate) fn opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Option::<serde_json::Number>::deserialize(d)?
        .map(whole::<D, i64>)
        .transpose()
}

/// `Option<Option<i64>>`: absent `None`, `null` `Some(None)` (use with `#[serde(default)]`).
pub(crate) fn opt_opt_i64<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<i64>>, D::Error> {
    opt_i64(d).map(Some)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    #[derive(serde::Deserialize)]
    struct T {
        #[serde(default, deserialize_with = "super::opt_u64")]
        n: Option<u64>,
    }

    fn n(json: &str) -> Result<Option<u64>, String> {
        serde_json::from_str::<T>(json)
            .map(|t| t.n)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn integral_floats_pass_others_do_not() {
        assert_eq!(n(r#"{"n": 68}"#).unwrap(), Some(68));
        assert_eq!(n(r#"{"n": 68.0}"#).unwrap(), Some(68));
        assert_eq!(n(r#"{}"#).unwrap(), None);
        assert_eq!(n(r#"{"n": null}"#).unwrap(), None);
        assert!(n(r#"{"n": 68.5}"#).is_err());
        assert!(n(r#"{"n": -1}"#).is_err());
        assert!(n(r#"{"n": "68"}"#).is_err());
        assert!(n(r#"{"n": 1e300}"#).is_err());
    }
}
