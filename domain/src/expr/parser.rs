//! A Pratt parser from tokens to an [`Expr`].
//!
//! Invariant: recursion is bounded. Every construct that can nest without limit (brackets,
//! parentheses, arguments, prefix operators, the branches of `?:`) passes through
//! [`Parser::nested`], which refuses more than [`MAX_NESTING`] levels, and every node is
//! built by [`Parser::node`], which refuses trees deeper than [`MAX_TREE_DEPTH`] (long
//! left-associative chains like `1+1+1+...` are built by a loop, not by recursion, but
//! evaluating them recurses).

use serde_json::{Number, Value};

use super::ast::{BinaryOp, Expr, ExprKind, LogicalOp, UnaryOp};
use super::functions::Function;
use super::lexer::{self, Mode, SyntaxError, Token, TokenKind};
use super::{MAX_NESTING, MAX_TREE_DEPTH, Roots};

/// Parses a whole string as one expression.
pub(crate) fn parse_bare(src: &str, roots: Roots) -> Result<Expr, SyntaxError> {
    let lexed = lexer::lex(src, 0, Mode::Bare)?;
    parse_tokens(lexed.tokens, roots)
}

/// Parses the tokens of one expression (ending with [`TokenKind::End`]).
/// Names other than literals and functions must be among `roots`.
pub(crate) fn parse_tokens(tokens: Vec<Token>, roots: Roots) -> Result<Expr, SyntaxError> {
    let end_offset = tokens.last().map_or(0, |t| t.offset);
    let mut parser = Parser {
        tokens,
        pos: 0,
        nesting: 0,
        roots,
        end: Token {
            kind: TokenKind::End,
            offset: end_offset,
        },
    };
    let first = parser.peek();
    if first.kind == TokenKind::End {
        return Err(SyntaxError::new(first.offset, "empty expression"));
    }
    // The top level is not nesting: `MAX_NESTING` parentheses around a value are allowed.
    let expr = parser.binary(0)?;
    let rest = parser.peek();
    if rest.kind != TokenKind::End {
        return Err(SyntaxError::new(
            rest.offset,
            format!(
                "unexpected {}: expected an operator or the end of the expression",
                rest.kind.describe()
            ),
        ));
    }
    Ok(expr)
}

/// Binding powers, loosest first. Left-associative operators bind their right side one
/// tighter; `?:` binds its right side equally, which makes it right-associative.
const CONDITIONAL: u8 = 2;
const COALESCE: u8 = 4;
const OR: u8 = 6;
const AND: u8 = 8;
const EQUALITY: u8 = 10;
const RELATIONAL: u8 = 12;
const ADDITIVE: u8 = 14;
const MULTIPLICATIVE: u8 = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Infix {
    Conditional,
    Logical(LogicalOp),
    Binary(BinaryOp),
}

impl Infix {
    fn of(kind: &TokenKind) -> Option<Infix> {
        let infix = match kind {
            TokenKind::Question => Infix::Conditional,
            TokenKind::QuestionQuestion => Infix::Logical(LogicalOp::Coalesce),
            TokenKind::OrOr => Infix::Logical(LogicalOp::Or),
            TokenKind::AndAnd => Infix::Logical(LogicalOp::And),
            TokenKind::EqualEqual => Infix::Binary(BinaryOp::Equal),
            TokenKind::BangEqual => Infix::Binary(BinaryOp::NotEqual),
            TokenKind::Less => Infix::Binary(BinaryOp::Less),
            TokenKind::LessEqual => Infix::Binary(BinaryOp::LessEqual),
            TokenKind::Greater => Infix::Binary(BinaryOp::Greater),
            TokenKind::GreaterEqual => Infix::Binary(BinaryOp::GreaterEqual),
            TokenKind::Plus => Infix::Binary(BinaryOp::Add),
            TokenKind::Minus => Infix::Binary(BinaryOp::Subtract),
            TokenKind::Star => Infix::Binary(BinaryOp::Multiply),
            TokenKind::Slash => Infix::Binary(BinaryOp::Divide),
            TokenKind::Percent => Infix::Binary(BinaryOp::Remainder),
            _ => return None,
        };
        Some(infix)
    }

    fn binding_power(self) -> u8 {
        match self {
            Infix::Conditional => CONDITIONAL,
            Infix::Logical(LogicalOp::Coalesce) => COALESCE,
            Infix::Logical(LogicalOp::Or) => OR,
            Infix::Logical(LogicalOp::And) => AND,
            Infix::Binary(BinaryOp::Equal | BinaryOp::NotEqual) => EQUALITY,
            Infix::Binary(
                BinaryOp::Less | BinaryOp::LessEqual | BinaryOp::Greater | BinaryOp::GreaterEqual,
            ) => RELATIONAL,
            Infix::Binary(BinaryOp::Add | BinaryOp::Subtract) => ADDITIVE,
            Infix::Binary(BinaryOp::Multiply | BinaryOp::Divide | BinaryOp::Remainder) => {
                MULTIPLICATIVE
            }
        }
    }

