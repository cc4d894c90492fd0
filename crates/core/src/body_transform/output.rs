//! A transform's result as JSON text, at most a given number of bytes.
//!
//! JMESPath's arithmetic functions (`abs`, `ceil`, `floor`, `sum`, `avg`) compute in floating
//! point, and the crate keeps their results as floats: `ceil(`1.5`)` would be written `2.0`.
//! The specification's answer is `2`, and a backend model with an integer field may refuse a
//! float, so a float with no fractional part within ±2^53 (where every integer is exact) is
//! written as an integer.

use jmespath::Variable;

/// Largest magnitude below which every integer is exactly a float.
const EXACT_INTEGERS: f64 = 9_007_199_254_740_992.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputError {
    /// Longer than the limit.
    TooLarge,
    /// An expression reference (`&field`) is no JSON value.
    NotJson,
}

/// Writes `value` as compact JSON, failing once more than `max_bytes` would be written.
pub fn to_json(value: &Variable, max_bytes: usize) -> Result<Vec<u8>, OutputError> {
    let mut out = Output {
        bytes: Vec::new(),
        max_bytes,
    };
    write(value, &mut out)?;
    Ok(out.bytes)
}

struct Output {
    bytes: Vec<u8>,
    max_bytes: usize,
}

impl Output {
    fn push(&mut self, text: &[u8]) -> Result<(), OutputError> {
        if self.bytes.len().saturating_add(text.len()) > self.max_bytes {
            return Err(OutputError::TooLarge);
        }
        self.bytes.extend_from_slice(text);
        Ok(())
    }

    fn string(&mut self, text: &str) -> Result<(), OutputError> {
        // serde_json's escaping; a string cannot fail to serialize.
        let quoted = serde_json::to_vec(text).map_err(|_| OutputError::NotJson)?;
        self.push(&quoted)
    }
}

fn write(value: &Variable, out: &mut Output) -> Result<(), OutputError> {
    match value {
        Variable::Null => out.push(b"null"),
        Variable::Bool(true) => out.push(b"true"),
        Variable::Bool(false) => out.push(b"false"),
        Variable::Number(number) => {
            let integral = number
                .as_f64()
                .filter(|_| number.is_f64())
                .filter(|f| f.fract() == 0.0 && f.abs() < EXACT_INTEGERS);
            match integral {
                // Exact: the magnitude is below 2^53.
                Some(whole) => out.push(format!("{}", whole as i64).as_bytes()),
                None => out.push(number.to_string().as_bytes()),
            }
        }
        Variable::String(text) => out.string(text),
        Variable::Array(elements) => {
            out.push(b"[")?;
            for (i, element) in elements.iter().enumerate() {
                if i > 0 {
                    out.push(b",")?;
                }
                write(element, out)?;
            }
            out.push(b"]")
        }
        Variable::Object(members) => {
            out.push(b"{")?;
            for (i, (key, member)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(b",")?;
                }
                out.string(key)?;
                out.push(b":")?;
                write(member, out)?;
            }
            out.push(b"}")
        }
        Variable::Expref(_) => Err(OutputError::NotJson),
    }
}
