//! The configuration, checked once and compiled into the immutable plan the request path reads.
//! The plan is assembled from the sections' own compile steps (`jwt`, `limits`,
//! `dynamic_consumers`); every refusal names the path of the offending value
//! (`operations[2].rewrite: must start with '/'`).

use crate::body_limit::BodyLimit;
use crate::body_transform::BodyTransform;
use crate::cache::{CacheLayout, CachePolicy};
use crate::checks::{
    check_distinct_labels, check_header_name, check_identifier, check_path, check_query_name,
    is_token,
};
use crate::config::{
    AuthMode, Config, ConsumerConfig, FailureMode, HeaderRulesConfig, JwtConfig, OperationConfig,
    Override, ProductConfig, RateLimitHeadersConfig, Scope, Unmatched,
};
use crate::config_error::ConfigError;
use crate::cors::{compile_sections, CorsPolicy};
use crate::dynamic_consumers::{entry_keys, Pool};
use crate::global_limits::GlobalLimits;
use crate::ip_filter::IpFilter;
use crate::jwt::key_fetch::KeyFetch;
use crate::jwt::JwtPlan;
use crate::limits::{create_entries, CounterStore, Limit, Limits, StoreError};
use crate::operation::{MethodSet, OperationId, PathMatch, Route};
use crate::path_template::PathTemplate;
use crate::rewrite::{HeaderRules, PathRewrite};
use crate::route_table::{first_unreachable, RouteMatch, RouteTable};
use crate::subscription::{ConsumerId, KeyHash, KeyTable};
use crate::template::Template;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// Index of a product in the plan.
pub type ProductId = usize;

#[derive(Debug)]
pub struct Plan {
    /// Key header name, lower-cased for lookup.
    pub(crate) key_header: String,
    /// Key header name as configured, for the `WWW-Authenticate` challenge.
    pub(crate) key_header_display: String,
    pub(crate) key_query: String,
    pub(crate) products: Vec<Product>,
    pub(crate) consumers: Vec<Consumer>,
    pub(crate) keys: KeyTable,
    /// From a JWT client id (`consumers[].jwt_client_ids`) to its consumer.
    pub(crate) jwt_clients: HashMap<String, ConsumerId>,
    pub(crate) jwt: Option<JwtPlan>,
    /// JWT clients without a consumer, admitted through `jwt.default_product`.
    pub(crate) dynamic: Option<DynamicConsumers>,
    pub(crate) operations: Vec<Operation>,
    /// Which operation a request is (built from `operations`).
    pub(crate) routes: RouteTable,
    /// Lower-cased names of the headers that say who is calling: every header any operation
    /// sets or appends from `{consumer}`, `{product}` or a claim, and every
    /// `jwt.claims_to_headers` target. A backend may read them on any route, so no request
    /// tollgate forwards carries a client's own copy.
    pub(crate) identity_headers: Vec<String>,
    pub(crate) unmatched: Unmatched,
    /// Names of the rate-limit response headers; `None` = not sent.
    pub(crate) rate_headers: Option<RateHeaderNames>,
    /// The rate-limit service of global limits, if any.
    pub(crate) global: Option<GlobalLimits>,
    /// The top level's `max_request_body_bytes` (for requests no operation matches).
    pub(crate) body_limit: Option<BodyLimit>,
    /// The top level's `mask_backend_errors` (for requests no operation matches).
    pub(crate) mask_backend_errors: bool,
    /// The top level's `cors` section: operations without their own inherit it, and requests
    /// no operation matches follow it.
    pub(crate) cors: Option<Arc<CorsPolicy>>,
    /// The top level's caller IP filter: for operations without their own, and for requests
    /// no operation matches.
    pub(crate) ip_filter: Option<IpFilter>,
    /// The response cache's slots, when an operation is cached.
    pub(crate) cache: Option<CacheLayout>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateHeaderNames {
    pub limit: String,
    pub remaining: String,
    pub reset: String,
}

/// Valid tokens whose client is no configured consumer become their own consumer
/// (`jwt:<client>`) on this product, counted in a pool of `pool_size` slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DynamicConsumers {
    pub product: ProductId,
    pub pool_size: usize,
}