    /// Comparisons do not chain: `a < b < c` compares a boolean with `c`, never what was meant.
    fn is_comparison(self) -> bool {
        matches!(self.binding_power(), EQUALITY | RELATIONAL)
    }
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    nesting: usize,
    roots: Roots,
    /// Returned by `peek` past the last token, so the parser never indexes out of bounds.
    end: Token,
}

impl Parser {
    fn peek(&self) -> &Token {
        self.tokens.get(self.pos).unwrap_or(&self.end)
    }

    fn advance(&mut self) -> Token {
        let token = self.peek().clone();
        self.pos = (self.pos + 1).min(self.tokens.len());
        token
    }

    fn expect(&mut self, kind: TokenKind, context: &str) -> Result<Token, SyntaxError> {
        let token = self.advance();
        if token.kind == kind {
            Ok(token)
        } else {
            Err(SyntaxError::new(
                token.offset,
                format!(
                    "expected {} {context}, found {}",
                    kind.describe(),
                    token.kind.describe()
                ),
            ))
        }
    }

    fn nested<T>(
        &mut self,
        parse: impl FnOnce(&mut Self) -> Result<T, SyntaxError>,
    ) -> Result<T, SyntaxError> {
        if self.nesting >= MAX_NESTING {
            return Err(SyntaxError::new(
                self.peek().offset,
                format!("expression is nested more than {MAX_NESTING} levels deep"),
            ));
        }
        self.nesting += 1;
        let result = parse(self);
        self.nesting -= 1;
        result
    }

    fn node(&self, kind: ExprKind, offset: usize) -> Result<Expr, SyntaxError> {
        let expr = Expr::new(kind);
        if expr.depth > MAX_TREE_DEPTH {
            return Err(SyntaxError::new(
                offset,
                format!(
                    "expression is too complex (more than {MAX_TREE_DEPTH} levels of operations)"
                ),
            ));
        }
        Ok(expr)
    }

    fn expression(&mut self) -> Result<Expr, SyntaxError> {
        self.nested(|p| p.binary(0))
    }

    fn binary(&mut self, min_power: u8) -> Result<Expr, SyntaxError> {
        let mut left = self.prefix()?;
        let mut previous_comparison: Option<u8> = None;
        loop {
            let token = self.peek();
            let offset = token.offset;
            let Some(infix) = Infix::of(&token.kind) else {
                break;
            };
            let power = infix.binding_power();
            if power < min_power {
                break;
            }
            if infix.is_comparison() && previous_comparison == Some(power) {
                return Err(SyntaxError::new(
                    offset,
                    "comparisons cannot be chained: join them with `&&`, or add parentheses",
                ));
            }
            self.advance();
            let kind = match infix {
                Infix::Conditional => {
                    let then = self.expression()?;
                    self.expect(TokenKind::Colon, "to continue the `? :` conditional")?;
                    let otherwise = self.nested(|p| p.binary(CONDITIONAL))?;
                    ExprKind::Conditional {
                        condition: Box::new(left),
                        then: Box::new(then),
                        otherwise: Box::new(otherwise),
                    }
                }
                Infix::Logical(op) => ExprKind::Logical {
                    op,
                    left: Box::new(left),
                    right: Box::new(self.binary(power + 1)?),
                },
                Infix::Binary(op) => ExprKind::Binary {
                    op,
                    left: Box::new(left),
                    right: Box::new(self.binary(power + 1)?),
                },
            };
            left = self.node(kind, offset)?;
            previous_comparison = infix.is_comparison().then_some(power);
        }
        Ok(left)
    }

    fn prefix(&mut self) -> Result<Expr, SyntaxError> {
        let token = self.peek();
        let offset = token.offset;
        let op = match token.kind {
            TokenKind::Bang => UnaryOp::Not,
            TokenKind::Minus => UnaryOp::Negate,
            _ => return self.postfix(),
        };
        self.advance();
        let operand = self.nested(|p| p.prefix())?;
        self.node(
            ExprKind::Unary {
                op,
                operand: Box::new(operand),
            },
            offset,
        )
    }

