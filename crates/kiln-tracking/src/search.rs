//! MLflow's search-filter and order-by grammar (`mlflow/utils/search_utils.py`), parsed into
//! the store's [`Clause`]s.
//!
//! ```text
//! filter := clause ( AND clause )*
//! clause := identifier comparator value | identifier IS [NOT] NULL
//! identifier := [type "."] key      (key may be `backticked` or "double-quoted")
//! ```
//! Each searchable entity has a [`Grammar`] naming which identifiers and comparators it allows.

use kiln_store::{Clause, Op, OrderKey, Target, Value};

use crate::error::{Result, ServiceError};

/// What one kind of entity lets a filter name.
pub struct Grammar {
    /// `(spelling, canonical)` of text attributes.
    pub string_attributes: &'static [(&'static str, &'static str)],
    /// `(spelling, canonical)` of numeric attributes.
    pub numeric_attributes: &'static [(&'static str, &'static str)],
    /// Canonical attributes that accept `IN (...)` / `NOT IN (...)`.
    pub list_attributes: &'static [&'static str],
    pub metrics: bool,
    pub params: bool,
    pub tags: bool,
    pub datasets: bool,
    pub metadata: bool,
    /// Attributes that are really tags or metadata (traces: `name` → tag `mlflow.traceName`).
    pub attribute_aliases: &'static [(&'static str, AliasTarget)],
}

