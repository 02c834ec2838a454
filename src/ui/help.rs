//! What empty panels say: how to get traffic through the proxy, ready to copy.

use crate::config::ConfigSet;
use crate::config::model::{HttpRoute, StringMatch};

/// A request that the open config routes somewhere interesting (a mirrored route when
/// there is one): what the empty panels offer to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExampleRequest {
    /// A VirtualService host, made addressable (`*.example.com` becomes `app.example.com`).
    pub host: String,
    /// Path and query.
    pub path: String,
    /// Headers the route's match needs, `(name, value)`.
    pub headers: Vec<(String, String)>,
    /// The route it is meant for, `namespace/name` and route name or index.
    pub route: String,
}

impl ExampleRequest {
    /// Picks the first mirrored route of the config (else its first route) and builds a
    /// request it matches; `fallback_path` is used when the route does not constrain the
    /// path. `None` when the config has no VirtualService host.
    pub fn for_config(config: &ConfigSet, fallback_path: &str) -> Option<ExampleRequest> {
        let services: Vec<_> = config
            .virtual_services()
            .filter(|(_, vs)| !vs.spec.hosts.is_empty())
            .collect();
        let mirrored = |r: &HttpRoute| r.mirror.is_some() || !r.mirrors.is_empty();
        let (resource, vs, index) = services
            .iter()
            .find_map(|(res, vs)| {
                let i = vs.spec.http.iter().position(mirrored)?;
                Some((*res, *vs, Some(i)))
            })
            .or_else(|| {
                services
                    .first()
                    .map(|(res, vs)| (*res, *vs, (!vs.spec.http.is_empty()).then_some(0)))
            })?;
        let host = addressable(vs.spec.hosts.first()?);
        let route = index.and_then(|i| vs.spec.http.get(i).map(|r| (i, r)));
        // The first match block is enough: blocks are OR'd, so any one of them matches.
        let block = route.and_then(|(_, r)| r.matches.first());
        let path = block
            .and_then(|b| b.uri.as_ref())
            .and_then(example_value)
            .filter(|p| p.starts_with('/'))
            .unwrap_or_else(|| fallback_path.to_owned());
        let headers = block
            .map(|b| {
                b.headers
                    .iter()
                    .filter_map(|(name, m)| {
                        // `{}` only tests presence: any value does.
                        let value = if *m == StringMatch::default() {
                            Some("1".to_owned())
                        } else {
                            example_value(m)
                        };
                        value.map(|v| (name.clone(), v))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let name = format!("VirtualService {}", resource.object.qualified_name());
        let route = match route {
            Some((i, r)) => match &r.name {
                Some(n) => format!("{name}, route {n}"),
                None => format!("{name}, route {i}"),
            },
            None => name,
        };
        Some(ExampleRequest {
            host,
            path,
            headers,
            route,
        })
    }
}

/// A wildcard host is not addressable as such; any name under it is.
fn addressable(host: &str) -> String {
    match host.strip_prefix("*.") {
        Some(suffix) => format!("app.{suffix}"),
        None if host == "*" => "example.com".to_owned(),
        None => host.to_owned(),
    }
}

/// A value that `m` matches: the exact value, the prefix, or a regex of the `.*word.*`
/// kind reduced to its literal (other regexes get no example).
fn example_value(m: &StringMatch) -> Option<String> {
    if let Some(v) = &m.exact {
        return Some(v.clone());
    }
    if let Some(v) = &m.prefix {
        return Some(v.clone());
    }
    let regex = m.regex.as_deref()?;
    let core = regex.strip_prefix(".*").unwrap_or(regex);
    let core = core.strip_suffix(".*").unwrap_or(core);
    let literal = core
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '/' | ' ' | ':' | ','));
    (literal && !core.is_empty()).then(|| core.to_owned())
}

/// Where curl should connect for a proxy listening on `listen`: an unspecified address
/// (`0.0.0.0`, `[::]`) is reached on loopback.
pub fn connect_address(listen: std::net::SocketAddr) -> String {
    let ip = match listen.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => {
            std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
        }
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => {
            std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)
        }
        ip => ip,
    };
    std::net::SocketAddr::new(ip, listen.port()).to_string()
}

/// Ready-to-copy ways to send a request through the proxy to one of the config's hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrafficHowTo {
    /// `curl` with a Host header, straight at the proxy's port.
    pub curl_host_header: String,
    /// `curl` using the lab as an HTTP proxy (absolute-form request).
    pub curl_http_proxy: String,
    /// The environment variable form for any HTTP client.
    pub env_http_proxy: String,
}

impl TrafficHowTo {
    /// Builds the lines for `example` through the proxy at `proxy` (`host:port` to connect to).
    pub fn new(example: &ExampleRequest, proxy: &str) -> Self {
        let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
        let headers: String = example
            .headers
            .iter()
            .map(|(n, v)| format!(" -H {}", quote(&format!("{n}: {v}"))))
            .collect();
        let ExampleRequest { host, path, .. } = example;
        Self {
            curl_host_header: format!(
                "curl -s -H {}{headers} http://{proxy}{path}",
                quote(&format!("Host: {host}"))
            ),
            curl_http_proxy: format!("curl -s -x http://{proxy}{headers} http://{host}{path}"),
            env_http_proxy: format!("export HTTP_PROXY=http://{proxy}"),
        }
    }
}

