//! A JMESPath expression, checked once at load and evaluated under a work budget.
//!
//! The `jmespath` crate parses the expression and supplies the values, comparisons, slices and
//! the specification's functions. Its own interpreter has no bound on the work one evaluation
//! may do (`[@,@][*].[@,@][*]...` doubles it at every step, `to_string` copies whatever it is
//! given), so the parsed expression is walked here instead: the same rules node for node, each
//! step charged against a budget. Functions that take an expression (`map`, `sort_by`,
//! `max_by`, `min_by`) are evaluated here too, so their expression is charged like any other.

use jmespath::ast::{Ast, Comparator};
use jmespath::functions::{ArgumentType, Signature};
use jmespath::{Context, ErrorReason, JmespathError, Rcvar, RuntimeError, Variable};
use std::collections::BTreeMap;
use std::fmt;

/// Longest expression accepted, in bytes.
pub const MAX_EXPRESSION_BYTES: usize = 4096;
/// Most brackets and prefix operators (`(`, `[`, `{`, `!`, `&`) an expression may hold: the
/// parser recurses once for each, and the module's stack is small (1 MiB in wasm).
pub const MAX_NESTING_TOKENS: usize = 256;
/// Deepest parsed expression accepted: evaluation recurses once per level.
pub const MAX_AST_DEPTH: usize = 256;

/// Functions that take an expression reference, evaluated here (under the budget) rather than
/// by the crate's interpreter.
const WALKED_FUNCTIONS: [&str; 4] = ["map", "sort_by", "max_by", "min_by"];

/// Why an expression is refused at load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompileError {
    TooLong {
        bytes: usize,
    },
    TooNested,
    /// The parser's message, and where.
    Syntax {
        message: String,
        column: usize,
    },
    UnknownFunction(String),
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLong { bytes } => write!(
                f,
                "expression is {bytes} bytes long; at most {MAX_EXPRESSION_BYTES} are accepted"
            ),
            Self::TooNested => write!(
                f,
                "expression is nested too deeply (at most {MAX_NESTING_TOKENS} brackets and \
                 '!'/'&' operators, {MAX_AST_DEPTH} levels)"
            ),
            Self::Syntax { message, column } => {
                write!(f, "invalid JMESPath at column {column}: {message}")
            }
            Self::UnknownFunction(name) => write!(f, "unknown JMESPath function '{name}'"),
        }
    }
}

/// Why an evaluation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EvalError {
    /// The expression's own error (a type error on an unexpected shape, say).
    Failed(String),
    /// The evaluation used up its budget of steps.
    OverBudget,
}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Failed(message) => f.write_str(message),
            Self::OverBudget => f.write_str("the expression exceeded its work budget"),
        }
    }
}

impl From<JmespathError> for EvalError {
    fn from(err: JmespathError) -> Self {
        Self::Failed(match err.reason {
            // "Runtime error: " adds nothing a caller needs.
            ErrorReason::Runtime(reason) => reason.to_string(),
            ErrorReason::Parse(message) => message,
        })
    }
}

/// A compiled expression.
#[derive(Clone, PartialEq)]
pub struct Expression {
    source: String,
    ast: Ast,
}

impl fmt::Debug for Expression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Expression({:?})", self.source)
    }
}

impl Expression {
    /// Parses `source`, refusing what could not run: too long or too deep for the module's
    /// stack, bad syntax, a function JMESPath does not have.
    pub fn compile(source: &str) -> Result<Self, CompileError> {
        if source.len() > MAX_EXPRESSION_BYTES {
            return Err(CompileError::TooLong {
                bytes: source.len(),
            });
        }
        if nesting_tokens(source) > MAX_NESTING_TOKENS {
            return Err(CompileError::TooNested);
        }
        let ast = jmespath::parse(source).map_err(|err| CompileError::Syntax {
            message: match err.reason {
                ErrorReason::Parse(message) => message,
                ErrorReason::Runtime(reason) => reason.to_string(),
            },
            column: err.column,
        })?;
        check_tree(&ast)?;
        Ok(Self {
            source: source.to_string(),
            ast,
        })
    }

    /// Evaluates the expression against `data`, in at most `budget` steps (see `Walk`).
    pub fn evaluate(&self, data: &Rcvar, budget: u64) -> Result<Rcvar, EvalError> {
        let mut walk = Walk {
            ctx: Context::new(&self.source, &jmespath::DEFAULT_RUNTIME),
            steps_left: budget,
        };
        walk.eval(data, &self.ast)
    }
}

/// Brackets and prefix operators outside quoted text: an upper bound on how deep the parser
/// recurses.
fn nesting_tokens(source: &str) -> usize {
    let mut count = 0usize;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in source.chars() {
        if let Some(open) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == open {
                quote = None;
            }
            continue;
        }
        match c {
            '\'' | '"' | '`' => quote = Some(c),
            '(' | '[' | '{' | '!' | '&' => count += 1,
            _ => {}
        }
    }
    count
}

