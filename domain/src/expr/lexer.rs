//! Turns expression source into tokens.
//!
//! Offsets are byte offsets into the whole string being parsed (the template, not just the
//! expression), so errors point at the right place; they become character offsets only in
//! the public [`ExprError`]. The lexer never looks further than
//! [`MAX_EXPRESSION_BYTES`] past the start of an expression, which bounds the work an
//! unclosed `{{` in a long string can cause.

use super::{ExprError, MAX_EXPRESSION_BYTES};

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TokenKind {
    Int(i64),
    Float(f64),
    Str(String),
    Ident(String),
    Dot,
    /// `?.`, which means the same as `.` because member access is already null-safe.
    OptionalDot,
    LeftBracket,
    RightBracket,
    LeftParen,
    RightParen,
    Comma,
    Question,
    Colon,
    QuestionQuestion,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    Bang,
    EqualEqual,
    BangEqual,
    Less,
    LessEqual,
    Greater,
    GreaterEqual,
    AndAnd,
    OrOr,
    /// The end of the expression: the end of the input, or `}}` in a template.
    End,
}

impl TokenKind {
    /// How the token reads in an error message.
    pub(crate) fn describe(&self) -> String {
        let symbol = match self {
            TokenKind::Int(n) => return format!("number `{n}`"),
            TokenKind::Float(f) => return format!("number `{f}`"),
            TokenKind::Str(_) => return "a string".to_owned(),
            TokenKind::Ident(name) => return format!("`{name}`"),
            TokenKind::End => return "the end of the expression".to_owned(),
            TokenKind::Dot => ".",
            TokenKind::OptionalDot => "?.",
            TokenKind::LeftBracket => "[",
            TokenKind::RightBracket => "]",
            TokenKind::LeftParen => "(",
            TokenKind::RightParen => ")",
            TokenKind::Comma => ",",
            TokenKind::Question => "?",
            TokenKind::Colon => ":",
            TokenKind::QuestionQuestion => "??",
            TokenKind::Plus => "+",
            TokenKind::Minus => "-",
            TokenKind::Star => "*",
            TokenKind::Slash => "/",
            TokenKind::Percent => "%",
            TokenKind::Bang => "!",
            TokenKind::EqualEqual => "==",
            TokenKind::BangEqual => "!=",
            TokenKind::Less => "<",
            TokenKind::LessEqual => "<=",
            TokenKind::Greater => ">",
            TokenKind::GreaterEqual => ">=",
            TokenKind::AndAnd => "&&",
            TokenKind::OrOr => "||",
        };
        format!("`{symbol}`")
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub kind: TokenKind,
    pub offset: usize,
}

/// A parse error at a byte offset; [`SyntaxError::locate`] makes the public error.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SyntaxError {
    pub offset: usize,
    pub message: String,
}

impl SyntaxError {
    pub(crate) fn new(offset: usize, message: impl Into<String>) -> Self {
        Self {
            offset,
            message: message.into(),
        }
    }

    /// The public error, with the byte offset turned into a character offset in `src`.
    pub(crate) fn locate(self, src: &str) -> ExprError {
        let offset = src
            .get(..self.offset)
            .map_or(self.offset, |before| before.chars().count());
        ExprError {
            message: self.message,
            offset,
        }
    }
}

/// Where an expression ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// At the end of the input.
    Bare,
    /// At `}}`; `open` is the offset of the `{{` that started it.
    Template { open: usize },
}

pub(crate) struct Lexed {
    /// The tokens, always ending with [`TokenKind::End`].
    pub tokens: Vec<Token>,
    /// The byte offset just after the expression (after `}}` in a template).
    pub end: usize,
}

