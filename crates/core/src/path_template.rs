//! `path_template` operations: literal segments and `{name}` segments, as APIM's URL templates
//! and FastAPI's paths are written (`/invoices/{invoice_id}/attachments`). Parsed and checked
//! once at load; the request side only asks a segment whether it matches.

use percent_encoding::percent_decode_str;
use std::borrow::Cow;
use std::fmt;

/// One `/`-separated piece of a template.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    /// Matches a request segment that is this text (after percent-decoding the request's).
    Literal(String),
    /// Matches any one non-empty segment but `.` and `..`; its name is the parameter's.
    Param(String),
}

/// A checked template: the text as configured and its segments (the one after the leading
/// `/` first; `/` alone is one empty literal, and a trailing `/` an empty last literal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplate {
    text: String,
    segments: Vec<Segment>,
}

/// At most this many segments in a template: the request-side walk recurses once per
/// segment, so its depth is bounded here, at load.
pub const MAX_SEGMENTS: usize = 64;

/// Why a template is refused; `Display` is the message after the configuration path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateError {
    NoLeadingSlash,
    TooManySegments(usize),
    /// `/a//b`: Envoy merges the slashes, so the template could never be matched as written.
    EmptySegment,
    /// `.` or `..`: Envoy removes them before tollgate sees the path.
    DotSegment(String),
    /// `{id}.json`, `x{id}`, `{a}{b}`: a parameter must be a whole segment.
    PartialParam(String),
    /// `{}` or `{1x}`: names are identifiers, as FastAPI's are.
    BadName(String),
    DuplicateName(String),
    /// Literals are written decoded (`/a b` is not a path either): `%` would never match
    /// a request, whose segments are compared decoded.
    Percent(String),
    /// `?`, `#`, spaces or control characters.
    BadCharacter(String),
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoLeadingSlash => f.write_str("must start with '/'"),
            Self::TooManySegments(count) => write!(
                f,
                "has {count} segments; at most {MAX_SEGMENTS}"
            ),
            Self::EmptySegment => f.write_str("must not hold an empty segment ('//')"),
            Self::DotSegment(segment) => {
                write!(f, "segment '{segment}' is removed by path normalisation")
            }
            Self::PartialParam(segment) => write!(
                f,
                "segment '{segment}': a parameter must be a whole segment ('{{name}}'), one per segment"
            ),
            Self::BadName(segment) => write!(
                f,
                "segment '{segment}': a parameter name is letters, digits and '_', not starting with a digit"
            ),
            Self::DuplicateName(name) => write!(f, "parameter '{name}' appears twice"),
            Self::Percent(segment) => write!(
                f,
                "segment '{segment}': write literal segments decoded, without '%'"
            ),
            Self::BadCharacter(segment) => write!(
                f,
                "segment '{segment}' holds '?', '#', a space or a control character"
            ),
        }
    }
}

impl PathTemplate {
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let rest = text
            .strip_prefix('/')
            .ok_or(TemplateError::NoLeadingSlash)?;
        let pieces: Vec<&str> = rest.split('/').collect();
        if pieces.len() > MAX_SEGMENTS {
            return Err(TemplateError::TooManySegments(pieces.len()));
        }
        let last = pieces.len().saturating_sub(1);
        let mut segments = Vec::with_capacity(pieces.len());
        for (at, piece) in pieces.iter().enumerate() {
            segments.push(parse_segment(piece, at == last)?);
        }
        let mut names: Vec<&str> = Vec::new();
        for segment in &segments {
            if let Segment::Param(name) = segment {
                if names.contains(&name.as_str()) {
                    return Err(TemplateError::DuplicateName(name.clone()));
                }
                names.push(name);
            }
        }
        Ok(Self {
            text: text.to_string(),
            segments,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Parameter names in the order they appear.
    pub fn param_names(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|segment| match segment {
            Segment::Param(name) => Some(name.as_str()),
            Segment::Literal(_) => None,
        })
    }

    /// A path this template matches and no literal of any template or configured path can
    /// equal (every parameter filled with a space, which no configured path holds): the
    /// least specific request the template answers, for checking at load that it can be
    /// reached at all.
    pub fn witness(&self) -> String {
        let mut path = String::with_capacity(self.text.len());
        for segment in &self.segments {
            path.push('/');
            match segment {
                Segment::Literal(text) => path.push_str(text),
                Segment::Param(_) => path.push_str(WITNESS_VALUE),
            }
        }
        path
    }
}

/// What a parameter is filled with in a witness path (see `PathTemplate::witness`).
pub(crate) const WITNESS_VALUE: &str = " ";

fn parse_segment(piece: &str, last: bool) -> Result<Segment, TemplateError> {
    if piece.is_empty() {
        // `/` itself and a trailing slash (`/items/`) are paths FastAPI serves.
        return if last {
            Ok(Segment::Literal(String::new()))
        } else {
            Err(TemplateError::EmptySegment)
        };
    }
    if piece
        .chars()
        .any(|c| matches!(c, '?' | '#') || c.is_whitespace() || c.is_control())
    {
        return Err(TemplateError::BadCharacter(piece.to_string()));
    }
    if !piece.contains(['{', '}']) {
        if piece == "." || piece == ".." {
            return Err(TemplateError::DotSegment(piece.to_string()));
        }
        if piece.contains('%') {
            return Err(TemplateError::Percent(piece.to_string()));
        }
        return Ok(Segment::Literal(piece.to_string()));
    }
    let name = whole_param(piece).ok_or_else(|| TemplateError::PartialParam(piece.to_string()))?;
    if !is_identifier(name) {
        return Err(TemplateError::BadName(piece.to_string()));
    }
    Ok(Segment::Param(name.to_string()))
}

/// The name of a segment that is one whole `{name}`, if it is.
pub(crate) fn whole_param(segment: &str) -> Option<&str> {
    segment
        .strip_prefix('{')
        .and_then(|inner| inner.strip_suffix('}'))
        .filter(|name| !name.contains(['{', '}']))
}

pub(crate) fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A request segment as a literal is compared with it: percent-decoded, so `%65xport` is
/// `export` here as it is to the backend (FastAPI routes on the decoded path), and an encoded
/// spelling cannot reach a literal's operation under a parameter operation's policy. Raw when
/// the escapes do not decode to UTF-8.
pub(crate) fn decoded(segment: &str) -> Cow<'_, str> {
    if !segment.contains('%') {
        return Cow::Borrowed(segment);
    }
    match percent_decode_str(segment).decode_utf8() {
        Ok(text) => text,
        Err(_) => Cow::Borrowed(segment),
    }
}

