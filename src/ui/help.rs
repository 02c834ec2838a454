//! What empty panels say: how to get traffic through the proxy, ready to copy.

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
    /// Builds the lines for `host` (a VirtualService host) and the proxy's `listen` address.
    pub fn new(host: &str, listen: &str, path: &str) -> Self {
        // A wildcard host is not addressable as such; any name under it is.
        let host = match host.strip_prefix("*.") {
            Some(suffix) => format!("app.{suffix}"),
            None if host == "*" => "example.com".to_owned(),
            None => host.to_owned(),
        };
        Self {
            curl_host_header: format!("curl -s -H 'Host: {host}' http://{listen}{path}"),
            curl_http_proxy: format!("curl -s -x http://{listen} http://{host}{path}"),
            env_http_proxy: format!("export HTTP_PROXY=http://{listen}"),
        }
    }
}

/// Shows the "no traffic yet" help: copyable curl lines for the config's hosts.
pub fn no_traffic_ui(ui: &mut egui::Ui, hosts: &[String], listen: Option<&str>, what: &str) {
    ui.add_space(12.0);
    ui.heading(format!("No traffic yet — {what}"));
    ui.add_space(4.0);
    let Some(listen) = listen else {
        ui.label(
            "The proxy is not running. Open a config and press Start in the top bar, \
             or press Start demo to run the demo services with generated traffic.",
        );
        return;
    };
    if hosts.is_empty() {
        ui.label("The open config has no VirtualService hosts yet. Add one in the Routes tab.");
        return;
    }
    ui.label(format!(
        "Send requests to the proxy on {listen}, or press Start demo. For example:"
    ));
    let howto = TrafficHowTo::new(&hosts[0], listen, "/reviews/1");
    copy_line(ui, "Host header", &howto.curl_host_header);
    copy_line(ui, "As HTTP proxy", &howto.curl_http_proxy);
    copy_line(ui, "Any client", &howto.env_http_proxy);
    if hosts.len() > 1 {
        ui.label(format!("Configured hosts: {}", hosts.join(", ")));
    }
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

    #[test]
    fn curl_lines_address_the_host_through_the_proxy() {
        let h = TrafficHowTo::new("reviews", "127.0.0.1:15001", "/reviews/1");
        assert_eq!(
            h.curl_host_header,
            "curl -s -H 'Host: reviews' http://127.0.0.1:15001/reviews/1"
        );
        assert_eq!(
            h.curl_http_proxy,
            "curl -s -x http://127.0.0.1:15001 http://reviews/reviews/1"
        );
        assert_eq!(h.env_http_proxy, "export HTTP_PROXY=http://127.0.0.1:15001");
    }

    #[test]
    fn wildcard_hosts_get_an_addressable_name() {
        let h = TrafficHowTo::new("*.example.com", "127.0.0.1:1", "/");
        assert!(h.curl_host_header.contains("Host: app.example.com"));
    }
}