#[derive(Clone, Copy)]
pub enum AliasTarget {
    Tag(&'static str),
    Metadata(&'static str),
}

pub const RUNS: Grammar = Grammar {
    string_attributes: &[
        ("run_id", "run_id"),
        ("run_name", "run_name"),
        ("run name", "run_name"),
        ("Run name", "run_name"),
        ("Run Name", "run_name"),
        ("status", "status"),
        ("user_id", "user_id"),
        ("artifact_uri", "artifact_uri"),
        ("lifecycle_stage", "lifecycle_stage"),
    ],
    numeric_attributes: &[
        ("start_time", "start_time"),
        ("created", "start_time"),
        ("Created", "start_time"),
        ("end_time", "end_time"),
    ],
    list_attributes: &["run_id"],
    metrics: true,
    params: true,
    tags: true,
    datasets: true,
    metadata: false,
    attribute_aliases: &[],
};

pub const EXPERIMENTS: Grammar = Grammar {
    string_attributes: &[("name", "name"), ("experiment_id", "experiment_id")],
    numeric_attributes: &[("creation_time", "creation_time"), ("last_update_time", "last_update_time")],
    list_attributes: &["experiment_id"],
    metrics: false,
    params: false,
    tags: true,
    datasets: false,
    metadata: false,
    attribute_aliases: &[],
};

pub const REGISTERED_MODELS: Grammar = Grammar {
    string_attributes: &[("name", "name")],
    numeric_attributes: &[
        ("creation_timestamp", "creation_timestamp"),
        ("last_updated_timestamp", "last_updated_timestamp"),
        ("timestamp", "last_updated_timestamp"),
    ],
    list_attributes: &["name"],
    metrics: false,
    params: false,
    tags: true,
    datasets: false,
    metadata: false,
    attribute_aliases: &[],
};

pub const MODEL_VERSIONS: Grammar = Grammar {
    string_attributes: &[
        ("name", "name"),
        ("run_id", "run_id"),
        ("source_path", "source_path"),
        ("current_stage", "current_stage"),
        ("model_id", "model_id"),
    ],
    numeric_attributes: &[
        ("version_number", "version_number"),
        ("creation_timestamp", "creation_timestamp"),
        ("last_updated_timestamp", "last_updated_timestamp"),
        ("timestamp", "last_updated_timestamp"),
    ],
    list_attributes: &["name", "run_id"],
    metrics: false,
    params: false,
    tags: true,
    datasets: false,
    metadata: false,
    attribute_aliases: &[],
};

pub const LOGGED_MODELS: Grammar = Grammar {
    string_attributes: &[
        ("name", "name"),
        ("model_id", "model_id"),
        ("model_type", "model_type"),
        ("status", "status"),
        ("source_run_id", "source_run_id"),
    ],
    numeric_attributes: &[
        ("creation_timestamp", "creation_timestamp"),
        ("creation_time", "creation_timestamp"),
        ("last_updated_timestamp", "last_updated_timestamp"),
        ("last_updated_time", "last_updated_timestamp"),
    ],
    list_attributes: &["name", "model_id", "source_run_id", "status"],
    metrics: true,
    params: true,
    tags: true,
    datasets: false,
    metadata: false,
    attribute_aliases: &[],
};

pub const TRACES: Grammar = Grammar {
    string_attributes: &[
        ("request_id", "trace_id"),
        ("trace_id", "trace_id"),
        ("status", "status"),
        ("state", "status"),
        ("client_request_id", "client_request_id"),
    ],
    numeric_attributes: &[
        ("timestamp", "timestamp_ms"),
        ("timestamp_ms", "timestamp_ms"),
        ("execution_time", "execution_time_ms"),
        ("execution_time_ms", "execution_time_ms"),
    ],
    list_attributes: &["trace_id", "status"],
    metrics: false,
    params: false,
    tags: true,
    datasets: false,
    metadata: true,
    attribute_aliases: &[
        ("name", AliasTarget::Tag("mlflow.traceName")),
        ("run_id", AliasTarget::Metadata("mlflow.sourceRun")),
    ],
};

#[derive(Debug, Clone, PartialEq)]
enum Token {
    /// A bare word: identifier, keyword or number.
    Word(String),
    /// `backticked`
    Backtick(String),
    /// "double quoted": an identifier part or a string value, by position.
    Double(String),
    /// 'single quoted'
    Single(String),
    Op(&'static str),
    LParen,
    RParen,
    Comma,
}

/// Items one `IN (...)` list may hold: far above real use, safely below the databases' limits
/// on bound parameters per statement.
pub const MAX_IN_LIST: usize = 10_000;

fn tokenize(input: &str) -> Result<Vec<Token>> {
    if input.contains('\0') {
        return Err(ServiceError::invalid("Invalid filter string: it contains a NUL character"));
    }
    let mut tokens = Vec::new();
    let chars: Vec<char> = input.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                tokens.push(Token::LParen);
                i += 1;
            }
            ')' => {
                tokens.push(Token::RParen);
                i += 1;
            }
            ',' => {
                tokens.push(Token::Comma);
                i += 1;
            }
            '`' | '"' | '\'' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => {
                            return Err(ServiceError::invalid(format!(
                                "Invalid filter string '{input}': unterminated quote {c}"
                            )));
                        }
                        // A doubled quote inside a string stands for the quote itself.
                        Some(&q) if q == c && chars.get(i + 1) == Some(&c) => {
                            s.push(c);
                            i += 2;
                        }
                        Some(&q) if q == c => {
                            i += 1;
                            break;
                        }
                        Some(&'\\') if chars.get(i + 1) == Some(&c) => {
                            s.push(c);
                            i += 2;
                        }
                        Some(&ch) => {
                            s.push(ch);
                            i += 1;
                        }
                    }
                }
                tokens.push(match c {
                    '`' => Token::Backtick(s),
                    '"' => Token::Double(s),
                    _ => Token::Single(s),
                });
            }
            '=' => {
                tokens.push(Token::Op("="));
                i += if chars.get(i + 1) == Some(&'=') { 2 } else { 1 };
            }
            '!' if chars.get(i + 1) == Some(&'=') => {
                tokens.push(Token::Op("!="));
                i += 2;
            }
            '<' | '>' => {
                let next = chars.get(i + 1);
                let op = match (c, next) {
                    ('<', Some('=')) => "<=",
                    ('>', Some('=')) => ">=",
                    ('<', Some('>')) => "!=",
                    ('<', _) => "<",
                    _ => ">",
                };
                tokens.push(Token::Op(op));
                i += if op.len() == 2 { 2 } else { 1 };
            }
            ';' => {
                return Err(ServiceError::invalid(format!(
                    "Search filter '{input}' contains multiple expressions. Only one statement is allowed."
                )));
            }
            _ => {
                let start = i;
                while i < chars.len() {
                    let ch = chars[i];
                    if ch.is_whitespace() || matches!(ch, '(' | ')' | ',' | '=' | '!' | '<' | '>' | '\'' | '"' | ';') {
                        break;
                    }
                    // A backtick ends the word after a dot: metrics.`f1 score`.
                    if ch == '`' {
                        break;
                    }
                    i += 1;
                }
                if i == start {
                    return Err(ServiceError::invalid(format!("Invalid filter string '{input}'")));
                }
                tokens.push(Token::Word(chars[start..i].iter().collect()));
            }
        }
    }
    Ok(tokens)
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Metric,
    Param,
    Tag,
    Attribute,
    Dataset,
    Metadata,
}

