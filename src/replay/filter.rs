//! Which recorded requests are replayed (`--filter host=…,method=…,path=GLOB`) and where
//! they are addressed (`--host-map old=new`).

use super::ReplayRequest;

/// Keeps requests by host, method and path. Keys are AND'd; a key given twice is OR'd
/// (`method=GET,method=HEAD`). Empty: everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestFilter {
    hosts: Vec<String>,
    methods: Vec<String>,
    paths: Vec<String>,
}

impl RequestFilter {
    /// Parses `host=reviews,method=GET,path=/reviews/*` (several `--filter` values are
    /// joined with `,`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut filter = Self::default();
        for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let Some((key, value)) = item.split_once('=') else {
                return Err(format!(
                    "filter item {item:?} has no `=`; write host=NAME, method=GET or path=GLOB"
                ));
            };
            let value = value.trim().to_owned();
            if value.is_empty() {
                return Err(format!("filter item {item:?} has an empty value"));
            }
            match key.trim().to_ascii_lowercase().as_str() {
                "host" => filter.hosts.push(value.to_ascii_lowercase()),
                "method" => filter.methods.push(value.to_ascii_uppercase()),
                "path" => filter.paths.push(value),
                other => {
                    return Err(format!(
                        "filter key {other:?} is not one of host, method, path"
                    ));
                }
            }
        }
        Ok(filter)
    }

    /// Whether `request` is replayed. The host is the recorded one, before `--host-map`;
    /// `host=*.example.com` matches its subdomains, as paths match globs.
    pub fn accepts(&self, request: &ReplayRequest) -> bool {
        let host = request.host().to_ascii_lowercase();
        (self.hosts.is_empty() || self.hosts.iter().any(|h| glob(h, &host)))
            && (self.methods.is_empty()
                || self.methods.iter().any(|m| m == request.method.as_str()))
            && (self.paths.is_empty() || self.paths.iter().any(|p| glob(p, request.path())))
    }
}

/// `*` matches any run of characters (`/` too), `?` one character; the rest literally.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == '?' || c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// `--host-map old=new`: requests recorded for `old` are sent to the lab for `new`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostMap(Vec<(String, String)>);

impl HostMap {
    /// Parses `old=new` items (one per `--host-map`).
    pub fn parse<S: AsRef<str>>(items: &[S]) -> Result<Self, String> {
        let mut map = Vec::new();
        for item in items {
            let item = item.as_ref();
            let Some((old, new)) = item.split_once('=') else {
                return Err(format!("host map {item:?} has no `=`; write OLD=NEW"));
            };
            let (old, new) = (old.trim(), new.trim());
            if old.is_empty() || new.is_empty() {
                return Err(format!("host map {item:?}: both hosts are needed, OLD=NEW"));
            }
            map.push((old.to_ascii_lowercase(), new.to_owned()));
        }
        Ok(Self(map))
    }

    /// The authority to send for one recorded as `authority`: a mapping for `host:port`
    /// first, then for the host alone (which keeps the recorded port only if `new` has none).
    pub fn map(&self, authority: &str) -> Option<String> {
        let lower = authority.to_ascii_lowercase();
        if let Some((_, new)) = self.0.iter().find(|(old, _)| *old == lower) {
            return Some(new.clone());
        }
        let host = super::host_of(&lower);
        let port = lower.get(host.len()..).unwrap_or("");
        self.0.iter().find(|(old, _)| old == host).map(|(_, new)| {
            if super::host_of(new).len() < new.len() {
                new.clone()
            } else {
                format!("{new}{port}")
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_runs_and_single_characters() {
        assert!(glob("/reviews/*", "/reviews/1/ratings"));
        assert!(glob("/r?views", "/reviews"));
        assert!(!glob("/reviews/*", "/ratings/1"));
        assert!(glob("*", ""));
        assert!(glob("*.example.com", "a.b.example.com"));
        assert!(!glob("*.example.com", "example.org"));
    }

    #[test]
    fn host_map_keeps_the_recorded_port_unless_the_new_host_has_one() {
        let map =
            HostMap::parse(&["www.example.com=reviews", "api:8080=ratings:9080"]).expect("parses");
        assert_eq!(
            map.map("www.example.com:443").as_deref(),
            Some("reviews:443")
        );
        assert_eq!(map.map("WWW.example.com").as_deref(), Some("reviews"));
        assert_eq!(map.map("api:8080").as_deref(), Some("ratings:9080"));
        assert_eq!(map.map("other"), None);
        assert!(HostMap::parse(&["nothing"]).is_err());
    }

    #[test]
    fn filter_keys_and_together_and_repeat_as_alternatives() {
        let f = RequestFilter::parse("method=get,method=HEAD,path=/reviews/*").expect("parses");
        assert_eq!(f.methods, ["GET", "HEAD"]);
        assert_eq!(f.paths, ["/reviews/*"]);
        let err = RequestFilter::parse("verb=GET").expect_err("unknown key");
        assert!(err.contains("\"verb\""), "{err}");
    }
}
