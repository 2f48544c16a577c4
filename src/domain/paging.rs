use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use uuid::Uuid;

use super::field::FieldViolation;

/// Page size when the caller asks for none.
pub const DEFAULT_PAGE_SIZE: u32 = 50;
/// Larger page sizes are lowered to this.
pub const MAX_PAGE_SIZE: u32 = 500;

/// Where a page starts: after the row with this id. Ids are UUIDv7, so id order is creation order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageToken(pub Uuid);

impl PageToken {
    pub fn encode(self) -> String {
        URL_SAFE_NO_PAD.encode(self.0.as_bytes())
    }
}

/// A parsed `page_size` and `page_token` pair (AIP-158).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub size: u32,
    pub after: Option<PageToken>,
}

impl PageRequest {
    pub fn parse(page_size: i32, page_token: &str) -> Result<Self, FieldViolation> {
        let size = match page_size {
            n if n < 0 => return Err(FieldViolation::new("page_size", "must not be negative")),
            0 => DEFAULT_PAGE_SIZE,
            n => (n as u32).min(MAX_PAGE_SIZE),
        };
        let after = if page_token.is_empty() {
            None
        } else {
            let bytes = URL_SAFE_NO_PAD
                .decode(page_token)
                .ok()
                .and_then(|b| Uuid::from_slice(&b).ok())
                .ok_or_else(|| FieldViolation::new("page_token", "is not a page token this server issued"))?;
            Some(PageToken(bytes))
        };
        Ok(Self { size, after })
    }

    /// The number of rows to fetch: one more than the page, to learn whether another page follows.
    pub fn fetch_limit(self) -> i64 {
        i64::from(self.size) + 1
    }

    /// Cuts a fetched list to the page and returns the token of the next page, if any.
    pub fn finish<T>(self, mut rows: Vec<T>, id: impl Fn(&T) -> Uuid) -> (Vec<T>, Option<PageToken>) {
        if rows.len() > self.size as usize {
            rows.truncate(self.size as usize);
            let next = rows.last().map(|r| PageToken(id(r)));
            (rows, next)
        } else {
            (rows, None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_garbage_is_refused() {
        let token = PageToken(Uuid::now_v7());
        let parsed = PageRequest::parse(10, &token.encode()).unwrap();
        assert_eq!(parsed.after, Some(token));
        assert!(PageRequest::parse(10, "not-a-token").is_err());
        assert!(PageRequest::parse(-1, "").is_err());
        assert_eq!(PageRequest::parse(0, "").unwrap().size, DEFAULT_PAGE_SIZE);
        assert_eq!(PageRequest::parse(100_000, "").unwrap().size, MAX_PAGE_SIZE);
    }

    #[test]
    fn finish_reports_a_next_page_only_when_rows_remain() {
        let page = PageRequest::parse(2, "").unwrap();
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
        let (rows, next) = page.finish(ids.clone(), |id| *id);
        assert_eq!(rows, ids[..2]);
        assert_eq!(next, Some(PageToken(ids[1])));
        let (rows, next) = page.finish(ids[..2].to_vec(), |id| *id);
        assert_eq!(rows.len(), 2);
        assert_eq!(next, None);
    }
}
