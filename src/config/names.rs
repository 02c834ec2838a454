//! Names Istio validates: DNS labels (subset, port and namespace names), Kubernetes labels,
//! HTTP header names and values. Each check says why a name is refused in Istio's terms
//! (istio/istio `pkg/config/labels`, `pkg/config/validation/validation.go`).

/// Whether `s` is a DNS-1123 label as Istio checks one (`labels.IsDNS1123Label`): 1 to 63
/// letters, digits and `-`, starting and ending with a letter or digit. Istio accepts
/// upper-case letters here.
pub fn is_dns1123_label(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
}

/// Why a Kubernetes label is refused (`labels.Instance.Validate`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelError {
    /// Not `[prefix/]name` with a DNS-name prefix and a qualified name.
    #[error(
        "invalid label key `{0}`: use letters, digits, `-`, `_` and `.`, optionally after a DNS prefix and `/`"
    )]
    Key(String),
    /// The DNS prefix is longer than 253 characters.
    #[error("invalid label key `{0}`: its prefix is longer than 253 characters")]
    PrefixTooLong(String),
    /// The name part is longer than 63 characters.
    #[error("invalid label key `{0}`: its name is longer than 63 characters")]
    NameTooLong(String),
    /// A value that is not empty or a qualified name.
    #[error(
        "invalid label value `{0}`: use letters, digits, `-`, `_` and `.`, starting and ending with a letter or digit"
    )]
    Value(String),
}

/// Checks one label `key: value` as Istio does.
pub fn validate_label(key: &str, value: &str) -> Result<(), LabelError> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        if !prefix.split('.').all(is_dns1123_label) {
            return Err(LabelError::Key(key.to_owned()));
        }
        if prefix.len() > 253 {
            return Err(LabelError::PrefixTooLong(key.to_owned()));
        }
    }
    if !is_qualified_name(name) {
        return Err(LabelError::Key(key.to_owned()));
    }
    if name.len() > 63 {
        return Err(LabelError::NameTooLong(key.to_owned()));
    }
    if !value.is_empty() && !is_qualified_name(value) {
        return Err(LabelError::Value(value.to_owned()));
    }
    Ok(())
}

/// `(?:[A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`.
fn is_qualified_name(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
}

/// The prefix of a header name that routes on a JWT claim (gateways only).
pub const JWT_CLAIM_PREFIX: &str = "@request.auth.claims";

/// Whether a header name routes on a JWT claim (`@request.auth.claims.sub`,
/// `@request.auth.claims[groups]`), as Istio's `jwt.ToRoutingClaim` reads it.
pub fn is_jwt_claim_header(name: &str) -> bool {
    let Some(head) = name.get(..JWT_CLAIM_PREFIX.len()) else {
        return false;
    };
    if !head.eq_ignore_ascii_case(JWT_CLAIM_PREFIX) {
        return false;
    }
    let rest = &name[JWT_CLAIM_PREFIX.len()..];
    (rest.starts_with('.') && rest.len() > 1)
        || (rest.starts_with('[') && rest.ends_with(']') && rest.len() > 2)
}

/// Why a header name or value is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// The empty name.
    #[error("header name cannot be empty")]
    EmptyName,
    /// A character HTTP does not allow in a field name (RFC 7230 `tchar`).
    #[error(
        "`{0}` is not a valid header name: HTTP allows only letters, digits and !#$%&'*+-.^_`|~"
    )]
    BadName(String),
    /// A pseudo-header (`:path`) or `Host`, which Envoy does not let a route change.
    #[error("header `{0}` cannot be changed by a route (it starts with `:` or is Host)")]
    Internal(String),
    /// A control character in a value.
    #[error("header value `{0}` has a control character")]
    ControlCharacter(String),
    /// A `%` that does not start a well-formed `%VARIABLE%` (write `%%` for a percent sign).
    #[error("header value `{value}` is not a valid Envoy header format: {reason}")]
    Format {
        /// The value as written.
        value: String,
        /// What Envoy's header parser says.
        reason: &'static str,
    },
}

/// A match header name: RFC 7230 token characters, a pseudo-header, or a JWT claim
/// (`ValidateHTTPHeaderNameOrJwtClaimRoute`). Upper case is fine: Envoy compares header names
/// case-insensitively.
pub fn validate_match_header_name(name: &str) -> Result<(), HeaderError> {
    if name.is_empty() {
        return Err(HeaderError::EmptyName);
    }
    if is_jwt_claim_header(name)
        || matches!(
            name,
            ":method" | ":scheme" | ":authority" | ":path" | ":status"
        )
    {
        return Ok(());
    }
    if !is_token(name) {
        return Err(HeaderError::BadName(name.to_owned()));
    }
    Ok(())
}

