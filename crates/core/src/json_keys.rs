//! Duplicate keys in any JSON object of a configuration are refused: JSON parsers keep the last
//! value of a repeated key, so a second `"starter"` in `products` would silently replace the
//! first (a limited product made unlimited). Typed parsing refuses repeated fields of a
//! struct; this walk catches them in the maps (products, header rules, claims...).

use crate::config_error::ConfigError;
use serde::de::{DeserializeSeed, Deserializer, Error, MapAccess, SeqAccess, Visitor};
use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;

/// The first repeated key of `bytes`, as a refusal naming its path; `Ok` when there is none or
/// when the document is not JSON (typed parsing reports that).
pub(crate) fn reject_duplicate_keys(bytes: &[u8]) -> Result<(), ConfigError> {
    let found = RefCell::new(None);
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let walked = Walk {
        path: String::new(),
        found: &found,
    }
    .deserialize(&mut deserializer);
    match (walked, found.into_inner()) {
        (Err(_), Some((path, key))) => Err(ConfigError::rule(
            path,
            format!("duplicate key '{key}' (a second value would silently replace the first)"),
        )),
        _ => Ok(()),
    }
}

/// One value of the document, at `path` (`products.starter`, `operations[2].name`).
struct Walk<'f> {
    path: String,
    found: &'f RefCell<Option<(String, String)>>,
}

impl Walk<'_> {
    fn child(&self, step: &str) -> Self {
        let path = if self.path.is_empty() {
            step.to_string()
        } else if step.starts_with('[') {
            format!("{}{step}", self.path)
        } else {
            format!("{}.{step}", self.path)
        };
        Walk {
            path,
            found: self.found,
        }
    }
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let child = self.child(&key);
            if !seen.insert(key.clone()) {
                *self.found.borrow_mut() = Some((child.path, key));
                return Err(A::Error::custom("duplicate key"));
            }
            map.next_value_seed(child)?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0usize;
        while seq
            .next_element_seed(self.child(&format!("[{index}]")))?
            .is_some()
        {
            index += 1;
        }
        Ok(())
    }

    fn visit_bool<E: Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E: Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E: Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E: Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E: Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: Error>(self) -> Result<(), E> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(text: &str) -> Option<String> {
        reject_duplicate_keys(text.as_bytes())
            .err()
            .map(|err| err.to_string())
    }

    #[test]
    fn repeated_keys_are_found_at_any_depth() {
        assert_eq!(refused(r#"{"a": 1, "b": {"c": [1, {"d": 2}]}}"#), None);
        assert_eq!(
            refused(r#"{"products": {"starter": {}, "starter": {"quota": null}}}"#).as_deref(),
            Some("products.starter: duplicate key 'starter' (a second value would silently replace the first)")
        );
        assert!(
            refused(r#"{"operations": [{"name": "a"}, {"x": {"k": 1, "k": 2}}]}"#)
                .unwrap()
                .starts_with("operations[1].x.k: duplicate key 'k'")
        );
        assert!(refused(r#"{"a": 1, "a": 1}"#).unwrap().starts_with("a: "));
    }

    #[test]
    fn broken_json_is_left_to_the_typed_parse() {
        assert_eq!(refused("{"), None);
        assert_eq!(refused(""), None);
    }
}