#[derive(Debug)]
pub struct Product {
    pub name: String,
    /// Limits counted in this process.
    pub limits: Limits,
    /// Limits counted by the rate-limit service (`"scope": "global"`).
    pub global: Limits,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Consumer {
    pub id: String,
    pub product: ProductId,
    pub jwt_client_ids: Vec<String>,
    /// Where its counters live in the shared store (`tollgate/c/<id>`), built once here.
    pub counter_key: String,
    /// Where its global limits are counted while the service fails (`tollgate/g/<id>`).
    pub fallback_key: String,
}

#[derive(Debug)]
pub struct Operation {
    pub name: String,
    pub route: Route,
    pub auth: AuthMode,
    /// Products allowed to call; `None` = any.
    pub products: Option<Vec<ProductId>>,
    pub rewrite: Option<PathRewrite>,
    pub request_headers: HeaderRules,
    pub response_headers: HeaderRules,
    /// The plan's identity headers this operation neither sets nor fills from claims: a
    /// client's copies are removed (decided here once, not per request).
    pub(crate) identity_removals: Vec<String>,
    /// `max_request_body_bytes`, the operation's own or the top level's.
    pub body_limit: Option<BodyLimit>,
    pub request_body: Option<BodyTransform>,
    pub response_body: Option<BodyTransform>,
    /// `mask_backend_errors`, the operation's own or the top level's.
    pub mask_backend_errors: bool,
    /// The `cors` section that applies: its own, the top level's, or none (`null`).
    pub(crate) cors: Option<Arc<CorsPolicy>>,
    /// Its own caller IP filter, or the top level's (`Plan::caller_filter`).
    pub(crate) ip_filter: Override<IpFilter>,
    /// Its response cache, if any.
    pub(crate) cache: Option<CachePolicy>,
}

impl crate::body_transform::OperationTransforms for Plan {
    fn request_transform(&self, operation: OperationId) -> Option<&BodyTransform> {
        self.operations.get(operation)?.request_body.as_ref()
    }