fn kind_of(prefix: &str) -> Option<Kind> {
    Some(match prefix.to_ascii_lowercase().as_str() {
        "metric" | "metrics" => Kind::Metric,
        "param" | "params" | "parameter" | "parameters" => Kind::Param,
        "tag" | "tags" => Kind::Tag,
        "attribute" | "attributes" | "attr" | "run" => Kind::Attribute,
        "dataset" | "datasets" => Kind::Dataset,
        "metadata" | "request_metadata" => Kind::Metadata,
        _ => return None,
    })
}

struct Parser<'a> {
    tokens: Vec<Token>,
    pos: usize,
    input: &'a str,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }
    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    fn invalid(&self, why: &str) -> ServiceError {
        ServiceError::invalid(format!("Invalid filter string '{}': {why}", self.input))
    }

    /// Reads `[type.]key` and returns the kind and the key.
    fn identifier(&mut self) -> Result<(Kind, String)> {
        match self.next() {
            Some(Token::Word(w)) => {
                if let Some(prefix) = w.strip_suffix('.') {
                    // type.`quoted key` or type."quoted key"
                    let kind =
                        kind_of(prefix).ok_or_else(|| self.invalid(&format!("invalid entity type '{prefix}'")))?;
                    match self.next() {
                        Some(Token::Backtick(k)) | Some(Token::Double(k)) => Ok((kind, k)),
                        _ => Err(self.invalid("expected a key after the entity type")),
                    }
                } else if let Some((prefix, key)) = w.split_once('.') {
                    match kind_of(prefix) {
                        Some(kind) => Ok((kind, key.to_string())),
                        None => Err(ServiceError::invalid(format!(
                            "Invalid entity type '{prefix}'. Valid values are ['metric', 'parameter', 'tag', 'attribute', 'dataset']"
                        ))),
                    }
                } else {
                    Ok((Kind::Attribute, w))
                }
            }
            Some(Token::Backtick(w)) | Some(Token::Double(w)) => {
                // `type`.key or a quoted bare attribute.
                if let Some(Token::Word(rest)) = self.peek().cloned()
                    && let Some(key) = rest.strip_prefix('.')
                    && let Some(kind) = kind_of(&w)
                {
                    self.pos += 1;
                    if key.is_empty() {
                        return match self.next() {
                            Some(Token::Backtick(k)) | Some(Token::Double(k)) => Ok((kind, k)),
                            _ => Err(self.invalid("expected a key after the entity type")),
                        };
                    }
                    return Ok((kind, key.to_string()));
                }
                Ok((Kind::Attribute, w))
            }
            _ => Err(self.invalid("expected an identifier")),
        }
    }

    fn comparator(&mut self) -> Result<Op> {
        match self.next() {
            Some(Token::Op(op)) => Ok(match op {
                "=" => Op::Eq,
                "!=" => Op::Ne,
                ">" => Op::Gt,
                ">=" => Op::Ge,
                "<" => Op::Lt,
                _ => Op::Le,
            }),
            Some(Token::Word(w)) => match w.to_ascii_uppercase().as_str() {
                "LIKE" => Ok(Op::Like),
                "ILIKE" => Ok(Op::ILike),
                "IN" => Ok(Op::In),
                "NOT" => match self.next() {
                    Some(Token::Word(w)) if w.eq_ignore_ascii_case("IN") => Ok(Op::NotIn),
                    _ => Err(self.invalid("expected IN after NOT")),
                },
                "IS" => match self.next() {
                    Some(Token::Word(w)) if w.eq_ignore_ascii_case("NULL") => Ok(Op::IsNull),
                    Some(Token::Word(w)) if w.eq_ignore_ascii_case("NOT") => match self.next() {
                        Some(Token::Word(w)) if w.eq_ignore_ascii_case("NULL") => Ok(Op::IsNotNull),
                        _ => Err(self.invalid("expected NULL")),
                    },
                    _ => Err(self.invalid("expected NULL or NOT NULL after IS")),
                },
                other => Err(self.invalid(&format!("invalid comparator '{other}'"))),
            },
            _ => Err(self.invalid("expected a comparator")),
        }
    }

    fn value(&mut self, op: Op) -> Result<Value> {
        match op {
            Op::IsNull | Op::IsNotNull => return Ok(Value::None),
            Op::In | Op::NotIn => {
                if self.next() != Some(Token::LParen) {
                    return Err(self.invalid("expected '(' after IN"));
                }
                let mut items = Vec::new();
                loop {
                    match self.next() {
                        Some(Token::Single(s)) | Some(Token::Double(s)) => items.push(s),
                        Some(Token::Word(w)) => items.push(w),
                        Some(Token::RParen) if items.is_empty() => break,
                        _ => return Err(self.invalid("expected a quoted value in the list")),
                    }
                    if items.len() > MAX_IN_LIST {
                        return Err(self.invalid(&format!("an IN list may hold at most {MAX_IN_LIST} values")));
                    }
                    match self.next() {
                        Some(Token::Comma) => continue,
                        Some(Token::RParen) => break,
                        _ => return Err(self.invalid("expected ',' or ')' in the list")),
                    }
                }
                return Ok(Value::List(items));
            }
            _ => {}
        }
        match self.next() {
            Some(Token::Single(s)) | Some(Token::Double(s)) => Ok(Value::Str(s)),
            Some(Token::Word(w)) => match w.parse::<f64>() {
                Ok(n) => Ok(Value::Number(n)),
                Err(_) => Ok(Value::Str(w)),
            },
            _ => Err(self.invalid("expected a value")),
        }
    }
}