/// Why the proxy is not running, for the empty panels (the top bar says more).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyState<'a> {
    /// Listening on this address.
    Listening(std::net::SocketAddr),
    /// Stopped; the text says why when there is a reason.
    Stopped(Option<&'a str>),
}

/// What an empty panel shows: how to get traffic through the proxy, ready to copy; a
/// `true` return asks the app to start the proxy.
#[must_use]
pub fn no_traffic_ui(
    ui: &mut egui::Ui,
    example: Option<&ExampleRequest>,
    hosts: &[String],
    proxy: ProxyState<'_>,
    what: &str,
) -> bool {
    ui.add_space(12.0);
    ui.heading(format!("No traffic yet — {what}"));
    ui.add_space(4.0);
    let listen = match proxy {
        ProxyState::Listening(addr) => addr,
        ProxyState::Stopped(why) => {
            if let Some(why) = why {
                ui.colored_label(ui.visuals().error_fg_color, why);
            }
            let mut start = false;
            ui.horizontal(|ui| {
                ui.label("The proxy is not running.");
                start = ui
                    .button("Start")
                    .on_hover_text("Start the proxy with the open config")
                    .clicked();
                ui.label("it, or press Start demo in the top bar for demo services and traffic.");
            });
            return start;
        }
    };
    let Some(example) = example else {
        ui.label("The open config has no VirtualService hosts yet. Add one in the Routes tab.");
        return false;
    };
    let proxy = connect_address(listen);
    ui.label(format!(
        "The proxy listens on {listen}. Send requests through it, or press Start demo. \
         For example, for {}:",
        example.route
    ));
    let howto = TrafficHowTo::new(example, &proxy);
    copy_line(ui, "Host header", &howto.curl_host_header);
    copy_line(ui, "As HTTP proxy", &howto.curl_http_proxy);
    copy_line(ui, "Any client", &howto.env_http_proxy);
    if hosts.len() > 1 {
        ui.label(format!("Configured hosts: {}", hosts.join(", ")));
    }
    false
}

fn copy_line(ui: &mut egui::Ui, what: &str, line: &str) {
    ui.horizontal(|ui| {
        ui.label(format!("{what}:"));
        ui.code(line);
        if ui
            .button("Copy")
            .on_hover_text(format!("Copy: {line}"))
            .clicked()
        {
            ui.ctx().copy_text(line.to_owned());
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(config: &str) -> ExampleRequest {
        let set = ConfigSet::load_str("t.yaml", config);
        ExampleRequest::for_config(&set, "/fallback").expect("an example")
    }

    #[test]
    fn curl_lines_address_the_host_through_the_proxy() {
        let e = example(
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: r\n\
             spec:\n  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews}\n",
        );
        assert_eq!(e.path, "/fallback", "no uri match: the fallback path");
        let h = TrafficHowTo::new(&e, "127.0.0.1:15001");
        assert_eq!(
            h.curl_host_header,
            "curl -s -H 'Host: reviews' http://127.0.0.1:15001/fallback"
        );
        assert_eq!(
            h.curl_http_proxy,
            "curl -s -x http://127.0.0.1:15001 http://reviews/fallback"
        );
        assert_eq!(h.env_http_proxy, "export HTTP_PROXY=http://127.0.0.1:15001");
    }

    #[test]
    fn the_example_takes_the_mirrored_route_its_path_and_headers() {
        let e = example(
            r#"apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: r
spec:
  hosts: ['*.example.com']
  http:
  - name: plain
    route:
    - destination: {host: a}
  - name: shadowed
    match:
    - uri: {prefix: /api/v2}
      headers:
        user-agent: {regex: '.*testing.*'}
        x-canary: {}
        x-id: {regex: '[0-9]+'}
    route:
    - destination: {host: a}
    mirror: {host: b}
"#,
        );
        assert_eq!(e.host, "app.example.com");
        assert_eq!(e.path, "/api/v2");
        assert_eq!(
            e.headers,
            vec![
                ("user-agent".to_owned(), "testing".to_owned()),
                ("x-canary".to_owned(), "1".to_owned())
            ]
        );
        assert!(e.route.ends_with("route shadowed"), "{}", e.route);
        let h = TrafficHowTo::new(&e, "127.0.0.1:1");
        assert_eq!(
            h.curl_host_header,
            "curl -s -H 'Host: app.example.com' -H 'user-agent: testing' -H 'x-canary: 1' \
             http://127.0.0.1:1/api/v2"
        );
    }

    #[test]
    fn an_unspecified_listen_address_is_reached_on_loopback() {
        assert_eq!(
            connect_address("0.0.0.0:15001".parse().unwrap()),
            "127.0.0.1:15001"
        );
        assert_eq!(connect_address("[::]:80".parse().unwrap()), "[::1]:80");
        assert_eq!(
            connect_address("127.0.0.1:9".parse().unwrap()),
            "127.0.0.1:9"
        );
    }
}
