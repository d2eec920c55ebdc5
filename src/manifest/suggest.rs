//! "Did you mean" suggestions for misspelt field names, kinds, enum values and
//! references. One copy, shared by [`super::parse`] (fields, kinds, values)
//! and [`super::validate`] (names of other objects), so both suggest alike.

/// "one of `a`, `b`, `c`" (or "`a`" alone).
pub(super) fn one_of(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match quoted.len() {
        0 => "nothing".to_owned(),
        1 => quoted[0].clone(),
        _ => format!("one of {}", quoted.join(", ")),
    }
}

/// The message for a field not in `expected`: a suggestion if one is close,
/// else the list of fields that are allowed here.
pub(super) fn unknown_field_message(field: &str, expected: &[&str]) -> String {
    match did_you_mean(field, expected.iter().copied()) {
        Some(s) => format!("unknown field `{field}`, did you mean `{s}`?"),
        None if expected.is_empty() => format!("unknown field `{field}`, there are no fields here"),
        None => format!("unknown field `{field}`, expected {}", one_of(expected)),
    }
}

/// The message for an enum value not in `expected`, such as `restartPolicy: sometimes`.
pub(super) fn unknown_value_message(value: &str, expected: &[&str]) -> String {
    match did_you_mean(value, expected.iter().copied()) {
        Some(s) => format!("unknown value `{value}`, did you mean `{s}`?"),
        None => format!("unknown value `{value}`, expected {}", one_of(expected)),
    }
}

/// The candidate closest to `input`, if it is close enough to be a typo:
/// differing only in case, or within a small edit distance (a swap of two
/// neighbouring letters counts as one edit).
pub(super) fn did_you_mean<'a>(input: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lower = input.to_lowercase();
    let budget = match lower.chars().count() {
        0..=2 => 0,
        3..=5 => 1,
        _ => 2,
    };
    candidates
        .into_iter()
        .filter(|c| *c != input)
        .map(|c| (edit_distance(&lower, &c.to_lowercase()), c))
        .filter(|(d, _)| *d <= budget)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Optimal string alignment distance (Levenshtein plus adjacent transpositions).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    for i in 0..=a.len() {
        d[i * width] = i;
    }
    for (j, cell) in d.iter_mut().enumerate().take(width) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[(i - 1) * width + j] + 1)
                .min(d[i * width + j - 1] + 1)
                .min(d[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[(i - 2) * width + j - 2] + 1);
            }
            d[i * width + j] = best;
        }
    }
    d[a.len() * width + b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn did_you_mean_tolerates_swaps_case_and_small_typos_only() {
        let fields = ["image", "command", "hostPath", "volumes"];
        assert_eq!(did_you_mean("imagee", fields), Some("image"));
        assert_eq!(did_you_mean("comand", fields), Some("command"));
        assert_eq!(did_you_mean("hostpath", fields), Some("hostPath"));
        assert_eq!(did_you_mean("volmues", fields), Some("volumes"));
        assert_eq!(did_you_mean("labels", fields), None);
        assert_eq!(did_you_mean("im", fields), None);
    }
}
