//! Typed reading of a located YAML tree: each accessor knows the field path it reads, so every
//! error says file, line, field and what was expected, and every field nobody read becomes an
//! "unknown field" warning.

use std::cell::RefCell;
use std::collections::BTreeMap;

use crate::yaml::{Entry, Kind, Node, Pos, Resolved};
use crate::{Diagnostic, SpecError};

/// The file being read and the warnings gathered so far.
pub struct Source {
    pub file: String,
    warnings: RefCell<Vec<Diagnostic>>,
}

impl Source {
    pub fn new(file: impl Into<String>) -> Source {
        Source { file: file.into(), warnings: RefCell::new(Vec::new()) }
    }

    fn diagnostic(&self, pos: Pos, field: &str, message: impl Into<String>) -> Diagnostic {
        Diagnostic { file: self.file.clone(), pos, field: field.to_string(), message: message.into() }
    }

    pub fn error(&self, pos: Pos, field: &str, message: impl Into<String>) -> SpecError {
        SpecError(self.diagnostic(pos, field, message))
    }

    pub fn warn(&self, pos: Pos, field: &str, message: impl Into<String>) {
        let d = self.diagnostic(pos, field, message);
        self.warnings.borrow_mut().push(d);
    }

    pub fn take_warnings(&self) -> Vec<Diagnostic> {
        std::mem::take(&mut self.warnings.borrow_mut())
    }
}

pub type Result<T> = std::result::Result<T, SpecError>;

/// Joins a parent path and a field name (`inputs` + `lr` = `inputs.lr`).
pub fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() { name.to_string() } else { format!("{parent}.{name}") }
}

/// A mapping being read; remembers which keys were read.
pub struct MapReader<'a> {
    pub src: &'a Source,
    pub node: &'a Node,
    pub path: String,
    read: RefCell<Vec<&'a str>>,
}

