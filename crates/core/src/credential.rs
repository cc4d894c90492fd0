//! Where credentials come from: the subscription key from a request header or a query parameter
//! (header wins), the JWT from `Authorization: Bearer`; and how the query string looks once the
//! key is taken out of it.

use percent_encoding::percent_decode;
use std::borrow::Cow;

/// Request headers as the host gives them: lower-case names, raw value bytes, in order,
/// a repeated header appearing once per value.
pub type Headers = [(String, Vec<u8>)];

/// Every value of header `lower_name`, in order.
pub fn header_values<'a>(
    headers: &'a Headers,
    lower_name: &'a str,
) -> impl Iterator<Item = &'a [u8]> + 'a {
    headers
        .iter()
        .filter(move |(name, _)| name == lower_name)
        .map(|(_, value)| value.as_slice())
}

/// What a request presented as its subscription key.
#[derive(Debug, PartialEq, Eq)]
pub enum PresentedKey<'a> {
    Missing,
    /// Sent more than once with different values: which one counts would be a guess, and a
    /// guess is where parser-differential attacks live. Refused as an invalid key.
    Conflicting,
    Found(Cow<'a, [u8]>),
}

/// Reads the key from header `lower_header` or, when the header is absent or empty, from query
/// parameter `query_name`.
pub fn presented_key<'a>(
    headers: &'a Headers,
    lower_header: &'a str,
    query: Option<&'a str>,
    query_name: &str,
) -> PresentedKey<'a> {
    let from_header = single_value(
        header_values(headers, lower_header)
            .filter(|v| !v.is_empty())
            .map(Cow::Borrowed),
    );
    match from_header {
        PresentedKey::Missing => match query {
            Some(query) => single_value(
                query_params(query)
                    .filter(|p| p.name_matches(query_name))
                    .map(|p| p.value())
                    .filter(|v| !v.is_empty()),
            ),
            None => PresentedKey::Missing,
        },
        found_or_conflicting => found_or_conflicting,
    }
}

fn single_value<'a>(mut values: impl Iterator<Item = Cow<'a, [u8]>>) -> PresentedKey<'a> {
    let Some(first) = values.next() else {
        return PresentedKey::Missing;
    };
    if values.all(|other| other == first) {
        PresentedKey::Found(first)
    } else {
        PresentedKey::Conflicting
    }
}

/// What a request presented as its bearer token.
#[derive(Debug, PartialEq, Eq)]
pub enum PresentedToken<'a> {
    Missing,
    /// Two different bearer tokens, or one that is not text: refused as invalid.
    Unusable,
    Found(&'a str),
}

/// The token of `Authorization: Bearer <token>`. The scheme is case-insensitive (RFC 7235), so
/// `bearer` works too; other schemes (`Basic ...`) and a bare token without a scheme are no
/// bearer token.
pub fn bearer_token(headers: &Headers) -> PresentedToken<'_> {
    let mut found: Option<&str> = None;
    for value in header_values(headers, "authorization") {
        let Ok(text) = std::str::from_utf8(value) else {
            return PresentedToken::Unusable;
        };
        let Some((scheme, token)) = text.trim().split_once(' ') else {
            continue;
        };
        if !scheme.eq_ignore_ascii_case("bearer") {
            continue;
        }
        let token = token.trim_start_matches(' ');
        if token.is_empty() {
            continue;
        }
        match found {
            Some(earlier) if earlier != token => return PresentedToken::Unusable,
            _ => found = Some(token),
        }
    }
    found.map_or(PresentedToken::Missing, PresentedToken::Found)
}

/// Splits `:path` into path and query string (without the `?`). A fragment never reaches a
/// proxy, but if one does it stays with the query.
pub fn split_path(path_and_query: &str) -> (&str, Option<&str>) {
    match path_and_query.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (path_and_query, None),
    }
}

/// One `name=value` piece of a query string, still encoded.
pub struct QueryParam<'a> {
    raw: &'a str,
}

impl<'a> QueryParam<'a> {
    fn raw_name(&self) -> &'a str {
        self.raw.split_once('=').map_or(self.raw, |(name, _)| name)
    }

    /// Compares the percent-decoded name, so `subscription%2Dkey` is the same parameter as
    /// `subscription-key` (as it is for the upstream that decodes it).
    pub fn name_matches(&self, name: &str) -> bool {
        percent_decode(self.raw_name().as_bytes()).eq(name.bytes())
    }

    /// The name, percent-decoded (lossy where it is not UTF-8).
    pub fn name(&self) -> String {
        percent_decode(self.raw_name().as_bytes())
            .decode_utf8_lossy()
            .into_owned()
    }

    pub fn value(&self) -> Cow<'a, [u8]> {
        let raw = self.raw.split_once('=').map_or("", |(_, value)| value);
        percent_decode(raw.as_bytes()).into()
    }
}

pub fn query_params(query: &str) -> impl Iterator<Item = QueryParam<'_>> {
    query
        .split('&')
        .filter(|raw| !raw.is_empty())
        .map(|raw| QueryParam { raw })
}

