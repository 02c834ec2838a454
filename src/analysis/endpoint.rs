//! Endpoint templates: method plus path with identifier segments folded, so that
//! `GET /reviews/17` and `GET /reviews/42` are one row of the diff table.

/// Folds a request target into its endpoint template: the query is dropped and every path
/// segment that looks like an identifier (all digits, a UUID, or a long hex string such as
/// an object id or a hash) becomes `{id}`.
///
/// ```
/// # use mirrorlab::analysis::endpoint_template;
/// assert_eq!(endpoint_template("GET", "/reviews/17?x=1"), "GET /reviews/{id}");
/// ```
pub fn endpoint_template(method: &str, target: &str) -> String {
    let path = target.split(['?', '#']).next().unwrap_or("");
    // An absolute-form target (lab used as HTTP_PROXY) keeps only its path.
    let absolute = if path.starts_with('/') {
        None
    } else {
        path.find("://")
    };
    let path = match absolute {
        Some(i) => {
            let rest = path.get(i + 3..).unwrap_or("");
            rest.find('/').and_then(|j| rest.get(j..)).unwrap_or("/")
        }
        None => path,
    };
    let mut out = String::with_capacity(method.len() + 1 + path.len());
    out.push_str(method);
    out.push(' ');
    if path.is_empty() {
        out.push('/');
        return out;
    }
    let mut first = true;
    for segment in path.split('/') {
        if !first {
            out.push('/');
        }
        first = false;
        if is_identifier(segment) {
            out.push_str("{id}");
        } else {
            out.push_str(segment);
        }
    }
    out
}

/// True for segments that name one object rather than a kind of resource.
fn is_identifier(segment: &str) -> bool {
    if segment.is_empty() {
        return false;
    }
    if segment.bytes().all(|b| b.is_ascii_digit()) {
        return true;
    }
    if is_uuid(segment) {
        return true;
    }
    // 16+ hex characters with at least one digit: Mongo object ids, hashes, trace ids;
    // the digit keeps words such as `deadbeefcafebabe` out only when they are all letters.
    segment.len() >= 16
        && segment.bytes().all(|b| b.is_ascii_hexdigit())
        && segment.bytes().any(|b| b.is_ascii_digit())
}

/// 8-4-4-4-12 hex digits.
fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_numbers_uuids_and_hex_ids() {
        assert_eq!(endpoint_template("GET", "/reviews/17"), "GET /reviews/{id}");
        assert_eq!(
            endpoint_template(
                "PUT",
                "/users/0b7d3c1e-9a4f-4c2a-8d7e-1f2a3b4c5d6e/cart/3?x=1"
            ),
            "PUT /users/{id}/cart/{id}"
        );
        assert_eq!(
            endpoint_template("GET", "/obj/5f1d7c2e9b1e8a0012345678"),
            "GET /obj/{id}"
        );
        assert_eq!(endpoint_template("GET", "/v1/reviews"), "GET /v1/reviews");
        assert_eq!(endpoint_template("GET", ""), "GET /");
        assert_eq!(
            endpoint_template("GET", "http://reviews:9080/reviews/1"),
            "GET /reviews/{id}"
        );
    }
}
