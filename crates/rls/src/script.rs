//! The counting script's contract on the Rust side: its source, how its KEYS and ARGV are laid
//! out, and how its reply is read. Pure, so the layout is tested without Redis.

use crate::request::Counted;

/// The Lua source (see `count.lua` for the algorithm).
pub const SOURCE: &str = include_str!("count.lua");

/// KEYS and ARGV for one script call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// Distinct counter keys, in order of first use.
    pub keys: Vec<String>,
    /// One expiry (Unix ms) per key, then `key index (1-based), limit, addend` per descriptor.
    pub args: Vec<u64>,
}

/// The script's verdict on one counted descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Count {
    /// The counter after this request when it was admitted; before it otherwise.
    pub count: u64,
    /// This descriptor alone would exceed its limit.
    pub over: bool,
}

/// The script's verdict on one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Every descriptor was under its limit, so all were incremented.
    pub admitted: bool,
    /// One per counted descriptor, in request order.
    pub counts: Vec<Count>,
}

/// A reply that does not have the shape `count.lua` returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MalformedReply(pub String);

impl std::fmt::Display for MalformedReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "unexpected reply from the counting script: {}", self.0)
    }
}

/// Lays out the script call for the counted descriptors of one request. Descriptors that share a
/// key share one KEYS slot, so the script checks them against their combined increment.
pub fn call_for<'a, I>(counted: I) -> Call
where
    I: IntoIterator<Item = &'a Counted>,
{
    let mut keys: Vec<String> = Vec::new();
    let mut expiries: Vec<u64> = Vec::new();
    let mut per_descriptor: Vec<u64> = Vec::new();
    for c in counted {
        let position = match keys.iter().position(|k| *k == c.key) {
            Some(p) => p,
            None => {
                keys.push(c.key.clone());
                expiries.push(c.window.expire_after_ms());
                keys.len() - 1
            }
        };
        per_descriptor.extend([position as u64 + 1, u64::from(c.limit), c.addend]);
    }
    expiries.extend(per_descriptor);
    Call {
        keys,
        args: expiries,
    }
}

/// Reads the script's reply for `descriptors` counted descriptors.
pub fn read_reply(reply: &[i64], descriptors: usize) -> Result<Outcome, MalformedReply> {
    let Some((admitted, rest)) = reply.split_first() else {
        return Err(MalformedReply("empty".to_string()));
    };
    if rest.len() != descriptors * 2 {
        return Err(MalformedReply(format!(
            "{} values for {descriptors} descriptors",
            reply.len()
        )));
    }
    let counts = rest
        .chunks_exact(2)
        .map(|pair| match pair {
            [count, over] => Ok(Count {
                count: u64::try_from(*count)
                    .map_err(|_| MalformedReply(format!("negative count {count}")))?,
                over: *over != 0,
            }),
            _ => Err(MalformedReply("odd length".to_string())),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Outcome {
        admitted: *admitted == 1,
        counts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::counting::{Unit, Window};

    fn counted(key: &str, limit: u32, addend: u64) -> Counted {
        Counted {
            key: key.to_string(),
            limit,
            unit: Unit::Minute,
            addend,
            window: Window::at(0, Unit::Minute),
        }
    }

    #[test]
    fn keys_are_shared_and_args_follow_request_order() {
        let descriptors = [counted("a", 5, 1), counted("b", 3, 2), counted("a", 9, 1)];
        let call = call_for(&descriptors);
        assert_eq!(call.keys, vec!["a".to_string(), "b".to_string()]);
        assert_eq!(
            call.args,
            vec![65_000, 65_000, 1, 5, 1, 2, 3, 2, 1, 9, 1],
            "expiry per key (end of minute 0 plus 5 s), then index, limit, addend"
        );
    }

    #[test]
    fn expiries_are_relative_so_redis_clock_need_not_agree() {
        // 30 s into a minute: the key lives 30 s + the margin, whatever time Redis thinks it
        // is (an absolute deadline already past on Redis' clock would delete the key at once).
        let late = Counted {
            window: Window::at(1_800_000_030_000, Unit::Minute),
            ..counted("a", 5, 1)
        };
        assert_eq!(call_for([&late]).args.first(), Some(&35_000));
    }

    #[test]
    fn replies_are_read_in_order() {
        let outcome = read_reply(&[0, 3, 0, 3, 1], 2).unwrap();
        assert!(!outcome.admitted);
        assert_eq!(
            outcome.counts,
            vec![
                Count {
                    count: 3,
                    over: false
                },
                Count {
                    count: 3,
                    over: true
                }
            ]
        );
        assert!(read_reply(&[1], 0).unwrap().admitted);
    }

    #[test]
    fn malformed_replies_are_errors() {
        assert!(read_reply(&[], 0).is_err());
        assert!(read_reply(&[1, 2], 1).is_err());
        assert!(read_reply(&[1, 2, 0, 4], 1).is_err());
        assert!(read_reply(&[1, -2, 0], 1).is_err());
    }
}
