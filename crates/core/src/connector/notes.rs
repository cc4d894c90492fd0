//! What one run of the generator tells the operator, and what its schema conversions may
//! spend. Both are shared by every conversion of the run, so neither stderr nor the output nor
//! the work grows beyond a bound, whatever the input: a CI job must not die of a hostile or
//! merely odd OpenAPI document.

use serde_json::Value;
use std::collections::HashMap;

/// Distinct warning lines shown; the rest are counted in one closing line.
const MAX_LINES: usize = 100;
/// Characters of one warning line; a longer one is cut in the middle.
const MAX_LINE_CHARS: usize = 400;

/// Conversion steps (schemas converted, refs followed) of the whole run, beyond which every
/// schema left is unconstrained; plus one per byte of input, so that a large document converts
/// whole.
const RUN_STEPS: usize = 1_000_000;
/// Bytes the run's conversions may produce: each `$ref` followed (its target is copied) and
/// each converted schema as written. What bounds the output where steps alone do not (one step
/// can copy a 60,000-value enum); plus `BYTES_PER_INPUT_BYTE` per byte of input.
const RUN_BYTES: usize = 64 << 20;
const BYTES_PER_INPUT_BYTE: usize = 4;

#[derive(Debug)]
pub(crate) struct Notes {
    /// Distinct lines in the order first seen, with how often each came.
    lines: Vec<(String, usize)>,
    index: HashMap<String, usize>,
    /// Warnings past `MAX_LINES` distinct ones.
    unshown: usize,
    steps_left: usize,
    bytes_left: usize,
    /// Whether the run's budget has run out (said once).
    spent: bool,
    /// The size of each `$ref` target already measured.
    sizes: HashMap<String, usize>,
}

impl Notes {
    /// The notes of a run whose OpenAPI input is `input_len` bytes long.
    pub(crate) fn new(input_len: usize) -> Self {
        Self {
            lines: Vec::new(),
            index: HashMap::new(),
            unshown: 0,
            steps_left: RUN_STEPS.saturating_add(input_len),
            bytes_left: RUN_BYTES.saturating_add(input_len.saturating_mul(BYTES_PER_INPUT_BYTE)),
            spent: false,
            sizes: HashMap::new(),
        }
    }

    /// Adds a warning; a repeat only counts, a long line is shortened.
    pub(crate) fn push(&mut self, line: String) {
        let line = shorten(&line, MAX_LINE_CHARS);
        if let Some(at) = self.index.get(&line).copied() {
            if let Some((_, count)) = self.lines.get_mut(at) {
                *count += 1;
            }
            return;
        }
        if self.lines.len() >= MAX_LINES {
            self.unshown += 1;
            return;
        }
        self.index.insert(line.clone(), self.lines.len());
        self.lines.push((line, 1));
    }

    /// The warnings as shown: one line each, a count after those that came more than once.
    pub(crate) fn lines(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .lines
            .iter()
            .map(|(line, count)| match count {
                1 => line.clone(),
                n => format!("{line} ({n} times)"),
            })
            .collect();
        if self.unshown > 0 {
            out.push(format!(
                "{} more warning(s) not shown (only the first {MAX_LINES} distinct ones are)",
                self.unshown
            ));
        }
        out
    }

    /// Takes one step of the run's budget; false once it is spent.
    pub(crate) fn take_step(&mut self) -> bool {
        match self.steps_left.checked_sub(1) {
            Some(left) => {
                self.steps_left = left;
                true
            }
            None => self.run_out(),
        }
    }

    /// Takes `bytes` of the run's budget; false (taking nothing) when not that much is left.
    pub(crate) fn take_bytes(&mut self, bytes: usize) -> bool {
        match self.bytes_left.checked_sub(bytes) {
            Some(left) => {
                self.bytes_left = left;
                true
            }
            None => self.run_out(),
        }
    }

    fn run_out(&mut self) -> bool {
        self.steps_left = 0;
        self.bytes_left = 0;
        if !self.spent {
            self.spent = true;
            self.push(
                "the document's schemas are too large to convert within the generator's budget; the schemas not yet converted are left unconstrained"
                    .to_string(),
            );
        }
        false
    }

    /// Whether the run's budget has run out.
    pub(crate) fn spent(&self) -> bool {
        self.spent
    }

    /// The size of `reference`'s target, measured once per reference.
    pub(crate) fn size_of(&mut self, reference: &str, target: &Value) -> usize {
        if let Some(size) = self.sizes.get(reference) {
            return *size;
        }
        let size = written_size(target);
        self.sizes.insert(reference.to_string(), size);
        size
    }
}

/// About the bytes `value` takes in a generated file: indented JSON, one line per member, each
/// line indented by its depth there and by `ENCLOSING` more for where the value sits in the
/// document. What the byte budget counts, so that it bounds the files written.
pub(crate) fn written_size(value: &Value) -> usize {
    /// Indentation of a schema's first line in a generated file (a parameter's items, say).
    const ENCLOSING: usize = 16;
    fn size(value: &Value, indent: usize) -> usize {
        let line = indent + 2;
        match value {
            Value::Null | Value::Bool(_) => 5,
            Value::Number(_) => 12,
            Value::String(text) => text.len() + 2,
            Value::Array(items) => {
                items
                    .iter()
                    .map(|v| line + size(v, line) + 2)
                    .sum::<usize>()
                    + indent
                    + 4
            }
            Value::Object(map) => {
                map.iter()
                    .map(|(k, v)| line + k.len() + 4 + size(v, line) + 2)
                    .sum::<usize>()
                    + indent
                    + 4
            }
        }
    }
    size(value, ENCLOSING)
}

/// `text` within `max` characters: its start and its end, joined by "…".
pub(crate) fn shorten(text: &str, max: usize) -> String {
    let count = text.chars().count();
    if count <= max {
        return text.to_string();
    }
    let keep = max.saturating_sub(1);
    let head: String = text.chars().take(keep - keep / 3).collect();
    let tail: String = text.chars().skip(count - keep / 3).collect();
    format!("{head}…{tail}")
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn repeats_are_counted_and_lines_past_the_cap_summed_up() {
        let mut notes = Notes::new(0);
        notes.push("a".into());
        notes.push("b".into());
        notes.push("a".into());
        assert_eq!(notes.lines(), ["a (2 times)", "b"]);
        for i in 0..MAX_LINES + 5 {
            notes.push(format!("w{i}"));
        }
        let lines = notes.lines();
        assert_eq!(lines.len(), MAX_LINES + 1);
        assert!(
            lines[MAX_LINES].starts_with("7 more warning(s)"),
            "{lines:?}"
        );
    }

    #[test]
    fn long_lines_keep_their_start_and_end() {
        let mut notes = Notes::new(0);
        notes.push(format!("start {} end", "x".repeat(100_000)));
        let line = &notes.lines()[0];
        assert!(line.chars().count() <= MAX_LINE_CHARS);
        assert!(
            line.starts_with("start x") && line.ends_with("x end"),
            "{line}"
        );
        assert_eq!(shorten("short", 10), "short");
        assert_eq!(shorten("abcdefghij", 7), "abcd…ij");
    }

    #[test]
    fn the_budget_runs_out_once_with_one_warning() {
        let mut notes = Notes::new(0);
        assert!(notes.take_bytes(RUN_BYTES));
        assert!(!notes.take_bytes(1));
        assert!(!notes.take_step());
        assert_eq!(notes.lines().len(), 1);
    }
}