    fn response_transform(&self, operation: OperationId) -> Option<&BodyTransform> {
        self.operations.get(operation)?.response_body.as_ref()
    }
}

impl Operation {
    pub fn allows(&self, product: ProductId) -> bool {
        self.products
            .as_ref()
            .is_none_or(|allowed| allowed.contains(&product))
    }
}

impl Plan {
    /// Parses and checks a JSON configuration; the one entry point for the filter and the CLI.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ConfigError> {
        let mut deserializer = serde_json::Deserializer::from_slice(bytes);
        let config: Config =
            serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
                let path = err.path().to_string();
                let inner = err.into_inner();
                let syntax = inner.is_syntax() || inner.is_eof();
                let message = inner.to_string();
                // "." is the document itself, "?" a position serde could not name: there, and
                // for broken JSON syntax, line and column help; elsewhere the path says more
                // and stays the same however the JSON is laid out.
                let (path, message) = if path == "." || path == "?" {
                    ("configuration".to_string(), message)
                } else if syntax {
                    (path, message)
                } else {
                    let position = format!(" at line {} column {}", inner.line(), inner.column());
                    let short = message
                        .strip_suffix(&position)
                        .unwrap_or(&message)
                        .to_string();
                    (path, short)
                };
                if syntax {
                    ConfigError::Syntax { path, message }
                } else {
                    ConfigError::Shape { path, message }
                }
            })?;
        deserializer.end().map_err(|err| ConfigError::Syntax {
            path: "configuration".to_string(),
            message: err.to_string(),
        })?;
        crate::json_keys::reject_duplicate_keys(bytes)?;
        let mut plan = Self::compile(config)?;
        if let Some(layout) = plan.cache.as_mut() {
            // Not a secret: only to tell one configuration from another across workers.
            layout.config_hash = crate::keyed_hash::keyed_hash(&[0; 16], bytes) as u64;
        }
        Ok(plan)
    }

    pub fn compile(mut config: Config) -> Result<Self, ConfigError> {
        let key_header_display = config.subscription_key.header;
        check_header_name("subscription_key.header", &key_header_display)?;
        let key_query = config.subscription_key.query;
        check_query_name("subscription_key.query", &key_query)?;

        let ip_filter = config
            .ip_filter
            .map(|section| IpFilter::compile("ip_filter", section))
            .transpose()?;
        let global = config
            .global_limits
            .map(GlobalLimits::compile)
            .transpose()?;
        let products = compile_products(config.products, global.is_some())?;
        let product_ids: HashMap<&str, ProductId> = products
            .iter()
            .enumerate()
            .map(|(id, p)| (p.name.as_str(), id))
            .collect();
        let (consumers, keys) = compile_consumers(config.consumers, &product_ids)?;
        let body_limit = config
            .max_request_body_bytes
            .map(|max_bytes| BodyLimit { max_bytes });
        let body_limits: Vec<Option<BodyLimit>> = config
            .operations
            .iter()
            .map(|op| {
                op.max_request_body_bytes
                    .resolve(config.max_request_body_bytes.as_ref())
                    .map(|&max_bytes| BodyLimit { max_bytes })
            })
            .collect();
        let mask_backend_errors = config.mask_backend_errors.unwrap_or(false);
        let masks: Vec<bool> = config
            .operations
            .iter()
            .map(|op| op.mask_backend_errors.unwrap_or(mask_backend_errors))
            .collect();
        let cors_sections = config
            .operations
            .iter_mut()
            .map(|op| std::mem::take(&mut op.cors))
            .collect();
        let cache_sections: Vec<_> = config
            .operations
            .iter_mut()
            .map(|op| op.cache.take())
            .collect();
        let mut operations =
            compile_operations(config.operations, &product_ids, config.jwt.is_some())?;
        let cache_max_bytes = crate::cache::max_bytes(config.cache_limits.as_ref())?;
        let key_header = key_header_display.to_ascii_lowercase();
        for (index, (operation, section)) in operations.iter_mut().zip(cache_sections).enumerate() {
            if section.is_some() && operation.response_body.is_some() {
                // A reshaped answer is never stored (the cache would keep the backend's body,
                // not the client's): the pair could only ever miss.
                return Err(ConfigError::rule(
                    format!("operations[{index}].cache"),
                    "an operation with a response_body transform cannot be cached",
                ));
            }
            operation.cache = section
                .map(|section| {
                    crate::cache::compile_policy(
                        &format!("operations[{index}]"),
                        section,
                        &operation.route.methods,
                        cache_max_bytes,
                        &key_query,
                        &key_header,
                    )
                })
                .transpose()?;
        }
        let cache = crate::cache::layout(
            operations.iter().filter_map(|op| op.cache.as_ref()),
            cache_max_bytes,
            0,
        );
        for ((operation, limit), mask) in operations.iter_mut().zip(body_limits).zip(masks) {
            operation.body_limit = limit;
            operation.mask_backend_errors = mask;
        }
        let routes = compile_routes(&operations)?;
        let (jwt, dynamic) = match config.jwt {
            None => (None, None),
            Some(jwt) => compile_jwt(jwt, &operations, &product_ids)?,
        };
        let jwt_clients = consumers
            .iter()
            .enumerate()
            .flat_map(|(id, c)| {
                c.jwt_client_ids
                    .iter()
                    .map(move |client| (client.clone(), id))
            })
            .collect();

        let identity_headers = identity_headers(&operations, jwt.as_ref());
        for operation in &mut operations {
            operation.identity_removals =
                identity_removals(&identity_headers, operation, jwt.as_ref());
        }
        let rate_headers = compile_rate_headers(config.rate_limit_headers)?;
        let (cors, operation_cors) = compile_sections(config.cors, cors_sections)?;
        for (operation, cors) in operations.iter_mut().zip(operation_cors) {
            operation.cors = cors;
        }
        check_metric_labels(&consumers, &operations)?;

        Ok(Self {
            key_header,
            key_header_display,
            key_query,
            products,
            consumers,
            keys,
            jwt_clients,
            jwt,
            dynamic,
            operations,
            routes,
            identity_headers,
            unmatched: config.unmatched,
            rate_headers,
            global,
            body_limit,
            mask_backend_errors,
            cors,
            ip_filter,
            cache,
        })
    }

    /// The caller IP filter that applies to a request of `operation` (`None`: one no
    /// operation matched).
    pub(crate) fn caller_filter<'a>(
        &'a self,
        operation: Option<&'a Operation>,
    ) -> Option<&'a IpFilter> {
        match operation {
            Some(operation) => operation.ip_filter.resolve(self.ip_filter.as_ref()),
            None => self.ip_filter.as_ref(),
        }
    }

    /// Every counter entry a request may update: one per configured consumer whose product has
    /// limits, and the slot pool of dynamic JWT consumers when their product has limits.
    /// Created before any request (see `limits::create_entries`).
    pub fn counter_entries(&self) -> Vec<String> {
        let product = |id: ProductId| self.products.get(id);
        let local = |id| product(id).is_some_and(|p| p.limits.any());
        // Global limits fall back to local counters only in `failure_mode: local`.
        let fallback = |id| {
            self.global
                .as_ref()
                .is_some_and(|g| g.failure_mode == FailureMode::Local)
                && product(id).is_some_and(|p| p.global.any())
        };
        let mut keys = Vec::new();
        for consumer in &self.consumers {
            if local(consumer.product) {
                keys.push(consumer.counter_key.clone());
            }
            if fallback(consumer.product) {
                keys.push(consumer.fallback_key.clone());
            }
        }
        if let Some(dynamic) = self.dynamic {
            for (pool, used) in [
                (Pool::Local, local(dynamic.product)),
                (Pool::GlobalFallback, fallback(dynamic.product)),
            ] {
                if used {
                    keys.extend(entry_keys(pool, dynamic.pool_size));
                }
            }
        }
        keys
    }

    /// Creates, before any request, every counter entry the plan can use (existing ones keep
    /// their counts) and the dynamic pool's hash key; returns what could not be created.
    pub fn prepare_counters(&self, store: &dyn CounterStore) -> Vec<(String, StoreError)> {
        let keys = self.counter_entries();
        let mut failed: Vec<(String, StoreError)> = create_entries(store, &keys)
            .into_iter()
            .map(|(key, err)| (key.to_string(), err))
            .collect();
        if self.dynamic.is_some() {
            if let Err(err) = crate::dynamic_consumers::create_pool_key(store) {
                failed.push((crate::dynamic_consumers::POOL_KEY.to_string(), err));
            }
        }
        if let Some(layout) = &self.cache {
            failed.extend(crate::cache::prepare(store, layout));
        }
        failed
    }

    /// The response cache's slots (`slots × slot_bytes` bytes at most), when any operation is
    /// cached.
    pub fn cache_layout(&self) -> Option<CacheLayout> {
        self.cache
    }

    /// The rate-limit service of global limits, when the configuration has one.
    pub fn global_limits(&self) -> Option<&GlobalLimits> {
        self.global.as_ref()
    }

    pub fn operation_count(&self) -> usize {
        self.operations.len()
    }

    pub fn consumer_count(&self) -> usize {
        self.consumers.len()
    }

    pub fn product_count(&self) -> usize {
        self.products.len()
    }

    /// The name of the operation a `Trace` or a `Forward` names.
    pub fn operation_name(&self, operation: OperationId) -> Option<&str> {
        self.operations.get(operation).map(|op| op.name.as_str())
    }

    /// How many verified tokens a VM keeps (0 without a `jwt` section).
    pub fn token_cache_size(&self) -> usize {
        self.jwt.as_ref().map_or(0, |jwt| jwt.token_cache_size)
    }

    /// The fetch of remote signing keys, when the `jwt` section names a key source.
    pub fn key_fetch(&self) -> Option<KeyFetch> {
        self.jwt
            .as_ref()
            .and_then(|jwt| jwt.remote.clone())
            .map(KeyFetch::new)
    }

    /// The `cors` section of `operation`'s requests (its own or the one it inherits), or with
    /// no operation the top level's.
    pub(crate) fn cors(&self, operation: Option<OperationId>) -> Option<&CorsPolicy> {
        match operation {
            Some(id) => self.operations.get(id).and_then(|op| op.cors.as_deref()),
            None => self.cors.as_deref(),
        }
    }

    /// Whether tollgate answers preflights for `operation` (or for none): a section applies,
    /// or the top level's says what a preflight that matches nothing gets.
    pub(crate) fn answers_preflights(&self, operation: Option<OperationId>) -> bool {
        self.cors(operation).is_some() || self.cors.is_some()
    }

    /// The operation a request is (see `route_table.rs` for which wins), and what of its path
    /// the operation matched.
    pub fn match_operation(&self, method: &str, path: &str) -> Option<RouteMatch> {
        self.routes.lookup(method, path)
    }
}

