//! Helpers shared by the manifest module's tests.

use super::Diagnostic;

/// The one diagnostic whose message contains `needle`.
pub(crate) fn find<'d>(diagnostics: &'d [Diagnostic], needle: &str) -> &'d Diagnostic {
    let found: Vec<&Diagnostic> = diagnostics.iter().filter(|d| d.message.contains(needle)).collect();
    match found.as_slice() {
        [one] => one,
        _ => panic!(
            "expected one diagnostic containing {needle:?}, got:\n{}",
            render(diagnostics)
        ),
    }
}

pub(crate) fn render(diagnostics: &[Diagnostic]) -> String {
    diagnostics.iter().map(|d| format!("{d}\n")).collect()
}
