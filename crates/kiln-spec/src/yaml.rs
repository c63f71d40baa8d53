//! A YAML document as a tree whose every node knows where it was written.
//!
//! Specs are read in two steps: this module parses the text into [`Node`]s (anchors and
//! aliases resolved, merge keys applied, scalars kept as their source text), then
//! [`crate::read`] walks the tree with the schema of the kind being read. Keeping the source
//! text lets a literal such as `1.0` reach a command as `1.0`, not `1`, and keeping positions
//! lets every error name its line.
//!
//! Plain scalars resolve as PyYAML (YAML 1.1) resolves them, since that is what the Azure ML
//! tools load specs with: `yes`/`no`/`on`/`off` are booleans, `~` and an empty value are null.

use std::borrow::Cow;
use std::collections::HashMap;

use granit_parser::{Event, Parser, ScalarStyle, Span};

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub kind: Kind,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// A scalar's text after escape processing; `plain` when it was written without quotes
    /// or block style, the only scalars that resolve to null, booleans and numbers.
    Scalar {
        text: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    /// Entries in source order; keys are scalars (their text).
    Map(Vec<Entry>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key: String,
    pub key_pos: Pos,
    pub value: Node,
}

/// What a scalar means under YAML 1.1's resolution rules.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolved<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
}

impl Node {
    pub fn scalar(text: impl Into<String>, plain: bool, pos: Pos) -> Node {
        Node { kind: Kind::Scalar { text: text.into(), plain }, pos }
    }

    /// The scalar's meaning, or `None` for a collection.
    pub fn resolve(&self) -> Option<Resolved<'_>> {
        match &self.kind {
            Kind::Scalar { text, plain: true } => Some(resolve_plain(text)),
            Kind::Scalar { text, plain: false } => Some(Resolved::Str(text)),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self.resolve(), Some(Resolved::Null))
    }

    /// The entries of a mapping.
    pub fn entries(&self) -> Option<&[Entry]> {
        match &self.kind {
            Kind::Map(entries) => Some(entries),
            _ => None,
        }
    }

    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entries()?.iter().rev().find(|e| e.key == key).map(|e| &e.value)
    }

    /// A word for the node's type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match &self.kind {
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a mapping",
            Kind::Scalar { .. } => match self.resolve() {
                Some(Resolved::Null) => "null",
                Some(Resolved::Bool(_)) => "a boolean",
                Some(Resolved::Int(_)) => "an integer",
                Some(Resolved::Float(_)) => "a number",
                _ => "a string",
            },
        }
    }

    /// Sets the value at a dotted path (`inputs.lr`, `environment.image`), creating mappings
    /// on the way: what `--set path=value` does after the file is loaded. The value is read as
    /// a plain YAML scalar, so `--set inputs.n=3` gives an integer. What the override writes has
    /// no position (line 0): messages about it name the field, not a line it is not on.
    pub fn set_path(&mut self, path: &str, value: &str) -> Result<(), String> {
        self.set_path_node(path, parse_override(value, Pos::default()))
    }

    /// Sets the node at a dotted path, creating mappings on the way.
    pub fn set_path_node(&mut self, path: &str, value: Node) -> Result<(), String> {
        let mut node = self;
        let parts: Vec<&str> = path.split('.').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(format!("'{path}' is not a field path (expected names joined by dots)"));
        }
        for (i, part) in parts.iter().enumerate() {
            if node.is_null() {
                node.kind = Kind::Map(Vec::new());
            }
            let here = Pos::default();
            let Kind::Map(entries) = &mut node.kind else {
                let done = parts[..i].join(".");
                return Err(format!("cannot set '{path}': '{done}' is not a mapping"));
            };
            let idx = match entries.iter().rposition(|e| e.key == *part) {
                Some(idx) => idx,
                None => {
                    let value = Node { kind: Kind::Map(Vec::new()), pos: here };
                    entries.push(Entry { key: part.to_string(), key_pos: here, value });
                    entries.len() - 1
                }
            };
            node = &mut entries[idx].value;
        }
        *node = value;
        Ok(())
    }

    /// The tree as YAML flow text that reads back to the same tree (positions aside): plain
    /// scalars that mean something other than a string (`1.0`, `true`, `~`) keep their text,
    /// every other scalar is written double-quoted. Where every plain scalar is a JSON
    /// number, `true`/`false` or `null`, the text is also JSON.
    pub fn to_flow(&self) -> String {
        let mut out = String::new();
        self.write_flow(&mut out);
        out
    }

    fn write_flow(&self, out: &mut String) {
        let quote = |s: &str, out: &mut String| out.push_str(&serde_json::Value::from(s).to_string());
        match &self.kind {
            Kind::Scalar { text, plain } => match self.resolve() {
                Some(Resolved::Null) => out.push_str("null"),
                Some(Resolved::Str(_)) | None => quote(text, out),
                _ if *plain => out.push_str(text),
                _ => quote(text, out),
            },
            Kind::Seq(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    item.write_flow(out);
                }
                out.push(']');
            }
            Kind::Map(entries) => {
                out.push('{');
                for (i, e) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    quote(&e.key, out);
                    out.push_str(": ");
                    e.value.write_flow(out);
                }
                out.push('}');
            }
        }
    }

    /// The tree as JSON, for showing a spec (numbers that JSON cannot hold become strings).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match &self.kind {
            Kind::Scalar { text, .. } => match self.resolve() {
                Some(Resolved::Null) => Value::Null,
                Some(Resolved::Bool(b)) => Value::Bool(b),
                Some(Resolved::Int(i)) => Value::from(i),
                Some(Resolved::Float(f)) => {
                    serde_json::Number::from_f64(f).map(Value::Number).unwrap_or(Value::from(text.as_str()))
                }
                _ => Value::from(text.as_str()),
            },
            Kind::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            Kind::Map(entries) => Value::Object(entries.iter().map(|e| (e.key.clone(), e.value.to_json())).collect()),
        }
    }
}

