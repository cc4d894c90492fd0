//! operationIds and summaries as Power Platform wants them: ids unique and
//! `^[A-Za-z][A-Za-z0-9]*$`, from tollgate's operation names; summaries ≤ 80 characters of
//! letters, digits, spaces and parentheses.

use crate::connector::public_api::METHODS;
use std::collections::{BTreeMap, HashMap, HashSet};

/// What names one connector operation: its tollgate operation, the FastAPI function behind it
/// and its method.
#[derive(Debug, Clone)]
pub(crate) struct NameParts {
    pub operation_index: usize,
    pub operation_name: String,
    pub function_name: String,
    pub method: String,
}

/// `validate` → `Validate`, `list-invoices` / `list_invoices` → `ListInvoices`.
pub(crate) fn pascal_case(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text.split(|c: char| !c.is_ascii_alphanumeric()) {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            out.push(first.to_ascii_uppercase());
            out.extend(chars);
        }
    }
    out
}

/// The FastAPI function's name. FastAPI's default operationId is the function name followed by
/// the path (non-word characters as `_`) and a method (`get_invoice_api_v1_invoices__id__get`);
/// one `api_route` shares one id across its methods, suffixed with any one of them, so every
/// method's suffix is tried. A custom operationId is taken whole.
pub(crate) fn function_name(operation_id: Option<&str>, openapi_path: &str) -> String {
    let Some(id) = operation_id else {
        return String::new();
    };
    let path: String = openapi_path
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    METHODS
        .iter()
        .find_map(|method| {
            id.strip_suffix(&format!("{path}_{method}"))
                .filter(|function| !function.is_empty())
        })
        .unwrap_or(id)
        .to_string()
}

/// One id per operation, in order. A tollgate operation that yields one connector operation
/// gives its own name; one that yields several adds the FastAPI function's name. Ids still
/// shared then get the method, then a number, until every id is unique.
pub(crate) fn operation_ids(parts: &[NameParts]) -> Vec<String> {
    let mut yields: BTreeMap<usize, usize> = BTreeMap::new();
    for part in parts {
        *yields.entry(part.operation_index).or_default() += 1;
    }
    let mut ids: Vec<String> = parts
        .iter()
        .map(|part| {
            let mut id = pascal_case(&part.operation_name);
            if yields.get(&part.operation_index).copied().unwrap_or(0) > 1 {
                id.push_str(&pascal_case(&part.function_name));
            }
            starting_with_a_letter(id)
        })
        .collect();
    let shared = shared_ids(&ids);
    for (id, part) in ids.iter_mut().zip(parts) {
        if shared.contains(id) {
            id.push_str(&pascal_case(&part.method.to_ascii_lowercase()));
        }
    }
    number_the_rest(&mut ids);
    ids
}

/// Ids given more than once.
fn shared_ids(ids: &[String]) -> HashSet<String> {
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for id in ids {
        *count.entry(id).or_default() += 1;
    }
    count
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(id, _)| id.to_string())
        .collect()
}

/// The first holder of a shared id keeps it; the others get the lowest free number from 2.
/// Each base resumes from the number its last holder got: numbers below it are all taken, and
/// thousands of holders of one id would otherwise search from 2 again each time.
fn number_the_rest(ids: &mut [String]) {
    let mut taken: HashSet<String> = HashSet::with_capacity(ids.len());
    let all: HashSet<String> = ids.iter().cloned().collect();
    let mut next: HashMap<String, u64> = HashMap::new();
    for id in ids.iter_mut() {
        if taken.insert(id.clone()) {
            continue;
        }
        let number = next.entry(id.clone()).or_insert(2);
        let mut candidate = format!("{id}{number}");
        while taken.contains(&candidate) || all.contains(&candidate) {
            *number = number.saturating_add(1);
            candidate = format!("{id}{number}");
        }
        *number = number.saturating_add(1);
        *id = candidate;
        taken.insert(id.clone());
    }
}

fn starting_with_a_letter(id: String) -> String {
    if id.starts_with(|c: char| c.is_ascii_alphabetic()) {
        id
    } else {
        format!("Op{id}")
    }
}

