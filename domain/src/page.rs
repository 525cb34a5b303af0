//! Cursor pagination, independent of any wire format. The cursor is the id of the last
//! item seen; ids are time-ordered, so "after" means "older than" in newest-first lists.

/// The most items one page may hold, whatever the caller asks for.
pub const MAX_PAGE_SIZE: u64 = 100;
pub const DEFAULT_PAGE_SIZE: u64 = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest<Id> {
    pub first: u64,
    pub after: Option<Id>,
}

impl<Id> PageRequest<Id> {
    /// Clamps the size into `1..=MAX_PAGE_SIZE`; a negative or zero size is an input error.
    pub fn new(first: Option<i64>, after: Option<Id>) -> Result<Self, crate::DomainError> {
        let first = match first {
            None => DEFAULT_PAGE_SIZE,
            Some(n) if n < 1 => {
                return Err(crate::DomainError::invalid("`first` must be at least 1"));
            }
            Some(n) => (n as u64).min(MAX_PAGE_SIZE),
        };
        Ok(Self { first, after })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub has_next_page: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_size_is_clamped_and_defaulted() {
        assert_eq!(
            PageRequest::<u8>::new(None, None).map(|p| p.first).ok(),
            Some(DEFAULT_PAGE_SIZE)
        );
        assert_eq!(
            PageRequest::<u8>::new(Some(10_000), None)
                .map(|p| p.first)
                .ok(),
            Some(MAX_PAGE_SIZE)
        );
        assert!(PageRequest::<u8>::new(Some(0), None).is_err());
        assert!(PageRequest::<u8>::new(Some(-5), None).is_err());
    }
}