/// A `--set` value: YAML flow syntax (`[a, b]`, `{k: v}`, a scalar), else the text as a string.
fn parse_override(value: &str, pos: Pos) -> Node {
    match parse(value) {
        Ok(Some(mut node)) => {
            relocate(&mut node, pos);
            node
        }
        _ => Node::scalar(value, false, pos),
    }
}

/// Points every node of an override at the place it replaces.
fn relocate(node: &mut Node, pos: Pos) {
    node.pos = pos;
    match &mut node.kind {
        Kind::Seq(items) => items.iter_mut().for_each(|n| relocate(n, pos)),
        Kind::Map(entries) => entries.iter_mut().for_each(|e| {
            e.key_pos = pos;
            relocate(&mut e.value, pos);
        }),
        Kind::Scalar { .. } => {}
    }
}

fn resolve_plain(text: &str) -> Resolved<'_> {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Resolved::Null,
        "true" | "True" | "TRUE" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" => return Resolved::Bool(true),
        "false" | "False" | "FALSE" | "no" | "No" | "NO" | "off" | "Off" | "OFF" => return Resolved::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => return Resolved::Float(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => return Resolved::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Resolved::Float(f64::NAN),
        _ => {}
    }
    if let Some(i) = parse_int(text) {
        return Resolved::Int(i);
    }
    if looks_like_float(text)
        && let Ok(f) = text.replace('_', "").parse::<f64>()
    {
        return Resolved::Float(f);
    }
    Resolved::Str(text)
}

fn parse_int(text: &str) -> Option<i64> {
    let (neg, body) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let clean = body.replace('_', "");
    let (digits, radix) = if let Some(h) = clean.strip_prefix("0x") {
        (h.to_string(), 16)
    } else if let Some(o) = clean.strip_prefix("0o") {
        (o.to_string(), 8)
    } else if let Some(b) = clean.strip_prefix("0b") {
        (b.to_string(), 2)
    } else {
        (clean, 10)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let v = i64::from_str_radix(&digits, radix).ok()?;
    Some(if neg { -v } else { v })
}

/// YAML 1.1's float pattern: digits with a dot or an exponent (`1.0`, `.5`, `1e-3`, `6.8523015e+5`).
fn looks_like_float(text: &str) -> bool {
    let body = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit() || c == '_');
    let mantissa_ok = match mantissa.split_once('.') {
        Some((a, b)) => (digits(a) || a.is_empty()) && (digits(b) || b.is_empty()) && !(a.is_empty() && b.is_empty()),
        None => digits(mantissa) && exponent.is_some(),
    };
    let exponent_ok = match exponent {
        None => mantissa.contains('.'),
        Some(e) => digits(e.strip_prefix(['-', '+']).unwrap_or(e)),
    };
    mantissa_ok && exponent_ok
}

/// A YAML syntax error.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

fn pos_of(span: &Span) -> Pos {
    Pos { line: span.start.line(), col: span.start.col() + 1 }
}

