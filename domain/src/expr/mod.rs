//! The expression language of `{{ expr }}` templates.

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ExprError {
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    source: String,
}

pub fn parse_template(src: &str) -> Result<Template, ExprError> {
    Ok(Template {
        source: src.to_owned(),
    })
}
