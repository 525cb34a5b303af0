//! The parsed form of an expression.
//!
//! Invariant: an [`Expr`] only comes from the parser, so every name in it is a root of
//! [`ROOT_NAMES`](super::ROOT_NAMES), every call is to a known function with an accepted
//! number of arguments, and the tree is at most [`MAX_TREE_DEPTH`](super::MAX_TREE_DEPTH)
//! deep, which is what lets the evaluator and this module recurse freely.

use std::fmt;

use serde_json::Value;

use super::functions::Function;
use super::{EvalError, Reference, eval};

/// A parsed expression. `Display` prints it back as canonical source, fully parenthesized,
/// which parses to the same expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    pub(crate) kind: ExprKind,
    /// The depth of the tree below and including this node.
    pub(crate) depth: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ExprKind {
    /// A number, string, boolean or `null`.
    Literal(Value),
    Array(Vec<Expr>),
    /// One of `ROOT_NAMES`.
    Root(&'static str),
    Member {
        object: Box<Expr>,
        name: String,
    },
    Index {
        object: Box<Expr>,
        index: Box<Expr>,
    },
    Unary {
        op: UnaryOp,
        operand: Box<Expr>,
    },
    Binary {
        op: BinaryOp,
        left: Box<Expr>,
        right: Box<Expr>,
    },
    /// Operators that may skip evaluating their right side.
    Logical {
        op: LogicalOp,
        left: Box<Expr>,
        right: Box<Expr>,
    },
    Conditional {
        condition: Box<Expr>,
        then: Box<Expr>,
        otherwise: Box<Expr>,
    },
    Call {
        function: Function,
        args: Vec<Expr>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UnaryOp {
    Not,
    Negate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinaryOp {
    Add,
    Subtract,
    Multiply,
    Divide,
    Remainder,
    Equal,
    NotEqual,
    Less,
    LessEqual,
    Greater,
    GreaterEqual,
}

impl BinaryOp {
    pub(crate) fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Add => "+",
            BinaryOp::Subtract => "-",
            BinaryOp::Multiply => "*",
            BinaryOp::Divide => "/",
            BinaryOp::Remainder => "%",
            BinaryOp::Equal => "==",
            BinaryOp::NotEqual => "!=",
            BinaryOp::Less => "<",
            BinaryOp::LessEqual => "<=",
            BinaryOp::Greater => ">",
            BinaryOp::GreaterEqual => ">=",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogicalOp {
    And,
    Or,
    /// `??`
    Coalesce,
}

impl LogicalOp {
    pub(crate) fn symbol(self) -> &'static str {
        match self {
            LogicalOp::And => "&&",
            LogicalOp::Or => "||",
            LogicalOp::Coalesce => "??",
        }
    }
}

impl Expr {
    /// A node over already-built children; the parser checks the resulting depth.
    pub(crate) fn new(kind: ExprKind) -> Self {
        let deepest_child = match &kind {
            ExprKind::Literal(_) | ExprKind::Root(_) => 0,
            ExprKind::Array(items) | ExprKind::Call { args: items, .. } => {
                items.iter().map(|item| item.depth).max().unwrap_or(0)
            }
            ExprKind::Member { object, .. } => object.depth,
            ExprKind::Unary { operand, .. } => operand.depth,
            ExprKind::Index {
                object: left,
                index: right,
            }
            | ExprKind::Binary { left, right, .. }
            | ExprKind::Logical { left, right, .. } => left.depth.max(right.depth),
            ExprKind::Conditional {
                condition,
                then,
                otherwise,
            } => condition.depth.max(then.depth).max(otherwise.depth),
        };
        Self {
            kind,
            depth: deepest_child + 1,
        }
    }

    /// Every root path the expression reads, in order of appearance, without repeats.
    pub fn references(&self) -> Vec<Reference> {
        let mut found = Vec::new();
        self.collect_references(&mut found);
        found
    }

    /// Evaluates the expression against `scope`, an object keyed by [`ROOT_NAMES`](super::ROOT_NAMES).
    pub fn evaluate(&self, scope: &Value) -> Result<Value, EvalError> {
        eval::evaluate(self, scope)
    }

    pub(crate) fn collect_references(&self, found: &mut Vec<Reference>) {
        let mut add = |root: &str, first: Option<String>| {
            let reference = Reference {
                root: root.to_owned(),
                first,
            };
            if !found.contains(&reference) {
                found.push(reference);
            }
        };
        match &self.kind {
            ExprKind::Root(root) => add(root, None),
            ExprKind::Member { object, name } => match object.kind {
                ExprKind::Root(root) => add(root, Some(name.clone())),
                _ => object.collect_references(found),
            },
            ExprKind::Index { object, index } => {
                match (&object.kind, &index.kind) {
                    (ExprKind::Root(root), ExprKind::Literal(Value::String(key))) => {
                        add(root, Some(key.clone()));
                    }
                    (ExprKind::Root(root), ExprKind::Literal(Value::Number(key))) => {
                        add(root, Some(key.to_string()));
                    }
                    _ => object.collect_references(found),
                }
                index.collect_references(found);
            }
            ExprKind::Literal(_) => {}
            ExprKind::Array(items) | ExprKind::Call { args: items, .. } => {
                for item in items {
                    item.collect_references(found);
                }
            }
            ExprKind::Unary { operand, .. } => operand.collect_references(found),
            ExprKind::Binary { left, right, .. } | ExprKind::Logical { left, right, .. } => {
                left.collect_references(found);
                right.collect_references(found);
            }
            ExprKind::Conditional {
                condition,
                then,
                otherwise,
            } => {
                condition.collect_references(found);
                then.collect_references(found);
                otherwise.collect_references(found);
            }
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            // serde_json prints floats so that they read back exactly (`5.0`, `1e300`) and
            // strings with JSON escapes, all of which the lexer accepts.
            ExprKind::Literal(value) => write!(f, "{value}"),
            ExprKind::Array(items) => {
                f.write_str("[")?;
                write_list(f, items)?;
                f.write_str("]")
            }
            ExprKind::Root(root) => f.write_str(root),
            ExprKind::Member { object, name } => write!(f, "{object}.{name}"),
            ExprKind::Index { object, index } => write!(f, "{object}[{index}]"),
            ExprKind::Unary { op, operand } => {
                let symbol = match op {
                    UnaryOp::Not => "!",
                    UnaryOp::Negate => "-",
                };
                write!(f, "({symbol}{operand})")
            }
            ExprKind::Binary { op, left, right } => {
                write!(f, "({left} {} {right})", op.symbol())
            }
            ExprKind::Logical { op, left, right } => {
                write!(f, "({left} {} {right})", op.symbol())
            }
            ExprKind::Conditional {
                condition,
                then,
                otherwise,
            } => write!(f, "({condition} ? {then} : {otherwise})"),
            ExprKind::Call { function, args } => {
                write!(f, "{}(", function.name())?;
                write_list(f, args)?;
                f.write_str(")")
            }
        }
    }
}

fn write_list(f: &mut fmt::Formatter<'_>, items: &[Expr]) -> fmt::Result {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{item}")?;
    }
    Ok(())
}