impl<'a> MapReader<'a> {
    /// Reads `node` as a mapping (`path` names it in errors).
    pub fn new(src: &'a Source, node: &'a Node, path: &str) -> Result<MapReader<'a>> {
        if !matches!(node.kind, Kind::Map(_)) {
            let what = if path.is_empty() { "the file" } else { path };
            return Err(src.error(
                node.pos,
                path,
                format!("expected a mapping for {what}, found {}", node.type_name()),
            ));
        }
        Ok(MapReader { src, node, path: path.to_string(), read: RefCell::new(Vec::new()) })
    }

    pub fn entries(&self) -> &'a [Entry] {
        self.node.entries().unwrap_or_default()
    }

    pub fn field(&self, name: &str) -> String {
        join(&self.path, name)
    }

    /// The value of `name`, unless absent or null. Marks it read.
    pub fn get(&self, name: &str) -> Option<&'a Node> {
        let entry = self.entries().iter().find(|e| e.key == name)?;
        self.read.borrow_mut().push(&entry.key);
        (!entry.value.is_null()).then_some(&entry.value)
    }

    /// Where the value of `name` is written, else where the mapping is: the place an error
    /// about that field points at.
    pub fn pos_of(&self, name: &str) -> Pos {
        self.entries().iter().find(|e| e.key == name).map_or(self.node.pos, |e| e.value.pos)
    }

    /// Whether the key is written at all (even as null: `outputs: {o: }`).
    pub fn has(&self, name: &str) -> bool {
        self.entries().iter().any(|e| e.key == name)
    }

    /// Marks fields as read without reading them (accepted and ignored).
    pub fn accept(&self, names: &[&str]) {
        for name in names {
            let _ = self.get(name);
        }
    }

    pub fn req(&self, name: &str) -> Result<&'a Node> {
        self.get(name)
            .ok_or_else(|| self.src.error(self.node.pos, &self.field(name), format!("missing required field '{name}'")))
    }

    pub fn str(&self, name: &str) -> Result<Option<String>> {
        self.get(name).map(|n| scalar_text(self.src, n, &self.field(name))).transpose()
    }

    pub fn req_str(&self, name: &str) -> Result<String> {
        scalar_text(self.src, self.req(name)?, &self.field(name))
    }

    /// A string that must be one of `allowed` (compared without case).
    pub fn choice(&self, name: &str, allowed: &[&str]) -> Result<Option<String>> {
        let Some(node) = self.get(name) else { return Ok(None) };
        let text = scalar_text(self.src, node, &self.field(name))?;
        match allowed.iter().find(|a| a.eq_ignore_ascii_case(&text)) {
            Some(a) => Ok(Some(a.to_string())),
            None => Err(self.src.error(
                node.pos,
                &self.field(name),
                format!("expected one of {}, found '{text}'", allowed.join(", ")),
            )),
        }
    }

    pub fn int(&self, name: &str) -> Result<Option<i64>> {
        let Some(node) = self.get(name) else { return Ok(None) };
        match node.resolve() {
            Some(Resolved::Int(i)) => Ok(Some(i)),
            // Quoted numbers are common in hand-written specs; take them.
            Some(Resolved::Str(s)) if s.trim().parse::<i64>().is_ok() => Ok(s.trim().parse().ok()),
            _ => Err(self.src.error(
                node.pos,
                &self.field(name),
                format!("expected an integer, found {}", describe(node)),
            )),
        }
    }

    /// A non-negative integer.
    pub fn count(&self, name: &str) -> Result<Option<u64>> {
        match self.int(name)? {
            Some(i) if i < 0 => Err(self.src.error(
                self.pos_of(name),
                &self.field(name),
                format!("expected a non-negative integer, found {i}"),
            )),
            other => Ok(other.map(|i| i as u64)),
        }
    }

    pub fn bool(&self, name: &str) -> Result<Option<bool>> {
        let Some(node) = self.get(name) else { return Ok(None) };
        match node.resolve() {
            Some(Resolved::Bool(b)) => Ok(Some(b)),
            Some(Resolved::Str(s)) if s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("false") => {
                Ok(Some(s.eq_ignore_ascii_case("true")))
            }
            _ => Err(self.src.error(
                node.pos,
                &self.field(name),
                format!("expected a boolean, found {}", describe(node)),
            )),
        }
    }

    /// A `{str: str}` mapping (tags, properties, environment variables); scalar values of any
    /// type are taken as their text.
    pub fn string_map(&self, name: &str) -> Result<BTreeMap<String, String>> {
        let Some(node) = self.get(name) else { return Ok(BTreeMap::new()) };
        let map = MapReader::new(self.src, node, &self.field(name))?;
        let mut out = BTreeMap::new();
        for e in map.entries() {
            let field = map.field(&e.key);
            let value = if e.value.is_null() { String::new() } else { scalar_text(self.src, &e.value, &field)? };
            out.insert(e.key.clone(), value);
        }
        Ok(out)
    }

    pub fn map(&self, name: &str) -> Result<Option<MapReader<'a>>> {
        self.get(name).map(|n| MapReader::new(self.src, n, &self.field(name))).transpose()
    }

    /// Warns once for every key that no accessor read.
    pub fn warn_unknown(&self) {
        let read = self.read.borrow();
        for e in self.entries() {
            if !read.contains(&e.key.as_str()) {
                self.src.warn(e.key_pos, &self.field(&e.key), format!("unknown field '{}' (ignored)", e.key));
            }
        }
    }
}

/// A scalar's text, refusing collections.
pub fn scalar_text(src: &Source, node: &Node, field: &str) -> Result<String> {
    match &node.kind {
        Kind::Scalar { text, .. } => Ok(text.clone()),
        _ => Err(src.error(node.pos, field, format!("expected a string, found {}", node.type_name()))),
    }
}

/// A node as an error message shows it: its type, and its text when it is a scalar.
pub fn describe(node: &Node) -> String {
    match &node.kind {
        Kind::Scalar { text, .. } => format!("{} '{text}'", node.type_name()),
        _ => node.type_name().to_string(),
    }
}