/// Characters other than letters, digits, spaces and parentheses become spaces (runs of them
/// one space); at most 80 characters, cut at a word when one ends late enough.
pub(crate) fn summary(text: &str) -> String {
    const MAX: usize = 80;
    let mut cleaned = String::with_capacity(text.len());
    for c in text.chars() {
        let keep = c.is_alphanumeric() || c == '(' || c == ')';
        if keep {
            cleaned.push(c);
        } else if !cleaned.ends_with(' ') && !cleaned.is_empty() {
            cleaned.push(' ');
        }
    }
    let cleaned = cleaned.trim_end();
    if cleaned.chars().count() <= MAX {
        return cleaned.to_string();
    }
    let cut: String = cleaned.chars().take(MAX).collect();
    match cut.rfind(' ') {
        Some(space) if space >= MAX / 2 => cut.get(..space).unwrap_or(&cut).to_string(),
        _ => cut,
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn part(index: usize, name: &str, function: &str, method: &str) -> NameParts {
        NameParts {
            operation_index: index,
            operation_name: name.into(),
            function_name: function.into(),
            method: method.into(),
        }
    }

    #[test]
    fn operation_names_become_pascal_case() {
        assert_eq!(pascal_case("validate"), "Validate");
        assert_eq!(pascal_case("list-invoices"), "ListInvoices");
        assert_eq!(pascal_case("list_invoices.v2"), "ListInvoicesV2");
        assert_eq!(pascal_case("getHTTP"), "GetHTTP");
    }

    #[test]
    fn the_function_name_is_recovered_from_fastapi_default_ids() {
        let path = "/api/v1/invoices/{invoice_id}";
        assert_eq!(
            function_name(Some("get_invoice_api_v1_invoices__invoice_id__get"), path),
            "get_invoice"
        );
        // One api_route, GET and PUT: FastAPI gives both the id ending in either method.
        let shared = Some("notes_api_v1_invoices__invoice_id__put");
        assert_eq!(function_name(shared, path), "notes");
        assert_eq!(function_name(Some("customId"), "/x"), "customId");
        assert_eq!(function_name(None, "/x"), "");
    }

    #[test]
    fn one_connector_operation_per_tollgate_operation_keeps_the_bare_name() {
        let ids = operation_ids(&[
            part(0, "validate", "validate", "POST"),
            part(1, "health", "healthz", "GET"),
        ]);
        assert_eq!(ids, ["Validate", "Health"]);
    }

    #[test]
    fn several_connector_operations_add_the_function_name() {
        let ids = operation_ids(&[
            part(0, "invoices", "list_invoices", "GET"),
            part(0, "invoices", "get_invoice", "GET"),
        ]);
        assert_eq!(ids, ["InvoicesListInvoices", "InvoicesGetInvoice"]);
    }

    #[test]
    fn one_function_under_several_methods_adds_the_method_then_a_number() {
        // FastAPI's api_route: one function, one operationId, several methods.
        let ids = operation_ids(&[
            part(0, "echo", "echo", "GET"),
            part(0, "echo", "echo", "POST"),
            part(1, "echo-more", "echo", "GET"),
            part(2, "echo_more", "echo", "GET"),
        ]);
        assert_eq!(
            ids,
            ["EchoEchoGet", "EchoEchoPost", "EchoMoreGet", "EchoMoreGet2"]
        );
        for id in &ids {
            assert!(id.chars().all(|c| c.is_ascii_alphanumeric()));
        }
    }

    #[test]
    fn a_number_never_lands_on_an_id_already_given() {
        let ids = operation_ids(&[
            part(0, "a", "", "GET"),
            part(1, "a2", "", "GET"),
            part(2, "a", "", "GET"),
        ]);
        // "A" twice → "AGet" twice → "AGet", "AGet2"; "A2" stays.
        assert_eq!(ids, ["AGet", "A2", "AGet2"]);
    }

    #[test]
    fn ids_start_with_a_letter() {
        assert_eq!(operation_ids(&[part(0, "2fa", "", "GET")]), ["Op2fa"]);
        assert_eq!(operation_ids(&[part(0, "_", "", "GET")]), ["Op"]);
    }

    #[test]
    fn summaries_keep_letters_digits_spaces_and_parentheses_within_80() {
        assert_eq!(summary("Get Invoice (by id)"), "Get Invoice (by id)");
        assert_eq!(
            summary("Validate an invoice: totals, VAT & dates."),
            "Validate an invoice totals VAT dates"
        );
        let long = "word ".repeat(30);
        let cut = summary(&long);
        assert!(cut.chars().count() <= 80, "{cut}");
        assert!(cut.ends_with("word"));
        assert_eq!(summary(&"x".repeat(100)).chars().count(), 80);
        assert_eq!(summary("Prüfe Rechnung"), "Prüfe Rechnung");
    }
}