/// Parses the first document of `text`; `None` for an empty file.
pub fn parse(text: &str) -> Result<Option<Node>, SyntaxError> {
    let mut builder = Builder { anchors: HashMap::new(), stack: Vec::new(), root: None };
    for next in Parser::new_from_str(text) {
        let (event, span) = next.map_err(|e| SyntaxError {
            pos: Pos { line: e.marker().line(), col: e.marker().col() + 1 },
            message: e.info(),
        })?;
        let pos = pos_of(&span);
        match event {
            Event::DocumentEnd if builder.root.is_some() => break,
            Event::Scalar(text, style, anchor, _tag) => {
                let plain = matches!(style, ScalarStyle::Plain);
                builder.add(Node::scalar(Cow::into_owned(text), plain, pos), anchor);
            }
            Event::SequenceStart(_, anchor, _) => builder.stack.push(Open::Seq(pos, anchor, Vec::new())),
            Event::MappingStart(_, anchor, _) => builder.stack.push(Open::Map(pos, anchor, Vec::new())),
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, anchor) = match builder.stack.pop() {
                    Some(Open::Seq(pos, anchor, items)) => (Node { kind: Kind::Seq(items), pos }, anchor),
                    Some(Open::Map(pos, anchor, children)) => (map_from_children(pos, children)?, anchor),
                    None => return Err(SyntaxError { pos, message: "unbalanced collection end".into() }),
                };
                builder.add(node, anchor);
            }
            Event::Alias(id) => {
                let node = builder
                    .anchors
                    .get(&id)
                    .cloned()
                    .ok_or_else(|| SyntaxError { pos, message: "an alias to an anchor that is not defined".into() })?;
                builder.add(Node { pos, ..node }, 0);
            }
            _ => {}
        }
    }
    Ok(builder.root)
}

enum Open {
    Seq(Pos, usize, Vec<Node>),
    /// Keys and values alternate.
    Map(Pos, usize, Vec<Node>),
}

struct Builder {
    anchors: HashMap<usize, Node>,
    stack: Vec<Open>,
    root: Option<Node>,
}

impl Builder {
    fn add(&mut self, node: Node, anchor: usize) {
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            Some(Open::Seq(_, _, items)) | Some(Open::Map(_, _, items)) => items.push(node),
            None => self.root = Some(node),
        }
    }
}

