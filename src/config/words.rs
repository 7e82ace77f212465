//! Small helpers of the schema walk that know nothing of its keys: the
//! typo suggestion for an unknown key and the exact seconds-to-`Duration`
//! conversion that the writer's decimals rely on.

use std::time::Duration;

/// Seconds to a `Duration`, rounded to the nearest nanosecond. The
/// rounding is spelled out here because it is what makes the writer's
/// decimal (exact to the nanosecond) read back to the very same `Duration`.
/// `secs` must be finite, non-negative and far below `u64::MAX`.
pub(super) fn duration_from_secs(secs: f64) -> Duration {
    let whole = secs.trunc();
    let mut s = whole as u64;
    let mut nanos = ((secs - whole) * 1e9).round() as u32;
    if nanos >= 1_000_000_000 {
        s += 1;
        nanos -= 1_000_000_000;
    }
    Duration::new(s, nanos)
}

/// The expected key closest to a misspelt one, if it is close enough to be
/// a likely typo.
pub(super) fn suggestion<'k>(key: &str, expected: &[&'k str]) -> Option<&'k str> {
    // Keys are short; a long one is no typo and the distance would cost
    // time proportional to its length anyway.
    if key.chars().count() > 32 {
        return None;
    }
    let lower = key.to_lowercase();
    expected
        .iter()
        .map(|e| (edit_distance(&lower, e), *e))
        .filter(|(d, e)| *d <= 2 && *d < e.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, e)| e)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if ca == *cb {
                diagonal
            } else {
                1 + diagonal.min(above).min(row[j])
            };
            diagonal = above;
        }
    }
    row[b.len()]
}