/// Refuses an expression deeper than `MAX_AST_DEPTH` or calling an unknown function. Walks
/// with its own stack: the tree may be deeper than what is accepted.
fn check_tree(root: &Ast) -> Result<(), CompileError> {
    let mut pending: Vec<(&Ast, usize)> = vec![(root, 1)];
    while let Some((node, depth)) = pending.pop() {
        if depth > MAX_AST_DEPTH {
            return Err(CompileError::TooNested);
        }
        let below = depth + 1;
        match node {
            Ast::Comparison { lhs, rhs, .. }
            | Ast::Subexpr { lhs, rhs, .. }
            | Ast::Or { lhs, rhs, .. }
            | Ast::And { lhs, rhs, .. }
            | Ast::Projection { lhs, rhs, .. } => {
                pending.push((lhs, below));
                pending.push((rhs, below));
            }
            Ast::Condition {
                predicate, then, ..
            } => {
                pending.push((predicate, below));
                pending.push((then, below));
            }
            Ast::Expref { ast: inner, .. }
            | Ast::Flatten { node: inner, .. }
            | Ast::Not { node: inner, .. }
            | Ast::ObjectValues { node: inner, .. } => pending.push((inner, below)),
            Ast::Function { name, args, .. } => {
                if jmespath::DEFAULT_RUNTIME.get_function(name).is_none() {
                    return Err(CompileError::UnknownFunction(name.clone()));
                }
                pending.extend(args.iter().map(|arg| (arg, below)));
            }
            Ast::MultiList { elements, .. } => {
                pending.extend(elements.iter().map(|element| (element, below)));
            }
            Ast::MultiHash { elements, .. } => {
                pending.extend(elements.iter().map(|pair| (&pair.value, below)));
            }
            Ast::Identity { .. }
            | Ast::Field { .. }
            | Ast::Index { .. }
            | Ast::Literal { .. }
            | Ast::Slice { .. } => {}
        }
    }
    Ok(())
}

fn null() -> Rcvar {
    Rcvar::new(Variable::Null)
}

/// One evaluation. A step is one node evaluated, or one value a node or a function touches:
/// an element projected, flattened or sliced; a function's arguments by size (their elements
/// and every 16 bytes of their strings; the whole value for `to_string`, `contains` and
/// `==`/`!=`, which go through all of it; times log2 of the length for the sorting ones).
/// Work and memory are therefore proportional to the budget, whatever the expression does.
struct Walk<'a> {
    ctx: Context<'a>,
    steps_left: u64,
}