/// Lexes one expression of `src` starting at byte `start`.
pub(crate) fn lex(src: &str, start: usize, mode: Mode) -> Result<Lexed, SyntaxError> {
    let mut limit = src
        .len()
        .min(start.saturating_add(MAX_EXPRESSION_BYTES + 2));
    while !src.is_char_boundary(limit) {
        limit -= 1;
    }
    if mode == Mode::Bare && src.len() > MAX_EXPRESSION_BYTES {
        return Err(too_long(start));
    }
    let mut lexer = Lexer {
        src: &src[..limit],
        pos: start,
        start,
        truncated: limit < src.len(),
    };
    let mut tokens = Vec::new();
    loop {
        lexer.skip_whitespace();
        let offset = lexer.pos;
        if offset - start > MAX_EXPRESSION_BYTES {
            return Err(too_long(start));
        }
        let Some(c) = lexer.peek() else {
            return match mode {
                Mode::Bare => {
                    tokens.push(Token {
                        kind: TokenKind::End,
                        offset,
                    });
                    Ok(Lexed {
                        tokens,
                        end: offset,
                    })
                }
                Mode::Template { .. } if limit < src.len() => Err(too_long(start)),
                Mode::Template { open } => Err(SyntaxError::new(
                    open,
                    "unclosed `{{`: expected `}}` to end the expression",
                )),
            };
        };
        if let Mode::Template { .. } = mode
            && lexer.rest().starts_with("}}")
        {
            tokens.push(Token {
                kind: TokenKind::End,
                offset,
            });
            return Ok(Lexed {
                tokens,
                end: offset + 2,
            });
        }
        let kind = lexer.token(c)?;
        tokens.push(Token { kind, offset });
    }
}

fn too_long(start: usize) -> SyntaxError {
    SyntaxError::new(
        start,
        format!("expression is longer than {MAX_EXPRESSION_BYTES} bytes"),
    )
}

struct Lexer<'s> {
    src: &'s str,
    pos: usize,
    /// Where the expression starts.
    start: usize,
    /// Whether `src` was cut short at the length limit.
    truncated: bool,
}