/// The query string without any `query_name` parameter, each remaining piece as it was sent.
/// `None` when nothing remains.
pub fn query_without(query: &str, query_name: &str) -> Option<String> {
    let kept: Vec<&str> = query_params(query)
        .filter(|p| !p.name_matches(query_name))
        .map(|p| p.raw)
        .collect();
    (!kept.is_empty()).then(|| kept.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "ocp-apim-subscription-key";
    const PARAM: &str = "subscription-key";

    fn headers(pairs: &[(&str, &[u8])]) -> Vec<(String, Vec<u8>)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_vec()))
            .collect()
    }

    fn found(key: &[u8]) -> PresentedKey<'_> {
        PresentedKey::Found(Cow::Borrowed(key))
    }

    #[test]
    fn header_wins_over_query() {
        let h = headers(&[(HEADER, b"from-header")]);
        let key = presented_key(&h, HEADER, Some("subscription-key=from-query"), PARAM);
        assert_eq!(key, found(b"from-header"));
    }

    #[test]
    fn query_used_when_header_absent_or_empty() {
        let none = headers(&[("accept", b"*/*")]);
        assert_eq!(
            presented_key(&none, HEADER, Some("a=1&subscription-key=q"), PARAM),
            found(b"q")
        );
        let empty = headers(&[(HEADER, b"")]);
        assert_eq!(
            presented_key(&empty, HEADER, Some("subscription-key=q"), PARAM),
            found(b"q")
        );
    }

    #[test]
    fn missing_everywhere() {
        let h = headers(&[]);
        assert_eq!(
            presented_key(&h, HEADER, None, PARAM),
            PresentedKey::Missing
        );
        assert_eq!(
            presented_key(&h, HEADER, Some("subscription-key=&x=1"), PARAM),
            PresentedKey::Missing
        );
        assert_eq!(
            presented_key(&h, HEADER, Some("subscription-keys=abc"), PARAM),
            PresentedKey::Missing
        );
    }

    #[test]
    fn repeated_header_must_agree() {
        let same = headers(&[(HEADER, b"k"), (HEADER, b"k")]);
        assert_eq!(presented_key(&same, HEADER, None, PARAM), found(b"k"));
        let differ = headers(&[(HEADER, b"k1"), (HEADER, b"k2")]);
        assert_eq!(
            presented_key(&differ, HEADER, None, PARAM),
            PresentedKey::Conflicting
        );
    }

    #[test]
    fn repeated_query_parameter_must_agree() {
        let h = headers(&[]);
        assert_eq!(
            presented_key(
                &h,
                HEADER,
                Some("subscription-key=a&subscription-key=a"),
                PARAM
            ),
            found(b"a")
        );
        assert_eq!(
            presented_key(
                &h,
                HEADER,
                Some("subscription-key=a&subscription-key=b"),
                PARAM
            ),
            PresentedKey::Conflicting
        );
    }

    #[test]
    fn percent_encoding_is_decoded_in_name_and_value() {
        let h = headers(&[]);
        assert_eq!(
            presented_key(&h, HEADER, Some("subscription%2Dkey=ab%63"), PARAM),
            found(b"abc")
        );
        // A broken escape is kept as sent; it simply will not match a key.
        assert_eq!(
            presented_key(&h, HEADER, Some("subscription-key=%zz%"), PARAM),
            found(b"%zz%")
        );
    }

    #[test]
    fn strips_every_copy_of_the_parameter_and_keeps_the_rest_verbatim() {
        assert_eq!(
            query_without("a=1&subscription-key=k&b=%20x&subscription%2dkey=k", PARAM),
            Some("a=1&b=%20x".to_string())
        );
        assert_eq!(query_without("subscription-key=k", PARAM), None);
        assert_eq!(
            query_without("flag&&x=", PARAM),
            Some("flag&x=".to_string())
        );
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_and_required() {
        let h = headers(&[("authorization", b"Bearer a.b.c")]);
        assert_eq!(bearer_token(&h), PresentedToken::Found("a.b.c"));
        let h = headers(&[("authorization", b"bearer a.b.c")]);
        assert_eq!(bearer_token(&h), PresentedToken::Found("a.b.c"));
        for bare in [
            b"a.b.c".as_slice(),
            b"Basic dXNlcjpwdw==",
            b"Bearer",
            b"Bearer   ",
            b"",
        ] {
            let h = headers(&[("authorization", bare)]);
            assert_eq!(bearer_token(&h), PresentedToken::Missing, "{bare:?}");
        }
        assert_eq!(bearer_token(&headers(&[])), PresentedToken::Missing);
    }

    #[test]
    fn repeated_bearer_tokens_must_agree() {
        let same = headers(&[
            ("authorization", b"Bearer t"),
            ("authorization", b"Bearer t"),
        ]);
        assert_eq!(bearer_token(&same), PresentedToken::Found("t"));
        let differ = headers(&[
            ("authorization", b"Bearer t"),
            ("authorization", b"Bearer u"),
        ]);
        assert_eq!(bearer_token(&differ), PresentedToken::Unusable);
        let not_text = headers(&[("authorization", b"Bearer a.b.\xff")]);
        assert_eq!(bearer_token(&not_text), PresentedToken::Unusable);
    }

    #[test]
    fn split_path_and_query() {
        assert_eq!(split_path("/a/b?x=1&y"), ("/a/b", Some("x=1&y")));
        assert_eq!(split_path("/a"), ("/a", None));
        assert_eq!(split_path("/a?"), ("/a", Some("")));
    }
}