/// A CORS header name: a token, or `*` (`ValidateCORSHTTPHeaderName`).
pub fn validate_cors_header_name(name: &str) -> Result<(), HeaderError> {
    match name {
        "" => Err(HeaderError::EmptyName),
        "*" => Ok(()),
        _ if is_token(name) => Ok(()),
        _ => Err(HeaderError::BadName(name.to_owned())),
    }
}

/// RFC 7230 `token`: one or more `tchar`.
fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Which header operation a name appears in; Istio's rules differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderOperation {
    /// `headers.request.set` or `.add`: the authority may be set this way.
    RequestSet,
    /// `headers.request.remove` and every `headers.response` operation.
    Other,
}

/// A header name in a `headers` operation (`ValidateHTTPHeaderWithAuthorityOperationName`,
/// `ValidateHTTPHeaderOperationName`).
pub fn validate_operation_header_name(name: &str, op: HeaderOperation) -> Result<(), HeaderError> {
    if name.is_empty() {
        return Err(HeaderError::EmptyName);
    }
    let authority = is_authority_header(name);
    let internal = name.starts_with(':') || name.eq_ignore_ascii_case("host");
    match op {
        HeaderOperation::RequestSet if internal && !authority => {
            Err(HeaderError::Internal(name.to_owned()))
        }
        HeaderOperation::Other if internal => Err(HeaderError::Internal(name.to_owned())),
        _ => Ok(()),
    }
}

/// `:authority` or `Host`.
pub fn is_authority_header(name: &str) -> bool {
    name.eq_ignore_ascii_case(":authority") || name.eq_ignore_ascii_case("host")
}

/// A header value Envoy can parse (`ValidateHTTPHeaderValue`): no control character but
/// tab, and every `%` either doubled or the start of a `%VARIABLE%` or `%VARIABLE(args)%`.
pub fn validate_header_value(value: &str) -> Result<(), HeaderError> {
    if value
        .chars()
        .any(|c| matches!(c, '\u{0}'..='\u{8}' | '\u{a}'..='\u{1f}' | '\u{7f}'))
    {
        return Err(HeaderError::ControlCharacter(value.to_owned()));
    }
    envoy_header_format(value).map_err(|reason| HeaderError::Format {
        value: value.to_owned(),
        reason,
    })
}

/// The states of Envoy's header-value parser (`source/common/router/header_parser.cc`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Literal,
    Name,
    ExpectArray,
    ExpectString,
    InString,
    ExpectDelimiterOrEnd,
    ExpectArgsEnd,
    ExpectVariableEnd,
}

fn envoy_header_format(value: &str) -> Result<(), &'static str> {
    let bytes = value.as_bytes();
    let mut state = Format::Literal;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let next = bytes.get(i + 1).copied();
        state = match (state, b) {
            (Format::Literal, b'%') => match next {
                None => return Err("an unescaped % at the end (write %% for a percent sign)"),
                Some(b'%') => {
                    i += 1;
                    Format::Literal
                }
                Some(_) => Format::Name,
            },
            (Format::Literal, _) => Format::Literal,
            (Format::Name, b'%') => Format::Literal,
            (Format::Name, b'(') => Format::ExpectArray,
            (Format::Name, _) => Format::Name,
            (Format::ExpectArray, b'[') => Format::ExpectString,
            (Format::ExpectArray, b' ') => Format::ExpectArray,
            (Format::ExpectArray, _) => Format::InString,
            (Format::ExpectDelimiterOrEnd, b',') => Format::ExpectString,
            (Format::ExpectDelimiterOrEnd, b']') => Format::ExpectArgsEnd,
            (Format::ExpectDelimiterOrEnd, b' ') => Format::ExpectDelimiterOrEnd,
            (Format::ExpectDelimiterOrEnd, _) => return Err("expecting ',', ']' or a space"),
            (Format::ExpectString, b'"') => Format::InString,
            (Format::ExpectString, b' ') => Format::ExpectString,
            (Format::ExpectString, _) => return Err("expecting '\"'"),
            (Format::InString, b'\\') => {
                if next.is_none() {
                    return Err("an unterminated backslash in a string argument");
                }
                i += 1;
                Format::InString
            }
            (Format::InString, b')') => Format::ExpectVariableEnd,
            (Format::InString, b'"') => Format::ExpectDelimiterOrEnd,
            (Format::InString, _) => Format::InString,
            (Format::ExpectArgsEnd, b')') => Format::ExpectVariableEnd,
            (Format::ExpectArgsEnd, b' ') => Format::ExpectArgsEnd,
            (Format::ExpectArgsEnd, _) => return Err("expecting ')' or a space"),
            (Format::ExpectVariableEnd, b'%') => Format::Literal,
            (Format::ExpectVariableEnd, b' ') => Format::ExpectVariableEnd,
            (Format::ExpectVariableEnd, _) => return Err("expecting '%' or a space"),
        };
        i += 1;
    }
    if state == Format::Literal {
        Ok(())
    } else {
        Err("an unterminated %VARIABLE% (write %% for a percent sign)")
    }
}