    fn postfix(&mut self) -> Result<Expr, SyntaxError> {
        let mut expr = self.primary()?;
        loop {
            let token = self.peek().clone();
            let kind = match token.kind {
                TokenKind::OptionalDot
                    if self.tokens.get(self.pos + 1).map(|t| &t.kind)
                        == Some(&TokenKind::LeftBracket) =>
                {
                    self.advance();
                    continue;
                }
                TokenKind::Dot | TokenKind::OptionalDot => {
                    self.advance();
                    let name_token = self.advance();
                    let TokenKind::Ident(name) = name_token.kind else {
                        return Err(SyntaxError::new(
                            name_token.offset,
                            format!(
                                "expected a member name after {}, found {} (write `[0]` to index, `['my-key']` for other names)",
                                token.kind.describe(),
                                name_token.kind.describe()
                            ),
                        ));
                    };
                    ExprKind::Member {
                        object: Box::new(expr),
                        name,
                    }
                }
                TokenKind::LeftBracket => {
                    self.advance();
                    let index = self.expression()?;
                    self.expect(TokenKind::RightBracket, "to close the index")?;
                    ExprKind::Index {
                        object: Box::new(expr),
                        index: Box::new(index),
                    }
                }
                TokenKind::LeftParen => {
                    return Err(SyntaxError::new(
                        token.offset,
                        "only library functions can be called, as in `lower(x)`; there are no methods",
                    ));
                }
                _ => return Ok(expr),
            };
            expr = self.node(kind, token.offset)?;
        }
    }

    fn primary(&mut self) -> Result<Expr, SyntaxError> {
        let token = self.advance();
        let offset = token.offset;
        let kind = match token.kind {
            TokenKind::Int(n) => ExprKind::Literal(Value::from(n)),
            TokenKind::Float(f) => match Number::from_f64(f) {
                Some(n) => ExprKind::Literal(Value::Number(n)),
                None => return Err(SyntaxError::new(offset, "number is out of range")),
            },
            TokenKind::Str(s) => ExprKind::Literal(Value::String(s)),
            TokenKind::Ident(name) => return self.name(name, offset),
            TokenKind::LeftParen => {
                let inner = self.expression()?;
                self.expect(TokenKind::RightParen, "to close the parenthesis")?;
                return Ok(inner);
            }
            TokenKind::LeftBracket => ExprKind::Array(self.list(TokenKind::RightBracket)?),
            TokenKind::End => {
                return Err(SyntaxError::new(
                    offset,
                    "unexpected end of the expression: expected a value",
                ));
            }
            other => {
                return Err(SyntaxError::new(
                    offset,
                    format!("unexpected {}: expected a value", other.describe()),
                ));
            }
        };
        self.node(kind, offset)
    }

    /// A keyword, a root name or a function call.
    fn name(&mut self, name: String, offset: usize) -> Result<Expr, SyntaxError> {
        let literal = match name.as_str() {
            "true" => Some(Value::Bool(true)),
            "false" => Some(Value::Bool(false)),
            "null" => Some(Value::Null),
            _ => None,
        };
        if let Some(value) = literal {
            return self.node(ExprKind::Literal(value), offset);
        }
        if self.peek().kind == TokenKind::LeftParen {
            return self.call(&name, offset);
        }
        if let Some(root) = self.roots.names().find(|root| *root == name) {
            return self.node(ExprKind::Root(root), offset);
        }
        let message = if Function::lookup(&name).is_some() {
            format!("`{name}` is a function: call it as `{name}(...)`")
        } else {
            let listed: Vec<String> = self.roots.names().map(|r| format!("`{r}`")).collect();
            let outside_loop = if Roots::LOOP_BODY_NAMES.contains(&name.as_str()) {
                " (`item` and `index` exist only inside a loop body)"
            } else {
                ""
            };
            format!(
                "unknown name `{name}`: an expression starts from {}{outside_loop}",
                listed.join(", ")
            )
        };
        Err(SyntaxError::new(offset, message))
    }

    fn call(&mut self, name: &str, offset: usize) -> Result<Expr, SyntaxError> {
        let Some(function) = Function::lookup(name) else {
            let hint = Function::lookup_ignoring_case(name)
                .map(|f| format!(" (did you mean `{}`?)", f.name()))
                .unwrap_or_default();
            return Err(SyntaxError::new(
                offset,
                format!("unknown function `{name}`{hint}"),
            ));
        };
        self.advance();
        let args = self.list(TokenKind::RightParen)?;
        let (least, most) = function.arity();
        if args.len() < least || most.is_some_and(|most| args.len() > most) {
            return Err(SyntaxError::new(
                offset,
                format!(
                    "`{name}` takes {}, got {}",
                    function.arity_text(),
                    args.len()
                ),
            ));
        }
        self.node(ExprKind::Call { function, args }, offset)
    }

    /// Comma-separated expressions up to `close` (a trailing comma is allowed); the opening
    /// bracket has been consumed.
    fn list(&mut self, close: TokenKind) -> Result<Vec<Expr>, SyntaxError> {
        let mut items = Vec::new();
        loop {
            if self.peek().kind == close {
                self.advance();
                return Ok(items);
            }
            items.push(self.expression()?);
            let token = self.advance();
            if token.kind == close {
                return Ok(items);
            }
            if token.kind != TokenKind::Comma {
                return Err(SyntaxError::new(
                    token.offset,
                    format!(
                        "expected `,` or {}, found {}",
                        close.describe(),
                        token.kind.describe()
                    ),
                ));
            }
        }
    }
}