fn op_text(op: Op) -> &'static str {
    match op {
        Op::Eq => "=",
        Op::Ne => "!=",
        Op::Gt => ">",
        Op::Ge => ">=",
        Op::Lt => "<",
        Op::Le => "<=",
        Op::Like => "LIKE",
        Op::ILike => "ILIKE",
        Op::In => "IN",
        Op::NotIn => "NOT IN",
        Op::IsNull => "IS NULL",
        Op::IsNotNull => "IS NOT NULL",
        Op::NeOrMissing => "!=",
    }
}

const NUMERIC_OPS: &[Op] = &[Op::Eq, Op::Ne, Op::Gt, Op::Ge, Op::Lt, Op::Le];
const STRING_OPS: &[Op] = &[Op::Eq, Op::Ne, Op::Like, Op::ILike];

/// Parses a filter string into clauses for the entity described by `grammar`.
pub fn parse_filter(filter: &str, grammar: &Grammar) -> Result<Vec<Clause>> {
    if filter.trim().is_empty() {
        return Ok(Vec::new());
    }
    let tokens = tokenize(filter)?;
    let mut p = Parser { tokens, pos: 0, input: filter };
    let mut clauses = Vec::new();
    loop {
        let (kind, key) = p.identifier()?;
        let op = p.comparator()?;
        let value = p.value(op)?;
        clauses.push(check_clause(kind, key, op, value, grammar)?);
        match p.next() {
            None => break,
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("AND") => continue,
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("OR") => {
                return Err(ServiceError::invalid("Invalid clause(s) in filter string: 'OR'"));
            }
            Some(other) => {
                return Err(ServiceError::invalid(format!(
                    "Invalid clause(s) in filter string: '{}'",
                    token_text(&other)
                )));
            }
        }
    }
    Ok(clauses)
}

fn token_text(t: &Token) -> String {
    match t {
        Token::Word(w) => w.clone(),
        Token::Backtick(s) => format!("`{s}`"),
        Token::Double(s) => format!("\"{s}\""),
        Token::Single(s) => format!("'{s}'"),
        Token::Op(o) => o.to_string(),
        Token::LParen => "(".into(),
        Token::RParen => ")".into(),
        Token::Comma => ",".into(),
    }
}