/// Why an `exportTo` list is refused (`validateExportTo`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExportToError {
    /// An entry that is not `.`, `*`, `~` (ServiceEntry only) or a namespace name.
    #[error("`{0}` is not `.`, `*` or a namespace name")]
    BadEntry(String),
    /// `~` where only a ServiceEntry may use it.
    #[error("exportTo `~` (no one) is allowed on a ServiceEntry only")]
    NoneNotAllowed,
    /// The same namespace twice (`.` counts as the resource's own namespace).
    #[error("`{0}` appears twice in exportTo")]
    Duplicate(String),
    /// `*` next to other entries.
    #[error("`*` (every namespace) cannot be combined with other entries")]
    PublicAndOthers,
    /// `~` next to other entries.
    #[error("`~` (no one) cannot be combined with other entries")]
    NoneAndOthers,
    /// A DestinationRule with a workload selector exported beyond its own namespace.
    #[error("a DestinationRule with a workloadSelector can be exported to its own namespace only")]
    SelectorBeyondNamespace,
}

/// Checks an `exportTo` list of a resource in `namespace`.
pub fn validate_export_to(
    namespace: &str,
    export_to: &[String],
    service_entry: bool,
    with_selector: bool,
) -> Vec<ExportToError> {
    let mut errors = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for entry in export_to {
        let key = if entry == "." {
            namespace
        } else {
            entry.as_str()
        };
        if seen.contains(&key) {
            errors.push(ExportToError::Duplicate(entry.clone()));
            continue;
        }
        match key {
            "*" => seen.push(key),
            "~" if service_entry => seen.push(key),
            "~" => errors.push(ExportToError::NoneNotAllowed),
            _ if is_dns1123_label(key) => seen.push(key),
            _ => errors.push(ExportToError::BadEntry(entry.clone())),
        }
    }
    if with_selector && !seen.is_empty() && (!seen.contains(&namespace) || seen.len() > 1) {
        errors.push(ExportToError::SelectorBeyondNamespace);
    }
    if seen.contains(&"*") && export_to.len() > 1 {
        errors.push(ExportToError::PublicAndOthers);
    }
    if seen.contains(&"~") && export_to.len() > 1 {
        errors.push(ExportToError::NoneAndOthers);
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_dns_names() {
        assert!(is_dns1123_label("v1") && is_dns1123_label("V1") && is_dns1123_label("a-b"));
        assert!(!is_dns1123_label("v_1") && !is_dns1123_label("-a") && !is_dns1123_label(""));
        assert!(!is_dns1123_label(&"a".repeat(64)));
        assert_eq!(validate_label("app", "reviews"), Ok(()));
        assert_eq!(validate_label("example.com/app", ""), Ok(()));
        assert!(validate_label("", "x").is_err());
        assert!(validate_label("a b", "x").is_err());
        assert!(validate_label("app", "-x").is_err());
        assert!(validate_label("app", "*").is_err());
    }

    #[test]
    fn header_names_and_values() {
        assert_eq!(validate_match_header_name("End-User"), Ok(()));
        assert_eq!(validate_match_header_name(":authority"), Ok(()));
        assert_eq!(
            validate_match_header_name("@request.auth.claims.sub"),
            Ok(())
        );
        assert!(validate_match_header_name("x y").is_err());
        assert!(validate_match_header_name("x:y").is_err());
        assert!(validate_match_header_name("").is_err());
        assert!(validate_operation_header_name(":path", HeaderOperation::RequestSet).is_err());
        assert!(validate_operation_header_name("host", HeaderOperation::RequestSet).is_ok());
        assert!(validate_operation_header_name("host", HeaderOperation::Other).is_err());
        for good in [
            "foo",
            "%HOSTNAME%",
            "100%%",
            "prefix %HOSTNAME% suffix",
            "%REQ(x-a)%",
        ] {
            assert_eq!(validate_header_value(good), Ok(()), "{good}");
        }
        for bad in ["abc%123", "%START_TIME%%", "a\nb", "50%"] {
            assert!(validate_header_value(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn export_to_lists() {
        let ok: Vec<String> = vec![".".into(), "other".into()];
        assert!(validate_export_to("default", &ok, false, false).is_empty());
        let dup: Vec<String> = vec![".".into(), "default".into()];
        assert_eq!(
            validate_export_to("default", &dup, false, false),
            [ExportToError::Duplicate("default".into())]
        );
        let star: Vec<String> = vec!["*".into(), "a".into()];
        assert_eq!(
            validate_export_to("default", &star, false, false),
            [ExportToError::PublicAndOthers]
        );
        let none: Vec<String> = vec!["~".into()];
        assert!(validate_export_to("default", &none, true, false).is_empty());
        assert_eq!(
            validate_export_to("default", &none, false, false),
            [ExportToError::NoneNotAllowed]
        );
    }
}