impl Walk<'_> {
    fn charge(&mut self, steps: u64) -> Result<(), EvalError> {
        self.steps_left = self
            .steps_left
            .checked_sub(steps)
            .ok_or(EvalError::OverBudget)?;
        Ok(())
    }

    fn eval(&mut self, data: &Rcvar, node: &Ast) -> Result<Rcvar, EvalError> {
        self.charge(1)?;
        match node {
            Ast::Field { name, .. } => Ok(data.get_field(name)),
            Ast::Subexpr { lhs, rhs, .. } => {
                let left = self.eval(data, lhs)?;
                self.eval(&left, rhs)
            }
            Ast::Identity { .. } => Ok(data.clone()),
            Ast::Literal { value, .. } => Ok(value.clone()),
            Ast::Index { idx, .. } => Ok(match usize::try_from(*idx) {
                Ok(index) => data.get_index(index),
                Err(_) => data.get_negative_index(idx.unsigned_abs() as usize),
            }),
            Ast::Or { lhs, rhs, .. } => {
                let left = self.eval(data, lhs)?;
                if left.is_truthy() {
                    Ok(left)
                } else {
                    self.eval(data, rhs)
                }
            }
            Ast::And { lhs, rhs, .. } => {
                let left = self.eval(data, lhs)?;
                if left.is_truthy() {
                    self.eval(data, rhs)
                } else {
                    Ok(left)
                }
            }
            Ast::Not { node, .. } => {
                let value = self.eval(data, node)?;
                Ok(Rcvar::new(Variable::Bool(!value.is_truthy())))
            }
            Ast::Condition {
                predicate, then, ..
            } => {
                if self.eval(data, predicate)?.is_truthy() {
                    self.eval(data, then)
                } else {
                    Ok(null())
                }
            }
            Ast::Comparison {
                comparator,
                lhs,
                rhs,
                ..
            } => {
                let left = self.eval(data, lhs)?;
                let right = self.eval(data, rhs)?;
                if matches!(comparator, Comparator::Equal | Comparator::NotEqual) {
                    // Equality stops at the smaller side's end.
                    let cost = self.deep_size(&left).min(self.deep_size(&right));
                    self.charge(cost)?;
                }
                Ok(left
                    .compare(comparator, &right)
                    .map_or_else(null, |result| Rcvar::new(Variable::Bool(result))))
            }
            Ast::ObjectValues { node, .. } => {
                let subject = self.eval(data, node)?;
                match subject.as_object() {
                    Some(object) => {
                        self.charge(len(object.len()))?;
                        Ok(Rcvar::new(Variable::Array(
                            object.values().cloned().collect(),
                        )))
                    }
                    None => Ok(null()),
                }
            }
            Ast::Projection { lhs, rhs, .. } => {
                let left = self.eval(data, lhs)?;
                let Some(elements) = left.as_array() else {
                    return Ok(null());
                };
                let mut collected = Vec::new();
                for element in elements {
                    let value = self.eval(element, rhs)?;
                    if !value.is_null() {
                        collected.push(value);
                    }
                }
                Ok(Rcvar::new(Variable::Array(collected)))
            }
            Ast::Flatten { node, .. } => {
                let value = self.eval(data, node)?;
                let Some(elements) = value.as_array() else {
                    return Ok(null());
                };
                let mut collected = Vec::new();
                for element in elements {
                    match element.as_array() {
                        Some(inner) => {
                            self.charge(len(inner.len()).saturating_add(1))?;
                            collected.extend(inner.iter().cloned());
                        }
                        None => {
                            self.charge(1)?;
                            collected.push(element.clone());
                        }
                    }
                }
                Ok(Rcvar::new(Variable::Array(collected)))
            }
            Ast::MultiList { elements, .. } => {
                if data.is_null() {
                    return Ok(null());
                }
                let mut collected = Vec::with_capacity(elements.len());
                for element in elements {
                    collected.push(self.eval(data, element)?);
                }
                Ok(Rcvar::new(Variable::Array(collected)))
            }
            Ast::MultiHash { elements, .. } => {
                if data.is_null() {
                    return Ok(null());
                }
                let mut collected = BTreeMap::new();
                for pair in elements {
                    let value = self.eval(data, &pair.value)?;
                    collected.insert(pair.key.clone(), value);
                }
                Ok(Rcvar::new(Variable::Object(collected)))
            }
            Ast::Function { name, args, offset } => {
                let mut values = Vec::with_capacity(args.len());
                for arg in args {
                    values.push(self.eval(data, arg)?);
                }
                self.ctx.offset = *offset;
                self.call(name, &values)
            }
            Ast::Expref { ast, .. } => Ok(Rcvar::new(Variable::Expref(ast.as_ref().clone()))),
            Ast::Slice {
                start,
                stop,
                step,
                offset,
            } => {
                if *step == 0 {
                    self.ctx.offset = *offset;
                    let reason = ErrorReason::Runtime(RuntimeError::InvalidSlice);
                    return Err(JmespathError::from_ctx(&self.ctx, reason).into());
                }
                if let Some(elements) = data.as_array() {
                    self.charge(len(elements.len()))?;
                }
                Ok(data
                    .slice(*start, *stop, *step)
                    .map_or_else(null, |elements| Rcvar::new(Variable::Array(elements))))
            }
        }
    }

    fn call(&mut self, name: &str, args: &[Rcvar]) -> Result<Rcvar, EvalError> {
        if WALKED_FUNCTIONS.contains(&name) {
            return self.call_with_expression(name, args);
        }
        // The crate divides by zero here and fails; the specification answers null.
        if name == "avg"
            && args.len() == 1
            && args
                .first()
                .and_then(|a| a.as_array())
                .is_some_and(Vec::is_empty)
        {
            return Ok(null());
        }
        let mut cost: u64 = 0;
        for arg in args {
            let size = match name {
                "to_string" | "contains" => self.deep_size(arg),
                _ => shallow_size(arg),
            };
            cost = cost.saturating_add(size);
        }
        if matches!(name, "sort" | "max" | "min") {
            cost = cost.saturating_mul(log2_len(args.first()));
        }
        self.charge(cost)?;
        match self.ctx.runtime.get_function(name) {
            Some(function) => Ok(function.evaluate(args, &mut self.ctx)?),
            None => {
                let reason = ErrorReason::Runtime(RuntimeError::UnknownFunction(name.to_string()));
                Err(JmespathError::from_ctx(&self.ctx, reason).into())
            }
        }
    }

    /// `map`, `sort_by`, `max_by`, `min_by`: as the crate has them, with the expression walked
    /// here.
    fn call_with_expression(&mut self, name: &str, args: &[Rcvar]) -> Result<Rcvar, EvalError> {
        let signature = match name {
            "map" => Signature::new(vec![ArgumentType::Expref, ArgumentType::Array], None),
            _ => Signature::new(vec![ArgumentType::Array, ArgumentType::Expref], None),
        };
        signature.validate(args, &self.ctx)?;
        let (expression_arg, array_arg) = match name {
            "map" => (args.first(), args.get(1)),
            _ => (args.get(1), args.first()),
        };
        let (Some(expression), Some(elements)) = (
            expression_arg.and_then(|arg| arg.as_expref()),
            array_arg.and_then(|arg| arg.as_array()),
        ) else {
            // The signature was checked: unreachable, but never a panic.
            return Ok(null());
        };
        let expression = expression.clone();
        if name == "map" {
            let mut results = Vec::with_capacity(elements.len());
            for element in elements {
                results.push(self.eval(element, &expression)?);
            }
            return Ok(Rcvar::new(Variable::Array(results)));
        }
        if elements.is_empty() {
            return Ok(match name {
                "sort_by" => Rcvar::new(Variable::Array(Vec::new())),
                _ => null(),
            });
        }
        let mut keyed: Vec<(Rcvar, Rcvar)> = Vec::with_capacity(elements.len());
        let mut key_type = None;
        for (invocation, element) in elements.iter().enumerate() {
            let key = self.eval(element, &expression)?;
            let actual = key.get_type();
            let expected = match &key_type {
                None if matches!(*key, Variable::String(_) | Variable::Number(_)) => None,
                None => Some("expression->number|expression->string".to_string()),
                Some(first) if *first != actual => Some(format!("expression->{first}")),
                Some(_) => None,
            };
            if let Some(expected) = expected {
                let reason = ErrorReason::Runtime(RuntimeError::InvalidReturnType {
                    expected,
                    actual: actual.to_string(),
                    position: 1,
                    invocation: invocation.max(1),
                });
                return Err(JmespathError::from_ctx(&self.ctx, reason).into());
            }
            if key_type.is_none() {
                key_type = Some(actual);
            }
            keyed.push((element.clone(), key));
        }
        let sorting = len(keyed.len()).saturating_mul(log2(keyed.len()));
        self.charge(sorting)?;
        match name {
            "sort_by" => {
                keyed.sort_by(|a, b| a.1.cmp(&b.1));
                Ok(Rcvar::new(Variable::Array(
                    keyed.into_iter().map(|(element, _)| element).collect(),
                )))
            }
            // The first of equal keys wins, as in the crate.
            "max_by" => Ok(best(keyed, |key, best| key > best)),
            _ => Ok(best(keyed, |key, best| key < best)),
        }
    }

    /// The size of `value` counted to the end (shared parts as often as they are reached), or
    /// one past what is left of the budget, whichever is smaller: never more work than that.
    fn deep_size(&self, value: &Rcvar) -> u64 {
        let limit = self.steps_left.saturating_add(1);
        let mut size: u64 = 0;
        let mut pending: Vec<&Rcvar> = vec![value];
        while let Some(value) = pending.pop() {
            size = size.saturating_add(shallow_size(value));
            if size >= limit {
                return limit;
            }
            match &**value {
                Variable::Array(elements) => pending.extend(elements.iter()),
                Variable::Object(members) => pending.extend(members.values()),
                _ => {}
            }
        }
        size
    }
}