fn compile_products(
    products: Option<BTreeMap<String, ProductConfig>>,
    global_section: bool,
) -> Result<Vec<Product>, ConfigError> {
    let Some(products) = products else {
        return Ok(Vec::new());
    };
    if products.is_empty() {
        return Err(ConfigError::rule(
            "products",
            "must not be empty when given",
        ));
    }
    products
        .into_iter()
        .map(|(name, product)| {
            let at = format!("products.{name}");
            check_identifier(&at, &name)?;
            let mut limits = Limits::default();
            let mut global = Limits::default();
            for (place, config, local_slot, global_slot) in [
                (
                    "rate_limit",
                    product.rate_limit,
                    &mut limits.rate,
                    &mut global.rate,
                ),
                ("quota", product.quota, &mut limits.quota, &mut global.quota),
            ] {
                let limit_at = format!("{at}.{place}");
                match Limit::compile(&limit_at, config)? {
                    None => {}
                    Some((limit, Scope::Local)) => *local_slot = Some(limit),
                    Some((limit, Scope::Global)) => {
                        if !global_section {
                            return Err(ConfigError::rule(
                                format!("{limit_at}.scope"),
                                "a global limit needs the 'global_limits' section (the \
                                 rate-limit service that counts it)",
                            ));
                        }
                        crate::global_limits::check_limit(&limit_at, &limit)?;
                        *global_slot = Some(limit);
                    }
                }
            }
            Ok(Product {
                limits,
                global,
                name,
            })
        })
        .collect()
}