/// Whether a request segment may fill a parameter: not empty, not `.` or `..` in any
/// spelling, no encoded `/` or `\` (the backend would decode them into a path of more
/// segments than the template matched), and every `%` an escape (`%2` next to a parameter's
/// `e` in a rewrite must not make `%2e`).
pub(crate) fn fits_param(segment: &str) -> bool {
    if segment.is_empty() {
        return false;
    }
    if !segment.contains('%') {
        return segment != "." && segment != "..";
    }
    if !escapes_well_formed(segment) {
        return false;
    }
    let plain = decoded(segment);
    plain != "." && plain != ".." && !plain.contains(['/', '\\'])
}

/// Every `%` is followed by two hex digits.
fn escapes_well_formed(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes
        .iter()
        .enumerate()
        .all(|(at, byte)| *byte != b'%' || is_escape(bytes, at))
}

/// A well-formed `%XX` starts at `at`.
fn is_escape(bytes: &[u8], at: usize) -> bool {
    bytes.get(at) == Some(&b'%')
        && bytes.get(at + 1).is_some_and(u8::is_ascii_hexdigit)
        && bytes.get(at + 2).is_some_and(u8::is_ascii_hexdigit)
}

/// A path no operation should answer for a backend to see as another: an encoded `/` or `\`,
/// or a `.`/`..` segment in some spelling. Such a request is never passed on unmatched.
pub fn is_ambiguous(path: &str) -> bool {
    path.split('/').any(|segment| {
        let plain = decoded(segment);
        plain == "." || plain == ".." || (segment.contains('%') && plain.contains(['/', '\\']))
    })
}

