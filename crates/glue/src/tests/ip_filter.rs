//! The caller IP filter through the glue: the address is asked of the host only when a filter
//! applies, a refusal is the APIM 403 counted as `ip_forbidden`, and an address the host
//! cannot give is refused.

use super::{config, configured, post, KEY};
use crate::filter::Next;
use serde_json::{json, Value};
use tollgate_core::metrics::request_counter;

const READ: &str = "get_property source.address";

fn filtered_config() -> Value {
    let mut config = config();
    config["ip_filter"] = json!({ "allow": ["127.0.0.0/8", "::1"] });
    config
}

fn from(host: &super::FakeHost, address: &str) {
    *host.source_address.borrow_mut() = Some(address.as_bytes().to_vec());
}

#[test]
fn a_caller_outside_the_list_gets_the_apim_403_and_is_counted() {
    let (host, plugin) = configured(&filtered_config());
    let filter = plugin.new_filter(2).unwrap();
    post(&host, &[("ocp-apim-subscription-key", KEY)]);
    from(&host, "203.0.113.7:40000");
    assert_eq!(filter.borrow_mut().on_request_headers(&host), Next::Stop);
    let replies = host.replies.borrow();
    let reply = replies.first().unwrap();
    assert_eq!(reply.status, 403);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.body, r#"{"statusCode":403,"message":"Forbidden"}"#);
    drop(replies);
    assert_eq!(
        host.request_header("x-consumer-id").as_deref(),
        Some("spoofed")
    );
    assert_eq!(
        host.metric(&request_counter("validate", "-", "ip_forbidden")),
        Some(1)
    );
    assert_eq!(
        host.metric(&request_counter("validate", "invoice-flow", "allowed")),
        Some(0)
    );
}

#[test]
fn a_caller_inside_the_list_goes_on_to_its_credentials() {
    let (host, plugin) = configured(&filtered_config());
    for address in ["127.0.0.1:40000", "[::1]:40000"] {
        let filter = plugin.new_filter(2).unwrap();
        post(&host, &[("ocp-apim-subscription-key", KEY)]);
        from(&host, address);
        assert_eq!(
            filter.borrow_mut().on_request_headers(&host),
            Next::Continue,
            "{address}"
        );
        assert_eq!(
            host.calls.borrow().iter().filter(|c| **c == READ).count(),
            1
        );
    }
}

#[test]
fn without_a_filter_the_address_is_never_asked_for() {
    let (host, plugin) = configured(&config());
    let filter = plugin.new_filter(2).unwrap();
    post(&host, &[("ocp-apim-subscription-key", KEY)]);
    from(&host, "203.0.113.7:40000");
    assert_eq!(
        filter.borrow_mut().on_request_headers(&host),
        Next::Continue
    );
    assert!(!host.calls.borrow().contains(&READ));
}

#[test]
fn an_address_the_host_cannot_give_is_refused() {
    let (host, plugin) = configured(&filtered_config());
    for unusable in [None, Some("/var/run/envoy.sock")] {
        let filter = plugin.new_filter(2).unwrap();
        post(&host, &[("ocp-apim-subscription-key", KEY)]);
        *host.source_address.borrow_mut() = unusable.map(|text| text.as_bytes().to_vec());
        assert_eq!(filter.borrow_mut().on_request_headers(&host), Next::Stop);
        assert_eq!(host.replies.borrow().first().map(|r| r.status), Some(403));
    }
    let filter = plugin.new_filter(2).unwrap();
    post(&host, &[("ocp-apim-subscription-key", KEY)]);
    from(&host, "127.0.0.1:1");
    host.fail(READ);
    assert_eq!(filter.borrow_mut().on_request_headers(&host), Next::Stop);
    assert_eq!(host.replies.borrow().first().map(|r| r.status), Some(403));
}