/// Pairs keys with values and applies `<<` merge keys (earlier explicit keys win).
fn map_from_children(pos: Pos, children: Vec<Node>) -> Result<Node, SyntaxError> {
    let mut entries: Vec<Entry> = Vec::new();
    let mut merged: Vec<Entry> = Vec::new();
    let mut it = children.into_iter();
    while let (Some(key), Some(value)) = (it.next(), it.next()) {
        let key_text = match &key.kind {
            Kind::Scalar { text, .. } => text.clone(),
            _ => return Err(SyntaxError { pos: key.pos, message: "a mapping key must be a scalar".into() }),
        };
        if key_text == "<<" && matches!(key.kind, Kind::Scalar { plain: true, .. }) {
            let sources = match value.kind {
                Kind::Map(_) => vec![value],
                Kind::Seq(items) => items,
                _ => return Err(SyntaxError { pos: value.pos, message: "a merge key takes a mapping".into() }),
            };
            for source in sources {
                let Kind::Map(source_entries) = source.kind else {
                    return Err(SyntaxError { pos: source.pos, message: "a merge key takes mappings".into() });
                };
                for e in source_entries {
                    if !merged.iter().any(|m| m.key == e.key) {
                        merged.push(e);
                    }
                }
            }
            continue;
        }
        if entries.iter().any(|e| e.key == key_text) {
            return Err(SyntaxError { pos: key.pos, message: format!("duplicate key '{key_text}'") });
        }
        entries.push(Entry { key: key_text, key_pos: key.pos, value });
    }
    for m in merged {
        if !entries.iter().any(|e| e.key == m.key) {
            entries.push(m);
        }
    }
    Ok(Node { kind: Kind::Map(entries), pos })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(text: &str) -> Node {
        parse(text).unwrap().unwrap()
    }

    #[test]
    fn nodes_keep_positions_and_source_text() {
        let doc = root("command: echo hi\ninputs:\n  lr: 1.0\n  n: 0x10\n  name: 'yes'\n  flag: yes\n");
        let inputs = doc.get("inputs").unwrap();
        let lr = inputs.get("lr").unwrap();
        assert_eq!(lr.pos, Pos { line: 3, col: 7 });
        assert_eq!(lr.kind, Kind::Scalar { text: "1.0".into(), plain: true });
        assert_eq!(lr.resolve(), Some(Resolved::Float(1.0)));
        assert_eq!(inputs.get("n").unwrap().resolve(), Some(Resolved::Int(16)));
        assert_eq!(inputs.get("name").unwrap().resolve(), Some(Resolved::Str("yes")));
        assert_eq!(inputs.get("flag").unwrap().resolve(), Some(Resolved::Bool(true)));
        let entries = inputs.entries().unwrap();
        assert_eq!(entries[1].key_pos, Pos { line: 4, col: 3 });
    }

    #[test]
    fn plain_scalars_resolve_as_yaml_1_1() {
        let r = resolve_plain;
        assert_eq!(r("~"), Resolved::Null);
        assert_eq!(r(""), Resolved::Null);
        assert_eq!(r("Off"), Resolved::Bool(false));
        assert_eq!(r("-12"), Resolved::Int(-12));
        assert_eq!(r("1_000"), Resolved::Int(1000));
        assert_eq!(r("1e-3"), Resolved::Float(0.001));
        assert_eq!(r(".5"), Resolved::Float(0.5));
        assert_eq!(r("3."), Resolved::Float(3.0));
        assert_eq!(r("1.2.3"), Resolved::Str("1.2.3"));
        assert_eq!(r("e5"), Resolved::Str("e5"));
        assert_eq!(r("."), Resolved::Str("."));
        assert_eq!(r("0x"), Resolved::Str("0x"));
        assert_eq!(r("python:3.11"), Resolved::Str("python:3.11"));
    }

    #[test]
    fn anchors_aliases_and_merge_keys() {
        let doc = root("base: &b\n  a: 1\n  b: 2\nother:\n  <<: *b\n  b: 3\nlist: [*b]\n");
        let other = doc.get("other").unwrap();
        assert_eq!(other.get("a").unwrap().resolve(), Some(Resolved::Int(1)));
        assert_eq!(other.get("b").unwrap().resolve(), Some(Resolved::Int(3)));
        assert!(matches!(&doc.get("list").unwrap().kind, Kind::Seq(items) if items.len() == 1));
    }

    #[test]
    fn syntax_errors_and_duplicates_name_their_line() {
        let e = parse("a: 1\nb: [1, 2\n").unwrap_err();
        assert!(e.pos.line >= 2, "{e:?}");
        let e = parse("a: 1\na: 2\n").unwrap_err();
        assert_eq!((e.pos.line, e.message.as_str()), (2, "duplicate key 'a'"));
        assert_eq!(parse("").unwrap(), None);
        assert_eq!(parse("# only a comment\n").unwrap(), None);
    }

    #[test]
    fn set_path_overrides_and_creates() {
        let mut doc = root("inputs:\n  x: 1\nenvironment: azureml:env:1\n");
        doc.set_path("inputs.x", "hello there").unwrap();
        doc.set_path("inputs.n", "3").unwrap();
        doc.set_path("limits.timeout", "60").unwrap();
        assert_eq!(doc.get("inputs").unwrap().get("x").unwrap().resolve(), Some(Resolved::Str("hello there")));
        assert_eq!(doc.get("inputs").unwrap().get("n").unwrap().resolve(), Some(Resolved::Int(3)));
        assert_eq!(doc.get("limits").unwrap().get("timeout").unwrap().resolve(), Some(Resolved::Int(60)));
        assert!(doc.set_path("environment.image", "python").is_err(), "a string is not a mapping");
        assert!(doc.set_path("a..b", "1").is_err());
    }
}

#[cfg(test)]
mod flow_tests {
    use super::*;

    #[test]
    fn flow_text_reads_back_to_the_same_meaning() {
        let text = "a: 1.0\nb: '1.0'\nc: yes\nd: ~\ne: [x, 'y z', {f: \"q\\\"uote\"}]\ng: 0x1F\nh: hello: world\n";
        let text = text.replace("h: hello: world\n", "h: 'hello: world'\n");
        let node = parse(&text).unwrap().unwrap();
        let flow = node.to_flow();
        let back = parse(&flow).unwrap().unwrap();
        let meaning = |n: &Node| n.to_json();
        assert_eq!(meaning(&node), meaning(&back), "{flow}");
        assert!(
            flow.contains("\"a\": 1.0") && flow.contains("\"b\": \"1.0\"") && flow.contains("\"g\": 0x1F"),
            "{flow}"
        );
    }
}