/// How many bytes of `raw` decode (as `decoded` decodes: each well-formed `%XX` one byte) to
/// its first `decoded_len` bytes.
pub(crate) fn raw_len(raw: &str, decoded_len: usize) -> usize {
    let bytes = raw.as_bytes();
    let (mut at, mut produced) = (0, 0);
    while produced < decoded_len && at < bytes.len() {
        at += if is_escape(bytes, at) { 3 } else { 1 };
        produced += 1;
    }
    at
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn segments(text: &str) -> Vec<Segment> {
        PathTemplate::parse(text).unwrap().segments().to_vec()
    }

    fn lit(text: &str) -> Segment {
        Segment::Literal(text.into())
    }

    fn param(name: &str) -> Segment {
        Segment::Param(name.into())
    }

    #[test]
    fn literal_and_parameter_segments() {
        assert_eq!(
            segments("/invoices/{invoice_id}/attachments"),
            vec![lit("invoices"), param("invoice_id"), lit("attachments")]
        );
        assert_eq!(segments("/"), vec![lit("")]);
        assert_eq!(segments("/items/"), vec![lit("items"), lit("")]);
        assert_eq!(segments("/{a}/{_b2}"), vec![param("a"), param("_b2")]);
        let template = PathTemplate::parse("/a/{x}/b/{y}").unwrap();
        assert_eq!(template.param_names().collect::<Vec<_>>(), ["x", "y"]);
        assert_eq!(template.witness(), "/a/ /b/ ");
        assert_eq!(template.as_str(), "/a/{x}/b/{y}");
    }

    #[test]
    fn every_refusal() {
        let refused = |text: &str| PathTemplate::parse(text).unwrap_err();
        assert_eq!(refused("invoices"), TemplateError::NoLeadingSlash);
        assert_eq!(refused(""), TemplateError::NoLeadingSlash);
        assert_eq!(refused("/a//b"), TemplateError::EmptySegment);
        assert_eq!(refused("//"), TemplateError::EmptySegment);
        assert_eq!(refused("/a/../b"), TemplateError::DotSegment("..".into()));
        assert_eq!(refused("/a/./b"), TemplateError::DotSegment(".".into()));
        for partial in [
            "{id}.json",
            "x{id}",
            "{a}{b}",
            "{id",
            "id}",
            "{{id}}",
            "{a}b{c}",
        ] {
            assert_eq!(
                refused(&format!("/a/{partial}")),
                TemplateError::PartialParam(partial.into()),
                "{partial}"
            );
        }
        for bad in ["{}", "{1x}", "{a-b}", "{a.b}"] {
            assert_eq!(
                refused(&format!("/a/{bad}")),
                TemplateError::BadName(bad.into())
            );
        }
        assert_eq!(
            refused("/a/{id}/b/{id}"),
            TemplateError::DuplicateName("id".into())
        );
        assert_eq!(refused("/a%20b"), TemplateError::Percent("a%20b".into()));
        for bad in ["/a b", "/a?b", "/a#b", "/a\tb", "/a\u{0}b"] {
            assert!(
                matches!(refused(bad), TemplateError::BadCharacter(_)),
                "{bad:?}"
            );
        }
        // Every message names the segment it is about.
        assert!(refused("/a/{id}.json").to_string().contains("'{id}.json'"));
    }

    #[test]
    fn request_segments_are_compared_decoded() {
        assert_eq!(decoded("export"), "export");
        assert_eq!(decoded("%65xport"), "export");
        assert_eq!(decoded("a%20b"), "a b");
        // Not UTF-8 once decoded: compared as sent (and so equal to no literal).
        assert_eq!(decoded("%ff"), "%ff");
    }

    #[test]
    fn raw_lengths_of_decoded_prefixes() {
        assert_eq!(raw_len("/admin%3Astats/x", 12), 14);
        assert_eq!(raw_len("/admin", 6), 6);
        assert_eq!(raw_len("/a%zz/b", 5), 5);
        assert_eq!(raw_len("%41%42", 1), 3);
        assert_eq!(raw_len("ab", 9), 2);
    }

    #[test]
    fn ambiguous_paths() {
        for path in [
            "/a/%2e%2e/b",
            "/a/./b",
            "/a/x%2Fy",
            "/a%5cb",
            "/..",
            "/a/%2E",
        ] {
            assert!(is_ambiguous(path), "{path}");
        }
        for path in ["/a/b", "/a/.x", "/a/%20", "/", "/a//b", "/a/..b"] {
            assert!(!is_ambiguous(path), "{path}");
        }
    }

    #[test]
    fn no_configured_path_holds_the_witness_value() {
        // Load-time reachability fills parameters with a space and relies on every kind of
        // configured path refusing spaces.
        assert!(matches!(
            PathTemplate::parse("/a b"),
            Err(TemplateError::BadCharacter(_))
        ));
        assert!(crate::checks::check_path("p", "/a b").is_err());
        assert_eq!(WITNESS_VALUE, " ");
        assert!(fits_param(WITNESS_VALUE));
    }

    #[test]
    fn deep_templates_are_refused() {
        let deep = "/a".repeat(MAX_SEGMENTS + 1);
        assert_eq!(
            PathTemplate::parse(&deep),
            Err(TemplateError::TooManySegments(MAX_SEGMENTS + 1))
        );
        assert!(PathTemplate::parse(&"/a".repeat(MAX_SEGMENTS)).is_ok());
    }

    #[test]
    fn a_parameter_never_takes_dots_empty_or_encoded_slashes() {
        for refused in [
            "", ".", "..", "%2e", "%2E%2e", ".%2e", "a%2Fb", "a%2fb", "a%5Cb", "%5c", "%2", "a%",
            "%zz", "%2%2e",
        ] {
            assert!(!fits_param(refused), "{refused:?}");
        }
        for taken in [
            "INV-1", "a%20b", "...", ".a", "%41", "%ff", "a.b", "~x", "100%25",
        ] {
            assert!(fits_param(taken), "{taken:?}");
        }
    }
}