impl Lexer<'_> {
    fn rest(&self) -> &str {
        &self.src[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn peek_second(&self) -> Option<char> {
        self.rest().chars().nth(1)
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn eat(&mut self, expected: char) -> bool {
        if self.peek() == Some(expected) {
            self.pos += expected.len_utf8();
            true
        } else {
            false
        }
    }

    fn skip_whitespace(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.bump();
        }
    }

    fn token(&mut self, first: char) -> Result<TokenKind, SyntaxError> {
        let offset = self.pos;
        if first.is_ascii_digit() {
            return self.number();
        }
        if first == '_' || first.is_ascii_alphabetic() {
            return Ok(self.identifier());
        }
        if first == '\'' || first == '"' {
            return self.string(first);
        }
        self.bump();
        let kind = match first {
            '.' => TokenKind::Dot,
            '[' => TokenKind::LeftBracket,
            ']' => TokenKind::RightBracket,
            '(' => TokenKind::LeftParen,
            ')' => TokenKind::RightParen,
            ',' => TokenKind::Comma,
            ':' => TokenKind::Colon,
            '+' => TokenKind::Plus,
            '-' => TokenKind::Minus,
            '*' => TokenKind::Star,
            '/' => TokenKind::Slash,
            '%' => TokenKind::Percent,
            '?' if self.eat('?') => TokenKind::QuestionQuestion,
            '?' if self.eat('.') => TokenKind::OptionalDot,
            '?' => TokenKind::Question,
            '!' if self.eat('=') => {
                self.eat('=');
                TokenKind::BangEqual
            }
            '!' => TokenKind::Bang,
            '=' if self.eat('=') => {
                self.eat('=');
                TokenKind::EqualEqual
            }
            '=' => {
                return Err(SyntaxError::new(
                    offset,
                    "unexpected `=`: there is no assignment; compare with `==`",
                ));
            }
            '<' if self.eat('=') => TokenKind::LessEqual,
            '<' => TokenKind::Less,
            '>' if self.eat('=') => TokenKind::GreaterEqual,
            '>' => TokenKind::Greater,
            '&' if self.eat('&') => TokenKind::AndAnd,
            '|' if self.eat('|') => TokenKind::OrOr,
            '&' | '|' => {
                return Err(SyntaxError::new(
                    offset,
                    format!("unexpected `{first}`: did you mean `{first}{first}`?"),
                ));
            }
            '{' | '}' => {
                return Err(SyntaxError::new(
                    offset,
                    format!(
                        "unexpected `{first}`: object literals and nested `{{{{` are not supported"
                    ),
                ));
            }
            '$' => {
                return Err(SyntaxError::new(
                    offset,
                    "unexpected `$`: there are no `$` variables; start from `trigger`, `steps`, `vars` or `run`",
                ));
            }
            other => {
                return Err(SyntaxError::new(
                    offset,
                    format!("unexpected character `{}`", other.escape_debug()),
                ));
            }
        };
        Ok(kind)
    }

    fn identifier(&mut self) -> TokenKind {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c == '_' || c.is_ascii_alphanumeric())
        {
            self.bump();
        }
        TokenKind::Ident(self.src[start..self.pos].to_owned())
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.bump();
        }
        self.pos - start
    }

    fn number(&mut self) -> Result<TokenKind, SyntaxError> {
        let start = self.pos;
        self.digits();
        let mut is_float = false;
        if self.peek() == Some('.') && self.peek_second().is_some_and(|c| c.is_ascii_digit()) {
            self.bump();
            self.digits();
            is_float = true;
        }
        if matches!(self.peek(), Some('e' | 'E')) {
            self.bump();
            if !self.eat('+') {
                self.eat('-');
            }
            if self.digits() == 0 {
                return Err(SyntaxError::new(
                    start,
                    "invalid number: expected digits after the exponent",
                ));
            }
            is_float = true;
        }
        if self
            .peek()
            .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        {
            return Err(SyntaxError::new(
                start,
                "invalid number: a letter follows the digits",
            ));
        }
        let text = &self.src[start..self.pos];
        if !is_float && let Ok(n) = text.parse::<i64>() {
            return Ok(TokenKind::Int(n));
        }
        // Integers too large for 64 bits are read as floats, as JSON parsers do.
        match text.parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(TokenKind::Float(f)),
            _ => Err(SyntaxError::new(start, "number is out of range")),
        }
    }

    fn string(&mut self, quote: char) -> Result<TokenKind, SyntaxError> {
        let start = self.pos;
        self.bump();
        let mut value = String::new();
        loop {
            let escape_at = self.pos;
            match self.bump() {
                None if self.truncated => return Err(too_long(self.start)),
                None => {
                    return Err(SyntaxError::new(
                        start,
                        format!("unterminated string: expected a closing {quote}"),
                    ));
                }
                Some(c) if c == quote => return Ok(TokenKind::Str(value)),
                Some('\\') => value.push(self.escape(escape_at)?),
                Some(c) => value.push(c),
            }
        }
    }

    fn escape(&mut self, at: usize) -> Result<char, SyntaxError> {
        let c = match self.bump() {
            Some('n') => '\n',
            Some('t') => '\t',
            Some('r') => '\r',
            Some('b') => '\u{8}',
            Some('f') => '\u{c}',
            Some('0') => '\0',
            Some(c @ ('\\' | '\'' | '"' | '/')) => c,
            Some('u') => return self.unicode_escape(at),
            Some(other) => {
                return Err(SyntaxError::new(
                    at,
                    format!("unknown escape `\\{}`", other.escape_debug()),
                ));
            }
            None if self.truncated => return Err(too_long(self.start)),
            None => return Err(SyntaxError::new(at, "unterminated string")),
        };
        Ok(c)
    }

    /// `\u{1F600}` (1 to 6 hex digits) or JSON's `\u00e9`, with surrogate pairs.
    fn unicode_escape(&mut self, at: usize) -> Result<char, SyntaxError> {
        let invalid = || {
            SyntaxError::new(
                at,
                "invalid unicode escape: expected `\\u{...}` with 1 to 6 hex digits or `\\u` and 4 hex digits",
            )
        };
        if self.eat('{') {
            let start = self.pos;
            while self.peek().is_some_and(|c| c.is_ascii_hexdigit()) {
                self.bump();
            }
            let hex = &self.src[start..self.pos];
            if hex.is_empty() || hex.len() > 6 || !self.eat('}') {
                return Err(invalid());
            }
            let code = u32::from_str_radix(hex, 16).map_err(|_| invalid())?;
            return char::from_u32(code).ok_or_else(|| {
                SyntaxError::new(at, format!("`\\u{{{hex}}}` is not a unicode character"))
            });
        }
        let high = self.four_hex().ok_or_else(invalid)?;
        if !(0xD800..0xDC00).contains(&high) {
            return char::from_u32(high).ok_or_else(|| {
                SyntaxError::new(at, "a lone surrogate is not a unicode character")
            });
        }
        let low = if self.rest().starts_with("\\u") {
            self.pos += 2;
            self.four_hex().ok_or_else(invalid)?
        } else {
            0
        };
        if !(0xDC00..0xE000).contains(&low) {
            return Err(SyntaxError::new(
                at,
                "a lone surrogate is not a unicode character",
            ));
        }
        char::from_u32(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)).ok_or_else(invalid)
    }

    fn four_hex(&mut self) -> Option<u32> {
        let hex = self.rest().get(..4)?;
        if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let code = u32::from_str_radix(hex, 16).ok()?;
        self.pos += 4;
        Some(code)
    }
}
