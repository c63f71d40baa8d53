//! The store's search language: already-parsed, already-validated clauses.
//!
//! The tracking and registry services parse MLflow filter strings into these; the store
//! turns them into SQL through fixed column whitelists, so no user text reaches SQL text.

#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Metric(String),
    Param(String),
    Tag(String),
    /// A column of the entity itself, by its canonical name (`start_time`, `name`, …).
    Attribute(String),
    /// A dataset input field: `name`, `digest` or `context`.
    Dataset(String),
    /// Trace request metadata.
    Metadata(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Like,
    ILike,
    In,
    NotIn,
    IsNull,
    IsNotNull,
    /// The side-table key is missing or its value differs: MLflow's special form for
    /// ``tags.`mlflow.prompt.is_prompt` != 'true'`` in registry searches.
    NeOrMissing,
}

impl Op {
    pub(crate) fn sql(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "<>",
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
            Op::NeOrMissing => "<>",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Number(f64),
    Str(String),
    List(Vec<String>),
    None,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Clause {
    pub target: Target,
    pub op: Op,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OrderKey {
    pub target: Target,
    pub ascending: bool,
}

/// Which lifecycle stages a search includes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ViewType {
    #[default]
    ActiveOnly,
    DeletedOnly,
    All,
}

/// A search: clauses joined by AND, ordering, and an offset page.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Search {
    pub clauses: Vec<Clause>,
    pub order_by: Vec<OrderKey>,
    pub view: ViewType,
    pub offset: i64,
    pub limit: i64,
}