/// The `jwt` section: the token rules, and the dynamic consumers it may admit.
fn compile_jwt(
    mut config: JwtConfig,
    operations: &[Operation],
    product_ids: &HashMap<&str, ProductId>,
) -> Result<(Option<JwtPlan>, Option<DynamicConsumers>), ConfigError> {
    let template_claims: BTreeSet<String> = operations
        .iter()
        .flat_map(|op| [&op.request_headers, &op.response_headers])
        .flat_map(HeaderRules::claim_names)
        .map(str::to_string)
        .collect();
    let default_product = config.default_product.take();
    let max_dynamic_consumers = config.max_dynamic_consumers;
    // The token rules first, then the consumer ones: a section with several faults is
    // reported at the same one as ever.
    let jwt = JwtPlan::compile(config, &template_claims)?;
    let product = match default_product {
        None => None,
        Some(name) => Some(*product_ids.get(name.as_str()).ok_or_else(|| {
            ConfigError::rule("jwt.default_product", format!("unknown product '{name}'"))
        })?),
    };
    let pool_size = crate::dynamic_consumers::pool_size(max_dynamic_consumers)?;
    let dynamic = product.map(|product| DynamicConsumers { product, pool_size });
    Ok((Some(jwt), dynamic))
}

fn compile_rate_headers(
    config: Option<RateLimitHeadersConfig>,
) -> Result<Option<RateHeaderNames>, ConfigError> {
    let names = match config {
        Some(RateLimitHeadersConfig::Off) => return Ok(None),
        Some(RateLimitHeadersConfig::Names(names)) => names,
        None => crate::config::RateLimitHeaderNames {
            limit: None,
            remaining: None,
            reset: None,
        },
    };
    let pick = |at: &str, name: Option<String>, default: &str| {
        let name = name.unwrap_or_else(|| default.to_string());
        check_header_name(at, &name).map(|()| name.to_ascii_lowercase())
    };
    let compiled = RateHeaderNames {
        limit: pick("rate_limit_headers.limit", names.limit, "x-ratelimit-limit")?,
        remaining: pick(
            "rate_limit_headers.remaining",
            names.remaining,
            "x-ratelimit-remaining",
        )?,
        reset: pick("rate_limit_headers.reset", names.reset, "x-ratelimit-reset")?,
    };
    if compiled.limit == compiled.remaining
        || compiled.limit == compiled.reset
        || compiled.remaining == compiled.reset
    {
        return Err(ConfigError::rule(
            "rate_limit_headers",
            "the three header names must differ",
        ));
    }
    Ok(Some(compiled))
}