fn check_clause(kind: Kind, key: String, op: Op, value: Value, g: &Grammar) -> Result<Clause> {
    let bad_op =
        |what: &str| ServiceError::invalid(format!("Invalid comparator '{}' not one of '{what}'", op_text(op)));
    let string_value = |value: &Value, what: &str| -> Result<()> {
        match value {
            Value::Str(_) => Ok(()),
            Value::Number(n) => Err(ServiceError::invalid(format!(
                "Parameter value is either not quoted or unidentified quote types used for string value {n}. \
                 Use either single or double quotes for {what}."
            ))),
            _ => Ok(()),
        }
    };
    match kind {
        Kind::Metric => {
            if !g.metrics {
                return Err(ServiceError::invalid("Invalid entity type 'metric' in this search"));
            }
            if !NUMERIC_OPS.contains(&op) {
                return Err(bad_op("['=', '!=', '>', '>=', '<', '<=']"));
            }
            match value {
                Value::Number(_) => Ok(Clause { target: Target::Metric(key), op, value }),
                Value::Str(s) => {
                    Err(ServiceError::invalid(format!("Expected numeric value type for metric. Found {s}")))
                }
                _ => Err(ServiceError::invalid("Expected numeric value type for metric.")),
            }
        }
        Kind::Param | Kind::Tag | Kind::Metadata => {
            let allowed = match kind {
                Kind::Param => g.params,
                Kind::Tag => g.tags,
                _ => g.metadata,
            };
            if !allowed {
                return Err(ServiceError::invalid(format!("Invalid entity type for key '{key}' in this search")));
            }
            if !(STRING_OPS.contains(&op) || matches!(op, Op::IsNull | Op::IsNotNull)) {
                return Err(bad_op("['!=', '=', 'LIKE', 'ILIKE', 'IS NULL', 'IS NOT NULL']"));
            }
            string_value(&value, "param and tag values")?;
            let target = match kind {
                Kind::Param => Target::Param(key),
                Kind::Tag => Target::Tag(key),
                _ => Target::Metadata(key),
            };
            Ok(Clause { target, op, value })
        }
        Kind::Dataset => {
            if !g.datasets {
                return Err(ServiceError::invalid("Invalid entity type 'dataset' in this search"));
            }
            if !matches!(key.as_str(), "name" | "digest" | "context") {
                return Err(ServiceError::invalid(format!(
                    "Invalid dataset key '{key}' specified. Valid keys are '['name', 'digest', 'context']'"
                )));
            }
            if !(STRING_OPS.contains(&op) || matches!(op, Op::In | Op::NotIn)) {
                return Err(bad_op("['!=', '=', 'LIKE', 'ILIKE', 'IN', 'NOT IN']"));
            }
            string_value(&value, "dataset values")?;
            Ok(Clause { target: Target::Dataset(key), op, value })
        }
        Kind::Attribute => {
            if let Some((_, alias)) = g.attribute_aliases.iter().find(|(n, _)| *n == key) {
                if !STRING_OPS.contains(&op) {
                    return Err(bad_op("['!=', '=', 'LIKE', 'ILIKE']"));
                }
                let target = match alias {
                    AliasTarget::Tag(t) => Target::Tag(t.to_string()),
                    AliasTarget::Metadata(m) => Target::Metadata(m.to_string()),
                };
                return Ok(Clause { target, op, value });
            }
            if let Some((_, canonical)) = g.numeric_attributes.iter().find(|(n, _)| *n == key) {
                if !NUMERIC_OPS.contains(&op) {
                    return Err(bad_op("['=', '!=', '>', '>=', '<', '<=']"));
                }
                let Value::Number(_) = value else {
                    return Err(ServiceError::invalid(format!(
                        "Expected numeric value type for numeric attribute: {key}. Found {value:?}"
                    )));
                };
                return Ok(Clause { target: Target::Attribute(canonical.to_string()), op, value });
            }
            if let Some((_, canonical)) = g.string_attributes.iter().find(|(n, _)| *n == key) {
                let list_ok = g.list_attributes.contains(canonical);
                if !(STRING_OPS.contains(&op) || (list_ok && matches!(op, Op::In | Op::NotIn))) {
                    return Err(bad_op(if list_ok {
                        "['!=', '=', 'LIKE', 'ILIKE', 'IN', 'NOT IN']"
                    } else {
                        "['!=', '=', 'LIKE', 'ILIKE']"
                    }));
                }
                // Numbers compared with text attributes (experiment_id = 1) are read as text.
                let value = match value {
                    Value::Number(n) if n.fract() == 0.0 => Value::Str((n as i64).to_string()),
                    other => other,
                };
                string_value(&value, "string attributes")?;
                return Ok(Clause { target: Target::Attribute(canonical.to_string()), op, value });
            }
            let valid: Vec<&str> = g.string_attributes.iter().chain(g.numeric_attributes).map(|(n, _)| *n).collect();
            Err(ServiceError::invalid(format!("Invalid attribute key '{key}' specified. Valid keys are '{valid:?}'")))
        }
    }
}

