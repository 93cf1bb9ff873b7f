//! Small helpers shared across modules.

use crate::error::{Error, Result};
use std::path::Path;

/// Writes a file atomically: to a temp file beside it, fsync, then rename over the target.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let tmp = path
        .with_extension(format!("{}.tmp", path.extension().and_then(|e| e.to_str()).unwrap_or("")));
    let mut f = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    f.write_all(bytes).map_err(|e| Error::io(&tmp, e))?;
    f.sync_all().map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// The current UTC time as `YYYYmmdd-HHMMSS` (for folder names).
pub fn utc_stamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + if month <= 2 { 1 } else { 0 };
    format!("{year:04}{month:02}{day:02}-{:02}{:02}{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Serde for scores that may be ±infinity or NaN (a failed run scores −inf): JSON has no such
/// numbers, so they are written as strings (`"-inf"`) and read back exactly.
pub mod score_serde {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Number(f64),
        Text(String),
        Null(()),
    }

    fn to_repr(x: f64) -> Repr {
        if x.is_finite() {
            Repr::Number(x)
        } else if x.is_nan() {
            Repr::Text("nan".into())
        } else if x > 0.0 {
            Repr::Text("inf".into())
        } else {
            Repr::Text("-inf".into())
        }
    }

    fn from_repr<E: serde::de::Error>(r: Repr) -> Result<f64, E> {
        match r {
            Repr::Number(x) => Ok(x),
            // Older files wrote non-finite scores as null: those were failures.
            Repr::Null(()) => Ok(f64::NEG_INFINITY),
            Repr::Text(t) => match t.as_str() {
                "-inf" => Ok(f64::NEG_INFINITY),
                "inf" => Ok(f64::INFINITY),
                "nan" => Ok(f64::NAN),
                other => Err(E::custom(format!("not a score: {other}"))),
            },
        }
    }

    pub fn serialize<S: Serializer>(x: &f64, s: S) -> Result<S::Ok, S::Error> {
        to_repr(*x).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        from_repr(Repr::deserialize(d)?)
    }

    /// The same for a list of scores.
    pub mod vec {
        use super::*;
        pub fn serialize<S: Serializer>(xs: &[f64], s: S) -> Result<S::Ok, S::Error> {
            s.collect_seq(xs.iter().map(|x| to_repr(*x)))
        }
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
            Vec::<Repr>::deserialize(d)?.into_iter().map(from_repr).collect()
        }
    }

    /// The same for an optional score.
    pub mod option {
        use super::*;
        pub fn serialize<S: Serializer>(x: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
            x.map(to_repr).serialize(s)
        }
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
            Option::<Repr>::deserialize(d)?.map(from_repr).transpose()
        }
    }
}

/// A well-spread seed from two numbers (splitmix64 of their combination): for streams that must
/// differ per run *and* per step, and repeat exactly on replay.
pub fn mix_seed(a: u64, b: u64) -> u64 {
    let mut z = a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_add(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `true`, for `#[serde(default = "crate::util::yes")]` on a switch that older files lack.
pub fn yes() -> bool {
    true
}

/// A short single-line preview of a text, for messages.
pub fn preview(s: &str, max_chars: usize) -> String {
    let one: String = s.chars().map(|c| if c == '\n' { ' ' } else { c }).collect();
    if one.chars().count() <= max_chars {
        one
    } else {
        let cut: String = one.chars().take(max_chars).collect();
        format!("{cut}…")
    }
}

/// A long text cut to its first `head` and last `tail` characters around " … " (the end of a
/// model's reply is where its answer usually is); a short one unchanged.
pub fn abbreviate(s: &str, head: usize, tail: usize) -> String {
    let n = s.chars().count();
    if n <= head + tail + 3 {
        return s.to_string();
    }
    let start: String = s.chars().take(head).collect();
    let end: String = s.chars().skip(n - tail).collect();
    format!("{start} … {end}")
}

#[cfg(test)]
mod abbreviate_tests {
    use super::abbreviate;

    #[test]
    fn keeps_both_ends_of_a_long_text_and_all_of_a_short_one() {
        assert_eq!(abbreviate("short", 3, 3), "short");
        let long = format!("start{}the answer is 7", "x".repeat(100));
        assert_eq!(abbreviate(&long, 5, 15), "start … the answer is 7");
        assert_eq!(abbreviate("ééééééééééé", 2, 2), "éé … éé");
    }
}