fn compile_consumers(
    consumers: Option<Vec<ConsumerConfig>>,
    product_ids: &HashMap<&str, ProductId>,
) -> Result<(Vec<Consumer>, KeyTable), ConfigError> {
    let Some(consumers) = consumers else {
        return Ok((Vec::new(), KeyTable::default()));
    };
    if consumers.is_empty() {
        return Err(ConfigError::rule(
            "consumers",
            "must not be empty when given",
        ));
    }
    let mut keys = KeyTable::default();
    let mut ids: HashMap<String, usize> = HashMap::new();
    let mut client_ids: HashMap<String, String> = HashMap::new();
    let mut compiled = Vec::with_capacity(consumers.len());
    for (index, consumer) in consumers.into_iter().enumerate() {
        let at = format!("consumers[{index}]");
        check_identifier(&format!("{at}.id"), &consumer.id)?;
        if let Some(first) = ids.insert(consumer.id.clone(), index) {
            return Err(ConfigError::rule(
                format!("{at}.id"),
                format!(
                    "duplicate consumer id '{}' (also consumers[{first}])",
                    consumer.id
                ),
            ));
        }
        let product = *product_ids.get(consumer.product.as_str()).ok_or_else(|| {
            ConfigError::rule(
                format!("{at}.product"),
                unknown_product(&consumer.product, product_ids),
            )
        })?;
        if consumer.keys.is_none() && consumer.jwt_client_ids.is_none() {
            return Err(ConfigError::rule(
                at,
                "needs at least one of 'keys' or 'jwt_client_ids'",
            ));
        }
        if let Some(hashes) = &consumer.keys {
            if hashes.is_empty() {
                return Err(ConfigError::rule(
                    format!("{at}.keys"),
                    "must not be empty when given",
                ));
            }
            for (k, text) in hashes.iter().enumerate() {
                let key_at = format!("{at}.keys[{k}]");
                let hash = KeyHash::parse(text).map_err(|err| ConfigError::rule(&key_at, err))?;
                if let Some(holder) = keys.insert(hash, index) {
                    let holder_id = compiled
                        .get(holder)
                        .map_or(consumer.id.as_str(), |c: &Consumer| c.id.as_str());
                    return Err(ConfigError::rule(
                        key_at,
                        format!("duplicate key, already held by consumer '{holder_id}'"),
                    ));
                }
            }
        }
        if consumer.jwt_client_ids.as_ref().is_some_and(Vec::is_empty) {
            return Err(ConfigError::rule(
                format!("{at}.jwt_client_ids"),
                "must not be empty when given",
            ));
        }
        let jwt_client_ids = consumer.jwt_client_ids.unwrap_or_default();
        for (c, client_id) in jwt_client_ids.iter().enumerate() {
            let client_at = format!("{at}.jwt_client_ids[{c}]");
            if client_id.is_empty() {
                return Err(ConfigError::rule(client_at, "must not be empty"));
            }
            if let Some(holder) = client_ids.insert(client_id.clone(), consumer.id.clone()) {
                return Err(ConfigError::rule(
                    client_at,
                    format!(
                        "duplicate client id '{client_id}', already mapped to consumer '{holder}'"
                    ),
                ));
            }
        }
        compiled.push(Consumer {
            counter_key: crate::limits::counter_key(&consumer.id),
            fallback_key: crate::limits::fallback_counter_key(&consumer.id),
            id: consumer.id,
            product,
            jwt_client_ids,
        });
    }
    Ok((compiled, keys))
}

fn compile_operations(
    operations: Vec<OperationConfig>,
    product_ids: &HashMap<&str, ProductId>,
    jwt_configured: bool,
) -> Result<Vec<Operation>, ConfigError> {
    if operations.is_empty() {
        return Err(ConfigError::rule("operations", "must not be empty"));
    }
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut compiled = Vec::with_capacity(operations.len());
    for (index, op) in operations.into_iter().enumerate() {
        let at = format!("operations[{index}]");
        check_identifier(&format!("{at}.name"), &op.name)?;
        if let Some(first) = names.insert(op.name.clone(), index) {
            return Err(ConfigError::rule(
                format!("{at}.name"),
                format!(
                    "duplicate operation name '{}' (also operations[{first}])",
                    op.name
                ),
            ));
        }
        compiled.push(compile_operation(&at, op, product_ids, jwt_configured)?);
    }
    Ok(compiled)
}