fn best(keyed: Vec<(Rcvar, Rcvar)>, better: impl Fn(&Rcvar, &Rcvar) -> bool) -> Rcvar {
    let mut entries = keyed.into_iter();
    let Some(mut chosen) = entries.next() else {
        return null();
    };
    for entry in entries {
        if better(&entry.1, &chosen.1) {
            chosen = entry;
        }
    }
    chosen.0
}

fn len(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

fn log2(n: usize) -> u64 {
    u64::from(usize::BITS - n.leading_zeros()).max(1)
}

fn log2_len(value: Option<&Rcvar>) -> u64 {
    log2(value.and_then(|v| v.as_array()).map_or(0, Vec::len))
}

/// A value's own size: 1, plus its elements or members (and their strings), plus a step per
/// 16 bytes of a string.
fn shallow_size(value: &Rcvar) -> u64 {
    let string_steps = |s: &str| len(s.len() / 16);
    1 + match &**value {
        Variable::String(s) => string_steps(s),
        Variable::Array(elements) => elements.iter().fold(len(elements.len()), |sum, e| {
            sum.saturating_add(e.as_string().map_or(0, |s| string_steps(s)))
        }),
        Variable::Object(members) => members.iter().fold(len(members.len()), |sum, (k, v)| {
            sum.saturating_add(string_steps(k))
                .saturating_add(v.as_string().map_or(0, |s| string_steps(s)))
        }),
        _ => 0,
    }
}
