//! DNS names of containers: the one rule for an RFC 1123 label and the
//! label a Docker-style container name (`proj_web_1`) answers to, in a
//! leaf module that manifest validation and the network planner both use.

/// RFC 1123 label: 1–63 of `a-z`, `0-9`, `-`, starting and ending alphanumeric.
pub fn is_dns_label(name: &str) -> bool {
    let ok_char = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && ok_char(b[0])
        && ok_char(b[b.len() - 1])
        && b.iter().all(|&c| ok_char(c) || c == b'-')
}

/// The DNS label a container named `name` answers to on its networks (and
/// its default hostname): the name in lower case with `_` and `.` as `-`;
/// none when that is still no label (`a_`), and then it has no DNS record.
pub fn dns_label_of(name: &str) -> Option<String> {
    let label: String = name
        .chars()
        .map(|c| match c {
            '_' | '.' => '-',
            c => c.to_ascii_lowercase(),
        })
        .collect();
    is_dns_label(&label).then_some(label)
}