fn compile_operation(
    at: &str,
    op: OperationConfig,
    product_ids: &HashMap<&str, ProductId>,
    jwt_configured: bool,
) -> Result<Operation, ConfigError> {
    let methods = match op.methods {
        None => MethodSet::any(),
        Some(methods) => {
            if methods.is_empty() {
                return Err(ConfigError::rule(
                    format!("{at}.methods"),
                    "must not be empty when given (leave it out for any method)",
                ));
            }
            for (m, method) in methods.iter().enumerate() {
                if !is_token(method) {
                    return Err(ConfigError::rule(
                        format!("{at}.methods[{m}]"),
                        format!("{method:?} is not an HTTP method"),
                    ));
                }
            }
            MethodSet::of(methods)
        }
    };
    let path = match (op.path, op.path_prefix, op.path_template) {
        (Some(path), None, None) => {
            check_path(&format!("{at}.path"), &path)?;
            PathMatch::Exact(path)
        }
        (None, Some(prefix), None) => {
            check_path(&format!("{at}.path_prefix"), &prefix)?;
            PathMatch::Prefix(prefix)
        }
        (None, None, Some(template)) => PathMatch::Template(
            PathTemplate::parse(&template)
                .map_err(|err| ConfigError::rule(format!("{at}.path_template"), err))?,
        ),
        (None, None, None) => {
            return Err(ConfigError::rule(
                at,
                "needs one of 'path', 'path_prefix' or 'path_template'",
            ))
        }
        _ => {
            return Err(ConfigError::rule(
                at,
                "give one of 'path', 'path_prefix' or 'path_template', not several",
            ))
        }
    };
    let needs_jwt = matches!(op.auth, AuthMode::Jwt | AuthMode::Either | AuthMode::Both);
    if needs_jwt && !jwt_configured {
        return Err(ConfigError::rule(
            format!("{at}.auth"),
            format!("'{}' needs the 'jwt' section", op.auth.as_str()),
        ));
    }
    let products = match op.products {
        None => None,
        Some(_) if op.auth == AuthMode::None => {
            return Err(ConfigError::rule(
                format!("{at}.products"),
                "an operation with auth 'none' has no consumer, so it cannot restrict products",
            ))
        }
        Some(names) => {
            if names.is_empty() {
                return Err(ConfigError::rule(
                    format!("{at}.products"),
                    "must not be empty when given (leave it out to allow every product)",
                ));
            }
            let mut ids = Vec::with_capacity(names.len());
            for (p, name) in names.iter().enumerate() {
                let id = *product_ids.get(name.as_str()).ok_or_else(|| {
                    ConfigError::rule(
                        format!("{at}.products[{p}]"),
                        unknown_product(name, product_ids),
                    )
                })?;
                ids.push(id);
            }
            Some(ids)
        }
    };
    let rewrite = match op.rewrite {
        None => None,
        Some(rewrite) => {
            let at = format!("{at}.rewrite");
            check_path(&at, &rewrite)?;
            Some(match &path {
                PathMatch::Template(template) => {
                    let params: Vec<&str> = template.param_names().collect();
                    PathRewrite::fill(&rewrite, &params)
                        .map_err(|err| ConfigError::rule(at, err))?
                }
                PathMatch::Exact(_) | PathMatch::Prefix(_) => PathRewrite::Replace(rewrite),
            })
        }
    };
    let request_body = op
        .request_body
        .map(|config| BodyTransform::compile(&format!("{at}.request_body"), config))
        .transpose()?;
    let response_body = op
        .response_body
        .map(|config| BodyTransform::compile(&format!("{at}.response_body"), config))
        .transpose()?;
    Ok(Operation {
        name: op.name,
        route: Route { methods, path },
        auth: op.auth,
        products,
        rewrite,
        request_headers: compile_header_rules(
            &format!("{at}.request_headers"),
            op.request_headers,
        )?,
        response_headers: compile_header_rules(
            &format!("{at}.response_headers"),
            op.response_headers,
        )?,
        identity_removals: Vec::new(),
        body_limit: None,
        request_body,
        response_body,
        mask_backend_errors: false,
        cors: None,
        ip_filter: crate::ip_filter::compile_override(at, op.ip_filter)?,
        cache: None,
    })
}

fn identity_headers(operations: &[Operation], jwt: Option<&JwtPlan>) -> Vec<String> {
    let mut names: BTreeSet<String> = operations
        .iter()
        .flat_map(|op| {
            op.request_headers
                .set
                .iter()
                .chain(&op.request_headers.append)
        })
        .filter(|(_, template)| template.is_identity())
        .map(|(name, _)| name.clone())
        .collect();
    if let Some(jwt) = jwt {
        names.extend(
            jwt.claims_to_headers
                .iter()
                .map(|(_, header)| header.clone()),
        );
    }
    names.into_iter().collect()
}

/// Identity headers that `operation` leaves to be removed: those it `set`s are replaced by
/// its own rules, the claim headers are set or removed from the token.
fn identity_removals(
    identity_headers: &[String],
    operation: &Operation,
    jwt: Option<&JwtPlan>,
) -> Vec<String> {
    let claim_header =
        |name: &String| jwt.is_some_and(|jwt| jwt.claims_to_headers.iter().any(|(_, h)| h == name));
    identity_headers
        .iter()
        .filter(|name| !operation.request_headers.sets(name) && !claim_header(name))
        .cloned()
        .collect()
}