/// Parses order-by strings (`"metrics.rmse DESC"`) for the entity described by `grammar`.
pub fn parse_order_by(items: &[String], grammar: &Grammar) -> Result<Vec<OrderKey>> {
    let mut keys = Vec::new();
    for item in items {
        if item.trim().is_empty() {
            continue;
        }
        let tokens = tokenize(item)?;
        let mut p = Parser { tokens, pos: 0, input: item };
        let invalid = || ServiceError::invalid(format!("Invalid order_by clause '{item}'. Could not be parsed."));
        let (kind, key) = p.identifier().map_err(|_| invalid())?;
        let ascending = match p.next() {
            None => true,
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("ASC") => true,
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("DESC") => false,
            _ => return Err(invalid()),
        };
        if p.next().is_some() {
            return Err(invalid());
        }
        let target = match kind {
            Kind::Metric if grammar.metrics => Target::Metric(key),
            Kind::Param if grammar.params => Target::Param(key),
            Kind::Tag if grammar.tags => Target::Tag(key),
            Kind::Attribute => {
                let canonical = grammar
                    .numeric_attributes
                    .iter()
                    .chain(grammar.string_attributes)
                    .find(|(n, _)| *n == key)
                    .map(|(_, c)| c.to_string())
                    .ok_or_else(|| {
                        ServiceError::invalid(format!("Invalid order_by entity: attribute '{key}' is not orderable"))
                    })?;
                Target::Attribute(canonical)
            }
            _ => return Err(invalid()),
        };
        keys.push(OrderKey { target, ascending });
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(f: &str) -> Result<Vec<Clause>> {
        parse_filter(f, &RUNS)
    }

    #[test]
    fn parses_the_full_run_grammar() {
        let c = parse(
            "metrics.rmse < 0.5 and params.`learning-rate` LIKE '0.%' AND tags.\"mlflow.runName\" != 'x' \
             AND attributes.run_id IN ('FINISHED', 'FAILED') and tags.t IS NULL and created >= 5 \
             AND metrics.`f1 score` >= -1e-3 AND dataset.context = 'train' AND run_id NOT IN ('a')",
        )
        .unwrap();
        assert_eq!(c.len(), 9);
        assert_eq!(c[0], Clause { target: Target::Metric("rmse".into()), op: Op::Lt, value: Value::Number(0.5) });
        assert_eq!(c[1].target, Target::Param("learning-rate".into()));
        assert_eq!(
            c[2],
            Clause { target: Target::Tag("mlflow.runName".into()), op: Op::Ne, value: Value::Str("x".into()) }
        );
        assert_eq!(c[3].value, Value::List(vec!["FINISHED".into(), "FAILED".into()]));
        assert_eq!(c[4].op, Op::IsNull);
        assert_eq!(c[5].target, Target::Attribute("start_time".into()));
        assert_eq!(c[6], Clause { target: Target::Metric("f1 score".into()), op: Op::Ge, value: Value::Number(-1e-3) });
        assert_eq!(c[7].target, Target::Dataset("context".into()));
        assert_eq!(c[8].op, Op::NotIn);
    }

    #[test]
    fn refuses_what_mlflow_refuses() {
        assert_eq!(
            parse("metrics.a > 1 OR metrics.b > 2").unwrap_err().message,
            "Invalid clause(s) in filter string: 'OR'"
        );
        assert!(parse("metrics.a > '1'").unwrap_err().message.contains("Expected numeric value type for metric"));
        assert!(parse("params.p > 1").is_err());
        assert!(parse("status IN ('A')").is_err());
        assert!(parse("foo.bar = 'x'").is_err());
        assert!(parse("nope = 'x'").is_err());
        assert!(parse("metrics.a > 1; drop table runs").is_err());
        assert!(parse("params.p = 'unterminated").is_err());
    }

    #[test]
    fn order_by_reads_direction_and_quoted_keys() {
        let k =
            parse_order_by(&["metrics.rmse DESC".into(), "tags.`mlflow.runName`".into(), "start_time".into()], &RUNS)
                .unwrap();
        assert_eq!(k[0], OrderKey { target: Target::Metric("rmse".into()), ascending: false });
        assert_eq!(k[1], OrderKey { target: Target::Tag("mlflow.runName".into()), ascending: true });
        assert_eq!(k[2].target, Target::Attribute("start_time".into()));
        assert!(parse_order_by(&["metrics.x sideways".into()], &RUNS).is_err());
    }

    #[test]
    fn registry_prompt_clause_parses() {
        let c = parse_filter("name LIKE 'a%' AND tag.`mlflow.prompt.is_prompt` != 'true'", &REGISTERED_MODELS).unwrap();
        assert_eq!(c[1].target, Target::Tag("mlflow.prompt.is_prompt".into()));
    }
}