/// How a refusal of an operation no request could reach begins (`tollgate init` leaves such
/// operations out rather than fail).
pub(crate) const UNREACHABLE: &str = "can never be reached";

/// The route table, refusing an operation no request could reach: a template behind another
/// of the same shape for the same methods (or behind a prefix that takes all it matches), or a
/// `path` that an earlier template takes.
fn compile_routes(operations: &[Operation]) -> Result<RouteTable, ConfigError> {
    let routes: Vec<Route> = operations.iter().map(|op| op.route.clone()).collect();
    let table = RouteTable::new(&routes);
    if let Some(found) = first_unreachable(&table, &routes) {
        let (Some(shadowed), Some(winner)) = (
            operations.get(found.operation),
            operations.get(found.taken_by),
        ) else {
            return Ok(table);
        };
        let key = match shadowed.route.path {
            PathMatch::Template(_) => "path_template",
            PathMatch::Exact(_) => "path",
            PathMatch::Prefix(_) => "path_prefix",
        };
        return Err(ConfigError::rule(
            format!("operations[{}].{key}", found.operation),
            format!(
                "{UNREACHABLE}: operations[{}] ('{}', {}) takes every request it matches",
                found.taken_by,
                winner.name,
                winner.route.path.as_str()
            ),
        ));
    }
    Ok(table)
}

fn compile_header_rules(
    at: &str,
    rules: Option<HeaderRulesConfig>,
) -> Result<HeaderRules, ConfigError> {
    let rules = rules.unwrap_or_default();
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut claim = |name: &str, place: String| -> Result<String, ConfigError> {
        check_header_name(&place, name)?;
        let lower = name.to_ascii_lowercase();
        if let Some(first) = seen.insert(lower.clone(), place.clone()) {
            return Err(ConfigError::rule(
                place,
                format!("header '{name}' is already named at {first}"),
            ));
        }
        Ok(lower)
    };
    let mut compiled = HeaderRules::default();
    for (name, value) in rules.set.unwrap_or_default() {
        let place = format!("{at}.set.{name}");
        let lower = claim(&name, place.clone())?;
        let template = Template::parse(&value).map_err(|err| ConfigError::rule(place, err))?;
        compiled.set.push((lower, template));
    }
    for (name, value) in rules.append.unwrap_or_default() {
        let place = format!("{at}.append.{name}");
        let lower = claim(&name, place.clone())?;
        let template = Template::parse(&value).map_err(|err| ConfigError::rule(place, err))?;
        compiled.append.push((lower, template));
    }
    if let Some(remove) = rules.remove {
        if remove.is_empty() {
            return Err(ConfigError::rule(
                format!("{at}.remove"),
                "must not be empty when given",
            ));
        }
        for (r, name) in remove.iter().enumerate() {
            compiled
                .remove
                .push(claim(name, format!("{at}.remove[{r}]"))?);
        }
    }
    Ok(compiled)
}

/// Consumer ids and operation names are metric labels: distinct once labelled, and not one of
/// the labels tollgate uses itself (`-` for none; dynamic consumers are `jwt:<client>`, so a
/// configured id may not start with `jwt:`).
fn check_metric_labels(
    consumers: &[Consumer],
    operations: &[Operation],
) -> Result<(), ConfigError> {
    if let Some((index, consumer)) = consumers
        .iter()
        .enumerate()
        .find(|(_, c)| c.id.starts_with("jwt:"))
    {
        return Err(ConfigError::rule(
            format!("consumers[{index}].id"),
            format!(
                "'{}' may not start with 'jwt:', the prefix of dynamic JWT consumers",
                consumer.id
            ),
        ));
    }
    check_distinct_labels(
        consumers
            .iter()
            .enumerate()
            .map(|(i, c)| (format!("consumers[{i}].id"), c.id.as_str())),
        &[crate::checks::NO_LABEL],
    )?;
    check_distinct_labels(
        operations
            .iter()
            .enumerate()
            .map(|(i, op)| (format!("operations[{i}].name"), op.name.as_str())),
        &[crate::checks::NO_LABEL],
    )
}

fn unknown_product(name: &str, product_ids: &HashMap<&str, ProductId>) -> String {
    let mut known: Vec<&str> = product_ids.keys().copied().collect();
    known.sort_unstable();
    if known.is_empty() {
        format!("unknown product '{name}' (no products are configured)")
    } else {
        format!("unknown product '{name}' (known: {})", known.join(", "))
    }
}

#[cfg(test)]
mod tests;
